// SPDX-License-Identifier: MIT
/*
 * pattern.c - the deterministic test pattern (pattern.h) as library functions, and as a
 * GGUF writer fill callback.
 */
#include <errno.h>

#include "internal.h"
#include "common/pattern.h"

void p2pio_pattern_fill(uint64_t seed, uint64_t offset, void *buf, size_t len)
{
	p2pio_pattern_fill_range(seed, offset, buf, len);
}

bool p2pio_pattern_check(uint64_t seed, uint64_t offset, const void *buf, size_t len,
			 uint64_t *mismatch)
{
	size_t i = p2pio_pattern_check_range(seed, offset, buf, len);

	if (i == len)
		return true;
	if (mismatch)
		*mismatch = offset + i;
	return false;
}

int p2pio_gguf_pattern_fill(void *arg, void *buf, size_t len, uint64_t tensor_off,
			    uint64_t file_off)
{
	const uint64_t *seed = arg;

	if (!seed)
		return -EINVAL;
	p2pio_pattern_fill_range(*seed, file_off, buf, len);
	return 0;
}
