// SPDX-License-Identifier: MIT
/* tool_run.c - run tools from tests and read what they print (see tool_run.h). */
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "tool_run.h"

/* A command line the harness builds: the longest any test writes, with room to spare. */
#define CMD_MAX 8192

static char bindir[PATH_MAX];
static char scratch[PATH_MAX];
static char jval[512];
const char *const tool_jval = jval;

void tool_init(const char *argv0)
{
	const char *env = getenv("P2PIO_BIN");
	char self[PATH_MAX], *slash;

	if (env && *env) {
		snprintf(bindir, sizeof(bindir), "%s", env);
		return;
	}
	if (!realpath(argv0, self))
		snprintf(self, sizeof(self), "%s", argv0);
	slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(bindir, sizeof(bindir), "%.4000s/../bin", self);
}

const char *tool_bindir(void)
{
	return bindir;
}

static void scratch_rm(void)
{
	tool_rm_dir(scratch);
}

const char *tool_scratch(const char *name)
{
	if (scratch[0])
		tap_bail("tool_scratch() twice: one scratch directory per test");
	snprintf(scratch, sizeof(scratch), "/tmp/p2pio-%.64s-XXXXXX", name);
	if (!mkdtemp(scratch))
		tap_bail("mkdtemp");
	atexit(scratch_rm);
	return scratch;
}

void tool_rm_dir(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		tap_diag("could not remove %s", dir);
}

/*
 * Run @cmd with a shell, @input (if any) on its stdin through a temporary file, its stdout
 * into *@out (malloc'd; NULL when it could not be captured). The exit status, or -1.
 */
static int run_capture(const char *cmd, const char *input, char **out)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap), tmp[] = "/tmp/p2pio-tool-in-XXXXXX", full[CMD_MAX + 64];
	FILE *p;
	int st, fd = -1;

	*out = NULL;
	if (!buf)
		return -1;
	if (input) {
		fd = mkstemp(tmp);
		if (fd < 0 || write(fd, input, strlen(input)) != (ssize_t)strlen(input)) {
			if (fd >= 0) {
				close(fd);
				unlink(tmp);
			}
			free(buf);
			return -1;
		}
		close(fd);
		snprintf(full, sizeof(full), "%s < %s", cmd, tmp);
	} else {
		snprintf(full, sizeof(full), "%s", cmd);
	}
	p = popen(full, "r");
	if (!p) {
		if (input)
			unlink(tmp);
		free(buf);
		return -1;
	}
	for (;;) {
		size_t n;

		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		n = fread(buf + len, 1, cap - len - 1, p);
		if (!n)
			break;
		len += n;
	}
	buf[len] = '\0';
	st = pclose(p);
	if (input)
		unlink(tmp);
	*out = buf;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* vsnprintf() into @buf, bailing where it does not fit: a cut command would run another. */
static void format_cmd(char *buf, size_t size, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf, size, fmt, ap);

	if (n < 0 || (size_t)n >= size)
		tap_bail("a command line too long for the test harness");
}

static int sh(char **out, const char *cmd)
{
	char *buf;
	int st = run_capture(cmd, NULL, &buf);

	if (!out) {
		free(buf);
		return st;
	}
	free(*out);
	*out = buf ? buf : calloc(1, 1);
	if (!*out)
		tap_bail("out of memory");
	return st;
}

int tool_sh(char **out, const char *fmt, ...)
{
	char cmd[CMD_MAX];
	va_list ap;

	va_start(ap, fmt);
	format_cmd(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return sh(out, cmd);
}

int tool_run(char **out, const char *tool, const char *fmt, ...)
{
	char args[CMD_MAX - PATH_MAX - 80], cmd[CMD_MAX];
	va_list ap;

	va_start(ap, fmt);
	format_cmd(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "%s/%.64s %s", bindir, tool, args);
	return sh(out, cmd);
}

static bool have_python(void)
{
	return !system("command -v python3 >/dev/null 2>&1");
}

void tool_need_python(void)
{
	if (!have_python())
		tap_skip_all("python3 is needed to parse the JSON");
}

int tool_json_ok(const char *json)
{
	char *out;
	int st;

	if (!have_python())
		return -1;
	st = run_capture("python3 -c 'import json,sys; json.load(sys.stdin)'", json, &out);
	free(out);
	return st == 0;
}

const char *tool_jeval(const char *json, const char *expr)
{
	char cmd[1024], *out;
	int n;

	jval[0] = '\0';
	n = snprintf(cmd, sizeof(cmd),
		     "python3 -c 'import json,sys; d=json.load(sys.stdin); print(%s)'", expr);
	if (n < 0 || (size_t)n >= sizeof(cmd))
		tap_bail("a JSON expression too long for the test harness");
	run_capture(cmd, json, &out);
	if (out) {
		out[strcspn(out, "\n")] = '\0';
		snprintf(jval, sizeof(jval), "%s", out);
		free(out);
	}
	return jval;
}

bool tool_jis(const char *json, const char *expr, const char *want)
{
	return !strcmp(tool_jeval(json, expr), want);
}

uint64_t tool_ju64(const char *json, const char *expr)
{
	return strtoull(tool_jeval(json, expr), NULL, 10);
}

bool tool_has_line(const char *text, const char *prefix, const char *needle)
{
	const char *l, *end, *hit;

	for (l = text; l && *l; l = end ? end + 1 : NULL) {
		end = strchr(l, '\n');
		if (strncmp(l, prefix, strlen(prefix)))
			continue;
		hit = needle ? strstr(l, needle) : l;
		if (hit && (!end || hit < end))
			return true;
	}
	return false;
}

const char *tool_line(const char *text, const char *prefix)
{
	const char *l;

	for (l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (!strncmp(l, prefix, strlen(prefix)))
			return l;
	return "";
}

int tool_count_lines(const char *text, const char *prefix)
{
	const char *l = text;
	int n = 0;

	while (l && *l) {
		n += !strncmp(l, prefix, strlen(prefix));
		l = strchr(l, '\n');
		if (l)
			l++;
	}
	return n;
}

static int flip_byte(int fd, uint64_t off)
{
	unsigned char b;

	if (pread(fd, &b, 1, (off_t)off) != 1)
		return -1;
	b ^= 0xff;
	return pwrite(fd, &b, 1, (off_t)off) == 1 ? 0 : -1;
}

bool tool_corrupt_copy(const char *src, const char *dst, const uint64_t *off, int n)
{
	int fd, i, ret = 0;

	if (tool_sh(NULL, "cp %s %s", src, dst))
		return false;
	fd = open(dst, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	for (i = 0; i < n && !ret; i++)
		ret = flip_byte(fd, off[i]);
	close(fd);
	return !ret;
}
