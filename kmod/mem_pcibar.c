// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * mem_pcibar.c - the pcibar provider: a range of any PCI memory BAR (an NVMe CMB, an
 * FPGA, the tests' ivshmem "GPU"), mapped for each NVMe controller with
 * dma_map_resource(), which also goes through an IOMMU when there is one. Root only:
 * it makes arbitrary device memory a DMA target.
 *
 * Not the kernel's P2PDMA helpers (pci_p2pdma_map_type(), pci_p2pdma_distance()): Debian
 * builds 6.1 without CONFIG_PCI_P2PDMA, where they are stubs that refuse every pair.
 * What they would add is the bus address of a BAR behind a host bridge that offsets it
 * from its CPU address (never on x86), and the choice of routing through a switch; p2pio
 * refuses the first (EOPNOTSUPP) and always routes through the root complex (the
 * address dma_map_resource gives, translated by the IOMMU when there is one).
 *
 * The target device going away (PCI removal) revokes its pins: no new commands, wait for
 * those in flight, undo every DMA mapping and stop using the device; later reads into
 * those pins fail with ENODEV.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/dma-mapping.h>
#include <linux/notifier.h>
#include <linux/pci.h>
#include <linux/slab.h>

#include "p2pio.h"

/* Every pcibar pin, for the removal notifier; the lock is held across revocations. */
static LIST_HEAD(p2pio_bars);
static DEFINE_MUTEX(p2pio_bars_lock);

struct p2pio_bar {
	struct list_head node;	/* on p2pio_bars */
	struct p2pio_mem *mem;
	bool enabled;		/* we hold a pci_enable_device_mem() (p2pio_bars_lock) */
	struct pci_dev *pdev;
	phys_addr_t phys;	/* page-aligned start of the mapped range */
	u64 len;		/* page-aligned length */
};

static int p2pio_bar_map(struct p2pio_mem *mem, struct p2pio_nvme *nvme,
			 struct p2pio_mem_map *map)
{
	struct p2pio_bar *bar = mem->priv;
	dma_addr_t dma;

	dma = dma_map_resource(&nvme->pdev->dev, bar->phys, bar->len, DMA_FROM_DEVICE, 0);
	if (dma_mapping_error(&nvme->pdev->dev, dma))
		return -EIO;
	map->base = dma;
	return 0;
}

static dma_addr_t p2pio_bar_dma(struct p2pio_mem *mem, struct p2pio_mem_map *map, u64 off)
{
	return map->base + off;
}

static void p2pio_bar_unmap(struct p2pio_mem *mem, struct p2pio_mem_map *map)
{
	struct p2pio_bar *bar = mem->priv;

	dma_unmap_resource(&map->nvme->pdev->dev, map->base, bar->len, DMA_FROM_DEVICE, 0);
}

static void p2pio_bar_disable_locked(struct p2pio_bar *bar)
{
	lockdep_assert_held(&p2pio_bars_lock);
	if (bar->enabled)
		pci_disable_device(bar->pdev);
	bar->enabled = false;
}

/* The target is going away: nothing is in flight; undo every mapping, let go of it. */
static void p2pio_bar_revoke(struct p2pio_mem *mem)
{
	struct p2pio_bar *bar = mem->priv;
	struct p2pio_mem_map *map;

	/*
	 * Uninterruptible: the target's removal (its driver's remove, or ours) cannot fail
	 * and must not go on while a map of its BAR stands; no process to kill waits here.
	 */
	mutex_lock(&mem->maps_lock);
	list_for_each_entry(map, &mem->maps, node) {
		mutex_lock(&map->nvme->lock);
		p2pio_mem_unmap_locked(map);
		mutex_unlock(&map->nvme->lock);
	}
	mutex_unlock(&mem->maps_lock);
	lockdep_assert_held(&p2pio_bars_lock);
	p2pio_bar_disable_locked(bar);
}

static bool p2pio_bar_release(struct p2pio_mem *mem, bool revoked)
{
	struct p2pio_bar *bar = mem->priv;

	mutex_lock(&p2pio_bars_lock);
	list_del(&bar->node);
	p2pio_bar_disable_locked(bar);
	mutex_unlock(&p2pio_bars_lock);
	pci_dev_put(bar->pdev);
	kfree(bar);
	mem->priv = NULL;
	return true;
}

static int p2pio_bar_pin(struct p2pio_ctx *ctx, struct p2pio_pin *arg, struct p2pio_mem **out);

static struct p2pio_mem_provider p2pio_bar_provider = {
	.id = P2PIO_PROVIDER_PCIBAR,
	.name = "pcibar",
	.feature = P2PIO_FEAT_PROVIDER_PCIBAR,
	.owner_frees = false,
	.pin = p2pio_bar_pin,
	.map = p2pio_bar_map,
	.dma = p2pio_bar_dma,
	.unmap = p2pio_bar_unmap,
	.revoke = p2pio_bar_revoke,
	.release = p2pio_bar_release,
};

/* True if BAR @bar holds the device's MSI-X table or pending-bit array. */
static bool p2pio_bar_has_msix(struct pci_dev *pdev, unsigned int bar)
{
	u32 table, pba;

	if (!pdev->msix_cap)
		return false;
	pci_read_config_dword(pdev, pdev->msix_cap + PCI_MSIX_TABLE, &table);
	pci_read_config_dword(pdev, pdev->msix_cap + PCI_MSIX_PBA, &pba);
	return (table & PCI_MSIX_TABLE_BIR) == bar || (pba & PCI_MSIX_PBA_BIR) == bar;
}

