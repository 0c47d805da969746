// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * read.c - reads: validation, splitting into NVMe commands, the per-fd completion
 * queue (P2PIO_IOC_REAP, read(), poll()), and draining at close.
 *
 * Every accepted read ends as exactly one completion. A read is split at extent
 * boundaries and at the file's per-command limit (queue_max_hw_sectors, which folds the
 * controller's MDTS, and 65536 LBAs). Submission holds ctx->lock, so one submitter at a
 * time issues into the fd and the command bound (P2PIO_MAX_CMDS) cannot overshoot.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/device.h>
#include <linux/fs.h>
#include <linux/fsnotify.h>
#include <linux/hrtimer.h>
#include <linux/ktime.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#include "p2pio.h"

static void p2pio_rd_set_error(struct p2pio_rd *rd, int err)
{
	cmpxchg(&rd->status, 0, err);
}

/* The read's last command is done (any context): queue its completion. */
static void p2pio_rd_complete(struct p2pio_rd *rd)
{
	struct p2pio_ctx *ctx = rd->ctx;
	unsigned long flags;

	rd->latency_ns = ktime_get_ns() - rd->t_start;
	if (rd->status)
		p2pio_count(ctx, reads_failed, 1);
	else
		p2pio_count(ctx, reads_completed, 1);
	spin_lock_irqsave(&ctx->cq_lock, flags);
	list_add_tail(&rd->node, &ctx->done);
	ctx->nr_done++;
	wake_up(&ctx->cq_wait);
	spin_unlock_irqrestore(&ctx->cq_lock, flags);
}

/* Drops one pending reference of @rd: a command's completion, or the issuer's. */
void p2pio_rd_put(struct p2pio_rd *rd)
{
	if (atomic_dec_and_test(&rd->pending))
		p2pio_rd_complete(rd);
}

/* Called from nvme.c when a command ends, in interrupt context. */
void p2pio_cmd_done(struct p2pio_ctx *ctx, struct p2pio_rd *rd, int err)
{
	unsigned long flags;

	if (err)
		p2pio_rd_set_error(rd, err);
	p2pio_rd_put(rd);
	p2pio_count(ctx, inflight_cmds, -1);
	p2pio_user_cmd_done(ctx->user);
	/* Last touch of @ctx: under the lock p2pio_ctx_drain() checks with. */
	spin_lock_irqsave(&ctx->cq_lock, flags);
	atomic_dec(&ctx->inflight);
	wake_up(&ctx->cmd_wait);
	spin_unlock_irqrestore(&ctx->cq_lock, flags);
}

/* Binary search: the extent holding file byte @foff (which is below the mapped end). */
static struct p2pio_extent *p2pio_extent_find(struct p2pio_file *f, u64 foff)
{
	u32 lo = 0, hi = f->nr_ext;

	while (lo < hi) {
		u32 mid = lo + (hi - lo) / 2;
		struct p2pio_extent *e = &f->ext[mid];

		if (foff < e->foff)
			hi = mid;
		else if (foff - e->foff >= e->len)
			lo = mid + 1;
		else
			return e;
	}
	return NULL;
}

static int p2pio_read_check(struct p2pio_ctx *ctx, const struct p2pio_read *r,
			    struct p2pio_file **fp, struct p2pio_mem **memp)
{
	struct p2pio_file *f;
	struct p2pio_mem *mem;
	u64 lbs, end;

	if (r->flags || r->reserved)
		return -EINVAL;
	f = xa_load(&ctx->files, r->file);
	mem = xa_load(&ctx->mems, r->mem);
	if (!f || !mem)
		return -EBADF;
	lbs = 1ULL << f->lba_shift;
	if (!r->length || r->length > P2PIO_MAX_READ_LEN ||
	    ((r->file_offset | r->length) & (lbs - 1)))
		return -EINVAL;
	end = round_up(f->size, lbs);
	if (r->file_offset >= end || r->length > end - r->file_offset)
		return -ERANGE;
	if (r->mem_offset > mem->length || r->length > mem->length - r->mem_offset)
		return -ERANGE;
	/* PRP1 must be dword aligned. */
	if ((mem->skew + r->mem_offset) & 3)
		return -EINVAL;
	*fp = f;
	*memp = mem;
	return 0;
}

