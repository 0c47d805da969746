/* SPDX-License-Identifier: MIT */
/*
 * sysfs_fixture.h - build synthetic sysfs trees for tests of code that takes a sysfs
 * root (blockdev, topo). Paths are relative to @root; parents are created as needed.
 * Any failure bails out of the test program.
 */
#ifndef P2PIO_SYSFS_FIXTURE_H
#define P2PIO_SYSFS_FIXTURE_H

/* Write @content and a newline to @root/@dir/@name. */
void fx_file(const char *root, const char *dir, const char *name, const char *content);
/* Make @root/@dir/@name a symbolic link to @target (relative to that directory). */
void fx_link(const char *root, const char *dir, const char *name, const char *target);
/* Make @root/dev/block/@devno point at @root/@base/@rel, as /sys/dev/block does. */
void fx_devlink(const char *root, const char *devno, const char *rel, const char *base);
/* Remove the tree. */
void fx_rm(const char *root);

#endif
