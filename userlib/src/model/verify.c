// SPDX-License-Identifier: MIT
/*
 * model_verify.c - check tensors in target memory against the deterministic pattern of
 * synthetic models: a kernel per batch of tensors on the GPU, a loop on the CPU otherwise.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "model/model.h"
#include "model/kernels.h"
#include "common/pattern.h"

#define VERIFY_THREADS 256
/* Blocks per SM: enough to cover memory latency with a grid-stride loop. */
#define VERIFY_BLOCKS_PER_SM 8
#define VERIFY_MAX_STREAMS 8

struct p2pio_verifier {
	struct p2pio_ctx *ctx;
	uint64_t seed;
	const struct p2pio_cuda *cu;		/* NULL: check on the CPU */
	CUmodule mod;
	CUfunction verify;
	CUfunction spin;
	CUdeviceptr dres;
	uint32_t grid;
	struct p2pio_verify_result acc;		/* CPU results; bytes and launches on a GPU */
	CUstream streams[VERIFY_MAX_STREAMS];	/* where checks were queued since the last result */
	uint32_t nstreams;
};

static int gpu_open(struct p2pio_verifier *v, struct p2pio_error *err)
{
	struct p2pio_verify_dev init = { 0, 0, UINT64_MAX, 0 };
	char why[160];
	int sms = 0;
	CUresult res;

	if (!p2pio_model_fatbin_len)
		return p2pio_set_error(err, -ENOTSUP, P2PIO_NO_OFFSET,
				       "GPU verification is unavailable: libp2pio was built without "
				       "nvcc, so it has no verification kernels");
	v->cu = p2pio_cuda_get(why, sizeof(why));
	if (!v->cu)
		return p2pio_set_error(err, -ENODEV, P2PIO_NO_OFFSET, "CUDA: %s", why);
	res = v->cu->ModuleLoadData(&v->mod, p2pio_model_fatbin);
	if (res == CUDA_SUCCESS)
		res = v->cu->ModuleGetFunction(&v->verify, v->mod, "p2pio_verify");
	if (res == CUDA_SUCCESS)
		res = v->cu->ModuleGetFunction(&v->spin, v->mod, "p2pio_spin");
	if (res == CUDA_SUCCESS)
		res = v->cu->MemAlloc(&v->dres, sizeof(init));
	if (res == CUDA_SUCCESS)
		res = v->cu->MemcpyHtoD(v->dres, &init, sizeof(init));
	if (res != CUDA_SUCCESS)
		return p2pio_set_error(err, p2pio_cuda_errno(res), P2PIO_NO_OFFSET,
				       "loading the verification kernels: %s",
				       p2pio_cuda_errname(res));
	v->cu->DeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, v->ctx->dev);
	v->grid = (uint32_t)(sms > 0 ? sms : 16) * VERIFY_BLOCKS_PER_SM;
	return 0;
}

int p2pio_verifier_open(struct p2pio_ctx *ctx, uint64_t seed, struct p2pio_verifier **out,
			struct p2pio_error *err)
{
	struct p2pio_verifier *v = calloc(1, sizeof(*v));
	CUcontext prev;
	int ret = 0;

	if (!v)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	v->ctx = ctx;
	v->seed = seed;
	v->acc.first_mismatch = P2PIO_NO_OFFSET;
	if (p2pio_ctx_device(ctx) != P2PIO_DEVICE_HOST) {
		prev = p2pio_ctx_enter(ctx);
		ret = gpu_open(v, err);
		p2pio_ctx_leave(ctx, prev);
	}
	if (ret) {
		p2pio_verifier_close(v);
		return ret;
	}
	*out = v;
	return 0;
}

void p2pio_verifier_close(struct p2pio_verifier *v)
{
	CUcontext prev;

	if (!v)
		return;
	if (v->cu) {
		prev = p2pio_ctx_enter(v->ctx);
		if (v->dres)
			v->cu->MemFree(v->dres);
		if (v->mod)
			v->cu->ModuleUnload(v->mod);
		p2pio_ctx_leave(v->ctx, prev);
	}
	free(v);
}

/* The CPU check: every byte compared, whole file-aligned words summed like the kernel. */
static void cpu_check(struct p2pio_verifier *v, const struct p2pio_model_tensor *t)
{
	const uint8_t *p = t->host;
	uint64_t off = t->file_offset, len = t->size, i = 0, w;

	if (!p) {
		/* Not loaded, or no CPU view: every byte counts as wrong. */
		v->acc.mismatches += len;
		if (v->acc.first_mismatch > off)
			v->acc.first_mismatch = off;
		v->acc.bytes += len;
		v->acc.launches++;
		return;
	}

	while (i < len) {
		size_t bad = p2pio_pattern_check_range(v->seed, off + i, p + i, len - i);

		if (bad == len - i)
			break;
		if (v->acc.first_mismatch > off + i + bad)
			v->acc.first_mismatch = off + i + bad;
		v->acc.mismatches++;
		i += bad + 1;
	}
	for (w = (off + 7) / 8; w < (off + len) / 8; w++)
		v->acc.checksum += p2pio_pattern_get_le64(p + (w * 8 - off));
	v->acc.bytes += len;
	v->acc.launches++;
}

