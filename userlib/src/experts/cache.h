/* SPDX-License-Identifier: MIT */
/*
 * experts/cache.h - the expert cache's state, shared by cache.c (the API: require,
 * release, prefetch, pin, statistics), cache_load.c (loads and prefetches),
 * cache_reap.c (completions), cache_release.c (releases by event) and cache_open.c
 * (open, close, the dense part). Private.
 */
#ifndef P2PIO_EXPERTS_CACHE_H
#define P2PIO_EXPERTS_CACHE_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine/engine.h"
#include "model/model.h"
#include "experts/predict.h"
#include "experts/residency.h"
#include "experts/xmem.h"

#define REAP_BATCH 64
#define REAP_TIMEOUT_MS 50
/* Stall measurements in flight (event pairs around a require's stream waits). */
#define NR_TIMINGS 64
/*
 * The smallest default read (cache_open.c): each read has a fixed cost (submission, a
 * ring's wake-up, a copy and its event); on the H200 a lone gpt-oss-120b miss in 1 MiB
 * pieces beat 256 KiB and ~405 KiB (Documentation/moe.md, "Where the miss batch's time
 * goes"), and a decode's loads did best in larger reads still (the third round).
 */
#define P2PIO_EXPERTS_MIN_PIECE (1ull << 20)

struct xentry {
	uint32_t seq;		/* number of the current (or last) load */
	uint32_t pending;	/* reads of the current load in flight */
	uint32_t nreads;	/* reads the current load submits */
	int err;		/* first error of the current load */
	bool loading;
	bool hinted;		/* loading for a prefetch its layer has not required yet */
	bool zombie;		/* its load failed while referenced: unmap once free */
	bool withdrawn;		/* its load was withdrawn (err -ECANCELED), not failed */
	uint32_t held;		/* required and not released */
	uint32_t refs;		/* held, or released with the stream work not yet done */
	uint32_t batch;		/* the miss batch its demand load belongs to; 0: none */
	uint64_t t_submit;
	uint64_t bytes;		/* submitted by the current load ... */
	uint32_t io_epoch;	/* ... and counted in x->io since this reset of it */
	uint64_t bytes_done;	/* of its reads reaped (a withdrawal leaves the rest unread) */
};

/* Experts released on a stream: busy until @ev has completed. */
struct xrelease {
	CUevent ev;
	uint32_t n;
	uint32_t cap;
	struct p2pio_expert_ref *refs;
	struct xrelease *next;
};

struct xtiming {
	CUevent e0, e1;
	bool live;
};

struct p2pio_experts {
	struct p2pio_model *m;
	struct p2pio_ctx *ctx;
	const struct p2pio_cuda *cu;		/* NULL: no GPU, require blocks */
	struct p2pio_queue *q;
	uint32_t nl, ne, used;
	uint32_t flags;
	uint64_t budget;
	uint64_t *data_len;			/* [nl] tensor bytes of one expert */

	struct p2pio_model_group dense;
	struct p2pio_buf *dense_buf;
	uint64_t *dense_addr;			/* [m->ntensors], 0 for expert tensors */

	const struct p2pio_xmem_ops *xops;
	void *xarg;
	struct p2pio_xpool *pool;
	struct p2pio_residency *res;
	struct p2pio_expert_ref *victims;	/* [nl * ne] */
	size_t *homeless;			/* [nl * ne]: loads whose homes wait ... */
	size_t nhomeless;			/* ... (homes_map()) */
	struct xentry *ent;			/* [nl * ne] */
	volatile uint32_t *flag;		/* completion words, host view ... */
	CUdeviceptr flag_dev;			/* ... and the device's */
	void *flag_mem;

	pthread_mutex_t lock;
	pthread_cond_t cond;			/* a load completed */
	pthread_cond_t reap_cond;		/* a load started (the reaper sleeps without) */
	pthread_t reaper;
	bool reaper_started;
	atomic_bool stop;
	uint32_t loading;			/* loads in flight */
	int fatal;				/* the queue failed */
	int async_err;				/* a load failed under a waiting stream */

	struct xrelease *rel;			/* pending releases, oldest first */
	struct xrelease *rel_free;
	struct xtiming tim[NR_TIMINGS];
	uint32_t tim_next;

	uint32_t *prev_ids;			/* [nl * ne] last routing per layer */
	uint32_t *prev_n;			/* [nl] */
	/*
	 * The built-in prefetch's experts stay busy until their layer is required (as the
	 * replay models it), so the next prefetch or another layer's miss cannot undo them;
	 * a demand miss with no other room lets them go first.
	 */
	uint32_t *pf_ids;			/* [ne] */
	uint32_t pf_n;
	uint32_t pf_layer;
	struct p2pio_predictor *pred;		/* P2PIO_EXPERTS_PREFETCH_LEARNED's */
	uint32_t *pred_ids;			/* [ne], its prediction (with it only) */

