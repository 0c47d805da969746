/* SPDX-License-Identifier: MIT */
/*
 * nvdouble.h - "GPU memory" from the NVIDIA test double (tests/vm/nvdouble), private.
 *
 * Only the VM tests use it: it lets the library's P2P path run unchanged on a machine
 * without a GPU, with the double's allocator standing in for cuMemAlloc and its mmap for
 * a CPU view of the memory (which the BOUNCE and POSIX paths write through).
 */
#ifndef P2PIO_NVDOUBLE_H
#define P2PIO_NVDOUBLE_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

struct p2pio_nvd_alloc {
	uint64_t handle;	/* the /dev/nvdouble fd that owns the allocation */
	uint64_t gpu_va;	/* the "GPU virtual address" to pin */
	void *map;		/* CPU mapping of [gpu_va, gpu_va + len) */
	size_t map_len;		/* bytes mapped, from map's 64 KiB-aligned start */
};

/* Allocate @len bytes of test-double memory and map it; -ENODEV without the double. */
P2PIO_HIDDEN int p2pio_nvd_alloc(uint64_t len, struct p2pio_nvd_alloc *a,
				 struct p2pio_error *err);
P2PIO_HIDDEN void p2pio_nvd_free(struct p2pio_nvd_alloc *a);

#endif /* P2PIO_NVDOUBLE_H */
