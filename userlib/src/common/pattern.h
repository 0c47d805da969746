/* SPDX-License-Identifier: MIT */
/*
 * pattern.h - p2pio's deterministic test pattern, as a pure function of (seed, offset).
 *
 * Every byte of a synthetic model is a function of the pattern seed and the byte's absolute
 * offset in the file, so any program that knows the seed (p2pio-mkmodel stores it in the
 * model's metadata as p2pio.pattern.seed) can check any byte wherever it landed: in host
 * memory, in GPU memory, in a guest's fake VRAM, without the file at hand.
 *
 * Definition: the file is a sequence of little-endian 64-bit words; the word at byte
 * offset 8*i is
 *
 *	p2pio_pattern_mix(seed ^ (i * 0x9e3779b97f4a7c15))
 *
 * where p2pio_pattern_mix() is the splitmix64 output function. Byte o of the file is
 * byte (o % 8) of word (o / 8), least significant byte first.
 *
 * The header has no dependencies beyond fixed-width integers, so that CUDA kernels, the
 * kernel-side and guest test programs can include it as it is. Everything is static inline.
 */
#ifndef P2PIO_PATTERN_H
#define P2PIO_PATTERN_H

#if defined(__KERNEL__)
#include <linux/types.h>
#else
#include <stddef.h>
#include <stdint.h>
#endif

#if defined(__CUDACC__)
#define P2PIO_PATTERN_FN static inline __host__ __device__
#else
#define P2PIO_PATTERN_FN static inline
#endif

#define P2PIO_PATTERN_GOLDEN 0x9e3779b97f4a7c15ULL

/* splitmix64's output function: a bijection on 64-bit words with good avalanche. */
P2PIO_PATTERN_FN uint64_t p2pio_pattern_mix(uint64_t z)
{
	z += P2PIO_PATTERN_GOLDEN;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The pattern word that covers bytes 8*@index .. 8*@index+7 of the file. */
P2PIO_PATTERN_FN uint64_t p2pio_pattern_word(uint64_t seed, uint64_t index)
{
	return p2pio_pattern_mix(seed ^ (index * P2PIO_PATTERN_GOLDEN));
}

/* The pattern byte at absolute file offset @off. */
P2PIO_PATTERN_FN uint8_t p2pio_pattern_byte(uint64_t seed, uint64_t off)
{
	return (uint8_t)(p2pio_pattern_word(seed, off >> 3) >> (8 * (off & 7)));
}

/* Store @w at @p least significant byte first, whatever the host's byte order. */
P2PIO_PATTERN_FN void p2pio_pattern_put_le64(uint8_t *p, uint64_t w)
{
	p[0] = (uint8_t)w;
	p[1] = (uint8_t)(w >> 8);
	p[2] = (uint8_t)(w >> 16);
	p[3] = (uint8_t)(w >> 24);
	p[4] = (uint8_t)(w >> 32);
	p[5] = (uint8_t)(w >> 40);
	p[6] = (uint8_t)(w >> 48);
	p[7] = (uint8_t)(w >> 56);
}

P2PIO_PATTERN_FN uint64_t p2pio_pattern_get_le64(const uint8_t *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	       (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
	       (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

/*
 * Fill @len bytes at @buf with the pattern of file bytes @off .. @off+@len-1. Neither
 * @off nor @buf nor @len needs any alignment: the ragged head and tail go byte by byte,
 * the middle a word at a time.
 */
P2PIO_PATTERN_FN void p2pio_pattern_fill_range(uint64_t seed, uint64_t off, void *buf, size_t len)
{
	uint8_t *p = (uint8_t *)buf;
	uint64_t idx;

	while (len && (off & 7)) {
		*p++ = p2pio_pattern_byte(seed, off++);
		len--;
	}
	for (idx = off >> 3; len >= 8; idx++, p += 8, len -= 8)
		p2pio_pattern_put_le64(p, p2pio_pattern_word(seed, idx));
	off = idx << 3;
	while (len) {
		*p++ = p2pio_pattern_byte(seed, off++);
		len--;
	}
}

/*
 * Compare @len bytes at @buf with the pattern of file bytes @off .. @off+@len-1.
 * Return: the index in @buf of the first byte that differs, or @len when all match.
 */
P2PIO_PATTERN_FN size_t p2pio_pattern_check_range(uint64_t seed, uint64_t off, const void *buf,
						   size_t len)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t i = 0;

	while (i < len && ((off + i) & 7)) {
		if (p[i] != p2pio_pattern_byte(seed, off + i))
			return i;
		i++;
	}
	while (len - i >= 8) {
		uint64_t want = p2pio_pattern_word(seed, (off + i) >> 3);
		uint64_t got = p2pio_pattern_get_le64(p + i);

		if (got != want) {
			/* Name the first differing byte, not the word. */
			while (p[i] == (uint8_t)want) {
				want >>= 8;
				i++;
			}
			return i;
		}
		i += 8;
	}
	for (; i < len; i++)
		if (p[i] != p2pio_pattern_byte(seed, off + i))
			return i;
	return len;
}

#endif /* P2PIO_PATTERN_H */
