// SPDX-License-Identifier: MIT
/*
 * The deterministic test pattern: a pure function of (seed, offset), the same through the
 * library and through the header, byte-exact for any unaligned range, and its check finds
 * the first differing byte.
 */
#include <stdlib.h>
#include <string.h>

#include "p2pio.h"
#include "common/pattern.h"
#include "tap.h"

#define N 4096

/* The definition, spelled out independently of pattern.h's word loop. */
static uint8_t ref_byte(uint64_t seed, uint64_t off)
{
	uint64_t z = seed ^ ((off / 8) * 0x9e3779b97f4a7c15ULL);

	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return (uint8_t)(z >> (8 * (off % 8)));
}

int main(void)
{
	static uint8_t a[N + 16], b[N + 16];
	const uint64_t seeds[] = { 0, 1, 0x1234567890abcdefULL, UINT64_MAX };
	const uint64_t bases[] = { 0, 1, 7, 8, 4093, 1ULL << 40, UINT64_MAX - N - 64 };
	uint64_t bad = 0;
	size_t s, i, k;
	bool ok;

	tap_plan(14);

	/* Known answer: splitmix64 of 0 (word 0, seed 0) is e220a8397b1dcdaf. */
	tap_is_u64(p2pio_pattern_word(0, 0), 0xe220a8397b1dcdafULL, "word 0 of seed 0 is splitmix64(0)");

	ok = true;
	for (s = 0; s < (sizeof(seeds) / sizeof(seeds[0])); s++)
		for (k = 0; k < (sizeof(bases) / sizeof(bases[0])); k++) {
			p2pio_pattern_fill(seeds[s], bases[k], a, N);
			for (i = 0; i < N; i++)
				ok &= a[i] == ref_byte(seeds[s], bases[k] + i);
		}
	tap_ok(ok, "fill matches the definition byte by byte, for aligned and unaligned offsets");

	/* Any sub-range filled on its own equals the same bytes of a larger fill. */
	p2pio_pattern_fill(42, 1000, a, N);
	ok = true;
	for (i = 0; i < 64 && ok; i++) {
		size_t start = (i * 97) % N, len = (i * 131) % (N - start);

		memset(b, 0xa5, sizeof(b));
		/* Also from an unaligned destination address. */
		p2pio_pattern_fill(42, 1000 + start, b + 3, len);
		ok = !memcmp(b + 3, a + start, len) && b[2] == 0xa5 && b[3 + len] == 0xa5;
	}
	tap_ok(ok, "sub-ranges at any offset, length and address agree and stay in bounds");

	p2pio_pattern_fill(1, 0, a, N);
	p2pio_pattern_fill(2, 0, b, N);
	tap_ok(memcmp(a, b, N) != 0, "different seeds give different bytes");
	p2pio_pattern_fill(1, 8, b, N);
	tap_ok(memcmp(a, b, N) != 0, "different offsets give different bytes");
	p2pio_pattern_fill(1, 0, b, N);
	tap_ok(!memcmp(a, b, N), "the same (seed, offset) gives the same bytes");

	/* The library's functions and the header's inline ones agree. */
	p2pio_pattern_fill_range(99, 12345, b, N);
	p2pio_pattern_fill(99, 12345, a, N);
	tap_ok(!memcmp(a, b, N), "pattern.h and the library produce the same bytes");

	tap_ok(p2pio_pattern_check(99, 12345, a, N, &bad), "check accepts a correct buffer");
	tap_ok(p2pio_pattern_check(99, 12345, a, 0, &bad), "check accepts an empty buffer");

	ok = true;
	for (i = 0; i < N && ok; i += 37) {
		for (k = 0; k < 3; k++) {
			size_t off = k == 0 ? 0 : k == 1 ? 5 : 8;

			if (off > i)
				continue;
			p2pio_pattern_fill(99, 12345 + off, a, N - off);
			a[i - off] ^= 0x10;
			bad = 0;
			ok &= !p2pio_pattern_check(99, 12345 + off, a, N - off, &bad) &&
			      bad == 12345 + i;
		}
	}
	tap_ok(ok, "a flipped bit anywhere is found at its exact file offset");

	p2pio_pattern_fill(99, 0, a, N);
	a[100] ^= 1;
	a[200] ^= 1;
	tap_ok(!p2pio_pattern_check(99, 0, a, N, &bad) && bad == 100,
	       "with two bad bytes, the first is reported");
	tap_ok(p2pio_pattern_check(99, 101, a + 101, 99, NULL),
	       "a range between the bad bytes still checks clean");

	p2pio_pattern_fill(99, 0, a, N);
	tap_ok(!p2pio_pattern_check(98, 0, a, N, &bad) && bad == 0, "the wrong seed fails at once");
	tap_ok(!p2pio_pattern_check(99, 8, a, N - 8, &bad) && bad == 8,
	       "data checked against the wrong offset fail");
	return tap_exit();
}
