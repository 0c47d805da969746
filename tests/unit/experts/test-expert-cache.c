// SPDX-License-Identifier: MIT
/*
 * test-expert-cache.c - the expert cache on host memory, on every engine path: the dense
 * part resident, every byte of every slice of every required expert checked against the
 * pattern, the budget never exceeded, nothing committed at open, experts evicted and
 * reloaded at the same address, loads cut into many reads, pins, prefetch (explicit and
 * from the previous token), statistics consistent (the miss batches' breakdown too),
 * misuse refused.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "p2pio.h"
#include "experts/cache.h"	/* the entries' load state: hints_loading() */
#include "experts/expert_io.h"	/* an expert's reads: test_bytes_loaded() */
#include "engine_fixture.h"	/* efx_drop_cache() */
#include "model_fixture.h"
#include "tap.h"

#define NLAYERS 4
#define NEXPERTS 8
#define HIDDEN 256
#define FFN 96
#define SEED 0xe4e47c0ffeeull
#define TOKENS 40
#define USED 2

static char model_path[PATH_MAX];

static void cleanup(void)
{
	if (model_path[0])
		unlink(model_path);
}

static struct p2pio_ctx *host_ctx_flags(enum p2pio_path path, uint32_t flags)
{
	struct p2pio_ctx_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *ctx;

	p2pio_ctx_opts_init(&o);
	o.device = P2PIO_DEVICE_HOST;
	o.path = path;
	o.chunk_size = 64 << 10;
	o.flags = flags;
	if (p2pio_ctx_create(&o, &ctx, &err)) {
		tap_diag("context: %s", err.msg);
		return NULL;
	}
	return ctx;
}

static struct p2pio_ctx *host_ctx(enum p2pio_path path)
{
	return host_ctx_flags(path, 0);
}

/* Every byte of every slice of (layer, expert) at @ptr; 0 when all match. */
static int check_expert(struct p2pio_experts *x, uint32_t layer, uint32_t expert, uint64_t ptr)
{
	struct p2pio_expert_slice s[8];
	uint64_t bad;
	int n, i;

	n = p2pio_experts_slices(x, layer, expert, s, 8);
	if (n <= 0 || n > 8)
		return 1;
	for (i = 0; i < n; i++)
		if (!p2pio_pattern_check(SEED, s[i].file_offset,
					 (const void *)(uintptr_t)(ptr + s[i].offset), s[i].size,
					 &bad)) {
			tap_diag("  layer %u expert %u %s differs at file offset %llu", layer,
				 expert, s[i].name, (unsigned long long)bad);
			return 1;
		}
	return 0;
}

/* A routing with some locality: experts drift slowly, token by token. */
static void route(uint32_t token, uint32_t layer, uint32_t *ids)
{
	uint32_t a = (token / 3 + layer * 5) % NEXPERTS;
	uint32_t b = (a + 1 + (token * 7 + layer) % (NEXPERTS - 1)) % NEXPERTS;

	ids[0] = a;
	ids[1] = b;
}

/* A routing: the experts (USED of them) @token chooses at @layer. */
typedef void route_fn(uint32_t token, uint32_t layer, uint32_t *ids);

/*
 * Decode tokens [@from, @to) through layers @l0 .. NLAYERS - 1, routed by @route (with the
 * layer's index from @l0): each layer required, every byte of its experts checked (@bad
 * counts the wrong ones), released. 0 or the first error.
 */
static int decode(struct p2pio_experts *x, uint32_t from, uint32_t to, uint32_t l0,
		  route_fn *route_of, int *bad)
{
	uint32_t tok, l, ids[USED], i;
	uint64_t ptr[USED];
	int ret = 0;

	for (tok = from; tok < to && !ret; tok++) {
		p2pio_experts_token_begin(x);
		for (l = l0; l < NLAYERS && !ret; l++) {
			route_of(tok, l - l0, ids);
			ret = p2pio_experts_require(x, l, ids, USED, NULL, ptr);
			for (i = 0; !ret && i < USED; i++)
				*bad += check_expert(x, l, ids[i], ptr[i]);
			ret = ret ?: p2pio_experts_release(x, l, ids, USED, NULL);
		}
		ret = ret ?: p2pio_experts_token_end(x);
	}
	return ret;
}

static uint64_t budget_for(struct p2pio_model *m, uint32_t experts)
{
	struct p2pio_experts_info info;
	struct p2pio_experts *x;

	if (p2pio_experts_open(m, NULL, &x, NULL))
		return 0;
	p2pio_experts_info(x, &info);
	p2pio_experts_close(x);
	return info.dense_bytes + experts * info.expert_bytes;
}

/*
 * Decode with room for 12 experts; @piece: the read piece (0: the default), or @pieces
 * reads per load.
 */
static void test_decode(struct p2pio_ctx *ctx, const char *pname, uint64_t piece,
			uint32_t pieces, uint32_t flags)
{
	uint64_t home[NLAYERS][NEXPERTS] = { { 0 } }, ptr[USED], committed_max = 0;
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_experts_io io = { .size = sizeof(io) };
	struct p2pio_experts_opts o;
	struct p2pio_experts_info info;
	struct p2pio_model_tensor t;
	struct p2pio_error err = { 0 };
	struct p2pio_experts *x;
	struct p2pio_model *m;
	uint32_t tok, l, ids[USED], i;
	int bad = 0, moved = 0, untimed = 0, ret = 0;
	uint64_t b, batches = 0;
	struct p2pio_experts_io before = { .size = sizeof(before) };

	if (p2pio_model_open(ctx, model_path, NULL, &m, &err)) {
		tap_ok(0, "%s: model opens: %s", pname, err.msg);
		return;
	}
	b = budget_for(m, 12);
	p2pio_experts_opts_init(&o);
	o.budget = b;
	o.read_piece = piece;
	o.read_pieces = pieces;
	o.flags = flags;
	ret = p2pio_experts_open(m, &o, &x, &err);
	tap_is_int(ret, 0, "%s: cache opens with room for 12 of %d experts, reads of %llu bytes",
		   pname, NLAYERS * NEXPERTS, (unsigned long long)piece);
	if (ret) {
		tap_diag("  %s", err.msg);
		goto out_model;
	}
	p2pio_experts_info(x, &info);
	tap_ok(info.layers == NLAYERS && info.experts == NEXPERTS && info.experts_used == USED &&
	       info.capacity == 12 && info.stable, "%s: shape: %u layers, %u experts, capacity %llu",
	       pname, info.layers, info.experts, (unsigned long long)info.capacity);
	p2pio_experts_stats(x, NULL, &io, false);
	tap_ok(io.committed == 0 && io.dense_bytes == info.dense_bytes,
	       "%s: no expert memory committed at open", pname);
	ret = p2pio_experts_tensor(x, "blk.2.attn_q.weight", &t);
	tap_ok(!ret && t.host && p2pio_pattern_check(SEED, t.file_offset, t.host, t.size, NULL),
	       "%s: a dense tensor is resident and right", pname);
	tap_is_int(p2pio_experts_tensor(x, "blk.0.ffn_up_exps.weight", &t), -EINVAL,
		   "%s: an expert tensor is not a dense one", pname);

	for (tok = 0; tok < TOKENS && !ret; tok++) {
		p2pio_experts_token_begin(x);
		for (l = 0; l < NLAYERS && !ret; l++) {
			route(tok, l, ids);
			p2pio_experts_stats(x, NULL, &before, false);
			ret = p2pio_experts_require(x, l, ids, USED, NULL, ptr);
			if (ret) {
				tap_diag("  token %u layer %u: %s", tok, l, p2pio_strerror(ret));
				break;
			}
			for (i = 0; i < USED; i++) {
				bad += check_expert(x, l, ids[i], ptr[i]);
				if (home[l][ids[i]] && home[l][ids[i]] != ptr[i])
					moved++;
				home[l][ids[i]] = ptr[i];
			}
			p2pio_experts_stats(x, NULL, &io, false);
			if (io.committed > committed_max)
				committed_max = io.committed;
			/* Without a GPU, require returns with its miss batch complete. */
			batches += io.loads > before.loads;
			if (io.batches - before.batches != (io.loads > before.loads) ||
			    io.batch_done_ns - before.batch_done_ns <
				    io.batch_first_ns - before.batch_first_ns ||
			    io.batch_done_ns - before.batch_done_ns <
				    io.batch_submit_ns - before.batch_submit_ns)
				untimed++;
			ret = p2pio_experts_release(x, l, ids, USED, NULL);
		}
		ret = ret ?: p2pio_experts_token_end(x);
	}
	tap_is_int(ret, 0, "%s: %d tokens decoded", pname, TOKENS);
	tap_is_int(bad, 0, "%s: every byte of every required expert is the file's", pname);
	tap_is_int(moved, 0, "%s: an expert has the same address every time", pname);
	p2pio_experts_stats(x, &st, &io, false);
	tap_ok(committed_max <= 12 * info.expert_bytes && io.peak <= 12 * info.expert_bytes,
	       "%s: the budget holds (peak %llu of %llu bytes)", pname,
	       (unsigned long long)io.peak, (unsigned long long)(12 * info.expert_bytes));
	tap_ok(st.accesses == TOKENS * NLAYERS * USED && st.hits + st.misses == st.accesses &&
	       st.misses > 0 && st.hits > 0 && st.evictions > 0 && st.tokens == TOKENS,
	       "%s: %llu accesses, %llu hits, %llu misses, %llu evictions", pname,
	       (unsigned long long)st.accesses, (unsigned long long)st.hits,
	       (unsigned long long)st.misses, (unsigned long long)st.evictions);
	tap_ok(io.loads == st.misses && io.creates <= 12 && io.maps == io.loads &&
	       io.unmaps == st.evictions && io.bytes >= io.loads * info.expert_data,
	       "%s: a load per miss, chunks reused (%llu created, %llu maps)", pname,
	       (unsigned long long)io.creates, (unsigned long long)io.maps);
	tap_ok(!untimed && io.batches == batches && io.batches > 0 && io.batch_done_ns > 0 &&
	       io.read_piece == (piece ? piece : io.read_piece) && io.read_piece > 0 &&
	       io.reads >= io.loads && (io.read_pieces || io.reads >= io.bytes / io.read_piece) &&
	       (!piece || io.reads > 2 * io.loads) &&
	       io.read_pieces == (pieces || piece ? pieces : io.read_pieces) &&
	       (!io.read_pieces || (io.reads >= io.loads * io.read_pieces / 2 &&
			    /* each run at least one: at most 16 expert tensors */
			    io.reads <= io.loads * (io.read_pieces + 16))) &&
	       io.busy_ns > 0 && io.busy_ns <= io.wall_ns,
	       "%s: %llu miss batches timed, %llu reads of %llu bytes for %llu loads, "
	       "loads in flight %.0f%% of the time", pname,
	       (unsigned long long)io.batches, (unsigned long long)io.reads,
	       (unsigned long long)io.read_piece, (unsigned long long)io.loads,
	       io.wall_ns ? 100.0 * (double)io.busy_ns / (double)io.wall_ns : 0);
	/* Deferred: each victim's home is unmapped at the release after its eviction, or by
	 * the miss that maps the home again first; eager: at once, in require. */
	if (flags & P2PIO_EXPERTS_EAGER_UNMAP)
		tap_ok(io.late_unmaps == 0 && io.forced_unmaps == 0,
		       "%s, eager unmapping: no unmap after the batch", pname);
	else
		tap_ok(io.late_unmaps > 0 && io.late_unmaps + io.forced_unmaps == st.evictions,
		       "%s: every victim unmapped after its batch (%llu at release, %llu forced, "
		       "%llu evictions)", pname, (unsigned long long)io.late_unmaps,
		       (unsigned long long)io.forced_unmaps, (unsigned long long)st.evictions);
	p2pio_experts_close(x);
out_model:
	p2pio_model_close(m);
}

