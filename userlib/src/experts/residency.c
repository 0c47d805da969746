// SPDX-License-Identifier: MIT
/*
 * residency.c - the expert cache's bookkeeping: states, bytes, pins, busy references,
 * floors and caps, victim selection through the policy, statistics.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "experts/residency.h"

struct res_entry {
	uint8_t state;
	bool pinned;
	bool selected;		/* chosen as a victim by the admit in progress */
	bool prefetched;	/* loaded by a prefetch, not yet used by a demand access */
	uint32_t busy;
	uint64_t pf_epoch;	/* its layer's epoch when prefetched */
};

struct res_layer {
	uint64_t used;
	uint32_t resident;
	uint64_t epoch;		/* accesses of the layer begun (one per token that uses it) */
	struct p2pio_expert_layer_stats st;
};

struct p2pio_residency {
	uint32_t nr_layers;
	uint32_t nr_experts;
	uint64_t budget;
	uint64_t used;
	uint64_t *bytes;
	uint64_t *floor;
	uint64_t *cap;
	struct res_entry *e;
	struct res_layer *layers;
	struct p2pio_expert_ref *scratch;	/* victims of the admit in progress */

	const struct p2pio_expert_policy_ops *pol;
	void *pol_state;

	uint64_t warmup_tokens;
	bool fixed_warmup;
	bool steady;
	bool evicted_in_token;
	uint64_t token_faults;
	/* The layer access in progress (consecutive accesses of a layer in a token). */
	bool cell_open;
	bool cell_missed;
	uint32_t cell_layer;
	struct p2pio_expert_stats st;
};

static struct res_entry *res_at(const struct p2pio_residency *r, uint32_t l, uint32_t x)
{
	return &r->e[(size_t)l * r->nr_experts + x];
}

static bool res_in_range(const struct p2pio_residency *r, uint32_t l, uint32_t x)
{
	return l < r->nr_layers && x < r->nr_experts;
}

int p2pio_residency_create(const struct p2pio_residency_opts *o, struct p2pio_residency **out,
			   struct p2pio_error *err)
{
	struct p2pio_residency *r;
	uint64_t cells;
	uint32_t l;
	int ret;

	*out = NULL;
	if (!o->nr_layers || !o->nr_experts || !o->expert_bytes || !o->policy)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "expert residency: layers, experts, expert sizes and a policy are required");
	if (p2pio_mul_overflow(o->nr_layers, o->nr_experts, &cells) || cells > (1u << 24))
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "expert residency: %u layers x %u experts is too many (at most 2^24)",
				       o->nr_layers, o->nr_experts);
	for (l = 0; l < o->nr_layers; l++)
		if (!o->expert_bytes[l])
			return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
					       "expert residency: layer %u has experts of 0 bytes", l);

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->nr_layers = o->nr_layers;
	r->nr_experts = o->nr_experts;
	r->budget = o->budget;
	r->warmup_tokens = o->warmup_tokens;
	r->fixed_warmup = o->fixed_warmup;
	r->steady = o->fixed_warmup && !o->warmup_tokens;
	r->bytes = calloc(o->nr_layers, sizeof(*r->bytes));
	r->floor = calloc(o->nr_layers, sizeof(*r->floor));
	r->cap = calloc(o->nr_layers, sizeof(*r->cap));
	r->layers = calloc(o->nr_layers, sizeof(*r->layers));
	r->e = calloc(cells, sizeof(*r->e));
	r->scratch = calloc(cells, sizeof(*r->scratch));
	if (!r->bytes || !r->floor || !r->cap || !r->layers || !r->e || !r->scratch) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (l = 0; l < o->nr_layers; l++) {
		r->bytes[l] = o->expert_bytes[l];
		r->floor[l] = o->layer_floor ? o->layer_floor[l] : 0;
		r->cap[l] = o->layer_cap ? o->layer_cap[l] : UINT64_MAX;
	}
	ret = o->policy->create(&r->pol_state, o->nr_layers, o->nr_experts, o->policy_args,
				o->policy_data);
	if (ret) {
		p2pio_set_error(err, ret, P2PIO_NO_OFFSET,
				"expert policy '%s': %s (options '%s')", o->policy->name,
				ret == -EINVAL ? "invalid options or missing data" : "cannot create",
				o->policy_args ? o->policy_args : "");
		goto out_free;
	}
	r->pol = o->policy;
	*out = r;
	return 0;

out_free:
	p2pio_residency_destroy(r);
	return ret;
}

void p2pio_residency_destroy(struct p2pio_residency *r)
{
	if (!r)
		return;
	/* NULL until the policy has its state: create's failures come here too. */
	if (r->pol)
		r->pol->destroy(r->pol_state);
	free(r->scratch);
	free(r->e);
	free(r->layers);
	free(r->cap);
	free(r->floor);
	free(r->bytes);
	free(r);
}

