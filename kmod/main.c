// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * main.c - /dev/p2pio: open/release, ioctl dispatch, read() and poll() of completions.
 *
 * The handlers here only copy arguments in and out; the work is in file.c (files),
 * mem*.c (pins), read.c (submission and completion) and nvme.c (commands).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/build_bug.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "p2pio.h"

/* The ABI has no implicit padding: the sizes are the sum of the fields. */
static_assert(sizeof(struct p2pio_version) == 72);
static_assert(sizeof(struct p2pio_register_file) == 64);
static_assert(sizeof(struct p2pio_handle_arg) == 24);
static_assert(sizeof(struct p2pio_pin) == 88);
static_assert(sizeof(struct p2pio_read) == 48);
static_assert(sizeof(struct p2pio_submit) == 40);
static_assert(sizeof(struct p2pio_completion) == 40);
static_assert(sizeof(struct p2pio_reap) == 48);
static_assert(sizeof(struct p2pio_stats) == 312);

struct device *p2pio_dev;

static bool p2pio_zero(const void *p, size_t len)
{
	return !memchr_inv(p, 0, len);
}

static int p2pio_open(struct inode *inode, struct file *filp)
{
	struct p2pio_ctx *ctx;

	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL_ACCOUNT);
	if (!ctx)
		return -ENOMEM;
	ctx->user = p2pio_user_get();
	if (IS_ERR(ctx->user)) {
		int ret = PTR_ERR(ctx->user);

		kfree(ctx);
		return ret;
	}
	mutex_init(&ctx->lock);
	mutex_init(&ctx->reap_lock);
	xa_init_flags(&ctx->files, XA_FLAGS_ALLOC1);
	xa_init_flags(&ctx->mems, XA_FLAGS_ALLOC1);
	spin_lock_init(&ctx->cq_lock);
	INIT_LIST_HEAD(&ctx->done);
	init_waitqueue_head(&ctx->cq_wait);
	init_waitqueue_head(&ctx->cmd_wait);
	atomic_set(&ctx->inflight, 0);
	filp->private_data = ctx;
	p2pio_count(ctx, live_fds, 1);
	return 0;
}

/* Mirrors the ioctls that built the state: reads first, then pins, then files. */
static int p2pio_release(struct inode *inode, struct file *filp)
{
	struct p2pio_ctx *ctx = filp->private_data;
	struct p2pio_file *f;
	struct p2pio_mem *mem;
	unsigned long idx;

	p2pio_ctx_drain(ctx);
	xa_for_each(&ctx->mems, idx, mem) {
		xa_erase(&ctx->mems, idx);
		p2pio_mem_release(ctx, mem);
	}
	xa_for_each(&ctx->files, idx, f) {
		xa_erase(&ctx->files, idx);
		p2pio_file_release(ctx, f);
	}
	xa_destroy(&ctx->mems);
	xa_destroy(&ctx->files);
	p2pio_user_put(ctx->user);
	atomic64_dec(&p2pio_global.live_fds);
	mutex_destroy(&ctx->reap_lock);
	mutex_destroy(&ctx->lock);
	kfree(ctx);
	return 0;
}

static void p2pio_version_fill(struct p2pio_version *v)
{
	memset(v, 0, sizeof(*v));
	v->abi_version = P2PIO_ABI_VERSION;
	v->max_batch = P2PIO_MAX_BATCH;
	v->features = P2PIO_FEAT_POLL | P2PIO_FEAT_READ | P2PIO_FEAT_STATS |
		      P2PIO_FEAT_REGISTER_NOWAIT | p2pio_mem_features();
	v->max_outstanding = P2PIO_MAX_OUTSTANDING;
	v->max_files = P2PIO_MAX_FILES;
	v->max_pins = P2PIO_MAX_PINS;
	v->max_cmds = P2PIO_MAX_CMDS;
	v->max_read_len = P2PIO_MAX_READ_LEN;
}

static int p2pio_stats_ioctl(struct p2pio_ctx *ctx, struct p2pio_stats *s)
{
	u32 scope = s->scope;

	if (s->flags || !p2pio_zero(s->reserved, sizeof(s->reserved)))
		return -EINVAL;
	switch (scope) {
	case P2PIO_STATS_FD:
		p2pio_stats_fill(&ctx->stats, s);
		s->live_fds = 0;
		break;
	case P2PIO_STATS_GLOBAL:
		/* Every user's I/O, counted together: not for one user to watch the others. */
		if (!capable(CAP_SYS_ADMIN))
			return -EPERM;
		p2pio_stats_fill(&p2pio_global, s);
		break;
	default:
		return -EINVAL;
	}
	s->scope = scope;
	return 0;
}

