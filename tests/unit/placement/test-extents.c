// SPDX-License-Identifier: MIT
/*
 * Extents: block device resolution over synthetic sysfs trees, and FIEMAP over an ext4
 * image on a loop device with known layouts (interleaved appends, holes, fallocated
 * unwritten ranges, delayed allocation). Every mapped run is checked against the raw
 * bytes of the image at the disk offset the library computed.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "p2pio.h"
#include "sysfs_fixture.h"
#include "tap.h"
#include "tool_run.h"

static void test_fixture(void)
{
	struct p2pio_blockdev bd;
	char root[] = "/tmp/p2pio-sysfs-XXXXXX";
	const char *pci = "devices/pci0000:00/0000:00:01.0/0000:01:00.0";
	char d[512];

	if (!mkdtemp(root))
		tap_bail("mkdtemp");

	/* nvme0n1p1 on a PCIe controller, 4 KiB LBAs, partition at sector 2048. */
	snprintf(d, sizeof(d), "%s/nvme/nvme0", pci);
	fx_file(root, d, "transport", "pcie");
	fx_file(root, d, "model", "Fixture NVMe SSD 1TB   ");
	snprintf(d, sizeof(d), "%s/nvme/nvme0/nvme0n1", pci);
	fx_link(root, d, "device", "../../nvme0");
	fx_file(root, d, "nsid", "1");
	fx_file(root, d, "size", "2000000");
	fx_file(root, d, "queue/logical_block_size", "4096");
	fx_file(root, d, "queue/max_hw_sectors_kb", "512");
	snprintf(d, sizeof(d), "%s/nvme/nvme0/nvme0n1/nvme0n1p1", pci);
	fx_file(root, d, "partition", "1");
	fx_file(root, d, "start", "2048");
	fx_devlink(root, "259:1", "nvme/nvme0/nvme0n1/nvme0n1p1", pci);
	fx_devlink(root, "259:0", "nvme/nvme0/nvme0n1", pci);

	tap_is_int(p2pio_blockdev_probe(root, 259, 1, &bd, NULL), 0, "probe nvme0n1p1");
	tap_ok(strcmp(bd.name, "nvme0n1p1") == 0 && strcmp(bd.disk, "nvme0n1") == 0,
	       "partition %s of disk %s", bd.name, bd.disk);
	tap_ok(bd.is_partition && bd.part_start == 2048 * 512, "partition starts at 1 MiB");
	tap_ok(bd.is_nvme && bd.is_pcie && !bd.is_stacked && !bd.is_multipath,
	       "a local PCIe NVMe namespace");
	tap_ok(bd.nsid == 1 && strcmp(bd.ctrl, "nvme0") == 0, "nsid 1 on nvme0");
	tap_ok(strcmp(bd.pci_addr, "0000:01:00.0") == 0, "controller at %s", bd.pci_addr);
	tap_ok(bd.lba_size == 4096 && bd.max_hw_bytes == 512 * 1024 && bd.size == 2000000ull * 512,
	       "LBA format 4096, max request 512 KiB");
	tap_ok(strcmp(bd.model, "Fixture NVMe SSD 1TB") == 0, "model read and trimmed");
	tap_ok(bd.why_not[0] == '\0', "P2P-capable as far as userspace sees (%s)", bd.why_not);
	tap_ok(strcmp(bd.source, "sysfs") == 0, "numbers from sysfs in a fixture tree");

	tap_is_int(p2pio_blockdev_probe(root, 259, 0, &bd, NULL), 0, "probe whole disk");
	tap_ok(!bd.is_partition && bd.part_start == 0 && strcmp(bd.disk, "nvme0n1") == 0,
	       "whole disk has no partition offset");

	/* Namespace with metadata: refused. */
	snprintf(d, sizeof(d), "%s/nvme/nvme0/nvme0n2", pci);
	fx_link(root, d, "device", "../../nvme0");
	fx_file(root, d, "nsid", "2");
	fx_file(root, d, "metadata_bytes", "8");
	fx_file(root, d, "queue/logical_block_size", "512");
	fx_devlink(root, "259:2", "nvme/nvme0/nvme0n2", pci);
	p2pio_blockdev_probe(root, 259, 2, &bd, NULL);
	tap_ok(bd.metadata_size == 8 && strstr(bd.why_not, "metadata"), "metadata refused: %s",
	       bd.why_not);

	/* NVMe over TCP. */
	fx_file(root, "devices/virtual/nvme-fabrics/ctl/nvme1", "transport", "tcp");
	fx_link(root, "devices/virtual/nvme-fabrics/ctl/nvme1/nvme1n1", "device", "../../nvme1");
	fx_devlink(root, "259:3", "nvme1/nvme1n1", "devices/virtual/nvme-fabrics/ctl");
	p2pio_blockdev_probe(root, 259, 3, &bd, NULL);
	tap_ok(bd.is_nvme && !bd.is_pcie && strstr(bd.why_not, "tcp"), "fabrics refused: %s",
	       bd.why_not);

	/* Multipath head. */
	fx_file(root, "devices/virtual/nvme-subsystem/nvme-subsys2", "subsysnqn", "nqn.x");
	fx_link(root, "devices/virtual/nvme-subsystem/nvme-subsys2/nvme2n1", "device",
		"../../nvme-subsys2");
	fx_devlink(root, "259:4", "nvme-subsys2/nvme2n1", "devices/virtual/nvme-subsystem");
	p2pio_blockdev_probe(root, 259, 4, &bd, NULL);
	tap_ok(bd.is_multipath && strstr(bd.why_not, "multipath"), "multipath refused: %s",
	       bd.why_not);

	/* device-mapper over the NVMe partition. */
	fx_file(root, "devices/virtual/block/dm-0/dm", "name", "vg-lv");
	fx_devlink(root, "253:0", "dm-0", "devices/virtual/block");
	p2pio_blockdev_probe(root, 253, 0, &bd, NULL);
	tap_ok(bd.is_stacked && strstr(bd.why_not, "device-mapper"), "dm refused: %s", bd.why_not);

	/* virtio disk. */
	fx_file(root, "devices/pci0000:00/0000:00:02.0/virtio1/block/vda", "size", "100");
	fx_link(root, "devices/pci0000:00/0000:00:02.0/virtio1/block/vda", "device", "../../../virtio1");
	fx_link(root, "devices/pci0000:00/0000:00:02.0/virtio1", "driver",
		"../../../../bus/virtio/drivers/virtio_blk");
	fx_file(root, "bus/virtio/drivers/virtio_blk", "uevent", "");
	fx_devlink(root, "254:0", "virtio1/block/vda", "devices/pci0000:00/0000:00:02.0");
	p2pio_blockdev_probe(root, 254, 0, &bd, NULL);
	tap_ok(!bd.is_nvme && strstr(bd.why_not, "not an NVMe") && strstr(bd.why_not, "virtio_blk"),
	       "virtio refused: %s", bd.why_not);
	tap_ok(strcmp(bd.pci_addr, "0000:00:02.0") == 0, "virtio disk's PCI function %s",
	       bd.pci_addr);

	/* A device number with no block device: overlay, tmpfs. */
	tap_is_int(p2pio_blockdev_probe(root, 0, 42, &bd, NULL), 0, "probe 0:42 succeeds");
	tap_ok(!bd.name[0] && strstr(bd.why_not, "not a block device"), "0:42: %s", bd.why_not);

	tool_rm_dir(root);
}

