// SPDX-License-Identifier: MIT
/*
 * bounce.c - the BOUNCE path: O_DIRECT reads through io_uring into a shared pool of
 * pinned host buffers, overlapped with asynchronous host-to-device copies.
 *
 * Several engine workers (the context's thread count), each with its own io_uring and
 * its own CUDA stream, take chunks from one queue of operations and staging slots from
 * one pool. Several submitters matter for block devices that complete each bio in the
 * task that submits it (zram, brd, some virtual disks): one ring reads them one at a time,
 * a ring per worker reads them in parallel, as the storage ceiling's own O_DIRECT reader
 * does. The queue depth is shared out between the rings.
 *
 * Each worker keeps up to its share of reads in flight, each of one chunk (block-aligned:
 * the head and tail blocks of an unaligned range are read whole into staging and only the
 * requested bytes copied out). When a read lands, its bytes are copied to the destination:
 * cuMemcpyHtoDAsync on the worker's stream plus an event for device memory (the slot
 * returns to the pool when the event fires, so the worker's next read overlaps this copy),
 * a memcpy for host memory. Aligned middle parts of host destinations are read straight
 * into place with no staging at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "engine/engine.h"
#include "placement/sysfs.h"

struct p2pio_bslot {
	char *mem;
	CUevent ev;
	struct p2pio_op *op;		/* copy in flight */
	struct p2pio_bslot *next;	/* in the pool or in a worker's copy FIFO */
};

/* One read in flight. */
struct p2pio_bio {
	struct p2pio_op *op;
	struct p2pio_bslot *slot;	/* NULL: reading straight into a host destination */
	char *to;			/* where the read lands */
	uint64_t foff;			/* aligned file offset of the read */
	uint64_t rlen;			/* aligned length */
	uint64_t done;			/* bytes read so far (short reads resume) */
	uint64_t lo, hi;		/* the op's bytes inside [foff, foff + rlen) */
	bool urgent;			/* counted in the queue's urgent pieces out */
	struct p2pio_bio *next;
};

/* A submitter: its ring, its stream, its reads and copies. Owned by its thread. */
struct p2pio_bworker {
	struct p2pio_bounce *b;
	pthread_t th;
	bool started;
	bool ring_ok;
	bool fixed;			/* the staging is registered with the ring */
	struct io_uring ring;
	CUstream stream;
	unsigned int nr_reads;
	struct p2pio_bio *bios;
	struct p2pio_bio *bio_free;
	struct p2pio_bslot *copy_head, *copy_tail;
};

struct p2pio_bounce {
	struct p2pio_ctx *ctx;
	unsigned int sqe_flags;		/* IOSQE_ASYNC with P2PIO_CTX_BOUNCE_ASYNC */

	pthread_mutex_t lock;		/* q, queued, stop, slot_free, nr_waiting */
	pthread_cond_t cond;		/* work queued, a slot freed, stop */
	struct p2pio_opq q;		/* reads with chunks left to hand out */
	uint64_t queued;		/* chunks queued and not yet handed out */
	atomic_bool stop;		/* set under @lock; the poll loop reads it without */
	struct p2pio_bslot *slot_free;
	unsigned int nr_waiting;	/* workers asleep on @cond */
	/* Operations queued so far, and plain ones let go after urgent ones were read
	 * (P2PIO_CTX_URGENT_ALONE): new work, polled without the lock. */
	atomic_uint submitted;
	bool poll;			/* P2PIO_CTX_POLL */
	unsigned int nr_ready;		/* workers past registering the staging */

	char *staging;
	struct p2pio_bslot *slots;
	unsigned int nr_slots;
	unsigned int depth;		/* reads in flight per worker */
	unsigned int nr;
	struct p2pio_bworker w[];
};

static void p2pio_bio_prep(struct p2pio_bworker *w, struct p2pio_bio *bio)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

	/* Never NULL: the ring has a slot per read and no more reads than that are issued. */
	if (bio->slot && w->fixed)
		io_uring_prep_read_fixed(sqe, bio->op->file->dfd, bio->to + bio->done,
					 (unsigned int)(bio->rlen - bio->done),
					 bio->foff + bio->done, 0);
	else
		io_uring_prep_read(sqe, bio->op->file->dfd, bio->to + bio->done,
				   (unsigned int)(bio->rlen - bio->done), bio->foff + bio->done);
	io_uring_sqe_set_flags(sqe, w->b->sqe_flags);
	io_uring_sqe_set_data(sqe, bio);
	w->nr_reads++;
}

