/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * nvdouble_ioctl.h - ABI of the NVIDIA test double's "GPU memory" allocator.
 *
 * The double (tests/vm/nvdouble) stands in for NVIDIA's driver in the VM tests: it
 * exports the nvidia_p2p_* symbols over the BAR of an ivshmem-plain PCI device and
 * lets test programs allocate and free "GPU memory" through /dev/nvdouble, much as
 * cuMemAlloc/cuMemFree would. Allocations belong to the file they were made on and
 * are freed when it is closed (process exit), which fires the free callbacks of
 * non-persistent pins, like the real driver.
 *
 * Every struct has explicit padding; reserved fields must be zero.
 */
#ifndef NVDOUBLE_IOCTL_H
#define NVDOUBLE_IOCTL_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define NVDOUBLE_DEVICE		"/dev/nvdouble"
#define NVDOUBLE_PAGE_SIZE	65536u		/* the P2P page size of the driver */
#define NVDOUBLE_VA_OFFSET_ALIGN 256u		/* cudaMalloc's minimum alignment */

/* Place the allocation's 64 KiB pages at scattered, descending BAR offsets. */
#define NVDOUBLE_ALLOC_SCATTER	(1u << 0)
#define NVDOUBLE_ALLOC_FLAGS	NVDOUBLE_ALLOC_SCATTER

/**
 * struct nvdouble_alloc - NVDOUBLE_IOC_ALLOC argument
 * @size:	in: bytes wanted (> 0)
 * @va_offset:	in: where the returned address lies inside its first 64 KiB page, a
 *		multiple of 256 below 65536; non-zero values give unaligned addresses
 *		like cudaMalloc's sub-allocations
 * @flags:	in: NVDOUBLE_ALLOC_*
 * @gpu_va:	out: the "GPU virtual address"; never reused by a later allocation
 * @bar_offset:	out: BAR offset of the byte at @gpu_va (for SCATTER allocations, use
 *		NVDOUBLE_IOC_PAGES for the later pages)
 * @npages:	out: 64 KiB pages backing [gpu_va - va_offset, gpu_va + size)
 * @reserved:	must be zero
 */
struct nvdouble_alloc {
	__u64 size;
	__u32 va_offset;
	__u32 flags;
	__u64 gpu_va;
	__u64 bar_offset;
	__u32 npages;
	__u32 reserved;
};

/**
 * struct nvdouble_free - NVDOUBLE_IOC_FREE argument
 * @gpu_va:	the address NVDOUBLE_IOC_ALLOC returned
 *
 * Fires the free callback of every non-persistent pin of the allocation, synchronously,
 * then tears those pins down. Persistent pins keep the BAR pages allocated until they
 * are put (the real driver holds a reference on the memory for them): the address is
 * gone at once, the pages are released with the last persistent pin.
 */
struct nvdouble_free {
	__u64 gpu_va;
};

/**
 * struct nvdouble_pages - NVDOUBLE_IOC_PAGES argument
 * @gpu_va:	the address NVDOUBLE_IOC_ALLOC returned, on any fd of the calling process
 * @bar_offsets: user pointer to an array of @count __u64, filled with the BAR offset of
 *		each 64 KiB page of the allocation
 * @count:	in: array length; out: the allocation's page count
 * @reserved:	must be zero
 */
struct nvdouble_pages {
	__u64 gpu_va;
	__u64 bar_offsets;
	__u32 count;
	__u32 reserved;
};

/**
 * struct nvdouble_info - NVDOUBLE_IOC_INFO result: the double and its live objects
 * @bar_size:	size of the ivshmem BAR
 * @bar_phys:	its bus address
 * @allocs:	live allocations (including freed ones kept by persistent pins)
 * @pins_persistent: live persistent pins
 * @pins_callback: live non-persistent pins
 * @dma_mappings: live DMA mappings
 * @callbacks_fired: free callbacks fired since load
 * @pins_total:	pins made since load
 * @refused_persistent: persistent pins refused since load (module parameter)
 * @pages_free:	64 KiB BAR pages not allocated
 * @pt_version:	the page-table version pins report
 * @refused_bar1: pins refused since load because the bar1_kib limit was reached
 * @pinned_bytes: bytes pinned now (persistent and callback pins)
 * @maps_after_revoke: dma_map_pages calls refused because a free callback had already
 *		revoked the pin (a race the real driver loses with a use after free; the
 *		pinning module keeps such pins to root)
 * @reserved:	zero
 */
struct nvdouble_info {
	__u64 bar_size;
	__u64 bar_phys;
	__u32 allocs;
	__u32 pins_persistent;
	__u32 pins_callback;
	__u32 dma_mappings;
	__u64 callbacks_fired;
	__u64 pins_total;
	__u64 refused_persistent;
	__u32 pages_free;
	__u32 pt_version;
	__u64 refused_bar1;
	__u64 pinned_bytes;
	__u64 maps_after_revoke;
	__u64 reserved[1];
};

#define NVDOUBLE_IOC_MAGIC	0xD6
#define NVDOUBLE_IOC_ALLOC	_IOWR(NVDOUBLE_IOC_MAGIC, 1, struct nvdouble_alloc)
#define NVDOUBLE_IOC_FREE	_IOW(NVDOUBLE_IOC_MAGIC, 2, struct nvdouble_free)
#define NVDOUBLE_IOC_PAGES	_IOWR(NVDOUBLE_IOC_MAGIC, 3, struct nvdouble_pages)
#define NVDOUBLE_IOC_INFO	_IOR(NVDOUBLE_IOC_MAGIC, 4, struct nvdouble_info)

/*
 * mmap(2) of /dev/nvdouble at offset (gpu_va - gpu_va % 65536) - NVDOUBLE_VA_BASE maps
 * the allocation's pages (uncached) for the caller to fill or read back, as a CPU
 * mapping of GPU memory would.
 */
#define NVDOUBLE_VA_BASE	0x200000000000ull

#endif /* NVDOUBLE_IOCTL_H */
