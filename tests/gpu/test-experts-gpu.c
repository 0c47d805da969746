// SPDX-License-Identifier: MIT
/*
 * test-experts-gpu.c - the expert cache on a real GPU: CUDA virtual memory (nothing
 * committed at open, an expert at the same device address every time it is resident),
 * a decode through a small budget on a non-blocking stream where each expert's kernel
 * first spins and only then reads every byte of the expert: an expert evicted (unmapped
 * or reloaded) before the stream finished with it shows up as mismatches or a fault.
 * Also with the previous token's routing prefetched, and one flipped byte in VRAM must
 * be found; wrong hints withdrawn (or kept) with the GPU's memory behind them. Skips
 * where there is no GPU.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine_fixture.h"	/* efx_drop_cache() */
#include "gpu_fixture.h"
#include "model_fixture.h"
#include "tap.h"

#define NLAYERS 6
#define NEXPERTS 16
#define HIDDEN 512
#define FFN 256
#define USED 4
#define TOKENS 24
#define SEED 0xe4b37a11ull

static const char *model_path;

static void route(uint32_t token, uint32_t layer, uint32_t *ids)
{
	uint32_t i;

	for (i = 0; i < USED; i++)
		ids[i] = (token / 4 + layer * 3 + i * (1 + (token + layer + i) % 3)) % NEXPERTS;
	/* Distinct: bump duplicates to the next free id. */
	for (i = 1; i < USED; i++) {
		uint32_t j;

		for (j = 0; j < i; j++)
			if (ids[j] == ids[i]) {
				ids[i] = (ids[i] + 1) % NEXPERTS;
				j = (uint32_t)-1;
			}
	}
}

/* Queue the check of every slice of (layer, expert) at @ptr; bytes queued. */
static uint64_t check_expert(struct p2pio_experts *x, struct p2pio_verifier *v, uint32_t layer,
			     uint32_t expert, uint64_t ptr, CUstream cs)
{
	struct p2pio_model_tensor t[8];
	struct p2pio_expert_slice s[8];
	uint64_t bytes = 0;
	int n, i;

	n = p2pio_experts_slices(x, layer, expert, s, 8);
	for (i = 0; i < n && i < 8; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].name = s[i].name;
		t[i].addr = ptr + s[i].offset;
		t[i].size = s[i].size;
		t[i].file_offset = s[i].file_offset;
		bytes += s[i].size;
	}
	if (n > 0 && p2pio_verifier_check(v, t, (uint32_t)n, cs, 0))
		return 0;
	return bytes;
}

