// SPDX-License-Identifier: MIT
/*
 * test-engine-gpu: the engine's paths into real CUDA device memory.
 *
 *  - POSIX and BOUNCE reads at random offsets, lengths and destination offsets, copied
 *    back and compared byte for byte, with guard bytes around the destination;
 *  - a stream-ordered read: a device-to-host copy queued on the stream right after
 *    p2pio_submit() must see the read's data;
 *  - first throughput numbers (GiB/s, diagnostics only) for a few chunk sizes and queue
 *    depths, cold (page cache dropped, when root) and warm.
 *
 * Skips (TAP "1..0 # SKIP") without libcuda or a GPU. P2PIO_GPU_FILE_MB sets the size of
 * the generated file (default 1024), TMPDIR where it goes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "p2pio.h"
#include "internal.h"
#include "engine/engine.h"
#include "engine_fixture.h"
#include "gpu_fixture.h"
#include "tap.h"

#define GUARD 4096
#define ROUNDS 60

static const struct p2pio_cuda *cu;
static char path[PATH_MAX];
static uint64_t fsize, seed = 88172645463325252ull;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static bool drop_caches(void)
{
	int fd;

	efx_drop_cache(path);
	sync();
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd < 0)
		return false;
	if (write(fd, "1", 1) != 1) {
		close(fd);
		return false;
	}
	close(fd);
	return true;
}

static uint32_t threads;

static struct p2pio_ctx *gpu_ctx(enum p2pio_path p, uint64_t chunk, uint32_t qd)
{
	struct p2pio_ctx_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *ctx = NULL;

	p2pio_ctx_opts_init(&o);
	o.device = 0;
	o.path = p;
	o.chunk_size = chunk;
	o.queue_depth = qd;
	o.threads = threads;
	if (p2pio_ctx_create(&o, &ctx, &err))
		tap_diag("context: %s", err.msg);
	return ctx;
}

/*
 * A GPU context's POSIX readers: one per CPU, as into host memory (session 18's cap at
 * 8 went in session 19; userlib/src/engine/ctx.c), beside fewer BOUNCE rings; the
 * caller's count when set.
 */
static void posix_readers(void)
{
	struct p2pio_ctx_opts got = { .size = sizeof(got) };
	struct p2pio_ctx_opts want = { 0 };
	struct p2pio_ctx *ctx;

	p2pio_threads_resolve(&want, sysconf(_SC_NPROCESSORS_ONLN));
	threads = 0;
	ctx = gpu_ctx(P2PIO_PATH_POSIX, 0, 0);
	tap_ok(ctx && !p2pio_ctx_get_opts(ctx, &got) &&
		       got.posix_threads == want.posix_threads && got.threads == want.threads,
	       "GPU context, defaults: %u POSIX readers (want %u), %u rings (want %u)",
	       got.posix_threads, want.posix_threads, got.threads, want.threads);
	p2pio_ctx_destroy(ctx);
	threads = 16;
	ctx = gpu_ctx(P2PIO_PATH_POSIX, 0, 0);
	tap_ok(ctx && !p2pio_ctx_get_opts(ctx, &got) && got.posix_threads == 16,
	       "GPU context, 16 threads set: %u POSIX readers", got.posix_threads);
	p2pio_ctx_destroy(ctx);
	threads = 0;
}

/* Sets the word the legacy stream waits on, if the copy has not come back in 3 s. */
static void *release_after(void *arg)
{
	volatile uint32_t *word = arg;
	struct timespec ts = { .tv_sec = 3 };

	nanosleep(&ts, NULL);
	*word = 1;
	return NULL;
}

/*
 * The library's synchronous copy into GPU memory (the P2P path's unaligned edges, the
 * reads it finishes through host memory) while the legacy default stream waits on a
 * completion word, as it does for a read ordered on it: the copy must not queue behind
 * that wait (it did with cuMemcpyHtoD, which runs on the legacy stream: the read would
 * have waited for itself). A thread sets the word after 3 s, so the test cannot hang; the
 * copy must be back long before, with its bytes in place.
 */
