// SPDX-License-Identifier: MIT
/*
 * trace.c - routing traces in memory: built token by token, read cell by cell.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "experts/trace.h"

int p2pio_trace_check_info(const struct p2pio_expert_trace_info *info, struct p2pio_error *err,
			   uint64_t off)
{
	/* The messages name the fields of struct p2pio_expert_trace_info (and of
	 * p2pio_expert_synth_params, which shares them): a caller finds what to fix. */
	if (!info->nr_layers || info->nr_layers > P2PIO_EXPERT_TRACE_MAX_LAYERS)
		return p2pio_set_error(err, -EINVAL, off, "expert trace: nr_layers %u (1 to %u allowed)",
				       info->nr_layers, P2PIO_EXPERT_TRACE_MAX_LAYERS);
	if (!info->nr_experts || info->nr_experts > P2PIO_EXPERT_TRACE_MAX_EXPERTS)
		return p2pio_set_error(err, -EINVAL, off, "expert trace: nr_experts %u (1 to %u allowed)",
				       info->nr_experts, P2PIO_EXPERT_TRACE_MAX_EXPERTS);
	if (!info->top_k || info->top_k > P2PIO_EXPERT_TRACE_MAX_TOP_K ||
	    info->top_k > info->nr_experts)
		return p2pio_set_error(err, -EINVAL, off,
				       "expert trace: top_k %u (1 to %u allowed, and at most nr_experts, %u)",
				       info->top_k, P2PIO_EXPERT_TRACE_MAX_TOP_K, info->nr_experts);
	if (!memchr(info->model, '\0', sizeof(info->model)))
		return p2pio_set_error(err, -EINVAL, off,
				       "expert trace: model not NUL-terminated within its %d bytes",
				       P2PIO_EXPERT_TRACE_MODEL_LEN);
	return 0;
}

int p2pio_expert_trace_new(const struct p2pio_expert_trace_info *info,
			   struct p2pio_expert_trace **out, struct p2pio_error *err)
{
	struct p2pio_expert_trace *t;
	int ret;

	*out = NULL;
	if (!info)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "expert trace: info is NULL");
	ret = p2pio_trace_check_info(info, err, P2PIO_NO_OFFSET);
	if (ret)
		return ret;
	t = calloc(1, sizeof(*t));
	if (!t)
		goto nomem;
	t->info = *info;
	t->cur_count = calloc(info->nr_layers, sizeof(*t->cur_count));
	t->cur_set = calloc(info->nr_layers, sizeof(*t->cur_set));
	t->cur_ids = calloc((size_t)info->nr_layers * info->top_k, sizeof(*t->cur_ids));
	if (!t->cur_count || !t->cur_set || !t->cur_ids) {
		p2pio_expert_trace_free(t);
		goto nomem;
	}
	*out = t;
	return 0;

nomem:
	return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET,
			       "expert trace: out of memory for %u layers of top_k %u",
			       info->nr_layers, info->top_k);
}

void p2pio_expert_trace_free(struct p2pio_expert_trace *t)
{
	if (!t)
		return;
	free(t->flags);
	free(t->count);
	free(t->ids);
	free(t->cur_count);
	free(t->cur_set);
	free(t->cur_ids);
	free(t);
}

int p2pio_expert_trace_add(struct p2pio_expert_trace *t, uint32_t layer, const uint32_t *ids,
			   uint32_t n, struct p2pio_error *err)
{
	const struct p2pio_expert_trace_info *info = &t->info;
	uint32_t i, j;

	/* Each check with its own message: an engine (or a file's reader) finds which layer
	 * and which id was wrong. */
	if (layer >= info->nr_layers)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "expert trace: layer %u out of range (0 to %u allowed: nr_layers %u)",
				       layer, info->nr_layers - 1, info->nr_layers);
	if (t->cur_set[layer])
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "expert trace: layer %u already added to this token", layer);
	if (n && !ids)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "expert trace: layer %u: ids is NULL for %u experts", layer, n);
	if (n > info->top_k)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "expert trace: layer %u: %u experts, more than top_k %u",
				       layer, n, info->top_k);
	for (i = 0; i < n; i++) {
		if (ids[i] >= info->nr_experts)
			return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
					       "expert trace: layer %u: expert id %u out of range (0 to %u allowed: nr_experts %u)",
					       layer, ids[i], info->nr_experts - 1, info->nr_experts);
		for (j = 0; j < i; j++)
			if (ids[i] == ids[j])
				return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
						       "expert trace: layer %u: expert id %u repeated (at %u and %u of the %u ids)",
						       layer, ids[i], j, i, n);
	}
	for (i = 0; i < n; i++)
		t->cur_ids[(size_t)layer * t->info.top_k + i] = (uint16_t)ids[i];
	t->cur_count[layer] = (uint8_t)n;
	t->cur_set[layer] = true;
	return 0;
}

