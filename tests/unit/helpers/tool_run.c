// SPDX-License-Identifier: MIT
/* tool_run.c - run tools from tests (see tool_run.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tool_run.h"

static char bindir[PATH_MAX];

void tool_init(const char *argv0)
{
	char self[PATH_MAX], *slash;

	if (!realpath(argv0, self))
		snprintf(self, sizeof(self), "%s", argv0);
	slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(bindir, sizeof(bindir), "%.4000s/../bin", self);
}

static int run_capture(const char *cmd, const char *input, char **out)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap), tmp[] = "/tmp/p2pio-tool-in-XXXXXX", full[8400];
	FILE *p;
	int st, fd = -1;

	if (!buf)
		return -1;
	if (input) {
		fd = mkstemp(tmp);
		if (fd < 0 || write(fd, input, strlen(input)) != (ssize_t)strlen(input)) {
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
	if (out)
		*out = buf;
	else
		free(buf);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int tool_run(const char *tool, const char *args, char **out)
{
	char cmd[8192];

	snprintf(cmd, sizeof(cmd), "%s/%.64s %.2048s", bindir, tool, args);
	return run_capture(cmd, NULL, out);
}

void tool_rm_dir(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		printf("# could not remove %s\n", dir);
}

int tool_json_ok(const char *json)
{
	if (system("command -v python3 >/dev/null 2>&1"))
		return -1;
	return run_capture("python3 -c 'import json,sys; json.load(sys.stdin)'", json, NULL) == 0;
}

int tool_json_eval(const char *json, const char *expr, char *buf, size_t size)
{
	char cmd[1024], *out = NULL;
	int ret;

	snprintf(cmd, sizeof(cmd),
		 "python3 -c 'import json,sys; d=json.load(sys.stdin); print(%s)'", expr);
	ret = run_capture(cmd, json, &out);
	if (out) {
		out[strcspn(out, "\n")] = '\0';
		snprintf(buf, size, "%s", out);
		free(out);
	}
	return ret;
}
