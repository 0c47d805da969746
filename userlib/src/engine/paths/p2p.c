// SPDX-License-Identifier: MIT
/*
 * p2p.c - the P2P path: NVMe reads straight into pinned GPU memory through
 * /dev/p2pio (kmod/uapi/p2pio_ioctl.h).
 *
 * One /dev/p2pio fd per context holds the context's registered files and pins. A read's
 * block-aligned middle is submitted to the module in pieces that never cross a pin window;
 * its unaligned head and tail (less than a block each) are read with pread() and copied
 * into place, so nothing outside the destination range is written. Device memory is pinned
 * lazily, a window (pin_window bytes on a fixed grid) at a time; when the module cannot pin
 * more (BAR1 space is smaller than VRAM on many boards), the least recently used idle
 * windows of the context are unpinned and the pin retried. A reaper thread collects
 * completions from the fd (poll) and completes the operations.
 *
 * The device serves what it was sent side by side: a read sent behind a hundred megabytes
 * of prefetches shares the drive with all of them. So plain reads (without
 * P2PIO_REQ_URGENT) go to the module only while the plain bytes sent and not yet read are
 * below queue_depth x chunk_size, what BOUNCE keeps in flight; the others wait in the
 * library, in order, and a feeder thread sends them as bytes complete. Urgent reads go at
 * once, past them. What waits here can be withdrawn (p2pio_cancel()) or sent at once
 * (p2pio_hasten()), as on BOUNCE and POSIX. A whole-model load keeps 32 reads of 64 MiB
 * (P2PIO_MODEL_DEF_CHUNK) in flight: with the defaults (16 x 4 MiB) one or two are at the
 * device (60 to 124 MiB of pieces) and the other thirty wait here.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "engine/engine.h"
#include "p2pio_ioctl.h"

/* Page size of the nvidia provider: pins and windows are multiples of it. */
#define P2PIO_GPU_PAGE (64u << 10)
#define P2PIO_P2P_BATCH 64
/*
 * A broken layout lease (ESTALE): how long registering the file again is retried while
 * the module answers EAGAIN (another lease on the file is still being broken; EBUSY, a
 * dedupe holding the file's I/O lock, is tried again for as long as it does), with a
 * pause growing from the first to the second bound between tries; and how many times
 * one piece is sent again before its read fails with ESTALE after all (the block map
 * keeps changing under every new registration).
 */
#define P2PIO_REREG_WAIT_NS (5ull * 1000000000ull)
#define P2PIO_REREG_PAUSE_MIN_NS 1000000ull
#define P2PIO_REREG_PAUSE_MAX_NS 100000000ull
#define P2PIO_REREG_MAX_TRIES 8

struct p2pio_win {
	struct p2pio_buf *buf;
	uint64_t start;			/* device address of the window */
	uint64_t len;
	uint32_t handle;
	int refs;			/* pieces in flight */
	struct p2pio_win *next;		/* in buf->wins */
	struct p2pio_win *lru_prev, *lru_next;	/* in the context's LRU, newest first */
};

/* One submitted piece: the module's user_tag points here. */
struct p2pio_piece {
	struct p2pio_op *op;
	struct p2pio_win *win;
	uint64_t bytes;			/* counted in plain_bytes or urgent_bytes ... */
	bool urgent;			/* ... by its read's kind when it was prepared */
	struct p2pio_read rd;		/* what was sent (the file handle set at each send) */
	uint32_t handle;		/* the file handle it was last sent with */
	unsigned int tries;		/* times sent again after ESTALE */
	struct p2pio_piece *next;	/* in the reaper's stale list */
};

/* A file handle replaced by a new registration, unregistered once @refs pieces are in. */
struct p2pio_p2p_old {
	uint32_t handle;
	unsigned int refs;
};

struct p2pio_p2p {
	struct p2pio_ctx *ctx;
	int fd;				/* /dev/p2pio, -1 if it could not be used */
	char why[P2PIO_REASON_LEN];	/* why not, when fd < 0 */
	struct p2pio_version ver;

	pthread_mutex_t lock;		/* pins, LRU, outstanding, prepared */
	pthread_cond_t cond;		/* a completion was reaped, or prepared pieces undone */
	struct p2pio_win *lru_head, *lru_tail;
	bool pinned;			/* a pin has worked on this context */
	int pin_err;			/* pins refused for good (EPERM), or 0 */
	char pin_why[P2PIO_REASON_LEN];	/* why, when pin_err */
	/*
	 * Pieces submitted and not yet ended: a piece that came back with ESTALE stays
	 * counted (with its window and its bytes) until the reaper has sent it again and
	 * reaped it, or ended it otherwise. So whoever waits for a window or for room on
	 * the fd's queue while pieces are out waits for something only the reaper, which
	 * waits for no one of them, has to do.
	 */
	unsigned int outstanding;
	unsigned int prepared;		/* pieces holding a window, not yet submitted */

	/* Plain reads held back while @plain_bytes >= @plain_limit; the feeder sends them. */
	struct p2pio_opq held;
	uint64_t plain_bytes;		/* bytes of plain reads' pieces prepared or sent */
	uint64_t plain_limit;		/* queue_depth x chunk_size */
	/* P2PIO_CTX_URGENT_ALONE: plain reads held back too while @urgent_bytes > 0. */
	bool urgent_alone;
	uint64_t urgent_bytes;		/* bytes of urgent reads' pieces prepared or sent */
	bool stopping;			/* the feeder sends what is held, then ends */
	bool feeding;			/* the feeder is sending a read it took from @held */
	pthread_t feeder;
	bool feeder_started;
	/*
	 * The reaper's alone (no lock): pieces that completed with ESTALE, to send again
	 * or end (p2pio_p2p_stale_pass()); counted in @outstanding.
	 */
	struct p2pio_piece *stale_head, *stale_tail;

	int stop_efd;
	pthread_t th;
	bool th_started;
};

static const char *p2pio_errno_name(int e)
{
	switch (e) {
	case ENOENT: return "ENOENT";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case ETXTBSY: return "ETXTBSY";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EMEDIUMTYPE: return "EMEDIUMTYPE";
	case ENOTBLK: return "ENOTBLK";
	case ENXIO: return "ENXIO";
	case EREMOTE: return "EREMOTE";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case ENODATA: return "ENODATA";
	case E2BIG: return "E2BIG";
	case EINVAL: return "EINVAL";
	case EBADF: return "EBADF";
	case EMFILE: return "EMFILE";
	case ENOMEM: return "ENOMEM";
	case ENOSPC: return "ENOSPC";
	case EDQUOT: return "EDQUOT";
	case EAGAIN: return "EAGAIN";
	case ENOLCK: return "ENOLCK";
	case ESTALE: return "ESTALE";
	default: return "errno";
	}
}

