// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * p2p.c - the nvidia_p2p_* API of NVIDIA's driver, over the double's BAR pages.
 *
 * Behaviour follows kernel-open/nvidia/nv-p2p.c of NVIDIA's open kernel modules:
 * 64 KiB alignment of address and length (-EINVAL), a non-persistent pin needs a free
 * callback and its data (-EINVAL), put_pages of a pin the callback already revoked
 * returns 0 without touching it, dma_unmap_pages of a mapping already torn down returns
 * 0, free_page_table and free_dma_mapping are no-ops. A pin is only made by the process
 * that owns the allocation, as CUDA addresses belong to one process.
 *
 * Misuse that the real driver would turn into memory corruption or a WARN (putting a
 * pin twice, the wrong put function, the wrong peer) is logged with "MISUSE", which the
 * VM harness treats like a kernel WARNING.
 */
#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/slab.h>

#include "nvdouble.h"

#define nvd_misuse(fmt, ...) pr_err("nvdouble: MISUSE: " fmt, ##__VA_ARGS__)

static struct nvd_pin *nvd_pin_lookup_locked(struct nvidia_p2p_page_table *pt)
{
	struct nvd_pin *pin;

	lockdep_assert_held(&nvd.lock);
	list_for_each_entry(pin, &nvd.pins, node)
		if (&pin->pt == pt)
			return pin;
	return NULL;
}

/* A pin the driver revoked or freed, by the page table the caller was given. */
static struct nvd_pin *nvd_grave_lookup_locked(struct nvidia_p2p_page_table *pt)
{
	struct nvd_pin *pin;

	lockdep_assert_held(&nvd.lock);
	list_for_each_entry(pin, &nvd.graves, grave)
		if (&pin->pt == pt)
			return pin;
	return NULL;
}

/*
 * Takes a pin out of the registry and off its allocation's list at once, under the lock,
 * as RM unlinks a page table from its tracker atomically: a free of the allocation that
 * runs next does not see it, so it neither fires its callback nor tears it down a
 * second time.
 */
static void nvd_pin_unlink_locked(struct nvd_pin *pin)
{
	lockdep_assert_held(&nvd.lock);
	list_del_init(&pin->node);
	list_del_init(&pin->alloc_node);
}

/* The caller's live allocation that holds all of [va, va + len). */
static struct nvd_alloc *nvd_alloc_covering_locked(u64 va, u64 len)
{
	struct pid *me = task_tgid(current);
	struct nvd_alloc *a;
	u64 span;

	list_for_each_entry(a, &nvd.allocs, node) {
		if (!a->owner || a->tgid != me || va < a->va_page)
			continue;
		span = (u64)a->npages << NVD_PAGE_SHIFT;
		if (va - a->va_page < span && len <= span - (va - a->va_page))
			return a;
	}
	return NULL;
}

