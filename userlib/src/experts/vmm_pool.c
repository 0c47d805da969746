// SPDX-License-Identifier: MIT
/*
 * vmm_pool.c - the expert pool's bookkeeping: homes in one reservation, physical chunks
 * created up to a limit and recycled through a free list (experts/xmem.h), and unmapping
 * deferred off the miss path: with p2pio_xpool_set_deferred(), an evicted expert's home
 * keeps its mapping (a "ghost" of the chunk) until p2pio_xpool_flush(), while the chunk
 * itself is free at once and may be mapped at another home meanwhile.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "experts/xmem.h"

struct p2pio_xpool {
	const struct p2pio_xmem_ops *ops;
	void *arg;
	uint32_t nlayers;
	uint32_t nexperts;
	uint64_t *len;			/* [nlayers] rounded expert length */
	uint64_t *home_off;		/* [nlayers] offset of expert 0's home */
	uint64_t va;			/* the reservation, 0 without one */
	uint64_t va_len;
	uint64_t limit;
	struct p2pio_xchunk **backing;	/* [nlayers * nexperts] */
	struct p2pio_xchunk *free;	/* unmapped chunks (maybe still ghosted) */
	bool deferred;
	struct p2pio_xchunk *ghosts;	/* [nghosts]: old mappings not undone yet */
	size_t nghosts, ghost_cap;
	struct p2pio_xpool_stats st;
};

static uint64_t round_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

int p2pio_xpool_create(const struct p2pio_xmem_ops *ops, void *arg, uint32_t nlayers,
		       uint32_t nexperts, const uint64_t *expert_len, uint64_t limit,
		       struct p2pio_xpool **out)
{
	uint64_t gran = ops->granularity ? ops->granularity : 1, total = 0, span;
	struct p2pio_xpool *p;
	uint32_t l;
	int ret;

	if (!nlayers || !nexperts || (ops->reserve && !ops->map) || !ops->create)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ops = ops;
	p->arg = arg;
	p->nlayers = nlayers;
	p->nexperts = nexperts;
	p->limit = limit;
	p->len = calloc(nlayers, sizeof(*p->len));
	p->home_off = calloc(nlayers, sizeof(*p->home_off));
	p->backing = calloc((size_t)nlayers * nexperts, sizeof(*p->backing));
	if (!p->len || !p->home_off || !p->backing) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (l = 0; l < nlayers; l++) {
		if (expert_len[l] > UINT64_MAX - gran) {
			ret = -EOVERFLOW;
			goto out_free;
		}
		p->len[l] = round_up(expert_len[l], gran);
		p->home_off[l] = total;
		if (p2pio_mul_overflow(p->len[l], nexperts, &span) ||
		    p2pio_add_overflow(total, span, &total)) {
			ret = -EOVERFLOW;
			goto out_free;
		}
	}
	if (ops->reserve && total) {
		ret = ops->reserve(arg, total, &p->va);
		if (ret)
			goto out_free;
		p->va_len = total;
	}
	*out = p;
	return 0;

out_free:
	free(p->backing);
	free(p->home_off);
	free(p->len);
	free(p);
	return ret;
}

void p2pio_xpool_destroy(struct p2pio_xpool *p)
{
	struct p2pio_xchunk *c;
	uint32_t l, e;

	if (!p)
		return;
	p->deferred = false;
	for (l = 0; l < p->nlayers; l++)
		for (e = 0; e < p->nexperts; e++)
			p2pio_xpool_unmap(p, l, e);
	p2pio_xpool_trim(p, 0);
	free(p->ghosts);
	while ((c = p->free)) {
		/* Only chunks trim could not count (none): keep the books honest anyway. */
		p->free = c->next;
		free(c);
	}
	if (p->va && p->ops->unreserve)
		p->ops->unreserve(p->arg, p->va, p->va_len);
	free(p->backing);
	free(p->home_off);
	free(p->len);
	free(p);
}

uint64_t p2pio_xpool_expert_bytes(const struct p2pio_xpool *p, uint32_t layer)
{
	return layer < p->nlayers ? p->len[layer] : 0;
}

