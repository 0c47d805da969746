/* SPDX-License-Identifier: MIT */
/*
 * load.h - what the parts of p2pio-load share: its options, the state of a run (the
 * context, the model, the verifier and the GPU's stream), and the helpers each mode uses.
 * p2pio-load.c sets a run up and picks the mode; load_opts.c parses the command line;
 * load_whole.c loads the model whole (and the mmap baseline); load_stream.c streams its
 * layers through a budget against the honest ceiling.
 */
#ifndef P2PIO_TOOLS_LOAD_H
#define P2PIO_TOOLS_LOAD_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "bench.h"
#include "p2pio.h"

struct load_opts {
	const char *path;
	int device;		/* -2: default */
	enum p2pio_path io_path;
	bool stream;
	bool mmap_baseline;
	uint64_t budget;
	uint32_t slots;
	uint32_t prefetch;
	bool no_prefetch;
	bool lru;
	uint32_t passes;
	uint32_t repeat;
	double compute_us;
	double compute_ratio;
	double ceiling_gbps;	/* 0: measure */
	bool verify;
	bool cold;
	bool json;
	bool quiet;
	bool per_layer;
	uint32_t threads;
	uint32_t queue_depth;
	uint64_t chunk;
	uint64_t staging;
	bool bounce_async;
};

struct load_run {
	struct load_opts o;
	struct p2pio_ctx *ctx;
	struct p2pio_model *m;
	struct p2pio_model_info info;
	struct p2pio_path_info pi;
	struct bench_cuda cu;
	void *stream;
	bool gpu;
	struct p2pio_verifier *v;
	const char *verify_note;
	char ceiling_why[256];	/* which ceilings and shapes the stream's bound came from */
	double open_s;		/* p2pio_model_open(): parse, choose the path, start it */
	uint64_t arena, arena_bytes;	/* the whole load's arena, once loaded */
};

static inline double load_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline double load_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline double load_gbps(uint64_t bytes, double s)
{
	return s > 0 ? (double)bytes / s / 1e9 : 0;
}

/* load_opts.c: the command line into @o. 0, or the tool's usage exit status. */
int load_parse(int argc, char **argv, struct load_opts *o);

/* p2pio-load.c: "GPU 0" or "host memory". */
const char *load_target_name(const struct load_run *r, char *buf, size_t len);
/* Check @n tensors against the pattern (nothing without --verify): 0 or -errno. */
int load_verify_tensors(struct load_run *r, const struct p2pio_model_tensor *t, uint32_t n,
			struct p2pio_verify_result *vr);
/* Every tensor of the model (calloc'd; NULL without memory). */
struct p2pio_model_tensor *load_all_tensors(struct load_run *r);
/* The "verify" line of the text report. */
void load_print_verify(const struct load_run *r, const struct p2pio_verify_result *vr);
/* The engine options that ran, as a JSON member. */
void load_print_engine_json(const struct load_run *r);

/* load_whole.c: zero the last load's arena, so that a load again is checked on its own. */
int load_clear_arena(struct load_run *r);
/* Load the model whole (round @round of --repeat) and report: a CLI_EXIT_* status. */
int load_run_whole(struct load_run *r, uint32_t round);
/* The baseline: mmap the file and copy tensor by tensor: a CLI_EXIT_* status. */
int load_run_mmap(struct load_run *r);

/* load_stream.c: stream the layers for --passes passes and report: a CLI_EXIT_* status. */
int load_run_stream(struct load_run *r);

#endif
