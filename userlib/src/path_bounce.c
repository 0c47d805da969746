// SPDX-License-Identifier: MIT
/*
 * path_bounce.c - the BOUNCE path: O_DIRECT reads through io_uring into a ring of pinned
 * host buffers, overlapped with asynchronous host-to-device copies.
 *
 * One engine thread per context owns the ring. It keeps up to queue_depth reads in
 * flight, each of one chunk (block-aligned: the head and tail blocks of an unaligned
 * range are read whole into staging and only the requested bytes copied out). When a
 * read lands, its bytes are copied to the destination: cuMemcpyHtoDAsync plus an event
 * for device memory (the staging buffer returns to the ring when the event fires), a
 * memcpy for host memory. Aligned middle parts of host destinations are read straight
 * into place with no staging at all.
 */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

struct p2pio_bslot {
	char *mem;
	CUevent ev;
	struct p2pio_op *op;		/* copy in flight */
	struct p2pio_bslot *next;	/* in the free list or the copy FIFO */
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
	struct p2pio_bio *next;
};

struct p2pio_bounce {
	struct p2pio_ctx *ctx;
	pthread_t th;
	struct io_uring ring;
	CUstream stream;

	pthread_mutex_t lock;		/* head, tail, stop */
	pthread_cond_t cond;
	struct p2pio_op *head, *tail;
	bool stop;

	/* Owned by the engine thread. */
	struct p2pio_bslot *slot_free;
	struct p2pio_bslot *copy_head, *copy_tail;
	struct p2pio_bio *bio_free;
	unsigned int nr_reads;
	unsigned int nr_slots;
	char *staging;
	struct p2pio_bslot *slots;
	struct p2pio_bio *bios;
};

static void p2pio_bio_prep(struct p2pio_bounce *b, struct p2pio_bio *bio)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);

	/* Never NULL: the ring has a slot per read and no more reads than that are issued. */
	io_uring_prep_read(sqe, bio->op->file->dfd, bio->to + bio->done,
			   (unsigned int)(bio->rlen - bio->done), bio->foff + bio->done);
	/*
	 * Always through io_uring's workers: synchronous block devices (zram, some virtual
	 * disks) would otherwise do every read inline in this one thread, one at a time; for
	 * NVMe it costs one worker wake-up per chunk.
	 */
	io_uring_sqe_set_flags(sqe, IOSQE_ASYNC);
	io_uring_sqe_set_data(sqe, bio);
	b->nr_reads++;
}

/* Hand out the next chunk of the oldest operation; false when nothing can start now. */
static bool p2pio_bounce_next(struct p2pio_bounce *b, struct p2pio_op **finished)
{
	struct p2pio_op *op = b->head;
	struct p2pio_bio *bio;
	struct p2pio_file *f;
	uint64_t chunk, foff, rlen, lo, hi;
	char *direct = NULL;

	if (!op || !b->bio_free)
		return false;
	f = op->file;
	chunk = p2pio_round_down(b->ctx->opts.chunk_size, f->dio_align);
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
	bio = b->bio_free;
	b->bio_free = bio->next;
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
	p2pio_op_get(op);
	op->cur += rlen;
	if (op->cur == op->end) {
		b->head = op->next;
		if (!b->head)
			b->tail = NULL;
		op->next = *finished;
		*finished = op;
	}
	p2pio_bio_prep(b, bio);
	return true;
}

static void p2pio_bslot_put(struct p2pio_bounce *b, struct p2pio_bslot *s)
{
	s->next = b->slot_free;
	b->slot_free = s;
}

static void p2pio_bio_put(struct p2pio_bounce *b, struct p2pio_bio *bio)
{
	bio->next = b->bio_free;
	b->bio_free = bio;
}

