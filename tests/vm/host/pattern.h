/* SPDX-License-Identifier: MIT */
/*
 * pattern.h - the content of every test file, shared by the host and the guest.
 *
 * Byte o of a file whose name (basename) is N is byte (o % 8) of the 64-bit word
 * vm_pattern_word(vm_pattern_seed(N), o / 8). The content depends on both the name and
 * the position, so a read that lands in the wrong place, comes from the wrong file or the
 * wrong block never matches by accident. The host writes the files from it before
 * making the file systems, the guest writes the files it creates (fragmented ones) from
 * it, and the host checks every byte that landed in the "GPU" BAR against it.
 */
#ifndef VM_PATTERN_H
#define VM_PATTERN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* FNV-1a of the file's basename. */
static inline uint64_t vm_pattern_seed(const char *path)
{
	const char *base = strrchr(path, '/');
	uint64_t h = 0xcbf29ce484222325ull;

	for (base = base ? base + 1 : path; *base; base++)
		h = (h ^ (unsigned char)*base) * 0x100000001b3ull;
	return h;
}

/* splitmix64 of the word index, keyed by the seed. */
static inline uint64_t vm_pattern_word(uint64_t seed, uint64_t idx)
{
	uint64_t z = seed + (idx + 1) * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Fills buf with bytes [off, off + len) of the file's content. */
static inline void vm_pattern_fill(uint64_t seed, uint64_t off, void *buf, size_t len)
{
	unsigned char *p = buf;
	uint64_t w = vm_pattern_word(seed, off >> 3);

	while (len--) {
		*p++ = (unsigned char)(w >> (8 * (off & 7)));
		if ((++off & 7) == 0)
			w = vm_pattern_word(seed, off >> 3);
	}
}

/* Returns the index of the first byte that differs from the content, or len. */
static inline size_t vm_pattern_check(uint64_t seed, uint64_t off, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t w = vm_pattern_word(seed, off >> 3);
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] != (unsigned char)(w >> (8 * (off & 7))))
			return i;
		if ((++off & 7) == 0)
			w = vm_pattern_word(seed, off >> 3);
	}
	return len;
}

#endif /* VM_PATTERN_H */
