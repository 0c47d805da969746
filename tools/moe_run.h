/* SPDX-License-Identifier: MIT */
/*
 * moe_run.h - what the parts of `p2pio-moe run` share: its options, the state of one run
 * and what it measured. moe_run.c opens the model and the cache and drives a run;
 * moe_run_opts.c parses the command line; moe_run_decode.c decodes the trace (per layer
 * of a token: require, verify, release, predict); moe_run_miss.c measures the path's
 * expert-sized reads and the cost of cold miss batches (--miss-cost); moe_run_report.c
 * prints the results, as text or as one JSON object.
 */
#ifndef P2PIO_TOOLS_MOE_RUN_H
#define P2PIO_TOOLS_MOE_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "bench.h"
#include "p2pio.h"

#define RUN_MAX_USED 64
#define RUN_MAX_SLICES 16
#define RUN_MAX_LOOKAHEAD 16
/* The same path's rate: this much of the model, in expert-sized reads, this many deep. */
#define RUN_PATH_BYTES (2ull << 30)
#define RUN_PATH_DEPTH 32
/*
 * And shallower: an in-step decode keeps a layer or two of loads in flight (3-6 experts
 * at 9 %), and at 0.73 of its bound with every next layer prefetched (the eleventh round)
 * the question was whether reads that few deep can reach the ceiling at all.
 */
#define RUN_PATH_NDEPTHS 4
extern const unsigned int run_path_depths[RUN_PATH_NDEPTHS];	/* 2, 4, 8, RUN_PATH_DEPTH */

struct run_opts {
	const char *model;
	const char *trace;
	uint64_t budget;
	double fraction;
	const char *policy;
	bool prefetch_prev;
	bool prefetch_learned;
	bool prefetch_next;		/* the trace's next layer as the prediction */
	double accuracy;		/* of each predicted expert, 0..1 (default 1) */
	bool accuracy_set;
	uint32_t lookahead;		/* layers hinted ahead (default 1) */
	bool lookahead_set;
	uint64_t tokens;
	uint64_t warmup;
	bool warmup_set;
	uint64_t compute_ns;
	double ceiling;			/* bytes/s; 0: measure */
	int device;
	bool device_set;
	enum p2pio_path path;
	bool miss_cost;
	bool no_verify;
	bool json;
	uint64_t chunk;			/* engine chunk size; 0: the library's default */
	uint32_t threads;		/* engine threads; 0: the library's default */
	uint32_t queue_depth;		/* engine queue depth; 0: the library's default */
	bool poll;			/* P2PIO_CTX_POLL */
	bool bounce_async;		/* P2PIO_CTX_BOUNCE_ASYNC */
	bool urgent_alone;		/* P2PIO_CTX_URGENT_ALONE */
	uint64_t read_piece;		/* the cache's read piece; 0: the library's default */
	uint32_t read_pieces;		/* or reads per expert load; 0: by the piece */
	bool keep_cache;		/* leave the model in the page cache */
	bool eager_unmap;		/* unmap victims before the miss loads (as before) */
	bool keep_wrong_hints;		/* hinted loads load on though their layer passed */
	bool misses_in_order;		/* misses not read before queued hints */
	bool run_ahead;			/* require a layer before the stream reaches it */
};

struct run {
	struct run_opts o;
	struct p2pio_ctx *ctx;
	struct p2pio_model *m;
	struct p2pio_experts *x;
	uint32_t threads;		/* the engine's */
	uint32_t queue_depth;		/* the engine's */
	struct p2pio_verifier *v;
	struct p2pio_expert_trace *t;
	struct p2pio_experts_info info;
	struct p2pio_model_info minfo;
	struct bench_cuda cu;
	void *stream;
	uint64_t verified_bytes;
};

#define MISS_KS 4
#define MISS_BATCHES 10u	/* cold batches timed per k */

