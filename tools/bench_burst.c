// SPDX-License-Identifier: MIT
/*
 * bench_burst.c - the burst floor of a few byte ranges: how fast the storage delivers just
 * those bytes to threads that are ready for them. Issue 12 asks that a miss batch cost at
 * most 150 us over its bytes / bandwidth; for one lone miss (a few MB) bytes / the steady
 * ceiling is no fair reference, since a burst that short cannot reach steady bandwidth
 * even with plain O_DIRECT. The floor is the fastest of a sweep of shapes over the very
 * ranges the miss read, in the same cache state. Into a GPU, optionally, each read is also
 * copied to device memory as it lands: a plain read-then-copy loop at its best shape.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define BURST_MAX_THREADS 64
/* Written at both ends of every read's destination before each try; any read overwrites it. */
#define BURST_POISON 0xa5c3e1f00f1e3c5aull
/* The GPU buffer's bytes before each try: a copy that never happened cannot match a read. */
#define BURST_GPU_POISON 0x5a

static const uint64_t burst_pieces[] = { 0, 4ull << 20, 1ull << 20, 512ull << 10, 256ull << 10 };
static const unsigned int burst_threads[] = { 1, 2, 4, 8, 16, 32, 64 };

/* The ranges rounded out to the alignment and merged where they meet; where each lands. */
struct burst_run {
	uint64_t start, end;	/* aligned; @end may pass the file's end */
	uint64_t dst;		/* offset in the buffer */
};

/* One read of a shape. */
struct burst_piece {
	uint64_t off;		/* aligned */
	uint64_t len;		/* asked for: aligned */
	uint64_t want;		/* there: less where the file ends first */
	char *dst;
	bench_devptr gpu_dst;	/* with a GPU: where the copy lands */
};

/* One repetition, shared by its threads. */
struct burst_rep {
	int fd;
	const struct bench_cuda *cu;	/* NULL: host memory only */
	const struct burst_piece *pieces;
	size_t npieces;
	atomic_size_t next;
	atomic_int err;		/* the first read's error stops the others */
	struct bench_gate gate;
};

struct burst_worker {
	struct burst_rep *rep;
	void *stream;		/* with a GPU: this thread's copies */
	double t_end;
	int err;
	uint64_t err_off;
};

/* Everything one call sets up once and each shape reuses. */
struct burst {
	const struct bench_burst_params *bp;
	struct bench_burst *res;
	uint64_t file_size;
	int fd;			/* the O_DIRECT twin, or the caller's */
	uint64_t align;
	struct burst_run *runs;
	size_t nruns;
	uint64_t *rdst;		/* each range's first byte in the buffer */
	char *buf;
	uint64_t buf_len;
	bench_devptr gpu_buf;	/* with a GPU: the copies' destination, buf_len bytes */
	char *gpu_back;		/* and where its bytes come back to be checked */
	void *streams[BURST_MAX_THREADS];
	uint64_t biggest;	/* the longest run */
	struct burst_piece *pieces;
	size_t max_pieces;
	unsigned int ncpu;
};

static int burst_fail(struct bench_burst *res, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int burst_fail(struct bench_burst *res, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->note, sizeof(res->note), fmt, ap);
	va_end(ap);
	return err;
}