enum p2pio_res_state p2pio_residency_state(const struct p2pio_residency *r, uint32_t layer,
					   uint32_t expert)
{
	if (!res_in_range(r, layer, expert))
		return P2PIO_RES_ABSENT;
	return res_at(r, layer, expert)->state;
}

uint64_t p2pio_residency_used(const struct p2pio_residency *r)
{
	return r->used;
}

/* What the victim search of one admit may take. */
struct res_pick {
	struct p2pio_residency *r;
	uint32_t layer;		/* the layer being admitted into */
	uint64_t *freed;	/* [nr_layers] bytes already selected per layer */
	bool spare;		/* leave out prefetches still waiting for their layer */
};

/*
 * A prefetch waits for the next access of its layer: until then it is a hint not yet
 * tested, and a policy ranks it last (never accessed: LFU and LRFU score it 0), so the next
 * miss or prefetch anywhere took it. A hint two layers ahead was evicted before its layer
 * came in a third of the cases (p2pio-moe run --prefetch-next --lookahead 2 on the fitted
 * gpt-oss-120b trace at 25 %: 1112 of 3121 prefetches wasted). Such a prefetch goes only
 * when nothing else can; once its layer was accessed without it, it was a wrong guess and
 * an expert like any other.
 */
static bool res_waiting_prefetch(const struct p2pio_residency *r, const struct res_entry *x,
				 uint32_t layer)
{
	return x->prefetched && x->pf_epoch == r->layers[layer].epoch;
}

static bool res_evictable(void *arg, struct p2pio_expert_ref ref)
{
	struct res_pick *p = arg;
	struct p2pio_residency *r = p->r;
	struct res_entry *x;
	uint64_t left;

	if (!res_in_range(r, ref.layer, ref.expert))
		return false;
	x = res_at(r, ref.layer, ref.expert);
	if (x->state != P2PIO_RES_RESIDENT || x->pinned || x->busy || x->selected)
		return false;
	if (p->spare && res_waiting_prefetch(r, x, ref.layer))
		return false;
	if (ref.layer == p->layer)
		return true;
	/* Another layer's miss never takes this layer below its floor. */
	left = r->layers[ref.layer].used - p->freed[ref.layer];
	return left >= r->bytes[ref.layer] && left - r->bytes[ref.layer] >= r->floor[ref.layer];
}

/*
 * The policy's victim for an admit into @p->layer (from @from: that layer, or any), the
 * prefetches still waiting for their layer left out unless nothing else can go.
 */
static bool res_victim(struct p2pio_residency *r, uint32_t from, struct res_pick *p,
		       struct p2pio_expert_ref *v)
{
	for (p->spare = true;; p->spare = false) {
		if (!r->pol->victim(r->pol_state, from, res_evictable, p, v) &&
		    res_evictable(p, *v) && (from == P2PIO_EXPERT_ANY_LAYER || v->layer == p->layer))
			return true;
		if (!p->spare)
			return false;
	}
}

static void res_remove(struct p2pio_residency *r, uint32_t l, uint32_t x)
{
	struct res_entry *e = res_at(r, l, x);
	struct p2pio_expert_ref ref = { l, x };

	if (e->prefetched)
		r->st.prefetch_wasted++;
	e->state = P2PIO_RES_ABSENT;
	e->prefetched = false;
	e->pinned = false;
	r->used -= r->bytes[l];
	r->layers[l].used -= r->bytes[l];
	r->layers[l].resident--;
	r->layers[l].st.resident = r->layers[l].resident;
	r->pol->removed(r->pol_state, ref);
}

