// SPDX-License-Identifier: MIT
/*
 * p2pio-moe, run as built on a generated tiny MoE model (4 layers x 8 experts, 2 used) and
 * a synthetic routing trace, always into host memory (run -d host, so that a machine with
 * a GPU runs the same checks): a run decodes the trace with every expert verified and keeps
 * its books (hits + misses = accesses, the bound = the ceiling / bytes missed per token);
 * the real cache misses exactly where the replay of the same policy and capacity does;
 * with every expert in the budget no expert is read twice; the read options, the engine
 * options and a given ceiling change what the report says; --miss-cost times batches of
 * 1, 2, 4 and 8 cold misses, each against its floor, and names the floor's shape for
 * each; one flipped byte in every expert of a layer makes the run exit 1 and name an
 * offset among them; budgets too small for the dense part or for a token's experts fail
 * with what to give; a trace that routes a layer beyond that layer's own experts (or a
 * dense layer) is refused before the decode, with the cell; bad arguments exit 2,
 * unreadable inputs 3; the replay's oracle never hits less than a demand policy; and
 * replay --model takes the expert size of the model's first layer with experts, whatever
 * its number and the names outside layers.
 */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf_build.h"
#include "tap.h"
#include "tool_run.h"

#define LAYERS 4
#define EXPERTS 8
#define USED 2
#define TOKENS 40
/* Where the whole trace is not needed: the first tokens, for time (ASan, 2 CPUs). */
#define SHORT 12

static const char *dir;		/* the scratch directory, removed at exit */
static char model[128], trace[128];
static char *out;		/* the last run's standard output */

/* Run p2pio-moe with these arguments; its stdout lands in out. */
#define moe(...) tool_run(&out, "p2pio-moe", __VA_ARGS__)

/* A python3 expression over the JSON and what it says when it holds. */
struct jcheck {
	const char *expr;
	const char *what;
};

/* What tool_jeval()'s command line leaves for the expression. */
#define JEXPR_MAX 900

/*
 * One test for each of @n checks over the last output, in as few python3 runs as the
 * command line allows: each run costs a quarter of a second, on a 2-CPU machine, under
 * ASan too.
 */
static void jchecks(const struct jcheck *c, int n)
{
	static const char head[] = "\"\".join(\"1\" if x else \"0\" for x in [";
	char expr[JEXPR_MAX + 16];
	const char *r;
	int i = 0, first, k;
	size_t len;

	while (i < n) {
		first = i;
		len = snprintf(expr, sizeof(expr), "%s", head);
		while (i < n && len + strlen(c[i].expr) + 8 < JEXPR_MAX)
			len += (size_t)snprintf(expr + len, sizeof(expr) - len, "(%s),",
						c[i++].expr);
		if (i == first)
			tap_bail("a JSON check too long for one python3 command line");
		snprintf(expr + len, sizeof(expr) - len, "])");
		r = tool_jeval(out, expr);
		for (k = first; k < i; k++)
			if (!tap_ok(strlen(r) == (size_t)(i - first) && r[k - first] == '1', "%s",
				    c[k].what))
				tap_diag("  does not hold: %s", c[k].expr);
	}
}

/*
 * A short run at 25 % resident with @opts added: exit 0, a line of the report starting
 * with @prefix that holds @needle, and no byte wrong. The report stays in @out.
 */
static bool option_says(const char *opts, const char *prefix, const char *needle)
{
	int st = moe("run -d host --keep-cache %s --trace %s --fraction 0.25 --ceiling 5 %s -n %d",
		     model, trace, opts, SHORT);

	return st == 0 && tool_has_line(out, prefix, needle) &&
	       tool_has_line(out, "verify ", ", 0 bytes wrong");
}

/* From the text report: the measured misses ("hits ... (H of A;") and reads. */
static bool text_counts(uint64_t *misses, uint64_t *reads)
{
	uint64_t h, a;

	if (sscanf(tool_line(out, "hits "), "hits %*f%% (%" SCNu64 " of %" SCNu64 ";", &h,
		   &a) != 2 ||
	    sscanf(tool_line(out, "reads "), "reads %" SCNu64 " (", reads) != 1 || h > a)
		return false;
	*misses = a - h;
	return true;
}

/*
 * `replay -g -c @cap -p @policy -f @prefetch` of the trace, the same cache modelled: its
 * misses and prefetches as "(misses, prefetches)" in @got; false if it did not run.
 */
static bool replay_counts(const char *policy, const char *prefetch, uint64_t cap,
			  char *got, size_t len)
{
	if (moe("replay --json -g -c %" PRIu64 " -p %s -f %s --no-oracle %s", cap, policy,
		prefetch, trace) ||
	    !tool_jis(out, "len(d[\"results\"])", "1"))
		return false;
	snprintf(got, len, "%s", tool_jeval(out, "(d[\"results\"][0][\"misses\"], "
					     "d[\"results\"][0][\"prefetches\"])"));
	return true;
}

static bool near(uint64_t a, uint64_t b, uint64_t d)
{
	return a <= b + d && b <= a + d;
}

/* The misses of `replay -g -c @cap -p @policy -f none` of the trace. */
static int64_t replay_misses(const char *policy, uint64_t cap)
{
	uint64_t misses, prefetches;
	char got[64];

	if (!replay_counts(policy, "none", cap, got, sizeof(got)) ||
	    sscanf(got, "(%" SCNu64 ", %" SCNu64 ")", &misses, &prefetches) != 2)
		return -1;
	return (int64_t)misses;
}

#define NCHECKS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The measured run, a quarter of the experts resident: its books. */
static const struct jcheck run_checks[] = {
	{ "d[\"mismatches\"] == 0 and d[\"verified_bytes\"] > 0",
	  "every required expert verified, no byte wrong" },
	{ "(d[\"experts\"], d[\"warmup_tokens\"] + d[\"tokens\"]) == (32, 40) and d[\"tokens\"] > 0",
	  "32 experts; warm-up + measured tokens = the trace's 40" },
	{ "(d[\"capacity\"], d[\"resident_fraction\"]) == (8, 0.25)",
	  "capacity: a quarter of the 32 experts" },
	{ "d[\"budget\"] >= d[\"dense_bytes\"] + d[\"capacity\"] * d[\"expert_bytes\"]",
	  "the budget holds the dense part and the capacity" },
	{ "d[\"accesses\"] == d[\"tokens\"] * 4 * 2",
	  "accesses: measured tokens x 4 layers x 2 experts used" },
	{ "d[\"misses\"] > 0 and d[\"hits\"] + d[\"misses\"] == d[\"accesses\"]",
	  "some misses, and hits + misses = accesses" },
	{ "abs(d[\"hit_rate\"] - d[\"hits\"] / d[\"accesses\"]) < 1e-12",
	  "hit_rate = hits / accesses" },
	{ "d[\"bytes_read\"] > 0 and abs(d[\"missed_bytes_per_token\"] * d[\"tokens\"] / "
	  "d[\"bytes_read\"] - 1) < 1e-9",
	  "bytes were read; missed bytes per token = bytes read / tokens" },
	{ "d[\"ceiling_measured\"] is True and d[\"ceiling_Bps\"] > 0",
	  "the ceiling was measured" },
	{ "d[\"ceiling_from\"].startswith(\"storage \")",
	  "and the storage sweep set it (ceiling_from \"storage ...\")" },
	{ "__import__(\"re\").search(" TOOL_CEILING_AGAIN_RE ", d[\"ceiling_from\"]) is not None",
	  "its best shape was read again after the decode" },
	{ "d[\"bound_tokens_per_s\"] > 0 and abs(d[\"bound_tokens_per_s\"] * "
	  "d[\"missed_bytes_per_token\"] / d[\"ceiling_Bps\"] - 1) < 1e-9",
	  "bound = ceiling / missed bytes per token" },
	{ "d[\"of_bound\"] > 0 and abs(d[\"of_bound\"] * d[\"bound_tokens_per_s\"] / "
	  "d[\"tokens_per_s\"] - 1) < 1e-9",
	  "of_bound = tokens/s over the bound, above 0" },
	{ "d[\"short_decode\"] is (d[\"wall_s\"] < 0.5)",
	  "short_decode says whether the decode lasted under 0.5 s" },
	{ "0 < d[\"reads_busy_s\"] <= d[\"wall_s\"]",
	  "reads in flight for some of the decode, no longer than it" },
	{ "d[\"path_Bps\"] > 0", "the path's own expert-sized reads were measured" },
	{ "sorted(d[\"path_Bps_by_depth\"], key=int) == [\"2\", \"4\", \"8\", \"32\"] and "
	  "all(v > 0 for v in d[\"path_Bps_by_depth\"].values()) and "
	  "d[\"path_Bps_by_depth\"][\"32\"] == d[\"path_Bps\"]",
	  "and at 2, 4, 8 and 32 deep, the deepest the path_Bps" },
	{ "d[\"batches\"] > 0 and abs(d[\"batch_loads\"] * d[\"batches\"] - d[\"misses\"]) < 1e-6",
	  "miss batches: their loads are the misses" },
	{ "d[\"misses\"] / 2 <= d[\"missed_layers\"] <= min(d[\"misses\"], d[\"tokens\"] * 4) and "
	  "d[\"missed_layers\"] == d[\"batches\"]",
	  "missed layers: between misses / 2 used and the misses, one per miss batch" },
	{ "abs(d[\"wait_per_missed_layer_us\"] * d[\"missed_layers\"] - (d[\"wall_s\"] - "
	  "d[\"bytes_read\"] / d[\"ceiling_Bps\"]) * 1e6) < 1e-3 * d[\"wall_s\"] * 1e6",
	  "the wait per missed layer: the decode's time beyond bytes / ceiling over its missed "
	  "layers" },
	{ "d[\"batch_done_us\"] > 0 and abs(d[\"batch_bytes_us\"] * 1e-6 * d[\"ceiling_Bps\"] * "
	  "d[\"batches\"] / d[\"bytes_read\"] - 1) < 1e-9",
	  "each batch timed, and its bytes / the ceiling: all batches' bytes are the bytes read" },
};

