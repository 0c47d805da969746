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
/* A PCI function for fx_pci_dev(). */
struct fx_pci {
	const char *path; /* under devices/, ending in the function's address */
	unsigned int vendor, device, class;
	int port_type;		 /* P2PIO_PCI_PORT_* */
	unsigned int gen, width; /* link status; capabilities one better */
	int acs;		 /* 0: no ACS capability; else 1 + control value */
};

/*
 * Make @root/sys/devices/@p->path a PCI function with sysfs attributes and a config space
 * file (PCI Express capability with port type and link, ACS when asked), and its
 * @root/sys/bus/pci/devices link, as libpci's sysfs access reads them.
 */
void fx_pci_dev(const char *root, const struct fx_pci *p);
/*
 * A machine under @root (sys/ and proc/): a GPU 0000:03:00.0 and an NVMe 0000:04:00.0
 * below one PCIe switch (upstream port 0000:01:00.0; the NVMe's downstream port
 * 0000:02:01.0 has ACS control @acs_ctrl_0201), an NVMe 0000:05:00.0 on its own root
 * port, one 0000:81:00.0 on another host bridge; IOMMU on with two groups.
 */
void fx_p2p_tree(const char *root, int acs_ctrl_0201);
/* (Remove a tree with tool_rm_dir(), tool_run.h.) */

#endif
