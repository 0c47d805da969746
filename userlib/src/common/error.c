// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define P2PIO_STR2(x) #x
#define P2PIO_STR(x) P2PIO_STR2(x)

const char *p2pio_version(void)
{
	return P2PIO_STR(P2PIO_VERSION_MAJOR) "." P2PIO_STR(P2PIO_VERSION_MINOR) "." P2PIO_STR(
		P2PIO_VERSION_PATCH);
}

const char *p2pio_strerror(int err)
{
	if (err < 0)
		err = -err;
	/* strerror() may use a shared buffer for unknown values; known ones are static. */
	return strerror(err);
}

int p2pio_set_error(struct p2pio_error *err, int code, uint64_t offset, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	err->offset = offset;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

const char *p2pio_quote(char *buf, size_t size, const char *s, size_t len)
{
	size_t i, n = len < size - 4 ? len : size - 4;

	for (i = 0; i < n; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (n < len)
		memcpy(buf + n, "...", 3), n += 3;
	buf[n] = '\0';
	return buf;
}
