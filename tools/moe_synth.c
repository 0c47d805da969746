// SPDX-License-Identifier: MIT
/*
 * moe_synth.c - p2pio-moe synth (a synthetic trace from skew and locality parameters) and
 * fit (the parameters whose LRU, oracle and LRU-with-learned-prefetch hit rates, at 10, 25
 * and 50 % of the experts per layer, match those of real traces; for a model shape no
 * trace exists for). The third series is there for the cross-layer coupling (--chain): a
 * trace whose layers are less (or more) predictable from each other than real routing
 * would under- (or over-) state what a next-layer predictor buys.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "moe.h"

static const double fit_fracs[] = { 0.10, 0.25, 0.50 };
#define NR_FRACS 3

struct synth_cli {
	struct p2pio_expert_synth_params p;
	const char *out;
	bool json;
};

static int parse_double(const char *s, double lo, double hi, double *out)
{
	return cli_parse_double(s, out) || !(*out >= lo && *out <= hi) ? -EINVAL : 0;
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	uint64_t v;

	if (cli_parse_u64(s, &v) || v < lo || v > hi)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* Shape and generator options shared by synth and fit; 1 when @opt was one of them,
 * 0 when not, -1 on a bad value (message printed). */
static int synth_opt(int opt, const char *arg, struct p2pio_expert_synth_params *p)
{
	uint64_t v;

	switch (opt) {
	case 'L': if (parse_u32(arg, 1, P2PIO_EXPERT_TRACE_MAX_LAYERS, &p->nr_layers)) break; return 1;
	case 'E': if (parse_u32(arg, 1, P2PIO_EXPERT_TRACE_MAX_EXPERTS, &p->nr_experts)) break; return 1;
	case 'k': if (parse_u32(arg, 1, P2PIO_EXPERT_TRACE_MAX_TOP_K, &p->top_k)) break; return 1;
	case 'n': if (cli_parse_u64(arg, &v) || !v || v > (1u << 24)) break; p->tokens = v; return 1;
	case 'z': if (parse_double(arg, 0, 8, &p->skew)) break; return 1;
	case 'l': if (parse_double(arg, 0, 1, &p->locality)) break; return 1;
	case 'w': if (parse_u32(arg, 1, 1024, &p->window)) break; return 1;
	case 'S': if (cli_parse_u64(arg, &p->seed)) break; return 1;
	case 'V': if (parse_double(arg, 0, 1, &p->layer_spread)) break; return 1;
	case 'D': if (parse_double(arg, 0, 1, &p->drift)) break; return 1;
	case 'C': if (parse_double(arg, 0, 64, &p->cutoff)) break; return 1;
	case 'R': if (parse_double(arg, 0, 1, &p->repeat)) break; return 1;
	case 'Q': if (parse_double(arg, 0, 1024, &p->offset)) break; return 1;
	case 'x': if (parse_double(arg, 0, 1, &p->chain)) break; return 1;
	default: return 0;
	}
	cli_usage_err("bad value '%s' for -%c (see --help)", arg, opt);
	return -1;
}

#define SYNTH_LONGOPTS                                                                         \
	{ "layers", required_argument, NULL, 'L' }, { "experts", required_argument, NULL, 'E' }, \
	{ "top-k", required_argument, NULL, 'k' }, { "tokens", required_argument, NULL, 'n' },   \
	{ "skew", required_argument, NULL, 'z' }, { "locality", required_argument, NULL, 'l' },  \
	{ "window", required_argument, NULL, 'w' }, { "seed", required_argument, NULL, 'S' },    \
	{ "layer-spread", required_argument, NULL, 'V' }, { "drift", required_argument, NULL, 'D' }, \
	{ "cutoff", required_argument, NULL, 'C' }, { "repeat", required_argument, NULL, 'R' }, \
	{ "offset", required_argument, NULL, 'Q' }, { "chain", required_argument, NULL, 'x' }, \
	{ "output", required_argument, NULL, 'o' }, { "json", no_argument, NULL, 'j' },         \
	{ "help", no_argument, NULL, 'h' }
#define SYNTH_SHORTOPTS "L:E:k:n:z:l:w:S:V:D:C:R:Q:x:o:jh"