int p2pio_trace_check_flags(uint32_t flags, uint64_t tok, struct p2pio_error *err)
{
	if (flags & ~P2PIO_EXPERT_TOKEN_FLAGS)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "expert trace: token %llu: unknown flags 0x%x (the P2PIO_EXPERT_TOKEN_* bits are 0x%x)",
				       (unsigned long long)tok, flags, P2PIO_EXPERT_TOKEN_FLAGS);
	return 0;
}

/* Room for more tokens: -E2BIG past P2PIO_TRACE_MAX_BYTES (trace.h says why). */
static int trace_grow(struct p2pio_expert_trace *t)
{
	size_t L = t->info.nr_layers, K = t->info.top_k;
	uint64_t cap = t->cap_tokens ? t->cap_tokens * 2 : 64;
	uint64_t most = P2PIO_TRACE_MAX_BYTES / p2pio_trace_token_bytes(&t->info);
	uint8_t *flags, *count;
	uint16_t *ids;

	if (cap > most)
		cap = most;
	if (cap <= t->cap_tokens)
		return -E2BIG;
	if (cap > (SIZE_MAX / 2) / (L * K))
		return -ENOMEM;
	flags = realloc(t->flags, cap);
	if (!flags)
		return -ENOMEM;
	t->flags = flags;
	count = realloc(t->count, cap * L);
	if (!count)
		return -ENOMEM;
	t->count = count;
	ids = realloc(t->ids, cap * L * K * sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	t->ids = ids;
	t->cap_tokens = cap;
	return 0;
}

int p2pio_expert_trace_end_token(struct p2pio_expert_trace *t, uint32_t flags,
				 struct p2pio_error *err)
{
	size_t L = t->info.nr_layers, K = t->info.top_k;
	int ret;

	ret = p2pio_trace_check_flags(flags, t->nr_tokens, err);
	if (ret)
		return ret;
	if (t->nr_tokens == t->cap_tokens) {
		ret = trace_grow(t);
		if (ret == -E2BIG)
			return p2pio_set_error(err, ret, P2PIO_NO_OFFSET,
					       "expert trace: token %llu: %u layers x top_k %u take %llu bytes a token in memory, past the trace's bound of %llu MiB",
					       (unsigned long long)t->nr_tokens, t->info.nr_layers,
					       t->info.top_k,
					       (unsigned long long)p2pio_trace_token_bytes(&t->info),
					       (unsigned long long)(P2PIO_TRACE_MAX_BYTES >> 20));
		if (ret)
			return p2pio_set_error(err, ret, P2PIO_NO_OFFSET,
					       "expert trace: token %llu: out of memory for more tokens of %llu bytes",
					       (unsigned long long)t->nr_tokens,
					       (unsigned long long)p2pio_trace_token_bytes(&t->info));
	}
	t->flags[t->nr_tokens] = (uint8_t)flags;
	memcpy(&t->count[t->nr_tokens * L], t->cur_count, L);
	memcpy(&t->ids[t->nr_tokens * L * K], t->cur_ids, L * K * sizeof(*t->ids));
	t->nr_tokens++;
	memset(t->cur_count, 0, L);
	memset(t->cur_set, 0, L * sizeof(*t->cur_set));
	return 0;
}

const struct p2pio_expert_trace_info *p2pio_expert_trace_info(const struct p2pio_expert_trace *t)
{
	return &t->info;
}

uint64_t p2pio_expert_trace_tokens(const struct p2pio_expert_trace *t)
{
	return t->nr_tokens;
}

uint32_t p2pio_expert_trace_token_flags(const struct p2pio_expert_trace *t, uint64_t token)
{
	return token < t->nr_tokens ? t->flags[token] : 0;
}

int p2pio_expert_trace_cell(const struct p2pio_expert_trace *t, uint64_t token, uint32_t layer,
			    const uint16_t **ids)
{
	size_t c;

	if (token >= t->nr_tokens || layer >= t->info.nr_layers)
		return -EINVAL;
	c = token * t->info.nr_layers + layer;
	*ids = &t->ids[c * t->info.top_k];
	return t->count[c];
}
