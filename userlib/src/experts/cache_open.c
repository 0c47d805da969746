// SPDX-License-Identifier: MIT
/*
 * cache_open.c - open and close an expert cache: the dense part loaded resident (as the
 * model loader plans a group), the pool of expert memory, the residency core, the
 * completion words and the reaper.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experts/cache.h"
#include "experts/expert_io.h"

void p2pio_experts_opts_init(struct p2pio_experts_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
}

/* Every tensor that is not an expert tensor, read once into one buffer. */
static int dense_load(struct p2pio_experts *x, struct p2pio_error *err)
{
	struct p2pio_model *m = x->m;
	uint32_t i, n = 0;
	uint8_t *host;
	int ret;

	x->dense.number = P2PIO_GGUF_NO_LAYER;
	x->dense.idx = calloc(m->ntensors ? m->ntensors : 1, sizeof(*x->dense.idx));
	x->dense_addr = calloc(m->ntensors ? m->ntensors : 1, sizeof(*x->dense_addr));
	if (!x->dense.idx || !x->dense_addr)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	for (i = 0; i < m->ntensors; i++)
		if (!p2pio_gguf_tensor(m->gguf, i)->n_experts)
			x->dense.idx[n++] = i;
	x->dense.ntensors = n;
	ret = p2pio_model_group_plan(m, &x->dense, P2PIO_MODEL_MERGE_GAP, err);
	if (ret || !x->dense.region)
		return ret;
	ret = p2pio_buf_alloc(x->ctx, m->mem, x->dense.region, &x->dense_buf, err);
	if (ret)
		return ret;
	ret = p2pio_model_read_group(m, &x->dense, x->dense_buf, 0, P2PIO_MODEL_DEF_CHUNK, NULL,
				     NULL, NULL);
	if (ret)
		return p2pio_set_error(err, ret, P2PIO_NO_OFFSET, "loading the dense tensors: %s",
				       p2pio_strerror(ret));
	host = p2pio_buf_host_ptr(x->dense_buf);
	for (i = 0; i < n; i++)
		x->dense_addr[x->dense.idx[i]] = p2pio_buf_addr(x->dense_buf) + x->dense.dst[i];
	(void)host;
	return 0;
}

/* The bytes one expert of each layer takes laid out (the largest over its experts). */
static int plan_layers(struct p2pio_experts *x, uint64_t *region, struct p2pio_error *err)
{
	struct p2pio_expert_plan plan;
	uint32_t l;
	uint64_t e;
	int ret;

	for (l = 0; l < x->nl; l++) {
		const struct p2pio_gguf_layer *gl = p2pio_gguf_layer(x->m->gguf, l);

		region[l] = 0;
		x->data_len[l] = gl->expert_bytes;
		for (e = 0; e < gl->n_experts; e++) {
			ret = p2pio_expert_plan(x->m->gguf, gl, e, P2PIO_MODEL_BLOCK,
						x->m->file_size, &plan);
			if (ret)
				return p2pio_set_error(err, ret, P2PIO_NO_OFFSET,
						       "layer %u expert %llu: %s", l,
						       (unsigned long long)e,
						       ret == -E2BIG ? "more than 16 expert tensors"
								     : p2pio_strerror(ret));
			if (plan.region > region[l])
				region[l] = plan.region;
		}
	}
	return 0;
}

static uint64_t largest_expert(const struct p2pio_experts *x)
{
	uint64_t largest = 0;
	uint32_t l;

	for (l = 0; l < x->nl; l++)
		if (x->data_len[l] > largest)
			largest = x->data_len[l];
	return largest;
}

/* @n reads per load, fewer where a read of the @largest expert would be under the floor. */
static uint32_t pieces_floor(uint64_t largest, uint64_t n)
{
	uint64_t most = largest / P2PIO_EXPERTS_MIN_PIECE;

	if (n > most)
		n = most;
	return n ? (uint32_t)n : 1;
}

