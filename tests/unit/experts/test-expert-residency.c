// SPDX-License-Identifier: MIT
/*
 * test-expert-residency.c - the expert residency core: budget, per-layer caps and floors,
 * pins, busy references, all-or-nothing admission, statistics; and the built-in policies
 * on access strings with known answers (Belady's 1966 example).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "experts/policy.h"
#include "experts/residency.h"
#include "tap.h"

static struct p2pio_residency *mk(uint32_t layers, uint32_t experts, uint64_t budget,
				  const uint64_t *floor, const uint64_t *cap, const char *policy,
				  const char *args, const void *data)
{
	struct p2pio_residency_opts o = { 0 };
	struct p2pio_residency *r = NULL;
	struct p2pio_error err = { 0 };
	uint64_t bytes[8];
	uint32_t l;

	for (l = 0; l < layers; l++)
		bytes[l] = 1;
	o.nr_layers = layers;
	o.nr_experts = experts;
	o.expert_bytes = bytes;
	o.budget = budget;
	o.layer_floor = floor;
	o.layer_cap = cap;
	o.policy = p2pio_expert_policy_find(policy);
	o.policy_args = args;
	o.policy_data = data;
	if (p2pio_residency_create(&o, &r, &err))
		tap_diag("create: %s", err.msg);
	return r;
}

/* Demand-access @seq on layer 0 and count the hits. */
static int run_seq(struct p2pio_residency *r, const uint32_t *seq, size_t n)
{
	int hits = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (p2pio_residency_access(r, 0, seq[i])) {
			hits++;
			continue;
		}
		if (p2pio_residency_admit(r, 0, seq[i], false, NULL, 0, NULL))
			return -1;
		p2pio_residency_loaded(r, 0, seq[i], 0);
	}
	return hits;
}

static int hits_of(const char *policy, uint32_t frames, const uint32_t *seq, size_t n)
{
	struct p2pio_expert_ref refs[64];
	struct pol_future f = { n, refs };
	struct p2pio_residency *r;
	size_t i;
	int hits;

	for (i = 0; i < n; i++)
		refs[i] = (struct p2pio_expert_ref){ 0, seq[i] };
	r = mk(1, 8, frames, NULL, NULL, policy, NULL, &f);
	if (!r)
		return -1;
	hits = run_seq(r, seq, n);
	p2pio_residency_destroy(r);
	return hits;
}

static void test_known_answers(void)
{
	/* Belady's example: OPT 5 hits with 3 frames, 6 with 4; LRU 2 and 4. */
	static const uint32_t belady[] = { 1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5 };
	/* A loop one larger than the cache: LRU never hits; LFU keeps the first C. */
	static const uint32_t loop[] = { 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3 };
	/* 0 is hot (every other access), then a scan of cold experts: LFU keeps 0, LRU too
	 * here (0 is always recent), both hit 0 five times. */
	static const uint32_t hot[] = { 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6 };
	size_t n = P2PIO_ARRAY_SIZE(belady);

	tap_is_int(hits_of("oracle", 3, belady, n), 5, "oracle: Belady's string, 3 frames: %s", "5 hits");
	tap_is_int(hits_of("oracle", 4, belady, n), 6, "oracle: Belady's string, 4 frames: %s", "6 hits");
	tap_is_int(hits_of("lru", 3, belady, n), 2, "lru: Belady's string, 3 frames: %s", "2 hits");
	tap_is_int(hits_of("lru", 4, belady, n), 4, "lru: Belady's string, 4 frames: %s", "4 hits");
	tap_is_int(hits_of("lru", 3, loop, 12), 0, "lru: a loop of 4 in 3 frames: %s", "no hit");
	/* Oracle on the loop: 3 frames, 4 items, 12 accesses: misses 4 cold + 1 per 3 after. */
	tap_is_int(hits_of("oracle", 3, loop, 12), 6, "oracle: a loop of 4 in 3 frames: %s", "6 hits");
	/* LFU on the loop: counts survive eviction, so all four rise in step and every
	 * eviction is a tie, broken least-recent-first: LFU degenerates to LRU, no hit. */
	tap_is_int(hits_of("lfu", 3, loop, 12), 0, "lfu: a loop of 4 in 3 frames: %s", "no hit");
	tap_is_int(hits_of("lrfu", 1, hot, 12), 0, "lrfu: one frame, alternating: %s", "no hit");
	tap_is_int(hits_of("lfu", 2, hot, 12), 5, "lfu: hot expert kept among scans: %s", "5 hits");
	tap_is_int(hits_of("lrfu", 2, hot, 12), 5, "lrfu: hot expert kept among scans: %s", "5 hits");
}