static void sync_write_beside_waiting_stream(void)
{
	struct p2pio_ctx *ctx = gpu_ctx(P2PIO_PATH_POSIX, 0, 0);
	struct p2pio_buf *buf = NULL;
	struct p2pio_op op = { 0 };
	uint8_t src[4096], back[4096];
	volatile uint32_t *word = NULL;
	CUdeviceptr dword = 0;
	CUcontext prev = NULL;
	pthread_t th;
	double t0, dt = -1;
	int ret = -1;

	memset(src, 0x5a, sizeof(src));
	if (!ctx || p2pio_buf_alloc(ctx, P2PIO_MEM_CUDA, 1 << 20, &buf, NULL)) {
		tap_ok(0, "sync write: set-up");
		tap_ok(0, "sync write: its bytes");
		goto out;
	}
	cu->CtxGetCurrent(&prev);
	cu->CtxSetCurrent(p2pio_ctx_cuda_context(ctx));
	cu->MemsetD8(p2pio_buf_addr(buf), 0, 1 << 20);
	if (cu->MemHostAlloc((void **)&word, 4, CU_MEMHOSTALLOC_DEVICEMAP |
			     CU_MEMHOSTALLOC_PORTABLE) ||
	    cu->MemHostGetDevicePointer(&dword, (void *)word, 0)) {
		tap_ok(0, "sync write: a device-mapped word");
		tap_ok(0, "sync write: its bytes");
		cu->CtxSetCurrent(prev);
		goto out;
	}
	*word = 0;
	cu->StreamWaitValue32(NULL, dword, 1, CU_STREAM_WAIT_VALUE_GEQ);
	pthread_create(&th, NULL, release_after, (void *)word);
	op.ctx = ctx;
	op.buf = buf;
	t0 = p2pio_now_ns() * 1e-9;
	ret = p2pio_dst_write_sync(&op, 8192, src, sizeof(src));
	dt = p2pio_now_ns() * 1e-9 - t0;
	pthread_join(th, NULL);
	cu->StreamSynchronize(NULL);
	tap_ok(!ret && dt < 1.0, "sync write beside the legacy stream waiting on a word: %d in %.3f s "
	       "(the word is set after 3 s)", ret, dt);
	cu->MemcpyDtoH(back, p2pio_buf_addr(buf) + 8192, sizeof(back));
	tap_ok(!memcmp(back, src, sizeof(src)), "sync write: its bytes in place");
	cu->MemFreeHost((void *)word);
	cu->CtxSetCurrent(prev);
out:
	p2pio_buf_free(buf);
	p2pio_ctx_destroy(ctx);
}

/* Read, copy back, check data and guards. @host is a scratch host buffer of buf's size. */
static bool gpu_read_check(struct p2pio_file *f, struct p2pio_buf *buf, uint8_t *host,
			   uint64_t blen, uint64_t off, uint64_t len, uint64_t dst)
{
	CUdeviceptr d = p2pio_buf_addr(buf);
	int ret;

	cu->MemsetD8(d, EFX_GUARD, blen);
	ret = p2pio_read(f, off, len, buf, dst);
	if (ret) {
		tap_diag("read off=%llu len=%llu dst=%llu: %s", (unsigned long long)off,
			 (unsigned long long)len, (unsigned long long)dst, p2pio_strerror(ret));
		return false;
	}
	/* Only the window around the destination: whole-buffer copies would dominate. */
	cu->MemcpyDtoH(host, d + dst - (dst < GUARD ? dst : GUARD),
		       len + (dst < GUARD ? dst : GUARD) +
			       (blen - dst - len < GUARD ? blen - dst - len : GUARD));
	{
		uint64_t pre = dst < GUARD ? dst : GUARD;
		uint64_t post = blen - dst - len < GUARD ? blen - dst - len : GUARD;

		if (!efx_guard_intact(host, pre) || !efx_guard_intact(host + pre + len, post)) {
			tap_diag("guard bytes around off=%llu len=%llu dst=%llu overwritten",
				 (unsigned long long)off, (unsigned long long)len,
				 (unsigned long long)dst);
			return false;
		}
		if (efx_mismatch(host + pre, off, len) >= 0) {
			tap_diag("data of off=%llu len=%llu dst=%llu differs",
				 (unsigned long long)off, (unsigned long long)len,
				 (unsigned long long)dst);
			return false;
		}
	}
	return true;
}