	uint64_t piece;				/* bytes per engine read of a load */
	uint32_t pieces;			/* or reads per load; 0: by @piece */
	uint32_t lone_pieces;			/* ... for a load that starts alone */
	uint64_t busy_t0;			/* when @loading last went from 0 to 1 */

	/*
	 * The current miss batch (the demand loads of one require), for the statistics'
	 * breakdown: its number, when the call started, its loads not finished, whether its
	 * first read completed, whether the call is still submitting, and when the engine
	 * last handed one of its reads to a thread and last read one.
	 */
	uint32_t batch;
	uint64_t batch_t0;
	uint32_t batch_left;
	uint32_t batch_loads;			/* loads the batch started */
	bool batch_first;
	bool batch_open;
	uint64_t batch_taken;			/* latest hand-out of its reads (engine time) */
	uint64_t batch_landed;			/* latest of its reads read */

	struct p2pio_experts_io io;
	uint32_t io_epoch;			/* resets of @io so far */
	uint64_t t_start;
};

/* The P2PIO_EXPERTS_* flags open accepts. */
#define P2PIO_EXPERTS_FLAGS \
	(P2PIO_EXPERTS_PREFETCH_PREV | P2PIO_EXPERTS_EAGER_UNMAP | P2PIO_EXPERTS_PREFETCH_LEARNED | \
	 P2PIO_EXPERTS_KEEP_WRONG_HINTS | P2PIO_EXPERTS_MISSES_IN_ORDER)

static inline size_t idx(const struct p2pio_experts *x, uint32_t layer, uint32_t expert)
{
	return (size_t)layer * x->ne + expert;
}

/* cache_reap.c: the thread that reaps the engine's completions (started by open). */
P2PIO_HIDDEN void *p2pio_experts_reaper(void *arg);
/* Unmap a failed expert's memory once nothing references it. Called locked. */
P2PIO_HIDDEN void xcache_bury(struct p2pio_experts *x, uint32_t layer, uint32_t expert);
/* The current miss batch is complete: its times from the call's start. Called locked. */
P2PIO_HIDDEN void xcache_batch_complete(struct p2pio_experts *x);
/*
 * Entry @i's load is over (every read done, or it failed): store its completion word
 * (a failed load's too: a stream may wait on it) and tell the core. Called locked.
 */
P2PIO_HIDDEN void xcache_finish_load(struct p2pio_experts *x, size_t i);

/* cache_release.c: retire every release (close: waits for the stream work). Locked. */
P2PIO_HIDDEN void p2pio_experts_drain_releases(struct p2pio_experts *x);
/* Retire releases whose stream work has completed; with @block, wait for the oldest. */
P2PIO_HIDDEN void xcache_poll_releases(struct p2pio_experts *x, bool block);
/* A release with room for @n experts (its event not yet recorded); NULL without memory. */
P2PIO_HIDDEN struct xrelease *xcache_release_get(struct p2pio_experts *x, uint32_t n);
/* Let the built-in prefetch's held experts go. Called locked. */
P2PIO_HIDDEN void xcache_prefetch_unhold(struct p2pio_experts *x);

/*
 * cache_load.c, each called locked: map the homes of the loads whose reads are out;
 * admit and load (@layer, @expert) (@alone: a require's miss with no load in flight);
 * an expert's address at home (0: not there); check a call's ids (-ERANGE for a layer
 * or an id out of range, -EINVAL for an id twice or experts of a dense layer); prefetch what is absent of @ids (the number started); the built-in
 * prefetch for the layer after @layer; unmap the victims left for after the batch.
 */
P2PIO_HIDDEN void xcache_homes_map(struct p2pio_experts *x);
P2PIO_HIDDEN int xcache_load(struct p2pio_experts *x, uint32_t layer, uint32_t expert,
			     bool prefetch, bool alone);
P2PIO_HIDDEN uint64_t xcache_addr(const struct p2pio_experts *x, uint32_t layer,
				  uint32_t expert);
P2PIO_HIDDEN int xcache_check_ids(const struct p2pio_experts *x, uint32_t layer,
				  const uint32_t *ids, uint32_t n);
P2PIO_HIDDEN int xcache_prefetch_locked(struct p2pio_experts *x, uint32_t layer,
					const uint32_t *ids, uint32_t n);
P2PIO_HIDDEN void xcache_prefetch_next_layer(struct p2pio_experts *x, uint32_t layer,
					     const uint32_t *ids, uint32_t n);
P2PIO_HIDDEN void xcache_flush_unmaps(struct p2pio_experts *x);
P2PIO_HIDDEN void xcache_drop_wrong_hints(struct p2pio_experts *x, uint32_t layer,
					  const uint32_t *ids, uint32_t n);

#endif /* P2PIO_EXPERTS_CACHE_H */