static void test_lfu_vs_lru(void)
{
	/* 0 and 1 used 4 times each, then 2 3 2 3 ...: in 3 frames LRU and LFU differ when a
	 * fourth expert arrives: LRU drops the oldest (0), plain LFU drops the rarest. */
	static const uint32_t s[] = { 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 0, 1 };
	int lru = hits_of("lru", 3, s, 12), lfu;
	struct p2pio_residency *r;

	/* lru: 0 1 hit x6; 2 miss; 3 evicts 0; 0 evicts 1; 1 evicts 2: 6 hits. */
	tap_is_int(lru, 6, "lru: frequency-blind: %s", "6 hits");
	r = mk(1, 8, 3, NULL, NULL, "lfu", "decay=1", NULL);
	lfu = r ? run_seq(r, s, 12) : -1;
	/* lfu (no decay): 3 evicts 2 (count 1, older); 0 and 1 hit: 8 hits. */
	tap_is_int(lfu, 8, "lfu decay=1: keeps the frequent ones: %s", "8 hits");
	p2pio_residency_destroy(r);
	tap_ok(!mk(1, 8, 3, NULL, NULL, "lfu", "decay=0", NULL), "lfu: decay=0 is refused");
	tap_ok(!mk(1, 8, 3, NULL, NULL, "lfu", "bogus=1", NULL), "lfu: an unknown option is refused");
	tap_ok(!mk(1, 8, 3, NULL, NULL, "lrfu", "lambda=", NULL), "lrfu: an empty value is refused");
	tap_ok(!mk(1, 8, 3, NULL, NULL, "oracle", NULL, NULL), "oracle: refused without a future");
	tap_ok(!p2pio_expert_policy_find("nope"), "an unknown policy name is not found");
}

static void test_budget_and_victims(void)
{
	struct p2pio_expert_ref v[4];
	struct p2pio_residency *r = mk(2, 4, 3, NULL, NULL, "lru", NULL, NULL);
	size_t n = 9;

	p2pio_residency_access(r, 0, 0);
	tap_is_int(p2pio_residency_admit(r, 0, 0, false, v, 4, &n), 0, "admit into an empty budget%s", "");
	tap_is_int((int)n, 0, "no victim while there is room%s", "");
	tap_is_int(p2pio_residency_state(r, 0, 0), P2PIO_RES_LOADING, "admitted entry is LOADING%s", "");
	tap_is_int(p2pio_residency_admit(r, 0, 0, false, v, 4, &n), -EEXIST, "admitting it twice: %s", "-EEXIST");
	p2pio_residency_loaded(r, 0, 0, 0);
	p2pio_residency_access(r, 1, 0);
	p2pio_residency_admit(r, 1, 0, false, v, 4, &n);
	p2pio_residency_access(r, 1, 1);
	p2pio_residency_admit(r, 1, 1, false, v, 4, &n);
	/* (1,0) and (1,1) are still LOADING: never evicted; (0,0) is the only candidate. */
	p2pio_residency_access(r, 0, 1);
	tap_is_int(p2pio_residency_admit(r, 0, 1, false, v, 4, &n), 0, "a full budget evicts%s", "");
	tap_ok(n == 1 && v[0].layer == 0 && v[0].expert == 0, "the only RESIDENT entry is the victim");
	tap_is_int((int)p2pio_residency_used(r), 3, "budget still holds%s", "");
	/* Everything is LOADING now: no victim. */
	p2pio_residency_access(r, 0, 2);
	tap_is_int(p2pio_residency_admit(r, 0, 2, false, v, 4, &n), -ENOSPC, "only loading entries: %s", "-ENOSPC");
	p2pio_residency_loaded(r, 1, 0, -EIO);
	tap_is_int(p2pio_residency_state(r, 1, 0), P2PIO_RES_ABSENT, "a failed load gives the entry back%s", "");
	tap_is_int(p2pio_residency_admit(r, 0, 2, false, v, 4, &n), 0, "its bytes are free again%s", "");
	tap_is_int(p2pio_residency_admit(r, 0, 3, false, v, 0, &n), -ENOSPC, "nothing resident to evict: %s", "-ENOSPC");
	p2pio_residency_loaded(r, 1, 1, 0);
	tap_is_int(p2pio_residency_admit(r, 0, 3, false, v, 0, &n), -ENOBUFS, "no room to report the victim: %s", "-ENOBUFS");
	tap_is_int(p2pio_residency_state(r, 1, 1), P2PIO_RES_RESIDENT, "a failed admit changed nothing%s", "");
	tap_is_int(p2pio_residency_admit(r, 9, 0, false, v, 4, &n), -EINVAL, "layer out of range: %s", "-EINVAL");
	p2pio_residency_destroy(r);
}

