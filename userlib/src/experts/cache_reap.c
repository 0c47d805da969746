// SPDX-License-Identifier: MIT
/*
 * cache_reap.c - the expert cache's completions: the reaper thread takes the engine's
 * completions and, once every read of an expert's load is done, stores the load's number
 * in the expert's completion word (the word a stream waits on), and keeps the miss
 * batch's times. A load that failed is buried once nothing references it.
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

/* ---- completion ------------------------------------------------------------------- */

/* Unmap a failed expert's memory once nothing references it. Called locked. */
void xcache_bury(struct p2pio_experts *x, uint32_t layer, uint32_t expert)
{
	struct xentry *e = &x->ent[idx(x, layer, expert)];

	if (!e->zombie || e->refs)
		return;
	e->zombie = false;
	p2pio_xpool_unmap(x->pool, layer, expert);
}

/* The current miss batch is complete: its times from the call's start. Called locked. */
void xcache_batch_complete(struct p2pio_experts *x)
{
	uint64_t t0 = x->batch_t0;

	x->io.batch_done_ns += p2pio_now_ns() - t0;
	x->io.batch_taken_ns += x->batch_taken > t0 ? x->batch_taken - t0 : 0;
	x->io.batch_landed_ns += x->batch_landed > t0 ? x->batch_landed - t0 : 0;
}

/* A load of the current miss batch finished; the last one, once the call has submitted
 * everything, completes the batch. Called locked. */
static void batch_load_done(struct p2pio_experts *x)
{
	if (x->batch_left)
		x->batch_left--;
	if (!x->batch_open && !x->batch_left)
		xcache_batch_complete(x);
}

/*
 * A read of entry @e completed, reaped at @t (before the lock, which require holds while
 * it submits), its phases in @ph: the first of the current batch is the breakdown's
 * "first"; the latest hand-out and read of any of them its "taken" and "landed". Locked.
 */
static void batch_read_done(struct p2pio_experts *x, const struct xentry *e, uint64_t t,
			    const struct p2pio_cqe_phases *ph)
{
	if (!e->batch || e->batch != x->batch)
		return;
	if (ph->taken_ns > x->batch_taken)
		x->batch_taken = ph->taken_ns;
	if (ph->landed_ns > x->batch_landed)
		x->batch_landed = ph->landed_ns;
	if (x->batch_first)
		return;
	x->batch_first = true;
	x->io.batch_first_ns += t > x->batch_t0 ? t - x->batch_t0 : 0;
}

/* Entry @i's load is over: its completion word stored, the core told. Called locked. */
void xcache_finish_load(struct p2pio_experts *x, size_t i)
{
	uint32_t layer = (uint32_t)(i / x->ne), expert = (uint32_t)(i % x->ne);
	struct xentry *e = &x->ent[i];

	if (!e->withdrawn)	/* a withdrawn load never completed */
		x->io.io_ns += p2pio_now_ns() - e->t_submit;
	/* Release: the data landed before the GPU may see the word. A failed load stores it
	 * too, or a stream already waiting would wait forever. */
	__atomic_store_n(&x->flag[i], e->seq, __ATOMIC_RELEASE);
	e->loading = false;
	if (e->batch && e->batch == x->batch)
		batch_load_done(x);
	e->batch = 0;
	if (!--x->loading)
		x->io.busy_ns += p2pio_now_ns() - x->busy_t0;
	if (e->withdrawn)
		p2pio_residency_withdrawn(x->res, layer, expert, e->bytes_done);
	else
		/* Its bytes in the statistics are what its reads read, done or failed. */
		p2pio_residency_loaded_read(x->res, layer, expert, e->err, e->bytes_done);
	if (!e->err)
		return;
	if (e->refs) {
		/* A stream may wait on it already: tell the caller, free it after release. */
		if (!x->async_err)
			x->async_err = e->err;
		e->zombie = true;
		return;
	}
	p2pio_xpool_unmap(x->pool, layer, expert);
}

/* P2PIO_CTX_POLL: completions polled for (yielding) before the reaper sleeps on them. */
static int reap_poll(struct p2pio_experts *x, struct p2pio_cqe *cqe,
		     struct p2pio_cqe_phases *ph)
{
	uint64_t t0 = p2pio_now_ns();
	int n;

	do {
		n = p2pio_complete_phases(x->q, cqe, ph, REAP_BATCH, 0, 0);
		if (n)
			return n;
		sched_yield();
	} while (p2pio_now_ns() - t0 < P2PIO_CTX_POLL_US * 1000ull && !atomic_load(&x->stop));
	return 0;
}

void *p2pio_experts_reaper(void *arg)
{
	struct p2pio_experts *x = arg;
	struct p2pio_cqe cqe[REAP_BATCH];
	struct p2pio_cqe_phases ph[REAP_BATCH];
	uint64_t t;
	int n, i;

	while (!atomic_load(&x->stop)) {
		/*
		 * Nothing in flight: sleep until a load starts. p2pio_complete() returns at once
		 * when nothing is in flight, and looping on it would take a CPU from the engine's
		 * threads (and its queue's lock from the submitter) for nothing.
		 */
		pthread_mutex_lock(&x->lock);
		while (!x->loading && !atomic_load(&x->stop))
			pthread_cond_wait(&x->reap_cond, &x->lock);
		pthread_mutex_unlock(&x->lock);
		n = x->ctx->opts.flags & P2PIO_CTX_POLL ? reap_poll(x, cqe, ph) : 0;
		if (!n)
			n = p2pio_complete_phases(x->q, cqe, ph, REAP_BATCH, 1, REAP_TIMEOUT_MS);
		if (n == -ETIMEDOUT || n == -EINTR || n == -EAGAIN || n == 0)
			continue;
		t = p2pio_now_ns();
		pthread_mutex_lock(&x->lock);
		if (n < 0) {
			size_t k;

			/* No completion will come: let every waiting stream go on. */
			x->fatal = n;
			for (k = 0; k < (size_t)x->nl * x->ne; k++)
				if (x->ent[k].loading)
					__atomic_store_n(&x->flag[k], x->ent[k].seq, __ATOMIC_RELEASE);
			pthread_cond_broadcast(&x->cond);
			pthread_mutex_unlock(&x->lock);
			break;
		}
		for (i = 0; i < n; i++) {
			size_t k = (size_t)cqe[i].tag;
			struct xentry *e = &x->ent[k];

			if (cqe[i].res < 0 && !e->err)
				e->err = cqe[i].res;
			e->bytes_done += cqe[i].bytes;
			batch_read_done(x, e, t, &ph[i]);
			if (--e->pending == 0)
				xcache_finish_load(x, k);
		}
		pthread_cond_broadcast(&x->cond);
		pthread_mutex_unlock(&x->lock);
	}
	return NULL;
}
