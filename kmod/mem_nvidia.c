// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * mem_nvidia.c - the nvidia provider: CUDA device memory pinned through NVIDIA's
 * nvidia_p2p_* API and mapped for each NVMe controller with nvidia_p2p_dma_map_pages().
 *
 * The nvidia_p2p_* symbols are referenced weakly: p2pio loads without an NVIDIA driver
 * (the pcibar provider still works), and binds to the driver (or the tests' double)
 * when that is loaded first. NVIDIA's closed kernel modules are not GPL-compatible; a
 * module importing their symbols may not use GPL-only exports such as
 * nvme_init_request(), so p2pio needs NVIDIA's open kernel modules.
 *
 * Pins are persistent (nvidia_p2p_get_pages_persistent) where the driver allows it; on
 * MIG or vGPU, or when asked, they fall back to nvidia_p2p_get_pages() with a free
 * callback that may run at any time: it revokes the pin (p2pio_mem_revoke: no new
 * commands or calls, wait for those in flight) and never calls put_pages or
 * dma_unmap_pages, since the driver frees both itself after the callback returns.
 *
 * The driver runs the callback under its API lock, which nvidia_p2p_dma_map_pages()
 * and nvidia_p2p_put_pages() take: p2pio never holds anything the callback waits for
 * across those two. What reads the driver's structures (the page table after
 * get_pages, a DMA mapping after dma_map_pages, dma_unmap_pages, PRP filling) runs
 * under a call or busy reference, which the callback waits for, so never after the
 * driver freed them. One window is the driver's own: dma_map_pages reads the page table
 * before taking its lock, so a free that completes while dma_map_pages starts is a use
 * after free inside the driver that no caller can close without deadlocking. Callback
 * pins are therefore for CAP_SYS_ADMIN only; unprivileged users get persistent pins or
 * EPERM.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/types.h>

#include "nv-p2p.h"
#include "p2pio.h"

#define P2PIO_NV_ALIGN (64ULL << 10)
/* Page-table versions: major 1 up to driver 575, major 2 from driver 580. */
#define P2PIO_NV_PT_V1 0x00010002
#define P2PIO_NV_PT_V2 0x00020000
#define P2PIO_NV_DMA_VERSION 0x00020003

/* Weak: resolved at load time if, and only if, the driver is already loaded. */
extern typeof(nvidia_p2p_get_pages) nvidia_p2p_get_pages __weak;
extern typeof(nvidia_p2p_get_pages_persistent) nvidia_p2p_get_pages_persistent __weak;
extern typeof(nvidia_p2p_put_pages) nvidia_p2p_put_pages __weak;
extern typeof(nvidia_p2p_put_pages_persistent) nvidia_p2p_put_pages_persistent __weak;
extern typeof(nvidia_p2p_dma_map_pages) nvidia_p2p_dma_map_pages __weak;
extern typeof(nvidia_p2p_dma_unmap_pages) nvidia_p2p_dma_unmap_pages __weak;
extern typeof(nvidia_p2p_free_page_table) nvidia_p2p_free_page_table __weak;
extern typeof(nvidia_p2p_free_dma_mapping) nvidia_p2p_free_dma_mapping __weak;

struct p2pio_nv {
	u64 va;				/* 64 KiB aligned start */
	u64 len;			/* 64 KiB multiple */
	struct nvidia_p2p_page_table *pt;
	unsigned int page_shift;
	bool persistent;
};

static struct p2pio_mem_provider p2pio_nv_provider;

static bool p2pio_nv_available(void)
{
	return nvidia_p2p_get_pages && nvidia_p2p_get_pages_persistent &&
	       nvidia_p2p_put_pages && nvidia_p2p_put_pages_persistent &&
	       nvidia_p2p_dma_map_pages && nvidia_p2p_dma_unmap_pages &&
	       nvidia_p2p_free_page_table && nvidia_p2p_free_dma_mapping;
}

static bool p2pio_nv_pt_ok(struct nvidia_p2p_page_table *pt)
{
	return NVIDIA_P2P_VERSION_COMPATIBLE(pt, P2PIO_NV_PT_V1) ||
	       NVIDIA_P2P_VERSION_COMPATIBLE(pt, P2PIO_NV_PT_V2);
}

