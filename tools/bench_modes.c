// SPDX-License-Identifier: MIT
/*
 * bench_modes.c - what p2pio-bench measures. Every mode reads the same bytes of the same
 * file (offset 0 up to the run's byte count) in I/O-size pieces, and times each piece:
 *
 *   direct    storage ceiling: O_DIRECT reads with io_uring at the queue depth, into host
 *   buffered  storage ceiling: buffered sequential pread, one stripe per thread, into host
 *   link      link ceiling: pinned host memory to the GPU, async copies at the depth
 *   p2p, bounce, posix, auto
 *             through libp2pio with that path forced (auto: the library's choice)
 *   naive     pread into pageable memory, then cuMemcpyHtoD
 *   mmap      mmap the file, cuMemcpyHtoD from the mapping (llama.cpp's default load)
 *   hostreg   mmap, cuMemHostRegister(READ_ONLY) the mapping, async copies from it
 *   cufile    cuFileRead into the GPU through libcufile (dlopen), one stripe per thread
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "p2pio.h"

#define CU_MEMHOSTREGISTER_READ_ONLY_ 0x08

struct cufile_api;

const char *const bench_mode_names[] = { "storage", "direct", "buffered", "link",   "p2p",
					 "bounce",  "posix",  "auto",	  "naive",  "mmap",
					 "hostreg", "cufile", NULL };

bool bench_mode_needs_gpu(const char *m)
{
	return !strcmp(m, "link") || !strcmp(m, "naive") || !strcmp(m, "mmap") ||
	       !strcmp(m, "hostreg") || !strcmp(m, "cufile");
}

static size_t add_shape(struct bench_shape *out, size_t n, size_t max, const char *mode,
			uint64_t io_size, unsigned int depth, unsigned int threads)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(out[i].mode, mode) && out[i].io_size == io_size &&
		    out[i].depth == depth && out[i].threads == threads)
			return n;
	if (n < max)
		out[n++] = (struct bench_shape){ mode, io_size, depth, threads };
	return n;
}

/*
 * The grids. Storage: O_DIRECT at 1, 4 and 16 MiB with 4, 16 and 64 reads in flight (one
 * ring per thread: 4 rings of one, 16 of one, 16 of four, 64 of one; the CPU count as a ring
 * count too; a disk behind a host that queues for it, as the virtio disk is, reads fastest
 * with few reads in flight: cuFile with 4 threads beat every deeper shape there in run 10),
 * and one ring of four: a single sequential front, the order a load reads in (each stripe
 * of 4 rings is a front of its own; on the virtio disk whole loads 4 reads deep outran
 * every shape of stripes, session 20),
 * buffered reads at the same sizes with 16 and 64 threads (and one per CPU). Link: 256 MiB
 * and 1 GiB copies on one, two and four streams. cuFile: 4 to 32 threads of 1, 4 and
 * 16 MiB reads. mmap: 4 to 64 MiB copies from the mapping. hostreg: 16 and 64 MiB copies.
 */
size_t bench_sweep(const char *mode, unsigned int ncpu, struct bench_shape *out, size_t max)
{
	static const uint64_t sizes[] = { 1ull << 20, 4ull << 20, 16ull << 20 };
	static const unsigned int cf_threads[] = { 4, 8, 16, 32 };
	unsigned int thr[] = { 16, 64, ncpu ? ncpu : 16 };
	size_t n = 0, i, k;

	if (!strcmp(mode, "storage")) {
		for (i = 0; i < 3; i++) {
			n = add_shape(out, n, max, "direct", sizes[i], 4, 4);
			n = add_shape(out, n, max, "direct", sizes[i], 4, 1);
			n = add_shape(out, n, max, "direct", sizes[i], 16, 16);
			n = add_shape(out, n, max, "direct", sizes[i], 64, 16);
			n = add_shape(out, n, max, "direct", sizes[i], 64, 64);
			n = add_shape(out, n, max, "direct", sizes[i], thr[2] * 4, thr[2]);
		}
		for (i = 0; i < 3; i++)
			for (k = 0; k < 3; k++)
				n = add_shape(out, n, max, "buffered", sizes[i], thr[k], thr[k]);
	} else if (!strcmp(mode, "link")) {
		n = add_shape(out, n, max, "link", 256ull << 20, 1, 1);
		n = add_shape(out, n, max, "link", 256ull << 20, 4, 1);
		n = add_shape(out, n, max, "link", 1ull << 30, 1, 1);
		n = add_shape(out, n, max, "link", 1ull << 30, 2, 1);
	} else if (!strcmp(mode, "cufile")) {
		for (k = 0; k < 4; k++)
			for (i = 0; i < 3; i++)
				n = add_shape(out, n, max, "cufile", sizes[i], cf_threads[k],
					      cf_threads[k]);
	} else if (!strcmp(mode, "mmap")) {
		n = add_shape(out, n, max, "mmap", 4ull << 20, 1, 1);
		n = add_shape(out, n, max, "mmap", 16ull << 20, 1, 1);
		n = add_shape(out, n, max, "mmap", 64ull << 20, 1, 1);
	} else if (!strcmp(mode, "hostreg")) {
		n = add_shape(out, n, max, "hostreg", 16ull << 20, 16, 1);
		n = add_shape(out, n, max, "hostreg", 64ull << 20, 16, 1);
	}
	return n;
}

