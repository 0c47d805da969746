/* SPDX-License-Identifier: MIT */
/*
 * tool_run.h - run a p2pio tool from the same build tree as the test program (build/ or
 * build-asan/), capture its standard output and exit status.
 */
#ifndef P2PIO_TOOL_RUN_H
#define P2PIO_TOOL_RUN_H

#include <stddef.h>

/* Remember where the tools are: <dir of argv0>/../bin. */
void tool_init(const char *argv0);

/*
 * Run "<bindir>/@tool @args" with a shell, stdout into a malloc'd string (*@out, may be
 * NULL), stderr to the test's stderr. Return: the exit status, or -1.
 */
int tool_run(const char *tool, const char *args, char **out);

/* Remove @dir and everything in it (a test's scratch directory); a TAP diagnostic if not. */
void tool_rm_dir(const char *dir);

/* Whether @json is valid JSON (python3's parser); -1 when python3 is missing. */
int tool_json_ok(const char *json);

/* Evaluate a python3 expression over the document as `d`; its str() into @buf. */
int tool_json_eval(const char *json, const char *expr, char *buf, size_t size);

#endif
