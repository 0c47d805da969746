/* SPDX-License-Identifier: MIT */
/*
 * p2pio/expert_policy.h - libp2pio: expert-cache eviction policies (the pluggable interface
 * and the built-in ones) and the statistics an expert cache, or a replay of a routing trace,
 * keeps.
 *
 * Part of the public API; include <p2pio.h>, which includes every part. Its source is
 * userlib/src/experts/.
 */
#ifndef P2PIO_PUBLIC_EXPERT_POLICY_H
#define P2PIO_PUBLIC_EXPERT_POLICY_H

#include "p2pio/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ===================================================================================== */
/* Expert policies and statistics                               (userlib/src/experts/)    */
/* ===================================================================================== */

/*
 * An MoE model's experts form a grid: nr_layers x nr_experts. An expert cache keeps some of
 * them resident under a byte budget; when a missing expert must come in and the budget is
 * full, a policy chooses which resident expert goes. The cache itself decides which experts
 * may go at all (not pinned, not in use by queued GPU work, not below a layer's floor): the
 * policy only orders them, through the @evictable callback it is handed.
 *
 * Built-in policies (p2pio_expert_policy_find()):
 *   "lru"    least recently used.
 *   "lfu"    least frequently used, counts decayed by a factor per token ("decay=0.95";
 *            1.0 is plain LFU); ties go to the least recently used. Counts are kept for
 *            experts that are not resident too (a returning expert keeps its history).
 *   "lrfu"   least recently/frequently used (Lee et al., 2001): each expert's combined
 *            recency-frequency value is the sum over its past uses of 2^(-lambda * age in
 *            tokens) ("lambda=0.05"); lambda 0 is LFU, a large lambda is LRU. See
 *            Documentation/moe.md for why this one.
 *   "oracle" Belady's offline optimum: evicts the expert whose next use is furthest in the
 *            future. Needs the future: only a replay of a trace can create it (its create
 *            hook is given the future through @data); p2pio_expert_policy_find() returns
 *            it, but a cache without a trace gets -EINVAL from its create.
 */

/** struct p2pio_expert_ref - one expert of one layer. */
struct p2pio_expert_ref {
	uint32_t layer;
	uint32_t expert;
};

/* Any layer: the @layer argument of a policy's victim hook. */
#define P2PIO_EXPERT_ANY_LAYER UINT32_MAX

/**
 * struct p2pio_expert_policy_ops - an eviction policy, as the cache calls it.
 * @name:      short name ("lru", "lfu", ...), shown in reports and chosen by name.
 * @create:    allocate state for a grid of @nr_layers x @nr_experts; @args is the policy's
 *             option string ("key=value,key=value") or NULL for its defaults; @data is
 *             policy-specific (the oracle's future; NULL for the others). Return 0 or
 *             -errno (-EINVAL for bad @args or missing @data).
 * @destroy:   free the state.
 * @inserted:  the expert was admitted (its load was issued: a demand miss or a prefetch).
 * @accessed:  a demand access of the expert (a hit, or the access that follows its
 *             insertion on a miss).
 * @removed:   the expert was evicted, or its load failed.
 * @victim:    choose an expert to evict, from @layer only or from any layer
 *             (P2PIO_EXPERT_ANY_LAYER): the policy considers its candidates in its order and
 *             returns the first for which @evictable(@arg, ref) is true. Return 0 and fill
 *             @out, or -ENOENT when no evictable expert exists.
 * @token_end: a token finished (decay, aging); may be NULL.
 *
 * Every hook that takes a @tick gets the number of demand accesses the cache saw before
 * this event: an access gets its own 0-based index, an insertion the index of the next
 * access. The oracle uses it to find the next use in its trace.
 */
struct p2pio_expert_policy_ops {
	const char *name;
	int (*create)(void **state, uint32_t nr_layers, uint32_t nr_experts, const char *args,
		      const void *data);
	void (*destroy)(void *state);
	void (*inserted)(void *state, struct p2pio_expert_ref ref, uint64_t tick);
	void (*accessed)(void *state, struct p2pio_expert_ref ref, uint64_t tick);
	void (*removed)(void *state, struct p2pio_expert_ref ref);
	int (*victim)(void *state, uint32_t layer,
		      bool (*evictable)(void *arg, struct p2pio_expert_ref ref), void *arg,
		      struct p2pio_expert_ref *out);
	void (*token_end)(void *state, uint64_t token);
};