static uint64_t run_end(const struct bench_params *p)
{
	return (p->bytes && p->bytes < p->file_size) ? p->bytes : p->file_size;
}

static bool time_up(const struct bench_params *p, double t0)
{
	return p->duration > 0 && bench_now() - t0 >= p->duration;
}

static void fail(struct bench_result *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(struct bench_result *r, int err, const char *fmt, ...)
{
	va_list ap;

	r->err = err < 0 ? err : -EIO;
	va_start(ap, fmt);
	vsnprintf(r->note, sizeof(r->note), fmt, ap);
	va_end(ap);
}

/* ---- storage ceilings ------------------------------------------------------------ */

/* Stripes of the run's bytes, one per thread, in whole I/O sizes. */
struct stripe_job {
	const struct bench_params *p;
	struct bench_result *r;
	uint64_t start, end, bytes;
	struct bench_lat lat;
	double t0;
	int err;
	char note[128];
	void *cufile_handle;
	struct cufile_api *cf;
	struct bench_gate *gate;	/* setup done: the clock starts (cuFile) */
	double t_end;			/* its last byte landed (teardown after it is not timed) */
};

static void split(const struct bench_params *p, struct stripe_job *jobs, unsigned int n,
		  struct bench_result *r, double t0)
{
	uint64_t end = run_end(p), per = (end / n + p->io_size - 1) / p->io_size * p->io_size;
	unsigned int i;

	for (i = 0; i < n; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].p = p;
		jobs[i].r = r;
		jobs[i].t0 = t0;
		jobs[i].start = (uint64_t)i * per < end ? (uint64_t)i * per : end;
		jobs[i].end = jobs[i].start + per < end ? jobs[i].start + per : end;
	}
}

