// SPDX-License-Identifier: MIT
/*
 * test-expert-predict.c - the replay's learned (co-occurrence) prefetch and its rule that a
 * layer's experts stay resident while the layer runs, on hand-made traces with answers
 * worked out by hand; and the synthetic generator's refinements (tail cutoff, per-layer
 * spread, popularity drift, the cross-layer chain).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <p2pio.h>

#include "tap.h"

/* A trace of @n tokens, @layers layers, one expert per cell: token t picks xs[t] at every
 * layer. */
static struct p2pio_expert_trace *mirror_trace(const uint32_t *xs, size_t n, uint32_t layers,
					       uint32_t experts)
{
	struct p2pio_expert_trace_info info = { .nr_layers = layers, .nr_experts = experts,
						.top_k = 1 };
	struct p2pio_expert_trace *t = NULL;
	size_t i;
	uint32_t l;

	if (p2pio_expert_trace_new(&info, &t, NULL))
		tap_bail("trace_new");
	for (i = 0; i < n; i++) {
		for (l = 0; l < layers; l++)
			p2pio_expert_trace_add(t, l, &xs[i], 1, NULL);
		p2pio_expert_trace_end_token(t, 0, NULL);
	}
	return t;
}

/*
 * Two layers, two experts, one per layer per token, capacity 1 per layer; tokens alternate
 * 0, 1, 0, 1, 0, 1 and each token picks the same expert at both layers.
 *  - No prefetch: every access misses (12 misses).
 *  - Learned: layer 1 is predicted from the token's layer 0 with what earlier tokens showed;
 *    the pairs 0->0 and 1->1 are learned from tokens 0 and 1, so tokens 2..5 hit at layer 1
 *    (4 hits). Layer 0 is predicted from the token before's layer 1: token 1 learns 0->1,
 *    token 2 learns 1->0, so tokens 3..5 hit (3 hits). 7 hits, 5 misses, 7 prefetches, all
 *    used; a miss is never turned into a hit before the pair was seen once.
 */
static void test_learned(void)
{
	static const uint32_t xs[] = { 0, 1, 0, 1, 0, 1 };
	struct p2pio_expert_replay_opts o = { .policy = "lru", .capacity = 1, .per_layer = true };
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_expert_layer_stats ls[2];
	struct p2pio_error err = { 0 };
	struct p2pio_expert_trace *t = mirror_trace(xs, 6, 2, 2);

	tap_is_int(p2pio_expert_replay(t, &o, &st, ls, &err), 0, "replay without prefetch");
	tap_ok(st.hits == 0 && st.misses == 12, "alternating experts, 1 frame: all 12 miss");
	o.prefetch = P2PIO_EXPERT_PREFETCH_LEARNED;
	tap_is_int(p2pio_expert_replay(t, &o, &st, ls, &err), 0, "replay with learned prefetch");
	tap_ok(ls[1].hits == 4 && ls[0].hits == 3, "layer 1: 4 hits, layer 0: 3 hits (%llu, %llu)",
	       (unsigned long long)ls[1].hits, (unsigned long long)ls[0].hits);
	tap_ok(st.hits == 7 && st.misses == 5 && st.prefetches == 7 && st.prefetch_used == 7 &&
	       st.prefetch_wasted == 0 && st.loads == 12,
	       "7 hits, 5 misses, 7 prefetches all used, 12 loads (%llu/%llu/%llu/%llu/%llu)",
	       (unsigned long long)st.hits, (unsigned long long)st.misses,
	       (unsigned long long)st.prefetches, (unsigned long long)st.prefetch_used,
	       (unsigned long long)st.loads);
	o.prefetch = P2PIO_EXPERT_PREFETCH_LAG;
	p2pio_expert_replay(t, &o, &st, ls, &err);
	tap_ok(st.hits == 0 && st.prefetches == 0,
	       "lag prefetch on alternating experts: the token before's expert is resident, nothing to load");
	o.prefetch = 0x80;
	tap_is_int(p2pio_expert_replay(t, &o, &st, NULL, &err), -EINVAL, "unknown prefetch bits: %s",
		   "-EINVAL");
	p2pio_expert_trace_free(t);
}