/* The replay of the trace with the default policies, prefetches and capacities. */
static const struct jcheck replay_checks[] = {
	{ "sorted(r[\"capacity\"] for r in d[\"results\"] if r[\"series\"] == \"oracle\") == "
	  "[1, 2, 4]", "the oracle at 10%, 25% and 50% of 8 experts: 1, 2 and 4" },
	{ "all(r[\"hits\"] + r[\"misses\"] == r[\"accesses\"] == 320 for r in d[\"results\"])",
	  "every series: hits + misses = 320 accesses" },
	{ "all(r[\"hit_rate\"] <= o[\"hit_rate\"] for o in d[\"results\"] if o[\"series\"] == "
	  "\"oracle\" for r in d[\"results\"] if r[\"capacity\"] == o[\"capacity\"] and not "
	  "(r[\"prefetch_lag\"] or r[\"prefetch_learned\"] or r[\"prefetch_next\"]))",
	  "at every capacity the oracle hits at least as often as LRU, LFU and LRFU without "
	  "prefetch" },
	{ "any(r[\"policy\"] == \"lru\" and not (r[\"prefetch_lag\"] or r[\"prefetch_learned\"] or "
	  "r[\"prefetch_next\"]) for r in d[\"results\"])", "(LRU without prefetch is among them)" },
	{ "[o[\"hit_rate\"] for o in d[\"results\"] if o[\"series\"] == \"oracle\"] == "
	  "sorted(o[\"hit_rate\"] for o in d[\"results\"] if o[\"series\"] == \"oracle\")",
	  "the oracle's hit rate grows with the capacity" },
	{ "all(r[\"misses\"] / 2 <= r[\"missed_layers\"] <= min(r[\"misses\"], 160) and "
	  "abs(r[\"missed_layers_per_token\"] * 40 - r[\"missed_layers\"]) < 1e-9 "
	  "for r in d[\"results\"])",
	  "every series: missed layers between misses / 2 used and the misses (and 160 layer "
	  "accesses), per token over 40 tokens" },
};

/* The replay with a bandwidth, an expert size and a miss overhead: tokens/s in step. */
static const struct jcheck replay_step_checks[] = {
	{ "(d[\"bandwidth\"], d[\"expert_bytes\"], d[\"miss_overhead_s\"]) == (2e9, 1048576, 0.0005)",
	  "bandwidth 2 GB/s, 1 MiB experts, 500 us per missed layer" },
	{ "all(abs(r[\"tokens_per_s\"] * (r[\"loads_per_token\"] * 1048576 / 2e9 + "
	  "r[\"missed_layers_per_token\"] * 0.0005) - 1) < 1e-9 for r in d[\"results\"])",
	  "every series: tokens/s = 1 / (bytes loaded per token / bandwidth + missed layers per "
	  "token x overhead)" },
};

/* Write a model of tensors @t (GGUF v3, default alignment) to @dir/@name, its path in @path. */
static void write_model(char *path, size_t len, const char *name, struct gb_tensor *t,
			size_t n)
{
	struct gguf_build b;
	FILE *f;

	snprintf(path, len, "%s/%s", dir, name);
	gb_init(&b);
	gb_model(&b, 3, 0, t, n);
	f = fopen(path, "wb");
	if (!f || fwrite(b.p, 1, b.len, f) != b.len || fclose(f))
		tap_bail("cannot write a model");
	gb_free(&b);
}

/*
 * replay --model on a model whose layer 0 is dense (as DeepSeek's first layers are): blk.1
 * has experts of 512 bytes, and a non-layer "blk.x.ffn_up_exps.weight" (not a blk.N name)
 * has slices of 256. The expert size must be blk.1's, not the stray tensor's.
 */
static void test_replay_model_dense_first(void)
{
	struct gb_tensor t[] = {
		GB_T("blk.0.attn_q.weight", P2PIO_GGML_TYPE_F32, 2, 32, 4),
		GB_T("blk.1.ffn_up_exps.weight", P2PIO_GGML_TYPE_F32, 3, 32, 4, 8),
		GB_T("blk.x.ffn_up_exps.weight", P2PIO_GGML_TYPE_F32, 3, 32, 2, 8),
	};
	char path[160];
	int st;

	write_model(path, sizeof(path), "dense-first.gguf", t, 3);
	st = moe("replay --json -b 1 -m %s --no-oracle -p lru -f none %s", path, trace);
	tap_ok(st == 0 && tool_jis(out, "d[\"expert_bytes\"]", "512"),
	       "replay -m, layer 0 dense: the expert size is blk.1's 512 bytes, not a non-layer "
	       "tensor's (exit %d, expert_bytes %s)", st, tool_jval);
}

/*
 * Write a native trace of @tokens tokens over @layers layers (8 experts, top 2) to @path:
 * token t routes layer l to @cells[t][l] (n ids, 0: none). False if it could not be made.
 */
struct test_cell {
	uint32_t n;
	uint32_t ids[2];
};

static bool write_trace(const char *path, uint32_t layers, uint32_t tokens,
			const struct test_cell (*cells)[3])
{
	struct p2pio_expert_trace_info info = { .nr_layers = layers, .nr_experts = 8, .top_k = 2 };
	struct p2pio_expert_trace *t;
	uint32_t tok, l;
	int ret;

	if (p2pio_expert_trace_new(&info, &t, NULL))
		return false;
	ret = 0;
	for (tok = 0; tok < tokens && !ret; tok++) {
		for (l = 0; l < layers && !ret; l++)
			ret = p2pio_expert_trace_add(t, l, cells[tok][l].ids, cells[tok][l].n, NULL);
		ret = ret ?: p2pio_expert_trace_end_token(t, 0, NULL);
	}
	ret = ret ?: p2pio_expert_trace_save(t, path, NULL);
	p2pio_expert_trace_free(t);
	return !ret;
}

