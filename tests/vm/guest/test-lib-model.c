// SPDX-License-Identifier: MIT
/*
 * test-lib-model - a model streamed through the P2P path, every layer verified.
 *
 * The guest writes a small synthetic GGUF model (the library's writer, the deterministic
 * pattern) onto an NVMe file system, then, on a host-only context with the NVIDIA test
 * double's memory as the target (P2PIO_MEM_NVDOUBLE, pinned through /dev/p2pio like CUDA
 * memory):
 *  - AUTO takes P2P for the model file;
 *  - a whole-model load lands every byte of every tensor (checked through the BAR mapping);
 *  - streaming with a quarter budget, three passes: every byte of every acquired layer and
 *    of the resident tensors is the file's, slots are reused, and the P2P path moved the
 *    bytes (the context's per-path statistics);
 *  - both again with the double's BAR1 aperture cut to 1 MiB, far below the model's size.
 *
 * Linked with libp2pio.a (tests/vm/Makefile's rule for test-lib-*.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2pio.h"
#include "model_fixture.h"
#include "tap.h"
#include "vmlib.h"

#define NLAYERS 12
#define PASSES 3
#define SEED 0x766d6d6f64656cull

/* AUTO prefers POSIX for a file in the page cache: the model was just written. */
static void drop_cache(const char *path)
{
	int fd;

	sync();
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "3\n", 2) != 2)
			tap_diag("drop_caches: %s", strerror(errno));
		close(fd);
	}
}

/* Layers of about 1 MB whose tensors are only 32-byte aligned, and differ in size. */
static int write_model(const char *path)
{
	static const struct model_fixture_shape shape = {
		.embd_rows = 97, .q_rows = 60, .q_step = 5, .up_rows = 170, .out_rows = 50,
	};
	int ret = model_fixture_write_shape(path, NLAYERS, SEED, &shape);

	if (!ret)
		drop_cache(path);
	return ret;
}

/* Every byte of @n tensors, through their CPU (BAR) mapping; the count that differ. */
static int check(const struct p2pio_model_tensor *t, uint32_t n)
{
	uint64_t bad_off = 0;
	int bad = 0;
	uint32_t i;

	for (i = 0; i < n; i++) {
		if (t[i].host && p2pio_pattern_check(SEED, t[i].file_offset, t[i].host, t[i].size,
						     &bad_off))
			continue;
		if (!bad)
			tap_diag("%s: %s at file offset %llu", t[i].name,
				 t[i].host ? "differs" : "no CPU mapping",
				 (unsigned long long)bad_off);
		bad++;
	}
	return bad;
}

static struct p2pio_ctx *ctx_new(uint64_t pin_window)
{
	struct p2pio_ctx_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *ctx = NULL;

	p2pio_ctx_opts_init(&o);
	o.device = P2PIO_DEVICE_HOST;
	o.chunk_size = 1 * VM_MIB;
	o.queue_depth = 8;
	o.pin_window = pin_window;
	if (p2pio_ctx_create(&o, &ctx, &err))
		tap_diag("context: %s", err.msg);
	return ctx;
}

static const struct p2pio_model_opts nvd = { .flags = P2PIO_MODEL_SET_MEM,
					     .mem = P2PIO_MEM_NVDOUBLE };

static void test_whole(struct p2pio_ctx *ctx, const char *path)
{
	struct p2pio_error err = { 0 };
	struct p2pio_model_info info;
	struct p2pio_model_tensor *t;
	struct p2pio_model *m;
	uint32_t i;
	int ret;

	if (p2pio_model_open(ctx, path, &nvd, &m, &err)) {
		tap_ok(0, "model opens: %s", err.msg);
		return;
	}
	p2pio_model_info(m, &info);
	ret = p2pio_model_load(m, NULL, NULL);
	tap_is_int(ret, 0, "whole-model load into the double's GPU memory");
	t = calloc(info.tensors, sizeof(*t));
	for (i = 0; t && i < info.tensors; i++)
		p2pio_model_tensor_at(m, i, &t[i]);
	tap_is_int(ret || !t ? -1 : check(t, info.tensors), 0,
		   "every byte of all %u tensors is the file's", info.tensors);
	free(t);
	p2pio_model_close(m);
}

