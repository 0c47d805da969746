// SPDX-License-Identifier: MIT
/*
 * test-vmm-gpu.c - what the expert cache assumes of CUDA virtual memory, on a real GPU:
 * one physical chunk may be mapped at two homes at once and reads the same bytes through
 * both, and unmapping one home leaves the other intact (the cache maps a victim's chunk
 * over the missing expert's home first and unmaps the victim's home later, off the miss
 * path: xmem.h). Also prints what each call costs (TAP comments), with an idle device and
 * with a stream blocked on a completion word, the state a miss finds the GPU in: whether
 * cuMemMap / cuMemSetAccess / cuMemUnmap wait for queued work decides where the cache
 * may call them. Skips where there is no GPU.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gpu_fixture.h"
#include "tap.h"

#define NHOMES 8
#define REPS 40
#define BLOCK_MS 30

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct vmm {
	const struct p2pio_cuda *cu;
	CUmemAllocationProp prop;
	CUmemAccessDesc access;
	size_t len;
	CUdeviceptr va;
	CUmemGenericAllocationHandle chunk[2];
};

static CUdeviceptr home(const struct vmm *v, int i)
{
	return v->va + (CUdeviceptr)i * v->len;
}

static int map(const struct vmm *v, int h, int c, uint64_t *map_ns, uint64_t *acc_ns)
{
	uint64_t t0 = now_ns(), t1;

	if (v->cu->MemMap(home(v, h), v->len, 0, v->chunk[c], 0) != CUDA_SUCCESS)
		return -1;
	t1 = now_ns();
	if (v->cu->MemSetAccess(home(v, h), v->len, &v->access, 1) != CUDA_SUCCESS)
		return -1;
	if (map_ns)
		*map_ns += t1 - t0;
	if (acc_ns)
		*acc_ns += now_ns() - t1;
	return 0;
}

static int unmap(const struct vmm *v, int h, uint64_t *ns)
{
	uint64_t t0 = now_ns();
	int ret = v->cu->MemUnmap(home(v, h), v->len) == CUDA_SUCCESS ? 0 : -1;

	if (ns)
		*ns += now_ns() - t0;
	return ret;
}

/* Two homes over one chunk read the same bytes; one unmapped, the other still does. */
static void test_alias(const struct vmm *v)
{
	uint8_t *a = malloc(v->len), *b = malloc(v->len);
	size_t i;
	int ok;

	if (!a || !b)
		tap_bail("out of memory");
	for (i = 0; i < v->len; i++)
		a[i] = (uint8_t)(i * 131 + (i >> 12));
	ok = !map(v, 0, 0, NULL, NULL) && v->cu->MemcpyHtoD(home(v, 0), a, v->len) == CUDA_SUCCESS;
	tap_ok(ok, "chunk mapped at home 0 and written");
	ok = !map(v, 1, 0, NULL, NULL) && v->cu->MemcpyDtoH(b, home(v, 1), v->len) == CUDA_SUCCESS &&
	     !memcmp(a, b, v->len);
	tap_ok(ok, "the same chunk mapped at home 1 too reads the same bytes there");
	memset(b, 0, v->len);
	ok = !unmap(v, 0, NULL) && v->cu->MemcpyDtoH(b, home(v, 1), v->len) == CUDA_SUCCESS &&
	     !memcmp(a, b, v->len);
	tap_ok(ok, "home 0 unmapped: home 1 still reads every byte");
	ok = !unmap(v, 1, NULL);
	tap_ok(ok, "home 1 unmapped");
	free(a);
	free(b);
}

struct release_arg {
	volatile uint32_t *word;
	unsigned int ms;
};