/* A command slot of the fd, then one of the user (max_user_cmds over all their fds). */
static int p2pio_cmd_slot(struct p2pio_ctx *ctx)
{
	if (wait_event_killable(ctx->cmd_wait,
				atomic_read(&ctx->inflight) < P2PIO_MAX_CMDS))
		return -EINTR;
	if (p2pio_user_cmd_slot(ctx->user))
		return -EINTR;
	atomic_inc(&ctx->inflight);
	p2pio_count(ctx, inflight_cmds, 1);
	return 0;
}

static void p2pio_cmd_slot_undo(struct p2pio_ctx *ctx)
{
	p2pio_user_cmd_done(ctx->user);
	p2pio_count(ctx, inflight_cmds, -1);
	atomic_dec(&ctx->inflight);
	wake_up(&ctx->cmd_wait);
}

/*
 * Validates and issues one read. Validation errors and issue failures end up in
 * rd->status; the return value is only non-zero when submission must stop (a fatal
 * signal).
 */
static int p2pio_rd_issue(struct p2pio_ctx *ctx, struct p2pio_rd *rd,
			  const struct p2pio_read *r)
{
	struct p2pio_mem_map *map;
	struct p2pio_file *f;
	struct p2pio_mem *mem;
	u64 foff, moff, len;
	loff_t pos;
	int ret;

	ret = p2pio_read_check(ctx, r, &f, &mem);
	if (ret)
		goto out_fail;
	/*
	 * What read() asks before every read, with the caller's credentials: the LSM's
	 * read-time check (SELinux revalidates after a relabel or a policy change) and
	 * fanotify's permission event (FAN_ACCESS_PERM: content scanners, HSMs). Before the
	 * file is taken busy: a listener may take its time, and a layout break must not
	 * wait for it.
	 */
	pos = r->file_offset;
	ret = rw_verify_area(READ, f->filp, &pos, r->length);
	if (ret < 0)
		goto out_fail;
	/*
	 * Held while issuing: a layout break waits for it, or it sees the break (ESTALE).
	 * Also refused: a file that became a verity file since its registration.
	 */
	ret = p2pio_file_get(f);
	if (ret)
		goto out_fail;
	map = p2pio_mem_get_map(mem, f->nvme);
	if (IS_ERR(map)) {
		ret = PTR_ERR(map);
		goto out_put_file;
	}
	foff = r->file_offset;
	moff = mem->skew + r->mem_offset;
	len = r->length;
	while (len) {
		struct p2pio_extent *e = p2pio_extent_find(f, foff);
		u64 within, n;

		if (WARN_ON_ONCE(!e)) {
			ret = -EIO;
			goto out_put_file;
		}
		within = foff - e->foff;
		n = min3(len, e->len - within, f->max_cmd_bytes);
		ret = p2pio_cmd_slot(ctx);
		if (ret)
			goto out_put_file;
		ret = p2pio_nvme_read(ctx, rd, f, e->doff + within, mem, map, moff, n);
		if (ret) {
			p2pio_cmd_slot_undo(ctx);
			goto out_put_file;
		}
		rd->ncmds++;
		foff += n;
		moff += n;
		len -= n;
	}
	p2pio_file_put(f);
	/* As read() does once its bytes are read: inotify's IN_ACCESS, fanotify's FAN_ACCESS. */
	fsnotify_access(f->filp);
	if (rd->ncmds > 1)
		p2pio_count(ctx, splits, rd->ncmds - 1);
	return 0;

out_put_file:
	p2pio_file_put(f);
out_fail:
	p2pio_rd_set_error(rd, ret);
	if (rd->ncmds > 1)
		p2pio_count(ctx, splits, rd->ncmds - 1);
	return ret == -EINTR ? ret : 0;
}

