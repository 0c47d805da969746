// SPDX-License-Identifier: MIT
/*
 * cache_load.c - the expert cache's loads: admission (a victim chosen by the policy, its
 * memory unmapped or reused), an expert's slices read in pieces through the engine into
 * its chunk's view, its home mapped once the call's reads are out; prefetches, the
 * caller's and the built-in one (previous token, learned), and the late unmapping of
 * victims.
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

	for (k = 0; k < done; k++) {
		x->io.bytes += reqs[k].length;
		e->bytes += reqs[k].length;
	}
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
	uint32_t rflags = prefetch || (x->flags & P2PIO_EXPERTS_MISSES_IN_ORDER) ?
				  0 : P2PIO_REQ_URGENT;
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
		/* Nothing was read. */
		p2pio_residency_loaded_read(x->res, layer, expert, ret, 0);
		return ret;
	}
	/*
	 * Each run in pieces, each its own engine read: the engine's threads take them in
	 * parallel (one expert's bytes read by all of them, not by the one or two that took a
	 * whole run), and each piece is copied out while later ones are still read, so a lone
	 * miss costs about its bytes / the storage bandwidth, not a chunk's latency.
	 */
	/*
	 * With P2PIO_CTX_URGENT_ALONE a miss is read with no prefetch beside it, as a lone
	 * one is: cut alike, for every thread.
	 */
	if (rflags && (x->ctx->opts.flags & P2PIO_CTX_URGENT_ALONE))
		alone = true;
	expert_pieces(x, &plan, alone, piece);
	for (r = 0; r < plan.nruns; r++)
		npieces += (uint32_t)((plan.runs[r].len + piece[r] - 1) / piece[r]);
	e->seq++;
	e->err = 0;
	e->withdrawn = false;
	e->loading = true;
	e->hinted = prefetch;
	e->bytes = 0;
	e->bytes_done = 0;
	e->io_epoch = x->io_epoch;
	e->pending = npieces + 1;	/* the submitter's own reference */
	e->nreads = npieces;
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
				/* A miss before every hint: see p2pio_opq_push(). */
				.flags = rflags,
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
		xcache_finish_load(x, i);
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
void xcache_homes_map(struct p2pio_experts *x)
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
int xcache_load(struct p2pio_experts *x, uint32_t layer, uint32_t expert, bool prefetch,
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
		xcache_homes_map(x);
		/*
		 * The built-in hold on another layer gives way; on this one it holds only
		 * experts this call wants (xcache_drop_wrong_hints() let the others go): a miss
		 * that evicted one would have the call read it again.
		 */
		if (x->pf_n && x->pf_layer != layer) {
			xcache_prefetch_unhold(x);
		} else if (x->cu && x->rel) {
			xcache_poll_releases(x, true);
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

uint64_t xcache_addr(const struct p2pio_experts *x, uint32_t layer, uint32_t expert)
{
	const struct p2pio_xchunk *c = p2pio_xpool_chunk(x->pool, layer, expert);

	/* Not at home: its home could not be mapped (xcache_homes_map() failed the load). */
	return c && c->at_home ? c->addr : 0;
}

int xcache_check_ids(const struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
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
	       !x->ent[idx(x, layer, expert)].zombie && !xcache_load(x, layer, expert, true, false);
}

/* Prefetch what is absent of @ids; the number of loads started. Called locked. */
int xcache_prefetch_locked(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
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
void xcache_prefetch_next_layer(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
				uint32_t n)
{
	uint32_t next = next_moe_layer(x, layer);

	if (!n)
		return;
	xcache_prefetch_unhold(x);
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
	xcache_homes_map(x);
}

/*
 * Unmap the homes of the experts evicted since the last flush (the pool defers them: a
 * miss maps the victim's chunk at its own home at once and submits its reads; the
 * victim's home is unmapped here, after the batch, when the caller releases a layer and
 * the GPU still has that layer's work to do). No queued work reads a victim: the core
 * evicts only experts whose release events have completed. Called locked.
 */
void xcache_flush_unmaps(struct p2pio_experts *x)
{
	uint64_t t0;

	if (!p2pio_xpool_ghosts(x->pool))
		return;
	t0 = p2pio_now_ns();
	x->io.late_unmaps += p2pio_xpool_flush(x->pool);
	x->io.late_unmap_ns += p2pio_now_ns() - t0;
}

static bool ids_have(const uint32_t *ids, uint32_t n, uint32_t expert)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (ids[i] == expert)
			return true;
	return false;
}

/*
 * The built-in prefetch holds experts of @layer that @layer's require does not want: let
 * them go, keeping the hold on the ones it wants until the call holds them itself (none of
 * its misses may evict them meanwhile). Called locked.
 */
static void prefetch_unhold_wrong(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
				  uint32_t n)
{
	uint32_t i, kept = 0;

	if (!x->pf_n || x->pf_layer != layer)
		return;
	for (i = 0; i < x->pf_n; i++) {
		uint32_t expert = x->pf_ids[i];

		if (ids_have(ids, n, expert)) {
			x->pf_ids[kept++] = expert;
			continue;
		}
		x->ent[idx(x, layer, expert)].refs--;
		p2pio_residency_busy_put(x->res, layer, expert);
		xcache_bury(x, layer, expert);
	}
	x->pf_n = kept;
}

/*
 * @layer is being required, of @ids[@n]: its experts still loading for a hint that are
 * not among them were wrong guesses. Their reads that no thread has started are withdrawn
 * (p2pio_cancel(): all of a load's reads not reaped yet, or none), so that their bandwidth
 * goes to the loads the decode waits for. A load with a read in progress completes and
 * stays, as an ordinary expert. One with some reads done and reaped and the rest still
 * queued (urgent reads went ahead of them) is cut short: the rest is withdrawn, the
 * expert is not resident, and only what was read stays in the counts. Where a hint
 * several layers ahead is wrong one time in ten, the reads it would have taken are about
 * a tenth of the bytes.
 *
 * Called locked, before the call admits its misses: a withdrawn load gives its room back
 * at once, so a miss takes that room instead of evicting an expert that may be used again,
 * or waiting for a load in flight where the budget is full of loading hints.
 */
void xcache_drop_wrong_hints(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
			     uint32_t n)
{
	uint32_t expert;

	/* Kept or not, a wrong guess is no longer held: its room may go to the misses. */
	prefetch_unhold_wrong(x, layer, ids, n);
	if (x->flags & P2PIO_EXPERTS_KEEP_WRONG_HINTS)
		return;
	for (expert = 0; expert < x->ne; expert++) {
		size_t i = idx(x, layer, expert);
		struct xentry *e = &x->ent[i];
		bool unread;

		/*
		 * A load that failed already (its home unmapped) fails as it is. @pending counts
		 * its reads not reaped; the engine withdraws them only if every one of those
		 * waits unstarted in its queue (none read and not yet reaped either).
		 */
		if (!e->loading || !e->hinted || e->refs || !e->pending || e->err ||
		    ids_have(ids, n, expert))
			continue;
		if (p2pio_cancel(x->q, i, e->pending) != (int)e->pending)
			continue;
		unread = e->pending == e->nreads;
		/* What was not read leaves the counts (where counted since the last reset). */
		if (e->io_epoch == x->io_epoch) {
			x->io.bytes -= e->bytes - e->bytes_done;
			x->io.reads -= e->pending;
			if (unread) {	/* as if never started */
				x->io.loads--;
				x->io.prefetches--;
			}
		}
		if (unread)
			x->io.cancels++;
		else
			x->io.cut_short++;
		e->pending = 0;
		e->err = -ECANCELED;
		e->withdrawn = true;	/* not a read that failed with ECANCELED */
		xcache_finish_load(x, i);
	}
}
