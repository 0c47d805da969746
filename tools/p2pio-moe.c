// SPDX-License-Identifier: MIT
/*
 * p2pio-moe - is this mixture-of-experts model sparse enough over time for this VRAM?
 * Replays routing traces through the expert cache's policies (replay), makes synthetic
 * traces (synth) and fits them to real ones (fit). Documentation/moe.md describes the
 * model and the output; man/p2pio-moe.1 the options.
 *
 * Subcommands are entries of moe_cmds(): replay here, synth and fit in moe_synth.c, run (the
 * real cache's decode) in moe_run*.c, all linked into this tool alone.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "moe.h"

static const struct moe_cmd moe_cmd_replay;

static const struct moe_cmd *moe_cmds(unsigned int i)
{
	const struct moe_cmd *const all[] = { &moe_cmd_replay, &moe_cmd_synth, &moe_cmd_fit,
					      &moe_cmd_run };

	return i < MOE_ARRAY_SIZE(all) ? all[i] : NULL;
}

static void moe_usage(FILE *f)
{
	const struct moe_cmd *c;
	unsigned int i;

	fprintf(f, "usage: p2pio-moe COMMAND [OPTIONS] ...\n\ncommands:\n");
	for (i = 0; (c = moe_cmds(i)); i++)
		fprintf(f, "  %-8s %s\n", c->name, c->summary);
	fprintf(f, "\n'p2pio-moe COMMAND --help' for a command's options.\n");
}

/* ---- replay ---------------------------------------------------------------------------- */

static void replay_usage(FILE *f)
{
	fprintf(f,
		"usage: p2pio-moe replay [OPTIONS] TRACE...\n"
		"Replay routing traces (native or JSON logs; several are pooled, each with its own\n"
		"cold cache) through every policy, with and without prefetch, beside the oracle.\n\n"
		"  -c, --capacity LIST     capacities: fractions (10%%) or expert counts, comma-separated\n"
		"                          (default 10%%,25%%,50%%)\n"
		"  -g, --global            one budget for all layers (default: per layer)\n"
		"  -p, --policies LIST     policies (default lru,lfu,lrfu); NAME:ARGS sets options,\n"
		"                          e.g. lfu:decay=0.8\n"
		"  -f, --prefetch LIST     prefetch sources, comma-separated: none, or lag, learned,\n"
		"                          next, router joined by '+' (e.g. learned+lag); default\n"
		"                          none,lag,learned,next\n"
		"  -a, --accuracy F        router's share of right guesses, 0-1 (default 1)\n"
		"      --no-oracle         leave the oracle (Belady) out\n"
		"      --with-prefill      replay prompt tokens too (default: generated tokens only)\n"
		"  -b, --bandwidth GB/s    storage bandwidth, for predicted tokens/s\n"
		"  -e, --expert-bytes SIZE bytes of one expert (all its tensors), e.g. 13M\n"
		"  -w, --miss-overhead US  a missed layer's wait beyond its bytes (a decode in step,\n"
		"                          e.g. p2pio-moe run's batches line), for tokens/s\n"
		"  -m, --model FILE.gguf   take --expert-bytes from a model's *_exps tensors\n"
		"  -j, --json              one JSON document instead of the table\n"
		"  -s, --svg FILE          also plot hit rate against capacity as SVG\n");
}

/*
 * Expert bytes of a model: its first layer with experts (lowest blk.N), all expert tensors
 * together, as the reader grouped them. Not "names starting blk.0": models whose first
 * layers are dense (DeepSeek's) have no experts there, and strtoul() of "blk.x." or
 * "blk.00." reads 0 too, so a non-layer tensor's slices were taken for layer 0's.
 */
static int expert_bytes_of(const char *path, uint64_t *out)
{
	struct p2pio_error err = { 0 };
	struct p2pio_gguf *g;
	uint64_t sum = 0;
	size_t i, n;
	int ret;

	ret = p2pio_gguf_open(path, &g, &err);
	if (ret) {
		cli_err_p2pio(path, ret, &err);
		return ret;
	}
	n = p2pio_gguf_layer_count(g);
	for (i = 0; i < n && !sum; i++) {
		const struct p2pio_gguf_layer *l = p2pio_gguf_layer(g, i);

		if (l->n_experts)
			sum = l->expert_bytes;
	}
	p2pio_gguf_close(g);
	if (!sum) {
		cli_err("%s: no expert tensors ('*_exps') in any blk.N layer", path);
		return -EINVAL;
	}
	*out = sum;
	return 0;
}