static void *buffered_thread(void *arg)
{
	struct stripe_job *j = arg;
	void *buf = malloc(j->p->io_size);
	int fd = open(j->p->path, O_RDONLY | O_CLOEXEC);
	uint64_t off;

	if (!buf || fd < 0) {
		j->err = fd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	for (off = j->start; off < j->end && !time_up(j->p, j->t0);) {
		size_t n = j->end - off < j->p->io_size ? j->end - off : j->p->io_size;
		double t = bench_now();
		ssize_t got = pread(fd, buf, n, (off_t)off);

		if (got <= 0) {
			j->err = got < 0 ? -errno : -ENODATA;
			break;
		}
		bench_lat_add(&j->lat, (bench_now() - t) * 1e6);
		j->bytes += (uint64_t)got;
		off += (uint64_t)got;
	}
out:
	j->t_end = bench_now();
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

/*
 * One thread per stripe. With @t_start, each thread sets up (device buffer, registration)
 * and then waits at a gate; the clock starts when all have, so setup is not measured
 * (as for the library's modes, whose paths start before the clock). When a thread cannot
 * be created, those started are sent home (or, without a gate, finish) and joined, and
 * the error is @r's and the return value: 0 or a negative errno.
 */
static int run_stripes(const struct bench_params *p, struct bench_result *r,
		       struct bench_lat *lat, void *(*fn)(void *), void *handle,
		       struct cufile_api *cf, double *t_start, double *cpu_start, double *t_end)
{
	unsigned int n = p->threads ? p->threads : 1, i;
	struct stripe_job *jobs = calloc(n, sizeof(*jobs));
	pthread_t *tids = calloc(n, sizeof(*tids));
	struct bench_gate gate, *g = NULL;
	int ret;

	if (!jobs || !tids) {
		fail(r, -ENOMEM, "out of memory");
		goto out;
	}
	if (t_start) {
		ret = bench_gate_init(&gate, false);
		if (ret) {
			fail(r, ret, "the threads' start line: %s", strerror(-ret));
			goto out;
		}
		g = &gate;
	}
	split(p, jobs, n, r, bench_now());
	for (i = 0; i < n; i++) {
		jobs[i].cufile_handle = handle;
		jobs[i].cf = cf;
		jobs[i].gate = g;
	}
	ret = bench_gate_spawn(g, tids, n, fn, jobs, sizeof(*jobs));
	if (ret) {
		fail(r, ret, "could not start %u threads: %s", n, strerror(-ret));
		for (i = 0; i < n; i++)
			free(jobs[i].lat.v);
		goto out_gate;
	}
	if (g) {
		*t_start = bench_gate_open(g, n);
		*cpu_start = bench_cpu_seconds();
	}
	for (i = 0; i < n; i++) {
		size_t k;

		pthread_join(tids[i], NULL);
		if (jobs[i].t_end > *t_end)
			*t_end = jobs[i].t_end;
		r->bytes += jobs[i].bytes;
		for (k = 0; k < jobs[i].lat.n; k++)
			bench_lat_add(lat, jobs[i].lat.v[k]);
		free(jobs[i].lat.v);
		if (jobs[i].err && !r->err)
			fail(r, jobs[i].err, "%s", jobs[i].note[0] ? jobs[i].note :
							  strerror(-jobs[i].err));
	}
out_gate:
	if (g)
		bench_gate_destroy(g);
out:
	free(jobs);
	free(tids);
	return r->err;
}

/*
 * One io_uring over [@j->start, @j->end) with @depth reads in flight. Block devices that
 * complete bios in the submitting task (zram, brd) only go parallel with several rings,
 * so the storage ceiling runs one ring per thread, sharing the queue depth between them.
 */
static void direct_stripe(struct stripe_job *j, unsigned int depth)
{
	const struct bench_params *p = j->p;
	struct bench_result res = { 0 }, *r = &res;
	struct bench_lat *lat = &j->lat;
	uint64_t end = j->end, off = j->start;
	unsigned int inflight = 0, nfree = 0, i;
	struct io_uring ring;
	void **bufs = calloc(depth, sizeof(*bufs));
	double *t_sub = calloc(depth, sizeof(*t_sub));
	uint64_t *want = calloc(depth, sizeof(*want));
	unsigned int *freel = calloc(depth, sizeof(*freel));
	double t0 = j->t0;
	int fd = -1, ret;

	if (!bufs || !t_sub || !want || !freel) {
		fail(r, -ENOMEM, "out of memory");
		goto out;
	}
	fd = open(p->path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		fail(r, -errno, "O_DIRECT open: %s", strerror(errno));
		goto out;
	}
	for (i = 0; i < depth; i++) {
		if (posix_memalign(&bufs[i], 4096, p->io_size)) {
			fail(r, -ENOMEM, "out of memory for %u buffers", depth);
			goto out_fd;
		}
		freel[nfree++] = i;
	}
	ret = io_uring_queue_init(depth, &ring, 0);
	if (ret) {
		fail(r, ret, "io_uring_queue_init: %s", strerror(-ret));
		goto out_fd;
	}
	for (;;) {
		struct io_uring_cqe *cqe;

		/* Steady: the stripe again from its start until p->steady seconds have passed. */
		if (off >= end && !r->err && p->steady > 0 && bench_now() - t0 < p->steady)
			off = j->start;
		if (off >= end && !inflight)
			break;
		while (nfree && off < end && !time_up(p, t0)) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			uint64_t n = end - off < p->io_size ? end - off : p->io_size;
			unsigned int s = freel[--nfree];

			/* O_DIRECT wants whole blocks; the bytes past @end are not counted. */
			io_uring_prep_read(sqe, fd, bufs[s], (unsigned int)((n + 4095) & ~4095ull), off);
			io_uring_sqe_set_data64(sqe, s);
			t_sub[s] = bench_now();
			want[s] = n;
			off += n;
			inflight++;
		}
		if (!inflight)
			break;
		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret < 0) {
			fail(r, ret, "io_uring_submit: %s", strerror(-ret));
			break;
		}
		while (io_uring_peek_cqe(&ring, &cqe) == 0) {
			unsigned int s = (unsigned int)io_uring_cqe_get_data64(cqe);

			if (cqe->res < 0 && !r->err)
				fail(r, cqe->res, "O_DIRECT read: %s", strerror(-cqe->res));
			else if (cqe->res >= 0)
				r->bytes += (uint64_t)cqe->res < want[s] ? (uint64_t)cqe->res : want[s];
			bench_lat_add(lat, (bench_now() - t_sub[s]) * 1e6);
			io_uring_cqe_seen(&ring, cqe);
			freel[nfree++] = s;
			inflight--;
		}
		if (r->err)
			off = end;
	}
	j->t_end = bench_now();
	io_uring_queue_exit(&ring);
out_fd:
	close(fd);
out:
	j->bytes = res.bytes;
	j->err = res.err;
	snprintf(j->note, sizeof(j->note), "%.120s", res.note);
	for (i = 0; bufs && i < depth; i++)
		free(bufs[i]);
	free(bufs);
	free(t_sub);
	free(want);
	free(freel);
}