/*
 * Reads per load (and in @lone, for a load that starts while no other is in flight): the
 * caller's; none where the caller gave a read size instead; by default half the engine's
 * threads (two loads in flight fill them: a decode has misses in flight nearly all the
 * time, and larger reads cost less per byte), and all of them for a load that starts
 * alone (nothing else would keep the other half busy), no more than leave each read
 * P2PIO_EXPERTS_MIN_PIECE. On the H200 (zram, 14 threads) 7 reads per gpt-oss-120b
 * expert decoded at 0.99 of the old bound at 10 % resident, against 0.82 with 1 MiB
 * reads, 0.75 with 14 and 0.69 with 28 reads per load; a lone miss took 0.93 ms in 14
 * reads and 1.17 ms in 7 (Documentation/moe.md, third round). p2pio-moe still sets 14
 * threads there; a context left to its defaults has three BOUNCE rings per four CPUs
 * since session 21 (12 on 16 CPUs: 6 reads per load, 12 alone; not measured with the
 * cache).
 */
static uint32_t read_pieces(const struct p2pio_experts *x, const struct p2pio_experts_opts *o,
			    uint64_t largest, uint32_t *lone)
{
	uint32_t threads = x->ctx->opts.threads ?: 2;

	*lone = 0;
	if (o && o->size >= offsetof(struct p2pio_experts_opts, read_pieces) + sizeof(uint32_t) &&
	    o->read_pieces)
		return *lone = o->read_pieces;
	if (o && o->size >= offsetof(struct p2pio_experts_opts, read_piece) + sizeof(uint64_t) &&
	    o->read_piece)
		return 0;
	*lone = pieces_floor(largest, threads);
	return pieces_floor(largest, threads / 2);
}

/*
 * The bytes of each read of a load cut by size: the caller's (rounded up to the block),
 * at most the engine's chunk (which would cut it again); with @pieces, what that makes of
 * the largest expert (for the statistics).
 */
static uint64_t read_piece(const struct p2pio_experts *x, const struct p2pio_experts_opts *o,
			   uint64_t largest, uint32_t pieces)
{
	const struct p2pio_ctx_opts *co = &x->ctx->opts;
	uint64_t piece;

	if (pieces)
		piece = p2pio_round_up(largest / pieces + 1, P2PIO_MODEL_BLOCK);
	else
		piece = p2pio_round_up(o->read_piece, P2PIO_MODEL_BLOCK);
	if (co->chunk_size && piece > co->chunk_size)
		piece = p2pio_round_down(co->chunk_size, P2PIO_MODEL_BLOCK) ?: P2PIO_MODEL_BLOCK;
	return piece;
}

static int make_pool(struct p2pio_experts *x, const uint64_t *region, uint64_t limit,
		     struct p2pio_error *err)
{
	int ret;

	switch (x->m->mem) {
	case P2PIO_MEM_CUDA:
		ret = p2pio_xmem_cuda_create(x->ctx, &x->xops, &x->xarg, err);
		if (ret)
			return ret;
		break;
	case P2PIO_MEM_NVDOUBLE:
		ret = p2pio_xmem_nvd_create(x->ctx, &x->xops, &x->xarg);
		break;
	default:
		ret = p2pio_xmem_host_create(x->ctx, &x->xops, &x->xarg);
		break;
	}
	if (ret)
		return p2pio_set_error(err, ret, P2PIO_NO_OFFSET, "expert memory: %s",
				       p2pio_strerror(ret));
	ret = p2pio_xpool_create(x->xops, x->xarg, x->nl, x->ne, region, limit, &x->pool);
	if (ret)
		return p2pio_set_error(err, ret, P2PIO_NO_OFFSET,
				       "reserving address space for every expert (%s): %s",
				       x->xops->name, p2pio_strerror(ret));
	return 0;
}

