/* SPDX-License-Identifier: MIT */
/*
 * moe.h - what the parts of p2pio-moe share: its subcommand table entry, the replay sweep
 * (policies x prefetch sources x capacities over one or more traces) and its reports.
 *
 * A subcommand is a struct moe_cmd; p2pio-moe.c lists them: replay (its own), synth and fit
 * (moe_synth.c) and run (the real-cache decode, moe_run.c).
 */
#ifndef P2PIO_TOOLS_MOE_H
#define P2PIO_TOOLS_MOE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "p2pio.h"

#define MOE_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct moe_cmd {
	const char *name;
	const char *summary;	/* one line for the usage text */
	int (*main)(int argc, char **argv);	/* argv[0] is the subcommand's name */
};

/* One capacity of a sweep: a fraction of the experts, or a count. */
struct moe_cap {
	double frac;		/* > 0: a fraction of the experts (per layer, or of all) */
	uint32_t count;		/* else: experts (per layer, or in all) */
};

/* One point of a curve: the replays of every trace at one capacity, added up. */
struct moe_point {
	uint32_t cap;		/* the first trace's capacity in experts, for the table */
	double frac;		/* that capacity as a fraction */
	struct p2pio_expert_stats st;
	double layer_min;	/* lowest and highest hit rate of any (trace, layer) */
	double layer_max;
};

struct moe_series {
	const char *policy;
	const char *args;	/* policy options or NULL */
	unsigned int prefetch;	/* P2PIO_EXPERT_PREFETCH_* */
	struct moe_point *pts;	/* [nr_caps] */
};

struct moe_sweep {
	struct p2pio_expert_trace **traces;
	const char **names;
	unsigned int nr_traces;
	struct moe_cap *caps;
	unsigned int nr_caps;
	bool global;		/* one budget for all layers, not per layer */
	bool with_prefill;
	struct moe_series *series;
	unsigned int nr_series;
	double bandwidth;	/* bytes/s, 0: not given */
	uint64_t expert_bytes;	/* 0: not given */
	double miss_overhead;	/* seconds a missed layer waits beyond its bytes; 0: none */
	double router_accuracy;	/* the router prefetch's share of right guesses (default 1) */
};

/* Capacity in experts of @c for @t (at least 1, at most what the trace has). */
uint32_t moe_cap_experts(const struct moe_cap *c, const struct p2pio_expert_trace *t, bool global);

/* Parse "10%,25%,6": 0 or -EINVAL. Frees nothing on error: the caller frees *caps. */
int moe_parse_caps(const char *s, struct moe_cap **caps, unsigned int *n);

/* Replay every series at every capacity over every trace. 0 or -errno (message printed). */
int moe_sweep_run(struct moe_sweep *sw);

/* Reports of a sweep. */
void moe_report_table(FILE *f, const struct moe_sweep *sw);
void moe_report_json(FILE *f, const struct moe_sweep *sw);
int moe_report_svg(const char *path, const struct moe_sweep *sw);

/* A series' label: "lru", "lru+lag", "lrfu+next", "oracle". */
const char *moe_series_label(const struct moe_series *s, char *buf, size_t size);

/* Hit rate of a point's statistics (0 when there were no accesses). */
double moe_hit_rate(const struct p2pio_expert_stats *st);

extern const struct moe_cmd moe_cmd_synth;
extern const struct moe_cmd moe_cmd_fit;
extern const struct moe_cmd moe_cmd_run;

#endif /* P2PIO_TOOLS_MOE_H */