/* A mapping that changes: the learned predictor follows what it has seen, never the future. */
static void test_learned_no_future(void)
{
	/* Layer 0 picks 0 always; layer 1 picks 1 for 4 tokens, then 2 for 4 tokens. */
	struct p2pio_expert_trace_info info = { .nr_layers = 2, .nr_experts = 3, .top_k = 1 };
	struct p2pio_expert_replay_opts o = { .policy = "lru", .capacity = 1, .per_layer = true,
					      .prefetch = P2PIO_EXPERT_PREFETCH_LEARNED };
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_expert_layer_stats ls[2];
	struct p2pio_expert_trace *t = NULL;
	uint32_t i, zero = 0;

	p2pio_expert_trace_new(&info, &t, NULL);
	for (i = 0; i < 8; i++) {
		uint32_t x = i < 4 ? 1 : 2;

		p2pio_expert_trace_add(t, 0, &zero, 1, NULL);
		p2pio_expert_trace_add(t, 1, &x, 1, NULL);
		p2pio_expert_trace_end_token(t, 0, NULL);
	}
	p2pio_expert_replay(t, &o, &st, ls, NULL);
	/*
	 * Layer 1 is predicted from the token's layer 0 (always 0: full weight) and from the
	 * token before's layer 1 (two layers back: half weight). Token 0 misses (nothing
	 * learned), 1-3 hit. Token 4 misses: all that was seen says 1 (0 -> 1 four times,
	 * 1 -> 1 three). Token 5 misses: 0 -> 1 has 4 of 5 shares, and nothing has followed
	 * 2 yet. Token 6 hits: 0 -> 2 has 2 of 6 (0.33) plus half of 2 -> 2 (1 of 1): 0.83
	 * against 1's 0.67; token 7 too. 5 hits, 3 misses; a predictor that looked ahead would
	 * have hit token 4. With capacity 1 a wrong prefetch evicts the right expert.
	 */
	tap_ok(ls[1].hits == 5 && ls[1].misses == 3,
	       "layer 1: 3 hits before the change, 2 misses at it, 2 hits once 2 has followed 2 "
	       "(%llu hits, %llu misses)", (unsigned long long)ls[1].hits,
	       (unsigned long long)ls[1].misses);
	p2pio_expert_trace_free(t);
}

/*
 * The prediction weighs each predecessor by the share of its co-occurrences, not by its raw
 * counts. Two layers, six experts, top_k 2, capacity 2 per layer, LRU. Token 0 chooses
 * {1,5} then {4,5}: expert 1 has been followed by 4 and 5 once each. Tokens 1-10 choose
 * {0,5} then ten pairs that leave expert 0 followed by 2 six times, 3 five, 4 five and 5
 * four (20 in all), the last two {2,3}, which stay resident at layer 1. The query, token
 * 11, chooses {0,1} then {4,5}.
 *  - Shares: 2 gets 6/20, 3 5/20, 4 5/20 + 1/2, 5 4/20 + 1/2 from layer 0; the cell two
 *    layers back (token 10's layer 1, {2,3}, whose followers at layer 1 were counted from
 *    tokens 1-10) adds at half weight 0.375, 0.29, 0.225 and 0.11: 0.68, 0.54, 0.98,
 *    0.81, so {4,5}, both prefetched, both hit.
 *  - Raw counts would say 2: 6, 3: 5, 4: 5 + 1, 5: 4 + 1: {2,4} (a tie, the lower id
 *    first); 2 is resident, 4 is prefetched and hits, 5 misses: one hit.
 * The query's layer-1 hits are those of the whole trace less those of its first 11 tokens
 * (the replay never looks ahead, so the first 11 replay the same either way).
 */
