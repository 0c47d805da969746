/* SPDX-License-Identifier: MIT */
/*
 * engine.h - the context, files, buffers and read operations shared by the engine's files
 * (ctx.c, mem.c, file.c, engine.c, paths/); private to libp2pio. The paths' operations
 * are in engine/path.h.
 */
#ifndef P2PIO_ENGINE_H
#define P2PIO_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"
#include "engine/cuda_dl.h"
#include "engine/path.h"

/*
 * Measured defaults (Documentation/engine.md says how; scripts/perf-defaults.sh is the
 * sweep, Documentation/performance.md its H200 results: no other threads, depth or chunk
 * setting beat these outside run-to-run spread, and smaller chunks lost warm).
 */
#define P2PIO_DEF_QUEUE_DEPTH 16
/*
 * Reads in flight for a file on a disk that says it is rotational (queue/rotational), when
 * the caller left the queue depth to the library. The virtio disk of the accelerator
 * machine says so: whole cold loads there ran 3.32-3.38 GB/s with 2 and 4 reads of 4 MiB
 * in flight against 2.73 with 16 (4 interleaved rounds, Documentation/engine.md "A disk
 * that says it is rotational"); a disk that seeks wants few streams, as the kernel's own
 * heuristics assume. zram and NVMe say they are not.
 */
#define P2PIO_DEF_ROTATIONAL_DEPTH 4
/* POSIX readers: one per CPU, at least 4 (reads block), at most 16 (H100 host, warm, same
 * run: 8 threads 1.9x and 16 threads 2.15x the throughput of 4; H200, 16 CPUs: 8 and 32
 * threads within the spread of 16). */
#define P2PIO_DEF_THREADS_MIN 4
#define P2PIO_DEF_THREADS_MAX 16
/*
 * BOUNCE rings: three for every four CPUs, within the same bounds. Where the device
 * completes each read in the task that submits it (zram), a ring per CPU made the rings
 * contend for the device's locks: on 16 CPUs a cold load spent 16 % of its samples in
 * zram's lock and unlock against 6 % with 8 rings, and 16 rings cost 0.52-0.60 s of CPU
 * per GB against 0.38-0.46 with 12 and 0.27-0.32 with 8. Paired rounds on two H100
 * machines (Documentation/engine.md, "BOUNCE rings"): 12 rings read at 0.99-1.07 of 16's
 * rate (medians of four sets; 8 at 0.96-1.01), and 12's CPU per GB is 0.77-0.81 of
 * cuFile's where 16's was 0.94-1.10. On a device that completes reads by interrupt
 * (NVMe) the rings only submit, and 12 with 2 reads in flight each keep at least as many
 * at the device as 16 with 1.
 */
#define P2PIO_DEF_BOUNCE_RINGS_NUM 3
#define P2PIO_DEF_BOUNCE_RINGS_DEN 4
#define P2PIO_DEF_CHUNK (4ull << 20)
#define P2PIO_DEF_STAGING (96ull << 20)
#define P2PIO_DEF_PIN_WINDOW (64ull << 20)

/*
 * Copy-completion events block rather than spin: a worker waiting for its copy to the GPU
 * sleeps, and leaves the CPU to the readers (on zram, and in buffered reads, the CPU is
 * what reads: a spinning waiter took a core from them).
 */
#define P2PIO_COPY_EVENT_FLAGS (CU_EVENT_DISABLE_TIMING | CU_EVENT_BLOCKING_SYNC)
/*
 * With P2PIO_CTX_POLL (latency over CPU time) BOUNCE's copy events do not block: a worker
 * that polled P2PIO_CTX_POLL_US for its copy then spins on it. On the H200 a worker woken
 * by a blocking-sync event came back 250-300 us after its 1 MB copy had ended, and a lone
 * expert miss waited that much for its last copy (Documentation/moe.md, seventh round).
 */
#define P2PIO_POLL_EVENT_FLAGS CU_EVENT_DISABLE_TIMING

/* Bounds on options, so a typo cannot ask for a terabyte of pinned memory. */
#define P2PIO_MAX_QUEUE_DEPTH 1024
#define P2PIO_MAX_THREADS 256
#define P2PIO_MIN_CHUNK (64ull << 10)
#define P2PIO_MAX_CHUNK (1ull << 30)
#define P2PIO_MAX_STAGING (64ull << 30)

/* Stream completion flags per context (one per stream-ordered read in flight). */
#define P2PIO_NR_FLAGS 4096

struct p2pio_win;
struct p2pio_p2p_old;

