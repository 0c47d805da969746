// SPDX-License-Identifier: MIT
/*
 * The burst floor (tools/bench_burst.c) over a scratch file whose every byte is known:
 * ranges aligned, unaligned, overlapping each other's blocks and ending at the file's
 * unaligned end come back as a positive time, a shape of the sweep and the bytes the
 * rounding says, and the check sees each range's own bytes after every try; a lone
 * unaligned range of three bytes is one shape; a check that fails, no ranges, an empty
 * range, a range past the end, an overflowing one, a negative descriptor and a directory
 * are refused with their errno and a note; where O_DIRECT is refused (tmpfs before 6.6)
 * the reads are buffered and the note says so. Into a GPU (a stand-in whose device memory
 * is host memory), every read's bytes are copied and waited for, and a copy that changed
 * a byte, failed, or left its stream failed ends the floor with -EIO or -ENODEV.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "../../../tools/bench.h"
#include "tap.h"
#include "tool_run.h"

/* An unaligned size: the last range ends inside a block. */
#define FILE_SIZE ((6u << 20) + 1234)
#define TMPFS_MAGIC_ 0x01021994

static uint8_t byte_at(uint64_t off)
{
	return (uint8_t)(off * 131 + (off >> 12) + 7);
}

struct seen {
	unsigned int calls;
	unsigned int wrong;
	int fail_with;		/* what the check returns; 0: its verdict */
};

static int check(void *arg, const struct bench_range *r, const void *data)
{
	struct seen *s = arg;
	const uint8_t *p = data;
	uint64_t i;

	s->calls++;
	for (i = 0; i < r->length; i++)
		if (p[i] != byte_at(r->offset + i)) {
			s->wrong++;
			break;
		}
	return s->fail_with;
}

static bool in(uint64_t v, const uint64_t *set, size_t n)
{
	while (n--)
		if (set[n] == v)
			return true;
	return false;
}

static int make_file(const char *path, uint64_t size)
{
	uint8_t *buf = malloc(size);
	uint64_t i;
	int fd;

	if (!buf)
		return -1;
	for (i = 0; i < size; i++)
		buf[i] = byte_at(i);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0 && (write(fd, buf, size) != (ssize_t)size || fsync(fd))) {
		close(fd);
		fd = -1;
	}
	free(buf);
	return fd;
}

/* The floor of @n ranges of @fd (into @cu's GPU, or none); @s checks every range read. */
static int floor_of(int fd, const struct bench_range *rg, size_t n, struct seen *s,
		    const struct bench_cuda *cu, struct bench_burst *res)
{
	struct bench_burst_params bp = {
		.fd = fd, .ranges = rg, .nr_ranges = n, .cold = true,
		.check = s ? check : NULL, .check_arg = s, .cu = cu,
	};

	return bench_burst_floor(&bp, res);
}

/*
 * A GPU whose device memory is host memory, for bench_burst_floor()'s @cu: it counts the
 * bytes copied, reports each stream busy on every other query, and can fail a copy or
 * change its first byte.
 */
static struct {
	uint64_t copied;
	unsigned int queries;
	bool fail_copy, corrupt, fail_stream;
} fake;

static bench_cures fake_alloc(bench_devptr *p, size_t n)
{
	void *m = malloc(n);

	*p = (bench_devptr)(uintptr_t)m;
	return m ? 0 : 2;
}

static bench_cures fake_free(bench_devptr p)
{
	free((void *)(uintptr_t)p);
	return 0;
}

static bench_cures fake_host_alloc(void **p, size_t n, unsigned int flags)
{
	(void)flags;
	return posix_memalign(p, 4096, n) ? 2 : 0;
}

static bench_cures fake_host_free(void *p)
{
	free(p);
	return 0;
}

static bench_cures fake_copy(bench_devptr dst, const void *src, size_t n, void *stream)
{
	(void)stream;
	if (fake.fail_copy)
		return 700;
	memcpy((void *)(uintptr_t)dst, src, n);
	if (fake.corrupt && n)
		*(uint8_t *)(uintptr_t)dst ^= 0xff;
	__atomic_fetch_add(&fake.copied, n, __ATOMIC_RELAXED);	/* from every thread */
	return 0;
}

static bench_cures fake_back(void *dst, bench_devptr src, size_t n)
{
	memcpy(dst, (const void *)(uintptr_t)src, n);
	return 0;
}

static bench_cures fake_memset(bench_devptr dst, unsigned char v, size_t n)
{
	memset((void *)(uintptr_t)dst, v, n);
	return 0;
}

static bench_cures fake_stream(void **s, unsigned int flags)
{
	static int token;

	(void)flags;
	*s = &token;
	return 0;
}

static bench_cures fake_stream_destroy(void *s)
{
	(void)s;
	return 0;
}

static bench_cures fake_sync(void *s)
{
	(void)s;
	return 0;
}

