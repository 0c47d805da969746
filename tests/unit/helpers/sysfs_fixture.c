// SPDX-License-Identifier: MIT
/* sysfs_fixture.c - synthetic sysfs trees for tests (see sysfs_fixture.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "p2pio.h"

#include "sysfs_fixture.h"
#include "tap.h"

static void mkdir_p(const char *path)
{
	char p[PATH_MAX];
	char *s;

	snprintf(p, sizeof(p), "%s", path);
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) && errno != EEXIST)
			tap_bail("fixture mkdir");
		*s = '/';
	}
	if (mkdir(p, 0755) && errno != EEXIST)
		tap_bail("fixture mkdir");
}

static void parent_of(char *p)
{
	char *s = strrchr(p, '/');

	if (s)
		*s = '\0';
}

void fx_file(const char *root, const char *dir, const char *name, const char *content)
{
	char p[PATH_MAX];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s/%s", root, dir, name);
	parent_of(p);
	mkdir_p(p);
	snprintf(p, sizeof(p), "%s/%s/%s", root, dir, name);
	f = fopen(p, "w");
	if (!f)
		tap_bail("fixture fopen");
	fprintf(f, "%s\n", content);
	fclose(f);
}

void fx_link(const char *root, const char *dir, const char *name, const char *target)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", root, dir);
	mkdir_p(p);
	snprintf(p, sizeof(p), "%s/%s/%s", root, dir, name);
	unlink(p);
	if (symlink(target, p))
		tap_bail("fixture symlink");
}

void fx_devlink(const char *root, const char *devno, const char *rel, const char *base)
{
	char target[PATH_MAX], p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s/%s", root, base, rel);
	mkdir_p(p);
	snprintf(target, sizeof(target), "../../%s/%s", base, rel);
	fx_link(root, "dev/block", devno, target);
}


static void put16(unsigned char *c, int off, unsigned int v)
{
	c[off] = v & 0xff;
	c[off + 1] = (v >> 8) & 0xff;
}

static void put32(unsigned char *c, int off, unsigned int v)
{
	put16(c, off, v & 0xffff);
	put16(c, off + 2, v >> 16);
}

void fx_pci_dev(const char *root, const struct fx_pci *p)
{
	unsigned char cfg[4096];
	char dir[PATH_MAX], val[32], file[PATH_MAX + 16], target[PATH_MAX];
	const char *addr = strrchr(p->path, '/') + 1;
	FILE *f;

	memset(cfg, 0, sizeof(cfg));
	put16(cfg, 0x00, p->vendor);
	put16(cfg, 0x02, p->device);
	put16(cfg, 0x06, 0x0010); /* status: capability list */
	cfg[0x09] = p->class & 0xff;
	cfg[0x0a] = (p->class >> 8) & 0xff;
	cfg[0x0b] = (p->class >> 16) & 0xff;
	cfg[0x0e] = (p->class >> 16) == 0x06 ? 1 : 0;
	cfg[0x34] = 0x40;
	cfg[0x40] = 0x10; /* PCI Express capability */
	put16(cfg, 0x42, 0x2 | (unsigned int)p->port_type << 4);
	put32(cfg, 0x4c, (p->gen + 1) | (p->width * 2) << 4);
	put16(cfg, 0x52, p->gen | p->width << 4);
	if (p->acs) {
		put32(cfg, 0x100, 0x0d | 1 << 16); /* ACS, version 1, last */
		put16(cfg, 0x104, 0x1f);
		put16(cfg, 0x106, (unsigned int)(p->acs - 1));
	}
	snprintf(dir, sizeof(dir), "sys/devices/%s", p->path);
	snprintf(val, sizeof(val), "0x%04x", p->vendor);
	fx_file(root, dir, "vendor", val);
	snprintf(val, sizeof(val), "0x%04x", p->device);
	fx_file(root, dir, "device", val);
	snprintf(val, sizeof(val), "0x%06x", p->class);
	fx_file(root, dir, "class", val);
	fx_file(root, dir, "irq", "0");
	fx_file(root, dir, "numa_node", "-1");
	fx_file(root, dir, "resource", "0x0000000000000000 0x0000000000000000 0x0000000000000000");
	snprintf(file, sizeof(file), "%s/%s/config", root, dir);
	f = fopen(file, "w");
	if (!f || fwrite(cfg, 1, sizeof(cfg), f) != sizeof(cfg))
		tap_bail("fixture config");
	fclose(f);
	snprintf(target, sizeof(target), "../../../devices/%s", p->path);
	fx_link(root, "sys/bus/pci/devices", addr, target);
}

static const struct fx_pci tree[] = {
	{ "pci0000:00/0000:00:01.0", 0x8086, 0x1111, 0x060400, P2PIO_PCI_PORT_ROOT, 4, 16, 0 },
	{ "pci0000:00/0000:00:01.0/0000:01:00.0", 0x1000, 0xc030, 0x060400, P2PIO_PCI_PORT_UPSTREAM,
	  4, 16, 0 },
	{ "pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:00.0", 0x1000, 0xc030, 0x060400,
	  P2PIO_PCI_PORT_DOWNSTREAM, 4, 16, 1 },
	{ "pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:01.0", 0x1000, 0xc030, 0x060400,
	  P2PIO_PCI_PORT_DOWNSTREAM, 4, 4, 1 },
	{ "pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:00.0/0000:03:00.0", 0x10de, 0x2330, 0x030200,
	  P2PIO_PCI_PORT_ENDPOINT, 4, 16, 0 },
	{ "pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:01.0/0000:04:00.0", 0x144d, 0xa80a, 0x010802,
	  P2PIO_PCI_PORT_ENDPOINT, 4, 4, 0 },
	{ "pci0000:00/0000:00:02.0", 0x8086, 0x2222, 0x060400, P2PIO_PCI_PORT_ROOT, 3, 4, 0 },
	{ "pci0000:00/0000:00:02.0/0000:05:00.0", 0x144d, 0xa808, 0x010802, P2PIO_PCI_PORT_ENDPOINT, 3,
	  4, 0 },
	{ "pci0000:80/0000:80:01.0", 0x8086, 0x3333, 0x060400, P2PIO_PCI_PORT_ROOT, 5, 4, 0 },
	{ "pci0000:80/0000:80:01.0/0000:81:00.0", 0x144d, 0xa80c, 0x010802, P2PIO_PCI_PORT_ENDPOINT, 5,
	  4, 0 },
};

void fx_p2p_tree(const char *root, int acs_ctrl_0201)
{
	size_t i;

	for (i = 0; i < sizeof(tree) / sizeof(tree[0]); i++) {
		struct fx_pci p = tree[i];

		if (strstr(p.path, "/0000:02:01.0") && !strstr(p.path, "04:00.0"))
			p.acs = 1 + acs_ctrl_0201;
		fx_pci_dev(root, &p);
	}
	fx_link(root, "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:00.0/0000:03:00.0",
		"iommu_group", "../../../../../../kernel/iommu_groups/7");
	fx_file(root, "sys/kernel/iommu_groups/7", "type", "DMA");
	fx_file(root, "sys/kernel/iommu_groups/8", "type", "DMA");
	fx_file(root, "sys/class/iommu/dmar0", "uevent", "");
	fx_file(root, "proc", "cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on quiet");
}
