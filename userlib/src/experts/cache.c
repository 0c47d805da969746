// SPDX-License-Identifier: MIT
/*
 * cache.c - the expert cache: which experts are resident is the residency core's business
 * (residency.c, shared with the trace replay); this file does the rest: memory from the
 * pool (vmm_pool.c), loads through the engine, completion words the caller's streams wait
 * on, and releases by CUDA event.
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

/* ---- completion ------------------------------------------------------------------- */

/* Unmap a failed expert's memory once nothing references it. Called locked. */
static void bury(struct p2pio_experts *x, uint32_t layer, uint32_t expert)
{
	struct xentry *e = &x->ent[idx(x, layer, expert)];

	if (!e->zombie || e->refs)
		return;
	e->zombie = false;
	p2pio_xpool_unmap(x->pool, layer, expert);
}

/* The current miss batch is complete: its times from the call's start. Called locked. */
static void batch_complete(struct p2pio_experts *x)
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
		batch_complete(x);
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

static void finish_load(struct p2pio_experts *x, size_t i)
{
	uint32_t layer = (uint32_t)(i / x->ne), expert = (uint32_t)(i % x->ne);
	struct xentry *e = &x->ent[i];

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
	p2pio_residency_loaded(x->res, layer, expert, e->err);
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
			batch_read_done(x, e, t, &ph[i]);
			if (--e->pending == 0)
				finish_load(x, k);
		}
		pthread_cond_broadcast(&x->cond);
		pthread_mutex_unlock(&x->lock);
	}
	return NULL;
}

/* ---- releases --------------------------------------------------------------------- */

static void release_done(struct p2pio_experts *x, struct xrelease *r)
{
	uint32_t i;

	for (i = 0; i < r->n; i++) {
		struct p2pio_expert_ref ref = r->refs[i];

		p2pio_residency_busy_put(x->res, ref.layer, ref.expert);
		x->ent[idx(x, ref.layer, ref.expert)].refs--;
		bury(x, ref.layer, ref.expert);
	}
	r->n = 0;
	r->next = x->rel_free;
	x->rel_free = r;
}

/* Retire releases whose stream work has completed; with @block, wait for the oldest. */
static void poll_releases(struct p2pio_experts *x, bool block)
{
	struct xrelease **pp = &x->rel, *r;
	uint64_t t0;

	if (block && x->rel) {
		CUevent ev = x->rel->ev;

		t0 = p2pio_now_ns();
		pthread_mutex_unlock(&x->lock);
		p2pio_cuda_event_wait(x->cu, ev);
		pthread_mutex_lock(&x->lock);
		x->io.host_wait_ns += p2pio_now_ns() - t0;
	}
	while ((r = *pp)) {
		if (x->cu->EventQuery(r->ev) != CUDA_SUCCESS) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		release_done(x, r);
	}
}

static struct xrelease *release_get(struct p2pio_experts *x, uint32_t n)
{
	struct xrelease *r = x->rel_free;

	if (r) {
		x->rel_free = r->next;
	} else {
		r = calloc(1, sizeof(*r));
		if (!r)
			return NULL;
		/* Spinning, not blocking-sync: see timings_create() (cache_open.c). */
		if (x->cu->EventCreate(&r->ev, CU_EVENT_DISABLE_TIMING) != CUDA_SUCCESS) {
			free(r);
			return NULL;
		}
	}
	if (r->cap < n) {
		struct p2pio_expert_ref *refs = realloc(r->refs, n * sizeof(*refs));

		if (!refs) {
			r->next = x->rel_free;
			x->rel_free = r;
			return NULL;
		}
		r->refs = refs;
		r->cap = n;
	}
	r->n = 0;
	r->next = NULL;
	return r;
}

/* Let the built-in prefetch's held experts go. Called locked. */
static void prefetch_unhold(struct p2pio_experts *x)
{
	uint32_t i;

	for (i = 0; i < x->pf_n; i++) {
		x->ent[idx(x, x->pf_layer, x->pf_ids[i])].refs--;
		p2pio_residency_busy_put(x->res, x->pf_layer, x->pf_ids[i]);
		bury(x, x->pf_layer, x->pf_ids[i]);
	}
	x->pf_n = 0;
}

/* ---- loads ------------------------------------------------------------------------ */

#define XREQS 64

/*
 * Submit the @nq pieces of @e's load in @reqs; @left counts its pieces not submitted yet.
 * On a failure the load fails: the pieces submitted complete, the rest never will.
 */
