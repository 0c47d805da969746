// SPDX-License-Identifier: MIT
/*
 * test-tools-gpu.c - the tools' ceiling into a GPU: `p2pio-load --stream` sweeps the
 * storage (into host memory) and the link (pinned copies), bounds the stream by the lower,
 * and reads the storage sweep's best shape again after its passes. That second reading
 * must be of a storage shape: it once re-ran a shape of the link sweep (which had refilled
 * the sweep's array), so a 54 GB/s link rate stood as zram's "storage" ceiling and every
 * p2pio-moe decode on the H200 looked like a third of its bound. Without a GPU there is
 * no link sweep, so only this test can see that. Then p2pio-moe run into the GPU (CUDA
 * virtual memory, the checking kernels), which the host tests run into host memory only,
 * and its miss cost with the floor that copies each read into the GPU (+copy).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_fixture.h"
#include "tap.h"
#include "tool_run.h"

/* The shape and rate a ceiling_from names, as python3 finds them (re, over d). */
#define AGAIN_RE "r\"again after \\((\\w+) \\d+K qd\\d+ x\\d+\\): ([0-9.]+) GB/s\""
#define LINK_RE "r\", link ([0-9.]+) GB/s\""
#define STORAGE_RE "r\"^storage ([0-9.]+) GB/s\""

/*
 * p2pio-moe run of the moe-tiny model in @dir with @opts and --json: whether it exits 0
 * and python3's @expr over its JSON prints @want (tool_jval holds what it printed).
 */
static bool moe_json_is(const char *dir, const char *opts, const char *expr, const char *want)
{
	char *out = NULL;
	bool ok;

	ok = tool_run(&out, "p2pio-moe", "run %s/moe.gguf --trace %s/moe.trace --fraction 0.5 "
		      "%s --json", dir, dir, opts) == 0 && tool_jis(out, expr, want);
	free(out);
	return ok;
}

