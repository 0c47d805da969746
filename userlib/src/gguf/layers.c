// SPDX-License-Identifier: MIT
/*
 * gguf_layers.c - grouping tensors into layers ("blk.N.*") and the non-layer rest, and
 * finding MoE expert tensors ("*_exps"), whose outermost dimension counts the experts:
 * expert e is the contiguous slice e of it, size / n_experts bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/reader.h"

/* N of "blk.N.", or P2PIO_GGUF_NO_LAYER: decimal, no sign, no leading zero, <= 9 digits. */
static uint32_t gguf_layer_number(const char *name)
{
	uint32_t n = 0;
	int digits = 0;

	if (strncmp(name, "blk.", 4))
		return P2PIO_GGUF_NO_LAYER;
	name += 4;
	if (name[0] == '0' && name[1] != '.')
		return P2PIO_GGUF_NO_LAYER;
	while (*name >= '0' && *name <= '9' && digits < 10) {
		n = n * 10 + (uint32_t)(*name++ - '0');
		digits++;
	}
	if (!digits || digits > 9 || *name != '.')
		return P2PIO_GGUF_NO_LAYER;
	return n;
}

static bool gguf_ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && !memcmp(s + len - n, suffix, n);
}

/* "blk.0.ffn_up_exps.weight", "blk.0.ffn_gate_exps.bias", or a bare "..._exps". */
static bool gguf_is_experts(const char *name)
{
	const char *dot = strrchr(name, '.');

	return gguf_ends_with(name, strlen(name), "_exps") ||
	       (dot && gguf_ends_with(name, (size_t)(dot - name), "_exps"));
}

static int gguf_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int gguf_classify(struct p2pio_gguf *g, struct p2pio_error *err)
{
	struct gguf_tensor *t;
	size_t i;

	for (i = 0; i < g->n_tensors; i++) {
		t = &g->tensors[i];
		t->t.layer = gguf_layer_number(t->t.name);
		/* A name is a convention, not a format rule: a 1-D "*_exps" tensor is valid
		 * GGUF and is listed as an ordinary tensor; p2pio_gguf_tensor_experts() says
		 * why it has no experts when a caller asks for them. */
		if (!gguf_is_experts(t->t.name) || t->t.n_dims < 2)
			continue;
		t->t.n_experts = t->t.ne[t->t.n_dims - 1];
		t->t.expert_bytes = t->t.size / t->t.n_experts;
	}
	return 0;
}

int p2pio_gguf_tensor_experts(const struct p2pio_gguf *g, size_t i, uint64_t *n_experts,
			      struct p2pio_error *err)
{
	const struct gguf_tensor *t;
	char q[GGUF_QUOTE_MAX];

	if (i >= g->n_tensors)
		return p2pio_set_error(err, -ERANGE, P2PIO_NO_OFFSET, "no tensor %zu (the file has %zu)",
				       i, g->n_tensors);
	t = &g->tensors[i];
	if (t->t.n_experts) {
		if (n_experts)
			*n_experts = t->t.n_experts;
		return 0;
	}
	if (gguf_is_experts(t->t.name))
		return p2pio_set_error(err, -EINVAL, t->pos,
				       "tensor '%s' at byte %llu is named as an expert tensor ('*_exps') but has %u dimension%s: experts are slices of its outermost dimension, so it needs at least 2",
				       gguf_quote(q, t->t.name, t->name.len), (unsigned long long)t->pos,
				       t->t.n_dims, t->t.n_dims == 1 ? "" : "s");
	return p2pio_set_error(err, -EINVAL, t->pos,
			       "tensor '%s' at byte %llu is not an expert tensor (its name does not end in '_exps')",
			       gguf_quote(q, t->t.name, t->name.len), (unsigned long long)t->pos);
}