static void submit_pieces(struct p2pio_experts *x, struct xentry *e, struct p2pio_req *reqs,
			  uint32_t *nq, uint32_t *left)
{
	int ret = p2pio_submit(x->q, reqs, *nq);
	uint32_t done = ret < 0 ? 0 : (uint32_t)ret, k;

	for (k = 0; k < done; k++)
		x->io.bytes += reqs[k].length;
	x->io.reads += done;
	*left -= done;
	if (done < *nq) {
		e->err = ret < 0 ? ret : -EIO;
		e->pending -= *left;
		*left = 0;
	}
	*nq = 0;
}

/*
 * The bytes of each read of @plan's runs: x->piece; or, with x->pieces (x->lone_pieces
 * where no other load is in flight), about that many reads shared out between the runs by
 * their bytes (every run at least one, none larger than the engine's chunk), each run cut
 * into equal block-aligned pieces.
 *
 * Every miss of a require that found no load in flight is cut as a lone one, not just its
 * first: the engine's threads take a batch's reads in order, one each while there are
 * more reads than threads, so two misses in 14 and 7 pieces gave 14 threads a 0.9 MiB
 * read each and then 7 of them a 1.8 MiB one: 2.7 MiB on the slowest thread where 1.8
 * would do (two misses were the batch furthest over the plain read-then-copy loop in the
 * eighth round's miss-cost tables, 125-387 us). Cut alike, k misses are k equal reads per
 * thread (@alone: the load is one of such a require's misses). A decode in step with its
 * stream (p2pio-moe run's default) has every batch alone.
 */
static void expert_pieces(const struct p2pio_experts *x, const struct p2pio_expert_plan *plan,
			  bool alone, uint64_t *piece)
{
	uint32_t pieces = x->loading && !alone ? x->pieces : x->lone_pieces;
	uint64_t chunk = p2pio_round_down(x->ctx->opts.chunk_size, P2PIO_MODEL_BLOCK), total = 0;
	uint32_t r;

	for (r = 0; r < plan->nruns; r++)
		total += plan->runs[r].len;
	for (r = 0; r < plan->nruns; r++) {
		uint64_t len = plan->runs[r].len, n;

		if (!pieces || !total) {
			piece[r] = x->piece;
			continue;
		}
		n = (pieces * len + total / 2) / total;
		if (chunk && n < (len + chunk - 1) / chunk)
			n = (len + chunk - 1) / chunk;
		if (!n)
			n = 1;
		piece[r] = p2pio_round_up((len + n - 1) / n, P2PIO_MODEL_BLOCK);
	}
}

/*
 * Start loading (@layer, @expert), which the core has just admitted; @alone: cut as a lone
 * miss (expert_pieces()). Called locked.
 */
static int start_load(struct p2pio_experts *x, uint32_t layer, uint32_t expert, bool prefetch,
		      bool alone)
{
	const struct p2pio_gguf_layer *gl = p2pio_gguf_layer(x->m->gguf, layer);
	size_t i = idx(x, layer, expert);
	struct xentry *e = &x->ent[i];
	const struct p2pio_xchunk *c;
	struct p2pio_expert_plan plan;
	struct p2pio_req reqs[XREQS];
	uint64_t piece[P2PIO_EXPERT_MAX_SLICES];
	uint32_t r, npieces = 0, nq = 0;
	uint64_t t0, off;
	int ret;

	ret = p2pio_expert_plan(x->m->gguf, gl, expert, P2PIO_MODEL_BLOCK, x->m->file_size, &plan);
	if (!ret) {
		/* A chunk with a view of its own is read first and mapped home after. */
		t0 = p2pio_now_ns();
		ret = p2pio_xpool_take(x->pool, layer, expert, &c);
		x->io.map_ns += p2pio_now_ns() - t0;
	}
	if (ret) {
		p2pio_residency_loaded(x->res, layer, expert, ret);
		return ret;
	}
	/*
	 * Each run in pieces, each its own engine read: the engine's threads take them in
	 * parallel (one expert's bytes read by all of them, not by the one or two that took a
	 * whole run), and each piece is copied out while later ones are still read, so a lone
	 * miss costs about its bytes / the storage bandwidth, not a chunk's latency.
	 */
	expert_pieces(x, &plan, alone, piece);
	for (r = 0; r < plan.nruns; r++)
		npieces += (uint32_t)((plan.runs[r].len + piece[r] - 1) / piece[r]);
	e->seq++;
	e->err = 0;
	e->loading = true;
	e->pending = npieces + 1;	/* the submitter's own reference */
	e->t_submit = p2pio_now_ns();
	if (!prefetch && x->batch_open) {
		e->batch = x->batch;
		x->batch_left++;
		x->batch_loads++;
	}
	if (!x->loading++) {
		x->busy_t0 = e->t_submit;
		pthread_cond_signal(&x->reap_cond);
	}
	x->io.loads++;
	x->io.prefetches += prefetch;
	/* The pieces go to the engine together (one wake-up of its threads per batch). */
	for (r = 0; r < plan.nruns && !e->err; r++) {
		for (off = 0; off < plan.runs[r].len && !e->err; off += piece[r]) {
			uint64_t len = plan.runs[r].len - off;

			reqs[nq++] = (struct p2pio_req){
				.file = x->m->file,
				.file_offset = plan.runs[r].file_off + off,
				.length = len < piece[r] ? len : piece[r],
				.buf = c->io_buf ? c->io_buf : c->buf,
				.buf_offset = (c->io_buf ? c->io_off : c->buf_off) +
					      plan.runs[r].dst_off + off,
				.tag = i,
			};
			if (nq == XREQS)
				submit_pieces(x, e, reqs, &nq, &npieces);
		}
	}
	/* The last batch (a failed submission leaves none: it empties @reqs). */
	if (nq)
		submit_pieces(x, e, reqs, &nq, &npieces);
	if (!c->at_home)
		x->homeless[x->nhomeless++] = i;
	ret = e->err;
	if (--e->pending == 0)
		finish_load(x, i);
	return ret;
}