int main(int argc, char **argv)
{
	const char *dir, *v;
	char *out = NULL;
	int st;

	(void)argc;
	gpu_fixture_cuda();
	tool_init(argv[0]);
	tool_need_python();
	tap_plan(23);
	dir = tool_scratch("tools-gpu");

	st = tool_run(NULL, "p2pio-mkmodel", "-q -p llama-8b-q4k --layers 2 -s 5 %s/m.gguf", dir);
	if (st)
		tap_bail("p2pio-mkmodel failed");
	st = tool_run(&out, "p2pio-load", "--stream --passes 2 --json -q %s/m.gguf", dir);
	tap_is_int(st, 0, "p2pio-load --stream into the GPU exits 0");
	tap_ok(tool_jis(out, "(d[\"target\"], d[\"mismatches\"])", "('gpu', 0)"),
	       "it streamed into the GPU, every byte verified: %s", tool_jval);
	v = tool_jeval(out, "d[\"ceiling_from\"]");
	tap_diag("ceiling_from: %s", v);
	tap_ok(tool_jis(out, "__import__(\"re\").search(" LINK_RE ", d[\"ceiling_from\"]) "
			"is not None", "True"),
	       "the ceiling names the link sweep's best");
	tap_ok(tool_jis(out, "__import__(\"re\").search(" AGAIN_RE ", d[\"ceiling_from\"])"
			".group(1) in (\"direct\", \"buffered\")", "True"),
	       "the shape read again after the passes is a storage shape (direct or buffered)");
	/*
	 * Its rate is the storage's, give or take the drift between two readings (a link
	 * rate there was the defect: 54 GB/s against zram's 29). Not "below the link": a
	 * file in the page cache reads faster than the link.
	 */
	tap_ok(tool_jis(out, "float(__import__(\"re\").search(" AGAIN_RE ", d[\"ceiling_from\"])"
			".group(2)) < 1.5 * float(__import__(\"re\").search(" STORAGE_RE
			", d[\"ceiling_from\"]).group(1))", "True"),
	       "and it read within 1.5 x of the sweep's storage rate: a storage rate, not the link's");
	/*
	 * ceiling_from prints the link to 0.01 GB/s: where the storage (a file in the page
	 * cache) reads faster than the link, the ceiling is the link's unrounded rate, up to
	 * 0.005 above what the text says.
	 */
	tap_ok(tool_jis(out, "d[\"ceiling_gbps\"] <= float(__import__(\"re\").search(" LINK_RE
			", d[\"ceiling_from\"]).group(1)) + 0.005 + 1e-9", "True"),
	       "the ceiling is no higher than the link");

	/*
	 * p2pio-moe run into the GPU: CUDA virtual memory for the experts, the GPU kernels
	 * that check every byte of them, and the same ceiling read again after the decode.
	 */
	if (tool_run(NULL, "p2pio-mkmodel", "-q -p moe-tiny -s 3 %s/moe.gguf", dir) ||
	    tool_run(NULL, "p2pio-moe", "synth -L 4 -E 8 -k 2 -n 24 -S 1 -o %s/moe.trace", dir))
		tap_bail("p2pio-mkmodel -p moe-tiny or p2pio-moe synth failed");
	st = tool_run(&out, "p2pio-moe", "run %s/moe.gguf --trace %s/moe.trace --fraction 0.5 "
		      "--json", dir, dir);
	tap_is_int(st, 0, "p2pio-moe run into the GPU exits 0");
	tap_ok(tool_jis(out, "(d[\"mismatches\"], d[\"verified_bytes\"] > 0, d[\"misses\"] > 0, "
			"d[\"tokens_per_s\"] > 0)", "(0, True, True, True)"),
	       "its GPU kernels checked the experts' bytes, none wrong, with misses to load: %s",
	       tool_jval);
	tap_ok(tool_jis(out, "__import__(\"re\").search(" AGAIN_RE ", d[\"ceiling_from\"])"
			".group(1) in (\"direct\", \"buffered\") and "
			"__import__(\"re\").search(" LINK_RE ", d[\"ceiling_from\"]) is not None",
			"True"),
	       "its ceiling names the link and reads a storage shape again after the decode");

	/*
	 * In step (the default), each layer is required only once the stream is done with
	 * the layers before it, so every load a layer waited for has landed by the next
	 * require: no hit can find its expert still loading. Run ahead, the host queues tokens
	 * ahead of the stream (and hits on loads in flight are counted late).
	 */
	tap_ok(tool_jis(out, "(d[\"run_ahead\"], d[\"late\"])", "(False, 0)"),
	       "in step by default: no hit found its expert still loading: %s", tool_jval);
	/* In step every layer with a miss is one miss batch the stream waits for. */
	tap_ok(tool_jis(out, "(d[\"missed_layers\"] > 0, "
			"d[\"missed_layers\"] == d[\"batches\"])", "(True, True)"),
	       "in step, each missed layer one miss batch: %s", tool_jval);
	free(out);
	tap_ok(moe_json_is(dir, "--run-ahead", "(d[\"run_ahead\"], d[\"mismatches\"], "
			   "d[\"verified_bytes\"] > 0)", "(True, 0, True)"),
	       "--run-ahead: exit 0, every expert checked, none wrong: %s", tool_jval);
	/* In step, the next layer's experts hinted from the trace load while a layer waits. */
	tap_ok(moe_json_is(dir, "--prefetch-next", "(d[\"prefetch_next\"], "
			   "d[\"prefetch_used\"] > 0, d[\"mismatches\"], d[\"verified_bytes\"] > 0)",
			   "(True, True, 0, True)"),
	       "--prefetch-next into the GPU: hints used, every expert checked, none wrong: %s",
	       tool_jval);
	/* The cache's own learned prefetch, held for its layer, on the GPU. */
	tap_ok(moe_json_is(dir, "--prefetch-learned", "(d[\"prefetch_learned\"], "
			   "d[\"prefetches\"] > 0, d[\"mismatches\"], d[\"verified_bytes\"] > 0)",
			   "(True, True, 0, True)"),
	       "--prefetch-learned into the GPU: prefetches, every expert checked, none wrong: %s",
	       tool_jval);

	/*
	 * --miss-cost into the GPU: each row ends with the floor whose reads are copied into
	 * the GPU (bench_burst_floor() checks every copied byte against the read) and the
	 * batch's time over it; a shape line names that floor's shape.
	 */
	out = NULL;
	st = tool_run(&out, "p2pio-moe", "run %s/moe.gguf --trace %s/moe.trace --fraction 0.5 "
		      "--miss-cost", dir, dir);
	tap_ok(st == 0 && tool_has_line(out, "  k ", " +copy over +copy"),
	       "--miss-cost into the GPU: exit 0, the table ends with +copy, over +copy");
	for (int k = 1; k <= 8; k *= 2) {
		char row[16], line[512], shape[32], *tok[32], *save = NULL;
		const char *l;
		int n = 0;
		double rel, cp, over;

		snprintf(row, sizeof(row), "  %-3d ", k);
		l = tool_line(out, row);
		snprintf(line, sizeof(line), "%.*s", (int)strcspn(l, "\n"), l);
		for (char *t = strtok_r(line, " ", &save); t && n < 32; t = strtok_r(NULL, " ", &save))
			tok[n++] = t;
		/* k, then 17 columns: released the 8th, +copy and over +copy the last two. */
		rel = n == 18 ? atof(tok[8]) : 0;
		cp = n == 18 ? atof(tok[16]) : 0;
		over = n == 18 ? atof(tok[17]) : 0;
		tap_ok(n == 18 && cp > 0 && fabs(over - (rel - cp)) < 0.15,
		       "k=%d: a floor with copies of %.1f us, over it = released - it (%.1f - %.1f "
		       "= %+.1f)", k, cp, rel, cp, over);
		snprintf(shape, sizeof(shape), "  +copy shape k=%d: ", k);
		l = tool_line(out, shape);
		tap_ok(*l && strstr(l, " thread") && strstr(l, "copied on its thread's stream"),
		       "k=%d: a line names the +copy floor's shape:%.*s", k,
		       (int)strcspn(l + (*l != 0), "\n"), l + (*l != 0));
	}
	free(out);
	return tap_exit();
}