static void test_pin_busy(void)
{
	struct p2pio_residency *r = mk(1, 4, 2, NULL, NULL, "lru", NULL, NULL);
	struct p2pio_expert_ref v[2];
	size_t n;

	tap_is_int(p2pio_residency_pin(r, 0, 0, true), -ENOENT, "pinning an absent expert: %s", "-ENOENT");
	p2pio_residency_admit(r, 0, 0, true, v, 2, &n);
	p2pio_residency_loaded(r, 0, 0, 0);
	p2pio_residency_admit(r, 0, 1, true, v, 2, &n);
	p2pio_residency_loaded(r, 0, 1, 0);
	tap_is_int(p2pio_residency_pin(r, 0, 0, true), 0, "pin a resident expert%s", "");
	p2pio_residency_busy_get(r, 0, 1);
	tap_is_int(p2pio_residency_admit(r, 0, 2, false, v, 2, &n), -ENOSPC, "pinned + busy: %s", "-ENOSPC");
	tap_is_int(p2pio_residency_evict(r, 0, 1), -EBUSY, "explicit evict of a busy one: %s", "-EBUSY");
	p2pio_residency_busy_put(r, 0, 1);
	p2pio_residency_busy_put(r, 0, 1);	/* an extra put must not underflow */
	p2pio_residency_busy_get(r, 0, 1);
	tap_is_int(p2pio_residency_admit(r, 0, 2, false, v, 2, &n), -ENOSPC, "a put too many does not free it%s", "");
	p2pio_residency_busy_put(r, 0, 1);
	tap_is_int(p2pio_residency_admit(r, 0, 2, false, v, 2, &n), 0, "busy drained: admitted%s", "");
	tap_ok(n == 1 && v[0].expert == 1, "the unpinned one went, the pinned one stayed");
	p2pio_residency_pin(r, 0, 0, false);
	tap_is_int(p2pio_residency_evict(r, 0, 0), 0, "unpinned: explicit evict%s", "");
	p2pio_residency_destroy(r);
}

