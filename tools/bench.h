/* SPDX-License-Identifier: MIT */
/*
 * bench.h - pieces of p2pio-bench: the measured modes (bench_modes.c), the CUDA driver
 * entry points the baselines need (bench_cuda.c, loaded at run time like the library
 * does), latency bookkeeping and the SVG plot (bench_report.c), the start line of a
 * measurement's threads (bench_gate.c), and the burst floor of a set of byte ranges
 * (bench_burst.c).
 */
#ifndef P2PIO_BENCH_H
#define P2PIO_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- CUDA driver API, the few calls the baselines make ---------------------------- */

typedef int bench_cures;
typedef unsigned long long bench_devptr;

/* CUDA_ERROR_NOT_READY: a stream or event query's "still busy". */
#define BENCH_CU_NOT_READY 600

struct bench_cuda {
	bool ok;
	int device;
	void *ctx;
	bench_cures (*MemAlloc)(bench_devptr *p, size_t n);
	bench_cures (*MemFree)(bench_devptr p);
	bench_cures (*MemHostAlloc)(void **p, size_t n, unsigned int flags);
	bench_cures (*MemFreeHost)(void *p);
	bench_cures (*MemHostRegister)(void *p, size_t n, unsigned int flags);
	bench_cures (*MemHostUnregister)(void *p);
	bench_cures (*MemcpyHtoD)(bench_devptr dst, const void *src, size_t n);
	bench_cures (*MemcpyHtoDAsync)(bench_devptr dst, const void *src, size_t n, void *stream);
	bench_cures (*MemcpyDtoH)(void *dst, bench_devptr src, size_t n);
	bench_cures (*MemsetD8)(bench_devptr dst, unsigned char v, size_t n);
	bench_cures (*StreamCreate)(void **s, unsigned int flags);
	bench_cures (*StreamDestroy)(void *s);
	bench_cures (*StreamSynchronize)(void *s);
	bench_cures (*StreamQuery)(void *s);
	bench_cures (*CtxSetCurrent)(void *ctx);
	char why[160];
};

/*
 * The shapes a sweep mode runs (bench_sweep()): the storage ceiling (O_DIRECT and buffered
 * reads into host memory at several request sizes and depths), the link ceiling (large
 * pinned copies on one and several streams) and the peers (cuFile, mmap, hostreg) each at
 * the shapes where they may do best. A sweep reports every shape and its best.
 */
struct bench_shape {
	const char *mode; /* the measuring mode: direct, buffered, link, cufile, ... */
	uint64_t io_size;
	unsigned int depth;   /* reads in flight; link: streams */
	unsigned int threads;
};

/* Load libcuda and make device @device's primary context current; false (with @why) if not. */
bool bench_cuda_init(struct bench_cuda *cu, int device);
/* Make the context current in the calling thread. */
void bench_cuda_bind(const struct bench_cuda *cu);

/* ---- runs ------------------------------------------------------------------------ */

struct bench_params {
	const char *path;
	uint64_t file_size;
	uint64_t io_size;
	unsigned int depth;
	unsigned int threads;
	bool cold;
	uint64_t bytes;	 /* bytes per run (from offset 0), at most the file size */
	double duration; /* seconds; 0 for no limit */
	/*
	 * O_DIRECT modes: read each stripe again from its start until this many seconds have
	 * passed (then the duration stops them): a steady-state rate, with every thread busy
	 * to the end, where one pass over a small file is mostly its start and its tail.
	 */
	double steady;
	bool gpu;	 /* destination is GPU memory (else host memory) */
	struct bench_cuda *cu;
	int device; /* CUDA device for the library's context, or -1 */
	/* Library modes: context options; 0 leaves the library's default (what users get). */
	unsigned int lib_depth;
	unsigned int lib_threads;
	uint64_t lib_chunk;
	uint32_t lib_flags;
};

struct bench_result {
	char mode[16];
	bool cold;
	uint64_t io_size;
	unsigned int depth;
	unsigned int threads;
	uint64_t bytes;
	double seconds;
	double gibps;
	double avg_us;
	double p99_us;
	double cpu_s_per_gib;
	char target[8];	   /* "gpu" or "host" */
	char path_used[16]; /* the library's path, for library modes */
	char note[192];	   /* why a mode did not run, or what to know about the number */
	int err;	   /* 0, or a negative errno when the mode failed or was skipped */
};

/* Names of every mode, in the order a default run measures them. */
extern const char *const bench_mode_names[];

/* Run one mode; fills @r (err < 0 when it could not run, with a note). */
void bench_run(const char *mode, const struct bench_params *p, struct bench_result *r);

/* Whether a mode copies into the GPU only (needs CUDA). */
bool bench_mode_needs_gpu(const char *mode);

