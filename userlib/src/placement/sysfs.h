/* SPDX-License-Identifier: MIT */
/*
 * sysfs.h - small readers of sysfs attribute files, shared by blockdev.c, topo.c and the
 * engine (which asks whether a file's disk is rotational without linking libnvme).
 * Every function takes a directory and a relative name, so callers can point them at a
 * synthetic tree in tests.
 */
#ifndef P2PIO_SYSFS_H
#define P2PIO_SYSFS_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* @out = @dir "/" @name; -ENAMETOOLONG when it does not fit. */
P2PIO_HIDDEN int p2pio_path_join(char *out, size_t outsz, const char *dir, const char *name);

/* The attribute's first line without trailing white space; -errno on failure. */
P2PIO_HIDDEN int p2pio_sysfs_read_str(const char *dir, const char *name, char *out, size_t outsz);

/* The attribute as a decimal number (hex with a 0x prefix); -EINVAL when it is not one. */
P2PIO_HIDDEN int p2pio_sysfs_read_u64(const char *dir, const char *name, uint64_t *out);

/*
 * The sysfs directory of block device @major:@minor (@dev) and of its whole disk
 * (@diskdir: the parent of a partition, else @dev itself; PATH_MAX bytes each). -ENOENT:
 * no block device has that number (a virtual file system's device); -ENAMETOOLONG or
 * another -errno else.
 */
P2PIO_HIDDEN int p2pio_blockdev_dirs(const char *sysfs, unsigned int major, unsigned int minor,
				     char *dev, char *diskdir);

/*
 * Whether the whole disk under block device @major:@minor (a partition's parent) says it
 * is rotational (its queue/rotational): 1 or 0, the disk's name in @disk; -ENOENT where
 * no block device has that number (tmpfs, overlay, btrfs's anonymous devices) or the
 * disk has no such attribute, another -errno where sysfs could not be read.
 */
P2PIO_HIDDEN int p2pio_blockdev_rotational(const char *sysfs, unsigned int major,
					   unsigned int minor, char *disk, size_t disk_len);

/* "/sys", or a synthetic tree a test points the engine at. */
P2PIO_HIDDEN extern const char *p2pio_sysfs_root;

#endif /* P2PIO_SYSFS_H */