static void test_learned_shares(void)
{
	static const uint32_t pairs[10][2] = { { 4, 5 }, { 3, 5 }, { 3, 4 }, { 3, 4 }, { 2, 5 },
					       { 2, 5 }, { 2, 4 }, { 2, 4 }, { 2, 3 }, { 2, 3 } };
	static const uint32_t first0[2] = { 1, 5 }, first1[2] = { 4, 5 }, mid0[2] = { 0, 5 },
			      q0[2] = { 0, 1 }, q1[2] = { 4, 5 };
	struct p2pio_expert_trace_info info = { .nr_layers = 2, .nr_experts = 6, .top_k = 2 };
	struct p2pio_expert_replay_opts o = { .policy = "lru", .capacity = 2, .per_layer = true,
					      .prefetch = P2PIO_EXPERT_PREFETCH_LEARNED };
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_expert_layer_stats before[2], after[2];
	struct p2pio_expert_trace *t = NULL;
	int i, pass;

	for (pass = 0; pass < 2; pass++) {
		if (p2pio_expert_trace_new(&info, &t, NULL))
			tap_bail("trace_new");
		p2pio_expert_trace_add(t, 0, first0, 2, NULL);
		p2pio_expert_trace_add(t, 1, first1, 2, NULL);
		p2pio_expert_trace_end_token(t, 0, NULL);
		for (i = 0; i < 10; i++) {
			p2pio_expert_trace_add(t, 0, mid0, 2, NULL);
			p2pio_expert_trace_add(t, 1, pairs[i], 2, NULL);
			p2pio_expert_trace_end_token(t, 0, NULL);
		}
		if (pass) {
			p2pio_expert_trace_add(t, 0, q0, 2, NULL);
			p2pio_expert_trace_add(t, 1, q1, 2, NULL);
			p2pio_expert_trace_end_token(t, 0, NULL);
		}
		tap_is_int(p2pio_expert_replay(t, &o, &st, pass ? after : before, NULL), 0,
			   "replay of %d tokens with learned prefetch", pass ? 12 : 11);
		p2pio_expert_trace_free(t);
		t = NULL;
	}
	tap_ok(after[1].hits - before[1].hits == 2 && after[1].misses == before[1].misses,
	       "the query's layer 1: {4,5} predicted by shares, 2 hits, no miss (%llu hits)",
	       (unsigned long long)(after[1].hits - before[1].hits));
}

/*
 * One layer, capacity 2, top_k 2: tokens {0,1}, {2,3}, {0,1}. At token 1, expert 2 comes in
 * first (evicting 0 or 1), then 3 must come in: unconstrained, Belady would evict 2 (never
 * used again) and keep one of 0/1 for token 2 - but 2 is in use by the layer, as in the real
 * cache, so 0/1 go and token 2 misses both: 0 hits. With capacity 1 (< top_k) nothing is
 * protected and the layer's experts evict each other.
 */
static void test_inuse(void)
{
	struct p2pio_expert_trace_info info = { .nr_layers = 1, .nr_experts = 4, .top_k = 2 };
	static const uint32_t cells[3][2] = { { 0, 1 }, { 2, 3 }, { 0, 1 } };
	struct p2pio_expert_replay_opts o = { .policy = "oracle", .capacity = 2, .per_layer = true };
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_expert_trace *t = NULL;
	int i;

	p2pio_expert_trace_new(&info, &t, NULL);
	for (i = 0; i < 3; i++) {
		p2pio_expert_trace_add(t, 0, cells[i], 2, NULL);
		p2pio_expert_trace_end_token(t, 0, NULL);
	}
	tap_is_int(p2pio_expert_replay(t, &o, &st, NULL, NULL), 0, "oracle replay");
	tap_ok(st.hits == 0 && st.misses == 6,
	       "a layer's experts are not evicted while it runs: the oracle gets 0 hits (%llu)",
	       (unsigned long long)st.hits);
	o.capacity = 1;
	tap_is_int(p2pio_expert_replay(t, &o, &st, NULL, NULL), 0, "capacity below top_k");
	tap_ok(st.misses == 6 && st.evictions == 5, "below top_k: each miss evicts (%llu evictions)",
	       (unsigned long long)st.evictions);
	p2pio_expert_trace_free(t);
}

