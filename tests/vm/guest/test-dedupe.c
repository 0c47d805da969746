// SPDX-License-Identifier: MIT
/*
 * test-dedupe - a registered file's block map changes under p2pio: it must never read
 * the blocks the file no longer owns.
 *
 * On each xfs file system (reflink is mkfs.xfs's default): write "dd-victim" and a
 * same-content twin, register the victim and read it once, fill the file system
 * (fallocate), then dedupe the twin into the victim through the victim's read-only fd
 * (FIDEDUPERANGE: allowed to the owner, and not stopped by deny_write_access()). The
 * victim's old blocks are now all the space there is: a third file takes them, and
 * another pattern is written over exactly those blocks (FIEMAP tells where they are).
 * Then the victim is read again through the old registration: the read must fail with
 * ESTALE, and nothing may land in the destination. A module that kept reading its
 * cached LBAs copies the other file's bytes, which the host sees.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define POISON 0x5a
#define LEN (1024 * VM_KIB)
#define MAX_OLD 64

static int pfd, nvd;

struct extent {
	uint64_t logical;
	uint64_t physical;
	uint64_t length;
};

/* Every extent of @fd, up to @max; their number, or -errno. */
static int extents(int fd, struct extent *out, int max)
{
	enum { BATCH = 256 };
	size_t sz = sizeof(struct fiemap) + BATCH * sizeof(struct fiemap_extent);
	struct fiemap *fm = malloc(sz);
	uint64_t start = 0;
	int n = 0, last = 0;
	uint32_t i;

	if (!fm)
		return -ENOMEM;
	while (!last) {
		memset(fm, 0, sz);
		fm->fm_start = start;
		fm->fm_length = ~0ull - start;
		fm->fm_flags = FIEMAP_FLAG_SYNC;
		fm->fm_extent_count = BATCH;
		if (ioctl(fd, FS_IOC_FIEMAP, fm)) {
			free(fm);
			return -errno;
		}
		if (!fm->fm_mapped_extents)
			break;
		for (i = 0; i < fm->fm_mapped_extents; i++) {
			struct fiemap_extent *e = &fm->fm_extents[i];

			if (n < max)
				out[n++] = (struct extent){ e->fe_logical, e->fe_physical,
							    e->fe_length };
			start = e->fe_logical + e->fe_length;
			if (e->fe_flags & FIEMAP_EXTENT_LAST)
				last = 1;
		}
	}
	free(fm);
	return n;
}

/* Writes [off, off + len) of the pattern of @name into @fd. */
static int write_pattern(int fd, const char *name, uint64_t off, uint64_t len)
{
	static char buf[256 * 1024];

	while (len) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);

		vm_pattern_fill(vm_pattern_seed(name), off, buf, n);
		if (pwrite(fd, buf, n, off) != (ssize_t)n)
			return -errno;
		off += n;
		len -= n;
	}
	return 0;
}

static int make_file(const char *path, const char *pattern_of)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), ret;

	if (fd < 0)
		return -errno;
	ret = write_pattern(fd, pattern_of, 0, LEN);
	if (!ret && fsync(fd))
		ret = -errno;
	close(fd);
	return ret;
}

/* Dedupes [0, LEN) of @src into @dst; 0 when the whole range now shares @src's blocks. */
static int dedupe(int src, int dst)
{
	struct file_dedupe_range *r = calloc(1, sizeof(*r) + sizeof(r->info[0]));
	int ret;

	if (!r)
		return -ENOMEM;
	r->src_offset = 0;
	r->src_length = LEN;
	r->dest_count = 1;
	r->info[0].dest_fd = dst;
	r->info[0].dest_offset = 0;
	ret = ioctl(src, FIDEDUPERANGE, r) ? -errno : 0;
	if (!ret && r->info[0].status != FILE_DEDUPE_RANGE_SAME)
		ret = r->info[0].status < 0 ? r->info[0].status : -EILSEQ;
	if (!ret && r->info[0].bytes_deduped != LEN)
		ret = -ERANGE;
	free(r);
	return ret;
}

/* Takes every block the file system will still hand out for @fd (unwritten extents). */
static uint64_t fill(int fd)
{
	uint64_t chunk, end = 0;
	int round;

	/* twice: the second round gets blocks the log still held busy in the first */
	for (round = 0; round < 2; round++) {
		for (chunk = 64 * VM_MIB; chunk >= 4096;) {
			if (!fallocate(fd, 0, end, chunk))
				end += chunk;
			else if (errno == ENOSPC)
				chunk /= 2;
			else
				break;
		}
		syncfs(fd);
	}
	return end;
}

/*
 * With the file system full but for the victim's freed blocks, @fd takes what is left,
 * and the pattern of @name is written over every part of it that lies on one of the
 * @nold extents @old. Returns the bytes of @old now holding @name's data.
 */
static uint64_t overwrite_old_blocks(int fd, const char *name, const struct extent *old,
				     int nold)
{
	static struct extent z[4096];
	uint64_t end, covered = 0;
	int nz, i, j;

	end = fill(fd);
	nz = extents(fd, z, 4096);
	for (i = 0; i < nold; i++) {
		for (j = 0; j < nz; j++) {
			uint64_t lo = old[i].physical > z[j].physical ? old[i].physical :
									  z[j].physical;
			uint64_t hi_o = old[i].physical + old[i].length;
			uint64_t hi_z = z[j].physical + z[j].length;
			uint64_t hi = hi_o < hi_z ? hi_o : hi_z;

			if (lo >= hi)
				continue;
			if (write_pattern(fd, name, z[j].logical + (lo - z[j].physical), hi - lo))
				continue;
			covered += hi - lo;
		}
	}
	if (fdatasync(fd))
		tap_diag("fdatasync: %s", strerror(errno));
	if (covered < LEN) {	/* the allocator chose otherwise: say where */
		tap_diag("took %llu bytes in %d extents; the victim's were at %llu+%llu",
			 (unsigned long long)end, nz, (unsigned long long)old[0].physical,
			 (unsigned long long)old[0].length);
		for (j = 0; j < nz && j < 8; j++)
			tap_diag("  %llu+%llu", (unsigned long long)z[j].physical,
				 (unsigned long long)z[j].length);
	}
	return covered;
}

