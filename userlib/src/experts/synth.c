// SPDX-License-Identifier: MIT
/*
 * synth.c - synthetic routing traces: per layer, a Zipf popularity over the experts (in a
 * random order per layer) and temporal locality (a slot reuses, with probability
 * @locality, one of the experts the layer chose in the last @window tokens). Seeded with
 * SplitMix64, so a seed gives the same trace everywhere.
 *
 * @cutoff thins the tail of the popularity (rank r's weight times exp(-cutoff r / experts)):
 * in a few hundred tokens a real layer leaves many of its experts unused. @layer_spread
 * gives each layer its own Zipf exponent and locality (real models have layers whose
 * routing is nearly uniform next to layers with a few dominant experts), and @drift lets
 * popularity move over the sequence (a token swaps two experts' popularity ranks in a
 * layer with that probability), so the hot set of the end is not that of the start. They
 * draw from their own random stream: with all three 0 the trace is the same as without them.
 * @repeat (a slot takes one of the token before's experts) draws from that stream too.
 *
 * @chain couples the layers of a token, as real routing is coupled (the hidden state that
 * chose layer l - 1's experts goes on to choose layer l's): a slot at layer l >= 1 takes,
 * with that probability, map_l(x) for an expert x the token chose at layer l - 1. map_l
 * pairs the experts of the two layers by popularity rank in their seeded random orders
 * (rank r at l - 1 to rank r at l): a one-to-one map, so the chance @chain alone sets how
 * predictable layer l is from layer l - 1, and a rank-for-rank map, so a chained slot is
 * about as popular at l as its source was at l - 1 and the layer's popularity (what LRU
 * and the oracle see) barely moves; a random function would send popular experts to the
 * tail. It is built from the orders the other draws make, before any drift, and stays
 * fixed in expert ids, as a learned table would. Layer 0 is not chained: a token enters
 * the model from its embedding, not from the last layer of the token before. The chain is
 * drawn after @repeat and @locality, in place of a popularity draw: it takes the slots
 * recency would miss, not those it would hit, which keeps LRU's rates near where they were
 * (drawn first it took reuse away from LRU, and fitted 1 point worse to the real traces).
 * It draws from a third stream: with @chain 0 the trace is the one it was before @chain
 * existed.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experts/trace.h"

static uint64_t sm64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double sm64_unit(uint64_t *s)
{
	return (double)(sm64(s) >> 11) * 0x1.0p-53;
}

static uint32_t sm64_below(uint64_t *s, uint32_t n)
{
	return (uint32_t)(sm64_unit(s) * n);
}

/* 0 when @lo <= @v <= @hi, else -EINVAL with a message naming parameter @name (NaN is
 * refused too: every comparison with it is false). */
static int synth_check(const char *name, double v, double lo, double hi, struct p2pio_error *err)
{
	if (v >= lo && v <= hi)
		return 0;
	if (isnan(v))
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "expert synth: %s is not a number (%g to %g allowed)", name, lo, hi);
	return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "expert synth: %s %g (%g to %g allowed)",
			       name, v, lo, hi);
}

int p2pio_expert_synth(const struct p2pio_expert_synth_params *p, struct p2pio_expert_trace **out,
		       struct p2pio_error *err)
{
	struct p2pio_expert_trace_info info = { 0 };
	struct p2pio_error tok_err = { 0 };
	uint32_t E = p->nr_experts, L = p->nr_layers, K = p->top_k, W = p->window;
	uint32_t *perm = NULL, *hist = NULL, *cand = NULL, *map = NULL;
	uint32_t sel[P2PIO_EXPERT_TRACE_MAX_TOP_K];
	double *cdf = NULL, *total = NULL, *loc = NULL;
	struct p2pio_expert_trace *t = NULL;
	/* @s: the routing draws; @s2: the refinements' draws (their own stream); @s3: the
	 * chain's (its own again, so that @chain 0 leaves the other two as they were). */
	uint64_t s = p->seed, s2 = p->seed ^ 0x5851f42d4c957f2dull, tok;
	uint64_t s3 = p->seed ^ 0xd1b54a32d192ed03ull;
	uint32_t l, e, j, r;
	int ret;

