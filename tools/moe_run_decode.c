// SPDX-License-Identifier: MIT
/*
 * moe_run_decode.c - the decode of `p2pio-moe run`: per layer of a token, the layer's
 * experts required (after the stream is done with the layers before, unless
 * --run-ahead), each checked by a GPU kernel that reads every byte, released, and with
 * --prefetch-next the next layer's predicted.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <string.h>

#include "cli.h"
#include "moe_run.h"

void moe_run_stream_sync(struct run *r)
{
	if (r->stream)
		r->cu.StreamSynchronize(r->stream);
}

/* Queue the check of every slice of (layer, expert) at @ptr: one kernel launch. */
static int verify_expert(struct run *r, uint32_t layer, uint32_t expert, uint64_t ptr)
{
	struct p2pio_expert_slice s[RUN_MAX_SLICES];
	struct p2pio_model_tensor t[RUN_MAX_SLICES];
	void *host = r->stream ? NULL : p2pio_experts_host(r->x, layer, expert);
	int n, i;

	n = p2pio_experts_slices(r->x, layer, expert, s, RUN_MAX_SLICES);
	if (n < 0 || n > RUN_MAX_SLICES)
		return n < 0 ? n : -E2BIG;
	for (i = 0; i < n; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].name = s[i].name;
		t[i].addr = ptr + s[i].offset;
		t[i].host = host ? (char *)host + s[i].offset : NULL;
		t[i].size = s[i].size;
		t[i].file_offset = s[i].file_offset;
		r->verified_bytes += s[i].size;
	}
	return p2pio_verifier_check(r->v, t, (uint32_t)n, r->stream, 0);
}

/*
 * An engine learns which experts layer l needs from the router of layer l, on the GPU,
 * after the layers before it: it cannot require them before its stream gets there. The
 * trace names them in advance, so without this wait the decode would queue tokens ahead
 * of the stream, as far as the cache's budget lets it, and overlap loads that no engine
 * could overlap (and leave the policy to evict among fewer experts: those tokens' own are
 * in use). The wait yields its CPU: on zram the CPUs are what reads.
 */
static void route_wait(struct run *r)
{
	if (!r->stream || r->o.run_ahead)
		return;
	while (r->cu.StreamQuery(r->stream) == BENCH_CU_NOT_READY)
		sched_yield();
}

/* splitmix64: the predictor's draws, a function of (token, layer, rank) alone. */
static uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static bool in_ids(const uint32_t *ids, int n, uint32_t e)
{
	int i;

	for (i = 0; i < n; i++)
		if (ids[i] == e)
			return true;
	return false;
}

/*
 * --prefetch-next: hint the next layer's experts while this one's are loading and in use,
 * as an engine would that predicts a layer's routing from the input of the layer before
 * (the next layer's router run early): here the prediction is the trace itself, so the
 * decode shows what a predictor that is always right can give, and with --accuracy F one
 * whose every guess is right with probability F (a wrong one names an expert the layer
 * does not route to, so it costs a load and saves none). Not across tokens: the next
 * token's first layer waits for this token's last, and its sampling.
 *
 * --lookahead L hints layers l + 1 .. l + L: an in-step decode keeps only a layer or two
 * of loads in flight, and reads that few deep ran at 0.7-0.8 of the ceiling on the H200
 * stand-in (moe.md, "Eleventh round"); this asks what a predictor further ahead would
 * give. A layer's guesses are drawn from (token, layer, slot) alone, so one hinted again
 * at the next layer is the same guess, and the loads it started are skipped.
 */
static int predict_layer(struct run *r, uint64_t tok, uint32_t target)
{
	const struct p2pio_expert_trace_info *ti = p2pio_expert_trace_info(r->t);
	/*
	 * The target layer's own experts, not the trace's count: that is the largest layer's,
	 * and a guess beyond a smaller layer's experts failed the prefetch (-ERANGE), and the
	 * run with it.
	 */
	uint32_t ne = moe_run_layer_experts(r, target);
	uint32_t ids[RUN_MAX_USED], guess[RUN_MAX_USED];
	const uint16_t *cell;
	int n, i, ret;

	n = p2pio_expert_trace_cell(r->t, tok, target, &cell);
	if (n < 0)
		return n;
	if (n > RUN_MAX_USED)
		return -E2BIG;
	/* Nothing to guess (run_open() refused a trace that routes a dense layer). */
	if (!n || !ne)
		return 0;
	for (i = 0; i < n; i++)
		ids[i] = guess[i] = cell[i];
	for (i = 0; i < n; i++) {
		uint64_t z = mix64((tok * ti->nr_layers + target) * RUN_MAX_USED + (uint64_t)i);
		uint32_t e, k;

		if ((double)(z >> 11) * 0x1.0p-53 < r->o.accuracy)
			continue;
		/*
		 * A wrong guess: the first expert from a random start that is neither routed
		 * to nor guessed already (none where the layer has no other: the guess stays).
		 */
		e = (uint32_t)(mix64(z) % ne);
		for (k = 0; k < ne && (in_ids(ids, n, e) || in_ids(guess, n, e)); k++)
			e = (e + 1) % ne;
		if (k < ne)
			guess[i] = e;
	}
	ret = p2pio_experts_prefetch(r->x, target, guess, (uint32_t)n);
	return ret < 0 ? ret : 0;
}

static int predict_next(struct run *r, uint64_t tok, uint32_t layer)
{
	const struct p2pio_expert_trace_info *ti = p2pio_expert_trace_info(r->t);
	uint32_t d;
	int ret;

	if (!r->o.prefetch_next)
		return 0;
	for (d = 1; d <= r->o.lookahead && layer + d < ti->nr_layers; d++) {
		ret = predict_layer(r, tok, layer + d);
		if (ret)
			return ret;
	}
	return 0;
}

/* Decode tokens [@from, @to) of the trace. */
int moe_run_decode(struct run *r, uint64_t from, uint64_t to)
{
	const struct p2pio_expert_trace_info *ti = p2pio_expert_trace_info(r->t);
	uint32_t ids[RUN_MAX_USED];
	uint64_t ptr[RUN_MAX_USED], tok;
	const uint16_t *cell;
	uint32_t l, i;
	int n, ret;

	for (tok = from; tok < to; tok++) {
		p2pio_experts_token_begin(r->x);
		for (l = 0; l < ti->nr_layers; l++) {
			n = p2pio_expert_trace_cell(r->t, tok, l, &cell);
			if (n < 0)
				return n;
			if (n > RUN_MAX_USED)
				return -E2BIG;
			for (i = 0; i < (uint32_t)n; i++)
				ids[i] = cell[i];
			route_wait(r);
			ret = p2pio_experts_require(r->x, l, ids, (uint32_t)n, r->stream, ptr);
			if (ret) {
				cli_err("token %" PRIu64 " layer %u: %s", tok, l, p2pio_strerror(ret));
				return ret;
			}
			for (i = 0; !r->o.no_verify && i < (uint32_t)n; i++) {
				ret = verify_expert(r, l, ids[i], ptr[i]);
				if (ret)
					return ret;
			}
			if (r->o.compute_ns)
				p2pio_verifier_check(r->v, NULL, 0, r->stream, r->o.compute_ns);
			ret = p2pio_experts_release(r->x, l, ids, (uint32_t)n, r->stream);
			if (ret)
				return ret;
			ret = predict_next(r, tok, l);
			if (ret)
				return ret;
		}
		ret = p2pio_experts_token_end(r->x);
		if (ret)
			return ret;
	}
	return 0;
}
