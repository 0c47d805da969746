// SPDX-License-Identifier: MIT
/*
 * load_whole.c - p2pio-load's whole-model load (with a progress bar and where its time
 * went: start, middle, tail) and its baseline, the file mmap'd and copied tensor by tensor
 * as llama.cpp loads.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "load.h"

/* ---- progress bar ---------------------------------------------------------------- */

struct bar {
	bool on;
	double t0, last;
};

static int bar_update(void *arg, uint64_t done, uint64_t total)
{
	struct bar *b = arg;
	double t = load_now_s();
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
		cli_human_bytes(done, h), load_gbps(done, t - b->t0));
	if (done >= total)
		fputc('\n', stderr);
	return 0;
}

/*
 * Zero the arena a load filled, so that a load into it again (--repeat) is verified on
 * what that load wrote and not on what the one before left there.
 */
int load_clear_arena(struct load_run *r)
{
	if (!r->arena)
		return 0;
	if (!r->gpu) {
		memset((void *)(uintptr_t)r->arena, 0, r->arena_bytes);
		return 0;
	}
	return r->cu.MemsetD8(r->arena, 0, r->arena_bytes) ? -EIO : 0;
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
	ph->mid_gbps = load_gbps(res->mid_bytes, ph->nine_s - ph->tenth_s);
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

int load_run_whole(struct load_run *r, uint32_t round)
{
	struct bar bar = { .on = !r->o.quiet && !r->o.json && isatty(STDERR_FILENO) };
	struct p2pio_model_load_opts lo = { .progress = bar_update, .progress_arg = &bar };
	struct p2pio_verify_result vr;
	struct p2pio_load_result res = { .size = sizeof(res) };
	struct p2pio_model_tensor *t;
	char h[CLI_HUMAN_LEN], tn[32];
	int ret;

	if (round && load_clear_arena(r)) {
		cli_err("clearing the arena before loading again failed");
		return CLI_EXIT_ERROR;
	}
	if (r->o.cold)
		cli_drop_cache(r->o.path);
	bar.t0 = bar.last = load_now_s();
	bar.last = 0;
	ret = p2pio_model_load(r->m, &lo, &res);
	if (ret) {
		cli_err("loading %s: %s", r->o.path, p2pio_strerror(ret));
		return CLI_EXIT_ERROR;
	}
	r->arena = res.arena;
	r->arena_bytes = res.arena_bytes;
	t = load_all_tensors(r);
	ret = t ? load_verify_tensors(r, t, r->info.tensors, &vr) : -ENOMEM;
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
		cli_json_double(stdout, load_gbps(res.bytes, (double)res.wall_ns * 1e-9));
		printf(",\"cpu_seconds\":");
		cli_json_double(stdout, (double)res.cpu_ns * 1e-9);
		printf(",\"open_seconds\":");
		cli_json_double(stdout, r->open_s);
		print_phases_json(&res);
		load_print_engine_json(r);
		printf(",\"verified\":%s,\"mismatches\":%" PRIu64 "}\n",
		       r->o.verify ? "true" : "false", vr.mismatches);
	} else {
		printf("model      %s: %u tensors, %u layers, %s of data\n", r->o.path,
		       r->info.tensors, r->info.layers, cli_human_bytes(r->info.data_size, h));
		printf("target     %s\n", load_target_name(r, tn, sizeof(tn)));
		printf("path       %s (%s)\n", p2pio_path_name(r->pi.path), r->pi.why);
		printf("load       %s in %.3f s = %.2f GB/s, %" PRIu64 " reads, %s cache%s\n",
		       cli_human_bytes(res.bytes, h), (double)res.wall_ns * 1e-9,
		       load_gbps(res.bytes, (double)res.wall_ns * 1e-9), res.reads,
		       r->o.cold ? "cold" : "warm", round ? " (again, same arena)" : "");
		printf("cpu        %.3f s (%.3f s per GiB)\n", (double)res.cpu_ns * 1e-9,
		       (double)res.cpu_ns * 1e-9 / ((double)res.bytes / (1 << 30)));
		print_phases(&res);
		load_print_verify(r, &vr);
	}
	return vr.mismatches ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* The baseline: mmap the file and copy tensor by tensor, as llama.cpp does by default. */
int load_run_mmap(struct load_run *r)
{
	struct p2pio_model_tensor *t = load_all_tensors(r);
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
	t0 = load_now_s();
	c0 = load_cpu_s();
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
	wall = load_now_s() - t0;
	cpu = load_cpu_s() - c0;
	if (!ret)
		ret = load_verify_tensors(r, t, r->info.tensors, &vr);
	if (!ret) {
		if (r->o.json) {
			printf("{\"mode\":\"mmap\",\"cold\":%s,\"bytes\":%" PRIu64 ",\"seconds\":",
			       r->o.cold ? "true" : "false", bytes);
			cli_json_double(stdout, wall);
			printf(",\"gbps\":");
			cli_json_double(stdout, load_gbps(bytes, wall));
			printf(",\"cpu_seconds\":");
			cli_json_double(stdout, cpu);
			printf(",\"verified\":%s,\"mismatches\":%" PRIu64 "}\n",
			       r->o.verify ? "true" : "false", vr.mismatches);
		} else {
			printf("mmap       %s tensor by tensor in %.3f s = %.2f GB/s, CPU %.3f s, "
			       "%s cache\n", cli_human_bytes(bytes, h), wall, load_gbps(bytes, wall), cpu,
			       r->o.cold ? "cold" : "warm");
			load_print_verify(r, &vr);
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

