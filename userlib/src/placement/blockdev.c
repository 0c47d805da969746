// SPDX-License-Identifier: MIT
/*
 * blockdev.c - what block device a file system lives on: sysfs for the layout (partition,
 * whole disk, stacking, controller, PCI function), libnvme for the NVMe namespace's LBA
 * format where it can identify the namespace.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nvme/tree.h>

#include "internal.h"
#include "placement/sysfs.h"

static bool is_nvme_ns_name(const char *name)
{
	unsigned int c, n;
	int end = 0;

	/* nvme0n1, not the hidden per-path nvme0c1n1 nor a partition nvme0n1p1. */
	if (sscanf(name, "nvme%un%u%n", &c, &n, &end) != 2)
		return false;
	return name[end] == '\0';
}

static bool dir_has_entries(const char *dir)
{
	struct dirent *de;
	bool any = false;
	DIR *d = opendir(dir);

	if (!d)
		return false;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			any = true;
			break;
		}
	}
	closedir(d);
	return any;
}

/* The kind of stacked device @disk is, or NULL when it is not one. */
static const char *stacked_kind(const char *diskdir)
{
	static const struct {
		const char *sub;
		const char *kind;
	} kinds[] = { { "dm", "device-mapper" }, { "md", "md RAID" }, { "loop", "loop" } };
	char p[PATH_MAX];
	size_t i;

	for (i = 0; i < P2PIO_ARRAY_SIZE(kinds); i++) {
		if (p2pio_path_join(p, sizeof(p), diskdir, kinds[i].sub) == 0 && access(p, F_OK) == 0)
			return kinds[i].kind;
	}
	if (p2pio_path_join(p, sizeof(p), diskdir, "slaves") == 0 && dir_has_entries(p))
		return "stacked";
	return NULL;
}

/* The deepest PCI function ("0000:01:00.0") in a resolved sysfs device path. */
static void pci_function_of(const char *devpath, char *out, size_t outsz)
{
	const char *p = devpath;

	out[0] = '\0';
	while ((p = strchr(p, '/'))) {
		unsigned int dom, bus, dev, fn;
		int end = 0;

		p++;
		if (sscanf(p, "%4x:%2x:%2x.%1x%n", &dom, &bus, &dev, &fn, &end) == 4 && end == 12 &&
		    (p[end] == '/' || p[end] == '\0'))
			snprintf(out, outsz, "%.12s", p);
	}
}

/* NVMe facts from sysfs: the controller, its transport, nsid and metadata size. */
static void probe_nvme_sysfs(const char *diskdir, struct p2pio_blockdev *bd)
{
	char p[PATH_MAX], ctrldir[PATH_MAX];
	uint64_t v;

	if (p2pio_path_join(p, sizeof(p), diskdir, "device") == 0 && realpath(p, ctrldir)) {
		const char *base = strrchr(ctrldir, '/');

		base = base ? base + 1 : ctrldir;
		if (strncmp(base, "nvme-subsys", 11) == 0) {
			bd->is_multipath = true;
		} else {
			snprintf(bd->ctrl, sizeof(bd->ctrl), "%.31s", base);
			p2pio_sysfs_read_str(ctrldir, "transport", bd->transport, sizeof(bd->transport));
			if (!bd->model[0])
				p2pio_sysfs_read_str(ctrldir, "model", bd->model, sizeof(bd->model));
		}
	}
	if (p2pio_sysfs_read_u64(diskdir, "nsid", &v) == 0 && v <= UINT32_MAX)
		bd->nsid = (uint32_t)v;
	/* Newer kernels say it directly; older ones only through the integrity profile. */
	if (p2pio_sysfs_read_u64(diskdir, "metadata_bytes", &v) == 0 ||
	    p2pio_sysfs_read_u64(diskdir, "integrity/tuple_size", &v) == 0)
		bd->metadata_size = v <= UINT32_MAX ? (uint32_t)v : UINT32_MAX;
	bd->is_pcie = strcmp(bd->transport, "pcie") == 0;
	snprintf(bd->source, sizeof(bd->source), "sysfs");
}

/*
 * The namespace's own word on its LBA format: libnvme opens /dev/<name> and identifies
 * it, which needs the device node and the right to open it, so this is best effort.
 */
static void probe_nvme_libnvme(struct p2pio_blockdev *bd)
{
	nvme_ns_t ns = nvme_scan_namespace(bd->disk);

	if (!ns)
		return;
	if (nvme_ns_get_lba_size(ns) > 0)
		bd->lba_size = (uint32_t)nvme_ns_get_lba_size(ns);
	if (nvme_ns_get_meta_size(ns) >= 0)
		bd->metadata_size = (uint32_t)nvme_ns_get_meta_size(ns);
	if (nvme_ns_get_nsid(ns) > 0)
		bd->nsid = (uint32_t)nvme_ns_get_nsid(ns);
	snprintf(bd->source, sizeof(bd->source), "libnvme");
	nvme_free_ns(ns);
}

