// SPDX-License-Identifier: MIT
/*
 * p2pio-bench - throughput, latency and CPU cost of reading a file into GPU (or host)
 * memory: libp2pio's paths beside the ceilings (storage, link) and the peers (naive
 * pread + cuMemcpy, mmap + cuMemcpy, cuFile, host registration of the page cache), all
 * measured by this one tool in one run, cold and warm, so that only ratios are reported.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "p2pio.h"

#define MAX_LIST 16

struct options {
	const char *path;
	uint64_t generate;
	const char *modes[32];
	size_t nmodes;
	uint64_t sizes[MAX_LIST];
	size_t nsizes;
	unsigned int depths[MAX_LIST];
	size_t ndepths;
	unsigned int threads;
	int caches; /* bit 0: cold, bit 1: warm */
	uint64_t bytes;
	double duration;
	int device; /* -1 host, -2 default */
	bool json;
	const char *plot;
	unsigned int lib_depth, lib_threads;
	uint64_t lib_chunk;
	uint32_t lib_flags;
};

/* A comma-separated list of sizes (or, with @as_uint, small numbers). */
static int parse_list(const char *s, uint64_t *out, size_t *n)
{
	char buf[256], *tok, *save;

	snprintf(buf, sizeof(buf), "%s", s);
	*n = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (*n == MAX_LIST || cli_parse_size(tok, &out[*n]) || !out[*n])
			return -EINVAL;
		(*n)++;
	}
	return *n ? 0 : -EINVAL;
}