static void dedupe_on(const char *mnt)
{
	char victim[128], twin[128], other[128], filler[128];
	struct extent old[MAX_OLD];
	struct p2pio_register_file reg, again;
	struct vm_target t;
	uint64_t covered;
	int xfd = -1, tfd = -1, zfd = -1, ffd = -1, nold, ret;

	snprintf(victim, sizeof(victim), "%s/dd-victim", mnt);
	snprintf(twin, sizeof(twin), "%s/dd-twin", mnt);
	snprintf(other, sizeof(other), "%s/dd-other", mnt);
	snprintf(filler, sizeof(filler), "%s/dd-filler", mnt);
	/* the twin holds the victim's content: the dedupe is allowed to share it */
	if (!tap_ok(!make_file(victim, "dd-victim") && !make_file(twin, "dd-victim"),
		    "%s: victim and twin written", mnt))
		goto out;
	xfd = open(victim, O_RDONLY | O_CLOEXEC);
	tfd = open(twin, O_RDONLY | O_CLOEXEC);
	nold = extents(xfd, old, MAX_OLD);
	if (!tap_ok(xfd >= 0 && tfd >= 0 && nold > 0, "%s: the victim's blocks (%d extents)",
		    mnt, nold))
		goto out;
	if (!tap_is_int(vm_p2p_register(pfd, xfd, &reg), 0, "%s: victim registered", mnt))
		goto out;
	ret = vm_target_new(pfd, nvd, P2PIO_PROVIDER_NVIDIA, LEN, 0, 0, 0, &t);
	if (!tap_is_int(ret, 0, "%s: GPU memory pinned", mnt))
		goto out_unregister;
	vm_mem_poison(&t.mem, 0, LEN, POISON);
	vm_host_sync();
	tap_is_int(vm_p2p_read(pfd, reg.handle, t.pin.handle, 0, LEN, 0), 0,
		   "%s: the registered victim reads", mnt);
	vm_mem_expect_file(&t.mem, 0, LEN, "dd-victim", 0);
	if (!tap_ok(!vm_host_sync(), "%s: its bytes are right", mnt))
		tap_diag("%s", vm_host_why());

	/* full: the victim's blocks, once freed, are all the file system has left */
	ffd = open(filler, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	tap_ok(ffd >= 0 && fill(ffd) > 0, "%s: file system filled", mnt);
	/* read-only fd, registered file: neither stops the owner's dedupe */
	ret = dedupe(tfd, xfd);
	if (!tap_is_int(ret, 0, "%s: the twin deduped into the victim (read-only fd)", mnt))
		goto out_free;
	zfd = open(other, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	covered = zfd < 0 ? 0 : overwrite_old_blocks(zfd, "dd-other", old, nold);
	/* any of them is enough: a module reading stale LBAs would copy those bytes */
	tap_ok(covered > 0, "%s: another file's data now lies on %llu of the victim's %llu old bytes",
	       mnt, (unsigned long long)covered, (unsigned long long)LEN);

	vm_mem_poison(&t.mem, 0, LEN, POISON);
	vm_host_sync();
	ret = vm_p2p_read(pfd, reg.handle, t.pin.handle, 0, LEN, 0);
	tap_is_int(ret, -ESTALE, "%s: a read through the old registration: ESTALE", mnt);
	/* whatever the status: never a byte of the other file */
	if (ret)
		vm_mem_expect_fill(&t.mem, 0, LEN, POISON);
	else
		vm_mem_expect_file(&t.mem, 0, LEN, "dd-victim", 0);
	if (!tap_ok(!vm_host_sync(), "%s: nothing of the other file reached the GPU memory",
		    mnt))
		tap_diag("%s", vm_host_why());
	/* the victim now shares its blocks: refused like any reflinked file */
	tap_is_int(vm_p2p_register(pfd, xfd, &again), -ENODATA,
		   "%s: registering the deduped victim again: ENODATA (shared blocks)", mnt);
out_free:
	tap_is_int(vm_target_free(pfd, &t), 0, "%s: unpinned", mnt);
out_unregister:
	tap_is_int(vm_p2p_unregister(pfd, reg.handle), 0, "%s: the stale registration unregisters",
		   mnt);
out:
	if (zfd >= 0)
		close(zfd);
	if (ffd >= 0)
		close(ffd);
	unlink(filler);
	if (tfd >= 0)
		close(tfd);
	if (xfd >= 0)
		close(xfd);
	unlink(other);
	unlink(twin);
	unlink(victim);
	sync();
}

int main(void)
{
	static const char *const xfs[] = { "/mnt/a2", "/mnt/b1" };
	size_t i;

	tap_plan_lazy();
	pfd = vm_p2p_open();
	if (pfd < 0)
		tap_skip_all("no /dev/p2pio");
	nvd = vm_nvd_open();
	if (nvd < 0)
		tap_bail("no /dev/nvdouble");
	tap_ok(!vm_host_sync(), "host channel");
	for (i = 0; i < sizeof(xfs) / sizeof(xfs[0]); i++)
		dedupe_on(xfs[i]);
	close(nvd);
	close(pfd);
	return tap_exit();
}
