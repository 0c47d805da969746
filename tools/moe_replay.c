// SPDX-License-Identifier: MIT
/*
 * moe_replay.c - p2pio-moe's replay sweep and its reports: a table for people, JSON for
 * programs, and an SVG plot of hit rate against capacity.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "moe.h"

double moe_hit_rate(const struct p2pio_expert_stats *st)
{
	return st->accesses ? (double)st->hits / (double)st->accesses : 0;
}

static double moe_steady_rate(const struct p2pio_expert_stats *st)
{
	return st->steady_accesses ? (double)st->steady_hits / (double)st->steady_accesses : NAN;
}

static double moe_per_token(uint64_t v, const struct p2pio_expert_stats *st)
{
	return st->tokens ? (double)v / (double)st->tokens : 0;
}

const char *moe_series_label(const struct moe_series *s, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s%s%s%s%s%s%s", s->policy,
		 s->args ? "(" : "", s->args ? s->args : "", s->args ? ")" : "",
		 s->prefetch & P2PIO_EXPERT_PREFETCH_LAG ? "+lag" : "",
		 s->prefetch & P2PIO_EXPERT_PREFETCH_LEARNED ? "+learned" : "",
		 s->prefetch & P2PIO_EXPERT_PREFETCH_NEXT ? "+next" : "",
		 s->prefetch & P2PIO_EXPERT_PREFETCH_ROUTER ? "+router" : "");
	return buf;
}

uint32_t moe_cap_experts(const struct moe_cap *c, const struct p2pio_expert_trace *t, bool global)
{
	const struct p2pio_expert_trace_info *in = p2pio_expert_trace_info(t);
	uint64_t all = global ? (uint64_t)in->nr_experts * in->nr_layers : in->nr_experts;
	uint64_t n = c->frac > 0 ? (uint64_t)llround(c->frac * (double)all) : c->count;

	if (n < 1)
		n = 1;
	return (uint32_t)(n > all ? all : n);
}

int moe_parse_caps(const char *s, struct moe_cap **caps, unsigned int *n)
{
	const char *p = s;
	char item[32], *end;
	struct moe_cap *c;
	size_t len;
	double v;

	*caps = NULL;
	*n = 0;
	while (*p) {
		len = strcspn(p, ",");
		if (!len || len >= sizeof(item))
			return -EINVAL;
		memcpy(item, p, len);
		item[len] = '\0';
		p += len + (p[len] == ',');
		c = realloc(*caps, (*n + 1) * sizeof(*c));
		if (!c)
			return -ENOMEM;
		*caps = c;
		c = &c[(*n)++];
		memset(c, 0, sizeof(*c));
		errno = 0;
		v = strtod(item, &end);
		if (end == item || errno || !isfinite(v) || v <= 0)
			return -EINVAL;
		if (!strcmp(end, "%")) {
			if (v > 100)
				return -EINVAL;
			c->frac = v / 100;
		} else if (!*end && v == floor(v) && v <= UINT32_MAX) {
			c->count = (uint32_t)v;
		} else {
			return -EINVAL;
		}
	}
	return *n ? 0 : -EINVAL;
}

int moe_sweep_run(struct moe_sweep *sw)
{
	struct p2pio_expert_layer_stats *ls = NULL;
	struct p2pio_error err;
	unsigned int s, c, t;
	uint32_t l, maxl = 0;
	int ret = 0;

	for (t = 0; t < sw->nr_traces; t++)
		if (p2pio_expert_trace_info(sw->traces[t])->nr_layers > maxl)
			maxl = p2pio_expert_trace_info(sw->traces[t])->nr_layers;
	ls = calloc(maxl, sizeof(*ls));
	if (!ls)
		return -ENOMEM;
	for (s = 0; s < sw->nr_series && !ret; s++) {
		struct moe_series *se = &sw->series[s];

		for (c = 0; c < sw->nr_caps && !ret; c++) {
			struct moe_point *pt = &se->pts[c];

			memset(pt, 0, sizeof(*pt));
			pt->layer_min = 1;
			pt->layer_max = 0;
			for (t = 0; t < sw->nr_traces && !ret; t++) {
				const struct p2pio_expert_trace_info *in = p2pio_expert_trace_info(sw->traces[t]);
				struct p2pio_expert_replay_opts o = { 0 };
				struct p2pio_expert_stats st = { .size = sizeof(st) };

				o.policy = se->policy;
				o.policy_args = se->args;
				o.prefetch = se->prefetch;
				o.per_layer = !sw->global;
				o.with_prefill = sw->with_prefill;
				o.router_wrong = 1 - sw->router_accuracy;
				o.capacity = moe_cap_experts(&sw->caps[c], sw->traces[t], sw->global);
				memset(&err, 0, sizeof(err));
				ret = p2pio_expert_replay(sw->traces[t], &o, &st, ls, &err);
				if (ret) {
					cli_err_p2pio(sw->names[t], ret, &err);
					break;
				}
				if (!t) {
					pt->cap = o.capacity;
					pt->frac = (double)o.capacity /
						   (sw->global ? (double)in->nr_experts * in->nr_layers :
								 (double)in->nr_experts);
				}
#define ADD(f) pt->st.f += st.f
				ADD(tokens); ADD(accesses); ADD(hits); ADD(misses); ADD(late);
				ADD(steady_tokens); ADD(steady_accesses); ADD(steady_hits);
				ADD(steady_misses); ADD(loads); ADD(bytes_loaded); ADD(evictions);
				ADD(prefetches); ADD(prefetch_used); ADD(prefetch_wasted);
				ADD(missed_layers); ADD(steady_missed_layers);
#undef ADD
				if (st.max_token_faults > pt->st.max_token_faults)
					pt->st.max_token_faults = st.max_token_faults;
				for (l = 0; l < in->nr_layers; l++) {
					double h;

					if (!ls[l].accesses)
						continue;
					h = (double)ls[l].hits / (double)ls[l].accesses;
					if (h < pt->layer_min)
						pt->layer_min = h;
					if (h > pt->layer_max)
						pt->layer_max = h;
				}
			}
		}
	}
	free(ls);
	return ret;
}

/*
 * Predicted tokens/s: every byte loaded has to come through the link, and with a miss
 * overhead each missed layer adds it (a decode in step: a layer with a miss waits for its
 * batch, whose fixed cost no other work hides; prefetches that land in time cost bytes only).
 */
