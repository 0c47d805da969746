// SPDX-License-Identifier: MIT
/*
 * ctx.c - contexts: options, the CUDA device and its primary context, staging memory,
 * statistics.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/engine.h"

const char *p2pio_path_name(enum p2pio_path path)
{
	const struct p2pio_path_ops *ops;

	if (path == P2PIO_PATH_AUTO)
		return "auto";
	ops = p2pio_path_ops(path);
	return ops ? ops->name : "?";
}

void p2pio_ctx_opts_init(struct p2pio_ctx_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->size = sizeof(*opts);
	opts->device = p2pio_cuda_get(NULL, 0) ? 0 : P2PIO_DEVICE_HOST;
	opts->path = P2PIO_PATH_AUTO;
}

static uint32_t p2pio_threads_within(long n)
{
	return n < P2PIO_DEF_THREADS_MIN ? P2PIO_DEF_THREADS_MIN :
	       n > P2PIO_DEF_THREADS_MAX ? P2PIO_DEF_THREADS_MAX : (uint32_t)n;
}

void p2pio_threads_resolve(struct p2pio_ctx_opts *o, long ncpu)
{
	if (!o->posix_threads)
		o->posix_threads = o->threads ? o->threads : p2pio_threads_within(ncpu);
	if (!o->threads)
		o->threads = p2pio_threads_within(ncpu * P2PIO_DEF_BOUNCE_RINGS_NUM /
						  P2PIO_DEF_BOUNCE_RINGS_DEN);
}

/*
 * Copy the caller's options, as much of them as its struct has; zeros mean defaults.
 * *@depth_default: the queue depth is the library's (a file may then get a smaller one).
 */
static int p2pio_opts_resolve(const struct p2pio_ctx_opts *in, struct p2pio_ctx_opts *o,
			      bool *depth_default, struct p2pio_error *err)
{
	uint64_t staging, bthreads, bdepth;
	size_t n;

	p2pio_ctx_opts_init(o);
	if (in) {
		if (in->size < offsetof(struct p2pio_ctx_opts, queue_depth))
			return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
					       "options: size %zu is too small", in->size);
		n = in->size < sizeof(*o) ? in->size : sizeof(*o);
		memcpy(o, in, n);
		o->size = sizeof(*o);
	}
	if ((unsigned int)o->path >= P2PIO_PATH_NR)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "options: path %d unknown",
				       (int)o->path);
	if (o->device < P2PIO_DEVICE_HOST)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "options: device %d is not an ordinal", o->device);
	if (o->flags & ~(P2PIO_CTX_NO_WARM_CHECK | P2PIO_CTX_BOUNCE_ASYNC | P2PIO_CTX_POLL |
			  P2PIO_CTX_URGENT_ALONE) || o->reserved || o->reserved2)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "options: unknown flags 0x%x", o->flags);
	*depth_default = !o->queue_depth;
	if (!o->queue_depth)
		o->queue_depth = P2PIO_DEF_QUEUE_DEPTH;
	/*
	 * One POSIX reader per CPU, into a GPU too, and the caller's thread count where it
	 * set one. Session 18 capped a GPU context's readers at 8 on one unpaired H100
	 * sample (warm 8B loads 50.5 GB/s against 45.6 with 16); session 19's paired rounds
	 * on an H100 (interleaved, 2-7 rounds each; Documentation/engine.md, "POSIX readers
	 * into a GPU") had 16 readers at or above 8 every time (medians 49.4-51.6 against
	 * 43.4-48.6 GB/s; 8's slowest load of each set 38-45) and 10 and 12 within 1 % of 16:
	 * the cap went. BOUNCE's rings are fewer (engine.h says why).
	 */
	p2pio_threads_resolve(o, sysconf(_SC_NPROCESSORS_ONLN));
	if (!o->chunk_size)
		o->chunk_size = P2PIO_DEF_CHUNK;
	if (!o->pin_window)
		o->pin_window = P2PIO_DEF_PIN_WINDOW;
	if (o->queue_depth > P2PIO_MAX_QUEUE_DEPTH || o->threads > P2PIO_MAX_THREADS ||
	    o->posix_threads > P2PIO_MAX_THREADS)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "options: queue depth %u / threads %u / POSIX threads %u above %u / %u",
				       o->queue_depth, o->threads, o->posix_threads,
				       P2PIO_MAX_QUEUE_DEPTH, P2PIO_MAX_THREADS);
	if (o->chunk_size < P2PIO_MIN_CHUNK || o->chunk_size > P2PIO_MAX_CHUNK ||
	    o->chunk_size % 4096)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "options: chunk size %llu must be a 4 KiB multiple in [64 KiB, 1 GiB]",
				       (unsigned long long)o->chunk_size);
	if (o->pin_window % (64 << 10))
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "options: pin window %llu is not a 64 KiB multiple",
				       (unsigned long long)o->pin_window);
	if (!o->staging_bytes) {
		/*
		 * Each BOUNCE thread's share of the reads in flight, plus one slot each whose
		 * copy to the GPU runs while the thread's next read does.
		 */
		bthreads = o->threads < o->queue_depth ? o->threads : o->queue_depth;
		bdepth = (o->queue_depth + bthreads - 1) / bthreads;
		o->staging_bytes = P2PIO_DEF_STAGING;
		if (o->staging_bytes < (uint64_t)bthreads * (bdepth + 1) * o->chunk_size)
			o->staging_bytes = (uint64_t)bthreads * (bdepth + 1) * o->chunk_size;
		if (o->staging_bytes < (o->queue_depth + 2) * o->chunk_size)
			o->staging_bytes = (o->queue_depth + 2) * o->chunk_size;
	}
	staging = o->staging_bytes;
	o->staging_bytes = p2pio_round_down(o->staging_bytes, o->chunk_size);
	if (o->staging_bytes > P2PIO_MAX_STAGING ||
	    o->staging_bytes < (o->queue_depth + 2) * o->chunk_size)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "options: staging %llu bytes must hold queue depth + 2 = %u chunks and stay under 64 GiB",
				       (unsigned long long)staging, o->queue_depth + 2);
	return 0;
}