static void test_pins_prefetch(struct p2pio_ctx *ctx)
{
	struct p2pio_expert_stats st = { .size = sizeof(st) }, st2 = { .size = sizeof(st2) };
	struct p2pio_experts_io io = { .size = sizeof(io) };
	struct p2pio_experts_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_experts *x;
	struct p2pio_model *m;
	uint32_t hot[2] = { 5, 6 }, ids[USED], tok, l, all[NEXPERTS], i;
	uint64_t ptr[NEXPERTS], pin_ptr[2];
	int ret = 0, bad = 0;

	if (p2pio_model_open(ctx, model_path, NULL, &m, &err)) {
		tap_ok(0, "model opens: %s", err.msg);
		return;
	}
	p2pio_experts_opts_init(&o);
	o.budget = budget_for(m, 5);
	if (p2pio_experts_open(m, &o, &x, &err)) {
		tap_ok(0, "cache opens: %s", err.msg);
		goto out_model;
	}
	tap_is_int(p2pio_experts_pin(x, 3, hot, 2, true), 0, "pin two experts of layer 3");
	ret = p2pio_experts_require(x, 3, hot, 2, NULL, pin_ptr);
	p2pio_experts_release(x, 3, hot, 2, NULL);
	p2pio_experts_stats(x, &st, NULL, false);
	tap_ok(!ret && st.hits == 2 && st.misses == 0, "pinned experts are resident at once");
	for (tok = 0; tok < TOKENS && !ret; tok++)
		for (l = 0; l < 3 && !ret; l++) {
			route(tok, l, ids);
			ret = p2pio_experts_require(x, l, ids, USED, NULL, ptr);
			ret = ret ?: p2pio_experts_release(x, l, ids, USED, NULL);
		}
	p2pio_experts_stats(x, &st, NULL, false);
	ret = ret ?: p2pio_experts_require(x, 3, hot, 2, NULL, ptr);
	p2pio_experts_stats(x, &st2, NULL, false);
	tap_ok(!ret && st.evictions > 0 && st2.hits == st.hits + 2 && ptr[0] == pin_ptr[0] &&
	       ptr[1] == pin_ptr[1], "pinned experts survive %llu evictions",
	       (unsigned long long)st.evictions);
	bad = check_expert(x, 3, hot[0], ptr[0]) + check_expert(x, 3, hot[1], ptr[1]);
	tap_is_int(bad, 0, "and their bytes are right");
	p2pio_experts_release(x, 3, hot, 2, NULL);

	/* Three more held experts fill the budget; a fourth cannot be loaded. */
	for (i = 0; i < NEXPERTS; i++)
		all[i] = i;
	tap_is_int(p2pio_experts_require(x, 0, all, 3, NULL, ptr), 0, "hold three experts");
	tap_is_int(p2pio_experts_require(x, 1, all, 1, NULL, ptr), -ENOSPC,
		   "a fourth does not fit beside two pinned and three held: -ENOSPC");
	tap_is_int(p2pio_experts_release(x, 0, all, 3, NULL), 0, "release them");
	tap_is_int(p2pio_experts_release(x, 0, all, 1, NULL), -EINVAL,
		   "releasing an expert not held is refused");
	tap_is_int(p2pio_experts_pin(x, 3, hot, 2, false), 0, "unpin");

	/* Explicit prefetch: the next require of those experts hits. */
	p2pio_experts_stats(x, &st, &io, false);
	ret = p2pio_experts_prefetch(x, 2, all + 4, 3);
	tap_ok(ret >= 1 && ret <= 3, "prefetch starts loads (%d)", ret);
	ret = p2pio_experts_require(x, 2, all + 4, 3, NULL, ptr);
	p2pio_experts_stats(x, &st2, NULL, false);
	tap_ok(!ret && st2.misses == st.misses && st2.prefetches > st.prefetches &&
	       st2.prefetch_used > st.prefetch_used, "prefetched experts are hits when required");
	bad = 0;
	for (i = 0; i < 3; i++)
		bad += check_expert(x, 2, all[4 + i], ptr[i]);
	tap_is_int(bad, 0, "and their bytes are right");
	p2pio_experts_release(x, 2, all + 4, 3, NULL);

	/* Misuse. */
	ids[0] = ids[1] = 1;
	tap_is_int(p2pio_experts_require(x, 0, ids, 2, NULL, ptr), -EINVAL,
		   "duplicate ids are refused");
	ids[1] = NEXPERTS;
	tap_is_int(p2pio_experts_require(x, 0, ids, 2, NULL, ptr), -ERANGE,
		   "an expert out of range is refused");
	tap_is_int(p2pio_experts_require(x, NLAYERS, ids, 1, NULL, ptr), -ERANGE,
		   "a layer out of range is refused");
	tap_is_int(p2pio_experts_slices(x, 0, NEXPERTS, NULL, 0), -ERANGE,
		   "slices of an expert out of range are refused");
	p2pio_experts_close(x);
out_model:
	p2pio_model_close(m);
}

/* The previous token's routing at the next layer loads while this layer is required. */
static void test_prefetch_prev(struct p2pio_ctx *ctx)
{
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_experts_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_experts *x;
	struct p2pio_model *m;
	int ret = 0, bad = 0;

	if (p2pio_model_open(ctx, model_path, NULL, &m, &err)) {
		tap_ok(0, "model opens: %s", err.msg);
		return;
	}
	p2pio_experts_opts_init(&o);
	o.budget = budget_for(m, 6);
	o.flags = P2PIO_EXPERTS_PREFETCH_PREV;
	if (p2pio_experts_open(m, &o, &x, &err)) {
		tap_ok(0, "cache opens: %s", err.msg);
		goto out_model;
	}
	ret = decode(x, 0, TOKENS, 0, route, &bad);
	p2pio_experts_stats(x, &st, NULL, false);
	tap_ok(!ret && !bad, "decode with previous-token prefetch, every byte right");
	tap_ok(st.prefetches > 0 && st.prefetch_used > 0 &&
	       st.loads == st.misses + st.prefetches,
	       "previous-token prefetch: %llu issued, %llu used, %llu misses left",
	       (unsigned long long)st.prefetches, (unsigned long long)st.prefetch_used,
	       (unsigned long long)st.misses);
	p2pio_experts_close(x);
out_model:
	p2pio_model_close(m);
}

/*
 * A routing whose layers follow each other: layer 0 of token t takes t and t + 1, each
 * later layer maps the one before through e -> 3e + 1 (mod 8, a bijection, so a layer's
 * two experts stay distinct). What a layer routes to is then known from the layer before.
 */
static void chained_route(uint32_t token, uint32_t layer, uint32_t *ids)
{
	uint32_t i, l;

	ids[0] = token % NEXPERTS;
	ids[1] = (token + 1) % NEXPERTS;
	for (l = 0; l < layer; l++)
		for (i = 0; i < USED; i++)
			ids[i] = (3 * ids[i] + 1) % NEXPERTS;
}

/*
 * Decode @m's layers @l0 .. NLAYERS - 1 with chained_route() (layer @l0 as its layer 0) in a
 * budget of 6 experts under LRU, without (run 0) and with (run 1) the learned prefetch:
 * @late[run][l] are layer l's misses after 2 x NEXPERTS tokens of warm-up, @used the
 * prefetches run 1 used, @bad the wrong experts. 0 or the first error.
 */
static int learned_runs(struct p2pio_model *m, uint32_t l0, uint64_t late[2][NLAYERS],
			uint64_t *used, int *bad)
{
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_expert_layer_stats ls;
	struct p2pio_experts_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_experts *x;
	uint64_t warm[NLAYERS] = { 0 };
	uint32_t l, run;
	int ret = 0;

	for (run = 0; run < 2 && !ret; run++) {
		p2pio_experts_opts_init(&o);
		o.budget = budget_for(m, 6);
		o.policy = "lru";
		o.flags = run ? P2PIO_EXPERTS_PREFETCH_LEARNED : 0;
		ret = p2pio_experts_open(m, &o, &x, &err);
		if (ret) {
			tap_diag("cache opens: %s", err.msg);
			break;
		}
		ret = decode(x, 0, 2 * NEXPERTS, l0, chained_route, bad);
		for (l = l0; l < NLAYERS; l++)
			if (!p2pio_experts_layer_stats(x, l, &ls))
				warm[l] = ls.misses;
		ret = ret ?: decode(x, 2 * NEXPERTS, TOKENS, l0, chained_route, bad);
		for (l = l0; l < NLAYERS; l++)
			if (!p2pio_experts_layer_stats(x, l, &ls))
				late[run][l] = ls.misses - warm[l];
		p2pio_experts_stats(x, &st, NULL, false);
		*used = st.prefetch_used;
		p2pio_experts_close(x);
	}
	return ret;
}