static int burst_check_args(const struct bench_burst_params *bp, struct bench_burst *res,
			    uint64_t *file_size)
{
	struct stat st;
	size_t i;

	if (bp->fd < 0)
		return burst_fail(res, -EBADF, "no file: descriptor %d", bp->fd);
	if (!bp->nr_ranges || !bp->ranges)
		return burst_fail(res, -EINVAL, "no ranges to read");
	if (bp->nr_ranges > BENCH_BURST_MAX_RANGES)
		return burst_fail(res, -E2BIG, "%zu ranges, more than the %d a burst takes",
				  bp->nr_ranges, BENCH_BURST_MAX_RANGES);
	if (fstat(bp->fd, &st))
		return burst_fail(res, -errno, "fstat: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return burst_fail(res, -EINVAL, "descriptor %d is not a regular file", bp->fd);
	*file_size = (uint64_t)st.st_size;
	for (i = 0; i < bp->nr_ranges; i++) {
		const struct bench_range *r = &bp->ranges[i];

		if (!r->length)
			return burst_fail(res, -EINVAL, "range %zu (at %llu) is empty", i,
					  (unsigned long long)r->offset);
		if (r->offset > *file_size || r->length > *file_size - r->offset)
			return burst_fail(res, -ERANGE,
					  "range %zu (%llu bytes at %llu) ends past the end of "
					  "the file (%llu bytes)", i,
					  (unsigned long long)r->length,
					  (unsigned long long)r->offset,
					  (unsigned long long)*file_size);
	}
	return 0;
}

/*
 * The O_DIRECT twin of the caller's descriptor and its alignment; a one-block read proves
 * it works (some file systems take O_DIRECT at open and refuse the read). Where O_DIRECT
 * is refused the caller's descriptor reads, buffered, and the note says so.
 */
static int burst_open(struct burst *b)
{
	struct bench_burst *res = b->res;
	char proc[64];
	struct statx stx;
	void *blk = NULL;
	ssize_t n;
	int dfd, err;

	b->fd = b->bp->fd;
	b->align = 4096;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", b->bp->fd);
	dfd = open(proc, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (dfd < 0) {
		err = errno;
		if (err != EINVAL && err != EOPNOTSUPP)
			return burst_fail(res, -err, "opening descriptor %d again with "
					  "O_DIRECT: %s", b->bp->fd, strerror(err));
		goto buffered;
	}
	if (!statx(dfd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) &&
	    (stx.stx_mask & STATX_DIOALIGN)) {
		err = EINVAL;
		if (!stx.stx_dio_offset_align)
			goto buffered_close;
		if (stx.stx_dio_offset_align > b->align)
			b->align = stx.stx_dio_offset_align;
		if (b->align > 65536 || b->align & (b->align - 1) || stx.stx_dio_mem_align > 4096) {
			close(dfd);
			b->res->buffered = true;
			snprintf(res->note, sizeof(res->note),
				 "unusual O_DIRECT alignment %u/%u: buffered reads",
				 stx.stx_dio_offset_align, stx.stx_dio_mem_align);
			b->align = 4096;
			return 0;
		}
	}
	if (posix_memalign(&blk, 4096, b->align)) {
		close(dfd);
		return burst_fail(res, -ENOMEM, "out of memory");
	}
	n = pread(dfd, blk, b->align, 0);
	err = n < 0 ? errno : 0;
	free(blk);
	if (err == EINVAL)
		goto buffered_close;
	if (err) {
		close(dfd);
		return burst_fail(res, -err, "O_DIRECT read: %s", strerror(err));
	}
	b->fd = dfd;
	return 0;

buffered_close:
	close(dfd);
buffered:
	b->res->buffered = true;
	snprintf(res->note, sizeof(res->note), "O_DIRECT refused (%s): buffered reads",
		 strerror(err));
	return 0;
}

struct burst_sorted {
	uint64_t start, end;
	size_t idx;
};

static int cmp_sorted(const void *a, const void *b)
{
	const struct burst_sorted *x = a, *y = b;

	return (x->start > y->start) - (x->start < y->start);
}

/* Runs: the ranges rounded out to the alignment, in file order, merged where they meet. */
static int burst_runs(struct burst *b)
{
	const struct bench_burst_params *bp = b->bp;
	size_t n = bp->nr_ranges, i;
	struct burst_sorted *s = calloc(n, sizeof(*s));
	uint64_t a = b->align;

	b->runs = calloc(n, sizeof(*b->runs));
	b->rdst = calloc(n, sizeof(*b->rdst));
	if (!s || !b->runs || !b->rdst) {
		free(s);
		return burst_fail(b->res, -ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		s[i].start = bp->ranges[i].offset & ~(a - 1);
		/* Within the file, so no overflow: file sizes are far below 2^64 - 4096. */
		s[i].end = (bp->ranges[i].offset + bp->ranges[i].length + a - 1) & ~(a - 1);
		s[i].idx = i;
	}
	qsort(s, n, sizeof(*s), cmp_sorted);
	b->nruns = 0;
	for (i = 0; i < n; i++) {
		struct burst_run *r = b->nruns ? &b->runs[b->nruns - 1] : NULL;

		if (r && s[i].start <= r->end) {
			if (s[i].end > r->end)
				r->end = s[i].end;
		} else {
			r = &b->runs[b->nruns++];
			r->start = s[i].start;
			r->end = s[i].end;
		}
		/* The range's run for now; its place in the buffer once the runs are laid out. */
		b->rdst[s[i].idx] = (uint64_t)(r - b->runs);
	}
	b->buf_len = 0;
	for (i = 0; i < b->nruns; i++) {
		uint64_t len = b->runs[i].end - b->runs[i].start;

		b->runs[i].dst = b->buf_len;
		b->buf_len += len;
		b->max_pieces += (len + (256ull << 10) - 1) / (256ull << 10);
		if (len > b->biggest)
			b->biggest = len;
		b->res->bytes += (b->runs[i].end < b->file_size ? b->runs[i].end : b->file_size) -
				 b->runs[i].start;
	}
	free(s);
	if (b->buf_len > BENCH_BURST_MAX_BYTES)
		return burst_fail(b->res, -E2BIG, "%llu bytes, more than the %llu a burst takes",
				  (unsigned long long)b->buf_len,
				  (unsigned long long)BENCH_BURST_MAX_BYTES);
	for (i = 0; i < n; i++) {
		const struct burst_run *r = &b->runs[b->rdst[i]];

		b->rdst[i] = r->dst + bp->ranges[i].offset - r->start;
	}
	b->res->runs = (unsigned int)b->nruns;
	return 0;
}

/* Cut every run into reads of @piece bytes (0: each run whole); how many. */
static size_t burst_cut(struct burst *b, uint64_t piece)
{
	size_t n = 0, i;
	uint64_t off;

	for (i = 0; i < b->nruns; i++) {
		const struct burst_run *r = &b->runs[i];

		for (off = r->start; off < r->end && n < b->max_pieces;) {
			struct burst_piece *pc = &b->pieces[n++];
			uint64_t end = piece && r->end - off > piece ? off + piece : r->end;

			pc->off = off;
			pc->len = end - off;
			pc->want = (end < b->file_size ? end : b->file_size) - off;
			pc->dst = b->buf + r->dst + (off - r->start);
			pc->gpu_dst = b->gpu_buf + r->dst + (off - r->start);
			off = end;
		}
	}
	return n;
}

/* All of a read's bytes: only the file's end may cut it short, and only there. */
static int burst_read(int fd, const struct burst_piece *pc)
{
	uint64_t got = 0;
	ssize_t n;

	while (got < pc->want) {
		n = pread(fd, pc->dst + got, pc->len - got, (off_t)(pc->off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		got += (uint64_t)n;
	}
	return 0;
}

static void *burst_thread(void *arg)
{
	struct burst_worker *w = arg;
	struct burst_rep *rep = w->rep;
	uint64_t copied = 0;	/* the file offset of this thread's last copy */
	size_t i;
	int zero = 0;

	bench_cuda_bind(rep->cu);
	if (!bench_gate_wait(&rep->gate))
		return NULL;
	while (!atomic_load_explicit(&rep->err, memory_order_relaxed)) {
		i = atomic_fetch_add(&rep->next, 1);
		if (i >= rep->npieces)
			break;
		w->err = burst_read(rep->fd, &rep->pieces[i]);
		/* Its copy starts now, and runs while this thread reads its next piece. */
		if (!w->err && rep->cu) {
			if (rep->cu->MemcpyHtoDAsync(rep->pieces[i].gpu_dst, rep->pieces[i].dst,
						     rep->pieces[i].want, w->stream))
				w->err = -ENODEV;
			copied = rep->pieces[i].off;
		}
		if (w->err) {
			w->err_off = rep->pieces[i].off;
			atomic_compare_exchange_strong(&rep->err, &zero, w->err);
			break;
		}
	}
	/*
	 * Spinning, as a loader that waits for its last copy would; after a failure too, so
	 * that no copy is still running when the buffers are freed.
	 */
	if (rep->cu) {
		bench_cures cr;

		while ((cr = rep->cu->StreamQuery(w->stream)) == BENCH_CU_NOT_READY)
			;
		if (cr && !w->err) {
			w->err = -ENODEV;
			w->err_off = copied;
		}
	}
	w->t_end = bench_now();
	return NULL;
}

/* A read's last word (its first, for one shorter than a word: the block is there). */
static char *last_word(const struct burst_piece *pc)
{
	return pc->dst + (pc->want >= sizeof(uint64_t) ? pc->want - sizeof(uint64_t) : 0);
}

static void poison(char *p)
{
	uint64_t v = BURST_POISON;

	memcpy(p, &v, sizeof(v));
}

static bool poisoned(const char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v == BURST_POISON;
}

void bench_evict_ranges(int fd, const struct bench_range *ranges, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		posix_fadvise(fd, (off_t)ranges[i].offset, (off_t)ranges[i].length,
			      POSIX_FADV_DONTNEED);
}

/*
 * The ranges' pages out of the page cache before a try, as the misses found them
 * (drop_caches, for all files, is too slow to write before every try, and needs root).
 */
static void burst_evict(const struct burst *b)
{
	size_t i;

	for (i = 0; i < b->nruns; i++)
		bench_evict_ranges(b->bp->fd, &(struct bench_range){ b->runs[i].start,
				   b->runs[i].end - b->runs[i].start }, 1);
}

/* With a GPU: every piece's bytes there as they were read (untimed, after the try). */
static int burst_gpu_check(struct burst *b, size_t np)
{
	size_t k;

	if (!b->bp->cu)
		return 0;
	if (b->bp->cu->MemcpyDtoH(b->gpu_back, b->gpu_buf, b->buf_len))
		return burst_fail(b->res, -ENODEV, "copying the GPU buffer back failed");
	for (k = 0; k < np; k++) {
		const struct burst_piece *pc = &b->pieces[k];

		if (memcmp(b->gpu_back + (pc->dst - b->buf), pc->dst, pc->want))
			return burst_fail(b->res, -EIO, "the copy into the GPU of %llu bytes read "
					  "at file offset %llu does not match them",
					  (unsigned long long)pc->want,
					  (unsigned long long)pc->off);
	}
	return 0;
}

/* One repetition: @np reads by @nt threads, timed from the gate to the last byte. */
static int burst_once(struct burst *b, size_t np, unsigned int nt, double *secs)
{
	struct burst_worker w[BURST_MAX_THREADS];
	pthread_t tids[BURST_MAX_THREADS];
	struct burst_rep rep;
	double t0, t_end = 0;
	unsigned int i;
	size_t k;
	int ret;

	if (b->bp->cold)
		burst_evict(b);
	for (k = 0; k < np; k++) {
		poison(b->pieces[k].dst);
		poison(last_word(&b->pieces[k]));
	}
	/* On the legacy stream, which the copies' non-blocking streams do not wait for. */
	if (b->bp->cu && (b->bp->cu->MemsetD8(b->gpu_buf, BURST_GPU_POISON, b->buf_len) ||
			  b->bp->cu->StreamSynchronize(NULL)))
		return burst_fail(b->res, -ENODEV, "poisoning the GPU buffer failed");
	memset(&rep, 0, sizeof(rep));
	rep.fd = b->fd;
	rep.cu = b->bp->cu;
	rep.pieces = b->pieces;
	rep.npieces = np;
	atomic_init(&rep.next, 0);
	atomic_init(&rep.err, 0);
	/* Spinning at the line needs a CPU per thread, and one to let them go. */
	ret = bench_gate_init(&rep.gate, nt < b->ncpu);
	if (ret)
		return burst_fail(b->res, ret, "the threads' start line: %s", strerror(-ret));
	memset(w, 0, sizeof(w));
	for (i = 0; i < nt; i++) {
		w[i].rep = &rep;
		w[i].stream = b->streams[i];
	}
	ret = bench_gate_spawn(&rep.gate, tids, nt, burst_thread, w, sizeof(w[0]));
	if (ret) {
		bench_gate_destroy(&rep.gate);
		return burst_fail(b->res, ret, "could not start %u threads: %s", nt,
				  strerror(-ret));
	}
	t0 = bench_gate_open(&rep.gate, nt);
	for (i = 0; i < nt; i++) {
		pthread_join(tids[i], NULL);
		if (w[i].t_end > t_end)
			t_end = w[i].t_end;
	}
	bench_gate_destroy(&rep.gate);
	for (i = 0; i < nt; i++) {
		if (w[i].err == -ENODEV)
			return burst_fail(b->res, w[i].err, "copying the read at file offset %llu "
					  "into the GPU failed", (unsigned long long)w[i].err_off);
		if (w[i].err)
			return burst_fail(b->res, w[i].err, "%s read at file offset %llu: %s",
					  b->res->buffered ? "buffered" : "O_DIRECT",
					  (unsigned long long)w[i].err_off, strerror(-w[i].err));
	}
	for (k = 0; k < np; k++) {
		const struct burst_piece *pc = &b->pieces[k];

		if (poisoned(pc->dst) && poisoned(last_word(pc)))
			return burst_fail(b->res, -EIO, "the read of %llu bytes at file offset "
					  "%llu left its destination as it was",
					  (unsigned long long)pc->want,
					  (unsigned long long)pc->off);
	}
	ret = burst_gpu_check(b, np);
	if (ret)
		return ret;
	for (k = 0; b->bp->check && k < b->bp->nr_ranges; k++) {
		ret = b->bp->check(b->bp->check_arg, &b->bp->ranges[k], b->buf + b->rdst[k]);
		if (ret)
			return burst_fail(b->res, ret, "the check of range %zu (%llu bytes at "
					  "%llu) failed: %s", k,
					  (unsigned long long)b->bp->ranges[k].length,
					  (unsigned long long)b->bp->ranges[k].offset,
					  strerror(-ret));
	}
	*secs = t_end - t0;
	return 0;
}

/* Each shape BENCH_BURST_REPS times; the fastest try of all is the floor. */
static int burst_sweep(struct burst *b)
{
	struct bench_burst *res = b->res;
	size_t pi, ti, np;
	unsigned int nt, prev, rep;
	bool have = false;
	double secs = 0;
	int ret;

	for (pi = 0; pi < sizeof(burst_pieces) / sizeof(burst_pieces[0]); pi++) {
		uint64_t piece = burst_pieces[pi];

		/* Reads no smaller than the longest run are the runs whole: timed already. */
		if (piece && piece >= b->biggest)
			continue;
		np = burst_cut(b, piece);
		prev = 0;
		for (ti = 0; ti < sizeof(burst_threads) / sizeof(burst_threads[0]); ti++) {
			nt = burst_threads[ti] < np ? burst_threads[ti] : (unsigned int)np;
			if (nt == prev)
				break;
			prev = nt;
			for (rep = 0; rep < BENCH_BURST_REPS; rep++) {
				ret = burst_once(b, np, nt, &secs);
				if (ret)
					return ret;
				if (!have || secs < res->seconds) {
					have = true;
					res->seconds = secs;
					res->threads = nt;
					res->piece = piece;
				}
			}
			res->shapes++;
		}
	}
	return 0;
}

/* Pinned host memory for the reads, device memory for the copies, a stream per thread. */
static int burst_gpu_alloc(struct burst *b)
{
	const struct bench_cuda *cu = b->bp->cu;
	unsigned int i;

	b->res->gpu = true;
	bench_cuda_bind(cu);
	if (cu->MemHostAlloc((void **)&b->buf, b->buf_len, 0)) {
		b->buf = NULL;
		return burst_fail(b->res, -ENOMEM, "no pinned host memory for %llu bytes",
				  (unsigned long long)b->buf_len);
	}
	if (cu->MemAlloc(&b->gpu_buf, b->buf_len)) {
		b->gpu_buf = 0;
		return burst_fail(b->res, -ENOMEM, "no GPU memory for %llu bytes",
				  (unsigned long long)b->buf_len);
	}
	b->gpu_back = malloc(b->buf_len);
	if (!b->gpu_back)
		return -ENOMEM;
	for (i = 0; i < BURST_MAX_THREADS; i++)
		if (cu->StreamCreate(&b->streams[i], 1 /* CU_STREAM_NON_BLOCKING */)) {
			b->streams[i] = NULL;
			return burst_fail(b->res, -ENODEV, "could not create a CUDA stream");
		}
	return 0;
}

static void burst_gpu_free(struct burst *b)
{
	const struct bench_cuda *cu = b->bp->cu;
	unsigned int i;

	for (i = 0; i < BURST_MAX_THREADS; i++)
		if (b->streams[i])
			cu->StreamDestroy(b->streams[i]);
	if (b->gpu_buf)
		cu->MemFree(b->gpu_buf);
	if (b->buf)
		cu->MemFreeHost(b->buf);
	free(b->gpu_back);
}

int bench_burst_floor(const struct bench_burst_params *bp, struct bench_burst *res)
{
	struct burst b;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int ret;

	if (!res)
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	if (!bp)
		return burst_fail(res, -EINVAL, "no parameters");
	memset(&b, 0, sizeof(b));
	b.bp = bp;
	b.res = res;
	b.ncpu = ncpu > 0 ? (unsigned int)ncpu : 1;
	b.fd = -1;
	ret = burst_check_args(bp, res, &b.file_size);
	if (ret)
		return ret;
	ret = burst_open(&b);
	if (ret)
		return ret;
	ret = burst_runs(&b);
	if (ret)
		goto out;
	/* Dirty pages stay in the cache whatever the advice: a file just written goes out first. */
	if (bp->cold)
		fdatasync(bp->fd);
	ret = bp->cu ? burst_gpu_alloc(&b) :
		       posix_memalign((void **)&b.buf, 4096, b.buf_len) ? -ENOMEM : 0;
	if (!ret && !(b.pieces = calloc(b.max_pieces, sizeof(*b.pieces))))
		ret = -ENOMEM;
	if (ret) {
		if (!res->note[0])
			burst_fail(res, ret, "out of memory for %llu bytes",
				   (unsigned long long)b.buf_len);
		goto out;
	}
	/* Faulted in now, not by the first timed reads. */
	memset(b.buf, 0, b.buf_len);
	ret = burst_sweep(&b);
out:
	if (b.fd >= 0 && b.fd != bp->fd)
		close(b.fd);
	free(b.pieces);
	if (bp->cu)
		burst_gpu_free(&b);
	else
		free(b.buf);
	free(b.runs);
	free(b.rdst);
	if (ret)
		res->seconds = 0;
	return ret;
}