static void *direct_thread(void *arg)
{
	struct stripe_job *j = arg;
	unsigned int n = j->p->threads ? j->p->threads : 1;

	direct_stripe(j, (j->p->depth + n - 1) / n);
	return NULL;
}

/* ---- GPU baselines --------------------------------------------------------------- */

/*
 * Pinned host and device buffers for the link ceiling, kept from one run to the next (a
 * 1 GiB cuMemHostAlloc takes longer than the copies it serves) until bench_link_release().
 * A copy of the caller's driver table, not a pointer to it: the caller's may be gone.
 */
#define LINK_MAX_STREAMS 8
static struct {
	struct bench_cuda cu;
	bool have_cu;
	void *host[LINK_MAX_STREAMS];
	bench_devptr dev[LINK_MAX_STREAMS];
	void *stream[LINK_MAX_STREAMS];
	uint64_t size[LINK_MAX_STREAMS];
} link_bufs;

void bench_link_release(void)
{
	struct bench_cuda *cu = &link_bufs.cu;
	unsigned int i;

	if (!link_bufs.have_cu)
		return;
	bench_cuda_bind(cu);
	for (i = 0; i < LINK_MAX_STREAMS; i++) {
		if (link_bufs.stream[i])
			cu->StreamDestroy(link_bufs.stream[i]);
		if (link_bufs.dev[i])
			cu->MemFree(link_bufs.dev[i]);
		if (link_bufs.host[i])
			cu->MemFreeHost(link_bufs.host[i]);
	}
	memset(&link_bufs, 0, sizeof(link_bufs));
}

static int link_get(struct bench_cuda *cu, unsigned int i, uint64_t size)
{
	if (!link_bufs.have_cu) {
		link_bufs.cu = *cu;
		link_bufs.have_cu = true;
	}
	if (!link_bufs.stream[i] && cu->StreamCreate(&link_bufs.stream[i], 1))
		return -EIO;
	if (link_bufs.size[i] >= size)
		return 0;
	if (link_bufs.dev[i])
		cu->MemFree(link_bufs.dev[i]);
	if (link_bufs.host[i])
		cu->MemFreeHost(link_bufs.host[i]);
	link_bufs.dev[i] = 0;
	link_bufs.host[i] = NULL;
	link_bufs.size[i] = 0;
	if (cu->MemHostAlloc(&link_bufs.host[i], size, 0) || cu->MemAlloc(&link_bufs.dev[i], size))
		return -ENOMEM;
	memset(link_bufs.host[i], 0x5a + (int)i, size);
	link_bufs.size[i] = size;
	return 0;
}

/*
 * The link ceiling: BENCH_LINK_BYTES of pinned host memory copied to the GPU in copies of
 * the I/O size, spread over @depth streams (each its own source and destination), all
 * queued at once. One copy per stream before the clock starts wakes the copy engines.
 */
static void mode_link(const struct bench_params *p, struct bench_result *r, struct bench_lat *lat,
		      double *t_start, double *t_end)
{
	struct bench_cuda *cu = p->cu;
	unsigned int ns = p->depth < LINK_MAX_STREAMS ? p->depth : LINK_MAX_STREAMS, i, k;
	uint64_t total = BENCH_LINK_BYTES, off = 0, n;
	double t;

	for (i = 0; i < ns; i++) {
		if (link_get(cu, i, p->io_size)) {
			fail(r, -ENOMEM, "pinned or device allocation of %llu bytes failed",
			     (unsigned long long)p->io_size);
			return;
		}
		cu->MemcpyHtoDAsync(link_bufs.dev[i], link_bufs.host[i], p->io_size,
				    link_bufs.stream[i]);
	}
	for (i = 0; i < ns; i++)
		if (cu->StreamSynchronize(link_bufs.stream[i])) {
			fail(r, -EIO, "cuStreamSynchronize failed");
			return;
		}
	*t_start = t = bench_now();
	for (k = 0; off < total; k++) {
		i = k % ns;
		n = total - off < p->io_size ? total - off : p->io_size;
		if (cu->MemcpyHtoDAsync(link_bufs.dev[i], link_bufs.host[i], n, link_bufs.stream[i])) {
			fail(r, -EIO, "cuMemcpyHtoDAsync failed");
			return;
		}
		off += n;
	}
	for (i = 0; i < ns; i++)
		if (cu->StreamSynchronize(link_bufs.stream[i])) {
			fail(r, -EIO, "cuStreamSynchronize failed");
			return;
		}
	*t_end = bench_now();
	r->bytes = total;
	/* All copies were queued at once: each one's share of the time. */
	for (i = 0; i < k; i++)
		bench_lat_add(lat, (bench_now() - t) * 1e6 / k);
	snprintf(r->note, sizeof(r->note), "%u stream%s, %llu MiB copies", ns, ns == 1 ? "" : "s",
		 (unsigned long long)(p->io_size >> 20));
}