/*
 * The learned prefetch on chained routing: once it has seen each expert of a layer lead to
 * its successor (a token or so per expert), every later layer's experts are prefetched
 * before they are required and no layer after the first misses again; without the flag
 * they keep missing. Every byte checked.
 */
static void test_prefetch_learned(struct p2pio_ctx *ctx)
{
	uint64_t late[2][NLAYERS] = { { 0 } }, used = 0, sum[2] = { 0 };
	struct p2pio_error err = { 0 };
	struct p2pio_model *m;
	int ret, bad = 0;
	uint32_t l;

	if (p2pio_model_open(ctx, model_path, NULL, &m, &err)) {
		tap_ok(0, "model opens: %s", err.msg);
		return;
	}
	ret = learned_runs(m, 0, late, &used, &bad);
	for (l = 1; l < NLAYERS; l++) {
		sum[0] += late[0][l];
		sum[1] += late[1][l];
	}
	tap_ok(!ret && !bad, "decodes with and without learned prefetch, every byte right");
	tap_ok(sum[1] == 0 && sum[0] > 0 && used > 0,
	       "learned prefetch: after %d tokens layers 1-%d miss %llu times (%llu without), "
	       "%llu prefetches used", 2 * NEXPERTS, NLAYERS - 1, (unsigned long long)sum[1],
	       (unsigned long long)sum[0], (unsigned long long)used);
	p2pio_model_close(m);
}

/*
 * A model whose layer 0 is dense (DeepSeek's first layers are): the built-in prefetch is
 * for the next layer with experts, layer 1 after layer 3, across the token boundary.
 * Layers 1-3 route as chained_route()'s layers 0-2: with the learned prefetch layers 2 and
 * 3 stop missing once the predictor has seen each expert lead to its successor, and layer
 * 1, predicted from the token before's layer 3, misses far less than without it (where a
 * prefetch after layer 3 went to layer 0, there was nothing to load, and layer 1 missed
 * as without).
 */
static void test_prefetch_dense_first(struct p2pio_ctx *ctx)
{
	uint64_t late[2][NLAYERS] = { { 0 } }, used = 0, ptr[1];
	struct p2pio_error err = { 0 };
	struct p2pio_experts *x = NULL;
	struct p2pio_model *m = NULL;
	char mpath[PATH_MAX + 8];
	uint32_t zero = 0;
	int ret, bad = 0;

	snprintf(mpath, sizeof(mpath), "%s.dense0", model_path);
	if (model_fixture_write_moe_ex(mpath, NLAYERS, 1, NEXPERTS, HIDDEN, FFN, SEED) ||
	    p2pio_model_open(ctx, mpath, NULL, &m, &err) || p2pio_experts_open(m, NULL, &x, &err)) {
		tap_ok(0, "a model with a dense layer 0 and its cache open: %s", err.msg);
		goto out;
	}
	tap_is_int(p2pio_experts_require(x, 0, &zero, 1, NULL, ptr), -EINVAL,
		   "a dense layer has no experts to require");
	p2pio_experts_close(x);
	x = NULL;
	ret = learned_runs(m, 1, late, &used, &bad);
	tap_ok(!ret && !bad, "dense layer 0: %d tokens of layers 1-%d, with and without the "
	       "learned prefetch, every byte right", TOKENS, NLAYERS - 1);
	tap_ok(!ret && late[1][2] + late[1][3] == 0 && late[0][2] + late[0][3] > 0 &&
	       late[1][1] * 2 < late[0][1],
	       "after %d tokens layers 2-3 miss %llu times (%llu without), layer 1, prefetched "
	       "after layer 3, %llu (%llu without)", 2 * NEXPERTS,
	       (unsigned long long)(late[1][2] + late[1][3]),
	       (unsigned long long)(late[0][2] + late[0][3]), (unsigned long long)late[1][1],
	       (unsigned long long)late[0][1]);
out:
	p2pio_experts_close(x);
	p2pio_model_close(m);
	unlink(mpath);
}

static void test_open_errors(struct p2pio_ctx *ctx)
{
	struct p2pio_experts_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_experts *x = NULL;
	struct p2pio_streamer *s = NULL;
	struct p2pio_model *m;

	if (p2pio_model_open(ctx, model_path, NULL, &m, &err)) {
		tap_ok(0, "model opens: %s", err.msg);
		return;
	}
	p2pio_experts_opts_init(&o);
	o.budget = budget_for(m, 1) - 1;
	tap_is_int(p2pio_experts_open(m, &o, &x, &err), -ENOSPC,
		   "a budget below the dense part and one expert is refused");
	tap_ok(strstr(err.msg, "give at least") != NULL, "and says how much is needed");
	o.budget = 0;
	o.policy = "no-such-policy";
	tap_is_int(p2pio_experts_open(m, &o, &x, &err), -EINVAL, "an unknown policy is refused");
	o.policy = "lfu";
	o.flags = 1u << 31;
	tap_is_int(p2pio_experts_open(m, &o, &x, &err), -EINVAL, "an unknown flag is refused");
	tap_ok(strstr(err.msg, "unknown flags 0x80000000") != NULL, "and named");
	o.flags = 0;
	tap_is_int(p2pio_experts_open(m, &o, &x, &err), 0, "another policy by name");
	/* Loaded whole or streamed, the model would load what the cache's budget leaves out. */
	tap_is_int(p2pio_model_load(m, NULL, NULL), -EBUSY,
		   "while the cache is open the model is not loaded whole: EBUSY");
	tap_is_int(p2pio_streamer_open(m, NULL, &s, &err), -EBUSY, "nor streamed: EBUSY");
	tap_ok(strstr(err.msg, "expert cache") != NULL, "and says why: %s", err.msg);
	p2pio_experts_close(x);
	tap_is_int(p2pio_streamer_open(m, NULL, &s, &err), 0, "once it is closed, it streams");
	p2pio_streamer_close(s);
	p2pio_model_close(m);
}

/*
 * A caller's own policy, by table: it evicts the resident expert with the highest number
 * (a rule no built-in policy has), and counts its hooks, so the test sees the cache call
 * the caller's table and not a built-in one.
 */
struct mypol {
	uint32_t layers, experts;
	bool *resident;
	unsigned int inserted, accessed, removed, victims;
};

static struct mypol *mypol_last;

static int mypol_create(void **state, uint32_t nl, uint32_t ne, const char *args,
			const void *data)
{
	struct mypol *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->resident = calloc((size_t)nl * ne, sizeof(bool));
	if (!p->resident) {
		free(p);
		return -ENOMEM;
	}
	p->layers = nl;
	p->experts = ne;
	*state = mypol_last = p;
	return 0;
}

static void mypol_destroy(void *state)
{
	struct mypol *p = state;

	free(p->resident);
	free(p);
	mypol_last = NULL;
}

static void mypol_inserted(void *state, struct p2pio_expert_ref r, uint64_t tick)
{
	struct mypol *p = state;

	p->resident[(size_t)r.layer * p->experts + r.expert] = true;
	p->inserted++;
}

static void mypol_accessed(void *state, struct p2pio_expert_ref r, uint64_t tick)
{
	((struct mypol *)state)->accessed++;
}

static void mypol_removed(void *state, struct p2pio_expert_ref r)
{
	struct mypol *p = state;

	p->resident[(size_t)r.layer * p->experts + r.expert] = false;
	p->removed++;
}

static int mypol_victim(void *state, uint32_t layer,
			bool (*evictable)(void *arg, struct p2pio_expert_ref ref), void *arg,
			struct p2pio_expert_ref *out)
{
	struct mypol *p = state;
	struct p2pio_expert_ref r;
	uint32_t l, e;

	p->victims++;
	for (l = p->layers; l-- > 0;) {
		if (layer != P2PIO_EXPERT_ANY_LAYER && l != layer)
			continue;
		for (e = p->experts; e-- > 0;) {
			r.layer = l;
			r.expert = e;
			if (p->resident[(size_t)l * p->experts + e] && evictable(arg, r)) {
				*out = r;
				return 0;
			}
		}
	}
	return -ENOENT;
}

static const struct p2pio_expert_policy_ops mypol_ops = {
	.name = "highest-first",
	.create = mypol_create,
	.destroy = mypol_destroy,
	.inserted = mypol_inserted,
	.accessed = mypol_accessed,
	.removed = mypol_removed,
	.victim = mypol_victim,
};

static void test_custom_policy(struct p2pio_ctx *ctx)
{
	struct p2pio_expert_policy_ops broken = mypol_ops;
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_experts_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_experts *x = NULL;
	struct p2pio_model *m;
	int bad = 0, ret = 0;

	if (p2pio_model_open(ctx, model_path, NULL, &m, &err)) {
		tap_ok(0, "model opens: %s", err.msg);
		return;
	}
	p2pio_experts_opts_init(&o);
	o.budget = budget_for(m, 12);
	o.policy_ops = &mypol_ops;
	o.policy = "lru";
	tap_is_int(p2pio_experts_open(m, &o, &x, &err), -EINVAL,
		   "a policy by name and by table together is refused");
	o.policy = NULL;
	broken.victim = NULL;
	o.policy_ops = &broken;
	tap_is_int(p2pio_experts_open(m, &o, &x, &err), -EINVAL,
		   "a policy table without a victim hook is refused");
	tap_ok(strstr(err.msg, "lacks a hook") != NULL, "and says why: %s", err.msg);
	o.policy_ops = &mypol_ops;
	ret = p2pio_experts_open(m, &o, &x, &err);
	tap_is_int(ret, 0, "a cache opens with the caller's policy table");
	if (ret)
		goto out;
	ret = decode(x, 0, TOKENS, 0, route, &bad);
	tap_is_int(ret, 0, "%d tokens decoded under the caller's policy", TOKENS);
	tap_is_int(bad, 0, "every byte of every required expert is the file's");
	p2pio_experts_stats(x, &st, NULL, false);
	tap_ok(mypol_last && st.evictions > 0 && mypol_last->victims >= st.evictions &&
	       mypol_last->removed == st.evictions && mypol_last->inserted == st.misses &&
	       mypol_last->accessed == st.accesses,
	       "the cache called the caller's hooks: %u inserts for %llu misses, %u removals for "
	       "%llu evictions", mypol_last ? mypol_last->inserted : 0,
	       (unsigned long long)st.misses, mypol_last ? mypol_last->removed : 0,
	       (unsigned long long)st.evictions);
	p2pio_experts_close(x);
	tap_ok(mypol_last == NULL, "closing the cache destroys the policy's state");
out:
	p2pio_model_close(m);
}