int p2pio_residency_admit(struct p2pio_residency *r, uint32_t layer, uint32_t expert,
			  bool prefetch, struct p2pio_expert_ref *victims, size_t max_victims,
			  size_t *nr_victims)
{
	uint64_t b, lused, gused, *freed;
	struct res_pick pick;
	struct res_entry *e;
	struct p2pio_expert_ref v;
	size_t n = 0, i;
	int ret = 0;

	if (nr_victims)
		*nr_victims = 0;
	if (!res_in_range(r, layer, expert))
		return -EINVAL;
	e = res_at(r, layer, expert);
	if (e->state != P2PIO_RES_ABSENT)
		return -EEXIST;
	b = r->bytes[layer];
	if (b > r->budget || b > r->cap[layer])
		return -ENOSPC;

	freed = calloc(r->nr_layers, sizeof(*freed));
	if (!freed)
		return -ENOMEM;
	pick.r = r;
	pick.layer = layer;
	pick.freed = freed;
	lused = r->layers[layer].used;
	gused = r->used;
	/* First the layer's own cap (victims from this layer only), then the global budget. */
	while (lused + b > r->cap[layer] || gused + b > r->budget) {
		uint32_t from = lused + b > r->cap[layer] ? layer : P2PIO_EXPERT_ANY_LAYER;

		if (!res_victim(r, from, &pick, &v)) {
			ret = -ENOSPC;
			goto out_unselect;
		}
		res_at(r, v.layer, v.expert)->selected = true;
		r->scratch[n++] = v;
		freed[v.layer] += r->bytes[v.layer];
		gused -= r->bytes[v.layer];
		if (v.layer == layer)
			lused -= b;
	}
	if (victims && n > max_victims) {
		ret = -ENOBUFS;
		goto out_unselect;
	}

	for (i = 0; i < n; i++) {
		res_at(r, r->scratch[i].layer, r->scratch[i].expert)->selected = false;
		res_remove(r, r->scratch[i].layer, r->scratch[i].expert);
		if (victims)
			victims[i] = r->scratch[i];
	}
	if (nr_victims)
		*nr_victims = n;
	if (n) {
		r->st.evictions += n;
		r->evicted_in_token = true;
	}

	e->state = P2PIO_RES_LOADING;
	e->prefetched = prefetch;
	e->pf_epoch = r->layers[layer].epoch;
	r->used += b;
	r->layers[layer].used += b;
	r->layers[layer].resident++;
	r->layers[layer].st.resident = r->layers[layer].resident;
	if (r->layers[layer].resident > r->layers[layer].st.max_resident)
		r->layers[layer].st.max_resident = r->layers[layer].resident;
	/* Its bytes count once it is over (p2pio_residency_loaded_read()): what it read. */
	r->st.loads++;
	if (prefetch) {
		r->st.prefetches++;
		r->pol->inserted(r->pol_state, (struct p2pio_expert_ref){ layer, expert },
				 r->st.accesses);
	} else {
		r->pol->inserted(r->pol_state, (struct p2pio_expert_ref){ layer, expert },
				 r->st.accesses);
		r->pol->accessed(r->pol_state, (struct p2pio_expert_ref){ layer, expert },
				 r->st.accesses ? r->st.accesses - 1 : 0);
	}
	free(freed);
	return 0;

out_unselect:
	for (i = 0; i < n; i++)
		res_at(r, r->scratch[i].layer, r->scratch[i].expert)->selected = false;
	free(freed);
	return ret;
}

/* What a load that is over moved: @read, at most the expert's bytes. */
static void res_count_read(struct p2pio_residency *r, uint32_t layer, uint64_t read)
{
	r->st.bytes_loaded += read < r->bytes[layer] ? read : r->bytes[layer];
}

void p2pio_residency_loaded(struct p2pio_residency *r, uint32_t layer, uint32_t expert, int err)
{
	if (res_in_range(r, layer, expert))
		p2pio_residency_loaded_read(r, layer, expert, err, r->bytes[layer]);
}

void p2pio_residency_loaded_read(struct p2pio_residency *r, uint32_t layer, uint32_t expert,
				 int err, uint64_t read)
{
	struct res_entry *e;

	if (!res_in_range(r, layer, expert))
		return;
	e = res_at(r, layer, expert);
	if (e->state != P2PIO_RES_LOADING)
		return;
	/*
	 * Counted here, not at admission: the statistics' bytes_loaded is the bytes the loads
	 * moved (p2pio/expert_policy.h), and an expert's reads can be fewer bytes than the
	 * memory it takes (the cache rounds that to the allocation granularity). Counting the
	 * memory at admission and what was read only for a withdrawn load mixed the two.
	 */
	res_count_read(r, layer, read);
	if (!err) {
		e->state = P2PIO_RES_RESIDENT;
		return;
	}
	/* A failed load is not a wasted prefetch (p2pio_residency_withdrawn(): one that is). */
	e->prefetched = false;
	res_remove(r, layer, expert);
}

void p2pio_residency_withdrawn(struct p2pio_residency *r, uint32_t layer, uint32_t expert,
			       uint64_t read)
{
	if (!res_in_range(r, layer, expert) ||
	    res_at(r, layer, expert)->state != P2PIO_RES_LOADING)
		return;
	/*
	 * A withdrawn wrong hint is a wasted prefetch, issued and not (or not wholly) read: a
	 * load that moved only what was read before the rest was withdrawn.
	 */
	res_count_read(r, layer, read);
	res_remove(r, layer, expert);
}