static void *release_later(void *p)
{
	struct release_arg *r = p;

	usleep(r->ms * 1000);
	__atomic_store_n(r->word, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Mean cost of map, set-access and unmap (a chunk moving between homes, as a miss moves a
 * victim's chunk), idle or with @cs blocked on a completion word for BLOCK_MS: a call that
 * waits for the device shows as about BLOCK_MS.
 */
static void time_calls(const struct vmm *v, CUstream cs, volatile uint32_t *word,
		       CUdeviceptr word_dev, bool blocked)
{
	uint64_t m = 0, a = 0, u = 0, t0, longest = 0;
	struct release_arg ra = { word, BLOCK_MS };
	pthread_t th;
	int i, fails = 0;

	if (blocked) {
		*word = 0;
		v->cu->StreamWaitValue32(cs, word_dev, 1, CU_STREAM_WAIT_VALUE_GEQ);
		pthread_create(&th, NULL, release_later, &ra);
	}
	for (i = 0; i < REPS; i++) {
		int h = 2 + i % (NHOMES - 2);

		t0 = now_ns();
		fails += map(v, h, 1, &m, &a);
		fails += unmap(v, h, &u);
		if (now_ns() - t0 > longest)
			longest = now_ns() - t0;
	}
	tap_ok(!fails, "%d map/unmap pairs of %zu MiB%s", REPS, v->len >> 20,
	       blocked ? " while a stream waits" : "");
	tap_diag("%s: cuMemMap %.1f us, cuMemSetAccess %.1f us, cuMemUnmap %.1f us per call "
		 "(means of %d, %zu MiB); longest pair %.1f us", blocked ? "stream blocked" : "idle",
		 m / 1e3 / REPS, a / 1e3 / REPS, u / 1e3 / REPS, REPS, v->len >> 20, longest / 1e3);
	if (blocked) {
		pthread_join(th, NULL);
		v->cu->StreamSynchronize(cs);
		tap_diag("the pairs took %s than the stream's %d ms wait: %s",
			 longest > BLOCK_MS * 500000ull ? "longer" : "less",
			 BLOCK_MS, longest > BLOCK_MS * 500000ull ?
			 "they wait for queued work" : "they do not wait for queued work");
	}
}

int main(void)
{
	const struct p2pio_cuda *cu;
	struct p2pio_ctx *ctx;
	struct vmm v = { 0 };
	CUdeviceptr word_dev = 0;
	void *word = NULL;
	CUstream cs = NULL;
	CUcontext prev;
	size_t gran = 0;
	uint64_t t0;
	int i;

	ctx = gpu_fixture_ctx(&cu);
	tap_plan_lazy();
	prev = p2pio_ctx_enter(ctx);
	v.cu = cu;
	v.prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	v.prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	v.prop.location.id = ctx->dev;
	v.access.location = v.prop.location;
	v.access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	if (cu->MemGetAllocationGranularity(&gran, &v.prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED) ||
	    !gran)
		tap_bail("no allocation granularity");
	/* A gpt-oss-120b expert: 12.6 MiB, 14 MiB once rounded to the 2 MiB granularity. */
	v.len = (14u << 20) / gran * gran;
	if (cu->MemAddressReserve(&v.va, v.len * NHOMES, gran, 0, 0))
		tap_bail("cuMemAddressReserve");
	for (i = 0; i < 2; i++) {
		t0 = now_ns();
		if (cu->MemCreate(&v.chunk[i], v.len, &v.prop, 0))
			tap_bail("cuMemCreate");
		tap_diag("cuMemCreate of %zu MiB: %.1f us", v.len >> 20, (now_ns() - t0) / 1e3);
	}
	if (cu->MemHostAlloc(&word, 4, CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_PORTABLE) ||
	    cu->MemHostGetDevicePointer(&word_dev, word, 0) ||
	    cu->StreamCreate(&cs, CU_STREAM_NON_BLOCKING))
		tap_bail("completion word or stream");
	test_alias(&v);
	time_calls(&v, cs, word, word_dev, false);
	time_calls(&v, cs, word, word_dev, true);
	cu->StreamDestroy(cs);
	cu->MemFreeHost(word);
	for (i = 0; i < 2; i++)
		cu->MemRelease(v.chunk[i]);
	cu->MemAddressFree(v.va, v.len * NHOMES);
	p2pio_ctx_leave(ctx, prev);
	p2pio_ctx_destroy(ctx);
	return tap_exit();
}
