/* SPDX-License-Identifier: MIT */
/*
 * tool_run.h - what the tools' tests share: run a p2pio tool from the same build tree as
 * the test program (build/ or build-asan/) and capture its standard output and exit
 * status; a scratch directory that goes away however the test ends; and readers of what
 * the tools print (JSON through python3's own parser, so that a test does not trust the
 * tool's idea of JSON, and text line by line).
 *
 *	tool_init(argv[0]);
 *	tool_need_python();
 *	dir = tool_scratch("load");                   /tmp/p2pio-load-XXXXXX
 *	st = tool_run(&out, "p2pio-load", "--json %s/t.gguf", dir);
 *	tap_ok(tool_jis(out, "d[\"verified\"]", "True"), "verified: %s", tool_jval);
 *
 * Any failure of the harness itself (no memory, a command line too long) bails out of the
 * test: a check must never pass or fail because its tool did not run as written.
 */
#ifndef P2PIO_TOOL_RUN_H
#define P2PIO_TOOL_RUN_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Remember where the tools are: $P2PIO_BIN where set (tests/gpu/run.sh sets it: the GPU
 * tests live a level deeper), else <dir of argv0>/../bin. Call first.
 */
void tool_init(const char *argv0);

/* That directory, for a command line that does not start with a tool (tool_sh()). */
const char *tool_bindir(void);

/*
 * Make the test's scratch directory /tmp/p2pio-@name-XXXXXX (bails if it cannot) and
 * remove it with everything in it at exit: a test that bails (tap_bail() exits) or skips
 * leaves no model behind in /tmp either. One per test program.
 */
const char *tool_scratch(const char *name);

/* Remove @dir and everything in it; a TAP diagnostic if not. */
void tool_rm_dir(const char *dir);

/*
 * Run "<bindir>/@tool <@fmt's arguments>" with a shell, so that the arguments may redirect
 * (2>&1, 2>/dev/null). Its stdout goes into a malloc'd string at *@out, which is freed
 * first (so start it NULL) and is never NULL after, "" when the tool printed nothing; @out
 * NULL discards it. stderr goes to the test's stderr. Returns the exit status, or -1 when
 * the tool did not exit (a signal) or could not be started.
 */
int tool_run(char **out, const char *tool, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* tool_run() for a whole shell command line (cp, dd, pipelines). */
int tool_sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Skip the whole test (TAP "1..0 # SKIP") where there is no python3 to parse the JSON. */
void tool_need_python(void);

/* Whether @json is valid JSON to python3's parser: 1 or 0; -1 when python3 is missing. */
int tool_json_ok(const char *json);

/*
 * python3's str() of the expression @expr over the document @json as `d`
 * ("d[\"tensors\"][0][\"bytes\"]"); "" when it does not evaluate. The string is
 * tool_jval's buffer: the next call overwrites it.
 */
const char *tool_jeval(const char *json, const char *expr);

/*
 * The value tool_jeval(), tool_jis() or tool_ju64() saw last: one buffer that stays where
 * it is, so that a test's message can say what a check compared, after the check.
 */
extern const char *const tool_jval;

/* Whether @expr over @json is @want, as python3 prints it ("True", "(1, 'host')"). */
bool tool_jis(const char *json, const char *expr, const char *want);

/* @expr over @json as an unsigned number; 0 when it is none. */
uint64_t tool_ju64(const char *json, const char *expr);

/*
 * A Python raw string for tool_jis(): the part of a measured ceiling's "ceiling_from"
 * that says its best storage shape (direct or buffered, never the link's) was read again
 * after the run (tools/bench_ceiling.c, bench_ceiling_again()).
 */
#define TOOL_CEILING_AGAIN_RE \
	"r\"its best storage shape again after \\((direct|buffered) \\d+K qd\\d+ x\\d+\\): " \
	"[0-9.]+ GB/s\""

/* Whether a line of @text starts with @prefix and contains @needle (NULL: any line). */
bool tool_has_line(const char *text, const char *prefix, const char *needle);

/* The first line of @text that starts with @prefix (to its end), or "". */
const char *tool_line(const char *text, const char *prefix);

/* How many lines of @text start with @prefix. */
int tool_count_lines(const char *text, const char *prefix);

/*
 * Make @dst a copy of @src with the byte at each of @off[0..@n) flipped (xor 0xff): a
 * model with known damage, for the verification checks. False if it could not be made.
 */
bool tool_corrupt_copy(const char *src, const char *dst, const uint64_t *off, int n);

#endif
