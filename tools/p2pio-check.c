// SPDX-License-Identifier: MIT
/*
 * p2pio-check - can this machine read files peer to peer into the GPU, and if not, why?
 * One screen for an administrator: the kernel module and its ABI, the NVIDIA driver and
 * whether it is the open kernel module, GPU and NVMe PCIe topology with a verdict per
 * pair, the IOMMU; for a file: its file system, device, extents, and the path AUTO picks.
 *
 * Exit status: 0 P2P usable, 1 not usable (the bounce path will be used), 2 bad command
 * line, 3 error (as every p2pio tool: tools/cli.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/types.h>

#include "p2pio.h"
#include "p2pio_ioctl.h"

#include "cli.h"

#define EXIT_USABLE CLI_EXIT_OK
#define EXIT_NOT_USABLE CLI_EXIT_FAIL

struct module_state {
	bool present;
	bool opened;
	int open_errno;
	bool abi_ok;
	struct p2pio_version ver;
	char text[384];
};

struct driver_state {
	bool loaded;
	bool open_module;
	char version[32];
	char text[256];
};

struct file_state {
	const char *path;
	bool have_extents;
	struct p2pio_blockdev bd;
	char fstype[16];
	struct p2pio_frag_summary sum;
	uint64_t extents;
	bool extents_ok;
	char extents_text[256];
	bool have_path;
	struct p2pio_path_info info;
	char path_text[512];
};

/* Reasons P2P is not usable, gathered as the checks run. */
static char reasons[8][256];
static int nreasons;

