// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_fixture.h"

uint8_t efx_byte(uint64_t off)
{
	uint64_t x = (off >> 3) * 0x9E3779B97F4A7C15ull;

	x ^= x >> 29;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 32;
	return (uint8_t)(x >> (8 * (off & 7)));
}

int efx_make_file(char *path, uint64_t size)
{
	const char *dir = getenv("TMPDIR");
	uint8_t blk[65536];
	uint64_t off, n, i;
	int fd;

	snprintf(path, PATH_MAX, "%s/p2pio-engine-XXXXXX", dir && *dir ? dir : "/tmp");
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	for (off = 0; off < size; off += n) {
		n = size - off < sizeof(blk) ? size - off : sizeof(blk);
		for (i = 0; i < n; i++)
			blk[i] = efx_byte(off + i);
		if (pwrite(fd, blk, n, (off_t)off) != (ssize_t)n) {
			close(fd);
			unlink(path);
			return -EIO;
		}
	}
	fsync(fd);
	close(fd);
	return 0;
}

int64_t efx_mismatch(const uint8_t *p, uint64_t off, uint64_t len)
{
	uint64_t i;

	for (i = 0; i < len; i++)
		if (p[i] != efx_byte(off + i))
			return (int64_t)i;
	return -1;
}

bool efx_guard_intact(const uint8_t *p, uint64_t len)
{
	uint64_t i;

	for (i = 0; i < len; i++)
		if (p[i] != EFX_GUARD)
			return false;
	return true;
}

void efx_drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return;
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
}

int efx_reap(struct p2pio_queue *q, struct p2pio_cqe *cqe, int n, int timeout_ms)
{
	int got = 0, k;

	while (got < n) {
		k = p2pio_complete(q, cqe + got, (unsigned int)(n - got), 1, timeout_ms);
		if (k <= 0)
			break;
		got += k;
	}
	return got;
}

struct p2pio_ctx *efx_host_ctx(enum p2pio_path path, uint64_t chunk, uint32_t flags)
{
	struct p2pio_ctx_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *ctx;

	p2pio_ctx_opts_init(&o);
	o.device = P2PIO_DEVICE_HOST;
	o.path = path;
	o.chunk_size = chunk;
	o.queue_depth = 4;
	o.threads = 3;
	/*
	 * The least staging allowed: BOUNCE's three submitting threads then wait for each
	 * other's slots, which the tests must survive.
	 */
	o.staging_bytes = (o.queue_depth + 2) * chunk;
	o.flags = flags;
	if (p2pio_ctx_create(&o, &ctx, &err)) {
		fprintf(stderr, "# context: %s\n", err.msg);
		return NULL;
	}
	return ctx;
}

uint64_t efx_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}