static void test_decode(struct p2pio_ctx *ctx, const struct p2pio_cuda *cu, uint32_t flags,
			uint64_t spin_ns, uint32_t capacity)
{
	static uint64_t home[NLAYERS][NEXPERTS];
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_experts_io io = { .size = sizeof(io) };
	struct p2pio_experts_info info;
	struct p2pio_experts_opts o;
	struct p2pio_verify_result vr;
	struct p2pio_error err = { 0 };
	struct p2pio_experts *x = NULL;
	struct p2pio_verifier *v = NULL;
	struct p2pio_model *m;
	uint32_t tok, l, i, ids[USED];
	uint64_t ptr[USED], want = 0;
	int errs = 0, moved = 0;
	CUstream cs = NULL;

	memset(home, 0, sizeof(home));
	if (p2pio_model_open(ctx, model_path, NULL, &m, &err)) {
		tap_ok(0, "model opens: %s", err.msg);
		return;
	}
	if (p2pio_experts_open(m, NULL, &x, &err)) {
		tap_ok(0, "cache opens: %s", err.msg);
		goto out_model;
	}
	p2pio_experts_info(x, &info);
	p2pio_experts_close(x);
	p2pio_experts_opts_init(&o);
	o.budget = info.dense_bytes + capacity * info.expert_bytes;
	o.flags = flags;
	if (p2pio_experts_open(m, &o, &x, &err) || p2pio_verifier_open(ctx, SEED, &v, &err)) {
		tap_ok(0, "cache and verifier: %s", err.msg);
		goto out_model;
	}
	p2pio_experts_info(x, &info);
	p2pio_experts_stats(x, NULL, &io, false);
	tap_ok(info.stable && io.committed == 0 && info.capacity == capacity,
	       "CUDA VMM cache: stable addresses, nothing committed at open, capacity %u "
	       "(%llu-byte experts)", capacity, (unsigned long long)info.expert_bytes);
	cs = gpu_fixture_stream(ctx, cu);
	for (tok = 0; tok < TOKENS; tok++) {
		p2pio_experts_token_begin(x);
		for (l = 0; l < NLAYERS; l++) {
			route(tok, l, ids);
			if (p2pio_experts_require(x, l, ids, USED, cs, ptr)) {
				errs++;
				continue;
			}
			/* Busy first, read after: an expert recycled too early reads wrong. */
			p2pio_verifier_check(v, NULL, 0, cs, spin_ns);
			for (i = 0; i < USED; i++) {
				want += check_expert(x, v, l, ids[i], ptr[i], cs);
				if (home[l][ids[i]] && home[l][ids[i]] != ptr[i])
					moved++;
				home[l][ids[i]] = ptr[i];
			}
			if (p2pio_experts_release(x, l, ids, USED, cs))
				errs++;
		}
		if (p2pio_experts_token_end(x))
			errs++;
	}
	memset(&vr, 0, sizeof(vr));
	p2pio_verifier_result(v, &vr, true);
	p2pio_experts_stats(x, &st, &io, false);
	tap_is_int(errs, 0, "flags %#x, spin %llu us: %d tokens x %d layers x %d experts", flags,
		   (unsigned long long)spin_ns / 1000, TOKENS, NLAYERS, USED);
	tap_ok(vr.bytes == want && want && vr.mismatches == 0,
	       "the kernels read every byte of every required expert: %llu bytes, %llu wrong "
	       "(first at %llu)", (unsigned long long)vr.bytes, (unsigned long long)vr.mismatches,
	       (unsigned long long)vr.first_mismatch);
	tap_is_int(moved, 0, "an expert has the same device address every time");
	tap_ok(st.misses > 0 && st.evictions > 0 && io.peak <= capacity * info.expert_bytes,
	       "%llu hits, %llu misses, %llu evictions, %llu prefetches (%llu used); peak %llu of "
	       "%llu bytes; %llu chunks created for %llu maps; stall %.3f ms over %llu waits",
	       (unsigned long long)st.hits, (unsigned long long)st.misses,
	       (unsigned long long)st.evictions, (unsigned long long)st.prefetches,
	       (unsigned long long)st.prefetch_used, (unsigned long long)io.peak,
	       (unsigned long long)(capacity * info.expert_bytes), (unsigned long long)io.creates,
	       (unsigned long long)io.maps, (double)io.stall_ns * 1e-6,
	       (unsigned long long)io.stalls);
	gpu_fixture_stream_destroy(ctx, cu, cs);
out_model:
	p2pio_verifier_close(v);
	p2pio_experts_close(x);
	p2pio_model_close(m);
}