/* A cache of 12.8 MiB experts (@layers layers of 3) on 8 engine threads, no budget. */
struct big_rig {
	char path[PATH_MAX + 8];
	struct p2pio_ctx *ctx;
	struct p2pio_model *m;
	struct p2pio_experts *x;
};

static bool big_rig_open(struct big_rig *r, enum p2pio_path path, const char *pname,
			 uint32_t layers, uint32_t flags)
{
	struct p2pio_ctx_opts co;
	struct p2pio_error err = { 0 };

	memset(r, 0, sizeof(*r));
	snprintf(r->path, sizeof(r->path), "%s.big", model_path);
	p2pio_ctx_opts_init(&co);
	co.device = P2PIO_DEVICE_HOST;
	co.path = path;
	co.threads = 8;
	co.flags = flags;
	if (model_fixture_write_moe(r->path, layers, 3, 2048, 4096, SEED) ||
	    p2pio_ctx_create(&co, &r->ctx, &err) ||
	    p2pio_model_open(r->ctx, r->path, NULL, &r->m, &err) ||
	    p2pio_experts_open(r->m, NULL, &r->x, &err)) {
		tap_diag("%s: a cache of 12.8 MiB experts on 8 threads: %s", pname, err.msg);
		return false;
	}
	return true;
}

static void big_rig_close(struct big_rig *r)
{
	p2pio_experts_close(r->x);
	p2pio_model_close(r->m);
	p2pio_ctx_destroy(r->ctx);
	unlink(r->path);
}

/*
 * A require that finds no load in flight cuts every one of its misses as a lone miss, so
 * the engine's threads get equal shares of the batch: two misses are read in twice the
 * reads of one. Experts of 12.8 MiB and 8 engine threads: a lone load in 8 pieces (10
 * reads over its four slices), one among others in 4 (7 reads: no read above the chunk).
 */
static void test_alone_batch_pieces(enum p2pio_path path, const char *pname)
{
	struct p2pio_experts_io io = { .size = sizeof(io) }, io0 = { .size = sizeof(io0) };
	uint32_t two[2] = { 0, 1 }, one[1] = { 2 };
	uint64_t ptr[2], lone, pair;
	struct big_rig r;
	int bad = 0;

	if (!big_rig_open(&r, path, pname, 1, 0)) {
		tap_ok(0, "%s: a cache of three 12.8 MiB experts on 8 threads", pname);
		goto out;
	}
	p2pio_experts_stats(r.x, NULL, &io0, false);
	if (p2pio_experts_require(r.x, 0, one, 1, NULL, ptr) ||
	    p2pio_experts_release(r.x, 0, one, 1, NULL)) {
		tap_ok(0, "%s: a lone miss loads", pname);
		goto out;
	}
	bad += check_expert(r.x, 0, one[0], ptr[0]);
	p2pio_experts_stats(r.x, NULL, &io, false);
	lone = io.reads - io0.reads;
	io0 = io;
	if (p2pio_experts_require(r.x, 0, two, 2, NULL, ptr)) {
		tap_ok(0, "%s: two misses load", pname);
		goto out;
	}
	bad += check_expert(r.x, 0, two[0], ptr[0]) + check_expert(r.x, 0, two[1], ptr[1]);
	p2pio_experts_release(r.x, 0, two, 2, NULL);
	p2pio_experts_stats(r.x, NULL, &io, false);
	pair = io.reads - io0.reads;
	tap_ok(lone > 7 && pair == 2 * lone && !bad,
	       "%s: a batch of two misses alone is read in %llu reads, twice a lone miss's %llu "
	       "(each cut as a lone miss), every byte right", pname, (unsigned long long)pair,
	       (unsigned long long)lone);
out:
	big_rig_close(&r);
}

/*
 * P2PIO_CTX_URGENT_ALONE: a miss is read with no prefetch starting beside it, so it is cut
 * as a lone one (a read per thread) even while a hint loads; without the flag, a miss
 * that finds a load in flight is cut in half as many. 8 threads, 12.8 MiB experts, the
 * file cold: a lone miss first (its reads counted), then a hint of layer 1 and at once a
 * miss of layer 0. Returns the miss's reads; *@loading: the hint was still loading.
 */
static uint32_t miss_beside_hint(enum p2pio_path path, const char *pname, uint32_t flags,
				 uint32_t *lone, bool *loading, int *bad)
{
	uint32_t zero = 0, one = 1, two = 2, n = 0;
	struct p2pio_experts *x;
	struct big_rig r;
	uint64_t ptr[1];

	*lone = 0;
	*loading = false;
	if (!big_rig_open(&r, path, pname, 2, flags)) {
		(*bad)++;
		goto out;
	}
	x = r.x;
	efx_drop_cache(r.path);
	if (p2pio_experts_require(x, 0, &one, 1, NULL, ptr)) {
		(*bad)++;
		goto out;
	}
	*bad += check_expert(x, 0, one, ptr[0]);
	p2pio_experts_release(x, 0, &one, 1, NULL);
	*lone = x->ent[idx(x, 0, one)].nreads;
	if (p2pio_experts_prefetch(x, 1, &zero, 1) != 1) {
		(*bad)++;
		goto out;
	}
	pthread_mutex_lock(&x->lock);
	*loading = x->ent[idx(x, 1, 0)].loading;
	pthread_mutex_unlock(&x->lock);
	if (p2pio_experts_require(x, 0, &two, 1, NULL, ptr)) {
		(*bad)++;
		goto out;
	}
	*bad += check_expert(x, 0, two, ptr[0]);
	p2pio_experts_release(x, 0, &two, 1, NULL);
	n = x->ent[idx(x, 0, two)].nreads;
out:
	big_rig_close(&r);
	return n;
}

static void test_miss_alone_cut(enum p2pio_path path, const char *pname)
{
	uint32_t lone, n, lone0, n0;
	bool loading, loading0;
	int bad = 0;

	n = miss_beside_hint(path, pname, P2PIO_CTX_URGENT_ALONE, &lone, &loading, &bad);
	tap_ok(!bad && lone > 4 && n == lone, "%s, urgent reads alone: a miss beside a hint%s is "
	       "cut as a lone one (%u reads, a lone miss %u), every byte right", pname,
	       loading ? " still loading" : "", n, lone);
	n0 = miss_beside_hint(path, pname, 0, &lone0, &loading0, &bad);
	tap_ok(!bad, "%s, beside: every byte right", pname);
	tap_diag("%s, beside (the default): a miss beside a hint%s read in %u reads, a lone "
		 "miss in %u", pname, loading0 ? " still loading" : " (done)", n0, lone0);
}

/*
 * A miss is read before the hints queued ahead of it (its reads are P2PIO_REQ_URGENT, a
 * prefetch's are not): one engine thread, one read in flight, every expert of layer 1
 * hinted, then a miss on layer 0. Of the hints still loading when the miss is required,
 * only those whose reads were in flight may load before it (two, for the slack of reads
 * taken between the count and the miss's submission). Read in the order submitted, every
 * one would load before the miss.
 */
static uint32_t layer_loading(struct p2pio_experts *x, uint32_t layer)
{
	uint32_t e, n = 0;

	pthread_mutex_lock(&x->lock);
	for (e = 0; e < NEXPERTS; e++)
		n += x->ent[idx(x, layer, e)].loading;
	pthread_mutex_unlock(&x->lock);
	return n;
}

static uint32_t hints_loading(struct p2pio_experts *x)
{
	return layer_loading(x, 1);
}

/*
 * A cache where hints wait in the engine's queue: one engine thread, one read in flight,
 * two layers of NEXPERTS experts of 1.6 MiB, the file cold after the open.
 */
struct hint_rig {
	uint64_t chunk;		/* the engine's chunk (0: 256 KiB), set before opening */
	char path[PATH_MAX + 8];
	struct p2pio_ctx *ctx;
	struct p2pio_model *m;
	struct p2pio_experts *x;
	uint32_t all[NEXPERTS];
};

/* With @budget_experts (0: all) in the budget and the cache's options @xo (NULL: the
 * defaults; its budget is set here). */
static bool hint_rig_open_opts(struct hint_rig *r, enum p2pio_path path, const char *pname,
			       struct p2pio_experts_opts *xo, uint32_t budget_experts)
{
	struct p2pio_ctx_opts co;
	struct p2pio_error err = { 0 };
	uint32_t e;

	uint64_t chunk = r->chunk ? r->chunk : 256 << 10;

	memset(r, 0, sizeof(*r));
	r->chunk = chunk;
	snprintf(r->path, sizeof(r->path), "%s.hints", model_path);
	p2pio_ctx_opts_init(&co);
	co.device = P2PIO_DEVICE_HOST;
	co.path = path;
	co.threads = 1;
	co.queue_depth = 1;
	co.chunk_size = chunk;
	for (e = 0; e < NEXPERTS; e++)
		r->all[e] = e;
	if (model_fixture_write_moe(r->path, 2, NEXPERTS, 1024, 1024, SEED) ||
	    p2pio_ctx_create(&co, &r->ctx, &err) ||
	    p2pio_model_open(r->ctx, r->path, NULL, &r->m, &err)) {
		tap_ok(0, "%s: a model of 1.6 MiB experts on one thread: %s", pname, err.msg);
		return false;
	}
	xo->budget = budget_experts ? budget_for(r->m, budget_experts) : 0;
	if (p2pio_experts_open(r->m, xo, &r->x, &err)) {
		tap_ok(0, "%s: a cache of 1.6 MiB experts on one thread: %s", pname, err.msg);
		return false;
	}
	efx_drop_cache(r->path);
	return true;
}

static bool hint_rig_open(struct hint_rig *r, enum p2pio_path path, const char *pname,
			  uint32_t flags)
{
	struct p2pio_experts_opts xo;

	p2pio_experts_opts_init(&xo);
	xo.flags = flags;
	return hint_rig_open_opts(r, path, pname, &xo, 0);
}

/* LRU with the previous token's routing prefetched (the built-in hold), @budget experts. */
static bool hint_rig_open_prev(struct hint_rig *r, enum p2pio_path path, const char *pname,
			       uint32_t budget)
{
	struct p2pio_experts_opts xo;

	p2pio_experts_opts_init(&xo);
	xo.flags = P2PIO_EXPERTS_PREFETCH_PREV;
	xo.policy = "lru";
	return hint_rig_open_opts(r, path, pname, &xo, budget);
}