/*
 * The shapes of sweep mode @mode (storage, link, cufile, mmap, hostreg) into @out (at most
 * @max); 0 when @mode is not a sweep mode. @ncpu adds the CPU count to the thread counts.
 */
size_t bench_sweep(const char *mode, unsigned int ncpu, struct bench_shape *out, size_t max);

/* The honest ceiling of a tool's bound (bench_ceiling()). */
struct bench_ceiling_params {
	const char *path;	/* the file the bound's reads read */
	uint64_t file_size;
	bool cold;		/* the caller's cache state: dropped before each shape */
	struct bench_cuda *cu;	/* into a GPU: also the link ceiling; NULL: host memory */
	double duration;	/* seconds per shape at most; 0: 1 s */
};

/* What set a ceiling, to measure its storage shape again after the run it bounds. */
struct bench_ceiling_best {
	struct bench_shape shape;	/* the storage sweep's best shape */
	double storage_gbps;		/* its rate then */
	double link_gbps;		/* the link sweep's best; 0 without a GPU */
};

/* The O_DIRECT shapes of a ceiling read for at least this long (bench_params.steady). */
#define BENCH_CEILING_STEADY_S 0.3

/*
 * The ceiling of reading @cp->path into the target: the best of the storage sweep on the
 * file (every shape reads the whole file, for at most the duration; the O_DIRECT shapes
 * read it again until BENCH_CEILING_STEADY_S have passed, so that a small file's ceiling
 * is a steady rate and not one short pass's start and tail) and, into a GPU, the
 * lower of that and the best of the link sweep. Sets @gbps (GB/s), @why (the shapes that
 * set it) and, when not NULL, @best. 0, or -EIO when no storage shape ran.
 */
int bench_ceiling(const struct bench_ceiling_params *cp, double *gbps, char *why,
		  size_t why_len, struct bench_ceiling_best *best);

/*
 * After the run a ceiling bounds: its best storage shape (@best, from bench_ceiling())
 * again, in the same cache state. The storage ceiling becomes the higher of the two rates,
 * so that a device that sped up while the run read it does not leave the run above its
 * bound; @gbps (the ceiling) is updated and @why says which shape was read again and at
 * what rate. 0; -EINVAL when @best's shape is not a storage one (direct or buffered: only
 * a storage shape's rate is a storage ceiling); or the shape's negative errno (then
 * @gbps stays).
 */
int bench_ceiling_again(const struct bench_ceiling_params *cp,
			const struct bench_ceiling_best *best, double *gbps, char *why,
			size_t why_len);

/* Free the link ceiling's pinned and device buffers (kept between its runs). */
void bench_link_release(void);

/* Bytes each link ceiling run copies: enough for GPU clocks and copy engines to settle. */
#define BENCH_LINK_BYTES (4ull << 30)

/* ---- the burst floor of a few byte ranges ----------------------------------------- */

/* Bytes [offset, offset + length) of a file. */
struct bench_range {
	uint64_t offset;
	uint64_t length;
};

struct bench_burst_params {
	int fd;				/* the file, open for reading */
	const struct bench_range *ranges;
	size_t nr_ranges;
	bool cold;			/* evict the ranges from the page cache before each try */
	/*
	 * Optional: called after every repetition with each range and its bytes as they
	 * landed; 0, or a negative errno that ends the measurement with that error.
	 */
	int (*check)(void *arg, const struct bench_range *range, const void *data);
	void *check_arg;
	/*
	 * Optional: into this GPU. Each read lands in pinned host memory and is copied to
	 * device memory as soon as it has (cuMemcpyHtoDAsync on its thread's own stream), and
	 * the burst ends when the last copy has: what a plain read-then-copy loop takes at its
	 * best shape. On the H200 machine a 12 MiB burst that zram read in 0.5 ms took 0.85
	 * ms with its copies, whatever the pieces, as reads and copies share the host's
	 * memory (Documentation/moe.md, "Eighth round").
	 */
	const struct bench_cuda *cu;
};

struct bench_burst {
	double seconds;			/* the fastest repetition: threads let go to last byte */
	unsigned int threads;		/* its shape: threads, */
	uint64_t piece;			/* and bytes per read; 0: each run in one read */
	uint64_t bytes;			/* bytes each repetition read */
	unsigned int runs;		/* the ranges rounded out to blocks, merged if they meet */
	unsigned int shapes;		/* shapes timed */
	bool buffered;			/* O_DIRECT was refused: buffered reads */
	bool gpu;			/* each read also copied into the GPU (params' @cu) */
	char note[192];			/* the fallback to buffered reads, or why it failed */
};

/* Repetitions of each shape; the floor is the fastest. */
#define BENCH_BURST_REPS 3
#define BENCH_BURST_MAX_RANGES 4096
#define BENCH_BURST_MAX_BYTES (4ull << 30)

