// SPDX-License-Identifier: MIT
/*
 * engine.c - read operations: validation, choice of path per read, completion (queues,
 * synchronous waiters, CUDA stream flags), statistics.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"

uint64_t p2pio_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- stream flags: a word in host-mapped memory per stream-ordered read ---------- */

static int p2pio_flags_init(struct p2pio_ctx *ctx)
{
	const struct p2pio_cuda *cu = ctx->cu;
	struct p2pio_flags *fl;
	CUresult res;
	void *host;
	unsigned int i;

	fl = calloc(1, sizeof(*fl));
	if (!fl)
		return -ENOMEM;
	res = cu->MemHostAlloc(&host, P2PIO_NR_FLAGS * sizeof(uint32_t),
			       CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP);
	if (res == CUDA_SUCCESS) {
		res = cu->MemHostGetDevicePointer(&fl->dev, host, 0);
		if (res != CUDA_SUCCESS)
			cu->MemFreeHost(host);
	}
	if (res != CUDA_SUCCESS) {
		free(fl);
		return p2pio_cuda_errno(res);
	}
	fl->host = host;
	memset(fl->host, 0, P2PIO_NR_FLAGS * sizeof(uint32_t));
	for (i = 0; i < P2PIO_NR_FLAGS; i++)
		fl->free[i] = (uint16_t)(P2PIO_NR_FLAGS - 1 - i);
	fl->nr_free = P2PIO_NR_FLAGS;
	ctx->flags = fl;
	return 0;
}

/*
 * Make @stream wait until @op completes: the stream waits for the slot's word to reach a
 * new value (a cyclic >= comparison, so reusing a slot never releases an old waiter
 * early or holds it back), and completion writes that value from the CPU.
 */
static int p2pio_flag_arm(struct p2pio_op *op, void *stream)
{
	struct p2pio_ctx *ctx = op->ctx;
	struct p2pio_flags *fl;
	CUcontext prev;
	CUresult res;
	int ret = 0, slot;

	prev = p2pio_ctx_enter(ctx);
	pthread_mutex_lock(&ctx->lock);
	if (!ctx->flags)
		ret = p2pio_flags_init(ctx);
	fl = ctx->flags;
	if (!ret && !fl->nr_free)
		ret = -EAGAIN;
	if (ret) {
		pthread_mutex_unlock(&ctx->lock);
		goto out;
	}
	slot = fl->free[--fl->nr_free];
	op->flag_slot = slot;
	op->flag_val = ++fl->seq[slot];
	pthread_mutex_unlock(&ctx->lock);

	res = ctx->cu->StreamWaitValue32((CUstream)stream, fl->dev + (CUdeviceptr)slot * 4,
					 op->flag_val, CU_STREAM_WAIT_VALUE_GEQ);
	if (res != CUDA_SUCCESS) {
		pthread_mutex_lock(&ctx->lock);
		fl->free[fl->nr_free++] = (uint16_t)slot;
		pthread_mutex_unlock(&ctx->lock);
		op->flag_slot = -1;
		ret = p2pio_cuda_errno(res);
	}
out:
	p2pio_ctx_leave(ctx, prev);
	return ret;
}

static void p2pio_flag_release(struct p2pio_op *op)
{
	struct p2pio_ctx *ctx = op->ctx;
	struct p2pio_flags *fl = ctx->flags;

	/* The data is in place (paths complete only after it is): let the stream go. */
	__atomic_store_n(&fl->host[op->flag_slot], op->flag_val, __ATOMIC_RELEASE);
	pthread_mutex_lock(&ctx->lock);
	fl->free[fl->nr_free++] = (uint16_t)op->flag_slot;
	pthread_mutex_unlock(&ctx->lock);
	op->flag_slot = -1;
}

/* ---- completion ------------------------------------------------------------------ */

static void p2pio_stats_add(struct p2pio_path_stats *s, const struct p2pio_op *op, int err,
			    uint64_t lat)
{
	s->requests++;
	if (err)
		s->errors++;
	else
		s->bytes += op->len;
	s->bytes_read += atomic_load(&op->bytes_read);
	s->latency_ns += lat;
}

