// SPDX-License-Identifier: MIT
/*
 * The tools' shared helpers (tools/cli.c): size, number and I/O path parsing, human-readable
 * sizes, and JSON strings that stay valid JSON whatever bytes a hostile GGUF string holds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../../tools/cli.c"
#include "tap.h"

static char buf[1024];

/* cli_json_str_n() into buf. */
static const char *json(const char *s, size_t len)
{
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	cli_json_str_n(f, s, len);
	fclose(f);
	return buf;
}

int main(void)
{
	char h[CLI_HUMAN_LEN];
	uint64_t v = 0;
	enum p2pio_path p = P2PIO_PATH_AUTO;
	double d = 0;

	tap_plan(28);
	tap_ok(!cli_parse_size("4096", &v) && v == 4096, "4096");
	tap_ok(!cli_parse_size("4K", &v) && v == 4096, "4K");
	tap_ok(!cli_parse_size("512M", &v) && v == 512ull << 20, "512M");
	tap_ok(!cli_parse_size("4G", &v) && v == 4ull << 30, "4G");
	tap_ok(!cli_parse_size("1GiB", &v) && v == 1ull << 30, "1GiB");
	tap_ok(!cli_parse_size("64kb", &v) && v == 64ull << 10, "64kb");
	tap_ok(!cli_parse_size("2T", &v) && v == 2ull << 40, "2T");
	tap_is_int(cli_parse_size("", &v), -EINVAL, "empty refused");
	tap_is_int(cli_parse_size("4X", &v), -EINVAL, "unknown unit refused");
	tap_is_int(cli_parse_size("-1", &v), -EINVAL, "negative refused");
	tap_is_int(cli_parse_size("4Gi", &v), -EINVAL, "4Gi without B refused");
	tap_is_int(cli_parse_size("16384P", &v), -ERANGE, "16384P overflows");
	tap_is_int(cli_parse_u64("18446744073709551616", &v), -ERANGE, "2^64 overflows");
	tap_ok(!cli_parse_u64("18446744073709551615", &v) && v == UINT64_MAX, "2^64-1 parses");
	tap_ok(!cli_parse_u64("0x1F", &v) && v == 31, "hex");
	tap_is_int(cli_parse_u64("12 ", &v), -EINVAL, "trailing space refused");
	tap_ok(!cli_parse_double("1.5e-3", &d) && d == 1.5e-3, "a double parses");
	tap_ok(cli_parse_double("", &d) == -EINVAL && cli_parse_double("1.5 ", &d) == -EINVAL &&
	       cli_parse_double("0x", &d) == -EINVAL, "an empty string or trailing text refused");
	tap_is_int(cli_parse_double("1e999", &d), -EINVAL, "overflow refused");
	tap_ok(!cli_parse_double("nan", &d) && isnan(d) && !cli_parse_double("-inf", &d) &&
	       isinf(d), "nan and inf parse (the caller bounds them)");
	tap_ok(!cli_parse_path("p2p", &p) && p == P2PIO_PATH_P2P && !cli_parse_path("bounce", &p) &&
	       p == P2PIO_PATH_BOUNCE && !cli_parse_path("posix", &p) && p == P2PIO_PATH_POSIX &&
	       !cli_parse_path("auto", &p) && p == P2PIO_PATH_AUTO, "the four path names parse");
	tap_ok(cli_parse_path("P2P", &p) == -EINVAL && cli_parse_path("", &p) == -EINVAL &&
	       cli_parse_path("?", &p) == -EINVAL && p == P2PIO_PATH_AUTO,
	       "any other path name refused, the path left alone");
	tap_ok(!strcmp(cli_human_bytes(512, h), "512 B") && !strcmp(cli_human_bytes(4915883296ull, h),
	       "4.58 GiB") && !strcmp(cli_human_bytes(1536, h), "1.50 KiB"), "human sizes: %s", h);
	tap_ok(!strcmp(json("a\"b\\c", 5), "\"a\\\"b\\\\c\""), "quotes and backslashes escaped");
	tap_ok(!strcmp(json("\n\t\x01", 3), "\"\\n\\t\\u0001\""), "control characters escaped");
	tap_ok(!strcmp(json("a\0b", 3), "\"a\\u0000b\""), "NUL bytes inside a string escaped");
	tap_ok(!strcmp(json("\xc3\xa9\xe2\x82\xac", 5), "\"\xc3\xa9\xe2\x82\xac\""), "valid UTF-8 kept");
	tap_ok(!strcmp(json("\xff\xc3\xe0\x80\x80\xed\xa0\x80", 8),
		       "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\""),
	       "invalid, truncated, overlong and surrogate UTF-8 replaced: %s", buf);
	return tap_exit();
}
