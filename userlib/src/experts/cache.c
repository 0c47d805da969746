// SPDX-License-Identifier: MIT
/*
 * cache.c - the expert cache's API (require, release, prefetch, pin, the token markers and
 * the statistics) and the stream's wait. Which experts are resident is the residency
 * core's business (residency.c, shared with the trace replay); the rest is in four files:
 * cache_load.c starts loads and prefetches (memory from the pool, vmm_pool.c; reads
 * through the engine), cache_reap.c completes them, cache_release.c retires releases by
 * CUDA event, cache_open.c opens and closes the cache.
 *
 * As in the layer streamer (model/stream.c): loads are submitted to an engine queue; a
 * reaper thread takes their completions and, once every read of an expert's load is done,
 * stores the load's sequence number in that expert's completion word (host memory mapped
 * for the device); require makes the caller's stream wait on the word
 * (cuStreamWaitValue32), so the GPU waits for a missing expert, not the host. Released
 * experts stay "busy" in the core until the event recorded on the releasing stream has
 * completed, so the policy never picks an expert queued work still reads.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "model/model.h"
#include "experts/cache.h"
#include "experts/expert_io.h"

/* ---- the stream's wait ------------------------------------------------------------ */

/*
 * Add the stall that timing @t measured, once its stream has passed it; with @block, wait
 * for that. Called locked; the wait drops the lock: the stream may be waiting on a
 * completion word that only the reaper, which needs the lock, can store (a caller that
 * ran NR_TIMINGS stalled requires ahead of its loads waited here for ever).
 */
static void harvest(struct p2pio_experts *x, struct xtiming *t, bool block)
{
	float ms = 0;

	if (!t->live)
		return;
	if (x->cu->EventQuery(t->e1) != CUDA_SUCCESS) {
		uint64_t t0;

		if (!block)
			return;
		t0 = p2pio_now_ns();
		pthread_mutex_unlock(&x->lock);
		p2pio_cuda_event_wait(x->cu, t->e1);
		pthread_mutex_lock(&x->lock);
		/* A caller NR_TIMINGS stalls ahead of its stream waits for it here. */
		x->io.host_wait_ns += p2pio_now_ns() - t0;
		if (!t->live)
			return;
	}
	if (x->cu->EventElapsedTime(&ms, t->e0, t->e1) == CUDA_SUCCESS && ms > 0) {
		x->io.stall_ns += (uint64_t)((double)ms * 1e6);
		p2pio_residency_add_stall(x->res, (uint64_t)((double)ms * 1e6));
	}
	t->live = false;
}

/* Make @stream wait for those of @ids still loading; without a GPU, wait here. */
static int wait_loads(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids, uint32_t n,
		      CUstream cs)
{
	struct xtiming *t = NULL;
	uint64_t t0;
	uint32_t i;
	bool any = false;

	for (i = 0; i < n; i++)
		any |= x->ent[idx(x, layer, ids[i])].loading;
	if (!any)
		return 0;
	x->io.stalls++;
	if (!x->cu) {
		t0 = p2pio_now_ns();
		for (i = 0; i < n && !x->fatal; i++)
			while (x->ent[idx(x, layer, ids[i])].loading && !x->fatal)
				pthread_cond_wait(&x->cond, &x->lock);
		t0 = p2pio_now_ns() - t0;
		x->io.stall_ns += t0;
		p2pio_residency_add_stall(x->res, t0);
		return x->fatal;
	}
	t = &x->tim[x->tim_next++ % NR_TIMINGS];
	harvest(x, t, true);
	x->cu->EventRecord(t->e0, cs);
	for (i = 0; i < n; i++) {
		size_t k = idx(x, layer, ids[i]);

		if (x->ent[k].loading)
			x->cu->StreamWaitValue32(cs, x->flag_dev + k * sizeof(uint32_t),
						 x->ent[k].seq, CU_STREAM_WAIT_VALUE_GEQ);
	}
	x->cu->EventRecord(t->e1, cs);
	t->live = true;
	return 0;
}

/* ---- the miss batch's breakdown ---------------------------------------------------- */

/* A require call (started at @t0) has its first miss: a new batch. Called locked. */
static void batch_begin(struct p2pio_experts *x, uint64_t t0)
{
	x->batch = x->batch + 1 ?: 1;
	x->batch_t0 = t0;
	x->batch_left = 0;
	x->batch_loads = 0;
	x->batch_first = false;
	x->batch_open = true;
	x->batch_taken = 0;
	x->batch_landed = 0;
}

/*
 * Every miss of the call is submitted. A batch that started no load (late hits, failures)
 * does not count; one whose loads all finished already is complete now. Called locked.
 */
static void batch_end(struct p2pio_experts *x)
{
	x->batch_open = false;
	if (!x->batch_loads)
		return;
	x->io.batches++;
	x->io.batch_submit_ns += p2pio_now_ns() - x->batch_t0;
	if (!x->batch_left)
		xcache_batch_complete(x);
}

