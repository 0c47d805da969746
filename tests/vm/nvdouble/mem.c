// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * mem.c - the double's "GPU memory": allocations of 64 KiB BAR pages.
 */
#include <linux/bitmap.h>
#include <linux/overflow.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "nvdouble.h"

phys_addr_t nvd_page_phys(const struct nvd_alloc *a, u32 i)
{
	return nvd.bar_phys + ((phys_addr_t)a->page[i] << NVD_PAGE_SHIFT);
}

/* Contiguous pages, lowest first: the common case of a fresh BAR. */
static int nvd_take_contiguous(struct nvd_alloc *a)
{
	unsigned long first;
	u32 i;

	first = bitmap_find_next_zero_area(nvd.bitmap, nvd.npages, 0, a->npages, 0);
	if (first >= nvd.npages)
		return -ENOMEM;
	bitmap_set(nvd.bitmap, first, a->npages);
	for (i = 0; i < a->npages; i++)
		a->page[i] = first + i;
	return 0;
}

/*
 * Free pages from the top of the BAR down, so that page i+1 lies below page i: a pinning
 * module that assumes physically contiguous GPU memory writes to the wrong place.
 */
static int nvd_take_scattered(struct nvd_alloc *a)
{
	u32 i = 0, p = nvd.npages;

	if (bitmap_weight(nvd.bitmap, nvd.npages) + a->npages > nvd.npages)
		return -ENOMEM;
	while (i < a->npages && p-- > 0) {
		if (test_bit(p, nvd.bitmap))
			continue;
		set_bit(p, nvd.bitmap);
		a->page[i++] = p;
	}
	return 0;
}

int nvd_alloc_new(struct file *owner, struct nvdouble_alloc *req)
{
	struct nvd_alloc *a;
	u64 span;
	int ret;

	if (req->reserved || (req->flags & ~NVDOUBLE_ALLOC_FLAGS) || !req->size ||
	    req->va_offset >= NVD_PAGE || req->va_offset % NVDOUBLE_VA_OFFSET_ALIGN)
		return -EINVAL;
	if (!nvd.pdev)
		return -ENODEV;
	if (check_add_overflow(req->size, (u64)req->va_offset, &span) ||
	    span > nvd.bar_size)
		return -ENOMEM;

	a = kzalloc(sizeof(*a), GFP_KERNEL);
	if (!a)
		return -ENOMEM;
	a->npages = DIV_ROUND_UP_ULL(span, NVD_PAGE);
	a->page = kcalloc(a->npages, sizeof(*a->page), GFP_KERNEL);
	if (!a->page) {
		ret = -ENOMEM;
		goto out_free;
	}
	INIT_LIST_HEAD(&a->pins);
	a->owner = owner;
	a->tgid = get_pid(task_tgid(current));
	a->size = req->size;
	a->refs = 1;

	mutex_lock(&nvd.lock);
	if (req->flags & NVDOUBLE_ALLOC_SCATTER)
		ret = nvd_take_scattered(a);
	else
		ret = nvd_take_contiguous(a);
	if (ret) {
		mutex_unlock(&nvd.lock);
		goto out_pid;
	}
	a->va_page = NVDOUBLE_VA_BASE + nvd.next_va;
	a->va = a->va_page + req->va_offset;
	nvd.next_va += round_up((u64)a->npages << NVD_PAGE_SHIFT, NVD_VA_ALIGN);
	list_add_tail(&a->node, &nvd.allocs);
	nvd.nallocs++;
	mutex_unlock(&nvd.lock);

	req->gpu_va = a->va;
	req->bar_offset = ((u64)a->page[0] << NVD_PAGE_SHIFT) + req->va_offset;
	req->npages = a->npages;
	return 0;

out_pid:
	put_pid(a->tgid);
	kfree(a->page);
out_free:
	kfree(a);
	return ret;
}

/* Drops one reference; the last one gives the pages back to the BAR. */
void nvd_alloc_put_locked(struct nvd_alloc *a)
{
	u32 i;

	lockdep_assert_held(&nvd.lock);
	if (--a->refs)
		return;
	WARN_ON(!list_empty(&a->pins));
	for (i = 0; i < a->npages; i++)
		clear_bit(a->page[i], nvd.bitmap);
	list_del(&a->node);
	nvd.nallocs--;
	put_pid(a->tgid);
	kfree(a->page);
	kfree(a);
}

/* The live (not freed) allocation of @owner whose first page starts at @va_page. */
struct nvd_alloc *nvd_alloc_find_locked(struct file *owner, u64 va_page)
{
	struct nvd_alloc *a;

