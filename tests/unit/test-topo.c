// SPDX-License-Identifier: MIT
/*
 * Topology: synthetic sysfs trees with config space files (a GPU and an NVMe controller
 * below one PCIe switch, another NVMe on its own root port, one on another host bridge),
 * read through libpci; verdicts, slowest links, ACS redirect, IOMMU state; then the real
 * machine's tree, which must scan without error whatever it holds.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "p2pio.h"
#include "sysfs_fixture.h"
#include "tap.h"

struct fx_pci {
	const char *path; /* under devices/, ending in the function's address */
	unsigned int vendor, device, class;
	int port_type;		 /* P2PIO_PCI_PORT_* */
	unsigned int gen, width; /* link status; capabilities one better */
	int acs;		 /* 0: no ACS capability; else 1 + control value */
};

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

static void fx_pci_dev(const char *root, const struct fx_pci *p)
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

static void build_tree(const char *root, int acs_ctrl_0201)
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

static void test_fixture(void)
{
	char root[] = "/tmp/p2pio-topo-XXXXXX", sys[64];
	const struct p2pio_pci_dev *d;
	const struct p2pio_iommu_state *io;
	struct p2pio_p2p_verdict v;
	struct p2pio_topo *t = NULL;
	struct p2pio_error err = { 0 };
	size_t n;
	int ret;

	if (!mkdtemp(root))
		tap_bail("mkdtemp");
	build_tree(root, 0);
	snprintf(sys, sizeof(sys), "%s/sys", root);
	ret = p2pio_topo_scan(sys, &t, &err);
	tap_is_int(ret, 0, "scan the fixture tree (%s)", err.msg);
	if (ret)
		tap_bail("cannot scan fixture");

	d = p2pio_topo_gpus(t, &n);
	tap_ok(n == 1 && strcmp(d[0].addr, "0000:03:00.0") == 0, "one GPU at 0000:03:00.0");
	tap_ok(n == 1 && d[0].link.gen == 4 && d[0].link.width == 16 && d[0].link.max_gen == 5 &&
		       d[0].link.max_width == 32,
	       "GPU link Gen4 x16 of Gen5 x32 read from config space");
	tap_ok(n == 1 && d[0].iommu_group == 7 && strcmp(d[0].parent, "0000:02:00.0") == 0 &&
		       strcmp(d[0].host_bridge, "pci0000:00") == 0,
	       "GPU in IOMMU group 7, below 0000:02:00.0 on pci0000:00");
	p2pio_topo_nvmes(t, &n);
	tap_is_int(n, 3, "three NVMe controllers");
	d = p2pio_topo_find(t, "00000000:01:00.0");
	tap_ok(d && d->port_type == P2PIO_PCI_PORT_UPSTREAM, "CUDA's bus id form finds the switch");
	d = p2pio_topo_find(t, "0000:02:01.0");
	tap_ok(d && d->has_acs && d->acs_cap == 0x1f && d->acs_ctrl == 0, "ACS capability read");
	tap_ok(!p2pio_topo_find(t, "0000:09:00.0") && !p2pio_topo_find(t, "garbage"),
	       "unknown or malformed addresses are not found");

	tap_is_int(p2pio_topo_verdict(t, "0000:03:00.0", "0000:04:00.0", &v), 0, "verdict GPU/nvme 04");
	tap_ok(v.kind == P2PIO_P2P_SAME_SWITCH && v.good && strcmp(v.common, "0000:01:00.0") == 0,
	       "%s", v.text);
	tap_ok(strcmp(v.slowest, "0000:02:01.0") == 0 || strcmp(v.slowest, "0000:04:00.0") == 0,
	       "slowest link is the NVMe's x4 (%s)", v.slowest);
	tap_ok(v.slowest_link.gen == 4 && v.slowest_link.width == 4 &&
		       v.slowest_gbps > 7.8 && v.slowest_gbps < 7.9,
	       "Gen4 x4 = %.2f GB/s", v.slowest_gbps);
	tap_ok(strcmp(v.path, "0000:03:00.0 > 0000:02:00.0 > 0000:01:00.0 < 0000:02:01.0 < "
			      "0000:04:00.0") == 0,
	       "path %s", v.path);

	p2pio_topo_verdict(t, "0000:03:00.0", "0000:05:00.0", &v);
	tap_ok(v.kind == P2PIO_P2P_HOST_BRIDGE && !v.good && !v.common[0] &&
		       strstr(v.text, "root complex"),
	       "%s", v.text);
	tap_ok(strcmp(v.slowest, "0000:00:02.0") == 0 || strcmp(v.slowest, "0000:05:00.0") == 0,
	       "slowest is the Gen3 x4 NVMe link");
	p2pio_topo_verdict(t, "0000:03:00.0", "0000:81:00.0", &v);
	tap_ok(v.kind == P2PIO_P2P_CROSS_HOST && !v.good, "%s", v.text);
	tap_is_int(p2pio_topo_verdict(t, "0000:03:00.0", "0000:99:00.0", &v), -ENODEV,
		   "missing NVMe: -ENODEV (%s)", v.text);

	io = p2pio_topo_iommu(t);
	tap_ok(io->enabled && io->groups == 2 && !io->passthrough, "IOMMU on, 2 groups, translating");
	tap_ok(strcmp(io->cmdline, "intel_iommu=on") == 0, "cmdline option %s", io->cmdline);
	p2pio_topo_free(t);

	/* ACS P2P request redirect on the NVMe's downstream port, and iommu=pt. */
	build_tree(root, 0x4);
	fx_file(root, "proc", "cmdline", "intel_iommu=on iommu=pt");
	tap_is_int(p2pio_topo_scan(sys, &t, NULL), 0, "rescan with ACS redirect");
	p2pio_topo_verdict(t, "0000:03:00.0", "0000:04:00.0", &v);
	tap_ok(v.kind == P2PIO_P2P_ACS_REDIRECT && !v.good &&
		       strcmp(v.acs_bridge, "0000:02:01.0") == 0,
	       "%s", v.text);
	tap_ok(p2pio_topo_iommu(t)->passthrough, "iommu=pt seen: %s", p2pio_topo_iommu(t)->summary);
	p2pio_topo_free(t);
	fx_rm(root);
}