/*
 * run on a model whose layers differ: blk.0 has 8 experts, blk.1 4, blk.2 none (dense).
 * The trace's expert count (8) fits the largest layer, and only a cell routing layer 1 to
 * an id of 4 or more, or routing layer 2 at all, does not fit. Such a trace is refused
 * before anything is decoded, with the token, the layer, the id and the layer's expert
 * count; it once failed mid-run with "token 2 layer 1: Numerical result out of range"
 * (or "Invalid argument" for the dense layer). A trace that fits decodes, also with
 * --prefetch-next's wrong guesses, which are drawn from the layer's own experts (they were
 * drawn from the trace's 8 and failed the run at layer 1 without a word).
 */
static void test_run_layers_differ(void)
{
	struct gb_tensor t[] = {
		GB_T("blk.0.ffn_up_exps.weight", P2PIO_GGML_TYPE_F32, 3, 1024, 4, 8),
		GB_T("blk.1.ffn_up_exps.weight", P2PIO_GGML_TYPE_F32, 3, 1024, 4, 4),
		GB_T("blk.2.attn_q.weight", P2PIO_GGML_TYPE_F32, 2, 1024, 4),
	};
	static const struct test_cell ok[4][3] = {
		{ { 2, { 0, 7 } }, { 2, { 0, 3 } }, { 0, { 0 } } },
		{ { 2, { 5, 6 } }, { 1, { 2 } }, { 0, { 0 } } },
		{ { 1, { 1 } }, { 2, { 3, 1 } }, { 0, { 0 } } },
		{ { 2, { 4, 2 } }, { 2, { 0, 2 } }, { 0, { 0 } } },
	};
	struct test_cell beyond[4][3], dense[4][3];
	char path[160], tr[160], args[400];
	int st;

	write_model(path, sizeof(path), "layers-differ.gguf", t, 3);
	snprintf(args, sizeof(args), "run -d host --keep-cache --no-verify --ceiling 5 "
		 "--warmup 0 %s --trace %s/layers-", path, dir);

	snprintf(tr, sizeof(tr), "%s/layers-ok.trace", dir);
	if (!write_trace(tr, 3, 4, ok))
		tap_bail("cannot write a trace for the model whose layers differ");
	st = moe("%sok.trace --json", args);
	tap_ok(tool_jis(out, "d[\"tokens\"]", "4") && st == 0,
	       "run, layers of 8, 4 and no experts: a trace that fits each decodes (exit %d, "
	       "tokens %s)", st, tool_jval);
	st = moe("%sok.trace --json --prefetch-next --accuracy 0", args);
	tap_ok(tool_jis(out, "d[\"tokens\"]", "4") && st == 0,
	       "run --prefetch-next --accuracy 0: every wrong guess one of the layer's own "
	       "experts (exit %d, tokens %s)", st, tool_jval);

	memcpy(beyond, ok, sizeof(ok));
	beyond[2][1].ids[0] = 5;	/* token 2, layer 1: expert 5 of 4 */
	snprintf(tr, sizeof(tr), "%s/layers-beyond.trace", dir);
	if (!write_trace(tr, 3, 4, beyond))
		tap_bail("cannot write a trace for the model whose layers differ");
	st = moe("%sbeyond.trace 2>&1", args);
	tap_ok(st == 3 && tool_has_line(out, "p2pio-moe: ", "token 2") &&
	       tool_has_line(out, "p2pio-moe: ", "layer 1") &&
	       tool_has_line(out, "p2pio-moe: ", "expert 5") &&
	       tool_has_line(out, "p2pio-moe: ", "4 experts") &&
	       !tool_has_line(out, "decode", NULL),
	       "run: a trace routing layer 1 to expert 5 of its 4 is refused before the decode, "
	       "naming the token, the layer, the id and the count (exit %d): %s", st,
	       tool_line(out, "p2pio-moe: "));

	memcpy(dense, ok, sizeof(ok));
	dense[3][2] = (struct test_cell){ 1, { 0 } };	/* token 3 routes dense layer 2 */
	snprintf(tr, sizeof(tr), "%s/layers-dense.trace", dir);
	if (!write_trace(tr, 3, 4, dense))
		tap_bail("cannot write a trace for the model whose layers differ");
	st = moe("%sdense.trace 2>&1", args);
	tap_ok(st == 3 && tool_has_line(out, "p2pio-moe: ", "token 3") &&
	       tool_has_line(out, "p2pio-moe: ", "layer 2") &&
	       tool_has_line(out, "p2pio-moe: ", "expert 0") &&
	       tool_has_line(out, "p2pio-moe: ", "0 experts") &&
	       !tool_has_line(out, "decode", NULL),
	       "run: a trace routing the dense layer 2 is refused before the decode, naming it "
	       "(exit %d): %s", st, tool_line(out, "p2pio-moe: "));
	/* Past -n the trace is not decoded: not checked either. */
	st = moe("%sdense.trace -n 3 --json", args);
	tap_ok(tool_jis(out, "d[\"tokens\"]", "3") && st == 0,
	       "run -n 3: the dense layer's routing at token 3 is not decoded, and not refused "
	       "(exit %d, tokens %s)", st, tool_jval);
}

/*
 * run decodes at most 64 experts of a layer at once (RUN_MAX_USED); a trace may route up to
 * 255. One that routes 65 of a layer's 80 experts is refused before the decode, with the
 * token, the layer and the limit: it once passed every check (the budget holds them all)
 * and the decode stopped at once with exit 3 and no message at all.
 */
static void test_run_wide_cell(void)
{
	struct gb_tensor t[] = {
		GB_T("blk.0.ffn_up_exps.weight", P2PIO_GGML_TYPE_F32, 3, 1024, 4, 80),
	};
	struct p2pio_expert_trace_info info = { .nr_layers = 1, .nr_experts = 80, .top_k = 65 };
	struct p2pio_expert_trace *tr = NULL;
	char path[160], tpath[160];
	uint32_t ids[65], i;
	int st;

	write_model(path, sizeof(path), "wide.gguf", t, 1);
	snprintf(tpath, sizeof(tpath), "%s/wide.trace", dir);
	for (i = 0; i < 65; i++)
		ids[i] = i;
	if (p2pio_expert_trace_new(&info, &tr, NULL) ||
	    p2pio_expert_trace_add(tr, 0, ids, 2, NULL) ||
	    p2pio_expert_trace_end_token(tr, 0, NULL) ||
	    p2pio_expert_trace_add(tr, 0, ids, 65, NULL) ||
	    p2pio_expert_trace_end_token(tr, 0, NULL) ||
	    p2pio_expert_trace_save(tr, tpath, NULL))
		tap_bail("cannot write the trace of 65 experts a token");
	p2pio_expert_trace_free(tr);
	st = moe("run -d host --keep-cache --no-verify --ceiling 5 %s --trace %s 2>&1", path,
		 tpath);
	tap_ok(st == 3 && tool_has_line(out, "p2pio-moe: ", "token 1") &&
	       tool_has_line(out, "p2pio-moe: ", "layer 0") &&
	       tool_has_line(out, "p2pio-moe: ", "65 experts") &&
	       tool_has_line(out, "p2pio-moe: ", "64") && !tool_has_line(out, "decode", NULL),
	       "run: a token routing 65 experts of a layer is refused before the decode, with "
	       "the limit of 64 (exit %d): %s", st, tool_line(out, "p2pio-moe: "));
	st = moe("run -d host --keep-cache --no-verify --ceiling 5 %s --trace %s -n 1 --json",
		 path, tpath);
	tap_ok(tool_jis(out, "d[\"tokens\"]", "1") && st == 0,
	       "run -n 1: the token of 2 experts decodes (exit %d, tokens %s)", st, tool_jval);
}

/*
 * fit replays generated tokens only: a trace of prompt tokens alone has none, and its hit
 * rates of 0 went into the mean the fit aims at (alone, it "fit" a default shape within 3
 * points, exit 0). Refused, naming the trace.
 */
