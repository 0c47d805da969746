// SPDX-License-Identifier: MIT
/*
 * test-model-gpu.c - the model on a real GPU: a whole load into device memory checked by
 * the verification kernel (which must also catch one wrong byte), and layer streaming
 * through a quarter budget on a non-blocking stream, where each layer's kernel first
 * spins and only then reads its slot: a slot reused before the stream finished with it
 * shows up as mismatches. Skips where there is no GPU.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_fixture.h"
#include "model_fixture.h"
#include "tap.h"

#define NLAYERS 12
#define SEED 0x600dcafeull
#define PASSES 3

static const char *model_path;

static uint64_t tensors_bytes(struct p2pio_model *m, struct p2pio_model_tensor **out)
{
	struct p2pio_model_info info;
	uint64_t total = 0;
	uint32_t i;

	p2pio_model_info(m, &info);
	*out = calloc(info.tensors, sizeof(**out));
	for (i = 0; i < info.tensors; i++) {
		p2pio_model_tensor_at(m, i, &(*out)[i]);
		total += (*out)[i].size;
	}
	return total;
}

static void test_whole(struct p2pio_ctx *ctx, const struct p2pio_cuda *cu)
{
	struct p2pio_error err = { 0 };
	struct p2pio_verify_result vr;
	struct p2pio_model_tensor *t, bad;
	struct p2pio_verifier *v;
	struct p2pio_model *m;
	uint64_t total;
	uint8_t byte;
	CUcontext prev;

	if (p2pio_model_open(ctx, model_path, NULL, &m, &err) || p2pio_model_load(m, NULL, NULL)) {
		tap_ok(0, "whole load into GPU memory: %s", err.msg);
		return;
	}
	total = tensors_bytes(m, &t);
	if (!tap_ok(p2pio_verifier_open(ctx, SEED, &v, &err) == 0, "GPU verifier opens")) {
		tap_diag("  %s", err.msg);
		goto out;
	}
	p2pio_verifier_check(v, t, NLAYERS * 4 + 3, NULL, 0);
	memset(&vr, 0, sizeof(vr));
	if (p2pio_verifier_result(v, &vr, true))
		vr.launches = 0;
	tap_ok(vr.bytes == total && vr.mismatches == 0 && vr.first_mismatch == P2PIO_NO_OFFSET &&
		       vr.launches >= 2,
	       "the kernel read %llu bytes in %llu launches: all the file's",
	       (unsigned long long)vr.bytes, (unsigned long long)vr.launches);
	/* Damage one byte in device memory: the kernel must find it, at its offset. */
	p2pio_model_tensor(m, "blk.7.ffn_up.weight", &bad);
	prev = p2pio_ctx_enter(ctx);
	cu->MemcpyDtoH(&byte, bad.addr + 12345, 1);
	byte ^= 0x10;
	cu->MemcpyHtoD(bad.addr + 12345, &byte, 1);
	p2pio_ctx_leave(ctx, prev);
	p2pio_verifier_check(v, t, NLAYERS * 4 + 3, NULL, 0);
	p2pio_verifier_result(v, &vr, true);
	tap_ok(vr.mismatches == 1 && vr.first_mismatch == bad.file_offset + 12345,
	       "one flipped byte in VRAM is found at file offset %llu",
	       (unsigned long long)vr.first_mismatch);
	p2pio_verifier_close(v);
out:
	free(t);
	p2pio_model_close(m);
}

static void test_stream(struct p2pio_ctx *ctx, const struct p2pio_cuda *cu, uint32_t flags,
			uint64_t spin_ns)
{
	struct p2pio_streamer_opts so = { .flags = flags };
	struct p2pio_stream_stats st;
	struct p2pio_verify_result vr;
	struct p2pio_error err = { 0 };
	struct p2pio_model_info info;
	struct p2pio_streamer *s;
	struct p2pio_verifier *v;
	struct p2pio_model *m;
	struct p2pio_layer l;
	uint64_t want = 0;
	CUstream cs = NULL;
	int p, i, errs = 0;

	if (p2pio_model_open(ctx, model_path, NULL, &m, &err)) {
		tap_ok(0, "model opens: %s", err.msg);
		return;
	}
	p2pio_model_info(m, &info);
	so.budget = info.resident_bytes + info.slot_bytes * NLAYERS / 4;
	if (p2pio_streamer_open(m, &so, &s, &err) || p2pio_verifier_open(ctx, SEED, &v, &err)) {
		tap_ok(0, "streamer and verifier: %s", err.msg);
		p2pio_model_close(m);
		return;
	}
	cs = gpu_fixture_stream(ctx, cu);
	for (p = 0; p < PASSES; p++) {
		for (i = 0; i < NLAYERS; i++) {
			if (p2pio_streamer_acquire(s, (uint32_t)i, cs, &l)) {
				errs++;
				continue;
			}
			/* Busy first, read after: a slot recycled too early reads wrong. */
			p2pio_verifier_check(v, NULL, 0, cs, spin_ns);
			p2pio_verifier_check(v, l.tensors, l.ntensors, cs, 0);
			want += l.bytes;
			if (p2pio_streamer_release(s, (uint32_t)i, cs))
				errs++;
		}
	}
	p2pio_verifier_result(v, &vr, true);
	p2pio_streamer_stats(s, &st, NULL, 0);
	tap_is_int(errs, 0, "flags %#x, spin %llu us: %d passes of %u layers through %u slots",
		   flags, (unsigned long long)spin_ns / 1000, PASSES, NLAYERS,
		   p2pio_streamer_slots(s));
	tap_ok(vr.bytes == want && vr.mismatches == 0,
	       "every byte of every acquired layer is the file's (%llu bytes, %llu wrong)",
	       (unsigned long long)vr.bytes, (unsigned long long)vr.mismatches);
	tap_ok(st.reuses > 0 && st.acquires == PASSES * NLAYERS,
	       "slots were reused %llu times; stall %.3f ms, host waited %.3f ms",
	       (unsigned long long)st.reuses, (double)st.stall_ns * 1e-6,
	       (double)st.host_wait_ns * 1e-6);
	p2pio_verifier_close(v);
	p2pio_streamer_close(s);
	gpu_fixture_stream_destroy(ctx, cu, cs);
	p2pio_model_close(m);
}

int main(void)
{
	const struct p2pio_cuda *cu;
	struct p2pio_ctx *ctx;

	ctx = gpu_fixture_ctx(&cu);
	tap_plan_lazy();
	model_path = gpu_fixture_tmpfile("p2pio-model-gpu");
	if (model_fixture_write(model_path, NLAYERS, SEED))
		tap_bail("cannot write the test model");
	test_whole(ctx, cu);
	test_stream(ctx, cu, 0, 0);
	test_stream(ctx, cu, 0, 2000000);
	test_stream(ctx, cu, P2PIO_STREAM_LRU, 2000000);
	test_stream(ctx, cu, P2PIO_STREAM_NO_PREFETCH, 500000);
	p2pio_ctx_destroy(ctx);
	return tap_exit();
}
