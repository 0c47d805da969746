/* SPDX-License-Identifier: MIT */
/*
 * cli.h - helpers shared by the p2pio command-line tools: messages and exit codes, number
 * and size parsing, human-readable sizes, JSON output.
 *
 * Exit codes every tool uses:
 *	CLI_EXIT_OK       0  success
 *	CLI_EXIT_FAIL     1  the tool ran and the answer is "no" (a check or verification failed)
 *	CLI_EXIT_USAGE    2  bad command line
 *	CLI_EXIT_ERROR    3  an input could not be read or is invalid, or an output could not be
 *	                     written
 */
#ifndef P2PIO_CLI_H
#define P2PIO_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "p2pio.h"

enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAIL = 1,
	CLI_EXIT_USAGE = 2,
	CLI_EXIT_ERROR = 3,
};

/* Remember the program's name (basename of @argv0) for messages. */
void cli_init(const char *argv0);
const char *cli_prog(void);

/* "prog: message\n" on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * "prog: what: message (at byte offset N)\n" on stderr, from a failed libp2pio call: the
 * error's own message when it has one, else p2pio_strerror(@code). "what: " is left out when
 * @what is NULL or the message already starts with it (the library names files itself).
 */
void cli_err_p2pio(const char *what, int code, const struct p2pio_error *e);

/* "prog: message\nTry 'prog --help'.\n" on stderr; returns CLI_EXIT_USAGE. */
int cli_usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Parse a whole string as an unsigned decimal (or 0x-prefixed hexadecimal) integer.
 * Return: 0, or -EINVAL for anything that is not exactly a number, -ERANGE on overflow.
 */
int cli_parse_u64(const char *s, uint64_t *out);

/*
 * Parse a whole string as a floating-point number (strtod's syntax, "inf" and "nan"
 * included: the caller bounds the value). Return: 0, or -EINVAL for anything that is not
 * exactly one number or that overflows or underflows.
 */
int cli_parse_double(const char *s, double *out);

/*
 * Parse a size: a number with an optional binary unit, K, M, G, T or P (powers of 1024),
 * optionally followed by "iB" or "B", in either case: "4096", "512M", "4G", "1GiB", "64k".
 * Return: 0, -EINVAL for malformed input, -ERANGE when the size does not fit 64 bits.
 */
int cli_parse_size(const char *s, uint64_t *out);

/*
 * Parse an I/O path by its library name (p2pio_path_name()): "auto", "p2p", "bounce" or
 * "posix". Return: 0, or -EINVAL for anything else.
 */
int cli_parse_path(const char *s, enum p2pio_path *out);

/* "4.58 GiB", "512 B": a size for people, in binary units, with three significant digits. */
#define CLI_HUMAN_LEN 32
const char *cli_human_bytes(uint64_t n, char buf[CLI_HUMAN_LEN]);

/*
 * Write @len bytes at @s as a JSON string literal, quotes included. Control characters,
 * quotes and backslashes are escaped; bytes that are not valid UTF-8 (GGUF files are
 * untrusted) become U+FFFD, so the output is always valid JSON.
 */
void cli_json_str_n(FILE *f, const char *s, size_t len);
void cli_json_str(FILE *f, const char *s);

/*
 * Write a double as a JSON number; JSON has no NaN or infinities, so those become null.
 */
void cli_json_double(FILE *f, double v);

/*
 * Empty the page cache of @path for a cold measurement: sync, POSIX_FADV_DONTNEED on the
 * file, then drop_caches (root only). Return: false when only the file's own pages went.
 */
bool cli_drop_cache(const char *path);

#endif /* P2PIO_CLI_H */
