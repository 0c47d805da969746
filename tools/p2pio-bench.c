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
#include <stdbool.h>
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
	double steady; /* O_DIRECT: read again until this many seconds (bench_params.steady) */
	int device; /* -1 host, -2 default */
	bool json;
	const char *plot;
	unsigned int lib_depth, lib_threads;
	uint64_t lib_chunk;
	uint32_t lib_flags;
	bool fixed; /* sweep modes run --size/--depth/--threads, not their grids */
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
		"  --modes LIST      comma list of: storage direct buffered link p2p bounce posix\n"
		"                    auto naive mmap hostreg cufile (default: all but direct and\n"
		"                    buffered; GPU modes skip without a GPU)\n"
		"                    storage, link, cufile, mmap and hostreg sweep their own shapes\n"
		"                    and report the best (storage: direct and buffered reads)\n"
		"  --fixed           sweep modes run --size, --depth and --threads instead\n"
		"  --size LIST       I/O sizes, e.g. 1M,4M,16M (default 16M)\n"
		"  --depth LIST      queue depths, e.g. 1,4,16 (default 16)\n"
		"  --threads N       reader threads where a mode has them (default 4)\n"
		"  --cache MODE      cold (drop caches first), warm, or both (default)\n"
		"  --bytes SIZE      bytes per run from the start of FILE (default: all of it)\n"
		"  --duration SEC    stop each run after SEC seconds\n"
		"  --steady SEC      O_DIRECT modes read their stripes again until SEC seconds\n"
		"                    have passed: a steady rate, not one pass (its start and\n"
		"                    tail) over a small file\n"
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
		{ "fixed", no_argument, NULL, 'F' },
		{ "steady", required_argument, NULL, 'S' },
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
		case 'F':
			o->fixed = true;
			break;
		case 'S':
			o->steady = strtod(optarg, &end);
			if (*end || o->steady <= 0)
				return fprintf(stderr, "p2pio-bench: bad --steady '%s'\n", optarg), -1;
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
			if (strcmp(bench_mode_names[i], "direct") &&
			    strcmp(bench_mode_names[i], "buffered"))
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
	bool started[256];	/* pthread_t has no value that means "none" */
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
		/* A thread that cannot start: its stripe is written here instead. */
		started[i] = !pthread_create(&tids[i], NULL, gen_thread, &jobs[i]);
		if (!started[i])
			gen_thread(&jobs[i]);
	}
	for (i = 0; i < threads; i++) {
		if (started[i])
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

/* The fastest result of @mode (or, when @mode2 is set, of either) in one cache state. */
static const struct bench_result *best_of(const struct bench_result *rs, size_t n, const char *mode,
					  const char *mode2, int cold)
{
	const struct bench_result *b = NULL;
	size_t i;

	for (i = 0; i < n; i++)
		if (!rs[i].err && (cold < 0 || rs[i].cold == cold) &&
		    (!strcmp(rs[i].mode, mode) || (mode2 && !strcmp(rs[i].mode, mode2))) &&
		    (!b || rs[i].gibps > b->gibps))
			b = &rs[i];
	return b;
}

static void shape_str(const struct bench_result *r, char *buf, size_t len)
{
	if (!strcmp(r->mode, "link"))
		snprintf(buf, len, "link %lluM x %u stream%s", (unsigned long long)(r->io_size >> 20),
			 r->depth, r->depth == 1 ? "" : "s");
	else
		snprintf(buf, len, "%s %lluK qd%u x%u", r->mode,
			 (unsigned long long)(r->io_size >> 10), r->depth, r->threads);
}

/* The best shape of one sweep, as a line or a JSON object. */
static void print_best(FILE *f, const char *sweep, const struct bench_result *b, int cold,
		       bool json, bool first)
{
	if (json) {
		fprintf(f, "%s{\"sweep\":\"%s\",\"cache\":\"%s\"", first ? "" : ",", sweep,
			cold ? "cold" : "warm");
		if (b)
			fprintf(f, ",\"mode\":\"%s\",\"io_size\":%llu,\"depth\":%u,\"threads\":%u,"
				   "\"gibps\":%.4f,\"cpu_s_per_gib\":%.4f",
				b->mode, (unsigned long long)b->io_size, b->depth, b->threads,
				b->gibps, b->cpu_s_per_gib);
		fprintf(f, "}");
		return;
	}
	if (!b) {
		fprintf(f, "best sweep=%s cache=%s: no shape ran\n", sweep, cold ? "cold" : "warm");
		return;
	}
	fprintf(f, "best sweep=%s cache=%s of=%s size=%lluK depth=%u threads=%u gibps=%.3f "
		   "cpu_s_per_gib=%.3f\n", sweep, cold ? "cold" : "warm", b->mode,
		(unsigned long long)(b->io_size >> 10), b->depth, b->threads, b->gibps,
		b->cpu_s_per_gib);
}

/*
 * The ratios issue 4 and issue 11 ask for, from this run's results only: the best library
 * path against the storage ceiling (the fastest direct or buffered shape in the same cache
 * state), the link ceiling (the fastest link shape) and each peer at its fastest shape,
 * with the CPU cost of the best path beside cuFile's.
 */
static void summarise(FILE *f, const struct bench_result *rs, size_t n, bool json)
{
	static const char *const lib[] = { "p2p", "bounce", "posix", "auto" };
	static const char *const peers[] = { "naive", "mmap", "cufile", "hostreg" };
	const struct bench_result *link = best_of(rs, n, "link", NULL, -1);
	int cold, k;
	bool first = true;
	char sh[96], sl[96];

	if (json)
		fprintf(f, ",\"ratios\":[");
	if (link)
		shape_str(link, sl, sizeof(sl));
	for (cold = 1; cold >= 0; cold--) {
		const struct bench_result *storage = best_of(rs, n, "direct", "buffered", cold);
		const struct bench_result *lb = NULL, *au = best_of(rs, n, "auto", NULL, cold), *x;
		char line[1400];
		size_t len = 0;

		for (k = 0; k < 4; k++) {
			x = best_of(rs, n, lib[k], NULL, cold);
			if (x && (!lb || x->gibps > lb->gibps))
				lb = x;
		}
		if (!lb)
			continue;
		if (storage)
			shape_str(storage, sh, sizeof(sh));
		if (json) {
			fprintf(f, "%s{\"cache\":\"%s\",\"best\":\"%s\",\"best_gibps\":%.4f"
				   ",\"best_cpu_s_per_gib\":%.4f",
				first ? "" : ",", cold ? "cold" : "warm", lb->mode, lb->gibps,
				lb->cpu_s_per_gib);
			if (storage) {
				fprintf(f, ",\"storage_gibps\":%.4f,\"storage_shape\":", storage->gibps);
				cli_json_str(f, sh);
				fprintf(f, ",\"best_over_storage\":%.4f", lb->gibps / storage->gibps);
			}
			if (au && storage)
				fprintf(f, ",\"auto_over_storage\":%.4f", au->gibps / storage->gibps);
			if (link) {
				fprintf(f, ",\"link_gibps\":%.4f,\"link_shape\":", link->gibps);
				cli_json_str(f, sl);
				fprintf(f, ",\"best_over_link\":%.4f", lb->gibps / link->gibps);
			}
			for (k = 0; k < 4; k++) {
				x = best_of(rs, n, peers[k], NULL, cold);
				if (!x)
					continue;
				shape_str(x, sh, sizeof(sh));
				fprintf(f, ",\"over_%s\":%.4f,\"%s_gibps\":%.4f,\"%s_cpu_s_per_gib\":%.4f"
					   ",\"%s_shape\":", peers[k], lb->gibps / x->gibps, peers[k],
					x->gibps, peers[k], x->cpu_s_per_gib, peers[k]);
				cli_json_str(f, sh);
			}
			fprintf(f, "}");
			first = false;
			continue;
		}
		len += (size_t)snprintf(line + len, sizeof(line) - len,
					"ratio cache=%s best=%s (%.3f GiB/s, %.3f cpu s/GiB)",
					cold ? "cold" : "warm", lb->mode, lb->gibps, lb->cpu_s_per_gib);
		if (storage && len < sizeof(line))
			len += (size_t)snprintf(line + len, sizeof(line) - len,
						" best/storage=%.3f (target 0.95; storage %.3f: %s)",
						lb->gibps / storage->gibps, storage->gibps, sh);
		if (au && storage && len < sizeof(line))
			len += (size_t)snprintf(line + len, sizeof(line) - len, " auto/storage=%.3f",
						au->gibps / storage->gibps);
		if (link && len < sizeof(line))
			len += (size_t)snprintf(line + len, sizeof(line) - len,
						" best/link=%.3f%s (link %.3f: %s)", lb->gibps / link->gibps,
						cold ? "" : " (target 0.9)", link->gibps, sl);
		for (k = 0; k < 4; k++) {
			x = best_of(rs, n, peers[k], NULL, cold);
			if (!x || len >= sizeof(line))
				continue;
			shape_str(x, sh, sizeof(sh));
			len += (size_t)snprintf(line + len, sizeof(line) - len,
						" best/%s=%.2f (%s %.3f, %.3f cpu s/GiB: %s)", peers[k],
						lb->gibps / x->gibps, peers[k], x->gibps,
						x->cpu_s_per_gib, sh);
		}
		fprintf(f, "%s\n", line);
	}
	if (json)
		fprintf(f, "]");
}

/* One run of a shape, the cache prepared first; appended to @rs and printed. */
static void run_one(const struct options *o, struct bench_params *p, const char *mode,
		    struct bench_result *r, bool *dropped_all, size_t idx)
{
	if (p->cold)
		*dropped_all &= cli_drop_cache(o->path);
	else if (strcmp(mode, "link"))
		warm_up(p);
	bench_run(mode, p, r);
	if (p->cold && !*dropped_all && !r->err && !r->note[0])
		snprintf(r->note, sizeof(r->note), "only the file's own pages were dropped (not root)");
	if (o->json) {
		printf("%s", idx ? "," : "");
		bench_print_json(stdout, r);
	} else {
		bench_print_line(stdout, r);
	}
	fflush(stdout);
}

/* A sweep's grid, or --fixed storage's sizes x depths x (direct, buffered). */
#define MAX_SHAPES (2 * MAX_LIST * MAX_LIST)

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct bench_params p = { 0 };
	struct bench_cuda cu;
	struct bench_result *rs = NULL;
	struct bench_shape shapes[MAX_SHAPES];
	struct utsname un;
	size_t nrs = 0, cap, m, si, di, ns, k;
	unsigned int ncpu = (unsigned int)sysconf(_SC_NPROCESSORS_ONLN);
	char *bests = NULL;
	size_t bests_len = 0;
	FILE *bf = NULL;
	struct stat st;
	int cold, ret, status = 0;
	bool dropped_all = true, first_best = true;

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
	p.steady = o.steady;
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

	cap = o.nmodes * (64 + 2 * o.nsizes * o.ndepths) * 2;
	rs = calloc(cap, sizeof(*rs));
	bf = open_memstream(&bests, &bests_len);
	if (!rs || !bf)
		return 2;
	uname(&un);
	if (o.json)
	{
		printf("{\"tool\":\"p2pio-bench\",\"library\":\"%s\",\"kernel\":",
		       p2pio_version());
		cli_json_str(stdout, un.release);
		printf(",\"cpus\":%u,\"file\":", ncpu);
		cli_json_str(stdout, o.path);
		printf(",\"file_size\":%llu,\"target\":\"%s\",\"results\":[",
		       (unsigned long long)p.file_size, p.gpu ? "gpu" : "host");
	}
	else
		printf("# p2pio-bench %s on %s, %u CPUs; %s (%llu bytes) into %s%s%s\n",
		       p2pio_version(), un.release, ncpu, o.path,
		       (unsigned long long)p.file_size, p.gpu ? "GPU" : "host memory",
		       p.gpu ? "" : ": ", p.gpu ? "" : cu.why);
	fflush(stdout);

	for (cold = 1; cold >= 0; cold--) {
		if (!(o.caches & (cold ? 1 : 2)))
			continue;
		p.cold = cold;
		for (m = 0; m < o.nmodes; m++) {
			size_t first = nrs;

			ns = o.fixed ? 0 : bench_sweep(o.modes[m], ncpu, shapes, MAX_SHAPES);
			if (!ns && !strcmp(o.modes[m], "storage")) {
				/* --fixed: the two ceiling modes at the given shapes. */
				for (si = 0; si < o.nsizes; si++)
					for (di = 0; di < o.ndepths; di++) {
						shapes[ns++] = (struct bench_shape){ "direct", o.sizes[si],
										     o.depths[di], o.threads };
						shapes[ns++] = (struct bench_shape){ "buffered", o.sizes[si],
										     o.depths[di], o.threads };
					}
			} else if (!ns) {
				for (si = 0; si < o.nsizes; si++)
					for (di = 0; di < o.ndepths; di++)
						shapes[ns++] = (struct bench_shape){ o.modes[m], o.sizes[si],
										     o.depths[di], o.threads };
			}
			for (k = 0; k < ns && nrs < cap; k++) {
				p.io_size = shapes[k].io_size;
				p.depth = shapes[k].depth;
				p.threads = shapes[k].threads;
				run_one(&o, &p, shapes[k].mode, &rs[nrs], &dropped_all, nrs);
				nrs++;
			}
			p.threads = o.threads;
			/* A sweep: its best shape, from the results just taken. */
			if (!o.fixed && bench_sweep(o.modes[m], ncpu, shapes, MAX_SHAPES)) {
				const struct bench_result *b = NULL;

				for (k = first; k < nrs; k++)
					if (!rs[k].err && (!b || rs[k].gibps > b->gibps))
						b = &rs[k];
				print_best(o.json ? bf : stdout, o.modes[m], b, cold, o.json,
					   first_best);
				first_best = false;
			}
		}
	}
	fclose(bf);
	if (o.json) {
		printf("],\"best\":[%s]", bests ? bests : "");
		summarise(stdout, rs, nrs, true);
		printf("}\n");
	} else {
		summarise(stdout, rs, nrs, false);
	}
	free(bests);
	bench_link_release();
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