/**
 * p2pio_expert_policy_find() - a built-in policy by name.
 * @name: "lru", "lfu", "lrfu" or "oracle".
 *
 * Return: the policy, or NULL for an unknown name.
 */
const struct p2pio_expert_policy_ops *p2pio_expert_policy_find(const char *name);

/**
 * p2pio_expert_policy_name() - the name of the @i-th built-in policy (0, 1, ...).
 * @i: index.
 *
 * Return: its name, or NULL past the last one. Lets tools list them.
 */
const char *p2pio_expert_policy_name(unsigned int i);

/**
 * struct p2pio_expert_stats - what an expert cache (or a replay) did.
 * @size:            sizeof(struct p2pio_expert_stats) as the caller knows it; set it before
 *                   the call, so the struct can grow without breaking old callers.
 * @tokens:          tokens ended (token_end markers).
 * @accesses:        demand accesses (one per expert a token's layer asked for).
 * @hits:            accesses that found the expert resident or already loading.
 * @misses:          accesses that had to load the expert (faults).
 * @late:            hits on an expert still loading (a prefetch in flight; counted in @hits).
 * @max_token_faults: the most misses of any one token.
 * @steady_tokens:   tokens after the warm-up (see below), and the same counters over them:
 * @steady_accesses: ...
 * @steady_hits:     ...
 * @steady_misses:   ...
 * @loads:           loads issued (demand misses and prefetches).
 * @bytes_loaded:    bytes those loads moved, counted as each load ends: a cache's load the
 *                   bytes its reads read (which may be fewer than the memory the expert
 *                   takes: that is rounded up to the allocation granularity), one that
 *                   failed or was withdrawn what it read before (a prefetch withdrawn unread
 *                   moved none), one still in flight nothing yet; a replay's load the
 *                   expert's bytes it was given.
 * @evictions:       experts evicted.
 * @prefetches:      prefetch loads issued (hints for experts already resident or loading
 *                   are not counted: they move nothing).
 * @prefetch_used:   prefetched experts that a demand access used before their eviction.
 * @prefetch_wasted: prefetched experts evicted (or still resident at the end, never used:
 *                   counted when the statistics are read).
 * @stall_ns:        time streams waited for missing experts (a real cache; 0 in a replay).
 * @missed_layers:   layer accesses with at least one miss: a token's consecutive accesses
 *                   of one layer (a require call) are one layer access. Where each layer
 *                   is required only once its routing is known, each is a wait of the
 *                   stream for storage that no earlier work hides (hits on loads still in
 *                   flight, @late, can add waits of their own).
 * @steady_missed_layers: ... of them after the warm-up.
 *
 * The warm-up is the tokens up to and including the first one during which the budget was
 * full (a load had to evict), unless the cache was told a fixed warm-up token count; a
 * cache that never filled has no steady state (@steady_tokens 0).
 */
struct p2pio_expert_stats {
	uint32_t size;
	uint32_t reserved;
	uint64_t tokens;
	uint64_t accesses;
	uint64_t hits;
	uint64_t misses;
	uint64_t late;
	uint64_t max_token_faults;
	uint64_t steady_tokens;
	uint64_t steady_accesses;
	uint64_t steady_hits;
	uint64_t steady_misses;
	uint64_t loads;
	uint64_t bytes_loaded;
	uint64_t evictions;
	uint64_t prefetches;
	uint64_t prefetch_used;
	uint64_t prefetch_wasted;
	uint64_t stall_ns;
	uint64_t missed_layers;
	uint64_t steady_missed_layers;
};

/**
 * struct p2pio_expert_layer_stats - one layer's share of the statistics.
 * @accesses:     demand accesses of the layer's experts.
 * @hits:         ... that hit.
 * @misses:       ... that missed.
 * @max_resident: the most experts of the layer resident (or loading) at once.
 * @resident:     experts of the layer resident or loading now.
 */
struct p2pio_expert_layer_stats {
	uint64_t accesses;
	uint64_t hits;
	uint64_t misses;
	uint32_t max_resident;
	uint32_t resident;
};

#ifdef __cplusplus
}
#endif

#endif /* P2PIO_PUBLIC_EXPERT_POLICY_H */
