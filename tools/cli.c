// SPDX-License-Identifier: MIT
/* cli.c - helpers shared by the p2pio command-line tools (see cli.h). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "p2pio.h"

static const char *cli_progname = "p2pio";

void cli_init(const char *argv0)
{
	const char *slash;

	if (!argv0 || !*argv0)
		return;
	slash = strrchr(argv0, '/');
	cli_progname = slash ? slash + 1 : argv0;
}

const char *cli_prog(void)
{
	return cli_progname;
}

/* "prog: message" on stderr, without the line's end: each caller ends it its own way. */
__attribute__((format(printf, 1, 0)))
static void cli_vmsg(const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", cli_progname);
	vfprintf(stderr, fmt, ap);
}

void cli_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_vmsg(fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_err_p2pio(const char *what, int code, const struct p2pio_error *e)
{
	const char *msg = (e && e->msg[0]) ? e->msg : p2pio_strerror(code);
	char off[48] = "";

	if (e && e->msg[0] && e->offset != P2PIO_NO_OFFSET)
		snprintf(off, sizeof(off), " (at byte offset %llu)", (unsigned long long)e->offset);
	/* Messages of the library often start with the file's name already. */
	if (!what || !strncmp(msg, what, strlen(what)))
		cli_err("%s%s", msg, off);
	else
		cli_err("%s: %s%s", what, msg, off);
}

int cli_usage_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_vmsg(fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help'.\n", cli_progname);
	return CLI_EXIT_USAGE;
}

/* Parse the leading number of @s; *end points past it. */
static int cli_parse_num(const char *s, uint64_t *out, const char **end)
{
	unsigned int base = 10;
	uint64_t v = 0;
	const char *p = s;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X') && isxdigit((unsigned char)p[2])) {
		base = 16;
		p += 2;
	}
	if (!isxdigit((unsigned char)*p) || (base == 10 && !isdigit((unsigned char)*p)))
		return -EINVAL;
	for (;; p++) {
		unsigned int d;

		if (isdigit((unsigned char)*p))
			d = (unsigned int)(*p - '0');
		else if (base == 16 && isxdigit((unsigned char)*p))
			d = (unsigned int)(tolower((unsigned char)*p) - 'a' + 10);
		else
			break;
		if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, d, &v))
			return -ERANGE;
	}
	*out = v;
	*end = p;
	return 0;
}

int cli_parse_double(const char *s, double *out)
{
	char *end;

	if (!s)
		return -EINVAL;
	errno = 0;
	*out = strtod(s, &end);
	return errno || end == s || *end ? -EINVAL : 0;
}

int cli_parse_u64(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v;
	int ret;

	if (!s)
		return -EINVAL;
	ret = cli_parse_num(s, &v, &end);
	if (ret)
		return ret;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGTP";
	const char *end, *u;
	unsigned int shift = 0;
	uint64_t v;
	int ret;

	if (!s)
		return -EINVAL;
	ret = cli_parse_num(s, &v, &end);
	if (ret)
		return ret;
	if (*end) {
		u = strchr(units, toupper((unsigned char)*end));
		if (u) {
			shift = 10 * (unsigned int)(u - units + 1);
			end++;
			if (*end == 'i' || *end == 'I') {
				end++;
				if (*end != 'B' && *end != 'b')
					return -EINVAL;
			}
		}
		if (*end == 'B' || *end == 'b')
			end++;
		if (*end)
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

int cli_parse_path(const char *s, enum p2pio_path *out)
{
	int p;

	for (p = 0; p < P2PIO_PATH_NR; p++) {
		if (!strcmp(s, p2pio_path_name((enum p2pio_path)p))) {
			*out = (enum p2pio_path)p;
			return 0;
		}
	}
	return -EINVAL;
}

const char *cli_human_bytes(uint64_t n, char buf[CLI_HUMAN_LEN])
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned int i = 0;
	double v = (double)n;

	if (n < 1024) {
		snprintf(buf, CLI_HUMAN_LEN, "%llu B", (unsigned long long)n);
		return buf;
	}
	while (v >= 1024.0 && i + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		i++;
	}
	snprintf(buf, CLI_HUMAN_LEN, "%.*f %s", v < 10.0 ? 2 : v < 100.0 ? 1 : 0, v, units[i]);
	return buf;
}

/*
 * Length of the valid UTF-8 sequence at @s (at most @len bytes), or 0 when the bytes are
 * not one: overlong forms, surrogates and code points above U+10FFFF are invalid.
 */
static size_t cli_utf8_len(const unsigned char *s, size_t len)
{
	unsigned int cp, n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void cli_json_str_n(FILE *f, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, n;

	fputc('"', f);
	while (i < len) {
		unsigned char c = s[i];

		switch (c) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (c < 0x20 || c == 0x7f) {
				fprintf(f, "\\u%04x", c);
				break;
			}
			n = cli_utf8_len(s + i, len - i);
			if (!n) {
				fputs("\\ufffd", f);
				break;
			}
			fwrite(s + i, 1, n, f);
			i += n;
			continue;
		}
		i++;
	}
	fputc('"', f);
}

void cli_json_str(FILE *f, const char *s)
{
	cli_json_str_n(f, s, strlen(s));
}

void cli_json_double(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", f);
	else
		fprintf(f, "%.17g", v);
}

bool cli_drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool all = false;

	sync();
	if (fd >= 0) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		all = write(fd, "3\n", 2) == 2;
		close(fd);
	}
	return all;
}
