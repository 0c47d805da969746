// SPDX-License-Identifier: MIT
/*
 * replay.c - a routing trace through the residency core: the expert cache's decisions
 * without its memory or I/O (every load completes at once; one expert is one byte).
 *
 * Per token, per layer in order: the layer's experts are demand-accessed one after another
 * (a miss is admitted at once). Then the prefetch for the next layer (layer 0 of the next
 * token after the last layer) is issued from the chosen predictors: the previous token's
 * routing at that layer (LAG), a table of layer-to-layer co-occurrences learned from the
 * tokens already replayed (LEARNED: what a caller can predict from the routing it has
 * seen, never the future), that layer's true routing (NEXT, an oracle predictor), and/or
 * the same within the token with a set share of wrong guesses (ROUTER: an engine that runs
 * the next layer's router early; never layer 0, which waits for the token before).
 * Prefetched experts stay busy (not evictable) until their layer has been accessed, so a
 * prefetch is never undone by the next prefetch or by its own layer's misses - unless a
 * demand miss finds no other room, which releases them first.
 *
 * A layer's experts are busy while the layer runs, as in the real cache (require() hands
 * them to GPU work together): one of the token's experts is never evicted to make room for
 * another of the same layer, nor for the prefetch issued while it runs - unless a
 * per-layer capacity is below top_k, where they must evict each other (and none is
 * protected).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/pattern.h"
#include "experts/policy.h"
#include "experts/predict.h"
#include "experts/residency.h"
#include "experts/trace.h"

struct replay {
	const struct p2pio_expert_trace *t;
	const struct p2pio_expert_replay_opts *o;
	uint64_t *tok;		/* tokens of the sequence being replayed */
	uint64_t nr_tok;
	struct p2pio_residency *r;
	uint32_t *held;		/* prefetched experts kept busy for their layer */
	uint32_t nr_held;
	uint32_t held_layer;
	uint32_t *inuse;	/* the running layer's experts, busy until it is done */
	uint32_t nr_inuse;
	bool protect;		/* ... when a layer's top_k experts fit at once */
	struct p2pio_predictor *pred;	/* LEARNED's, learning across the sequences */
};

static void replay_unuse(struct replay *rp, uint32_t layer)
{
	uint32_t i;

	for (i = 0; i < rp->nr_inuse; i++)
		p2pio_residency_busy_put(rp->r, layer, rp->inuse[i]);
	rp->nr_inuse = 0;
}

/* The cell (token index @ti, layer @l) as the predictor takes it; its count. */
static uint32_t replay_cell(const struct replay *rp, uint64_t ti, uint32_t l, uint32_t *ids)
{
	const uint16_t *c;
	int n = p2pio_expert_trace_cell(rp->t, rp->tok[ti], l, &c), i;

	for (i = 0; i < n; i++)
		ids[i] = c[i];
	return n > 0 ? (uint32_t)n : 0;
}

static void replay_release(struct replay *rp)
{
	uint32_t i;

	for (i = 0; i < rp->nr_held; i++)
		p2pio_residency_busy_put(rp->r, rp->held_layer, rp->held[i]);
	rp->nr_held = 0;
}

static void replay_prefetch(struct replay *rp, uint32_t layer, const uint32_t *ids, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		if (p2pio_residency_state(rp->r, layer, ids[i]) != P2PIO_RES_ABSENT)
			continue;
		if (p2pio_residency_admit(rp->r, layer, ids[i], true, NULL, 0, NULL))
			continue;	/* no room: the hint is dropped */
		p2pio_residency_loaded(rp->r, layer, ids[i], 0);
		p2pio_residency_busy_get(rp->r, layer, ids[i]);
		rp->held[rp->nr_held++] = ids[i];
	}
}

/*
 * ROUTER's guess at (token index @ti, layer @l), whose true experts are @ids[@n]: each
 * stays with probability 1 - router_wrong, else becomes the first expert from a random
 * start that is neither routed to nor guessed already (p2pio-moe run --prefetch-next
 * --accuracy draws its wrong guesses the same way). @guess gets the @n guesses.
 */
static void replay_router(const struct replay *rp, uint64_t ti, uint32_t l, const uint32_t *ids,
			  uint32_t n, uint32_t *guess)
{
	uint32_t E = rp->t->info.nr_experts, i, k, e;

	memcpy(guess, ids, n * sizeof(*ids));
	for (i = 0; i < n; i++) {
		/* splitmix64: a function of (token, layer, rank) alone. */
		uint64_t z = p2pio_pattern_mix((rp->tok[ti] * rp->t->info.nr_layers + l) << 8 | i);

		if ((double)(z >> 11) * 0x1.0p-53 >= rp->o->router_wrong)
			continue;
		e = (uint32_t)(p2pio_pattern_mix(z) % E);
		for (k = 0; k < E && (cell_has(ids, n, e) || cell_has(guess, n, e)); k++)
			e = (e + 1) % E;
		if (k < E)
			guess[i] = e;
	}
}