static void test_empty(void)
{
	char root[] = "/tmp/p2pio-topo-XXXXXX";
	struct p2pio_topo *t = NULL;
	size_t n = 1;

	if (!mkdtemp(root))
		tap_bail("mkdtemp");
	tap_is_int(p2pio_topo_scan(root, &t, NULL), 0, "a tree with no PCI bus scans");
	p2pio_topo_gpus(t, &n);
	tap_ok(n == 0 && !p2pio_topo_iommu(t)->enabled, "no GPU, no IOMMU");
	p2pio_topo_free(t);
	fx_rm(root);
}

static void test_host(void)
{
	struct p2pio_topo *t = NULL;
	struct p2pio_error err = { 0 };
	const struct p2pio_pci_dev *g, *nv;
	size_t ng, nn, i;
	int ret = p2pio_topo_scan("/sys", &t, &err);

	tap_is_int(ret, 0, "this machine's /sys scans (%s)", err.msg);
	if (ret)
		return;
	g = p2pio_topo_gpus(t, &ng);
	nv = p2pio_topo_nvmes(t, &nn);
	tap_diag("host: %zu GPUs, %zu NVMe controllers; %s", ng, nn, p2pio_topo_iommu(t)->summary);
	for (i = 0; i < ng && nn; i++) {
		struct p2pio_p2p_verdict v;

		p2pio_topo_verdict(t, g[i].addr, nv[0].addr, &v);
		tap_diag("%s -> %s: %s", g[i].addr, nv[0].addr, v.text);
	}
	tap_ok(p2pio_pci_link_gbps(5, 16) > 63 && p2pio_pci_link_gbps(0, 4) == 0 &&
		       p2pio_pci_link_gbps(9, 4) == 0,
	       "link bandwidth table");
	p2pio_topo_free(t);
}

int main(void)
{
	test_fixture();
	test_empty();
	test_host();
	return tap_exit();
}