static void mode_naive(const struct bench_params *p, struct bench_result *r, struct bench_lat *lat)
{
	struct bench_cuda *cu = p->cu;
	uint64_t end = run_end(p), off = 0;
	void *buf = malloc(p->io_size);
	int fd = open(p->path, O_RDONLY | O_CLOEXEC);
	bench_devptr dev = 0;
	double t0 = bench_now();

	if (!buf || fd < 0 || cu->MemAlloc(&dev, p->io_size)) {
		fail(r, -ENOMEM, "open or allocation failed");
		goto out;
	}
	while (off < end && !time_up(p, t0)) {
		size_t n = end - off < p->io_size ? end - off : p->io_size;
		double t = bench_now();
		ssize_t got = pread(fd, buf, n, (off_t)off);

		if (got <= 0 || cu->MemcpyHtoD(dev, buf, (size_t)got)) {
			fail(r, -EIO, "pread or cuMemcpyHtoD failed at %llu", (unsigned long long)off);
			break;
		}
		bench_lat_add(lat, (bench_now() - t) * 1e6);
		off += (uint64_t)got;
		r->bytes += (uint64_t)got;
	}
out:
	if (dev)
		cu->MemFree(dev);
	if (fd >= 0)
		close(fd);
	free(buf);
}

static void mode_mmap(const struct bench_params *p, struct bench_result *r, struct bench_lat *lat,
		      bool reg, double *t_end)
{
	struct bench_cuda *cu = p->cu;
	uint64_t end = run_end(p), off = 0, maplen = (end + 4095) & ~4095ull;
	int fd = open(p->path, O_RDONLY | O_CLOEXEC);
	bench_devptr dev = 0;
	void *map = MAP_FAILED, *stream = NULL;
	double t0 = bench_now();
	bool registered = false;
	int ret;

	if (fd < 0 || cu->MemAlloc(&dev, p->io_size * (reg ? p->depth : 1))) {
		fail(r, -ENOMEM, "open or allocation failed");
		goto out;
	}
	map = mmap(NULL, maplen, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		fail(r, -errno, "mmap: %s", strerror(errno));
		goto out;
	}
	if (reg) {
		/* The registration (which faults in and pins every page) is part of the cost. */
		double t = bench_now();

		ret = cu->MemHostRegister(map, maplen, CU_MEMHOSTREGISTER_READ_ONLY_);
		if (ret) {
			fail(r, -EIO, "cuMemHostRegister(READ_ONLY) of the mapping failed: CUDA error %d",
			     ret);
			goto out;
		}
		registered = true;
		snprintf(r->note, sizeof(r->note), "registration took %.3f s",
			 bench_now() - t);
		if (cu->StreamCreate(&stream, 1)) {
			fail(r, -EIO, "cuStreamCreate failed");
			goto out;
		}
	}
	while (off < end && !time_up(p, t0)) {
		double t = bench_now();
		unsigned int batch = 0;

		if (!reg) {
			size_t n = end - off < p->io_size ? end - off : p->io_size;

			if (cu->MemcpyHtoD(dev, (char *)map + off, n)) {
				fail(r, -EIO, "cuMemcpyHtoD from the mapping failed");
				break;
			}
			off += n;
			r->bytes += n;
			bench_lat_add(lat, (bench_now() - t) * 1e6);
			continue;
		}
		for (; batch < p->depth && off < end; batch++) {
			size_t n = end - off < p->io_size ? end - off : p->io_size;

			cu->MemcpyHtoDAsync(dev + batch * p->io_size, (char *)map + off, n, stream);
			off += n;
			r->bytes += n;
		}
		if (cu->StreamSynchronize(stream)) {
			fail(r, -EIO, "copy from the registered mapping failed");
			break;
		}
		while (batch)
			bench_lat_add(lat, (bench_now() - t) * 1e6 / p->depth), batch--;
	}
	/* Unmapping (and unregistering) is not the load: a loader keeps the mapping. */
	*t_end = bench_now();
out:
	if (stream)
		cu->StreamDestroy(stream);
	if (registered)
		cu->MemHostUnregister(map);
	if (map != MAP_FAILED)
		munmap(map, maplen);
	if (dev)
		cu->MemFree(dev);
	if (fd >= 0)
		close(fd);
}

/* ---- cuFile (GPUDirect Storage), loaded at run time ------------------------------- */

/* The cuFile ABI as libcufile exports it (cufile.h is not needed to build). */
struct cufile_err {
	int err;
	int cu_err;
};