/* A read landed (or failed): copy its bytes out, resume a short read, or fail the op. */
static void p2pio_bounce_landed(struct p2pio_bounce *b, struct p2pio_bio *bio, int res)
{
	const struct p2pio_cuda *cu = b->ctx->cu;
	struct p2pio_op *op = bio->op;
	struct p2pio_bslot *s = bio->slot;
	uint64_t need = bio->hi - bio->foff, dst = op->dst + (bio->lo - op->off);
	int err = 0;
	CUresult cr;

	b->nr_reads--;
	if (res < 0) {
		err = res;
	} else {
		bio->done += (uint64_t)res;
		if (bio->done < need) {
			/* A short read that stopped on a block boundary may go on; else EOF. */
			if (res > 0 && bio->done % op->file->dio_align == 0) {
				p2pio_bio_prep(b, bio);
				return;
			}
			err = -ENODATA;
		}
	}
	if (err || atomic_load(&op->err) || !s) {
		p2pio_op_put(op, err, bio->done);
		if (s)
			p2pio_bslot_put(b, s);
		p2pio_bio_put(b, bio);
		return;
	}
	if (op->buf->host) {
		memcpy((char *)op->buf->host + dst, s->mem + (bio->lo - bio->foff),
		       bio->hi - bio->lo);
		p2pio_op_put(op, 0, bio->done);
		p2pio_bslot_put(b, s);
		p2pio_bio_put(b, bio);
		return;
	}
	cr = cu->MemcpyHtoDAsync(op->buf->addr + dst, s->mem + (bio->lo - bio->foff),
				 bio->hi - bio->lo, b->stream);
	if (cr == CUDA_SUCCESS)
		cr = cu->EventRecord(s->ev, b->stream);
	if (cr != CUDA_SUCCESS) {
		p2pio_op_put(op, p2pio_cuda_errno(cr), bio->done);
		p2pio_bslot_put(b, s);
		p2pio_bio_put(b, bio);
		return;
	}
	atomic_fetch_add(&op->bytes_read, bio->done);
	s->op = op;
	s->next = NULL;
	if (b->copy_tail)
		b->copy_tail->next = s;
	else
		b->copy_head = s;
	b->copy_tail = s;
	p2pio_bio_put(b, bio);
}

/* Retire finished copies in order; with @wait, block for the oldest. */
static bool p2pio_bounce_retire(struct p2pio_bounce *b, bool wait)
{
	const struct p2pio_cuda *cu = b->ctx->cu;
	struct p2pio_bslot *s;
	bool any = false;
	CUresult cr;

	while ((s = b->copy_head)) {
		cr = wait && !any ? cu->EventSynchronize(s->ev) : cu->EventQuery(s->ev);
		if (cr == CUDA_ERROR_NOT_READY)
			break;
		b->copy_head = s->next;
		if (!b->copy_head)
			b->copy_tail = NULL;
		p2pio_op_put(s->op, cr == CUDA_SUCCESS ? 0 : p2pio_cuda_errno(cr), 0);
		s->op = NULL;
		p2pio_bslot_put(b, s);
		any = true;
	}
	return any;
}

static void *p2pio_bounce_thread(void *arg)
{
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 100000 };
	struct p2pio_bounce *b = arg;
	struct p2pio_op *finished, *op;
	struct io_uring_cqe *cqe;
	bool progress;
	int ret;

	if (b->ctx->cu)
		b->ctx->cu->CtxSetCurrent(b->ctx->cuctx);
	for (;;) {
		progress = false;
		finished = NULL;
		pthread_mutex_lock(&b->lock);
		while (!b->head && !b->nr_reads && !b->copy_head && !b->stop)
			pthread_cond_wait(&b->cond, &b->lock);
		if (b->stop && !b->head && !b->nr_reads && !b->copy_head) {
			pthread_mutex_unlock(&b->lock);
			break;
		}
		while (p2pio_bounce_next(b, &finished))
			progress = true;
		pthread_mutex_unlock(&b->lock);
		/* New reads, and short reads resumed by p2pio_bounce_landed(). */
		if (io_uring_sq_ready(&b->ring))
			io_uring_submit(&b->ring);
		/* The path's references: dropped once the last chunk of each op is out. */
		while ((op = finished)) {
			finished = op->next;
			p2pio_op_put(op, 0, 0);
		}
		while (io_uring_peek_cqe(&b->ring, &cqe) == 0) {
			p2pio_bounce_landed(b, io_uring_cqe_get_data(cqe), cqe->res);
			io_uring_cqe_seen(&b->ring, cqe);
			progress = true;
		}
		if (b->copy_head && p2pio_bounce_retire(b, false))
			progress = true;
		if (progress)
			continue;
		if (b->nr_reads) {
			/* With copies pending, wake up now and then to retire them. */
			ret = b->copy_head ? io_uring_wait_cqe_timeout(&b->ring, &cqe, &ts) :
					     io_uring_wait_cqe(&b->ring, &cqe);
			(void)ret;
		} else if (b->copy_head) {
			p2pio_bounce_retire(b, true);
		}
	}
	return NULL;
}