static void correctness(enum p2pio_path p, const char *what)
{
	uint64_t blen = (64ull << 20) + 2 * GUARD, off, len, dst;
	struct p2pio_path_info info = { .size = sizeof(info) };
	struct p2pio_error err = { 0 };
	struct p2pio_file *f = NULL;
	struct p2pio_buf *buf = NULL;
	struct p2pio_ctx *ctx = gpu_ctx(p, 1 << 20, 8);
	bool ok = true;
	uint8_t *host = malloc(blen);
	int i;

	if (!ctx || p2pio_file_open(ctx, path, 0, &f, &err) ||
	    p2pio_buf_alloc(ctx, P2PIO_MEM_CUDA, blen, &buf, &err) || !host) {
		tap_ok(0, "%s: set up (%s)", what, err.msg);
		tap_skip(1, "no setup");
		goto out;
	}
	/* The test's own CUDA calls (memset, copy back) run in the library's context. */
	cu->CtxSetCurrent(p2pio_ctx_cuda_context(ctx));
	p2pio_path_info(f, &info);
	tap_ok(info.path == p, "%s: file on the %s path into CUDA memory", what,
	       p2pio_path_name(info.path));
	ok &= gpu_read_check(f, buf, host, blen, 0, 64ull << 20, 0);
	ok &= gpu_read_check(f, buf, host, blen, fsize - 12345, 12345, 77);
	for (i = 0; i < ROUNDS && ok; i++) {
		off = efx_rand(&seed) % fsize;
		len = efx_rand(&seed) % (fsize - off < (24u << 20) ? fsize - off + 1 : (24u << 20));
		dst = efx_rand(&seed) % (blen - len + 1);
		if (i % 3 == 0)
			off -= off % 4096;
		ok &= gpu_read_check(f, buf, host, blen, off, len, dst);
	}
	tap_ok(ok, "%s: whole, tail and %d random reads into device memory byte-exact, guards intact",
	       what, ROUNDS);
out:
	free(host);
	p2pio_buf_free(buf);
	p2pio_file_close(f);
	p2pio_ctx_destroy(ctx);
}

/* Work queued on a stream after p2pio_submit() sees the data of a P2PIO_REQ_STREAM read. */
static void stream_order(enum p2pio_path p, const char *what)
{
	uint64_t len = 256ull << 20;
	struct p2pio_file *f = NULL;
	struct p2pio_buf *buf = NULL;
	struct p2pio_queue *q = NULL;
	struct p2pio_ctx *ctx = gpu_ctx(p, 0, 0);
	struct p2pio_cqe cqe;
	struct p2pio_req r;
	CUcontext prev = NULL;
	CUstream s = NULL;
	void *host = NULL;
	bool ok = false;

	if (len > fsize)
		len = fsize;
	if (!ctx || p2pio_file_open(ctx, path, 0, &f, NULL) ||
	    p2pio_buf_alloc(ctx, P2PIO_MEM_CUDA, len, &buf, NULL) || p2pio_queue_create(ctx, &q)) {
		tap_ok(0, "%s: stream set-up", what);
		goto out;
	}
	cu->CtxGetCurrent(&prev);
	cu->CtxSetCurrent(p2pio_ctx_cuda_context(ctx));
	cu->StreamCreate(&s, CU_STREAM_NON_BLOCKING);
	cu->MemHostAlloc(&host, len, 0);
	cu->MemsetD8(p2pio_buf_addr(buf), EFX_GUARD, len);
	drop_caches();
	r = (struct p2pio_req){ .file = f, .length = len, .buf = buf, .tag = 7, .stream = s,
				.flags = P2PIO_REQ_STREAM };
	if (p2pio_submit(q, &r, 1) == 1) {
		cu->MemcpyDtoHAsync(host, p2pio_buf_addr(buf), len, s);
		cu->StreamSynchronize(s);
		ok = efx_mismatch(host, 0, len) < 0;
		ok &= p2pio_complete(q, &cqe, 1, 1, 60000) == 1 && cqe.res == 0;
	}
	tap_ok(ok, "%s: a copy queued on the stream right after submit sees all %llu MiB", what,
	       (unsigned long long)(len >> 20));
	cu->MemFreeHost(host);
	cu->StreamDestroy(s);
	cu->CtxSetCurrent(prev);
out:
	p2pio_queue_destroy(q);
	p2pio_buf_free(buf);
	p2pio_file_close(f);
	p2pio_ctx_destroy(ctx);
}

