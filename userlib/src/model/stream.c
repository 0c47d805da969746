// SPDX-License-Identifier: MIT
/*
 * model_stream.c - stream a model's layers through a budget of slots while it computes.
 *
 * The caller's thread acquires and releases layers; model_sched.c decides which slot a
 * layer goes to. Loads are submitted to an engine queue; a reaper thread takes their
 * completions and, for each slot whose load finished, stores the load's sequence number in
 * the slot's completion word: on a GPU that word lives in host memory mapped for the
 * device, and acquire makes the caller's stream wait on it (cuStreamWaitValue32), so a
 * layer that is still loading is waited for by the GPU, not by the host. A released slot
 * is reused only once the event recorded on the releasing stream has completed; a
 * prefetcher thread waits for those events, so the next layers start loading the moment a
 * slot frees up, whether or not the caller is inside the library then (at the end of a
 * pass it is typically waiting for the GPU).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "model/model.h"

#define REAP_BATCH 64
#define REAP_TIMEOUT_MS 50

struct slot_rt {
	uint32_t pending;	/* reads of the current load not yet complete */
	int err;		/* first error of the current load */
	uint64_t t_submit;
	uint32_t seq;		/* sequence number of the current load */
	CUevent ev_release;	/* recorded by release on the stream */
	bool ev_recorded;
	CUevent ev_wait0, ev_wait1;	/* around the stream's wait for the load */
	int32_t timed_layer;	/* layer whose stall the wait events measure, -1 none */
	bool poisoned;		/* the load failed while acquired: reload on next use */
};

struct layer_rt {
	struct p2pio_model_tensor *t;	/* the layer's tensors with slot addresses */
	struct p2pio_stream_stats st;
};

struct p2pio_streamer {
	struct p2pio_model *m;
	struct p2pio_ctx *ctx;
	const struct p2pio_cuda *cu;		/* NULL: host target */
	struct p2pio_queue *q;
	struct p2pio_buf *resident;
	struct p2pio_buf *slots;
	uint8_t *slots_host;			/* its CPU mapping, NULL for CUDA memory */
	uint64_t slots_base;

	pthread_mutex_t lock;
	pthread_cond_t cond;			/* a load completed */
	pthread_t reaper;
	bool reaper_started;
	pthread_t prefetcher;
	bool prefetcher_started;
	atomic_bool stop;		/* the reaper */
	bool stop_prefetch;		/* the prefetcher; under lock */

	struct p2pio_sched sched;
	char prefetch_why[128];			/* how the prefetch window was chosen */
	struct slot_rt *rt;
	struct layer_rt *lr;
	volatile uint32_t *flag;		/* completion words, host view */
	CUdeviceptr flag_dev;			/* the same, as the GPU sees them */
	void *flag_mem;

	struct p2pio_stream_stats total;	/* bytes, io_ns, stall_ns, host_wait_ns */
	uint64_t t_start;
	FILE *trace;				/* P2PIO_STREAM_TRACE: a line per event */
	uint64_t trace_t0;
	int fatal;				/* the queue failed: nothing can be waited for */
	int async_err;				/* a load failed after its stream waited on it */
};

/*
 * A line per scheduling event, milliseconds since the streamer opened, to the file that
 * P2PIO_STREAM_TRACE names: for finding where a stall comes from. Called locked.
 */
__attribute__((format(printf, 2, 3)))
static void trace(struct p2pio_streamer *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->trace)
		return;
	fprintf(s->trace, "%10.3f ", (double)(p2pio_model_now_ns() - s->trace_t0) * 1e-6);
	va_start(ap, fmt);
	vfprintf(s->trace, fmt, ap);
	va_end(ap);
	fputc('\n', s->trace);
}

static void finish_load(struct p2pio_streamer *s, uint32_t slot)
{
	struct slot_rt *rt = &s->rt[slot];
	int32_t layer = s->sched.slot[slot].layer;
	uint64_t dt = p2pio_model_now_ns() - rt->t_submit;

	if (layer >= 0) {
		s->lr[layer].st.io_ns += dt;
		s->total.io_ns += dt;
	}
	trace(s, "load-done layer %d slot %u seq %u err %d (%.3f ms)", layer, slot, rt->seq,
	      rt->err, (double)dt * 1e-6);
	/*
	 * Release: the data landed before the GPU may see the new word. A failed load stores
	 * it too, or a stream already waiting would wait forever; the error surfaces from the
	 * next acquire or release instead.
	 */
	__atomic_store_n(&s->flag[slot], rt->seq, __ATOMIC_RELEASE);
	if (rt->err) {
		/* Only a stream that already waits needs telling; others reload it. */
		if (rt->timed_layer == layer && !s->async_err)
			s->async_err = rt->err;
		if (!s->sched.slot[slot].held) {
			p2pio_sched_failed(&s->sched, slot);
			return;
		}
		/* Its stream may still read it: keep the slot until release, never hit it. */
		rt->poisoned = true;
	}
	p2pio_sched_loaded(&s->sched, slot);
}

