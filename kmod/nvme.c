// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * nvme.c - NVMe Read commands whose data pointer is pinned device memory.
 *
 * A command is a blk-mq passthrough request (REQ_OP_DRV_IN) on the namespace queue,
 * filled by nvme_init_request() with our own struct nvme_command. It carries no bio, so
 * nvme-pci sends our PRPs unchanged: PRP1 (dword aligned), PRP2 as the second page or a
 * PRP list, lists chained through their last slot, list pages from a dma_pool of the
 * controller. Completion runs in interrupt context: nothing there sleeps.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/dmapool.h>
#include <linux/ktime.h>
#include <linux/pci.h>
#include <linux/slab.h>

#include "compat.h"
#include "p2pio.h"
#include "prp.h"

static LIST_HEAD(p2pio_nvmes);
static DEFINE_MUTEX(p2pio_nvmes_lock);

/*
 * The current binding of @pdev, which must be bound to its driver. Under the list lock,
 * which the unbind notifier takes after the driver has let go: either the notifier finds
 * the new binding and undoes it, or we see the device unbound and refuse.
 */
struct p2pio_nvme *p2pio_nvme_get(struct pci_dev *pdev)
{
	struct device_driver *drv;
	struct p2pio_nvme *nvme;

	mutex_lock(&p2pio_nvmes_lock);
	list_for_each_entry(nvme, &p2pio_nvmes, node) {
		if (nvme->pdev == pdev && !nvme->dead) {
			kref_get(&nvme->ref);
			goto out_unlock;
		}
	}
	/*
	 * Unbound, bound to another driver (a file system still mounted from an earlier
	 * binding), or being removed: no PRP pool for a device nvme-pci does not drive.
	 */
	drv = READ_ONCE(pdev->dev.driver);
	if (!drv || strcmp(drv->name, "nvme") || !device_is_registered(&pdev->dev)) {
		nvme = ERR_PTR(-ENODEV);
		goto out_unlock;
	}
	nvme = kzalloc(sizeof(*nvme), GFP_KERNEL);
	if (!nvme) {
		nvme = ERR_PTR(-ENOMEM);
		goto out_unlock;
	}
	nvme->prp_pool = dma_pool_create("p2pio_prp", &pdev->dev, P2PIO_CTRL_PAGE_SIZE,
					 P2PIO_CTRL_PAGE_SIZE, 0);
	if (!nvme->prp_pool) {
		kfree(nvme);
		nvme = ERR_PTR(-ENOMEM);
		goto out_unlock;
	}
	kref_init(&nvme->ref);
	mutex_init(&nvme->lock);
	INIT_LIST_HEAD(&nvme->maps);
	nvme->pdev = pci_dev_get(pdev);
	list_add(&nvme->node, &p2pio_nvmes);
out_unlock:
	mutex_unlock(&p2pio_nvmes_lock);
	return nvme;
}

static void p2pio_nvme_free(struct kref *ref)
{
	struct p2pio_nvme *nvme = container_of(ref, struct p2pio_nvme, ref);

	list_del(&nvme->node);
	mutex_unlock(&p2pio_nvmes_lock);
	WARN_ON_ONCE(!list_empty(&nvme->maps));
	dma_pool_destroy(nvme->prp_pool);	/* NULL once unbound */
	mutex_destroy(&nvme->lock);
	pci_dev_put(nvme->pdev);
	kfree(nvme);
}

void p2pio_nvme_put(struct p2pio_nvme *nvme)
{
	kref_put_mutex(&nvme->ref, p2pio_nvme_free, &p2pio_nvmes_lock);
}

/*
 * The controller's driver has let go of it (unbind, or removal, which unbinds first),
 * which waited for every request of its queues: no command of ours is in flight and none
 * can start. Undo the DMA mappings made for it and destroy the PRP pool now, while the
 * device still has its IOMMU group and sysfs directory. The maps stay on their pins'
 * lists, marked unmapped, until the pins are released; pins and files stay valid objects
 * whose reads fail with ENODEV. A rebind makes a new struct p2pio_nvme.
 */