static void test_fit_prompt_only(void)
{
	struct p2pio_expert_trace_info info = { .nr_layers = 2, .nr_experts = 8, .top_k = 2 };
	struct p2pio_expert_trace *t = NULL;
	uint32_t ids[2] = { 1, 3 };
	char path[160];
	int st, i, bad = 0;

	snprintf(path, sizeof(path), "%s/prompt.trace", dir);
	bad |= p2pio_expert_trace_new(&info, &t, NULL);
	for (i = 0; !bad && i < 3; i++)
		bad |= p2pio_expert_trace_add(t, 0, ids, 2, NULL) ||
		       p2pio_expert_trace_add(t, 1, ids, 1, NULL) ||
		       p2pio_expert_trace_end_token(t, P2PIO_EXPERT_TOKEN_PREFILL |
						    (i ? 0 : P2PIO_EXPERT_TOKEN_SEQ_START), NULL);
	if (bad || p2pio_expert_trace_save(t, path, NULL))
		tap_bail("cannot write the trace of prompt tokens");
	p2pio_expert_trace_free(t);
	st = moe("fit -L 2 -E 8 -k 2 %s 2>&1", path);
	tap_ok(st == 3 && tool_has_line(out, "p2pio-moe: ", "prompt.trace") &&
	       tool_has_line(out, "p2pio-moe: ", "generated"),
	       "fit of a trace of prompt tokens alone: refused, naming it (exit %d): %s", st,
	       tool_line(out, "p2pio-moe: "));
	/* replay too (it printed a table of 0 % hit rates over 0 tokens, exit 0) ... */
	st = moe("replay -c 25%% %s 2>&1", path);
	tap_ok(st == 3 && tool_has_line(out, "p2pio-moe: ", "prompt.trace") &&
	       tool_has_line(out, "p2pio-moe: ", "--with-prefill") &&
	       !tool_has_line(out, "replayed:", NULL),
	       "replay of a trace of prompt tokens alone: refused, naming it (exit %d): %s", st,
	       tool_line(out, "p2pio-moe: "));
	/* ... unless the prompt is asked for */
	st = moe("replay --with-prefill -c 25%% %s 2>&1", path);
	tap_ok(st == 0 && tool_has_line(out, "replayed:", NULL),
	       "replay --with-prefill of that trace: replayed (exit %d)", st);
}

/*
 * run of a trace without tokens: it measured the path and reported "0 tokens after 0 of
 * warm-up ... 0.00 tokens/s", exit 0, a result of nothing. Refused as an invalid input
 * (exit 3), naming the trace, before anything is measured; nothing on standard output.
 */
static void test_run_empty(void)
{
	struct p2pio_expert_trace_info info = { .nr_layers = LAYERS, .nr_experts = EXPERTS,
						 .top_k = USED };
	struct p2pio_expert_trace *t = NULL;
	char path[160];
	int st, json;

	snprintf(path, sizeof(path), "%s/empty.trace", dir);
	if (p2pio_expert_trace_new(&info, &t, NULL) || p2pio_expert_trace_save(t, path, NULL))
		tap_bail("cannot write a trace without tokens");
	p2pio_expert_trace_free(t);
	st = moe("run -d host --keep-cache --ceiling 5 %s --trace %s 2>&1", model, path);
	tap_ok(st == 3 && tool_has_line(out, "p2pio-moe: ", "empty.trace: the trace has no tokens") &&
		       !tool_has_line(out, "decode ", NULL),
	       "run of a trace without tokens: refused, naming it, nothing decoded (exit %d): %s",
	       st, tool_line(out, "p2pio-moe: "));
	json = moe("run -d host --keep-cache --ceiling 5 --json %s --trace %s 2>/dev/null", model,
		   path);
	tap_ok(json == 3 && !*out, "and with --json: exit %d, nothing on standard output", json);
	st = moe("replay --json -c 25%% %s 2>&1", path);
	tap_ok(st == 3 && tool_has_line(out, "p2pio-moe: ", "empty.trace: the trace has no tokens"),
	       "replay of a trace without tokens: refused, naming it (exit %d): %s", st,
	       tool_line(out, "p2pio-moe: "));
}