static void p2pio_bounce_free(struct p2pio_bounce *b)
{
	struct p2pio_ctx *ctx = b->ctx;
	const struct p2pio_cuda *cu = ctx->cu;
	CUcontext prev = p2pio_ctx_enter(ctx);
	unsigned int i;

	if (cu) {
		for (i = 0; i < b->nr_slots; i++)
			if (b->slots[i].ev)
				cu->EventDestroy(b->slots[i].ev);
		if (b->stream)
			cu->StreamDestroy(b->stream);
	}
	p2pio_ctx_leave(ctx, prev);
	p2pio_staging_free(ctx, b->staging, ctx->opts.staging_bytes);
	io_uring_queue_exit(&b->ring);
	free(b->slots);
	free(b->bios);
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

static int p2pio_bounce_start(struct p2pio_ctx *ctx)
{
	const struct p2pio_ctx_opts *o = &ctx->opts;
	const struct p2pio_cuda *cu = ctx->cu;
	unsigned int i, nslots = (unsigned int)(o->staging_bytes / o->chunk_size);
	struct p2pio_bounce *b;
	CUresult cr = CUDA_SUCCESS;
	CUcontext prev;
	int ret;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->ctx = ctx;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	ret = io_uring_queue_init(o->queue_depth, &b->ring, 0);
	if (ret) {
		pthread_cond_destroy(&b->cond);
		pthread_mutex_destroy(&b->lock);
		free(b);
		return ret;
	}
	b->slots = calloc(nslots, sizeof(*b->slots));
	b->bios = calloc(o->queue_depth, sizeof(*b->bios));
	b->staging = p2pio_staging_alloc(ctx, o->staging_bytes);
	if (!b->slots || !b->bios || !b->staging) {
		ret = -ENOMEM;
		goto out_free;
	}
	b->nr_slots = nslots;
	for (i = 0; i < nslots; i++) {
		b->slots[i].mem = b->staging + (uint64_t)i * o->chunk_size;
		p2pio_bslot_put(b, &b->slots[nslots - 1 - i]);
	}
	for (i = 0; i < o->queue_depth; i++)
		p2pio_bio_put(b, &b->bios[i]);
	if (cu) {
		prev = p2pio_ctx_enter(ctx);
		cr = cu->StreamCreate(&b->stream, CU_STREAM_NON_BLOCKING);
		for (i = 0; i < nslots && cr == CUDA_SUCCESS; i++)
			cr = cu->EventCreate(&b->slots[i].ev, CU_EVENT_DISABLE_TIMING);
		p2pio_ctx_leave(ctx, prev);
		if (cr != CUDA_SUCCESS) {
			ret = p2pio_cuda_errno(cr);
			goto out_free;
		}
	}
	ret = -pthread_create(&b->th, NULL, p2pio_bounce_thread, b);
	if (ret)
		goto out_free;
	ctx->bounce = b;
	return 0;

out_free:
	p2pio_bounce_free(b);
	return ret;
}

int p2pio_bounce_submit(struct p2pio_ctx *ctx, struct p2pio_op *op)
{
	struct p2pio_bounce *b;
	uint32_t al = op->file->dio_align;
	int ret = 0;

	pthread_mutex_lock(&ctx->lock);
	if (!ctx->bounce)
		ret = p2pio_bounce_start(ctx);
	b = ctx->bounce;
	pthread_mutex_unlock(&ctx->lock);
	if (ret)
		return ret;
	op->cur = p2pio_round_down(op->off, al);
	op->end = p2pio_round_up(op->off + op->len, al);
	op->next = NULL;
	pthread_mutex_lock(&b->lock);
	if (b->tail)
		b->tail->next = op;
	else
		b->head = op;
	b->tail = op;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
	return 0;
}

void p2pio_bounce_stop(struct p2pio_ctx *ctx)
{
	struct p2pio_bounce *b = ctx->bounce;

	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->stop = true;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->th, NULL);
	ctx->bounce = NULL;
	p2pio_bounce_free(b);
}
