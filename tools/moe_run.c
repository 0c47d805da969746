// SPDX-License-Identifier: MIT
/*
 * moe_run.c - `p2pio-moe run`: decode a routing trace with the real expert cache on a
 * synthetic model (p2pio-mkmodel), one GPU kernel per required expert that reads every
 * byte of it and checks it against the pattern, and report tokens/s, hit rate, the
 * stream's stall, and the bound that the storage ceiling and the measured misses set:
 * tokens/s <= ceiling / (bytes missed per token). This file opens the trace, the model, the
 * cache and the verifier and drives a run; moe_run.h names the other parts.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "moe.h"
#include "moe_run.h"
#include "p2pio.h"

/*
 * A decode shorter than this is no steady measurement: a cold file's first reads (and
 * the last token's tail) weigh in it, while the ceiling reads each shape for 0.3 s.
 * The H200's 1-layer decodes of 54 tokens lasted 30-78 ms (Documentation/moe.md).
 */
#define MOE_STEADY_S 0.5

const unsigned int run_path_depths[RUN_PATH_NDEPTHS] = { 2, 4, 8, RUN_PATH_DEPTH };

/* The most experts one layer of one token to decode requires at once. */
static uint32_t widest_cell(const struct run *r)
{
	const struct p2pio_expert_trace_info *ti = p2pio_expert_trace_info(r->t);
	uint64_t tok, tokens = p2pio_expert_trace_tokens(r->t);
	const uint16_t *cell;
	uint32_t l, widest = 0;
	int n;

	if (tokens > r->o.tokens)
		tokens = r->o.tokens;
	for (tok = 0; tok < tokens; tok++)
		for (l = 0; l < ti->nr_layers; l++) {
			n = p2pio_expert_trace_cell(r->t, tok, l, &cell);
			if (n > 0 && (uint32_t)n > widest)
				widest = (uint32_t)n;
		}
	return widest;
}

uint32_t moe_run_layer_experts(const struct run *r, uint32_t layer)
{
	const struct p2pio_gguf_layer *gl = p2pio_gguf_layer(p2pio_model_gguf(r->m), layer);

	return gl ? (uint32_t)gl->n_experts : 0;
}

/*
 * Whether every cell of the tokens to decode fits its layer: at most RUN_MAX_USED ids (a
 * wider one stopped the decode with no message), each below that layer's own expert count
 * (none for a dense layer). The trace's expert count is checked against the
 * model's largest layer only; layers differ (a model's first layers may be dense, and
 * layers may have fewer experts), and a cell that did not fit its layer failed the run
 * mid-decode with a bare "token 2 layer 1: Numerical result out of range", after the
 * measurements before it. 0, or -EINVAL with the cell named.
 */
static int cells_fit(const struct run *r)
{
	const struct p2pio_expert_trace_info *ti = p2pio_expert_trace_info(r->t);
	uint64_t tok, tokens = p2pio_expert_trace_tokens(r->t);
	const uint16_t *cell;
	uint32_t l, ne;
	int n, i;

	if (tokens > r->o.tokens)
		tokens = r->o.tokens;
	for (tok = 0; tok < tokens; tok++)
		for (l = 0; l < ti->nr_layers; l++) {
			n = p2pio_expert_trace_cell(r->t, tok, l, &cell);
			if (n <= 0)
				continue;
			/* A trace may route 255 (its format's top_k); the decode's arrays hold 64. */
			if (n > RUN_MAX_USED) {
				cli_err("the trace routes token %" PRIu64 " at layer %u to %d experts; "
					"run decodes at most %d of a layer", tok, l, n, RUN_MAX_USED);
				return -EINVAL;
			}
			ne = moe_run_layer_experts(r, l);
			for (i = 0; i < n; i++)
				if (cell[i] >= ne) {
					cli_err("the trace routes token %" PRIu64 " at layer %u to expert "
						"%u, but the model's layer %u has %u experts%s", tok, l,
						cell[i], l, ne, ne ? "" : " (a dense layer)");
					return -EINVAL;
				}
		}
	return 0;
}

int moe_run_cache_open(struct run *r, uint64_t budget, const char *policy, uint32_t flags)
{
	struct p2pio_experts_opts xo;
	struct p2pio_error err = { 0 };
	int ret;

	p2pio_experts_opts_init(&xo);
	xo.budget = budget;
	xo.policy = policy;
	xo.flags = flags | (r->o.eager_unmap ? P2PIO_EXPERTS_EAGER_UNMAP : 0) |
		   (r->o.keep_wrong_hints ? P2PIO_EXPERTS_KEEP_WRONG_HINTS : 0) |
		   (r->o.misses_in_order ? P2PIO_EXPERTS_MISSES_IN_ORDER : 0);
	xo.read_piece = r->o.read_piece;
	xo.read_pieces = r->o.read_pieces;
	ret = p2pio_experts_open(r->m, &xo, &r->x, &err);
	if (ret) {
		cli_err_p2pio("expert cache", ret, &err);
		return ret;
	}
	p2pio_experts_info(r->x, &r->info);
	return 0;
}