static void p2pio_nvme_gone(struct p2pio_nvme *nvme)
{
	struct p2pio_mem_map *map;

	/*
	 * Uninterruptible: the unbind cannot fail, and it must wait for a map in progress
	 * (made under this lock) so as to undo it before the device leaves its IOMMU group.
	 */
	mutex_lock(&nvme->lock);
	nvme->dead = true;
	list_for_each_entry(map, &nvme->maps, nvme_node)
		p2pio_mem_unmap_locked(map);
	mutex_unlock(&nvme->lock);
	dma_pool_destroy(nvme->prp_pool);
	nvme->prp_pool = NULL;
	dev_info(p2pio_dev, "NVMe controller %s unbound: its reads fail from now on\n",
		 pci_name(nvme->pdev));
}

static int p2pio_pci_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	struct pci_dev *pdev = to_pci_dev(data);
	struct p2pio_nvme *nvme, *found = NULL;

	if (action != BUS_NOTIFY_UNBOUND_DRIVER)
		return NOTIFY_DONE;
	mutex_lock(&p2pio_nvmes_lock);
	list_for_each_entry(nvme, &p2pio_nvmes, node) {
		if (nvme->pdev == pdev && !nvme->dead) {
			kref_get(&nvme->ref);
			found = nvme;
			/* Under the list lock: p2pio_nvme_get() never hands it out again. */
			WRITE_ONCE(nvme->dead, true);
			break;
		}
	}
	mutex_unlock(&p2pio_nvmes_lock);
	if (!found)
		return NOTIFY_DONE;
	p2pio_nvme_gone(found);
	p2pio_nvme_put(found);
	return NOTIFY_OK;
}

/* At unbind, before removal takes the device out of its IOMMU group and sysfs. */
static struct notifier_block p2pio_pci_nb = {
	.notifier_call = p2pio_pci_notify,
	.priority = INT_MAX,
};

int p2pio_nvme_init(void)
{
	return bus_register_notifier(&pci_bus_type, &p2pio_pci_nb);
}

void p2pio_nvme_exit(void)
{
	bus_unregister_notifier(&pci_bus_type, &p2pio_pci_nb);
}

struct p2pio_prp_page {
	__le64 *va;
	dma_addr_t dma;
};

struct p2pio_cmd {
	struct p2pio_ctx *ctx;
	struct p2pio_rd *rd;
	struct p2pio_file *f;
	struct p2pio_mem *mem;
	struct p2pio_nvme *nvme;
	u64 t_start;
	u64 len;
	u32 nr_pages;
	struct p2pio_prp_page pages[];
};

static void p2pio_prp_free(struct p2pio_cmd *c)
{
	u32 i;

	for (i = 0; i < c->nr_pages; i++)
		dma_pool_free(c->nvme->prp_pool, c->pages[i].va, c->pages[i].dma);
	c->nr_pages = 0;
}

struct p2pio_prp_dest {
	struct p2pio_mem *mem;
	struct p2pio_mem_map *map;
};

static u64 p2pio_prp_dma(const void *arg, u64 off)
{
	const struct p2pio_prp_dest *d = arg;

	return d->mem->prov->dma(d->mem, d->map, off);
}

static P2PIO_END_IO_RET p2pio_end_io(struct request *rq, blk_status_t sts)
{
	struct p2pio_cmd *c = rq->end_io_data;
	struct p2pio_ctx *ctx = c->ctx;
	u64 ns = ktime_get_ns() - c->t_start;
	int err = blk_status_to_errno(sts);

	if (c->nr_pages)
		p2pio_count(ctx, live_prp_pages, -(s64)c->nr_pages);
	p2pio_prp_free(c);
	p2pio_count_latency(ctx, ns);
	if (err) {
		p2pio_count(ctx, errors, 1);
		dev_dbg(p2pio_dev, "read of %llu bytes at nsid %u failed: %d\n", c->len,
			c->f->nsid, err);
	} else {
		p2pio_count(ctx, bytes, c->len);
	}
	p2pio_mem_put(c->mem);
	p2pio_file_put(c->f);
	p2pio_cmd_done(ctx, c->rd, err);
	kfree(c);
	return P2PIO_END_IO_FREE;
}

/*
 * Issues one NVMe Read of @len bytes at namespace byte offset @doff into internal
 * offset @moff of @mem. The caller holds a command slot; on success the command owns
 * a reference on @rd, @mem and @f until p2pio_end_io().
 *
 * Everything that may sleep (the command, a request, which waits for a tag or a frozen
 * queue, PRP list pages) comes first; the busy reference on @mem, which a revocation
 * waits for, is held only from filling the PRPs on.
 */