static const char synth_opts_help[] =
	"  -L, --layers N      MoE layers (default 36)\n"
	"  -E, --experts N     experts per layer (default 128)\n"
	"  -k, --top-k N       experts per token and layer (default 4)\n"
	"  -n, --tokens N      tokens (synth default 512; fit default: the real traces' mean)\n"
	"  -z, --skew S        Zipf exponent of expert popularity, 0-8 (default 0.8)\n"
	"  -l, --locality P    probability a slot reuses a recent expert, 0-1 (default 0.5)\n"
	"  -w, --window W      tokens of history for --locality (default 4)\n"
	"  -V, --layer-spread V each layer's skew is skew x (1 + V u), u uniform in -1..1;\n"
	"                      0-1 (synth default 0)\n"
	"  -D, --drift P       per token and layer, the probability two experts swap\n"
	"                      popularity ranks, 0-1 (synth default 0)\n"
	"  -C, --cutoff C      popularity tail: rank r's weight times exp(-C r / experts),\n"
	"                      0-64 (synth default 0)\n"
	"  -R, --repeat P      probability a slot reuses one of the token before's experts\n"
	"                      at the layer, 0-1 (default 0)\n"
	"  -Q, --offset Q      Zipf-Mandelbrot offset: rank r's weight 1 / (r + 1 + Q)^skew,\n"
	"                      a flat head of about Q experts, 0-1024 (default 0)\n"
	"  -x, --chain P       probability a slot at layer l >= 1 takes the expert a fixed\n"
	"                      map pairs with one of the token's experts at layer l - 1,\n"
	"                      0-1 (default 0: layers independent)\n"
	"  -S, --seed N        random seed (default 1)\n"
	"  -o, --output FILE   write the trace (native format)\n"
	"  -j, --json          JSON output\n";

static void synth_defaults(struct p2pio_expert_synth_params *p)
{
	memset(p, 0, sizeof(*p));
	p->nr_layers = 36;
	p->nr_experts = 128;
	p->top_k = 4;
	p->skew = 0.8;
	p->locality = 0.5;
	p->window = 4;
	p->seed = 1;
}

static int save_trace(const struct p2pio_expert_trace *t, const char *path)
{
	struct p2pio_error err = { 0 };
	int r = p2pio_expert_trace_save(t, path, &err);

	if (r)
		cli_err_p2pio(path, r, &err);
	return r;
}

/* The JSON object's opening that synth and fit share: "{" and every parameter of @p, up to
 * the seed; each caller goes on with its own results. */
static void print_params_json(const struct p2pio_expert_synth_params *p)
{
	printf("{\"layers\":%u,\"experts\":%u,\"top_k\":%u,\"tokens\":%llu,\"skew\":", p->nr_layers,
	       p->nr_experts, p->top_k, (unsigned long long)p->tokens);
	cli_json_double(stdout, p->skew);
	printf(",\"locality\":");
	cli_json_double(stdout, p->locality);
	printf(",\"window\":%u,\"cutoff\":", p->window);
	cli_json_double(stdout, p->cutoff);
	printf(",\"layer_spread\":");
	cli_json_double(stdout, p->layer_spread);
	printf(",\"drift\":");
	cli_json_double(stdout, p->drift);
	printf(",\"repeat\":");
	cli_json_double(stdout, p->repeat);
	printf(",\"offset\":");
	cli_json_double(stdout, p->offset);
	printf(",\"chain\":");
	cli_json_double(stdout, p->chain);
	printf(",\"seed\":%llu", (unsigned long long)p->seed);
}

/* The fit's series: LRU, the oracle, and LRU with the learned prefetch (replay -p lru
 * -f learned), the one that sees how predictable a layer is from the layers before it. */
enum { FIT_LRU, FIT_ORACLE, FIT_LEARNED, NR_SERIES };

/* Series @from .. @to - 1's hit rates of @t at the fit's capacities (per layer):
 * @rates[series][fraction]. */
