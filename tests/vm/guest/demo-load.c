// SPDX-License-Identifier: MIT
/*
 * demo-load - the guest side of `make demo`, through libp2pio: opens the GGUF model on a
 * context whose target is the NVIDIA test double's "GPU memory" (P2PIO_MEM_NVDOUBLE,
 * pinned through /dev/p2pio like CUDA memory), loads it whole, then streams its layers
 * through the default budget (a quarter of the model, at least two slots) for a few
 * passes, and reports what happened: path and
 * why, bytes, MB/s, slots, reuse, stalls, and the module's commands and splits.
 *
 * Verification: after the whole load the host compares every tensor in the BAR with the
 * model file it generated; every streamed layer (and the resident tensors) is checked
 * against the model's deterministic pattern through the BAR's CPU mapping.
 * /etc/demo-model holds the model's path. Linked with libp2pio.a.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2pio.h"
#include "tap.h"
#include "vmlib.h"

#define PASSES 3

static const struct p2pio_model_opts nvd_mem = { .flags = P2PIO_MODEL_SET_MEM,
						 .mem = P2PIO_MEM_NVDOUBLE };

/* Tensors whose bytes differ from the model's pattern (checked through the CPU mapping). */
static int pattern_bad(uint64_t seed, const struct p2pio_model_tensor *t, uint32_t n)
{
	uint64_t bad_off;
	int bad = 0;
	uint32_t i;

	for (i = 0; i < n; i++)
		if (!t[i].host || !p2pio_pattern_check(seed, t[i].file_offset, t[i].host, t[i].size,
						       &bad_off))
			bad++;
	return bad;
}

static void global_stats(int pfd, struct p2pio_stats *s)
{
	vm_p2p_stats(pfd, P2PIO_STATS_GLOBAL, s);
}

static void load_whole(struct p2pio_ctx *ctx, const char *path, int pfd, int nvd)
{
	struct p2pio_path_info pi = { .size = sizeof(pi) };
	struct p2pio_error err = { 0 };
	struct p2pio_load_result res = { .size = sizeof(res) };
	struct p2pio_model_info info;
	struct p2pio_model_tensor t;
	struct p2pio_stats s0, s1;
	struct p2pio_model *m;
	struct vm_mem arena;
	uint32_t i;
	int ret;

	if (p2pio_model_open(ctx, path, &nvd_mem, &m, &err)) {
		tap_ok(0, "open %s: %s", path, err.msg);
		return;
	}
	p2pio_model_info(m, &info);
	p2pio_path_info(p2pio_model_file(m), &pi);
	tap_ok(pi.path == P2PIO_PATH_P2P, "the library takes the P2P path (%s: %s)",
	       p2pio_path_name(pi.path), pi.why);
	global_stats(pfd, &s0);
	ret = p2pio_model_load(m, NULL, &res);
	global_stats(pfd, &s1);
	tap_is_int(ret, 0, "whole-model load into the double's GPU memory");

	/* the host compares every tensor with the model file it wrote */
	ret = ret ? ret : vm_gpu_lookup(nvd, res.arena, res.arena_bytes, &arena);
	for (i = 0; !ret && i < info.tensors; i++) {
		p2pio_model_tensor_at(m, i, &t);
		vm_mem_expect_file(&arena, t.addr - res.arena, t.size, "model.gguf", t.file_offset);
	}
	if (!tap_ok(!ret && !vm_host_sync(), "the host found every byte of all %u tensors in the BAR",
		    info.tensors))
		tap_diag("%s", ret ? strerror(-ret) : vm_host_why());
	if (!ret)
		vm_mem_release(&arena);

	tap_diag("model     %s: %u tensors, %u layers, %.2f MiB of data", path, info.tensors,
		 info.layers, info.data_size / 1048576.0);
	tap_diag("path      %s (%s)", p2pio_path_name(pi.path), pi.why);
	tap_diag("load      %.2f MiB in %llu reads, %.1f ms, %.1f MB/s (emulated NVMe under TCG: not a hardware figure)",
		 res.bytes / 1048576.0, (unsigned long long)res.reads, res.wall_ns / 1e6,
		 res.wall_ns ? res.bytes * 1e3 / res.wall_ns : 0.0);
	tap_diag("module    %llu NVMe commands, %llu splits, %llu errors",
		 (unsigned long long)(s1.commands - s0.commands),
		 (unsigned long long)(s1.splits - s0.splits),
		 (unsigned long long)(s1.errors - s0.errors));
	p2pio_model_close(m);
}