static void test_floor_cap(void)
{
	uint64_t floor[2] = { 2, 0 }, cap[2] = { 2, 2 };
	struct p2pio_expert_ref v[2];
	struct p2pio_residency *r = mk(2, 4, 3, floor, NULL, "lru", NULL, NULL);
	size_t n;

	p2pio_residency_admit(r, 0, 0, false, v, 2, &n);
	p2pio_residency_admit(r, 0, 1, false, v, 2, &n);
	p2pio_residency_admit(r, 1, 0, false, v, 2, &n);
	p2pio_residency_loaded(r, 0, 0, 0);
	p2pio_residency_loaded(r, 0, 1, 0);
	p2pio_residency_loaded(r, 1, 0, 0);
	/* Layer 0's experts are the least recent, but its floor keeps both. */
	tap_is_int(p2pio_residency_admit(r, 1, 1, false, v, 2, &n), 0, "floor: layer 1 admits%s", "");
	tap_ok(n == 1 && v[0].layer == 1 && v[0].expert == 0, "floor: layer 1 evicted its own, not layer 0's");
	/* Layer 0 may go below its own floor for its own miss. */
	tap_is_int(p2pio_residency_admit(r, 0, 2, false, v, 2, &n), 0, "floor: layer 0 admits%s", "");
	tap_ok(n == 1 && v[0].layer == 0 && v[0].expert == 0, "floor: a layer's own miss takes its LRU");
	p2pio_residency_destroy(r);

	r = mk(2, 4, 10, NULL, cap, "lru", NULL, NULL);
	p2pio_residency_admit(r, 1, 0, false, v, 2, &n);
	p2pio_residency_admit(r, 0, 0, false, v, 2, &n);
	p2pio_residency_admit(r, 0, 1, false, v, 2, &n);
	p2pio_residency_loaded(r, 1, 0, 0);
	p2pio_residency_loaded(r, 0, 0, 0);
	p2pio_residency_loaded(r, 0, 1, 0);
	tap_is_int(p2pio_residency_admit(r, 0, 2, false, v, 2, &n), 0, "cap: admitted under the cap%s", "");
	tap_ok(n == 1 && v[0].layer == 0 && v[0].expert == 0,
	       "cap: the layer's own LRU went, not the older expert of layer 1");
	p2pio_residency_destroy(r);
}

static void test_stats(void)
{
	struct p2pio_residency *r = mk(2, 4, 2, NULL, NULL, "lru", NULL, NULL);
	struct p2pio_expert_layer_stats ls;
	struct p2pio_expert_stats st;
	size_t n;

	/* token 1: prefetch 0/0 and 1/0, use 0/0 (prefetch used), miss 1/1 (evicts 1/0, a
	 * wrong guess once layer 1 came without it: wasted). Warm-up ends with this token (it
	 * evicted). */
	p2pio_residency_token_begin(r);
	p2pio_residency_admit(r, 0, 0, true, NULL, 0, &n);
	p2pio_residency_admit(r, 1, 0, true, NULL, 0, &n);
	tap_ok(p2pio_residency_access(r, 0, 0), "an access of a loading prefetch hits");
	p2pio_residency_loaded(r, 0, 0, 0);
	p2pio_residency_loaded(r, 1, 0, 0);
	tap_ok(!p2pio_residency_access(r, 1, 1), "an absent expert misses");
	p2pio_residency_admit(r, 1, 1, false, NULL, 0, &n);
	p2pio_residency_loaded(r, 1, 1, 0);
	p2pio_residency_token_end(r);
	/* token 2: two hits, one miss, in steady state. */
	p2pio_residency_token_begin(r);
	p2pio_residency_access(r, 0, 0);
	p2pio_residency_access(r, 1, 1);
	p2pio_residency_access(r, 1, 3);
	p2pio_residency_admit(r, 1, 3, false, NULL, 0, &n);
	p2pio_residency_token_end(r);

	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	tap_is_int(p2pio_residency_stats(r, &st), 0, "stats%s", "");
	tap_ok(st.tokens == 2 && st.accesses == 5 && st.hits == 3 && st.misses == 2,
	       "2 tokens, 5 accesses, 3 hits, 2 misses (%llu %llu %llu %llu)",
	       (unsigned long long)st.tokens, (unsigned long long)st.accesses,
	       (unsigned long long)st.hits, (unsigned long long)st.misses);
	tap_ok(st.late == 1, "one late hit (a prefetch still loading)");
	tap_ok(st.steady_tokens == 1 && st.steady_accesses == 3 && st.steady_hits == 2 &&
	       st.steady_misses == 1, "steady state excludes the warm-up token");
	tap_ok(st.prefetches == 2 && st.prefetch_used == 1 && st.prefetch_wasted == 1,
	       "2 prefetches: 1 used, 1 wasted");
	tap_ok(st.loads == 4 && st.bytes_loaded == 3 && st.evictions == 2,
	       "4 loads, 3 bytes moved (1/3 still loading), 2 evictions (%llu %llu %llu)",
	       (unsigned long long)st.loads,
	       (unsigned long long)st.bytes_loaded, (unsigned long long)st.evictions);
	tap_ok(st.max_token_faults == 1, "at most 1 fault in a token");
	tap_ok(st.missed_layers == 2 && st.steady_missed_layers == 1,
	       "2 layer accesses missed, 1 in steady state");
	p2pio_residency_layer_stats(r, 1, &ls);
	tap_ok(ls.accesses == 3 && ls.hits == 1 && ls.misses == 2 && ls.max_resident == 2,
	       "layer 1: 3 accesses, 1 hit, 2 misses, at most 2 resident");
	st.size = 4;
	st.tokens = 77;
	p2pio_residency_stats(r, &st);
	tap_ok(st.tokens == 77, "a short size leaves later fields alone");
	p2pio_residency_destroy(r);
}