/* What a refusal of REGISTER_FILE means (Documentation/admin-guide.md has the full list). */
static const char *p2pio_refusal_hint(int e)
{
	switch (e) {
	case ETXTBSY: return "the file is open for writing elsewhere";
	case EACCES: return "registering locks the file's writers out: needs ownership, write permission or CAP_SYS_ADMIN";
	case EDQUOT: return "per-user limit of the module reached (max_user_files, max_user_extent_kib)";
	case EAGAIN: return "the file's block map is changing (no layout lease)";
	case ENOLCK: return "no layout lease on the file (fs.leases-enable 0, or a security module or fanotify listener refused the module's own open of it: the kernel log says which)";
	case EOPNOTSUPP: return "file system not supported (ext4 and xfs are)";
	case EMEDIUMTYPE: return "encrypted, verity, compressed, inline or DAX file";
	case ENOTBLK: return "not on an NVMe namespace (dm, md, loop, virtio, ...)";
	case ENXIO: return "NVMe multipath head";
	case EREMOTE: return "not on a PCIe NVMe controller";
	case EPROTONOSUPPORT: return "namespace format has metadata or protection information";
	case ENODATA: return "file has holes, unwritten or shared blocks, or is empty";
	case E2BIG: return "file too fragmented";
	default: return strerror(e);
	}
}

/* ---- the context's /dev/p2pio ------------------------------------------------------ */

static void *p2pio_p2p_reaper(void *arg);
static void p2pio_p2p_reaper_stop(struct p2pio_p2p *p);
static void *p2pio_p2p_feeder(void *arg);

static int p2pio_p2p_open(struct p2pio_p2p *p)
{
	int fd;

	fd = open(P2PIO_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			snprintf(p->why, sizeof(p->why),
				 "P2P: %s not present (module not loaded)", P2PIO_DEVICE_PATH);
		else
			snprintf(p->why, sizeof(p->why), "P2P: cannot open %s: %s",
				 P2PIO_DEVICE_PATH, strerror(errno));
		return -1;
	}
	if (ioctl(fd, P2PIO_IOC_VERSION, &p->ver) < 0) {
		snprintf(p->why, sizeof(p->why), "P2P: %s: version handshake failed: %s",
			 P2PIO_DEVICE_PATH, strerror(errno));
		goto out_close;
	}
	if (p->ver.abi_version != P2PIO_ABI_VERSION) {
		snprintf(p->why, sizeof(p->why),
			 "P2P: module ABI version %u, this library understands version %u",
			 p->ver.abi_version, P2PIO_ABI_VERSION);
		goto out_close;
	}
	if (!(p->ver.features & P2PIO_FEAT_PROVIDER_NVIDIA) ||
	    !(p->ver.features & P2PIO_FEAT_POLL)) {
		snprintf(p->why, sizeof(p->why),
			 "P2P: module lacks the nvidia provider or poll (features 0x%llx)",
			 (unsigned long long)p->ver.features);
		goto out_close;
	}
	if (!p->ver.max_batch || !p->ver.max_read_len || p->ver.max_read_len % 4096) {
		snprintf(p->why, sizeof(p->why), "P2P: module reports unusable limits");
		goto out_close;
	}
	p->fd = fd;
	return 0;

out_close:
	close(fd);
	return -1;
}

/*
 * Open /dev/p2pio for @ctx, once (under ctx->lock, from p2pio_path_start()). The state
 * stays when the module cannot be used: it holds the reason, for every later file.
 */
static int p2pio_p2p_start(struct p2pio_ctx *ctx, void **privp)
{
	struct p2pio_p2p *p;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ctx = ctx;
	p->fd = -1;
	p->stop_efd = -1;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	*privp = p;
	if (p2pio_p2p_open(p))
		return 0;
	p->plain_limit = (uint64_t)ctx->opts.queue_depth * ctx->opts.chunk_size;
	p->urgent_alone = ctx->opts.flags & P2PIO_CTX_URGENT_ALONE;
	p->stop_efd = eventfd(0, EFD_CLOEXEC);
	if (p->stop_efd < 0 || pthread_create(&p->th, NULL, p2pio_p2p_reaper, p)) {
		snprintf(p->why, sizeof(p->why), "P2P: cannot start the completion thread");
		close(p->fd);
		p->fd = -1;
		return 0;
	}
	p->th_started = true;
	if (pthread_create(&p->feeder, NULL, p2pio_p2p_feeder, p)) {
		/* No reads were sent: the reaper ends at once. */
		snprintf(p->why, sizeof(p->why), "P2P: cannot start the submission thread");
		p2pio_p2p_reaper_stop(p);
		close(p->fd);
		p->fd = -1;
		return 0;
	}
	p->feeder_started = true;
	return 0;
}

static int p2pio_p2p_file_open(struct p2pio_file *f, char *why, size_t why_len)
{
	struct p2pio_register_file reg = { .fd = f->fd };
	struct p2pio_p2p *p;
	void *priv;
	int e;

	if (f->p2p_ok)
		return 0;
	p2pio_path_start(f->ctx, &p2pio_p2p_ops, &priv);
	p = priv;
	if (!p) {
		snprintf(why, why_len, "P2P: out of memory");
		return -ENOMEM;
	}
	if (p->fd < 0) {
		snprintf(why, why_len, "%s", p->why);
		return -ENODEV;
	}
	if (ioctl(p->fd, P2PIO_IOC_REGISTER_FILE, &reg) < 0) {
		e = errno;
		snprintf(why, why_len, "P2P: module refused the file: %s (%s)", p2pio_errno_name(e),
			 p2pio_refusal_hint(e));
		return -e;
	}
	if (reg.size != f->size || !reg.lba_size || reg.lba_size > 65536 ||
	    reg.lba_size & (reg.lba_size - 1)) {
		struct p2pio_handle_arg h = { .handle = reg.handle };

		ioctl(p->fd, P2PIO_IOC_UNREGISTER_FILE, &h);
		snprintf(why, why_len,
			 "P2P: module reports size %llu and block size %u for a file of %llu bytes",
			 (unsigned long long)reg.size, reg.lba_size, (unsigned long long)f->size);
		return -EIO;
	}
	f->p2p_handle = reg.handle;
	f->lba_size = reg.lba_size;
	f->p2p_ok = true;
	return 0;
}

static void p2pio_p2p_file_close(struct p2pio_file *f)
{
	struct p2pio_handle_arg h = { .handle = (uint32_t)f->p2p_handle };
	struct p2pio_p2p *p;
	unsigned int i;

	if (!f->p2p_ok)
		return;
	p = p2pio_path_priv(f->ctx, &p2pio_p2p_ops);
	if (!f->p2p_dropped)
		ioctl(p->fd, P2PIO_IOC_UNREGISTER_FILE, &h);
	/* Handles replaced after a broken lease whose pieces were still out: nothing is now. */
	for (i = 0; i < f->p2p_nr_old; i++) {
		h.handle = f->p2p_old[i].handle;
		ioctl(p->fd, P2PIO_IOC_UNREGISTER_FILE, &h);
	}
	free(f->p2p_old);
	f->p2p_old = NULL;
	f->p2p_nr_old = 0;
	f->p2p_ok = false;
	f->p2p_dropped = false;
}

static void p2pio_p2p_file_info(const struct p2pio_file *f, struct p2pio_path_info *info)
{
	info->lba_size = f->p2p_ok ? f->lba_size : 0;
}

static int p2pio_p2p_pin_probe(struct p2pio_op *op, char *why, size_t why_len);

/* AUTO's file @f leaves P2P for its fallback: pins are refused (@why says why). */
static void p2pio_p2p_fall_back(struct p2pio_file *f, const char *why)
{
	enum p2pio_path p2p = P2PIO_PATH_P2P;

	pthread_mutex_lock(&f->lock);
	if (atomic_compare_exchange_strong(&f->path, &p2p, p2pio_p2p_ops.fallback)) {
		snprintf(f->why, sizeof(f->why), "AUTO: %.*s; reads go by %s",
			 (int)sizeof(f->why) - 32, why,
			 p2pio_path_ops(p2pio_p2p_ops.fallback)->name);
		p2pio_file_why_depth(f);
	}
	pthread_mutex_unlock(&f->lock);
}