static int p2pio_nv_page_shift(u32 type)
{
	switch (type) {
	case NVIDIA_P2P_PAGE_SIZE_4KB:
		return 12;
	case NVIDIA_P2P_PAGE_SIZE_64KB:
		return 16;
	case NVIDIA_P2P_PAGE_SIZE_128KB:
		return 17;
	default:
		return -EPROTO;
	}
}

static int p2pio_nv_map(struct p2pio_mem *mem, struct p2pio_nvme *nvme,
			struct p2pio_mem_map *map)
{
	struct p2pio_nv *nv = mem->priv;
	struct nvidia_p2p_dma_mapping *dm = NULL;
	int ret;

	ret = nvidia_p2p_dma_map_pages(nvme->pdev, nv->pt, &dm);
	if (ret)
		return ret;
	/* Revoked meanwhile: the driver frees @dm with the page table; never touch it. */
	if (!p2pio_mem_call_begin(mem))
		return -ENODEV;
	if (!NVIDIA_P2P_VERSION_COMPATIBLE(dm, P2PIO_NV_DMA_VERSION) ||
	    dm->entries != nv->pt->entries) {
		dev_err_ratelimited(p2pio_dev,
				    "pin %u: unexpected DMA mapping (version %#x, %u entries)\n",
				    mem->handle, dm->version, dm->entries);
		nvidia_p2p_dma_unmap_pages(nvme->pdev, nv->pt, dm);
		ret = -EPROTO;
	} else {
		map->priv = dm;
	}
	p2pio_mem_call_end(mem);
	return ret;
}

static dma_addr_t p2pio_nv_dma(struct p2pio_mem *mem, struct p2pio_mem_map *map, u64 off)
{
	struct p2pio_nv *nv = mem->priv;
	struct nvidia_p2p_dma_mapping *dm = map->priv;

	return dm->dma_addresses[off >> nv->page_shift] + (off & ((1ULL << nv->page_shift) - 1));
}

static void p2pio_nv_unmap(struct p2pio_mem *mem, struct p2pio_mem_map *map)
{
	struct p2pio_nv *nv = mem->priv;
	int ret;

	ret = nvidia_p2p_dma_unmap_pages(map->nvme->pdev, nv->pt, map->priv);
	if (ret)
		dev_warn_ratelimited(p2pio_dev, "pin %u: nvidia_p2p_dma_unmap_pages: %d\n",
				     mem->handle, ret);
}

static bool p2pio_nv_release(struct p2pio_mem *mem, bool revoked)
{
	struct p2pio_nv *nv = mem->priv;
	int ret = 0;

	if (!revoked && nv->persistent)
		ret = nvidia_p2p_put_pages_persistent(nv->va, nv->pt, 0);
	else if (!revoked)
		ret = nvidia_p2p_put_pages(0, 0, nv->va, nv->pt);
	if (ret) {
		dev_warn_ratelimited(p2pio_dev, "pin %u: nvidia_p2p_put_pages: %d\n",
				     mem->handle, ret);
		return false;
	}
	kfree(nv);
	mem->priv = NULL;
	return true;
}

static void p2pio_nv_free_callback(void *data)
{
	p2pio_mem_revoke(data);
}