static void hint_rig_close(struct hint_rig *r)
{
	p2pio_experts_close(r->x);
	p2pio_model_close(r->m);
	p2pio_ctx_destroy(r->ctx);
	unlink(r->path);
}

/* Requires @ids of @layer, checks every byte of each and releases them: the experts
 * wrong, or -1 when the require fails. */
static int require_checked(struct hint_rig *r, uint32_t layer, const uint32_t *ids, uint32_t n)
{
	uint64_t ptr[NEXPERTS];
	uint32_t i;
	int bad = 0;

	if (p2pio_experts_require(r->x, layer, ids, n, NULL, ptr))
		return -1;
	for (i = 0; i < n; i++)
		bad += check_expert(r->x, layer, ids[i], ptr[i]);
	p2pio_experts_release(r->x, layer, ids, n, NULL);
	return bad;
}

/*
 * BLOCKER_READS plain reads of the whole (cold) model on a queue of the test's own (into
 * one buffer: what lands there is not looked at), submitted before
 * the test's hints: the rig's one engine thread reads its pieces one by one, and the
 * hints queue behind it, so none has started when the test requires what it requires (an
 * urgent miss goes ahead of the rest of it, a plain one behind the hints), however slow
 * the machine. Its pieces out first are read meanwhile.
 */
#define BLOCKER_READS 4

struct blocker {
	struct p2pio_queue *q;
	struct p2pio_buf *buf;
};

static bool blocker_start(struct hint_rig *r, struct blocker *b)
{
	uint64_t len = p2pio_round_down(r->m->file_size, 4096);
	struct p2pio_req rq[BLOCKER_READS];
	int i;

	memset(b, 0, sizeof(*b));
	if (p2pio_queue_create(r->ctx, &b->q) ||
	    p2pio_buf_alloc(r->ctx, P2PIO_MEM_HOST, len, &b->buf, NULL))
		return false;
	for (i = 0; i < BLOCKER_READS; i++)
		rq[i] = (struct p2pio_req){ .file = r->m->file, .length = len, .buf = b->buf,
					    .tag = (uint64_t)i };
	return p2pio_submit(b->q, rq, BLOCKER_READS) == BLOCKER_READS;
}

/* Reaps the blocker's reads (true when they all landed) and frees it. */
static bool blocker_end(struct blocker *b)
{
	struct p2pio_cqe cqe[BLOCKER_READS];
	int got = 0, k = 1, i;
	bool ok = b->q != NULL;

	while (ok && got < BLOCKER_READS && k > 0) {
		k = p2pio_complete(b->q, cqe, BLOCKER_READS, 1, 30000);
		for (i = 0; i < k; i++)
			ok = ok && cqe[i].res == 0;
		got += k > 0 ? k : 0;
	}
	ok = ok && got == BLOCKER_READS;
	p2pio_queue_destroy(b->q);
	p2pio_buf_free(b->buf);
	return ok;
}

static void test_miss_before_hints(enum p2pio_path path, const char *pname, bool in_order)
{
	uint32_t zero = 0, before, loading;
	uint64_t ptr[1];
	struct hint_rig r = { 0 };
	struct blocker blk = { 0 };
	int bad, more;

	if (!hint_rig_open(&r, path, pname, in_order ? P2PIO_EXPERTS_MISSES_IN_ORDER : 0))
		goto out;
	if (!blocker_start(&r, &blk) ||
	    p2pio_experts_prefetch(r.x, 1, r.all, NEXPERTS) != NEXPERTS) {
		tap_ok(0, "%s: %d hints", pname, NEXPERTS);
		goto out;
	}
	before = hints_loading(r.x);
	if (p2pio_experts_require(r.x, 0, &zero, 1, NULL, ptr)) {
		tap_ok(0, "%s: a miss after %d hints", pname, NEXPERTS);
		goto out;
	}
	loading = hints_loading(r.x);
	bad = check_expert(r.x, 0, 0, ptr[0]);
	p2pio_experts_release(r.x, 0, &zero, 1, NULL);
	more = require_checked(&r, 1, r.all, NEXPERTS);
	more += !blocker_end(&blk);
	if (in_order)	/* as before session 13: behind every hint queued before it */
		tap_ok(loading == 0 && !bad && !more,
		       "%s, misses in order: a miss queued behind %u loading hints loads after all "
		       "of them, every byte right", pname, before);
	else
		tap_ok(before == NEXPERTS && loading == before && !bad && !more,
		       "%s: a miss queued behind %u loading hints loads first (%u of them still "
		       "loading when it had), every byte right", pname, before, loading);
	hint_rig_close(&r);
	return;
out:
	if (blk.q)
		blocker_end(&blk);
	hint_rig_close(&r);
}

/*
 * Wrong hints are withdrawn: every expert of layer 1 hinted, then the layer required with
 * one of them and another pinned. The others' loads that had not started are withdrawn:
 * not read (the bytes read are those of the loads kept), not resident, counted as wasted
 * prefetches; the pinned one stays. Required next, they load as misses, every byte right.
 * With P2PIO_EXPERTS_KEEP_WRONG_HINTS nothing is withdrawn.
 */
/*
 * The statistics reset while hints are queued: their loads were counted before it, so
 * withdrawing them takes nothing from the new counts (which start at zero; unsigned, they
 * would wrap to 2^64 - 1 and the bound of a decode divided by them would be nonsense).
 */
static void test_hints_across_reset(enum p2pio_path path, const char *pname)
{
	struct p2pio_experts_io io = { .size = sizeof(io) };
	uint32_t zero = 0;
	uint64_t ptr[1];
	struct hint_rig r = { 0 };

	if (!hint_rig_open(&r, path, pname, 0))
		goto out;
	if (p2pio_experts_prefetch(r.x, 1, r.all, NEXPERTS) != NEXPERTS ||
	    p2pio_experts_stats(r.x, NULL, &io, true) ||
	    p2pio_experts_require(r.x, 1, &zero, 1, NULL, ptr)) {
		tap_ok(0, "%s: %d hints, a reset, one required", pname, NEXPERTS);
		goto out;
	}
	p2pio_experts_release(r.x, 1, &zero, 1, NULL);
	while (hints_loading(r.x))
		usleep(1000);
	p2pio_experts_stats(r.x, NULL, &io, false);
	tap_ok(io.cancels >= NEXPERTS / 2 && io.loads == 0 && io.prefetches == 0 &&
	       io.reads == 0 && io.bytes == 0,
	       "%s: %llu hints queued before a reset withdrawn after it; the counts since stay "
	       "at 0 loads, %llu reads, %llu bytes", pname, (unsigned long long)io.cancels,
	       (unsigned long long)io.reads, (unsigned long long)io.bytes);
out:
	hint_rig_close(&r);
}

/*
 * The built-in prefetch's wrong guesses go like the caller's: it holds its guesses for
 * the next layer until that layer is required, and the require lets them go before it
 * withdraws (session 13's review: held, they were never withdrawn). A budget of 8 with
 * the previous token's routing prefetched: layer 1 ran {0, 1}, layer 0 {0..5} fills the
 * budget, six hints for layer 1 evict (1,0) and (1,1) among others and queue; requiring
 * (0,5) again has the built-in prefetch queue (1,0) behind them; layer 1 then required
 * with hint 7 alone: the other hints and the built-in one, none started, are withdrawn.
 */
/*
 * One try of the scenario; false when it could not be set up as it must (the hints had
 * all been read before the built-in guess was queued behind them: @held false).
 */
static bool builtin_hints_try(enum p2pio_path path, const char *pname, bool *ok,
			      uint64_t *cancels)
{
	struct p2pio_experts_io io = { .size = sizeof(io) };
	uint32_t l1[2] = { 0, 1 }, l0[6] = { 0, 1, 2, 3, 4, 5 }, hints[6] = { 2, 3, 4, 5, 6, 7 };
	uint32_t five = 5, seven = 7;
	bool held = false, gone = false;
	struct hint_rig r = { 0 };
	struct blocker blk = { 0 };
	int bad = 0;

	*ok = false;
	if (!hint_rig_open_prev(&r, path, pname, 8))
		goto out;
	bad += require_checked(&r, 1, l1, 2) != 0;
	bad += require_checked(&r, 0, l0, 6) != 0;
	while (hints_loading(r.x))
		usleep(1000);
	/* The hints read from the disk, not from what the requires left in the page cache. */
	efx_drop_cache(r.path);
	/* None of them starts before the require of 7: they wait behind the blocker. */
	if (!blocker_start(&r, &blk) || p2pio_experts_prefetch(r.x, 1, hints, 6) < 4) {
		tap_ok(0, "%s: hints start loads", pname);
		held = true;	/* no retry: a failure of its own */
		goto out;
	}
	bad += require_checked(&r, 0, &five, 1) != 0;
	pthread_mutex_lock(&r.x->lock);
	held = r.x->ent[idx(r.x, 1, 0)].loading && r.x->ent[idx(r.x, 1, 0)].refs == 1;
	pthread_mutex_unlock(&r.x->lock);
	bad += require_checked(&r, 1, &seven, 1) != 0;
	pthread_mutex_lock(&r.x->lock);
	gone = !r.x->ent[idx(r.x, 1, 0)].loading &&
	       p2pio_residency_state(r.x->res, 1, 0) == P2PIO_RES_ABSENT;
	pthread_mutex_unlock(&r.x->lock);
	p2pio_experts_stats(r.x, NULL, &io, false);
	*cancels = io.cancels;
	*ok = held && gone && io.cancels >= 3 && !bad;
out:
	if (blk.q && !blocker_end(&blk))
		*ok = false;
	hint_rig_close(&r);
	return held;
}

/*
 * A machine busy elsewhere can read every hint before the test queues the built-in guess
 * behind them; that try proves nothing either way and is made again (at most 5 tries).
 */
static void test_builtin_hints(enum p2pio_path path, const char *pname)
{
	uint64_t cancels = 0;
	bool ok = false;
	int tries;

	for (tries = 1; tries <= 5; tries++)
		if (builtin_hints_try(path, pname, &ok, &cancels))
			break;
	tap_ok(ok, "%s: the built-in prefetch's guess (1,0), held and queued, is withdrawn with the "
	       "caller's wrong hints (%llu withdrawn; try %d)", pname, (unsigned long long)cancels,
	       tries > 5 ? 5 : tries);
}