static int run_open(struct run *r)
{
	struct p2pio_ctx_opts co;
	struct p2pio_model_opts mo = { 0 };
	struct p2pio_error err = { 0 };
	const struct p2pio_expert_trace_info *ti;
	uint64_t all, budget;
	uint32_t need;
	int ret;

	ret = p2pio_expert_trace_load(r->o.trace, &r->t, &err);
	if (ret) {
		cli_err_p2pio(r->o.trace, ret, &err);
		return ret;
	}
	/*
	 * A trace without tokens decodes nothing: it ran the path's and the ceiling's
	 * measurements and reported 0 tokens/s with exit 0, as if it were a result.
	 */
	if (!p2pio_expert_trace_tokens(r->t)) {
		cli_err("%s: the trace has no tokens to decode", r->o.trace);
		return -EINVAL;
	}
	p2pio_ctx_opts_init(&co);
	if (r->o.device_set)
		co.device = r->o.device;
	co.path = r->o.path;
	co.chunk_size = r->o.chunk;
	co.threads = r->o.threads;
	co.queue_depth = r->o.queue_depth;
	if (!co.threads) {
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

		/*
		 * The CPUs less two: this thread and the cache's reaper need one each, and where
		 * the CPUs are the storage (zram) a thread per CPU starved them: 14 threads
		 * beat 16 on the H200's 16 CPUs (Documentation/moe.md).
		 */
		co.threads = ncpu - 2 < 4 ? 4 : ncpu - 2 > 16 ? 16 : (uint32_t)(ncpu - 2);
	}
	r->threads = co.threads;
	co.flags |= r->o.poll ? P2PIO_CTX_POLL : 0;
	co.flags |= r->o.bounce_async ? P2PIO_CTX_BOUNCE_ASYNC : 0;
	co.flags |= r->o.urgent_alone ? P2PIO_CTX_URGENT_ALONE : 0;
	ret = p2pio_ctx_create(&co, &r->ctx, &err);
	if (ret) {
		cli_err_p2pio("context", ret, &err);
		return ret;
	}
	/* What the engine resolved (its default depth where none was given). */
	if (p2pio_ctx_get_opts(r->ctx, &co) == 0)
		r->queue_depth = co.queue_depth;
	/* Cold: the experts come from storage, and AUTO does not take POSIX for a cached file. */
	if (!r->o.keep_cache)
		cli_drop_cache(r->o.model);
	ret = p2pio_model_open(r->ctx, r->o.model, &mo, &r->m, &err);
	if (ret) {
		cli_err_p2pio(r->o.model, ret, &err);
		return ret;
	}
	p2pio_model_info(r->m, &r->minfo);
	if (!r->minfo.has_seed && !r->o.no_verify) {
		cli_err("%s has no pattern seed (not from p2pio-mkmodel): use --no-verify",
			r->o.model);
		return -EINVAL;
	}
	/* The shape first, with every expert allowed: nothing is loaded for it. */
	ret = p2pio_experts_open(r->m, NULL, &r->x, &err);
	if (ret) {
		cli_err_p2pio(r->o.model, ret, &err);
		return ret;
	}
	p2pio_experts_info(r->x, &r->info);
	p2pio_experts_close(r->x);
	r->x = NULL;
	ti = p2pio_expert_trace_info(r->t);
	if (ti->nr_layers != r->info.layers || ti->nr_experts > r->info.experts) {
		cli_err("the trace (%u layers, %u experts) does not fit the model (%u layers, %u "
			"experts)", ti->nr_layers, ti->nr_experts, r->info.layers, r->info.experts);
		return -EINVAL;
	}
	ret = cells_fit(r);
	if (ret)
		return ret;
	all = (uint64_t)r->info.layers * r->info.experts;
	if (r->o.fraction > 0)
		budget = r->info.dense_bytes +
			 (uint64_t)((double)all * r->o.fraction + 0.5) * r->info.expert_bytes;
	else
		budget = r->o.budget;
	ret = moe_run_cache_open(r, budget, r->o.policy,
				 (r->o.prefetch_prev ? P2PIO_EXPERTS_PREFETCH_PREV : 0) |
				 (r->o.prefetch_learned ? P2PIO_EXPERTS_PREFETCH_LEARNED : 0));
	if (ret)
		return ret;
	/*
	 * The cache only checks that the budget holds one expert; a layer's experts of a token
	 * are resident at once, so with fewer slots than the trace's largest cell the first
	 * require failed with a bare "token 0 layer 0: No space left on device". Say what is
	 * missing instead.
	 */
	need = widest_cell(r);
	if (r->info.capacity < need) {
		cli_err("a budget of %" PRIu64 " bytes holds the dense part (%" PRIu64 ") and %"
			PRIu64 " experts, but the trace needs %u of a layer at once: give at least %"
			PRIu64, r->info.budget, r->info.dense_bytes, r->info.capacity, need,
			r->info.dense_bytes + (uint64_t)need * r->info.expert_bytes);
		return -ENOSPC;
	}
	ret = p2pio_verifier_open(r->ctx, r->minfo.pattern_seed, &r->v, &err);
	if (ret) {
		cli_err_p2pio("verifier", ret, &err);
		return ret;
	}
	if (p2pio_ctx_device(r->ctx) != P2PIO_DEVICE_HOST) {
		if (!bench_cuda_init(&r->cu, p2pio_ctx_device(r->ctx))) {
			cli_err("%s", r->cu.why);
			return -ENODEV;
		}
		if (r->cu.StreamCreate(&r->stream, 1 /* CU_STREAM_NON_BLOCKING */)) {
			cli_err("cuStreamCreate failed");
			return -ENODEV;
		}
	}
	return 0;
}

