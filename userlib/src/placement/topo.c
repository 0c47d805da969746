// SPDX-License-Identifier: MIT
/*
 * topo.c - PCIe topology for P2P: libpci reads identity, class and config space (PCI
 * Express capability for port type and links, ACS); sysfs gives the parent chain (the
 * resolved device path), IOMMU groups and state. Everything is read below a sysfs root so
 * that tests can feed synthetic trees.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <pci/pci.h>

#include "internal.h"
#include "placement/sysfs.h"

struct p2pio_topo {
	struct p2pio_pci_dev *devs;
	size_t ndevs;
	struct p2pio_pci_dev *gpus;
	size_t ngpus;
	struct p2pio_pci_dev *nvmes;
	size_t nnvmes;
	struct p2pio_iommu_state iommu;
};

#define PCI_CLASS_NVME 0x010802u
#define PCI_VENDOR_NVIDIA 0x10de

/*
 * libpci reports fatal errors through a callback that must not return; the scan turns
 * them into an error code instead of letting the library exit the process.
 */
static __thread jmp_buf *pci_fatal_jmp;
static __thread char pci_fatal_msg[160];

static __attribute__((noreturn)) void pci_fatal(char *msg, ...)
{
	va_list ap;

	va_start(ap, msg);
	vsnprintf(pci_fatal_msg, sizeof(pci_fatal_msg), msg, ap);
	va_end(ap);
	if (pci_fatal_jmp)
		longjmp(*pci_fatal_jmp, 1);
	abort();
}

static void pci_quiet(char *msg, ...)
{
}

double p2pio_pci_link_gbps(unsigned int gen, unsigned int width)
{
	/* GB/s per lane after encoding: 8b/10b, then 128b/130b, then FLIT mode (242/256). */
	static const double lane[] = { 0, 0.25, 0.5, 0.985, 1.969, 3.938, 7.563 };

	if (gen == 0 || gen >= P2PIO_ARRAY_SIZE(lane))
		return 0;
	return lane[gen] * width;
}

