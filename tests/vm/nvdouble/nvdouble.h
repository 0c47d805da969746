/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * nvdouble.h - internals of the NVIDIA test double.
 *
 * One ivshmem-plain BAR is the "GPU memory". It is cut into 64 KiB pages (the P2P page
 * size of NVIDIA's driver); allocations take pages from a bitmap and get a "GPU virtual
 * address" from a cursor that never goes back, so a stale address never aliases a new
 * allocation. Pins (nvidia_p2p_get_pages*) hold a reference on their allocation.
 *
 * Locking: nvd.lock (a mutex) guards every list, the bitmap and all reference counts.
 * nvd.api_lock stands for the real driver's RM API lock: get_pages, put_pages and
 * dma_map_pages take it, and a free holds it across the free callbacks, as
 * CliDelThirdPartyP2PVidmemInfo() runs them under that lock. A pinning module whose
 * callback waits for something it holds across those calls deadlocks here as it would
 * on a GPU. dma_unmap_pages takes only nvd.lock (the driver's mapping-list semaphore).
 *
 * Freed pins and DMA mappings are never reused: they stay as poisoned tombstones until
 * unload, so a pinning module that reads a page table or DMA mapping after the driver
 * freed it faults at once (non-canonical pointers), and a call naming one is reported
 * as MISUSE where the real driver would dereference freed memory.
 */
#ifndef NVDOUBLE_H
#define NVDOUBLE_H

#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/version.h>

#include "nv-p2p.h"
#include "nvdouble_ioctl.h"

#define NVD_PAGE_SHIFT	16
#define NVD_PAGE	(1ull << NVD_PAGE_SHIFT)
/* Allocations start on 2 MiB "GPU" addresses, like large cuMemAlloc results. */
#define NVD_VA_ALIGN	(2ull << 20)

/* Page-table version of drivers up to 575 (major 1), for the version-check tests. */
#define NVD_PAGE_TABLE_VERSION_MAJOR1	0x00010002u

struct nvd_alloc {
	struct list_head node;		/* in nvd.allocs */
	struct file *owner;		/* NULL once freed */
	struct pid *tgid;		/* the process whose "address space" holds va */
	u64 va;				/* what ALLOC returned */
	u64 va_page;			/* va rounded down to 64 KiB */
	u64 size;
	u32 npages;
	u32 *page;			/* BAR page index of each page */
	unsigned int refs;		/* owner + pins + CPU mappings */
	struct list_head pins;		/* struct nvd_pin.alloc_node */
};

/* Non-canonical on x86-64: a dereference faults. */
#define NVD_POISON	((void *)0xdead00000000beefull)

enum nvd_pin_state {
	NVD_PIN_LIVE,		/* in nvd.pins */
	NVD_PIN_REVOKING,	/* its free callback runs: the driver still holds it */
	NVD_PIN_DEAD,		/* freed by the driver: a tombstone in nvd.graves */
};

struct nvd_pin {
	struct nvidia_p2p_page_table pt;	/* what the caller sees */
	enum nvd_pin_state state;
	bool revoked;				/* by a free callback, not put */
	struct list_head grave;			/* in nvd.graves unless LIVE */
	struct list_head node;			/* in nvd.pins: the live-pin registry */
	struct list_head alloc_node;
	struct nvd_alloc *alloc;
	u64 va;					/* where it was pinned */
	bool persistent;
	void (*free_callback)(void *data);
	void *data;
	struct list_head maps;			/* struct nvd_map.node */
	struct nvidia_p2p_page *pages;		/* pt.pages points into this */
	struct nvidia_p2p_page **page_ptrs;
	u8 uuid[16];				/* the "GPU UUID" */
};

struct nvd_map {
	struct nvidia_p2p_dma_mapping m;	/* what the caller sees */
	struct list_head node;			/* in nvd_pin.maps */
};

struct nvd_state {
	struct mutex api_lock;
	struct mutex lock;
	struct pci_dev *pdev;
	phys_addr_t bar_phys;
	u64 bar_size;
	u32 npages;
	unsigned long *bitmap;		/* set: page allocated */
	u64 next_va;
	struct list_head allocs;
	struct list_head pins;
	struct list_head graves;	/* struct nvd_pin.grave */
	struct list_head map_graves;	/* struct nvd_map.node, freed mappings */
	u64 maps_after_revoke;
	u32 nallocs, npins_persistent, npins_callback, nmaps;
	u64 callbacks_fired, pins_total, refused_persistent;
	u64 pinned_bytes, refused_bar1;
};

extern struct nvd_state nvd;
extern bool nvd_persistent;
extern int nvd_pt_major;
extern unsigned int nvd_bar1_kib;
extern unsigned int nvd_map_delay_ms;
u32 nvd_pt_version(void);

/* mem.c: allocations */
int nvd_alloc_new(struct file *owner, struct nvdouble_alloc *req);
int nvd_alloc_free(struct file *owner, u64 va);
void nvd_alloc_free_all(struct file *owner);
struct nvd_alloc *nvd_alloc_find_locked(struct file *owner, u64 va_page);
void nvd_alloc_put_locked(struct nvd_alloc *a);
int nvd_alloc_pages(struct file *owner, struct nvdouble_pages *req);
phys_addr_t nvd_page_phys(const struct nvd_alloc *a, u32 i);

/* p2p.c: the exported API's helpers */
void nvd_pin_destroy(struct nvd_pin *pin);
void nvd_leak_check(void);
void nvd_graves_free(void);

/* Kernel-version differences of the double live here only. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
#define nvd_vm_flags_set(vma, f) vm_flags_set(vma, f)
#else
#define nvd_vm_flags_set(vma, f) ((vma)->vm_flags |= (f))
#endif

#endif /* NVDOUBLE_H */
