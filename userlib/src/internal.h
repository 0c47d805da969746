/* SPDX-License-Identifier: MIT */
/*
 * internal.h - declarations shared between libp2pio's source files; never installed.
 */
#ifndef P2PIO_INTERNAL_H
#define P2PIO_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2pio.h"

#define P2PIO_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Library-internal functions: visible across the library's objects, not exported. */
#define P2PIO_HIDDEN __attribute__((visibility("hidden")))

/*
 * Fill @err (which may be NULL) with @code, @offset and a printf-style message, and
 * return @code, so a failure path reads: return p2pio_set_error(err, -EINVAL, off, "...").
 */
P2PIO_HIDDEN int p2pio_set_error(struct p2pio_error *err, int code, uint64_t offset, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Overflow-checked arithmetic: true when the result overflowed. */
static inline bool p2pio_add_overflow(uint64_t a, uint64_t b, uint64_t *res)
{
	return __builtin_add_overflow(a, b, res);
}

static inline bool p2pio_mul_overflow(uint64_t a, uint64_t b, uint64_t *res)
{
	return __builtin_mul_overflow(a, b, res);
}

#endif /* P2PIO_INTERNAL_H */
