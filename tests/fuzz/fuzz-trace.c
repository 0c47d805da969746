// SPDX-License-Identifier: MIT
/*
 * fuzz-trace.c - libFuzzer target for the routing trace readers: the native format and
 * every JSON routing log p2pio_expert_trace_load() recognises (experts/trace_file.c,
 * trace_json.c).
 *
 * Each input becomes the whole file (a memfd, opened by its /proc path, since the loader
 * takes a path). When the loader accepts it, every cell is read and the invariants the API
 * promises are checked (at most top_k distinct ids per cell, each below the expert count;
 * flags within P2PIO_EXPERT_TOKEN_FLAGS); the trace is saved and loaded again and must come
 * back cell for cell; and small traces are replayed with every prefetch source, whose
 * statistics must add up. A crash, a sanitizer report, a leak or an abort() is a bug.
 * Build and run: make -f tests/fuzz/Makefile run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "p2pio.h"

#define FUZZ_NAME "fuzz-trace"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* Replays only traces this small: the fuzzer wants many inputs a second. */
#define REPLAY_MAX_ACCESSES (1u << 14)
#define REPLAY_MAX_COUNTERS (1u << 20)

static void walk(const struct p2pio_expert_trace *t)
{
	const struct p2pio_expert_trace_info *in = p2pio_expert_trace_info(t);
	uint64_t tok, nt = p2pio_expert_trace_tokens(t);
	const uint16_t *ids;
	uint32_t l;
	int n, i, k;

	CHECK(in->nr_layers >= 1 && in->nr_layers <= P2PIO_EXPERT_TRACE_MAX_LAYERS);
	CHECK(in->nr_experts >= 1 && in->nr_experts <= P2PIO_EXPERT_TRACE_MAX_EXPERTS);
	CHECK(in->top_k >= 1 && in->top_k <= P2PIO_EXPERT_TRACE_MAX_TOP_K);
	CHECK(memchr(in->model, '\0', sizeof(in->model)));
	for (tok = 0; tok < nt; tok++) {
		CHECK(!(p2pio_expert_trace_token_flags(t, tok) & ~P2PIO_EXPERT_TOKEN_FLAGS));
		for (l = 0; l < in->nr_layers; l++) {
			n = p2pio_expert_trace_cell(t, tok, l, &ids);
			CHECK(n >= 0 && (uint32_t)n <= in->top_k);
			for (i = 0; i < n; i++) {
				CHECK(ids[i] < in->nr_experts);
				for (k = 0; k < i; k++)
					CHECK(ids[k] != ids[i]);
			}
		}
	}
	CHECK(p2pio_expert_trace_cell(t, nt, 0, &ids) < 0);
	CHECK(p2pio_expert_trace_cell(t, 0, in->nr_layers, &ids) < 0);
}

/* @a and @b hold the same routing. */
static void same(const struct p2pio_expert_trace *a, const struct p2pio_expert_trace *b)
{
	const struct p2pio_expert_trace_info *x = p2pio_expert_trace_info(a);
	const struct p2pio_expert_trace_info *y = p2pio_expert_trace_info(b);
	uint64_t tok, nt = p2pio_expert_trace_tokens(a);
	const uint16_t *p, *q;
	uint32_t l;
	int n;

	CHECK(x->nr_layers == y->nr_layers && x->nr_experts == y->nr_experts &&
	      x->top_k == y->top_k && !strcmp(x->model, y->model));
	CHECK(p2pio_expert_trace_tokens(b) == nt);
	for (tok = 0; tok < nt; tok++) {
		CHECK(p2pio_expert_trace_token_flags(a, tok) == p2pio_expert_trace_token_flags(b, tok));
		for (l = 0; l < x->nr_layers; l++) {
			n = p2pio_expert_trace_cell(a, tok, l, &p);
			CHECK(p2pio_expert_trace_cell(b, tok, l, &q) == n);
			CHECK(!n || !memcmp(p, q, (size_t)n * sizeof(*p)));
		}
	}
}

static void replay(const struct p2pio_expert_trace *t)
{
	static const char *const policies[] = { "lru", "lrfu", "oracle" };
	const struct p2pio_expert_trace_info *in = p2pio_expert_trace_info(t);
	uint64_t acc = p2pio_expert_trace_tokens(t) * in->nr_layers * in->top_k;
	struct p2pio_expert_replay_opts o = { 0 };
	struct p2pio_expert_stats st;
	struct p2pio_error err;
	unsigned int i;
	int ret;

	if (acc > REPLAY_MAX_ACCESSES)
		return;
	o.prefetch = P2PIO_EXPERT_PREFETCH_LAG | P2PIO_EXPERT_PREFETCH_NEXT |
		     P2PIO_EXPERT_PREFETCH_ROUTER;
	if ((uint64_t)2 * in->nr_layers * in->nr_experts * in->nr_experts <= REPLAY_MAX_COUNTERS)
		o.prefetch |= P2PIO_EXPERT_PREFETCH_LEARNED;
	o.router_wrong = 0.5;
	o.capacity = in->top_k;
	for (i = 0; i < 3; i++) {
		o.policy = policies[i];
		o.per_layer = i != 1;
		memset(&st, 0, sizeof(st));
		st.size = sizeof(st);
		memset(&err, 0, sizeof(err));
		ret = p2pio_expert_replay(t, &o, &st, NULL, &err);
		CHECK(!ret);
		CHECK(st.hits + st.misses == st.accesses && st.accesses <= acc);
		CHECK(st.missed_layers <= st.misses && st.late <= st.hits);
		CHECK(st.loads <= st.misses + st.prefetches && st.prefetch_used <= st.prefetches);
	}
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static int fd2 = -1;
	static char path[64], path2[64];
	struct p2pio_expert_trace *t = NULL, *t2 = NULL;
	struct p2pio_error err;
	int ret;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fuzz_input_fd(data, size));
	if (fd2 < 0) {
		/* Where an accepted trace is saved to be loaded again. */
		fd2 = memfd_create("fuzz-trace-saved", MFD_CLOEXEC);
		if (fd2 < 0)
			abort();
		snprintf(path2, sizeof(path2), "/proc/self/fd/%d", fd2);
	}
	memset(&err, 0, sizeof(err));
	ret = p2pio_expert_trace_load(path, &t, &err);
	if (ret) {
		CHECK(ret < 0 && err.code == ret && err.msg[0] && !t);
		return 0;
	}
	walk(t);
	memset(&err, 0, sizeof(err));
	CHECK(!p2pio_expert_trace_save(t, path2, &err));
	CHECK(!p2pio_expert_trace_load(path2, &t2, &err));
	same(t, t2);
	p2pio_expert_trace_free(t2);
	replay(t);
	p2pio_expert_trace_free(t);
	return 0;
}