uint64_t p2pio_xpool_home(const struct p2pio_xpool *p, uint32_t layer, uint32_t expert)
{
	if (!p->va || layer >= p->nlayers || expert >= p->nexperts || !p->len[layer])
		return 0;
	return p->va + p->home_off[layer] + (uint64_t)expert * p->len[layer];
}

bool p2pio_xpool_stable(const struct p2pio_xpool *p)
{
	return p->ops->reserve != NULL;
}

/* Undo ghost @i (its home is unmapped: the allocator's unmap of the old mapping). */
static void ghost_drop(struct p2pio_xpool *p, size_t i)
{
	p->ops->unmap(p->arg, &p->ghosts[i]);
	p->ghosts[i] = p->ghosts[--p->nghosts];
}

size_t p2pio_xpool_flush(struct p2pio_xpool *p)
{
	size_t n = p->nghosts;

	while (p->nghosts)
		ghost_drop(p, p->nghosts - 1);
	p->st.late_unmaps += n;
	return n;
}

void p2pio_xpool_set_deferred(struct p2pio_xpool *p, bool on)
{
	if (!on)
		p2pio_xpool_flush(p);
	p->deferred = on && p->va;
}

size_t p2pio_xpool_ghosts(const struct p2pio_xpool *p)
{
	return p->nghosts;
}

/* Undo p2pio_xpool_take() of entry @i whose home could not be mapped: as if never taken. */
static void untake(struct p2pio_xpool *p, size_t i)
{
	struct p2pio_xchunk *c = p->backing[i];

	p->backing[i] = NULL;
	p->st.maps--;
	p->st.mapped -= c->len;
	c->next = p->free;
	p->free = c;
}

/* A free chunk of @len bytes, unlinked, or NULL. */
static struct p2pio_xchunk *take_free(struct p2pio_xpool *p, uint64_t len)
{
	struct p2pio_xchunk **pp, *c;

	for (pp = &p->free; (c = *pp); pp = &c->next) {
		if (c->len != len)
			continue;
		*pp = c->next;
		c->next = NULL;
		return c;
	}
	return NULL;
}

int p2pio_xpool_take(struct p2pio_xpool *p, uint32_t layer, uint32_t expert,
		     const struct p2pio_xchunk **out)
{
	struct p2pio_xchunk *c;
	size_t i;
	uint64_t len;
	int ret;

	if (layer >= p->nlayers || expert >= p->nexperts || !p->len[layer])
		return -ERANGE;
	i = (size_t)layer * p->nexperts + expert;
	if (p->backing[i])
		return -EEXIST;
	len = p->len[layer];
	c = take_free(p, len);
	if (c) {
		p->st.reuses++;
	} else {
		/* A free chunk of another size stands in the way of growing: give it back
		 * (unmapped everywhere first: a ghost may still map it). */
		if (p->limit && p->st.committed + len > p->limit && p->free)
			p2pio_xpool_flush(p);
		while (p->limit && p->st.committed + len > p->limit && p->free) {
			struct p2pio_xchunk *f = p->free;

			p->free = f->next;
			p->ops->destroy(p->arg, f);
			p->st.committed -= f->len;
			p->st.destroys++;
			free(f);
		}
		if (p->limit && p->st.committed + len > p->limit)
			return -ENOSPC;
		c = calloc(1, sizeof(*c));
		if (!c)
			return -ENOMEM;
		c->len = len;
		ret = p->ops->create(p->arg, c);
		if (ret) {
			free(c);
			return ret;
		}
		p->st.creates++;
		p->st.committed += len;
		if (p->st.committed > p->st.peak)
			p->st.peak = p->st.committed;
	}
	c->at_home = false;
	p->st.maps++;
	p->st.mapped += len;
	p->backing[i] = c;
	/* Without a view of its own, the chunk is read through its home: map it now. */
	if (!c->io_buf || !p->va) {
		ret = p2pio_xpool_go_home(p, layer, expert);
		if (ret) {
			untake(p, i);
			return ret;
		}
	}
	*out = c;
	return 0;
}

