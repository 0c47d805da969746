// SPDX-License-Identifier: MIT
/*
 * test-verity - fs-verity enabled on a file after p2pio registered it: p2pio must stop
 * reading it raw.
 *
 * Registration refuses a verity file (EMEDIUMTYPE): read() checks every block of one
 * against its Merkle tree and fails with EIO where the bytes on the device are not the
 * ones the tree was built from, and raw LBA reads would skip that check. But
 * FS_IOC_ENABLE_VERITY needs only a read-only fd and no writers: the registration's
 * deny_write_access() lets it through (it denies writers itself), and ext4 breaks no
 * layout lease for it (the data blocks stay where they are; the tree goes past EOF).
 *
 * On b2 (ext4, made with the verity feature: lib/disks.sh): write a file, register it,
 * read it through p2pio (every byte checked by the host), enable verity through another
 * read-only fd (read() then returns the file's bytes, verified), and overwrite the
 * file's first block on the block device, as whoever holds the device (or the disk,
 * offline) may: read() of it now fails with EIO. Then read through the old
 * registration: one read and a batch must complete with EMEDIUMTYPE, and nothing may
 * land in the poisoned destination; a new registration of the file is refused with
 * EMEDIUMTYPE, the old one unregisters, nothing is left. A module that kept reading the
 * cached LBAs landed the overwritten block, which read() refuses.
 *
 * Skipped (the whole program) where the kernel has no fs-verity (CONFIG_FS_VERITY: no
 * /sys/fs/ext4/features/verity) or the file system was made without the verity feature
 * (run.sh leaves it out where a kernel of the matrix lacks CONFIG_FS_VERITY).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/fsverity.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define MNT "/mnt/b2"
#define LEN (256 * VM_KIB)
#define BATCH 8
#define POISON 0x3c

static int pfd, nvd;

/* FS_IOC_ENABLE_VERITY on @fd, SHA-256 over 4 KiB blocks (fsverity-utils' defaults). */
static int enable_verity(int fd)
{
	struct fsverity_enable_arg arg = {
		.version = 1,
		.hash_algorithm = FS_VERITY_HASH_ALG_SHA256,
		.block_size = 4096,
	};

	return ioctl(fd, FS_IOC_ENABLE_VERITY, &arg) ? -errno : 0;
}

/*
 * Whether the file system of MNT can enable verity: tries it on a scratch file. Skips
 * the whole program where it cannot, saying why; a failure of another kind is left to
 * the test proper, which then fails.
 */
static void probe(void)
{
	char path[128];
	int fd, ret;

	if (access("/sys/fs/ext4/features/verity", F_OK))
		tap_skip_all("the kernel has no fs-verity (CONFIG_FS_VERITY): no /sys/fs/ext4/features/verity");
	snprintf(path, sizeof(path), "%s/vy-probe", MNT);
	ret = vm_make_pattern_file(path, "vy-probe", 4096);
	fd = ret ? -1 : open(path, O_RDONLY | O_CLOEXEC);
	ret = fd < 0 ? -errno : enable_verity(fd);
	if (fd >= 0)
		close(fd);
	unlink(path);
	if (ret == -EOPNOTSUPP || ret == -ENOTTY)
		tap_skip_all("the ext4 file system on " MNT " has no verity feature (mkfs.ext4 -O verity: run.sh leaves it out where a kernel of the matrix lacks CONFIG_FS_VERITY)");
}

/* read() of the whole file (through the page cache, verified once verity is on). */
static int read_back(const char *path, const char *name)
{
	static unsigned char buf[LEN];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = pread(fd, buf, LEN, 0);
	close(fd);
	if (n < 0)
		return -errno;
	if (n != (ssize_t)LEN)
		return -EMSGSIZE;
	return vm_pattern_check(vm_pattern_seed(name), 0, buf, LEN) == LEN ? 0 : -EILSEQ;
}