int main(int argc, char **argv)
{
	uint64_t dense, xbytes, slice_min_reads, xmin = 0, xmax = 0, misses = 0, reads = 0, need, m_all, m_warm;
	uint64_t bad_off[EXPERTS], slice, exps_off, exps_bytes, got, a, b, c, d;
	char bad[128], args[512], want[256];
	const char *v = tool_jval;	/* what the last JSON check saw */
	char *g = NULL;
	const char *p;
	int st, e, i, counted;
	int64_t r;
	bool lrfu;

	tool_init(argv[0]);
	tool_need_python();
	dir = tool_scratch("moe");
	snprintf(model, sizeof(model), "%s/m.gguf", dir);
	snprintf(trace, sizeof(trace), "%s/t.trace", dir);
	snprintf(bad, sizeof(bad), "%s/bad.gguf", dir);

	/* A seed other than the default: verification must take it from the metadata. */
	if (tool_run(NULL, "p2pio-mkmodel", "-q -p moe-tiny -s 3 %s", model))
		tap_bail("p2pio-mkmodel -p moe-tiny failed");
	if (moe("synth -L %d -E %d -k %d -n %d -S 1 -o %s", LAYERS, EXPERTS, USED, TOKENS, trace))
		tap_bail("p2pio-moe synth failed");
	/*
	 * Layer 0's first expert tensor (8 experts: slices along its outermost dimension),
	 * and the fewest reads of at most 64 KiB an expert load of any layer can take.
	 */
	if (tool_run(&g, "p2pio-gguf", "--tensors --json %s", model) ||
	    sscanf(tool_jeval(g, "next((t[\"file_offset\"], t[\"bytes\"]) for t in "
				 "d[\"tensors\"] if t[\"layer\"] == 0 and "
				 "t[\"name\"].endswith(\"_exps.weight\") and "
				 "t[\"experts\"] == 8) + (min(sum(-(-t[\"expert_bytes\"] // 65536) "
				 "for t in d[\"tensors\"] if t[\"layer\"] == l and "
				 "t[\"experts\"]) for l in range(4)),)"),
		   "(%" SCNu64 ", %" SCNu64 ", %" SCNu64 ")", &exps_off, &exps_bytes,
		   &slice_min_reads) != 3 || exps_bytes % EXPERTS || !slice_min_reads)
		tap_bail("no layer-0 expert tensor of 8 experts in the moe-tiny model");
	/* The smallest and largest expert of any layer: all its slices' bytes. */
	if (sscanf(tool_jeval(g, "(lambda s: (min(s), max(s)))([sum(t[\"expert_bytes\"] for t in "
				 "d[\"tensors\"] if t[\"layer\"] == l and t[\"experts\"]) "
				 "for l in range(4)])"),
		   "(%" SCNu64 ", %" SCNu64 ")", &xmin, &xmax) != 2 || !xmin || xmax < xmin)
		tap_bail("no expert sizes in the moe-tiny model");
	free(g);
	/* One byte in the middle of each expert's slice: e*size/8 .. (e+1)*size/8. */
	slice = exps_bytes / EXPERTS;
	for (e = 0; e < EXPERTS; e++)
		bad_off[e] = exps_off + (uint64_t)e * slice + slice / 2;

	/*
	 * ---- a quarter of the experts, the ceiling measured ----
	 * --keep-cache: cold, the storage sweep drops the file before each of its shapes and
	 * takes seconds; warm it is the same sweep, in a second.
	 */
	st = moe("run -d host --json --keep-cache %s --trace %s --fraction 0.25", model, trace);
	tap_is_int(st, 0, "run --fraction 0.25: exit 0");
	tap_ok(tool_json_ok(out) == 1, "its output is JSON");
	jchecks(run_checks, NCHECKS(run_checks));

	/* ---- the real cache against its model: warm-up 0, every access counted ---- */
	st = moe("run -d host --json --keep-cache %s --trace %s --fraction 0.25 --ceiling 5 "
		 "--warmup 0 --policy lru", model, trace);
	counted = sscanf(tool_jeval(out, "(d[\"warmup_tokens\"], d[\"tokens\"], "
				    "d[\"mismatches\"], d[\"misses\"])"),
			 "(%" SCNu64 ", %" SCNu64 ", %" SCNu64 ", %" SCNu64 ")", &a, &b, &c, &got);
	tap_ok(st == 0 && counted == 4 && a == 0 && b == TOKENS && c == 0,
	       "--warmup 0: all 40 tokens measured, no byte wrong");
	r = replay_misses("lru", 8);
	tap_ok(r >= 0 && (uint64_t)r == got,
	       "LRU, 8 experts: the real cache misses as often as the replay of it (%" PRIu64
	       " and %" PRId64 ")", got, r);
	/* No --policy: the library's default, LRFU, and the replay of LRFU. */
	st = moe("run -d host --json --keep-cache %s --trace %s --fraction 0.25 --ceiling 5 "
		 "--warmup 0", model, trace);
	counted = sscanf(tool_jeval(out, "d[\"misses\"]"), "%" SCNu64, &got);
	lrfu = tool_jis(out, "d[\"policy\"]", "lrfu");
	r = replay_misses("lrfu", 8);	/* (replaces out) */
	tap_ok(st == 0 && counted == 1 && lrfu && r >= 0 && (uint64_t)r == got,
	       "the default policy is LRFU, and misses as often as the replay of it (%" PRIu64
	       " and %" PRId64 ")", got, r);

	/*
	 * The built-in prefetches against the replay's: the previous token's routing (lag),
	 * the learned predictor, both (LRFU: with LRU at this capacity the previous token's
	 * experts are all still resident, and lag has nothing to do). The cache predicts,
	 * holds and drops as the replay does, but its loads take time: a wrong guess still
	 * loading cannot be evicted, where the replay's (loaded at once) can, so the policy's
	 * next choice goes instead, and the runs differ by a few misses from run to run
	 * (156-159 against the replay's 156 with lag; 298-320 prefetches against 298 with
	 * both). Within 5 % of the replay's misses and 15 % of its prefetches, then, beside
	 * the last token's prefetch for a token that never comes (top_k per source), which
	 * the replay, knowing the trace ends, does not issue. The three differ from each
	 * other and from no prefetch (210 misses) by more than that.
	 */
	{
		static const struct {
			const char *opts, *series;
			uint64_t sources;
		} runs[] = {
			{ "--prefetch-prev", "lag", 1 },
			{ "--prefetch-learned", "learned", 1 },
			{ "--prefetch-prev --prefetch-learned", "learned+lag", 2 },
		};
		uint64_t m[2], pf[2];
		char rep[64];
		size_t k;

		for (k = 0; k < sizeof(runs) / sizeof(runs[0]); k++) {
			st = moe("run -d host --json --keep-cache %s --trace %s --fraction 0.25 "
				 "--ceiling 5 --warmup 0 --policy lrfu %s", model, trace, runs[k].opts);
			counted = sscanf(tool_jeval(out, "(d[\"misses\"], d[\"prefetches\"])"),
					 "(%" SCNu64 ", %" SCNu64 ")", &m[0], &pf[0]);
			counted += st == 0 && tool_jis(out, "(d[\"mismatches\"], d[\"prefetch_used\"] > 0)",
						       "(0, True)");
			counted += replay_counts("lrfu", runs[k].series, 8, rep, sizeof(rep)) &&
				   sscanf(rep, "(%" SCNu64 ", %" SCNu64 ")", &m[1], &pf[1]) == 2;
			tap_ok(counted == 4 && near(m[0], m[1], m[1] / 20 + 1) &&
				       near(pf[0], pf[1], pf[1] * 3 / 20 + runs[k].sources * USED),
			       "%s: %" PRIu64 " misses, %" PRIu64 " prefetches (used, 0 bytes wrong); "
			       "the replay's (-f %s): %s", runs[k].opts, m[0], pf[0], runs[k].series, rep);
		}
	}

	/* ---- the text report, cold (the default), a given ceiling ---- */
	st = moe("run -d host %s --trace %s --fraction 0.25 --ceiling 5 -n %d", model, trace, SHORT);
	tap_is_int(st, 0, "text report: exit 0");
	tap_ok(tool_has_line(out, "model ", "4 layers x 8 experts (2 used)") &&
		       tool_has_line(out, "budget ", "dense + 8 experts = 25.0% of the experts"),
	       "model and budget lines");
	tap_ok(tool_has_line(out, "engine ", " threads") &&
		       tool_has_line(out, "reads ", " per load") &&
		       tool_has_line(out, "batches ", " us over (require waits for it)") &&
		       tool_has_line(out, "waits ", " us per missed layer (replay --miss-overhead)") &&
		       tool_has_line(out, "ceiling ", "5.00 GB/s (given)") &&
		       tool_has_line(out, "depths ", ", 32 deep ") &&
		       tool_has_line(out, "bound ", " tokens/s = ceiling / missed bytes per token"),
	       "engine, reads, batches, waits, ceiling (given), depths and bound lines");
	/* A decode under 0.5 s says its ratio is no steady one (a few tokens: milliseconds). */
	{
		const char *in = strstr(tool_line(out, "decode "), " in ");
		double secs = -1;
		bool noted = tool_has_line(out, "bound ", "(a short decode: its first reads weigh in");
		bool read = in && sscanf(in, " in %lf s", &secs) == 1 && secs >= 0;

		tap_ok(read && noted == (secs < 0.5),
		       "the bound line says the decode was short exactly when it lasted under 0.5 s "
		       "(%.3f s, %s)", secs, noted ? "said" : "not said");
	}
	tap_ok(tool_has_line(out, "verify ", "checked by the CPU, 0 bytes wrong"),
	       "verify ... 0 bytes wrong");

	/*
	 * ---- --miss-cost: batches of 1, 2, 4 and 8 cold misses, each against its floor ----
	 * Cold (the default): each batch's ranges and each of the floor's tries are evicted.
	 */
	st = moe("run -d host %s --trace %s --fraction 0.25 --ceiling 5 -n %d --miss-cost", model,
		 trace, SHORT);
	tap_ok(st == 0 && tool_has_line(out, "miss cost ", "(ceiling 5.00 GB/s)") &&
		       tool_has_line(out, "  k ", " bytes/ceil  overhead ") &&
		       tool_has_line(out, "  k ", " late    floor over floor"),
	       "--miss-cost: exit 0, a table whose columns end with late, floor, over floor");
	for (i = 1; i <= 8; i *= 2) {
		double col[16] = { 0 };
		unsigned int warm = 0, all = 0;
		unsigned int k = 0, threads = 0;
		char row[16], shape[32];
		const char *l;
		bool named;

		snprintf(row, sizeof(row), "  %-3d ", i);
		counted = sscanf(tool_line(out, row), "%u %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf "
				 "%lf %lf %lf %lf %lf", &k, &col[0], &col[1], &col[2], &col[3],
				 &col[4], &col[5], &col[6], &col[7], &col[8], &col[9], &col[10],
				 &col[11], &col[12], &col[13], &col[14]);
		/* col[7] released, col[11] floor, col[12] over floor: printed to 0.1 us each. */
		tap_ok(counted == 16 && k == (unsigned int)i && col[11] > 0 &&
			       fabs(col[12] - (col[7] - col[11])) < 0.15,
		       "k=%d: a floor of %.1f us, and over floor = released - floor (%.1f - %.1f = "
		       "%+.1f)", i, col[11], col[7], col[11], col[12]);
		/*
		 * A mean over wholly cold batches reads k experts' worth each, at least k of
		 * the smallest: a batch with a hit in it (a walk no longer than the cache) is
		 * left out, not counted at a fraction of the bytes. The note says how many.
		 */
		l = strchr(tool_line(out, row), '\n');	/* the row's own note, if any */
		if (l && strncmp(l, "\n      (", 8))
			l = NULL;
		/*
		 * col[13] taken, col[14] landed: the engine's phases of the batch's last read
		 * (into host memory the path says them), each before the load completed (col[6]).
		 */
		tap_ok(counted == 16 && col[13] > 0 && col[13] <= col[14] + 0.15 &&
			       col[14] <= col[6] + 0.15,
		       "k=%d: its last read handed out at %.1f us, read at %.1f, the load done at "
		       "%.1f", i, col[13], col[14], col[6]);
		tap_ok(counted == 16 && col[0] * 1048576.0 >= i * (double)xmin - 0.01 * 1048576.0 &&
			       col[0] * 1048576.0 <= i * (double)xmax * 1.02 + 0.01 * 1048576.0 &&
			       (!l || (sscanf(l, "\n      (%u of %u batches not wholly cold", &warm,
					      &all) == 2 && all == warm + 10)),
		       "k=%d: the batches counted were wholly cold (%.3f MiB, %d x %.3f-%.3f)%s", i,
		       col[0], i, xmin / 1048576.0, xmax / 1048576.0, l ? ", the rest left out" : "");
		/* The spread behind the mean: fastest <= median <= slowest, the mean inside. */
		{
			double med = 0, lo = 0, hi = 0;
			unsigned int nb = 0;
			char rl[32];

			snprintf(rl, sizeof(rl), "  released k=%d: ", i);
			l = tool_line(out, rl);
			counted = *l ? sscanf(l + strlen(rl), "median %lf us, fastest %lf, slowest "
					      "%lf (%u batch", &med, &lo, &hi, &nb) : 0;
			tap_ok(counted == 4 && nb == 10 && lo <= med && med <= hi &&
				       col[7] >= lo - 0.15 && col[7] <= hi + 0.15,
			       "k=%d: %u batches released in %.1f-%.1f us, median %.1f, the mean "
			       "%.1f between", i, nb, lo, hi, med, col[7]);
		}
		snprintf(shape, sizeof(shape), "  floor shape k=%d: ", i);
		l = tool_line(out, shape);
		named = *l && sscanf(l + strlen(shape), "%u thread", &threads) == 1 &&
			threads >= 1 && threads <= 64 && strstr(l, " x ") &&
			strstr(l, "the best of 3 tries");
		tap_ok(named, "k=%d: a line names the floor's shape:%.*s", i,
		       (int)strcspn(l + 1, "\n"), l + (*l != 0));
	}
	tap_is_int(tool_count_lines(out, "  floor shape k="), 4, "one shape line per k, no more");

	/*
	 * Half the experts resident after a whole decode with the default policy (LRFU): its
	 * hot experts stayed through the walk and a batch of 4 or 8 of a layer's 8 was never
	 * wholly cold, so those rows were missing (the H200's run 8). The batches get a cache
	 * of their own (LRU, filled by the walk): ten cold batches for every k.
	 */
	st = moe("run -d host %s --trace %s --fraction 0.5 --ceiling 5 --miss-cost", model, trace);
	counted = 0;
	for (i = 1; i <= 8; i *= 2) {
		char rl[32];
		unsigned int nb = 0;

		snprintf(rl, sizeof(rl), "  released k=%d: ", i);
		if (sscanf(tool_line(out, rl), "  released k=%*d: median %*f us, fastest %*f, "
			   "slowest %*f (%u batch", &nb) == 1 && nb == 10)
			counted++;
	}
	tap_ok(st == 0 && counted == 4 &&
		       tool_has_line(out, "  a cache of its own: ", "16 of 32 experts, LRU") &&
		       !tool_has_line(out, "      (", "not wholly cold"),
	       "--miss-cost after a decode at 50 %%: a cache of its own, 10 cold batches for "
	       "each of k = 1, 2, 4, 8 (%d)", counted);
	st = moe("run -d host %s --trace %s --fraction 0.2 --ceiling 5 -n %d --miss-cost", model,
		 trace, SHORT);
	tap_ok(st == 0 && tool_has_line(out, "  8   ", "none: more than the 6 experts the "
					"cache holds") && *tool_line(out, "  released k=4: "),
	       "--miss-cost with room for 6: k=4 timed, k=8 says it does not fit");

	/*
	 * --miss-cost with --json: the batches in the one JSON object (they were left out
	 * without a word). Room for 6: k = 1, 2, 4 timed, each mean over its 10 batches,
	 * the overhead their released time less their bytes / the ceiling, a floor read;
	 * k = 8 not, saying why.
	 */
	st = moe("run -d host --json %s --trace %s --fraction 0.2 --ceiling 5 -n %d --miss-cost",
		 model, trace, SHORT);
	tap_ok(st == 0 && tool_json_ok(out) == 1 &&
		       tool_jis(out, "(d[\"miss_cost\"][\"ceiling_Bps\"], "
				"d[\"miss_cost\"][\"cache_experts\"], "
				"[(r[\"k\"], r[\"timed\"], r.get(\"batches\")) "
				"for r in d[\"miss_cost\"][\"rows\"]], "
				"d[\"miss_cost\"][\"rows\"][3][\"why\"], "
				"all(abs(r[\"overhead_us\"] - (r[\"released_us\"] - "
				"r[\"bytes_ceiling_us\"])) < 1e-6 and r[\"floor\"][\"us\"] > 0 and "
				"r[\"released_fastest_us\"] <= r[\"released_median_us\"] <= "
				"r[\"released_slowest_us\"] and r[\"mib\"] > 0 "
				"for r in d[\"miss_cost\"][\"rows\"][:3]), d[\"mismatches\"])",
				"(5000000000, 6, [(1, True, 10), (2, True, 10), (4, True, 10), "
				"(8, False, None)], 'more than the 6 experts the cache holds', True, 0)"),
	       "--miss-cost --json: the batches in the JSON object, k=8 untimed with why: %s",
	       tool_jval);
	st = moe("run -d host --json %s --trace %s --fraction 0.2 --ceiling 5 -n %d", model, trace,
		 SHORT);
	tap_ok(st == 0 && tool_jis(out, "\"miss_cost\" in d", "False"),
	       "without --miss-cost: no miss_cost in the JSON object");

	/* ---- options say what they did ---- */
	tap_ok(option_says("--read-pieces 3", "reads ", "(about 3 per load)"),
	       "--read-pieces 3: exit 0, about 3 reads per load, 0 bytes wrong");
	tap_ok(option_says("--read-piece 64K", "reads ", "(at most 64.0 KiB each)"),
	       "--read-piece 64K: exit 0, reads of at most 64 KiB, 0 bytes wrong");
	/* Every miss loads its expert, each slice in reads of at most 64 KiB. */
	counted = text_counts(&misses, &reads);
	tap_ok(counted && misses > 0 && reads >= misses * slice_min_reads,
	       "and its reads cover the misses' bytes 64 KiB at a time (%" PRIu64 " reads >= %"
	       PRIu64 " misses x %" PRIu64 ")", reads, misses, slice_min_reads);
	tap_ok(option_says("--no-poll --threads 4", "engine ", "4 threads (given)") &&
		       !tool_has_line(out, "engine ", "polling"),
	       "--no-poll --threads 4: exit 0, 4 threads given, no polling, 0 bytes wrong");
	tap_ok(option_says("--threads 4 --queue-depth 4", "engine ",
			   "4 reads in flight (given)"),
	       "--queue-depth 4: exit 0, the engine reads 4 at a time, 0 bytes wrong");
	st = moe("run -d host --json --keep-cache %s --trace %s --fraction 0.25 --ceiling 5 "
		 "--threads 4 --queue-depth 6 -n %d", model, trace, SHORT);
	tap_ok(st == 0 && tool_jis(out, "(d[\"threads\"], d[\"queue_depth\"], d[\"mismatches\"])",
				   "(4, 6, 0)"),
	       "--queue-depth 6 in JSON: threads 4, queue_depth 6, 0 bytes wrong: %s", tool_jval);
	st = moe("run -d host --json --keep-cache %s --trace %s --fraction 0.25 --ceiling 5 "
		 "--run-ahead -n %d", model, trace, SHORT);
	tap_ok(st == 0 && tool_jis(out, "(d[\"run_ahead\"], d[\"mismatches\"])", "(False, 0)"),
	       "--run-ahead into host memory: exit 0, nothing to run ahead of (each require "
	       "loads before it returns): %s", tool_jval);
	{
		uint64_t m0 = 0, m1 = 0, used = 0, wrong = 0, none, ahead3 = 0;

		st = moe("run -d host --json --keep-cache %s --trace %s --fraction 0.5 --ceiling 5 "
			 "--warmup 0", model, trace);
		counted = sscanf(tool_jeval(out, "d[\"misses\"]"), "%" SCNu64, &m0);
		st |= moe("run -d host --json --keep-cache %s --trace %s --fraction 0.5 --ceiling 5 "
			  "--warmup 0 --prefetch-next", model, trace);
		counted += sscanf(tool_jeval(out, "(d[\"misses\"], d[\"prefetch_used\"])"),
				  "(%" SCNu64 ", %" SCNu64 ")", &m1, &used);
		none = m0;
		tap_ok(st == 0 && counted == 3 && used > 0 && m1 < m0 &&
			       tool_jis(out, "(d[\"prefetch_next\"], d[\"mismatches\"])",
					"(True, 0)"),
		       "--prefetch-next: the next layer's experts prefetched and used (%" PRIu64
		       "), misses %" PRIu64 " against %" PRIu64 " without, none wrong", used, m1, m0);
		/*
		 * Every guess wrong: an expert the next layer does not route to, so a guess is
		 * used only where a later token happens to need it while it is resident.
		 */
		st = moe("run -d host --json --keep-cache %s --trace %s --fraction 0.5 --ceiling 5 "
			 "--warmup 0 --prefetch-next --accuracy 0", model, trace);
		counted = sscanf(tool_jeval(out, "(d[\"misses\"], d[\"prefetch_used\"])"),
				 "(%" SCNu64 ", %" SCNu64 ")", &m0, &wrong);
		tap_ok(st == 0 && counted == 2 && wrong < used &&
			       tool_jis(out, "(d[\"prefetches\"] > 0, d[\"accuracy\"], "
					"d[\"keep_wrong_hints\"], d[\"cancels\"] >= 0, "
					"d[\"hastened\"] >= 0, "
					"d[\"mismatches\"])", "(True, 0, False, True, True, 0)"),
		       "--accuracy 0: guesses prefetched, %" PRIu64 " used later against %" PRIu64
		       " right ones; misses %" PRIu64 ", none wrong", wrong, used, m0);
		/*
		 * Their loads kept, misses queued as any read: as before session 13, nothing
		 * withdrawn (the cache's tests withdraw and reorder, timed).
		 */
		st = moe("run -d host --json --keep-cache %s --trace %s --fraction 0.5 --ceiling 5 "
			 "--warmup 0 --prefetch-next --accuracy 0 --keep-wrong-hints "
			 "--misses-in-order", model, trace);
		tap_ok(st == 0 && tool_jis(out, "(d[\"keep_wrong_hints\"], d[\"misses_in_order\"], "
					   "d[\"cancels\"], d[\"hastened\"], d[\"mismatches\"])",
					   "(True, True, 0, 0, 0)"),
		       "--keep-wrong-hints --misses-in-order: no hint withdrawn or hastened, none "
		       "wrong: %s",
		       tool_jval);
		/*
		 * Three layers ahead, always right: every hint waits for its layer (no miss or
		 * other hint evicts it first; before, 3 of 55 were), so every one is used. The
		 * misses are fewer than without hints, not fewer than one layer ahead: hints held
		 * longer take room from the first layer's experts, which no hint covers.
		 */
		st = moe("run -d host --json --keep-cache %s --trace %s --fraction 0.5 --ceiling 5 "
			 "--warmup 0 --prefetch-next --lookahead 3", model, trace);
		counted = sscanf(tool_jeval(out, "d[\"misses\"]"), "%" SCNu64, &ahead3);
		tap_ok(st == 0 && counted == 1 && ahead3 < none &&
			       tool_jis(out, "(d[\"lookahead\"], d[\"prefetches\"] > 0, "
					"d[\"prefetch_used\"] == d[\"prefetches\"], d[\"mismatches\"])",
					"(3, True, True, 0)"),
		       "--lookahead 3: every hint used, misses %" PRIu64 " (without hints %" PRIu64
		       ", a layer ahead %" PRIu64 "), none wrong: %s", ahead3, none, m1, tool_jval);
		tap_ok(moe("run -d host %s --trace %s --lookahead 2 2>/dev/null", model, trace) == 2 &&
			       moe("run -d host %s --trace %s --prefetch-next --lookahead 0 "
				   "2>/dev/null", model, trace) == 2 &&
			       moe("run -d host %s --trace %s --prefetch-next --lookahead 17 "
				   "2>/dev/null", model, trace) == 2,
		       "--lookahead without --prefetch-next, 0 or above 16: usage errors (exit 2)");
		tap_ok(moe("run -d host %s --trace %s --accuracy 0.5 2>/dev/null", model, trace) == 2 &&
			       moe("run -d host %s --trace %s --prefetch-next --accuracy 1.5 "
				   "2>/dev/null", model, trace) == 2,
		       "--accuracy without --prefetch-next, or above 1: usage errors (exit 2)");
	}
	tap_ok(moe("run -d host %s --trace %s --queue-depth 0", model, trace) == 2,
	       "--queue-depth 0: a usage error (exit 2)");
	st = moe("run -d host --json --keep-cache %s --trace %s --fraction 0.25 --ceiling 5 -n %d",
		 model, trace, SHORT);
	tap_ok(st == 0 && tool_jis(out, "(d[\"ceiling_measured\"], d[\"ceiling_Bps\"], "
				   "d[\"ceiling_from\"], d[\"mismatches\"], "
				   "abs(d[\"bound_tokens_per_s\"] * "
				   "d[\"missed_bytes_per_token\"] - 5e9) < 1)",
				   "(False, 5000000000, 'given', 0, True)"),
	       "--ceiling 5: not measured, 5e9 bytes/s, given; the bound divides it: %s", v);

	/* ---- every expert fits: none is read twice ---- */
	st = moe("run -d host --json --keep-cache %s --trace %s --fraction 1 --ceiling 5 "
		 "--warmup 0", model, trace);
	counted = sscanf(tool_jeval(out, "(d[\"capacity\"], d[\"mismatches\"], d[\"misses\"])"),
			 "(%" SCNu64 ", %" SCNu64 ", %" SCNu64 ")", &a, &c, &m_all);
	tap_ok(st == 0 && counted == 3 && a == LAYERS * EXPERTS && c == 0,
	       "--fraction 1: every expert has a slot, no byte wrong");
	r = replay_misses("lru", LAYERS * EXPERTS);
	tap_ok(r > 0 && (uint64_t)r == m_all,
	       "--warmup 0: the misses are the trace's distinct experts (%" PRIu64 ", replay %"
	       PRId64 ")", m_all, r);
	st = moe("run -d host --json --keep-cache %s --trace %s --fraction 1 --ceiling 5 "
		 "--warmup 0 -n 4", model, trace);
	counted = sscanf(tool_jeval(out, "(d[\"tokens\"], d[\"misses\"])"),
			 "(%" SCNu64 ", %" SCNu64 ")", &b, &m_warm);
	tap_ok(st == 0 && counted == 2 && b == 4 && m_warm > 0 && m_warm <= m_all,
	       "-n 4: the first four tokens miss %" PRIu64 " times", m_warm);
	st = moe("run -d host --json --keep-cache %s --trace %s --fraction 1 --ceiling 5 "
		 "--warmup 4", model, trace);
	counted = sscanf(tool_jeval(out, "(d[\"misses\"], d[\"hits\"] + d[\"misses\"] - "
				    "d[\"accesses\"])"), "(%" SCNu64 ", %" SCNu64 ")", &got, &d);
	tap_ok(st == 0 && counted == 2 && got == m_all - m_warm && d == 0,
	       "--warmup 4: the misses left are exactly the experts first needed after it "
	       "(%" PRIu64 " = %" PRIu64 " - %" PRIu64 ")", got, m_all, m_warm);

	/* ---- budgets too small ---- */
	st = moe("run -d host --json --keep-cache %s --trace %s --fraction 1 --ceiling 5 -n 1",
		 model, trace);
	if (st || sscanf(tool_jeval(out, "(d[\"dense_bytes\"], d[\"expert_bytes\"])"),
			 "(%" SCNu64 ", %" SCNu64 ")", &dense, &xbytes) != 2 || !dense || !xbytes)
		tap_bail("the dense part's and an expert's bytes");
	st = moe("run -d host --keep-cache %s --trace %s --budget 1M --ceiling 5 2>&1", model,
		 trace);
	snprintf(want, sizeof(want), "does not hold the dense part (%" PRIu64 ")", dense);
	tap_ok(st == 3 && strstr(out, "a budget of 1048576 bytes") && strstr(out, want),
	       "--budget 1M, short of the dense part: exit 3, says so");
	/* Room for one expert, but a token needs two of a layer at once. */
	need = dense + USED * xbytes;
	st = moe("run -d host --keep-cache %s --trace %s --budget %" PRIu64 " --ceiling 5 2>&1",
		 model, trace, need - 1);
	snprintf(want, sizeof(want), "needs %d of a layer at once: give at least %" PRIu64, USED,
		 need);
	tap_ok(st == 3 && strstr(out, want), "a budget of one expert: exit 3, says what to give");
	st = moe("run -d host --json --keep-cache %s --trace %s --budget %" PRIu64
		 " --ceiling 5 -n %d", model, trace, need, SHORT);
	tap_ok(st == 0 && tool_jis(out, "(d[\"capacity\"], d[\"mismatches\"])", "(2, 0)"),
	       "and that budget decodes with two experts: %s", v);

	/* ---- a flipped byte in every expert of layer 0's tensor ---- */
	if (!tool_corrupt_copy(model, bad, bad_off, EXPERTS)) {
		tap_skip(3, "could not make a corrupted copy");
	} else {
		st = moe("run -d host --json --keep-cache %s --trace %s --fraction 0.25 "
			 "--ceiling 5 -n %d 2>/dev/null", bad, trace, SHORT);
		tap_is_int(st, 1, "a wrong byte in each expert of layer 0: exit 1");
		/* Every token checks its 2 experts of layer 0, hits too, warm-up included. */
		tap_ok(tool_jis(out, "d[\"mismatches\"] == 2 * (d[\"warmup_tokens\"] + "
				"d[\"tokens\"])", "True"),
		       "one mismatch for each time a token required one of them");
		st = moe("run -d host --keep-cache %s --trace %s --fraction 0.25 --ceiling 5 -n %d "
			 "2>&1", bad, trace, SHORT);
		p = strstr(out, "(first at file offset ");
		got = p ? strtoull(p + strlen("(first at file offset "), NULL, 10) : 0;
		for (i = 0; i < EXPERTS && got != bad_off[i]; i++)
			;
		tap_ok(st == 1 && i < EXPERTS, "exit 1, and the first offset named (%" PRIu64
		       ") is one of the flipped bytes", got);
	}

	/* ---- errors ---- */
	tap_is_int(moe("run -d host %s --trace %s --read-pieces 0 2>/dev/null", model, trace), 2,
		   "--read-pieces 0: exit 2");
	tap_is_int(moe("run -d host %s 2>/dev/null", model), 2, "no --trace: exit 2");
	tap_is_int(moe("run -d host %s --trace %s --no-such-option 2>/dev/null", model, trace), 2,
		   "an unknown option: exit 2");
	tap_is_int(moe("run -d host %s --trace %s --fraction 0 2>/dev/null", model, trace), 2,
		   "--fraction 0: exit 2");
	tap_is_int(moe("run -d host %s --trace %s --fraction 0.5 --budget 8M 2>/dev/null", model,
		       trace), 2, "--fraction with --budget: exit 2");
	tap_is_int(moe("run -d host %s --trace %s --policy oracle 2>/dev/null", model, trace), 2,
		   "--policy oracle: exit 2");
	tap_is_int(moe("run -d host --trace %s 2>/dev/null", trace), 2, "no model: exit 2");
	/* A warm-up of every token was dropped without a word: all of them measured, cold. */
	st = moe("run -d host --keep-cache %s --trace %s -n 4 --warmup 4 --ceiling 5 2>&1", model,
		 trace);
	tap_ok(st == 2 && tool_has_line(out, "p2pio-moe: ", "--warmup 4") &&
	       !tool_has_line(out, "decode", NULL),
	       "--warmup 4 of -n 4 tokens: a usage error, nothing decoded (exit %d): %s", st,
	       tool_line(out, "p2pio-moe: "));
	/* An infinite ceiling made an infinite bound ("inf tokens/s"), and ran. */
	tap_ok(moe("run -d host --keep-cache %s --trace %s -n 2 --ceiling inf 2>/dev/null", model,
		   trace) == 2 &&
		       moe("run -d host --keep-cache %s --trace %s -n 2 --ceiling 1e300 2>/dev/null",
			   model, trace) == 2,
	       "--ceiling inf, or 1e300 GB/s (inf bytes/s): usage errors (exit 2)");
	tap_is_int(moe("run -d host %s/nosuch.gguf --trace %s --ceiling 5 2>/dev/null", dir,
		       trace), 3, "a missing model file: exit 3");
	tap_is_int(moe("run -d host %s --trace %s/nosuch.trace --ceiling 5 2>/dev/null", model,
		       dir), 3, "a missing trace file: exit 3");
	snprintf(args, sizeof(args), "%s/l3.trace", dir);
	if (moe("synth -L 3 -E 8 -k 2 -n 4 -o %s", args)) {
		tap_skip(1, "could not make a 3-layer trace");
	} else {
		st = moe("run -d host --keep-cache %s --trace %s --ceiling 5 2>&1", model, args);
		tap_ok(st == 3 && strstr(out, "does not fit the model (4 layers, 8 experts)"),
		       "a trace of 3 layers on a model of 4: exit 3, says so");
	}

	/* ---- synth --chain: layers coupled; its rates include LRU with learned prefetch ---- */
	st = moe("synth -j -L 4 -E 16 -k 2 -n 8 --chain 0.5 -o %s/chain.trace", dir);
	tap_ok(st == 0 && tool_jis(out, "(d[\"chain\"], all(\"lru_learned\" in r for r in "
				   "d[\"rates\"]))", "(0.5, True)"),
	       "synth --chain 0.5 --json: exit 0, the chain and LRU+learned rates reported");
	tap_ok(moe("synth -n 8 --chain 1.5 2>/dev/null") == 2 &&
		       moe("synth -n 8 --chain -0.1 2>/dev/null") == 2 &&
		       moe("synth -n 8 --chain x 2>/dev/null") == 2 &&
		       moe("fit --chain 2 %s 2>/dev/null", trace) == 2,
	       "--chain outside 0..1 or not a number: usage errors (exit 2)");

	/* ---- replay: the oracle (Belady) is the fewest misses a demand cache can have ---- */
	st = moe("replay --json %s", trace);
	tap_is_int(st, 0, "replay --json: exit 0");
	tap_ok(tool_json_ok(out) == 1, "its output is JSON");
	jchecks(replay_checks, NCHECKS(replay_checks));
	st = moe("replay --json -b 2 -e 1M -w 500 %s", trace);
	tap_is_int(st, 0, "replay --json -b 2 -e 1M -w 500: exit 0");
	jchecks(replay_step_checks, NCHECKS(replay_step_checks));
	tap_ok(moe("replay -w -1 %s 2>/dev/null", trace) == 2,
	       "--miss-overhead below 0: a usage error (exit 2)");
	st = moe("replay --json -p lru -f none,router -a 0.8 --no-oracle %s", trace);
	tap_ok(st == 0 && tool_jis(out, "(d[\"router_accuracy\"], [(r[\"series\"], "
				   "r[\"prefetch_router\"]) for r in d[\"results\"][::3]], "
				   "all(r[\"misses\"] > s[\"misses\"] for r, s in "
				   "zip(d[\"results\"][:3], d[\"results\"][3:])))",
				   "(0.8, [('lru', False), ('lru+router', True)], True)"),
	       "replay -f none,router -a 0.8: the router series flagged, fewer misses at every "
	       "capacity: %s", tool_jval);
	tap_ok(moe("replay -f router -a 1.5 %s 2>/dev/null", trace) == 2 &&
		       moe("replay -f router+bogus %s 2>/dev/null", trace) == 2,
	       "--accuracy above 1, an unknown source: usage errors (exit 2)");
	test_replay_model_dense_first();
	test_run_layers_differ();
	test_run_wide_cell();
	test_fit_prompt_only();
	test_run_empty();

	free(out);
	return tap_exit();
}
