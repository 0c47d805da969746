// SPDX-License-Identifier: MIT
/* gguf_tensors.c - tensors of a parsed GGUF file: lookup, expert slices, zero-copy data. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "gguf/reader.h"

size_t p2pio_gguf_tensor_count(const struct p2pio_gguf *g)
{
	return g->n_tensors;
}

const struct p2pio_gguf_tensor *p2pio_gguf_tensor(const struct p2pio_gguf *g, size_t i)
{
	return i < g->n_tensors ? &g->tensors[i].t : NULL;
}

int p2pio_gguf_find_tensor(const struct p2pio_gguf *g, const char *name)
{
	return gguf_hash_find(&g->tensor_hash, g->tensor_names, name);
}

const struct p2pio_gguf_tensor *p2pio_gguf_tensor_by_name(const struct p2pio_gguf *g,
							  const char *name)
{
	int i = p2pio_gguf_find_tensor(g, name);

	return i < 0 ? NULL : &g->tensors[i].t;
}

int p2pio_gguf_expert_range(const struct p2pio_gguf *g, size_t i, uint64_t e, uint64_t *offset,
			    uint64_t *len)
{
	const struct p2pio_gguf_tensor *t = p2pio_gguf_tensor(g, i);

	if (!t)
		return -ERANGE;
	if (!t->n_experts)
		return -EINVAL;
	if (e >= t->n_experts)
		return -ERANGE;
	/* e * expert_bytes < size, which was checked to lie inside the file. */
	if (offset)
		*offset = t->file_offset + e * t->expert_bytes;
	if (len)
		*len = t->expert_bytes;
	return 0;
}

/*
 * The first caller maps the file; a racing caller that loses the exchange unmaps its own
 * copy and uses the winner's, so no lock is needed.
 */
int p2pio_gguf_tensor_data(struct p2pio_gguf *g, size_t i, const void **data,
			   struct p2pio_error *err)
{
	void *map, *expected = NULL;

	if (i >= g->n_tensors)
		return p2pio_set_error(err, -ERANGE, P2PIO_NO_OFFSET,
				       "tensor %zu does not exist (the file has %zu)", i,
				       g->n_tensors);
	map = __atomic_load_n(&g->map, __ATOMIC_ACQUIRE);
	if (!map) {
		map = mmap(NULL, g->file_size, PROT_READ, MAP_SHARED, g->fd, 0);
		if (map == MAP_FAILED)
			return p2pio_set_error(err, -errno, P2PIO_NO_OFFSET,
					       "mapping the file (%llu bytes): %s",
					       (unsigned long long)g->file_size, strerror(errno));
		if (!__atomic_compare_exchange_n(&g->map, &expected, map, false, __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE)) {
			munmap(map, g->file_size);
			map = expected;
		}
	}
	*data = (const unsigned char *)map + g->tensors[i].t.file_offset;
	return 0;
}