/* The byte at file offset @off of file number @id: distinct per file and per block. */
static unsigned char pattern(int id, uint64_t off)
{
	return (unsigned char)(id * 31 + (off >> 12) * 7 + off);
}

static void fill(int fd, int id, uint64_t off, size_t len)
{
	unsigned char buf[4096];
	size_t done = 0;

	while (done < len) {
		size_t n = len - done < sizeof(buf) ? len - done : sizeof(buf), i;

		for (i = 0; i < n; i++)
			buf[i] = pattern(id, off + done + i);
		if (pwrite(fd, buf, n, (off_t)(off + done)) != (ssize_t)n)
			tap_bail("pwrite");
		done += n;
	}
}

/* Every run that says it holds written data holds the file's bytes at that disk offset. */
static int runs_match_image(struct p2pio_extents *ext, int img, int id, uint64_t off, uint64_t len)
{
	struct p2pio_lba_run runs[256];
	const struct p2pio_blockdev *bd = p2pio_extents_device(ext);
	ssize_t n = p2pio_extents_lba_runs(ext, off, len, runs, 256), i;
	unsigned char buf[4096];
	int checked = 0;

	if (n < 0 || n > 256)
		return -1;
	for (i = 0; i < n; i++) {
		uint64_t done = 0;

		if (runs[i].flags & P2PIO_EXTENT_NOT_RAW)
			continue;
		if (runs[i].lba != runs[i].disk_offset / bd->lba_size)
			return -1;
		while (done < runs[i].length) {
			size_t k, m = runs[i].length - done < sizeof(buf) ? runs[i].length - done : sizeof(buf);

			if (pread(img, buf, m, (off_t)(runs[i].disk_offset + done)) != (ssize_t)m)
				return -1;
			for (k = 0; k < m; k++)
				if (buf[k] != pattern(id, runs[i].file_offset + done + k))
					return -1;
			done += m;
		}
		checked++;
	}
	return checked;
}