static void add_reason(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void add_reason(const char *fmt, ...)
{
	va_list ap;

	if (nreasons == (int)(sizeof(reasons) / sizeof(reasons[0])))
		return;
	va_start(ap, fmt);
	vsnprintf(reasons[nreasons++], sizeof(reasons[0]), fmt, ap);
	va_end(ap);
}

static void check_module(struct module_state *m)
{
	int fd;

	m->present = access(P2PIO_DEVICE_PATH, F_OK) == 0;
	if (!m->present) {
		snprintf(m->text, sizeof(m->text),
			 "%s absent: the p2pio module is not loaded (insmod kmod/p2pio.ko)",
			 P2PIO_DEVICE_PATH);
		add_reason("kernel module not loaded");
		return;
	}
	fd = open(P2PIO_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		m->open_errno = errno;
		if (errno == EACCES || errno == EPERM)
			snprintf(m->text, sizeof(m->text),
				 "%s present but cannot be opened: %s (the node is 0660, group p2pio through kmod/60-p2pio.rules: add the user to that group)",
				 P2PIO_DEVICE_PATH, strerror(errno));
		else
			snprintf(m->text, sizeof(m->text), "%s present but cannot be opened: %s",
				 P2PIO_DEVICE_PATH, strerror(errno));
		add_reason("cannot open %s (%s)", P2PIO_DEVICE_PATH, strerror(m->open_errno));
		return;
	}
	m->opened = true;
	memset(&m->ver, 0, sizeof(m->ver));
	if (ioctl(fd, P2PIO_IOC_VERSION, &m->ver) < 0) {
		snprintf(m->text, sizeof(m->text), "version handshake failed: %s", strerror(errno));
		add_reason("module version handshake failed");
	} else if (m->ver.abi_version != P2PIO_ABI_VERSION) {
		snprintf(m->text, sizeof(m->text),
			 "loaded, ABI %u but this library speaks ABI %u: rebuild one of them",
			 m->ver.abi_version, P2PIO_ABI_VERSION);
		add_reason("module ABI %u, library ABI %u", m->ver.abi_version, P2PIO_ABI_VERSION);
	} else {
		m->abi_ok = true;
		snprintf(m->text, sizeof(m->text),
			 "loaded, ABI %u (matches the library); providers:%s%s",
			 m->ver.abi_version,
			 (m->ver.features & P2PIO_FEAT_PROVIDER_NVIDIA) ? " nvidia" : "",
			 (m->ver.features & P2PIO_FEAT_PROVIDER_PCIBAR) ? " pcibar" : "");
		if (!(m->ver.features & P2PIO_FEAT_PROVIDER_NVIDIA))
			add_reason("module built without the NVIDIA provider (no nv-p2p.h at build)");
		else if (geteuid() != 0)
			/* The module refuses callback pins to non-root (admin-guide.md). */
			snprintf(m->text + strlen(m->text), sizeof(m->text) - strlen(m->text),
				 "; GPU pins for this user: persistent only (pins with a free callback, the only kind MIG and vGPU grant, need CAP_SYS_ADMIN: there the module refuses with EPERM and libp2pio reads by bounce)");
	}
	close(fd);
}

static void check_driver(struct driver_state *d)
{
	char line[512], taint[32] = "";
	FILE *f = fopen("/proc/driver/nvidia/version", "re");
	const char *v;

	if (!f) {
		snprintf(d->text, sizeof(d->text),
			 "not loaded (/proc/driver/nvidia/version absent)");
		add_reason("NVIDIA driver not loaded");
		return;
	}
	d->loaded = true;
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	/* "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release ..." */
	d->open_module = strstr(line, "Open Kernel Module") != NULL;
	v = strstr(line, "  ");
	while (v && *v == ' ')
		v++;
	if (v)
		sscanf(v, "%31s", d->version);
	/* A proprietary module taints the kernel with P; the open one does not. */
	f = fopen("/sys/module/nvidia/taint", "re");
	if (f) {
		if (fgets(taint, sizeof(taint), f) && strchr(taint, 'P'))
			d->open_module = false;
		fclose(f);
	}
	snprintf(d->text, sizeof(d->text), "%s, %s", d->version[0] ? d->version : "unknown version",
		 d->open_module ? "open kernel module" :
				  "proprietary kernel module (p2pio needs the open one)");
	if (!d->open_module)
		add_reason("NVIDIA's proprietary kernel module: the GPL-only P2P API needs the open one");
}

static void link_str(const struct p2pio_pci_link *l, char *buf, size_t sz)
{
	if (!l->gen)
		snprintf(buf, sz, "link unknown");
	else
		snprintf(buf, sz, "Gen%u x%u of Gen%u x%u", l->gen, l->width, l->max_gen, l->max_width);
}

static void check_file(struct p2pio_ctx *ctx, struct file_state *fs, bool want_p2p)
{
	struct p2pio_extents *ext = NULL;
	struct p2pio_file *file = NULL;
	struct p2pio_error err = { 0 };
	int ret;

	ret = p2pio_extents_open_path(fs->path, P2PIO_EXTENTS_SYNC, &ext, &err);
	if (ret == 0) {
		fs->have_extents = true;
		fs->bd = *p2pio_extents_device(ext);
		snprintf(fs->fstype, sizeof(fs->fstype), "%s", p2pio_extents_fstype(ext));
		p2pio_extents_summary(ext, 0, UINT64_MAX, &fs->sum);
		fs->extents = p2pio_extents_count(ext);
		fs->extents_ok = fs->sum.not_raw_flags == 0;
		if (fs->extents_ok)
			snprintf(fs->extents_text, sizeof(fs->extents_text),
				 "qualify: %llu runs on disk, largest %.1f MiB, %.1f runs per GiB",
				 (unsigned long long)fs->sum.runs,
				 (double)fs->sum.largest_run / (1 << 20), fs->sum.runs_per_gib);
		else
			snprintf(fs->extents_text, sizeof(fs->extents_text),
				 "do not qualify: %s", p2pio_extent_flag_reason(fs->sum.not_raw_flags));
		p2pio_extents_free(ext);
		if (!fs->extents_ok)
			add_reason("file extents: %s", p2pio_extent_flag_reason(fs->sum.not_raw_flags));
		if (fs->bd.why_not[0])
			add_reason("%s", fs->bd.why_not);
		if (strcmp(fs->fstype, "ext4") && strcmp(fs->fstype, "xfs"))
			add_reason("file system %s: P2P reads ext4 and xfs", fs->fstype);
	} else {
		snprintf(fs->extents_text, sizeof(fs->extents_text), "unknown: %.200s", err.msg);
		add_reason("no extents for the file (%s)", err.msg);
	}

	if (!ctx) {
		snprintf(fs->path_text, sizeof(fs->path_text), "unknown: no library context");
		return;
	}
	ret = p2pio_file_open(ctx, fs->path, 0, &file, &err);
	if (ret) {
		snprintf(fs->path_text, sizeof(fs->path_text), "cannot open through the library: %s",
			 err.msg[0] ? err.msg : p2pio_strerror(ret));
		return;
	}
	memset(&fs->info, 0, sizeof(fs->info));
	fs->info.size = sizeof(fs->info);
	if (p2pio_path_info(file, &fs->info) == 0) {
		int p;
		size_t len;

		fs->have_path = true;
		len = (size_t)snprintf(fs->path_text, sizeof(fs->path_text), "%s: %s",
				       p2pio_path_name(fs->info.path), fs->info.why);
		for (p = P2PIO_PATH_P2P; p < (int)fs->info.path && len < sizeof(fs->path_text); p++)
			if (fs->info.why_not[p][0])
				len += (size_t)snprintf(fs->path_text + len, sizeof(fs->path_text) - len,
							"; not %s: %s", p2pio_path_name(p),
							fs->info.why_not[p]);
		/* the module's refusal, with its errno, as the library recorded it */
		if (want_p2p && fs->info.path != P2PIO_PATH_P2P)
			add_reason("AUTO picks %s for this file: %.180s",
				   p2pio_path_name(fs->info.path),
				   fs->info.why_not[P2PIO_PATH_P2P][0] ?
				   fs->info.why_not[P2PIO_PATH_P2P] : fs->info.why);
	}
	p2pio_file_close(file);
}

static void json_dev(FILE *f, const struct p2pio_pci_dev *d)
{
	fprintf(f, "{\"addr\":");
	cli_json_str(f, d->addr);
	fprintf(f, ",\"vendor\":%u,\"device\":%u,\"class\":%u,\"name\":", d->vendor, d->device,
		d->class);
	cli_json_str(f, d->name);
	fprintf(f, ",\"link\":{\"gen\":%u,\"width\":%u,\"max_gen\":%u,\"max_width\":%u}",
		d->link.gen, d->link.width, d->link.max_gen, d->link.max_width);
	fprintf(f, ",\"iommu_group\":%d,\"numa_node\":%d}", d->iommu_group, d->numa_node);
}

/*
 * The engine's defaults on this machine and where each comes from (Documentation/engine.md
 * gives the sweep behind them): BOUNCE rings and POSIX readers from the online CPUs,
 * staging from the rings, queue depth and chunk; P2P's plain bytes at the device from
 * queue depth and chunk.
 */
static void engine_text(const struct p2pio_ctx *ctx, char *buf, size_t len, bool json)
{
	struct p2pio_ctx_opts o = { .size = sizeof(o) };
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (!ctx || p2pio_ctx_get_opts(ctx, &o)) {
		snprintf(buf, len, json ? "null" : "unknown: no library context");
		return;
	}
	if (json)
		snprintf(buf, len, "{\"threads\":%u,\"posix_threads\":%u,\"online_cpus\":%ld,"
			 "\"queue_depth\":%u,\"chunk\":%llu,\"staging\":%llu,"
			 "\"copy_wait\":\"blocking\",\"p2p_plain_bytes\":%llu}",
			 o.threads, o.posix_threads, ncpu, o.queue_depth,
			 (unsigned long long)o.chunk_size,
			 (unsigned long long)o.staging_bytes,
			 (unsigned long long)o.queue_depth * o.chunk_size);
	else
		snprintf(buf, len, "%u BOUNCE rings (three per four of %ld online CPUs, kept within "
			 "4..16), %u POSIX readers (one per online CPU, within 4..16), queue depth "
			 "%u (%u reads per ring; fewer for a file on a disk that says it is "
			 "rotational: its AUTO path says how many), %llu KiB chunks, %llu MiB "
			 "staging (pinned with a GPU; each ring's reads and a copy in flight), copy "
			 "waits block; P2P sends reads not marked urgent until %llu MiB are at the "
			 "device (queue depth x chunk) and holds the rest",
			 o.threads, ncpu, o.posix_threads, o.queue_depth,
			 (o.queue_depth + o.threads - 1) / o.threads,
			 (unsigned long long)(o.chunk_size >> 10),
			 (unsigned long long)(o.staging_bytes >> 20),
			 (unsigned long long)(o.queue_depth * o.chunk_size) >> 20);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: p2pio-check [--json] [--gpu BUSID] [--sysfs DIR] [FILE]\n"
		   "  Says whether this machine can read FILE (or any file) peer to peer\n"
		   "  from NVMe into GPU memory, and which path the library will use.\n"
		   "  exit status: 0 P2P usable, 1 not usable (bounce path), 2 bad command\n"
		   "  line, 3 error\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },   { "gpu", required_argument, NULL, 'g' },
		{ "sysfs", required_argument, NULL, 's' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sysfs = "/sys", *want_gpu = NULL;
	struct module_state mod = { 0 };
	struct driver_state drv = { 0 };
	struct file_state fs = { 0 };
	struct p2pio_p2p_verdict verdicts[16];
	const struct p2pio_pci_dev *gpus, *nvmes, *g;
	struct p2pio_ctx_opts copts;
	struct p2pio_ctx *ctx = NULL;
	char eng[512];
	struct p2pio_topo *topo = NULL;
	struct p2pio_error err = { 0 };
	size_t ngpus = 0, nnvmes = 0, nv = 0, i, j;
	bool json = false, any_good = false, usable;
	char lk[64];
	int c, ret;
	FILE *o = stdout;

	while ((c = getopt_long(argc, argv, "jg:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'g':
			want_gpu = optarg;
			break;
		case 's':
			sysfs = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (optind < argc) {
		struct stat st;

		fs.path = argv[optind];
		if (stat(fs.path, &st) < 0 || !S_ISREG(st.st_mode)) {
			fprintf(stderr, "p2pio-check: %s: %s\n", fs.path,
				errno ? strerror(errno) : "not a regular file");
			return CLI_EXIT_ERROR;
		}
	}

	check_module(&mod);
	check_driver(&drv);
	ret = p2pio_topo_scan(sysfs, &topo, &err);
	if (ret) {
		fprintf(stderr, "p2pio-check: PCI scan: %s\n", err.msg);
		return CLI_EXIT_ERROR;
	}
	gpus = p2pio_topo_gpus(topo, &ngpus);
	nvmes = p2pio_topo_nvmes(topo, &nnvmes);
	if (want_gpu) {
		g = p2pio_topo_find(topo, want_gpu);
		if (!g) {
			fprintf(stderr, "p2pio-check: GPU %s not found on the PCI bus\n", want_gpu);
			p2pio_topo_free(topo);
			return CLI_EXIT_ERROR;
		}
		gpus = g;
		ngpus = 1;
	}
	if (!ngpus)
		add_reason("no NVIDIA GPU on the PCI bus");
	if (!nnvmes)
		add_reason("no NVMe controller on the PCI bus");
	for (i = 0; i < ngpus; i++)
		for (j = 0; j < nnvmes && nv < sizeof(verdicts) / sizeof(verdicts[0]); j++) {
			p2pio_topo_verdict(topo, gpus[i].addr, nvmes[j].addr, &verdicts[nv]);
			any_good |= verdicts[nv].kind <= P2PIO_P2P_HOST_BRIDGE;
			nv++;
		}
	if (ngpus && nnvmes && !any_good)
		add_reason("no GPU/NVMe pair has a usable P2P route");

	p2pio_ctx_opts_init(&copts);
	ret = p2pio_ctx_create(&copts, &ctx, &err);
	if (ret)
		ctx = NULL;
	if (fs.path)
		check_file(ctx, &fs, nreasons == 0);
	usable = nreasons == 0;

	if (json) {
		fprintf(o, "{\"library\":");
		cli_json_str(o, p2pio_version());
		fprintf(o, ",\"p2p_usable\":%s,\"module\":{\"present\":%s,\"abi\":%u,\"library_abi\":%u,"
			   "\"abi_ok\":%s,\"features\":%llu,\"text\":",
			usable ? "true" : "false", mod.present ? "true" : "false",
			mod.ver.abi_version, P2PIO_ABI_VERSION, mod.abi_ok ? "true" : "false",
			(unsigned long long)mod.ver.features);
		cli_json_str(o, mod.text);
		fprintf(o, "},\"nvidia\":{\"loaded\":%s,\"open_module\":%s,\"version\":",
			drv.loaded ? "true" : "false", drv.open_module ? "true" : "false");
		cli_json_str(o, drv.version);
		fprintf(o, "},\"gpus\":[");
		for (i = 0; i < ngpus; i++) {
			fprintf(o, "%s", i ? "," : "");
			json_dev(o, &gpus[i]);
		}
		fprintf(o, "],\"nvme\":[");
		for (i = 0; i < nnvmes; i++) {
			fprintf(o, "%s", i ? "," : "");
			json_dev(o, &nvmes[i]);
		}
		fprintf(o, "],\"pairs\":[");
		for (i = 0; i < nv; i++) {
			fprintf(o, "%s{\"kind\":%d,\"good\":%s,\"common\":", i ? "," : "",
				verdicts[i].kind, verdicts[i].good ? "true" : "false");
			cli_json_str(o, verdicts[i].common);
			fprintf(o, ",\"path\":");
			cli_json_str(o, verdicts[i].path);
			fprintf(o, ",\"slowest_gbps\":%.3f,\"text\":", verdicts[i].slowest_gbps);
			cli_json_str(o, verdicts[i].text);
			fprintf(o, "}");
		}
		fprintf(o, "],\"iommu\":{\"enabled\":%s,\"groups\":%d,\"passthrough\":%s,\"text\":",
			p2pio_topo_iommu(topo)->enabled ? "true" : "false",
			p2pio_topo_iommu(topo)->groups,
			p2pio_topo_iommu(topo)->passthrough ? "true" : "false");
		cli_json_str(o, p2pio_topo_iommu(topo)->summary);
		engine_text(ctx, eng, sizeof(eng), true);
		fprintf(o, "},\"engine\":%s", eng);
		if (fs.path) {
			fprintf(o, ",\"file\":{\"path\":");
			cli_json_str(o, fs.path);
			fprintf(o, ",\"fstype\":");
			cli_json_str(o, fs.fstype);
			fprintf(o, ",\"device\":");
			cli_json_str(o, fs.bd.name);
			fprintf(o, ",\"disk\":");
			cli_json_str(o, fs.bd.disk);
			fprintf(o, ",\"nvme\":%s,\"nsid\":%u,\"lba_size\":%u,\"max_hw_bytes\":%llu,"
				   "\"device_why_not\":",
				fs.bd.is_nvme ? "true" : "false", fs.bd.nsid, fs.bd.lba_size,
				(unsigned long long)fs.bd.max_hw_bytes);
			cli_json_str(o, fs.bd.why_not);
			fprintf(o, ",\"extents\":%llu,\"runs\":%llu,\"extents_ok\":%s,\"extents_text\":",
				(unsigned long long)fs.extents, (unsigned long long)fs.sum.runs,
				fs.extents_ok ? "true" : "false");
			cli_json_str(o, fs.extents_text);
			fprintf(o, ",\"auto_path\":");
			cli_json_str(o, fs.have_path ? p2pio_path_name(fs.info.path) : "");
			fprintf(o, ",\"auto_text\":");
			cli_json_str(o, fs.path_text);
			/* Reads in flight the library holds this file's BOUNCE reads to (0: none). */
			fprintf(o, ",\"max_in_flight\":%u}", fs.have_path ? fs.info.max_in_flight : 0);
		}
		fprintf(o, ",\"reasons\":[");
		for (i = 0; i < (size_t)nreasons; i++) {
			fprintf(o, "%s", i ? "," : "");
			cli_json_str(o, reasons[i]);
		}
		fprintf(o, "]}\n");
	} else {
		fprintf(o, "p2pio-check (libp2pio %s)\n", p2pio_version());
		fprintf(o, "  module        %s\n", mod.text);
		fprintf(o, "  NVIDIA driver %s\n", drv.text);
		if (!ngpus)
			fprintf(o, "  GPU           none found on the PCI bus\n");
		for (i = 0; i < ngpus; i++) {
			link_str(&gpus[i].link, lk, sizeof(lk));
			fprintf(o, "  GPU           %s %s (%s)\n", gpus[i].addr, gpus[i].name, lk);
		}
		if (!nnvmes)
			fprintf(o, "  NVMe          none found on the PCI bus\n");
		for (i = 0; i < nnvmes; i++) {
			link_str(&nvmes[i].link, lk, sizeof(lk));
			fprintf(o, "  NVMe          %s %s (%s)\n", nvmes[i].addr, nvmes[i].name, lk);
		}
		for (i = 0; i < nv; i++) {
			fprintf(o, "  P2P route     %s\n", verdicts[i].path);
			fprintf(o, "                %s\n", verdicts[i].text);
		}
		fprintf(o, "  IOMMU         %s%s%s\n", p2pio_topo_iommu(topo)->summary,
			p2pio_topo_iommu(topo)->cmdline[0] ? "; cmdline: " : "",
			p2pio_topo_iommu(topo)->cmdline);
		engine_text(ctx, eng, sizeof(eng), false);
		fprintf(o, "  engine        %s\n", eng);
		if (fs.path) {
			fprintf(o, "  file          %s\n", fs.path);
			if (fs.bd.name[0])
				fprintf(o, "    on          %s on %s (disk %s%s, LBA %u B, max request %llu KiB%s%s)\n",
					fs.fstype, fs.bd.name, fs.bd.disk,
					fs.bd.is_nvme ? ", NVMe" : "", fs.bd.lba_size,
					(unsigned long long)(fs.bd.max_hw_bytes >> 10),
					fs.bd.model[0] ? ", " : "", fs.bd.model);
			else
				fprintf(o, "    on          %s (no block device)\n", fs.fstype[0] ? fs.fstype : "?");
			if (fs.bd.why_not[0])
				fprintf(o, "    device      %s\n", fs.bd.why_not);
			fprintf(o, "    extents     %s\n", fs.extents_text);
			fprintf(o, "    AUTO path   %s\n", fs.path_text);
		}
		if (usable)
			fprintf(o, "  verdict       P2P usable\n");
		else {
			fprintf(o, "  verdict       P2P not usable; the bounce path will be used:\n");
			for (i = 0; i < (size_t)nreasons; i++)
				fprintf(o, "                - %s\n", reasons[i]);
		}
	}
	if (ctx)
		p2pio_ctx_destroy(ctx);
	p2pio_topo_free(topo);
	return usable ? EXIT_USABLE : EXIT_NOT_USABLE;
}