static void p2pio_op_complete(struct p2pio_op *op)
{
	struct p2pio_ctx *ctx = op->ctx;
	struct p2pio_queue *q = op->q;
	uint64_t now = p2pio_now_ns(), lat = now - op->t_submit, one = 1;
	int err = atomic_load(&op->err);

	pthread_mutex_lock(&ctx->stats_lock);
	p2pio_stats_add(&ctx->stats.path[op->path], op, err, lat);
	p2pio_stats_add(&ctx->stats.path[P2PIO_PATH_AUTO], op, err, lat);
	pthread_mutex_unlock(&ctx->stats_lock);
	op->t_submit = lat;	/* from now on: the latency */
	op->t_done = now;

	if (op->flag_slot >= 0)
		p2pio_flag_release(op);

	if (op->sync) {
		pthread_mutex_lock(&op->sync->lock);
		op->sync->op = op;
		op->sync->done = true;
		pthread_cond_signal(&op->sync->cond);
		pthread_mutex_unlock(&op->sync->lock);
		return;
	}
	pthread_mutex_lock(&q->lock);
	op->next = NULL;
	if (q->done_tail)
		q->done_tail->next = op;
	else
		q->done_head = op;
	q->done_tail = op;
	q->nr_done++;
	/* Under q->lock, so the eventfd is readable exactly while the done list is not empty. */
	if (write(q->efd, &one, sizeof(one)) < 0) {
		/* An eventfd write fails only on counter overflow, which cannot happen here. */
	}
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void p2pio_op_get(struct p2pio_op *op)
{
	atomic_fetch_add(&op->pending, 1);
}

/* A chunk of @op was read (its bytes in staging or in place): the latest such time. */
void p2pio_op_landed(struct p2pio_op *op)
{
	uint_fast64_t now = p2pio_now_ns(), seen = atomic_load(&op->t_landed);

	while (seen < now && !atomic_compare_exchange_weak(&op->t_landed, &seen, now))
		;
}

void p2pio_op_put(struct p2pio_op *op, int err, uint64_t bytes_read)
{
	int none = 0;

	if (err)
		atomic_compare_exchange_strong(&op->err, &none, err);
	if (bytes_read)
		atomic_fetch_add(&op->bytes_read, bytes_read);
	if (atomic_fetch_sub(&op->pending, 1) == 1)
		p2pio_op_complete(op);
}

/* ---- submission ------------------------------------------------------------------ */

static int p2pio_req_check(struct p2pio_ctx *ctx, const struct p2pio_req *r)
{
	uint64_t end;

	if (!r->file || !r->buf || r->file->ctx != ctx || r->buf->ctx != ctx || r->reserved ||
	    r->flags & ~(P2PIO_REQ_STREAM | P2PIO_REQ_URGENT))
		return -EINVAL;
	if (p2pio_add_overflow(r->buf_offset, r->length, &end) || end > r->buf->len)
		return -EINVAL;
	if (p2pio_add_overflow(r->file_offset, r->length, &end) || end > r->file->size)
		return -ENODATA;
	if (r->flags & P2PIO_REQ_STREAM && !ctx->cu)
		return -ENODEV;
	return 0;
}

/*
 * The path this read takes: the file's, unless the read rules that one out; then the
 * path's fallback, and so on.
 */
static const struct p2pio_path_ops *p2pio_op_path(struct p2pio_op *op)
{
	const struct p2pio_path_ops *ops = p2pio_path_ops(op->file->path);
	char why[P2PIO_REASON_LEN];

	while (ops->op_ok) {
		why[0] = '\0';
		if (ops->op_ok(op, why, sizeof(why)))
			break;
		if (why[0])
			p2pio_file_note(op->file, ops->id, "%s", why);
		ops = p2pio_path_ops(ops->fallback);
	}
	return ops;
}

/*
 * A new operation for @r, its path chosen and started: handed to the caller through @opp
 * with @opsp and @privp to submit it, or completed already (a zero length, a path that
 * cannot start: *@opp NULL). Return 0, or -errno when nothing was made.
 */
static int p2pio_op_prepare(struct p2pio_ctx *ctx, const struct p2pio_req *r,
			    struct p2pio_queue *q, struct p2pio_sync *sync, struct p2pio_op **opp,
			    const struct p2pio_path_ops **opsp, void **privp)
{
	const struct p2pio_path_ops *ops;
	struct p2pio_op *op;
	void *priv;
	int ret;

	*opp = NULL;
	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->ctx = ctx;
	op->file = r->file;
	op->buf = r->buf;
	op->off = r->file_offset;
	op->len = r->length;
	op->dst = r->buf_offset;
	op->tag = r->tag;
	op->q = q;
	op->sync = sync;
	op->flag_slot = -1;
	op->urgent = r->flags & P2PIO_REQ_URGENT;
	op->t_submit = p2pio_now_ns();
	atomic_init(&op->pending, 1);
	atomic_init(&op->err, 0);
	atomic_init(&op->bytes_read, 0);
	atomic_init(&op->t_taken, 0);
	atomic_init(&op->t_landed, 0);
	if (r->flags & P2PIO_REQ_STREAM) {
		ret = p2pio_flag_arm(op, r->stream);
		if (ret) {
			free(op);
			return ret;
		}
	}
	ops = p2pio_op_path(op);
	op->path = ops->id;
	if (!op->len) {
		p2pio_op_put(op, 0, 0);
		return 0;
	}
	/* The path holds the first reference; a path that cannot start fails the read. */
	ret = p2pio_path_start(ctx, ops, &priv);
	if (ret) {
		p2pio_op_put(op, ret, 0);
		return 0;
	}
	*opp = op;
	*opsp = ops;
	*privp = priv;
	return 0;
}

/* Hand a prepared @op to its path; a path that refuses it fails the read. */
static void p2pio_op_submit(const struct p2pio_path_ops *ops, void *priv, struct p2pio_op *op)
{
	int err = ops->submit(priv, op);

	if (err)
		p2pio_op_put(op, err, 0);
}

static int p2pio_op_start(struct p2pio_ctx *ctx, const struct p2pio_req *r,
			  struct p2pio_queue *q, struct p2pio_sync *sync)
{
	const struct p2pio_path_ops *ops;
	struct p2pio_op *op;
	void *priv;
	int ret;

	ret = p2pio_op_prepare(ctx, r, q, sync, &op, &ops, &priv);
	if (!ret && op)
		p2pio_op_submit(ops, priv, op);
	return ret;
}

/* Reads submitted together at most; a path with submit_many gets them in one call. */
#define P2PIO_SUBMIT_BATCH 64

/*
 * Requests [@i, @i + @nr) of one p2pio_submit(), all valid and counted in flight: made
 * into operations and handed to their paths, consecutive ones for the same path in one
 * submit_many(). Return 0, or the -errno of the first request that could not be made
 * (the ones before it are submitted; the caller uncounts it and the rest).
 */
static int p2pio_submit_batch(struct p2pio_queue *q, const struct p2pio_req *reqs,
			      unsigned int nr, unsigned int *made)
{
	struct p2pio_op *ops_v[P2PIO_SUBMIT_BATCH];
	const struct p2pio_path_ops *path_v[P2PIO_SUBMIT_BATCH];
	void *priv_v[P2PIO_SUBMIT_BATCH];
	unsigned int n = 0, i, j, k;
	int ret = 0;

	for (i = 0; i < nr; i++) {
		ret = p2pio_op_prepare(q->ctx, &reqs[i], q, NULL, &ops_v[n], &path_v[n], &priv_v[n]);
		if (ret)
			break;
		if (ops_v[n])
			n++;
	}
	*made = i;
	for (j = 0; j < n; j = k) {
		int err;

		for (k = j + 1; k < n && path_v[k] == path_v[j] && priv_v[k] == priv_v[j]; k++)
			;
		if (path_v[j]->submit_many && k - j > 1) {
			err = path_v[j]->submit_many(priv_v[j], &ops_v[j], k - j);
			while (err && j < k)
				p2pio_op_put(ops_v[j++], err, 0);
			continue;
		}
		for (; j < k; j++)
			p2pio_op_submit(path_v[j], priv_v[j], ops_v[j]);
	}
	return ret;
}

static void p2pio_wait_account(struct p2pio_ctx *ctx, uint64_t t0)
{
	uint64_t dt = p2pio_now_ns() - t0;

	pthread_mutex_lock(&ctx->stats_lock);
	ctx->stats.waits++;
	ctx->stats.wait_ns += dt;
	pthread_mutex_unlock(&ctx->stats_lock);
}

int p2pio_read(struct p2pio_file *file, uint64_t off, uint64_t len, struct p2pio_buf *buf,
	       uint64_t buf_off)
{
	struct p2pio_req r = {
		.file = file, .file_offset = off, .length = len, .buf = buf, .buf_offset = buf_off,
	};
	struct p2pio_sync sync = { .done = false };
	struct p2pio_ctx *ctx;
	struct p2pio_op *op;
	uint64_t t0;
	int ret;

	if (!file)
		return -EINVAL;
	ctx = file->ctx;
	ret = p2pio_req_check(ctx, &r);
	if (ret)
		return ret;
	pthread_mutex_init(&sync.lock, NULL);
	pthread_cond_init(&sync.cond, NULL);
	ret = p2pio_op_start(ctx, &r, NULL, &sync);
	if (ret)
		goto out;
	t0 = p2pio_now_ns();
	pthread_mutex_lock(&sync.lock);
	while (!sync.done)
		pthread_cond_wait(&sync.cond, &sync.lock);
	pthread_mutex_unlock(&sync.lock);
	p2pio_wait_account(ctx, t0);
	op = sync.op;
	ret = atomic_load(&op->err);
	free(op);
out:
	pthread_cond_destroy(&sync.cond);
	pthread_mutex_destroy(&sync.lock);
	return ret;
}

int p2pio_queue_create(struct p2pio_ctx *ctx, struct p2pio_queue **qp)
{
	struct p2pio_queue *q;

	*qp = NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->efd < 0) {
		free(q);
		return -errno;
	}
	q->ctx = ctx;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	*qp = q;
	return 0;
}