/* Access (@l, @e), loading it on a miss. */
static void use(struct p2pio_residency *r, uint32_t l, uint32_t e)
{
	if (!p2pio_residency_access(r, l, e) && !p2pio_residency_admit(r, l, e, false, NULL, 0, NULL))
		p2pio_residency_loaded(r, l, e, 0);
}

/* Admit (@l, @e) (a prefetch with @pf) and load it; its single victim, or -1/-1. */
static struct p2pio_expert_ref admit_one(struct p2pio_residency *r, uint32_t l, uint32_t e,
					 bool pf, int *ret)
{
	struct p2pio_expert_ref v[2] = { { UINT32_MAX, UINT32_MAX } };
	size_t n = 0;

	*ret = p2pio_residency_admit(r, l, e, pf, v, 2, &n);
	if (!*ret)
		p2pio_residency_loaded(r, l, e, 0);
	return n == 1 ? v[0] : (struct p2pio_expert_ref){ UINT32_MAX, UINT32_MAX };
}

/*
 * A prefetch waits for the next access of its layer: no other miss or prefetch evicts it
 * while anything else can go (LRU would take it first here: it is the least recent), it
 * goes when nothing else can, and once its layer was accessed without it it is an expert
 * like any other.
 */
static void test_waiting_prefetch(void)
{
	struct p2pio_residency *r = mk(3, 8, 2, NULL, NULL, "lru", NULL, NULL);
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_expert_ref v;
	int ret;

	p2pio_residency_token_begin(r);
	admit_one(r, 2, 0, true, &ret);		/* a hint for layer 2, the least recent */
	use(r, 0, 0);
	v = admit_one(r, 1, 0, false, &ret);	/* layer 1's miss: 0/0 goes, not the hint */
	p2pio_residency_access(r, 1, 0);
	tap_ok(!ret && v.layer == 0 && v.expert == 0,
	       "a miss elsewhere takes another expert, not the hint waiting for its layer (%u/%u)",
	       v.layer, v.expert);
	p2pio_residency_pin(r, 1, 0, true);
	v = admit_one(r, 1, 1, false, &ret);	/* only the hint can go: it does */
	tap_ok(!ret && v.layer == 2 && v.expert == 0,
	       "with nothing else evictable the waiting hint goes, no -ENOSPC (%d, %u/%u)", ret,
	       v.layer, v.expert);
	p2pio_residency_pin(r, 1, 0, false);
	p2pio_residency_token_end(r);

	/* A wrong guess: layer 2 comes without it, and it is the LRU again. */
	p2pio_residency_token_begin(r);
	admit_one(r, 2, 1, true, &ret);		/* evicts 1/0 (LRU): room for the hint */
	p2pio_residency_access(r, 1, 1);	/* 1/1 the most recent */
	tap_ok(!p2pio_residency_access(r, 2, 2), "layer 2 comes, routed elsewhere: a miss");
	v = admit_one(r, 2, 2, false, &ret);
	tap_ok(!ret && v.layer == 2 && v.expert == 1,
	       "once its layer came without it the hint is the LRU's victim (%u/%u)", v.layer,
	       v.expert);
	p2pio_residency_token_end(r);
	p2pio_residency_stats(r, &st);
	tap_ok(st.prefetches == 2 && st.prefetch_used == 0 && st.prefetch_wasted == 2,
	       "2 prefetches, both wasted (%llu, %llu, %llu)", (unsigned long long)st.prefetches,
	       (unsigned long long)st.prefetch_used, (unsigned long long)st.prefetch_wasted);
	p2pio_residency_destroy(r);
}