static void dump(const char *what, struct p2pio_extents *ext)
{
	size_t i;

	for (i = 0; i < p2pio_extents_count(ext); i++) {
		const struct p2pio_extent *e = p2pio_extents_get(ext, i);

		tap_diag("%s: file %llu +%llu at %llu flags 0x%x", what,
			 (unsigned long long)e->file_offset, (unsigned long long)e->length,
			 (unsigned long long)e->physical, e->flags);
	}
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

#define LOOP_TESTS 27

static void test_loop(void)
{
	char dir[] = "/tmp/p2pio-extents-XXXXXX", img[PATH_MAX], mnt[PATH_MAX], loopdev[64] = "";
	char path[PATH_MAX + 64];
	struct p2pio_extents *ext = NULL;
	struct p2pio_frag_summary s;
	struct p2pio_lba_run runs[8];
	struct p2pio_error err = { 0 };
	int fa, fb, imgfd, i, ret;
	FILE *p;

	if (geteuid() != 0 || sh("command -v mkfs.ext4 losetup >/dev/null 2>&1") != 0) {
		tap_skip(LOOP_TESTS, "needs root, mkfs.ext4 and losetup");
		return;
	}
	if (!mkdtemp(dir))
		tap_bail("mkdtemp");
	snprintf(img, sizeof(img), "%s/img", dir);
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	/* 4 KiB logical blocks on the loop device, so LBA and byte offsets differ. */
	if (sh("truncate -s 64M %s && mkfs.ext4 -q -F -b 4096 %s && mkdir %s", img, img, mnt)) {
		tap_skip(LOOP_TESTS, "could not make an ext4 image");
		goto out_rm;
	}
	snprintf(path, sizeof(path), "losetup -f --show --sector-size 4096 %s", img);
	p = popen(path, "r");
	if (!p || !fgets(loopdev, sizeof(loopdev), p)) {
		if (p)
			pclose(p);
		tap_skip(LOOP_TESTS, "no loop device");
		goto out_rm;
	}
	pclose(p);
	loopdev[strcspn(loopdev, "\n")] = '\0';
	if (sh("mount -t ext4 %s %s", loopdev, mnt)) {
		tap_skip(LOOP_TESTS, "cannot mount ext4 here");
		goto out_loop;
	}

	/* Interleaved appends: each fsync allocates, so the two files' blocks alternate. */
	snprintf(path, sizeof(path), "%s/a", mnt);
	fa = open(path, O_RDWR | O_CREAT, 0644);
	snprintf(path, sizeof(path), "%s/b", mnt);
	fb = open(path, O_RDWR | O_CREAT, 0644);
	for (i = 0; i < 24; i++) {
		fill(fa, 1, (uint64_t)i * 4096, 4096);
		fsync(fa);
		fill(fb, 2, (uint64_t)i * 4096, 4096);
		fsync(fb);
	}
	ret = p2pio_extents_open(fa, 0, &ext, &err);
	tap_is_int(ret, 0, "extents of interleaved file (%s)", err.msg);
	if (ret)
		goto out_umount;
	dump("a", ext);
	tap_ok(strcmp(p2pio_extents_fstype(ext), "ext4") == 0, "file system is %s",
	       p2pio_extents_fstype(ext));
	{
		const struct p2pio_blockdev *bd = p2pio_extents_device(ext);

		tap_ok(strcmp(bd->name, loopdev + 5) == 0 && bd->lba_size == 4096,
		       "device %s, LBA size %u", bd->name, bd->lba_size);
		tap_ok(bd->is_stacked && !bd->is_nvme && strstr(bd->why_not, "loop"),
		       "loop device is not P2P-capable: %s", bd->why_not);
	}
	p2pio_extents_summary(ext, 0, UINT64_MAX, &s);
	tap_ok(s.bytes == 24 * 4096 && s.mapped_bytes == s.bytes && !s.not_raw_flags,
	       "all 96 KiB mapped and written");
	tap_ok(s.runs >= 2 && s.runs == p2pio_extents_count(ext),
	       "interleaved appends fragment the file: %llu runs", (unsigned long long)s.runs);
	imgfd = open(img, O_RDONLY);
	tap_is_int(runs_match_image(ext, imgfd, 1, 0, UINT64_MAX), (int)s.runs,
		   "every run's disk bytes are the file's bytes");
	tap_ok(runs_match_image(ext, imgfd, 1, 5000, 20000) >= 1, "an unaligned range maps too");
	tap_is_int(p2pio_extents_lba_runs(ext, 5000, 20000, runs, 1),
		   p2pio_extents_lba_runs(ext, 5000, 20000, NULL, 0),
		   "a short array still gets the full count");
	tap_ok(runs[0].file_offset == 5000 && runs[0].lba == runs[0].disk_offset / 4096 &&
		       runs[0].nlb >= 1,
	       "first run starts inside an LBA: lba %llu nlb %llu", (unsigned long long)runs[0].lba,
	       (unsigned long long)runs[0].nlb);
	tap_is_int(p2pio_extents_lba_runs(ext, 1 << 20, 4096, runs, 8), 0,
		   "a range past the end has no runs");
	p2pio_extents_free(ext);
	close(fa);
	close(fb);

	/* Holes: 64 KiB, then nothing up to 1 MiB, then 64 KiB. */
	snprintf(path, sizeof(path), "%s/holes", mnt);
	fa = open(path, O_RDWR | O_CREAT, 0644);
	fill(fa, 3, 0, 65536);
	fill(fa, 3, 1 << 20, 65536);
	fsync(fa);
	tap_is_int(p2pio_extents_open(fa, 0, &ext, NULL), 0, "extents of a sparse file");
	dump("holes", ext);
	p2pio_extents_summary(ext, 0, UINT64_MAX, &s);
	tap_ok(s.hole_bytes == (1 << 20) - 65536 && s.mapped_bytes == 2 * 65536,
	       "hole of 960 KiB, 128 KiB mapped");
	tap_ok(s.not_raw_flags == P2PIO_EXTENT_HOLE, "only the hole stops P2P");
	tap_is_int(p2pio_extents_lba_runs(ext, 0, UINT64_MAX, runs, 8), 3, "data, hole, data");
	tap_ok(runs[1].flags == P2PIO_EXTENT_HOLE && runs[1].file_offset == 65536 &&
		       runs[1].length == (1 << 20) - 65536,
	       "the hole's run is right");
	tap_is_int(runs_match_image(ext, imgfd, 3, 0, UINT64_MAX), 2, "both data runs match the image");
	p2pio_extents_summary(ext, 0, 65536, &s);
	tap_ok(s.not_raw_flags == 0 && s.runs == 1, "the first 64 KiB alone qualify");
	p2pio_extents_free(ext);
	close(fa);

	/* fallocate: unwritten, with one written block in the middle. */
	snprintf(path, sizeof(path), "%s/unwritten", mnt);
	fa = open(path, O_RDWR | O_CREAT, 0644);
	if (posix_fallocate(fa, 0, 256 * 1024))
		tap_bail("posix_fallocate");
	fill(fa, 4, 65536, 4096);
	fsync(fa);
	tap_is_int(p2pio_extents_open(fa, 0, &ext, NULL), 0, "extents of a fallocated file");
	dump("unwritten", ext);
	p2pio_extents_summary(ext, 0, UINT64_MAX, &s);
	tap_ok(s.unwritten_bytes == 256 * 1024 - 4096 && s.mapped_bytes == 4096,
	       "252 KiB unwritten, 4 KiB written");
	tap_ok(s.not_raw_flags == P2PIO_EXTENT_UNWRITTEN, "unwritten stops P2P: %s",
	       p2pio_extent_flag_reason(s.not_raw_flags));
	tap_is_int(runs_match_image(ext, imgfd, 4, 0, UINT64_MAX), 1, "the written block matches");
	p2pio_extents_free(ext);
	close(fa);

	/* Delayed allocation: dirty data has no blocks until synced. */
	snprintf(path, sizeof(path), "%s/delalloc", mnt);
	fa = open(path, O_RDWR | O_CREAT, 0644);
	fill(fa, 5, 0, 128 * 1024);
	tap_is_int(p2pio_extents_open(fa, 0, &ext, NULL), 0, "extents of dirty data");
	p2pio_extents_summary(ext, 0, UINT64_MAX, &s);
	tap_ok(s.delalloc_bytes == 128 * 1024 && (s.not_raw_flags & P2PIO_EXTENT_DELALLOC),
	       "dirty data is delalloc: %s", p2pio_extent_flag_reason(P2PIO_EXTENT_DELALLOC));
	p2pio_extents_free(ext);
	tap_is_int(p2pio_extents_open(fa, P2PIO_EXTENTS_SYNC, &ext, NULL), 0,
		   "extents with P2PIO_EXTENTS_SYNC");
	p2pio_extents_summary(ext, 0, UINT64_MAX, &s);
	tap_ok(s.mapped_bytes == 128 * 1024 && !s.not_raw_flags, "synced: all mapped");
	tap_ok(runs_match_image(ext, imgfd, 5, 0, UINT64_MAX) >= 1, "and on the disk");
	p2pio_extents_free(ext);
	close(fa);
	close(imgfd);

out_umount:
	sh("umount %s", mnt);
out_loop:
	sh("losetup -d %s", loopdev);
out_rm:
	sh("rm -rf %s", dir);
}

static void test_errors(void)
{
	struct p2pio_extents *ext = (struct p2pio_extents *)1;
	struct p2pio_error err = { 0 };

	tap_ok(p2pio_extents_open_path("/nonexistent/x", 0, &ext, &err) == -ENOENT && !ext,
	       "missing file: %s", err.msg);
	tap_ok(p2pio_extents_open_path("/tmp", 0, &ext, &err) == -EINVAL, "a directory: %s",
	       err.msg);
	tap_ok(p2pio_extent_flag_reason(P2PIO_EXTENT_LAST)[0] == '\0',
	       "LAST is no reason to refuse P2P");
}

int main(void)
{
	test_fixture();
	test_loop();
	test_errors();
	return tap_exit();
}
