/* SPDX-License-Identifier: MIT */
/*
 * fuzz-check.h - the fuzz targets' invariant check. A failed invariant prints the target
 * (FUZZ_NAME, defined before including this), the expression and the line, and aborts:
 * libFuzzer reports it as a crash and keeps the input that caused it.
 */
#ifndef P2PIO_FUZZ_CHECK_H
#define P2PIO_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(x)                                                                          \
	do {                                                                              \
		if (!(x)) {                                                               \
			fprintf(stderr, "%s: invariant failed: %s (line %d)\n", FUZZ_NAME, \
				#x, __LINE__);                                            \
			abort();                                                          \
		}                                                                         \
	} while (0)

#endif /* P2PIO_FUZZ_CHECK_H */