static int p2pio_nv_pin(struct p2pio_ctx *ctx, struct p2pio_pin *arg, struct p2pio_mem **out)
{
	struct nvidia_p2p_page_table *pt = NULL;
	struct p2pio_mem *mem;
	struct p2pio_nv *nv;
	u64 end;
	int shift, ret;

	if (arg->flags & ~P2PIO_PIN_F_ALL)
		return -EINVAL;
	if (arg->pci_domain || arg->pci_bus || arg->pci_devfn || arg->bar)
		return -EINVAL;
	if (check_add_overflow(arg->addr, arg->length, &end) ||
	    end > U64_MAX - P2PIO_NV_ALIGN)
		return -EINVAL;
	nv = kzalloc(sizeof(*nv), GFP_KERNEL);
	if (!nv)
		return -ENOMEM;
	mem = p2pio_mem_alloc(ctx, &p2pio_nv_provider);
	if (!mem) {
		ret = -ENOMEM;
		goto out_free_nv;
	}
	mem->priv = nv;
	/* The driver pins whole 64 KiB pages: round out, keep the offset. */
	nv->va = round_down(arg->addr, P2PIO_NV_ALIGN);
	nv->len = round_up(end, P2PIO_NV_ALIGN) - nv->va;

	ret = -EOPNOTSUPP;	/* what a caller asking for a callback pin has chosen */
	if (!(arg->flags & P2PIO_PIN_F_NONPERSISTENT)) {
		ret = nvidia_p2p_get_pages_persistent(nv->va, nv->len, &pt, 0);
		if (!ret)
			nv->persistent = true;
		else if (ret == -ENOMEM)
			goto out_free_mem;	/* BAR1 full: the caller pins less */
		else
			dev_dbg(p2pio_dev, "persistent pin refused (%d), using a free callback\n",
				ret);
	}
	if (!nv->persistent) {
		/*
		 * See the top of this file: callback pins are not safe against their owner.
		 * Unprivileged users keep the persistent pin's own refusal (EINVAL for memory
		 * that is not theirs), and get EPERM where only a callback pin could work.
		 */
		if (!capable(CAP_SYS_ADMIN)) {
			if (ret == -EOPNOTSUPP || ret == -ENOTSUPP)
				ret = -EPERM;
			dev_dbg(p2pio_dev, "callback pin refused: CAP_SYS_ADMIN only (%d)\n", ret);
			goto out_free_mem;
		}
		ret = nvidia_p2p_get_pages(0, 0, nv->va, nv->len, &pt,
					   p2pio_nv_free_callback, mem);
		if (ret)
			goto out_free_mem;
	}
	/* Published before a free callback can run (it takes the driver's lock). */
	nv->pt = pt;
	/*
	 * A call reference keeps a free callback that fires right now waiting until we are
	 * done reading the page table (it is the driver's to free after the callback).
	 */
	if (!p2pio_mem_call_begin(mem)) {
		ret = -ENODEV;
		goto out_release;
	}
	if (!p2pio_nv_pt_ok(pt)) {
		dev_err_ratelimited(p2pio_dev,
				    "nvidia page table version %#x not supported (majors 1, 2)\n",
				    pt->version);
		ret = -EPROTO;
		goto out_put_pages;
	}
	shift = p2pio_nv_page_shift(pt->page_size);
	/*
	 * Entry 0 is taken to start at @nv->va, aligned to 64 KiB only: pages larger than
	 * that (128 KiB) must start there too, or every DMA address would be off by the
	 * difference.
	 */
	if (shift < 0 || ((u64)pt->entries << shift) < nv->len ||
	    (nv->va & ((1ULL << shift) - 1))) {
		dev_err_ratelimited(p2pio_dev,
				    "nvidia page table: page size type %u, %u entries for %llu bytes at %#llx\n",
				    pt->page_size, pt->entries, nv->len, nv->va);
		ret = -EPROTO;
		goto out_put_pages;
	}
	p2pio_mem_call_end(mem);
	nv->page_shift = shift;
	mem->length = arg->length;
	mem->skew = arg->addr - nv->va;
	mem->page_size = 1ULL << shift;
	mem->align = P2PIO_NV_ALIGN;
	mem->out_flags = nv->persistent ? P2PIO_PIN_OUT_PERSISTENT : P2PIO_PIN_OUT_REVOCABLE;
	*out = mem;
	return 0;

out_put_pages:
	p2pio_mem_call_end(mem);
out_release:
	/* The common release also copes with a free callback that already fired. */
	p2pio_count(ctx, live_pins, 1);
	p2pio_mem_release(ctx, mem);
	return ret;
out_free_mem:
	p2pio_mem_free_unused(mem);
out_free_nv:
	kfree(nv);
	return ret;
}

static struct p2pio_mem_provider p2pio_nv_provider = {
	.id = P2PIO_PROVIDER_NVIDIA,
	.name = "nvidia",
	.feature = P2PIO_FEAT_PROVIDER_NVIDIA,
	.owner_frees = true,
	.available = p2pio_nv_available,
	.pin = p2pio_nv_pin,
	.map = p2pio_nv_map,
	.dma = p2pio_nv_dma,
	.unmap = p2pio_nv_unmap,
	.release = p2pio_nv_release,
};

int p2pio_nvidia_init(void)
{
	p2pio_mem_provider_register(&p2pio_nv_provider);
	return 0;
}

void p2pio_nvidia_exit(void)
{
	p2pio_mem_provider_unregister(&p2pio_nv_provider);
}