/* Distinct experts a layer of @t uses, summed over layers. */
static uint64_t distinct(const struct p2pio_expert_trace *t)
{
	const struct p2pio_expert_trace_info *in = p2pio_expert_trace_info(t);
	uint64_t tok, n = 0;
	uint32_t l, e;
	bool *seen = calloc(in->nr_experts, sizeof(*seen));

	if (!seen)
		tap_bail("calloc");
	for (l = 0; l < in->nr_layers; l++) {
		memset(seen, 0, in->nr_experts * sizeof(*seen));
		for (tok = 0; tok < p2pio_expert_trace_tokens(t); tok++) {
			const uint16_t *ids;
			int c = p2pio_expert_trace_cell(t, tok, l, &ids), k;

			for (k = 0; k < c; k++)
				seen[ids[k]] = true;
		}
		for (e = 0; e < in->nr_experts; e++)
			n += seen[e];
	}
	free(seen);
	return n;
}

/* Spread of per-layer LRU hit rates (max - min). */
static double layer_range(const struct p2pio_expert_trace *t)
{
	struct p2pio_expert_replay_opts o = { .policy = "lru", .capacity = 16, .per_layer = true };
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_expert_layer_stats ls[16];
	double lo = 1, hi = 0;
	int l;

	if (p2pio_expert_replay(t, &o, &st, ls, NULL))
		tap_bail("replay");
	for (l = 0; l < 16; l++) {
		double h = (double)ls[l].hits / (double)ls[l].accesses;

		lo = fmin(lo, h);
		hi = fmax(hi, h);
	}
	return hi - lo;
}

static bool same_trace(const struct p2pio_expert_trace *a, const struct p2pio_expert_trace *b)
{
	uint64_t tok;
	uint32_t l;

	for (tok = 0; tok < p2pio_expert_trace_tokens(a); tok++)
		for (l = 0; l < p2pio_expert_trace_info(a)->nr_layers; l++) {
			const uint16_t *x, *y;
			int n = p2pio_expert_trace_cell(a, tok, l, &x);

			if (n != p2pio_expert_trace_cell(b, tok, l, &y) || memcmp(x, y, n * sizeof(*x)))
				return false;
		}
	return true;
}

/* @p refused with -EINVAL, no trace, and a message holding @needle: the field, its value
 * and the range allowed. */
static void synth_refused(const struct p2pio_expert_synth_params *p, const char *needle,
			  const char *what)
{
	struct p2pio_expert_trace *t = NULL;
	struct p2pio_error err = { 0 };
	int r = p2pio_expert_synth(p, &t, &err);

	if (!tap_ok(r == -EINVAL && !t && err.code == -EINVAL && strstr(err.msg, needle),
		    "%s: -EINVAL, the message says '%s'", what, needle))
		tap_diag("got %d '%s'", r, err.msg);
	p2pio_expert_trace_free(t);
}

static void test_synth_refinements(void)
{
	struct p2pio_expert_synth_params p = { .nr_layers = 16, .nr_experts = 64, .top_k = 4,
					       .tokens = 300, .skew = 0.5, .locality = 0.3,
					       .window = 4, .seed = 7 };
	struct p2pio_expert_trace *base = NULL, *x = NULL, *y = NULL;
	uint64_t d0;
	double r0;

	tap_is_int(p2pio_expert_synth(&p, &base, NULL), 0, "synth, refinements off");
	d0 = distinct(base);
	r0 = layer_range(base);

	p.cutoff = 8;
	p2pio_expert_synth(&p, &x, NULL);
	tap_ok(distinct(x) * 10 < d0 * 8, "a tail cutoff leaves experts unused (%llu < %llu distinct)",
	       (unsigned long long)distinct(x), (unsigned long long)d0);
	p2pio_expert_trace_free(x);
	p.cutoff = 0;

	p.layer_spread = 1;
	p2pio_expert_synth(&p, &x, NULL);
	tap_ok(layer_range(x) > r0 + 0.05, "layer spread widens per-layer hit rates (%.3f > %.3f)",
	       layer_range(x), r0);
	p2pio_expert_trace_free(x);
	p.layer_spread = 0;

	p.drift = 0.5;
	p2pio_expert_synth(&p, &x, NULL);
	p2pio_expert_synth(&p, &y, NULL);
	tap_ok(same_trace(x, y), "drift: the same seed gives the same trace");
	tap_ok(!same_trace(x, base), "drift changes the trace");
	p2pio_expert_trace_free(x);
	p2pio_expert_trace_free(y);
	/* With a thin tail, drift brings experts of the tail into use. */
	p.cutoff = 8;
	p2pio_expert_synth(&p, &x, NULL);
	p.drift = 0;
	p2pio_expert_synth(&p, &y, NULL);
	tap_ok(distinct(x) > distinct(y), "drift brings more experts into use (%llu > %llu)",
	       (unsigned long long)distinct(x), (unsigned long long)distinct(y));
	p2pio_expert_trace_free(x);
	p2pio_expert_trace_free(y);
	x = NULL;
	p.cutoff = 0;

	p.drift = 1.5;
	synth_refused(&p, "drift 1.5 (0 to 1 allowed)", "drift above 1");
	p.drift = 0;
	p.layer_spread = -0.1;
	synth_refused(&p, "layer_spread -0.1 (0 to 1 allowed)", "negative layer spread");
	p.layer_spread = 0;
	p.cutoff = NAN;
	synth_refused(&p, "cutoff is not a number (0 to 64 allowed)", "a cutoff that is not a number");
	p2pio_expert_trace_free(base);
}

