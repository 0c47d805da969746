// SPDX-License-Identifier: MIT
/*
 * model_layout.c - lay tensors out in target memory as a few large, block-aligned reads.
 */
#include <errno.h>
#include <stdlib.h>

#include "model/plan.h"

/* Orders span indices by the spans' offsets; @arg: the spans. */
static int cmp_off(const void *a, const void *b, void *arg)
{
	const struct p2pio_span *base = arg;
	uint64_t x = base[*(const uint32_t *)a].off;
	uint64_t y = base[*(const uint32_t *)b].off;

	return x < y ? -1 : x > y;
}

int p2pio_layout(const struct p2pio_span *ext, uint32_t n, uint64_t align, uint64_t gap,
		 uint64_t file_size, struct p2pio_run *runs, uint64_t *dst, uint64_t *region)
{
	uint64_t prev_end = 0, cursor = 0;
	struct p2pio_run *r = NULL;
	uint32_t *order, i;
	int nruns = 0;

	if (!align || (align & (align - 1)))
		return -EINVAL;
	*region = 0;
	if (!n)
		return 0;
	order = malloc(sizeof(*order) * n);
	if (!order)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		order[i] = i;
	/*
	 * qsort_r (glibc, as the GGUF reader uses): models are opened from any thread, and a
	 * global base pointer shared by two sorts crashed one of them (session 11's review).
	 */
	qsort_r(order, n, sizeof(*order), cmp_off, (void *)ext);

	for (i = 0; i < n; i++) {
		const struct p2pio_span *e = &ext[order[i]];
		uint64_t end, lo, hi;

		if (p2pio_add_overflow(e->off, e->size, &end) || end > file_size)
			goto out_inval;
		if (i && e->off < prev_end)
			goto out_inval;	/* overlaps the previous range */
		prev_end = end;
		lo = e->off & ~(align - 1);
		if (p2pio_add_overflow(end, align - 1, &hi))
			goto out_overflow;
		hi &= ~(align - 1);
		if (hi > file_size)
			hi = file_size;
		if (r && lo <= r->file_off + r->len + gap) {
			if (hi > r->file_off + r->len)
				r->len = hi - r->file_off;
		} else {
			if (r) {
				/* The region stays block aligned even after a run clamped at EOF. */
				if (p2pio_add_overflow(cursor, r->len + align - 1, &cursor))
					goto out_overflow;
				cursor &= ~(align - 1);
			}
			r = &runs[nruns++];
			r->file_off = lo;
			r->len = hi - lo;
			r->dst_off = cursor;
		}
		dst[order[i]] = r->dst_off + (e->off - r->file_off);
	}
	*region = r->dst_off + r->len;
	free(order);
	return nruns;

out_inval:
	free(order);
	return -EINVAL;
out_overflow:
	free(order);
	return -EOVERFLOW;
}
