// SPDX-License-Identifier: MIT
/*
 * p2pio-load - load a GGUF model into the GPU (or host memory), or stream its layers
 * through a memory budget while a kernel per layer reads every weight byte; report time,
 * throughput, path, CPU time, exposed stall and the bound that bandwidth sets.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "p2pio.h"
#include "bench.h"
#include "cli.h"

#define CU_STREAM_NON_BLOCKING_FLAG 0x1

struct opts {
	const char *path;
	int device;		/* -2: default */
	enum p2pio_path io_path;
	bool stream;
	bool mmap_baseline;
	uint64_t budget;
	uint32_t slots;
	uint32_t prefetch;
	bool no_prefetch;
	bool lru;
	uint32_t passes;
	uint32_t repeat;
	double compute_us;
	double compute_ratio;
	double ceiling_gbps;	/* 0: measure */
	bool verify;
	bool cold;
	bool json;
	bool quiet;
	bool per_layer;
	uint32_t threads;
	uint32_t queue_depth;
	uint64_t chunk;
	uint64_t staging;
	bool bounce_async;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double gbps(uint64_t bytes, double s)
{
	return s > 0 ? (double)bytes / s / 1e9 : 0;
}

static void usage(void)
{
	printf("Usage: %s [OPTION]... MODEL.gguf\n"
	       "Load a GGUF model into GPU memory (host memory without a GPU) and report, or\n"
	       "stream its layers through a budget while a kernel per layer reads every byte.\n"
	       "\n"
	       "  -d, --device N        CUDA device (default 0 when there is a GPU)\n"
	       "      --host            load into host memory even with a GPU\n"
	       "  -p, --path PATH       auto (default), p2p, bounce or posix\n"
	       "      --mmap            baseline: mmap the file and copy each tensor with\n"
	       "                        cuMemcpyHtoD (memcpy on host), as llama.cpp loads\n"
	       "      --cold            drop the page cache (the file's pages; all when root)\n"
	       "                        before the load and before each streaming pass\n"
	       "      --no-verify       do not check the data against the generator's pattern\n"
	       "      --json            one JSON object on stdout\n"
	       "  -q, --quiet           no progress bar\n"
	       "      --threads N       engine threads (POSIX path; default: the engine's)\n"
	       "      --queue-depth N   engine queue depth (default: the engine's)\n"
	       "      --chunk SIZE      engine chunk size (default: the engine's)\n"
	       "      --staging SIZE    engine pinned staging (default: the engine's)\n"
	       "      --bounce-async    BOUNCE's reads go to the kernel's io_uring workers\n"
	       "      --repeat N        load the whole model N times into the same memory\n"
	       "                        (cold: the cache dropped before each), a result each;\n"
	       "                        the first load pays what a process pays once\n"
	       "\n"
	       "Streaming:\n"
	       "      --stream          stream layers instead of loading the model whole\n"
	       "      --budget SIZE     target memory for resident tensors and slots\n"
	       "                        (default: a quarter of the model, at least the\n"
	       "                        resident tensors and two slots)\n"
	       "      --slots N         layer slots (instead of --budget)\n"
	       "      --prefetch N      layers loaded ahead (default: every slot but the\n"
	       "                        acquired layer's, up to 3); --no-prefetch\n"
	       "      --lru             evict the least recently used slot\n"
	       "      --passes N        forward passes (default 3; the first is a warm-up when\n"
	       "                        there are more)\n"
	       "      --compute-us US   extra compute per layer, in microseconds\n"
	       "      --compute-ratio R extra compute per layer = R x its transfer time at the\n"
	       "                        ceiling\n"
	       "      --ceiling GBPS    the storage-to-target ceiling in GB/s (default: measured\n"
	       "                        here: the lower of the storage ceiling, the best\n"
	       "                        O_DIRECT or buffered reads of the file into host\n"
	       "                        memory over request sizes and depths, and into a\n"
	       "                        GPU the link ceiling, the best large pinned copies)\n"
	       "      --per-layer       a line per layer\n"
	       "\n"
	       "Exit status: 0 on success, 1 when verification found a wrong byte, 2 for usage\n"
	       "errors, 3 when loading failed.\n",
	       cli_prog());
}

/* ---- progress bar ---------------------------------------------------------------- */

struct bar {
	bool on;
	double t0, last;
};

static int bar_update(void *arg, uint64_t done, uint64_t total)
{
	struct bar *b = arg;
	double t = now_s();
	char h[CLI_HUMAN_LEN];
	int i, fill;

	if (!b->on || (t - b->last < 0.1 && done < total))
		return 0;
	b->last = t;
	fill = total ? (int)(40.0 * (double)done / (double)total) : 40;
	fputs("\r[", stderr);
	for (i = 0; i < 40; i++)
		fputc(i < fill ? '#' : ' ', stderr);
	fprintf(stderr, "] %3.0f%% %s %.2f GB/s ", total ? 100.0 * (double)done / (double)total : 100,
		cli_human_bytes(done, h), gbps(done, t - b->t0));
	if (done >= total)
		fputc('\n', stderr);
	return 0;
}

/* ---- setup ------------------------------------------------------------------------ */