static bool p2pio_p2p_op_ok(struct p2pio_op *op, char *why, size_t why_len)
{
	struct p2pio_buf *buf = op->buf;
	uint64_t a;

	if (buf->mem == P2PIO_MEM_HOST) {
		snprintf(why, why_len, "P2P: a read into host memory went by another path");
		return false;
	}
	if (buf->addr % 4) {
		snprintf(why, why_len, "P2P: destination buffer not 4-byte aligned");
		return false;
	}
	a = p2pio_round_up(op->off, op->file->lba_size);
	if ((buf->addr + op->dst + (a - op->off)) % 4) {
		snprintf(why, why_len,
			 "P2P: destination and file offset differ in alignment (the NVMe PRP rule needs 4 bytes)");
		return false;
	}
	if (!p2pio_p2p_pin_probe(op, why, why_len))
		return true;
	if (op->file->forced) {
		/* The caller asked for P2P: the read fails with the pin's errno, and says why. */
		p2pio_file_note(op->file, P2PIO_PATH_P2P, "%s", why);
		why[0] = '\0';
		return true;
	}
	p2pio_p2p_fall_back(op->file, why);
	return false;
}

/* ---- pinned windows ------------------------------------------------------------- */

/*
 * Window k of a buffer covers device addresses [k * W, (k + 1) * W) of the grid, clipped
 * to the buffer, and is pinned one GPU page longer: a piece that starts in it may run up
 * to the next block boundary past its end, so block-aligned pieces never need to cross
 * two pins even when the destination is not block-aligned.
 */

static void p2pio_lru_unlink(struct p2pio_p2p *p, struct p2pio_win *w)
{
	if (w->lru_prev)
		w->lru_prev->lru_next = w->lru_next;
	else
		p->lru_head = w->lru_next;
	if (w->lru_next)
		w->lru_next->lru_prev = w->lru_prev;
	else
		p->lru_tail = w->lru_prev;
	w->lru_prev = w->lru_next = NULL;
}

static void p2pio_lru_push(struct p2pio_p2p *p, struct p2pio_win *w)
{
	w->lru_next = p->lru_head;
	w->lru_prev = NULL;
	if (p->lru_head)
		p->lru_head->lru_prev = w;
	else
		p->lru_tail = w;
	p->lru_head = w;
}