/* The bytes of each read of @f's operations: the chunk size, in whole O_DIRECT blocks. */
static uint64_t p2pio_bounce_chunk(const struct p2pio_bounce *b, const struct p2pio_file *f)
{
	return p2pio_round_down(b->ctx->opts.chunk_size, f->dio_align);
}

/* The chunks of @op not handed out yet, as p2pio_bounce_next() cuts them. */
static uint64_t p2pio_bounce_op_chunks(const struct p2pio_bounce *b, const struct p2pio_op *op)
{
	uint64_t chunk = p2pio_bounce_chunk(b, op->file);

	return (op->end - op->cur + chunk - 1) / chunk;
}

/*
 * A worker's share of the chunks queued (under b->lock): of all of them; with
 * P2PIO_CTX_URGENT_ALONE and urgent reads at the head, of theirs, which are what the
 * workers take until they are out (the plain ones behind wait): a miss cut in a piece per
 * worker is read a piece per worker, not several by the first ones awake.
 */
static uint64_t p2pio_bounce_share(const struct p2pio_bounce *b)
{
	const struct p2pio_op *op = b->q.head;
	uint64_t n = 0;

	if (!b->q.urgent_alone || !op || !op->urgent)
		return b->queued / b->nr;
	for (; op && op->urgent; op = op->next)
		n += p2pio_bounce_op_chunks(b, op);
	return n / b->nr;
}

/* Has @f as many reads in flight as it may (p2pio_file.bounce_cap)? Under b->lock. */
static bool p2pio_bounce_file_full(const struct p2pio_file *f)
{
	return f->bounce_cap && f->bounce_out >= f->bounce_cap;
}

/*
 * Can @w start a chunk now? Under b->lock. Not while the next operation's file has as
 * many reads in flight as its cap allows: the queue waits behind it (each of its landing
 * reads wakes a worker, and so does the head moving on), as it waits for a free slot. A
 * context that reads a rotational disk's files and others' at once reads the others
 * behind them.
 */
static bool p2pio_bounce_can_take(const struct p2pio_bworker *w)
{
	const struct p2pio_op *op = p2pio_opq_next(&w->b->q);

	return op && w->bio_free && w->b->slot_free && !p2pio_bounce_file_full(op->file);
}

static void p2pio_bounce_new_work(struct p2pio_bounce *b, unsigned int n);

/* Hand out the next chunk of the oldest operation to @w; false when none can start now. */
static bool p2pio_bounce_next(struct p2pio_bworker *w, struct p2pio_op **finished)
{
	struct p2pio_bounce *b = w->b;
	struct p2pio_op *op = p2pio_opq_next(&b->q);
	struct p2pio_bio *bio;
	struct p2pio_file *f;
	uint64_t chunk, foff, rlen, lo, hi;
	char *direct = NULL;
	uint32_t out;

	if (!op || !w->bio_free || p2pio_bounce_file_full(op->file))
		return false;
	f = op->file;
	chunk = p2pio_bounce_chunk(b, f);
	foff = op->cur;
	rlen = op->end - foff < chunk ? op->end - foff : chunk;
	lo = foff > op->off ? foff : op->off;
	hi = foff + rlen < op->off + op->len ? foff + rlen : op->off + op->len;
	/* Only plain host memory: O_DIRECT cannot pin a device mapping (the test double's). */
	if (op->buf->mem == P2PIO_MEM_HOST && lo == foff && hi == foff + rlen) {
		direct = (char *)op->buf->host + op->dst + (foff - op->off);
		if ((uintptr_t)direct % f->dio_mem_align)
			direct = NULL;
	}
	if (!direct && !b->slot_free)
		return false;
	bio = w->bio_free;
	w->bio_free = bio->next;
	bio->op = op;
	bio->slot = NULL;
	if (!direct) {
		bio->slot = b->slot_free;
		b->slot_free = bio->slot->next;
	}
	bio->to = direct ? direct : bio->slot->mem;
	bio->foff = foff;
	bio->rlen = rlen;
	bio->done = 0;
	bio->lo = lo;
	bio->hi = hi;
	bio->urgent = p2pio_opq_piece_out(&b->q, op);
	out = atomic_fetch_add(&f->bounce_out, 1) + 1;
	if (out > f->bounce_out_max)
		f->bounce_out_max = out;
	p2pio_op_get(op);
	op->cur += rlen;
	b->queued--;
	if (op->cur == op->end) {
		atomic_store(&op->t_taken, p2pio_now_ns());
		p2pio_opq_pop(&b->q);
		/* Workers that slept on a capped head: what heads the queue now may start. */
		if (f->bounce_cap && b->q.head && b->q.head->file != f)
			p2pio_bounce_new_work(b, 1);
		op->next = *finished;
		*finished = op;
	}
	p2pio_bio_prep(w, bio);
	return true;
}