	lockdep_assert_held(&nvd.lock);
	list_for_each_entry(a, &nvd.allocs, node)
		if (a->owner && a->owner == owner && a->va_page == va_page)
			return a;
	return NULL;
}

static struct nvd_alloc *nvd_alloc_lookup_va_locked(struct file *owner, u64 va)
{
	struct nvd_alloc *a;

	list_for_each_entry(a, &nvd.allocs, node)
		if (a->owner == owner && a->va == va)
			return a;
	return NULL;
}

/*
 * Like cuMemFree: the address is gone at once. Callback pins are revoked: each callback
 * runs synchronously, under the API lock but without nvd.lock (it waits for the pinning
 * module's DMA and may call dma_unmap_pages, which must find the pin revoking), and only then are its
 * DMA mappings and page table torn down, as nv-p2p.c does after the callback returns.
 * Persistent pins keep a reference: the pages stay allocated until they are put.
 */
static void nvd_alloc_release(struct nvd_alloc *a)
{
	struct nvd_pin *pin, *tmp;
	LIST_HEAD(revoked);

	lockdep_assert_held(&nvd.api_lock);
	lockdep_assert_held(&nvd.lock);
	a->owner = NULL;
	list_for_each_entry_safe(pin, tmp, &a->pins, alloc_node) {
		if (pin->persistent)
			continue;
		list_del_init(&pin->node);		/* out of the registry */
		pin->state = NVD_PIN_REVOKING;
		pin->revoked = true;
		list_add_tail(&pin->grave, &nvd.graves);
		list_move_tail(&pin->alloc_node, &revoked);
	}
	mutex_unlock(&nvd.lock);

	/* Under the API lock, like the real driver. */
	list_for_each_entry_safe(pin, tmp, &revoked, alloc_node) {
		pr_debug("nvdouble: free of %#llx fires the callback of pin %p\n", a->va, pin);
		pin->free_callback(pin->data);
		nvd_pin_destroy(pin);
	}

	mutex_lock(&nvd.lock);
	nvd_alloc_put_locked(a);
}

int nvd_alloc_free(struct file *owner, u64 va)
{
	struct nvd_alloc *a;

	mutex_lock(&nvd.api_lock);
	mutex_lock(&nvd.lock);
	a = nvd_alloc_lookup_va_locked(owner, va);
	if (!a) {
		mutex_unlock(&nvd.lock);
		mutex_unlock(&nvd.api_lock);
		return -EINVAL;
	}
	nvd_alloc_release(a);
	mutex_unlock(&nvd.lock);
	mutex_unlock(&nvd.api_lock);
	return 0;
}

/* Process exit (the last close of the fd): free everything the file allocated. */
void nvd_alloc_free_all(struct file *owner)
{
	struct nvd_alloc *a;

	mutex_lock(&nvd.api_lock);
	mutex_lock(&nvd.lock);
	for (;;) {
		a = NULL;
		list_for_each_entry(a, &nvd.allocs, node)
			if (a->owner == owner)
				break;
		if (list_entry_is_head(a, &nvd.allocs, node))
			break;
		nvd_alloc_release(a);
	}
	mutex_unlock(&nvd.lock);
	mutex_unlock(&nvd.api_lock);
}

/*
 * Any live allocation of the calling process, not only of this fd: a test reads the page
 * list of memory a library allocated on its own fd, to have the host check the BAR.
 */
int nvd_alloc_pages(struct file *owner, struct nvdouble_pages *req)
{
	u64 __user *out = u64_to_user_ptr(req->bar_offsets);
	struct pid *me = task_tgid(current);
	struct nvd_alloc *a, *it;
	u64 *offs;
	u32 i, n;
	int ret = 0;

	if (req->reserved)
		return -EINVAL;
	mutex_lock(&nvd.lock);
	a = NULL;
	list_for_each_entry(it, &nvd.allocs, node) {
		if (it->owner && it->tgid == me && it->va == req->gpu_va) {
			a = it;
			break;
		}
	}
	if (!a) {
		mutex_unlock(&nvd.lock);
		return -EINVAL;
	}
	n = min(req->count, a->npages);
	offs = kvcalloc(max(n, 1u), sizeof(*offs), GFP_KERNEL);
	if (!offs) {
		mutex_unlock(&nvd.lock);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		offs[i] = (u64)a->page[i] << NVD_PAGE_SHIFT;
	req->count = a->npages;
	mutex_unlock(&nvd.lock);

	if (n && copy_to_user(out, offs, n * sizeof(*offs)))
		ret = -EFAULT;
	kvfree(offs);
	return ret;
}