static int flags_alloc(struct p2pio_experts *x, size_t n)
{
	int ret = p2pio_cuda_flags_alloc(x->cu, n, &x->flag_mem, &x->flag_dev);

	x->flag = x->flag_mem;
	return ret;
}

/*
 * The stall timings' events, which the caller's thread waits on as it does on the release
 * events (cache_release.c): spinning events, not CU_EVENT_BLOCKING_SYNC, waited on by a query and
 * sched_yield() between queries (p2pio_cuda_event_wait()), so that the wait leaves the
 * CPU to the engine's threads where the CPUs are the storage (zram). With blocking-sync
 * events every decode at 50 % resident on the H200 hung (8 of 8; none at 10 and 25 %),
 * and the same tree with spinning ones did not (Documentation/moe.md, third round; the
 * cause is not found); a blocking-sync waiter also wakes 250-300 us late (seventh round).
 */
static int timings_create(struct p2pio_experts *x)
{
	uint32_t i;

	for (i = 0; x->cu && i < NR_TIMINGS; i++)
		if (x->cu->EventCreate(&x->tim[i].e0, 0) || x->cu->EventCreate(&x->tim[i].e1, 0))
			return -ENOMEM;
	return 0;
}

static int check_budget(struct p2pio_experts *x, const struct p2pio_experts_opts *o,
			const uint64_t *region, uint64_t *expert_budget, struct p2pio_error *err)
{
	uint64_t all = 0, largest = 0, n, b;
	uint32_t l;

	for (l = 0; l < x->nl; l++) {
		const struct p2pio_gguf_layer *gl = p2pio_gguf_layer(x->m->gguf, l);
		uint64_t len = p2pio_xpool_expert_bytes(x->pool, l);

		(void)region;
		if (len > largest)
			largest = len;
		if (p2pio_mul_overflow(len, gl->n_experts, &n) || p2pio_add_overflow(all, n, &all))
			return p2pio_set_error(err, -EOVERFLOW, P2PIO_NO_OFFSET, "experts too large");
	}
	b = o && o->budget ? o->budget : x->dense.region + all;
	if (b < x->dense.region || b - x->dense.region < largest)
		return p2pio_set_error(err, -ENOSPC, P2PIO_NO_OFFSET,
				       "a budget of %llu bytes does not hold the dense part (%llu) and "
				       "one expert (%llu bytes): give at least %llu",
				       (unsigned long long)b, (unsigned long long)x->dense.region,
				       (unsigned long long)largest,
				       (unsigned long long)(x->dense.region + largest));
	x->budget = b;
	*expert_budget = b - x->dense.region;
	return 0;
}

/*
 * The policy: the caller's own table (options that carry policy_ops), or a built-in one by
 * name (LRU by default). A caller's table is checked for every hook the core calls.
 */
static int policy_choose(const struct p2pio_experts_opts *opts,
			 const struct p2pio_expert_policy_ops **pol, struct p2pio_error *err)
{
	const struct p2pio_expert_policy_ops *p = NULL;

	if (opts && opts->size >= offsetof(struct p2pio_experts_opts, policy_ops) +
				  sizeof(opts->policy_ops))
		p = opts->policy_ops;
	if (p) {
		if (opts->policy)
			return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
					       "give a policy by name or by table, not both");
		if (!p->name || !p->create || !p->destroy || !p->inserted || !p->accessed ||
		    !p->removed || !p->victim)
			return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
					       "policy table '%s' lacks a hook the cache calls",
					       p->name ? p->name : "(unnamed)");
		*pol = p;
		return 0;
	}
	p = p2pio_expert_policy_find(opts && opts->policy ? opts->policy :
							     P2PIO_EXPERTS_DEFAULT_POLICY);
	if (!p)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "no eviction policy named '%s'",
				       opts->policy);
	*pol = p;
	return 0;
}

