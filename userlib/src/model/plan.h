/* SPDX-License-Identifier: MIT */
/*
 * model_plan.h - the model loader's pure planning code: how tensors are laid out in target
 * memory and read (model_layout.c), and which layer goes into which streaming slot and
 * when (model_sched.c). No I/O, no CUDA: unit tests drive both directly.
 */
#ifndef P2PIO_MODEL_PLAN_H
#define P2PIO_MODEL_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/*
 * Layout: a set of file ranges (tensors) becomes a list of runs, each one read of a
 * contiguous, block-aligned file range into a block-aligned offset of a region (an arena or
 * a slot). Tensors keep their position relative to the run, so a tensor that is not block
 * aligned in the file is read in place, with no copy: the rounding lands in the run.
 */
struct p2pio_run {
	uint64_t file_off;	/* block aligned */
	uint64_t len;		/* block aligned, except a run clamped at the end of the file */
	uint64_t dst_off;	/* block aligned offset in the region */
};

struct p2pio_span {
	uint64_t off;
	uint64_t size;
};

/*
 * Lay @n ranges @ext out: @runs (an array of at least @n entries) receives the runs,
 * @dst[i] the region offset of range i, and the region's size comes back in @region.
 * Ranges closer than @gap bytes share a run (reading a small gap costs less than another
 * read). @align is a power of two; runs are clamped to @file_size. Ranges may come in any
 * order, but must not overlap.
 * Return: the number of runs, or -EINVAL (bad alignment, range past the file, overlap),
 * -EOVERFLOW, -ENOMEM.
 */
P2PIO_HIDDEN int p2pio_layout(const struct p2pio_span *ext, uint32_t n, uint64_t align,
			      uint64_t gap, uint64_t file_size, struct p2pio_run *runs,
			      uint64_t *dst, uint64_t *region);

/*
 * Scheduler: which layer lives in which slot. A slot holds at most one layer and is
 *   loading  - a read into it is in flight;
 *   held     - acquired: a stream computes on it;
 *   busy     - released, but the stream's work on it may still run (its event has not
 *              been seen complete): it may be evicted only after waiting for that event;
 * or none of these: evictable right away. The prefetch window (the @prefetch layers after
 * the last acquired one, in cyclic order) is protected from eviction by other prefetches.
 *
 * Victims: an empty slot first, then slots that need no wait, then the rest. Among slots
 * that need no wait, the layer whose next use lies furthest ahead in the cyclic order
 * (Belady's choice, since a forward pass visits the layers in order), or the least recently
 * released one (LRU). Among slots that need a wait, the one released first: a stream runs
 * its work in order, so that slot frees first, while the one Belady would pick is usually
 * the layer just released, whose compute may not even have started; waiting for it would
 * hold the next load back by a whole layer's compute (every pass, at the pass boundary).
 */
struct p2pio_sched_slot {
	int32_t layer;		/* -1: empty */
	bool loading;
	bool held;
	bool busy;
	bool consumed;		/* an acquire has used this load already */
	bool reserved;		/* someone waits for its stream work, to load into it */
	bool used;		/* has ever held a layer */
	uint64_t stamp;		/* release order, for LRU */
};

struct p2pio_sched_counts {
	uint64_t loads;
	uint64_t acquires;
	uint64_t hits;
	uint64_t reuses;
	uint64_t wasted;
};

struct p2pio_sched {
	uint32_t nlayers;
	uint32_t nslots;
	uint32_t prefetch;
	bool lru;
	int32_t cursor;		/* last layer acquired, -1 before the first */
	uint64_t clock;
	struct p2pio_sched_slot *slot;
	int32_t *where;		/* layer -> slot, -1 when no slot holds it */
	struct p2pio_sched_counts total;
	struct p2pio_sched_counts *layer;	/* per layer */
};

/* Slots a @budget gives after @resident bytes, at @slot_bytes each; -ENOSPC if none. */
P2PIO_HIDDEN int p2pio_sched_slots_for_budget(uint64_t budget, uint64_t resident,
					      uint64_t slot_bytes, uint32_t *slots);

/*
 * The default prefetch window for @nslots slots over @nlayers layers: every slot but the
 * acquired layer's loads ahead, up to P2PIO_SCHED_PREFETCH_MAX. Loading further ahead does
 * not hide more (a load that runs up to that many times its steady time is hidden behind as
 * many layers' compute); it takes slots that the furthest-next-use choice could keep layers
 * in for the next pass. 0 with one slot (nothing can load while it is held).
 */
#define P2PIO_SCHED_PREFETCH_MAX 3u
P2PIO_HIDDEN uint32_t p2pio_sched_default_prefetch(uint32_t nslots, uint32_t nlayers);

P2PIO_HIDDEN int p2pio_sched_init(struct p2pio_sched *s, uint32_t nlayers, uint32_t nslots,
				  uint32_t prefetch, bool lru);
P2PIO_HIDDEN void p2pio_sched_fini(struct p2pio_sched *s);

/* The slot holding @layer, or -1. */
P2PIO_HIDDEN int p2pio_sched_lookup(const struct p2pio_sched *s, uint32_t layer);

/*
 * The slot to load a layer into (a prefetch when @prefetch): -EAGAIN when the only
 * candidates are loading or reserved, or busy and !@may_wait (wait for a completion, then ask again);
 * -ENOSPC when every slot is held (or, for a prefetch, protected). Changes nothing;
 * p2pio_sched_assign() commits.
 */
P2PIO_HIDDEN int p2pio_sched_victim(const struct p2pio_sched *s, bool prefetch, bool may_wait);

/* Put @layer in @slot (evicting what it held) and mark it loading. */
P2PIO_HIDDEN void p2pio_sched_assign(struct p2pio_sched *s, uint32_t slot, uint32_t layer);
/* The load into @slot completed. */
P2PIO_HIDDEN void p2pio_sched_loaded(struct p2pio_sched *s, uint32_t slot);
/* The load into @slot failed: the slot is empty again. */
P2PIO_HIDDEN void p2pio_sched_failed(struct p2pio_sched *s, uint32_t slot);
/* @layer, in @slot, is acquired; moves the prefetch window. Counts a hit when it did not
 * need a load of its own. */
P2PIO_HIDDEN void p2pio_sched_hold(struct p2pio_sched *s, uint32_t slot);
/* Released; @busy: its stream work may still run. */
P2PIO_HIDDEN void p2pio_sched_release(struct p2pio_sched *s, uint32_t slot, bool busy);
/* The stream work on @slot is known complete. */
P2PIO_HIDDEN void p2pio_sched_idle(struct p2pio_sched *s, uint32_t slot);
/* Keep @slot from being chosen while its owner waits for it (unlocked). */
P2PIO_HIDDEN void p2pio_sched_reserve(struct p2pio_sched *s, uint32_t slot, bool on);

/*
 * The next layer of the prefetch window that no slot holds, nearest first, or -1 when the
 * window is covered.
 */
P2PIO_HIDDEN int p2pio_sched_next_prefetch(const struct p2pio_sched *s);

#endif /* P2PIO_MODEL_PLAN_H */