int p2pio_submit(struct p2pio_ctx *ctx, struct p2pio_submit *arg)
{
	struct p2pio_read __user *ureads = u64_to_user_ptr(arg->reads);
	struct p2pio_read r;
	struct p2pio_rd *rd;
	u32 i, accepted = 0;
	int ret = 0;

	if (arg->flags || arg->pad || memchr_inv(arg->reserved, 0, sizeof(arg->reserved)))
		return -EINVAL;
	if (!arg->count || arg->count > P2PIO_MAX_BATCH)
		return -EINVAL;

	/*
	 * Held for the whole batch (minutes for a large one): the fd's other ioctls wait
	 * for it killably, and so does a second submitter.
	 */
	if (mutex_lock_killable(&ctx->lock))
		return -EINTR;
	for (i = 0; i < arg->count; i++) {
		/*
		 * A submitter killed mid-batch stops at its next read: the rest would only be
		 * issued to be torn down at release, and each may first wait for a map of a
		 * fresh pin, which takes as long as the driver likes (the waits for a lock or
		 * a command slot see the signal only where they must sleep).
		 */
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		if (copy_from_user(&r, &ureads[i], sizeof(r))) {
			ret = -EFAULT;
			break;
		}
		spin_lock_irq(&ctx->cq_lock);
		if (ctx->outstanding >= P2PIO_MAX_OUTSTANDING) {
			spin_unlock_irq(&ctx->cq_lock);
			ret = -EAGAIN;
			break;
		}
		ctx->outstanding++;
		spin_unlock_irq(&ctx->cq_lock);
		rd = kzalloc(sizeof(*rd), GFP_KERNEL_ACCOUNT);
		if (!rd) {
			spin_lock_irq(&ctx->cq_lock);
			ctx->outstanding--;
			spin_unlock_irq(&ctx->cq_lock);
			ret = -ENOMEM;
			break;
		}
		rd->ctx = ctx;
		rd->tag = r.user_tag;
		rd->length = r.length;
		rd->t_start = ktime_get_ns();
		atomic_set(&rd->pending, 1);	/* the issuer's reference */
		p2pio_count(ctx, reads_submitted, 1);
		p2pio_count(ctx, outstanding, 1);
		accepted++;

		ret = p2pio_rd_issue(ctx, rd, &r);
		p2pio_rd_put(rd);
		if (ret)
			break;
	}
	mutex_unlock(&ctx->lock);
	arg->accepted = accepted;
	return accepted ? 0 : ret;
}

static bool p2pio_reap_ready(struct p2pio_ctx *ctx, u32 min)
{
	bool ready;

	spin_lock_irq(&ctx->cq_lock);
	/* Enough, or everything outstanding is done: waiting longer cannot help. */
	ready = ctx->nr_done >= min || ctx->nr_done == ctx->outstanding;
	spin_unlock_irq(&ctx->cq_lock);
	return ready;
}

static void p2pio_completion_fill(const struct p2pio_rd *rd, struct p2pio_completion *c)
{
	memset(c, 0, sizeof(*c));
	c->user_tag = rd->tag;
	c->status = rd->status;
	c->flags = rd->ncmds > 1 ? P2PIO_COMP_F_SPLIT : 0;
	c->bytes = rd->status ? 0 : rd->length;
	c->latency_ns = rd->latency_ns;
}

/* Copies up to @max completions to @ubuf; stops at the first fault. */
static int p2pio_pop(struct p2pio_ctx *ctx, struct p2pio_completion __user *ubuf, u32 max,
		     u32 *count)
{
	struct p2pio_completion c;
	struct p2pio_rd *rd;
	u32 n = 0;

	while (n < max) {
		spin_lock_irq(&ctx->cq_lock);
		rd = list_first_entry_or_null(&ctx->done, struct p2pio_rd, node);
		spin_unlock_irq(&ctx->cq_lock);
		if (!rd)
			break;
		/* rd stays first on the list: reap_lock keeps other reapers out. */
		p2pio_completion_fill(rd, &c);
		if (copy_to_user(&ubuf[n], &c, sizeof(c))) {
			*count = n;
			return n ? 0 : -EFAULT;
		}
		spin_lock_irq(&ctx->cq_lock);
		list_del(&rd->node);
		ctx->nr_done--;
		ctx->outstanding--;
		spin_unlock_irq(&ctx->cq_lock);
		p2pio_count(ctx, outstanding, -1);
		kfree(rd);
		n++;
	}
	*count = n;
	return 0;
}