int p2pio_experts_open(struct p2pio_model *m, const struct p2pio_experts_opts *opts,
		       struct p2pio_experts **out, struct p2pio_error *err)
{
	const struct p2pio_expert_policy_ops *pol = NULL;
	struct p2pio_residency_opts ro;
	struct p2pio_experts *x;
	uint64_t *region = NULL, eb = 0, used = 0, largest;
	const char *arch = NULL;
	CUcontext prev = NULL;
	char why[160], key[160];
	uint32_t l;
	int ret;

	if (!m || !out)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "missing argument");
	if (opts && opts->size < offsetof(struct p2pio_experts_opts, reserved))
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "struct p2pio_experts_opts: size not set");
	if (m->streamer || m->arena)
		return p2pio_set_error(err, -EBUSY, P2PIO_NO_OFFSET,
				       "the model is already streaming or loaded whole");
	if (opts && (opts->flags & ~P2PIO_EXPERTS_FLAGS))
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "unknown flags 0x%x",
				       opts->flags & ~P2PIO_EXPERTS_FLAGS);
	ret = policy_choose(opts, &pol, err);
	if (ret)
		return ret;
	x = calloc(1, sizeof(*x));
	if (!x)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	x->m = m;
	m->experts_open++;	/* until p2pio_experts_close(), failures included */
	x->ctx = m->ctx;
	x->flags = opts ? opts->flags : 0;
	x->nl = m->nlayers;
	pthread_mutex_init(&x->lock, NULL);
	pthread_cond_init(&x->cond, NULL);
	pthread_cond_init(&x->reap_cond, NULL);
	for (l = 0; l < x->nl; l++) {
		const struct p2pio_gguf_layer *gl = p2pio_gguf_layer(m->gguf, l);

		if (gl->n_experts > x->ne)
			x->ne = (uint32_t)(gl->n_experts > UINT32_MAX ? UINT32_MAX : gl->n_experts);
	}
	if (!x->ne) {
		ret = p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				      "the model has no expert tensors ('*_exps' in a blk.N layer)");
		goto out_close;
	}
	if ((uint64_t)x->nl * x->ne > (1u << 24)) {
		ret = p2pio_set_error(err, -E2BIG, P2PIO_NO_OFFSET, "%u layers of %u experts: too many",
				      x->nl, x->ne);
		goto out_close;
	}
	if (p2pio_gguf_get_string(m->gguf, "general.architecture", &arch, NULL) == 0 && arch) {
		snprintf(key, sizeof(key), "%s.expert_used_count", arch);
		if (p2pio_gguf_get_u64(m->gguf, key, &used) == 0 && used <= x->ne)
			x->used = (uint32_t)used;
	}
	if (m->gpu) {
		x->cu = p2pio_cuda_get(why, sizeof(why));
		if (!x->cu) {
			ret = p2pio_set_error(err, -ENODEV, P2PIO_NO_OFFSET, "CUDA: %s", why);
			goto out_close;
		}
		prev = p2pio_ctx_enter(x->ctx);
	}
	region = calloc(x->nl, sizeof(*region));
	x->data_len = calloc(x->nl, sizeof(*x->data_len));
	x->ent = calloc((size_t)x->nl * x->ne, sizeof(*x->ent));
	x->victims = calloc((size_t)x->nl * x->ne, sizeof(*x->victims));
	x->homeless = calloc((size_t)x->nl * x->ne, sizeof(*x->homeless));
	x->prev_ids = calloc((size_t)x->nl * x->ne, sizeof(*x->prev_ids));
	x->prev_n = calloc(x->nl, sizeof(*x->prev_n));
	x->pf_ids = calloc(x->ne, sizeof(*x->pf_ids));
	if (!region || !x->data_len || !x->ent || !x->victims || !x->homeless || !x->prev_ids ||
	    !x->prev_n || !x->pf_ids ||
	    flags_alloc(x, (size_t)x->nl * x->ne) || timings_create(x)) {
		ret = p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
		goto out_close;
	}
	if (x->flags & P2PIO_EXPERTS_PREFETCH_LEARNED) {
		ret = p2pio_predictor_create(x->nl, x->ne, &x->pred, err);
		if (ret)
			goto out_close;
		x->pred_ids = calloc(x->ne, sizeof(*x->pred_ids));
		if (!x->pred_ids) {
			ret = p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
			goto out_close;
		}
	}
	ret = plan_layers(x, region, err);
	if (ret)
		goto out_close;
	largest = largest_expert(x);
	x->pieces = read_pieces(x, opts, largest, &x->lone_pieces);
	x->piece = read_piece(x, opts, largest, x->pieces);
	ret = dense_load(x, err);
	if (ret)
		goto out_close;
	/* The pool's limit is set below, once the budget is known; no chunk exists yet. */
	ret = make_pool(x, region, 0, err);
	if (ret)
		goto out_close;
	ret = check_budget(x, opts, region, &eb, err);
	if (ret)
		goto out_close;
	/* A layer without experts never admits one; the core wants a size all the same. */
	for (l = 0; l < x->nl; l++)
		region[l] = p2pio_xpool_expert_bytes(x->pool, l) ?: 1;
	memset(&ro, 0, sizeof(ro));
	ro.nr_layers = x->nl;
	ro.nr_experts = x->ne;
	ro.expert_bytes = region;
	ro.budget = eb;
	ro.layer_floor = opts ? opts->layer_floor : NULL;
	ro.policy = pol;
	ro.policy_args = opts ? opts->policy_args : NULL;
	ret = p2pio_residency_create(&ro, &x->res, err);
	if (ret)
		goto out_close;
	p2pio_xpool_set_limit(x->pool, eb);
	/* Victims are unmapped after the miss batch (at release), not before its reads. */
	p2pio_xpool_set_deferred(x->pool, !(x->flags & P2PIO_EXPERTS_EAGER_UNMAP));
	ret = p2pio_queue_create(x->ctx, &x->q);
	if (ret) {
		p2pio_set_error(err, ret, P2PIO_NO_OFFSET, "engine queue: %s", p2pio_strerror(ret));
		goto out_close;
	}
	ret = pthread_create(&x->reaper, NULL, p2pio_experts_reaper, x);
	if (ret) {
		ret = p2pio_set_error(err, -ret, P2PIO_NO_OFFSET, "cannot start a thread");
		goto out_close;
	}
	x->reaper_started = true;
	x->t_start = p2pio_now_ns();
	free(region);
	if (x->cu)
		p2pio_ctx_leave(x->ctx, prev);
	*out = x;
	return 0;