/*
 * Map the homes of the loads started since the last call, whose reads were submitted
 * first (their chunks' views): every miss of a require has its reads in flight before
 * the first home is mapped. Called locked, before the lock is dropped or an address is
 * handed out: while it is held no load can complete (the reaper needs the lock), so no
 * stream is let go before its expert's home is mapped. A home that cannot be mapped fails
 * its load; the reads in flight complete, and the failed load is buried as any other.
 */
static void homes_map(struct p2pio_experts *x)
{
	uint64_t t0;
	size_t k, i;
	int ret;

	if (!x->nhomeless)
		return;
	t0 = p2pio_now_ns();
	for (k = 0; k < x->nhomeless; k++) {
		i = x->homeless[k];
		/* Gone already: its submission failed and the load was buried. */
		if (!p2pio_xpool_chunk(x->pool, (uint32_t)(i / x->ne), (uint32_t)(i % x->ne)))
			continue;
		ret = p2pio_xpool_go_home(x->pool, (uint32_t)(i / x->ne), (uint32_t)(i % x->ne));
		if (ret && !x->ent[i].err)
			x->ent[i].err = ret;
	}
	x->nhomeless = 0;
	x->io.map_ns += p2pio_now_ns() - t0;
}

/*
 * Admit and load (@layer, @expert). A demand load waits for room (released stream work,
 * loads in flight) where the budget is full of experts nobody can give up now; a prefetch
 * gives up. @alone: a miss of a require that found no load in flight. Called locked.
 */
static int load(struct p2pio_experts *x, uint32_t layer, uint32_t expert, bool prefetch,
		bool alone)
{
	size_t nv = 0, i;
	uint64_t t0;
	int ret;

	for (;;) {
		if (x->fatal)
			return x->fatal;
		ret = p2pio_residency_admit(x->res, layer, expert, prefetch, x->victims,
					    (size_t)x->nl * x->ne, &nv);
		if (ret != -ENOSPC || prefetch)
			break;
		/* Waiting may drop the lock: the homes of this call's earlier misses first. */
		homes_map(x);
		if (x->pf_n) {
			prefetch_unhold(x);
		} else if (x->cu && x->rel) {
			poll_releases(x, true);
		} else if (x->loading) {
			t0 = p2pio_now_ns();
			pthread_cond_wait(&x->cond, &x->lock);
			x->io.host_wait_ns += p2pio_now_ns() - t0;
		} else {
			return -ENOSPC;
		}
		/* The lock was dropped: someone else may have loaded it meanwhile. */
		if (p2pio_residency_state(x->res, layer, expert) != P2PIO_RES_ABSENT)
			return 0;
	}
	if (ret)
		return ret;
	t0 = p2pio_now_ns();
	for (i = 0; i < nv; i++) {
		struct xentry *v = &x->ent[idx(x, x->victims[i].layer, x->victims[i].expert)];

		/* The core never evicts a referenced expert; a zombie is unmapped on release. */
		if (!v->zombie)
			p2pio_xpool_unmap(x->pool, x->victims[i].layer, x->victims[i].expert);
	}
	if (nv)
		x->io.unmap_ns += p2pio_now_ns() - t0;
	return start_load(x, layer, expert, prefetch, alone);
}

