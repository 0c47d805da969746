/* SPDX-License-Identifier: MIT */
/*
 * experts/residency.h - which experts are resident, and which to evict: the bookkeeping core
 * that the expert cache (real VRAM and I/O) and the trace replay (no memory at all) share,
 * so a hit rate measured by `p2pio-moe replay` is the hit rate the real cache gets with the
 * same policy, capacity and prefetch. Private to libp2pio.
 *
 * OWNER: helper experts-sim. CONTRACT with experts-cache: the functions below keep these
 * names and meanings; fields may be added. Single-threaded: the caller serialises.
 *
 * Model: a grid of nr_layers x nr_experts entries. Each entry is ABSENT, LOADING (a load was
 * issued; its bytes are committed) or RESIDENT. Capacity is counted in bytes (experts of
 * different layers may differ in size): a global budget; optional per-layer floors (a layer
 * is never taken below its floor by another layer's miss); optional per-layer caps (a layer
 * never holds more than its cap: a miss beyond it evicts from its own layer - this is how a
 * "C experts per layer" cache is expressed). An entry may be pinned (never evicted) and
 * busy (a reference count: queued GPU work uses it; never evicted while > 0). LOADING
 * entries are never evicted either (their I/O is in flight).
 *
 * Call order for a demand access (require):
 *	hit = p2pio_residency_access(r, l, e);
 *	if (!hit) { p2pio_residency_admit(r, l, e, false, ...); issue the load;
 *		    ... p2pio_residency_loaded(r, l, e, err); }
 * A demand admit (prefetch false) must follow the access that missed: the policy is told of
 * the insertion and then of that access. A prefetch is an admit (prefetch true) alone.
 */
#ifndef P2PIO_EXPERTS_RESIDENCY_H
#define P2PIO_EXPERTS_RESIDENCY_H

#include "internal.h"

enum p2pio_res_state {
	P2PIO_RES_ABSENT,
	P2PIO_RES_LOADING,
	P2PIO_RES_RESIDENT,
};

/*
 * @expert_bytes: [nr_layers] bytes one expert of that layer commits (each > 0).
 * @budget:       bytes, all layers together.
 * @layer_floor:  [nr_layers] bytes, or NULL.
 * @layer_cap:    [nr_layers] bytes, or NULL (no cap but the budget).
 * @policy:       the eviction policy; @policy_args its option string (NULL: defaults),
 *                @policy_data its create hook's @data (the oracle's future).
 * @warmup_tokens: with @fixed_warmup, the steady state starts after this many tokens;
 *                without it, after the first token during which a load had to evict.
 */
struct p2pio_residency_opts {
	uint32_t nr_layers;
	uint32_t nr_experts;
	const uint64_t *expert_bytes;
	uint64_t budget;
	const uint64_t *layer_floor;
	const uint64_t *layer_cap;
	const struct p2pio_expert_policy_ops *policy;
	const char *policy_args;
	const void *policy_data;
	uint64_t warmup_tokens;
	bool fixed_warmup;
};

struct p2pio_residency;

/* Return 0, or -EINVAL (bad options, with a message in @err), -ENOMEM, or the policy's
 * create error. */
P2PIO_HIDDEN int p2pio_residency_create(const struct p2pio_residency_opts *o,
					struct p2pio_residency **out, struct p2pio_error *err);
P2PIO_HIDDEN void p2pio_residency_destroy(struct p2pio_residency *r);

/* ABSENT for a (layer, expert) out of range. */
P2PIO_HIDDEN enum p2pio_res_state p2pio_residency_state(const struct p2pio_residency *r,
							uint32_t layer, uint32_t expert);

/*
 * Make room for (layer, expert) and mark it LOADING: evicts victims chosen by the policy
 * among entries that are RESIDENT, not pinned, not busy and not protected by a floor, until
 * the layer's cap and the budget hold it. All or nothing: on failure nothing changed.
 * Victims are returned in @victims (capacity @max_victims; the caller releases their
 * memory; @victims may be NULL when the caller has no memory to release) and their count in
 * *@nr_victims (may be NULL).
 * @prefetch: the load is a prefetch (statistics: used / wasted), not a demand miss.
 * Return: 0; -ENOSPC when nothing evictable frees enough (the caller waits for busy entries
 * to drain, then retries; or the expert is larger than the budget or its layer's cap);
 * -EEXIST when the entry is not ABSENT; -ENOBUFS when more than @max_victims victims would
 * be needed; -EINVAL for a (layer, expert) out of range.
 */