static int nvd_get_pages(u64 va, u64 len, struct nvidia_p2p_page_table **page_table,
			 void (*free_callback)(void *data), void *data)
{
	bool persistent = !free_callback;
	struct nvd_alloc *a;
	u64 limit;
	int ret;
	struct nvd_pin *pin;
	u32 i, n, first;

	if (!page_table || !len || !IS_ALIGNED(va, NVD_PAGE) || !IS_ALIGNED(len, NVD_PAGE))
		return -EINVAL;
	*page_table = NULL;
	/* No allocation is larger than the BAR: refuse before sizing arrays by @len. */
	if (len > nvd.bar_size)
		return -EINVAL;
	n = len >> NVD_PAGE_SHIFT;

	pin = kzalloc(sizeof(*pin), GFP_KERNEL);
	if (!pin)
		return -ENOMEM;
	pin->pages = kvcalloc(n, sizeof(*pin->pages), GFP_KERNEL);
	pin->page_ptrs = kvcalloc(n, sizeof(*pin->page_ptrs), GFP_KERNEL);
	ret = -ENOMEM;
	if (!pin->pages || !pin->page_ptrs)
		goto out_free;

	mutex_lock(&nvd.lock);
	if (persistent && !nvd_persistent) {
		/* What MIG and vGPU do: the caller must fall back to callback pins. */
		nvd.refused_persistent++;
		ret = -ENOTSUPP;
		goto out_unlock;
	}
	limit = (u64)READ_ONCE(nvd_bar1_kib) << 10;
	if (limit && nvd.pinned_bytes + len > limit) {
		/* BAR1 is full: what the driver says when it cannot map more of VRAM. */
		nvd.refused_bar1++;
		ret = -ENOMEM;
		goto out_unlock;
	}
	a = nvd_alloc_covering_locked(va, len);
	if (!a) {
		pr_debug("nvdouble: no allocation of this process covers %#llx+%#llx\n", va, len);
		ret = -EINVAL;
		goto out_unlock;
	}
	first = (va - a->va_page) >> NVD_PAGE_SHIFT;
	for (i = 0; i < n; i++) {
		pin->pages[i].physical_address = nvd_page_phys(a, first + i);
		pin->page_ptrs[i] = &pin->pages[i];
	}
	pin->pt.version = nvd_pt_version();
	pin->pt.page_size = NVIDIA_P2P_PAGE_SIZE_64KB;
	pin->pt.pages = pin->page_ptrs;
	pin->pt.entries = n;
	memcpy(pin->uuid, "nvdouble-fakegpu", sizeof(pin->uuid));
	pin->pt.gpu_uuid = pin->uuid;
	pin->pt.flags = 0;
	pin->alloc = a;
	pin->va = va;
	pin->persistent = persistent;
	pin->free_callback = free_callback;
	pin->data = data;
	INIT_LIST_HEAD(&pin->maps);
	a->refs++;
	list_add_tail(&pin->node, &nvd.pins);
	list_add_tail(&pin->alloc_node, &a->pins);
	if (persistent)
		nvd.npins_persistent++;
	else
		nvd.npins_callback++;
	nvd.pins_total++;
	nvd.pinned_bytes += len;
	mutex_unlock(&nvd.lock);

	*page_table = &pin->pt;
	return 0;

out_unlock:
	mutex_unlock(&nvd.lock);
out_free:
	kvfree(pin->page_ptrs);
	kvfree(pin->pages);
	kfree(pin);
	return ret;
}

int nvidia_p2p_get_pages(uint64_t p2p_token, uint32_t va_space, uint64_t virtual_address,
			 uint64_t length, struct nvidia_p2p_page_table **page_table,
			 void (*free_callback)(void *data), void *data)
{
	int ret;

	if (!free_callback || !data || p2p_token || va_space)
		return -EINVAL;
	mutex_lock(&nvd.api_lock);
	ret = nvd_get_pages(virtual_address, length, page_table, free_callback, data);
	mutex_unlock(&nvd.api_lock);
	return ret;
}
EXPORT_SYMBOL(nvidia_p2p_get_pages);

int nvidia_p2p_get_pages_persistent(uint64_t virtual_address, uint64_t length,
				    struct nvidia_p2p_page_table **page_table, uint32_t flags)
{
	int ret;

	if (flags & ~(u32)NVIDIA_P2P_FLAGS_FORCE_BAR1_MAPPING)
		return -EINVAL;
	mutex_lock(&nvd.api_lock);
	ret = nvd_get_pages(virtual_address, length, page_table, NULL, NULL);
	mutex_unlock(&nvd.api_lock);
	return ret;
}
EXPORT_SYMBOL(nvidia_p2p_get_pages_persistent);

/* Undoes a mapping and keeps it as a poisoned tombstone (see nvdouble.h). */
static void nvd_map_free(struct nvd_map *m)
{
	struct device *dev = &m->m.pci_dev->dev;
	u32 i;

	for (i = 0; i < m->m.entries; i++)
		dma_unmap_resource(dev, m->m.dma_addresses[i], NVD_PAGE, DMA_BIDIRECTIONAL, 0);
	kvfree(m->m.dma_addresses);
	m->m.dma_addresses = NVD_POISON;
	m->m.entries = 0;
	m->m.version = 0;
	m->m.private = NULL;
	mutex_lock(&nvd.lock);
	list_add_tail(&m->node, &nvd.map_graves);
	mutex_unlock(&nvd.lock);
}