/* Unpin and forget an idle window (p->lock held). */
static void p2pio_win_drop(struct p2pio_p2p *p, struct p2pio_win *w)
{
	struct p2pio_handle_arg h = { .handle = w->handle };
	struct p2pio_win **pp;

	ioctl(p->fd, P2PIO_IOC_UNPIN, &h);
	p2pio_lru_unlink(p, w);
	for (pp = &w->buf->wins; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	free(w);
}

/* Unpin the least recently used idle window of the context; false if none is idle. */
static bool p2pio_win_evict(struct p2pio_p2p *p)
{
	struct p2pio_win *w;

	for (w = p->lru_tail; w; w = w->lru_prev) {
		if (!w->refs) {
			p2pio_win_drop(p, w);
			return true;
		}
	}
	return false;
}

static int p2pio_set_sync_memops(struct p2pio_ctx *ctx, struct p2pio_buf *buf)
{
	unsigned int one = 1;
	CUcontext prev;
	CUresult res;

	if (buf->mem != P2PIO_MEM_CUDA || buf->sync_memops)
		return 0;
	/* NVIDIA requires it on memory that a third party DMAs into. */
	prev = p2pio_ctx_enter(ctx);
	res = ctx->cu->PointerSetAttribute(&one, CU_POINTER_ATTRIBUTE_SYNC_MEMOPS, buf->addr);
	p2pio_ctx_leave(ctx, prev);
	if (res != CUDA_SUCCESS)
		return p2pio_cuda_errno(res);
	buf->sync_memops = true;
	return 0;
}

/*
 * The module refused a pin with EPERM: it had to fall back to a pin with a free callback
 * (the driver refuses persistent pins here, as under MIG or vGPU), and those are for
 * CAP_SYS_ADMIN only (Documentation/admin-guide.md). No retry changes that for this
 * process: remember it, so that AUTO sends the context's reads by another path
 * (p2pio_p2p_op_ok()) and a forced P2P fails them with this reason (p->lock held).
 */
static int p2pio_pin_refused(struct p2pio_p2p *p, int err)
{
	p->pin_err = err;
	snprintf(p->pin_why, sizeof(p->pin_why),
		 "P2P: the module refused to pin device memory: %s (the driver refuses persistent pins here, as under MIG or vGPU, and pins with a free callback need CAP_SYS_ADMIN)",
		 p2pio_errno_name(err));
	return -err;
}

/*
 * A pin refused for want of room: BAR1 full (ENOMEM, ENOSPC), the fd's pins (EMFILE) or
 * the user's (EDQUOT, max_user_pins) used up. Unpinning idle windows makes room in each.
 */
static bool p2pio_pin_no_room(int err)
{
	return err == -ENOSPC || err == -ENOMEM || err == -EMFILE || err == -EDQUOT ||
	       err == -EBUSY;
}

/*
 * The window of @buf holding device address @addr, with a reference taken (p->lock held).
 * When BAR1 has no room for another window, the least recently used idle ones are unpinned;
 * when none is idle, pieces in flight will make some idle: wait for them. @holding: the
 * caller's own batch holds windows it has not submitted; it must submit them before
 * anyone waits for them, so it gets -EAGAIN back instead of a wait.
 */
static int p2pio_win_get(struct p2pio_p2p *p, struct p2pio_buf *buf, uint64_t addr,
			 bool holding, struct p2pio_win **winp)
{
	uint64_t W = p->ctx->opts.pin_window, grid = p2pio_round_down(addr, W), start, end;
	struct p2pio_pin arg;
	struct p2pio_win *w;
	int ret;

again:
	for (w = buf->wins; w; w = w->next) {
		if (addr >= w->start && addr < w->start + w->len) {
			p2pio_lru_unlink(p, w);
			p2pio_lru_push(p, w);
			w->refs++;
			*winp = w;
			return 0;
		}
	}
	if (p->pin_err)
		return -p->pin_err;
	ret = p2pio_set_sync_memops(p->ctx, buf);
	if (ret)
		return ret;
	start = grid > buf->addr ? grid : buf->addr;
	end = grid + W < buf->addr + buf->len ? grid + W : buf->addr + buf->len;
	for (;;) {
		memset(&arg, 0, sizeof(arg));
		arg.provider = P2PIO_PROVIDER_NVIDIA;
		arg.addr = start;
		arg.length = end + P2PIO_GPU_PAGE < buf->addr + buf->len ?
				     end + P2PIO_GPU_PAGE - start :
				     buf->addr + buf->len - start;
		if (!ioctl(p->fd, P2PIO_IOC_PIN, &arg)) {
			p->pinned = true;
			break;
		}
		ret = -errno;
		if (ret == -EPERM)
			return p2pio_pin_refused(p, -ret);
		if (!p2pio_pin_no_room(ret))
			return ret;
		if (p2pio_win_evict(p))
			continue;
		if (holding)
			return -EAGAIN;
		/* Nothing in flight and nothing about to be: BAR1 cannot hold this window. */
		if (!p->outstanding && !p->prepared)
			return ret;
		pthread_cond_wait(&p->cond, &p->lock);
		/* Another submitter may have pinned this window meanwhile. */
		goto again;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		struct p2pio_handle_arg h = { .handle = arg.handle };

		ioctl(p->fd, P2PIO_IOC_UNPIN, &h);
		return -ENOMEM;
	}
	w->buf = buf;
	w->start = start;
	w->len = end - start;
	w->handle = arg.handle;
	w->refs = 1;
	w->next = buf->wins;
	buf->wins = w;
	p2pio_lru_push(p, w);
	*winp = w;
	return 0;
}

/*
 * Before the first pin of the context: pin the window of @op's first piece, so that a
 * refusal for good (EPERM) is known before the read is sent down this path. 0, or the
 * refusal's -errno with @why filled. Other pin errors are the read's own, met in submit.
 */
static int p2pio_p2p_pin_probe(struct p2pio_op *op, char *why, size_t why_len)
{
	struct p2pio_p2p *p = p2pio_path_priv(op->ctx, &p2pio_p2p_ops);
	uint64_t lba = op->file->lba_size, a, b;
	struct p2pio_win *w;
	int ret = 0;

	a = p2pio_round_up(op->off, lba);
	b = p2pio_round_down(op->off + op->len, lba);
	if (!p || p->fd < 0 || a >= b)
		return 0;	/* nothing of it goes through the module */
	pthread_mutex_lock(&p->lock);
	if (!p->pinned && !p->pin_err &&
	    !p2pio_win_get(p, op->buf, op->buf->addr + op->dst + (a - op->off), false, &w)) {
		w->refs--;	/* idle in the LRU: the read's submit finds it */
		pthread_cond_broadcast(&p->cond);
	}
	if (p->pin_err) {
		ret = -p->pin_err;
		snprintf(why, why_len, "%s", p->pin_why);
	}
	pthread_mutex_unlock(&p->lock);
	return ret;
}

static void p2pio_p2p_buf_release(void *priv, struct p2pio_buf *buf)
{
	struct p2pio_p2p *p = priv;

	pthread_mutex_lock(&p->lock);
	while (buf->wins)
		p2pio_win_drop(p, buf->wins);
	pthread_mutex_unlock(&p->lock);
}

/* ---- reads ---------------------------------------------------------------------- */

/*
 * @f was refused for good after its lease broke (p2p_gone): its stale handle is
 * unregistered once no piece is at the module on it and no read of it is being sent
 * (one that passed its check of p2p_gone before it was set sends on the handle, and its
 * pieces come back ESTALE, to be read through host memory or failed). Until then the
 * handle refuses every read; kept any longer, its registration would keep the file from
 * being written (deny-write) and serve nothing. Under p->lock.
 */
static void p2pio_p2p_drop_gone(struct p2pio_p2p *p, struct p2pio_file *f)
{
	struct p2pio_handle_arg h = { .handle = (uint32_t)f->p2p_handle };

	if (!f->p2p_gone || f->p2p_dropped || f->p2p_cur_refs || f->p2p_sending)
		return;
	/* EBUSY cannot be: nothing is at the module on it. Kept listed if it were. */
	if (!ioctl(p->fd, P2PIO_IOC_UNREGISTER_FILE, &h))
		f->p2p_dropped = true;
}

/* A read of @f is done being sent (p2pio_p2p_send_op() counted it in p2p_sending). */
static void p2pio_p2p_sent(struct p2pio_p2p *p, struct p2pio_file *f)
{
	pthread_mutex_lock(&p->lock);
	f->p2p_sending--;
	p2pio_p2p_drop_gone(p, f);
	pthread_mutex_unlock(&p->lock);
}

/*
 * [@from, @to) of @op's file through read() into host memory, copied into place: the
 * unaligned head and tail of a read (less than a block each), and the whole of the
 * pieces of a file whose registration went stale for good once AUTO moved the file to
 * its fallback (its later reads go by that path).
 */
static int p2pio_p2p_host_read(struct p2pio_op *op, uint64_t from, uint64_t to)
{
	char tmp[65536];
	uint64_t n;
	ssize_t r;
	int ret;

	while (from < to) {
		n = to - from < sizeof(tmp) ? to - from : sizeof(tmp);
		r = pread(op->file->fd, tmp, n, (off_t)from);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (!r)
			return -ENODATA;
		atomic_fetch_add(&op->bytes_read, (uint64_t)r);
		ret = p2pio_dst_write_sync(op, op->dst + (from - op->off), tmp, (uint64_t)r);
		if (ret)
			return ret;
		from += (uint64_t)r;
	}
	return 0;
}

/*
 * One SUBMIT of @n pieces, each with its file's handle of the moment (one prepared, or
 * come back stale, before the file was registered again must not go to the old handle),
 * the accepted ones counted on that handle. Under p->lock; waits for no room. Return:
 * how many the module took, or -errno with none taken.
 */
static int p2pio_p2p_submit_now(struct p2pio_p2p *p, struct p2pio_read *rd, unsigned int n)
{
	struct p2pio_submit sub = { .reads = (uintptr_t)rd, .count = n };
	struct p2pio_piece *pc;
	unsigned int i;

	for (i = 0; i < n; i++) {
		pc = (struct p2pio_piece *)(uintptr_t)rd[i].user_tag;
		rd[i].file = (uint32_t)pc->op->file->p2p_handle;
	}
	if (ioctl(p->fd, P2PIO_IOC_SUBMIT, &sub) < 0)
		return -errno;
	for (i = 0; i < sub.accepted; i++) {
		pc = (struct p2pio_piece *)(uintptr_t)rd[i].user_tag;
		pc->handle = rd[i].file;
		pc->op->file->p2p_cur_refs++;
	}
	return (int)sub.accepted;
}

/*
 * Submit @n prepared reads; every accepted one completes through the reaper. Return: 0, or
 * the error that stopped it with *@done of them accepted (the caller undoes the rest).
 */
static int p2pio_p2p_flush(struct p2pio_p2p *p, struct p2pio_read *rd, unsigned int n,
			   unsigned int *done)
{
	int ret;

	*done = 0;
	while (*done < n) {
		pthread_mutex_lock(&p->lock);
		ret = p2pio_p2p_submit_now(p, rd + *done, n - *done);
		if (ret >= 0) {
			p->outstanding += (unsigned int)ret;
			p->prepared -= (unsigned int)ret;
			*done += (unsigned int)ret;
			ret = 0;
		} else if (ret == -EAGAIN && p->outstanding) {
			/* The fd's queue is full: wait for the reaper to take some. */
			pthread_cond_wait(&p->cond, &p->lock);
			ret = 0;
		}
		pthread_mutex_unlock(&p->lock);
		if (ret && ret != -EINTR)
			return ret;
	}
	return 0;
}

/* The count a prepared or sent piece is in: its read's plain or urgent bytes (p->lock). */
static uint64_t *p2pio_piece_count(struct p2pio_p2p *p, const struct p2pio_piece *pc)
{
	return pc->urgent ? &p->urgent_bytes : &p->plain_bytes;
}

/*
 * A piece that is not at the module ends with @err (its bytes, if any, were counted in
 * its read already): one prepared and not accepted, or (@sent) one that came back with
 * ESTALE and still counts as outstanding.
 */
static void p2pio_piece_settle(struct p2pio_p2p *p, struct p2pio_piece *pc, int err,
			       bool sent)
{
	pthread_mutex_lock(&p->lock);
	pc->win->refs--;
	if (sent)
		p->outstanding--;
	else
		p->prepared--;
	*p2pio_piece_count(p, pc) -= pc->bytes;
	/* Its window may be idle now, and a waiting submitter may be waiting for that. */
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	p2pio_op_put(pc->op, err, 0);
	free(pc);
}

/* Undo @n pieces that were prepared but not accepted. */
static void p2pio_p2p_unprep(struct p2pio_p2p *p, struct p2pio_read *rd, unsigned int n,
			     int err)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		p2pio_piece_settle(p, (struct p2pio_piece *)(uintptr_t)rd[i].user_tag, err, false);
}