P2PIO_HIDDEN int p2pio_residency_admit(struct p2pio_residency *r, uint32_t layer,
				       uint32_t expert, bool prefetch,
				       struct p2pio_expert_ref *victims, size_t max_victims,
				       size_t *nr_victims);
/* The load finished (LOADING -> RESIDENT), or failed (err != 0: -> ABSENT, bytes given
 * back, the policy told; a withdrawn prefetch is p2pio_residency_withdrawn()'s), having
 * read all of the expert's bytes, as the replay's loads do. No-op for an entry that is not
 * LOADING. */
P2PIO_HIDDEN void p2pio_residency_loaded(struct p2pio_residency *r, uint32_t layer,
					 uint32_t expert, int err);
/* The same, having read @read bytes (the cache's loads: their reads, which may be fewer
 * bytes than the memory an expert takes; a failed one what it read before). bytes_loaded
 * counts a load only here (or in p2pio_residency_withdrawn()), when it is over: @read, at
 * most the expert's bytes. */
P2PIO_HIDDEN void p2pio_residency_loaded_read(struct p2pio_residency *r, uint32_t layer,
					      uint32_t expert, int err, uint64_t read);
/* A prefetch's load withdrawn (LOADING -> ABSENT) after @read of its bytes had been read
 * (0: none): still a wasted prefetch, and bytes_loaded counts only what was read (at most
 * the expert's bytes). No-op for an entry that is not LOADING. */
P2PIO_HIDDEN void p2pio_residency_withdrawn(struct p2pio_residency *r, uint32_t layer,
					    uint32_t expert, uint64_t read);
/* A demand access (require): counts hit or miss, tells the policy. Returns true on a hit
 * (RESIDENT or LOADING: LOADING counts as a hit on a load in flight, and as "late" in the
 * statistics). Out of range: false, counts nothing. */
P2PIO_HIDDEN bool p2pio_residency_access(struct p2pio_residency *r, uint32_t layer,
					 uint32_t expert);
/* Drop a RESIDENT, unpinned, idle entry now (the caller frees its memory): 0, -EBUSY
 * (pinned, busy or loading), -ENOENT (absent), -EINVAL (out of range). */
P2PIO_HIDDEN int p2pio_residency_evict(struct p2pio_residency *r, uint32_t layer,
				       uint32_t expert);

/* Pin or unpin a RESIDENT or LOADING entry: 0, -ENOENT when ABSENT, -EINVAL out of range. */
P2PIO_HIDDEN int p2pio_residency_pin(struct p2pio_residency *r, uint32_t layer,
				     uint32_t expert, bool pin);
/* Busy references: put without a get is ignored (never underflows). */
P2PIO_HIDDEN void p2pio_residency_busy_get(struct p2pio_residency *r, uint32_t layer,
					   uint32_t expert);
P2PIO_HIDDEN void p2pio_residency_busy_put(struct p2pio_residency *r, uint32_t layer,
					   uint32_t expert);

P2PIO_HIDDEN void p2pio_residency_token_begin(struct p2pio_residency *r);
P2PIO_HIDDEN void p2pio_residency_token_end(struct p2pio_residency *r);

/* Bytes committed (RESIDENT + LOADING), all layers. */
P2PIO_HIDDEN uint64_t p2pio_residency_used(const struct p2pio_residency *r);

/* Statistics (struct p2pio_expert_stats in p2pio/expert_policy.h). @st->size must be set;
 * fields past it are not written. -EINVAL for a size smaller than the first field. */
P2PIO_HIDDEN int p2pio_residency_stats(const struct p2pio_residency *r,
				       struct p2pio_expert_stats *st);
P2PIO_HIDDEN int p2pio_residency_layer_stats(const struct p2pio_residency *r, uint32_t layer,
					     struct p2pio_expert_layer_stats *st);
/* Add @ns to the stall counter (stall_ns): the real cache measures its waits. */
P2PIO_HIDDEN void p2pio_residency_add_stall(struct p2pio_residency *r, uint64_t ns);

#endif /* P2PIO_EXPERTS_RESIDENCY_H */
