// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * file.c - registration of files: what can be read with raw LBAs, and where it lies.
 *
 * A file is readable by raw NVMe commands only when its bytes sit unchanged in blocks
 * of one PCIe NVMe namespace that the file system maps 1:1. Everything else is refused
 * with its own errno and a log line saying why. While registered, the file cannot be
 * written (deny_write_access(), like a running executable). Writers are not the only
 * ones who move blocks: the owner may dedupe into the file through a read-only fd
 * (FIDEDUPERANGE), after which its old blocks are freed and reused by other files. So
 * the registration also holds a layout lease (FL_LAYOUT, as pNFS block layouts do),
 * which the file system breaks before it changes the block map (xfs: remap and dedupe,
 * truncate, hole punch). A broken lease makes the registration stale for good: reads
 * in flight finish, then the lease is given back and the file system goes on; every
 * later read fails with ESTALE.
 *
 * Denying writers affects every user of the file, so only who could write it anyway
 * may register it: its owner, a user with write permission, or CAP_SYS_ADMIN.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cred.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/pagemap.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/wait_bit.h>

#include "compat.h"
#include "p2pio.h"

/* Refuse @filp with @err; the reason goes to the log, rate limited. */
#define p2pio_refuse(filp, err, fmt, ...)                                        \
	({                                                                       \
		pr_info_ratelimited("refusing %pD (%s): " fmt "\n", (filp),      \
				    #err, ##__VA_ARGS__);                        \
		-(err);                                                          \
	})

static bool p2pio_fs_supported(struct super_block *sb)
{
	const char *name = sb->s_type->name;

	return !strcmp(name, "ext4") || !strcmp(name, "xfs");
}

/* True for a namespace disk of nvme-core (not of a stacking or other driver). */
static bool p2pio_disk_is_nvme(struct gendisk *disk)
{
	struct module *owner = disk->fops->owner;

	if (owner)
		return !strcmp(module_name(owner), "nvme_core");
	/* nvme-core built in: only its disks are named nvme* (and multipath heads too). */
	return !strncmp(disk->disk_name, "nvme", 4);
}

static struct pci_dev *p2pio_disk_pci(struct gendisk *disk)
{
	struct device *d;

	for (d = disk_to_dev(disk)->parent; d; d = d->parent)
		if (dev_is_pci(d))
			return to_pci_dev(d);
	return NULL;
}

/*
 * Registration takes deny_write_access() for as long as it lasts: only who may change
 * the file anyway may lock every writer out (else any reader could make world-readable
 * files such as logs unwritable, root included). A read-only file system has no
 * writers to lock out. Write permission on an append-only file is only the right to
 * append: it does not extend to locking out every other appender (root's logger of a
 * chattr +a log shared with a group), so there it takes ownership.
 */
static int p2pio_file_check_access(struct file *filp)
{
	struct inode *inode = file_inode(filp);

	if (p2pio_file_owner_or_capable(filp) || IS_RDONLY(inode) || capable(CAP_SYS_ADMIN))
		return 0;
	if (IS_APPEND(inode))
		return p2pio_refuse(filp, EACCES,
				    "append-only file: registering blocks its appenders: needs ownership or CAP_SYS_ADMIN");
	if (!file_permission(filp, MAY_WRITE))
		return 0;
	return p2pio_refuse(filp, EACCES,
			    "registering blocks writers: needs ownership, write permission or CAP_SYS_ADMIN");
}

/* File-level refusals: how the file's bytes are stored. */
static int p2pio_file_check_inode(struct file *filp)
{
	struct inode *inode = file_inode(filp);
	struct fileattr fa = {};
	int ret;

	if (!(filp->f_mode & FMODE_READ))
		return p2pio_refuse(filp, EBADF, "not opened for reading");
	if (!S_ISREG(inode->i_mode))
		return p2pio_refuse(filp, EINVAL, "not a regular file");
	if (!p2pio_fs_supported(inode->i_sb))
		return p2pio_refuse(filp, EOPNOTSUPP, "file system %s is not ext4 or xfs",
				    inode->i_sb->s_type->name);
	if (IS_ENCRYPTED(inode))
		return p2pio_refuse(filp, EMEDIUMTYPE, "encrypted file");
	if (IS_VERITY(inode))
		return p2pio_refuse(filp, EMEDIUMTYPE, "verity file");
	if (IS_DAX(inode))
		return p2pio_refuse(filp, EMEDIUMTYPE, "DAX file");
	ret = p2pio_fileattr_get(filp, &fa);
	if (ret && ret != -ENOIOCTLCMD)
		return ret;
	if (fa.flags & FS_COMPR_FL)
		return p2pio_refuse(filp, EMEDIUMTYPE, "compressed file");
	if (fa.flags & FS_INLINE_DATA_FL)
		return p2pio_refuse(filp, EMEDIUMTYPE, "inline data file");
	if (fa.flags & (FS_ENCRYPT_FL | FS_VERITY_FL))
		return p2pio_refuse(filp, EMEDIUMTYPE, "encrypted or verity file");
	if (fa.fsx_xflags & FS_XFLAG_REALTIME)
		return p2pio_refuse(filp, EMEDIUMTYPE, "xfs realtime file");
	return 0;
}

/* Device-level refusals: the block device must be a plain PCIe NVMe namespace. */
static int p2pio_file_check_bdev(struct file *filp, struct p2pio_file *f,
				 struct pci_dev **pdevp)
{
	struct block_device *bdev = file_inode(filp)->i_sb->s_bdev;
	struct gendisk *disk;
	struct pci_dev *pdev;
	unsigned int lbs;
	int nsid, ret;

	if (!bdev)
		return p2pio_refuse(filp, ENOTBLK, "file system has no block device");
	disk = bdev->bd_disk;
	if (!p2pio_disk_is_nvme(disk))
		return p2pio_refuse(filp, ENOTBLK,
				    "%s is not an NVMe namespace (dm, md, loop, virtio, ...)",
				    disk->disk_name);
	if (!queue_is_mq(disk->queue))
		return p2pio_refuse(filp, ENXIO,
				    "%s is an NVMe multipath head; use a path device",
				    disk->disk_name);
	pdev = p2pio_disk_pci(disk);
	if (!pdev || pdev->class != PCI_CLASS_STORAGE_EXPRESS)
		return p2pio_refuse(filp, EREMOTE,
				    "%s is not on a PCIe NVMe controller (fabrics?)",
				    disk->disk_name);
	lbs = bdev_logical_block_size(bdev);
	if (!is_power_of_2(lbs) || lbs < 512 || lbs > PAGE_SIZE * 16)
		return p2pio_refuse(filp, EINVAL, "odd logical block size %u", lbs);
	if ((p2pio_bdev_start_sect(bdev) << SECTOR_SHIFT) & (lbs - 1))
		return p2pio_refuse(filp, EINVAL, "partition start not LBA aligned");
	if (file_inode(filp)->i_blkbits < ilog2(lbs))
		return p2pio_refuse(filp, EINVAL, "fs block smaller than the LBA");
	nsid = p2pio_nvme_nsid(bdev);
	if (nsid <= 0)
		return p2pio_refuse(filp, ENXIO, "%s: no namespace id (%d)",
				    disk->disk_name, nsid);
	ret = p2pio_ns_check_format(filp, disk, pdev, nsid, lbs);
	if (ret)
		return ret;

	f->bdev = bdev;
	f->q = disk->queue;
	f->nsid = nsid;
	f->lba_shift = ilog2(lbs);
	f->max_cmd_bytes = min3((u64)queue_max_hw_sectors(f->q) << SECTOR_SHIFT,
				(u64)P2PIO_MAX_CMD_LBAS << f->lba_shift, P2PIO_MAX_CMD_BYTES);
	f->max_cmd_bytes = round_down(f->max_cmd_bytes, lbs);
	if (!f->max_cmd_bytes)
		return p2pio_refuse(filp, EINVAL, "queue allows no transfer");
	*pdevp = pdev;
	return 0;
}

static int p2pio_extent_add(struct p2pio_file *f, u32 *cap, u64 foff, u64 doff, u64 len)
{
	struct p2pio_extent *e = f->nr_ext ? &f->ext[f->nr_ext - 1] : NULL;

	if (e && e->foff + e->len == foff && e->doff + e->len == doff) {
		e->len += len;
		return 0;
	}
	if (f->nr_ext == *cap) {
		u32 ncap = *cap ? *cap * 2 : 64;
		struct p2pio_extent *n;

		if (*cap >= P2PIO_MAX_EXTENTS)
			return -E2BIG;
		ncap = min_t(u32, ncap, P2PIO_MAX_EXTENTS);
		/* Charged to the user's limit and the caller's memory cgroup. */
		if (p2pio_user_charge_ext(f->user, (u64)(ncap - *cap) * sizeof(*n)))
			return -EDQUOT;
		f->ext_charged += (u64)(ncap - *cap) * sizeof(*n);
		n = kvmalloc_array(ncap, sizeof(*n), GFP_KERNEL_ACCOUNT);
		if (!n)
			return -ENOMEM;
		if (f->nr_ext)
			memcpy(n, f->ext, f->nr_ext * sizeof(*n));
		kvfree(f->ext);
		f->ext = n;
		*cap = ncap;
	}
	f->ext[f->nr_ext++] = (struct p2pio_extent){ .foff = foff, .doff = doff, .len = len };
	return 0;
}

/*
 * Resolves every file block with bmap(). Holes, unwritten and delayed-allocation
 * blocks (and xfs reflink/realtime files) come back as block 0, which is never a data
 * block of ext4 or xfs: those files are refused, their raw LBAs never read.
 */
static int p2pio_file_resolve(struct file *filp, struct p2pio_file *f)
{
	struct inode *inode = file_inode(filp);
	unsigned int bbits = inode->i_blkbits;
	u64 part = (u64)p2pio_bdev_start_sect(f->bdev) << SECTOR_SHIFT;
	u64 nblocks = DIV_ROUND_UP(f->size, 1ULL << bbits);
	/* The blocks of the partition (or whole namespace) the file system lives on. */
	u64 dev_blocks = bdev_nr_bytes(f->bdev) >> bbits;
	u32 cap = 0;
	u64 i;
	int ret;

	for (i = 0; i < nblocks; i++) {
		sector_t blk = i;

		ret = bmap(inode, &blk);
		if (ret)
			return p2pio_refuse(filp, EOPNOTSUPP, "bmap failed (%d)", ret);
		if (!blk)
			return p2pio_refuse(filp, ENODATA,
					    "block %llu is a hole, unwritten, or shared (reflink)",
					    i);
		/* A damaged file system must not send reads into the next partition. */
		if (blk >= dev_blocks)
			return p2pio_refuse(filp, EIO,
					    "block %llu maps to %llu, past the end of %pg (%llu blocks)",
					    i, (u64)blk, f->bdev, dev_blocks);
		ret = p2pio_extent_add(f, &cap, i << bbits, part + ((u64)blk << bbits),
				       1ULL << bbits);
		if (ret == -E2BIG)
			return p2pio_refuse(filp, E2BIG, "more than %u extents",
					    P2PIO_MAX_EXTENTS);
		if (ret == -EDQUOT)
			return p2pio_refuse(filp, EDQUOT,
					    "the user's extent lists would exceed max_user_extent_kib (%lu)",
					    READ_ONCE(p2pio_max_user_extent_kib));
		if (ret)
			return ret;
		if ((i & 1023) == 1023) {
			if (fatal_signal_pending(current))
				return -EINTR;
			cond_resched();
		}
	}
	return 0;
}

static void p2pio_file_free(struct p2pio_file *f)
{
	p2pio_user_uncharge_ext(f->user, f->ext_charged);
	kvfree(f->ext);
	kfree(f);
}

/*
 * A lease that could not be given back still names @f: a later break runs
 * p2pio_lease_break() on @f and its worker gives the lease back from @f->lease_filp. So
 * @f and both its files are kept for good (the extents go), and so is the module, whose
 * lease operations the lease points to. Not expected with the kernel's credential.
 */
static void p2pio_file_keep(struct p2pio_file *f)
{
	p2pio_user_uncharge_ext(f->user, f->ext_charged);
	f->ext_charged = 0;
	kvfree(f->ext);
	f->ext = NULL;
	f->nr_ext = 0;
	__module_get(THIS_MODULE);
}

/* ---- the layout lease --------------------------------------------------------------- */

/*
 * The credential the module takes and gives back its leases with: the kernel's own (the
 * init user namespace, every capability, the kernel's LSM label), prepared once at load.
 * vfs_setlease() checks its caller for every call, giving back included: the owner, or
 * capable(CAP_LEASE), and the LSM's file_lock hook. A lease is the module's, not the
 * caller's: a registration may belong to a writer who is not the owner, and is released
 * from whatever context closes /dev/p2pio. With the closer's credentials (plus CAP_LEASE)
 * the give-back failed in a user namespace, where capable() looks at the init namespace
 * and fails whatever the effective set holds (any user may unshare one), or under an LSM
 * denying the lock, or without memory for the copy; the lease then outlived the
 * registration it names, and the next write's break used the freed registration.
 */
static const struct cred *p2pio_lease_cred;

int p2pio_file_init(void)
{
	p2pio_lease_cred = p2pio_prepare_kernel_cred();
	return p2pio_lease_cred ? 0 : -ENOMEM;
}

void p2pio_file_exit(void)
{
	put_cred(p2pio_lease_cred);
}

static int p2pio_setlease(struct file *filp, int arg, struct p2pio_lease **fl, void **priv)
{
	const struct cred *old = override_creds(p2pio_lease_cred);
	int ret = vfs_setlease(filp, arg, fl, priv);

	revert_creds(old);
	return ret;
}

/*
 * Lease breaks under way (registrations whose lease broke and is not given back yet) and
 * when the last began or ended: p2pio_lease_watch() is needed only around them (a
 * breaker sleeps unasked only on a lease taken while it was at work), so a registration
 * watches only while a break is under way or ended less than P2PIO_LEASE_WATCH_SPAN ago,
 * and an idle machine has no watch running.
 */
#define P2PIO_LEASE_WATCH_SPAN (10 * HZ)
static atomic_t p2pio_breaks_open = ATOMIC_INIT(0);
static unsigned long p2pio_break_jiffies;
static bool p2pio_break_seen;

/* @f's lease broke (lm_break, or the watch broke it): once per registration. */
static void p2pio_break_begin(struct p2pio_file *f)
{
	if (xchg(&f->break_open, true))
		return;
	WRITE_ONCE(p2pio_break_jiffies, jiffies);
	WRITE_ONCE(p2pio_break_seen, true);
	atomic_inc(&p2pio_breaks_open);
}

/* @f's broken lease was given back (or @f goes: p2pio_lease_drop()). */
static void p2pio_break_end(struct p2pio_file *f)
{
	if (!xchg(&f->break_open, false))
		return;
	WRITE_ONCE(p2pio_break_jiffies, jiffies);
	atomic_dec(&p2pio_breaks_open);
}

static bool p2pio_breaks_recent(void)
{
	return atomic_read(&p2pio_breaks_open) > 0 ||
	       (READ_ONCE(p2pio_break_seen) &&
		time_before(jiffies, READ_ONCE(p2pio_break_jiffies) + P2PIO_LEASE_WATCH_SPAN));
}

/* The watch of @f is no longer armed: out of lease_watches. */
static void p2pio_watch_ended(struct p2pio_file *f)
{
	if (xchg(&f->watching, false))
		atomic64_dec(&p2pio_global.lease_watches);
}

/*
 * Gives the lease back; false when it may still be on the inode. Then it still names @f,
 * which must live on: a break would call p2pio_lease_break() on it.
 */
static bool p2pio_lease_give_back(struct p2pio_file *f)
{
	void *owner = f;
	int ret;

	if (!xchg(&f->leased, false))
		return true;
	ret = p2pio_setlease(f->lease_filp, F_UNLCK, NULL, &owner);
	/* -EAGAIN: not expected since the break keeps the kernel from timing it out. */
	if (!ret || ret == -EAGAIN) {
		p2pio_break_end(f);
		return true;
	}
	/* Leased again: the release (p2pio_lease_drop()) or a later break's worker retries. */
	WRITE_ONCE(f->leased, true);
	pr_err_ratelimited("%pD: the layout lease of registration %u could not be given back (%d): the registration is kept\n",
			   f->filp, f->handle, ret);
	return false;
}

/*
 * @f's lease is broken (by the file system's lm_break, or by p2pio_lease_watch() for a
 * breaker that sleeps on it unasked): no read starts from now on, and the worker gives
 * the lease back once the reads in flight are done. Under the inode's flc_lock.
 */
static void p2pio_lease_broken(struct p2pio_file *f)
{
	WRITE_ONCE(f->stale, true);
	smp_mb();	/* pairs with p2pio_file_get(): @stale before reading @busy */
	p2pio_break_begin(f);
	queue_work(system_unbound_wq, &f->break_work);
}

/*
 * The file system is about to change the file's block map. Called under the inode's
 * flc_lock: nothing here sleeps. No read starts from now on (p2pio_file_get() sees
 * @stale); the worker waits for the reads in flight and then gives the lease back,
 * which lets the breaker go on. Returning false keeps the lease until then.
 */
static bool p2pio_lease_break(struct p2pio_lease *fl)
{
	struct p2pio_file *f = p2pio_lease_owner(fl);

	/*
	 * Never let the kernel time the lease out (it set the break time just before
	 * calling us; 0 means "never expires", as nfsd's layout leases do): the lease is
	 * what keeps the old blocks from being freed and reused while a command of ours
	 * may still read them, and only we know when that is over (@busy at 0). With the
	 * timeout, an issuer preempted between nvme.c's last check of @stale and the
	 * command's issue (any preemptible kernel: preempt=full, PREEMPT_LAZY, RT; a
	 * SCHED_IDLE thread among CPU hogs waits minutes for its CPU) issued its read
	 * after the file system had freed the blocks and another file had taken them,
	 * and so did a command the NVMe driver completes after lease_break_time. The
	 * breaker waits (interruptibly) until break_work gives the lease back; the
	 * issuer stops at its next command, so that is the commands in flight.
	 */
	fl->fl_break_time = 0;
	p2pio_lease_broken(f);
	return false;
}

static const struct p2pio_lease_manager p2pio_lease_ops = {
	.lm_break = p2pio_lease_break,
	.lm_change = lease_modify,
};

static void p2pio_file_break_work(struct work_struct *work)
{
	struct p2pio_file *f = container_of(work, struct p2pio_file, break_work);

	wait_var_event(&f->busy, !atomic_read(&f->busy));
	p2pio_lease_give_back(f);
	pr_info_ratelimited("%pD: the file system changes its block map (dedupe, reflink, truncate or hole punch): registration %u is stale, its reads fail with ESTALE\n",
			    f->filp, f->handle);
}

/*
 * The lease is taken on an open file of the module's own (@f->lease_filp), not on the
 * user's: giving a lease back (lease_modify(), F_UNLCK) clears its file's owner, so on the
 * user's file it undid their F_SETOWN and F_SETSIG, and the signal of a lease of their
 * own on that file (a break) went nowhere. The open is the kernel's credential's, like the
 * lease; only the lease is taken through it, nothing is read.
 *
 * Opened before any lock of the file is taken: the open asks fanotify's open-permission
 * listeners (FAN_OPEN_PERM: virus scanners, fapolicyd, HSMs) and waits for their answer,
 * and a listener reads the file, or sets an xattr on it, before it answers. On xfs the
 * lease is taken under i_rwsem: an open made there waited for a listener that waited
 * for that lock (its read queued behind a chmod of the owner's, its setxattr at once),
 * which hung the listener and every open it was to judge (test-openperm).
 */
static int p2pio_lease_open(struct p2pio_file *f, struct file *filp)
{
	struct file *lf = dentry_open(&filp->f_path, O_RDONLY | O_LARGEFILE, p2pio_lease_cred);

	if (IS_ERR(lf))
		return p2pio_refuse(filp, ENOLCK, "no layout lease: the module's open of the file failed (%ld)",
				    PTR_ERR(lf));
	f->lease_filp = lf;
	return 0;
}

/*
 * How often a registration looks for a layout breaker sleeping on its lease that never
 * asked it to break (p2pio_lease_watch()): the longest such a breaker (a dedupe) waits
 * before the break starts.
 */
#define P2PIO_LEASE_WATCH_MS 20

/*
 * A breaker that sleeps on our lease without having broken it. fs/locks.c's
 * __break_lease() breaks (lm_break) the leases it finds when it starts, then sleeps until
 * they are given back; woken, it waits for any lease that conflicts now, in its restart
 * loop, without breaking it (6.1, 6.12). A lease taken in between, as a registration made
 * right after our broken lease was given back is (libp2pio registers a file again when
 * its reads come back with ESTALE; an application may do so too), was never broken: the
 * breaker waited until that registration was unregistered, for good where the deduper
 * was the one to do it (a diagnostic program: 17 of 80 dedupes hung so on 6.1 with the
 * IOMMU, each freed by unregistering the new registration; test-leaserace). Such a breaker sits on our lease's
 * blocked list (only layout breakers conflict with a layout lease: a plain open's lease
 * break does not wait on it); finding one there, we break as lm_break would. Re-armed
 * while the registration holds its lease, is not stale and a break is under way or
 * recent (p2pio_breaks_recent()); cancelled by p2pio_lease_drop().
 */
static void p2pio_lease_watch(struct work_struct *work)
{
	struct p2pio_file *f = container_of(to_delayed_work(work), struct p2pio_file,
					    watch_work);
	struct file_lock_context *ctx = smp_load_acquire(&file_inode(f->lease_filp)->i_flctx);
	bool broke = false;

	if (READ_ONCE(f->stale) || !ctx)
		goto stop;
	spin_lock(&ctx->flc_lock);
	/* @leased under flc_lock: the lease is on the inode's list, so @f->lease is valid. */
	if (READ_ONCE(f->leased) && p2pio_lease_blocked((struct p2pio_lease *)f->lease)) {
		p2pio_lease_broken(f);
		broke = true;
	}
	spin_unlock(&ctx->flc_lock);
	if (broke) {
		pr_info_ratelimited("%pD: a layout break waits on registration %u without having broken it: breaking it\n",
				    f->filp, f->handle);
		goto stop;
	}
	/*
	 * No break under way or lately: a breaker that comes now finds our lease and breaks
	 * it (lm_break); only one already at work when the lease was taken could sleep on it
	 * unasked, and that one has looked again long since.
	 */
	if (!p2pio_breaks_recent())
		goto stop;
	schedule_delayed_work(&f->watch_work, msecs_to_jiffies(P2PIO_LEASE_WATCH_MS));
	return;
stop:
	p2pio_watch_ended(f);
}

/* Takes the lease on @f->lease_filp (p2pio_lease_open()); nothing here waits for a user. */
static int p2pio_lease_take(struct p2pio_file *f, struct file *filp)
{
	struct p2pio_lease *fl, *mine;
	int ret;

	fl = p2pio_lease_alloc();
	if (!fl)
		return -ENOMEM;
	p2pio_lease_init(fl, f->lease_filp, f, &p2pio_lease_ops);
	mine = fl;
	ret = p2pio_setlease(f->lease_filp, F_RDLCK, &fl, NULL);
	/* On success the lease list took @fl (NULL here), or kept an older lease of ours. */
	if (fl)
		p2pio_lease_free(fl);
	if (ret == -EAGAIN)
		return p2pio_refuse(filp, EAGAIN,
				    "no layout lease: the file's block map is being changed");
	if (ret)
		return p2pio_refuse(filp, ENOLCK,
				    "no layout lease (%d): is fs.leases-enable 0?", ret);
	f->leased = true;
	/* Each registration opens its own lease file: the list took ours. */
	if (!fl) {
		f->lease = mine;
		if (p2pio_breaks_recent()) {
			f->watching = true;
			atomic64_inc(&p2pio_global.lease_watches);
			schedule_delayed_work(&f->watch_work,
					      msecs_to_jiffies(P2PIO_LEASE_WATCH_MS));
		}
	}
	return 0;
}

/*
 * Undoes p2pio_lease_take(); after it, no break can reach @f. False when the lease could
 * not be given back: then @f, its file and the module must stay (p2pio_file_keep()).
 */
static bool p2pio_lease_drop(struct p2pio_file *f)
{
	cancel_delayed_work_sync(&f->watch_work);
	p2pio_watch_ended(f);
	if (!p2pio_lease_give_back(f))
		return false;
	cancel_work_sync(&f->break_work);
	/* A break's worker that failed to give it back meanwhile left it leased again. */
	if (!p2pio_lease_give_back(f))
		return false;
	if (f->lease_filp)
		fput(f->lease_filp);
	f->lease_filp = NULL;
	/* A lease that broke before @leased was set was never given back by the break. */
	p2pio_break_end(f);
	return true;
}

/*
 * Whether a command of @f may still be issued: 0, or the errno its read fails with.
 *
 * ESTALE once the layout lease broke (@stale). EMEDIUMTYPE once the file is a verity
 * file: registration refuses those (p2pio_file_check_inode()), but FS_IOC_ENABLE_VERITY
 * needs only a read-only fd and no writers, which deny_write_access() lets through (it
 * denies writers itself), and breaks no layout lease (ext4 writes the Merkle tree past
 * EOF; the data blocks stay where they are). From then on read() checks every block it
 * reads from the device against the tree and fails with EIO where it does not match;
 * raw LBA reads would skip that, so they are refused. S_VERITY is set once the tree is
 * complete and never cleared while the inode lives (@filp holds it).
 */
int p2pio_file_check(struct p2pio_file *f)
{
	if (unlikely(READ_ONCE(f->stale)))
		return -ESTALE;
	if (unlikely(IS_VERITY(file_inode(f->filp)))) {
		/* Once per registration; then the reads' status says it. */
		if (!xchg(&f->verity, true))
			return p2pio_refuse(f->filp, EMEDIUMTYPE,
					    "verity file (fs-verity enabled after registration %u): its reads fail from now on",
					    f->handle);
		return -EMEDIUMTYPE;
	}
	return 0;
}

/*
 * Takes an issuer's reference on @f for the reads about to start: 0, or the errno of
 * p2pio_file_check() (no reference then). Reads hold @busy from before they are issued
 * until they end.
 */
int p2pio_file_get(struct p2pio_file *f)
{
	int ret;

	atomic_inc(&f->busy);
	smp_mb__after_atomic();	/* pairs with p2pio_lease_break(): @busy before @stale */
	ret = p2pio_file_check(f);
	if (likely(!ret))
		return 0;
	p2pio_file_put(f);
	return ret;
}

/* Any context. */
void p2pio_file_put(struct p2pio_file *f)
{
	if (atomic_dec_and_test(&f->busy))
		wake_up_var(&f->busy);
}

/* ---- registration ------------------------------------------------------------------- */

/*
 * xfs breaks layout leases before it takes the file's i_rwsem for a change of its block
 * map, breaks once more under the lock for a lease taken in between, and then holds the
 * lock through the change (a dedupe: its compare and the remap). A lease taken while it
 * holds the lock is one no break reaches: a registration that took its lease there read
 * the old blocks, and the remap then freed them under it. So on xfs the lease is taken
 * with i_rwsem held shared: before the change's lock (its second break finds the lease)
 * or after the change (the map read then is the new one). The map itself is read
 * without it: from the lease on, a change breaks it first, and the check of @stale after
 * the read catches one that came during it. Not on ext4: ext4 breaks no layouts (it
 * changes a file's map only through an fd open for writing, which registration denies).
 */
static bool p2pio_map_needs_iolock(struct inode *inode)
{
	return !strcmp(inode->i_sb->s_type->name, "xfs");
}

int p2pio_file_register(struct p2pio_ctx *ctx, struct p2pio_register_file *arg,
			struct p2pio_file **out)
{
	struct p2pio_file *f;
	struct pci_dev *pdev = NULL;
	struct inode *inode;
	struct file *filp;
	bool iolock, kept = false;
	u32 id;
	int ret;

	if ((arg->flags & ~P2PIO_REGISTER_NOWAIT) ||
	    memchr_inv(arg->reserved, 0, sizeof(arg->reserved)))
		return -EINVAL;
	filp = fget(arg->fd);
	if (!filp)
		return -EBADF;
	inode = file_inode(filp);
	f = kzalloc(sizeof(*f), GFP_KERNEL_ACCOUNT);
	if (!f) {
		ret = -ENOMEM;
		goto out_fput;
	}
	atomic_set(&f->busy, 0);
	INIT_WORK(&f->break_work, p2pio_file_break_work);
	INIT_DELAYED_WORK(&f->watch_work, p2pio_lease_watch);
	f->user = ctx->user;
	if (!p2pio_user_take(&f->user->files, READ_ONCE(p2pio_max_user_files))) {
		ret = p2pio_refuse(filp, EDQUOT, "the user has max_user_files (%u) registered",
				   READ_ONCE(p2pio_max_user_files));
		goto out_free;
	}
	ret = p2pio_file_check_inode(filp);
	if (ret)
		goto out_uncount;
	ret = p2pio_file_check_access(filp);
	if (ret)
		goto out_uncount;
	ret = p2pio_file_check_bdev(filp, f, &pdev);
	if (ret)
		goto out_uncount;

	f->filp = filp;
	/* Before the file's locks: the open may wait for fanotify listeners. */
	ret = p2pio_lease_open(f, filp);
	if (ret)
		goto out_uncount;
	ret = deny_write_access(filp);
	if (ret) {
		ret = p2pio_refuse(filp, ETXTBSY, "open for writing elsewhere");
		goto out_lfput;
	}
	/*
	 * The lease under i_rwsem where the file system relies on it. NOWAIT: not behind a
	 * change of the block map that holds it (a dedupe: its compare and remap).
	 */
	iolock = p2pio_map_needs_iolock(inode);
	if (iolock && (arg->flags & P2PIO_REGISTER_NOWAIT)) {
		if (!down_read_trylock(&inode->i_rwsem)) {
			ret = -EBUSY;
			goto out_allow;
		}
	} else if (iolock && down_read_killable(&inode->i_rwsem)) {
		ret = -EINTR;
		goto out_allow;
	}
	/* Before the block map is read: a change after this point breaks the lease. */
	ret = p2pio_lease_take(f, filp);
	if (iolock)
		up_read(&inode->i_rwsem);
	if (ret)
		goto out_allow;
	/* Dirty pages get their blocks allocated and written before we look. */
	ret = filemap_write_and_wait(filp->f_mapping);
	if (ret)
		goto out_lease;
	f->size = i_size_read(inode);
	if (!f->size) {
		ret = p2pio_refuse(filp, ENODATA, "empty file");
		goto out_lease;
	}
	ret = p2pio_file_resolve(filp, f);
	if (ret)
		goto out_lease;
	if (READ_ONCE(f->stale)) {
		ret = p2pio_refuse(filp, EAGAIN, "block map changed while being read");
		goto out_lease;
	}

	/* Killable: a SUBMIT on the same fd holds the lock for as long as its batch takes. */
	if (mutex_lock_killable(&ctx->lock)) {
		ret = -EINTR;
		goto out_lease;
	}
	if (ctx->nr_files >= P2PIO_MAX_FILES) {
		ret = -EMFILE;
		goto out_unlock;
	}
	f->nvme = p2pio_nvme_get(pdev);
	if (IS_ERR(f->nvme)) {
		ret = PTR_ERR(f->nvme);
		goto out_unlock;
	}
	/* Cyclic: a handle just unregistered is not soon handed out again. */
	ret = xa_alloc_cyclic(&ctx->files, &id, f, xa_limit_31b, &ctx->next_file, GFP_KERNEL);
	if (ret < 0)
		goto out_nvme;
	f->handle = id;
	ctx->nr_files++;
	mutex_unlock(&ctx->lock);
	p2pio_count(ctx, live_files, 1);

	arg->handle = id;
	arg->lba_size = 1U << f->lba_shift;
	arg->size = f->size;
	arg->nr_extents = f->nr_ext;
	arg->nsid = f->nsid;
	*out = f;
	dev_dbg(p2pio_dev, "file %u: %pD on %s nsid %u, %llu bytes, %u extents\n",
		id, filp, f->bdev->bd_disk->disk_name, f->nsid, f->size, f->nr_ext);
	return 0;

out_nvme:
	p2pio_nvme_put(f->nvme);
out_unlock:
	mutex_unlock(&ctx->lock);
out_lease:
	kept = !p2pio_lease_drop(f);
out_allow:
	allow_write_access(filp);
out_lfput:
	/* p2pio_lease_drop() put it, unless it kept it; a lease not taken left it here. */
	if (!kept && f->lease_filp) {
		fput(f->lease_filp);
		f->lease_filp = NULL;
	}
out_uncount:
	atomic_dec(&f->user->files);
	if (kept) {
		p2pio_file_keep(f);
		return ret;
	}
out_free:
	p2pio_file_free(f);
out_fput:
	fput(filp);
	return ret;
}

/* Mirrors p2pio_file_register(); the caller has removed @f from the handle table. */
void p2pio_file_release(struct p2pio_ctx *ctx, struct p2pio_file *f)
{
	bool kept;

	WARN_ON_ONCE(atomic_read(&f->busy));
	kept = !p2pio_lease_drop(f);
	p2pio_nvme_put(f->nvme);
	allow_write_access(f->filp);
	atomic_dec(&f->user->files);
	atomic64_dec(&ctx->stats.live_files);
	atomic64_dec(&p2pio_global.live_files);
	if (kept) {
		p2pio_file_keep(f);
		return;
	}
	fput(f->filp);
	p2pio_file_free(f);
}

int p2pio_file_unregister(struct p2pio_ctx *ctx, u32 handle)
{
	struct p2pio_file *f;

	if (mutex_lock_killable(&ctx->lock))
		return -EINTR;
	f = xa_load(&ctx->files, handle);
	if (!f) {
		mutex_unlock(&ctx->lock);
		return -EBADF;
	}
	if (atomic_read(&f->busy)) {
		mutex_unlock(&ctx->lock);
		return -EBUSY;
	}
	xa_erase(&ctx->files, handle);
	ctx->nr_files--;
	mutex_unlock(&ctx->lock);
	p2pio_file_release(ctx, f);
	return 0;
}

/*
 * The caller could not learn the handle of @f (registered as @handle): undo that
 * registration, and only that one. Another thread of the caller may have unregistered
 * @handle already (@f is then freed and not touched here), or have reads on it (it then
 * stays until unregistered or the fd is closed).
 */
void p2pio_file_undo(struct p2pio_ctx *ctx, struct p2pio_file *f, u32 handle)
{
	/* Killed: the fd's close releases it with the rest. */
	if (mutex_lock_killable(&ctx->lock))
		return;
	if (xa_load(&ctx->files, handle) != f || atomic_read(&f->busy)) {
		mutex_unlock(&ctx->lock);
		return;
	}
	xa_erase(&ctx->files, handle);
	ctx->nr_files--;
	mutex_unlock(&ctx->lock);
	p2pio_file_release(ctx, f);
}