static long p2pio_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct p2pio_ctx *ctx = filp->private_data;
	void __user *uarg = (void __user *)arg;
	union {
		struct p2pio_version version;
		struct p2pio_register_file reg;
		struct p2pio_handle_arg h;
		struct p2pio_pin pin;
		struct p2pio_submit submit;
		struct p2pio_reap reap;
		struct p2pio_stats stats;
	} u;
	size_t size = _IOC_SIZE(cmd);
	struct p2pio_file *reg_f;
	struct p2pio_mem *pin_m;
	int ret;

	switch (cmd) {
	case P2PIO_IOC_VERSION:
	case P2PIO_IOC_REGISTER_FILE:
	case P2PIO_IOC_UNREGISTER_FILE:
	case P2PIO_IOC_PIN:
	case P2PIO_IOC_UNPIN:
	case P2PIO_IOC_SUBMIT:
	case P2PIO_IOC_REAP:
	case P2PIO_IOC_STATS:
		break;
	default:
		return -ENOTTY;
	}
	if (size > sizeof(u))
		return -ENOTTY;
	if ((_IOC_DIR(cmd) & _IOC_WRITE) && copy_from_user(&u, uarg, size))
		return -EFAULT;

	switch (cmd) {
	case P2PIO_IOC_VERSION:
		p2pio_version_fill(&u.version);
		ret = 0;
		break;
	case P2PIO_IOC_REGISTER_FILE:
		ret = p2pio_file_register(ctx, &u.reg, &reg_f);
		break;
	case P2PIO_IOC_UNREGISTER_FILE:
		if (u.h.flags || !p2pio_zero(u.h.reserved, sizeof(u.h.reserved)))
			return -EINVAL;
		return p2pio_file_unregister(ctx, u.h.handle);
	case P2PIO_IOC_PIN:
		ret = p2pio_mem_pin(ctx, &u.pin, &pin_m);
		if (ret == 0 && copy_to_user(uarg, &u, size)) {
			/* The caller cannot learn the handle: undo the pin, by pointer (the
			 * handle may be another thread's by now). */
			p2pio_mem_undo(ctx, pin_m, u.pin.handle);
			return -EFAULT;
		}
		return ret;
	case P2PIO_IOC_UNPIN:
		if (u.h.flags || !p2pio_zero(u.h.reserved, sizeof(u.h.reserved)))
			return -EINVAL;
		return p2pio_mem_unpin(ctx, u.h.handle);
	case P2PIO_IOC_SUBMIT:
		ret = p2pio_submit(ctx, &u.submit);
		/* Accepted reads complete whatever happens to this copy. */
		if (u.submit.accepted && copy_to_user(uarg, &u, size))
			return -EFAULT;
		return ret;
	case P2PIO_IOC_REAP:
		ret = p2pio_reap(ctx, &u.reap);
		break;
	case P2PIO_IOC_STATS:
		ret = p2pio_stats_ioctl(ctx, &u.stats);
		break;
	default:
		return -ENOTTY;
	}
	if (ret)
		return ret;
	if (cmd == P2PIO_IOC_REGISTER_FILE) {
		if (copy_to_user(uarg, &u, size)) {
			/* By pointer: the handle may be another thread's by now. */
			p2pio_file_undo(ctx, reg_f, u.reg.handle);
			return -EFAULT;
		}
		return 0;
	}
	if ((_IOC_DIR(cmd) & _IOC_READ) && copy_to_user(uarg, &u, size))
		return -EFAULT;
	return 0;
}

static ssize_t p2pio_read(struct file *filp, char __user *buf, size_t len, loff_t *ppos)
{
	return p2pio_read_completions(filp->private_data, buf, len,
				      filp->f_flags & O_NONBLOCK);
}

static __poll_t p2pio_poll(struct file *filp, struct poll_table_struct *wait)
{
	struct p2pio_ctx *ctx = filp->private_data;
	__poll_t mask = 0;
	unsigned long flags;

	poll_wait(filp, &ctx->cq_wait, wait);
	spin_lock_irqsave(&ctx->cq_lock, flags);
	if (ctx->nr_done)
		mask |= EPOLLIN | EPOLLRDNORM;
	spin_unlock_irqrestore(&ctx->cq_lock, flags);
	return mask;
}

static const struct file_operations p2pio_fops = {
	.owner = THIS_MODULE,
	.open = p2pio_open,
	.release = p2pio_release,
	.unlocked_ioctl = p2pio_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.read = p2pio_read,
	.poll = p2pio_poll,
	.llseek = noop_llseek,
};

static struct miscdevice p2pio_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "p2pio",
	.fops = &p2pio_fops,
	/* Users of the group that kmod/60-p2pio.rules gives the node (admin-guide.md). */
	.mode = 0660,
};

static int __init p2pio_init(void)
{
	char names[64];
	int ret;

	ret = p2pio_stats_init();
	if (ret)
		return ret;
	ret = p2pio_file_init();
	if (ret)
		goto out_stats;
	ret = p2pio_nvme_init();
	if (ret)
		goto out_file;
	/* Device-memory providers, each behind struct p2pio_mem_provider. */
	ret = p2pio_nvidia_init();
	if (ret)
		goto out_nvme;
	ret = p2pio_pcibar_init();
	if (ret)
		goto out_nvidia;
	ret = misc_register(&p2pio_misc);
	if (ret)
		goto out_pcibar;
	p2pio_dev = p2pio_misc.this_device;
	dev_info(p2pio_dev, "ABI %u, providers: %s%s\n", P2PIO_ABI_VERSION,
		 p2pio_mem_provider_names(names, sizeof(names)),
		 p2pio_mem_features() & P2PIO_FEAT_PROVIDER_NVIDIA ? "" :
		 " (nvidia_p2p_* not found: load NVIDIA's open kernel modules before p2pio for the nvidia provider)");
	return 0;

out_pcibar:
	p2pio_pcibar_exit();
out_nvidia:
	p2pio_nvidia_exit();
out_nvme:
	p2pio_nvme_exit();
out_file:
	p2pio_file_exit();
out_stats:
	p2pio_stats_exit();
	return ret;
}

static void __exit p2pio_exit(void)
{
	misc_deregister(&p2pio_misc);
	p2pio_pcibar_exit();
	p2pio_nvidia_exit();
	p2pio_nvme_exit();
	p2pio_file_exit();
	p2pio_stats_exit();
}

module_init(p2pio_init);
module_exit(p2pio_exit);

MODULE_DESCRIPTION("p2pio: NVMe reads straight into pinned GPU or PCI BAR memory");
MODULE_AUTHOR("p2pio authors");
MODULE_LICENSE("Dual MIT/GPL");