/*
 * Tears a pin down once it is out of the registry: its DMA mappings, its reference on
 * the allocation (which may give the pages back), the page table itself.
 */
void nvd_pin_destroy(struct nvd_pin *pin)
{
	struct nvd_map *m, *tmp;
	LIST_HEAD(maps);

	mutex_lock(&nvd.lock);
	list_del_init(&pin->node);
	list_del_init(&pin->alloc_node);	/* the unlinking caller's list, or none */
	list_for_each_entry(m, &pin->maps, node)
		nvd.nmaps--;
	list_splice_init(&pin->maps, &maps);
	nvd.pinned_bytes -= (u64)pin->pt.entries << NVD_PAGE_SHIFT;
	if (pin->persistent) {
		nvd.npins_persistent--;
	} else {
		nvd.npins_callback--;
		if (!pin->alloc->owner)
			nvd.callbacks_fired++;
	}
	nvd_alloc_put_locked(pin->alloc);
	mutex_unlock(&nvd.lock);

	list_for_each_entry_safe(m, tmp, &maps, node) {
		list_del(&m->node);
		nvd_map_free(m);
	}
	kvfree(pin->page_ptrs);
	kvfree(pin->pages);
	/* A tombstone: what the caller still points at faults when read. */
	mutex_lock(&nvd.lock);
	pin->pt.pages = NVD_POISON;
	pin->pt.gpu_uuid = NVD_POISON;
	pin->pt.entries = 0x7fffffff;
	pin->pt.version = 0;
	pin->pages = NULL;
	pin->page_ptrs = NULL;
	if (pin->state == NVD_PIN_LIVE)
		list_add_tail(&pin->grave, &nvd.graves);
	pin->state = NVD_PIN_DEAD;
	mutex_unlock(&nvd.lock);
}

int nvidia_p2p_dma_map_pages(struct pci_dev *peer, struct nvidia_p2p_page_table *page_table,
			     struct nvidia_p2p_dma_mapping **dma_mapping)
{
	struct nvd_pin *pin;
	struct nvd_map *m;
	u32 i;
	int ret;

	if (!peer || !page_table || !dma_mapping)
		return -EINVAL;
	*dma_mapping = NULL;

	/* A slow map (test-leasehold): its caller holds whatever it holds meanwhile. */
	if (READ_ONCE(nvd_map_delay_ms))
		msleep(READ_ONCE(nvd_map_delay_ms));
	mutex_lock(&nvd.api_lock);
	mutex_lock(&nvd.lock);
	pin = nvd_pin_lookup_locked(page_table);
	if (!pin) {
		struct nvd_pin *grave = nvd_grave_lookup_locked(page_table);

		/*
		 * The real driver reads the page table before taking its API lock: a map that
		 * races a free reads freed memory there. The pinning module cannot close that
		 * window (its callback must not wait for a map that waits for the API lock),
		 * so it is counted, not reported; any other stale page table is misuse.
		 */
		if (grave && grave->revoked)
			nvd.maps_after_revoke++;
		mutex_unlock(&nvd.lock);
		mutex_unlock(&nvd.api_lock);
		if (!grave || !grave->revoked)
			nvd_misuse("dma_map_pages of a page table that is not pinned\n");
		return -EINVAL;
	}
	m = kzalloc(sizeof(*m), GFP_KERNEL);
	if (!m) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	m->m.dma_addresses = kvcalloc(pin->pt.entries, sizeof(u64), GFP_KERNEL);
	if (!m->m.dma_addresses) {
		ret = -ENOMEM;
		goto out_free;
	}
	/* Page by page, like the real driver: with an IOMMU the IOVAs need not be contiguous. */
	for (i = 0; i < pin->pt.entries; i++) {
		dma_addr_t d = dma_map_resource(&peer->dev, pin->pages[i].physical_address,
						NVD_PAGE, DMA_BIDIRECTIONAL, 0);

		if (dma_mapping_error(&peer->dev, d)) {
			ret = -EIO;
			goto out_unmap;
		}
		m->m.dma_addresses[i] = d;
	}
	m->m.version = NVIDIA_P2P_DMA_MAPPING_VERSION;
	m->m.page_size_type = NVIDIA_P2P_PAGE_SIZE_64KB;
	m->m.entries = pin->pt.entries;
	m->m.private = m;
	m->m.pci_dev = peer;
	list_add_tail(&m->node, &pin->maps);
	nvd.nmaps++;
	mutex_unlock(&nvd.lock);
	mutex_unlock(&nvd.api_lock);
	*dma_mapping = &m->m;
	return 0;

out_unmap:
	while (i--)
		dma_unmap_resource(&peer->dev, m->m.dma_addresses[i], NVD_PAGE,
				   DMA_BIDIRECTIONAL, 0);
	kvfree(m->m.dma_addresses);
out_free:
	kfree(m);
out_unlock:
	mutex_unlock(&nvd.lock);
	mutex_unlock(&nvd.api_lock);
	return ret;
}
EXPORT_SYMBOL(nvidia_p2p_dma_map_pages);