struct run {
	struct opts o;
	struct p2pio_ctx *ctx;
	struct p2pio_model *m;
	struct p2pio_model_info info;
	struct p2pio_path_info pi;
	struct bench_cuda cu;
	void *stream;
	bool gpu;
	struct p2pio_verifier *v;
	const char *verify_note;
	char ceiling_why[256];	/* which ceilings and shapes the stream's bound came from */
	double open_s;		/* p2pio_model_open(): parse, choose the path, start it */
	uint64_t arena, arena_bytes;	/* the whole load's arena, once loaded */
};

/*
 * Zero the arena a load filled, so that a load into it again (--repeat) is verified on
 * what that load wrote and not on what the one before left there.
 */
static int clear_arena(struct run *r)
{
	if (!r->arena)
		return 0;
	if (!r->gpu) {
		memset((void *)(uintptr_t)r->arena, 0, r->arena_bytes);
		return 0;
	}
	return r->cu.MemsetD8(r->arena, 0, r->arena_bytes) ? -EIO : 0;
}

static int setup(struct run *r)
{
	struct p2pio_error err = { 0 };
	struct p2pio_ctx_opts co;
	int ret;

	p2pio_ctx_opts_init(&co);
	if (r->o.device >= -1)
		co.device = r->o.device;
	co.path = r->o.io_path;
	if (r->o.threads)
		co.threads = r->o.threads;
	if (r->o.queue_depth)
		co.queue_depth = r->o.queue_depth;
	if (r->o.chunk)
		co.chunk_size = r->o.chunk;
	if (r->o.staging)
		co.staging_bytes = r->o.staging;
	if (r->o.bounce_async)
		co.flags |= P2PIO_CTX_BOUNCE_ASYNC;
	ret = p2pio_ctx_create(&co, &r->ctx, &err);
	if (ret) {
		cli_err_p2pio("context", ret, &err);
		return ret;
	}
	r->gpu = p2pio_ctx_device(r->ctx) != P2PIO_DEVICE_HOST;
	if (r->gpu) {
		if (!bench_cuda_init(&r->cu, p2pio_ctx_device(r->ctx))) {
			cli_err("CUDA: %s", r->cu.why);
			return -ENODEV;
		}
		/* A non-blocking stream: no implicit order with the engine's copy streams. */
		if (r->cu.StreamCreate(&r->stream, CU_STREAM_NON_BLOCKING_FLAG)) {
			cli_err("cuStreamCreate failed");
			return -ENODEV;
		}
	}
	/* AUTO chooses the file's path at open, by what the page cache holds then. */
	if (r->o.cold)
		cli_drop_cache(r->o.path);
	r->open_s = now_s();
	ret = p2pio_model_open(r->ctx, r->o.path, NULL, &r->m, &err);
	r->open_s = now_s() - r->open_s;
	if (ret) {
		cli_err_p2pio(r->o.path, ret, &err);
		return ret;
	}
	p2pio_model_info(r->m, &r->info);
	memset(&r->pi, 0, sizeof(r->pi));
	r->pi.size = sizeof(r->pi);
	p2pio_path_info(p2pio_model_file(r->m), &r->pi);
	if (!r->info.has_seed && r->o.verify) {
		r->verify_note = "no p2pio.pattern.seed in the model: not verified";
		r->o.verify = false;
	}
	/* The verifier also runs the compute kernel: needed even when not verifying. */
	if (r->o.verify || r->o.compute_us > 0 || r->o.compute_ratio > 0) {
		ret = p2pio_verifier_open(r->ctx, r->info.pattern_seed, &r->v, &err);
		if (ret) {
			if (r->o.compute_us > 0 || r->o.compute_ratio > 0) {
				cli_err_p2pio("verifier", ret, &err);
				return ret;
			}
			r->verify_note = strdup(err.msg);
			r->o.verify = false;
		}
	}
	return 0;
}

static void teardown(struct run *r)
{
	p2pio_verifier_close(r->v);
	p2pio_model_close(r->m);
	if (r->stream)
		r->cu.StreamDestroy(r->stream);
	p2pio_ctx_destroy(r->ctx);
}

static const char *target_name(const struct run *r, char *buf, size_t len)
{
	if (r->gpu)
		snprintf(buf, len, "GPU %d", p2pio_ctx_device(r->ctx));
	else
		snprintf(buf, len, "host memory");
	return buf;
}

/* ---- verification of a whole model -------------------------------------------------- */

static int verify_tensors(struct run *r, const struct p2pio_model_tensor *t, uint32_t n,
			  struct p2pio_verify_result *vr)
{
	int ret;

	memset(vr, 0, sizeof(*vr));
	if (!r->o.verify)
		return 0;
	ret = p2pio_verifier_check(r->v, t, n, r->stream, 0);
	if (!ret)
		ret = p2pio_verifier_result(r->v, vr, true);
	return ret;
}

static struct p2pio_model_tensor *all_tensors(struct run *r)
{
	struct p2pio_model_tensor *t = calloc(r->info.tensors ? r->info.tensors : 1, sizeof(*t));
	uint32_t i;

	for (i = 0; t && i < r->info.tensors; i++)
		p2pio_model_tensor_at(r->m, i, &t[i]);
	return t;
}