/* FNV-1a over every cell of @t: per cell its count, then each id as two bytes, low first. */
static uint64_t trace_hash(const struct p2pio_expert_trace *t)
{
	uint64_t tok, h = 0xcbf29ce484222325ull;
	uint32_t l;

	for (tok = 0; tok < p2pio_expert_trace_tokens(t); tok++)
		for (l = 0; l < p2pio_expert_trace_info(t)->nr_layers; l++) {
			const uint16_t *ids;
			int n = p2pio_expert_trace_cell(t, tok, l, &ids), k;

			h = (h ^ (uint8_t)n) * 0x100000001b3ull;
			for (k = 0; k < n; k++) {
				h = (h ^ (ids[k] & 0xff)) * 0x100000001b3ull;
				h = (h ^ (ids[k] >> 8)) * 0x100000001b3ull;
			}
		}
	return h;
}

/* LRU's hit rate on @t at @cap experts per layer, with @prefetch. */
static double lru_rate(const struct p2pio_expert_trace *t, uint32_t cap, unsigned int prefetch)
{
	struct p2pio_expert_replay_opts o = { .policy = "lru", .capacity = cap, .per_layer = true,
					      .prefetch = prefetch };
	struct p2pio_expert_stats st = { .size = sizeof(st) };

	if (p2pio_expert_replay(t, &o, &st, NULL, NULL) || !st.accesses)
		tap_bail("replay");
	return (double)st.hits / (double)st.accesses;
}

/*
 * @chain: layer l >= 1 takes experts a fixed map pairs with the token's experts at l - 1,
 * which the learned prefetch (next layer from the layers before) learns; with chain 0 the
 * generator is the one it was before chain existed, bit for bit.
 */