void p2pio_queue_destroy(struct p2pio_queue *q)
{
	struct p2pio_op *op;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	while (q->nr_done < q->inflight)
		pthread_cond_wait(&q->cond, &q->lock);
	pthread_mutex_unlock(&q->lock);
	while ((op = q->done_head)) {
		q->done_head = op->next;
		free(op);
	}
	close(q->efd);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

int p2pio_queue_fd(const struct p2pio_queue *q)
{
	return q->efd;
}

unsigned int p2pio_inflight(const struct p2pio_queue *q)
{
	return q->inflight;
}

int p2pio_submit(struct p2pio_queue *q, const struct p2pio_req *reqs, unsigned int nr)
{
	unsigned int i;
	int ret;

	if (!q || (!reqs && nr))
		return -EINVAL;
	for (i = 0; i < nr;) {
		unsigned int n, made;

		/* The valid requests ahead, up to a batch. */
		for (n = 0; i + n < nr && n < P2PIO_SUBMIT_BATCH; n++) {
			ret = p2pio_req_check(q->ctx, &reqs[i + n]);
			if (ret)
				break;
		}
		if (!n)
			return i ? (int)i : ret;
		/* Counted first: a read may complete before its submission returns. */
		pthread_mutex_lock(&q->lock);
		q->inflight += n;
		pthread_mutex_unlock(&q->lock);
		ret = p2pio_submit_batch(q, &reqs[i], n, &made);
		if (made < n) {
			pthread_mutex_lock(&q->lock);
			q->inflight -= n - made;
			pthread_mutex_unlock(&q->lock);
		}
		i += made;
		if (ret)
			return i ? (int)i : ret;
	}
	return (int)nr;
}

int p2pio_cancel(struct p2pio_queue *q, uint64_t tag, unsigned int n)
{
	const struct p2pio_path_ops *const *ops;
	struct p2pio_op *op, *next;
	unsigned int got = 0;
	void *priv;

	if (!q || !n)
		return -EINVAL;
	/* A load's reads all take one path here: the file's, or all its fallback. */
	for (ops = p2pio_paths; *ops && !got; ops++) {
		priv = (*ops)->withdraw ? p2pio_path_priv(q->ctx, *ops) : NULL;
		if (priv)
			got = (*ops)->withdraw(priv, q, tag, n, &op);
	}
	if (!got)
		return 0;
	for (; op; op = next) {
		next = op->next;
		/* A stream that waits on it goes on, as for a failed read. */
		if (op->flag_slot >= 0)
			p2pio_flag_release(op);
		free(op);
	}
	pthread_mutex_lock(&q->lock);
	q->inflight -= got;
	/* A reaper waiting for completions that will not come now counts again. */
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return (int)got;
}

int p2pio_hasten(struct p2pio_queue *q, uint64_t tag)
{
	const struct p2pio_path_ops *const *ops;
	unsigned int got = 0;
	void *priv;

	if (!q)
		return -EINVAL;
	/* Unlike a withdrawal, every path is asked: a load's reads may have fallen back. */
	for (ops = p2pio_paths; *ops; ops++) {
		priv = (*ops)->hasten ? p2pio_path_priv(q->ctx, *ops) : NULL;
		if (priv)
			got += (*ops)->hasten(priv, q, tag);
	}
	return (int)got;
}

int p2pio_complete(struct p2pio_queue *q, struct p2pio_cqe *cqes, unsigned int max,
		   unsigned int min, int timeout_ms)
{
	return p2pio_complete_phases(q, cqes, NULL, max, min, timeout_ms);
}

int p2pio_complete_phases(struct p2pio_queue *q, struct p2pio_cqe *cqes,
			  struct p2pio_cqe_phases *ph, unsigned int max, unsigned int min,
			  int timeout_ms)
{
	struct timespec dl;
	struct p2pio_op *op;
	unsigned int n = 0;
	uint64_t t0 = 0, cnt;
	bool waited = false;
	int ret = 0;

	if (!q || (!cqes && max) || min > max)
		return -EINVAL;
	if (timeout_ms >= 0) {
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += timeout_ms / 1000;
		dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&q->lock);
	/* Wait only for completions that can still come: min is capped at what is in flight. */
	while (q->nr_done < min && q->nr_done < q->inflight && !ret) {
		if (!waited) {
			waited = true;
			t0 = p2pio_now_ns();
		}
		if (timeout_ms < 0)
			pthread_cond_wait(&q->cond, &q->lock);
		else
			ret = pthread_cond_timedwait(&q->cond, &q->lock, &dl);
	}
	while (n < max && (op = q->done_head)) {
		q->done_head = op->next;
		if (!q->done_head)
			q->done_tail = NULL;
		cqes[n].tag = op->tag;
		cqes[n].res = atomic_load(&op->err);
		cqes[n].path = op->path;
		cqes[n].bytes = cqes[n].res ? 0 : op->len;
		cqes[n].latency_ns = op->t_submit;
		if (ph)
			ph[n] = (struct p2pio_cqe_phases){
				.taken_ns = atomic_load(&op->t_taken),
				.landed_ns = atomic_load(&op->t_landed),
				.done_ns = op->t_done,
			};
		free(op);
		n++;
	}
	q->inflight -= n;
	q->nr_done -= n;
	if (!q->done_head && read(q->efd, &cnt, sizeof(cnt)) < 0) {
		/* EAGAIN: the counter was already zero. */
	}
	pthread_mutex_unlock(&q->lock);
	if (waited)
		p2pio_wait_account(q->ctx, t0);
	return (int)n;
}
