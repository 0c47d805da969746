// SPDX-License-Identifier: MIT
/*
 * policy_oracle.c - Belady's offline optimum (MIN): evict the expert whose next demand use
 * is furthest in the future, or never comes. With the whole access sequence known (struct
 * pol_future: only a trace replay has it), each expert's uses are listed in order and a
 * cursor per expert finds its next use in amortised O(1). For equal-sized experts and
 * demand loading this minimises the number of loads (Belady 1966; Mattson et al. 1970).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "experts/policy.h"

struct oracle {
	struct pol_set set;
	uint64_t *start;	/* [cell + 1]: uses of cell are uses[start[c] .. start[c + 1]) */
	uint64_t *uses;		/* access indexes */
	uint64_t *cursor;	/* [cell]: first use not yet passed */
};

static int oracle_create(void **state, uint32_t nr_layers, uint32_t nr_experts,
			 const char *args, const void *data)
{
	const struct pol_future *f = data;
	size_t cells = (size_t)nr_layers * nr_experts, c;
	struct oracle *p;
	uint64_t i;

	if (!f || (args && *args))
		return -EINVAL;
	for (i = 0; i < f->nr; i++)
		if (f->seq[i].layer >= nr_layers || f->seq[i].expert >= nr_experts)
			return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->start = calloc(cells + 1, sizeof(*p->start));
	p->uses = calloc(f->nr ? f->nr : 1, sizeof(*p->uses));
	p->cursor = calloc(cells, sizeof(*p->cursor));
	if (!p->start || !p->uses || !p->cursor || pol_set_init(&p->set, nr_layers, nr_experts)) {
		free(p->start);
		free(p->uses);
		free(p->cursor);
		free(p);
		return -ENOMEM;
	}
	for (i = 0; i < f->nr; i++)
		p->start[(size_t)f->seq[i].layer * nr_experts + f->seq[i].expert + 1]++;
	for (c = 0; c < cells; c++)
		p->start[c + 1] += p->start[c];
	for (c = 0; c < cells; c++)
		p->cursor[c] = p->start[c];
	for (i = 0; i < f->nr; i++)
		p->uses[p->cursor[(size_t)f->seq[i].layer * nr_experts + f->seq[i].expert]++] = i;
	for (c = 0; c < cells; c++)
		p->cursor[c] = p->start[c];
	*state = p;
	return 0;
}

static void oracle_destroy(void *state)
{
	struct oracle *p = state;

	pol_set_fini(&p->set);
	free(p->start);
	free(p->uses);
	free(p->cursor);
	free(p);
}

/* Move the expert's cursor to its first use at or after @tick. */
static void oracle_seek(struct oracle *p, struct p2pio_expert_ref ref, uint64_t tick)
{
	size_t c = (size_t)ref.layer * p->set.nr_experts + ref.expert;

	if (ref.layer >= p->set.nr_layers || ref.expert >= p->set.nr_experts)
		return;
	while (p->cursor[c] < p->start[c + 1] && p->uses[p->cursor[c]] < tick)
		p->cursor[c]++;
}

static void oracle_inserted(void *state, struct p2pio_expert_ref ref, uint64_t tick)
{
	struct oracle *p = state;

	pol_set_add(&p->set, ref);
	oracle_seek(p, ref, tick);
}

static void oracle_accessed(void *state, struct p2pio_expert_ref ref, uint64_t tick)
{
	oracle_seek(state, ref, tick + 1);
}

static void oracle_removed(void *state, struct p2pio_expert_ref ref)
{
	pol_set_del(&((struct oracle *)state)->set, ref);
}

static struct pol_score oracle_score(void *state, struct p2pio_expert_ref ref)
{
	struct oracle *p = state;
	size_t c = (size_t)ref.layer * p->set.nr_experts + ref.expert;
	double next = p->cursor[c] < p->start[c + 1] ? (double)p->uses[p->cursor[c]] : INFINITY;

	return (struct pol_score){ -next, 0 };
}

static int oracle_victim(void *state, uint32_t layer,
			 bool (*evictable)(void *arg, struct p2pio_expert_ref ref), void *arg,
			 struct p2pio_expert_ref *out)
{
	return pol_set_victim(&((struct oracle *)state)->set, layer, evictable, arg,
			      oracle_score, state, out);
}

const struct p2pio_expert_policy_ops p2pio_expert_policy_oracle = {
	.name = "oracle",
	.create = oracle_create,
	.destroy = oracle_destroy,
	.inserted = oracle_inserted,
	.accessed = oracle_accessed,
	.removed = oracle_removed,
	.victim = oracle_victim,
};
