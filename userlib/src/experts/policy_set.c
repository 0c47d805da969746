// SPDX-License-Identifier: MIT
/*
 * policy_set.c - the resident set the built-in policies keep, their shared victim scan, and
 * the policy registry.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "experts/policy.h"

int pol_set_init(struct pol_set *s, uint32_t nr_layers, uint32_t nr_experts)
{
	size_t cells = (size_t)nr_layers * nr_experts, i;

	memset(s, 0, sizeof(*s));
	s->nr_layers = nr_layers;
	s->nr_experts = nr_experts;
	s->members = calloc(cells, sizeof(*s->members));
	s->pos = calloc(cells, sizeof(*s->pos));
	s->count = calloc(nr_layers, sizeof(*s->count));
	if (!s->members || !s->pos || !s->count) {
		pol_set_fini(s);
		return -ENOMEM;
	}
	for (i = 0; i < cells; i++)
		s->pos[i] = UINT32_MAX;
	return 0;
}

void pol_set_fini(struct pol_set *s)
{
	free(s->members);
	free(s->pos);
	free(s->count);
	s->members = s->pos = s->count = NULL;
}

void pol_set_add(struct pol_set *s, struct p2pio_expert_ref ref)
{
	size_t base = (size_t)ref.layer * s->nr_experts;
	uint32_t *pos;

	if (ref.layer >= s->nr_layers || ref.expert >= s->nr_experts)
		return;
	pos = &s->pos[base + ref.expert];
	if (*pos != UINT32_MAX)
		return;
	*pos = s->count[ref.layer]++;
	s->members[base + *pos] = ref.expert;
}

void pol_set_del(struct pol_set *s, struct p2pio_expert_ref ref)
{
	size_t base = (size_t)ref.layer * s->nr_experts;
	uint32_t i, last;

	if (ref.layer >= s->nr_layers || ref.expert >= s->nr_experts)
		return;
	i = s->pos[base + ref.expert];
	if (i == UINT32_MAX)
		return;
	last = s->members[base + --s->count[ref.layer]];
	s->members[base + i] = last;
	s->pos[base + last] = i;
	s->pos[base + ref.expert] = UINT32_MAX;
}

int pol_set_victim(const struct pol_set *s, uint32_t layer,
		   bool (*evictable)(void *arg, struct p2pio_expert_ref ref), void *arg,
		   struct pol_score (*score)(void *state, struct p2pio_expert_ref ref),
		   void *state, struct p2pio_expert_ref *out)
{
	uint32_t l, first = 0, last = s->nr_layers, i;
	struct pol_score best = { 0, 0 }, sc;
	bool found = false;

	if (layer != P2PIO_EXPERT_ANY_LAYER) {
		if (layer >= s->nr_layers)
			return -ENOENT;
		first = layer;
		last = layer + 1;
	}
	for (l = first; l < last; l++) {
		const uint32_t *m = &s->members[(size_t)l * s->nr_experts];

		for (i = 0; i < s->count[l]; i++) {
			struct p2pio_expert_ref ref = { l, m[i] };

			if (!evictable(arg, ref))
				continue;
			sc = score(state, ref);
			/* Equal scores: the lower (layer, expert) wins, so results never depend
			 * on the set's internal order. */
			if (!found || sc.key < best.key || (sc.key == best.key && sc.tie < best.tie) ||
			    (sc.key == best.key && sc.tie == best.tie &&
			     (ref.layer < out->layer ||
			      (ref.layer == out->layer && ref.expert < out->expert)))) {
				best = sc;
				*out = ref;
				found = true;
			}
		}
	}
	return found ? 0 : -ENOENT;
}

int pol_parse_args(const char *args, int (*set)(void *ctx, const char *key, double value),
		   void *ctx)
{
	char key[32], *end;
	const char *p = args;
	double v;
	size_t n;

	if (!args)
		return 0;
	while (*p) {
		n = strcspn(p, "=,");
		if (!n || n >= sizeof(key) || p[n] != '=')
			return -EINVAL;
		memcpy(key, p, n);
		key[n] = '\0';
		p += n + 1;
		errno = 0;
		v = strtod(p, &end);
		if (end == p || errno || !isfinite(v) || (*end && *end != ','))
			return -EINVAL;
		if (set(ctx, key, v))
			return -EINVAL;
		p = *end ? end + 1 : end;
	}
	return 0;
}

static const struct p2pio_expert_policy_ops *const pol_builtin[] = {
	&p2pio_expert_policy_lru,
	&p2pio_expert_policy_lfu,
	&p2pio_expert_policy_lrfu,
	&p2pio_expert_policy_oracle,
};

const struct p2pio_expert_policy_ops *p2pio_expert_policy_find(const char *name)
{
	size_t i;

	if (!name)
		return NULL;
	for (i = 0; i < P2PIO_ARRAY_SIZE(pol_builtin); i++)
		if (!strcmp(pol_builtin[i]->name, name))
			return pol_builtin[i];
	return NULL;
}

const char *p2pio_expert_policy_name(unsigned int i)
{
	return i < P2PIO_ARRAY_SIZE(pol_builtin) ? pol_builtin[i]->name : NULL;
}