int nvidia_p2p_dma_unmap_pages(struct pci_dev *peer, struct nvidia_p2p_page_table *page_table,
			       struct nvidia_p2p_dma_mapping *dma_mapping)
{
	struct nvd_map *m = NULL, *it;
	struct nvd_pin *pin;

	if (!peer || !page_table || !dma_mapping)
		return -EINVAL;

	mutex_lock(&nvd.lock);
	pin = nvd_pin_lookup_locked(page_table);
	if (pin) {
		list_for_each_entry(it, &pin->maps, node) {
			if (&it->m == dma_mapping) {
				m = it;
				break;
			}
		}
	}
	if (!pin) {
		struct nvd_pin *grave = nvd_grave_lookup_locked(page_table);
		bool revoking = grave && grave->state == NVD_PIN_REVOKING;

		mutex_unlock(&nvd.lock);
		/* During the callback the driver still has it and unmaps it itself. */
		if (revoking)
			return 0;
		nvd_misuse("dma_unmap_pages of a page table the driver has freed (%s)\n",
			   grave && grave->revoked ? "after its free callback returned" :
			   "after put_pages");
		return -EINVAL;
	}
	if (!m) {
		mutex_unlock(&nvd.lock);
		nvd_misuse("dma_unmap_pages of a mapping that is not mapped\n");
		return -EINVAL;
	}
	if (peer != m->m.pci_dev)
		nvd_misuse("dma_unmap_pages with peer %s, mapped for %s\n", pci_name(peer),
			   pci_name(m->m.pci_dev));
	list_del(&m->node);
	nvd.nmaps--;
	mutex_unlock(&nvd.lock);
	nvd_map_free(m);
	return 0;
}
EXPORT_SYMBOL(nvidia_p2p_dma_unmap_pages);

int nvidia_p2p_put_pages(uint64_t p2p_token, uint32_t va_space, uint64_t virtual_address,
			 struct nvidia_p2p_page_table *page_table)
{
	struct nvd_pin *pin;

	if (!page_table)
		return 0;

