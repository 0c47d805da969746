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
/* What a file system may keep of a test's files once they are gone (log, inode chunks). */
#define SLACK (4 * VM_MIB)

static int pfd, nvd;

/*
 * With the file system full but for the victim's freed blocks, @fd takes what is left,
 * and the pattern of @name is written over every part of it that lies on one of the
 * @nold extents @old. Returns the bytes of @old now holding @name's data.
 */
static uint64_t overwrite_old_blocks(int fd, const char *name, const struct vm_extent *old,
				     int nold)
{
	static struct vm_extent z[4096];
	uint64_t end, covered;
	int nz, j;

	end = vm_fill_fs(fd);
	nz = vm_file_extents(fd, z, 4096);
	covered = vm_write_pattern_over(fd, name, z, nz, old, nold);
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
	struct vm_extent old[MAX_OLD];
	struct p2pio_register_file reg, again;
	struct vm_target t;
	uint64_t covered, deduped = 0, free0 = vm_fs_free(mnt);
	int xfd = -1, tfd = -1, zfd = -1, ffd = -1, nold, ret;

	snprintf(victim, sizeof(victim), "%s/dd-victim", mnt);
	snprintf(twin, sizeof(twin), "%s/dd-twin", mnt);
	snprintf(other, sizeof(other), "%s/dd-other", mnt);
	snprintf(filler, sizeof(filler), "%s/dd-filler", mnt);
	/* the twin holds the victim's content: the dedupe is allowed to share it */
	if (!tap_ok(!vm_make_pattern_file(victim, "dd-victim", LEN) &&
		    !vm_make_pattern_file(twin, "dd-victim", LEN),
		    "%s: victim and twin written", mnt))
		goto out;
	xfd = open(victim, O_RDONLY | O_CLOEXEC);
	tfd = open(twin, O_RDONLY | O_CLOEXEC);
	nold = vm_file_extents(xfd, old, MAX_OLD);
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
	tap_ok(ffd >= 0 && vm_fill_fs(ffd) > 0, "%s: file system filled", mnt);
	/* read-only fd, registered file: neither stops the owner's dedupe */
	ret = vm_dedupe(tfd, xfd, LEN, &deduped);
	if (!ret && deduped != LEN)
		ret = -ERANGE;	/* the whole victim must share the twin's blocks */
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
	/* it filled the file system: the tests after it need the space back */
	tap_is_int(vm_fs_wait_free(mnt, free0 > SLACK ? free0 - SLACK : 0, 20000), 0,
		   "%s: the file system's space is free again", mnt);
}

int main(void)
{
	static const char *const xfs[] = { "/mnt/a2", "/mnt/b1" };
	size_t i;

	tap_plan_lazy();
	pfd = vm_test_open(&nvd, true);
	for (i = 0; i < sizeof(xfs) / sizeof(xfs[0]); i++)
		dedupe_on(xfs[i]);
	close(nvd);
	close(pfd);
	return tap_exit();
}