static void print_verify(const struct run *r, const struct p2pio_verify_result *vr)
{
	char h[CLI_HUMAN_LEN];

	if (!r->o.verify) {
		printf("verify     skipped%s%s\n", r->verify_note ? ": " : "",
		       r->verify_note ? r->verify_note : "");
		return;
	}
	if (vr->mismatches)
		printf("verify     FAILED: %" PRIu64 " bytes differ, the first at file offset %" PRIu64
		       "\n", vr->mismatches, vr->first_mismatch);
	else
		printf("verify     %s checked against the pattern: OK (checksum %016" PRIx64 ")\n",
		       cli_human_bytes(vr->bytes, h), vr->checksum);
}

/* The engine options that ran (the defaults unless the command line set them). */
static void print_engine_json(const struct run *r)
{
	struct p2pio_ctx_opts co = { .size = sizeof(co) };

	if (p2pio_ctx_get_opts(r->ctx, &co))
		return;
	printf(",\"engine\":{\"threads\":%u,\"queue_depth\":%u,\"chunk\":%" PRIu64
	       ",\"staging\":%" PRIu64 ",\"bounce_async\":%s}", co.threads, co.queue_depth,
	       (uint64_t)co.chunk_size, (uint64_t)co.staging_bytes,
	       co.flags & P2PIO_CTX_BOUNCE_ASYNC ? "true" : "false");
}

/* ---- whole-model load ----------------------------------------------------------------- */

/*
 * Where a load's time went: its start (until a tenth of the bytes landed), its middle
 * (a tenth to nine tenths, with its rate) and its tail (the last tenth); and the time the
 * whole load would have taken at the middle's rate, so that a load under the path's
 * steady state shows how much its two ends cost.
 */
struct phases {
	double first_s, submitted_s, tenth_s, nine_s, tail_s, mid_gbps, at_mid_s;
};

static void load_phases(const struct p2pio_load_result *res, struct phases *ph)
{
	memset(ph, 0, sizeof(*ph));
	ph->first_s = (double)res->first_ns * 1e-9;
	ph->submitted_s = (double)res->last_submit_ns * 1e-9;
	if (!res->mid_bytes || res->mid_end_ns <= res->mid_start_ns)
		return;
	ph->tenth_s = (double)res->mid_start_ns * 1e-9;
	ph->nine_s = (double)res->mid_end_ns * 1e-9;
	ph->tail_s = (double)res->wall_ns * 1e-9 - ph->nine_s;
	ph->mid_gbps = gbps(res->mid_bytes, ph->nine_s - ph->tenth_s);
	ph->at_mid_s = (double)res->bytes / (ph->mid_gbps * 1e9);
}

static void print_phases_json(const struct p2pio_load_result *res)
{
	struct phases ph;

	load_phases(res, &ph);
	printf(",\"phases\":{\"first_landed_s\":");
	cli_json_double(stdout, ph.first_s);
	printf(",\"last_submitted_s\":");
	cli_json_double(stdout, ph.submitted_s);
	printf(",\"tenth_landed_s\":");
	cli_json_double(stdout, ph.tenth_s);
	printf(",\"nine_tenths_landed_s\":");
	cli_json_double(stdout, ph.nine_s);
	printf(",\"tail_s\":");
	cli_json_double(stdout, ph.tail_s);
	printf(",\"mid_bytes\":%" PRIu64 ",\"mid_gbps\":", res->mid_bytes);
	cli_json_double(stdout, ph.mid_gbps);
	printf(",\"at_mid_rate_s\":");
	cli_json_double(stdout, ph.at_mid_s);
	printf("}");
}

static void print_phases(const struct p2pio_load_result *res)
{
	double wall = (double)res->wall_ns * 1e-9;
	struct phases ph;

	load_phases(res, &ph);
	printf("phases     first read landed at %.1f ms, last submitted at %.1f ms, a tenth landed "
	       "at %.1f ms, nine tenths at %.1f ms, the last tenth took %.1f ms\n",
	       ph.first_s * 1e3, ph.submitted_s * 1e3, ph.tenth_s * 1e3, ph.nine_s * 1e3,
	       ph.tail_s * 1e3);
	if (ph.mid_gbps > 0)
		printf("middle     %.2f GB/s from a tenth to nine tenths: the load at that rate "
		       "%.1f ms, the ends cost %.1f ms (%.1f%%)\n", ph.mid_gbps, ph.at_mid_s * 1e3,
		       (wall - ph.at_mid_s) * 1e3, 100.0 * (wall - ph.at_mid_s) / wall);
}