static double moe_tps(const struct moe_sweep *sw, const struct moe_point *pt)
{
	double bytes = moe_per_token(pt->st.loads, &pt->st) * (double)sw->expert_bytes, t;

	if (!sw->bandwidth || !sw->expert_bytes)
		return NAN;
	t = bytes / sw->bandwidth + moe_per_token(pt->st.missed_layers, &pt->st) * sw->miss_overhead;
	return t > 0 ? 1 / t : INFINITY;
}

void moe_report_table(FILE *f, const struct moe_sweep *sw)
{
	unsigned int s, c, t;
	char lab[64];

	for (t = 0; t < sw->nr_traces; t++) {
		const struct p2pio_expert_trace_info *in = p2pio_expert_trace_info(sw->traces[t]);

		fprintf(f, "trace %s: %s%s%u layers, %u experts, top-%u, %llu tokens\n", sw->names[t],
			in->model[0] ? in->model : "", in->model[0] ? ", " : "", in->nr_layers,
			in->nr_experts, in->top_k,
			(unsigned long long)p2pio_expert_trace_tokens(sw->traces[t]));
	}
	fprintf(f, "replayed: %llu tokens (%s), cache: %s\n",
		(unsigned long long)(sw->nr_series ? sw->series[0].pts[0].st.tokens : 0),
		sw->with_prefill ? "prompt and generated" : "generated only",
		sw->global ? "one budget for all layers" : "per layer");
	fprintf(f, "cells: hit %% / faults per token / loads per token (faults + prefetches)\n");
	fprintf(f, "       / layers with a fault per token (in step, each one a wait)\n\n");
	fprintf(f, "%-18s", "policy");
	for (c = 0; c < sw->nr_caps; c++) {
		const struct moe_point *pt = &sw->series[0].pts[c];
		char hd[40];

		snprintf(hd, sizeof(hd), "%.0f%% (%u)", pt->frac * 100, pt->cap);
		fprintf(f, " %28s", hd);
	}
	fputc('\n', f);
	for (s = 0; s < sw->nr_series; s++) {
		fprintf(f, "%-18s", moe_series_label(&sw->series[s], lab, sizeof(lab)));
		for (c = 0; c < sw->nr_caps; c++) {
			const struct moe_point *pt = &sw->series[s].pts[c];
			char cell[64];

			snprintf(cell, sizeof(cell), "%5.1f %6.2f %6.2f %5.2f",
				 100 * moe_hit_rate(&pt->st), moe_per_token(pt->st.misses, &pt->st),
				 moe_per_token(pt->st.loads, &pt->st),
				 moe_per_token(pt->st.missed_layers, &pt->st));
			fprintf(f, " %28s", cell);
		}
		fputc('\n', f);
	}
	if (sw->bandwidth && sw->expert_bytes) {
		char hb[CLI_HUMAN_LEN];

		if (sw->miss_overhead > 0)
			fprintf(f, "\npredicted tokens/s at %.2f GB/s, %s per expert, %.0f us per "
				"missed layer (bytes loaded per token / bandwidth + missed layers "
				"per token x overhead):\n", sw->bandwidth / 1e9,
				cli_human_bytes(sw->expert_bytes, hb), sw->miss_overhead * 1e6);
		else
			fprintf(f, "\npredicted tokens/s at %.2f GB/s, %s per expert (bytes loaded "
				"per token / bandwidth):\n", sw->bandwidth / 1e9,
				cli_human_bytes(sw->expert_bytes, hb));
		for (s = 0; s < sw->nr_series; s++) {
			fprintf(f, "%-18s", moe_series_label(&sw->series[s], lab, sizeof(lab)));
			for (c = 0; c < sw->nr_caps; c++)
				fprintf(f, " %28.1f", moe_tps(sw, &sw->series[s].pts[c]));
			fputc('\n', f);
		}
	}
}