/* A require of no experts is no step of the routing: it withdraws no hint. */
static void test_empty_require(enum p2pio_path path, const char *pname)
{
	struct p2pio_experts_io io = { .size = sizeof(io) };
	uint64_t ptr[1];
	struct hint_rig r = { 0 };
	int ret;

	if (!hint_rig_open(&r, path, pname, 0))
		goto out;
	p2pio_experts_prefetch(r.x, 1, r.all, NEXPERTS);
	ret = p2pio_experts_require(r.x, 1, r.all, 0, NULL, ptr);
	while (hints_loading(r.x))
		usleep(1000);
	p2pio_experts_stats(r.x, NULL, &io, false);
	tap_ok(!ret && io.cancels == 0 && io.loads == NEXPERTS,
	       "%s: requiring no expert of a layer withdraws none of its %d hints (%llu)", pname,
	       NEXPERTS, (unsigned long long)io.cancels);
out:
	hint_rig_close(&r);
}

static void test_wrong_hints(enum p2pio_path path, const char *pname, bool keep)
{
	struct p2pio_experts_io io = { .size = sizeof(io) };
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_expert_layer_stats ls;
	struct p2pio_expert_slice sl[8];
	uint32_t zero = 0, five = 5, e;
	uint64_t ptr[NEXPERTS], one;
	struct hint_rig r = { 0 };
	struct blocker blk = { 0 };
	int bad = 0, n;

	if (!hint_rig_open(&r, path, pname, keep ? P2PIO_EXPERTS_KEEP_WRONG_HINTS : 0))
		goto out;
	n = p2pio_experts_slices(r.x, 1, 0, sl, 8);
	for (e = 0, one = 0; n > 0 && e < (uint32_t)n; e++)
		one += sl[e].size;	/* a load reads these, and the blocks around them */
	/* The hints wait behind the blocker: none has started at the require. */
	if (!blocker_start(&r, &blk) ||
	    p2pio_experts_prefetch(r.x, 1, r.all, NEXPERTS) != NEXPERTS ||
	    p2pio_experts_pin(r.x, 1, &five, 1, true) ||
	    p2pio_experts_require(r.x, 1, &zero, 1, NULL, ptr)) {
		tap_ok(0, "%s: %d hints, one pinned, one required", pname, NEXPERTS);
		goto out;
	}
	bad += check_expert(r.x, 1, 0, ptr[0]);
	p2pio_experts_release(r.x, 1, &zero, 1, NULL);
	while (hints_loading(r.x))
		usleep(1000);
	bad += !blocker_end(&blk);
	blk.q = NULL;
	p2pio_experts_stats(r.x, &st, &io, false);
	p2pio_experts_layer_stats(r.x, 1, &ls);
	if (keep) {
		tap_ok(io.cancels == 0 && ls.resident == NEXPERTS,
		       "%s, keeping wrong hints: none withdrawn, all %d resident", pname, NEXPERTS);
	} else {
		/* None started (the blocker): all six withdrawn unread, none cut short. */
		uint64_t gone = io.cancels + io.cut_short, whole = io.loads - io.cut_short;

		tap_ok(io.cancels == NEXPERTS - 2 && io.cut_short == 0 &&
		       ls.resident == NEXPERTS - gone &&
		       io.loads == NEXPERTS - io.cancels && io.prefetches == io.loads &&
		       io.bytes >= whole * one && io.bytes < (io.loads + 1) * one &&
		       st.prefetch_wasted >= gone,
		       "%s: %llu of %d wrong hints withdrawn unread, %llu cut short (%u resident, "
		       "%llu bytes read for %llu loads, %llu wasted prefetches)", pname,
		       (unsigned long long)io.cancels, NEXPERTS - 2,
		       (unsigned long long)io.cut_short, ls.resident,
		       (unsigned long long)io.bytes, (unsigned long long)io.loads,
		       (unsigned long long)st.prefetch_wasted);
	}
	bad += require_checked(&r, 1, &five, 1) ? 1 : 0;
	bad += require_checked(&r, 1, r.all, NEXPERTS) ? 1 : 0;
	tap_ok(!bad, "%s: the pinned one and then every expert of the layer, every byte right",
	       pname);
out:
	if (blk.q)
		blocker_end(&blk);
	hint_rig_close(&r);
}

/*
 * A right hint still queued is read as soon as its layer is required, like a miss (its
 * reads are hastened, p2pio_hasten()): every expert of layer 0 hinted, then one of layer 1,
 * then layer 1 required with that one. When it has loaded, most of layer 0's hints are
 * still loading. With P2PIO_EXPERTS_MISSES_IN_ORDER (as before session 14) it keeps its
 * place behind them, and they have all loaded first.
 */
static void test_right_hint_first(enum p2pio_path path, const char *pname, bool in_order)
{
	struct p2pio_experts_io io = { .size = sizeof(io) };
	uint32_t zero = 0, before, loading;
	struct hint_rig r = { 0 };
	struct blocker blk = { 0 };
	int bad;

	if (!hint_rig_open(&r, path, pname, in_order ? P2PIO_EXPERTS_MISSES_IN_ORDER : 0))
		goto out;
	if (!blocker_start(&r, &blk) ||
	    p2pio_experts_prefetch(r.x, 0, r.all, NEXPERTS) != NEXPERTS ||
	    p2pio_experts_prefetch(r.x, 1, &zero, 1) != 1) {
		tap_ok(0, "%s: %d hints for layer 0 and one for layer 1", pname, NEXPERTS);
		goto out;
	}
	before = layer_loading(r.x, 0);
	bad = require_checked(&r, 1, &zero, 1);
	loading = layer_loading(r.x, 0);
	while (layer_loading(r.x, 0))
		usleep(1000);
	p2pio_experts_stats(r.x, NULL, &io, false);
	bad += require_checked(&r, 0, r.all, NEXPERTS) ? 1 : 0;
	bad += !blocker_end(&blk);
	blk.q = NULL;
	if (in_order)
		tap_ok(loading == 0 && io.hastened == 0 && !bad,
		       "%s, misses in order: a right hint queued behind %u others keeps its "
		       "place, every byte right", pname, before);
	else
		tap_ok(before == NEXPERTS && loading == before && io.hastened == 1 && !bad,
		       "%s: a right hint queued behind %u others is hastened when its layer is "
		       "required (%u of them still loading when it had), every byte right", pname,
		       before, loading);
out:
	if (blk.q)
		blocker_end(&blk);
	hint_rig_close(&r);
}

/*
 * A miss that finds the budget full of loading hints takes the room of the wrong ones:
 * a budget of 4, four hints for layer 1 queued (one thread, one read in flight), then
 * layer 1 required of an expert not hinted. The hints none of whose reads had started
 * are withdrawn before the miss is admitted, so it waits for no hint and evicts nothing.
 * Withdrawn only after the misses (as in session 13), the miss waited for the first hint
 * to load and then evicted it: a read for nothing.
 */
static void test_full_of_hints(enum p2pio_path path, const char *pname)
{
	struct p2pio_experts_io io = { .size = sizeof(io) };
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_experts_opts xo;
	uint32_t hints[4] = { 0, 1, 2, 3 }, six = 6;
	struct hint_rig r = { 0 };
	struct blocker blk = { 0 };
	int bad;

	p2pio_experts_opts_init(&xo);
	if (!hint_rig_open_opts(&r, path, pname, &xo, 4))
		goto out;
	/* The hints wait behind the blocker: none has started at the require. */
	if (!blocker_start(&r, &blk) || p2pio_experts_prefetch(r.x, 1, hints, 4) != 4) {
		tap_ok(0, "%s: four hints fill a budget of four", pname);
		goto out;
	}
	bad = require_checked(&r, 1, &six, 1);
	while (hints_loading(r.x))
		usleep(1000);
	bad += !blocker_end(&blk);
	blk.q = NULL;
	p2pio_experts_stats(r.x, &st, &io, false);
	tap_ok(!bad && io.cancels == 4 && st.evictions == 0 && io.loads == 1,
	       "%s: a miss in a budget full of loading hints takes a withdrawn one's room "
	       "(%llu of 4 withdrawn, %llu evicted, %llu loads)", pname,
	       (unsigned long long)io.cancels, (unsigned long long)st.evictions,
	       (unsigned long long)io.loads);
out:
	if (blk.q)
		blocker_end(&blk);
	hint_rig_close(&r);
}

/*
 * The built-in prefetch's right guess stays held while its layer's misses are admitted:
 * a budget of 3, the previous token's routing prefetched. (1,0) is loaded for layer 1 and
 * held by the built-in prefetch; two hints for layer 0 take the rest of the budget and
 * are still loading; layer 1 is then required of {1, 0}. The miss (1,1) finds no room: it
 * must wait for a hint to load, not evict the held guess (1,0), which the same call wants
 * next and would read again (the ENOSPC wait in xcache_load() let every hold go).
 */
static void test_right_hold_kept(enum p2pio_path path, const char *pname)
{
	uint32_t zero = 0, one = 1, l0[3] = { 1, 2, 3 }, hints[2] = { 4, 5 }, want[2] = { 1, 0 };
	uint32_t held = 0, loading = 0, seq0 = 0, seq1 = 0;
	struct hint_rig r = { 0 };
	int bad = 0;

	if (!hint_rig_open_prev(&r, path, pname, 3))
		goto out;
	bad += require_checked(&r, 1, &zero, 1) != 0;	/* layer 1 routed to {0} */
	bad += require_checked(&r, 0, l0, 3) != 0;	/* evicts (1,0) */
	bad += require_checked(&r, 0, &one, 1) != 0;	/* built-in prefetch: (1,0) held */
	while (hints_loading(r.x))
		usleep(1000);
	if (p2pio_experts_prefetch(r.x, 0, hints, 2) != 2) {
		tap_ok(0, "%s: two hints for layer 0", pname);
		goto out;
	}
	pthread_mutex_lock(&r.x->lock);
	held = r.x->pf_n == 1 && r.x->pf_layer == 1 && r.x->pf_ids[0] == 0 &&
	       p2pio_residency_state(r.x->res, 1, 0) == P2PIO_RES_RESIDENT;
	loading = r.x->ent[idx(r.x, 0, 4)].loading + r.x->ent[idx(r.x, 0, 5)].loading;
	seq0 = r.x->ent[idx(r.x, 1, 0)].seq;
	pthread_mutex_unlock(&r.x->lock);
	bad += require_checked(&r, 1, want, 2) != 0;
	pthread_mutex_lock(&r.x->lock);
	seq1 = r.x->ent[idx(r.x, 1, 0)].seq;
	pthread_mutex_unlock(&r.x->lock);
	while (layer_loading(r.x, 0) || hints_loading(r.x))
		usleep(1000);
	tap_ok(held && !bad && seq1 == seq0,
	       "%s: a held right guess is not evicted by its layer's miss (read %u more times; "
	       "guess held %d, %u hints loading at the require)", pname, seq1 - seq0, held,
	       loading);
out:
	hint_rig_close(&r);
}

