// SPDX-License-Identifier: MIT
/* gguf_errors.c - rendering untrusted names in messages, and adding context to an error. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gguf/reader.h"

/*
 * Names come from the file: a hostile one could be long, or carry terminal escapes. Show at
 * most GGUF_QUOTE_MAX - 4 bytes, printable ASCII only.
 */
const char *gguf_quote(char buf[GGUF_QUOTE_MAX], const char *s, uint64_t len)
{
	return p2pio_quote(buf, GGUF_QUOTE_MAX, s, len > SIZE_MAX ? SIZE_MAX : (size_t)len);
}

void gguf_wrap(struct p2pio_error *err, const char *fmt, ...)
{
	char old[sizeof(err->msg)];
	size_t n, keep;
	va_list ap;
	int r;

	if (!err)
		return;
	memcpy(old, err->msg, sizeof(old));
	va_start(ap, fmt);
	r = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	n = r < 0 ? 0 : (size_t)r;
	if (n >= sizeof(err->msg) - 1)
		return;
	keep = strnlen(old, sizeof(old) - 1);
	if (keep > sizeof(err->msg) - 1 - n)
		keep = sizeof(err->msg) - 1 - n;
	memcpy(err->msg + n, old, keep);
	err->msg[n + keep] = '\0';
}