int p2pio_xpool_go_home(struct p2pio_xpool *p, uint32_t layer, uint32_t expert)
{
	struct p2pio_xchunk *c;
	uint64_t home;
	size_t g;
	int ret;

	if (layer >= p->nlayers || expert >= p->nexperts)
		return -ENOENT;
	c = p->backing[(size_t)layer * p->nexperts + expert];
	if (!c)
		return -ENOENT;
	if (c->at_home || !p->va) {
		c->at_home = true;
		return 0;
	}
	home = p2pio_xpool_home(p, layer, expert);
	/* The home's old mapping (an earlier residency, not flushed yet) goes first. */
	for (g = 0; g < p->nghosts; g++)
		if (p->ghosts[g].addr == home) {
			ghost_drop(p, g);
			p->st.forced_unmaps++;
			break;
		}
	ret = p->ops->map(p->arg, home, c);
	if (ret)
		return ret;
	c->at_home = true;
	return 0;
}

int p2pio_xpool_map(struct p2pio_xpool *p, uint32_t layer, uint32_t expert,
		    const struct p2pio_xchunk **out)
{
	const struct p2pio_xchunk *c;
	int ret = p2pio_xpool_take(p, layer, expert, &c);

	if (ret)
		return ret;
	ret = p2pio_xpool_go_home(p, layer, expert);
	if (ret) {
		untake(p, (size_t)layer * p->nexperts + expert);
		return ret;
	}
	*out = c;
	return 0;
}

const struct p2pio_xchunk *p2pio_xpool_chunk(const struct p2pio_xpool *p, uint32_t layer,
					     uint32_t expert)
{
	if (layer >= p->nlayers || expert >= p->nexperts)
		return NULL;
	return p->backing[(size_t)layer * p->nexperts + expert];
}

/* Room for one more ghost; false (unmap at once instead) when none can be made. */
static bool grow_ghosts(struct p2pio_xpool *p)
{
	struct p2pio_xchunk *g;
	size_t cap;

	if (p->nghosts < p->ghost_cap)
		return true;
	cap = p->ghost_cap ? 2 * p->ghost_cap : 16;
	g = realloc(p->ghosts, cap * sizeof(*g));
	if (!g)
		return false;
	p->ghosts = g;
	p->ghost_cap = cap;
	return true;
}

int p2pio_xpool_unmap(struct p2pio_xpool *p, uint32_t layer, uint32_t expert)
{
	struct p2pio_xchunk *c;
	size_t i;

	if (layer >= p->nlayers || expert >= p->nexperts)
		return -ENOENT;
	i = (size_t)layer * p->nexperts + expert;
	c = p->backing[i];
	if (!c)
		return -ENOENT;
	if (p->va && !c->at_home) {
		/* Taken but never mapped at its home (or that failed): nothing to undo. */
	} else if (p->va && p->deferred && grow_ghosts(p)) {
		/* The chunk is free now; its old home stays mapped until the next flush. */
		p->ghosts[p->nghosts++] = *c;
		p->ghosts[p->nghosts - 1].next = NULL;
		c->buf = NULL;
		c->host = NULL;
	} else if (p->va) {
		p->ops->unmap(p->arg, c);
	}
	c->at_home = false;
	p->backing[i] = NULL;
	p->st.unmaps++;
	p->st.mapped -= c->len;
	c->next = p->free;
	p->free = c;
	return 0;
}

void p2pio_xpool_trim(struct p2pio_xpool *p, uint64_t keep)
{
	struct p2pio_xchunk *c;

	if (p->st.committed > keep && p->free)
		p2pio_xpool_flush(p);
	while (p->st.committed > keep && (c = p->free)) {
		p->free = c->next;
		p->ops->destroy(p->arg, c);
		p->st.committed -= c->len;
		p->st.destroys++;
		free(c);
	}
}

void p2pio_xpool_set_limit(struct p2pio_xpool *p, uint64_t limit)
{
	p->limit = limit;
	if (limit)
		p2pio_xpool_trim(p, limit);
}

void p2pio_xpool_stats(const struct p2pio_xpool *p, struct p2pio_xpool_stats *st)
{
	*st = p->st;
}

void p2pio_xmem_free(const struct p2pio_xmem_ops *ops, void *arg)
{
	if (ops && ops->fini)
		ops->fini(arg);
}