static void cpu_spin(uint64_t ns)
{
	uint64_t t0 = p2pio_model_now_ns();

	while (p2pio_model_now_ns() - t0 < ns)
		;
}

static int gpu_launch(struct p2pio_verifier *v, struct p2pio_verify_args *args, CUstream cs)
{
	void *params[] = { args };
	CUresult res;

	res = v->cu->LaunchKernel(v->verify, v->grid, 1, 1, VERIFY_THREADS, 1, 1, 0, cs, params,
				   NULL);
	if (res != CUDA_SUCCESS)
		return p2pio_cuda_errno(res);
	v->acc.launches++;
	args->n = 0;
	return 0;
}

/* Remember @cs so that p2pio_verifier_result() waits for it. */
static int note_stream(struct p2pio_verifier *v, CUstream cs)
{
	uint32_t i;

	for (i = 0; i < v->nstreams; i++)
		if (v->streams[i] == cs)
			return 0;
	if (v->nstreams == VERIFY_MAX_STREAMS)
		return -E2BIG;
	v->streams[v->nstreams++] = cs;
	return 0;
}

int p2pio_verifier_check(struct p2pio_verifier *v, const struct p2pio_model_tensor *t,
			 uint32_t n, void *stream, uint64_t compute_ns)
{
	struct p2pio_verify_args args;
	CUstream cs = (CUstream)stream;
	CUcontext prev;
	uint32_t i;
	int ret = 0;

	if (!v->cu) {
		for (i = 0; i < n; i++)
			cpu_check(v, &t[i]);
		if (compute_ns)
			cpu_spin(compute_ns);
		return 0;
	}
	memset(&args, 0, sizeof(args));
	args.seed = v->seed;
	args.res = (struct p2pio_verify_dev *)(uintptr_t)v->dres;
	ret = note_stream(v, cs);
	if (ret)
		return ret;
	prev = p2pio_ctx_enter(v->ctx);
	for (i = 0; i < n && !ret; i++) {
		args.r[args.n].addr = t[i].addr;
		args.r[args.n].file_off = t[i].file_offset;
		args.r[args.n].len = t[i].size;
		args.n++;
		v->acc.bytes += t[i].size;
		if (args.n == P2PIO_VERIFY_MAX_RANGES)
			ret = gpu_launch(v, &args, cs);
	}
	if (!ret && args.n)
		ret = gpu_launch(v, &args, cs);
	if (!ret && compute_ns) {
		void *params[] = { &compute_ns };
		CUresult res = v->cu->LaunchKernel(v->spin, 1, 1, 1, 1, 1, 1, 0, cs, params, NULL);

		if (res != CUDA_SUCCESS)
			ret = p2pio_cuda_errno(res);
	}
	p2pio_ctx_leave(v->ctx, prev);
	return ret;
}

int p2pio_verifier_result(struct p2pio_verifier *v, struct p2pio_verify_result *res, bool reset)
{
	struct p2pio_verify_dev d = { 0, 0, UINT64_MAX, 0 };
	CUresult r = CUDA_SUCCESS;
	CUcontext prev;
	uint32_t i;

	if (!v->cu) {
		*res = v->acc;
		goto out_reset;
	}
	prev = p2pio_ctx_enter(v->ctx);
	for (i = 0; i < v->nstreams && r == CUDA_SUCCESS; i++)
		r = v->cu->StreamSynchronize(v->streams[i]);
	v->nstreams = 0;
	if (r == CUDA_SUCCESS)
		r = v->cu->MemcpyDtoH(&d, v->dres, sizeof(d));
	if (r == CUDA_SUCCESS && reset) {
		struct p2pio_verify_dev init = { 0, 0, UINT64_MAX, 0 };

		r = v->cu->MemcpyHtoD(v->dres, &init, sizeof(init));
	}
	p2pio_ctx_leave(v->ctx, prev);
	if (r != CUDA_SUCCESS)
		return p2pio_cuda_errno(r);
	*res = v->acc;
	res->checksum = d.checksum;
	res->mismatches = d.mismatches;
	res->first_mismatch = d.first_mismatch;
out_reset:
	if (reset) {
		memset(&v->acc, 0, sizeof(v->acc));
		v->acc.first_mismatch = P2PIO_NO_OFFSET;
	}
	return 0;
}
