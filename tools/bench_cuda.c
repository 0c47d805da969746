// SPDX-License-Identifier: MIT
/*
 * bench_cuda.c - the CUDA driver calls p2pio-bench's baselines make (naive, mmap, cuFile,
 * link ceiling, host registration), loaded with dlopen so the tool runs without a GPU.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

#define LOAD(field, sym)                                                                  \
	do {                                                                              \
		*(void **)&cu->field = dlsym(h, sym);                                     \
		if (!cu->field) {                                                         \
			snprintf(cu->why, sizeof(cu->why), "libcuda has no %s", sym);     \
			return false;                                                     \
		}                                                                         \
	} while (0)

bool bench_cuda_init(struct bench_cuda *cu, int device)
{
	bench_cures (*init)(unsigned int);
	bench_cures (*get)(int *, int);
	bench_cures (*count)(int *);
	bench_cures (*retain)(void **, int);
	int dev, n = 0;
	void *h;

	memset(cu, 0, sizeof(*cu));
	cu->device = device;
	h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(cu->why, sizeof(cu->why), "no CUDA driver (libcuda.so.1 not found)");
		return false;
	}
	*(void **)&init = dlsym(h, "cuInit");
	*(void **)&get = dlsym(h, "cuDeviceGet");
	*(void **)&count = dlsym(h, "cuDeviceGetCount");
	*(void **)&retain = dlsym(h, "cuDevicePrimaryCtxRetain");
	if (!init || !get || !count || !retain || init(0) || count(&n) || n <= device ||
	    get(&dev, device) || retain(&cu->ctx, dev)) {
		snprintf(cu->why, sizeof(cu->why), "no CUDA device %d (%d found)", device, n);
		return false;
	}
	LOAD(MemAlloc, "cuMemAlloc_v2");
	LOAD(MemFree, "cuMemFree_v2");
	LOAD(MemHostAlloc, "cuMemHostAlloc");
	LOAD(MemFreeHost, "cuMemFreeHost");
	LOAD(MemHostRegister, "cuMemHostRegister_v2");
	LOAD(MemHostUnregister, "cuMemHostUnregister");
	LOAD(MemcpyHtoD, "cuMemcpyHtoD_v2");
	LOAD(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
	LOAD(MemcpyDtoH, "cuMemcpyDtoH_v2");
	LOAD(MemsetD8, "cuMemsetD8_v2");
	LOAD(StreamCreate, "cuStreamCreate");
	LOAD(StreamDestroy, "cuStreamDestroy_v2");
	LOAD(StreamSynchronize, "cuStreamSynchronize");
	LOAD(StreamQuery, "cuStreamQuery");
	LOAD(CtxSetCurrent, "cuCtxSetCurrent");
	cu->ok = true;
	bench_cuda_bind(cu);
	return true;
}

void bench_cuda_bind(const struct bench_cuda *cu)
{
	if (cu && cu->ok)
		cu->CtxSetCurrent(cu->ctx);
}
