// SPDX-License-Identifier: MIT
/*
 * posix.c - the POSIX path: buffered pread() by a pool of threads.
 *
 * Each thread takes the next chunk of the oldest operation. Host destinations are read
 * into directly. Device destinations go through two pinned staging buffers per thread:
 * while one is copied to the GPU (asynchronously, on the thread's stream), the next chunk
 * is read into the other.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/engine.h"

struct p2pio_pslot {
	void *mem;
	CUevent ev;
	struct p2pio_op *op;		/* copy in flight for this op, or NULL */
	uint64_t n;
};

struct p2pio_pworker {
	struct p2pio_posix *px;
	pthread_t th;
	bool started;
	CUstream stream;
	struct p2pio_pslot slot[2];
	unsigned int cur;
};

struct p2pio_posix {
	struct p2pio_ctx *ctx;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct p2pio_opq q;		/* operations with chunks left to hand out */
	bool stop;
	unsigned int nr;
	struct p2pio_pworker w[];
};

/* pread() all of [off, off + n) into @dst; -ENODATA if the file ends first. */
static int p2pio_pread_full(int fd, char *dst, uint64_t n, uint64_t off)
{
	ssize_t r;

	while (n) {
		r = pread(fd, dst, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!r)
			return -ENODATA;
		dst += r;
		off += (uint64_t)r;
		n -= (uint64_t)r;
	}
	return 0;
}

static void p2pio_pslot_retire(struct p2pio_pworker *w, struct p2pio_pslot *s)
{
	const struct p2pio_cuda *cu = w->px->ctx->cu;
	CUresult res;

	if (!s->op)
		return;
	res = cu->EventSynchronize(s->ev);
	p2pio_op_put(s->op, res == CUDA_SUCCESS ? 0 : p2pio_cuda_errno(res), 0);
	s->op = NULL;
}

/*
 * Retire @s if its copy has finished, so that its operation completes (and the caller
 * can queue the next read) without waiting for this thread's next chunk.
 */
static void p2pio_pslot_poll(struct p2pio_pworker *w, struct p2pio_pslot *s)
{
	if (s->op && w->px->ctx->cu->EventQuery(s->ev) != CUDA_ERROR_NOT_READY)
		p2pio_pslot_retire(w, s);
}

static void p2pio_posix_chunk(struct p2pio_pworker *w, struct p2pio_op *op, uint64_t off,
			      uint64_t n)
{
	const struct p2pio_cuda *cu = w->px->ctx->cu;
	uint64_t dst = op->dst + (off - op->off);
	struct p2pio_pslot *s;
	CUresult res;
	int ret;

	/* After the first failure the rest of the read is skipped, not read. */
	if (atomic_load(&op->err)) {
		p2pio_op_put(op, 0, 0);
		return;
	}
	if (op->buf->host) {
		ret = p2pio_pread_full(op->file->fd, (char *)op->buf->host + dst, n, off);
		if (!ret)
			p2pio_op_landed(op);
		p2pio_op_put(op, ret, ret ? 0 : n);
		return;
	}
	s = &w->slot[w->cur];
	w->cur ^= 1;
	p2pio_pslot_retire(w, s);
	ret = p2pio_pread_full(op->file->fd, s->mem, n, off);
	if (ret) {
		p2pio_op_put(op, ret, 0);
		return;
	}
	p2pio_op_landed(op);
	res = cu->MemcpyHtoDAsync(op->buf->addr + dst, s->mem, n, w->stream);
	if (res == CUDA_SUCCESS)
		res = cu->EventRecord(s->ev, w->stream);
	if (res != CUDA_SUCCESS) {
		p2pio_op_put(op, p2pio_cuda_errno(res), n);
		return;
	}
	atomic_fetch_add(&op->bytes_read, n);
	s->op = op;
	s->n = n;
	p2pio_pslot_poll(w, &w->slot[w->cur]);
}