/* Prefetch for (token index @ti, layer @l) of the sequence. */
static void replay_predict(struct replay *rp, uint64_t ti, uint32_t l)
{
	uint32_t ids[P2PIO_EXPERT_TRACE_MAX_TOP_K], n;

	replay_release(rp);
	rp->held_layer = l;
	if ((rp->o->prefetch & P2PIO_EXPERT_PREFETCH_NEXT)) {
		n = replay_cell(rp, ti, l, ids);
		replay_prefetch(rp, l, ids, n);
	}
	if ((rp->o->prefetch & P2PIO_EXPERT_PREFETCH_ROUTER) && l) {
		uint32_t guess[P2PIO_EXPERT_TRACE_MAX_TOP_K];

		n = replay_cell(rp, ti, l, ids);
		replay_router(rp, ti, l, ids, n, guess);
		replay_prefetch(rp, l, guess, n);
	}
	if ((rp->o->prefetch & P2PIO_EXPERT_PREFETCH_LAG) && ti) {
		n = replay_cell(rp, ti - 1, l, ids);
		replay_prefetch(rp, l, ids, n);
	}
	if (rp->pred) {
		n = p2pio_predictor_predict(rp->pred, l, rp->t->info.top_k, ids);
		replay_prefetch(rp, l, ids, n);
	}
}

static int replay_seq(struct replay *rp, struct pol_future *f, struct p2pio_expert_stats *st,
		      struct p2pio_expert_layer_stats *layers, struct p2pio_error *err)
{
	const struct p2pio_expert_trace_info *in = &rp->t->info;
	struct p2pio_residency_opts ro = { 0 };
	struct p2pio_expert_stats s;
	uint64_t *bytes = NULL, *cap = NULL, ti;
	uint32_t l, c;
	int ret, n, i;

	bytes = calloc(in->nr_layers, sizeof(*bytes));
	cap = calloc(in->nr_layers, sizeof(*cap));
	if (!bytes || !cap) {
		ret = -ENOMEM;
		goto out;
	}
	c = rp->o->capacity;
	rp->protect = !rp->o->per_layer || c >= in->top_k;
	for (l = 0; l < in->nr_layers; l++) {
		bytes[l] = 1;
		cap[l] = c;
	}
	ro.nr_layers = in->nr_layers;
	ro.nr_experts = in->nr_experts;
	ro.expert_bytes = bytes;
	ro.budget = rp->o->per_layer ? (uint64_t)c * in->nr_layers : c;
	ro.layer_cap = rp->o->per_layer ? cap : NULL;
	ro.policy = p2pio_expert_policy_find(rp->o->policy);
	ro.policy_args = rp->o->policy_args;
	ro.policy_data = f;
	ro.warmup_tokens = rp->o->warmup_tokens;
	ro.fixed_warmup = rp->o->fixed_warmup;
	ret = p2pio_residency_create(&ro, &rp->r, err);
	if (ret)
		goto out;

	if (rp->pred)
		p2pio_predictor_forget(rp->pred);	/* each sequence starts cold */
	for (ti = 0; ti < rp->nr_tok; ti++) {
		p2pio_residency_token_begin(rp->r);
		for (l = 0; l < in->nr_layers; l++) {
			const uint16_t *ids;

			n = p2pio_expert_trace_cell(rp->t, rp->tok[ti], l, &ids);
			for (i = 0; i < n; i++) {
				if (!p2pio_residency_access(rp->r, l, ids[i])) {
					ret = p2pio_residency_admit(rp->r, l, ids[i], false, NULL, 0, NULL);
					if (ret == -ENOSPC && rp->nr_held) {
						replay_release(rp);
						ret = p2pio_residency_admit(rp->r, l, ids[i], false, NULL, 0, NULL);
					}
					if (ret)
						continue;
					p2pio_residency_loaded(rp->r, l, ids[i], 0);
				}
				if (rp->protect) {
					p2pio_residency_busy_get(rp->r, l, ids[i]);
					rp->inuse[rp->nr_inuse++] = ids[i];
				}
			}
			if (rp->pred) {
				uint32_t cell[P2PIO_EXPERT_TRACE_MAX_TOP_K];
				uint32_t nc = replay_cell(rp, ti, l, cell);

				p2pio_predictor_observe(rp->pred, l, cell, nc);
			}
			/* The prefetch is issued while the layer runs: its experts stay busy. */
			if (l + 1 < in->nr_layers)
				replay_predict(rp, ti, l + 1);
			else if (ti + 1 < rp->nr_tok)
				replay_predict(rp, ti + 1, 0);
			else
				replay_release(rp);
			replay_unuse(rp, l);
		}
		p2pio_residency_token_end(rp->r);
	}
	replay_release(rp);