static void stream(struct p2pio_ctx *ctx, const char *path, int pfd)
{
	struct p2pio_streamer_opts so = { 0 };
	struct p2pio_error err = { 0 };
	struct p2pio_stream_stats st;
	struct p2pio_model_info info;
	struct p2pio_model_tensor t;
	struct p2pio_stats s0, s1;
	struct p2pio_streamer *s;
	struct p2pio_model *m;
	struct p2pio_layer l;
	uint32_t p, i, bad = 0, errs = 0, ti;

	if (p2pio_model_open(ctx, path, &nvd_mem, &m, &err)) {
		tap_ok(0, "open %s: %s", path, err.msg);
		return;
	}
	p2pio_model_info(m, &info);
	global_stats(pfd, &s0);
	if (p2pio_streamer_open(m, &so, &s, &err)) {
		tap_ok(0, "streamer: %s", err.msg);
		p2pio_model_close(m);
		return;
	}
	for (ti = 0; ti < info.tensors; ti++) {
		p2pio_model_tensor_at(m, ti, &t);
		if (t.layer < 0 && !p2pio_streamer_tensor(s, t.name, &t))
			bad += pattern_bad(info.pattern_seed, &t, 1);
	}
	for (p = 0; p < PASSES; p++)
		for (i = 0; i < info.layers; i++) {
			if (p2pio_streamer_acquire(s, i, NULL, &l)) {
				errs++;
				continue;
			}
			bad += pattern_bad(info.pattern_seed, l.tensors, l.ntensors);
			errs += p2pio_streamer_release(s, i, NULL) != 0;
		}
	p2pio_streamer_stats(s, &st, NULL, 0);
	global_stats(pfd, &s1);
	tap_ok(!errs, "%u passes over %u layers with %u slots", PASSES, info.layers,
	       p2pio_streamer_slots(s));
	tap_ok(info.has_seed && !bad,
	       "every byte of every streamed layer and resident tensor matches the model");
	tap_diag("stream    default budget (a quarter, at least two slots): %.2f MiB resident + %u slots of %.2f MiB, %u passes, %llu loads, %llu slot reuses, %llu hits",
		 info.resident_bytes / 1048576.0, p2pio_streamer_slots(s),
		 info.slot_bytes / 1048576.0, PASSES,
		 (unsigned long long)st.loads, (unsigned long long)st.reuses,
		 (unsigned long long)st.hits);
	tap_diag("stream    %.2f MiB read, stalls %.1f ms; module: %llu commands, %llu splits, %llu errors",
		 st.bytes / 1048576.0, st.stall_ns / 1e6,
		 (unsigned long long)(s1.commands - s0.commands),
		 (unsigned long long)(s1.splits - s0.splits),
		 (unsigned long long)(s1.errors - s0.errors));
	p2pio_streamer_close(s);
	p2pio_model_close(m);
}

int main(void)
{
	struct p2pio_error err = { 0 };
	struct p2pio_ctx_opts o;
	struct p2pio_ctx *ctx = NULL;
	char path[256] = "";
	int pfd, nvd;
	FILE *f;

	tap_plan_lazy();
	f = fopen("/etc/demo-model", "r");
	if (!f || !fgets(path, sizeof(path), f))
		tap_bail("no /etc/demo-model");
	fclose(f);
	path[strcspn(path, "\n")] = 0;
	pfd = vm_p2p_open();		/* for the module's counters */
	nvd = vm_nvd_open();		/* for the BAR pages of the library's memory */
	if (pfd < 0 || nvd < 0)
		tap_bail("no /dev/p2pio or /dev/nvdouble");

	p2pio_ctx_opts_init(&o);
	o.device = P2PIO_DEVICE_HOST;	/* AUTO path: the library says which and why */
	if (p2pio_ctx_create(&o, &ctx, &err))
		tap_bail(err.msg);
	load_whole(ctx, path, pfd, nvd);
	stream(ctx, path, pfd);
	p2pio_ctx_destroy(ctx);
	close(nvd);
	close(pfd);
	return tap_exit();
}