static void *p2pio_posix_thread(void *arg)
{
	struct p2pio_pworker *w = arg;
	struct p2pio_posix *px = w->px;
	struct p2pio_op *op, *last;
	uint64_t off, n;
	bool urgent;

	if (px->ctx->cu)
		px->ctx->cu->CtxSetCurrent(px->ctx->cuctx);
	pthread_mutex_lock(&px->lock);
	for (;;) {
		op = p2pio_opq_next(&px->q);
		if (!op) {
			/* Idle: finish the copies in flight before sleeping or leaving. */
			if (w->slot[0].op || w->slot[1].op) {
				pthread_mutex_unlock(&px->lock);
				p2pio_pslot_retire(w, &w->slot[w->cur]);
				p2pio_pslot_retire(w, &w->slot[w->cur ^ 1]);
				pthread_mutex_lock(&px->lock);
				continue;
			}
			/* Plain reads held back (P2PIO_CTX_URGENT_ALONE) are still work to do. */
			if (px->stop && !px->q.head)
				break;
			pthread_cond_wait(&px->cond, &px->lock);
			continue;
		}
		off = op->cur;
		n = op->end - off < px->ctx->opts.chunk_size ? op->end - off :
							       px->ctx->opts.chunk_size;
		op->cur += n;
		urgent = p2pio_opq_piece_out(&px->q, op);
		p2pio_op_get(op);
		last = NULL;
		if (op->cur == op->end) {
			atomic_store(&op->t_taken, p2pio_now_ns());
			p2pio_opq_pop(&px->q);
			last = op;
		}
		pthread_mutex_unlock(&px->lock);
		if (last)
			p2pio_op_put(last, 0, 0);	/* the path's reference */
		p2pio_posix_chunk(w, op, off, n);
		pthread_mutex_lock(&px->lock);
		/* The last urgent piece read: plain ones may start again. */
		if (p2pio_opq_piece_read(&px->q, urgent))
			pthread_cond_broadcast(&px->cond);
	}
	pthread_mutex_unlock(&px->lock);
	return NULL;
}

static void p2pio_posix_free(struct p2pio_posix *px)
{
	struct p2pio_ctx *ctx = px->ctx;
	const struct p2pio_cuda *cu = ctx->cu;
	CUcontext prev = p2pio_ctx_enter(ctx);
	unsigned int i, j;

	for (i = 0; i < px->nr; i++) {
		struct p2pio_pworker *w = &px->w[i];

		for (j = 0; j < 2; j++) {
			p2pio_staging_free(ctx, w->slot[j].mem, ctx->opts.chunk_size);
			if (w->slot[j].ev)
				cu->EventDestroy(w->slot[j].ev);
		}
		if (w->stream)
			cu->StreamDestroy(w->stream);
	}
	p2pio_ctx_leave(ctx, prev);
	pthread_cond_destroy(&px->cond);
	pthread_mutex_destroy(&px->lock);
	free(px);
}

static void p2pio_posix_stop(void *priv);

