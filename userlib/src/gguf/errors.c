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