static bool known_mode(const char *m)
{
	size_t i;

	for (i = 0; bench_mode_names[i]; i++)
		if (!strcmp(bench_mode_names[i], m))
			return true;
	return false;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: p2pio-bench [options] FILE\n"
		"  --generate SIZE   first write FILE with a pattern (kept if it has that size),\n"
		"                    --threads writers\n"
		"  --modes LIST      comma list of: direct buffered link p2p bounce posix auto naive\n"
		"                    mmap hostreg cufile (default: all; GPU modes skip without a GPU)\n"
		"  --size LIST       I/O sizes, e.g. 1M,4M,16M (default 16M)\n"
		"  --depth LIST      queue depths, e.g. 1,4,16 (default 16)\n"
		"  --threads N       reader threads where a mode has them (default 4)\n"
		"  --cache MODE      cold (drop caches first), warm, or both (default)\n"
		"  --bytes SIZE      bytes per run from the start of FILE (default: all of it)\n"
		"  --duration SEC    stop each run after SEC seconds\n"
		"  --device N|host   CUDA device, or host memory (default: device 0 if any)\n"
		"  --json            one JSON document instead of result lines\n"
		"  --plot FILE.svg   a line chart of the sweep\n"
		"library modes (p2p bounce posix auto) use the library's defaults unless told:\n"
		"  --lib-depth N     context queue depth (reads in flight per path)\n"
		"  --lib-threads N   context threads (POSIX readers, BOUNCE submitters)\n"
		"  --chunk SIZE      context chunk size (per read command and staging buffer)\n"
		"  --bounce-async    BOUNCE reads through io_uring workers (IOSQE_ASYNC)\n");
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option lo[] = {
		{ "generate", required_argument, NULL, 'g' }, { "modes", required_argument, NULL, 'm' },
		{ "size", required_argument, NULL, 's' },     { "depth", required_argument, NULL, 'd' },
		{ "threads", required_argument, NULL, 't' },  { "cache", required_argument, NULL, 'c' },
		{ "bytes", required_argument, NULL, 'b' },    { "duration", required_argument, NULL, 'D' },
		{ "device", required_argument, NULL, 'G' },   { "json", no_argument, NULL, 'j' },
		{ "plot", required_argument, NULL, 'p' },     { "help", no_argument, NULL, 'h' },
		{ "lib-depth", required_argument, NULL, 'Q' },
		{ "lib-threads", required_argument, NULL, 'T' },
		{ "chunk", required_argument, NULL, 'C' },
		{ "bounce-async", no_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 },
	};
	static char modebuf[512];
	uint64_t list[MAX_LIST], v;
	char *tok, *save, *end;
	size_t i;
	int c;

	o->sizes[0] = 16ull << 20;
	o->nsizes = 1;
	o->depths[0] = 16;
	o->ndepths = 1;
	o->threads = 4;
	o->caches = 3;
	o->device = -2;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'g':
			if (cli_parse_size(optarg, &o->generate) || !o->generate)
				return fprintf(stderr, "p2pio-bench: bad size '%s'\n", optarg), -1;
			break;
		case 'm':
			snprintf(modebuf, sizeof(modebuf), "%s", optarg);
			o->nmodes = 0;
			for (tok = strtok_r(modebuf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				if (!known_mode(tok) || o->nmodes == 32)
					return fprintf(stderr, "p2pio-bench: unknown mode '%s'\n", tok), -1;
				o->modes[o->nmodes++] = tok;
			}
			break;
		case 's':
			if (parse_list(optarg, o->sizes, &o->nsizes))
				return fprintf(stderr, "p2pio-bench: bad size list '%s'\n", optarg), -1;
			break;
		case 'd':
			if (parse_list(optarg, list, &o->ndepths))
				return fprintf(stderr, "p2pio-bench: bad depth list '%s'\n", optarg), -1;
			for (i = 0; i < o->ndepths; i++) {
				if (list[i] > 4096)
					return fprintf(stderr, "p2pio-bench: depth %llu too large\n",
						       (unsigned long long)list[i]), -1;
				o->depths[i] = (unsigned int)list[i];
			}
			break;
		case 't':
			if (cli_parse_size(optarg, &v) || !v || v > 256)
				return fprintf(stderr, "p2pio-bench: bad thread count '%s'\n", optarg), -1;
			o->threads = (unsigned int)v;
			break;
		case 'c':
			o->caches = !strcmp(optarg, "cold") ? 1 : !strcmp(optarg, "warm") ? 2 :
				    !strcmp(optarg, "both") ? 3 : 0;
			if (!o->caches)
				return fprintf(stderr, "p2pio-bench: --cache cold|warm|both\n"), -1;
			break;
		case 'b':
			if (cli_parse_size(optarg, &o->bytes) || !o->bytes)
				return fprintf(stderr, "p2pio-bench: bad size '%s'\n", optarg), -1;
			break;
		case 'D':
			o->duration = strtod(optarg, &end);
			if (*end || o->duration <= 0)
				return fprintf(stderr, "p2pio-bench: bad duration '%s'\n", optarg), -1;
			break;
		case 'G':
			if (!strcmp(optarg, "host")) {
				o->device = -1;
			} else {
				if (cli_parse_size(optarg, &v) || v > 64)
					return fprintf(stderr, "p2pio-bench: bad device '%s'\n", optarg), -1;
				o->device = (int)v;
			}
			break;
		case 'j':
			o->json = true;
			break;
		case 'p':
			o->plot = optarg;
			break;
		case 'Q':
		case 'T':
			if (cli_parse_size(optarg, &v) || !v || v > 1024)
				return fprintf(stderr, "p2pio-bench: bad number '%s'\n", optarg), -1;
			*(c == 'Q' ? &o->lib_depth : &o->lib_threads) = (unsigned int)v;
			break;
		case 'C':
			if (cli_parse_size(optarg, &o->lib_chunk) || !o->lib_chunk)
				return fprintf(stderr, "p2pio-bench: bad size '%s'\n", optarg), -1;
			break;
		case 'A':
			o->lib_flags |= P2PIO_CTX_BOUNCE_ASYNC;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (argc - optind != 1) {
		usage(stderr);
		return -1;
	}
	o->path = argv[optind];
	if (!o->nmodes)
		for (i = 0; bench_mode_names[i]; i++)
			o->modes[o->nmodes++] = bench_mode_names[i];
	return 0;
}

struct gen_job {
	int fd;
	uint64_t start, end;
	uint64_t seed;
	int err;
};

/* Pseudo-random bytes, so that no layer can compress or deduplicate them. */
static void *gen_thread(void *arg)
{
	const size_t chunk = 8u << 20;
	struct gen_job *j = arg;
	uint64_t x = j->seed, off = j->start;
	uint64_t *buf = malloc(chunk);

	if (!buf) {
		j->err = -ENOMEM;
		return NULL;
	}
	while (off < j->end) {
		size_t i, n = j->end - off < chunk ? j->end - off : chunk;

		for (i = 0; i < chunk / 8; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[i] = x;
		}
		if (pwrite(j->fd, buf, n, (off_t)off) != (ssize_t)n) {
			j->err = -EIO;
			break;
		}
		off += n;
	}
	free(buf);
	return NULL;
}