/* --miss-cost: the batches of k cold misses, means per batch from the start of require. */
struct miss_row {
	uint32_t k;
	bool too_many;			/* k is more than @limit: not timed, */
	bool of_layer;			/* the experts of a layer (else the cache's) */
	uint64_t limit;
	uint32_t tries, done, warm;	/* batches tried, wholly cold (timed), not */
	double mib, reads, submit_us, map_us, unmap_us, first_us, last_us, released_us;
	double bytes_us;		/* the batch's bytes / the ceiling */
	double late_us;			/* victims unmapped at release */
	double taken_us, landed_us;	/* NAN: the path does not say */
	uint64_t rel[MISS_BATCHES];	/* each timed batch's released time, ns, sorted */
	struct bench_burst fl, cfl;	/* the floor: plain reads; with copies (GPU) */
	int fl_err, cfl_err;
};

struct miss_cost {
	double ceiling;			/* bytes/s */
	int err;			/* the batches' cache could not be opened */
	uint64_t capacity, all;		/* experts it holds; in the model */
	uint64_t read_piece;
	uint32_t nr_rows;
	struct miss_row rows[MISS_KS];
};

/* What a run measured, for the report. */
struct run_result {
	struct p2pio_expert_stats st;	/* the measured tokens' (after the warm-up) */
	struct p2pio_experts_io io;
	struct p2pio_path_info pi;
	struct p2pio_verify_result vr;
	uint64_t tokens;		/* measured, after the warm-up */
	uint64_t warm;			/* warm-up tokens */
	uint64_t wall_ns;		/* the measured tokens' wall time */
	uint64_t all;			/* experts in the model */
	double tps;
	double ceiling;			/* bytes/s */
	char ceiling_why[256];
	double path_rate;		/* bytes/s of the path's expert-sized reads, deepest */
	double path_rates[RUN_PATH_NDEPTHS];	/* at each of run_path_depths */
	double missed;			/* bytes missed per token */
	double bound;			/* tokens/s: ceiling / missed; 0 without misses */
	double hit;
	bool short_decode;		/* too short for a steady ratio */
	double batch_loads;		/* demand loads per miss batch */
	double batch_us;		/* a batch's require to its last load done */
	double batch_bytes_us;		/* a batch's bytes / the ceiling */
	double beyond_us;		/* a token's time beyond its bytes / the ceiling */
	double wait_us;			/* that per missed layer; NAN: none */
};

static inline uint64_t run_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* moe_run_opts.c: the command line into @o. 0, or the tool's usage exit status. */
int moe_run_parse(int argc, char **argv, struct run_opts *o);

/* moe_run_decode.c: wait for the run's stream (none on host memory). */
void moe_run_stream_sync(struct run *r);
/*
 * moe_run.c: open r->x on r->m with @budget (bytes), @policy (NULL: the library's) and
 * P2PIO_EXPERTS_* @flags (--eager-unmap and the read pieces from the options), and fill
 * r->info. 0 or -errno (message printed).
 */
int moe_run_cache_open(struct run *r, uint64_t budget, const char *policy, uint32_t flags);
/* The experts of the model's layer @layer (0: dense, or no such layer). */
uint32_t moe_run_layer_experts(const struct run *r, uint32_t layer);
/* Decode tokens [@from, @to) of the trace. 0 or -errno (message printed). */
int moe_run_decode(struct run *r, uint64_t from, uint64_t to);

/* moe_run_miss.c: the path's expert-sized reads, @depth (<= RUN_PATH_DEPTH) deep, in bytes/s. */
int moe_run_measure_path(struct run *r, unsigned int depth, double *bps);
/*
 * The cold miss batches of 1, 2, 4 and 8 experts against their floors (--miss-cost),
 * measured into @mc; 0, or -errno where the batches' own cache could not be opened (in
 * @mc->err too). Then said as the text's table, or as the JSON report's "miss_cost".
 */
int moe_run_miss_cost(struct run *r, double ceiling, struct miss_cost *mc);
void moe_run_miss_cost_text(FILE *out, const struct run *r, const struct miss_cost *mc);
void moe_run_miss_cost_json(FILE *out, const struct miss_cost *mc);

/* moe_run_report.c: the results as text, or one JSON object with --json. */
void moe_run_report(FILE *out, const struct run *r, const struct run_result *res,
		    const struct miss_cost *mc);

#endif