static int fit_rates(const struct p2pio_expert_trace *t, double rates[NR_SERIES][NR_FRACS],
		     unsigned int from, unsigned int to, uint64_t *tokens)
{
	unsigned int i, k;
	int r;

	for (i = 0; i < NR_FRACS; i++) {
		for (k = from; k < to; k++) {
			struct moe_cap c = { .frac = fit_fracs[i] };
			struct p2pio_expert_replay_opts o = { 0 };
			struct p2pio_expert_stats st = { .size = sizeof(st) };
			struct p2pio_error err = { 0 };

			o.policy = k == FIT_ORACLE ? "oracle" : "lru";
			if (k == FIT_LEARNED)
				o.prefetch = P2PIO_EXPERT_PREFETCH_LEARNED;
			o.per_layer = true;
			o.capacity = moe_cap_experts(&c, t, false);
			r = p2pio_expert_replay(t, &o, &st, NULL, &err);
			if (r) {
				cli_err_p2pio("replay", r, &err);
				return r;
			}
			rates[k][i] = moe_hit_rate(&st);
			if (tokens)
				*tokens = st.tokens;
		}
	}
	return 0;
}

static int synth_main(int argc, char **argv)
{
	static const struct option lo[] = { SYNTH_LONGOPTS, { 0 } };
	struct p2pio_expert_synth_params p;
	struct p2pio_error err = { 0 };
	struct p2pio_expert_trace *t;
	double rt[NR_SERIES][NR_FRACS];
	const char *out = NULL;
	bool json = false;
	unsigned int i;
	int o, r;

	synth_defaults(&p);
	p.tokens = 512;
	while ((o = getopt_long(argc, argv, SYNTH_SHORTOPTS, lo, NULL)) != -1) {
		r = synth_opt(o, optarg, &p);
		if (r < 0)
			return CLI_EXIT_USAGE;
		if (r)
			continue;
		switch (o) {
		case 'o': out = optarg; break;
		case 'j': json = true; break;
		case 'h':
			printf("usage: p2pio-moe synth [OPTIONS] -o FILE\n"
			       "Make a synthetic routing trace and report its LRU, oracle and\n"
			       "LRU with learned prefetch hit rates.\n\n%s",
			       synth_opts_help);
			return CLI_EXIT_OK;
		default: return cli_usage_err("synth: bad option");
		}
	}
	if (optind != argc)
		return cli_usage_err("synth: unexpected argument '%s'", argv[optind]);
	if (p.top_k > p.nr_experts)
		return cli_usage_err("synth: top-k %u is more than the %u experts", p.top_k, p.nr_experts);
	r = p2pio_expert_synth(&p, &t, &err);
	if (r) {
		cli_err_p2pio("synth", r, &err);
		return CLI_EXIT_ERROR;
	}
	r = fit_rates(t, rt, 0, NR_SERIES, NULL);
	if (!r && out)
		r = save_trace(t, out);
	p2pio_expert_trace_free(t);
	if (r)
		return CLI_EXIT_ERROR;
	if (json) {
		print_params_json(&p);
		printf(",\"rates\":[");
		for (i = 0; i < NR_FRACS; i++) {
			printf("%s{\"capacity_fraction\":%.2f,\"lru\":", i ? "," : "", fit_fracs[i]);
			cli_json_double(stdout, rt[FIT_LRU][i]);
			printf(",\"oracle\":");
			cli_json_double(stdout, rt[FIT_ORACLE][i]);
			printf(",\"lru_learned\":");
			cli_json_double(stdout, rt[FIT_LEARNED][i]);
			printf("}");
		}
		printf("]}\n");
	} else {
		printf("synthetic trace: %u layers, %u experts, top-%u, %llu tokens; skew %.3f, locality %.3f, window %u, cutoff %.3f, layer spread %.3f, drift %.3f, repeat %.3f, offset %.3f, seed %llu, chain %.3f\n",
		       p.nr_layers, p.nr_experts, p.top_k, (unsigned long long)p.tokens, p.skew, p.locality,
		       p.window, p.cutoff, p.layer_spread, p.drift, p.repeat, p.offset,
		       (unsigned long long)p.seed, p.chain);
		printf("capacity  LRU     oracle  LRU+learned\n");
		for (i = 0; i < NR_FRACS; i++)
			printf("%3.0f%%      %5.1f%%  %5.1f%%  %5.1f%%\n", fit_fracs[i] * 100,
			       rt[FIT_LRU][i] * 100, rt[FIT_ORACLE][i] * 100,
			       rt[FIT_LEARNED][i] * 100);
		if (out)
			printf("written to %s\n", out);
	}
	return CLI_EXIT_OK;
}