static void run_close(struct run *r)
{
	if (r->stream) {
		r->cu.StreamSynchronize(r->stream);
		r->cu.StreamDestroy(r->stream);
	}
	p2pio_verifier_close(r->v);
	p2pio_experts_close(r->x);
	p2pio_model_close(r->m);
	p2pio_ctx_destroy(r->ctx);
	p2pio_expert_trace_free(r->t);
}

/*
 * What the counts of a run come to: tokens/s, the bound (the ceiling / the bytes missed
 * per token), and where the time went beyond the bytes.
 */
static void run_results(const struct run *r, struct run_result *res)
{
	const struct p2pio_expert_stats *st = &res->st;
	const struct p2pio_experts_io *io = &res->io;
	double wall_s = (double)res->wall_ns * 1e-9, ceiling = res->ceiling;
	uint64_t tokens = res->tokens;

	res->all = (uint64_t)r->info.layers * r->info.experts;
	res->tps = tokens ? (double)tokens / wall_s : 0;
	res->short_decode = wall_s < MOE_STEADY_S;
	res->missed = tokens ? (double)io->bytes / (double)tokens : 0;
	res->bound = res->missed > 0 ? ceiling / res->missed : 0;
	/*
	 * The miss batches of the decode itself (the demand loads of each require): how long
	 * each took from its require to its last load done, against its bytes / the ceiling.
	 * In step that difference is what every layer with a miss waits beyond the bytes
	 * (issue 12's overhead per miss batch, in the decode rather than --miss-cost's cold
	 * batches); run ahead, batches overlap and wait for each other's reads.
	 */
	if (io->batches && io->loads && ceiling > 0) {
		res->batch_loads = (double)(io->loads - io->prefetches) / (double)io->batches;
		res->batch_us = (double)io->batch_done_ns * 1e-3 / (double)io->batches;
		res->batch_bytes_us = res->batch_loads * ((double)io->bytes / (double)io->loads) /
				      ceiling * 1e6;
	}
	/*
	 * The whole decode's time beyond its bytes / the ceiling, per layer with a miss: the
	 * one constant of the replay's model of a decode in step (p2pio-moe replay
	 * --miss-overhead), everything a token spends besides reading lumped on its waits.
	 */
	if (tokens && st->missed_layers && ceiling > 0) {
		res->beyond_us = (double)res->wall_ns * 1e-3 / (double)tokens -
				 res->missed / ceiling * 1e6;
		res->wait_us = res->beyond_us / ((double)st->missed_layers / (double)tokens);
	}
	res->hit = st->accesses ? (double)st->hits / (double)st->accesses : 0;
}