/*
 * Missed layers: a token's consecutive accesses of one layer are one layer access, counted
 * once however many of its experts miss; a token boundary starts a new one even at the
 * same layer (a one-layer model's tokens).
 */
static void test_missed_layers(void)
{
	struct p2pio_residency *r = mk(2, 8, 16, NULL, NULL, "lru", NULL, NULL);
	struct p2pio_expert_stats st = { .size = sizeof(st) };

	p2pio_residency_token_begin(r);		/* both layers miss, layer 0 twice: 2 */
	use(r, 0, 0);
	use(r, 0, 1);
	use(r, 1, 0);
	p2pio_residency_token_end(r);
	p2pio_residency_token_begin(r);		/* layer 0 hits twice, layer 1 misses once: 1 */
	use(r, 0, 0);
	use(r, 0, 1);
	use(r, 1, 0);
	use(r, 1, 2);
	p2pio_residency_token_end(r);
	p2pio_residency_token_begin(r);		/* layer 0 in two calls, both miss: 1 */
	use(r, 0, 3);
	use(r, 0, 4);
	use(r, 1, 0);
	p2pio_residency_token_end(r);
	p2pio_residency_token_begin(r);		/* layer 1 alone, then again next token: 2 */
	use(r, 1, 5);
	p2pio_residency_token_end(r);
	p2pio_residency_token_begin(r);
	use(r, 1, 6);
	p2pio_residency_token_end(r);
	p2pio_residency_stats(r, &st);
	tap_ok(st.misses == 8 && st.missed_layers == 6 && st.steady_missed_layers == 0,
	       "8 misses in 6 missed layer accesses, none steady (the budget never filled): "
	       "%llu, %llu, %llu", (unsigned long long)st.misses,
	       (unsigned long long)st.missed_layers, (unsigned long long)st.steady_missed_layers);
	p2pio_residency_destroy(r);
}

/* One layer of @experts experts of 1000 bytes each, LRU, @budget bytes; NULL (and a failed
 * test) where it cannot be made. */
static struct p2pio_residency *mk1000(uint32_t experts, uint64_t budget)
{
	static const uint64_t bytes[1] = { 1000 };
	struct p2pio_residency_opts o = { 0 };
	struct p2pio_residency *r = NULL;
	struct p2pio_error err = { 0 };

	o.nr_layers = 1;
	o.nr_experts = experts;
	o.expert_bytes = bytes;
	o.budget = budget;
	o.policy = p2pio_expert_policy_find("lru");
	if (p2pio_residency_create(&o, &r, &err))
		tap_ok(0, "create: %s", err.msg);
	return r;
}

/*
 * A prefetch withdrawn (a wrong hint): unread it moved nothing, cut short it moved what
 * was read (never more than the expert); wasted either way, and its room is free again.
 */
