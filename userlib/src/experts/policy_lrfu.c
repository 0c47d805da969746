// SPDX-License-Identifier: MIT
/*
 * policy_lrfu.c - least recently/frequently used (LRFU, Lee et al., IEEE Trans. Computers
 * 2001). Each expert's combined recency-frequency value (CRF) at time t is the sum over its
 * past demand accesses at times t_i of 2^(-lambda * (t - t_i)), time counted in tokens; the
 * lowest CRF goes, ties to the least recently touched. lambda = 0 is LFU, a large lambda is
 * LRU; in between, an expert used on every token of the last few beats one used often long
 * ago, and one used once just now does not beat a steady favourite. The CRF is kept as
 * (value at last update, token of last update), so an access or a comparison is O(1).
 * Options: "lambda=L", 0 <= L <= 64 (default 0.05: measured best on the real traces, see Documentation/moe.md).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "experts/policy.h"

struct lrfu {
	struct pol_set set;
	double lambda;
	double *crf;		/* [layer][expert] value at @at */
	uint64_t *at;		/* [layer][expert] token of the last update */
	uint64_t *stamp;	/* recency, for ties */
	uint64_t seq;
	uint64_t now;		/* tokens ended */
};

static int lrfu_set(void *ctx, const char *key, double v)
{
	struct lrfu *p = ctx;

	if (strcmp(key, "lambda") || !(v >= 0 && v <= 64))
		return -EINVAL;
	p->lambda = v;
	return 0;
}

static int lrfu_create(void **state, uint32_t nr_layers, uint32_t nr_experts, const char *args,
		       const void *data)
{
	size_t cells = (size_t)nr_layers * nr_experts;
	struct lrfu *p;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->lambda = 0.05;
	if (pol_parse_args(args, lrfu_set, p)) {
		free(p);
		return -EINVAL;
	}
	p->crf = calloc(cells, sizeof(*p->crf));
	p->at = calloc(cells, sizeof(*p->at));
	p->stamp = calloc(cells, sizeof(*p->stamp));
	if (!p->crf || !p->at || !p->stamp || pol_set_init(&p->set, nr_layers, nr_experts)) {
		free(p->crf);
		free(p->at);
		free(p->stamp);
		free(p);
		return -ENOMEM;
	}
	*state = p;
	return 0;
}

static void lrfu_destroy(void *state)
{
	struct lrfu *p = state;

	pol_set_fini(&p->set);
	free(p->crf);
	free(p->at);
	free(p->stamp);
	free(p);
}

static double lrfu_value(const struct lrfu *p, size_t i)
{
	return p->crf[i] * exp2(-p->lambda * (double)(p->now - p->at[i]));
}

static void lrfu_inserted(void *state, struct p2pio_expert_ref ref, uint64_t tick)
{
	struct lrfu *p = state;

	pol_set_add(&p->set, ref);
	p->stamp[(size_t)ref.layer * p->set.nr_experts + ref.expert] = ++p->seq;
}

static void lrfu_accessed(void *state, struct p2pio_expert_ref ref, uint64_t tick)
{
	struct lrfu *p = state;
	size_t i = (size_t)ref.layer * p->set.nr_experts + ref.expert;

	p->crf[i] = 1 + lrfu_value(p, i);
	p->at[i] = p->now;
	p->stamp[i] = ++p->seq;
}

static void lrfu_removed(void *state, struct p2pio_expert_ref ref)
{
	pol_set_del(&((struct lrfu *)state)->set, ref);
}

static void lrfu_token_end(void *state, uint64_t token)
{
	((struct lrfu *)state)->now++;
}

static struct pol_score lrfu_score(void *state, struct p2pio_expert_ref ref)
{
	struct lrfu *p = state;
	size_t i = (size_t)ref.layer * p->set.nr_experts + ref.expert;

	return (struct pol_score){ lrfu_value(p, i), (double)p->stamp[i] };
}

static int lrfu_victim(void *state, uint32_t layer,
		       bool (*evictable)(void *arg, struct p2pio_expert_ref ref), void *arg,
		       struct p2pio_expert_ref *out)
{
	return pol_set_victim(&((struct lrfu *)state)->set, layer, evictable, arg, lrfu_score,
			      state, out);
}

const struct p2pio_expert_policy_ops p2pio_expert_policy_lrfu = {
	.name = "lrfu",
	.create = lrfu_create,
	.destroy = lrfu_destroy,
	.inserted = lrfu_inserted,
	.accessed = lrfu_accessed,
	.removed = lrfu_removed,
	.victim = lrfu_victim,
	.token_end = lrfu_token_end,
};
