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

/* Prefix err->msg (@err may be NULL) with a printf-style context ("file: ", "key 'x': "). */
P2PIO_HIDDEN void p2pio_error_wrap(struct p2pio_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Whether byte @c of untrusted text may be shown as it is: printable ASCII. */
static inline bool p2pio_printable(char c)
{
	return c >= 0x20 && c < 0x7f;
}

/*
 * Untrusted text (a name from a file) for a message or a terminal: the @len bytes at @s
 * as printable ASCII into @buf (any other byte as '?': no terminal escapes), at most
 * @size - 4 of them, then "..." when cut. @size is at least 5. Returns @buf.
 */
P2PIO_HIDDEN const char *p2pio_quote(char *buf, size_t size, const char *s, size_t len);

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
