// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdarg.h>
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
		buf[i] = p2pio_printable(s[i]) ? s[i] : '?';
	if (n < len)
		memcpy(buf + n, "...", 3), n += 3;
	buf[n] = '\0';
	return buf;
}

void p2pio_error_wrap(struct p2pio_error *err, const char *fmt, ...)
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