static void test_synth_chain(void)
{
	/*
	 * Every other refinement on. The hash is that of the trace the generator made before
	 * chain existed (p2pio-moe synth -L 16 -E 64 -k 4 -n 300 --skew 0.5 --locality 0.3
	 * --window 4 -S 7 --layer-spread 0.5 --drift 0.05 --cutoff 2 --repeat 0.1 --offset 8,
	 * hashed as trace_hash() does): chain draws from a stream of its own.
	 */
	struct p2pio_expert_synth_params p = { .nr_layers = 16, .nr_experts = 64, .top_k = 4,
					       .tokens = 300, .skew = 0.5, .locality = 0.3,
					       .window = 4, .seed = 7, .layer_spread = 0.5,
					       .drift = 0.05, .cutoff = 2, .repeat = 0.1,
					       .offset = 8 };
	struct p2pio_expert_trace *base = NULL, *x = NULL, *y = NULL;
	double g0, g1, h0, h1;
	bool distinct_ids = true;
	uint64_t tok;
	uint32_t l;

	tap_is_int(p2pio_expert_synth(&p, &base, NULL), 0, "synth, chain 0, the other refinements on");
	tap_ok(base && trace_hash(base) == 0x1056f9408cb19b4cull,
	       "chain 0: bit for bit the trace made before chain existed (%#llx)",
	       base ? (unsigned long long)trace_hash(base) : 0ull);

	p.chain = 0.5;
	p2pio_expert_synth(&p, &x, NULL);
	p2pio_expert_synth(&p, &y, NULL);
	tap_ok(x && y && same_trace(x, y), "chain 0.5: the same seed gives the same trace");
	tap_ok(x && !same_trace(x, base), "chain 0.5 changes the trace");
	for (tok = 0; x && tok < p.tokens; tok++)
		for (l = 0; l < p.nr_layers; l++) {
			const uint16_t *ids;
			int n = p2pio_expert_trace_cell(x, tok, l, &ids), i, j;

			distinct_ids &= n == 4;
			for (i = 0; i < n; i++)
				for (j = 0; j < i; j++)
					distinct_ids &= ids[i] != ids[j];
		}
	tap_ok(x && distinct_ids, "chain 0.5: every cell has top_k distinct experts");
	p2pio_expert_trace_free(x);
	p2pio_expert_trace_free(y);
	p2pio_expert_trace_free(base);
	x = NULL;

	/*
	 * 8 layers of 32 experts, 8 per layer cached (25 %), uniform popularity, no locality:
	 * with chain 1 a layer's experts follow from the layer before, so after a few tokens
	 * the learned prefetch loads them in time; with chain 0 the layers are independent
	 * and it has nothing to learn (no popular experts either; its guesses are noise).
	 */
	memset(&p, 0, sizeof(p));
	p.nr_layers = 8;
	p.nr_experts = 32;
	p.top_k = 4;
	p.tokens = 400;
	p.window = 4;
	p.seed = 3;
	p2pio_expert_synth(&p, &x, NULL);
	g0 = lru_rate(x, 8, 0);
	g1 = lru_rate(x, 8, P2PIO_EXPERT_PREFETCH_LEARNED);
	p2pio_expert_trace_free(x);
	p.chain = 1;
	p2pio_expert_synth(&p, &x, NULL);
	h0 = lru_rate(x, 8, 0);
	h1 = lru_rate(x, 8, P2PIO_EXPERT_PREFETCH_LEARNED);
	p2pio_expert_trace_free(x);
	x = NULL;
	tap_ok(h1 > h0 + 0.3, "chain 1: learned prefetch well above none (%.1f %% > %.1f %%)",
	       100 * h1, 100 * h0);
	tap_ok(fabs(g1 - g0) < 0.03,
	       "chain 0: learned prefetch gains nothing (%.1f %% against %.1f %%)", 100 * g1,
	       100 * g0);

	p.chain = 1.5;
	synth_refused(&p, "chain 1.5 (0 to 1 allowed)", "chain above 1");
	p.chain = -0.1;
	synth_refused(&p, "chain -0.1 (0 to 1 allowed)", "negative chain");
	p.chain = NAN;
	synth_refused(&p, "chain is not a number (0 to 1 allowed)", "a chain that is not a number");
}

/*
 * The router prefetch (an engine running the next layer's router early): 4 layers, 8
 * experts, one per cell, the same expert at every layer of a token, 0..7 in turn for 24
 * tokens, 2 experts per layer resident. Without prefetch every access misses (the cycle
 * is longer than the cache). Always right, layers 1-3 are prefetched within the token and
 * hit; layer 0 is never predicted (the next token is not known before it is sampled), so
 * it misses every token: 24 misses in 24 missed layers, 72 prefetches all used. Always
 * wrong, the guesses are experts the layer does not route to: layers 1-3 miss as before
 * (but for a wrong guess a later token happens to use while it is resident).
 */