/* Submit the batch; on an error, undo what was not accepted. */
static int p2pio_p2p_send(struct p2pio_p2p *p, struct p2pio_read *rd, unsigned int *nr)
{
	unsigned int done;
	int ret = p2pio_p2p_flush(p, rd, *nr, &done);

	if (ret)
		p2pio_p2p_unprep(p, rd + done, *nr - done, ret);
	*nr = 0;
	return ret;
}

/* Send @op to the module, all of it; its completion comes through the reaper. */
static void p2pio_p2p_send_op(struct p2pio_p2p *p, struct p2pio_op *op)
{
	struct p2pio_read rd[P2PIO_P2P_BATCH];
	struct p2pio_ctx *ctx = op->ctx;
	struct p2pio_file *f = op->file;
	struct p2pio_buf *buf = op->buf;
	uint64_t lba = f->lba_size, end = op->off + op->len, a, b, pos, dev, n, max, wend;
	unsigned int nr = 0, batch;
	struct p2pio_win *w = NULL;
	struct p2pio_piece *pc;
	int ret, gone;

	a = p2pio_round_up(op->off, lba);
	b = p2pio_round_down(end, lba);
	if (a >= b)
		a = b = end;
	pthread_mutex_lock(&p->lock);
	gone = f->p2p_gone;
	if (!gone)
		f->p2p_sending++;	/* the handle stays registered until we are done */
	pthread_mutex_unlock(&p->lock);
	if (gone) {
		/*
		 * The file's lease broke and the module refused it since: a forced P2P read
		 * fails with the refusal; AUTO's file moved to its fallback, and a read that
		 * was queued here before that is read through host memory, buffered: its
		 * completion and the statistics say POSIX, the path that served it.
		 */
		if (!f->forced)
			op->path = P2PIO_PATH_POSIX;
		ret = f->forced ? -gone : p2pio_p2p_host_read(op, op->off, end);
		p2pio_op_put(op, ret, 0);
		return;
	}
	ret = p2pio_p2p_host_read(op, op->off, a);
	if (!ret)
		ret = p2pio_p2p_host_read(op, b > a ? b : a, end);
	if (ret) {
		p2pio_p2p_sent(p, f);
		p2pio_op_put(op, ret, 0);
		return;
	}
	max = ctx->opts.chunk_size < p->ver.max_read_len ? ctx->opts.chunk_size :
							    p->ver.max_read_len;
	max = p2pio_round_down(max, lba);
	batch = p->ver.max_batch < P2PIO_P2P_BATCH ? p->ver.max_batch : P2PIO_P2P_BATCH;
	for (pos = a; pos < b; pos += n) {
		dev = buf->addr + op->dst + (pos - op->off);
		pc = malloc(sizeof(*pc));
		if (!pc) {
			ret = -ENOMEM;
			break;
		}
		/* Up to the first block boundary at or past the window's grid end. */
		wend = p2pio_round_down(dev, ctx->opts.pin_window) + ctx->opts.pin_window;
		n = b - pos < max ? b - pos : max;
		if (dev + n > wend)
			n = p2pio_round_up(wend - dev, lba);
		pc->bytes = n;
		pc->urgent = op->urgent;
		for (;;) {
			pthread_mutex_lock(&p->lock);
			ret = p2pio_win_get(p, buf, dev, nr > 0, &w);
			if (!ret) {
				p->prepared++;
				*p2pio_piece_count(p, pc) += pc->bytes;
			}
			pthread_mutex_unlock(&p->lock);
			if (ret != -EAGAIN)
				break;
			/* BAR1 is full of this batch's windows: send it (nr drops to 0), then wait. */
			ret = p2pio_p2p_send(p, rd, &nr);
			if (ret)
				break;
		}
		if (ret) {
			free(pc);
			break;
		}
		pc->op = op;
		pc->win = w;
		p2pio_op_get(op);
		memset(&rd[nr], 0, sizeof(rd[nr]));
		rd[nr].file = (uint32_t)f->p2p_handle;
		rd[nr].mem = w->handle;
		rd[nr].file_offset = pos;
		rd[nr].length = n;
		rd[nr].mem_offset = dev - w->start;
		rd[nr].user_tag = (uintptr_t)pc;
		pc->rd = rd[nr];
		pc->handle = rd[nr].file;
		pc->tries = 0;
		pc->next = NULL;
		if (++nr == batch) {
			ret = p2pio_p2p_send(p, rd, &nr);
			if (ret)
				break;
		}
	}
	if (!ret && nr)
		ret = p2pio_p2p_send(p, rd, &nr);
	if (ret && nr)
		p2pio_p2p_unprep(p, rd, nr, ret);
	p2pio_p2p_sent(p, f);
	/* The path's reference: the pieces in flight hold the op from here. */
	p2pio_op_put(op, ret, 0);
}

/*
 * Whether plain reads must wait: their bytes fill the device's share (plain_limit), or
 * (P2PIO_CTX_URGENT_ALONE) urgent ones are being read. Under p->lock.
 */
static bool p2pio_p2p_plain_full(const struct p2pio_p2p *p)
{
	return p->plain_bytes >= p->plain_limit || (p->urgent_alone && p->urgent_bytes);
}

/*
 * A plain read waits here while plain reads fill the device's share (plain_limit) or
 * others wait before it; an urgent one goes at once. Either way its completion comes
 * through the reaper.
 */
static int p2pio_p2p_submit(void *priv, struct p2pio_op *op)
{
	struct p2pio_p2p *p = priv;

	if (!op->urgent) {
		pthread_mutex_lock(&p->lock);
		/*
		 * Behind a held read, or one the feeder has taken but not yet sent (its bytes
		 * are not counted yet): a plain read sent here would pass it.
		 */
		if (p->held.head || p->feeding || p2pio_p2p_plain_full(p)) {
			p2pio_opq_push(&p->held, op);
			pthread_cond_broadcast(&p->cond);
			pthread_mutex_unlock(&p->lock);
			return 0;
		}
		pthread_mutex_unlock(&p->lock);
	}
	p2pio_p2p_send_op(p, op);
	return 0;
}

/*
 * Several reads of one p2pio_submit() (a run of up to P2PIO_SUBMIT_BATCH that take P2P):
 * its urgent ones first, then its plain ones, each kind in the order given. The plain
 * reads go to the device as they come (up to p2pio_p2p_plain_full()), so an urgent read
 * behind them in the same batch was sent only after them: what the caller marked as
 * waited for went in after reads that could wait, where BOUNCE's queue takes it first. A
 * thread descheduled between them let the feeder send the held ones too (a loaded VM run
 * had such an urgent read complete 20th of 25).
 */