/* ---- fit --------------------------------------------------------------------------------- */

static const char *const fit_series_name[NR_SERIES] = { "LRU", "oracle", "LRU+learned" };

struct fit_eval {
	double rt[NR_SERIES][NR_FRACS];
	double err;	/* the largest distance to the target, in hit-rate points (0-100) */
};

/* @e for @p; a point whose LRU and oracle are already @bound off or more cannot win and
 * skips the learned series (its replays cost 4 times the others'). */
static int fit_try(struct p2pio_expert_synth_params *p, double tg[NR_SERIES][NR_FRACS],
		   double bound, struct fit_eval *e)
{
	struct p2pio_error err = { 0 };
	struct p2pio_expert_trace *t;
	unsigned int i, k;
	int r;

	r = p2pio_expert_synth(p, &t, &err);
	if (r) {
		/* The fit stops at the first failure: say why, or it fails in silence. */
		cli_err_p2pio("fit", r, &err);
		return r;
	}
	e->err = 0;
	for (k = 0; k < NR_SERIES; k++) {
		if (k == FIT_LEARNED && e->err >= bound)
			break;
		r = fit_rates(t, e->rt, k, k + 1, NULL);
		if (r)
			break;
		for (i = 0; i < NR_FRACS; i++)
			e->err = fmax(e->err, 100 * fabs(e->rt[k][i] - tg[k][i]));
	}
	p2pio_expert_trace_free(t);
	return r;
}

/* The coupling the grid assumes (about what fits the real traces: their learned prefetch
 * gains 6-19 points over LRU), and the chains tried at the grid's best (or at the
 * parameters given, with --refine) before the coordinate search: the gain grows steeply
 * only above chain 0.5, so a search starting without coupling stays there, and a grid
 * point with none would be judged by a learned series 15 points off. */
#define FIT_GRID_CHAIN 0.8
#define FIT_CHAIN_STEPS 10

