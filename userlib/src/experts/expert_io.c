// SPDX-License-Identifier: MIT
/*
 * expert_io.c - plan the reads of one expert: a read per slice, merged where slices share
 * a block, each landing at the same offset modulo the block as in the file.
 */
#include <errno.h>
#include <string.h>

#include "experts/expert_io.h"

int p2pio_expert_plan(const struct p2pio_gguf *g, const struct p2pio_gguf_layer *gl, uint64_t e,
		      uint64_t block, uint64_t file_size, struct p2pio_expert_plan *out)
{
	struct p2pio_run *r = NULL;
	uint64_t cursor = 0, prev_end = 0;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (!block || (block & (block - 1)) || !gl->n_experts || e >= gl->n_experts)
		return -EINVAL;
	if (gl->n_expert_tensors > P2PIO_EXPERT_MAX_SLICES)
		return -E2BIG;
	for (i = 0; i < gl->n_expert_tensors; i++) {
		uint64_t off, len, end, lo, hi;
		int ret;

		ret = p2pio_gguf_expert_range(g, gl->expert_tensors[i], e, &off, &len);
		if (ret)
			return ret;
		end = off + len;	/* inside the file: the reader checked the tensor */
		if (i && off < prev_end)
			return -EINVAL;	/* the reader never lets tensors overlap */
		prev_end = end;
		lo = off & ~(block - 1);
		hi = (end + block - 1) & ~(block - 1);
		if (hi > file_size)
			hi = file_size;
		if (r && lo <= r->file_off + r->len) {
			if (hi > r->file_off + r->len)
				r->len = hi - r->file_off;
		} else {
			if (r)
				cursor = (r->dst_off + r->len + block - 1) & ~(block - 1);
			r = &out->runs[out->nruns++];
			r->file_off = lo;
			r->len = hi - lo;
			r->dst_off = cursor;
		}
		out->tensor[i] = gl->expert_tensors[i];
		out->file_off[i] = off;
		out->size[i] = len;
		out->dst[i] = r->dst_off + (off - r->file_off);
		out->nslices++;
	}
	if (r)
		out->region = r->dst_off + r->len;
	return 0;
}
