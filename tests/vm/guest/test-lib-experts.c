// SPDX-License-Identifier: MIT
/*
 * test-lib-experts - MoE experts streamed through the P2P path under a budget, every byte
 * of every required expert verified.
 *
 * The guest writes a small gpt-oss-like model (the library's writer, the deterministic
 * pattern; expert slices neither block-aligned nor block-sized) onto an NVMe file system,
 * then, on a host-only context with the NVIDIA test double's memory as the target
 * (P2PIO_MEM_NVDOUBLE, pinned through /dev/p2pio like CUDA memory), opens an expert cache
 * with room for a quarter of the experts and decodes tokens with a drifting routing:
 *  - the dense part landed right;
 *  - every byte of every slice of every required expert is the file's (through the BAR);
 *  - the budget held, experts were evicted and reloaded, chunks were reused;
 *  - the P2P path moved the bytes (the context's per-path statistics);
 *  - again with previous-token prefetch (room for 5 experts), with it and misses read
 *    alone (P2PIO_CTX_URGENT_ALONE), and with the double's BAR1 cut to 1 MiB.
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

#define NLAYERS 4
#define NEXPERTS 8
#define HIDDEN 256
#define FFN 128
#define USED 2
#define TOKENS 16
#define SEED 0x766d6578707274ull

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

static struct p2pio_ctx *ctx_new(uint64_t pin_window, uint32_t flags)
{
	struct p2pio_ctx_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *ctx = NULL;

	p2pio_ctx_opts_init(&o);
	o.device = P2PIO_DEVICE_HOST;
	o.chunk_size = 1 * VM_MIB;
	o.queue_depth = 8;
	o.pin_window = pin_window;
	o.flags = flags;
	if (p2pio_ctx_create(&o, &ctx, &err))
		tap_diag("context: %s", err.msg);
	return ctx;
}

static const struct p2pio_model_opts nvd = { .flags = P2PIO_MODEL_SET_MEM,
					     .mem = P2PIO_MEM_NVDOUBLE };

static void route(uint32_t token, uint32_t layer, uint32_t *ids)
{
	ids[0] = (token / 3 + layer * 5) % NEXPERTS;
	ids[1] = (ids[0] + 1 + (token * 7 + layer) % (NEXPERTS - 1)) % NEXPERTS;
}

/* Every byte of every slice of (layer, expert), through the BAR; 0 when all match. */
static int check_expert(struct p2pio_experts *x, uint32_t layer, uint32_t expert)
{
	struct p2pio_expert_slice s[8];
	const uint8_t *host = p2pio_experts_host(x, layer, expert);
	uint64_t bad = 0;
	int n, i;

	n = p2pio_experts_slices(x, layer, expert, s, 8);
	if (!host || n <= 0 || n > 8) {
		tap_diag("layer %u expert %u: no CPU view (%d slices)", layer, expert, n);
		return 1;
	}
	for (i = 0; i < n; i++)
		if (!p2pio_pattern_check(SEED, s[i].file_offset, host + s[i].offset, s[i].size,
					 &bad)) {
			tap_diag("layer %u expert %u %s differs at file offset %llu", layer, expert,
				 s[i].name, (unsigned long long)bad);
			return 1;
		}
	return 0;
}