	mutex_lock(&nvd.api_lock);
	mutex_lock(&nvd.lock);
	pin = nvd_pin_lookup_locked(page_table);
	if (!pin) {
		struct nvd_pin *grave = nvd_grave_lookup_locked(page_table);

		mutex_unlock(&nvd.lock);
		mutex_unlock(&nvd.api_lock);
		/* The free callback got there first: nothing left to release. */
		if (grave && grave->revoked)
			return 0;
		nvd_misuse("put_pages of a page table that is not pinned\n");
		return -EINVAL;
	}
	if (pin->persistent) {
		mutex_unlock(&nvd.lock);
		mutex_unlock(&nvd.api_lock);
		nvd_misuse("put_pages of a persistent pin\n");
		return -EINVAL;
	}
	if (virtual_address != pin->va) {
		mutex_unlock(&nvd.lock);
		mutex_unlock(&nvd.api_lock);
		nvd_misuse("put_pages at %#llx of a pin made at %#llx\n", virtual_address,
			   pin->va);
		return -EINVAL;
	}
	nvd_pin_unlink_locked(pin);
	mutex_unlock(&nvd.lock);
	nvd_pin_destroy(pin);
	mutex_unlock(&nvd.api_lock);
	return 0;
}
EXPORT_SYMBOL(nvidia_p2p_put_pages);

int nvidia_p2p_put_pages_persistent(uint64_t virtual_address,
				    struct nvidia_p2p_page_table *page_table, uint32_t flags)
{
	struct nvd_pin *pin;

	if (flags)
		return -EINVAL;
	if (!page_table)
		return 0;

	mutex_lock(&nvd.api_lock);
	mutex_lock(&nvd.lock);
	pin = nvd_pin_lookup_locked(page_table);
	if (!pin || !pin->persistent) {
		mutex_unlock(&nvd.lock);
		mutex_unlock(&nvd.api_lock);
		nvd_misuse("put_pages_persistent of %s\n",
			   pin ? "a callback pin" : "a page table that is not pinned");
		return -EINVAL;
	}
	if (virtual_address != pin->va) {
		mutex_unlock(&nvd.lock);
		mutex_unlock(&nvd.api_lock);
		nvd_misuse("put_pages_persistent at %#llx of a pin made at %#llx\n",
			   virtual_address, pin->va);
		return -EINVAL;
	}
	nvd_pin_unlink_locked(pin);
	mutex_unlock(&nvd.lock);
	nvd_pin_destroy(pin);
	mutex_unlock(&nvd.api_lock);
	return 0;
}
EXPORT_SYMBOL(nvidia_p2p_put_pages_persistent);

/* No-ops in the open driver too: it frees both itself after the free callback. */
int nvidia_p2p_free_page_table(struct nvidia_p2p_page_table *page_table)
{
	return 0;
}
EXPORT_SYMBOL(nvidia_p2p_free_page_table);

int nvidia_p2p_free_dma_mapping(struct nvidia_p2p_dma_mapping *dma_mapping)
{
	return 0;
}
EXPORT_SYMBOL(nvidia_p2p_free_dma_mapping);

/* At unload nothing may be pinned: p2pio must have put every pin it made. */
void nvd_leak_check(void)
{
	struct nvd_pin *pin;

	mutex_lock(&nvd.lock);
	if (!list_empty(&nvd.pins) || nvd.nmaps || nvd.nallocs)
		pr_err("nvdouble: LEAK at unload: %u persistent pins, %u callback pins, %u DMA mappings, %u allocations\n",
		       nvd.npins_persistent, nvd.npins_callback, nvd.nmaps, nvd.nallocs);
	while (!list_empty(&nvd.pins)) {
		pin = list_first_entry(&nvd.pins, struct nvd_pin, node);
		nvd_pin_unlink_locked(pin);
		mutex_unlock(&nvd.lock);
		nvd_pin_destroy(pin);
		mutex_lock(&nvd.lock);
	}
	mutex_unlock(&nvd.lock);
}

/* At unload: the tombstones of every freed pin and mapping. */
void nvd_graves_free(void)
{
	struct nvd_pin *pin, *ptmp;
	struct nvd_map *m, *mtmp;

	mutex_lock(&nvd.lock);
	list_for_each_entry_safe(pin, ptmp, &nvd.graves, grave) {
		list_del(&pin->grave);
		kfree(pin);
	}
	list_for_each_entry_safe(m, mtmp, &nvd.map_graves, node) {
		list_del(&m->node);
		kfree(m);
	}
	mutex_unlock(&nvd.lock);
}
