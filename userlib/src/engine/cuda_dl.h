/* SPDX-License-Identifier: MIT */
/*
 * cuda_dl.h - libcuda, loaded at run time (private to libp2pio).
 *
 * libp2pio never links libcuda: it dlopen()s libcuda.so.1 on first use and resolves every
 * entry point it needs through cuGetProcAddress (the CUDA 12+ form, with flags and a status
 * out-parameter), asking for the ABI of min(driver version, the cuda.h it was built with).
 * Without libcuda, or without a GPU, p2pio_cuda_get() fails with a reason and the library
 * works on host memory.
 */
#ifndef P2PIO_CUDA_DL_H
#define P2PIO_CUDA_DL_H

#include <stdbool.h>
#include <stdint.h>

#ifdef P2PIO_HAVE_CUDA_H
#include <cuda.h>
#else
/* The few types and constants the library uses, as libcuda's ABI defines them. */
typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef unsigned int cuuint32_t;
typedef unsigned long long cuuint64_t;
typedef struct CUctx_st *CUcontext;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
#define CUDA_SUCCESS 0
#define CUDA_ERROR_NOT_READY 600
#define CU_MEMHOSTALLOC_PORTABLE 0x01
#define CU_MEMHOSTALLOC_DEVICEMAP 0x02
#define CU_STREAM_NON_BLOCKING 0x1
#define CU_EVENT_BLOCKING_SYNC 0x1
#define CU_EVENT_DISABLE_TIMING 0x2
#define CU_STREAM_WAIT_VALUE_GEQ 0x0
#define CU_POINTER_ATTRIBUTE_MEMORY_TYPE 2
#define CU_POINTER_ATTRIBUTE_SYNC_MEMOPS 6
#define CU_MEMORYTYPE_DEVICE 2
#define CU_DEVICE_ATTRIBUTE_PCI_BUS_ID 33
#endif

/*
 * The entry points libp2pio uses; each is resolved once. The member names drop the "cu"
 * prefix; the types come from cuda.h's own prototypes so a mismatch cannot compile.
 */
#ifdef P2PIO_HAVE_CUDA_H
#define P2PIO_CU_FN(name) __typeof__(&cu##name) name
#else
#define P2PIO_CU_FN(name) void *name
#endif

struct p2pio_cuda {
	int driver_version;
	P2PIO_CU_FN(Init);
	P2PIO_CU_FN(DriverGetVersion);
	P2PIO_CU_FN(GetErrorName);
	P2PIO_CU_FN(GetErrorString);
	P2PIO_CU_FN(DeviceGetCount);
	P2PIO_CU_FN(DeviceGet);
	P2PIO_CU_FN(DeviceGetName);
	P2PIO_CU_FN(DeviceGetAttribute);
	P2PIO_CU_FN(DeviceGetPCIBusId);
	P2PIO_CU_FN(DevicePrimaryCtxRetain);
	P2PIO_CU_FN(DevicePrimaryCtxRelease);
	P2PIO_CU_FN(CtxSetCurrent);
	P2PIO_CU_FN(CtxGetCurrent);
	P2PIO_CU_FN(MemAlloc);
	P2PIO_CU_FN(MemFree);
	P2PIO_CU_FN(MemHostAlloc);
	P2PIO_CU_FN(MemFreeHost);
	P2PIO_CU_FN(MemHostGetDevicePointer);
	P2PIO_CU_FN(MemcpyHtoD);
	P2PIO_CU_FN(MemcpyDtoH);
	P2PIO_CU_FN(MemcpyHtoDAsync);
	P2PIO_CU_FN(MemsetD8);
	P2PIO_CU_FN(PointerGetAttribute);
	P2PIO_CU_FN(PointerSetAttribute);
	P2PIO_CU_FN(StreamCreate);
	P2PIO_CU_FN(StreamDestroy);
	P2PIO_CU_FN(StreamSynchronize);
	P2PIO_CU_FN(StreamWaitValue32);
	P2PIO_CU_FN(EventCreate);
	P2PIO_CU_FN(EventDestroy);
	P2PIO_CU_FN(EventRecord);
	P2PIO_CU_FN(EventQuery);
	P2PIO_CU_FN(EventSynchronize);
	P2PIO_CU_FN(EventElapsedTime);
	P2PIO_CU_FN(StreamWaitEvent);
	P2PIO_CU_FN(ModuleLoadData);
	P2PIO_CU_FN(ModuleUnload);
	P2PIO_CU_FN(ModuleGetFunction);
	P2PIO_CU_FN(LaunchKernel);
	P2PIO_CU_FN(MemcpyDtoHAsync);
	P2PIO_CU_FN(MemsetD8Async);
	P2PIO_CU_FN(CtxPushCurrent);
	P2PIO_CU_FN(CtxPopCurrent);
	/* Virtual memory management: the expert cache's stable addresses (experts/xmem_cuda.c). */
	P2PIO_CU_FN(MemGetAllocationGranularity);
	P2PIO_CU_FN(MemAddressReserve);
	P2PIO_CU_FN(MemAddressFree);
	P2PIO_CU_FN(MemCreate);
	P2PIO_CU_FN(MemRelease);
	P2PIO_CU_FN(MemMap);
	P2PIO_CU_FN(MemUnmap);
	P2PIO_CU_FN(MemSetAccess);
};

/*
 * p2pio_cuda_get() - load libcuda and initialise it, once per process.
 * @why: on failure, a sentence saying why CUDA is not usable (may be NULL).
 *
 * Return: the resolved table, or NULL (then @why says "libcuda.so.1 not found", "no CUDA
 * device", "cuInit failed: CUDA_ERROR_NO_DEVICE", ...).
 */
P2PIO_HIDDEN const struct p2pio_cuda *p2pio_cuda_get(char *why, size_t why_len);

/* p2pio_cuda_errname() - "CUDA_ERROR_OUT_OF_MEMORY" for a CUresult; never NULL. */
P2PIO_HIDDEN const char *p2pio_cuda_errname(CUresult res);

/* p2pio_cuda_errno() - the negative errno a CUresult maps to (-ENOMEM, -EINVAL, -EIO, ...). */
P2PIO_HIDDEN int p2pio_cuda_errno(CUresult res);

/*
 * p2pio_cuda_event_wait() - wait for @ev (a spinning event: not CU_EVENT_BLOCKING_SYNC) as
 * cuEventSynchronize() would, but yield the CPU between queries; returns what the last
 * query did. See cuda.c for why.
 */
P2PIO_HIDDEN CUresult p2pio_cuda_event_wait(const struct p2pio_cuda *cu, CUevent ev);

/*
 * p2pio_cuda_flags_alloc() - @n zeroed 32-bit completion words, which the host stores and
 * a GPU stream waits on (cuStreamWaitValue32): pinned host memory mapped for the device,
 * or plain memory where @cu is NULL (no GPU; *@dev is left alone).
 * @mem: the memory, set as soon as there is some: p2pio_cuda_flags_free() it even when the
 * call fails.
 *
 * Return: 0, -ENOMEM, or -ENODEV when the device cannot map the memory.
 */
P2PIO_HIDDEN int p2pio_cuda_flags_alloc(const struct p2pio_cuda *cu, size_t n, void **mem,
					CUdeviceptr *dev);
/* p2pio_cuda_flags_free() - free what p2pio_cuda_flags_alloc() gave @mem (NULL: nothing). */
P2PIO_HIDDEN void p2pio_cuda_flags_free(const struct p2pio_cuda *cu, void *mem);

#endif /* P2PIO_CUDA_DL_H */