static void test_withdrawn(void)
{
	struct p2pio_residency *r = mk1000(4, 2000);
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	size_t n;

	if (!r)
		return;
	p2pio_residency_admit(r, 0, 0, true, NULL, 0, &n);
	p2pio_residency_admit(r, 0, 1, true, NULL, 0, &n);
	p2pio_residency_admit(r, 0, 2, true, NULL, 0, &n);	/* over budget: refused */
	p2pio_residency_withdrawn(r, 0, 0, 0);		/* withdrawn unread */
	p2pio_residency_withdrawn(r, 0, 1, 400);	/* cut short after 400 bytes */
	p2pio_residency_withdrawn(r, 0, 1, 400);	/* not LOADING any more: nothing */
	p2pio_residency_stats(r, &st);
	tap_ok(st.prefetches == 2 && st.prefetch_wasted == 2 && st.bytes_loaded == 400,
	       "withdrawn: unread moves 0 bytes, cut short its 400, both wasted (%llu bytes, %llu "
	       "wasted)", (unsigned long long)st.bytes_loaded,
	       (unsigned long long)st.prefetch_wasted);
	tap_ok(p2pio_residency_state(r, 0, 0) == P2PIO_RES_ABSENT &&
	       p2pio_residency_state(r, 0, 1) == P2PIO_RES_ABSENT &&
	       !p2pio_residency_admit(r, 0, 2, false, NULL, 0, &n) &&
	       !p2pio_residency_admit(r, 0, 3, false, NULL, 0, &n),
	       "withdrawn: absent, their room taken by two others");
	p2pio_residency_loaded(r, 0, 2, 0);
	p2pio_residency_loaded(r, 0, 3, 0);
	p2pio_residency_admit(r, 0, 0, true, NULL, 0, &n);
	p2pio_residency_withdrawn(r, 0, 0, 5000);	/* more than the expert: clamped */
	p2pio_residency_stats(r, &st);
	tap_ok(st.bytes_loaded == 400 + 2000 + 1000, "withdrawn: what was read counts at most "
	       "the expert's bytes (%llu)", (unsigned long long)st.bytes_loaded);
	p2pio_residency_destroy(r);
}

/*
 * bytes_loaded counts what each load read, when it is over: nothing while it is in
 * flight; a load that ends with what it read (the cache's: its reads, which may be fewer
 * bytes than the memory the expert takes) that, done or failed; one that is not told
 * (the replay's) the expert's bytes; never more than the expert's bytes.
 */
static void test_loaded_read(void)
{
	struct p2pio_residency *r = mk1000(6, 6000);
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	size_t n;

	if (!r)
		return;
	p2pio_residency_admit(r, 0, 0, false, NULL, 0, &n);
	p2pio_residency_stats(r, &st);
	tap_ok(st.loads == 1 && st.bytes_loaded == 0,
	       "loaded_read: a load in flight has read nothing yet (%llu bytes)",
	       (unsigned long long)st.bytes_loaded);
	p2pio_residency_loaded_read(r, 0, 0, 0, 600);	/* done: 600 bytes of reads */
	p2pio_residency_admit(r, 0, 1, false, NULL, 0, &n);
	p2pio_residency_loaded_read(r, 0, 1, -EIO, 200);	/* failed after 200 */
	p2pio_residency_admit(r, 0, 2, false, NULL, 0, &n);
	p2pio_residency_loaded(r, 0, 2, 0);		/* the replay's: the expert's bytes */
	p2pio_residency_admit(r, 0, 3, false, NULL, 0, &n);
	p2pio_residency_loaded_read(r, 0, 3, 0, 5000);	/* more than the expert: clamped */
	p2pio_residency_loaded_read(r, 0, 3, 0, 700);	/* not LOADING any more: nothing */
	p2pio_residency_stats(r, &st);
	tap_ok(st.loads == 4 && st.bytes_loaded == 600 + 200 + 1000 + 1000,
	       "loaded_read: each load counts what it read, at most the expert's bytes (%llu)",
	       (unsigned long long)st.bytes_loaded);
	tap_ok(p2pio_residency_state(r, 0, 0) == P2PIO_RES_RESIDENT &&
	       p2pio_residency_state(r, 0, 1) == P2PIO_RES_ABSENT &&
	       p2pio_residency_state(r, 0, 3) == P2PIO_RES_RESIDENT,
	       "loaded_read: done is resident, failed is absent");
	p2pio_residency_destroy(r);
}

int main(void)
{
	tap_plan_lazy();
	test_known_answers();
	test_lfu_vs_lru();
	test_budget_and_victims();
	test_pin_busy();
	test_floor_cap();
	test_stats();
	test_waiting_prefetch();
	test_missed_layers();
	test_withdrawn();
	test_loaded_read();
	return tap_exit();
}