void moe_report_json(FILE *f, const struct moe_sweep *sw)
{
	unsigned int s, c, t;
	char lab[64];

	fprintf(f, "{\"traces\":[");
	for (t = 0; t < sw->nr_traces; t++) {
		const struct p2pio_expert_trace_info *in = p2pio_expert_trace_info(sw->traces[t]);

		fprintf(f, "%s{\"path\":", t ? "," : "");
		cli_json_str(f, sw->names[t]);
		fprintf(f, ",\"model\":");
		cli_json_str(f, in->model);
		fprintf(f, ",\"layers\":%u,\"experts\":%u,\"top_k\":%u,\"tokens\":%llu}",
			in->nr_layers, in->nr_experts, in->top_k,
			(unsigned long long)p2pio_expert_trace_tokens(sw->traces[t]));
	}
	fprintf(f, "],\"cache\":\"%s\",\"with_prefill\":%s,\"bandwidth\":", sw->global ? "global" : "per_layer",
		sw->with_prefill ? "true" : "false");
	cli_json_double(f, sw->bandwidth ? sw->bandwidth : NAN);
	fprintf(f, ",\"expert_bytes\":%llu,\"miss_overhead_s\":", (unsigned long long)sw->expert_bytes);
	cli_json_double(f, sw->miss_overhead);
	fprintf(f, ",\"router_accuracy\":");
	cli_json_double(f, sw->router_accuracy);
	fprintf(f, ",\"results\":[");
	for (s = 0; s < sw->nr_series; s++) {
		for (c = 0; c < sw->nr_caps; c++) {
			const struct moe_point *pt = &sw->series[s].pts[c];
			const struct p2pio_expert_stats *st = &pt->st;

			fprintf(f, "%s{\"series\":", s || c ? "," : "");
			cli_json_str(f, moe_series_label(&sw->series[s], lab, sizeof(lab)));
			fprintf(f, ",\"policy\":");
			cli_json_str(f, sw->series[s].policy);
			fprintf(f, ",\"prefetch_router\":%s",
				sw->series[s].prefetch & P2PIO_EXPERT_PREFETCH_ROUTER ? "true" : "false");
			fprintf(f, ",\"prefetch_lag\":%s,\"prefetch_learned\":%s,\"prefetch_next\":%s,\"capacity\":%u,\"capacity_fraction\":",
				sw->series[s].prefetch & P2PIO_EXPERT_PREFETCH_LAG ? "true" : "false",
				sw->series[s].prefetch & P2PIO_EXPERT_PREFETCH_LEARNED ? "true" : "false",
				sw->series[s].prefetch & P2PIO_EXPERT_PREFETCH_NEXT ? "true" : "false",
				pt->cap);
			cli_json_double(f, pt->frac);
			fprintf(f, ",\"hit_rate\":");
			cli_json_double(f, moe_hit_rate(st));
			fprintf(f, ",\"steady_hit_rate\":");
			cli_json_double(f, moe_steady_rate(st));
			fprintf(f, ",\"layer_hit_rate_min\":");
			cli_json_double(f, pt->layer_min);
			fprintf(f, ",\"layer_hit_rate_max\":");
			cli_json_double(f, pt->layer_max);
			fprintf(f, ",\"faults_per_token\":");
			cli_json_double(f, moe_per_token(st->misses, st));
			fprintf(f, ",\"loads_per_token\":");
			cli_json_double(f, moe_per_token(st->loads, st));
			fprintf(f, ",\"missed_layers_per_token\":");
			cli_json_double(f, moe_per_token(st->missed_layers, st));
			fprintf(f, ",\"tokens_per_s\":");
			cli_json_double(f, moe_tps(sw, pt));
			fprintf(f, ",\"tokens\":%llu,\"accesses\":%llu,\"hits\":%llu,\"misses\":%llu,"
				"\"steady_tokens\":%llu,\"loads\":%llu,\"evictions\":%llu,\"prefetches\":%llu,"
				"\"prefetch_used\":%llu,\"prefetch_wasted\":%llu,\"max_token_faults\":%llu,"
				"\"missed_layers\":%llu}",
				(unsigned long long)st->tokens, (unsigned long long)st->accesses,
				(unsigned long long)st->hits, (unsigned long long)st->misses,
				(unsigned long long)st->steady_tokens, (unsigned long long)st->loads,
				(unsigned long long)st->evictions, (unsigned long long)st->prefetches,
				(unsigned long long)st->prefetch_used, (unsigned long long)st->prefetch_wasted,
				(unsigned long long)st->max_token_faults,
				(unsigned long long)st->missed_layers);
		}
	}
	fprintf(f, "]}\n");
}