/* ---- the API ---------------------------------------------------------------------- */

/*
 * How every call that names experts begins: a bad id fails the call before it touches the
 * cache; then the calls work in the cache's CUDA context (events, stream waits, unmaps)
 * and under its lock, which xcache_call_end() gives back.
 */
static int xcache_call_begin(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
			     uint32_t n, CUcontext *prev)
{
	int ret = xcache_check_ids(x, layer, ids, n);

	if (ret)
		return ret;
	*prev = p2pio_ctx_enter(x->ctx);
	pthread_mutex_lock(&x->lock);
	return 0;
}

static void xcache_call_end(struct p2pio_experts *x, CUcontext prev)
{
	pthread_mutex_unlock(&x->lock);
	p2pio_ctx_leave(x->ctx, prev);
}

int p2pio_experts_require(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
			  uint32_t n, void *stream, uint64_t *ptrs_out)
{
	uint64_t t0 = p2pio_now_ns();
	CUcontext prev;
	uint32_t i, got = 0;
	bool alone;
	int ret;

	ret = xcache_call_begin(x, layer, ids, n, &prev);
	if (ret)
		return ret;
	if (x->async_err) {
		ret = x->async_err;
		x->async_err = 0;
		goto out_unlock;
	}
	if (x->cu)
		xcache_poll_releases(x, false);
	/*
	 * The hints of this layer that it does not want go first, giving their room to its
	 * misses. A call that requires nothing is no step of the routing: it withdraws
	 * nothing.
	 */
	if (n)
		xcache_drop_wrong_hints(x, layer, ids, n);
	alone = !x->loading;
	for (i = 0; i < n; i++) {
		struct xentry *e = &x->ent[idx(x, layer, ids[i])];

		if (e->zombie) {
			ret = -EIO;
			break;
		}
		if (!p2pio_residency_access(x->res, layer, ids[i])) {
			if (!x->batch_open)
				batch_begin(x, t0);
			ret = xcache_load(x, layer, ids[i], false, alone);
			if (ret)
				break;
		}
		/* Held from here: no later miss of this call may evict it. */
		p2pio_residency_busy_get(x->res, layer, ids[i]);
		/*
		 * A right guess still queued is waited for now: it goes with the misses, ahead
		 * of the hints for later layers and of misses required after this call.
		 */
		if (e->loading && e->hinted && !(x->flags & P2PIO_EXPERTS_MISSES_IN_ORDER))
			x->io.hastened += p2pio_hasten(x->q, idx(x, layer, ids[i])) > 0;
		e->hinted = false;
		e->held++;
		e->refs++;
		got++;
	}
	if (x->batch_open)
		batch_end(x);
	/* Every expert this call wants is held by it now: the built-in hold has done its work. */
	if (!ret && n && x->pf_n && x->pf_layer == layer)
		xcache_prefetch_unhold(x);
	xcache_homes_map(x);
	if (!ret)
		ret = wait_loads(x, layer, ids, n, (CUstream)stream);
	for (i = 0; !ret && i < n; i++) {
		ptrs_out[i] = xcache_addr(x, layer, ids[i]);
		if (!ptrs_out[i] || x->ent[idx(x, layer, ids[i])].zombie)
			ret = x->ent[idx(x, layer, ids[i])].err ?: -EIO;
	}
	if (ret) {
		/* Nothing handed out: give back what this call took. */
		for (i = 0; i < got; i++) {
			struct xentry *e = &x->ent[idx(x, layer, ids[i])];

			e->held--;
			e->refs--;
			p2pio_residency_busy_put(x->res, layer, ids[i]);
			xcache_bury(x, layer, ids[i]);
		}
		goto out_unlock;
	}
	if (x->flags & (P2PIO_EXPERTS_PREFETCH_PREV | P2PIO_EXPERTS_PREFETCH_LEARNED))
		xcache_prefetch_next_layer(x, layer, ids, n);
out_unlock:
	xcache_homes_map(x);
	xcache_call_end(x, prev);
	return ret;
}

void *p2pio_experts_host(struct p2pio_experts *x, uint32_t layer, uint32_t expert)
{
	const struct p2pio_xchunk *c;
	void *host;

	pthread_mutex_lock(&x->lock);
	c = p2pio_xpool_chunk(x->pool, layer, expert);
	host = c ? c->host : NULL;
	pthread_mutex_unlock(&x->lock);
	return host;
}