struct p2pio_flags {
	uint32_t *host;			/* host-pinned, device-mapped */
	CUdeviceptr dev;		/* the same words as the GPU sees them */
	uint32_t seq[P2PIO_NR_FLAGS];	/* last value handed out per slot */
	uint16_t free[P2PIO_NR_FLAGS];	/* stack of free slots */
	unsigned int nr_free;
};

struct p2pio_ctx {
	struct p2pio_ctx_opts opts;		/* resolved */
	const struct p2pio_cuda *cu;		/* NULL: host context */
	CUdevice dev;
	CUcontext cuctx;

	pthread_mutex_t lock;			/* paths started on first use, flags */
	void *path_priv[P2PIO_PATH_NR];		/* each path's state, NULL until started */
	struct p2pio_flags *flags;
	/*
	 * The non-blocking stream of p2pio_dst_write_sync(), made at its first use; both
	 * under @sync_lock, which serialises its copies.
	 */
	CUstream sync_stream;
	pthread_mutex_t sync_lock;

	pthread_mutex_t stats_lock;
	struct p2pio_ctx_stats stats;
	/* The caller left queue_depth to the library: a file may then get a smaller one. */
	bool depth_default;
};

struct p2pio_buf {
	struct p2pio_ctx *ctx;
	enum p2pio_mem mem;
	uint64_t addr;
	uint64_t len;
	void *host;			/* CPU mapping, NULL for CUDA memory */
	bool owned;			/* p2pio_buf_alloc() made it */
	bool sync_memops;		/* CU_POINTER_ATTRIBUTE_SYNC_MEMOPS set */
	uint64_t nvd_handle;		/* test-double allocation ... */
	size_t nvd_map_len;		/* ... and its CPU mapping */
	pthread_mutex_t lock;		/* the pins */
	struct p2pio_win *wins;		/* the P2P path's pinned windows */
};

struct p2pio_file {
	struct p2pio_ctx *ctx;
	int fd;				/* buffered */
	uint64_t size;
	_Atomic enum p2pio_path path;	/* AUTO may move it to a fallback (p2p.c) */
	bool forced;			/* the caller named the path: no AUTO */
	/* The BOUNCE path's (paths/bounce.c): */
	int dfd;			/* O_DIRECT, or -1 */
	uint32_t dio_align;		/* file offset and length alignment for dfd */
	uint32_t dio_mem_align;		/* buffer alignment for dfd */
	/*
	 * Reads of this file the BOUNCE workers keep in flight at most (0: the context's
	 * queue depth): P2PIO_DEF_ROTATIONAL_DEPTH on a disk that says it is rotational,
	 * where the context's depth is the default (p2pio_dio_open()). @bounce_out: how
	 * many are in flight; @bounce_out_max: the most there ever were (tests). Under the
	 * BOUNCE path's lock, but for @bounce_out's decrement when a read lands.
	 */
	uint32_t bounce_cap;
	_Atomic uint32_t bounce_out;
	uint32_t bounce_out_max;
	char bounce_why[80];		/* why @bounce_cap, for the file's reason */
	/* The P2P path's (paths/p2p.c): */
	uint64_t p2p_handle;		/* the module's file handle, valid when p2p_ok */
	bool p2p_ok;
	uint32_t lba_size;
	/*
	 * Re-registration after a broken layout lease (ESTALE), under the P2P path's lock:
	 * pieces at the module on the current handle; handles replaced and not yet
	 * unregistered (pieces still at the module on them); the errno of a re-registration
	 * the module refused, or of one that found the lease still breaking for
	 * P2PIO_REREG_WAIT_NS (0: none); how many re-registrations worked; the reason before
	 * the first.
	 */
	unsigned int p2p_cur_refs;
	struct p2pio_p2p_old *p2p_old;
	unsigned int p2p_nr_old;
	int p2p_gone;
	/*
	 * Refused for good (p2p_gone): reads of the file being sent (past their check of
	 * p2p_gone, not yet all at the module), and whether the stale handle is unregistered
	 * already (once those and the pieces on it are in: a registration keeps the file
	 * from being written, and a refused one serves nothing).
	 */
	unsigned int p2p_sending;
	bool p2p_dropped;
	unsigned int p2p_reregs;
	char p2p_why_base[P2PIO_REASON_LEN];
	/*
	 * The P2P reaper's alone (no lock): while the module answers EAGAIN to the new
	 * registration, when it first did, the pause before the next try and when that is
	 * due (p2pio_now_ns(); 0: no retry pending).
	 */
	uint64_t p2p_rereg_t0, p2p_rereg_pause, p2p_rereg_next;
	pthread_mutex_t lock;		/* the reasons */
	char why[P2PIO_REASON_LEN];
	char why_not[P2PIO_PATH_NR][P2PIO_REASON_LEN];
};