struct cufile_descr {
	int type; /* 1: CU_FILE_HANDLE_TYPE_OPAQUE_FD */
	union {
		int fd;
		void *handle;
	} handle;
	const void *fs_ops;
};

struct cufile_api {
	struct cufile_err (*DriverOpen)(void);
	struct cufile_err (*DriverClose)(void);
	struct cufile_err (*HandleRegister)(void **fh, struct cufile_descr *d);
	void (*HandleDeregister)(void *fh);
	struct cufile_err (*BufRegister)(const void *p, size_t n, int flags);
	struct cufile_err (*BufDeregister)(const void *p);
	ssize_t (*Read)(void *fh, void *buf, size_t n, off_t foff, off_t boff);
};

static void *cufile_thread(void *arg)
{
	struct stripe_job *j = arg;
	struct bench_cuda *cu = j->p->cu;
	bench_devptr dev = 0;
	uint64_t off;

	bench_cuda_bind(cu);
	if (cu->MemAlloc(&dev, j->p->io_size)) {
		j->err = -ENOMEM;
		bench_gate_wait(j->gate);
		return NULL;
	}
	if (j->cf->BufRegister((void *)(uintptr_t)dev, j->p->io_size, 0).err)
		snprintf(j->note, sizeof(j->note), "cuFileBufRegister failed (reads go unregistered)");
	if (!bench_gate_wait(j->gate))
		goto out;	/* another thread could not be created: nothing is measured */
	j->t0 = bench_now();
	for (off = j->start; off < j->end && !time_up(j->p, j->t0);) {
		size_t n = j->end - off < j->p->io_size ? j->end - off : j->p->io_size;
		double t = bench_now();
		ssize_t got = j->cf->Read(j->cufile_handle, (void *)(uintptr_t)dev, n, (off_t)off, 0);

		if (got <= 0) {
			j->err = got < 0 ? -EIO : -ENODATA;
			snprintf(j->note, sizeof(j->note), "cuFileRead returned %zd at %llu", got,
				 (unsigned long long)off);
			break;
		}
		bench_lat_add(&j->lat, (bench_now() - t) * 1e6);
		j->bytes += (uint64_t)got;
		off += (uint64_t)got;
	}
	j->t_end = bench_now();
out:
	j->cf->BufDeregister((void *)(uintptr_t)dev);
	cu->MemFree(dev);
	return NULL;
}

#define CF_LOAD(field, sym)                                                               \
	do {                                                                              \
		*(void **)&cf.field = dlsym(h, sym);                                      \
		if (!cf.field) {                                                          \
			fail(r, -ENOSYS, "libcufile has no %s", sym);                     \
			goto out;                                                         \
		}                                                                         \
	} while (0)

/*
 * The driver is opened once per process and kept open (a client opens it once, not per
 * read; opening it takes longer than many of the runs), and the per-thread buffers are
 * allocated and registered before the clock starts.
 */
static void mode_cufile(const struct bench_params *p, struct bench_result *r, struct bench_lat *lat,
			double *t_start, double *cpu_start, double *t_end)
{
	static struct cufile_api cf;
	static bool loaded, open_drv;
	struct cufile_descr d = { .type = 1 };
	struct cufile_err e;
	void *h, *fh = NULL;
	int fd = -1;

	if (!loaded) {
		h = dlopen("libcufile.so.0", RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			fail(r, -ENOENT, "libcufile.so.0 is not installed");
			return;
		}
		CF_LOAD(DriverOpen, "cuFileDriverOpen");
		CF_LOAD(DriverClose, "cuFileDriverClose");
		CF_LOAD(HandleRegister, "cuFileHandleRegister");
		CF_LOAD(HandleDeregister, "cuFileHandleDeregister");
		CF_LOAD(BufRegister, "cuFileBufRegister");
		CF_LOAD(BufDeregister, "cuFileBufDeregister");
		CF_LOAD(Read, "cuFileRead");
		loaded = true;
	}
	if (!open_drv) {
		e = cf.DriverOpen();
		if (e.err) {
			fail(r, -EIO, "cuFileDriverOpen failed: %d", e.err);
			goto out;
		}
		open_drv = true;
	}
	fd = open(p->path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		fail(r, -errno, "O_DIRECT open: %s", strerror(errno));
		goto out;
	}
	d.handle.fd = fd;
	e = cf.HandleRegister(&fh, &d);
	if (e.err) {
		fail(r, -EIO,
		     "cuFileHandleRegister failed: %d%s", e.err,
		     e.err == 5027 ? " (no udev record for the file's block device: see "
				     "Documentation/performance.md)" : "");
		goto out;
	}
	run_stripes(p, r, lat, cufile_thread, fh, &cf, t_start, cpu_start, t_end);
	cf.HandleDeregister(fh);
out:
	if (fd >= 0)
		close(fd);
	/* The driver stays open and libcufile loaded: it keeps threads and state. */
}