/*
 * Overwrites the first 4 KiB block of @fd's file on its block device with other bytes
 * (the pattern of "vy-tamper"), past the file system, and drops the file's cached pages:
 * the next read() reads the block from the device and checks it against the Merkle tree.
 */
static int tamper(int fd)
{
	char link[64], target[256], dev[sizeof(target) + 8];
	struct vm_extent e;
	struct stat st;
	const char *base;
	void *buf = NULL;
	ssize_t n;
	int bfd, ret;

	ret = vm_file_extents(fd, &e, 1);
	if (ret < 1)
		return ret < 0 ? ret : -ENODATA;
	if (fstat(fd, &st))
		return -errno;
	/* /sys/dev/block/M:m links to the partition's directory, named as its device. */
	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = 0;
	base = strrchr(target, '/');
	snprintf(dev, sizeof(dev), "/dev/%s", base ? base + 1 : target);
	bfd = open(dev, O_WRONLY | O_DIRECT | O_CLOEXEC);
	if (bfd < 0)
		return -errno;
	if (posix_memalign(&buf, 4096, 4096)) {
		close(bfd);
		return -ENOMEM;
	}
	vm_pattern_fill(vm_pattern_seed("vy-tamper"), 0, buf, 4096);
	n = pwrite(bfd, buf, 4096, e.physical);
	ret = n < 0 ? -errno : n != 4096 ? -EIO : 0;
	if (!ret && fsync(bfd))
		ret = -errno;
	close(bfd);
	free(buf);
	if (!ret)
		ret = -posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	return ret;
}