/* A blocked p2pio_read() waiting for its one operation. */
struct p2pio_sync {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	struct p2pio_op *op;
};

struct p2pio_queue {
	struct p2pio_ctx *ctx;
	int efd;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct p2pio_op *done_head, *done_tail;	/* completed, not reaped */
	unsigned int nr_done;
	unsigned int inflight;			/* submitted, not reaped */
};

/*
 * One read (file range -> buffer range). Paths split it into chunks; each chunk holds a
 * reference (@pending), and so does the path until it has handed out the last chunk. The
 * last reference dropped completes the operation.
 */
struct p2pio_op {
	struct p2pio_ctx *ctx;
	struct p2pio_file *file;
	struct p2pio_buf *buf;
	uint64_t off;			/* file offset */
	uint64_t len;
	uint64_t dst;			/* offset in buf */
	uint64_t tag;
	enum p2pio_path path;
	uint64_t t_submit;
	/*
	 * Where a read's time goes (p2pio_now_ns(), 0 where the path does not say): when the
	 * last of its chunks was handed to a worker, and when the last of them was read (in
	 * staging or in place; before any copy to the GPU). BOUNCE and POSIX set them.
	 */
	atomic_uint_fast64_t t_taken;
	atomic_uint_fast64_t t_landed;
	uint64_t t_done;		/* completed (t_submit is then its latency) */

	atomic_int pending;
	atomic_int err;			/* first error, 0 if none */
	atomic_uint_fast64_t bytes_read;

	int flag_slot;			/* stream flag, -1 if none */
	uint32_t flag_val;

	struct p2pio_queue *q;		/* completion goes here ... */
	struct p2pio_sync *sync;	/* ... or here */

	bool urgent;			/* P2PIO_REQ_URGENT: ahead of the path's other reads */
	uint64_t begin;			/* @cur when queued: nothing handed out while equal */
	uint64_t cur;			/* path's cursor: next offset to hand out */
	uint64_t end;			/* path's end of range (rounded as the path needs) */
	struct p2pio_op *next;		/* in a path's list, then in q's done list */
};

/*
 * op_queue.c: a path's reads with pieces left to hand out, urgent ones first (each kind
 * in order), under the path's lock. Workers take pieces of @head; once the last piece of
 * @head is out, p2pio_opq_pop() drops it.
 */
struct p2pio_opq {
	struct p2pio_op *head, *tail;
	struct p2pio_op *urgent_tail;	/* the last urgent read queued; NULL when none is */
	bool urgent_alone;		/* P2PIO_CTX_URGENT_ALONE */
	unsigned int urgent_out;	/* pieces of urgent reads handed out, not yet read */
};

P2PIO_HIDDEN void p2pio_opq_push(struct p2pio_opq *q, struct p2pio_op *op);
P2PIO_HIDDEN void p2pio_opq_pop(struct p2pio_opq *q);
/*
 * The read whose next piece a worker may take now: @head, or NULL when the queue is
 * empty or (P2PIO_CTX_URGENT_ALONE) @head is plain while pieces of urgent reads are out.
 */
P2PIO_HIDDEN struct p2pio_op *p2pio_opq_next(const struct p2pio_opq *q);
/*
 * A piece of @op handed out: returns whether it counts as urgent, which only an urgent
 * read's piece does and only with @urgent_alone (the caller keeps that with the piece and
 * passes it to p2pio_opq_piece_read(), as hastening may make @op urgent meanwhile).
 */
P2PIO_HIDDEN bool p2pio_opq_piece_out(struct p2pio_opq *q, const struct p2pio_op *op);
/* That piece has been read; true when plain pieces may now start that could not before
 * (the caller wakes its workers). */
P2PIO_HIDDEN bool p2pio_opq_piece_read(struct p2pio_opq *q, bool urgent);
/*
 * The reads of queue @cq tagged @tag, when exactly @n of them are in @q and no piece of
 * any is out: unlinked onto *@out (through ->next). Returns @n, or 0 with @q unchanged.
 */
P2PIO_HIDDEN unsigned int p2pio_opq_withdraw(struct p2pio_opq *q, const struct p2pio_queue *cq,
					     uint64_t tag, unsigned int n, struct p2pio_op **out);
