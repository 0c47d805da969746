// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * main.c - the NVIDIA test double: the ivshmem-plain PCI driver, /dev/nvdouble and its
 * ioctls (allocate, free, page list, info) and CPU mappings of allocations.
 *
 * A test module for the VM tests only: it lets p2pio's nvidia provider run unchanged
 * where there is no GPU, with an ivshmem BAR (backed by a file on the host, which checks
 * what landed there) in place of GPU memory reached through BAR1.
 */
#include <linux/bitmap.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "nvdouble.h"

struct nvd_state nvd = {
	.api_lock = __MUTEX_INITIALIZER(nvd.api_lock),
	.lock = __MUTEX_INITIALIZER(nvd.lock),
	.graves = LIST_HEAD_INIT(nvd.graves),
	.map_graves = LIST_HEAD_INIT(nvd.map_graves),
	.allocs = LIST_HEAD_INIT(nvd.allocs),
	.pins = LIST_HEAD_INIT(nvd.pins),
};

bool nvd_persistent = true;
module_param_named(persistent, nvd_persistent, bool, 0644);
MODULE_PARM_DESC(persistent, "Grant persistent pins (0: refuse them like MIG/vGPU, forcing the free-callback fallback)");

int nvd_pt_major = 2;
module_param_named(pt_major, nvd_pt_major, int, 0644);
MODULE_PARM_DESC(pt_major, "Page-table version major to report: 2 (driver 580+), 1 (up to 575), or 3 (a future major the pinning module must refuse); writable at run time");

unsigned int nvd_bar1_kib;
module_param_named(bar1_kib, nvd_bar1_kib, uint, 0644);
MODULE_PARM_DESC(bar1_kib, "Most KiB pinned at once, all pins together (0: the whole BAR): a BAR1 aperture smaller than VRAM, where get_pages fails with -ENOMEM; writable at run time");

unsigned int nvd_map_delay_ms;
module_param_named(map_delay_ms, nvd_map_delay_ms, uint, 0644);
MODULE_PARM_DESC(map_delay_ms, "Milliseconds nvidia_p2p_dma_map_pages() sleeps before it takes its locks (0: none), as a busy driver may; writable at run time");

/* The page-table version pins report now. */
u32 nvd_pt_version(void)
{
	switch (READ_ONCE(nvd_pt_major)) {
	case 1:
		return NVD_PAGE_TABLE_VERSION_MAJOR1;
	case 2:
		return NVIDIA_P2P_PAGE_TABLE_VERSION;
	default:
		return 0x00030000;	/* unknown to everyone today */
	}
}

static long nvd_ioctl_alloc(struct file *f, void __user *uarg)
{
	struct nvdouble_alloc req;
	int ret;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	ret = nvd_alloc_new(f, &req);
	if (ret)
		return ret;
	if (copy_to_user(uarg, &req, sizeof(req))) {
		nvd_alloc_free(f, req.gpu_va);
		return -EFAULT;
	}
	return 0;
}

static long nvd_ioctl_free(struct file *f, void __user *uarg)
{
	struct nvdouble_free req;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	return nvd_alloc_free(f, req.gpu_va);
}

static long nvd_ioctl_pages(struct file *f, void __user *uarg)
{
	struct nvdouble_pages req;
	int ret;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	ret = nvd_alloc_pages(f, &req);
	if (ret)
		return ret;
	return copy_to_user(uarg, &req, sizeof(req)) ? -EFAULT : 0;
}

static long nvd_ioctl_info(void __user *uarg)
{
	struct nvdouble_info info = {};

	mutex_lock(&nvd.lock);
	info.bar_size = nvd.bar_size;
	info.bar_phys = nvd.bar_phys;
	info.allocs = nvd.nallocs;
	info.pins_persistent = nvd.npins_persistent;
	info.pins_callback = nvd.npins_callback;
	info.dma_mappings = nvd.nmaps;
	info.callbacks_fired = nvd.callbacks_fired;
	info.pins_total = nvd.pins_total;
	info.refused_persistent = nvd.refused_persistent;
	info.refused_bar1 = nvd.refused_bar1;
	info.pinned_bytes = nvd.pinned_bytes;
	info.maps_after_revoke = nvd.maps_after_revoke;
	info.pages_free = nvd.npages ? nvd.npages - bitmap_weight(nvd.bitmap, nvd.npages) : 0;
	info.pt_version = nvd_pt_version();
	mutex_unlock(&nvd.lock);
	return copy_to_user(uarg, &info, sizeof(info)) ? -EFAULT : 0;
}

static long nvd_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case NVDOUBLE_IOC_ALLOC:
		return nvd_ioctl_alloc(f, uarg);
	case NVDOUBLE_IOC_FREE:
		return nvd_ioctl_free(f, uarg);
	case NVDOUBLE_IOC_PAGES:
		return nvd_ioctl_pages(f, uarg);
	case NVDOUBLE_IOC_INFO:
		return nvd_ioctl_info(uarg);
	default:
		return -ENOTTY;
	}
}

/* A CPU mapping holds a reference so the pages outlive a free while mapped. */
static void nvd_vm_open(struct vm_area_struct *vma)
{
	struct nvd_alloc *a = vma->vm_private_data;

	mutex_lock(&nvd.lock);
	a->refs++;
	mutex_unlock(&nvd.lock);
}