/* Whole-file read into device memory: GiB/s and CPU s/GiB as a diagnostic line. */
static void throughput(enum p2pio_path p, uint64_t chunk, uint32_t qd, bool cold)
{
	struct p2pio_file *f = NULL;
	struct p2pio_buf *buf = NULL;
	struct p2pio_ctx *ctx = gpu_ctx(p, chunk, qd);
	double t0, c0, dt, dc, gib = fsize / (double)(1 << 30);
	int ret;

	if (!ctx || p2pio_file_open(ctx, path, 0, &f, NULL) ||
	    p2pio_buf_alloc(ctx, P2PIO_MEM_CUDA, fsize, &buf, NULL))
		goto out;
	if (cold)
		drop_caches();
	else
		p2pio_read(f, 0, fsize, buf, 0);	/* warm it (and the engine) */
	t0 = now_s();
	c0 = cpu_s();
	ret = p2pio_read(f, 0, fsize, buf, 0);
	dt = now_s() - t0;
	dc = cpu_s() - c0;
	tap_diag("bench %-6s %-4s chunk %5llu KiB qd %2u threads %2u: %6.2f GiB/s, %.3f CPU s/GiB%s",
		 p2pio_path_name(p), cold ? "cold" : "warm", (unsigned long long)(chunk >> 10), qd,
		 threads,
		 gib / dt, dc / gib, ret ? " (FAILED)" : "");
out:
	p2pio_buf_free(buf);
	p2pio_file_close(f);
	p2pio_ctx_destroy(ctx);
}

int main(void)
{
	uint64_t chunks[] = { 1 << 20, 4 << 20, 16 << 20 };
	uint32_t qds[] = { 4, 16, 32 };
	unsigned int i, j;

	cu = gpu_fixture_cuda();
	fsize = (getenv("P2PIO_GPU_FILE_MB") ? strtoull(getenv("P2PIO_GPU_FILE_MB"), NULL, 0) :
					       1024) << 20;
	fsize += 4567;	/* never a whole number of blocks */
	tap_plan(1 + 2 * 2 + 2 + 2 + 2);
	tap_diag("CUDA driver %d", cu->driver_version);
	tap_ok(!efx_make_file(path, fsize), "generated a %llu MiB file",
	       (unsigned long long)(fsize >> 20));
	posix_readers();
	sync_write_beside_waiting_stream();
	correctness(P2PIO_PATH_POSIX, "posix");
	correctness(P2PIO_PATH_BOUNCE, "bounce");
	stream_order(P2PIO_PATH_BOUNCE, "bounce");
	stream_order(P2PIO_PATH_POSIX, "posix");
	if (!getenv("P2PIO_GPU_NO_BENCH")) {
		tap_diag("cold runs drop the page cache: %s",
			 drop_caches() ? "yes" : "no (not root): numbers are warm");
		for (i = 0; i < 3; i++)
			for (j = 0; j < 3; j++)
				throughput(P2PIO_PATH_BOUNCE, chunks[i], qds[j], true);
		for (threads = 4; threads <= 16; threads *= 2) {
			throughput(P2PIO_PATH_POSIX, 4 << 20, 16, true);
			throughput(P2PIO_PATH_POSIX, 1 << 20, 16, false);
			throughput(P2PIO_PATH_POSIX, 4 << 20, 16, false);
		}
		threads = 0;
		throughput(P2PIO_PATH_BOUNCE, 4 << 20, 16, false);
	}
	unlink(path);
	return tap_exit();
}