/* A flipped byte of a resident expert is found; a batch of cold misses is timed. */
static void test_flip_and_miss(struct p2pio_ctx *ctx, const struct p2pio_cuda *cu)
{
	struct p2pio_experts_io io = { .size = sizeof(io) };
	struct p2pio_expert_slice s[8];
	struct p2pio_experts_opts o;
	struct p2pio_experts_info info;
	struct p2pio_verify_result vr;
	struct p2pio_error err = { 0 };
	struct p2pio_experts *x = NULL;
	struct p2pio_verifier *v = NULL;
	struct p2pio_model *m;
	uint32_t ids[USED] = { 1, 5, 9, 13 }, i;
	uint64_t ptr[USED], t0;
	CUstream cs = NULL;
	CUcontext prev;
	uint8_t byte;

	if (p2pio_model_open(ctx, model_path, NULL, &m, &err)) {
		tap_ok(0, "model opens: %s", err.msg);
		return;
	}
	p2pio_experts_opts_init(&o);
	if (p2pio_experts_open(m, &o, &x, &err) || p2pio_verifier_open(ctx, SEED, &v, &err)) {
		tap_ok(0, "cache and verifier: %s", err.msg);
		goto out_model;
	}
	p2pio_experts_info(x, &info);
	cs = gpu_fixture_stream(ctx, cu);
	t0 = p2pio_now_ns();
	p2pio_experts_require(x, 2, ids, USED, cs, ptr);
	prev = p2pio_ctx_enter(ctx);
	cu->StreamSynchronize(cs);
	p2pio_ctx_leave(ctx, prev);
	t0 = p2pio_now_ns() - t0;
	p2pio_experts_stats(x, NULL, &io, false);
	tap_diag("  a batch of %d cold misses (%llu bytes read): %.1f us until the stream ran on",
		 USED, (unsigned long long)io.bytes, (double)t0 * 1e-3);
	for (i = 0; i < USED; i++)
		check_expert(x, v, 2, ids[i], ptr[i], cs);
	p2pio_experts_slices(x, 2, ids[2], s, 8);
	p2pio_verifier_result(v, &vr, true);
	tap_ok(vr.mismatches == 0 && vr.bytes > 0, "four experts loaded at once are right");
	prev = p2pio_ctx_enter(ctx);
	cu->MemcpyDtoH(&byte, ptr[2] + s[1].offset + 7, 1);
	byte ^= 0x40;
	cu->MemcpyHtoD(ptr[2] + s[1].offset + 7, &byte, 1);
	p2pio_ctx_leave(ctx, prev);
	for (i = 0; i < USED; i++)
		check_expert(x, v, 2, ids[i], ptr[i], cs);
	p2pio_verifier_result(v, &vr, true);
	tap_ok(vr.mismatches == 1 && vr.first_mismatch == s[1].file_offset + 7,
	       "one flipped byte of an expert in VRAM is found at file offset %llu",
	       (unsigned long long)vr.first_mismatch);
	p2pio_experts_release(x, 2, ids, USED, cs);
	gpu_fixture_stream_destroy(ctx, cu, cs);
out_model:
	p2pio_verifier_close(v);
	p2pio_experts_close(x);
	p2pio_model_close(m);
}

/*
 * Hints on the GPU path: one engine thread and one read in flight, every expert of a
 * layer of larger experts hinted, one of them pinned, then the layer required on a
 * stream with one of them. Wrong hints not yet read are withdrawn (their chunks given
 * back, their homes unmapped, no completion word stored for a stream that never waited),
 * the pinned one stays; then every expert of the layer required and checked by the GPU.
 * With P2PIO_EXPERTS_KEEP_WRONG_HINTS nothing is withdrawn.
 */
#define HINTS 8