/* ---- through libp2pio ------------------------------------------------------------ */

static enum p2pio_path path_of(const char *mode)
{
	if (!strcmp(mode, "p2p"))
		return P2PIO_PATH_P2P;
	if (!strcmp(mode, "bounce"))
		return P2PIO_PATH_BOUNCE;
	if (!strcmp(mode, "posix"))
		return P2PIO_PATH_POSIX;
	return P2PIO_PATH_AUTO;
}

static void mode_library(const char *mode, const struct bench_params *p, struct bench_result *r,
			 struct bench_lat *lat, double *t_start, double *cpu_start, double *t_end,
			 double *cpu_end)
{
	uint64_t end = run_end(p), off = 0;
	unsigned int depth = p->depth, inflight = 0, nfree = 0, i;
	struct p2pio_ctx_opts o;
	struct p2pio_path_info info;
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *ctx = NULL;
	struct p2pio_buf *buf = NULL;
	struct p2pio_file *file = NULL;
	struct p2pio_queue *q = NULL;
	struct p2pio_cqe *cqes = calloc(depth, sizeof(*cqes));
	double *t_sub = calloc(depth, sizeof(*t_sub));
	unsigned int *freel = calloc(depth, sizeof(*freel));
	double t0;
	int ret, len = 0;

	if (!cqes || !t_sub || !freel) {
		fail(r, -ENOMEM, "out of memory");
		goto out;
	}
	p2pio_ctx_opts_init(&o);
	o.device = p->gpu ? p->device : P2PIO_DEVICE_HOST;
	o.path = path_of(mode);
	o.queue_depth = p->lib_depth;
	o.threads = p->lib_threads;
	o.chunk_size = p->lib_chunk;
	o.flags = p->lib_flags;
	ret = p2pio_ctx_create(&o, &ctx, &err);
	if (ret) {
		fail(r, ret, "context: %s", err.msg[0] ? err.msg : p2pio_strerror(ret));
		goto out;
	}
	/* Say which options ran: the library's defaults unless --lib-* asked otherwise. */
	p2pio_ctx_get_opts(ctx, &o);
	len = snprintf(r->note, sizeof(r->note),
		       "lib qd=%u threads=%u posix_threads=%u chunk=%lluK staging=%lluM%s",
		       o.queue_depth, o.threads, o.posix_threads,
		       (unsigned long long)(o.chunk_size >> 10),
		       (unsigned long long)(o.staging_bytes >> 20),
		       o.flags & P2PIO_CTX_BOUNCE_ASYNC ? " async" : "");
	ret = p2pio_buf_alloc(ctx, p->gpu ? P2PIO_MEM_CUDA : P2PIO_MEM_HOST, p->io_size * depth,
			      &buf, &err);
	if (ret) {
		fail(r, ret, "destination: %s", err.msg[0] ? err.msg : p2pio_strerror(ret));
		goto out;
	}
	ret = p2pio_file_open(ctx, p->path, 0, &file, &err);
	if (ret) {
		fail(r, ret, "open: %s", err.msg[0] ? err.msg : p2pio_strerror(ret));
		goto out;
	}
	memset(&info, 0, sizeof(info));
	info.size = sizeof(info);
	if (p2pio_path_info(file, &info) == 0) {
		snprintf(r->path_used, sizeof(r->path_used), "%s", p2pio_path_name(info.path));
		if (o.path == P2PIO_PATH_AUTO && len > 0 && (size_t)len < sizeof(r->note))
			snprintf(r->note + len, sizeof(r->note) - (size_t)len, "; %.*s",
				 (int)(sizeof(r->note) - (size_t)len - 3), info.why);
	}
	ret = p2pio_queue_create(ctx, &q);
	if (ret) {
		fail(r, ret, "queue: %s", p2pio_strerror(ret));
		goto out;
	}
	for (i = 0; i < depth; i++)
		freel[nfree++] = i;
	/*
	 * Setup (CUDA, pinned staging, registration) is not part of the measurement: the
	 * path starts its threads and allocates its staging on first use, so one small read
	 * starts it here, before the clock does.
	 */
	ret = p2pio_read(file, 0, end < 4096 ? end : 4096, buf, 0);
	if (ret) {
		fail(r, ret, "first read: %s", p2pio_strerror(ret));
		goto out;
	}
	*t_start = t0 = bench_now();
	*cpu_start = bench_cpu_seconds();
	while (off < end || inflight) {
		while (nfree && off < end && !time_up(p, t0)) {
			unsigned int s = freel[--nfree];
			struct p2pio_req req = {
				.file = file,
				.file_offset = off,
				.length = end - off < p->io_size ? end - off : p->io_size,
				.buf = buf,
				.buf_offset = (uint64_t)s * p->io_size,
				.tag = s,
			};

			ret = p2pio_submit(q, &req, 1);
			if (ret < 0) {
				fail(r, ret, "submit: %s", p2pio_strerror(ret));
				freel[nfree++] = s;
				off = end;
				break;
			}
			t_sub[s] = bench_now();
			off += req.length;
			inflight++;
		}
		if (!inflight)
			break;
		ret = p2pio_complete(q, cqes, depth, 1, -1);
		if (ret < 0) {
			fail(r, ret, "complete: %s", p2pio_strerror(ret));
			break;
		}
		for (i = 0; i < (unsigned int)ret; i++) {
			unsigned int s = (unsigned int)cqes[i].tag;

			if (cqes[i].res < 0 && !r->err)
				fail(r, cqes[i].res, "read: %s", p2pio_strerror(cqes[i].res));
			else
				r->bytes += cqes[i].bytes;
			if (s < depth) {
				bench_lat_add(lat, (bench_now() - t_sub[s]) * 1e6);
				freel[nfree++] = s;
			}
			inflight--;
		}
		if (r->err)
			off = end;
	}
	/* The clock stops at the last completion: tearing the path down is not the read. */
	*t_end = bench_now();
	*cpu_end = bench_cpu_seconds();
out:
	if (q)
		p2pio_queue_destroy(q);
	if (file)
		p2pio_file_close(file);
	if (buf)
		p2pio_buf_free(buf);
	if (ctx)
		p2pio_ctx_destroy(ctx);
	free(cqes);
	free(t_sub);
	free(freel);
}