out_close:
	free(region);
	if (x->cu)
		p2pio_ctx_leave(x->ctx, prev);
	p2pio_experts_close(x);
	return ret;
}

void p2pio_experts_close(struct p2pio_experts *x)
{
	struct xrelease *r;
	CUcontext prev;
	uint32_t i;

	if (!x)
		return;
	x->m->experts_open--;
	prev = p2pio_ctx_enter(x->ctx);
	pthread_mutex_lock(&x->lock);
	while (x->loading && !x->fatal)
		pthread_cond_wait(&x->cond, &x->lock);
	if (x->cu)
		p2pio_experts_drain_releases(x);
	pthread_mutex_unlock(&x->lock);
	if (x->reaper_started) {
		pthread_mutex_lock(&x->lock);
		atomic_store(&x->stop, true);
		pthread_cond_broadcast(&x->reap_cond);
		pthread_mutex_unlock(&x->lock);
		pthread_join(x->reaper, NULL);
	}
	for (i = 0; x->cu && i < NR_TIMINGS; i++) {
		/* Streams may still wait on the words: let their work finish first. */
		if (x->tim[i].e1)
			x->cu->EventSynchronize(x->tim[i].e1);
		if (x->tim[i].e0)
			x->cu->EventDestroy(x->tim[i].e0);
		if (x->tim[i].e1)
			x->cu->EventDestroy(x->tim[i].e1);
	}
	while ((r = x->rel_free)) {
		x->rel_free = r->next;
		x->cu->EventDestroy(r->ev);
		free(r->refs);
		free(r);
	}
	if (x->q && !x->fatal)
		p2pio_queue_destroy(x->q);
	p2pio_xpool_destroy(x->pool);
	p2pio_xmem_free(x->xops, x->xarg);
	p2pio_residency_destroy(x->res);
	p2pio_buf_free(x->dense_buf);
	p2pio_model_group_free(&x->dense);
	p2pio_cuda_flags_free(x->cu, x->flag_mem);
	free(x->dense_addr);
	free(x->data_len);
	free(x->ent);
	free(x->victims);
	free(x->homeless);
	free(x->prev_ids);
	free(x->prev_n);
	free(x->pf_ids);
	free(x->pred_ids);
	p2pio_predictor_destroy(x->pred);
	pthread_mutex_destroy(&x->lock);
	pthread_cond_destroy(&x->cond);
	pthread_cond_destroy(&x->reap_cond);
	p2pio_ctx_leave(x->ctx, prev);
	free(x);
}