static int p2pio_ctx_cuda_init(struct p2pio_ctx *ctx, struct p2pio_error *err)
{
	char why[160];
	CUresult res;

	ctx->cu = p2pio_cuda_get(why, sizeof(why));
	if (!ctx->cu)
		return p2pio_set_error(err, -ENODEV, P2PIO_NO_OFFSET,
				       "CUDA device %d not usable: %s", ctx->opts.device, why);
	res = ctx->cu->DeviceGet(&ctx->dev, ctx->opts.device);
	if (res == CUDA_SUCCESS)
		res = ctx->cu->DevicePrimaryCtxRetain(&ctx->cuctx, ctx->dev);
	if (res != CUDA_SUCCESS) {
		ctx->cu = NULL;
		return p2pio_set_error(err, p2pio_cuda_errno(res), P2PIO_NO_OFFSET,
				       "CUDA device %d not usable: %s", ctx->opts.device,
				       p2pio_cuda_errname(res));
	}
	return 0;
}

int p2pio_ctx_create(const struct p2pio_ctx_opts *opts, struct p2pio_ctx **ctxp,
		     struct p2pio_error *err)
{
	struct p2pio_ctx *ctx;
	int ret;

	*ctxp = NULL;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	ret = p2pio_opts_resolve(opts, &ctx->opts, &ctx->depth_default, err);
	if (ret)
		goto out_free;
	if (ctx->opts.device != P2PIO_DEVICE_HOST) {
		ret = p2pio_ctx_cuda_init(ctx, err);
		if (ret)
			goto out_free;
	}
	pthread_mutex_init(&ctx->lock, NULL);
	pthread_mutex_init(&ctx->stats_lock, NULL);
	pthread_mutex_init(&ctx->sync_lock, NULL);
	ctx->stats.size = sizeof(ctx->stats);
	*ctxp = ctx;
	return 0;

out_free:
	free(ctx);
	return ret;
}

void p2pio_ctx_destroy(struct p2pio_ctx *ctx)
{
	const struct p2pio_path_ops *ops;
	CUcontext prev;
	unsigned int i;

	if (!ctx)
		return;
	for (i = 0; (ops = p2pio_paths[i]); i++) {
		if (ctx->path_priv[ops->id] && ops->stop)
			ops->stop(ctx->path_priv[ops->id]);
		ctx->path_priv[ops->id] = NULL;
	}
	if (ctx->flags) {
		prev = p2pio_ctx_enter(ctx);
		ctx->cu->MemFreeHost(ctx->flags->host);
		p2pio_ctx_leave(ctx, prev);
		free(ctx->flags);
	}
	if (ctx->sync_stream) {
		prev = p2pio_ctx_enter(ctx);
		ctx->cu->StreamDestroy(ctx->sync_stream);
		p2pio_ctx_leave(ctx, prev);
	}
	pthread_mutex_destroy(&ctx->sync_lock);
	if (ctx->cu)
		ctx->cu->DevicePrimaryCtxRelease(ctx->dev);
	pthread_mutex_destroy(&ctx->stats_lock);
	pthread_mutex_destroy(&ctx->lock);
	free(ctx);
}