int p2pio_reap(struct p2pio_ctx *ctx, struct p2pio_reap *arg)
{
	struct p2pio_completion __user *ubuf = u64_to_user_ptr(arg->completions);
	long wret = 0;
	int ret;

	if (arg->flags || memchr_inv(arg->reserved, 0, sizeof(arg->reserved)))
		return -EINVAL;
	if (!arg->max || arg->max > P2PIO_MAX_OUTSTANDING || arg->min > arg->max)
		return -EINVAL;

	if (arg->min && arg->timeout_ns < 0)
		wret = wait_event_interruptible(ctx->cq_wait, p2pio_reap_ready(ctx, arg->min));
	else if (arg->min && arg->timeout_ns > 0)
		wret = wait_event_interruptible_hrtimeout(ctx->cq_wait,
							  p2pio_reap_ready(ctx, arg->min),
							  ns_to_ktime(arg->timeout_ns));
	if (mutex_lock_killable(&ctx->reap_lock))
		return -EINTR;
	ret = p2pio_pop(ctx, ubuf, arg->max, &arg->count);
	mutex_unlock(&ctx->reap_lock);
	if (!ret && !arg->count && wret == -ERESTARTSYS)
		return -EINTR;
	return ret;
}

ssize_t p2pio_read_completions(struct p2pio_ctx *ctx, char __user *buf, size_t len,
			       bool nonblock)
{
	size_t max = len / sizeof(struct p2pio_completion);
	u32 count;
	int ret;

	if (!max)
		return -EINVAL;
	max = min_t(size_t, max, P2PIO_MAX_OUTSTANDING);
	if (!nonblock &&
	    wait_event_interruptible(ctx->cq_wait, p2pio_reap_ready(ctx, 1)))
		return -ERESTARTSYS;
	if (mutex_lock_killable(&ctx->reap_lock))
		return -EINTR;
	ret = p2pio_pop(ctx, (struct p2pio_completion __user *)buf, max, &count);
	mutex_unlock(&ctx->reap_lock);
	if (ret)
		return ret;
	if (!count && nonblock)
		return -EAGAIN;
	return count * sizeof(struct p2pio_completion);
}

static bool p2pio_ctx_idle(struct p2pio_ctx *ctx)
{
	bool idle;

	spin_lock_irq(&ctx->cq_lock);
	idle = !atomic_read(&ctx->inflight);
	spin_unlock_irq(&ctx->cq_lock);
	return idle;
}

/*
 * At close: wait for every command in flight (each ends by completion, error or the
 * NVMe driver's timeout and reset handling, so the wait is bounded), then drop the
 * completions nobody reaped.
 */
void p2pio_ctx_drain(struct p2pio_ctx *ctx)
{
	struct p2pio_rd *rd, *tmp;
	u32 n = 0;

	while (!wait_event_timeout(ctx->cmd_wait, p2pio_ctx_idle(ctx), 10 * HZ))
		dev_warn_ratelimited(p2pio_dev, "close: still waiting for %d NVMe commands\n",
			 atomic_read(&ctx->inflight));
	list_for_each_entry_safe(rd, tmp, &ctx->done, node) {
		list_del(&rd->node);
		kfree(rd);
		n++;
	}
	WARN_ON_ONCE(n != ctx->outstanding);
	atomic64_sub(n, &p2pio_global.outstanding);
	atomic64_sub(n, &ctx->stats.outstanding);
	ctx->nr_done = 0;
	ctx->outstanding = 0;
}