/*
 * A hint some of whose reads were read and reaped, the rest still queued behind urgent
 * reads, is cut short when its layer is required without it: the rest is withdrawn, the
 * expert is not resident, and the counts keep exactly what was read.
 *
 * One engine thread, one read in flight, the file cold. On a queue of the test's own: a
 * plain 1 MiB read S; then (1,0) hinted, its reads behind S; once S is reaped the thread
 * has moved on to the hint's first read, and an urgent 8 MiB read B goes ahead of the
 * rest. Once a read of the hint is reaped (the thread is on B), layer 1 is required of 7.
 */
#define PARTIAL_S (1u << 20)
#define PARTIAL_B (8u << 20)

/*
 * One try; false when the hint was not cut short (the thread took B before the hint's
 * first read, or its next read was under way when its layer came: then the hint
 * completes, resident and counted whole, which is checked too). @ok: every check passed.
 */
static bool partial_hint_try(enum p2pio_path path, const char *pname, bool *ok, char *why,
			     size_t whylen)
{
	struct p2pio_experts_io io = { .size = sizeof(io) };
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	uint32_t zero = 0, seven = 7, npieces = 0, left = 0, nr_other;
	uint64_t bytes_other, hint_bytes, hint_done;
	struct p2pio_queue *q2 = NULL;
	struct p2pio_buf *buf = NULL;
	struct p2pio_cqe cqe[2];
	struct p2pio_req rq;
	struct xentry *h;
	struct hint_rig r = { 0 };
	bool cut = false, absent;
	int i, k = 0, bad = 0, got = 0;

	*ok = false;
	snprintf(why, whylen, "no rig");
	/* 1 MiB chunks: the hint is two reads of 0.8 MiB, its first read a wide window. */
	r.chunk = 1 << 20;
	if (!hint_rig_open(&r, path, pname, 0))
		goto out;
	if (p2pio_queue_create(r.ctx, &q2) ||
	    p2pio_buf_alloc(r.ctx, P2PIO_MEM_HOST, PARTIAL_S + PARTIAL_B, &buf, NULL)) {
		snprintf(why, whylen, "no queue or buffer of the test's own");
		goto out;
	}
	h = &r.x->ent[idx(r.x, 1, 0)];
	rq = (struct p2pio_req){ .file = r.m->file, .length = PARTIAL_S, .buf = buf, .tag = 1 };
	if (p2pio_submit(q2, &rq, 1) != 1 || p2pio_experts_prefetch(r.x, 1, &zero, 1) != 1) {
		snprintf(why, whylen, "S or the hint not submitted");
		goto out;
	}
	pthread_mutex_lock(&r.x->lock);
	npieces = h->nreads;
	pthread_mutex_unlock(&r.x->lock);
	/* Polled, not slept on: B must be queued while the hint's first read is read. */
	for (i = 0; i < 10000000 && !(k = p2pio_complete(q2, cqe, 1, 0, 0)); i++)
		;
	got += k == 1 && cqe[0].res == 0;
	rq = (struct p2pio_req){ .file = r.m->file, .file_offset = PARTIAL_S, .length = PARTIAL_B,
				 .buf = buf, .buf_offset = PARTIAL_S, .tag = 2,
				 .flags = P2PIO_REQ_URGENT };
	if (p2pio_submit(q2, &rq, 1) != 1) {
		snprintf(why, whylen, "B not submitted");
		goto out;
	}
	for (i = 0; i < 20000; i++) {
		pthread_mutex_lock(&r.x->lock);
		left = h->loading ? h->pending : 0;
		pthread_mutex_unlock(&r.x->lock);
		if (left < npieces)
			break;
		usleep(50);
	}
	bad += require_checked(&r, 1, &seven, 1) != 0;
	got += p2pio_complete(q2, cqe, 1, 1, 10000) == 1 && cqe[0].res == 0;
	while (hints_loading(r.x))
		usleep(1000);
	p2pio_experts_stats(r.x, &st, &io, false);
	pthread_mutex_lock(&r.x->lock);
	bytes_other = r.x->ent[idx(r.x, 1, 7)].bytes;
	nr_other = r.x->ent[idx(r.x, 1, 7)].nreads;
	hint_bytes = h->bytes;
	hint_done = h->bytes_done;
	absent = p2pio_residency_state(r.x->res, 1, 0) == P2PIO_RES_ABSENT;
	pthread_mutex_unlock(&r.x->lock);
	cut = io.cut_short > 0;
	if (cut) {
		/* Cut short: counted a load and a (wasted) prefetch, with what it read. */
		*ok = io.cut_short == 1 && io.cancels == 0 && absent && io.loads == 2 &&
		      io.prefetches == 1 && hint_done > 0 && hint_done < hint_bytes &&
		      io.bytes == bytes_other + hint_done && io.reads > nr_other &&
		      io.reads < nr_other + npieces && st.prefetch_wasted == 1 &&
		      st.bytes_loaded == bytes_other + hint_done;
	} else {
		/* Not cut: it completed, whole in every count. */
		*ok = io.cancels == 0 && !absent && io.loads == 2 && hint_done == hint_bytes &&
		      io.bytes == bytes_other + hint_bytes && io.reads == nr_other + npieces &&
		      st.bytes_loaded == bytes_other + hint_bytes;
	}
	*ok = *ok && !bad && got == 2;
	snprintf(why, whylen, "%u of %u reads of the hint left at the require; %llu cut short, "
		 "%llu withdrawn unread; %llu of its %llu bytes read; %llu loads, %llu reads, "
		 "%llu bytes (the miss's %llu), bytes_loaded %llu; resident %d; %d of 2 reads "
		 "of the test's own",
		 left, npieces, (unsigned long long)io.cut_short, (unsigned long long)io.cancels,
		 (unsigned long long)hint_done, (unsigned long long)hint_bytes,
		 (unsigned long long)io.loads, (unsigned long long)io.reads,
		 (unsigned long long)io.bytes, (unsigned long long)bytes_other,
		 (unsigned long long)st.bytes_loaded, !absent, got);
	/* Cut short or not, it loads again byte for byte. */
	if (require_checked(&r, 1, &zero, 1) != 0)
		*ok = false;
out:
	p2pio_queue_destroy(q2);
	p2pio_buf_free(buf);
	hint_rig_close(&r);
	return cut;
}

/*
 * A try that did not catch the hint between its reads is checked for exact counts and
 * made again (at most 8 tries). Before session 15 such a hint was never cut short.
 */
static void test_partial_hint(enum p2pio_path path, const char *pname)
{
	char why[512];
	bool ok = true, ok1;
	int tries;

	for (tries = 1; tries <= 8; tries++) {
		bool cut = partial_hint_try(path, pname, &ok1, why, sizeof(why));

		if (!ok1 || !cut)
			tap_diag("%s: try %d (%s): %s", pname, tries,
				 ok1 ? "consistent" : "WRONG", why);
		ok = ok && ok1;
		if (cut)
			break;
	}
	tap_ok(ok && tries <= 8, "%s: a hint with some reads done and the rest queued is cut "
	       "short when its layer is required without it, its counts what it read (try %d: "
	       "%s)", pname, tries > 8 ? 8 : tries, why);
}

/*
 * Random calls in a small budget, the cache's state machine stirred by what a careless
 * caller does: hints for any layer (wrong ones withdrawn or loading), requires of 1-3
 * experts, pins and unpins, token boundaries, statistics reset with loads in flight.
 * Every require succeeds (3 held and 2 pinned fit in 6), every byte it hands out is
 * right, the budget holds, no counter goes below zero. P2PIO_SEED repeats a run.
 */
#define RANDOM_CALLS 3000

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* @n distinct experts into @ids. */
static void random_ids(uint64_t *seed, uint32_t *ids, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		uint32_t j;

		ids[i] = (uint32_t)(rnd(seed) % NEXPERTS);
		for (j = 0; j < i; j++)
			if (ids[j] == ids[i]) {
				ids[i] = (ids[i] + 1) % NEXPERTS;
				j = (uint32_t)-1;
			}
	}
}

