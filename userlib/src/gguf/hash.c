// SPDX-License-Identifier: MIT
/*
 * gguf_hash.c - sets of names (metadata keys, tensor names): open addressing, linear probing,
 * FNV-1a with a per-table random basis, so that a file cannot be built to make every name
 * collide in every process. The table holds indices into the caller's array of names.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "gguf/reader.h"

static uint64_t gguf_hash_str(uint64_t seed, const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull ^ seed;

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 0x100000001b3ull;
	}
	/* FNV's low bits mix poorly; the table uses them, so fold the high bits down. */
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 32);
}

int gguf_hash_build(struct gguf_hash *h, const char *const *names, size_t n, size_t *dup)
{
	uint64_t size = 16, pos;
	size_t i;
	uint32_t s;

	/* n is bounded by the header size (P2PIO_GGUF_MAX_HEADER / 14), far below 2^31. */
	while (size < 2 * (uint64_t)n)
		size *= 2;
	h->slot = calloc(size, sizeof(*h->slot));
	if (!h->slot)
		return -ENOMEM;
	h->mask = size - 1;
	if (getrandom(&h->seed, sizeof(h->seed), GRND_NONBLOCK) != sizeof(h->seed))
		h->seed = (uint64_t)(uintptr_t)h->slot;
	for (i = 0; i < n; i++) {
		pos = gguf_hash_str(h->seed, names[i]) & h->mask;
		while ((s = h->slot[pos])) {
			if (!strcmp(names[s - 1], names[i])) {
				*dup = i;
				return -EEXIST;
			}
			pos = (pos + 1) & h->mask;
		}
		h->slot[pos] = (uint32_t)i + 1;
	}
	return 0;
}

int gguf_hash_find(const struct gguf_hash *h, const char *const *names, const char *name)
{
	uint64_t pos;
	uint32_t s;

	if (!h->slot || !name)
		return -ENOENT;
	pos = gguf_hash_str(h->seed, name) & h->mask;
	while ((s = h->slot[pos])) {
		if (!strcmp(names[s - 1], name))
			return (int)(s - 1);
		pos = (pos + 1) & h->mask;
	}
	return -ENOENT;
}

void gguf_hash_free(struct gguf_hash *h)
{
	free(h->slot);
	h->slot = NULL;
}