static int p2pio_p2p_submit_many(void *priv, struct p2pio_op **ops, unsigned int n)
{
	unsigned int i, plain = 0;

	/*
	 * One pass, and no op looked at once it is sent: a sent read may complete and be
	 * reaped (freed) by another thread at once (the expert cache's reaper). The plain
	 * ones move down into slots already consumed.
	 */
	for (i = 0; i < n; i++) {
		if (ops[i]->urgent)
			p2pio_p2p_submit(priv, ops[i]);
		else
			ops[plain++] = ops[i];
	}
	for (i = 0; i < plain; i++)
		p2pio_p2p_submit(priv, ops[i]);
	return 0;
}

/* ---- a broken layout lease: register the file again ------------------------------ */

/*
 * Only the reaper thread runs the code of this section, and it waits here for nothing
 * that another thread of the library must do first. The first version (5d260d0) had the
 * feeder send the stale pieces again, but the feeder can itself be waiting inside
 * p2pio_p2p_send_op() for a window (BAR1 full) or for room on the fd's queue (p->cond),
 * and what it waited for could be the stale pieces' windows and counts, which it alone
 * would have freed. Here a stale piece keeps its window, its bytes and its place in
 * @outstanding until the reaper has sent it again and reaped it, or ended it; whoever
 * waits for those waits for the reaper, never the other way round.
 * The ioctls the reaper makes may sleep in the kernel (SUBMIT for an NVMe command slot),
 * but for nothing of the library: commands end by themselves. REGISTER_FILE goes with
 * P2PIO_REGISTER_NOWAIT where the module has it: a dedupe holds the file's i_rwsem through
 * its compare and remap (seconds for a large file), and the reaper waiting there reaped
 * no other file's completion meanwhile; the module answers EBUSY instead, tried again
 * with the pauses of p2pio_p2p_reregister(). (Without the flag, xfs still drops the
 * lock before it waits for a layout lease to be given back, and the module gives it
 * back once the commands in flight are done: the wait ends.) A retry (EAGAIN from
 * REGISTER_FILE or SUBMIT) is the next pass's, with the poll timeout of
 * p2pio_p2p_stale_pass(), never a sleep here.
 */

/*
 * A piece sent with @handle of @f is in (p->lock held): one fewer on that handle. A
 * replaced handle is unregistered with its last piece (the module refuses to unregister a
 * handle with commands in flight: EBUSY). One the module still refuses stays listed, for
 * p2pio_p2p_file_close().
 */
static void p2pio_handle_put(struct p2pio_p2p *p, struct p2pio_file *f, uint32_t handle)
{
	struct p2pio_handle_arg h = { .handle = handle };
	unsigned int i;

	if (handle == (uint32_t)f->p2p_handle) {
		f->p2p_cur_refs--;
		p2pio_p2p_drop_gone(p, f);
		return;
	}
	for (i = 0; i < f->p2p_nr_old; i++) {
		if (f->p2p_old[i].handle != handle)
			continue;
		if (!--f->p2p_old[i].refs && !ioctl(p->fd, P2PIO_IOC_UNREGISTER_FILE, &h))
			f->p2p_old[i] = f->p2p_old[--f->p2p_nr_old];
		return;
	}
}

/* The file's reason says what happened to its registration (AUTO's or the caller's). */
static void p2pio_p2p_note_rereg(struct p2pio_file *f, uint32_t handle, uint32_t old)
{
	char tmp[P2PIO_REASON_LEN];

	pthread_mutex_lock(&f->lock);
	if (!f->p2p_why_base[0])
		memcpy(f->p2p_why_base, f->why, sizeof(f->why));
	snprintf(tmp, sizeof(tmp),
		 "P2P: layout lease broke (block map changed), registered again %ux (handle %u, was %u)",
		 f->p2p_reregs, handle, old);
	snprintf(f->why, sizeof(f->why), "%.*s; %.*s", 60, f->p2p_why_base, 128, tmp);
	pthread_mutex_unlock(&f->lock);
}

/*
 * @f's registration went stale (a read of it completed with ESTALE: its layout lease
 * broke): one try at registering it again, if one is due at @now. 0: done, for better
 * (a new handle, the old one unregistered once its last piece is in) or for worse
 * (p2p_gone set); -EAGAIN: the module answered EAGAIN (another lease on the file is
 * still being broken) or EBUSY (a dedupe holds the file's I/O lock), or the next try is
 * not due yet; *@wait_ns is lowered to when it is. The pause between tries grows from 1
 * to 100 ms; after P2PIO_REREG_WAIT_NS of EAGAIN the file is given up as refused with
 * EAGAIN (EBUSY has no such deadline). A refusal (the file now shares
 * blocks after a dedupe: ENODATA; became a verity file: EMEDIUMTYPE; ...) is for good:
 * AUTO moves the file to its fallback, as for refused pins; a forced P2P file's reads
 * fail with the refusal's errno. The reaper's alone.
 */