bool p2pio_residency_access(struct p2pio_residency *r, uint32_t layer, uint32_t expert)
{
	struct res_layer *ly;
	struct res_entry *e;
	bool hit;

	if (!res_in_range(r, layer, expert))
		return false;
	e = res_at(r, layer, expert);
	ly = &r->layers[layer];
	hit = e->state != P2PIO_RES_ABSENT;
	if (!r->cell_open || layer != r->cell_layer) {
		r->cell_open = true;
		r->cell_missed = false;
		r->cell_layer = layer;
		ly->epoch++;
	}
	ly->st.accesses++;
	if (r->steady)
		r->st.steady_accesses++;
	if (hit) {
		r->st.hits++;
		ly->st.hits++;
		if (r->steady)
			r->st.steady_hits++;
		if (e->state == P2PIO_RES_LOADING)
			r->st.late++;
		if (e->prefetched) {
			e->prefetched = false;
			r->st.prefetch_used++;
		}
		r->pol->accessed(r->pol_state, (struct p2pio_expert_ref){ layer, expert },
				 r->st.accesses);
	} else {
		r->st.misses++;
		ly->st.misses++;
		if (r->steady)
			r->st.steady_misses++;
		r->token_faults++;
		if (!r->cell_missed) {
			r->cell_missed = true;
			r->st.missed_layers++;
			if (r->steady)
				r->st.steady_missed_layers++;
		}
	}
	r->st.accesses++;
	return hit;
}

/* The entry that evict and pin act on: -EINVAL out of range, -ENOENT when ABSENT. */
static int res_present(struct p2pio_residency *r, uint32_t layer, uint32_t expert,
		       struct res_entry **e)
{
	if (!res_in_range(r, layer, expert))
		return -EINVAL;
	*e = res_at(r, layer, expert);
	return (*e)->state == P2PIO_RES_ABSENT ? -ENOENT : 0;
}

int p2pio_residency_evict(struct p2pio_residency *r, uint32_t layer, uint32_t expert)
{
	struct res_entry *e;
	int ret = res_present(r, layer, expert, &e);

	if (ret)
		return ret;
	if (e->state != P2PIO_RES_RESIDENT || e->pinned || e->busy)
		return -EBUSY;
	res_remove(r, layer, expert);
	r->st.evictions++;
	return 0;
}

int p2pio_residency_pin(struct p2pio_residency *r, uint32_t layer, uint32_t expert, bool pin)
{
	struct res_entry *e;
	int ret = res_present(r, layer, expert, &e);

	if (ret)
		return ret;
	e->pinned = pin;
	return 0;
}

void p2pio_residency_busy_get(struct p2pio_residency *r, uint32_t layer, uint32_t expert)
{
	if (res_in_range(r, layer, expert))
		res_at(r, layer, expert)->busy++;
}

void p2pio_residency_busy_put(struct p2pio_residency *r, uint32_t layer, uint32_t expert)
{
	struct res_entry *e;

	if (!res_in_range(r, layer, expert))
		return;
	e = res_at(r, layer, expert);
	if (e->busy)
		e->busy--;
}

void p2pio_residency_token_begin(struct p2pio_residency *r)
{
	r->token_faults = 0;
	r->evicted_in_token = false;
	r->cell_open = false;
}

void p2pio_residency_token_end(struct p2pio_residency *r)
{
	if (r->steady)
		r->st.steady_tokens++;
	r->st.tokens++;
	if (r->token_faults > r->st.max_token_faults)
		r->st.max_token_faults = r->token_faults;
	if (!r->steady) {
		if (r->fixed_warmup ? r->st.tokens >= r->warmup_tokens : r->evicted_in_token)
			r->steady = true;
	}
	if (r->pol->token_end)
		r->pol->token_end(r->pol_state, r->st.tokens);
	r->token_faults = 0;
	r->evicted_in_token = false;
	r->cell_open = false;
}

void p2pio_residency_add_stall(struct p2pio_residency *r, uint64_t ns)
{
	r->st.stall_ns += ns;
}

int p2pio_residency_stats(const struct p2pio_residency *r, struct p2pio_expert_stats *st)
{
	struct p2pio_expert_stats s = r->st;
	uint32_t size = st->size;
	size_t i, cells = (size_t)r->nr_layers * r->nr_experts;

	if (size < sizeof(s.size))
		return -EINVAL;
	/* Prefetches still resident and never used are wasted too. */
	for (i = 0; i < cells; i++)
		s.prefetch_wasted += r->e[i].prefetched;
	s.size = size < sizeof(s) ? size : sizeof(s);
	memcpy(st, &s, s.size);
	return 0;
}

int p2pio_residency_layer_stats(const struct p2pio_residency *r, uint32_t layer,
				struct p2pio_expert_layer_stats *st)
{
	if (layer >= r->nr_layers)
		return -EINVAL;
	*st = r->layers[layer].st;
	return 0;
}