static uint64_t expert_addr(const struct p2pio_experts *x, uint32_t layer, uint32_t expert)
{
	const struct p2pio_xchunk *c = p2pio_xpool_chunk(x->pool, layer, expert);

	/* Not at home: its home could not be mapped (homes_map() failed the load). */
	return c && c->at_home ? c->addr : 0;
}

static int check_ids(const struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
		     uint32_t n)
{
	const struct p2pio_gguf_layer *gl;
	uint32_t i, j;

	if (layer >= x->nl)
		return -ERANGE;
	gl = p2pio_gguf_layer(x->m->gguf, layer);
	if (!gl->n_experts)
		return n ? -EINVAL : 0;
	for (i = 0; i < n; i++) {
		if (ids[i] >= gl->n_experts)
			return -ERANGE;
		for (j = 0; j < i; j++)
			if (ids[j] == ids[i])
				return -EINVAL;
	}
	return 0;
}

/*
 * Start prefetching (@layer, @expert) if it is absent and room can be made now; whether a
 * load started. Called locked.
 */
static bool prefetch_one(struct p2pio_experts *x, uint32_t layer, uint32_t expert)
{
	return p2pio_residency_state(x->res, layer, expert) == P2PIO_RES_ABSENT &&
	       !x->ent[idx(x, layer, expert)].zombie && !load(x, layer, expert, true, false);
}

/* Prefetch what is absent of @ids; the number of loads started. Called locked. */
static int prefetch_locked(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
			   uint32_t n)
{
	int started = 0;
	uint32_t i;

	for (i = 0; i < n; i++)
		started += prefetch_one(x, layer, ids[i]);
	return started;
}

/* Start loading the absent of @ids[@n] at @layer and hold them for it. Called locked. */
static void prefetch_hold(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
			  uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		if (!prefetch_one(x, layer, ids[i]))
			continue;
		p2pio_residency_busy_get(x->res, layer, ids[i]);
		x->ent[idx(x, layer, ids[i])].refs++;
		x->pf_ids[x->pf_n++] = ids[i];
	}
}

/*
 * The layer with experts that comes after @layer in routing order (after the last, the
 * first of the next token): dense layers (a model's first few, in some) are never
 * required, so the prefetch is for the layer after them.
 */
static uint32_t next_moe_layer(const struct p2pio_experts *x, uint32_t layer)
{
	uint32_t l = layer, i;

	for (i = 0; i < x->nl; i++) {
		l = l + 1 < x->nl ? l + 1 : 0;
		if (p2pio_gguf_layer(x->m->gguf, l)->n_experts)
			break;
	}
	return l;
}

/*
 * The built-in prefetch, once @layer's experts @ids[@n] are required: what the previous
 * token used at the next layer with experts (P2PIO_EXPERTS_PREFETCH_PREV), then what the
 * learned predictor expects there (P2PIO_EXPERTS_PREFETCH_LEARNED); the replay's order.
 * The experts held for this layer are let go first: it is being required now. A call
 * that requires nothing is no step of the routing. Called locked.
 */
static void prefetch_next_layer(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
				uint32_t n)
{
	uint32_t next = next_moe_layer(x, layer);

	if (!n)
		return;
	prefetch_unhold(x);
	x->pf_layer = next;
	if (x->flags & P2PIO_EXPERTS_PREFETCH_PREV) {
		memcpy(x->prev_ids + idx(x, layer, 0), ids, n * sizeof(*ids));
		x->prev_n[layer] = n;
		prefetch_hold(x, next, x->prev_ids + idx(x, next, 0), x->prev_n[next]);
	}
	if (x->pred) {
		p2pio_predictor_observe(x->pred, layer, ids, n);
		prefetch_hold(x, next, x->pred_ids,
			      p2pio_predictor_predict(x->pred, next, 0, x->pred_ids));
	}
	homes_map(x);
}

/*
 * Unmap the homes of the experts evicted since the last flush (the pool defers them: a
 * miss maps the victim's chunk at its own home at once and submits its reads; the
 * victim's home is unmapped here, after the batch, when the caller releases a layer and
 * the GPU still has that layer's work to do). No queued work reads a victim: the core
 * evicts only experts whose release events have completed. Called locked.
 */
