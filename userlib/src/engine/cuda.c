// SPDX-License-Identifier: MIT
/*
 * cuda.c - libcuda at run time: dlopen, cuGetProcAddress, one table per process.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "engine/cuda_dl.h"

#ifndef CUDA_VERSION
#define CUDA_VERSION 12000
#endif

/* cuGetProcAddress as CUDA 12 declares it (exported as cuGetProcAddress_v2). */
typedef CUresult (*p2pio_getproc_fn)(const char *sym, void **pfn, int ver, cuuint64_t flags,
				     int *status);

static struct p2pio_cuda p2pio_cu;
static const struct p2pio_cuda *p2pio_cu_ok;
static char p2pio_cu_why[160];
static pthread_once_t p2pio_cu_once = PTHREAD_ONCE_INIT;

struct p2pio_cu_sym {
	const char *name;
	size_t off;
};

#define P2PIO_SYM(n) { "cu" #n, offsetof(struct p2pio_cuda, n) }

static const struct p2pio_cu_sym p2pio_cu_syms[] = {
	P2PIO_SYM(Init),
	P2PIO_SYM(DriverGetVersion),
	P2PIO_SYM(GetErrorName),
	P2PIO_SYM(GetErrorString),
	P2PIO_SYM(DeviceGetCount),
	P2PIO_SYM(DeviceGet),
	P2PIO_SYM(DeviceGetName),
	P2PIO_SYM(DeviceGetAttribute),
	P2PIO_SYM(DeviceGetPCIBusId),
	P2PIO_SYM(DevicePrimaryCtxRetain),
	P2PIO_SYM(DevicePrimaryCtxRelease),
	P2PIO_SYM(CtxSetCurrent),
	P2PIO_SYM(CtxGetCurrent),
	P2PIO_SYM(MemAlloc),
	P2PIO_SYM(MemFree),
	P2PIO_SYM(MemHostAlloc),
	P2PIO_SYM(MemFreeHost),
	P2PIO_SYM(MemHostGetDevicePointer),
	P2PIO_SYM(MemcpyHtoD),
	P2PIO_SYM(MemcpyDtoH),
	P2PIO_SYM(MemcpyHtoDAsync),
	P2PIO_SYM(MemsetD8),
	P2PIO_SYM(PointerGetAttribute),
	P2PIO_SYM(PointerSetAttribute),
	P2PIO_SYM(StreamCreate),
	P2PIO_SYM(StreamDestroy),
	P2PIO_SYM(StreamSynchronize),
	P2PIO_SYM(StreamWaitValue32),
	P2PIO_SYM(EventCreate),
	P2PIO_SYM(EventDestroy),
	P2PIO_SYM(EventRecord),
	P2PIO_SYM(EventQuery),
	P2PIO_SYM(EventSynchronize),
	P2PIO_SYM(EventElapsedTime),
	P2PIO_SYM(StreamWaitEvent),
	P2PIO_SYM(ModuleLoadData),
	P2PIO_SYM(ModuleUnload),
	P2PIO_SYM(ModuleGetFunction),
	P2PIO_SYM(LaunchKernel),
	P2PIO_SYM(MemcpyDtoHAsync),
	P2PIO_SYM(MemsetD8Async),
	P2PIO_SYM(CtxPushCurrent),
	P2PIO_SYM(CtxPopCurrent),
	P2PIO_SYM(MemGetAllocationGranularity),
	P2PIO_SYM(MemAddressReserve),
	P2PIO_SYM(MemAddressFree),
	P2PIO_SYM(MemCreate),
	P2PIO_SYM(MemRelease),
	P2PIO_SYM(MemMap),
	P2PIO_SYM(MemUnmap),
	P2PIO_SYM(MemSetAccess),
};

