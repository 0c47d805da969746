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
#include "tool_run.h"

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
	fx_p2p_tree(root, 0);
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
	fx_p2p_tree(root, 0x4);
	fx_file(root, "proc", "cmdline", "intel_iommu=on iommu=pt");
	tap_is_int(p2pio_topo_scan(sys, &t, NULL), 0, "rescan with ACS redirect");
	p2pio_topo_verdict(t, "0000:03:00.0", "0000:04:00.0", &v);
	tap_ok(v.kind == P2PIO_P2P_ACS_REDIRECT && !v.good &&
		       strcmp(v.acs_bridge, "0000:02:01.0") == 0,
	       "%s", v.text);
	tap_ok(p2pio_topo_iommu(t)->passthrough, "iommu=pt seen: %s", p2pio_topo_iommu(t)->summary);
	p2pio_topo_free(t);
	tool_rm_dir(root);
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
	tool_rm_dir(root);
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