static void nvd_vm_close(struct vm_area_struct *vma)
{
	mutex_lock(&nvd.lock);
	nvd_alloc_put_locked(vma->vm_private_data);
	mutex_unlock(&nvd.lock);
}

static const struct vm_operations_struct nvd_vm_ops = {
	.open = nvd_vm_open,
	.close = nvd_vm_close,
};

static int nvd_mmap(struct file *f, struct vm_area_struct *vma)
{
	u64 va_page = NVDOUBLE_VA_BASE + ((u64)vma->vm_pgoff << PAGE_SHIFT);
	unsigned long len = vma->vm_end - vma->vm_start, done;
	struct nvd_alloc *a;
	int ret = 0;

	if (!IS_ALIGNED(va_page, NVD_PAGE))
		return -EINVAL;
	mutex_lock(&nvd.lock);
	a = nvd_alloc_find_locked(f, va_page);
	if (!a || len > (u64)a->npages << NVD_PAGE_SHIFT) {
		mutex_unlock(&nvd.lock);
		return -EINVAL;
	}
	nvd_vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
	/* Page by page: scattered allocations are not contiguous in the BAR. */
	for (done = 0; done < len && !ret; done += NVD_PAGE) {
		u32 i = done >> NVD_PAGE_SHIFT;

		ret = io_remap_pfn_range(vma, vma->vm_start + done,
					 PHYS_PFN(nvd_page_phys(a, i)),
					 min_t(unsigned long, NVD_PAGE, len - done),
					 vma->vm_page_prot);
	}
	if (!ret) {
		a->refs++;
		vma->vm_private_data = a;
		vma->vm_ops = &nvd_vm_ops;
	}
	mutex_unlock(&nvd.lock);
	return ret;
}

static int nvd_release(struct inode *inode, struct file *f)
{
	nvd_alloc_free_all(f);
	return 0;
}

static const struct file_operations nvd_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = nvd_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = nvd_mmap,
	.release = nvd_release,
	.llseek = noop_llseek,
};

static struct miscdevice nvd_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "nvdouble",
	.fops = &nvd_fops,
	.mode = 0666,
};

static int nvd_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	int ret;

	if (nvd.pdev)
		return -EBUSY;		/* one "GPU" is all the tests need */
	ret = pci_enable_device_mem(pdev);
	if (ret)
		return ret;
	ret = pci_request_region(pdev, 2, "nvdouble");
	if (ret)
		goto out_disable;
	if (pci_resource_len(pdev, 2) < NVD_PAGE) {
		ret = -ENODEV;
		goto out_release;
	}
	nvd.bar_size = pci_resource_len(pdev, 2);
	nvd.npages = nvd.bar_size >> NVD_PAGE_SHIFT;
	nvd.bitmap = bitmap_zalloc(nvd.npages, GFP_KERNEL);
	if (!nvd.bitmap) {
		ret = -ENOMEM;
		goto out_release;
	}
	mutex_lock(&nvd.lock);
	nvd.bar_phys = pci_resource_start(pdev, 2);
	nvd.pdev = pdev;
	mutex_unlock(&nvd.lock);
	pci_info(pdev, "nvdouble: %llu MiB of \"GPU memory\" at %pa, page-table version major %d, persistent pins %s\n",
		 nvd.bar_size >> 20, &nvd.bar_phys, nvd_pt_major,
		 nvd_persistent ? "granted" : "refused");
	return 0;

out_release:
	pci_release_region(pdev, 2);
out_disable:
	pci_disable_device(pdev);
	return ret;
}

static void nvd_remove(struct pci_dev *pdev)
{
	nvd_leak_check();
	mutex_lock(&nvd.lock);
	nvd.pdev = NULL;
	bitmap_free(nvd.bitmap);
	nvd.bitmap = NULL;
	nvd.npages = 0;
	mutex_unlock(&nvd.lock);
	pci_release_region(pdev, 2);
	pci_disable_device(pdev);
}

static const struct pci_device_id nvd_ids[] = {
	{ PCI_DEVICE(0x1af4, 0x1110) },		/* ivshmem (plain) */
	{}
};
MODULE_DEVICE_TABLE(pci, nvd_ids);

static struct pci_driver nvd_driver = {
	.name = "nvdouble",
	.id_table = nvd_ids,
	.probe = nvd_probe,
	.remove = nvd_remove,
};

static int __init nvd_init(void)
{
	int ret;

	if (nvd_pt_major < 1 || nvd_pt_major > 3)
		return -EINVAL;
	ret = pci_register_driver(&nvd_driver);
	if (ret)
		return ret;
	ret = misc_register(&nvd_misc);
	if (ret)
		pci_unregister_driver(&nvd_driver);
	return ret;
}

static void __exit nvd_exit(void)
{
	misc_deregister(&nvd_misc);
	pci_unregister_driver(&nvd_driver);
	nvd_graves_free();
}

module_init(nvd_init);
module_exit(nvd_exit);
MODULE_DESCRIPTION("p2pio test double of NVIDIA's nvidia_p2p API over an ivshmem BAR");
MODULE_LICENSE("Dual MIT/GPL");
