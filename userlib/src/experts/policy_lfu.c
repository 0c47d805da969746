// SPDX-License-Identifier: MIT
/*
 * policy_lfu.c - least frequently used, with decay: each demand access adds 1 to the
 * expert's count, every count is multiplied by @decay at each token's end (so a burst long
 * ago weighs less than steady use now), and the lowest count goes; ties go to the least
 * recently touched. Counts outlive eviction: an expert that comes back keeps its history.
 * Options: "decay=D", 0 < D <= 1 (default 0.95; 1 is plain LFU).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "experts/policy.h"

struct lfu {
	struct pol_set set;
	double decay;
	double *count;		/* [layer][expert] */
	uint64_t *stamp;	/* [layer][expert]: recency, for ties */
	uint64_t seq;
};

static int lfu_set(void *ctx, const char *key, double v)
{
	struct lfu *p = ctx;

	if (strcmp(key, "decay") || !(v > 0 && v <= 1))
		return -EINVAL;
	p->decay = v;
	return 0;
}

static int lfu_create(void **state, uint32_t nr_layers, uint32_t nr_experts, const char *args,
		      const void *data)
{
	size_t cells = (size_t)nr_layers * nr_experts;
	struct lfu *p;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->decay = 0.95;
	if (pol_parse_args(args, lfu_set, p)) {
		free(p);
		return -EINVAL;
	}
	p->count = calloc(cells, sizeof(*p->count));
	p->stamp = calloc(cells, sizeof(*p->stamp));
	if (!p->count || !p->stamp || pol_set_init(&p->set, nr_layers, nr_experts)) {
		free(p->count);
		free(p->stamp);
		free(p);
		return -ENOMEM;
	}
	*state = p;
	return 0;
}

static void lfu_destroy(void *state)
{
	struct lfu *p = state;

	pol_set_fini(&p->set);
	free(p->count);
	free(p->stamp);
	free(p);
}

static void lfu_inserted(void *state, struct p2pio_expert_ref ref, uint64_t tick)
{
	struct lfu *p = state;

	pol_set_add(&p->set, ref);
	p->stamp[(size_t)ref.layer * p->set.nr_experts + ref.expert] = ++p->seq;
}

static void lfu_accessed(void *state, struct p2pio_expert_ref ref, uint64_t tick)
{
	struct lfu *p = state;
	size_t i = (size_t)ref.layer * p->set.nr_experts + ref.expert;

	p->count[i] += 1;
	p->stamp[i] = ++p->seq;
}

static void lfu_removed(void *state, struct p2pio_expert_ref ref)
{
	pol_set_del(&((struct lfu *)state)->set, ref);
}

static void lfu_token_end(void *state, uint64_t token)
{
	struct lfu *p = state;
	size_t i, cells = (size_t)p->set.nr_layers * p->set.nr_experts;

	if (p->decay == 1)
		return;
	for (i = 0; i < cells; i++)
		p->count[i] *= p->decay;
}

static struct pol_score lfu_score(void *state, struct p2pio_expert_ref ref)
{
	struct lfu *p = state;
	size_t i = (size_t)ref.layer * p->set.nr_experts + ref.expert;

	return (struct pol_score){ p->count[i], (double)p->stamp[i] };
}

static int lfu_victim(void *state, uint32_t layer,
		      bool (*evictable)(void *arg, struct p2pio_expert_ref ref), void *arg,
		      struct p2pio_expert_ref *out)
{
	return pol_set_victim(&((struct lfu *)state)->set, layer, evictable, arg, lfu_score,
			      state, out);
}

const struct p2pio_expert_policy_ops p2pio_expert_policy_lfu = {
	.name = "lfu",
	.create = lfu_create,
	.destroy = lfu_destroy,
	.inserted = lfu_inserted,
	.accessed = lfu_accessed,
	.removed = lfu_removed,
	.victim = lfu_victim,
	.token_end = lfu_token_end,
};