static int p2pio_p2p_reregister(struct p2pio_p2p *p, struct p2pio_file *f, uint64_t now,
				uint64_t *wait_ns)
{
	struct p2pio_register_file reg;
	struct p2pio_handle_arg h;
	struct p2pio_p2p_old *o;
	char why[P2PIO_REASON_LEN];
	uint32_t old;
	int e = 0;

	if (f->p2p_rereg_next > now) {
		if (f->p2p_rereg_next - now < *wait_ns)
			*wait_ns = f->p2p_rereg_next - now;
		return -EAGAIN;
	}
	memset(&reg, 0, sizeof(reg));
	reg.fd = f->fd;
	/* Not behind the dedupe that broke the lease: other files' completions wait here. */
	if (p->ver.features & P2PIO_FEAT_REGISTER_NOWAIT)
		reg.flags = P2PIO_REGISTER_NOWAIT;
	if (ioctl(p->fd, P2PIO_IOC_REGISTER_FILE, &reg) < 0)
		e = errno;
	/*
	 * EBUSY (NOWAIT): a dedupe holds the file's I/O lock. Tried again for as long as it
	 * does, as the blocking registration waited for as long, with no deadline of its
	 * own; EAGAIN (another lease still being broken) for P2PIO_REREG_WAIT_NS at most.
	 */
	if ((e == EBUSY && reg.flags) ||
	    ((e == EAGAIN || e == EINTR) &&
	     (!f->p2p_rereg_t0 || now - f->p2p_rereg_t0 < P2PIO_REREG_WAIT_NS))) {
		if (e != EBUSY && !f->p2p_rereg_t0)
			f->p2p_rereg_t0 = now;
		if (!f->p2p_rereg_pause)
			f->p2p_rereg_pause = P2PIO_REREG_PAUSE_MIN_NS;
		else if (f->p2p_rereg_pause < P2PIO_REREG_PAUSE_MAX_NS / 2)
			f->p2p_rereg_pause *= 2;
		else
			f->p2p_rereg_pause = P2PIO_REREG_PAUSE_MAX_NS;
		f->p2p_rereg_next = now + f->p2p_rereg_pause;
		if (f->p2p_rereg_pause < *wait_ns)
			*wait_ns = f->p2p_rereg_pause;
		return -EAGAIN;
	}
	f->p2p_rereg_t0 = f->p2p_rereg_next = f->p2p_rereg_pause = 0;
	if (e) {
		/* EAGAIN here: the break did not end in P2PIO_REREG_WAIT_NS. */
		snprintf(why, sizeof(why),
			 "P2P: the file's layout lease broke and the module refused it again: %s (%s)",
			 p2pio_errno_name(e), p2pio_refusal_hint(e));
	} else if (reg.size != f->size || reg.lba_size != f->lba_size) {
		h = (struct p2pio_handle_arg){ .handle = reg.handle };
		ioctl(p->fd, P2PIO_IOC_UNREGISTER_FILE, &h);
		e = EIO;
		snprintf(why, sizeof(why),
			 "P2P: the file's layout lease broke and the module now reports size %llu and block size %u (was %llu and %u)",
			 (unsigned long long)reg.size, reg.lba_size, (unsigned long long)f->size,
			 f->lba_size);
	}
	if (e) {
		pthread_mutex_lock(&p->lock);
		f->p2p_gone = e;
		p2pio_p2p_drop_gone(p, f);
		pthread_mutex_unlock(&p->lock);
		if (f->forced)
			p2pio_file_note(f, P2PIO_PATH_P2P, "%s", why);
		else
			p2pio_p2p_fall_back(f, why);
		return 0;
	}
	pthread_mutex_lock(&p->lock);
	old = (uint32_t)f->p2p_handle;
	h = (struct p2pio_handle_arg){ .handle = old };
	if (f->p2p_cur_refs) {
		o = realloc(f->p2p_old, (f->p2p_nr_old + 1) * sizeof(*o));
		/* Without memory the old handle stays registered until the file closes. */
		if (o) {
			f->p2p_old = o;
			o[f->p2p_nr_old++] = (struct p2pio_p2p_old){ .handle = old,
								     .refs = f->p2p_cur_refs };
		}
	} else {
		ioctl(p->fd, P2PIO_IOC_UNREGISTER_FILE, &h);
	}
	f->p2p_handle = reg.handle;
	f->p2p_cur_refs = 0;
	f->p2p_reregs++;
	pthread_mutex_unlock(&p->lock);
	p2pio_p2p_note_rereg(f, reg.handle, old);
	return 0;
}

/*
 * Send @n stale pieces again (p2pio_p2p_submit_now()): those the module takes are at the
 * module again (they kept their place in @outstanding); the count is returned, or -errno
 * with none taken.
 */
static int p2pio_p2p_resubmit(struct p2pio_p2p *p, struct p2pio_read *rd, unsigned int n)
{
	struct p2pio_piece *pc;
	int i, ret;

	pthread_mutex_lock(&p->lock);
	ret = p2pio_p2p_submit_now(p, rd, n);
	for (i = 0; i < ret; i++) {
		pc = (struct p2pio_piece *)(uintptr_t)rd[i].user_tag;
		pc->rd = rd[i];
		pc->tries++;
	}
	pthread_mutex_unlock(&p->lock);
	return ret;
}

/* Put @pc back on the stale list, for the next pass. */
static void p2pio_stale_keep(struct p2pio_p2p *p, struct p2pio_piece *pc)
{
	pc->next = NULL;
	if (p->stale_tail)
		p->stale_tail->next = pc;
	else
		p->stale_head = pc;
	p->stale_tail = pc;
}

/*
 * One pass over the pieces that came back with ESTALE, bounded: for each, register its
 * file again if no one has since the piece was sent (one re-registration per break, one
 * try per pass); send it again with the file's new handle (one SUBMIT of at most a
 * batch); or, where the file is refused now, fail it (forced P2P) or read it through
 * host memory (AUTO, whose file moved to its fallback; one piece per pass, so that
 * completions of other files are reaped between two such reads). Return the poll timeout
 * of the next pass in ms: -1 with nothing left, 0 where more can be done at once, else
 * until the next retry is due (at least 1 ms).
 */
static int p2pio_p2p_stale_pass(struct p2pio_p2p *p)
{
	struct p2pio_read rd[P2PIO_P2P_BATCH];
	struct p2pio_piece *pc, *next, *host = NULL;
	uint64_t now = p2pio_now_ns(), wait_ns = UINT64_MAX;
	unsigned int nr = 0, batch, i, k;
	struct p2pio_file *f;
	bool again, now_more = false;
	int gone, ret;

	pc = p->stale_head;
	if (!pc)
		return -1;
	p->stale_head = p->stale_tail = NULL;
	batch = p->ver.max_batch < P2PIO_P2P_BATCH ? p->ver.max_batch : P2PIO_P2P_BATCH;
	for (; pc; pc = next) {
		next = pc->next;
		f = pc->op->file;
		pthread_mutex_lock(&p->lock);
		again = !f->p2p_gone && pc->handle == (uint32_t)f->p2p_handle;
		pthread_mutex_unlock(&p->lock);
		/* Sent with the current handle: the break is news, register the file again. */
		if (again && p2pio_p2p_reregister(p, f, now, &wait_ns) == -EAGAIN) {
			p2pio_stale_keep(p, pc);
			continue;
		}
		pthread_mutex_lock(&p->lock);
		gone = f->p2p_gone;
		pthread_mutex_unlock(&p->lock);
		if (gone && f->forced) {
			p2pio_piece_settle(p, pc, -gone, true);
		} else if (gone) {
			if (host) {
				p2pio_stale_keep(p, pc);
				now_more = true;
			} else {
				host = pc;
			}
		} else if (pc->tries >= P2PIO_REREG_MAX_TRIES) {
			p2pio_piece_settle(p, pc, -ESTALE, true);
		} else if (nr < batch) {
			rd[nr++] = pc->rd;
		} else {
			p2pio_stale_keep(p, pc);
			now_more = true;
		}
	}
	/*
	 * A piece taken for sending above may be of a file that a later piece's
	 * re-registration in this pass found refused: that file's handle may be
	 * unregistered already (p2pio_p2p_drop_gone()), so its pieces wait for the next
	 * pass, which reads them through host memory or fails them. Only this thread sets
	 * p2p_gone: it cannot change between here and the SUBMIT.
	 */
	pthread_mutex_lock(&p->lock);
	for (i = 0, k = 0; i < nr; i++) {
		pc = (struct p2pio_piece *)(uintptr_t)rd[i].user_tag;
		if (pc->op->file->p2p_gone) {
			p2pio_stale_keep(p, pc);
			now_more = true;
		} else {
			rd[k++] = rd[i];
		}
	}
	pthread_mutex_unlock(&p->lock);
	nr = k;
	ret = nr ? p2pio_p2p_resubmit(p, rd, nr) : 0;
	if (ret < 0 && ret != -EAGAIN && ret != -EINTR && ret != -ENOMEM) {
		/* Not a want of room: the module refuses the batch itself (cannot happen). */
		for (i = 0; i < nr; i++)
			p2pio_piece_settle(p, (struct p2pio_piece *)(uintptr_t)rd[i].user_tag, ret,
					   true);
	} else if ((ret < 0 ? 0 : (unsigned int)ret) < nr) {
		/*
		 * The module took fewer (its queue is full, or it ran out of memory): the
		 * rest go again next pass, 1 ms on, or as soon as a completion comes.
		 */
		for (i = ret < 0 ? 0 : (unsigned int)ret; i < nr; i++)
			p2pio_stale_keep(p, (struct p2pio_piece *)(uintptr_t)rd[i].user_tag);
		if (P2PIO_REREG_PAUSE_MIN_NS < wait_ns)
			wait_ns = P2PIO_REREG_PAUSE_MIN_NS;
	}
	if (host) {
		ret = p2pio_p2p_host_read(host->op, host->rd.file_offset,
					  host->rd.file_offset + host->rd.length);
		p2pio_piece_settle(p, host, ret, true);
	}
	if (!p->stale_head)
		return -1;
	if (now_more)
		return 0;
	if (wait_ns == UINT64_MAX)
		return 0;
	return (int)((wait_ns + 999999) / 1000000);
}