static int p2pio_posix_start(struct p2pio_ctx *ctx, void **privp)
{
	const struct p2pio_cuda *cu = ctx->cu;
	unsigned int i, j, nr = ctx->opts.posix_threads;
	struct p2pio_posix *px;
	CUcontext prev;
	CUresult res = CUDA_SUCCESS;
	int ret = 0;

	px = calloc(1, sizeof(*px) + nr * sizeof(px->w[0]));
	if (!px)
		return -ENOMEM;
	px->ctx = ctx;
	px->nr = nr;
	px->q.urgent_alone = ctx->opts.flags & P2PIO_CTX_URGENT_ALONE;
	pthread_mutex_init(&px->lock, NULL);
	pthread_cond_init(&px->cond, NULL);
	if (cu) {
		prev = p2pio_ctx_enter(ctx);
		for (i = 0; i < nr && res == CUDA_SUCCESS; i++) {
			struct p2pio_pworker *w = &px->w[i];

			res = cu->StreamCreate(&w->stream, CU_STREAM_NON_BLOCKING);
			for (j = 0; j < 2 && res == CUDA_SUCCESS; j++) {
				res = cu->EventCreate(&w->slot[j].ev, P2PIO_COPY_EVENT_FLAGS);
				w->slot[j].mem = p2pio_staging_alloc(ctx, ctx->opts.chunk_size);
				if (res == CUDA_SUCCESS && !w->slot[j].mem)
					ret = -ENOMEM;
			}
			if (ret)
				break;
		}
		p2pio_ctx_leave(ctx, prev);
		if (res != CUDA_SUCCESS)
			ret = p2pio_cuda_errno(res);
		if (ret) {
			p2pio_posix_free(px);
			return ret;
		}
	}
	for (i = 0; i < nr; i++) {
		px->w[i].px = px;
		ret = -pthread_create(&px->w[i].th, NULL, p2pio_posix_thread, &px->w[i]);
		if (ret)
			break;
		px->w[i].started = true;
	}
	if (ret) {
		p2pio_posix_stop(px);
		return ret;
	}
	*privp = px;
	return 0;
}

/* Queued together under one lock: an urgent read of the batch goes ahead of all of it. */
static int p2pio_posix_submit_many(void *priv, struct p2pio_op **ops, unsigned int n)
{
	struct p2pio_posix *px = priv;
	unsigned int i;

	for (i = 0; i < n; i++) {
		ops[i]->cur = ops[i]->off;
		ops[i]->end = ops[i]->off + ops[i]->len;
	}
	pthread_mutex_lock(&px->lock);
	for (i = 0; i < n; i++)
		p2pio_opq_push(&px->q, ops[i]);
	pthread_cond_broadcast(&px->cond);
	pthread_mutex_unlock(&px->lock);
	return 0;
}

static int p2pio_posix_submit(void *priv, struct p2pio_op *op)
{
	return p2pio_posix_submit_many(priv, &op, 1);
}

static unsigned int p2pio_posix_withdraw(void *priv, const struct p2pio_queue *q, uint64_t tag,
					 unsigned int n, struct p2pio_op **out)
{
	struct p2pio_posix *px = priv;
	unsigned int got;

	pthread_mutex_lock(&px->lock);
	got = p2pio_opq_withdraw(&px->q, q, tag, n, out);
	pthread_mutex_unlock(&px->lock);
	return got;
}

static unsigned int p2pio_posix_hasten(void *priv, const struct p2pio_queue *q, uint64_t tag)
{
	struct p2pio_posix *px = priv;
	unsigned int got;
	bool released;

	pthread_mutex_lock(&px->lock);
	got = p2pio_opq_hasten(&px->q, q, tag, &released);
	if (released)
		pthread_cond_broadcast(&px->cond);
	pthread_mutex_unlock(&px->lock);
	return got;
}

static void p2pio_posix_stop(void *priv)
{
	struct p2pio_posix *px = priv;
	unsigned int i;

	pthread_mutex_lock(&px->lock);
	px->stop = true;
	pthread_cond_broadcast(&px->cond);
	pthread_mutex_unlock(&px->lock);
	for (i = 0; i < px->nr; i++)
		if (px->w[i].started)
			pthread_join(px->w[i].th, NULL);
	p2pio_posix_free(px);
}

/* Buffered reads work on every file and into every buffer: no checks, no fallback. */
const struct p2pio_path_ops p2pio_posix_ops = {
	.id = P2PIO_PATH_POSIX,
	.name = "posix",
	.auto_why = "AUTO: buffered reads work everywhere",
	.fallback = P2PIO_PATH_AUTO,
	.start = p2pio_posix_start,
	.stop = p2pio_posix_stop,
	.submit = p2pio_posix_submit,
	.submit_many = p2pio_posix_submit_many,
	.withdraw = p2pio_posix_withdraw,
	.hasten = p2pio_posix_hasten,
};