/* Write @size pattern bytes to @path, one stripe per thread (zram compresses per writer). */
static int generate(const char *path, uint64_t size, unsigned int threads)
{
	struct gen_job jobs[256];
	pthread_t tids[256];
	uint64_t per = (size / threads + 4095) & ~4095ull;
	unsigned int i;
	struct stat st;
	int fd, ret = 0;

	if (stat(path, &st) == 0 && (uint64_t)st.st_size == size)
		return 0;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	for (i = 0; i < threads; i++) {
		jobs[i].fd = fd;
		jobs[i].start = (uint64_t)i * per < size ? (uint64_t)i * per : size;
		jobs[i].end = jobs[i].start + per < size ? jobs[i].start + per : size;
		jobs[i].seed = 0x9e3779b97f4a7c15ull * (i + 1);
		jobs[i].err = 0;
		if (pthread_create(&tids[i], NULL, gen_thread, &jobs[i])) {
			gen_thread(&jobs[i]);
			tids[i] = 0;
		}
	}
	for (i = 0; i < threads; i++) {
		if (tids[i])
			pthread_join(tids[i], NULL);
		if (jobs[i].err && !ret)
			ret = jobs[i].err;
	}
	if (fsync(fd) && !ret)
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	return ret;
}

/* Read the whole file once through the page cache. */
static void warm_up(const struct bench_params *base)
{
	struct bench_params p = *base;
	struct bench_result r;

	p.io_size = 16u << 20;
	p.depth = 1;
	p.bytes = 0;
	p.duration = 0;
	p.cold = false;
	bench_run("buffered", &p, &r);
}

struct best {
	double gibps, cpu;
	bool have;
};

static struct best best_of(const struct bench_result *rs, size_t n, const char *mode, bool cold)
{
	struct best b = { 0 };
	size_t i;

	for (i = 0; i < n; i++)
		if (!rs[i].err && rs[i].cold == cold && !strcmp(rs[i].mode, mode) &&
		    rs[i].gibps > b.gibps) {
			b.gibps = rs[i].gibps;
			b.cpu = rs[i].cpu_s_per_gib;
			b.have = true;
		}
	return b;
}

