// SPDX-License-Identifier: MIT
/* sysfs.c - sysfs attribute readers (see sysfs.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "placement/sysfs.h"

const char *p2pio_sysfs_root = "/sys";

int p2pio_path_join(char *out, size_t outsz, const char *dir, const char *name)
{
	int n = snprintf(out, outsz, "%s/%s", dir, name);

	return (n < 0 || (size_t)n >= outsz) ? -ENAMETOOLONG : 0;
}

int p2pio_sysfs_read_str(const char *dir, const char *name, char *out, size_t outsz)
{
	char path[4096];
	size_t len;
	FILE *f;
	int ret;

	if (outsz == 0)
		return -EINVAL;
	out[0] = '\0';
	ret = p2pio_path_join(path, sizeof(path), dir, name);
	if (ret)
		return ret;
	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (!fgets(out, (int)(outsz > 4096 ? 4096 : outsz), f)) {
		ret = ferror(f) ? -EIO : 0;
		out[0] = '\0';
		fclose(f);
		return ret;
	}
	fclose(f);
	len = strlen(out);
	while (len && (out[len - 1] == '\n' || out[len - 1] == ' ' || out[len - 1] == '\t'))
		out[--len] = '\0';
	return 0;
}

int p2pio_sysfs_read_u64(const char *dir, const char *name, uint64_t *out)
{
	char buf[64], *start, *end;
	unsigned long long v;
	int base = 10;
	int ret;

	ret = p2pio_sysfs_read_str(dir, name, buf, sizeof(buf));
	if (ret)
		return ret;
	if (!buf[0] || buf[0] == '-')
		return -EINVAL;
	start = buf;
	if (buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X')) {
		start = buf + 2;
		base = 16;
	}
	errno = 0;
	v = strtoull(start, &end, base);
	if (errno || end == start || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

int p2pio_blockdev_dirs(const char *sysfs, unsigned int major, unsigned int minor, char *dev,
			char *diskdir)
{
	char link[PATH_MAX], rel[64];
	uint64_t v;
	char *slash;

	snprintf(rel, sizeof(rel), "dev/block/%u:%u", major, minor);
	if (p2pio_path_join(link, sizeof(link), sysfs, rel))
		return -ENAMETOOLONG;
	if (!realpath(link, dev))
		return -errno;
	snprintf(diskdir, PATH_MAX, "%s", dev);
	if (p2pio_sysfs_read_u64(dev, "partition", &v) == 0) {
		slash = strrchr(diskdir, '/');
		if (slash)
			*slash = '\0';
	}
	return 0;
}

int p2pio_blockdev_rotational(const char *sysfs, unsigned int major, unsigned int minor,
			      char *disk, size_t disk_len)
{
	char dev[PATH_MAX], diskdir[PATH_MAX], *slash;
	uint64_t v;
	int ret;

	ret = p2pio_blockdev_dirs(sysfs, major, minor, dev, diskdir);
	if (ret)
		return ret;
	slash = strrchr(diskdir, '/');
	if (disk_len)
		snprintf(disk, disk_len, "%s", slash ? slash + 1 : diskdir);
	ret = p2pio_sysfs_read_u64(diskdir, "queue/rotational", &v);
	if (ret)
		return ret;
	return v != 0;
}