/* Sends the held reads, oldest first, as the plain bytes in flight drop below the limit. */
static void *p2pio_p2p_feeder(void *arg)
{
	struct p2pio_p2p *p = arg;
	struct p2pio_op *op;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		op = p->held.head;
		if (op && (p->stopping || !p2pio_p2p_plain_full(p))) {
			p2pio_opq_pop(&p->held);
			p->feeding = true;
			pthread_mutex_unlock(&p->lock);
			p2pio_p2p_send_op(p, op);
			pthread_mutex_lock(&p->lock);
			p->feeding = false;
			continue;
		}
		if (p->stopping)
			break;
		pthread_cond_wait(&p->cond, &p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* p2pio_cancel(): held reads only; those sent are the device's. */
static unsigned int p2pio_p2p_withdraw(void *priv, const struct p2pio_queue *q, uint64_t tag,
				       unsigned int n, struct p2pio_op **out)
{
	struct p2pio_p2p *p = priv;
	unsigned int got;

	pthread_mutex_lock(&p->lock);
	got = p2pio_opq_withdraw(&p->held, q, tag, n, out);
	pthread_mutex_unlock(&p->lock);
	return got;
}

/* p2pio_hasten(): the held reads of @tag are sent now, in order, urgent from here. */
static unsigned int p2pio_p2p_hasten(void *priv, const struct p2pio_queue *q, uint64_t tag)
{
	struct p2pio_p2p *p = priv;
	struct p2pio_op *op, *next;
	unsigned int got;

	pthread_mutex_lock(&p->lock);
	got = p2pio_opq_take(&p->held, q, tag, &op);
	pthread_mutex_unlock(&p->lock);
	for (; op; op = next) {
		next = op->next;
		op->next = NULL;
		op->urgent = true;
		p2pio_p2p_send_op(p, op);
	}
	return got;
}

/*
 * Reaps completions, and works on the pieces that came back with ESTALE between polls
 * (p2pio_p2p_stale_pass(), whose timeout the poll takes). Ends once stopped with nothing
 * outstanding, the stale pieces included.
 */
static void *p2pio_p2p_reaper(void *arg)
{
	struct p2pio_completion c[P2PIO_P2P_BATCH];
	struct p2pio_p2p *p = arg;
	struct pollfd pfd[2] = {
		{ .fd = p->fd, .events = POLLIN },
		{ .fd = p->stop_efd, .events = POLLIN },
	};
	struct p2pio_reap reap;
	struct p2pio_piece *pc;
	unsigned int i, nfds = 2;
	bool stop = false, done;
	int timeout = -1;

	for (;;) {
		if (poll(pfd, nfds, timeout) < 0)
			continue;
		/* The eventfd stays readable: poll it no more (the stale pieces' waits). */
		if (nfds == 2 && pfd[1].revents & POLLIN) {
			stop = true;
			nfds = 1;
		}
		memset(&reap, 0, sizeof(reap));
		reap.completions = (uintptr_t)c;
		reap.max = P2PIO_P2P_BATCH;
		if (ioctl(p->fd, P2PIO_IOC_REAP, &reap) < 0)
			reap.count = 0;
		for (i = 0; i < reap.count && i < P2PIO_P2P_BATCH; i++) {
			pc = (struct p2pio_piece *)(uintptr_t)c[i].user_tag;
			pthread_mutex_lock(&p->lock);
			p2pio_handle_put(p, pc->op->file, pc->handle);
			if (c[i].status == -ESTALE) {
				/*
				 * The file's layout lease broke; its bytes are what they were.
				 * The whole piece is read again (the commands of a split read
				 * issued before the break did land, the others never ran). It
				 * keeps its window, its bytes and its place in @outstanding
				 * for the stale pass, which registers the file again and sends
				 * it again. Its module slot is free: a submitter waiting for
				 * room may go on.
				 */
				pthread_cond_broadcast(&p->cond);
				pthread_mutex_unlock(&p->lock);
				p2pio_stale_keep(p, pc);
				continue;
			}
			pc->win->refs--;
			p->outstanding--;
			*p2pio_piece_count(p, pc) -= pc->bytes;
			pthread_cond_broadcast(&p->cond);
			pthread_mutex_unlock(&p->lock);
			p2pio_op_put(pc->op, c[i].status < 0 ? c[i].status : 0,
				     c[i].status < 0 ? 0 : c[i].bytes);
			free(pc);
		}
		timeout = p2pio_p2p_stale_pass(p);
		pthread_mutex_lock(&p->lock);
		done = stop && !p->outstanding;
		pthread_mutex_unlock(&p->lock);
		if (done)
			break;
	}
	return NULL;
}

/* The reaper ends once nothing is outstanding. */
static void p2pio_p2p_reaper_stop(struct p2pio_p2p *p)
{
	uint64_t one = 1;

	if (!p->th_started)
		return;
	if (write(p->stop_efd, &one, sizeof(one)) < 0) {
		/* Cannot fail on a fresh eventfd. */
	}
	pthread_join(p->th, NULL);
	p->th_started = false;
}

static void p2pio_p2p_stop(void *priv)
{
	struct p2pio_p2p *p = priv;

	/* The feeder sends what is still held first: those reads complete as any other. */
	if (p->feeder_started) {
		pthread_mutex_lock(&p->lock);
		p->stopping = true;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->feeder, NULL);
	}
	p2pio_p2p_reaper_stop(p);
	while (p->lru_head)
		p2pio_win_drop(p, p->lru_head);
	if (p->fd >= 0)
		close(p->fd);
	if (p->stop_efd >= 0)
		close(p->stop_efd);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/*
 * Reads into device memory the module can pin; the rest (host memory, misaligned
 * destinations) go by BOUNCE, or POSIX when the file has no O_DIRECT twin.
 */
const struct p2pio_path_ops p2pio_p2p_ops = {
	.id = P2PIO_PATH_P2P,
	.name = "p2p",
	.auto_why = "AUTO: the module accepted the file",
	.fallback = P2PIO_PATH_BOUNCE,
	.start = p2pio_p2p_start,
	.stop = p2pio_p2p_stop,
	.file_open = p2pio_p2p_file_open,
	.file_close = p2pio_p2p_file_close,
	.file_info = p2pio_p2p_file_info,
	.op_ok = p2pio_p2p_op_ok,
	.submit = p2pio_p2p_submit,
	.submit_many = p2pio_p2p_submit_many,
	.withdraw = p2pio_p2p_withdraw,
	.hasten = p2pio_p2p_hasten,
	.buf_release = p2pio_p2p_buf_release,
};
