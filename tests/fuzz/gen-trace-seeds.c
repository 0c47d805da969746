// SPDX-License-Identifier: MIT
/*
 * gen-trace-seeds.c - writes fuzz-trace's seed corpus into a directory: small native traces
 * (synthetic, and built by hand with sequences, prefill tokens and cells not recorded) and
 * one small file of every JSON routing log the reader knows (experts/trace_json.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2pio.h"

static const char *dir;

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static void text(const char *name, const char *body)
{
	char path[512];
	FILE *f;

	path_of(path, sizeof(path), name);
	f = fopen(path, "w");
	if (!f || fputs(body, f) == EOF || fclose(f)) {
		perror(path);
		exit(1);
	}
}

static void save(const struct p2pio_expert_trace *t, const char *name)
{
	struct p2pio_error err = { 0 };
	char path[512];

	path_of(path, sizeof(path), name);
	if (p2pio_expert_trace_save(t, path, &err)) {
		fprintf(stderr, "%s: %s\n", path, err.msg);
		exit(1);
	}
}

static void synthetic(uint32_t layers, uint32_t experts, uint32_t top_k, const char *name)
{
	struct p2pio_expert_synth_params p = {
		.nr_layers = layers, .nr_experts = experts, .top_k = top_k, .tokens = 6,
		.skew = 0.8, .locality = 0.5, .window = 4, .seed = 1, .chain = 0.5,
	};
	struct p2pio_expert_trace *t;

	if (p2pio_expert_synth(&p, &t, NULL))
		exit(1);
	save(t, name);
	p2pio_expert_trace_free(t);
}

/* Two sequences, a prefill token each, a cell not recorded, a model name. */
static void by_hand(void)
{
	struct p2pio_expert_trace_info info = { .nr_layers = 3, .nr_experts = 300, .top_k = 3 };
	static const uint32_t a[] = { 299, 0, 7 }, b[] = { 5 };
	struct p2pio_expert_trace *t;
	uint32_t seq;

	snprintf(info.model, sizeof(info.model), "hand-made");
	if (p2pio_expert_trace_new(&info, &t, NULL))
		exit(1);
	for (seq = 0; seq < 2; seq++) {
		p2pio_expert_trace_add(t, 0, a, 3, NULL);
		p2pio_expert_trace_add(t, 2, b, 1, NULL);
		p2pio_expert_trace_end_token(t, P2PIO_EXPERT_TOKEN_PREFILL |
					     P2PIO_EXPERT_TOKEN_SEQ_START, NULL);
		p2pio_expert_trace_add(t, 0, b, 1, NULL);
		p2pio_expert_trace_add(t, 1, a, 2, NULL);
		p2pio_expert_trace_add(t, 2, a, 3, NULL);
		p2pio_expert_trace_end_token(t, 0, NULL);
	}
	save(t, "hand.trace");
	p2pio_expert_trace_free(t);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen-trace-seeds DIR\n");
		return 2;
	}
	dir = argv[1];
	synthetic(4, 8, 2, "synth-4x8.trace");
	synthetic(1, 16, 4, "synth-1x16.trace");
	by_hand();
	/* vLLM routing profiler, sorted JSON Lines (two problems). */
	text("profiler.jsonl",
	     "{\"problem_id\": 0, \"token_idx\": 0, \"layer\": 0, \"experts\": [1, 3]}\n"
	     "{\"problem_id\": 0, \"token_idx\": 0, \"layer\": 1, \"experts\": [2, 0]}\n"
	     "{\"problem_id\": 0, \"token_idx\": 1, \"layer\": 0, \"experts\": [3, 1]}\n"
	     "{\"problem_id\": 1, \"token_idx\": 0, \"layer\": 1, \"experts\": [0, 2]}\n");
	/* The profiler's raw log: prefill layer blocks, then decode steps. */
	text("raw.jsonl",
	     "{\"token_pos\": 1, \"layer\": 0, \"experts\": [0, 1]}\n"
	     "{\"token_pos\": 2, \"layer\": 0, \"experts\": [1, 2]}\n"
	     "{\"token_pos\": 1, \"layer\": 1, \"experts\": [2, 3]}\n"
	     "{\"token_pos\": 0, \"layer\": 0, \"experts\": [3, 0]}\n"
	     "{\"token_pos\": 0, \"layer\": 1, \"experts\": [0, 2]}\n"
	     "{\"token_pos\": 0, \"layer\": 0, \"experts\": [1, 3]}\n");
	/* vLLM FusedMoE logger: meta, a profiling record of uniform weights, routes. */
	text("fusedmoe.jsonl",
	     "{\"type\": \"meta\", \"num_experts\": 8, \"model_id\": \"m\"}\n"
	     "{\"type\": \"route\", \"token_idx\": 0, \"layer\": 0, \"topk_ids\": [0, 1], "
	     "\"topk_weights\": [0.5, 0.5]}\n"
	     "{\"type\": \"route\", \"token_idx\": 0, \"layer\": 0, \"topk_ids\": [4, 2], "
	     "\"topk_weights\": [0.7, 0.3]}\n"
	     "{\"type\": \"route\", \"token_idx\": 1, \"layer\": 0, \"topk_ids\": [7, 2], "
	     "\"topk_weights\": [0.6, 0.4]}\n");
	/* RoutingTrace (moe_ocs). */
	text("routes.json",
	     "{\"meta\": {\"num_experts\": 6, \"model_id\": \"qwen\"}, \"routes\": ["
	     "{\"token_pos\": 0, \"phase\": \"prefill\", \"layers\": {\"0\": {\"experts\": [1, 2]}, "
	     "\"1\": {\"experts\": [5, 0]}}},"
	     "{\"token_pos\": 1, \"phase\": \"decode\", \"layers\": {\"0\": {\"experts\": [3, 4]}}}]}\n");
	/* HF greedy loop, gen_*.json. */
	text("gen.json",
	     "{\"num_experts\": 4, \"decode_steps\": ["
	     "{\"step\": 0, \"layers\": [{\"layer\": 0, \"topk_experts\": [0, 1]}, "
	     "{\"layer\": 1, \"topk_experts\": [2, 3]}]},"
	     "{\"step\": 1, \"layers\": [{\"layer\": 0, \"topk_experts\": [1, 2]}]}]}\n");
	/* Its prefill file, trace_*.json. */
	text("prefill.json",
	     "{\"layers\": [{\"layer\": 0, \"token_data\": [{\"topk_experts\": [0, 3]}, "
	     "{\"topk_experts\": [1, 2]}]}, {\"layer\": 1, \"topk_per_token\": "
	     "[{\"topk_experts\": [2, 0]}]}]}\n");
	return 0;
}