static void test_hints(const struct p2pio_cuda *cu, bool keep)
{
	struct p2pio_experts_io io = { .size = sizeof(io) };
	struct p2pio_expert_layer_stats ls;
	struct p2pio_experts_opts o;
	struct p2pio_ctx_opts co;
	struct p2pio_verify_result vr;
	struct p2pio_error err = { 0 };
	struct p2pio_experts *x = NULL;
	struct p2pio_verifier *v = NULL;
	struct p2pio_model *m = NULL;
	struct p2pio_ctx *ctx = NULL;
	uint32_t all[HINTS], zero = 0, five = 5, e;
	uint64_t ptr[HINTS], want = 0;
	char path[4200];
	CUstream cs = NULL;
	CUcontext prev;
	int errs = 0;

	snprintf(path, sizeof(path), "%s.hints", model_path);
	p2pio_ctx_opts_init(&co);
	co.threads = 1;
	co.queue_depth = 1;
	p2pio_experts_opts_init(&o);
	o.flags = keep ? P2PIO_EXPERTS_KEEP_WRONG_HINTS : 0;
	for (e = 0; e < HINTS; e++)
		all[e] = e;
	if (model_fixture_write_moe(path, 2, HINTS, 1024, 1024, SEED) ||
	    p2pio_ctx_create(&co, &ctx, &err) || p2pio_model_open(ctx, path, NULL, &m, &err) ||
	    p2pio_experts_open(m, &o, &x, &err) || p2pio_verifier_open(ctx, SEED, &v, &err)) {
		tap_ok(0, "one engine thread, a cache of 1.6 MiB experts: %s", err.msg);
		goto out;
	}
	efx_drop_cache(path);
	cs = gpu_fixture_stream(ctx, cu);
	if (p2pio_experts_prefetch(x, 1, all, HINTS) != HINTS ||
	    p2pio_experts_pin(x, 1, &five, 1, true) ||
	    p2pio_experts_require(x, 1, &zero, 1, cs, ptr)) {
		tap_ok(0, "%d hints, one pinned, one required", HINTS);
		goto out;
	}
	want += check_expert(x, v, 1, 0, ptr[0], cs);
	errs += p2pio_experts_release(x, 1, &zero, 1, cs) != 0;
	prev = p2pio_ctx_enter(ctx);
	cu->StreamSynchronize(cs);
	p2pio_ctx_leave(ctx, prev);
	/* The hints kept finish loading: requiring the pinned one waits for it. */
	errs += p2pio_experts_require(x, 1, &five, 1, cs, ptr) != 0;
	want += check_expert(x, v, 1, 5, ptr[0], cs);
	errs += p2pio_experts_release(x, 1, &five, 1, cs) != 0;
	p2pio_experts_stats(x, NULL, &io, false);
	p2pio_experts_layer_stats(x, 1, &ls);
	if (keep)
		tap_ok(io.cancels == 0 && ls.resident == HINTS,
		       "keeping wrong hints on a GPU: none withdrawn, all %d resident", HINTS);
	else
		/* Withdrawn unread, or cut short (some reads done, the rest withdrawn). */
		tap_ok(io.cancels >= HINTS / 2 && io.cancels + io.cut_short <= HINTS - 2 &&
		       io.loads == HINTS - io.cancels &&
		       ls.resident == io.loads - io.cut_short,
		       "on a GPU: %llu of %d wrong hints withdrawn unread, %llu cut short, %llu "
		       "loads, %u resident", (unsigned long long)io.cancels, HINTS - 2,
		       (unsigned long long)io.cut_short, (unsigned long long)io.loads, ls.resident);
	if (p2pio_experts_require(x, 1, all, HINTS, cs, ptr)) {
		tap_ok(0, "every expert of the layer required after");
		goto out;
	}
	for (e = 0; e < HINTS; e++)
		want += check_expert(x, v, 1, e, ptr[e], cs);
	errs += p2pio_experts_release(x, 1, all, HINTS, cs) != 0;
	memset(&vr, 0, sizeof(vr));
	p2pio_verifier_result(v, &vr, true);
	tap_ok(!errs && want && vr.bytes == want && vr.mismatches == 0,
	       "%s: the pinned one, then every expert of the layer, read by the GPU: %llu bytes, "
	       "%llu wrong", keep ? "kept" : "withdrawn", (unsigned long long)vr.bytes,
	       (unsigned long long)vr.mismatches);
out:
	if (cs)
		gpu_fixture_stream_destroy(ctx, cu, cs);
	p2pio_verifier_close(v);
	p2pio_experts_close(x);
	p2pio_model_close(m);
	p2pio_ctx_destroy(ctx);
	unlink(path);
}

int main(void)
{
	const struct p2pio_cuda *cu;
	struct p2pio_ctx *ctx;

	ctx = gpu_fixture_ctx(&cu);
	tap_plan_lazy();
	model_path = gpu_fixture_tmpfile("p2pio-experts-gpu");
	if (model_fixture_write_moe(model_path, NLAYERS, NEXPERTS, HIDDEN, FFN, SEED))
		tap_bail("cannot write the test model");
	test_decode(ctx, cu, 0, 0, 12);
	test_decode(ctx, cu, 0, 200000, 12);
	test_decode(ctx, cu, P2PIO_EXPERTS_PREFETCH_PREV, 200000, 12);
	test_decode(ctx, cu, P2PIO_EXPERTS_PREFETCH_LEARNED, 200000, 12);
	test_decode(ctx, cu, 0, 50000, USED);
	test_flip_and_miss(ctx, cu);
	p2pio_ctx_destroy(ctx);
	/* Misses read alone (no prefetch starting beside them): the same bytes on the GPU. */
	ctx = gpu_fixture_ctx_flags(&cu, P2PIO_CTX_URGENT_ALONE);
	tap_diag("the context's misses read alone (P2PIO_CTX_URGENT_ALONE):");
	test_decode(ctx, cu, P2PIO_EXPERTS_PREFETCH_PREV, 200000, 12);
	p2pio_ctx_destroy(ctx);
	test_hints(cu, false);
	test_hints(cu, true);
	return tap_exit();
}