/* The reads of queue @cq tagged @tag not yet urgent made urgent, last of the urgent ones,
 * in their order; returns how many. *@released (may be NULL): the head was held back
 * (P2PIO_CTX_URGENT_ALONE) and may start now, so the caller wakes its workers. */
P2PIO_HIDDEN unsigned int p2pio_opq_hasten(struct p2pio_opq *q, const struct p2pio_queue *cq,
					   uint64_t tag, bool *released);
/* Every read of queue @cq tagged @tag unlinked onto *@out (through ->next), in queue
 * order; returns how many. */
P2PIO_HIDDEN unsigned int p2pio_opq_take(struct p2pio_opq *q, const struct p2pio_queue *cq,
					 uint64_t tag, struct p2pio_op **out);

/* engine.c */
P2PIO_HIDDEN uint64_t p2pio_now_ns(void);
P2PIO_HIDDEN void p2pio_op_get(struct p2pio_op *op);
P2PIO_HIDDEN void p2pio_op_put(struct p2pio_op *op, int err, uint64_t bytes_read);
P2PIO_HIDDEN void p2pio_op_landed(struct p2pio_op *op);

/*
 * The phases of a completed read (p2pio_now_ns() times; 0 where the path does not say):
 * its last chunk handed to a worker, its last chunk read, completed (submitted: done_ns
 * less the cqe's latency_ns).
 */
struct p2pio_cqe_phases {
	uint64_t taken_ns;
	uint64_t landed_ns;
	uint64_t done_ns;
};

/* p2pio_complete() that also says each read's phases, in @ph (as many as @cqes). */
P2PIO_HIDDEN int p2pio_complete_phases(struct p2pio_queue *q, struct p2pio_cqe *cqes,
				       struct p2pio_cqe_phases *ph, unsigned int max,
				       unsigned int min, int timeout_ms);

/*
 * A BOUNCE file held to fewer reads in flight than the context's depth
 * (p2pio_file.bounce_why) says so at the end of its reason. Callers that may race a
 * reader of @f->why hold @f->lock.
 */
P2PIO_HIDDEN void p2pio_file_why_depth(struct p2pio_file *f);

P2PIO_HIDDEN void p2pio_file_note(struct p2pio_file *f, enum p2pio_path path, const char *fmt,
				  ...) __attribute__((format(printf, 3, 4)));

/*
 * ctx.c: @o's thread counts the caller left 0, on @ncpu online CPUs: @threads three
 * BOUNCE rings for every four CPUs, @posix_threads the caller's @threads where it set
 * them, else one POSIX reader per CPU; each within P2PIO_DEF_THREADS_MIN..MAX.
 */
P2PIO_HIDDEN void p2pio_threads_resolve(struct p2pio_ctx_opts *o, long ncpu);
/* ctx.c: run @cuctx current on this thread around CUDA calls from a caller's thread. */
P2PIO_HIDDEN CUcontext p2pio_ctx_enter(struct p2pio_ctx *ctx);
P2PIO_HIDDEN void p2pio_ctx_leave(struct p2pio_ctx *ctx, CUcontext prev);
/*
 * mem.c: a buffer over memory the library itself just mapped for this context (the expert
 * cache's CUDA chunks): p2pio_buf_register() without its driver queries, which a miss
 * would otherwise pay on every mapping. Returns 0 or -ENOMEM.
 */
P2PIO_HIDDEN int p2pio_buf_wrap(struct p2pio_ctx *ctx, enum p2pio_mem mem, uint64_t addr,
				uint64_t len, struct p2pio_buf **bufp);
/* Pinned host memory (cuMemHostAlloc) on a GPU context, aligned anonymous memory otherwise. */
P2PIO_HIDDEN void *p2pio_staging_alloc(struct p2pio_ctx *ctx, size_t len);
P2PIO_HIDDEN void p2pio_staging_free(struct p2pio_ctx *ctx, void *p, size_t len);

/*
 * Copy @len bytes from host memory @src into @op's destination at buffer offset @dst,
 * synchronously (used for short pieces: head/tail of P2P reads). Returns 0 or -errno.
 */
P2PIO_HIDDEN int p2pio_dst_write_sync(struct p2pio_op *op, uint64_t dst, const void *src,
				      uint64_t len);

static inline uint64_t p2pio_round_down(uint64_t x, uint64_t a)
{
	return x - x % a;
}

static inline uint64_t p2pio_round_up(uint64_t x, uint64_t a)
{
	return p2pio_round_down(x + a - 1, a);
}

#endif /* P2PIO_ENGINE_H */