/*
 * The floor of reading just @bp's ranges: the fastest any of a sweep of shapes read them,
 * with O_DIRECT preads into aligned host memory (buffered ones where the file system
 * refuses O_DIRECT: @res->buffered, and the note says so). Threads 1, 2, 4, ... 64 (no
 * more than there are reads) x reads of each run whole, 4M, 1M, 512K and 256K, each shape
 * BENCH_BURST_REPS times, its threads created and waiting before the clock starts. Ranges
 * are rounded out to the O_DIRECT alignment (4096 at least); the rounding is read too, as
 * a loader that reads in place reads it. Each read must return all its bytes, a poisoned
 * word at each end of each read must have been overwritten, and @bp->check sees every
 * range after every repetition: a read that returned nothing cannot look fast. With
 * @bp->cu each repetition's bytes are also copied back from the GPU, whose buffer was
 * poisoned before it, and must match what was read.
 *
 * Return: 0 with @res filled; -EBADF (negative fd), -EINVAL (no ranges, an empty range,
 * not a regular file), -ERANGE (a range past the end of the file, or overflowing),
 * -E2BIG (more than BENCH_BURST_MAX_RANGES ranges or BENCH_BURST_MAX_BYTES bytes),
 * -ENOMEM, a read's or pthread_create's negative errno, -EIO (a read left its poison in
 * place, or the GPU's bytes differ from the read's), -ENODEV (a CUDA call failed), or
 * @bp->check's error; @res->note says what failed.
 */
int bench_burst_floor(const struct bench_burst_params *bp, struct bench_burst *res);

/*
 * Advise the kernel to drop @n ranges of @fd from the page cache (POSIX_FADV_DONTNEED,
 * the per-file part of cli_drop_cache()): how the floor makes each try cold, and how a
 * caller puts what it measures in the same state. Dirty pages stay.
 */
void bench_evict_ranges(int fd, const struct bench_range *ranges, size_t n);

/* ---- latency samples -------------------------------------------------------------- */

struct bench_lat {
	double *v;
	size_t n, cap;
	double sum;
};

void bench_lat_add(struct bench_lat *l, double us);
/* Fills avg and p99 and frees the samples. */
void bench_lat_finish(struct bench_lat *l, double *avg, double *p99);

double bench_now(void);
/* User + system CPU seconds of the process so far (io_uring workers included). */
double bench_cpu_seconds(void);

/* ---- threads at a start line ----------------------------------------------------- */

/*
 * A measurement's threads are all created and set up before its clock starts, so that
 * neither is timed: each waits at the gate (bench_gate_wait()) until the caller opens it.
 * Where one cannot be created the gate is aborted instead, and those waiting, or still on
 * their way to it, go home: nobody waits for a thread that never started.
 */
struct bench_gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int waiting;	/* threads at the line */
	atomic_int state;	/* 0: hold, 1: go, -1: aborted */
	bool spin;		/* waiters spin on @state instead of sleeping */
};

/*
 * @spin: the waiters spin until the gate opens, so that none pays a wake-up after the
 * clock started; only for fewer threads than CPUs. 0 or a negative errno.
 */
int bench_gate_init(struct bench_gate *g, bool spin);
void bench_gate_destroy(struct bench_gate *g);

/*
 * Start @n threads, thread i running @fn(@args + i * @stride), into @tids. Every thread
 * given a gate (@g) calls bench_gate_wait() once, whether its setup worked or not; with
 * @g NULL they run at once. 0 when all @n run; when one cannot be created, the gate is
 * aborted, the threads started are joined, and pthread_create's error comes back as a
 * negative errno.
 */
int bench_gate_spawn(struct bench_gate *g, pthread_t *tids, unsigned int n, void *(*fn)(void *),
		     void *args, size_t stride);

/* In a thread: wait at the line. True when the gate opened, false when it was aborted. */
bool bench_gate_wait(struct bench_gate *g);

/* Wait until @n threads wait at the line, then let them go; the time (bench_now()) it opened. */
double bench_gate_open(struct bench_gate *g, unsigned int n);

/* Send the threads at the line, and those still coming, home. */
void bench_gate_abort(struct bench_gate *g);

/* ---- output ----------------------------------------------------------------------- */

/* @n bytes as "4M", "512K", "1G" where it is a whole number of them, else "12345". */
void bench_size_str(uint64_t n, char *buf, size_t sz);

void bench_print_line(FILE *f, const struct bench_result *r);
void bench_print_json(FILE *f, const struct bench_result *r);
/* A line chart of GiB/s against I/O size (or depth when only depth varies). */
int bench_plot_svg(const char *path, const struct bench_result *rs, size_t n);

#endif /* P2PIO_BENCH_H */