	memset(&s, 0, sizeof(s));
	s.size = sizeof(s);
	p2pio_residency_stats(rp->r, &s);
#define ADD(f) st->f += s.f
	ADD(tokens); ADD(accesses); ADD(hits); ADD(misses); ADD(late);
	ADD(steady_tokens); ADD(steady_accesses); ADD(steady_hits); ADD(steady_misses);
	ADD(loads); ADD(bytes_loaded); ADD(evictions); ADD(prefetches); ADD(prefetch_used);
	ADD(prefetch_wasted); ADD(stall_ns); ADD(missed_layers); ADD(steady_missed_layers);
#undef ADD
	if (s.max_token_faults > st->max_token_faults)
		st->max_token_faults = s.max_token_faults;
	for (l = 0; layers && l < in->nr_layers; l++) {
		struct p2pio_expert_layer_stats ls;

		p2pio_residency_layer_stats(rp->r, l, &ls);
		layers[l].accesses += ls.accesses;
		layers[l].hits += ls.hits;
		layers[l].misses += ls.misses;
		if (ls.max_resident > layers[l].max_resident)
			layers[l].max_resident = ls.max_resident;
		layers[l].resident = ls.resident;
	}
	ret = 0;
out:
	p2pio_residency_destroy(rp->r);
	rp->r = NULL;
	free(bytes);
	free(cap);
	return ret;
}

int p2pio_expert_replay(const struct p2pio_expert_trace *t,
			const struct p2pio_expert_replay_opts *o, struct p2pio_expert_stats *st,
			struct p2pio_expert_layer_stats *layers, struct p2pio_error *err)
{
	struct p2pio_expert_stats sum;
	struct replay rp = { .t = t, .o = o };
	struct p2pio_expert_ref *seq = NULL;
	struct pol_future f;
	uint64_t i, first, nr_acc, k;
	uint32_t size = st->size, l;
	int ret = 0;

	if (size < sizeof(st->size))
		return -EINVAL;
	if (!o->policy || !p2pio_expert_policy_find(o->policy))
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "unknown expert policy '%s'",
				       o->policy ? o->policy : "(none)");
	if (!o->capacity)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "a cache of 0 experts");
	if (o->prefetch & ~(P2PIO_EXPERT_PREFETCH_LAG | P2PIO_EXPERT_PREFETCH_NEXT |
			    P2PIO_EXPERT_PREFETCH_LEARNED | P2PIO_EXPERT_PREFETCH_ROUTER))
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "unknown prefetch bits 0x%x",
				       o->prefetch);
	if (!(o->router_wrong >= 0 && o->router_wrong <= 1))
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "router_wrong must be in 0 .. 1, not %g", o->router_wrong);
	memset(&sum, 0, sizeof(sum));
	if (layers)
		memset(layers, 0, t->info.nr_layers * sizeof(*layers));
	rp.tok = calloc(t->nr_tokens ? t->nr_tokens : 1, sizeof(*rp.tok));
	rp.held = calloc((size_t)4 * t->info.top_k, sizeof(*rp.held));
	rp.inuse = calloc(t->info.top_k ? t->info.top_k : 1, sizeof(*rp.inuse));
	if (o->prefetch & P2PIO_EXPERT_PREFETCH_LEARNED) {
		ret = p2pio_predictor_create(t->info.nr_layers, t->info.nr_experts, &rp.pred, err);
		if (ret)
			goto out;
	}
	seq = calloc(t->nr_tokens * t->info.nr_layers * t->info.top_k + 1, sizeof(*seq));
	if (!rp.tok || !rp.held || !rp.inuse || !seq) {
		ret = -ENOMEM;
		goto out;
	}
	first = 0;
	while (first < t->nr_tokens && !ret) {
		/* One sequence: [first, i) in the trace; its replayed tokens in rp.tok. */
		rp.nr_tok = 0;
		nr_acc = 0;
		for (i = first; i < t->nr_tokens; i++) {
			if (i > first && (t->flags[i] & P2PIO_EXPERT_TOKEN_SEQ_START))
				break;
			if (!o->with_prefill && (t->flags[i] & P2PIO_EXPERT_TOKEN_PREFILL))
				continue;
			rp.tok[rp.nr_tok++] = i;
			for (l = 0; l < t->info.nr_layers; l++) {
				const uint16_t *ids;
				int n = p2pio_expert_trace_cell(t, i, l, &ids);

				for (k = 0; k < (uint64_t)n; k++)
					seq[nr_acc++] = (struct p2pio_expert_ref){ l, ids[k] };
			}
		}
		first = i;
		if (!rp.nr_tok)
			continue;
		f.nr = nr_acc;
		f.seq = seq;
		ret = replay_seq(&rp, &f, &sum, layers, err);
	}
out:
	free(seq);
	p2pio_predictor_destroy(rp.pred);
	free(rp.inuse);
	free(rp.held);
	free(rp.tok);
	if (!ret) {
		sum.size = size < sizeof(sum) ? size : sizeof(sum);
		memcpy(st, &sum, sum.size);
	}
	return ret;
}