static void test_router(void)
{
	uint32_t xs[24], i;
	struct p2pio_expert_replay_opts o = { .policy = "lru", .capacity = 2, .per_layer = true };
	struct p2pio_expert_stats st = { .size = sizeof(st) }, st2 = { .size = sizeof(st2) };
	struct p2pio_expert_layer_stats ls[4];
	struct p2pio_error err = { 0 };
	struct p2pio_expert_trace *t;

	for (i = 0; i < 24; i++)
		xs[i] = i % 8;
	t = mirror_trace(xs, 24, 4, 8);
	tap_is_int(p2pio_expert_replay(t, &o, &st, ls, &err), 0, "replay without prefetch");
	tap_ok(st.misses == 96 && st.missed_layers == 96, "a cycle of 8 in 2 slots: all 96 miss");
	o.prefetch = P2PIO_EXPERT_PREFETCH_ROUTER;
	tap_is_int(p2pio_expert_replay(t, &o, &st, ls, &err), 0, "replay with the router, right");
	tap_ok(st.misses == 24 && ls[0].misses == 24 && st.missed_layers == 24 &&
	       st.prefetches == 72 && st.prefetch_used == 72,
	       "always right: only layer 0 misses (%llu misses, %llu at layer 0, %llu missed "
	       "layers), 72 prefetches all used (%llu, %llu)", (unsigned long long)st.misses,
	       (unsigned long long)ls[0].misses, (unsigned long long)st.missed_layers,
	       (unsigned long long)st.prefetches, (unsigned long long)st.prefetch_used);
	o.router_wrong = 1;
	p2pio_expert_replay(t, &o, &st, ls, &err);
	tap_ok(ls[1].misses + ls[2].misses + ls[3].misses > 48 && st.prefetches > 0 &&
	       st.prefetch_used < st.prefetches / 2,
	       "always wrong: layers 1-3 miss %llu of 72 times, %llu of %llu guesses used later",
	       (unsigned long long)(ls[1].misses + ls[2].misses + ls[3].misses),
	       (unsigned long long)st.prefetch_used, (unsigned long long)st.prefetches);
	o.router_wrong = 0.5;
	p2pio_expert_replay(t, &o, &st, NULL, &err);
	p2pio_expert_replay(t, &o, &st2, NULL, &err);
	tap_ok(st.misses > 24 && st.misses < 96 && st.misses == st2.misses &&
	       st.prefetches == st2.prefetches,
	       "half wrong: between the two (%llu misses), the same draws every replay",
	       (unsigned long long)st.misses);
	o.router_wrong = 1.5;
	tap_is_int(p2pio_expert_replay(t, &o, &st, NULL, &err), -EINVAL, "router_wrong 1.5: %s",
		   "-EINVAL");
	o.router_wrong = NAN;
	tap_is_int(p2pio_expert_replay(t, &o, &st, NULL, &err), -EINVAL, "router_wrong NaN: %s",
		   "-EINVAL");
	p2pio_expert_trace_free(t);
}

/* The learned predictor's tables are capped: 1 layer of 6000 experts needs 2 x 6000^2
 * counters, over 2^26; the replay says so and runs without it. */
static void test_learned_too_large(void)
{
	struct p2pio_expert_trace_info info = { .nr_layers = 1, .nr_experts = 6000, .top_k = 1 };
	struct p2pio_expert_replay_opts o = { .policy = "lru", .capacity = 8, .per_layer = true,
					      .prefetch = P2PIO_EXPERT_PREFETCH_LEARNED };
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_error err = { 0 };
	struct p2pio_expert_trace *t = NULL;
	uint32_t i, e;

	if (p2pio_expert_trace_new(&info, &t, NULL))
		tap_bail("trace_new");
	for (i = 0; i < 4; i++) {
		e = i * 1000;
		p2pio_expert_trace_add(t, 0, &e, 1, NULL);
		p2pio_expert_trace_end_token(t, 0, NULL);
	}
	tap_is_int(p2pio_expert_replay(t, &o, &st, NULL, &err), -E2BIG,
		   "learned prefetch over 6000 experts: -E2BIG");
	tap_ok(strstr(err.msg, "table for 1 layer of 6000 experts") != NULL,
	       "and says why: %s", err.msg);
	o.prefetch = P2PIO_EXPERT_PREFETCH_LAG;
	tap_is_int(p2pio_expert_replay(t, &o, &st, NULL, &err), 0, "the same trace replays without it");
	p2pio_expert_trace_free(t);
}

int main(void)
{
	tap_plan_lazy();
	test_learned();
	test_learned_no_future();
	test_learned_shares();
	test_inuse();
	test_synth_refinements();
	test_synth_chain();
	test_router();
	test_learned_too_large();
	return tap_exit();
}