/* pread() of the file's first 4 KiB through a new fd: 0, or -errno. */
static int read_first_block(const char *path)
{
	static unsigned char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (pread(fd, buf, sizeof(buf), 0) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* BATCH reads of LEN / BATCH bytes, each into its own part of @t; their statuses. */
static int read_batch(uint32_t file, const struct vm_target *t, int *status)
{
	struct p2pio_read r[BATCH];
	struct p2pio_completion c[BATCH];
	uint32_t n = 0, got = 0, k, i;
	int ret;

	memset(r, 0, sizeof(r));
	for (i = 0; i < BATCH; i++) {
		r[i].file = file;
		r[i].mem = t->pin.handle;
		r[i].file_offset = i * (LEN / BATCH);
		r[i].mem_offset = i * (LEN / BATCH);
		r[i].length = LEN / BATCH;
		r[i].user_tag = i;
		status[i] = 1;
	}
	ret = vm_p2p_submit(pfd, r, BATCH, &n);
	if (ret)
		return ret;
	if (n != BATCH)
		return -EAGAIN;
	while (got < BATCH) {
		ret = vm_p2p_reap(pfd, c, BATCH - got, 1, 10000000000ll, &k);
		if (ret)
			return ret;
		if (!k)
			return -ETIMEDOUT;
		for (i = 0; i < k; i++)
			if (c[i].user_tag < BATCH)
				status[c[i].user_tag] = c[i].status;
		got += k;
	}
	return 0;
}

static void one(void)
{
	const char *name = "vy-file";
	struct p2pio_register_file reg, again;
	struct vm_target t;
	char path[128];
	int status[BATCH], fd = -1, vfd = -1, ret, flags = 0, bad, i;

	snprintf(path, sizeof(path), "%s/%s", MNT, name);
	if (!tap_ok(!vm_make_pattern_file(path, name, LEN), "%s written", path))
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ret = fd < 0 ? -errno : vm_p2p_register(pfd, fd, &reg);
	if (!tap_is_int(ret, 0, "registered (a plain file)"))
		goto out;
	ret = vm_target_new(pfd, nvd, P2PIO_PROVIDER_NVIDIA, LEN, 0, 0, 0, &t);
	if (!tap_is_int(ret, 0, "GPU memory pinned"))
		goto out_unreg;

	/* Before: the registration reads, every byte right. */
	vm_mem_poison(&t.mem, 0, LEN, POISON);
	tap_ok(!vm_host_sync(), "destination poisoned");
	tap_is_int(vm_p2p_read(pfd, reg.handle, t.pin.handle, 0, LEN, 0), 0,
		   "a read before verity completes");
	vm_mem_expect_file(&t.mem, 0, LEN, name, 0);
	if (!tap_ok(!vm_host_sync(), "its bytes landed"))
		tap_diag("%s", vm_host_why());

	/* Verity on, through another read-only fd, as any owner may. */
	vfd = open(path, O_RDONLY | O_CLOEXEC);
	ret = vfd < 0 ? -errno : enable_verity(vfd);
	if (!tap_is_int(ret, 0, "FS_IOC_ENABLE_VERITY through a read-only fd, while registered"))
		tap_diag("enable: %s", strerror(-ret));
	if (vfd >= 0 && ioctl(vfd, FS_IOC_GETFLAGS, &flags))
		flags = 0;
	tap_ok(flags & FS_VERITY_FL, "the file is a verity file now (FS_VERITY_FL)");
	tap_is_int(read_back(path, name), 0, "read() returns the file's bytes, verified");
	ret = vfd < 0 ? -EBADF : tamper(vfd);
	tap_is_int(ret, 0, "the file's first block overwritten on the block device");
	ret = read_first_block(path);
	tap_is_int(ret, -EIO, "read() of it now fails: EIO (verity checks the block)");

	/* After: nothing is read raw any more. */
	vm_mem_poison(&t.mem, 0, LEN, POISON);
	tap_ok(!vm_host_sync(), "destination poisoned again");
	ret = vm_p2p_read(pfd, reg.handle, t.pin.handle, 0, LEN, 0);
	if (!tap_is_int(ret, -EMEDIUMTYPE, "a read of the old registration: EMEDIUMTYPE"))
		tap_diag("status %d (%s)", ret, strerror(-ret));
	ret = read_batch(reg.handle, &t, status);
	for (i = 0, bad = 0; i < BATCH; i++)
		bad += status[i] != -EMEDIUMTYPE;
	if (!tap_ok(!ret && !bad, "each of a batch of %d reads: EMEDIUMTYPE", BATCH))
		tap_diag("batch %d, %d completions not EMEDIUMTYPE (first %d)", ret, bad,
			 status[0]);
	vm_mem_expect_fill(&t.mem, 0, LEN, POISON);
	if (!tap_ok(!vm_host_sync(), "no byte landed (neither the overwritten block nor others)"))
		tap_diag("%s", vm_host_why());
	ret = vfd < 0 ? -EBADF : vm_p2p_register(pfd, vfd, &again);
	if (!ret)
		vm_p2p_unregister(pfd, again.handle);
	tap_is_int(ret, -EMEDIUMTYPE, "registering the verity file: EMEDIUMTYPE");

	tap_is_int(vm_target_free(pfd, &t), 0, "unpinned");
out_unreg:
	tap_is_int(vm_p2p_unregister(pfd, reg.handle), 0, "the old registration unregisters");
out:
	if (vfd >= 0)
		close(vfd);
	if (fd >= 0)
		close(fd);
	unlink(path);
	sync();
}

int main(void)
{
	tap_plan_lazy();
	/* Nothing printed before a skip: "1..0 # SKIP" must be the whole stream. */
	pfd = vm_p2p_open();
	if (pfd < 0)
		tap_skip_all("no /dev/p2pio");
	probe();
	nvd = vm_nvd_open();
	if (nvd < 0)
		tap_bail("no /dev/nvdouble");
	tap_ok(!vm_host_sync(), "host channel");
	one();
	tap_ok(vm_nothing_left(pfd), "nothing left: commands, reads, files, pins, PRP pages");
	close(nvd);
	close(pfd);
	return tap_exit();
}