void p2pio_experts_info(const struct p2pio_experts *x, struct p2pio_experts_info *info)
{
	uint32_t l;

	memset(info, 0, sizeof(*info));
	info->layers = x->nl;
	info->experts = x->ne;
	info->experts_used = x->used;
	for (l = 0; l < x->nl; l++) {
		if (p2pio_xpool_expert_bytes(x->pool, l) > info->expert_bytes)
			info->expert_bytes = p2pio_xpool_expert_bytes(x->pool, l);
		if (x->data_len[l] > info->expert_data)
			info->expert_data = x->data_len[l];
	}
	info->dense_bytes = x->dense.region;
	info->budget = x->budget;
	if (info->expert_bytes)
		info->capacity = (x->budget - x->dense.region) / info->expert_bytes;
	info->stable = p2pio_xpool_stable(x->pool);
}

int p2pio_experts_slices(const struct p2pio_experts *x, uint32_t layer, uint32_t expert,
			 struct p2pio_expert_slice *out, uint32_t max)
{
	struct p2pio_expert_plan plan;
	uint32_t i;
	int ret;

	if (layer >= x->nl)
		return -ERANGE;
	ret = p2pio_expert_plan(x->m->gguf, p2pio_gguf_layer(x->m->gguf, layer), expert,
				P2PIO_MODEL_BLOCK, x->m->file_size, &plan);
	if (ret)
		return ret == -EINVAL ? -ERANGE : ret;
	for (i = 0; i < plan.nslices && i < max; i++) {
		const struct p2pio_gguf_tensor *t = p2pio_gguf_tensor(x->m->gguf, plan.tensor[i]);

		out[i].name = t->name;
		out[i].offset = plan.dst[i];
		out[i].size = plan.size[i];
		out[i].file_offset = plan.file_off[i];
		out[i].type = t->type;
		out[i].reserved = 0;
	}
	return (int)plan.nslices;
}

int p2pio_experts_tensor(const struct p2pio_experts *x, const char *name,
			 struct p2pio_model_tensor *out)
{
	int i = p2pio_gguf_find_tensor(x->m->gguf, name);

	if (i < 0)
		return -ENOENT;
	if (p2pio_gguf_tensor(x->m->gguf, (size_t)i)->n_experts)
		return -EINVAL;
	p2pio_model_tensor_at(x->m, (uint32_t)i, out);
	out->addr = x->dense_addr[i];
	out->host = p2pio_buf_host_ptr(x->dense_buf) ?
		(uint8_t *)p2pio_buf_host_ptr(x->dense_buf) +
			(x->dense_addr[i] - p2pio_buf_addr(x->dense_buf)) : NULL;
	return 0;
}