static void test_stream(struct p2pio_ctx *ctx, const char *path)
{
	struct p2pio_streamer_opts so = { 0 };
	struct p2pio_ctx_stats before = { .size = sizeof(before) }, after = { .size = sizeof(after) };
	struct p2pio_stream_stats st;
	struct p2pio_error err = { 0 };
	struct p2pio_model_info info;
	struct p2pio_model_tensor t;
	struct p2pio_streamer *s;
	struct p2pio_model *m;
	struct p2pio_layer l;
	int p, i, bad = 0, errs = 0;
	uint64_t p2p_bytes;

	if (p2pio_model_open(ctx, path, &nvd, &m, &err)) {
		tap_ok(0, "model opens: %s", err.msg);
		return;
	}
	p2pio_model_info(m, &info);
	p2pio_ctx_stats(ctx, &before, false);
	so.budget = info.resident_bytes + info.slot_bytes * NLAYERS / 4;
	if (p2pio_streamer_open(m, &so, &s, &err)) {
		tap_ok(0, "streamer opens: %s", err.msg);
		p2pio_model_close(m);
		return;
	}
	tap_ok(p2pio_streamer_slots(s) == NLAYERS / 4, "a quarter budget gives %u slots",
	       p2pio_streamer_slots(s));
	tap_ok(p2pio_streamer_tensor(s, "token_embd.weight", &t) == 0 && check(&t, 1) == 0,
	       "the resident tensors landed right");
	for (p = 0; p < PASSES; p++)
		for (i = 0; i < NLAYERS; i++) {
			if (p2pio_streamer_acquire(s, (uint32_t)i, NULL, &l)) {
				errs++;
				continue;
			}
			bad += check(l.tensors, l.ntensors);
			if (p2pio_streamer_release(s, (uint32_t)i, NULL))
				errs++;
		}
	p2pio_streamer_stats(s, &st, NULL, 0);
	/*
	 * The streamer counts a load's bytes when it submits them, the context when they
	 * complete; the prefetcher may still have a layer in flight here. Closing waits for
	 * every load, so the context's counters are complete after it.
	 */
	p2pio_streamer_close(s);
	p2pio_ctx_stats(ctx, &after, false);
	p2p_bytes = after.path[P2PIO_PATH_P2P].bytes - before.path[P2PIO_PATH_P2P].bytes;
	tap_is_int(errs, 0, "%d passes of %d layers acquired and released", PASSES, NLAYERS);
	tap_is_int(bad, 0, "every byte of every acquired layer is the file's");
	tap_ok(st.reuses > 0 && st.loads >= PASSES * NLAYERS - 3,
	       "slots reused %llu times over %llu loads", (unsigned long long)st.reuses,
	       (unsigned long long)st.loads);
	tap_ok(p2p_bytes >= st.bytes && after.path[P2PIO_PATH_BOUNCE].bytes ==
					       before.path[P2PIO_PATH_BOUNCE].bytes,
	       "the P2P path moved all %llu bytes (P2P counted %llu)",
	       (unsigned long long)st.bytes, (unsigned long long)p2p_bytes);
	p2pio_model_close(m);
}

int main(void)
{
	struct p2pio_path_info pi = { .size = sizeof(pi) };
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *ctx;
	struct p2pio_model *m;
	struct vm_file vf;
	char path[224] = "";
	int cur = 0;

	tap_plan_lazy();
	/* A file system on an emulated NVMe namespace (its test files are named a*, b*). */
	while (vm_file_next(&cur, &vf))
		if (vf.name[0] == 'a' && !strcmp(vf.kind, "data")) {
			snprintf(path, sizeof(path), "%s/p2pio-model-stream.gguf", vf.mnt);
			break;
		}
	if (!path[0])
		tap_skip_all("no NVMe file system in /etc/vm-files");
	if (write_model(path))
		tap_bail("cannot write the model");
	ctx = ctx_new(0);
	if (!ctx)
		tap_bail("no context");
	if (p2pio_model_open(ctx, path, &nvd, &m, &err) == 0) {
		p2pio_path_info(p2pio_model_file(m), &pi);
		tap_ok(pi.path == P2PIO_PATH_P2P, "AUTO takes P2P for the model (%s: %s)",
		       p2pio_path_name(pi.path), pi.why);
		p2pio_model_close(m);
	} else {
		tap_ok(0, "model opens: %s", err.msg);
	}
	test_whole(ctx, path);
	test_stream(ctx, path);
	p2pio_ctx_destroy(ctx);
	/*
	 * Again with BAR1 far smaller than the model (1 MiB, 256 KiB pin windows): the whole
	 * load and the streamer's two submitting threads keep unpinning idle windows.
	 */
	ctx = ctx_new(256 * VM_KIB);
	if (ctx && !vm_nvd_set_bar1_kib(1024)) {
		tap_diag("the double's BAR1 aperture cut to 1 MiB, 256 KiB pin windows");
		test_whole(ctx, path);
		test_stream(ctx, path);
		vm_nvd_set_bar1_kib(0);
	} else {
		tap_ok(0, "a context with small windows and a 1 MiB BAR1 aperture");
	}
	p2pio_ctx_destroy(ctx);
	unlink(path);
	return tap_exit();
}
