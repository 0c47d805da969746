// SPDX-License-Identifier: MIT
/*
 * policy_lru.c - least recently used: every insertion (a demand load or a prefetch) and
 * every demand access stamps the expert with a running sequence number; the oldest stamp
 * among the evictable experts goes.
 */
#include <errno.h>
#include <stdlib.h>

#include "experts/policy.h"

struct lru {
	struct pol_set set;
	uint64_t seq;
	uint64_t *stamp;	/* [layer][expert] */
};

static int lru_create(void **state, uint32_t nr_layers, uint32_t nr_experts, const char *args,
		      const void *data)
{
	struct lru *p;

	if (args && *args)
		return -EINVAL;	/* LRU has no options */
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->stamp = calloc((size_t)nr_layers * nr_experts, sizeof(*p->stamp));
	if (!p->stamp || pol_set_init(&p->set, nr_layers, nr_experts)) {
		free(p->stamp);
		free(p);
		return -ENOMEM;
	}
	*state = p;
	return 0;
}

static void lru_destroy(void *state)
{
	struct lru *p = state;

	pol_set_fini(&p->set);
	free(p->stamp);
	free(p);
}

static void lru_touch(void *state, struct p2pio_expert_ref ref, uint64_t tick)
{
	struct lru *p = state;

	if (ref.layer < p->set.nr_layers && ref.expert < p->set.nr_experts)
		p->stamp[(size_t)ref.layer * p->set.nr_experts + ref.expert] = ++p->seq;
}

static void lru_inserted(void *state, struct p2pio_expert_ref ref, uint64_t tick)
{
	struct lru *p = state;

	pol_set_add(&p->set, ref);
	lru_touch(state, ref, tick);
}

static void lru_removed(void *state, struct p2pio_expert_ref ref)
{
	pol_set_del(&((struct lru *)state)->set, ref);
}

static struct pol_score lru_score(void *state, struct p2pio_expert_ref ref)
{
	struct lru *p = state;

	return (struct pol_score){
		(double)p->stamp[(size_t)ref.layer * p->set.nr_experts + ref.expert], 0 };
}

static int lru_victim(void *state, uint32_t layer,
		      bool (*evictable)(void *arg, struct p2pio_expert_ref ref), void *arg,
		      struct p2pio_expert_ref *out)
{
	struct lru *p = state;

	return pol_set_victim(&p->set, layer, evictable, arg, lru_score, p, out);
}

const struct p2pio_expert_policy_ops p2pio_expert_policy_lru = {
	.name = "lru",
	.create = lru_create,
	.destroy = lru_destroy,
	.inserted = lru_inserted,
	.accessed = lru_touch,
	.removed = lru_removed,
	.victim = lru_victim,
};
