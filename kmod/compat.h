/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * compat.h - every kernel-version difference p2pio depends on, and nowhere else.
 *
 * Built and tested (tests/vm) on Debian 12's 6.1 and bookworm-backports' 6.12. What differs
 * between them: since 6.5 block_device_operations.ioctl takes a blk_mode_t (BLK_OPEN_*)
 * instead of an fmode_t (p2pio_nvme_nsid); since 6.3 the idmapped-mount helpers take a
 * struct mnt_idmap; since 6.9 leases are struct file_lease (fields under .c) instead of
 * struct file_lock.
 */
#ifndef P2PIO_COMPAT_H
#define P2PIO_COMPAT_H

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/device.h>
#include <linux/fileattr.h>
#include <linux/fs.h>
#include <linux/nvme.h>
#include <linux/nvme_ioctl.h>
#include <linux/pci.h>
#include <linux/sched.h>
#include <linux/version.h>
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
#include <linux/filelock.h>
#endif

/*
 * nvme-core's GPL export that turns a request into a passthrough command. It is
 * declared in the private drivers/nvme/host/nvme.h, so declared here with the same
 * prototype (unchanged from 5.x through 6.12).
 */
void nvme_init_request(struct request *req, struct nvme_command *cmd);
/* The same for the synchronous command helper nvme-core uses for Identify (5.x-6.12). */
int nvme_submit_sync_cmd(struct request_queue *q, struct nvme_command *cmd, void *buf,
			 unsigned int bufflen);

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

/* Registration denies writers: only the owner (or CAP_FOWNER) or a writer may do that. */
static inline bool p2pio_file_owner_or_capable(struct file *filp)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	return inode_owner_or_capable(file_mnt_idmap(filp), file_inode(filp));
#else
	return inode_owner_or_capable(file_mnt_user_ns(filp), file_inode(filp));
#endif
}

/*
 * The head of nvme-core's private struct nvme_ctrl (drivers/nvme/host/nvme.h), up to
 * admin_tagset. It is the same from 5.10 to 6.12 but for the order of the leading flags,
 * which does not move the later fields. Only read after nvme.c-independent checks: the
 * class device must be an "nvme" controller, and dev, tagset and the admin queue's tag
 * set must match what the block layer says (p2pio_nvme_admin_queue()).
 */
struct p2pio_nvme_ctrl_head {
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
	bool comp_seen;
	bool identified;
	bool passthru_err_log_enabled;
	int state;
#else
	bool comp_seen;
	int state;
	bool identified;
#endif
	spinlock_t lock;
	struct mutex scan_lock;
	const void *ops;
	struct request_queue *admin_q;
	struct request_queue *connect_q;
	struct request_queue *fabrics_q;
	struct device *dev;
	int instance;
	int numa_node;
	struct blk_mq_tag_set *tagset;
	struct blk_mq_tag_set *admin_tagset;
};

/*
 * The admin queue of the controller @disk (a namespace disk of nvme-core, not a
 * multipath head) belongs to, or NULL when the layout above does not match this
 * kernel's (then the namespace format cannot be asked and the caller refuses).
 */
static inline struct request_queue *p2pio_nvme_admin_queue(struct gendisk *disk,
							   struct pci_dev *pdev)
{
	struct device *cdev = disk_to_dev(disk)->parent;
	struct p2pio_nvme_ctrl_head *ctrl;

	if (!cdev || !cdev->class || strcmp(cdev->class->name, "nvme"))
		return NULL;
	ctrl = dev_get_drvdata(cdev);
	if (!ctrl || ctrl->dev != &pdev->dev || ctrl->tagset != disk->queue->tag_set ||
	    !ctrl->admin_q || !ctrl->admin_tagset)
		return NULL;
	if (ctrl->admin_q->tag_set != ctrl->admin_tagset)
		return NULL;
	return ctrl->admin_q;
}

/*
 * Layout leases (FL_LAYOUT), as pNFS block layouts take them: the file system breaks
 * them before it changes the file's block map (xfs: remap/dedupe, truncate, hole punch).
 * struct p2pio_lease names the kernel's lease type, struct p2pio_lease_manager its
 * operations.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
#define p2pio_lease file_lease
#define p2pio_lease_manager lease_manager_operations
#define p2pio_lease_alloc() locks_alloc_lease()
#define p2pio_lease_free(fl) locks_free_lease(fl)
#define p2pio_lease_owner(fl) ((fl)->c.flc_owner)
/* A lease breaker sleeps on @fl (fs/locks.c; under the inode's flc_lock). */
#define p2pio_lease_blocked(fl) (!list_empty(&(fl)->c.flc_blocked_requests))

static inline void p2pio_lease_init(struct file_lease *fl, struct file *filp, void *owner,
				    const struct p2pio_lease_manager *ops)
{
	locks_init_lease(fl);
	fl->fl_lmops = ops;
	fl->c.flc_flags = FL_LAYOUT;
	fl->c.flc_type = F_RDLCK;
	fl->c.flc_owner = owner;
	fl->c.flc_pid = current->tgid;
	fl->c.flc_file = filp;
}
#else
#define p2pio_lease file_lock
#define p2pio_lease_manager lock_manager_operations
#define p2pio_lease_alloc() locks_alloc_lock()
#define p2pio_lease_free(fl) locks_free_lock(fl)
#define p2pio_lease_owner(fl) ((fl)->fl_owner)
#define p2pio_lease_blocked(fl) (!list_empty(&(fl)->fl_blocked_requests))

static inline void p2pio_lease_init(struct file_lock *fl, struct file *filp, void *owner,
				    const struct p2pio_lease_manager *ops)
{
	locks_init_lock(fl);
	fl->fl_lmops = ops;
	fl->fl_flags = FL_LAYOUT;
	fl->fl_type = F_RDLCK;
	fl->fl_end = OFFSET_MAX;
	fl->fl_owner = owner;
	fl->fl_pid = current->tgid;
	fl->fl_file = filp;
}
#endif

/*
 * The kernel's own credential. prepare_kernel_cred(NULL) meant init's until 6.2 and is
 * refused since; a copy of init_task's works on both.
 */
#define p2pio_prepare_kernel_cred() prepare_kernel_cred(&init_task)

#endif /* P2PIO_COMPAT_H */
