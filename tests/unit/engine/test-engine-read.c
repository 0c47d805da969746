// SPDX-License-Identifier: MIT
/*
 * test-engine-read: synchronous reads by every host path, at random offsets, lengths and
 * destination alignments, checked byte for byte, with guard bytes around the destination.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine_fixture.h"
#include "tap.h"

#define FILE_SIZE ((3u << 20) + 12345)	/* not a multiple of any block size */
#define CHUNK (64u << 10)
#define GUARD 4096
#define ROUNDS 150

static char path[PATH_MAX];
static uint64_t seed;

/* One read into the middle of a guarded host buffer; true if data and guards are right. */
static bool read_one(struct p2pio_file *f, struct p2pio_buf *buf, uint8_t *mem, uint64_t off,
		     uint64_t len, uint64_t dst, int *ret)
{
	int64_t bad;

	memset(mem, EFX_GUARD, FILE_SIZE + 2 * GUARD + 8192);
	*ret = p2pio_read(f, off, len, buf, GUARD + dst);
	if (*ret)
		return false;
	bad = efx_mismatch(mem + GUARD + dst, off, len);
	if (bad >= 0) {
		tap_diag("byte %lld of read off=%llu len=%llu dst=%llu differs", (long long)bad,
			 (unsigned long long)off, (unsigned long long)len,
			 (unsigned long long)dst);
		return false;
	}
	if (!efx_guard_intact(mem, GUARD + dst) ||
	    !efx_guard_intact(mem + GUARD + dst + len, FILE_SIZE + GUARD + 8192 - dst - len)) {
		tap_diag("bytes outside read off=%llu len=%llu dst=%llu were written",
			 (unsigned long long)off, (unsigned long long)len,
			 (unsigned long long)dst);
		return false;
	}
	return true;
}

static void run_path(enum p2pio_path path_id, uint32_t flags, const char *what)
{
	struct p2pio_path_info info = { .size = sizeof(info) };
	struct p2pio_ctx_stats st = { .size = sizeof(st) };
	struct p2pio_error err = { 0 };
	struct p2pio_file *f = NULL;
	struct p2pio_buf *buf = NULL;
	struct p2pio_ctx *ctx;
	uint64_t off, len, dst, bytes = 0;
	bool all = true;
	uint8_t *mem;
	int i, ret = 0;

	ctx = efx_host_ctx(path_id, CHUNK, flags);
	tap_ok(ctx != NULL, "%s: host context", what);
	if (!ctx) {
		tap_skip(7, "no context");
		return;
	}
	if (path_id == P2PIO_PATH_AUTO)
		efx_drop_cache(path);
	tap_ok(!p2pio_file_open(ctx, path, 0, &f, &err), "%s: open (%s)", what, err.msg);
	tap_ok(!p2pio_buf_alloc(ctx, P2PIO_MEM_HOST, FILE_SIZE + 2 * GUARD + 8192, &buf, &err),
	       "%s: buffer", what);
	if (!f || !buf) {
		tap_skip(5, "no file or buffer");
		goto out;
	}
	p2pio_path_info(f, &info);
	tap_diag("%s: path %s (%s)", what, p2pio_path_name(info.path), info.why);
	tap_ok(path_id == P2PIO_PATH_AUTO ? info.path == P2PIO_PATH_BOUNCE : info.path == path_id,
	       "%s: file takes the %s path", what, p2pio_path_name(info.path));
	mem = p2pio_buf_host_ptr(buf);

	/* Edges first: whole file, one byte at either end, the last partial block. */
	all &= read_one(f, buf, mem, 0, FILE_SIZE, 0, &ret);
	all &= read_one(f, buf, mem, 0, 1, 1, &ret);
	all &= read_one(f, buf, mem, FILE_SIZE - 1, 1, 4095, &ret);
	all &= read_one(f, buf, mem, FILE_SIZE - 5000, 5000, 0, &ret);
	all &= read_one(f, buf, mem, 4096, 3 * CHUNK, 0, &ret);	/* all aligned: direct */
	all &= read_one(f, buf, mem, 4095, 2, 7, &ret);		/* across a block */
	bytes += FILE_SIZE + 1 + 1 + 5000 + 3 * CHUNK + 2;
	tap_ok(all, "%s: edge cases byte-exact, nothing outside the range touched (ret %d)", what,
	       ret);

	for (i = 0; i < ROUNDS && all; i++) {
		off = efx_rand(&seed) % FILE_SIZE;
		if (efx_rand(&seed) % 3 == 0)
			off -= off % 4096;
		len = efx_rand(&seed) % (FILE_SIZE - off < 4 * CHUNK ? FILE_SIZE - off + 1 :
									4 * CHUNK);
		dst = efx_rand(&seed) % 2 ? 0 : efx_rand(&seed) % 8192;
		all &= read_one(f, buf, mem, off, len, dst, &ret);
		bytes += len;
	}
	tap_ok(all, "%s: %d random reads byte-exact with guards intact", what, ROUNDS);

	tap_is_int(p2pio_read(f, FILE_SIZE - 10, 11, buf, 0), -ENODATA,
		   "%s: a read past the end of the file fails with ENODATA", what);
	tap_is_int(p2pio_read(f, 0, 10, buf, FILE_SIZE + 2 * GUARD + 8192 - 9), -EINVAL,
		   "%s: a read past the end of the buffer fails with EINVAL", what);

	p2pio_ctx_stats(ctx, &st, false);
	tap_ok(st.path[P2PIO_PATH_AUTO].bytes == bytes &&
		       st.path[info.path].bytes == bytes &&
		       st.path[info.path].requests == (uint64_t)ROUNDS + 6 &&
		       st.path[info.path].bytes_read >= bytes && st.waits > 0,
	       "%s: statistics count %llu bytes in %llu reads (read %llu from storage)", what,
	       (unsigned long long)st.path[info.path].bytes,
	       (unsigned long long)st.path[info.path].requests,
	       (unsigned long long)st.path[info.path].bytes_read);
out:
	p2pio_buf_free(buf);
	p2pio_file_close(f);
	p2pio_ctx_destroy(ctx);
}

int main(void)
{
	int ret;

	seed = getenv("P2PIO_SEED") ? strtoull(getenv("P2PIO_SEED"), NULL, 0) :
				      (uint64_t)time(NULL) | 1;
	tap_plan(1 + 4 * 9);
	tap_diag("seed %llu (set P2PIO_SEED to repeat)", (unsigned long long)seed);
	ret = efx_make_file(path, FILE_SIZE);
	tap_ok(!ret, "generated a %u-byte file", FILE_SIZE);
	if (ret)
		tap_bail("cannot create the test file");
	run_path(P2PIO_PATH_POSIX, 0, "posix");
	run_path(P2PIO_PATH_BOUNCE, 0, "bounce");
	run_path(P2PIO_PATH_BOUNCE, P2PIO_CTX_BOUNCE_ASYNC, "bounce async");
	run_path(P2PIO_PATH_AUTO, P2PIO_CTX_NO_WARM_CHECK, "auto");
	unlink(path);
	return tap_exit();
}