static void flush_unmaps(struct p2pio_experts *x)
{
	uint64_t t0;

	if (!p2pio_xpool_ghosts(x->pool))
		return;
	t0 = p2pio_now_ns();
	x->io.late_unmaps += p2pio_xpool_flush(x->pool);
	x->io.late_unmap_ns += p2pio_now_ns() - t0;
}

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
		batch_complete(x);
}

/* ---- the API ---------------------------------------------------------------------- */

int p2pio_experts_require(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
			  uint32_t n, void *stream, uint64_t *ptrs_out)
{
	uint64_t t0 = p2pio_now_ns();
	CUcontext prev;
	uint32_t i, got = 0;
	bool alone;
	int ret;

	ret = check_ids(x, layer, ids, n);
	if (ret)
		return ret;
	prev = p2pio_ctx_enter(x->ctx);
	pthread_mutex_lock(&x->lock);
	if (x->async_err) {
		ret = x->async_err;
		x->async_err = 0;
		goto out_unlock;
	}
	if (x->cu)
		poll_releases(x, false);
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
			ret = load(x, layer, ids[i], false, alone);
			if (ret)
				break;
		}
		/* Held from here: no later miss of this call may evict it. */
		p2pio_residency_busy_get(x->res, layer, ids[i]);
		e->held++;
		e->refs++;
		got++;
	}
	if (x->batch_open)
		batch_end(x);
	homes_map(x);
	if (!ret)
		ret = wait_loads(x, layer, ids, n, (CUstream)stream);
	for (i = 0; !ret && i < n; i++) {
		ptrs_out[i] = expert_addr(x, layer, ids[i]);
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
			bury(x, layer, ids[i]);
		}
		goto out_unlock;
	}
	if (x->flags & (P2PIO_EXPERTS_PREFETCH_PREV | P2PIO_EXPERTS_PREFETCH_LEARNED))
		prefetch_next_layer(x, layer, ids, n);
out_unlock:
	homes_map(x);
	pthread_mutex_unlock(&x->lock);
	p2pio_ctx_leave(x->ctx, prev);
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

	ret = check_ids(x, layer, ids, n);
	if (ret)
		return ret;
	prev = p2pio_ctx_enter(x->ctx);
	pthread_mutex_lock(&x->lock);
	for (i = 0; i < n; i++)
		if (!x->ent[idx(x, layer, ids[i])].held) {
			ret = -EINVAL;
			goto out_unlock;
		}
	if (x->cu && n) {
		r = release_get(x, n);
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
		bury(x, layer, ids[i]);
	}
	if (r) {
		struct xrelease **pp = &x->rel;

		while (*pp)
			pp = &(*pp)->next;
		*pp = r;
	}
	flush_unmaps(x);
out_unlock:
	pthread_mutex_unlock(&x->lock);
	p2pio_ctx_leave(x->ctx, prev);
	return ret;
}

int p2pio_experts_prefetch(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
			   uint32_t n)
{
	CUcontext prev;
	int ret;

	ret = check_ids(x, layer, ids, n);
	if (ret)
		return ret;
	prev = p2pio_ctx_enter(x->ctx);
	pthread_mutex_lock(&x->lock);
	if (x->cu)
		poll_releases(x, false);
	ret = prefetch_locked(x, layer, ids, n);
	homes_map(x);
	pthread_mutex_unlock(&x->lock);
	p2pio_ctx_leave(x->ctx, prev);
	return ret;
}

int p2pio_experts_pin(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids, uint32_t n,
		      bool pin)
{
	CUcontext prev;
	uint32_t i;
	int ret;

	ret = check_ids(x, layer, ids, n);
	if (ret)
		return ret;
	prev = p2pio_ctx_enter(x->ctx);
	pthread_mutex_lock(&x->lock);
	for (i = 0; i < n && !ret; i++) {
		if (pin && p2pio_residency_state(x->res, layer, ids[i]) == P2PIO_RES_ABSENT)
			ret = load(x, layer, ids[i], false, false);
		if (!ret)
			ret = p2pio_residency_pin(x->res, layer, ids[i], pin);
	}
	homes_map(x);
	pthread_mutex_unlock(&x->lock);
	p2pio_ctx_leave(x->ctx, prev);
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

void p2pio_experts_drain_releases(struct p2pio_experts *x)
{
	struct xrelease *r;

	while ((r = x->rel)) {
		p2pio_cuda_event_wait(x->cu, r->ev);
		x->rel = r->next;
		release_done(x, r);
	}
}