static bench_cures fake_query(void *s)
{
	(void)s;
	if (fake.fail_stream)
		return 999;	/* CUDA_ERROR_UNKNOWN: what a copy that faulted leaves */
	return __atomic_fetch_add(&fake.queries, 1, __ATOMIC_RELAXED) % 2 ? 0 : BENCH_CU_NOT_READY;
}

static const struct bench_cuda fake_gpu = {
	.ok = false,	/* no context to bind */
	.MemAlloc = fake_alloc, .MemFree = fake_free,
	.MemHostAlloc = fake_host_alloc, .MemFreeHost = fake_host_free,
	.MemcpyHtoDAsync = fake_copy, .MemcpyDtoH = fake_back, .MemsetD8 = fake_memset,
	.StreamCreate = fake_stream, .StreamDestroy = fake_stream_destroy,
	.StreamQuery = fake_query, .StreamSynchronize = fake_sync,
};

/* A refusal: @want and a note. */
static void refused(int fd, const struct bench_range *rg, size_t n, int want, const char *what)
{
	struct bench_burst res;
	int ret = floor_of(fd, rg, n, NULL, NULL, &res);

	tap_ok(ret == want && res.note[0] && res.seconds == 0, "%s: %d (%s)", what, ret,
	       res.note);
}

int main(int argc, char **argv)
{
	static const uint64_t pieces[] = { 0, 4u << 20, 1u << 20, 512u << 10, 256u << 10 };
	/*
	 * A and E share A's first block; B and C share a block; D ends the file. Three runs:
	 * [0, 1M), [2M, 3M + 53248), [6M - 4096, 6M + 4096) - the last read stops at the
	 * file's end, 6M + 1234.
	 */
	const struct bench_range rg[] = {
		{ 0, 1u << 20 },			/* A */
		{ (2u << 20) + 100, (1u << 20) + 5 },	/* B */
		{ (3u << 20) + 200, 50000 },		/* C */
		{ FILE_SIZE - 3000, 3000 },		/* D */
		{ 12345, 10 },				/* E */
	};
	const uint64_t bytes = (1u << 20) + (1u << 20) + 53248 + 4096 + 1234;
	const size_t n = sizeof(rg) / sizeof(rg[0]);
	struct seen s = { 0 };
	struct bench_burst res;
	struct bench_range one;
	const char *dir;
	char path[256];
	struct statfs sfs;
	int fd, dfd, ret;

	tool_init(argv[0]);
	dir = tool_scratch("bench-burst");
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = make_file(path, FILE_SIZE);
	if (fd < 0)
		tap_bail("could not write the scratch file");

	/* ---- five ranges, three runs ---- */
	ret = floor_of(fd, rg, n, &s, NULL, &res);
	tap_is_int(ret, 0, "five ranges: 0 (%s)", res.note[0] ? res.note : "no note");
	tap_ok(res.seconds > 0 && res.seconds < 10, "a positive time: %.1f us", res.seconds * 1e6);
	/* 1..64 threads: powers of two, capped at the number of reads (3 runs whole: 3). */
	tap_ok(res.threads >= 1 && res.threads <= 64 && in(res.piece, pieces, 5),
	       "a shape of the sweep: %u threads x %llu-byte reads", res.threads,
	       (unsigned long long)res.piece);
	tap_ok(res.runs == 3 && res.bytes == bytes,
	       "3 runs of %llu bytes: the ranges rounded out to blocks, merged, cut at the end "
	       "(%u runs, %llu bytes)", (unsigned long long)bytes, res.runs,
	       (unsigned long long)res.bytes);
	/* Whole runs (1 and 3 threads), 4M (= whole: skipped), 1M, 512K, 256K, and more threads. */
	tap_ok(res.shapes >= 8 && res.shapes <= 35, "%u shapes timed", res.shapes);
	tap_ok(s.calls == n * res.shapes * BENCH_BURST_REPS && s.wrong == 0,
	       "the check saw every range after every try (%u calls), each with its own bytes "
	       "(%u wrong)", s.calls, s.wrong);
	tap_ok(!res.buffered || strstr(res.note, "buffered reads"),
	       "%s", res.buffered ? "buffered reads, and the note says so" : "O_DIRECT reads");

	/* ---- one unaligned range of three bytes: one block, one thread, the run whole ---- */
	memset(&s, 0, sizeof(s));
	one = (struct bench_range){ 4097, 3 };
	ret = floor_of(fd, &one, 1, &s, NULL, &res);
	tap_ok(ret == 0 && res.seconds > 0 && res.runs == 1 && res.bytes == 4096 &&
		       res.threads == 1 && res.piece == 0 && res.shapes == 1,
	       "3 bytes at 4097: one 4096-byte read, one shape (%d, %u runs, %llu bytes, %u "
	       "shapes)", ret, res.runs, (unsigned long long)res.bytes, res.shapes);
	tap_ok(s.calls == BENCH_BURST_REPS && s.wrong == 0, "and the check saw its 3 bytes");

	/* ---- a check that fails ends the floor with its error ---- */
	memset(&s, 0, sizeof(s));
	s.fail_with = -EBADMSG;
	ret = floor_of(fd, rg, n, &s, NULL, &res);
	tap_ok(ret == -EBADMSG && strstr(res.note, "check of range 0") && s.calls == 1,
	       "a check returning -EBADMSG: %d after one call (%s)", ret, res.note);

	/* ---- bad arguments ---- */
	refused(fd, rg, 0, -EINVAL, "no ranges: -EINVAL");
	refused(fd, NULL, 3, -EINVAL, "no range array: -EINVAL");
	one = (struct bench_range){ 4096, 0 };
	refused(fd, &one, 1, -EINVAL, "an empty range: -EINVAL");
	one = (struct bench_range){ FILE_SIZE - 10, 11 };
	refused(fd, &one, 1, -ERANGE, "a range one byte past the end: -ERANGE");
	one = (struct bench_range){ FILE_SIZE + 4096, 1 };
	refused(fd, &one, 1, -ERANGE, "a range after the end: -ERANGE");
	one = (struct bench_range){ UINT64_MAX - 5, 10 };
	refused(fd, &one, 1, -ERANGE, "a range whose end overflows: -ERANGE");
	one = (struct bench_range){ 0, 4096 };
	refused(-1, &one, 1, -EBADF, "descriptor -1: -EBADF");
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	refused(dfd, &one, 1, -EINVAL, "a directory: -EINVAL");
	close(dfd);
	tap_ok(bench_burst_floor(NULL, &res) == -EINVAL && bench_burst_floor(NULL, NULL) == -EINVAL,
	       "no parameters or no result: -EINVAL");

	/* ---- into a GPU: every read copied, every copy checked ---- */
	memset(&s, 0, sizeof(s));
	ret = floor_of(fd, rg, n, &s, &fake_gpu, &res);
	tap_ok(ret == 0 && res.gpu && res.seconds > 0 && res.runs == 3 && res.bytes == bytes &&
		       s.wrong == 0,
	       "into a GPU: 0, a positive time, the same runs and bytes (%d: %s)", ret, res.note);
	tap_ok(fake.copied == bytes * res.shapes * BENCH_BURST_REPS,
	       "every try copied every byte it read (%llu = %llu x %u shapes x %d tries)",
	       (unsigned long long)fake.copied, (unsigned long long)bytes, res.shapes,
	       BENCH_BURST_REPS);
	tap_ok(fake.queries >= 2, "and waited for its copies (%u queries, half of them busy)",
	       fake.queries);
	fake.corrupt = true;
	ret = floor_of(fd, rg, n, NULL, &fake_gpu, &res);
	tap_ok(ret == -EIO && strstr(res.note, "does not match") && res.seconds == 0,
	       "a copy that changed a byte: -EIO (%s)", res.note);
	fake.corrupt = false;
	fake.fail_copy = true;
	ret = floor_of(fd, rg, n, NULL, &fake_gpu, &res);
	tap_ok(ret == -ENODEV && strstr(res.note, "into the GPU failed") && res.seconds == 0,
	       "a copy that failed: -ENODEV (%s)", res.note);
	fake.fail_copy = false;
	fake.fail_stream = true;
	ret = floor_of(fd, rg, n, NULL, &fake_gpu, &res);
	tap_ok(ret == -ENODEV && strstr(res.note, "into the GPU failed") && res.seconds == 0,
	       "a stream whose copy failed later: -ENODEV (%s)", res.note);
	fake.fail_stream = false;
	close(fd);

	/* ---- where O_DIRECT is refused ---- */
	snprintf(path, sizeof(path), "/dev/shm/p2pio-burst-%d", (int)getpid());
	if (statfs("/dev/shm", &sfs) || (unsigned long)sfs.f_type != TMPFS_MAGIC_) {
		tap_skip(1, "no tmpfs at /dev/shm");
	} else if ((fd = make_file(path, 1u << 20)) < 0) {
		tap_skip(1, "cannot write to /dev/shm");
	} else {
		dfd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
		if (dfd >= 0) {
			close(dfd);
			tap_skip(1, "this kernel's tmpfs takes O_DIRECT");
		} else {
			memset(&s, 0, sizeof(s));
			one = (struct bench_range){ 1000, 300000 };
			ret = floor_of(fd, &one, 1, &s, NULL, &res);
			tap_ok(ret == 0 && res.buffered && strstr(res.note, "buffered reads") &&
				       s.wrong == 0 && s.calls > 0,
			       "tmpfs: buffered reads, and the note says so (%d: %s)", ret,
			       res.note);
		}
		close(fd);
		unlink(path);
	}
	return tap_exit();
}