static void decide_why_not(const char *diskdir, struct p2pio_blockdev *bd)
{
	const char *kind = stacked_kind(diskdir);
	char p[PATH_MAX], drv[PATH_MAX];
	const char *d = "unknown driver";

	if (kind) {
		bd->is_stacked = true;
		snprintf(bd->why_not, sizeof(bd->why_not),
			 "%s is a %s device: P2P needs the file system directly on an NVMe namespace",
			 bd->disk, kind);
		return;
	}
	if (!bd->is_nvme) {
		if (p2pio_path_join(p, sizeof(p), diskdir, "device/driver") == 0 && realpath(p, drv))
			d = strrchr(drv, '/') ? strrchr(drv, '/') + 1 : drv;
		snprintf(bd->why_not, sizeof(bd->why_not), "%s is not an NVMe namespace (%.64s)",
			 bd->disk, d);
		return;
	}
	if (bd->is_multipath) {
		snprintf(bd->why_not, sizeof(bd->why_not),
			 "%s is an NVMe multipath head: no single controller to send commands to",
			 bd->disk);
		return;
	}
	if (!bd->is_pcie) {
		snprintf(bd->why_not, sizeof(bd->why_not),
			 "%s is NVMe over %s, not a local PCIe controller", bd->disk,
			 bd->transport[0] ? bd->transport : "an unknown transport");
		return;
	}
	if (bd->metadata_size) {
		snprintf(bd->why_not, sizeof(bd->why_not),
			 "%s has %u bytes of metadata per LBA: P2P reads need a format without metadata",
			 bd->disk, bd->metadata_size);
		return;
	}
}

int p2pio_blockdev_probe(const char *sysfs, unsigned int major, unsigned int minor,
			 struct p2pio_blockdev *out, struct p2pio_error *err)
{
	char dev[PATH_MAX], diskdir[PATH_MAX];
	struct p2pio_blockdev *bd = out;
	uint64_t v;
	char *slash;
	int ret;

	memset(bd, 0, sizeof(*bd));
	bd->major = major;
	bd->minor = minor;
	ret = p2pio_blockdev_dirs(sysfs, major, minor, dev, diskdir);
	if (ret == -ENAMETOOLONG)
		return p2pio_set_error(err, ret, P2PIO_NO_OFFSET, "sysfs path too long");
	if (ret == -ENOENT) {
		snprintf(bd->why_not, sizeof(bd->why_not),
			 "device %u:%u is not a block device (a virtual file system: overlay, tmpfs, "
			 "NFS, ...)",
			 major, minor);
		return 0;
	}
	if (ret)
		return p2pio_set_error(err, ret, P2PIO_NO_OFFSET, "%s/dev/block/%u:%u: %s", sysfs,
				       major, minor, strerror(-ret));
	slash = strrchr(dev, '/');
	snprintf(bd->name, sizeof(bd->name), "%.31s", slash ? slash + 1 : dev);
	/* p2pio_blockdev_dirs() read "partition": a partition's disk is its parent. */
	if (strcmp(dev, diskdir)) {
		bd->is_partition = true;
		if (p2pio_sysfs_read_u64(dev, "start", &v) == 0)
			bd->part_start = v * 512; /* sysfs counts 512-byte sectors, always */
	}
	slash = strrchr(diskdir, '/');
	snprintf(bd->disk, sizeof(bd->disk), "%.31s", slash ? slash + 1 : diskdir);

	if (p2pio_sysfs_read_u64(diskdir, "queue/logical_block_size", &v) == 0 && v <= UINT32_MAX)
		bd->lba_size = (uint32_t)v;
	if (p2pio_sysfs_read_u64(diskdir, "queue/max_hw_sectors_kb", &v) == 0 && v < UINT64_MAX / 1024)
		bd->max_hw_bytes = v * 1024;
	if (p2pio_sysfs_read_u64(diskdir, "size", &v) == 0 && v < UINT64_MAX / 512)
		bd->size = v * 512;
	p2pio_sysfs_read_str(diskdir, "device/model", bd->model, sizeof(bd->model));
	pci_function_of(diskdir, bd->pci_addr, sizeof(bd->pci_addr));

	bd->is_nvme = is_nvme_ns_name(bd->disk);
	if (bd->is_nvme) {
		probe_nvme_sysfs(diskdir, bd);
		if (strcmp(sysfs, "/sys") == 0 && !bd->is_multipath)
			probe_nvme_libnvme(bd);
	}
	decide_why_not(diskdir, bd);
	return 0;
}