	*out = NULL;
	if (!W || W > 1024)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "expert synth: window %u (1 to 1024 allowed)", W);
	if (!p->tokens || p->tokens > (1u << 24))
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "expert synth: tokens %llu (1 to %u allowed)",
				       (unsigned long long)p->tokens, 1u << 24);
	ret = synth_check("skew", p->skew, 0, 8, err);
	if (!ret)
		ret = synth_check("locality", p->locality, 0, 1, err);
	if (!ret)
		ret = synth_check("layer_spread", p->layer_spread, 0, 1, err);
	if (!ret)
		ret = synth_check("drift", p->drift, 0, 1, err);
	if (!ret)
		ret = synth_check("cutoff", p->cutoff, 0, 64, err);
	if (!ret)
		ret = synth_check("repeat", p->repeat, 0, 1, err);
	if (!ret)
		ret = synth_check("offset", p->offset, 0, 1024, err);
	if (!ret)
		ret = synth_check("chain", p->chain, 0, 1, err);
	if (ret)
		return ret;
	info.nr_layers = L;
	info.nr_experts = E;
	info.top_k = K;
	snprintf(info.model, sizeof(info.model), "synth %ux%u top-%u", L, E, K);
	/* The shape's limits are the trace's: its messages name nr_layers, nr_experts and
	 * top_k, fields of both structs. */
	ret = p2pio_expert_trace_new(&info, &t, err);
	if (ret)
		return ret;
	perm = calloc((size_t)L * E, sizeof(*perm));
	cdf = calloc((size_t)L * E, sizeof(*cdf));
	total = calloc(L, sizeof(*total));
	loc = calloc(L, sizeof(*loc));
	hist = calloc((size_t)L * W * K, sizeof(*hist));	/* ring of the last W cells */
	cand = calloc((size_t)W * K, sizeof(*cand));
	map = calloc((size_t)L * E, sizeof(*map));	/* map[l][x at l - 1]: an expert at l */
	if (!perm || !cdf || !total || !loc || !hist || !cand || !map) {
		ret = p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET,
				      "expert synth: out of memory for %u layers of %u experts, window %u",
				      L, E, W);
		goto out;
	}
	/* Popularity: rank r has weight 1 / (r + 1)^skew_l; each layer its own ranking, and
	 * with @layer_spread its own exponent, skew x (1 + spread x u), u uniform in -1 .. 1. */
	for (l = 0; l < L; l++) {
		double skew = p->skew, *cl = &cdf[(size_t)l * E];
		uint32_t *pl = &perm[(size_t)l * E];

		loc[l] = p->locality;
		if (p->layer_spread > 0) {
			skew *= 1 + p->layer_spread * (2 * sm64_unit(&s2) - 1);
			loc[l] = fmin(1, loc[l] * (1 + p->layer_spread * (2 * sm64_unit(&s2) - 1)));
		}
		total[l] = 0;
		for (r = 0; r < E; r++) {
			total[l] += pow(r + 1.0 + p->offset, -skew) * exp(-p->cutoff * r / E);
			cl[r] = total[l];
		}

		for (e = 0; e < E; e++)
			pl[e] = e;
		for (e = E - 1; e > 0; e--) {
			uint32_t x = sm64_below(&s, e + 1), tmp = pl[e];

			pl[e] = pl[x];
			pl[x] = tmp;
		}
		for (r = 0; l && r < E; r++)
			map[(size_t)l * E + perm[(size_t)(l - 1) * E + r]] = pl[r];
	}

	for (tok = 0; tok < p->tokens; tok++) {
		for (l = 0; l < L; l++) {
			uint32_t *ring = &hist[(size_t)l * W * K], *pl = &perm[(size_t)l * E];
			uint32_t n = 0, nc, h, avail = tok < W ? (uint32_t)tok : W;

			if (p->drift > 0 && sm64_unit(&s2) < p->drift) {
				uint32_t a = sm64_below(&s2, E), b = sm64_below(&s2, E), tmp = pl[a];

				pl[a] = pl[b];
				pl[b] = tmp;
			}

			while (n < K) {
				uint32_t x = UINT32_MAX;

				/* The token before's experts (the newest cell of the ring). */
				if (p->repeat > 0 && avail && sm64_unit(&s2) < p->repeat) {
					for (nc = 0, h = 0; h < K; h++)
						if (!cell_has(sel, n, ring[h]))
							cand[nc++] = ring[h];
					if (nc)
						x = cand[sm64_below(&s2, nc)];
				}
				if (x == UINT32_MAX && avail && sm64_unit(&s) < loc[l]) {
					/* Experts of the last @avail tokens not chosen yet. */
					for (nc = 0, h = 0; h < avail * K; h++)
						if (!cell_has(sel, n, ring[h]) &&
						    !cell_has(cand, nc, ring[h]))
							cand[nc++] = ring[h];
					if (nc)
						x = cand[sm64_below(&s, nc)];
				}
				/* The experts map_l gives the token's layer l - 1 (the newest cell
				 * of that layer's ring, written just before this layer). */
				if (x == UINT32_MAX && p->chain > 0 && l &&
				    sm64_unit(&s3) < p->chain) {
					const uint32_t *up = &hist[(size_t)(l - 1) * W * K];

					for (nc = 0, h = 0; h < K; h++)
						if (!cell_has(sel, n, map[(size_t)l * E + up[h]]))
							cand[nc++] = map[(size_t)l * E + up[h]];
					if (nc)
						x = cand[sm64_below(&s3, nc)];
				}
				for (j = 0; x == UINT32_MAX && j < 64; j++) {
					const double *cl = &cdf[(size_t)l * E];
					double u = sm64_unit(&s) * total[l];
					uint32_t lo = 0, hi = E - 1;

					while (lo < hi) {
						uint32_t mid = (lo + hi) / 2;

						if (cl[mid] > u)
							hi = mid;
						else
							lo = mid + 1;
					}
					if (!cell_has(sel, n, perm[(size_t)l * E + lo]))
						x = perm[(size_t)l * E + lo];
				}
				/* Rejection kept failing (a very skewed layer): the most popular
				 * expert not chosen yet. */
				for (r = 0; x == UINT32_MAX && r < E; r++)
					if (!cell_has(sel, n, perm[(size_t)l * E + r]))
						x = perm[(size_t)l * E + r];
				sel[n++] = x;
			}
			ret = p2pio_expert_trace_add(t, l, sel, n, NULL);
			if (ret) {
				/* A bug here: the draws above keep a cell valid. */
				p2pio_set_error(err, ret, P2PIO_NO_OFFSET,
						"expert synth: token %llu layer %u: a bad cell drawn",
						(unsigned long long)tok, l);
				goto out;
			}
			memmove(ring + K, ring, (size_t)(W - 1) * K * sizeof(*ring));
			memcpy(ring, sel, K * sizeof(*ring));
		}
		ret = p2pio_expert_trace_end_token(t, tok ? 0 : P2PIO_EXPERT_TOKEN_SEQ_START,
						   &tok_err);
		if (ret) {
			/* -E2BIG (a shape whose tokens pass the trace's bound) or -ENOMEM: the
			 * trace's message names the token, its size and the bound. */
			p2pio_set_error(err, ret, P2PIO_NO_OFFSET, "expert synth: %s", tok_err.msg);
			goto out;
		}
	}
	*out = t;
	t = NULL;
	ret = 0;
out:
	p2pio_expert_trace_free(t);
	free(perm);
	free(cdf);
	free(total);
	free(loc);
	free(hist);
	free(cand);
	free(map);
	return ret;
}