int p2pio_experts_release(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
			  uint32_t n, void *stream)
{
	struct xrelease *r = NULL;
	CUcontext prev;
	uint32_t i;
	int ret;

	ret = xcache_call_begin(x, layer, ids, n, &prev);
	if (ret)
		return ret;
	for (i = 0; i < n; i++)
		if (!x->ent[idx(x, layer, ids[i])].held) {
			ret = -EINVAL;
			goto out_unlock;
		}
	if (x->cu && n) {
		r = xcache_release_get(x, n);
		if (!r) {
			ret = -ENOMEM;
			goto out_unlock;
		}
		x->cu->EventRecord(r->ev, (CUstream)stream);
	}
	for (i = 0; i < n; i++) {
		x->ent[idx(x, layer, ids[i])].held--;
		if (r) {
			r->refs[r->n++] = (struct p2pio_expert_ref){ layer, ids[i] };
			continue;
		}
		x->ent[idx(x, layer, ids[i])].refs--;
		p2pio_residency_busy_put(x->res, layer, ids[i]);
		xcache_bury(x, layer, ids[i]);
	}
	if (r) {
		struct xrelease **pp = &x->rel;

		while (*pp)
			pp = &(*pp)->next;
		*pp = r;
	}
	xcache_flush_unmaps(x);
out_unlock:
	xcache_call_end(x, prev);
	return ret;
}

int p2pio_experts_prefetch(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
			   uint32_t n)
{
	CUcontext prev;
	int ret;

	ret = xcache_call_begin(x, layer, ids, n, &prev);
	if (ret)
		return ret;
	if (x->cu)
		xcache_poll_releases(x, false);
	ret = xcache_prefetch_locked(x, layer, ids, n);
	xcache_homes_map(x);
	xcache_call_end(x, prev);
	return ret;
}

int p2pio_experts_pin(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids, uint32_t n,
		      bool pin)
{
	CUcontext prev;
	uint32_t i;
	int ret;

	ret = xcache_call_begin(x, layer, ids, n, &prev);
	if (ret)
		return ret;
	for (i = 0; i < n && !ret; i++) {
		if (pin && p2pio_residency_state(x->res, layer, ids[i]) == P2PIO_RES_ABSENT)
			ret = xcache_load(x, layer, ids[i], false, false);
		if (pin)	/* wanted: never withdrawn as a wrong hint */
			x->ent[idx(x, layer, ids[i])].hinted = false;
		if (!ret)
			ret = p2pio_residency_pin(x->res, layer, ids[i], pin);
	}
	xcache_homes_map(x);
	xcache_call_end(x, prev);
	return ret;
}

void p2pio_experts_token_begin(struct p2pio_experts *x)
{
	pthread_mutex_lock(&x->lock);
	p2pio_residency_token_begin(x->res);
	pthread_mutex_unlock(&x->lock);
}

int p2pio_experts_token_end(struct p2pio_experts *x)
{
	int ret;

	pthread_mutex_lock(&x->lock);
	p2pio_residency_token_end(x->res);
	ret = x->async_err;
	x->async_err = 0;
	pthread_mutex_unlock(&x->lock);
	return ret;
}

int p2pio_experts_stats(struct p2pio_experts *x, struct p2pio_expert_stats *st,
			struct p2pio_experts_io *io, bool reset)
{
	struct p2pio_experts_io cur;
	struct p2pio_xpool_stats ps;
	CUcontext prev;
	uint32_t i;
	int ret = 0;

	if (io && io->size < sizeof(size_t))
		return -EINVAL;
	prev = p2pio_ctx_enter(x->ctx);
	pthread_mutex_lock(&x->lock);
	for (i = 0; x->cu && i < NR_TIMINGS; i++)
		harvest(x, &x->tim[i], reset);
	if (st)
		ret = p2pio_residency_stats(x->res, st);
	cur = x->io;
	p2pio_xpool_stats(x->pool, &ps);
	cur.committed = ps.committed;
	cur.peak = ps.peak;
	cur.creates = ps.creates;
	cur.maps = ps.maps;
	cur.unmaps = ps.unmaps;
	cur.forced_unmaps = ps.forced_unmaps;
	cur.dense_bytes = x->dense.region;
	cur.read_piece = x->piece;
	cur.read_pieces = x->pieces;
	if (x->loading)
		cur.busy_ns += p2pio_now_ns() - x->busy_t0;
	cur.wall_ns = p2pio_now_ns() - x->t_start;
	if (io) {
		size_t len = io->size < sizeof(cur) ? io->size : sizeof(cur);

		cur.size = io->size;
		memcpy(io, &cur, len);
	}
	if (reset) {
		memset(&x->io, 0, sizeof(x->io));
		x->io_epoch++;	/* loads counted before are no longer in @io */
		x->t_start = p2pio_now_ns();
		x->busy_t0 = x->t_start;	/* a load in flight counts from here */
	}
	pthread_mutex_unlock(&x->lock);
	p2pio_ctx_leave(x->ctx, prev);
	return ret;
}

int p2pio_experts_layer_stats(struct p2pio_experts *x, uint32_t layer,
			      struct p2pio_expert_layer_stats *st)
{
	int ret;

	pthread_mutex_lock(&x->lock);
	ret = layer < x->nl ? p2pio_residency_layer_stats(x->res, layer, st) : -ERANGE;
	pthread_mutex_unlock(&x->lock);
	return ret;
}
