// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * mem.c - pinned device memory, whatever the provider: the provider registry, handles,
 * per-controller DMA mappings made on first use, in-flight accounting, revocation and
 * release. It calls providers only through struct p2pio_mem_provider.
 *
 * Lifetime rules:
 *  - a command holds a "busy" reference on its memory while its PRPs are filled and
 *    until its completion; references are only granted while the pin is LIVE;
 *  - a provider call that reads structures the memory's owner may free on revocation
 *    (NVIDIA's page table and DMA mappings) holds a "call" reference, granted only until
 *    a revocation starts;
 *  - revocation (the owner's free callback, or the target device going away) marks the
 *    pin revoked, waits until no busy and no call reference is left, and lets the
 *    provider drop its view; it waits for nothing else, because an owner may call it
 *    under locks its other entry points take (NVIDIA's driver holds its API lock across
 *    the callback, and dma_map_pages and put_pages take that lock);
 *  - release (unpin, close) unmaps and unpins unless a revocation came first, and frees
 *    the pin only once a revocation in progress has finished with it.
 * mem->lock is a spinlock held only for state changes, never across provider calls, so
 * a provider's callback can always take it. mem->maps_lock (a mutex) keeps the map list
 * and is held across provider map calls; a revocation of an owner-freed pin never takes
 * it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/device.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>

#include "p2pio.h"

/* Registered at module init, before /dev/p2pio exists; unregistered after it is gone. */
static LIST_HEAD(p2pio_providers);
static DEFINE_MUTEX(p2pio_providers_lock);

void p2pio_mem_provider_register(struct p2pio_mem_provider *prov)
{
	mutex_lock(&p2pio_providers_lock);
	list_add_tail(&prov->node, &p2pio_providers);
	mutex_unlock(&p2pio_providers_lock);
}

void p2pio_mem_provider_unregister(struct p2pio_mem_provider *prov)
{
	mutex_lock(&p2pio_providers_lock);
	list_del(&prov->node);
	mutex_unlock(&p2pio_providers_lock);
}

static bool p2pio_mem_provider_ready(const struct p2pio_mem_provider *prov)
{
	return !prov->available || prov->available();
}

/* The P2PIO_FEAT_PROVIDER_* bits of the providers that can pin now. */
u64 p2pio_mem_features(void)
{
	struct p2pio_mem_provider *prov;
	u64 features = 0;

	mutex_lock(&p2pio_providers_lock);
	list_for_each_entry(prov, &p2pio_providers, node)
		if (p2pio_mem_provider_ready(prov))
			features |= prov->feature;
	mutex_unlock(&p2pio_providers_lock);
	return features;
}

/* "nvidia, pcibar": the providers that can pin now, for the load message. */
const char *p2pio_mem_provider_names(char *buf, size_t len)
{
	struct p2pio_mem_provider *prov;
	size_t n = 0;

	buf[0] = 0;
	mutex_lock(&p2pio_providers_lock);
	list_for_each_entry(prov, &p2pio_providers, node)
		if (p2pio_mem_provider_ready(prov) && n < len)
			n += scnprintf(buf + n, len - n, "%s%s", n ? ", " : "", prov->name);
	mutex_unlock(&p2pio_providers_lock);
	return buf;
}

static const struct p2pio_mem_provider *p2pio_mem_provider_find(u32 id)
{
	struct p2pio_mem_provider *prov, *found = NULL;

	mutex_lock(&p2pio_providers_lock);
	list_for_each_entry(prov, &p2pio_providers, node) {
		if (prov->id == id) {
			found = prov;
			break;
		}
	}
	mutex_unlock(&p2pio_providers_lock);
	return found;
}

struct p2pio_mem *p2pio_mem_alloc(struct p2pio_ctx *ctx, const struct p2pio_mem_provider *prov)
{
	struct p2pio_mem *mem = kzalloc(sizeof(*mem), GFP_KERNEL_ACCOUNT);

	if (!mem)
		return NULL;
	mem->prov = prov;
	mem->ctx = ctx;
	mem->state = P2PIO_MEM_LIVE;
	spin_lock_init(&mem->lock);
	mutex_init(&mem->maps_lock);
	INIT_LIST_HEAD(&mem->maps);
	atomic_set(&mem->busy, 0);
	init_waitqueue_head(&mem->idle);
	return mem;
}

/* Frees a pin its provider made but never pinned (the provider's pin failed early). */
void p2pio_mem_free_unused(struct p2pio_mem *mem)
{
	mutex_destroy(&mem->maps_lock);
	kfree(mem);
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

/*
 * Enters a provider call that reads the owner's structures (a page table, a DMA
 * mapping). False once a revocation has started: the owner is freeing them.
 */
bool p2pio_mem_call_begin(struct p2pio_mem *mem)
{
	bool ok;

	spin_lock_irq(&mem->lock);
	ok = !mem->revoked;
	if (ok)
		mem->calls++;
	spin_unlock_irq(&mem->lock);
	return ok;
}

void p2pio_mem_call_end(struct p2pio_mem *mem)
{
	spin_lock_irq(&mem->lock);
	if (!--mem->calls)
		wake_up(&mem->idle);
	spin_unlock_irq(&mem->lock);
}

static bool p2pio_mem_unused(struct p2pio_mem *mem)
{
	bool unused;

	spin_lock_irq(&mem->lock);
	unused = !atomic_read(&mem->busy) && !mem->calls;
	spin_unlock_irq(&mem->lock);
	return unused;
}

static bool p2pio_mem_revoke_over(struct p2pio_mem *mem)
{
	bool over;

	spin_lock_irq(&mem->lock);
	over = !mem->revoked || mem->revoke_done;
	spin_unlock_irq(&mem->lock);
	return over;
}

/*
 * Undoes @map unless that is done or no longer ours to do. Under the map's controller
 * lock. An owner-freed pin is unmapped only inside a call reference, so never after its
 * revocation started; the owner frees those mappings.
 */
void p2pio_mem_unmap_locked(struct p2pio_mem_map *map)
{
	struct p2pio_mem *mem = map->mem;

	lockdep_assert_held(&map->nvme->lock);
	if (map->unmapped)
		return;
	if (!mem->prov->owner_frees) {
		mem->prov->unmap(mem, map);
	} else if (p2pio_mem_call_begin(mem)) {
		mem->prov->unmap(mem, map);
		p2pio_mem_call_end(mem);
	}
	map->unmapped = true;
}

/*
 * The owner takes the memory back (nvidia free callback) or the target device goes
 * away. May run at any time, from any context that can sleep, concurrently with
 * submission, mapping and release, and at most once per pin. Waits only for busy and
 * call references, which are never held across a call into the owner that could wait
 * for the owner's locks.
 */
void p2pio_mem_revoke(struct p2pio_mem *mem)
{
	spin_lock_irq(&mem->lock);
	if (mem->revoked) {
		spin_unlock_irq(&mem->lock);
		return;
	}
	mem->revoked = true;
	if (mem->state == P2PIO_MEM_LIVE)
		mem->state = P2PIO_MEM_REVOKED;
	spin_unlock_irq(&mem->lock);

	/* Commands already issued finish (or time out) into still-valid memory. */
	wait_event(mem->idle, p2pio_mem_unused(mem));
	if (mem->prov->revoke)
		mem->prov->revoke(mem);
	dev_dbg(p2pio_dev, "pin %u revoked\n", mem->handle);

	/* From here on a release may free @mem: the last touch is under its lock. */
	spin_lock_irq(&mem->lock);
	/* The fd's counter only while @mem is the fd's (p2pio_mem_release()). */
	if (mem->ctx)
		atomic64_inc(&mem->ctx->stats.revoked);
	mem->revoke_done = true;
	wake_up(&mem->idle);
	spin_unlock_irq(&mem->lock);
	atomic64_inc(&p2pio_global.revoked);
}

static struct p2pio_mem_map *p2pio_mem_find_map(struct p2pio_mem *mem,
						struct p2pio_nvme *nvme)
{
	struct p2pio_mem_map *map;

	lockdep_assert_held(&mem->maps_lock);
	list_for_each_entry(map, &mem->maps, node)
		if (map->nvme == nvme)
			return map;
	return NULL;
}

/*
 * The mapping of @mem for @nvme's controller, made on first use. Called under ctx->lock
 * (one submitter per fd), which also keeps the pin from being released. Holds no busy
 * reference: a provider's map call may wait on locks its owner holds while revoking.
 * A mapping its controller has lost (unbind, removal) is never handed out again.
 *
 * Both waits are killable (ERR_PTR(-EINTR), nothing taken or changed): another fd's
 * map of the same controller holds nvme->lock across the provider's map call, which
 * may take as long as the driver likes (its API lock), and a reader queued behind it
 * must still die on SIGKILL. The map call itself, once started, is the driver's.
 */
struct p2pio_mem_map *p2pio_mem_get_map(struct p2pio_mem *mem, struct p2pio_nvme *nvme)
{
	struct p2pio_mem_map *map;
	int ret;

	if (mutex_lock_killable(&mem->maps_lock))
		return ERR_PTR(-EINTR);
	map = p2pio_mem_find_map(mem, nvme);
	if (map) {
		if (READ_ONCE(map->unmapped) || READ_ONCE(mem->revoked))
			map = ERR_PTR(-ENODEV);
		goto out_unlock;
	}
	if (READ_ONCE(mem->revoked)) {
		map = ERR_PTR(-ENODEV);
		goto out_unlock;
	}
	map = kzalloc(sizeof(*map), GFP_KERNEL);
	if (!map) {
		map = ERR_PTR(-ENOMEM);
		goto out_unlock;
	}
	map->mem = mem;
	map->nvme = nvme;
	/*
	 * The controller's lock keeps its unbind from undoing maps while we make one, and
	 * the unbind (so the device's removal) waiting until this map is made and listed:
	 * held across the provider's map call, which sleeps (see struct p2pio_nvme).
	 */
	if (mutex_lock_killable(&nvme->lock)) {
		/* Nothing listed or mapped yet: the unbind has nothing of ours to wait for. */
		kfree(map);
		map = ERR_PTR(-EINTR);
		goto out_unlock;
	}
	/* Taken without a wait by a task already killed: the map is not worth starting. */
	if (fatal_signal_pending(current)) {
		ret = -EINTR;
		goto out_free;
	}
	if (nvme->dead) {
		ret = -ENODEV;
		goto out_free;
	}
	ret = mem->prov->map(mem, nvme, map);
	/* A map that lost a race with the owner's free fails however the owner says so. */
	if (ret && READ_ONCE(mem->revoked))
		ret = -ENODEV;
	if (ret) {
		if (ret != -ENODEV)
			dev_err_ratelimited(p2pio_dev, "pin %u: %s DMA mapping for %s failed: %d\n",
					    mem->handle, mem->prov->name, pci_name(nvme->pdev),
					    ret);
		goto out_free;
	}
	kref_get(&nvme->ref);
	list_add_tail(&map->nvme_node, &nvme->maps);
	mutex_unlock(&nvme->lock);
	list_add_tail(&map->node, &mem->maps);
	goto out_unlock;

out_free:
	mutex_unlock(&nvme->lock);
	kfree(map);
	map = ERR_PTR(ret);
out_unlock:
	mutex_unlock(&mem->maps_lock);
	return map;
}

/* Mirrors p2pio_mem_pin(); @mem is out of the handle table and has no busy reference. */
void p2pio_mem_release(struct p2pio_ctx *ctx, struct p2pio_mem *mem)
{
	struct p2pio_mem_map *map, *tmp;
	bool revoked;

	spin_lock_irq(&mem->lock);
	if (mem->state == P2PIO_MEM_LIVE)
		mem->state = P2PIO_MEM_RELEASING;
	spin_unlock_irq(&mem->lock);
	wait_event(mem->idle, !atomic_read(&mem->busy));

	/*
	 * Uninterruptible, both locks: a release cannot fail (close, and an unpin whose pin
	 * already left the handle table), and the maps must be undone before the unpin. A
	 * release can wait here behind another fd's map of the same controller (nvme->lock
	 * across the driver's map call) for as long as the driver takes it.
	 */
	mutex_lock(&mem->maps_lock);
	list_for_each_entry_safe(map, tmp, &mem->maps, node) {
		/* Under the controller's lock: its unbind may undo the mapping too. */
		mutex_lock(&map->nvme->lock);
		p2pio_mem_unmap_locked(map);
		list_del(&map->nvme_node);
		mutex_unlock(&map->nvme->lock);
		list_del(&map->node);
		p2pio_nvme_put(map->nvme);
		kfree(map);
	}
	mutex_unlock(&mem->maps_lock);

	/*
	 * Unpin unless a revocation started: the provider's unpin may race one that starts
	 * now (NVIDIA's driver serialises put_pages with its free path under its API lock
	 * and returns 0 to whichever comes second), and p2pio holds nothing the revocation
	 * waits for while it calls.
	 */
	spin_lock_irq(&mem->lock);
	revoked = mem->revoked;
	spin_unlock_irq(&mem->lock);
	if (mem->user) {
		atomic_dec(&mem->user->pins);
		mem->user = NULL;
	}
	if (!mem->prov->release(mem, revoked)) {
		/* Still pinned as far as the owner knows: a callback may yet use @mem. */
		dev_err_ratelimited(p2pio_dev,
				    "pin %u: %s refused to release it; keeping its state\n",
				    mem->handle, mem->prov->name);
		/* It outlives its fd: a later revocation must not count into the freed fd. */
		spin_lock_irq(&mem->lock);
		mem->ctx = NULL;
		spin_unlock_irq(&mem->lock);
		/* And the module: the provider may still call p2pio_mem_revoke() on it. */
		__module_get(THIS_MODULE);
		return;
	}
	/* A revocation in progress may still be waiting on @mem. */
	wait_event(mem->idle, p2pio_mem_revoke_over(mem));
	mutex_destroy(&mem->maps_lock);
	kfree(mem);
	atomic64_dec(&ctx->stats.live_pins);
	atomic64_dec(&p2pio_global.live_pins);
}

int p2pio_mem_pin(struct p2pio_ctx *ctx, struct p2pio_pin *arg, struct p2pio_mem **memp)
{
	const struct p2pio_mem_provider *prov;
	struct p2pio_mem *mem = NULL;
	u32 id;
	int ret;

	if (memchr_inv(arg->reserved, 0, sizeof(arg->reserved)))
		return -EINVAL;
	if (!arg->length || arg->length > P2PIO_MAX_PIN_LEN)
		return -EINVAL;
	prov = p2pio_mem_provider_find(arg->provider);
	if (!prov)
		return -EINVAL;
	if (!p2pio_mem_provider_ready(prov))
		return -EOPNOTSUPP;
	if (!p2pio_user_take(&ctx->user->pins, READ_ONCE(p2pio_max_user_pins))) {
		dev_info_ratelimited(p2pio_dev, "refusing a pin: the user holds max_user_pins (%u)\n",
				     READ_ONCE(p2pio_max_user_pins));
		return -EDQUOT;
	}
	ret = prov->pin(ctx, arg, &mem);
	if (ret) {
		atomic_dec(&ctx->user->pins);
		return ret;
	}
	/* From here the pin's release gives the charge back. */
	mem->user = ctx->user;
	p2pio_count(ctx, live_pins, 1);

	if (mutex_lock_killable(&ctx->lock)) {
		ret = -EINTR;
		goto out_release_unlocked;
	}
	if (ctx->nr_mems >= P2PIO_MAX_PINS) {
		ret = -EMFILE;
		goto out_release;
	}
	/* Cyclic: a handle just unpinned is not handed out again at once, so a stale handle
	 * in another thread of the caller fails instead of reaching a new pin. */
	ret = xa_alloc_cyclic(&ctx->mems, &id, mem, xa_limit_31b, &ctx->next_mem, GFP_KERNEL);
	if (ret < 0)
		goto out_release;
	ret = 0;
	mem->handle = id;
	ctx->nr_mems++;
	mutex_unlock(&ctx->lock);

	arg->handle = id;
	arg->page_size = mem->page_size;
	arg->align = mem->align;
	arg->out_flags = mem->out_flags;
	dev_dbg(p2pio_dev, "pin %u: %s, %llu bytes at %#llx\n", id, prov->name,
		arg->length, arg->addr);
	*memp = mem;
	return 0;

out_release:
	mutex_unlock(&ctx->lock);
out_release_unlocked:
	p2pio_mem_release(ctx, mem);
	return ret;
}

/*
 * The caller could not learn the handle of @mem (pinned as @handle): undo that pin, and
 * only that one. Another thread of the caller may have unpinned @handle already (@mem is
 * then freed and not touched here), or have reads on it (it then stays until unpinned or
 * the fd is closed). Mirrors p2pio_file_undo().
 */
void p2pio_mem_undo(struct p2pio_ctx *ctx, struct p2pio_mem *mem, u32 handle)
{
	/* Killed: the fd's close releases it with the rest. */
	if (mutex_lock_killable(&ctx->lock))
		return;
	if (xa_load(&ctx->mems, handle) != mem || atomic_read(&mem->busy)) {
		mutex_unlock(&ctx->lock);
		return;
	}
	xa_erase(&ctx->mems, handle);
	ctx->nr_mems--;
	mutex_unlock(&ctx->lock);
	p2pio_mem_release(ctx, mem);
}

int p2pio_mem_unpin(struct p2pio_ctx *ctx, u32 handle)
{
	struct p2pio_mem *mem;

	if (mutex_lock_killable(&ctx->lock))
		return -EINTR;
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
