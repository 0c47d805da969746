// SPDX-License-Identifier: MIT
/* sysfs_fixture.c - synthetic sysfs trees for tests (see sysfs_fixture.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sysfs_fixture.h"
#include "tap.h"

static void mkdir_p(const char *path)
{
	char p[PATH_MAX];
	char *s;

	snprintf(p, sizeof(p), "%s", path);
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) && errno != EEXIST)
			tap_bail("fixture mkdir");
		*s = '/';
	}
	if (mkdir(p, 0755) && errno != EEXIST)
		tap_bail("fixture mkdir");
}

static void parent_of(char *p)
{
	char *s = strrchr(p, '/');

	if (s)
		*s = '\0';
}

void fx_file(const char *root, const char *dir, const char *name, const char *content)
{
	char p[PATH_MAX];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s/%s", root, dir, name);
	parent_of(p);
	mkdir_p(p);
	snprintf(p, sizeof(p), "%s/%s/%s", root, dir, name);
	f = fopen(p, "w");
	if (!f)
		tap_bail("fixture fopen");
	fprintf(f, "%s\n", content);
	fclose(f);
}

void fx_link(const char *root, const char *dir, const char *name, const char *target)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", root, dir);
	mkdir_p(p);
	snprintf(p, sizeof(p), "%s/%s/%s", root, dir, name);
	unlink(p);
	if (symlink(target, p))
		tap_bail("fixture symlink");
}

void fx_devlink(const char *root, const char *devno, const char *rel, const char *base)
{
	char target[PATH_MAX], p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s/%s", root, base, rel);
	mkdir_p(p);
	snprintf(target, sizeof(target), "../../%s/%s", base, rel);
	fx_link(root, "dev/block", devno, target);
}

void fx_rm(const char *root)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", root);
}
