/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * compat.h - every kernel-version difference p2pio depends on, and nowhere else.
 *
 * Built and tested (tests/vm) on Debian 12's 6.1 and bookworm-backports' 6.12. Between
 * them only block_device_operations.ioctl changed: it takes a blk_mode_t (BLK_OPEN_*)
 * since 6.5, an fmode_t before (p2pio_nvme_nsid). Everything else p2pio calls here kept
 * its signature and meaning from 6.1 through 6.12.
 */
#ifndef P2PIO_COMPAT_H
#define P2PIO_COMPAT_H

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/fileattr.h>
#include <linux/fs.h>
#include <linux/nvme.h>
#include <linux/nvme_ioctl.h>
#include <linux/version.h>

/*
 * nvme-core's GPL export that turns a request into a passthrough command. It is
 * declared in the private drivers/nvme/host/nvme.h, so declared here with the same
 * prototype (unchanged from 5.x through 6.12).
 */
void nvme_init_request(struct request *req, struct nvme_command *cmd);

/* The request completion callback: 6.1 added the return value. */
#define P2PIO_END_IO_RET enum rq_end_io_ret
#define P2PIO_END_IO_FREE RQ_END_IO_FREE

static inline void p2pio_execute_rq_nowait(struct request *rq)
{
	blk_execute_rq_nowait(rq, false);
}

static inline sector_t p2pio_bdev_start_sect(struct block_device *bdev)
{
	return get_start_sect(bdev);
}

/*
 * The namespace id, asked of nvme-core through NVME_IOCTL_ID on the block device.
 * nvme_ioctl() answers it from ns->head->ns_id without touching the argument, so the
 * call is safe from the kernel once the disk is known to be an nvme-core namespace
 * disk (the caller checks the fops owner and that the queue is blk-mq, which rules
 * out the multipath head disk whose ioctl takes an SRCU path lookup).
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
#define P2PIO_BDEV_IOCTL_READ BLK_OPEN_READ
#else
#define P2PIO_BDEV_IOCTL_READ FMODE_READ
#endif

static inline int p2pio_nvme_nsid(struct block_device *bdev)
{
	const struct block_device_operations *fops = bdev->bd_disk->fops;

	if (!fops->ioctl)
		return -ENOTTY;
	return fops->ioctl(bdev, P2PIO_BDEV_IOCTL_READ, NVME_IOCTL_ID, 0);
}

static inline int p2pio_fileattr_get(struct file *filp, struct fileattr *fa)
{
	return vfs_fileattr_get(filp->f_path.dentry, fa);
}

#endif /* P2PIO_COMPAT_H */
