// SPDX-License-Identifier: MIT
/*
 * model_sched.c - which layer lives in which streaming slot, and which one to evict.
 */
#include <errno.h>
#include <stdlib.h>

#include "model/plan.h"

int p2pio_sched_slots_for_budget(uint64_t budget, uint64_t resident, uint64_t slot_bytes,
				 uint32_t *slots)
{
	uint64_t n;

	if (!slot_bytes || budget < resident)
		return -ENOSPC;
	n = (budget - resident) / slot_bytes;
	if (!n)
		return -ENOSPC;
	*slots = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
	return 0;
}

uint32_t p2pio_sched_default_prefetch(uint32_t nslots, uint32_t nlayers)
{
	uint32_t n = nslots < nlayers ? nslots : nlayers;

	if (n <= 1)
		return 0;
	return n - 1 < P2PIO_SCHED_PREFETCH_MAX ? n - 1 : P2PIO_SCHED_PREFETCH_MAX;
}

int p2pio_sched_init(struct p2pio_sched *s, uint32_t nlayers, uint32_t nslots, uint32_t prefetch,
		     bool lru)
{
	uint32_t i;

	if (!nlayers || !nslots)
		return -EINVAL;
	/* More slots than layers would only stay empty. */
	if (nslots > nlayers)
		nslots = nlayers;
	/* The acquired layer takes one slot; prefetching more than the rest cannot be held. */
	if (prefetch > nslots - 1)
		prefetch = nslots - 1;
	*s = (struct p2pio_sched){ .nlayers = nlayers, .nslots = nslots, .prefetch = prefetch,
				   .lru = lru, .cursor = -1 };
	s->slot = calloc(nslots, sizeof(*s->slot));
	s->where = malloc(sizeof(*s->where) * nlayers);
	s->layer = calloc(nlayers, sizeof(*s->layer));
	if (!s->slot || !s->where || !s->layer) {
		p2pio_sched_fini(s);
		return -ENOMEM;
	}
	for (i = 0; i < nslots; i++)
		s->slot[i].layer = -1;
	for (i = 0; i < nlayers; i++)
		s->where[i] = -1;
	return 0;
}

void p2pio_sched_fini(struct p2pio_sched *s)
{
	free(s->slot);
	free(s->where);
	free(s->layer);
	s->slot = NULL;
	s->where = NULL;
	s->layer = NULL;
}

int p2pio_sched_lookup(const struct p2pio_sched *s, uint32_t layer)
{
	return layer < s->nlayers ? s->where[layer] : -1;
}

/* How many acquires ahead of the cursor @layer comes next, in cyclic order (1 = next). */
static uint32_t distance(const struct p2pio_sched *s, uint32_t layer)
{
	uint32_t from = s->cursor < 0 ? s->nlayers - 1 : (uint32_t)s->cursor;

	return (layer + s->nlayers - from - 1) % s->nlayers + 1;
}

static bool in_window(const struct p2pio_sched *s, uint32_t layer)
{
	return distance(s, layer) <= s->prefetch;
}

int p2pio_sched_victim(const struct p2pio_sched *s, bool prefetch, bool may_wait)
{
	int best = -1, best_rank = -1;
	uint64_t best_key = 0;
	bool only_busy = false;
	uint32_t i;

	for (i = 0; i < s->nslots; i++) {
		const struct p2pio_sched_slot *sl = &s->slot[i];
		uint64_t key;
		int rank;

		if (sl->layer < 0) {
			rank = 2;
			key = 0;
		} else {
			if (sl->held)
				continue;
			/* A prefetch must not push out another layer it is about to need. */
			if (prefetch && in_window(s, (uint32_t)sl->layer))
				continue;
			if (sl->loading || sl->reserved || (sl->busy && !may_wait)) {
				only_busy = true;
				continue;
			}
			rank = sl->busy ? 0 : 1;
			/* Larger key wins: furthest next use, or oldest release (see model_plan.h). */
			if (s->lru || sl->busy)
				key = UINT64_MAX - sl->stamp;
			else
				key = distance(s, (uint32_t)sl->layer);
		}
		if (rank > best_rank || (rank == best_rank && key > best_key)) {
			best = (int)i;
			best_rank = rank;
			best_key = key;
		}
	}
	if (best >= 0)
		return best;
	return only_busy ? -EAGAIN : -ENOSPC;
}

void p2pio_sched_assign(struct p2pio_sched *s, uint32_t slot, uint32_t layer)
{
	struct p2pio_sched_slot *sl = &s->slot[slot];

	if (sl->layer >= 0) {
		if (!sl->consumed) {
			s->total.wasted++;
			s->layer[sl->layer].wasted++;
		}
		s->where[sl->layer] = -1;
	}
	if (sl->used) {
		s->total.reuses++;
		s->layer[layer].reuses++;
	}
	*sl = (struct p2pio_sched_slot){ .layer = (int32_t)layer, .loading = true, .used = true };
	s->where[layer] = (int32_t)slot;
	s->total.loads++;
	s->layer[layer].loads++;
}

void p2pio_sched_loaded(struct p2pio_sched *s, uint32_t slot)
{
	s->slot[slot].loading = false;
}

void p2pio_sched_failed(struct p2pio_sched *s, uint32_t slot)
{
	struct p2pio_sched_slot *sl = &s->slot[slot];

	if (sl->layer >= 0)
		s->where[sl->layer] = -1;
	sl->layer = -1;
	sl->loading = false;
	sl->held = false;
	sl->busy = false;
	sl->consumed = true;
}

void p2pio_sched_hold(struct p2pio_sched *s, uint32_t slot)
{
	struct p2pio_sched_slot *sl = &s->slot[slot];
	uint32_t layer = (uint32_t)sl->layer;

	s->total.acquires++;
	s->layer[layer].acquires++;
	if (sl->consumed) {
		s->total.hits++;
		s->layer[layer].hits++;
	}
	sl->consumed = true;
	sl->held = true;
	sl->busy = false;
	s->cursor = (int32_t)layer;
}

void p2pio_sched_release(struct p2pio_sched *s, uint32_t slot, bool busy)
{
	struct p2pio_sched_slot *sl = &s->slot[slot];

	sl->held = false;
	sl->busy = busy;
	sl->stamp = ++s->clock;
}

void p2pio_sched_idle(struct p2pio_sched *s, uint32_t slot)
{
	s->slot[slot].busy = false;
}

int p2pio_sched_next_prefetch(const struct p2pio_sched *s)
{
	uint32_t d, from;

	if (s->cursor < 0)
		return -1;
	from = (uint32_t)s->cursor;
	for (d = 1; d <= s->prefetch; d++) {
		uint32_t l = (from + d) % s->nlayers;

		if (s->where[l] < 0)
			return (int)l;
	}
	return -1;
}

void p2pio_sched_reserve(struct p2pio_sched *s, uint32_t slot, bool on)
{
	s->slot[slot].reserved = on;
}