static int run_whole(struct run *r, uint32_t round)
{
	struct bar bar = { .on = !r->o.quiet && !r->o.json && isatty(STDERR_FILENO) };
	struct p2pio_model_load_opts lo = { .progress = bar_update, .progress_arg = &bar };
	struct p2pio_verify_result vr;
	struct p2pio_load_result res = { .size = sizeof(res) };
	struct p2pio_model_tensor *t;
	char h[CLI_HUMAN_LEN], tn[32];
	int ret;

	if (round && clear_arena(r)) {
		cli_err("clearing the arena before loading again failed");
		return CLI_EXIT_ERROR;
	}
	if (r->o.cold)
		cli_drop_cache(r->o.path);
	bar.t0 = bar.last = now_s();
	bar.last = 0;
	ret = p2pio_model_load(r->m, &lo, &res);
	if (ret) {
		cli_err("loading %s: %s", r->o.path, p2pio_strerror(ret));
		return CLI_EXIT_ERROR;
	}
	r->arena = res.arena;
	r->arena_bytes = res.arena_bytes;
	t = all_tensors(r);
	ret = t ? verify_tensors(r, t, r->info.tensors, &vr) : -ENOMEM;
	free(t);
	if (ret) {
		cli_err("verification: %s", p2pio_strerror(ret));
		return CLI_EXIT_ERROR;
	}
	if (r->o.json) {
		printf("{\"mode\":\"load\",\"round\":%u,\"model\":", round);
		cli_json_str(stdout, r->o.path);
		printf(",\"target\":\"%s\",\"requested\":\"%s\",\"path\":\"%s\",\"cold\":%s"
		       ",\"bytes\":%" PRIu64 ",\"reads\":%" PRIu64 ",\"seconds\":",
		       r->gpu ? "gpu" : "host", p2pio_path_name(r->o.io_path),
		       p2pio_path_name(r->pi.path),
		       r->o.cold ? "true" : "false", res.bytes, res.reads);
		cli_json_double(stdout, (double)res.wall_ns * 1e-9);
		printf(",\"gbps\":");
		cli_json_double(stdout, gbps(res.bytes, (double)res.wall_ns * 1e-9));
		printf(",\"cpu_seconds\":");
		cli_json_double(stdout, (double)res.cpu_ns * 1e-9);
		printf(",\"open_seconds\":");
		cli_json_double(stdout, r->open_s);
		print_phases_json(&res);
		print_engine_json(r);
		printf(",\"verified\":%s,\"mismatches\":%" PRIu64 "}\n",
		       r->o.verify ? "true" : "false", vr.mismatches);
	} else {
		printf("model      %s: %u tensors, %u layers, %s of data\n", r->o.path,
		       r->info.tensors, r->info.layers, cli_human_bytes(r->info.data_size, h));
		printf("target     %s\n", target_name(r, tn, sizeof(tn)));
		printf("path       %s (%s)\n", p2pio_path_name(r->pi.path), r->pi.why);
		printf("load       %s in %.3f s = %.2f GB/s, %" PRIu64 " reads, %s cache%s\n",
		       cli_human_bytes(res.bytes, h), (double)res.wall_ns * 1e-9,
		       gbps(res.bytes, (double)res.wall_ns * 1e-9), res.reads,
		       r->o.cold ? "cold" : "warm", round ? " (again, same arena)" : "");
		printf("cpu        %.3f s (%.3f s per GiB)\n", (double)res.cpu_ns * 1e-9,
		       (double)res.cpu_ns * 1e-9 / ((double)res.bytes / (1 << 30)));
		print_phases(&res);
		print_verify(r, &vr);
	}
	return vr.mismatches ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* The baseline: mmap the file and copy tensor by tensor, as llama.cpp does by default. */
static int run_mmap(struct run *r)
{
	struct p2pio_model_tensor *t = all_tensors(r);
	struct p2pio_verify_result vr;
	bench_devptr arena = 0;
	uint64_t lo = UINT64_MAX, hi = 0, bytes = 0;
	double t0, c0, wall, cpu;
	char h[CLI_HUMAN_LEN];
	uint8_t *map, *host = NULL;
	uint32_t i;
	int fd, ret = 0;

	if (!t)
		return CLI_EXIT_ERROR;
	for (i = 0; i < r->info.tensors; i++) {
		lo = t[i].file_offset < lo ? t[i].file_offset : lo;
		hi = t[i].file_offset + t[i].size > hi ? t[i].file_offset + t[i].size : hi;
	}
	if (r->o.cold)
		cli_drop_cache(r->o.path);
	fd = open(r->o.path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || !r->info.tensors) {
		free(t);
		cli_err("%s: %s", r->o.path, strerror(errno));
		return CLI_EXIT_ERROR;
	}
	t0 = now_s();
	c0 = cpu_s();
	map = mmap(NULL, r->info.file_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		ret = -errno;
		goto out;
	}
	if (r->gpu ? r->cu.MemAlloc(&arena, hi - lo) != 0 : !(host = malloc(hi - lo))) {
		ret = -ENOMEM;
		goto out_unmap;
	}
	for (i = 0; i < r->info.tensors; i++) {
		uint64_t off = t[i].file_offset - lo;

		if (r->gpu) {
			if (r->cu.MemcpyHtoD(arena + off, map + t[i].file_offset, t[i].size)) {
				ret = -EIO;
				break;
			}
			t[i].addr = arena + off;
		} else {
			memcpy(host + off, map + t[i].file_offset, t[i].size);
			t[i].addr = (uint64_t)(uintptr_t)(host + off);
			t[i].host = host + off;
		}
		bytes += t[i].size;
	}
	wall = now_s() - t0;
	cpu = cpu_s() - c0;
	if (!ret)
		ret = verify_tensors(r, t, r->info.tensors, &vr);
	if (!ret) {
		if (r->o.json) {
			printf("{\"mode\":\"mmap\",\"cold\":%s,\"bytes\":%" PRIu64 ",\"seconds\":",
			       r->o.cold ? "true" : "false", bytes);
			cli_json_double(stdout, wall);
			printf(",\"gbps\":");
			cli_json_double(stdout, gbps(bytes, wall));
			printf(",\"cpu_seconds\":");
			cli_json_double(stdout, cpu);
			printf(",\"verified\":%s,\"mismatches\":%" PRIu64 "}\n",
			       r->o.verify ? "true" : "false", vr.mismatches);
		} else {
			printf("mmap       %s tensor by tensor in %.3f s = %.2f GB/s, CPU %.3f s, "
			       "%s cache\n", cli_human_bytes(bytes, h), wall, gbps(bytes, wall), cpu,
			       r->o.cold ? "cold" : "warm");
			print_verify(r, &vr);
		}
	}
	if (arena)
		r->cu.MemFree(arena);
	free(host);
out_unmap:
	munmap(map, r->info.file_size);
out:
	close(fd);
	free(t);
	if (ret) {
		cli_err("mmap baseline: %s", p2pio_strerror(ret));
		return CLI_EXIT_ERROR;
	}
	return vr.mismatches ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- streaming ------------------------------------------------------------------------ */

/*
 * The ceiling streaming is held to, the honest one of issue 11 (bench_ceiling(), and
 * bench_ceiling_again() after the passes), on the model file in the stream's cache state.
 * Each shape reads the whole file, for at most 1 s: on the H200 a 2 GiB read per shape put
 * the ceiling 9 % under the same shapes over the whole file (thread start and the last
 * reads weigh more in a short read), and the stream above it.
 */
static void ceiling_params(struct run *r, struct bench_ceiling_params *cp)
{
	*cp = (struct bench_ceiling_params){
		.path = r->o.path,
		.file_size = r->info.file_size,
		.cold = r->o.cold,
		.cu = r->gpu ? &r->cu : NULL,
		.duration = 1,
	};
}

static void print_stream_json(const struct run *r, struct p2pio_streamer *s,
			      const struct p2pio_stream_stats *st, uint32_t measured, double wall,
			      double ceiling, double compute_s, const struct p2pio_verify_result *vr)
{
	const char *why = "";
	uint32_t prefetch = p2pio_streamer_prefetch(s, &why);
	double per_pass = measured ? (double)st->bytes / measured : 0;
	double bound = per_pass > 0 ? ceiling * 1e9 / per_pass : 0;

	printf("{\"mode\":\"stream\",\"model\":");
	cli_json_str(stdout, r->o.path);
	printf(",\"target\":\"%s\",\"requested\":\"%s\",\"path\":\"%s\",\"cold\":%s,"
	       "\"slots\":%u,\"prefetch\":%u,\"prefetch_why\":",
	       r->gpu ? "gpu" : "host", p2pio_path_name(r->o.io_path), p2pio_path_name(r->pi.path),
	       r->o.cold ? "true" : "false", p2pio_streamer_slots(s), prefetch);
	cli_json_str(stdout, why);
	printf(",\"passes\":%u", measured);
	printf(",\"seconds\":");
	cli_json_double(stdout, wall);
	printf(",\"passes_per_s\":");
	cli_json_double(stdout, wall > 0 ? measured / wall : 0);
	printf(",\"bytes_per_pass\":");
	cli_json_double(stdout, per_pass);
	printf(",\"ceiling_gbps\":");
	cli_json_double(stdout, ceiling);
	printf(",\"ceiling_from\":");
	cli_json_str(stdout, r->o.ceiling_gbps > 0 ? "given" : r->ceiling_why);
	printf(",\"bound_passes_per_s\":");
	cli_json_double(stdout, bound);
	printf(",\"of_bound\":");
	cli_json_double(stdout, bound > 0 && wall > 0 ? measured / wall / bound : 0);
	printf(",\"stall_s\":");
	cli_json_double(stdout, (double)st->stall_ns * 1e-9);
	printf(",\"stall_fraction\":");
	cli_json_double(stdout, wall > 0 ? (double)st->stall_ns * 1e-9 / wall : 0);
	printf(",\"compute_s\":");
	cli_json_double(stdout, compute_s);
	printf(",\"acquires\":%" PRIu64 ",\"loads\":%" PRIu64 ",\"hits\":%" PRIu64
	       ",\"reuses\":%" PRIu64 ",\"wasted\":%" PRIu64 ",\"verified\":%s,"
	       "\"mismatches\":%" PRIu64 "}\n", st->acquires, st->loads, st->hits, st->reuses,
	       st->wasted, r->o.verify ? "true" : "false", vr->mismatches);
}

static void verify_add(struct p2pio_verify_result *acc, const struct p2pio_verify_result *vr)
{
	acc->bytes += vr->bytes;
	acc->mismatches += vr->mismatches;
	acc->checksum += vr->checksum;
	if (vr->first_mismatch < acc->first_mismatch)
		acc->first_mismatch = vr->first_mismatch;
}

/* The resident (non-layer) tensors load once, when streaming starts: check them once. */
static int verify_resident(struct run *r, struct p2pio_streamer *s,
			   struct p2pio_verify_result *acc)
{
	struct p2pio_model_tensor *t, mt;
	struct p2pio_verify_result vr;
	uint32_t i, n = 0;
	int ret = 0;

	if (!r->o.verify)
		return 0;
	t = calloc(r->info.tensors ? r->info.tensors : 1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (i = 0; i < r->info.tensors && !ret; i++) {
		p2pio_model_tensor_at(r->m, i, &mt);
		if (mt.layer < 0)
			ret = p2pio_streamer_tensor(s, mt.name, &t[n++]);
	}
	if (!ret && n)
		ret = verify_tensors(r, t, n, &vr);
	if (!ret && n)
		verify_add(acc, &vr);
	free(t);
	return ret;
}

static int run_stream(struct run *r)
{
	struct p2pio_streamer_opts so = { .budget = r->o.budget, .slots = r->o.slots,
					   .prefetch = r->o.prefetch };
	struct p2pio_verify_result vr, acc = { .first_mismatch = P2PIO_NO_OFFSET };
	struct p2pio_stream_stats st, *per = NULL;
	struct p2pio_error err = { 0 };
	struct p2pio_streamer *s = NULL;
	char h[CLI_HUMAN_LEN], h2[CLI_HUMAN_LEN], tn[32];
	double ceiling = r->o.ceiling_gbps, wall = 0, compute_s = 0, t0;
	struct bench_ceiling_best best = { 0 };
	struct bench_ceiling_params cp;
	uint32_t p, l, slots, measured = 0;
	int ret, rc = CLI_EXIT_ERROR;

	if (r->o.no_prefetch)
		so.flags |= P2PIO_STREAM_NO_PREFETCH;
	if (r->o.lru)
		so.flags |= P2PIO_STREAM_LRU;
	ceiling_params(r, &cp);
	if (ceiling <= 0) {
		ret = bench_ceiling(&cp, &ceiling, r->ceiling_why, sizeof(r->ceiling_why), &best);
		if (ret) {
			cli_err("measuring the ceiling: %s", p2pio_strerror(ret));
			return CLI_EXIT_ERROR;
		}
	}
	if (r->o.cold)
		cli_drop_cache(r->o.path);
	ret = p2pio_streamer_open(r->m, &so, &s, &err);
	if (ret) {
		cli_err_p2pio("streaming", ret, &err);
		return CLI_EXIT_ERROR;
	}
	slots = p2pio_streamer_slots(s);
	per = calloc(r->info.layers, sizeof(*per));
	if (!per)
		goto out;
	ret = verify_resident(r, s, &acc);
	if (ret) {
		cli_err("checking the resident tensors: %s", p2pio_strerror(ret));
		goto out;
	}
	if (!r->o.json) {
		printf("model      %s: %u layers, %s per slot, %s resident\n", r->o.path,
		       r->info.layers, cli_human_bytes(r->info.slot_bytes, h),
		       cli_human_bytes(r->info.resident_bytes, h2));
		printf("target     %s, path %s (%s)\n", target_name(r, tn, sizeof(tn)),
		       p2pio_path_name(r->pi.path), r->pi.why);
		const char *why = "";
		uint32_t prefetch = p2pio_streamer_prefetch(s, &why);

		printf("stream     %u slots, prefetch %u (%s)%s, %u passes\n", slots, prefetch, why,
		       r->o.lru ? ", LRU" : "", r->o.passes);
		printf("ceiling    %.2f GB/s (%s)\n", ceiling,
		       r->o.ceiling_gbps > 0 ? "given" : r->ceiling_why);
	}
	for (p = 0; p < r->o.passes; p++) {
		struct p2pio_layer layer;
		double pass_compute = 0;

		if (r->o.cold && p)
			cli_drop_cache(r->o.path);
		t0 = now_s();
		for (l = 0; l < r->info.layers; l++) {
			uint64_t cns = (uint64_t)(r->o.compute_us * 1e3);

			ret = p2pio_streamer_acquire(s, l, r->stream, &layer);
			if (ret) {
				cli_err("acquire layer %u: %s", l, p2pio_strerror(ret));
				goto out;
			}
			if (r->o.compute_ratio > 0)
				cns += (uint64_t)(r->o.compute_ratio * (double)layer.bytes / ceiling);
			pass_compute += (double)cns * 1e-9;
			if (r->v) {
				ret = p2pio_verifier_check(r->v, layer.tensors,
							   r->o.verify ? layer.ntensors : 0,
							   r->stream, cns);
				if (ret) {
					cli_err("kernel for layer %u: %s", l, p2pio_strerror(ret));
					goto out;
				}
			}
			ret = p2pio_streamer_release(s, l, r->stream);
			if (ret) {
				cli_err("layer %u: %s", l, p2pio_strerror(ret));
				goto out;
			}
		}
		/* The end of a pass: wait for its kernels (as a token's logits would). */
		if (r->v) {
			ret = p2pio_verifier_result(r->v, &vr, true);
			if (ret)
				goto out;
			verify_add(&acc, &vr);
		} else if (r->stream) {
			r->cu.StreamSynchronize(r->stream);
		}
		/*
		 * And for the loads the window started meanwhile: the next pass's first layers
		 * load in this pass's time, not in the gap before the next (the cache drop).
		 */
		ret = p2pio_streamer_wait_prefetch(s);
		if (ret) {
			cli_err("waiting for the prefetch: %s", p2pio_strerror(ret));
			goto out;
		}
		if (!r->o.json && !r->o.quiet)
			printf("pass %-5u %.3f s%s\n", p + 1, now_s() - t0,
			       p == 0 && r->o.passes > 1 ? " (warm-up, not counted)" : "");
		if (p == 0 && r->o.passes > 1) {
			p2pio_streamer_reset_stats(s);
			continue;
		}
		wall += now_s() - t0;
		compute_s += pass_compute;
		measured++;
	}
	p2pio_streamer_stats(s, &st, per, r->info.layers);
	if (r->o.ceiling_gbps <= 0) {
		ret = bench_ceiling_again(&cp, &best, &ceiling, r->ceiling_why,
					  sizeof(r->ceiling_why));
		if (ret) {
			cli_err("measuring the ceiling again: %s", p2pio_strerror(ret));
			goto out;
		}
	}
	if (r->o.json) {
		print_stream_json(r, s, &st, measured, wall, ceiling, compute_s, &acc);
	} else {
		double per_pass = (double)st.bytes / measured;
		double bound = ceiling * 1e9 / per_pass;

		printf("result     %.3f passes/s, %s streamed per pass, %.2f GB/s effective\n",
		       measured / wall, cli_human_bytes((uint64_t)per_pass, h),
		       gbps(st.bytes, wall));
		printf("stall      %.3f s exposed = %.1f%% of wall time (compute %.1f%% of wall)\n",
		       (double)st.stall_ns * 1e-9, 100.0 * (double)st.stall_ns * 1e-9 / wall,
		       100.0 * compute_s / wall);
		printf("bound      %.3f passes/s (bytes per pass / ceiling): %.2f of the bound\n",
		       bound, measured / wall / bound);
		printf("slots      %" PRIu64 " loads, %" PRIu64 " hits, %" PRIu64 " reuses, %" PRIu64
		       " wasted prefetches, host waited %.3f s\n", st.loads, st.hits, st.reuses,
		       st.wasted, (double)st.host_wait_ns * 1e-9);
		if (r->o.per_layer)
			for (l = 0; l < r->info.layers; l++)
				printf("layer %-4u %s, %" PRIu64 " loads, %" PRIu64 " hits, stall %.3f ms, "
				       "I/O %.3f ms\n", l, cli_human_bytes(per[l].bytes, h),
				       per[l].loads, per[l].hits, (double)per[l].stall_ns * 1e-6,
				       (double)per[l].io_ns * 1e-6 / (per[l].loads ? per[l].loads : 1));
		print_verify(r, &acc);
	}
	rc = acc.mismatches ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
	free(per);
	p2pio_streamer_close(s);
	return rc;
}

/* ---- main ------------------------------------------------------------------------------ */

enum {
	OPT_HOST = 256, OPT_MMAP, OPT_COLD, OPT_NO_VERIFY, OPT_JSON, OPT_STREAM, OPT_BUDGET,
	OPT_SLOTS, OPT_PREFETCH, OPT_NO_PREFETCH, OPT_LRU, OPT_PASSES, OPT_REPEAT, OPT_COMPUTE_US,
	OPT_COMPUTE_RATIO, OPT_CEILING, OPT_PER_LAYER, OPT_THREADS, OPT_QD, OPT_CHUNK, OPT_STAGING,
	OPT_BOUNCE_ASYNC,
};

static const struct option long_opts[] = {
	{ "device", required_argument, NULL, 'd' },
	{ "host", no_argument, NULL, OPT_HOST },
	{ "path", required_argument, NULL, 'p' },
	{ "mmap", no_argument, NULL, OPT_MMAP },
	{ "cold", no_argument, NULL, OPT_COLD },
	{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "quiet", no_argument, NULL, 'q' },
	{ "stream", no_argument, NULL, OPT_STREAM },
	{ "budget", required_argument, NULL, OPT_BUDGET },
	{ "slots", required_argument, NULL, OPT_SLOTS },
	{ "prefetch", required_argument, NULL, OPT_PREFETCH },
	{ "no-prefetch", no_argument, NULL, OPT_NO_PREFETCH },
	{ "lru", no_argument, NULL, OPT_LRU },
	{ "passes", required_argument, NULL, OPT_PASSES },
	{ "repeat", required_argument, NULL, OPT_REPEAT },
	{ "compute-us", required_argument, NULL, OPT_COMPUTE_US },
	{ "compute-ratio", required_argument, NULL, OPT_COMPUTE_RATIO },
	{ "ceiling", required_argument, NULL, OPT_CEILING },
	{ "per-layer", no_argument, NULL, OPT_PER_LAYER },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "queue-depth", required_argument, NULL, OPT_QD },
	{ "chunk", required_argument, NULL, OPT_CHUNK },
	{ "staging", required_argument, NULL, OPT_STAGING },
	{ "bounce-async", no_argument, NULL, OPT_BOUNCE_ASYNC },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_u32(const char *s, uint32_t *out, uint32_t min)
{
	uint64_t v;

	if (cli_parse_u64(s, &v) || v < min || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* A number of at least 0, and finite. */
static int parse_double(const char *s, double *out)
{
	return cli_parse_double(s, out) || !(*out >= 0) || isinf(*out) ? -EINVAL : 0;
}

static int parse(int argc, char **argv, struct opts *o)
{
	uint32_t u;
	int c;

	*o = (struct opts){ .device = -2, .passes = 3, .repeat = 1, .verify = true };
	while ((c = getopt_long(argc, argv, "d:p:qh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (parse_u32(optarg, &u, 0) || u > INT32_MAX)
				return cli_usage_err("bad device '%s'", optarg);
			o->device = (int)u;
			break;
		case OPT_HOST:
			o->device = P2PIO_DEVICE_HOST;
			break;
		case 'p':
			if (!strcmp(optarg, "auto"))
				o->io_path = P2PIO_PATH_AUTO;
			else if (!strcmp(optarg, "p2p"))
				o->io_path = P2PIO_PATH_P2P;
			else if (!strcmp(optarg, "bounce"))
				o->io_path = P2PIO_PATH_BOUNCE;
			else if (!strcmp(optarg, "posix"))
				o->io_path = P2PIO_PATH_POSIX;
			else
				return cli_usage_err("unknown path '%s'", optarg);
			break;
		case OPT_MMAP:
			o->mmap_baseline = true;
			break;
		case OPT_COLD:
			o->cold = true;
			break;
		case OPT_NO_VERIFY:
			o->verify = false;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case OPT_STREAM:
			o->stream = true;
			break;
		case OPT_BUDGET:
			if (cli_parse_size(optarg, &o->budget) || !o->budget)
				return cli_usage_err("bad budget '%s'", optarg);
			break;
		case OPT_SLOTS:
			if (parse_u32(optarg, &o->slots, 1))
				return cli_usage_err("bad slot count '%s'", optarg);
			break;
		case OPT_PREFETCH:
			if (parse_u32(optarg, &o->prefetch, 1))
				return cli_usage_err("bad prefetch depth '%s'", optarg);
			break;
		case OPT_NO_PREFETCH:
			o->no_prefetch = true;
			break;
		case OPT_LRU:
			o->lru = true;
			break;
		case OPT_PASSES:
			if (parse_u32(optarg, &o->passes, 1))
				return cli_usage_err("bad pass count '%s'", optarg);
			break;
		case OPT_REPEAT:
			if (parse_u32(optarg, &o->repeat, 1))
				return cli_usage_err("bad repeat count '%s'", optarg);
			break;
		case OPT_COMPUTE_US:
			if (parse_double(optarg, &o->compute_us))
				return cli_usage_err("bad --compute-us '%s'", optarg);
			break;
		case OPT_COMPUTE_RATIO:
			if (parse_double(optarg, &o->compute_ratio))
				return cli_usage_err("bad --compute-ratio '%s'", optarg);
			break;
		case OPT_CEILING:
			if (parse_double(optarg, &o->ceiling_gbps) || o->ceiling_gbps <= 0)
				return cli_usage_err("bad --ceiling '%s'", optarg);
			break;
		case OPT_PER_LAYER:
			o->per_layer = true;
			break;
		case OPT_THREADS:
			if (parse_u32(optarg, &o->threads, 1))
				return cli_usage_err("bad thread count '%s'", optarg);
			break;
		case OPT_QD:
			if (parse_u32(optarg, &o->queue_depth, 1))
				return cli_usage_err("bad queue depth '%s'", optarg);
			break;
		case OPT_BOUNCE_ASYNC:
			o->bounce_async = true;
			break;
		case OPT_STAGING:
			if (cli_parse_size(optarg, &o->staging) || !o->staging)
				return cli_usage_err("bad staging size '%s'", optarg);
			break;
		case OPT_CHUNK:
			if (cli_parse_size(optarg, &o->chunk) || !o->chunk)
				return cli_usage_err("bad chunk size '%s'", optarg);
			break;
		case 'h':
			usage();
			exit(CLI_EXIT_OK);
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		return cli_usage_err("expected one model file");
	o->path = argv[optind];
	if (o->mmap_baseline && o->stream)
		return cli_usage_err("--mmap is a whole-model baseline; it does not stream");
	return 0;
}

int main(int argc, char **argv)
{
	struct run r = { 0 };
	uint32_t i;
	int rc;

	cli_init(argv[0]);
	rc = parse(argc, argv, &r.o);
	if (rc)
		return rc;
	if (setup(&r)) {
		teardown(&r);
		return CLI_EXIT_ERROR;
	}
	if (r.o.mmap_baseline)
		rc = run_mmap(&r);
	else if (r.o.stream)
		rc = run_stream(&r);
	else
		for (i = 0; i < r.o.repeat && rc == CLI_EXIT_OK; i++)
			rc = run_whole(&r, i);
	teardown(&r);
	return rc;
}