static void *reaper_main(void *arg)
{
	struct p2pio_streamer *s = arg;
	struct p2pio_cqe cqe[REAP_BATCH];
	int n, i;

	while (!atomic_load(&s->stop)) {
		n = p2pio_complete(s->q, cqe, REAP_BATCH, 1, REAP_TIMEOUT_MS);
		if (n == -ETIMEDOUT || n == -EINTR || n == -EAGAIN || n == 0)
			continue;
		pthread_mutex_lock(&s->lock);
		if (n < 0) {
			s->fatal = n;
			/* No completion will come: let every waiting stream go on. */
			for (i = 0; i < (int)s->sched.nslots; i++)
				__atomic_store_n(&s->flag[i], s->rt[i].seq, __ATOMIC_RELEASE);
			pthread_cond_broadcast(&s->cond);
			pthread_mutex_unlock(&s->lock);
			break;
		}
		for (i = 0; i < n; i++) {
			uint32_t slot = (uint32_t)cqe[i].tag;
			struct slot_rt *rt = &s->rt[slot];

			if (cqe[i].res < 0 && !rt->err)
				rt->err = cqe[i].res;
			if (--rt->pending == 0)
				finish_load(s, slot);
		}
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

/* Collect the stall that @slot's wait events measured, once they have completed. */
static void harvest_timing(struct p2pio_streamer *s, uint32_t slot, bool block)
{
	struct slot_rt *rt = &s->rt[slot];
	float ms = 0;
	uint64_t ns;

	if (rt->timed_layer < 0)
		return;
	if (block)
		s->cu->EventSynchronize(rt->ev_wait1);
	else if (s->cu->EventQuery(rt->ev_wait1) != CUDA_SUCCESS)
		return;
	if (s->cu->EventElapsedTime(&ms, rt->ev_wait0, rt->ev_wait1) == CUDA_SUCCESS && ms > 0) {
		ns = (uint64_t)((double)ms * 1e6);
		s->lr[rt->timed_layer].st.stall_ns += ns;
		s->total.stall_ns += ns;
		trace(s, "stall layer %d slot %u %.3f ms (GPU)", rt->timed_layer, slot, (double)ms);
	}
	rt->timed_layer = -1;
}

/* Mark released slots whose stream work has completed as idle. Called locked. */
static void poll_released(struct p2pio_streamer *s)
{
	uint32_t i;

	if (!s->cu)
		return;
	for (i = 0; i < s->sched.nslots; i++) {
		if (!s->sched.slot[i].busy)
			continue;
		if (s->cu->EventQuery(s->rt[i].ev_release) == CUDA_SUCCESS)
			p2pio_sched_idle(&s->sched, i);
	}
}

/* Start loading @layer into @slot. Called locked; the slot is neither busy nor loading. */
static int start_load(struct p2pio_streamer *s, uint32_t slot, uint32_t layer, const char *who)
{
	const struct p2pio_model_group *g = &s->m->layers[layer];
	uint64_t base = s->slots_base + (uint64_t)slot * s->m->slot_bytes;
	struct slot_rt *rt = &s->rt[slot];
	struct layer_rt *lr = &s->lr[layer];
	uint32_t i;
	int ret;

	harvest_timing(s, slot, true);
	p2pio_sched_assign(&s->sched, slot, layer);
	rt->seq++;
	rt->err = 0;
	rt->poisoned = false;
	rt->pending = g->nruns;
	rt->t_submit = p2pio_model_now_ns();
	trace(s, "load-start layer %u slot %u seq %u by %s", layer, slot, rt->seq, who);
	for (i = 0; i < g->ntensors; i++) {
		lr->t[i].addr = p2pio_buf_addr(s->slots) + base + g->dst[i];
		lr->t[i].host = s->slots_host ? s->slots_host + base + g->dst[i] : NULL;
	}
	for (i = 0; i < g->nruns; i++) {
		struct p2pio_req req = {
			.file = s->m->file,
			.file_offset = g->runs[i].file_off,
			.length = g->runs[i].len,
			.buf = s->slots,
			.buf_offset = base + g->runs[i].dst_off,
			.tag = slot,
		};

		ret = p2pio_submit(s->q, &req, 1);
		if (ret < 0) {
			/* The reads already submitted still complete; the load fails then. */
			rt->err = ret;
			rt->pending -= g->nruns - i;
			if (!rt->pending)
				finish_load(s, slot);
			return ret;
		}
		lr->st.bytes += g->runs[i].len;
		s->total.bytes += g->runs[i].len;
	}
	if (!g->nruns)
		finish_load(s, slot);
	return 0;
}

/*
 * Wait (unlocked) for the stream work on busy @slot, which stays reserved meanwhile so no
 * other thread takes it. Called locked; returns the time waited.
 */
static uint64_t wait_release(struct p2pio_streamer *s, uint32_t slot)
{
	uint64_t t0 = p2pio_model_now_ns();

	p2pio_sched_reserve(&s->sched, slot, true);
	trace(s, "wait-release slot %u layer %d", slot, s->sched.slot[slot].layer);
	pthread_mutex_unlock(&s->lock);
	s->cu->EventSynchronize(s->rt[slot].ev_release);
	pthread_mutex_lock(&s->lock);
	trace(s, "released slot %u", slot);
	p2pio_sched_reserve(&s->sched, slot, false);
	p2pio_sched_idle(&s->sched, slot);
	pthread_cond_broadcast(&s->cond);
	return p2pio_model_now_ns() - t0;
}

/* What prefetch_step() did. */
enum prefetch_step_result {
	PREFETCH_NONE,		/* nothing in the window can start now */
	PREFETCH_WAITED,	/* waited for a victim's stream work: look again */
	PREFETCH_STARTED,	/* a load started */
};

/*
 * One step of filling the prefetch window, for the prefetcher thread and for
 * p2pio_streamer_wait_prefetch(), locked: start the window's next layer in a free slot, or
 * wait for the stream work of the slot it would take (the window may move meanwhile, so
 * the caller looks again). A negative errno when the load could not start.
 */
static int prefetch_step(struct p2pio_streamer *s, const char *who)
{
	int layer = p2pio_sched_next_prefetch(&s->sched);
	int slot = layer < 0 || s->fatal ? -1 : p2pio_sched_victim(&s->sched, true, true);
	int ret;

	if (slot < 0)
		return PREFETCH_NONE;
	if (s->sched.slot[slot].busy) {
		wait_release(s, (uint32_t)slot);
		return PREFETCH_WAITED;
	}
	ret = start_load(s, (uint32_t)slot, (uint32_t)layer, who);
	return ret ? ret : PREFETCH_STARTED;
}

/*
 * The prefetcher: keeps the prefetch window loading, waiting for released slots' stream
 * work itself. Woken by acquire, release and load completions.
 */
static void *prefetcher_main(void *arg)
{
	struct p2pio_streamer *s = arg;
	CUcontext prev = p2pio_ctx_enter(s->ctx);
	int step;

	pthread_mutex_lock(&s->lock);
	while (!s->stop_prefetch) {
		step = prefetch_step(s, "prefetcher");
		/* Nothing to start, or a start that failed: until something changes. */
		if (step == PREFETCH_NONE || step < 0)
			pthread_cond_wait(&s->cond, &s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	p2pio_ctx_leave(s->ctx, prev);
	return NULL;
}

/* Fill the prefetch window with what can load without waiting. Called locked. */
static void prefetch(struct p2pio_streamer *s)
{
	int layer, slot;

	poll_released(s);
	while ((layer = p2pio_sched_next_prefetch(&s->sched)) >= 0) {
		slot = p2pio_sched_victim(&s->sched, true, false);
		if (slot < 0)
			break;
		if (start_load(s, (uint32_t)slot, (uint32_t)layer, "prefetch"))
			break;
	}
}

int p2pio_streamer_acquire(struct p2pio_streamer *s, uint32_t layer, void *stream,
			   struct p2pio_layer *out)
{
	CUstream cs = (CUstream)stream;
	struct slot_rt *rt;
	CUcontext prev = NULL;
	int slot, ret = 0;
	uint64_t t0;

	if (layer >= s->sched.nlayers)
		return -ERANGE;
	prev = p2pio_ctx_enter(s->ctx);
	pthread_mutex_lock(&s->lock);
	if (s->async_err) {
		ret = s->async_err;
		s->async_err = 0;
		goto out_unlock;
	}
	poll_released(s);
	slot = p2pio_sched_lookup(&s->sched, layer);
	if (slot >= 0 && s->sched.slot[slot].held) {
		ret = -EBUSY;
		goto out_unlock;
	}
	if (slot >= 0 && s->rt[slot].poisoned) {
		if (s->sched.slot[slot].busy)
			s->total.host_wait_ns += wait_release(s, (uint32_t)slot);
		s->rt[slot].poisoned = false;
		p2pio_sched_failed(&s->sched, (uint32_t)slot);
		slot = -1;
	}
	while (slot < 0) {
		if (s->fatal) {
			ret = s->fatal;
			goto out_unlock;
		}
		slot = p2pio_sched_victim(&s->sched, false, true);
		if (slot == -EAGAIN) {
			/* Every candidate is loading: wait for a load to finish. */
			t0 = p2pio_model_now_ns();
			pthread_cond_wait(&s->cond, &s->lock);
			s->total.host_wait_ns += p2pio_model_now_ns() - t0;
			slot = p2pio_sched_lookup(&s->sched, layer);
			continue;
		}
		if (slot < 0) {
			ret = slot;
			goto out_unlock;
		}
		if (s->sched.slot[slot].busy)
			s->total.host_wait_ns += wait_release(s, (uint32_t)slot);
		/* The lock was dropped: start over if something changed meanwhile. */
		if (p2pio_sched_lookup(&s->sched, layer) >= 0 || s->sched.slot[slot].loading ||
		    s->sched.slot[slot].held || s->sched.slot[slot].busy) {
			slot = p2pio_sched_lookup(&s->sched, layer);
			continue;
		}
		ret = start_load(s, (uint32_t)slot, layer, "acquire");
		if (ret)
			goto out_unlock;
	}
	rt = &s->rt[slot];
	if (s->sched.slot[slot].loading) {
		if (s->cu && !s->fatal) {
			/* The GPU waits for the load; the host goes on. */
			harvest_timing(s, (uint32_t)slot, true);
			s->cu->EventRecord(rt->ev_wait0, cs);
			s->cu->StreamWaitValue32(cs, s->flag_dev + slot * sizeof(uint32_t), rt->seq,
						 CU_STREAM_WAIT_VALUE_GEQ);
			s->cu->EventRecord(rt->ev_wait1, cs);
			rt->timed_layer = (int32_t)layer;
		} else {
			t0 = p2pio_model_now_ns();
			while (s->sched.slot[slot].loading && !s->fatal)
				pthread_cond_wait(&s->cond, &s->lock);
			t0 = p2pio_model_now_ns() - t0;
			s->total.host_wait_ns += t0;
			s->total.stall_ns += t0;
			s->lr[layer].st.stall_ns += t0;
		}
	}
	if (s->sched.where[layer] != slot || (!s->sched.slot[slot].loading && rt->err)) {
		/* The load failed (the scheduler emptied the slot). */
		ret = rt->err ? rt->err : (s->fatal ? s->fatal : -EIO);
		goto out_unlock;
	}
	trace(s, "acquire layer %u slot %d%s", layer, slot,
	      s->sched.slot[slot].loading ? " (loading: the stream waits)" : "");
	p2pio_sched_hold(&s->sched, (uint32_t)slot);
	out->index = layer;
	out->tensors = s->lr[layer].t;
	out->ntensors = s->m->layers[layer].ntensors;
	out->bytes = s->m->layers[layer].bytes;
	out->slot = (uint32_t)slot;
	prefetch(s);
	pthread_cond_broadcast(&s->cond);
out_unlock:
	pthread_mutex_unlock(&s->lock);
	p2pio_ctx_leave(s->ctx, prev);
	return ret;
}

int p2pio_streamer_release(struct p2pio_streamer *s, uint32_t layer, void *stream)
{
	CUcontext prev;
	int slot, ret = 0;

	if (layer >= s->sched.nlayers)
		return -EINVAL;
	prev = p2pio_ctx_enter(s->ctx);
	pthread_mutex_lock(&s->lock);
	slot = p2pio_sched_lookup(&s->sched, layer);
	if (slot < 0 || !s->sched.slot[slot].held) {
		ret = s->async_err ? s->async_err : -EINVAL;
		s->async_err = 0;
		goto out_unlock;
	}
	if (s->cu)
		s->cu->EventRecord(s->rt[slot].ev_release, (CUstream)stream);
	trace(s, "release layer %u slot %d", layer, slot);
	p2pio_sched_release(&s->sched, (uint32_t)slot, s->cu != NULL);
	prefetch(s);
	pthread_cond_broadcast(&s->cond);
	if (s->async_err) {
		ret = s->async_err;
		s->async_err = 0;
	}
out_unlock:
	pthread_mutex_unlock(&s->lock);
	p2pio_ctx_leave(s->ctx, prev);
	return ret;
}

uint32_t p2pio_streamer_slots(const struct p2pio_streamer *s)
{
	return s->sched.nslots;
}

uint32_t p2pio_streamer_prefetch(const struct p2pio_streamer *s, const char **why)
{
	if (why)
		*why = s->prefetch_why;
	return s->sched.prefetch;
}

/*
 * As the prefetcher does, from the caller's thread: load the window, waiting for busy
 * slots' stream work, until nothing is left to start and no load is in flight. At most a
 * window's worth of loads: one that failed empties its slot and would be started again
 * for ever (its error comes from the acquire).
 */
int p2pio_streamer_wait_prefetch(struct p2pio_streamer *s)
{
	CUcontext prev = p2pio_ctx_enter(s->ctx);
	uint32_t i, started = 0;
	int step, ret = 0;
	bool pending;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		if (s->fatal) {
			ret = s->fatal;
			break;
		}
		poll_released(s);
		step = started < s->sched.prefetch ? prefetch_step(s, "wait-prefetch") :
						     PREFETCH_NONE;
		if (step < 0) {
			ret = step;
			break;
		}
		if (step == PREFETCH_STARTED)
			started++;
		if (step != PREFETCH_NONE)
			continue;
		pending = false;
		for (i = 0; i < s->sched.nslots; i++)
			pending |= s->sched.slot[i].loading || s->sched.slot[i].reserved;
		if (!pending)
			break;
		pthread_cond_wait(&s->cond, &s->lock);
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	p2pio_ctx_leave(s->ctx, prev);
	return ret;
}

int p2pio_streamer_tensor(const struct p2pio_streamer *s, const char *name,
			  struct p2pio_model_tensor *out)
{
	int ret = p2pio_model_tensor(s->m, name, out);

	if (ret)
		return ret;
	return out->layer >= 0 ? -EINVAL : 0;
}

static void counts_to_stats(const struct p2pio_sched_counts *c, struct p2pio_stream_stats *st)
{
	st->loads = c->loads;
	st->acquires = c->acquires;
	st->hits = c->hits;
	st->reuses = c->reuses;
	st->wasted = c->wasted;
}

void p2pio_streamer_stats(struct p2pio_streamer *s, struct p2pio_stream_stats *total,
			  struct p2pio_stream_stats *per_layer, uint32_t n)
{
	CUcontext prev = p2pio_ctx_enter(s->ctx);
	uint32_t i;

	pthread_mutex_lock(&s->lock);
	if (s->cu)
		for (i = 0; i < s->sched.nslots; i++)
			harvest_timing(s, i, false);
	if (total) {
		*total = s->total;
		counts_to_stats(&s->sched.total, total);
		total->wall_ns = p2pio_model_now_ns() - s->t_start;
	}
	for (i = 0; per_layer && i < n && i < s->sched.nlayers; i++) {
		per_layer[i] = s->lr[i].st;
		counts_to_stats(&s->sched.layer[i], &per_layer[i]);
	}
	pthread_mutex_unlock(&s->lock);
	p2pio_ctx_leave(s->ctx, prev);
}

void p2pio_streamer_reset_stats(struct p2pio_streamer *s)
{
	CUcontext prev = p2pio_ctx_enter(s->ctx);
	uint32_t i;

	pthread_mutex_lock(&s->lock);
	/* Waits measured before the reset belong to the time before it. */
	if (s->cu)
		for (i = 0; i < s->sched.nslots; i++)
			harvest_timing(s, i, true);
	memset(&s->total, 0, sizeof(s->total));
	memset(&s->sched.total, 0, sizeof(s->sched.total));
	memset(s->sched.layer, 0, sizeof(*s->sched.layer) * s->sched.nlayers);
	for (i = 0; i < s->sched.nlayers; i++)
		memset(&s->lr[i].st, 0, sizeof(s->lr[i].st));
	s->t_start = p2pio_model_now_ns();
	pthread_mutex_unlock(&s->lock);
	p2pio_ctx_leave(s->ctx, prev);
}

/* Completion words: device-mapped pinned memory on a GPU, plain memory otherwise. */
static int flags_alloc(struct p2pio_streamer *s, uint32_t n)
{
	int ret = p2pio_cuda_flags_alloc(s->cu, n, &s->flag_mem, &s->flag_dev);

	s->flag = s->flag_mem;
	return ret;
}

static int events_create(struct p2pio_streamer *s)
{
	uint32_t i;

	for (i = 0; i < s->sched.nslots; i++) {
		struct slot_rt *rt = &s->rt[i];

		rt->timed_layer = -1;
		if (!s->cu)
			continue;
		if (s->cu->EventCreate(&rt->ev_release, CU_EVENT_DISABLE_TIMING) ||
		    s->cu->EventCreate(&rt->ev_wait0, 0) || s->cu->EventCreate(&rt->ev_wait1, 0))
			return -ENOMEM;
	}
	return 0;
}

static int layers_alloc(struct p2pio_streamer *s)
{
	struct p2pio_model *m = s->m;
	uint32_t l, i;

	s->lr = calloc(m->nlayers, sizeof(*s->lr));
	if (!s->lr)
		return -ENOMEM;
	for (l = 0; l < m->nlayers; l++) {
		const struct p2pio_model_group *g = &m->layers[l];

		s->lr[l].t = calloc(g->ntensors ? g->ntensors : 1, sizeof(*s->lr[l].t));
		if (!s->lr[l].t)
			return -ENOMEM;
		for (i = 0; i < g->ntensors; i++) {
			s->lr[l].t[i] = m->tensors[g->idx[i]];
			s->lr[l].t[i].addr = 0;
			s->lr[l].t[i].host = NULL;
		}
	}
	return 0;
}

static int streamer_slots(struct p2pio_model *m, const struct p2pio_streamer_opts *opts,
			  uint32_t *slots, struct p2pio_error *err)
{
	uint64_t budget;
	int ret;

	if (opts && opts->slots) {
		*slots = opts->slots;
		return 0;
	}
	if (opts && opts->budget) {
		budget = opts->budget;
	} else {
		/*
		 * The default: a quarter of the model, but room for two slots, so that a load
		 * overlaps compute even where the resident tensors take most of that quarter.
		 */
		uint64_t layers, two;

		/* Sizes from the file: a crafted one must not wrap them (session 11's review). */
		if (p2pio_mul_overflow(m->slot_bytes, m->nlayers, &layers) ||
		    p2pio_add_overflow(layers, m->resident.region, &budget) ||
		    p2pio_mul_overflow(m->slot_bytes, 2, &two) ||
		    p2pio_add_overflow(two, m->resident.region, &two))
			return p2pio_set_error(err, -EOVERFLOW, P2PIO_NO_OFFSET,
					       "the model's layers (%u of %llu bytes) overflow a budget",
					       m->nlayers, (unsigned long long)m->slot_bytes);
		budget /= 4;
		if (budget < two)
			budget = two;
	}
	ret = p2pio_sched_slots_for_budget(budget, m->resident.region, m->slot_bytes, slots);
	if (ret)
		return p2pio_set_error(err, ret, P2PIO_NO_OFFSET,
				       "a budget of %llu bytes %s the resident tensors (%llu) %s one "
				       "layer slot (%llu bytes): give at least %llu",
				       (unsigned long long)budget,
				       budget < m->resident.region ? "does not hold" : "holds",
				       (unsigned long long)m->resident.region,
				       budget < m->resident.region ? "and" : "but not",
				       (unsigned long long)m->slot_bytes,
				       (unsigned long long)(m->resident.region + m->slot_bytes));
	return 0;
}

/*
 * The prefetch window: the caller's, or by default every slot but the acquired layer's,
 * up to P2PIO_SCHED_PREFETCH_MAX (model/plan.h says why); what was chosen goes to @why.
 */
static uint32_t streamer_prefetch(const struct p2pio_model *m,
				  const struct p2pio_streamer_opts *opts, uint32_t nslots,
				  char *why, size_t len)
{
	uint32_t usable = nslots < m->nlayers ? nslots : m->nlayers;
	uint32_t cap = usable ? usable - 1 : 0, n;

	if (opts && (opts->flags & P2PIO_STREAM_NO_PREFETCH)) {
		snprintf(why, len, "none: P2PIO_STREAM_NO_PREFETCH");
		return 0;
	}
	if (opts && opts->prefetch) {
		n = opts->prefetch < cap ? opts->prefetch : cap;
		if (n < opts->prefetch)
			snprintf(why, len, "given %u, at most %u with %u slots", opts->prefetch, n,
				 usable);
		else
			snprintf(why, len, "given");
		return n;
	}
	n = p2pio_sched_default_prefetch(nslots, m->nlayers);
	if (!n)
		snprintf(why, len, "default: one slot, none to load ahead into");
	else if (n == cap)
		snprintf(why, len, "default: every slot but the acquired layer's (%u slots)", usable);
	else
		snprintf(why, len, "default: %u slots, at most %u loading ahead, the rest keep layers",
			 usable, P2PIO_SCHED_PREFETCH_MAX);
	return n;
}

int p2pio_streamer_open(struct p2pio_model *m, const struct p2pio_streamer_opts *opts,
			struct p2pio_streamer **out, struct p2pio_error *err)
{
	uint32_t nslots, prefetch, flags = opts ? opts->flags : 0, i;
	struct p2pio_streamer *s;
	CUcontext prev = NULL;
	char why[160];
	uint64_t t, slots_bytes;
	int ret;

	if (m->streamer || m->arena || m->experts_open)
		return p2pio_set_error(err, -EBUSY, P2PIO_NO_OFFSET,
				       "the model is already streaming, loaded whole or under an expert cache");
	if (!m->nlayers)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "the model has no layers (blk.N.*) to stream");
	ret = streamer_slots(m, opts, &nslots, err);
	if (ret)
		return ret;
	s = calloc(1, sizeof(*s));
	if (!s)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	prefetch = streamer_prefetch(m, opts, nslots, s->prefetch_why, sizeof(s->prefetch_why));
	s->m = m;
	s->ctx = m->ctx;
	s->trace_t0 = p2pio_model_now_ns();
	/* secure_getenv: a set-user-ID program does not write where its caller says. */
	if (secure_getenv("P2PIO_STREAM_TRACE"))
		s->trace = fopen(secure_getenv("P2PIO_STREAM_TRACE"), "we");
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	if (m->gpu) {
		s->cu = p2pio_cuda_get(why, sizeof(why));
		if (!s->cu) {
			ret = p2pio_set_error(err, -ENODEV, P2PIO_NO_OFFSET, "CUDA: %s", why);
			goto out_close;
		}
		prev = p2pio_ctx_enter(s->ctx);
	}
	ret = p2pio_sched_init(&s->sched, m->nlayers, nslots, prefetch,
			       (flags & P2PIO_STREAM_LRU) != 0);
	if (ret)
		goto out_nomem;
	nslots = s->sched.nslots;
	s->rt = calloc(nslots, sizeof(*s->rt));
	if (!s->rt || layers_alloc(s) || flags_alloc(s, nslots) || events_create(s))
		goto out_nomem;
	if (p2pio_mul_overflow(nslots, m->slot_bytes, &slots_bytes)) {
		ret = p2pio_set_error(err, -EOVERFLOW, P2PIO_NO_OFFSET,
				      "%u slots of %llu bytes overflow", nslots,
				      (unsigned long long)m->slot_bytes);
		goto out_close;
	}
	ret = p2pio_buf_alloc(s->ctx, m->mem, slots_bytes, &s->slots, err);
	if (ret)
		goto out_close;
	s->slots_host = p2pio_buf_host_ptr(s->slots);
	if (m->resident.region) {
		ret = p2pio_buf_alloc(s->ctx, m->mem, m->resident.region, &s->resident, err);
		if (ret)
			goto out_close;
	}
	/* The resident tensors load now, synchronously. */
	t = p2pio_model_now_ns();
	ret = p2pio_model_read_group(m, &m->resident, s->resident, 0, P2PIO_MODEL_DEF_CHUNK, NULL,
				     NULL, NULL);
	if (ret) {
		p2pio_set_error(err, ret, P2PIO_NO_OFFSET, "loading the non-layer tensors: %s",
				p2pio_strerror(ret));
		goto out_close;
	}
	for (i = 0; i < m->resident.ntensors; i++) {
		struct p2pio_model_tensor *rt = &m->tensors[m->resident.idx[i]];
		uint8_t *host = p2pio_buf_host_ptr(s->resident);

		rt->addr = p2pio_buf_addr(s->resident) + m->resident.dst[i];
		rt->host = host ? host + m->resident.dst[i] : NULL;
	}
	s->total.bytes = m->resident.region;
	s->total.io_ns = p2pio_model_now_ns() - t;

	ret = p2pio_queue_create(s->ctx, &s->q);
	if (ret)
		goto out_close;
	ret = pthread_create(&s->reaper, NULL, reaper_main, s);
	if (ret) {
		ret = -ret;
		goto out_close;
	}
	s->reaper_started = true;
	s->t_start = p2pio_model_now_ns();
	/* Start with layer 0 and its prefetch window, as if the last layer had just run. */
	pthread_mutex_lock(&s->lock);
	s->sched.cursor = (int32_t)m->nlayers - 1;
	for (i = 0; i <= s->sched.prefetch && i < nslots && i < m->nlayers; i++)
		start_load(s, i, i, "open");
	pthread_mutex_unlock(&s->lock);
	/* Without a GPU a released slot is free at once: acquire and release prefetch. */
	if (s->cu && prefetch) {
		ret = pthread_create(&s->prefetcher, NULL, prefetcher_main, s);
		if (ret) {
			ret = -ret;
			goto out_close;
		}
		s->prefetcher_started = true;
	}
	m->streamer = s;
	if (s->cu)
		p2pio_ctx_leave(s->ctx, prev);
	*out = s;
	return 0;

out_nomem:
	ret = p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory setting up %u slots",
			      nslots);
out_close:
	if (s->cu)
		p2pio_ctx_leave(s->ctx, prev);
	p2pio_streamer_close(s);
	return ret;
}

void p2pio_streamer_close(struct p2pio_streamer *s)
{
	CUcontext prev;
	uint32_t i;

	if (!s)
		return;
	prev = p2pio_ctx_enter(s->ctx);
	if (s->prefetcher_started) {
		pthread_mutex_lock(&s->lock);
		s->stop_prefetch = true;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->prefetcher, NULL);
	}
	if (s->reaper_started) {
		pthread_mutex_lock(&s->lock);
		for (;;) {
			bool loading = false;

			for (i = 0; i < s->sched.nslots; i++)
				loading |= s->sched.slot[i].loading;
			if (!loading || s->fatal)
				break;
			pthread_cond_wait(&s->cond, &s->lock);
		}
		pthread_mutex_unlock(&s->lock);
		atomic_store(&s->stop, true);
		pthread_join(s->reaper, NULL);
	}
	for (i = 0; s->rt && i < s->sched.nslots; i++) {
		struct slot_rt *rt = &s->rt[i];

		if (!s->cu)
			continue;
		/* Stream work may still read the slot: it must finish before the memory goes. */
		if (rt->ev_release)
			s->cu->EventSynchronize(rt->ev_release);
		if (rt->ev_wait1)
			s->cu->EventSynchronize(rt->ev_wait1);
		if (rt->ev_release)
			s->cu->EventDestroy(rt->ev_release);
		if (rt->ev_wait0)
			s->cu->EventDestroy(rt->ev_wait0);
		if (rt->ev_wait1)
			s->cu->EventDestroy(rt->ev_wait1);
	}
	if (s->q && !s->fatal)
		p2pio_queue_destroy(s->q);
	p2pio_buf_free(s->slots);
	p2pio_buf_free(s->resident);
	p2pio_cuda_flags_free(s->cu, s->flag_mem);
	for (i = 0; s->lr && i < s->sched.nlayers; i++)
		free(s->lr[i].t);
	free(s->lr);
	free(s->rt);
	p2pio_sched_fini(&s->sched);
	if (s->m->streamer == s) {
		s->m->streamer = NULL;
		for (i = 0; i < s->m->resident.ntensors; i++) {
			s->m->tensors[s->m->resident.idx[i]].addr = 0;
			s->m->tensors[s->m->resident.idx[i]].host = NULL;
		}
	}
	if (s->trace)
		fclose(s->trace);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	p2pio_ctx_leave(s->ctx, prev);
	free(s);
}