int p2pio_nvme_read(struct p2pio_ctx *ctx, struct p2pio_rd *rd, struct p2pio_file *f,
		    u64 doff, struct p2pio_mem *mem, struct p2pio_mem_map *map,
		    u64 moff, u64 len)
{
	struct p2pio_prp_dest d = { .mem = mem, .map = map };
	__le64 *lists[P2PIO_MAX_PRP_PAGES];
	u64 list_dma[P2PIO_MAX_PRP_PAGES];
	struct nvme_command nc = {};
	struct request *rq;
	struct p2pio_cmd *c;
	u32 npages, i;
	int ret;

	/* Providers keep the offset within a 4 KiB page (struct p2pio_mem_provider.dma). */
	npages = p2pio_prp_pages(p2pio_prp_first(moff), len);
	if (WARN_ON_ONCE(npages > P2PIO_MAX_PRP_PAGES))
		return -EIO;
	c = kzalloc(struct_size(c, pages, npages), GFP_KERNEL_ACCOUNT);
	if (!c)
		return -ENOMEM;
	c->ctx = ctx;
	c->rd = rd;
	c->f = f;
	c->mem = mem;
	c->nvme = f->nvme;
	c->len = len;

	rq = blk_mq_alloc_request(f->q, REQ_OP_DRV_IN, 0);
	if (IS_ERR(rq)) {
		ret = PTR_ERR(rq);
		goto out_free_cmd;
	}
	/*
	 * Holding a request, the controller's unbind cannot complete under us: its pool
	 * and the map's DMA addresses stay valid until the command ends.
	 */
	if (unlikely(!c->nvme->prp_pool || READ_ONCE(map->unmapped))) {
		ret = -ENODEV;
		goto out_free_rq;
	}
	for (i = 0; i < npages; i++) {
		c->pages[i].va = dma_pool_alloc(c->nvme->prp_pool, GFP_KERNEL,
						&c->pages[i].dma);
		if (!c->pages[i].va) {
			ret = -ENOMEM;
			goto out_free_prp;
		}
		c->nr_pages++;
		lists[i] = c->pages[i].va;
		list_dma[i] = c->pages[i].dma;
	}

	/*
	 * The file's layout lease may have broken while we slept above (a command slot, a tag,
	 * PRP pages): the extents are trusted only if no break has started. A break that
	 * starts after this check waits for this command (we hold @f->busy since
	 * p2pio_file_get(), and p2pio_lease_break() keeps the kernel from timing the lease
	 * out however long we are preempted before the issue or the command takes). The
	 * same check stops a read whose file became a verity file meanwhile.
	 */
	ret = p2pio_file_check(f);
	if (unlikely(ret))
		goto out_free_prp;
	/* From here to the issue nothing sleeps. */
	if (!p2pio_mem_get(mem)) {
		ret = -ENODEV;
		goto out_free_prp;
	}
	if (WARN_ON_ONCE(p2pio_prp_first(mem->prov->dma(mem, map, moff)) !=
			 p2pio_prp_first(moff))) {
		ret = -EIO;
		goto out_put_mem;
	}
	nc.rw.opcode = nvme_cmd_read;
	nc.rw.nsid = cpu_to_le32(f->nsid);
	nc.rw.slba = cpu_to_le64(doff >> f->lba_shift);
	nc.rw.length = cpu_to_le16((len >> f->lba_shift) - 1);
	p2pio_prp_fill(p2pio_prp_dma, &d, moff, len, lists, list_dma, &nc.rw.dptr.prp1,
		       &nc.rw.dptr.prp2);
	if (c->nr_pages)
		p2pio_count(ctx, live_prp_pages, c->nr_pages);
	nvme_init_request(rq, &nc);
	rq->end_io = p2pio_end_io;
	rq->end_io_data = c;

	atomic_inc(&rd->pending);
	atomic_inc(&f->busy);
	p2pio_count(ctx, commands, 1);
	c->t_start = ktime_get_ns();
	p2pio_execute_rq_nowait(rq);
	return 0;

out_put_mem:
	p2pio_mem_put(mem);
out_free_prp:
	/* Not yet counted in live_prp_pages. */
	p2pio_prp_free(c);
out_free_rq:
	blk_mq_free_request(rq);
out_free_cmd:
	kfree(c);
	return ret;
}