static void test_random_calls(enum p2pio_path path, const char *pname, uint64_t seed)
{
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_experts_io io = { .size = sizeof(io) };
	struct p2pio_experts_info info;
	struct p2pio_experts_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_experts *x = NULL;
	struct p2pio_model *m = NULL;
	struct p2pio_ctx *ctx;
	struct p2pio_expert_ref pinned[2];
	uint32_t ids[4], n, l, npinned = 0, k;
	uint64_t ptr[4];
	int bad = 0, fails = 0, first = 0, resets = 0, i, ret;

	ctx = host_ctx(path);
	if (!ctx || p2pio_model_open(ctx, model_path, NULL, &m, &err)) {
		tap_ok(0, "%s: context and model: %s", pname, err.msg);
		goto out;
	}
	p2pio_experts_opts_init(&o);
	o.budget = budget_for(m, 6);
	if (p2pio_experts_open(m, &o, &x, &err)) {
		tap_ok(0, "%s: cache opens: %s", pname, err.msg);
		goto out;
	}
	p2pio_experts_info(x, &info);
	p2pio_experts_token_begin(x);
	for (i = 0; i < RANDOM_CALLS; i++) {
		uint64_t what = rnd(&seed) % 100;

		l = (uint32_t)(rnd(&seed) % NLAYERS);
		if (what < 35) {
			n = 1 + (uint32_t)(rnd(&seed) % 4);
			random_ids(&seed, ids, n);
			ret = p2pio_experts_prefetch(x, l, ids, n);
			ret = ret < 0 ? ret : 0;
		} else if (what < 80) {
			n = 1 + (uint32_t)(rnd(&seed) % 3);
			random_ids(&seed, ids, n);
			ret = p2pio_experts_require(x, l, ids, n, NULL, ptr);
			for (k = 0; !ret && k < n; k++)
				bad += check_expert(x, l, ids[k], ptr[k]);
			if (!ret)
				ret = p2pio_experts_release(x, l, ids, n, NULL);
		} else if (what < 90 && npinned < 2) {
			random_ids(&seed, ids, 1);
			ret = p2pio_experts_pin(x, l, ids, 1, true);
			if (!ret)
				pinned[npinned++] = (struct p2pio_expert_ref){ l, ids[0] };
		} else if (what < 90) {
			npinned--;
			ret = p2pio_experts_pin(x, pinned[npinned].layer, &pinned[npinned].expert, 1,
						false);
		} else if (what < 96) {
			ret = p2pio_experts_token_end(x);
			p2pio_experts_token_begin(x);
		} else {
			/* Loads and hints in flight across it: nothing may count below zero. */
			ret = p2pio_experts_stats(x, NULL, &io, true);
			resets++;
		}
		if (ret && !fails++)
			first = ret;
	}
	ret = p2pio_experts_token_end(x);
	p2pio_experts_stats(x, &st, &io, false);
	tap_ok(!fails && !ret && !bad, "%s: %d random calls: none failed (first error %d), every "
	       "byte handed out right", pname, RANDOM_CALLS, first);
	tap_ok(io.peak <= 6 * info.expert_bytes && st.hits + st.misses == st.accesses &&
	       io.loads <= RANDOM_CALLS * 4 && io.prefetches <= io.loads &&
	       io.reads <= io.loads * 64 && io.bytes <= io.loads * info.expert_bytes,
	       "%s: peak %llu of %llu bytes; %llu hits + %llu misses; since the last of %d "
	       "resets %llu loads (%llu reads, %llu bytes), %llu hints withdrawn", pname,
	       (unsigned long long)io.peak, (unsigned long long)(6 * info.expert_bytes),
	       (unsigned long long)st.hits, (unsigned long long)st.misses, resets,
	       (unsigned long long)io.loads, (unsigned long long)io.reads,
	       (unsigned long long)io.bytes, (unsigned long long)io.cancels);
out:
	p2pio_experts_close(x);
	p2pio_model_close(m);
	p2pio_ctx_destroy(ctx);
}

/*
 * The statistics' bytes_loaded is what the loads read (p2pio/expert_policy.h), not the
 * memory each expert takes: this model's experts are a few block-aligned reads of about
 * 40 KiB, each in 64 KiB of host memory (the allocation granularity). Every expert is
 * loaded once, as a demand miss with room for all: bytes_loaded must be the sum of their
 * planned reads, exactly, as the I/O counts' bytes are. A completed load once counted the
 * whole 64 KiB while a withdrawn one counted what it had read.
 */
static void test_bytes_loaded(enum p2pio_path path, const char *pname)
{
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_experts_io io = { .size = sizeof(io) };
	struct p2pio_experts_info info;
	struct p2pio_model_info mi;
	struct p2pio_experts_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_experts *x = NULL;
	struct p2pio_model *m = NULL;
	struct p2pio_ctx *ctx = host_ctx(path);
	uint64_t want = 0, ptr;
	uint32_t l, e, r;
	int ret = 0;

	if (!ctx || p2pio_model_open(ctx, model_path, NULL, &m, &err)) {
		tap_ok(0, "%s: bytes_loaded: context and model: %s", pname, err.msg);
		goto out;
	}
	p2pio_model_info(m, &mi);
	p2pio_experts_opts_init(&o);
	o.budget = budget_for(m, NLAYERS * NEXPERTS);
	if (p2pio_experts_open(m, &o, &x, &err)) {
		tap_ok(0, "%s: bytes_loaded: cache: %s", pname, err.msg);
		goto out;
	}
	p2pio_experts_info(x, &info);
	for (l = 0; l < NLAYERS && !ret; l++)
		for (e = 0; e < NEXPERTS && !ret; e++) {
			struct p2pio_expert_plan plan;

			ret = p2pio_expert_plan(p2pio_model_gguf(m),
						p2pio_gguf_layer(p2pio_model_gguf(m), l), e,
						P2PIO_MODEL_BLOCK, mi.file_size, &plan);
			for (r = 0; !ret && r < plan.nruns; r++)
				want += plan.runs[r].len;
			p2pio_experts_token_begin(x);
			ret = ret ?: p2pio_experts_require(x, l, &e, 1, NULL, &ptr);
			ret = ret ?: p2pio_experts_release(x, l, &e, 1, NULL);
			ret = ret ?: p2pio_experts_token_end(x);
		}
	p2pio_experts_stats(x, &st, &io, false);
	tap_ok(!ret && want != (uint64_t)NLAYERS * NEXPERTS * info.expert_bytes,
	       "%s: bytes_loaded: every expert loaded once, its reads (%llu bytes in all) less "
	       "than its memory (%llu bytes each): %s", pname, (unsigned long long)want,
	       (unsigned long long)info.expert_bytes, p2pio_strerror(ret));
	tap_ok(st.loads == NLAYERS * NEXPERTS && st.bytes_loaded == want && io.bytes == want,
	       "%s: bytes_loaded is the bytes the loads read (%llu loads, %llu bytes; read %llu, "
	       "the I/O counts %llu)", pname, (unsigned long long)st.loads,
	       (unsigned long long)st.bytes_loaded, (unsigned long long)want,
	       (unsigned long long)io.bytes);
out:
	p2pio_experts_close(x);
	p2pio_model_close(m);
	p2pio_ctx_destroy(ctx);
}

static void test_dense_model(struct p2pio_ctx *ctx)
{
	char path[PATH_MAX + 8];
	struct p2pio_error err = { 0 };
	struct p2pio_experts *x = NULL;
	struct p2pio_model *m;
	int fd;

	snprintf(path, sizeof(path), "%s.dense", model_path);
	fd = model_fixture_write(path, 2, SEED);
	if (fd || p2pio_model_open(ctx, path, NULL, &m, &err)) {
		tap_ok(0, "dense model: %s", err.msg);
		unlink(path);
		return;
	}
	tap_is_int(p2pio_experts_open(m, NULL, &x, &err), -EINVAL,
		   "a model without expert tensors is refused");
	tap_ok(strstr(err.msg, "_exps") != NULL, "with a reason: %s", err.msg);
	p2pio_model_close(m);
	unlink(path);
}

int main(void)
{
	static const struct {
		enum p2pio_path path;
		const char *name;
	} paths[] = {
		{ P2PIO_PATH_POSIX, "posix" },
		{ P2PIO_PATH_BOUNCE, "bounce" },
	};
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	uint64_t seed = getenv("P2PIO_SEED") ? strtoull(getenv("P2PIO_SEED"), NULL, 0) :
					       (uint64_t)time(NULL) | 1;
	struct p2pio_ctx *ctx;
	size_t i;
	int fd;

	tap_plan_lazy();
	tap_diag("seed %llu (set P2PIO_SEED to repeat)", (unsigned long long)seed);
	snprintf(model_path, sizeof(model_path), "%s/p2pio-moe-XXXXXX", dir);
	fd = mkstemp(model_path);
	if (fd < 0)
		tap_bail("mkstemp");
	close(fd);
	atexit(cleanup);
	if (model_fixture_write_moe(model_path, NLAYERS, NEXPERTS, HIDDEN, FFN, SEED))
		tap_bail("cannot write the test model");
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		ctx = host_ctx(paths[i].path);
		if (!ctx) {
			tap_ok(0, "%s context", paths[i].name);
			continue;
		}
		test_decode(ctx, paths[i].name, 0, 0, 0);
		/* Much smaller than a slice: every load is many reads, landing side by side. */
		test_decode(ctx, paths[i].name, 4096, 0, 0);
		/* A count of reads per load, shared out between its slices by their bytes. */
		test_decode(ctx, paths[i].name, 0, 9, 0);
		/* Victims unmapped before their miss loads, as before deferred unmapping. */
		test_decode(ctx, paths[i].name, 0, 0, P2PIO_EXPERTS_EAGER_UNMAP);
		p2pio_ctx_destroy(ctx);
		test_alone_batch_pieces(paths[i].path, paths[i].name);
		test_miss_alone_cut(paths[i].path, paths[i].name);
		test_miss_before_hints(paths[i].path, paths[i].name, false);
		test_miss_before_hints(paths[i].path, paths[i].name, true);
		test_wrong_hints(paths[i].path, paths[i].name, false);
		test_wrong_hints(paths[i].path, paths[i].name, true);
		test_hints_across_reset(paths[i].path, paths[i].name);
		test_builtin_hints(paths[i].path, paths[i].name);
		test_empty_require(paths[i].path, paths[i].name);
		test_full_of_hints(paths[i].path, paths[i].name);
		test_right_hint_first(paths[i].path, paths[i].name, false);
		test_right_hint_first(paths[i].path, paths[i].name, true);
		test_right_hold_kept(paths[i].path, paths[i].name);
		test_partial_hint(paths[i].path, paths[i].name);
		test_random_calls(paths[i].path, paths[i].name, seed + i);
		test_bytes_loaded(paths[i].path, paths[i].name);
	}
	/* Threads that poll before they sleep (P2PIO_CTX_POLL) read the same bytes. */
	ctx = host_ctx_flags(P2PIO_PATH_BOUNCE, P2PIO_CTX_POLL);
	if (ctx) {
		test_decode(ctx, "bounce, polling", 0, 0, 0);
		p2pio_ctx_destroy(ctx);
	} else {
		tap_ok(0, "bounce context with P2PIO_CTX_POLL");
	}
	ctx = host_ctx(P2PIO_PATH_AUTO);
	if (!ctx)
		tap_bail("no context");
	test_pins_prefetch(ctx);
	test_prefetch_prev(ctx);
	test_prefetch_learned(ctx);
	test_prefetch_dense_first(ctx);
	test_open_errors(ctx);
	test_custom_policy(ctx);
	test_dense_model(ctx);
	p2pio_ctx_destroy(ctx);
	return tap_exit();
}
