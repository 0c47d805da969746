// SPDX-License-Identifier: MIT
/*
 * vm-setup - makes the test files only the guest can make, on every NVMe file system of
 * /etc/vm-files, and lists them there:
 *
 *  TAG-frag0..2	fragmented: interleaved appends of uneven chunks, each written,
 *			fsync'ed and closed before the next file's (closing drops the file
 *			system's preallocation, so the next file takes the following blocks)
 *  TAG-holes		data at [0, 64K) and [256K, 320K), a hole between
 *  TAG-unwritten	512 KiB fallocate'd (unwritten extents), data at [0, 64K) only
 *
 * Before the last two, TAG-gone (a "secret" pattern) is written, synced and deleted, so
 * that the unwritten and hole blocks are likely to be its old blocks: a read that leaks
 * stale blocks shows the secret, which the host never expects to find.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define FRAG_FILES 3
#define FRAG_SIZE (2 * VM_MIB)

static int append_pattern(const char *path, uint64_t off, uint64_t len)
{
	static char buf[512 * 1024];
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), ret = 0;

	if (fd < 0)
		return -errno;
	while (len && !ret) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);

		vm_pattern_fill(vm_pattern_seed(path), off, buf, n);
		if (pwrite(fd, buf, n, off) != (ssize_t)n)
			ret = -EIO;
		off += n;
		len -= n;
	}
	if (!ret && fsync(fd))
		ret = -errno;
	close(fd);
	return ret;
}

/* Number of extents of a file (FIEMAP), or -errno. */
static int count_extents(const char *path)
{
	struct fiemap fm = { .fm_length = ~0ull, .fm_flags = FIEMAP_FLAG_SYNC };
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0)
		return -errno;
	ret = ioctl(fd, FS_IOC_FIEMAP, &fm) ? -errno : (int)fm.fm_mapped_extents;
	close(fd);
	return ret;
}

static void list_file(const char *mnt, const char *name, uint64_t size, const char *kind)
{
	FILE *f = fopen("/etc/vm-files", "a");

	if (f) {
		fprintf(f, "%s %s %llu %s\n", mnt, name, (unsigned long long)size, kind);
		fclose(f);
	}
}

static void make_frag(const char *mnt, const char *tag)
{
	static const uint64_t chunks[] = { 64 * 1024, 12 * 1024, 100 * 1024, 36 * 1024, 4096 };
	char path[FRAG_FILES][160], name[64];
	uint64_t size[FRAG_FILES] = { 0 };
	int i, r, ext, ok = 1;

	for (i = 0; i < FRAG_FILES; i++) {
		snprintf(path[i], sizeof(path[i]), "%s/%s-frag%d", mnt, tag, i);
		unlink(path[i]);
	}
	for (r = 0; size[FRAG_FILES - 1] < FRAG_SIZE; r++) {
		for (i = 0; i < FRAG_FILES; i++) {
			uint64_t n = chunks[(r + i) % 5];

			ok &= !append_pattern(path[i], size[i], n);
			size[i] += n;
		}
	}
	for (i = 0; i < FRAG_FILES; i++) {
		ext = count_extents(path[i]);
		snprintf(name, sizeof(name), "%s-frag%d", tag, i);
		tap_ok(ok && ext >= 8, "%s: %llu bytes in %d extents", name,
		       (unsigned long long)size[i], ext);
		list_file(mnt, name, size[i], "frag");
	}
}

static void make_sparse(const char *mnt, const char *tag)
{
	char gone[160], holes[160], unw[160], name[64];
	int fd, ok;

	snprintf(gone, sizeof(gone), "%s/%s-gone", mnt, tag);
	snprintf(holes, sizeof(holes), "%s/%s-holes", mnt, tag);
	snprintf(unw, sizeof(unw), "%s/%s-unwritten", mnt, tag);
	ok = !append_pattern(gone, 0, VM_MIB) && !unlink(gone);
	sync();
	tap_ok(ok, "%s: a secret written and deleted", tag);

	fd = open(unw, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ok = fd >= 0 && !fallocate(fd, 0, 0, 512 * VM_KIB);
	if (fd >= 0)
		close(fd);
	ok = ok && !append_pattern(unw, 0, 64 * VM_KIB);
	snprintf(name, sizeof(name), "%s-unwritten", tag);
	tap_ok(ok, "%s: 512 KiB fallocate'd, 64 KiB written", name);
	list_file(mnt, name, 512 * VM_KIB, "unwritten");

	unlink(holes);
	ok = !append_pattern(holes, 0, 64 * VM_KIB) && !append_pattern(holes, 256 * VM_KIB, 64 * VM_KIB);
	snprintf(name, sizeof(name), "%s-holes", tag);
	tap_ok(ok && count_extents(holes) == 2, "%s: two extents around a 192 KiB hole", name);
	list_file(mnt, name, 320 * VM_KIB, "hole");
	sync();
}

/* Whether the disk set lists @mnt in /etc/vm-mounts (the host's vm_make_disks()). */
static bool in_disk_set(const char *mnt)
{
	FILE *f = fopen("/etc/vm-mounts", "r");
	char line[256], first[64];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%63s", first) == 1 && !strcmp(first, mnt);
	fclose(f);
	return found;
}

/*
 * The suite's file systems are a1, a2, b1 and b2; one the disk set lists must be mounted
 * writable. Another disk set (the demo's one file system) has none of them: nothing to
 * make, skipped, so that its boot's setup step passes rather than failing unjudged.
 */
int main(void)
{
	static const char *const tags[] = { "a1", "a2", "b1", "b2" };
	char mnt[64];
	size_t i;

	tap_plan_lazy();
	for (i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		snprintf(mnt, sizeof(mnt), "/mnt/%s", tags[i]);
		if (!in_disk_set(mnt)) {
			tap_skip(1, "not in this disk set");
			continue;
		}
		if (access(mnt, W_OK)) {
			tap_ok(0, "%s is mounted writable", mnt);
			continue;
		}
		make_frag(mnt, tags[i]);
		make_sparse(mnt, tags[i]);
	}
	/* a file the unprivileged user owns, and so may register (test-refuse) */
	if (in_disk_set("/mnt/b1"))
		tap_ok(!chown("/mnt/b1/b1-wr", 65534, 65534), "b1-wr belongs to nobody");
	/* root's, but anyone may write it: a writer may register it too */
	if (in_disk_set("/mnt/a1"))
		tap_ok(!chmod("/mnt/a1/a1-wr", 0666), "a1-wr is writable by everyone");
	return tap_exit();
}