/* Hand-written SVG: hit rate (y, 0-100 %) against capacity fraction (x, 0-100 %). */
int moe_report_svg(const char *path, const struct moe_sweep *sw)
{
	static const char *const colour[] = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
					      "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
					      "#bcbd22", "#17becf" };
	const double W = 760, H = 480, x0 = 60, y0 = 30, pw = 500, ph = 400;
	unsigned int s, c, i;
	char lab[64];
	FILE *f;

	f = fopen(path, "w");
	if (!f) {
		cli_err("%s: %s", path, strerror(errno));
		return -errno;
	}
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
		"font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
	fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	fprintf(f, "<text x=\"%.0f\" y=\"18\" font-size=\"14\">expert cache hit rate against capacity (%s)</text>\n",
		x0, sw->global ? "global budget" : "per layer");
	for (i = 0; i <= 10; i++) {
		double y = y0 + ph - ph * i / 10, x = x0 + pw * i / 10;

		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
			x0, y, x0 + pw, y);
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
			x, y0, x, y0 + ph);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%u%%</text>\n", x0 - 4, y + 4, i * 10);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%u%%</text>\n", x, y0 + ph + 16, i * 10);
	}
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">experts resident (%% of %s)</text>\n",
		x0 + pw / 2, y0 + ph + 34, sw->global ? "all" : "a layer's");
	fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"black\"/>\n",
		x0, y0, pw, ph);
	for (s = 0; s < sw->nr_series; s++) {
		const struct moe_series *se = &sw->series[s];
		const char *col = colour[s % MOE_ARRAY_SIZE(colour)];
		bool oracle = !strcmp(se->policy, "oracle");

		fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s points=\"", col,
			oracle ? "2.5" : "1.5", oracle ? " stroke-dasharray=\"6,3\"" :
			se->prefetch ? " stroke-dasharray=\"2,2\"" : "");
		for (c = 0; c < sw->nr_caps; c++)
			fprintf(f, "%s%.1f,%.1f", c ? " " : "", x0 + pw * se->pts[c].frac,
				y0 + ph - ph * moe_hit_rate(&se->pts[c].st));
		fprintf(f, "\"/>\n");
		for (c = 0; c < sw->nr_caps; c++)
			fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n",
				x0 + pw * se->pts[c].frac, y0 + ph - ph * moe_hit_rate(&se->pts[c].st), col);
		fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" stroke-width=\"2\"/>\n",
			x0 + pw + 20, y0 + 10 + 18.0 * s, x0 + pw + 45, y0 + 10 + 18.0 * s, col);
		fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">", x0 + pw + 50, y0 + 14 + 18.0 * s);
		/* Labels come from policy names and numbers only: nothing to escape. */
		fprintf(f, "%s</text>\n", moe_series_label(se, lab, sizeof(lab)));
	}
	fprintf(f, "</svg>\n");
	if (fclose(f)) {
		cli_err("%s: %s", path, strerror(errno));
		return -EIO;
	}
	return 0;
}
