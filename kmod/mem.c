// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * mem.c - pinned device memory, whatever the provider: handles, per-controller DMA
 * mappings made on first use, in-flight accounting, revocation and release.
 *
 * Lifetime rules:
 *  - a command holds a "busy" reference on its memory from before its PRPs are built
 *    until its completion; references are only granted while the pin is LIVE;
 *  - revocation (the owner's free callback) marks the pin REVOKED, waits until no
 *    command is in flight, and lets the provider drop its view; the owner frees the
 *    pages and mappings itself, so unmap/unpin are never called afterwards;
 *  - release (unpin, close) marks it RELEASING, and unmaps and unpins unless it was
 *    revoked first.
 * mem->lock is a spinlock held only for state changes, never across provider calls,
 * so a provider's callback can always take it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/device.h>
#include <linux/pci.h>
#include <linux/slab.h>

#include "p2pio.h"

struct p2pio_mem *p2pio_mem_alloc(struct p2pio_ctx *ctx, const struct p2pio_mem_ops *ops)
{
	struct p2pio_mem *mem = kzalloc(sizeof(*mem), GFP_KERNEL_ACCOUNT);

	if (!mem)
		return NULL;
	mem->ops = ops;
	mem->ctx = ctx;
	mem->state = P2PIO_MEM_LIVE;
	spin_lock_init(&mem->lock);
	INIT_LIST_HEAD(&mem->maps);
	atomic_set(&mem->busy, 0);
	init_waitqueue_head(&mem->idle);
	return mem;
}

bool p2pio_mem_get(struct p2pio_mem *mem)
{
	unsigned long flags;
	bool live;

	spin_lock_irqsave(&mem->lock, flags);
	live = mem->state == P2PIO_MEM_LIVE;
	if (live)
		atomic_inc(&mem->busy);
	spin_unlock_irqrestore(&mem->lock, flags);
	return live;
}

/* Called from interrupt context. The lock keeps @mem alive across the wake-up. */
void p2pio_mem_put(struct p2pio_mem *mem)
{
	unsigned long flags;

	spin_lock_irqsave(&mem->lock, flags);
	if (atomic_dec_and_test(&mem->busy))
		wake_up(&mem->idle);
	spin_unlock_irqrestore(&mem->lock, flags);
}

static bool p2pio_mem_quiet(struct p2pio_mem *mem, bool revoke_too)
{
	bool quiet;

	spin_lock_irq(&mem->lock);
	quiet = !atomic_read(&mem->busy) && !(revoke_too && mem->revoking);
	spin_unlock_irq(&mem->lock);
	return quiet;
}

/*
 * Waits until no command uses @mem (and, with @revoke_too, until a revocation in
 * progress has finished with it). Checked under the lock, so the last
 * p2pio_mem_put() or p2pio_mem_revoke() has left @mem once this returns.
 */
static void p2pio_mem_wait_idle(struct p2pio_mem *mem, bool revoke_too)
{
	wait_event(mem->idle, p2pio_mem_quiet(mem, revoke_too));
}

/*
 * The owner takes the memory back (nvidia free callback). May run at any time, from
 * any context that can sleep, concurrently with submission and release.
 */
void p2pio_mem_revoke(struct p2pio_mem *mem)
{
	enum p2pio_mem_state prev;

	spin_lock_irq(&mem->lock);
	prev = mem->state;
	if (prev == P2PIO_MEM_LIVE) {
		mem->state = P2PIO_MEM_REVOKED;
		mem->revoking = true;
	}
	spin_unlock_irq(&mem->lock);

	/* Commands already issued finish (or time out) into still-valid memory. */
	p2pio_mem_wait_idle(mem, false);
	if (prev != P2PIO_MEM_LIVE)
		return;
	if (mem->ops->forget)
		mem->ops->forget(mem);
	p2pio_count(mem->ctx, revoked, 1);
	dev_dbg(p2pio_dev, "pin %u revoked by its owner\n", mem->handle);

	/* From here on a release may free @mem. */
	spin_lock_irq(&mem->lock);
	mem->revoking = false;
	wake_up(&mem->idle);
	spin_unlock_irq(&mem->lock);
}

/*
 * The mapping of @mem for @nvme's controller, made on first use. Called under
 * ctx->lock (one submitter per fd), without holding a busy reference: a provider's map
 * call may wait on locks its free callback runs under, and the callback waits for busy
 * references (it never takes ctx->lock or nvme->lock). A mapping that raced with a
 * revocation is dropped, never used.
 */
struct p2pio_mem_map *p2pio_mem_get_map(struct p2pio_mem *mem, struct p2pio_nvme *nvme)
{
	struct p2pio_mem_map *map;
	bool live;
	int ret;

	spin_lock_irq(&mem->lock);
	list_for_each_entry(map, &mem->maps, node) {
		if (map->nvme == nvme) {
			spin_unlock_irq(&mem->lock);
			/* undone by the controller's removal: its DMA addresses are freed */
			if (READ_ONCE(nvme->dead))
				return ERR_PTR(-ENODEV);
			return map;
		}
	}
	live = mem->state == P2PIO_MEM_LIVE;
	spin_unlock_irq(&mem->lock);
	if (!live)
		return ERR_PTR(-ENODEV);

	map = kzalloc(sizeof(*map), GFP_KERNEL);
	if (!map)
		return ERR_PTR(-ENOMEM);
	/* The controller's lock keeps its removal from running while we map for it. */
	mutex_lock(&nvme->lock);
	if (nvme->dead) {
		mutex_unlock(&nvme->lock);
		kfree(map);
		return ERR_PTR(-ENODEV);
	}
	ret = mem->ops->map(mem, nvme, map);
	if (ret) {
		mutex_unlock(&nvme->lock);
		dev_err(p2pio_dev, "pin %u: %s DMA mapping for %s failed: %d\n", mem->handle,
			mem->ops->name, pci_name(nvme->pdev), ret);
		kfree(map);
		return ERR_PTR(ret);
	}
	kref_get(&nvme->ref);
	map->nvme = nvme;
	map->mem = mem;

	spin_lock_irq(&mem->lock);
	live = mem->state == P2PIO_MEM_LIVE;
	if (live)
		list_add_tail(&map->node, &mem->maps);
	spin_unlock_irq(&mem->lock);
	if (live)
		list_add_tail(&map->nvme_node, &nvme->maps);
	mutex_unlock(&nvme->lock);
	if (live)
		return map;
	/* Revoked meanwhile: the owner frees what it mapped. */
	p2pio_nvme_put(map->nvme);
	kfree(map);
	return ERR_PTR(-ENODEV);
}

/* Mirrors p2pio_mem_pin(); @mem is out of the handle table and has no busy reference. */
void p2pio_mem_release(struct p2pio_ctx *ctx, struct p2pio_mem *mem)
{
	struct p2pio_mem_map *map, *tmp;
	enum p2pio_mem_state prev;

	spin_lock_irq(&mem->lock);
	prev = mem->state;
	if (prev == P2PIO_MEM_LIVE)
		mem->state = P2PIO_MEM_RELEASING;
	spin_unlock_irq(&mem->lock);
	p2pio_mem_wait_idle(mem, true);

	list_for_each_entry_safe(map, tmp, &mem->maps, node) {
		list_del(&map->node);
		/* Under the controller's lock: its removal may undo the mapping too. */
		mutex_lock(&map->nvme->lock);
		list_del(&map->nvme_node);
		if (prev == P2PIO_MEM_LIVE && !map->unmapped)
			mem->ops->unmap(mem, map);
		mutex_unlock(&map->nvme->lock);
		p2pio_nvme_put(map->nvme);
		kfree(map);
	}
	if (prev == P2PIO_MEM_LIVE)
		mem->ops->unpin(mem);
	kfree(mem->priv);
	kfree(mem);
	atomic64_dec(&ctx->stats.live_pins);
	atomic64_dec(&p2pio_global.live_pins);
}

int p2pio_mem_pin(struct p2pio_ctx *ctx, struct p2pio_pin *arg)
{
	struct p2pio_mem *mem = NULL;
	u32 id;
	int ret;

	if (memchr_inv(arg->reserved, 0, sizeof(arg->reserved)))
		return -EINVAL;
	if (!arg->length || arg->length > P2PIO_MAX_PIN_LEN)
		return -EINVAL;

	switch (arg->provider) {
	case P2PIO_PROVIDER_NVIDIA:
		if (arg->flags & ~P2PIO_PIN_F_ALL)
			return -EINVAL;
		if (arg->pci_domain || arg->pci_bus || arg->pci_devfn || arg->bar)
			return -EINVAL;
		if (!p2pio_nvidia_available())
			return -EOPNOTSUPP;
		ret = p2pio_nvidia_pin(ctx, arg, &mem);
		break;
	case P2PIO_PROVIDER_PCIBAR:
		if (arg->flags)
			return -EINVAL;
		/* Any BAR of any device: a raw DMA target, so only for root. */
		if (!capable(CAP_SYS_ADMIN))
			return -EPERM;
		ret = p2pio_pcibar_pin(ctx, arg, &mem);
		break;
	default:
		return -EINVAL;
	}
	if (ret)
		return ret;
	p2pio_count(ctx, live_pins, 1);

	mutex_lock(&ctx->lock);
	if (ctx->nr_mems >= P2PIO_MAX_PINS) {
		ret = -EMFILE;
		goto out_release;
	}
	ret = xa_alloc(&ctx->mems, &id, mem, xa_limit_31b, GFP_KERNEL);
	if (ret)
		goto out_release;
	mem->handle = id;
	ctx->nr_mems++;
	mutex_unlock(&ctx->lock);

	arg->handle = id;
	arg->page_size = mem->page_size;
	arg->align = mem->align;
	arg->out_flags = mem->out_flags;
	dev_dbg(p2pio_dev, "pin %u: %s, %llu bytes at %#llx\n", id, mem->ops->name,
		arg->length, arg->addr);
	return 0;

out_release:
	mutex_unlock(&ctx->lock);
	p2pio_mem_release(ctx, mem);
	return ret;
}

int p2pio_mem_unpin(struct p2pio_ctx *ctx, u32 handle)
{
	struct p2pio_mem *mem;

	mutex_lock(&ctx->lock);
	mem = xa_load(&ctx->mems, handle);
	if (!mem) {
		mutex_unlock(&ctx->lock);
		return -EBADF;
	}
	if (atomic_read(&mem->busy)) {
		mutex_unlock(&ctx->lock);
		return -EBUSY;
	}
	xa_erase(&ctx->mems, handle);
	ctx->nr_mems--;
	mutex_unlock(&ctx->lock);
	p2pio_mem_release(ctx, mem);
	return 0;
}