static int p2pio_bar_pin(struct p2pio_ctx *ctx, struct p2pio_pin *arg, struct p2pio_mem **out)
{
	struct p2pio_bar *bar;
	struct p2pio_mem *mem;
	struct pci_dev *pdev;
	u64 start, end, barlen;
	int ret;

	if (arg->flags)
		return -EINVAL;
	/* Any BAR of any device: a raw DMA target, so only for root. */
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (arg->pci_bus > 0xff || arg->pci_devfn > 0xff || arg->bar >= PCI_STD_NUM_BARS)
		return -EINVAL;
	pdev = pci_get_domain_bus_and_slot(arg->pci_domain, arg->pci_bus, arg->pci_devfn);
	if (!pdev)
		return -ENODEV;
	if (!(pci_resource_flags(pdev, arg->bar) & IORESOURCE_MEM)) {
		ret = -EINVAL;
		goto out_put;
	}
	/*
	 * Never a DMA target: bridge windows, an NVMe controller's register BAR (its
	 * doorbells; a controller memory buffer lives in another BAR), a BAR holding the
	 * MSI-X table (interrupt routing).
	 */
	if ((pdev->class >> 16) == PCI_BASE_CLASS_BRIDGE ||
	    (pdev->class == PCI_CLASS_STORAGE_EXPRESS && arg->bar == 0) ||
	    p2pio_bar_has_msix(pdev, arg->bar)) {
		ret = -EACCES;
		goto out_put;
	}
	/* dma_map_resource() takes CPU addresses: a bus offset needs P2PDMA (see top). */
	if (pci_bus_address(pdev, arg->bar) != pci_resource_start(pdev, arg->bar)) {
		ret = -EOPNOTSUPP;
		goto out_put;
	}
	barlen = pci_resource_len(pdev, arg->bar);
	if (arg->addr >= barlen || arg->length > barlen - arg->addr) {
		ret = -ERANGE;
		goto out_put;
	}
	/* Map whole pages: PRP entries after the first are page addresses. */
	start = round_down(arg->addr, PAGE_SIZE);
	end = round_up(arg->addr + arg->length, PAGE_SIZE);
	if (end > barlen) {
		ret = -ERANGE;
		goto out_put;
	}
	ret = -ENOMEM;
	bar = kzalloc(sizeof(*bar), GFP_KERNEL);
	if (!bar)
		goto out_put;
	mem = p2pio_mem_alloc(ctx, &p2pio_bar_provider);
	if (!mem)
		goto out_free_bar;
	bar->pdev = pdev;
	bar->phys = pci_resource_start(pdev, arg->bar) + start;
	bar->len = end - start;
	bar->mem = mem;
	mem->priv = bar;
	mem->length = arg->length;
	mem->skew = arg->addr - start;
	mem->page_size = PAGE_SIZE;
	mem->align = PAGE_SIZE;
	mem->out_flags = 0;
	/* Under the lock the removal notifier takes: a device already gone is refused. */
	mutex_lock(&p2pio_bars_lock);
	if (!device_is_registered(&pdev->dev) || !pci_device_is_present(pdev)) {
		ret = -ENODEV;
		goto out_unlock;
	}
	/* Peer writes only land while the device decodes memory. */
	ret = pci_enable_device_mem(pdev);
	if (ret)
		goto out_unlock;
	bar->enabled = true;
	list_add_tail(&bar->node, &p2pio_bars);
	mutex_unlock(&p2pio_bars_lock);
	*out = mem;
	return 0;

out_unlock:
	mutex_unlock(&p2pio_bars_lock);
	p2pio_mem_free_unused(mem);
out_free_bar:
	kfree(bar);
out_put:
	pci_dev_put(pdev);
	return ret;
}

/* A device leaves the bus: revoke the pins of its BARs before its resources go. */
static int p2pio_bar_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	struct pci_dev *pdev = to_pci_dev(data);
	struct p2pio_bar *bar;
	int ret = NOTIFY_DONE;

	if (action != BUS_NOTIFY_DEL_DEVICE)
		return NOTIFY_DONE;
	/* Held across the revocations, so that no release frees a pin under us. */
	mutex_lock(&p2pio_bars_lock);
	list_for_each_entry(bar, &p2pio_bars, node) {
		if (bar->pdev != pdev)
			continue;
		p2pio_mem_revoke(bar->mem);
		ret = NOTIFY_OK;
	}
	mutex_unlock(&p2pio_bars_lock);
	if (ret == NOTIFY_OK)
		dev_info(p2pio_dev, "pcibar target %s removed: its pins are revoked\n",
			 pci_name(pdev));
	return ret;
}

static struct notifier_block p2pio_bar_nb = {
	.notifier_call = p2pio_bar_notify,
	.priority = INT_MAX,
};

int p2pio_pcibar_init(void)
{
	int ret = bus_register_notifier(&pci_bus_type, &p2pio_bar_nb);

	if (ret)
		return ret;
	p2pio_mem_provider_register(&p2pio_bar_provider);
	return 0;
}

void p2pio_pcibar_exit(void)
{
	p2pio_mem_provider_unregister(&p2pio_bar_provider);
	bus_unregister_notifier(&pci_bus_type, &p2pio_bar_nb);
}
