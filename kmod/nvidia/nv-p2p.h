/* SPDX-License-Identifier: MIT */
/*
 * nv-p2p.h - p2pio's own declaration of NVIDIA's kernel peer-to-peer API (nvidia_p2p_*).
 *
 * What: the types, constants and functions that nvidia.ko exports for third-party
 * peer-to-peer DMA into GPU memory, with the same names, values and struct layouts as
 * kernel-open/nvidia/nv-p2p.h of NVIDIA's open kernel modules, driver 580 and later
 * (page-table version major 2, which appended the 'flags' field to the page table).
 * Drivers up to 575 report page-table version 0x00010002 (major 1, no 'flags' field);
 * p2pio reads only the fields common to both and checks the version at run time.
 *
 * Why: the module must build where no NVIDIA driver source is installed (CI, the VM
 * tests), against the test double in tests/vm that exports these symbols. When the real
 * driver's sources are found (NVIDIA_SRC=, or /usr/src/nvidia-*), kmod/Kbuild uses the
 * real nv-p2p.h and Module.symvers instead of this file.
 *
 * Only what p2pio and its test double use is declared; the mailbox/rsync parts of the
 * real header are left out.
 */
#ifndef _P2PIO_NV_P2P_H_
#define _P2PIO_NV_P2P_H_

#include <linux/types.h>

struct pci_dev;

#define NVIDIA_P2P_MAJOR_VERSION_MASK 0xffff0000
#define NVIDIA_P2P_MINOR_VERSION_MASK 0x0000ffff

#define NVIDIA_P2P_MAJOR_VERSION(v) (((v) & NVIDIA_P2P_MAJOR_VERSION_MASK) >> 16)
#define NVIDIA_P2P_MINOR_VERSION(v) (((v) & NVIDIA_P2P_MINOR_VERSION_MASK))

#define NVIDIA_P2P_MAJOR_VERSION_MATCHES(p, v) \
	(NVIDIA_P2P_MAJOR_VERSION((p)->version) == NVIDIA_P2P_MAJOR_VERSION(v))

/* Same major, and a minor at least the one compiled against. */
#define NVIDIA_P2P_VERSION_COMPATIBLE(p, v)    \
	(NVIDIA_P2P_MAJOR_VERSION_MATCHES(p, v) && \
	 (NVIDIA_P2P_MINOR_VERSION((p)->version) >= (NVIDIA_P2P_MINOR_VERSION(v))))

/* Announces nvidia_p2p_get_pages_persistent(), as the real header does. */
#define NVIDIA_P2P_CAP_GET_PAGES_PERSISTENT_API

enum nvidia_p2p_page_size_type {
	NVIDIA_P2P_PAGE_SIZE_4KB = 0,
	NVIDIA_P2P_PAGE_SIZE_64KB,
	NVIDIA_P2P_PAGE_SIZE_128KB,
	NVIDIA_P2P_PAGE_SIZE_COUNT
};

/* One GPU page as seen through BAR1: its bus (CPU physical) address. */
struct nvidia_p2p_page {
	uint64_t physical_address;
	union nvidia_p2p_request_registers {
		struct {
			uint32_t wreqmb_h;
			uint32_t rreqmb_h;
			uint32_t rreqmb_0;
			uint32_t reserved[3];
		} fermi;
	} registers;
};

/* Driver 580+: 0x00020000. Drivers up to 575: 0x00010002. */
#define NVIDIA_P2P_PAGE_TABLE_VERSION 0x00020000

#define NVIDIA_P2P_PAGE_TABLE_VERSION_COMPATIBLE(p) \
	NVIDIA_P2P_VERSION_COMPATIBLE(p, NVIDIA_P2P_PAGE_TABLE_VERSION)

#define NVIDIA_P2P_PAGE_TABLE_FLAGS_CPU_CACHEABLE 0x1

struct nvidia_p2p_page_table {
	uint32_t version;
	uint32_t page_size;	/* enum nvidia_p2p_page_size_type */
	struct nvidia_p2p_page **pages;
	uint32_t entries;
	uint8_t *gpu_uuid;
	uint32_t flags;		/* major 2 only */
};

#define NVIDIA_P2P_FLAGS_DEFAULT 0
#define NVIDIA_P2P_FLAGS_FORCE_BAR1_MAPPING 1

#define NVIDIA_P2P_DMA_MAPPING_VERSION 0x00020003

#define NVIDIA_P2P_DMA_MAPPING_VERSION_COMPATIBLE(p) \
	NVIDIA_P2P_VERSION_COMPATIBLE(p, NVIDIA_P2P_DMA_MAPPING_VERSION)

/* The pages of a page table as DMA addresses for one peer device. */
struct nvidia_p2p_dma_mapping {
	uint32_t version;
	enum nvidia_p2p_page_size_type page_size_type;
	uint32_t entries;
	uint64_t *dma_addresses;
	void *private;
	struct pci_dev *pci_dev;
};

/*
 * Pins [virtual_address, +length) of the calling process's CUDA address space
 * (va_space and p2p_token must be 0). Both must be 64 KiB aligned. free_callback(data)
 * is called when the memory goes away under the pin (cuMemFree, process exit); after it
 * returns, the driver frees the page table and its DMA mappings itself. May sleep.
 */
int nvidia_p2p_get_pages(uint64_t p2p_token, uint32_t va_space,
			 uint64_t virtual_address, uint64_t length,
			 struct nvidia_p2p_page_table **page_table,
			 void (*free_callback)(void *data), void *data);

/*
 * Pins like nvidia_p2p_get_pages() but without a callback: the pages stay until
 * nvidia_p2p_put_pages_persistent(). Refused (-ENOTSUPP/-EINVAL) on MIG and vGPU.
 */
int nvidia_p2p_get_pages_persistent(uint64_t virtual_address, uint64_t length,
				    struct nvidia_p2p_page_table **page_table,
				    uint32_t flags);

/* Maps a page table for DMA by @peer. */
int nvidia_p2p_dma_map_pages(struct pci_dev *peer,
			     struct nvidia_p2p_page_table *page_table,
			     struct nvidia_p2p_dma_mapping **dma_mapping);

int nvidia_p2p_dma_unmap_pages(struct pci_dev *peer,
			       struct nvidia_p2p_page_table *page_table,
			       struct nvidia_p2p_dma_mapping *dma_mapping);

/* Releases a pin of nvidia_p2p_get_pages(); never from inside its free callback. */
int nvidia_p2p_put_pages(uint64_t p2p_token, uint32_t va_space,
			 uint64_t virtual_address,
			 struct nvidia_p2p_page_table *page_table);

int nvidia_p2p_put_pages_persistent(uint64_t virtual_address,
				    struct nvidia_p2p_page_table *page_table,
				    uint32_t flags);

/*
 * Called from inside a free callback to hand back the structures of the revoked pin
 * (no-ops in the open driver, which frees them itself after the callback returns).
 */
int nvidia_p2p_free_page_table(struct nvidia_p2p_page_table *page_table);
int nvidia_p2p_free_dma_mapping(struct nvidia_p2p_dma_mapping *dma_mapping);

#endif /* _P2PIO_NV_P2P_H_ */
