/* SPDX-License-Identifier: MIT */
/*
 * sysfs.h - small readers of sysfs attribute files, shared by blockdev.c and topo.c.
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

#endif /* P2PIO_SYSFS_H */