static void p2pio_cuda_load(void)
{
	CUresult (*get_version)(int *);
	p2pio_getproc_fn getproc;
	int ver = 0, ndev = 0, want, status;
	CUresult res;
	void *lib;
	size_t i;

	lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(p2pio_cu_why, sizeof(p2pio_cu_why), "libcuda.so.1 not found (%s)", dlerror());
		return;
	}
	getproc = (p2pio_getproc_fn)dlsym(lib, "cuGetProcAddress_v2");
	get_version = (CUresult(*)(int *))dlsym(lib, "cuDriverGetVersion");
	if (!getproc || !get_version) {
		snprintf(p2pio_cu_why, sizeof(p2pio_cu_why),
			 "libcuda.so.1 has no cuGetProcAddress_v2: a CUDA 12 or newer driver is needed");
		goto out_close;
	}
	if (get_version(&ver) != 0 || ver < 12000) {
		snprintf(p2pio_cu_why, sizeof(p2pio_cu_why),
			 "CUDA driver version %d is older than 12.0", ver);
		goto out_close;
	}
	p2pio_cu.driver_version = ver;
	/* Ask for the ABI both sides know: the driver's or the header's, whichever is older. */
	want = ver < CUDA_VERSION ? ver : CUDA_VERSION;
	for (i = 0; i < P2PIO_ARRAY_SIZE(p2pio_cu_syms); i++) {
		void **slot = (void **)((char *)&p2pio_cu + p2pio_cu_syms[i].off);

		status = 0;
		res = getproc(p2pio_cu_syms[i].name, slot, want, 0, &status);
		if (res != 0 || !*slot) {
			snprintf(p2pio_cu_why, sizeof(p2pio_cu_why),
				 "libcuda (driver %d) does not provide %s (error %d, status %d)", ver,
				 p2pio_cu_syms[i].name, (int)res, status);
			goto out_close;
		}
	}
	res = p2pio_cu.Init(0);
	if (res != CUDA_SUCCESS) {
		snprintf(p2pio_cu_why, sizeof(p2pio_cu_why), "cuInit failed: %s",
			 p2pio_cuda_errname(res));
		goto out_close;
	}
	res = p2pio_cu.DeviceGetCount(&ndev);
	if (res != CUDA_SUCCESS || ndev <= 0) {
		snprintf(p2pio_cu_why, sizeof(p2pio_cu_why), "no CUDA device (%s)",
			 res ? p2pio_cuda_errname(res) : "count is 0");
		goto out_close;
	}
	/* libcuda stays loaded for the life of the process, like the primary contexts. */
	p2pio_cu_ok = &p2pio_cu;
	return;

out_close:
	memset(&p2pio_cu, 0, sizeof(p2pio_cu));
	dlclose(lib);
}

const struct p2pio_cuda *p2pio_cuda_get(char *why, size_t why_len)
{
	pthread_once(&p2pio_cu_once, p2pio_cuda_load);
	if (!p2pio_cu_ok && why && why_len)
		snprintf(why, why_len, "%s", p2pio_cu_why);
	return p2pio_cu_ok;
}

const char *p2pio_cuda_errname(CUresult res)
{
	const char *name = NULL;

	if (p2pio_cu.GetErrorName && p2pio_cu.GetErrorName(res, &name) == CUDA_SUCCESS && name)
		return name;
	return "CUDA_ERROR_UNKNOWN";
}

int p2pio_cuda_errno(CUresult res)
{
	switch ((int)res) {
	case 0:
		return 0;
	case 1:		/* CUDA_ERROR_INVALID_VALUE */
	case 400:	/* CUDA_ERROR_INVALID_HANDLE */
		return -EINVAL;
	case 2:		/* CUDA_ERROR_OUT_OF_MEMORY */
		return -ENOMEM;
	case 100:	/* CUDA_ERROR_NO_DEVICE */
	case 101:	/* CUDA_ERROR_INVALID_DEVICE */
		return -ENODEV;
	case 801:	/* CUDA_ERROR_NOT_SUPPORTED */
		return -EOPNOTSUPP;
	default:
		return -EIO;
	}
}

/*
 * The context's default scheduling (CU_CTX_SCHED_AUTO: a spin wherever CPUs outnumber
 * contexts) makes cuEventSynchronize() on a spinning event hold its CPU for the whole
 * wait, and a blocking-sync event wakes its waiter 250-300 us late on the H200
 * (Documentation/moe.md, seventh round). Where the CPUs are the storage (zram) the
 * engine's readers need every CPU, and the expert cache's caller waits on its releases for
 * most of a decode: a query, then sched_yield() between queries, keeps the latency of a
 * spin and gives the CPU to any reader that wants it. Left to the primary context's flags
 * to decide, this would change the application's own waits too.
 */
CUresult p2pio_cuda_event_wait(const struct p2pio_cuda *cu, CUevent ev)
{
	CUresult cr;

	while ((cr = cu->EventQuery(ev)) == CUDA_ERROR_NOT_READY)
		sched_yield();
	return cr;
}

int p2pio_cuda_flags_alloc(const struct p2pio_cuda *cu, size_t n, void **mem, CUdeviceptr *dev)
{
	void *p = NULL;

	if (!cu) {
		p = calloc(n, sizeof(uint32_t));
		if (!p)
			return -ENOMEM;
		*mem = p;
		return 0;
	}
	if (cu->MemHostAlloc(&p, n * sizeof(uint32_t),
			     CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_PORTABLE))
		return -ENOMEM;
	memset(p, 0, n * sizeof(uint32_t));
	*mem = p;
	if (cu->MemHostGetDevicePointer(dev, p, 0))
		return -ENODEV;
	return 0;
}

void p2pio_cuda_flags_free(const struct p2pio_cuda *cu, void *mem)
{
	if (!mem)
		return;
	if (cu)
		cu->MemFreeHost(mem);
	else
		free(mem);
}
