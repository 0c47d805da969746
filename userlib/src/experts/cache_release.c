// SPDX-License-Identifier: MIT
/*
 * cache_release.c - the expert cache's releases: experts released on a stream stay busy
 * in the residency core until the CUDA event recorded after the stream's work on them has
 * completed, so the policy never evicts an expert queued work still reads.
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

/* ---- releases --------------------------------------------------------------------- */

static void xcache_release_done(struct p2pio_experts *x, struct xrelease *r)
{
	uint32_t i;

	for (i = 0; i < r->n; i++) {
		struct p2pio_expert_ref ref = r->refs[i];

		p2pio_residency_busy_put(x->res, ref.layer, ref.expert);
		x->ent[idx(x, ref.layer, ref.expert)].refs--;
		xcache_bury(x, ref.layer, ref.expert);
	}
	r->n = 0;
	r->next = x->rel_free;
	x->rel_free = r;
}

/* Retire releases whose stream work has completed; with @block, wait for the oldest. */
void xcache_poll_releases(struct p2pio_experts *x, bool block)
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
		xcache_release_done(x, r);
	}
}

struct xrelease *xcache_release_get(struct p2pio_experts *x, uint32_t n)
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
void xcache_prefetch_unhold(struct p2pio_experts *x)
{
	uint32_t i;

	for (i = 0; i < x->pf_n; i++) {
		x->ent[idx(x, x->pf_layer, x->pf_ids[i])].refs--;
		p2pio_residency_busy_put(x->res, x->pf_layer, x->pf_ids[i]);
		xcache_bury(x, x->pf_layer, x->pf_ids[i]);
	}
	x->pf_n = 0;
}

void p2pio_experts_drain_releases(struct p2pio_experts *x)
{
	struct xrelease *r;

	while ((r = x->rel)) {
		p2pio_cuda_event_wait(x->cu, r->ev);
		x->rel = r->next;
		xcache_release_done(x, r);
	}
}