static int add_series(struct moe_sweep *sw, const char *policy, const char *args,
		      unsigned int prefetch)
{
	struct moe_series *s = realloc(sw->series, (sw->nr_series + 1) * sizeof(*s));

	if (!s)
		return -ENOMEM;
	sw->series = s;
	s = &s[sw->nr_series];
	s->policy = policy;
	s->args = args;
	s->prefetch = prefetch;
	s->pts = calloc(sw->nr_caps, sizeof(*s->pts));
	if (!s->pts)
		return -ENOMEM;
	sw->nr_series++;
	return 0;
}

static int parse_prefetch(const char *s, unsigned int *out, unsigned int *n)
{
	char *dup = strdup(s), *save = NULL, *tok;
	int ret = 0;

	if (!dup)
		return -ENOMEM;
	*n = 0;
	for (tok = strtok_r(dup, ",", &save); tok && !ret; tok = strtok_r(NULL, ",", &save)) {
		char *save2 = NULL, *src;
		unsigned int bits = 0;

		if (*n == 8) {
			ret = -EINVAL;
			break;
		}
		if (strcmp(tok, "none")) {
			/* SOURCE[+SOURCE...] */
			for (src = strtok_r(tok, "+", &save2); src && !ret;
			     src = strtok_r(NULL, "+", &save2)) {
				if (!strcmp(src, "lag"))
					bits |= P2PIO_EXPERT_PREFETCH_LAG;
				else if (!strcmp(src, "next"))
					bits |= P2PIO_EXPERT_PREFETCH_NEXT;
				else if (!strcmp(src, "learned"))
					bits |= P2PIO_EXPERT_PREFETCH_LEARNED;
				else if (!strcmp(src, "router"))
					bits |= P2PIO_EXPERT_PREFETCH_ROUTER;
				else
					ret = -EINVAL;
			}
			if (!bits)
				ret = -EINVAL;
		}
		out[(*n)++] = bits;
	}
	free(dup);
	return ret || !*n ? -EINVAL : 0;
}