int p2pio_ctx_get_opts(const struct p2pio_ctx *ctx, struct p2pio_ctx_opts *opts)
{
	size_t n;

	if (!ctx || !opts || opts->size < sizeof(size_t))
		return -EINVAL;
	n = opts->size < sizeof(ctx->opts) ? opts->size : sizeof(ctx->opts);
	memcpy((char *)opts + sizeof(size_t), (const char *)&ctx->opts + sizeof(size_t),
	       n - sizeof(size_t));
	return 0;
}

int p2pio_ctx_device(const struct p2pio_ctx *ctx)
{
	return ctx->cu ? ctx->opts.device : P2PIO_DEVICE_HOST;
}

void *p2pio_ctx_cuda_context(const struct p2pio_ctx *ctx)
{
	return ctx->cu ? (void *)ctx->cuctx : NULL;
}

int p2pio_ctx_stats(struct p2pio_ctx *ctx, struct p2pio_ctx_stats *stats, bool reset)
{
	size_t n;

	if (!ctx || !stats || stats->size < sizeof(size_t))
		return -EINVAL;
	n = stats->size < sizeof(ctx->stats) ? stats->size : sizeof(ctx->stats);
	pthread_mutex_lock(&ctx->stats_lock);
	memcpy((char *)stats + sizeof(size_t), (const char *)&ctx->stats + sizeof(size_t),
	       n - sizeof(size_t));
	if (reset) {
		memset(&ctx->stats, 0, sizeof(ctx->stats));
		ctx->stats.size = sizeof(ctx->stats);
	}
	pthread_mutex_unlock(&ctx->stats_lock);
	return 0;
}

int p2pio_path_start(struct p2pio_ctx *ctx, const struct p2pio_path_ops *ops, void **privp)
{
	void *priv;
	int ret = 0;

	pthread_mutex_lock(&ctx->lock);
	priv = ctx->path_priv[ops->id];
	if (!priv) {
		ret = ops->start(ctx, &priv);
		if (!ret)
			ctx->path_priv[ops->id] = priv;
	}
	pthread_mutex_unlock(&ctx->lock);
	*privp = ret ? NULL : priv;
	return ret;
}

void *p2pio_path_priv(struct p2pio_ctx *ctx, const struct p2pio_path_ops *ops)
{
	void *priv;

	pthread_mutex_lock(&ctx->lock);
	priv = ctx->path_priv[ops->id];
	pthread_mutex_unlock(&ctx->lock);
	return priv;
}

CUcontext p2pio_ctx_enter(struct p2pio_ctx *ctx)
{
	CUcontext prev = NULL;

	if (!ctx->cu)
		return NULL;
	ctx->cu->CtxGetCurrent(&prev);
	if (prev != ctx->cuctx)
		ctx->cu->CtxSetCurrent(ctx->cuctx);
	return prev;
}

void p2pio_ctx_leave(struct p2pio_ctx *ctx, CUcontext prev)
{
	if (ctx->cu && prev != ctx->cuctx)
		ctx->cu->CtxSetCurrent(prev);
}

void *p2pio_staging_alloc(struct p2pio_ctx *ctx, size_t len)
{
	CUcontext prev;
	CUresult res;
	void *p;

	if (ctx->cu) {
		prev = p2pio_ctx_enter(ctx);
		res = ctx->cu->MemHostAlloc(&p, len, CU_MEMHOSTALLOC_PORTABLE);
		p2pio_ctx_leave(ctx, prev);
		return res == CUDA_SUCCESS ? p : NULL;
	}
	/* Page-aligned, so O_DIRECT can read into any chunk of it. */
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void p2pio_staging_free(struct p2pio_ctx *ctx, void *p, size_t len)
{
	CUcontext prev;

	if (!p)
		return;
	if (ctx->cu) {
		prev = p2pio_ctx_enter(ctx);
		ctx->cu->MemFreeHost(p);
		p2pio_ctx_leave(ctx, prev);
		return;
	}
	munmap(p, len);
}