static int fit_main(int argc, char **argv)
{
	static const struct option lo[] = {
		SYNTH_LONGOPTS, { "refine", no_argument, NULL, 'r' }, { 0 }
	};
	static const uint32_t windows[] = { 2, 4, 8, 16, 32 };
	double tg[NR_SERIES][NR_FRACS] = { { 0 } };
	struct p2pio_expert_synth_params p, best;
	struct fit_eval e, be = { .err = INFINITY };
	uint64_t tokens_sum = 0;
	const char *out = NULL;
	bool json = false, tokens_set = false, refine = false;
	double *per = NULL;	/* [trace][series][fraction] */
	unsigned int i, nr, w, iter, k, f;
	int o, r;

	synth_defaults(&p);
	while ((o = getopt_long(argc, argv, SYNTH_SHORTOPTS "r", lo, NULL)) != -1) {
		r = synth_opt(o, optarg, &p);
		if (r < 0)
			return CLI_EXIT_USAGE;
		if (r) {
			tokens_set |= o == 'n';
			continue;
		}
		switch (o) {
		case 'o': out = optarg; break;
		case 'j': json = true; break;
		case 'r': refine = true; break;
		case 'h':
			printf("usage: p2pio-moe fit [OPTIONS] TRACE...\n"
			       "Find the synth parameters (skew, locality, window, cutoff, layer\n"
			       "spread, drift, repeat, offset, chain) for the shape given whose LRU,\n"
			       "oracle and LRU with learned prefetch hit rates at 10, 25 and 50%%\n"
			       "of the experts per layer are closest to the real traces' (their\n"
			       "mean), and report the fit.\n\n%s"
			       "  -r, --refine        skip the grid: search from the parameters given\n"
			       "                      (the chain is still scanned, 0 to 1)\n",
			       synth_opts_help);
			return CLI_EXIT_OK;
		default: return cli_usage_err("fit: bad option");
		}
	}
	if (optind >= argc)
		return cli_usage_err("fit: no trace given");
	nr = (unsigned int)(argc - optind);
	per = calloc((size_t)nr * NR_SERIES * NR_FRACS, sizeof(*per));
	if (!per)
		goto fail;
	for (i = 0; i < nr; i++) {
		struct p2pio_error err = { 0 };
		struct p2pio_expert_trace *t;
		double rt[NR_SERIES][NR_FRACS];
		uint64_t tok = 0;

		r = p2pio_expert_trace_load(argv[optind + i], &t, &err);
		if (r) {
			cli_err_p2pio(argv[optind + i], r, &err);
			goto fail;
		}
		r = fit_rates(t, rt, 0, NR_SERIES, &tok);
		p2pio_expert_trace_free(t);
		if (r)
			goto fail;
		/*
		 * The replays take generated tokens only: a trace without any has hit rates of
		 * 0, which went into the mean aimed at (or were the whole target, "fit" within
		 * 3 points).
		 */
		if (!tok) {
			cli_err("%s: no generated tokens to fit (the replay leaves prompt tokens "
				"out)", argv[optind + i]);
			goto fail;
		}
		for (k = 0; k < NR_SERIES; k++) {
			for (f = 0; f < NR_FRACS; f++) {
				tg[k][f] += rt[k][f] / nr;
				per[(i * NR_SERIES + k) * NR_FRACS + f] = rt[k][f];
			}
		}
		tokens_sum += tok;
	}
	if (!tokens_set)
		p.tokens = tokens_sum / nr ? tokens_sum / nr : 1;

	/* A coarse grid over skew, locality, window and cutoff (layer spread 0.5, chain
	 * FIT_GRID_CHAIN), the chain scanned at its best, then a coordinate search over every
	 * parameter around the best point; --refine starts the search from the parameters
	 * given instead. */
	if (refine) {
		if (fit_try(&p, tg, INFINITY, &be))
			goto fail;
		best = p;
	}
	for (w = 0; !refine && w < MOE_ARRAY_SIZE(windows); w++) {
		for (i = 0; i <= 6; i++) {
			unsigned int c;

			for (k = 0; k <= 8; k++) {
				for (c = 0; c < 3; c++) {
					p.window = windows[w];
					p.skew = 0.2 * i;
					p.locality = 0.1 * k;
					p.cutoff = 2.0 * c;
					p.layer_spread = 0.5;
					p.drift = 0;
					p.repeat = 0;
					p.offset = 0;
					p.chain = FIT_GRID_CHAIN;
					if (fit_try(&p, tg, be.err, &e))
						goto fail;
					if (e.err < be.err) {
						be = e;
						best = p;
					}
				}
			}
		}
	}
	for (k = 0; k <= FIT_CHAIN_STEPS; k++) {
		p = best;
		p.chain = (double)k / FIT_CHAIN_STEPS;
		if (fit_try(&p, tg, be.err - 1e-9, &e))
			goto fail;
		if (e.err < be.err - 1e-9) {
			be = e;
			best = p;
		}
	}
	{
		/* skew, locality, cutoff, layer_spread, drift, repeat, offset, chain: step and
		 * range; then the window, one token either way (the grid's windows are far
		 * apart: 2 and 4 differ much in what LRU sees against what the oracle sees). */
		double step[8] = { 0.1, 0.05, 0.5, 0.1, 0.02, 0.05, 4, 0.05 };
		static const double hi[8] = { 8, 1, 64, 1, 1, 1, 1024, 1 };
		unsigned int sg;

		for (iter = 0; iter < 5; iter++) {
			bool moved = true;

			while (moved) {
				moved = false;
				for (k = 0; k < 9; k++) {
					for (sg = 0; sg < 2; sg++) {
						double *v[8];

						p = best;
						if (k == 8) {
							if (sg ? p.window <= 1 : p.window >= 1024)
								continue;
							p.window = sg ? p.window - 1 : p.window + 1;
							goto try;
						}
						v[0] = &p.skew;
						v[1] = &p.locality;
						v[2] = &p.cutoff;
						v[3] = &p.layer_spread;
						v[4] = &p.drift;
						v[5] = &p.repeat;
						v[6] = &p.offset;
						v[7] = &p.chain;
						*v[k] += sg ? -step[k] : step[k];
						if (*v[k] < 0 || *v[k] > hi[k])
							continue;
try:
						if (fit_try(&p, tg, be.err - 1e-9, &e))
							goto fail;
						if (e.err < be.err - 1e-9) {
							be = e;
							best = p;
							moved = true;
						}
					}
				}
			}
			for (k = 0; k < 8; k++)
				step[k] /= 2;
		}
	}

	if (out) {
		struct p2pio_error err = { 0 };
		struct p2pio_expert_trace *t;

		r = p2pio_expert_synth(&best, &t, &err);
		if (r)
			cli_err_p2pio("fit", r, &err);
		if (r || save_trace(t, out)) {
			p2pio_expert_trace_free(t);
			goto fail;
		}
		p2pio_expert_trace_free(t);
	}
	if (json) {
		print_params_json(&best);
		printf(",\"max_error_points\":");
		cli_json_double(stdout, be.err);
		printf(",\"within_3_points\":%s,\"rates\":[", be.err <= 3 ? "true" : "false");
		for (i = 0; i < NR_FRACS; i++) {
			printf("%s{\"capacity_fraction\":%.2f,\"real_lru\":", i ? "," : "", fit_fracs[i]);
			cli_json_double(stdout, tg[FIT_LRU][i]);
			printf(",\"synth_lru\":");
			cli_json_double(stdout, be.rt[FIT_LRU][i]);
			printf(",\"real_oracle\":");
			cli_json_double(stdout, tg[FIT_ORACLE][i]);
			printf(",\"synth_oracle\":");
			cli_json_double(stdout, be.rt[FIT_ORACLE][i]);
			printf(",\"real_lru_learned\":");
			cli_json_double(stdout, tg[FIT_LEARNED][i]);
			printf(",\"synth_lru_learned\":");
			cli_json_double(stdout, be.rt[FIT_LEARNED][i]);
			printf("}");
		}
		printf("]}\n");
	} else {
		printf("fit of a %u-layer, %u-expert, top-%u synthetic trace (%llu tokens) to %u trace%s\n",
		       best.nr_layers, best.nr_experts, best.top_k, (unsigned long long)best.tokens, nr,
		       nr == 1 ? "" : "s (their mean)");
		printf("parameters: --skew %.4f --locality %.4f --window %u --cutoff %.4f --layer-spread %.4f --drift %.4f --repeat %.4f --offset %.4f --seed %llu --chain %.4f\n",
		       best.skew, best.locality, best.window, best.cutoff, best.layer_spread, best.drift,
		       best.repeat, best.offset, (unsigned long long)best.seed, best.chain);
		printf("capacity  LRU real  synth   oracle real  synth   LRU+learned real  synth\n");
		for (i = 0; i < NR_FRACS; i++)
			printf("%3.0f%%      %5.1f%%    %5.1f%%  %5.1f%%       %5.1f%%  %5.1f%%            %5.1f%%\n",
			       fit_fracs[i] * 100, tg[FIT_LRU][i] * 100, be.rt[FIT_LRU][i] * 100,
			       tg[FIT_ORACLE][i] * 100, be.rt[FIT_ORACLE][i] * 100,
			       tg[FIT_LEARNED][i] * 100, be.rt[FIT_LEARNED][i] * 100);
		printf("largest difference: %.2f points (%s 3)\n", be.err, be.err <= 3 ? "within" : "NOT within");
		printf("each trace (");
		for (k = 0; k < NR_SERIES; k++)
			printf("%s%s 10/25/50 %%", k ? ", " : "", fit_series_name[k]);
		printf(") and the synthetic trace's difference (points):\n");
		for (i = 0; i < nr; i++) {
			const double *pt = &per[i * NR_SERIES * NR_FRACS];

			printf("  %s\n   ", argv[optind + i]);
			for (k = 0; k < NR_SERIES * NR_FRACS; k++)
				printf(" %5.1f", pt[k] * 100);
			printf("  |");
			for (k = 0; k < NR_SERIES * NR_FRACS; k++)
				printf(" %+5.1f",
				       100 * (be.rt[k / NR_FRACS][k % NR_FRACS] - pt[k]));
			printf("\n");
		}
		if (out)
			printf("written to %s\n", out);
	}
	free(per);
	return be.err <= 3 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
fail:
	free(per);
	return CLI_EXIT_ERROR;
}

const struct moe_cmd moe_cmd_synth = {
	.name = "synth",
	.summary = "a synthetic trace with tunable skew and temporal locality",
	.main = synth_main,
};

const struct moe_cmd moe_cmd_fit = {
	.name = "fit",
	.summary = "synth parameters whose LRU, oracle, learned-prefetch hit rates match traces",
	.main = fit_main,
};