static void test_decode(struct p2pio_ctx *ctx, const char *path, uint32_t flags, uint32_t capacity,
			const char *what)
{
	struct p2pio_ctx_stats before = { .size = sizeof(before) }, after = { .size = sizeof(after) };
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_experts_io io = { .size = sizeof(io) };
	struct p2pio_experts_info info;
	struct p2pio_experts_opts o;
	struct p2pio_model_tensor t;
	struct p2pio_error err = { 0 };
	struct p2pio_experts *x;
	struct p2pio_model *m;
	uint32_t tok, l, i, ids[USED];
	uint64_t ptr[USED], p2p_bytes;
	int errs = 0, bad = 0;

	if (p2pio_model_open(ctx, path, &nvd, &m, &err)) {
		tap_ok(0, "%s: model opens: %s", what, err.msg);
		return;
	}
	if (p2pio_experts_open(m, NULL, &x, &err)) {
		tap_ok(0, "%s: cache opens: %s", what, err.msg);
		p2pio_model_close(m);
		return;
	}
	p2pio_experts_info(x, &info);
	p2pio_experts_close(x);
	p2pio_ctx_stats(ctx, &before, false);
	p2pio_experts_opts_init(&o);
	o.budget = info.dense_bytes + capacity * info.expert_bytes;
	o.flags = flags;
	if (p2pio_experts_open(m, &o, &x, &err)) {
		tap_ok(0, "%s: cache opens with a quarter budget: %s", what, err.msg);
		p2pio_model_close(m);
		return;
	}
	p2pio_experts_stats(x, NULL, &io, false);
	tap_ok(io.committed == 0 && io.dense_bytes > 0,
	       "%s: dense part loaded, no expert memory committed at open", what);
	tap_ok(p2pio_experts_tensor(x, "blk.1.attn_q.weight", &t) == 0 && t.host &&
	       p2pio_pattern_check(SEED, t.file_offset, t.host, t.size, NULL),
	       "%s: a dense tensor landed right", what);
	for (tok = 0; tok < TOKENS; tok++) {
		p2pio_experts_token_begin(x);
		for (l = 0; l < NLAYERS; l++) {
			route(tok, l, ids);
			if (p2pio_experts_require(x, l, ids, USED, NULL, ptr)) {
				errs++;
				continue;
			}
			for (i = 0; i < USED; i++)
				bad += check_expert(x, l, ids[i]);
			if (p2pio_experts_release(x, l, ids, USED, NULL))
				errs++;
		}
		if (p2pio_experts_token_end(x))
			errs++;
	}
	p2pio_experts_stats(x, &st, &io, false);
	p2pio_experts_close(x);
	p2pio_ctx_stats(ctx, &after, false);
	p2p_bytes = after.path[P2PIO_PATH_P2P].bytes - before.path[P2PIO_PATH_P2P].bytes;
	tap_is_int(errs, 0, "%s: %d tokens x %d layers required and released", what, TOKENS,
		   NLAYERS);
	tap_is_int(bad, 0, "%s: every byte of every required expert is the file's", what);
	tap_ok(st.misses > 0 && st.evictions > 0 && io.peak <= capacity * info.expert_bytes &&
	       io.creates <= capacity,
	       "%s: %llu hits, %llu misses, %llu evictions, %llu prefetches; peak %llu of %llu "
	       "bytes, %llu chunks for %llu loads", what, (unsigned long long)st.hits,
	       (unsigned long long)st.misses, (unsigned long long)st.evictions,
	       (unsigned long long)st.prefetches, (unsigned long long)io.peak,
	       (unsigned long long)(capacity * info.expert_bytes),
	       (unsigned long long)io.creates, (unsigned long long)io.loads);
	if (flags & P2PIO_EXPERTS_PREFETCH_PREV)
		tap_ok(st.prefetches > 0 && st.prefetch_used > 0,
		       "%s: the previous token's routing was prefetched (%llu, %llu used)", what,
		       (unsigned long long)st.prefetches, (unsigned long long)st.prefetch_used);
	if (flags & P2PIO_EXPERTS_PREFETCH_LEARNED)
		tap_ok(st.prefetches > 0 && st.loads == st.misses + st.prefetches,
		       "%s: the learned predictor's experts were prefetched (%llu, %llu used)",
		       what, (unsigned long long)st.prefetches,
		       (unsigned long long)st.prefetch_used);
	tap_ok(p2p_bytes >= io.bytes && io.bytes > 0 &&
	       after.path[P2PIO_PATH_BOUNCE].bytes == before.path[P2PIO_PATH_BOUNCE].bytes,
	       "%s: the P2P path moved the experts' %llu bytes (P2P counted %llu)", what,
	       (unsigned long long)io.bytes, (unsigned long long)p2p_bytes);
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
	while (vm_file_next(&cur, &vf))
		if (vf.name[0] == 'a' && !strcmp(vf.kind, "data")) {
			snprintf(path, sizeof(path), "%s/p2pio-experts.gguf", vf.mnt);
			break;
		}
	if (!path[0])
		tap_skip_all("no NVMe file system in /etc/vm-files");
	if (model_fixture_write_moe(path, NLAYERS, NEXPERTS, HIDDEN, FFN, SEED))
		tap_bail("cannot write the model");
	drop_cache(path);
	ctx = ctx_new(0, 0);
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
	test_decode(ctx, path, 0, NLAYERS * NEXPERTS / 4, "lru");
	test_decode(ctx, path, P2PIO_EXPERTS_PREFETCH_PREV, 5, "lru+prev");
	test_decode(ctx, path, P2PIO_EXPERTS_PREFETCH_LEARNED, 5, "lru+learned");
	p2pio_ctx_destroy(ctx);
	/* Misses read alone: P2P holds the prefetches back while a miss is at the device. */
	ctx = ctx_new(0, P2PIO_CTX_URGENT_ALONE);
	if (ctx)
		test_decode(ctx, path, P2PIO_EXPERTS_PREFETCH_PREV, 5, "lru+prev, urgent alone");
	else
		tap_ok(0, "a context with P2PIO_CTX_URGENT_ALONE");
	p2pio_ctx_destroy(ctx);
	ctx = ctx_new(256 * VM_KIB, 0);
	if (ctx && !vm_nvd_set_bar1_kib(1024)) {
		tap_diag("the double's BAR1 aperture cut to 1 MiB, 256 KiB pin windows");
		test_decode(ctx, path, 0, NLAYERS * NEXPERTS / 4, "small BAR1");
		vm_nvd_set_bar1_kib(0);
	} else {
		tap_ok(0, "a context with small windows and a 1 MiB BAR1 aperture");
	}
	p2pio_ctx_destroy(ctx);
	unlink(path);
	return tap_exit();
}