/* "0000:01:00.0" from any case and CUDA's 8-digit domain; false if it is not one. */
static bool normalise_addr(const char *in, char out[16])
{
	unsigned int dom, bus, dev, fn;
	int end = 0;

	if (sscanf(in, "%x:%x:%x.%x%n", &dom, &bus, &dev, &fn, &end) != 4 || in[end] ||
	    dom > 0xffff || bus > 0xff || dev > 0x1f || fn > 7)
		return false;
	snprintf(out, 16, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return true;
}

static bool is_pci_addr(const char *s, size_t len)
{
	char tmp[16], norm[16];

	if (len != 12)
		return false;
	memcpy(tmp, s, 12);
	tmp[12] = '\0';
	return normalise_addr(tmp, norm);
}

/* Parent bridge and host bridge from the resolved sysfs path of the function. */
static void read_chain(const char *sysfs, struct p2pio_pci_dev *pd)
{
	char link[PATH_MAX], real[PATH_MAX], rel[64], *p, *save, *prev_pci = NULL, *cur_pci = NULL;

	snprintf(rel, sizeof(rel), "bus/pci/devices/%s", pd->addr);
	if (p2pio_path_join(link, sizeof(link), sysfs, rel) || !realpath(link, real))
		return;
	/* strtok_r: contexts are created from any thread, each reading the topology. */
	for (p = strtok_r(real, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (strncmp(p, "pci", 3) == 0 && strchr(p, ':'))
			snprintf(pd->host_bridge, sizeof(pd->host_bridge), "%.23s", p);
		else if (is_pci_addr(p, strlen(p))) {
			prev_pci = cur_pci;
			cur_pci = p;
		}
	}
	if (prev_pci)
		normalise_addr(prev_pci, pd->parent);
}

static int read_iommu_group(const char *sysfs, const char *addr)
{
	char link[PATH_MAX], target[PATH_MAX], rel[64];
	ssize_t n;
	const char *base;

	snprintf(rel, sizeof(rel), "bus/pci/devices/%s/iommu_group", addr);
	if (p2pio_path_join(link, sizeof(link), sysfs, rel))
		return -1;
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return -1;
	target[n] = '\0';
	base = strrchr(target, '/');
	return atoi(base ? base + 1 : target);
}

static void read_pcie(struct pci_dev *d, struct p2pio_pci_dev *pd)
{
	struct pci_cap *cap = pci_find_cap(d, PCI_CAP_ID_EXP, PCI_CAP_NORMAL);
	struct pci_cap *acs = pci_find_cap(d, PCI_EXT_CAP_ID_ACS, PCI_CAP_EXTENDED);

	pd->port_type = P2PIO_PCI_PORT_NONE;
	if (cap) {
		uint16_t flags = pci_read_word(d, cap->addr + PCI_EXP_FLAGS);
		uint32_t lnkcap = pci_read_long(d, cap->addr + PCI_EXP_LNKCAP);
		uint16_t lnksta = pci_read_word(d, cap->addr + PCI_EXP_LNKSTA);

		pd->port_type = (flags & PCI_EXP_FLAGS_TYPE) >> 4;
		/* Root complex integrated endpoints have no link registers worth reading. */
		if (pd->port_type != P2PIO_PCI_PORT_RC_ENDPOINT) {
			pd->link.max_gen = lnkcap & 0xf;
			pd->link.max_width = (lnkcap >> 4) & 0x3f;
			pd->link.gen = lnksta & 0xf;
			pd->link.width = (lnksta >> 4) & 0x3f;
		}
	}
	if (acs) {
		pd->has_acs = true;
		pd->acs_cap = pci_read_word(d, acs->addr + PCI_ACS_CAP);
		pd->acs_ctrl = pci_read_word(d, acs->addr + PCI_ACS_CTRL);
	}
}

static int push(struct p2pio_pci_dev **v, size_t *n, const struct p2pio_pci_dev *pd)
{
	struct p2pio_pci_dev *nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv)
		return -ENOMEM;
	nv[*n] = *pd;
	*v = nv;
	(*n)++;
	return 0;
}

static int count_entries(const char *dir)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The kernel command line sits beside sysfs: <root>/proc/cmdline for <root>/sys. */
static void read_cmdline_iommu(const char *sysfs, struct p2pio_iommu_state *st)
{
	char path[PATH_MAX], line[4096], *tok, *save;
	size_t len = 0;
	const char *slash = strrchr(sysfs, '/');
	FILE *f;

	snprintf(path, sizeof(path), "%.*s/proc/cmdline", slash ? (int)(slash - sysfs) : 0, sysfs);
	f = fopen(path, "re");
	if (!f)
		return;
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	for (tok = strtok_r(line, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
		if (!strstr(tok, "iommu"))
			continue;
		if (strcmp(tok, "iommu=pt") == 0 || strcmp(tok, "iommu.passthrough=1") == 0)
			st->passthrough = true;
		if (len + strlen(tok) + 2 < sizeof(st->cmdline)) {
			len += (size_t)snprintf(st->cmdline + len, sizeof(st->cmdline) - len, "%s%s",
						len ? " " : "", tok);
		}
	}
}

static void read_iommu(const char *sysfs, struct p2pio_iommu_state *st)
{
	char path[PATH_MAX], type[32];
	struct dirent *de;
	DIR *d;

	if (p2pio_path_join(path, sizeof(path), sysfs, "class/iommu") == 0)
		st->enabled = count_entries(path) > 0;
	if (p2pio_path_join(path, sizeof(path), sysfs, "kernel/iommu_groups") == 0) {
		st->groups = count_entries(path);
		d = opendir(path);
		while (d && (de = readdir(d))) {
			char g[PATH_MAX];

			if (de->d_name[0] == '.' || snprintf(g, sizeof(g), "%s/%s", path, de->d_name) >=
							    (int)sizeof(g))
				continue;
			if (p2pio_sysfs_read_str(g, "type", type, sizeof(type)) == 0 &&
			    strcmp(type, "identity") == 0)
				st->passthrough = true;
		}
		if (d)
			closedir(d);
	}
	read_cmdline_iommu(sysfs, st);
	if (!st->enabled && !st->groups)
		snprintf(st->summary, sizeof(st->summary),
			 "no IOMMU: devices use physical addresses, P2P needs no IOMMU mapping");
	else if (st->passthrough)
		snprintf(st->summary, sizeof(st->summary),
			 "IOMMU in passthrough (identity) mode: P2P addresses are not translated");
	else
		snprintf(st->summary, sizeof(st->summary),
			 "IOMMU translating DMA (%d groups): P2P DMA goes through IOMMU mappings; "
			 "iommu=pt avoids that",
			 st->groups);
}

static int scan_pci(const char *sysfs, struct p2pio_topo *t, struct p2pio_error *err)
{
	char path[PATH_MAX];
	struct pci_access *a;
	struct pci_dev *d;
	jmp_buf jb;
	int ret = 0;

	if (p2pio_path_join(path, sizeof(path), sysfs, "bus/pci") || access(path, F_OK))
		return 0; /* no PCI bus at all: an empty topology */
	a = pci_alloc();
	if (!a)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "pci_alloc failed");
	a->method = PCI_ACCESS_SYS_BUS_PCI;
	a->error = pci_fatal;
	a->warning = pci_quiet;
	a->debug = pci_quiet;
	pci_set_param(a, "sysfs.path", path);
	pci_fatal_jmp = &jb;
	if (setjmp(jb)) {
		pci_fatal_jmp = NULL;
		return p2pio_set_error(err, -EIO, P2PIO_NO_OFFSET, "libpci: %s", pci_fatal_msg);
	}
	pci_init(a);
	pci_scan_bus(a);
	for (d = a->devices; d; d = d->next) {
		struct p2pio_pci_dev pd;
		char name[128];

		memset(&pd, 0, sizeof(pd));
		pci_fill_info(d, PCI_FILL_IDENT | PCI_FILL_CLASS | PCI_FILL_CLASS_EXT | PCI_FILL_CAPS |
					 PCI_FILL_EXT_CAPS | PCI_FILL_NUMA_NODE);
		snprintf(pd.addr, sizeof(pd.addr), "%04x:%02x:%02x.%x", d->domain & 0xffff, d->bus,
			 d->dev, d->func);
		pd.vendor = d->vendor_id;
		pd.device = d->device_id;
		pd.class = ((uint32_t)d->device_class << 8) | d->prog_if;
		pd.numa_node = d->numa_node;
		if (pci_lookup_name(a, name, sizeof(name), PCI_LOOKUP_VENDOR | PCI_LOOKUP_DEVICE,
				    d->vendor_id, d->device_id))
			snprintf(pd.name, sizeof(pd.name), "%s", name);
		read_pcie(d, &pd);
		pd.iommu_group = read_iommu_group(sysfs, pd.addr);
		read_chain(sysfs, &pd);
		ret = push(&t->devs, &t->ndevs, &pd);
		if (!ret && pd.vendor == PCI_VENDOR_NVIDIA && (pd.class >> 16) == 0x03)
			ret = push(&t->gpus, &t->ngpus, &pd);
		if (!ret && pd.class == PCI_CLASS_NVME)
			ret = push(&t->nvmes, &t->nnvmes, &pd);
		if (ret) {
			p2pio_set_error(err, ret, P2PIO_NO_OFFSET, "out of memory");
			break;
		}
	}
	pci_fatal_jmp = NULL;
	pci_cleanup(a);
	return ret;
}

static int cmp_addr(const void *a, const void *b)
{
	return strcmp(((const struct p2pio_pci_dev *)a)->addr, ((const struct p2pio_pci_dev *)b)->addr);
}

int p2pio_topo_scan(const char *sysfs, struct p2pio_topo **out, struct p2pio_error *err)
{
	struct p2pio_topo *t = calloc(1, sizeof(*t));
	int ret;

	*out = NULL;
	if (!t)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	ret = scan_pci(sysfs, t, err);
	if (ret) {
		p2pio_topo_free(t);
		return ret;
	}
	/* libpci lists functions in sysfs directory order; people read them by address. */
	if (t->ngpus)
		qsort(t->gpus, t->ngpus, sizeof(*t->gpus), cmp_addr);
	if (t->nnvmes)
		qsort(t->nvmes, t->nnvmes, sizeof(*t->nvmes), cmp_addr);
	read_iommu(sysfs, &t->iommu);
	*out = t;
	return 0;
}

void p2pio_topo_free(struct p2pio_topo *topo)
{
	if (!topo)
		return;
	free(topo->devs);
	free(topo->gpus);
	free(topo->nvmes);
	free(topo);
}

const struct p2pio_pci_dev *p2pio_topo_gpus(const struct p2pio_topo *topo, size_t *count)
{
	*count = topo->ngpus;
	return topo->gpus;
}

const struct p2pio_pci_dev *p2pio_topo_nvmes(const struct p2pio_topo *topo, size_t *count)
{
	*count = topo->nnvmes;
	return topo->nvmes;
}

const struct p2pio_iommu_state *p2pio_topo_iommu(const struct p2pio_topo *topo)
{
	return &topo->iommu;
}

const struct p2pio_pci_dev *p2pio_topo_find(const struct p2pio_topo *topo, const char *bus_id)
{
	char want[16];
	size_t i;

	if (!bus_id || !normalise_addr(bus_id, want))
		return NULL;
	for (i = 0; i < topo->ndevs; i++)
		if (strcmp(topo->devs[i].addr, want) == 0)
			return &topo->devs[i];
	return NULL;
}

#define CHAIN_MAX 32

/* @d and its bridges up to the host bridge; returns the length. */
static size_t chain_of(const struct p2pio_topo *t, const struct p2pio_pci_dev *d,
		       const struct p2pio_pci_dev **chain)
{
	size_t n = 0;

	while (d && n < CHAIN_MAX) {
		chain[n++] = d;
		d = d->parent[0] ? p2pio_topo_find(t, d->parent) : NULL;
	}
	return n;
}

static bool is_switch_port(const struct p2pio_pci_dev *d)
{
	return d->port_type == P2PIO_PCI_PORT_UPSTREAM || d->port_type == P2PIO_PCI_PORT_DOWNSTREAM;
}

static const char *gen_speed(unsigned int gen)
{
	static const char *const s[] = { "?", "2.5", "5", "8", "16", "32", "64" };

	return gen < P2PIO_ARRAY_SIZE(s) ? s[gen] : "?";
}

/* Looks at chain[0 .. upto) for the slowest link and an ACS redirect. */
static void walk_half(const struct p2pio_pci_dev **chain, size_t upto, struct p2pio_p2p_verdict *v)
{
	size_t i;

	for (i = 0; i < upto; i++) {
		const struct p2pio_pci_dev *d = chain[i];
		double gbps = p2pio_pci_link_gbps(d->link.gen, d->link.width);

		if (gbps > 0 && (v->slowest_gbps == 0 || gbps < v->slowest_gbps)) {
			v->slowest_gbps = gbps;
			v->slowest_link = d->link;
			snprintf(v->slowest, sizeof(v->slowest), "%s", d->addr);
		}
		/* ACS redirect on a bridge port sends peer requests up to the root complex. */
		if (i > 0 && !v->acs_bridge[0] && d->has_acs &&
		    (d->acs_ctrl & (PCI_ACS_CTRL_REQ_RED | PCI_ACS_CTRL_CMPLT_RED)))
			snprintf(v->acs_bridge, sizeof(v->acs_bridge), "%s", d->addr);
	}
}

static void append_path(struct p2pio_p2p_verdict *v, const struct p2pio_pci_dev **gc, size_t gu,
			const struct p2pio_pci_dev **nc, size_t nu, const char *middle)
{
	size_t len = 0, i;

	for (i = 0; i < gu && len < sizeof(v->path); i++)
		len += (size_t)snprintf(v->path + len, sizeof(v->path) - len, "%s > ", gc[i]->addr);
	if (len < sizeof(v->path))
		len += (size_t)snprintf(v->path + len, sizeof(v->path) - len, "%s", middle);
	for (i = nu; i-- > 0 && len < sizeof(v->path);)
		len += (size_t)snprintf(v->path + len, sizeof(v->path) - len, " < %s", nc[i]->addr);
}

int p2pio_topo_verdict(const struct p2pio_topo *topo, const char *gpu, const char *nvme,
		       struct p2pio_p2p_verdict *v)
{
	const struct p2pio_pci_dev *g = p2pio_topo_find(topo, gpu), *n = p2pio_topo_find(topo, nvme);
	const struct p2pio_pci_dev *gc[CHAIN_MAX], *nc[CHAIN_MAX];
	size_t gl, nl, gi, ni = 0, len;
	bool found = false;

	memset(v, 0, sizeof(*v));
	v->kind = P2PIO_P2P_UNKNOWN;
	if (!g || !n) {
		snprintf(v->text, sizeof(v->text), "%s %s not found on the PCI bus",
			 !g ? "GPU" : "NVMe controller", !g ? (gpu ? gpu : "(none)") : nvme);
		return -ENODEV;
	}
	gl = chain_of(topo, g, gc);
	nl = chain_of(topo, n, nc);
	for (gi = 0; gi < gl && !found; gi++)
		for (ni = 0; ni < nl; ni++)
			if (gc[gi] == nc[ni]) {
				found = true;
				break;
			}
	if (found) {
		const struct p2pio_pci_dev *c = gc[--gi];

		snprintf(v->common, sizeof(v->common), "%s", c->addr);
		/* Links strictly below the common bridge carry the traffic; its own does not. */
		walk_half(gc, gi, v);
		walk_half(nc, ni, v);
		append_path(v, gc, gi, nc, ni, c->addr);
		if (is_switch_port(c) || c->port_type == P2PIO_PCI_PORT_NONE)
			v->kind = v->acs_bridge[0] ? P2PIO_P2P_ACS_REDIRECT : P2PIO_P2P_SAME_SWITCH;
		else
			v->kind = P2PIO_P2P_HOST_BRIDGE;
	} else {
		walk_half(gc, gl, v);
		walk_half(nc, nl, v);
		append_path(v, gc, gl, nc, nl, g->host_bridge[0] ? g->host_bridge : "?");
		/* Already through the root complex: ACS on the way changes nothing. */
		v->acs_bridge[0] = '\0';
		if (strcmp(g->host_bridge, n->host_bridge) == 0)
			v->kind = P2PIO_P2P_HOST_BRIDGE;
		else
			v->kind = P2PIO_P2P_CROSS_HOST;
	}

	switch (v->kind) {
	case P2PIO_P2P_SAME_SWITCH:
		v->good = true;
		len = (size_t)snprintf(v->text, sizeof(v->text),
				       "same PCIe switch (common bridge %s): P2P good", v->common);
		break;
	case P2PIO_P2P_ACS_REDIRECT:
		len = (size_t)snprintf(v->text, sizeof(v->text),
				       "ACS redirect enabled on bridge %s: P2P traffic goes through "
				       "the root complex",
				       v->acs_bridge);
		break;
	case P2PIO_P2P_HOST_BRIDGE:
		len = (size_t)snprintf(v->text, sizeof(v->text),
				       "through the root complex (%s): platform-dependent, usually "
				       "works on recent server CPUs",
				       g->host_bridge[0] ? g->host_bridge : "host bridge");
		break;
	default:
		len = (size_t)snprintf(v->text, sizeof(v->text),
				       "different host bridges (%s, %s): P2P crosses the CPU "
				       "interconnect, often slow or unsupported",
				       g->host_bridge, n->host_bridge);
		break;
	}
	if (v->slowest_gbps > 0 && len < sizeof(v->text))
		snprintf(v->text + len, sizeof(v->text) - len,
			 "; slowest link %s Gen%u x%u (%s GT/s, %.1f GB/s)", v->slowest,
			 v->slowest_link.gen, v->slowest_link.width, gen_speed(v->slowest_link.gen),
			 v->slowest_gbps);
	return 0;
}