/* The ratios issue 4 asks for, from this run's results only. */
static void summarise(FILE *f, const struct bench_result *rs, size_t n, bool json)
{
	static const char *const lib[] = { "p2p", "bounce", "posix", "auto" };
	static const char *const peers[] = { "naive", "mmap", "cufile", "hostreg" };
	struct best link = best_of(rs, n, "link", true);
	struct best lw = best_of(rs, n, "link", false);
	int cold, k;
	bool first = true;

	if (lw.gibps > link.gibps)
		link = lw;
	if (json)
		fprintf(f, ",\"ratios\":[");
	for (cold = 1; cold >= 0; cold--) {
		struct best d = best_of(rs, n, "direct", cold), b = best_of(rs, n, "buffered", cold);
		struct best storage = d.gibps >= b.gibps ? d : b, lb = { 0 }, au;
		const char *lname = NULL;
		char line[1024];
		size_t len = 0;

		for (k = 0; k < 4; k++) {
			struct best x = best_of(rs, n, lib[k], cold);

			if (x.gibps > lb.gibps) {
				lb = x;
				lname = lib[k];
			}
		}
		if (!lb.have)
			continue;
		au = best_of(rs, n, "auto", cold);
		if (json) {
			fprintf(f, "%s{\"cache\":\"%s\",\"best\":\"%s\",\"best_gibps\":%.4f",
				first ? "" : ",", cold ? "cold" : "warm", lname, lb.gibps);
			if (storage.have)
				fprintf(f, ",\"best_over_storage\":%.4f", lb.gibps / storage.gibps);
			if (au.have && storage.have)
				fprintf(f, ",\"auto_over_storage\":%.4f", au.gibps / storage.gibps);
			if (link.have)
				fprintf(f, ",\"best_over_link\":%.4f", lb.gibps / link.gibps);
			for (k = 0; k < 4; k++) {
				struct best x = best_of(rs, n, peers[k], cold);

				if (x.have)
					fprintf(f, ",\"over_%s\":%.4f", peers[k], lb.gibps / x.gibps);
			}
			fprintf(f, "}");
			first = false;
			continue;
		}
		len += (size_t)snprintf(line + len, sizeof(line) - len, "ratio cache=%s best=%s",
					cold ? "cold" : "warm", lname);
		if (storage.have)
			len += (size_t)snprintf(line + len, sizeof(line) - len,
						" best/storage=%.3f (target 0.95)",
						lb.gibps / storage.gibps);
		if (au.have && storage.have)
			len += (size_t)snprintf(line + len, sizeof(line) - len, " auto/storage=%.3f",
						au.gibps / storage.gibps);
		if (link.have)
			len += (size_t)snprintf(line + len, sizeof(line) - len,
						" best/link=%.3f%s", lb.gibps / link.gibps,
						cold ? "" : " (target 0.8)");
		for (k = 0; k < 4; k++) {
			struct best x = best_of(rs, n, peers[k], cold);

			if (x.have && len < sizeof(line))
				len += (size_t)snprintf(line + len, sizeof(line) - len, " best/%s=%.2f",
							peers[k], lb.gibps / x.gibps);
		}
		fprintf(f, "%s\n", line);
	}
	if (json)
		fprintf(f, "]");
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct bench_params p = { 0 };
	struct bench_cuda cu;
	struct bench_result *rs = NULL;
	struct utsname un;
	size_t nrs = 0, cap, m, si, di;
	struct stat st;
	int cold, ret, status = 0;
	bool dropped_all = true;

	if (parse_args(argc, argv, &o))
		return 2;
	if (o.generate) {
		ret = generate(o.path, o.generate, o.threads);
		if (ret) {
			fprintf(stderr, "p2pio-bench: generating %s: %s\n", o.path, strerror(-ret));
			return 2;
		}
	}
	if (stat(o.path, &st) || !S_ISREG(st.st_mode) || st.st_size == 0) {
		fprintf(stderr, "p2pio-bench: %s: %s\n", o.path,
			errno ? strerror(errno) : "not a non-empty regular file");
		return 2;
	}
	p.path = o.path;
	p.file_size = (uint64_t)st.st_size;
	p.threads = o.threads;
	p.bytes = o.bytes;
	p.duration = o.duration;
	p.device = -1;
	p.lib_depth = o.lib_depth;
	p.lib_threads = o.lib_threads;
	p.lib_chunk = o.lib_chunk;
	p.lib_flags = o.lib_flags;
	p.cu = &cu;
	memset(&cu, 0, sizeof(cu));
	if (o.device != -1) {
		if (bench_cuda_init(&cu, o.device < 0 ? 0 : o.device)) {
			p.gpu = true;
			p.device = cu.device;
		} else if (o.device >= 0) {
			fprintf(stderr, "p2pio-bench: %s\n", cu.why);
			return 2;
		}
	} else {
		snprintf(cu.why, sizeof(cu.why), "--device host");
	}

	cap = o.nmodes * o.nsizes * o.ndepths * 2;
	rs = calloc(cap, sizeof(*rs));
	if (!rs)
		return 2;
	uname(&un);
	if (o.json)
	{
		printf("{\"tool\":\"p2pio-bench\",\"library\":\"%s\",\"kernel\":",
		       p2pio_version());
		cli_json_str(stdout, un.release);
		printf(",\"cpus\":%ld,\"file\":", sysconf(_SC_NPROCESSORS_ONLN));
		cli_json_str(stdout, o.path);
		printf(",\"file_size\":%llu,\"target\":\"%s\",\"results\":[",
		       (unsigned long long)p.file_size, p.gpu ? "gpu" : "host");
	}
	else
		printf("# p2pio-bench %s on %s, %ld CPUs; %s (%llu bytes) into %s%s%s\n",
		       p2pio_version(), un.release, sysconf(_SC_NPROCESSORS_ONLN), o.path,
		       (unsigned long long)p.file_size, p.gpu ? "GPU" : "host memory",
		       p.gpu ? "" : ": ", p.gpu ? "" : cu.why);
	fflush(stdout);

	for (cold = 1; cold >= 0; cold--) {
		if (!(o.caches & (cold ? 1 : 2)))
			continue;
		p.cold = cold;
		for (m = 0; m < o.nmodes; m++)
			for (si = 0; si < o.nsizes; si++)
				for (di = 0; di < o.ndepths; di++) {
					struct bench_result *r = &rs[nrs];

					p.io_size = o.sizes[si];
					p.depth = o.depths[di];
					if (cold)
						dropped_all &= cli_drop_cache(o.path);
					else if (strcmp(o.modes[m], "link"))
						warm_up(&p);
					bench_run(o.modes[m], &p, r);
					if (cold && !dropped_all && !r->err && !r->note[0])
						snprintf(r->note, sizeof(r->note),
							 "only the file's own pages were dropped (not root)");
					if (o.json) {
						printf("%s", nrs ? "," : "");
						bench_print_json(stdout, r);
					} else {
						bench_print_line(stdout, r);
					}
					fflush(stdout);
					nrs++;
				}
	}
	if (o.json) {
		printf("]");
		summarise(stdout, rs, nrs, true);
		printf("}\n");
	} else {
		summarise(stdout, rs, nrs, false);
	}
	if (o.plot) {
		ret = bench_plot_svg(o.plot, rs, nrs);
		if (ret) {
			fprintf(stderr, "p2pio-bench: plot %s: %s\n", o.plot, strerror(-ret));
			status = 2;
		}
	}
	free(rs);
	return status;
}