void bench_run(const char *mode, const struct bench_params *p, struct bench_result *r)
{
	struct bench_lat lat = { 0 };
	bool gpu_mode = bench_mode_needs_gpu(mode);
	double t0, c0, t1, c1, t_end = 0, c_end = 0;

	memset(r, 0, sizeof(*r));
	snprintf(r->mode, sizeof(r->mode), "%s", mode);
	r->cold = p->cold;
	r->io_size = p->io_size;
	r->depth = p->depth;
	r->threads = p->threads;
	if (!strcmp(mode, "direct") || !strcmp(mode, "buffered"))
		snprintf(r->target, sizeof(r->target), "host");
	else
		snprintf(r->target, sizeof(r->target), "%s", gpu_mode || p->gpu ? "gpu" : "host");
	if (gpu_mode && (!p->cu || !p->cu->ok)) {
		fail(r, -ENODEV, "needs a GPU: %s", p->cu ? p->cu->why : "no CUDA");
		return;
	}
	if (p->io_size == 0 || p->depth == 0) {
		fail(r, -EINVAL, "I/O size and depth must be positive");
		return;
	}
	t0 = bench_now();
	c0 = bench_cpu_seconds();
	if (!strcmp(mode, "direct"))
		run_stripes(p, r, &lat, direct_thread, NULL, NULL, NULL, NULL, &t_end);
	else if (!strcmp(mode, "buffered"))
		run_stripes(p, r, &lat, buffered_thread, NULL, NULL, NULL, NULL, &t_end);
	else if (!strcmp(mode, "link"))
		mode_link(p, r, &lat, &t0, &t_end);
	else if (!strcmp(mode, "naive"))
		mode_naive(p, r, &lat);
	else if (!strcmp(mode, "mmap"))
		mode_mmap(p, r, &lat, false, &t_end);
	else if (!strcmp(mode, "hostreg"))
		mode_mmap(p, r, &lat, true, &t_end);
	else if (!strcmp(mode, "cufile"))
		mode_cufile(p, r, &lat, &t0, &c0, &t_end);
	else if (!strcmp(mode, "p2p") || !strcmp(mode, "bounce") || !strcmp(mode, "posix") ||
		 !strcmp(mode, "auto"))
		mode_library(mode, p, r, &lat, &t0, &c0, &t_end, &c_end);
	else
		fail(r, -EINVAL, "unknown mode");
	/* Modes that know when their last byte landed say so; teardown after it is not timed. */
	t1 = t_end > 0 ? t_end : bench_now();
	c1 = c_end > 0 ? c_end : bench_cpu_seconds();
	bench_lat_finish(&lat, &r->avg_us, &r->p99_us);
	r->seconds = t1 - t0;
	if (!r->err && r->bytes) {
		double gib = (double)r->bytes / (double)(1ull << 30);

		r->gibps = r->seconds > 0 ? gib / r->seconds : 0;
		r->cpu_s_per_gib = (c1 - c0) / gib;
	} else if (!r->err) {
		fail(r, -ENODATA, "no bytes moved");
	}
}