/* Distinct layer numbers, sorted, into g->layers. */
static int gguf_find_layers(struct p2pio_gguf *g)
{
	uint32_t *nums;
	size_t i, n = 0;

	nums = malloc((g->n_tensors + 1) * sizeof(*nums));
	if (!nums)
		return -ENOMEM;
	for (i = 0; i < g->n_tensors; i++)
		if (g->tensors[i].t.layer != P2PIO_GGUF_NO_LAYER)
			nums[n++] = g->tensors[i].t.layer;
	qsort(nums, n, sizeof(*nums), gguf_cmp_u32);
	g->layers = calloc(n + 1, sizeof(*g->layers));
	if (!g->layers) {
		free(nums);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		if (!g->n_layers || g->layers[g->n_layers - 1].number != nums[i])
			g->layers[g->n_layers++].number = nums[i];
	free(nums);
	g->nonlayer.number = P2PIO_GGUF_NO_LAYER;
	return 0;
}

static size_t gguf_group_of(const struct p2pio_gguf *g, uint32_t layer)
{
	int i = p2pio_gguf_find_layer(g, layer);

	return i < 0 ? g->n_layers : (size_t)i;
}

static struct p2pio_gguf_layer *gguf_group_at(struct p2pio_gguf *g, size_t k)
{
	return k < g->n_layers ? &g->layers[k] : &g->nonlayer;
}

/*
 * Fill each group's index lists by walking the tensors in file order, so that the lists
 * come out sorted by offset and each group's span and contiguity fall out of one pass.
 */
static int gguf_fill_groups(struct p2pio_gguf *g, struct p2pio_error *err)
{
	size_t n_groups = g->n_layers + 1, r, k, i, at = 0;
	size_t *tpos, *epos, *first, *last;
	struct p2pio_gguf_layer *grp;
	const struct gguf_tensor *t, *t0;
	char q[GGUF_QUOTE_MAX], q2[GGUF_QUOTE_MAX];
	size_t *tmp;
	int ret = 0;

	tmp = calloc(4 * n_groups, sizeof(*tmp));
	g->group_idx = malloc((2 * g->n_tensors + 1) * sizeof(*g->group_idx));
	if (!tmp || !g->group_idx) {
		free(tmp);
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	}
	tpos = tmp;
	epos = tmp + n_groups;
	first = tmp + 2 * n_groups;
	last = tmp + 3 * n_groups;

	for (i = 0; i < g->n_tensors; i++) {
		grp = gguf_group_at(g, gguf_group_of(g, g->tensors[i].t.layer));
		grp->n_tensors++;
		grp->n_expert_tensors += g->tensors[i].t.n_experts != 0;
	}
	for (k = 0; k < n_groups; k++) {
		grp = gguf_group_at(g, k);
		grp->tensors = g->group_idx + at;
		tpos[k] = at;
		at += grp->n_tensors;
		grp->expert_tensors = g->group_idx + at;
		epos[k] = at;
		at += grp->n_expert_tensors;
		grp->contiguous = true;
	}

	for (r = 0; r < g->n_tensors; r++) {
		i = g->by_offset[r];
		t = &g->tensors[i];
		k = gguf_group_of(g, t->t.layer);
		grp = gguf_group_at(g, k);
		if (tpos[k] == (size_t)(grp->tensors - g->group_idx)) {
			first[k] = r;
			grp->file_start = t->t.file_offset;
		}
		last[k] = r;
		g->group_idx[tpos[k]++] = i;
		grp->bytes += t->t.size;
		/* Tensors do not overlap, so the last in file order ends last. */
		grp->file_end = t->t.file_offset + t->t.size;
		if (!t->t.n_experts)
			continue;
		if (grp->n_experts && grp->n_experts != t->t.n_experts) {
			t0 = &g->tensors[grp->expert_tensors[0]];
			ret = p2pio_set_error(err, -EINVAL, t->pos,
					      "tensor '%s' at byte %llu has %llu experts, but tensor '%s' of the same layer has %llu",
					      gguf_quote(q, t->t.name, t->name.len),
					      (unsigned long long)t->pos,
					      (unsigned long long)t->t.n_experts,
					      gguf_quote(q2, t0->t.name, t0->name.len),
					      (unsigned long long)grp->n_experts);
			break;
		}
		grp->n_experts = t->t.n_experts;
		grp->expert_bytes += t->t.expert_bytes;
		g->group_idx[epos[k]++] = i;
	}
	for (k = 0; !ret && k < n_groups; k++) {
		grp = gguf_group_at(g, k);
		grp->contiguous = !grp->n_tensors || last[k] - first[k] + 1 == grp->n_tensors;
	}
	free(tmp);
	return ret;
}

int gguf_group(struct p2pio_gguf *g, struct p2pio_error *err)
{
	int ret;

	ret = gguf_classify(g, err);
	if (ret)
		return ret;
	if (gguf_find_layers(g))
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	return gguf_fill_groups(g, err);
}

void gguf_group_free(struct p2pio_gguf *g)
{
	free(g->layers);
	free(g->group_idx);
	g->layers = NULL;
	g->group_idx = NULL;
}

size_t p2pio_gguf_layer_count(const struct p2pio_gguf *g)
{
	return g->n_layers;
}

const struct p2pio_gguf_layer *p2pio_gguf_layer(const struct p2pio_gguf *g, size_t i)
{
	return i < g->n_layers ? &g->layers[i] : NULL;
}

int p2pio_gguf_find_layer(const struct p2pio_gguf *g, uint32_t number)
{
	size_t lo = 0, hi = g->n_layers, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (g->layers[mid].number == number)
			return (int)mid;
		if (g->layers[mid].number < number)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -ENOENT;
}

const struct p2pio_gguf_layer *p2pio_gguf_nonlayer(const struct p2pio_gguf *g)
{
	return &g->nonlayer;
}