static int replay_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "capacity", required_argument, NULL, 'c' },
		{ "global", no_argument, NULL, 'g' },
		{ "policies", required_argument, NULL, 'p' },
		{ "prefetch", required_argument, NULL, 'f' },
		{ "no-oracle", no_argument, NULL, 'O' },
		{ "with-prefill", no_argument, NULL, 'P' },
		{ "bandwidth", required_argument, NULL, 'b' },
		{ "expert-bytes", required_argument, NULL, 'e' },
		{ "miss-overhead", required_argument, NULL, 'w' },
		{ "accuracy", required_argument, NULL, 'a' },
		{ "model", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "svg", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *caps_s = "10%,25%,50%", *pol_s = "lru,lfu,lrfu", *pf_s = "none,lag,learned,next";
	const char *svg = NULL, *model = NULL;
	struct moe_sweep sw = { 0 };
	unsigned int pf[8], nr_pf, i, k;
	bool json = false, oracle = true;
	char *pols = NULL, *save = NULL, *tok;
	double v;
	int opt, ret = CLI_EXIT_OK, r;

	sw.router_accuracy = 1;
	while ((opt = getopt_long(argc, argv, "c:gp:f:b:e:w:a:m:js:h", lo, NULL)) != -1) {
		switch (opt) {
		case 'c': caps_s = optarg; break;
		case 'g': sw.global = true; break;
		case 'p': pol_s = optarg; break;
		case 'f': pf_s = optarg; break;
		case 'O': oracle = false; break;
		case 'P': sw.with_prefill = true; break;
		case 'b':
			if (cli_parse_double(optarg, &v) || !(v * 1e9 > 0) || !isfinite(v * 1e9))
				return cli_usage_err("--bandwidth: '%s' is not a positive number of GB/s", optarg);
			sw.bandwidth = v * 1e9;
			break;
		case 'e':
			if (cli_parse_size(optarg, &sw.expert_bytes) || !sw.expert_bytes)
				return cli_usage_err("--expert-bytes: '%s' is not a size", optarg);
			break;
		case 'w':
			if (cli_parse_double(optarg, &v) || !(v * 1e-6 >= 0) || !isfinite(v * 1e-6))
				return cli_usage_err("--miss-overhead: '%s' is not a number of "
						     "microseconds", optarg);
			sw.miss_overhead = v * 1e-6;
			break;
		case 'a':
			if (cli_parse_double(optarg, &sw.router_accuracy) ||
			    !(sw.router_accuracy >= 0) || sw.router_accuracy > 1)
				return cli_usage_err("--accuracy: '%s' is not in 0 .. 1", optarg);
			break;
		case 'm': model = optarg; break;
		case 'j': json = true; break;
		case 's': svg = optarg; break;
		case 'h': replay_usage(stdout); return CLI_EXIT_OK;
		default: return cli_usage_err("replay: bad option");
		}
	}
	if (optind >= argc)
		return cli_usage_err("replay: no trace given");
	r = moe_parse_caps(caps_s, &sw.caps, &sw.nr_caps);
	if (r) {
		free(sw.caps);
		return cli_usage_err("--capacity: '%s' is not a list of fractions (10%%) and counts", caps_s);
	}
	if (parse_prefetch(pf_s, pf, &nr_pf)) {
		free(sw.caps);
		return cli_usage_err("--prefetch: '%s' is not a list of none or lag, learned, next, "
				     "router joined by '+'", pf_s);
	}
	if (model && expert_bytes_of(model, &sw.expert_bytes)) {
		ret = CLI_EXIT_ERROR;
		goto out;
	}
	pols = strdup(pol_s);
	if (!pols) {
		ret = CLI_EXIT_ERROR;
		goto out;
	}
	for (tok = strtok_r(pols, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *args = strchr(tok, ':');

		if (args)
			*args++ = '\0';
		if (!p2pio_expert_policy_find(tok) || !strcmp(tok, "oracle")) {
			ret = cli_usage_err("--policies: unknown policy '%s' (the oracle is always shown)", tok);
			goto out;
		}
		for (k = 0; k < nr_pf; k++)
			if (add_series(&sw, tok, args, pf[k])) {
				ret = CLI_EXIT_ERROR;
				goto out;
			}
	}
	if (oracle && add_series(&sw, "oracle", NULL, 0)) {
		ret = CLI_EXIT_ERROR;
		goto out;
	}
	if (!sw.nr_series) {
		ret = cli_usage_err("replay: nothing to replay");
		goto out;
	}

	sw.nr_traces = (unsigned int)(argc - optind);
	sw.traces = calloc(sw.nr_traces, sizeof(*sw.traces));
	sw.names = calloc(sw.nr_traces, sizeof(*sw.names));
	if (!sw.traces || !sw.names) {
		ret = CLI_EXIT_ERROR;
		goto out;
	}
	for (i = 0; i < sw.nr_traces; i++) {
		struct p2pio_error err = { 0 };

		sw.names[i] = argv[optind + i];
		r = p2pio_expert_trace_load(sw.names[i], &sw.traces[i], &err);
		if (r) {
			cli_err_p2pio(sw.names[i], r, &err);
			ret = CLI_EXIT_ERROR;
			goto out;
		}
		/* A hit rate of no accesses is no result: say so rather than print 0 %. */
		if (!p2pio_expert_trace_tokens(sw.traces[i])) {
			cli_err("%s: the trace has no tokens to replay", sw.names[i]);
			ret = CLI_EXIT_ERROR;
			goto out;
		}
	}
	if (moe_sweep_run(&sw)) {
		ret = CLI_EXIT_ERROR;
		goto out;
	}
	if (sw.nr_series && sw.nr_caps && !sw.series[0].pts[0].st.tokens) {
		cli_err("no generated tokens to replay in %s (--with-prefill replays the prompt too)",
			sw.nr_traces > 1 ? "any trace" : sw.names[0]);
		ret = CLI_EXIT_ERROR;
		goto out;
	}
	if (json)
		moe_report_json(stdout, &sw);
	else
		moe_report_table(stdout, &sw);
	if (svg && moe_report_svg(svg, &sw))
		ret = CLI_EXIT_ERROR;
	if (fflush(stdout)) {
		cli_err("writing the report: %s", strerror(errno));
		ret = CLI_EXIT_ERROR;
	}
out:
	for (i = 0; sw.traces && i < sw.nr_traces; i++)
		p2pio_expert_trace_free(sw.traces[i]);
	for (i = 0; i < sw.nr_series; i++)
		free(sw.series[i].pts);
	free(sw.series);
	free(sw.traces);
	free(sw.names);
	free(sw.caps);
	free(pols);
	return ret;
}

static const struct moe_cmd moe_cmd_replay = {
	.name = "replay",
	.summary = "hit rate and faults per token against capacity, every policy, with the oracle",
	.main = replay_main,
};

int main(int argc, char **argv)
{
	const struct moe_cmd *c;
	unsigned int i;

	cli_init(argv[0]);
	if (argc < 2)
		return cli_usage_err("no command given");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		moe_usage(stdout);
		return CLI_EXIT_OK;
	}
	for (i = 0; (c = moe_cmds(i)); i++)
		if (!strcmp(c->name, argv[1]))
			return c->main(argc - 1, argv + 1);
	return cli_usage_err("unknown command '%s'", argv[1]);
}