static int run_main(int argc, char **argv)
{
	struct run_result res = {
		.st = { .size = sizeof(res.st) },
		.io = { .size = sizeof(res.io) },
		.pi = { .size = sizeof(res.pi) },
		.ceiling_why = "given",
		.wait_us = NAN,
	};
	struct run r;
	uint64_t tokens, t0;
	double ceiling_gbps;
	struct bench_ceiling_params cp;
	struct bench_ceiling_best best;
	struct miss_cost mc;
	FILE *out = stdout;
	unsigned int i;
	int ret;

	memset(&r, 0, sizeof(r));
	ret = moe_run_parse(argc, argv, &r.o);
	if (ret)
		return ret;
	ret = run_open(&r);
	if (ret)
		goto out_fail;
	tokens = p2pio_expert_trace_tokens(r.t);
	if (tokens > r.o.tokens)
		tokens = r.o.tokens;
	/*
	 * A warm-up asked for that takes every token would leave nothing to measure; it was
	 * dropped without a word, and the run measured every token cold instead.
	 */
	if (r.o.warmup_set && r.o.warmup && r.o.warmup >= tokens) {
		ret = cli_usage_err("--warmup %" PRIu64 " leaves no token to measure: the run "
				    "decodes %" PRIu64 " of the trace", r.o.warmup, tokens);
		run_close(&r);
		return ret;
	}
	res.warm = r.o.warmup_set ? r.o.warmup : tokens / 10;
	if (res.warm >= tokens)
		res.warm = 0;
	for (i = 0; i < RUN_PATH_NDEPTHS; i++) {
		ret = moe_run_measure_path(&r, run_path_depths[i], &res.path_rates[i]);
		if (ret) {
			cli_err("measuring the path's reads, %u deep: %s", run_path_depths[i],
				p2pio_strerror(ret));
			goto out_fail;
		}
	}
	res.path_rate = res.path_rates[RUN_PATH_NDEPTHS - 1];
	cp = (struct bench_ceiling_params){
		.path = r.o.model,
		.file_size = r.minfo.file_size,
		.cold = !r.o.keep_cache,
		.cu = r.stream ? &r.cu : NULL,
		.duration = 1,
	};
	res.ceiling = r.o.ceiling;
	if (!(res.ceiling > 0)) {
		ret = bench_ceiling(&cp, &ceiling_gbps, res.ceiling_why, sizeof(res.ceiling_why),
				    &best);
		if (ret) {
			cli_err("measuring the ceiling: %s", p2pio_strerror(ret));
			goto out_fail;
		}
		res.ceiling = ceiling_gbps * 1e9;
	}
	p2pio_path_info(p2pio_model_file(r.m), &res.pi);
	/* Warm-up, then the measurement, each ending with the stream drained. */
	ret = moe_run_decode(&r, 0, res.warm);
	moe_run_stream_sync(&r);
	if (ret)
		goto out_fail;
	p2pio_experts_stats(r.x, NULL, &res.io, true);
	{
		struct p2pio_expert_stats s0 = { .size = sizeof(s0) }, *st = &res.st;

		p2pio_experts_stats(r.x, &s0, NULL, false);
		t0 = run_now_ns();
		ret = moe_run_decode(&r, res.warm, tokens);
		moe_run_stream_sync(&r);
		res.wall_ns = run_now_ns() - t0;
		if (ret)
			goto out_fail;
		p2pio_experts_stats(r.x, st, &res.io, false);
		st->accesses -= s0.accesses;
		st->hits -= s0.hits;
		st->misses -= s0.misses;
		st->late -= s0.late;
		st->prefetches -= s0.prefetches;
		st->prefetch_used -= s0.prefetch_used;
		st->evictions -= s0.evictions;
		st->missed_layers -= s0.missed_layers;
	}
	if (!r.o.no_verify) {
		ret = p2pio_verifier_result(r.v, &res.vr, false);
		if (ret)
			goto out_fail;
	}
	/* The best storage shape again: a device faster now than before is no bound's excuse. */
	if (!(r.o.ceiling > 0)) {
		ret = bench_ceiling_again(&cp, &best, &ceiling_gbps, res.ceiling_why,
					  sizeof(res.ceiling_why));
		if (ret) {
			cli_err("measuring the ceiling again: %s", p2pio_strerror(ret));
			goto out_fail;
		}
		res.ceiling = ceiling_gbps * 1e9;
	}
	res.tokens = tokens - res.warm;
	run_results(&r, &res);
	/*
	 * --miss-cost with --json: measured first, to go into the one JSON object (it was
	 * left out without a word). In text the report comes first, as the batches take a
	 * while, and their table follows it.
	 */
	if (r.o.miss_cost && r.o.json)
		moe_run_miss_cost(&r, res.ceiling, &mc);
	moe_run_report(out, &r, &res, r.o.miss_cost && r.o.json ? &mc : NULL);
	if (r.o.miss_cost && !r.o.json) {
		fflush(out);
		moe_run_miss_cost(&r, res.ceiling, &mc);
		moe_run_miss_cost_text(out, &r, &mc);
	}
	ret = res.vr.mismatches ? CLI_EXIT_FAIL : CLI_EXIT_OK;
	if (res.vr.mismatches)
		cli_err("%" PRIu64 " bytes differ from the model (first at file offset %" PRIu64 ")",
			res.vr.mismatches, res.vr.first_mismatch);
	run_close(&r);
	return ret;

out_fail:
	run_close(&r);
	return CLI_EXIT_ERROR;
}

const struct moe_cmd moe_cmd_run = {
	.name = "run",
	.summary = "decode a trace with the real expert cache, every expert verified; tokens/s "
		   "against the bound",
	.main = run_main,
};