/*
 * @n more pieces of work a worker may start (reads queued, or plain ones let go): polling
 * workers watch @submitted, sleeping ones the condition. Under b->lock.
 */
static void p2pio_bounce_new_work(struct p2pio_bounce *b, unsigned int n)
{
	atomic_fetch_add(&b->submitted, n);
	if (b->nr_waiting)
		pthread_cond_broadcast(&b->cond);
}

/*
 * One more read of a capped file may start: one worker wakes for it, not all (sixteen
 * workers woken at every landing of a file read 4 at a time doubled the CPU per GB on
 * the virtio disk). The only other waiter on @cond, p2pio_bounce_start(), is done before
 * any read is queued. Under b->lock.
 */
static void p2pio_bounce_new_read(struct p2pio_bounce *b)
{
	atomic_fetch_add(&b->submitted, 1);
	if (b->nr_waiting)
		pthread_cond_signal(&b->cond);
}

/* A slot back to the pool; a worker that waits for one may go on. */
static void p2pio_bslot_put(struct p2pio_bounce *b, struct p2pio_bslot *s)
{
	pthread_mutex_lock(&b->lock);
	s->next = b->slot_free;
	b->slot_free = s;
	if (b->nr_waiting)
		pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

static void p2pio_bio_put(struct p2pio_bworker *w, struct p2pio_bio *bio)
{
	bio->next = w->bio_free;
	w->bio_free = bio;
}

/* A read landed (or failed): copy its bytes out, resume a short read, or fail the op. */
static void p2pio_bounce_landed(struct p2pio_bworker *w, struct p2pio_bio *bio, int res)
{
	struct p2pio_bounce *b = w->b;
	const struct p2pio_cuda *cu = b->ctx->cu;
	struct p2pio_op *op = bio->op;
	struct p2pio_bslot *s = bio->slot;
	uint64_t need = bio->hi - bio->foff, dst = op->dst + (bio->lo - op->off);
	bool capped;
	int err = 0;
	CUresult cr;

	w->nr_reads--;
	if (res < 0) {
		err = res;
	} else {
		bio->done += (uint64_t)res;
		if (bio->done < need) {
			/* A short read that stopped on a block boundary may go on; else EOF. */
			if (res > 0 && bio->done % op->file->dio_align == 0) {
				p2pio_bio_prep(w, bio);
				return;
			}
			err = -ENODATA;
		}
	}
	if (!err)
		p2pio_op_landed(op);
	/*
	 * One fewer in flight. A capped file's landing read makes room for one more, and one
	 * waiting worker wakes for it, at every landing: only the first below the cap would
	 * leave room unclaimed when two land before either is taken again.
	 */
	atomic_fetch_sub(&op->file->bounce_out, 1);
	capped = op->file->bounce_cap;
	if (bio->urgent || capped) {
		pthread_mutex_lock(&b->lock);
		/* The last urgent piece read: plain ones may start again (P2PIO_CTX_URGENT_ALONE). */
		if (bio->urgent && p2pio_opq_piece_read(&b->q, true))
			p2pio_bounce_new_work(b, 1);
		if (capped)
			p2pio_bounce_new_read(b);
		pthread_mutex_unlock(&b->lock);
	}
	if (err || atomic_load(&op->err) || !s) {
		p2pio_op_put(op, err, bio->done);
		if (s)
			p2pio_bslot_put(b, s);
		p2pio_bio_put(w, bio);
		return;
	}
	if (op->buf->host) {
		memcpy((char *)op->buf->host + dst, s->mem + (bio->lo - bio->foff),
		       bio->hi - bio->lo);
		p2pio_op_put(op, 0, bio->done);
		p2pio_bslot_put(b, s);
		p2pio_bio_put(w, bio);
		return;
	}
	cr = cu->MemcpyHtoDAsync(op->buf->addr + dst, s->mem + (bio->lo - bio->foff),
				 bio->hi - bio->lo, w->stream);
	if (cr == CUDA_SUCCESS)
		cr = cu->EventRecord(s->ev, w->stream);
	if (cr != CUDA_SUCCESS) {
		p2pio_op_put(op, p2pio_cuda_errno(cr), bio->done);
		p2pio_bslot_put(b, s);
		p2pio_bio_put(w, bio);
		return;
	}
	atomic_fetch_add(&op->bytes_read, bio->done);
	s->op = op;
	s->next = NULL;
	if (w->copy_tail)
		w->copy_tail->next = s;
	else
		w->copy_head = s;
	w->copy_tail = s;
	p2pio_bio_put(w, bio);
}

/*
 * P2PIO_CTX_POLL: instead of sleeping at once, poll for up to P2PIO_CTX_POLL_US for @w's
 * oldest copy to finish (with @copies) or for new work; true when either came.
 */
static bool p2pio_bounce_poll(struct p2pio_bworker *w, bool copies);

/* Retire @w's finished copies in order; with @wait, block for the oldest. */
static bool p2pio_bounce_retire(struct p2pio_bworker *w, bool wait)
{
	const struct p2pio_cuda *cu = w->b->ctx->cu;
	struct p2pio_bslot *s;
	struct p2pio_op *op;
	bool any = false;
	CUresult cr;

	while ((s = w->copy_head)) {
		/* Polling's events spin: wait on them yielding, as on the others blocking. */
		if (wait && !any)
			cr = w->b->poll ? p2pio_cuda_event_wait(cu, s->ev) :
					  cu->EventSynchronize(s->ev);
		else
			cr = cu->EventQuery(s->ev);
		if (cr == CUDA_ERROR_NOT_READY)
			break;
		w->copy_head = s->next;
		if (!w->copy_head)
			w->copy_tail = NULL;
		op = s->op;
		s->op = NULL;
		/* The slot first, so the read that this completion lets the caller queue finds it. */
		p2pio_bslot_put(w->b, s);
		p2pio_op_put(op, cr == CUDA_SUCCESS ? 0 : p2pio_cuda_errno(cr), 0);
		any = true;
	}
	return any;
}

/*
 * Register the staging pool with @w's ring, so that its reads into staging are fixed-buffer
 * reads: the kernel pins the pool once here instead of pinning each read's pages anew
 * (on zram, where the CPU is the device, that per-read pinning came off the rate). Each
 * worker registers its own ring, in parallel; p2pio_bounce_start() waits for them, so the
 * cost stays in the open. Where the kernel refuses (old kernel, RLIMIT_MEMLOCK for an
 * unprivileged user: io_uring charges each ring for the pool), reads go unregistered.
 */
static void p2pio_bworker_register(struct p2pio_bworker *w)
{
	struct p2pio_bounce *b = w->b;
	struct iovec iov = { b->staging, b->ctx->opts.staging_bytes };

	w->fixed = !io_uring_register_buffers(&w->ring, &iov, 1);
	pthread_mutex_lock(&b->lock);
	b->nr_ready++;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

static void *p2pio_bounce_thread(void *arg)
{
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 100000 };
	struct p2pio_bworker *w = arg;
	struct p2pio_bounce *b = w->b;
	struct p2pio_op *finished, *op;
	struct io_uring_cqe *cqe;
	uint64_t share, took;
	bool progress;
	int ret;

	if (b->ctx->cu)
		b->ctx->cu->CtxSetCurrent(b->ctx->cuctx);
	p2pio_bworker_register(w);
	for (;;) {
		bool polled = false;

		progress = false;
		finished = NULL;
		pthread_mutex_lock(&b->lock);
		/* Stopping, a worker still sleeps while plain reads wait for urgent ones. */
		while (!w->nr_reads && !w->copy_head && !(b->stop && !b->q.head) &&
		       !p2pio_bounce_can_take(w)) {
			if (b->poll && !polled) {
				polled = true;
				pthread_mutex_unlock(&b->lock);
				p2pio_bounce_poll(w, false);
				pthread_mutex_lock(&b->lock);
				continue;
			}
			b->nr_waiting++;
			pthread_cond_wait(&b->cond, &b->lock);
			b->nr_waiting--;
		}
		if (b->stop && !b->q.head && !w->nr_reads && !w->copy_head) {
			pthread_mutex_unlock(&b->lock);
			break;
		}
		/*
		 * No more than this worker's share of what is queued. On a device that reads
		 * each bio in the submitting task (zram, brd), a ring's reads run one after
		 * another inside io_uring_submit(): a worker that took a lone miss's reads up
		 * to its depth (4-5 of 14) read them serially while other workers slept, and
		 * the batch took about twice its bytes' time. Taking a share (at least one chunk,
		 * rounded down: 15 chunks for 14 workers is one each, and the 15th for whoever
		 * is free first) leaves the rest to the workers the submission woke; a long queue
		 * still fills every ring.
		 */
		share = p2pio_bounce_share(b);
		for (took = 0; took < (share ? share : 1) && p2pio_bounce_next(w, &finished);
		     took++)
			progress = true;
		pthread_mutex_unlock(&b->lock);
		/*
		 * New reads, and short reads resumed by p2pio_bounce_landed(). The kernel may
		 * take none or only some of them (EAGAIN, EBUSY, ENOMEM, EINTR: short of
		 * resources for the moment): the rest stay in the ring, counted in @nr_reads,
		 * and are submitted by a later pass (the wait below is timed while any are).
		 */
		if (io_uring_sq_ready(&w->ring))
			io_uring_submit(&w->ring);
		/* The path's references: dropped once the last chunk of each op is out. */
		while ((op = finished)) {
			finished = op->next;
			p2pio_op_put(op, 0, 0);
		}
		while (io_uring_peek_cqe(&w->ring, &cqe) == 0) {
			p2pio_bounce_landed(w, io_uring_cqe_get_data(cqe), cqe->res);
			io_uring_cqe_seen(&w->ring, cqe);
			progress = true;
		}
		if (w->copy_head && p2pio_bounce_retire(w, false))
			progress = true;
		if (progress)
			continue;
		if (w->nr_reads) {
			/*
			 * With copies pending, wake up now and then to retire them; with reads
			 * the kernel did not take, to submit them again (else the worker
			 * waited for completions of reads never sent: a hang).
			 */
			ret = w->copy_head || io_uring_sq_ready(&w->ring) ?
				      io_uring_wait_cqe_timeout(&w->ring, &cqe, &ts) :
				      io_uring_wait_cqe(&w->ring, &cqe);
			(void)ret;
		} else if (w->copy_head) {
			if (!b->poll || !p2pio_bounce_poll(w, true))
				p2pio_bounce_retire(w, true);
		}
	}
	return NULL;
}

static bool p2pio_bounce_poll(struct p2pio_bworker *w, bool copies)
{
	struct p2pio_bounce *b = w->b;
	unsigned int seen = atomic_load(&b->submitted);
	uint64_t t0 = p2pio_now_ns();

	do {
		if (copies && p2pio_bounce_retire(w, false))
			return true;
		if (atomic_load(&b->submitted) != seen || atomic_load(&b->stop))
			return true;
		sched_yield();
	} while (p2pio_now_ns() - t0 < P2PIO_CTX_POLL_US * 1000ull);
	return false;
}

static void p2pio_bounce_free(struct p2pio_bounce *b)
{
	struct p2pio_ctx *ctx = b->ctx;
	const struct p2pio_cuda *cu = ctx->cu;
	CUcontext prev = p2pio_ctx_enter(ctx);
	unsigned int i;

	for (i = 0; i < b->nr; i++) {
		struct p2pio_bworker *w = &b->w[i];

		if (cu && w->stream)
			cu->StreamDestroy(w->stream);
		if (w->ring_ok)
			io_uring_queue_exit(&w->ring);
		free(w->bios);
	}
	if (cu)
		for (i = 0; i < b->nr_slots; i++)
			if (b->slots[i].ev)
				cu->EventDestroy(b->slots[i].ev);
	p2pio_ctx_leave(ctx, prev);
	p2pio_staging_free(ctx, b->staging, ctx->opts.staging_bytes);
	free(b->slots);
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

/* A worker's ring, reads and stream. */
static int p2pio_bworker_init(struct p2pio_bounce *b, struct p2pio_bworker *w)
{
	const struct p2pio_cuda *cu = b->ctx->cu;
	CUcontext prev;
	CUresult cr = CUDA_SUCCESS;
	unsigned int i;
	int ret;

	w->b = b;
	ret = io_uring_queue_init(b->depth, &w->ring, 0);
	if (ret)
		return ret;
	w->ring_ok = true;
	w->bios = calloc(b->depth, sizeof(*w->bios));
	if (!w->bios)
		return -ENOMEM;
	for (i = 0; i < b->depth; i++)
		p2pio_bio_put(w, &w->bios[i]);
	if (cu) {
		prev = p2pio_ctx_enter(b->ctx);
		cr = cu->StreamCreate(&w->stream, CU_STREAM_NON_BLOCKING);
		p2pio_ctx_leave(b->ctx, prev);
	}
	return cr == CUDA_SUCCESS ? 0 : p2pio_cuda_errno(cr);
}

static void p2pio_bounce_join(struct p2pio_bounce *b)
{
	unsigned int i;

	pthread_mutex_lock(&b->lock);
	atomic_store(&b->stop, true);
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	for (i = 0; i < b->nr; i++)
		if (b->w[i].started)
			pthread_join(b->w[i].th, NULL);
}

static int p2pio_bounce_start(struct p2pio_ctx *ctx, void **privp)
{
	const struct p2pio_ctx_opts *o = &ctx->opts;
	const struct p2pio_cuda *cu = ctx->cu;
	unsigned int i, nslots = (unsigned int)(o->staging_bytes / o->chunk_size);
	unsigned int nr = o->threads;
	struct p2pio_bounce *b;
	CUresult cr = CUDA_SUCCESS;
	CUcontext prev;
	int ret = 0;

	/* More rings than reads in flight would leave rings with nothing to do. */
	if (nr > o->queue_depth)
		nr = o->queue_depth;
	b = calloc(1, sizeof(*b) + nr * sizeof(b->w[0]));
	if (!b)
		return -ENOMEM;
	b->ctx = ctx;
	b->nr = nr;
	b->depth = (o->queue_depth + nr - 1) / nr;
	b->sqe_flags = o->flags & P2PIO_CTX_BOUNCE_ASYNC ? IOSQE_ASYNC : 0;
	b->poll = o->flags & P2PIO_CTX_POLL;
	b->q.urgent_alone = o->flags & P2PIO_CTX_URGENT_ALONE;
	atomic_init(&b->submitted, 0);
	atomic_init(&b->stop, false);
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	b->slots = calloc(nslots, sizeof(*b->slots));
	b->staging = p2pio_staging_alloc(ctx, o->staging_bytes);
	if (!b->slots || !b->staging) {
		ret = -ENOMEM;
		goto out_free;
	}
	b->nr_slots = nslots;
	for (i = 0; i < nslots; i++) {
		b->slots[i].mem = b->staging + (uint64_t)i * o->chunk_size;
		b->slots[nslots - 1 - i].next = b->slot_free;
		b->slot_free = &b->slots[nslots - 1 - i];
	}
	if (cu) {
		prev = p2pio_ctx_enter(ctx);
		for (i = 0; i < nslots && cr == CUDA_SUCCESS; i++)
			cr = cu->EventCreate(&b->slots[i].ev, b->poll ? P2PIO_POLL_EVENT_FLAGS :
								       P2PIO_COPY_EVENT_FLAGS);
		p2pio_ctx_leave(ctx, prev);
		if (cr != CUDA_SUCCESS) {
			ret = p2pio_cuda_errno(cr);
			goto out_free;
		}
	}
	for (i = 0; i < nr && !ret; i++)
		ret = p2pio_bworker_init(b, &b->w[i]);
	for (i = 0; i < nr && !ret; i++) {
		ret = -pthread_create(&b->w[i].th, NULL, p2pio_bounce_thread, &b->w[i]);
		b->w[i].started = !ret;
	}
	if (ret) {
		p2pio_bounce_join(b);
		goto out_free;
	}
	pthread_mutex_lock(&b->lock);
	while (b->nr_ready < nr)
		pthread_cond_wait(&b->cond, &b->lock);
	pthread_mutex_unlock(&b->lock);
	*privp = b;
	return 0;

out_free:
	p2pio_bounce_free(b);
	return ret;
}

static int p2pio_bounce_submit_many(void *priv, struct p2pio_op **ops, unsigned int n)
{
	struct p2pio_bounce *b = priv;
	uint64_t chunks = 0;
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint32_t al = ops[i]->file->dio_align;

		ops[i]->cur = p2pio_round_down(ops[i]->off, al);
		ops[i]->end = p2pio_round_up(ops[i]->off + ops[i]->len, al);
		chunks += p2pio_bounce_op_chunks(b, ops[i]);
	}
	pthread_mutex_lock(&b->lock);
	b->queued += chunks;
	for (i = 0; i < n; i++)
		p2pio_opq_push(&b->q, ops[i]);
	/* Every sleeping worker: a large read, or many, has chunks for all of them. */
	p2pio_bounce_new_work(b, n);
	pthread_mutex_unlock(&b->lock);
	return 0;
}

static int p2pio_bounce_submit(void *priv, struct p2pio_op *op)
{
	return p2pio_bounce_submit_many(priv, &op, 1);
}

static unsigned int p2pio_bounce_withdraw(void *priv, const struct p2pio_queue *q, uint64_t tag,
					  unsigned int n, struct p2pio_op **out)
{
	struct p2pio_bounce *b = priv;
	struct p2pio_op *op;
	unsigned int got;

	pthread_mutex_lock(&b->lock);
	got = p2pio_opq_withdraw(&b->q, q, tag, n, out);
	for (op = got ? *out : NULL; op; op = op->next)
		b->queued -= p2pio_bounce_op_chunks(b, op);
	/* A withdrawn head may have held the queue at its file's cap. */
	if (got && b->q.head)
		p2pio_bounce_new_work(b, 1);
	pthread_mutex_unlock(&b->lock);
	return got;
}

static unsigned int p2pio_bounce_hasten(void *priv, const struct p2pio_queue *q, uint64_t tag)
{
	struct p2pio_bounce *b = priv;
	const struct p2pio_op *head;
	unsigned int got;
	bool released, capped;

	pthread_mutex_lock(&b->lock);
	head = p2pio_opq_next(&b->q);
	capped = head && p2pio_bounce_file_full(head->file);
	got = p2pio_opq_hasten(&b->q, q, tag, &released);
	/*
	 * P2PIO_CTX_URGENT_ALONE: a plain head held back while urgent pieces are out, now
	 * urgent, may start at once; the workers that slept on it would otherwise sleep on
	 * until the last urgent piece is read. (Without the flag the head never waits.)
	 */
	if (released || (got && capped && p2pio_opq_next(&b->q) != head))
		p2pio_bounce_new_work(b, 1);
	pthread_mutex_unlock(&b->lock);
	return got;
}

static void p2pio_bounce_stop(void *priv)
{
	struct p2pio_bounce *b = priv;

	p2pio_bounce_join(b);
	p2pio_bounce_free(b);
}

/* ---- files: the O_DIRECT twin, and AUTO's page-cache check --------------------------- */

/* AUTO prefers buffered reads when at least this share of a sample is in the page cache. */
#define P2PIO_WARM_PERCENT 90
#define P2PIO_WARM_SAMPLES 1024

static const char *p2pio_fs_name(int fd)
{
	struct statfs sfs;

	if (fstatfs(fd, &sfs))
		return "unknown";
	switch ((unsigned long)sfs.f_type) {
	case 0xEF53: return "ext4";
	case 0x58465342: return "xfs";
	case 0x9123683E: return "btrfs";
	case 0x01021994: return "tmpfs";
	case 0x6969: return "nfs";
	case 0x65735546: return "fuse";
	case 0x794C7630: return "overlayfs";
	case 0x2FC12FC1: return "zfs";
	default: return "this file system";
	}
}

/*
 * On a disk that says it is rotational, and where the caller left the queue depth to the
 * library, @f's reads go P2PIO_DEF_ROTATIONAL_DEPTH at a time (engine.h says why). A file
 * on no block device the library can name (tmpfs, btrfs's anonymous devices) or on one
 * that does not say keeps the context's depth.
 */
static void p2pio_bounce_cap_derive(struct p2pio_file *f, int dfd)
{
	uint32_t cap = P2PIO_DEF_ROTATIONAL_DEPTH;
	struct stat st;
	char disk[32];

	f->bounce_cap = 0;
	f->bounce_why[0] = '\0';
	if (!f->ctx->depth_default || cap >= f->ctx->opts.queue_depth || fstat(dfd, &st) ||
	    p2pio_blockdev_rotational(p2pio_sysfs_root, major(st.st_dev), minor(st.st_dev),
				      disk, sizeof(disk)) != 1)
		return;
	f->bounce_cap = cap;
	snprintf(f->bounce_why, sizeof(f->bounce_why), "%u reads in flight (%.31s is rotational)",
		 cap, disk);
}

/*
 * Open the O_DIRECT twin of @f->fd and learn its alignment; a one-block read proves it
 * works (some file systems accept O_DIRECT at open and fail the read).
 */
static int p2pio_dio_open(struct p2pio_file *f, char *why, size_t why_len)
{
	char proc[64];
	struct statx stx;
	void *blk = NULL;
	ssize_t n;
	int dfd, ret;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
	dfd = open(proc, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (dfd < 0) {
		ret = -errno;
		snprintf(why, why_len, "BOUNCE: O_DIRECT not supported by %s (%s)",
			 p2pio_fs_name(f->fd), strerror(-ret));
		return ret;
	}
	f->dio_align = 4096;
	f->dio_mem_align = 4096;
	if (!statx(dfd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) &&
	    (stx.stx_mask & STATX_DIOALIGN)) {
		if (!stx.stx_dio_offset_align) {
			snprintf(why, why_len, "BOUNCE: O_DIRECT not supported by %s",
				 p2pio_fs_name(f->fd));
			ret = -EOPNOTSUPP;
			goto out_close;
		}
		f->dio_align = stx.stx_dio_offset_align;
		f->dio_mem_align = stx.stx_dio_mem_align > 1 ? stx.stx_dio_mem_align : 1;
	}
	if (f->dio_align > 65536 || f->dio_align & (f->dio_align - 1) ||
	    f->dio_mem_align > 4096 || f->dio_mem_align & (f->dio_mem_align - 1)) {
		snprintf(why, why_len, "BOUNCE: unusual O_DIRECT alignment %u/%u", f->dio_align,
			 f->dio_mem_align);
		ret = -EOPNOTSUPP;
		goto out_close;
	}
	if (f->size) {
		if (posix_memalign(&blk, 4096, f->dio_align)) {
			ret = -ENOMEM;
			snprintf(why, why_len, "BOUNCE: out of memory");
			goto out_close;
		}
		n = pread(dfd, blk, f->dio_align, 0);
		ret = n < 0 ? -errno : 0;
		free(blk);
		if (ret) {
			snprintf(why, why_len, "BOUNCE: O_DIRECT read fails on %s (%s)",
				 p2pio_fs_name(f->fd), strerror(-ret));
			goto out_close;
		}
	}
	f->dfd = dfd;
	p2pio_bounce_cap_derive(f, dfd);
	return 0;

out_close:
	close(dfd);
	return ret;
}

/* Percentage of a sample of the file's pages that sit in the page cache. */
static int p2pio_resident_percent(struct p2pio_file *f)
{
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE), npages, step, i, hits = 0, n = 0;
	unsigned char vec;
	char *map;

	if (!f->size)
		return 100;
	map = mmap(NULL, f->size, PROT_READ, MAP_SHARED, f->fd, 0);
	if (map == MAP_FAILED)
		return 0;
	npages = (f->size + pg - 1) / pg;
	step = npages > P2PIO_WARM_SAMPLES ? npages / P2PIO_WARM_SAMPLES : 1;
	for (i = 0; i < npages; i += step, n++)
		if (!mincore(map + i * pg, 1, &vec) && (vec & 1))
			hits++;
	munmap(map, f->size);
	return (int)(hits * 100 / n);
}

static int p2pio_bounce_file_open(struct p2pio_file *f, char *why, size_t why_len)
{
	/* Opened already as another path's fallback. */
	if (f->dfd >= 0)
		return 0;
	return p2pio_dio_open(f, why, why_len);
}

/* A file mostly in the page cache reads faster buffered: AUTO passes it on to POSIX. */
static bool p2pio_bounce_auto_pass(struct p2pio_file *f, char *why_not, char *why,
				   size_t why_len)
{
	int pct;

	if (f->ctx->opts.flags & P2PIO_CTX_NO_WARM_CHECK)
		return false;
	pct = p2pio_resident_percent(f);
	if (pct < P2PIO_WARM_PERCENT)
		return false;
	snprintf(why_not, why_len,
		 "BOUNCE: %d%% of the file is in the page cache, where buffered reads are faster",
		 pct);
	snprintf(why, why_len, "AUTO: the file is in the page cache");
	return true;
}

static void p2pio_bounce_file_close(struct p2pio_file *f)
{
	if (f->dfd >= 0)
		close(f->dfd);
	f->dfd = -1;
}

static void p2pio_bounce_file_info(const struct p2pio_file *f, struct p2pio_path_info *info)
{
	info->dio_align = f->dfd >= 0 ? f->dio_align : 0;
	/* Only where @why says so: a POSIX file (the page cache's) is not held to it. */
	info->max_in_flight = f->dfd >= 0 && info->path == P2PIO_PATH_BOUNCE ? f->bounce_cap : 0;
}

/* Only a file with its O_DIRECT twin open (P2P files may lack one). */
static bool p2pio_bounce_op_ok(struct p2pio_op *op, char *why, size_t why_len)
{
	(void)why;
	(void)why_len;
	return op->file->dfd >= 0;
}

const struct p2pio_path_ops p2pio_bounce_ops = {
	.id = P2PIO_PATH_BOUNCE,
	.name = "bounce",
	.auto_why = "AUTO: O_DIRECT works on the file",
	.fallback = P2PIO_PATH_POSIX,
	.start = p2pio_bounce_start,
	.stop = p2pio_bounce_stop,
	.file_open = p2pio_bounce_file_open,
	.auto_pass = p2pio_bounce_auto_pass,
	.file_close = p2pio_bounce_file_close,
	.file_info = p2pio_bounce_file_info,
	.op_ok = p2pio_bounce_op_ok,
	.submit = p2pio_bounce_submit,
	.submit_many = p2pio_bounce_submit_many,
	.withdraw = p2pio_bounce_withdraw,
	.hasten = p2pio_bounce_hasten,
};
