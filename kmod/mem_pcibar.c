// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * mem_pcibar.c - the pcibar provider: a range of any PCI memory BAR (an NVMe CMB, an
 * FPGA, the tests' ivshmem "GPU"), mapped for each NVMe controller with
 * dma_map_resource(), which also goes through an IOMMU when there is one. Root only:
 * it makes arbitrary device memory a DMA target.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/dma-mapping.h>
#include <linux/pci.h>
#include <linux/slab.h>

#include "p2pio.h"

struct p2pio_bar {
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

static void p2pio_bar_unpin(struct p2pio_mem *mem)
{
	struct p2pio_bar *bar = mem->priv;

	pci_disable_device(bar->pdev);
	pci_dev_put(bar->pdev);
}

static const struct p2pio_mem_ops p2pio_bar_ops = {
	.name = "pcibar",
	.map = p2pio_bar_map,
	.dma = p2pio_bar_dma,
	.unmap = p2pio_bar_unmap,
	.unpin = p2pio_bar_unpin,
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

int p2pio_pcibar_pin(struct p2pio_ctx *ctx, struct p2pio_pin *arg, struct p2pio_mem **out)
{
	struct p2pio_bar *bar;
	struct p2pio_mem *mem;
	struct pci_dev *pdev;
	u64 start, end, barlen;
	int ret;

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
	/* Peer writes only land while the device decodes memory. */
	ret = pci_enable_device_mem(pdev);
	if (ret)
		goto out_put;
	ret = -ENOMEM;
	bar = kzalloc(sizeof(*bar), GFP_KERNEL);
	if (!bar)
		goto out_disable;
	mem = p2pio_mem_alloc(ctx, &p2pio_bar_ops);
	if (!mem)
		goto out_free_bar;
	bar->pdev = pdev;
	bar->phys = pci_resource_start(pdev, arg->bar) + start;
	bar->len = end - start;
	mem->priv = bar;
	mem->length = arg->length;
	mem->skew = arg->addr - start;
	mem->page_size = PAGE_SIZE;
	mem->align = PAGE_SIZE;
	mem->out_flags = 0;
	*out = mem;
	return 0;

out_free_bar:
	kfree(bar);
out_disable:
	pci_disable_device(pdev);
out_put:
	pci_dev_put(pdev);
	return ret;
}
