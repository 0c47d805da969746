// SPDX-License-Identifier: MIT
/*
 * test-model-stream.c - whole-model load and layer streaming into host memory, on every
 * engine path: every byte of every tensor landed checked against the generator, the
 * budget turned into slots, slots reused, statistics consistent, misuse refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2pio.h"
#include "model_fixture.h"
#include "tap.h"

#define NLAYERS 8
#define SEED 0x5eed0f2b10ull
#define PASSES 3

static char model_path[PATH_MAX];

static void cleanup(void)
{
	if (model_path[0])
		unlink(model_path);
}

/* Every byte of @n tensors in host memory against the pattern; the bad count. */
static int check_tensors(const struct p2pio_model_tensor *t, uint32_t n)
{
	uint64_t bad_off;
	int bad = 0;
	uint32_t i;

	for (i = 0; i < n; i++) {
		if (!t[i].addr || t[i].host != (void *)(uintptr_t)t[i].addr ||
		    !p2pio_pattern_check(SEED, t[i].file_offset, t[i].host, t[i].size, &bad_off)) {
			if (!bad)
				tap_diag("  %s differs at file offset %llu", t[i].name,
					 (unsigned long long)(t[i].addr ? bad_off : 0));
			bad++;
		}
	}
	return bad;
}

struct progress {
	int calls;
	uint64_t last;
	uint64_t total;
	bool monotonic;
};

static int on_progress(void *arg, uint64_t done, uint64_t total)
{
	struct progress *p = arg;

	p->calls++;
	if (done < p->last || done > total)
		p->monotonic = false;
	p->last = done;
	p->total = total;
	return 0;
}

static int cancel_progress(void *arg, uint64_t done, uint64_t total)
{
	(void)arg;
	(void)done;
	(void)total;
	return 1;
}

static struct p2pio_ctx *host_ctx(enum p2pio_path path)
{
	struct p2pio_ctx_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *ctx;

	p2pio_ctx_opts_init(&o);
	o.device = P2PIO_DEVICE_HOST;
	o.path = path;
	/* Small chunks, so that a layer takes several engine reads. */
	o.chunk_size = 64 << 10;
	if (p2pio_ctx_create(&o, &ctx, &err)) {
		tap_diag("context: %s", err.msg);
		return NULL;
	}
	return ctx;
}

static void test_whole(struct p2pio_ctx *ctx, const char *pname)
{
	struct p2pio_model_load_opts lo = { .chunk = 8192 };
	struct progress pr = { .monotonic = true };
	struct p2pio_verify_result vr;
	struct p2pio_error err = { 0 };
	struct p2pio_model_tensor t, *all;
	struct p2pio_load_result res = { .size = sizeof(res) };
	struct p2pio_model_info info;
	struct p2pio_verifier *v;
	struct p2pio_model *m;
	uint64_t total = 0;
	uint32_t i;
	int ret;

	ret = p2pio_model_open(ctx, model_path, NULL, &m, &err);
	if (!tap_ok(ret == 0, "%s: model opens", pname)) {
		tap_diag("  %s", err.msg);
		return;
	}
	p2pio_model_info(m, &info);
	tap_ok(info.layers == NLAYERS && info.has_seed && info.pattern_seed == SEED,
	       "%s: %u layers, pattern seed found", pname, info.layers);
	/* The model's own header: the same tensors, at the same offsets, with dimensions. */
	{
		struct p2pio_gguf *g = p2pio_model_gguf(m);
		const struct p2pio_gguf_tensor *gt;
		bool same = g && p2pio_gguf_tensor_count(g) == info.tensors &&
			    p2pio_gguf_file_size(g) == info.file_size;

		for (i = 0; same && i < info.tensors; i++) {
			p2pio_model_tensor_at(m, i, &t);
			gt = p2pio_gguf_tensor_by_name(g, t.name);
			same = gt && gt->n_dims >= 1 && gt->size == t.size &&
			       gt->file_offset == t.file_offset && gt->type == t.type;
		}
		tap_ok(same, "%s: p2pio_model_gguf() is the model's header: %u tensors, sizes, "
		       "offsets and types alike", pname, info.tensors);
	}
	/* The result grows at the end: its size must be set, and nothing past it is written. */
	{
		struct {
			struct p2pio_load_result r;
			unsigned char canary[64];
		} old = { .r.size = 0 };

		tap_is_int(p2pio_model_load(m, NULL, &old.r), -EINVAL,
			   "%s: a result without its size is refused", pname);
		memset(&old, 0xa5, sizeof(old));
		old.r.size = offsetof(struct p2pio_load_result, first_ns);
		ret = p2pio_model_load(m, NULL, &old.r);
		tap_ok(ret == 0 && old.r.size == offsetof(struct p2pio_load_result, first_ns) &&
			       old.r.bytes > 0 && old.r.reads > 0 &&
			       old.r.first_ns == 0xa5a5a5a5a5a5a5a5ull &&
			       old.r.mid_bytes == 0xa5a5a5a5a5a5a5a5ull && old.canary[0] == 0xa5,
		       "%s: a caller's older, shorter result gets its fields and no more", pname);
	}
	lo.progress = on_progress;
	lo.progress_arg = &pr;
	ret = p2pio_model_load(m, &lo, &res);
	tap_is_int(ret, 0, "%s: whole load", pname);
	tap_ok(pr.calls > 1 && pr.monotonic && pr.last == pr.total && pr.total == res.bytes,
	       "%s: progress rose to the total over %d calls", pname, pr.calls);
	/* The data section runs to the end of the file; the arena starts at its block. */
	tap_ok(res.reads > 1 && res.bytes == res.arena_bytes &&
		       res.bytes == info.file_size - (info.data_offset & ~4095ull),
	       "%s: %llu bytes (the data section from its block on) in %llu reads", pname,
	       (unsigned long long)res.bytes, (unsigned long long)res.reads);
	/* The phases come in order, and the middle holds eight tenths of the bytes. */
	tap_ok(res.first_ns > 0 && res.first_ns <= res.mid_start_ns &&
		       res.mid_start_ns < res.mid_end_ns && res.mid_end_ns <= res.wall_ns &&
		       res.last_submit_ns > 0 && res.last_submit_ns <= res.wall_ns,
	       "%s: phases in order: first read %llu ns, a tenth %llu, nine tenths %llu, "
	       "end %llu ns", pname, (unsigned long long)res.first_ns,
	       (unsigned long long)res.mid_start_ns, (unsigned long long)res.mid_end_ns,
	       (unsigned long long)res.wall_ns);
	/* Completions come in batches of at most 32 reads of one chunk each. */
	tap_ok(res.mid_bytes + 32 * lo.chunk > res.bytes * 8 / 10 &&
		       res.mid_bytes < res.bytes * 8 / 10 + 32 * lo.chunk,
	       "%s: the middle is eight tenths of the bytes, to a batch (%llu of %llu)", pname,
	       (unsigned long long)res.mid_bytes, (unsigned long long)res.bytes);
	all = calloc(info.tensors, sizeof(*all));
	for (i = 0; i < info.tensors; i++) {
		p2pio_model_tensor_at(m, i, &all[i]);
		total += all[i].size;
	}
	tap_is_int(check_tensors(all, info.tensors), 0,
		   "%s: every byte of every tensor is the file's", pname);
	tap_ok(p2pio_model_tensor(m, "blk.3.attn_q.weight", &t) == 0 && t.layer == 3 &&
		       t.addr - res.arena == t.file_offset - (info.data_offset & ~4095ull),
	       "%s: lookup by name; tensors sit at their file-relative offsets", pname);
	tap_is_int(p2pio_model_tensor(m, "blk.99.nothing", &t), -ENOENT,
		   "%s: unknown name is -ENOENT", pname);

	ret = p2pio_verifier_open(ctx, SEED, &v, &err);
	tap_is_int(ret, 0, "%s: host verifier opens", pname);
	if (!ret) {
		p2pio_verifier_check(v, all, info.tensors, NULL, 0);
		p2pio_verifier_result(v, &vr, true);
		tap_ok(vr.bytes == total && vr.mismatches == 0 &&
			       vr.first_mismatch == P2PIO_NO_OFFSET && vr.checksum != 0,
		       "%s: verifier read %llu bytes, no mismatch", pname,
		       (unsigned long long)vr.bytes);
		/* The verifier must see damage: flip one byte in the middle of a tensor. */
		p2pio_model_tensor(m, "blk.5.ffn_up.weight", &t);
		((uint8_t *)t.host)[777] ^= 0x40;
		p2pio_verifier_check(v, all, info.tensors, NULL, 0);
		p2pio_verifier_result(v, &vr, true);
		tap_ok(vr.mismatches == 1 && vr.first_mismatch == t.file_offset + 777,
		       "%s: a flipped byte is found at its file offset", pname);
		p2pio_verifier_close(v);
	} else {
		tap_skip(2, "no verifier");
	}
	free(all);

	lo.progress = cancel_progress;
	tap_is_int(p2pio_model_load(m, &lo, NULL), -ECANCELED,
		   "%s: a progress callback can cancel the load", pname);
	p2pio_model_close(m);
}

static void stream_passes(struct p2pio_streamer *s, const char *what, int *bad, int *errs,
			  uint32_t nslots)
{
	struct p2pio_layer l, l2;
	int p, i;

	for (p = 0; p < PASSES; p++) {
		for (i = 0; i < NLAYERS; i++) {
			if (p2pio_streamer_acquire(s, (uint32_t)i, NULL, &l)) {
				(*errs)++;
				continue;
			}
			if (l.index != (uint32_t)i || l.slot >= nslots || l.ntensors != 4)
				(*errs)++;
			*bad += check_tensors(l.tensors, l.ntensors);
			/* Hold two at once now and then: they must not share a slot. */
			if (nslots > 1 && i + 1 < NLAYERS && (i % 3) == 1) {
				if (p2pio_streamer_acquire(s, (uint32_t)i + 1, NULL, &l2)) {
					(*errs)++;
				} else {
					if (l2.slot == l.slot)
						(*errs)++;
					*bad += check_tensors(l2.tensors, l2.ntensors);
					*bad += check_tensors(l.tensors, l.ntensors);
					p2pio_streamer_release(s, (uint32_t)i + 1, NULL);
				}
			}
			if (p2pio_streamer_release(s, (uint32_t)i, NULL))
				(*errs)++;
		}
	}
	(void)what;
}

static void test_stream(struct p2pio_ctx *ctx, const char *pname, uint32_t flags)
{
	struct p2pio_stream_stats tot, per[NLAYERS];
	struct p2pio_error err = { 0 };
	struct p2pio_model_info info;
	struct p2pio_streamer_opts so = { .flags = flags };
	struct p2pio_model_tensor t;
	struct p2pio_streamer *s;
	struct p2pio_layer l;
	struct p2pio_model *m;
	int bad = 0, errs = 0, i, ret;
	uint64_t acq = 0;
	uint32_t nslots;

	if (p2pio_model_open(ctx, model_path, NULL, &m, &err)) {
		tap_ok(0, "%s: model opens: %s", pname, err.msg);
		return;
	}
	p2pio_model_info(m, &info);
	/* A quarter of the model. */
	so.budget = info.resident_bytes + (info.slot_bytes * NLAYERS) / 4;
	ret = p2pio_streamer_open(m, &so, &s, &err);
	if (!tap_ok(ret == 0, "%s/%#x: streamer opens with a quarter budget", pname, flags)) {
		tap_diag("  %s", err.msg);
		p2pio_model_close(m);
		return;
	}
	nslots = p2pio_streamer_slots(s);
	tap_ok(nslots == NLAYERS / 4, "%s: the budget gives %u slots", pname, nslots);
	tap_ok(p2pio_streamer_tensor(s, "token_embd.weight", &t) == 0 && check_tensors(&t, 1) == 0,
	       "%s: resident tensors are loaded and right", pname);
	tap_is_int(p2pio_streamer_tensor(s, "blk.0.attn_q.weight", &t), -EINVAL,
		   "%s: a layer tensor is not resident", pname);
	tap_is_int(p2pio_model_load(m, NULL, NULL), -EBUSY,
		   "%s: no whole load while streaming", pname);

	stream_passes(s, pname, &bad, &errs, nslots);
	tap_is_int(errs, 0, "%s: %d passes of acquire/release, layers in their slots", pname,
		   PASSES);
	tap_is_int(bad, 0, "%s: every byte of every acquired layer is the file's", pname);

	p2pio_streamer_stats(s, &tot, per, NLAYERS);
	for (i = 0; i < NLAYERS; i++)
		acq += per[i].acquires;
	tap_ok(tot.acquires == acq && tot.acquires >= PASSES * NLAYERS,
	       "%s: %llu acquires, per layer adds up", pname, (unsigned long long)tot.acquires);
	/* Out-of-order acquires (two held at once) may cost a prefetch; never many. */
	tap_ok(tot.loads + tot.hits >= tot.acquires && tot.loads <= tot.acquires + 2 * PASSES,
	       "%s: %llu loads + %llu hits cover the acquires", pname,
	       (unsigned long long)tot.loads, (unsigned long long)tot.hits);
	tap_ok(tot.reuses > 0 && tot.reuses + nslots >= tot.loads,
	       "%s: slots were reused (%llu times)", pname, (unsigned long long)tot.reuses);
	tap_ok(tot.bytes >= info.resident_bytes + (tot.loads - nslots) * 4000 &&
		       tot.wall_ns > 0 && tot.io_ns > 0,
	       "%s: %llu bytes moved, I/O time counted", pname, (unsigned long long)tot.bytes);
	tap_ok(per[3].acquires >= PASSES && per[3].bytes > 0,
	       "%s: per-layer statistics", pname);

	tap_is_int(p2pio_streamer_acquire(s, NLAYERS, NULL, &l), -ERANGE,
		   "%s: no such layer is -ERANGE", pname);
	tap_is_int(p2pio_streamer_release(s, 2, NULL), -EINVAL,
		   "%s: releasing a layer not acquired is -EINVAL", pname);
	if (p2pio_streamer_acquire(s, 2, NULL, &l) == 0) {
		tap_is_int(p2pio_streamer_acquire(s, 2, NULL, &l), -EBUSY,
			   "%s: acquiring a held layer is -EBUSY", pname);
		p2pio_streamer_release(s, 2, NULL);
	} else {
		tap_ok(0, "%s: reacquire", pname);
	}
	p2pio_streamer_reset_stats(s);
	p2pio_streamer_stats(s, &tot, NULL, 0);
	tap_ok(tot.acquires == 0 && tot.bytes == 0, "%s: statistics reset", pname);
	p2pio_streamer_close(s);

	/* Too small a budget says how much is needed. */
	so.budget = info.resident_bytes + info.slot_bytes - 1;
	ret = p2pio_streamer_open(m, &so, &s, &err);
	tap_ok(ret == -ENOSPC && strstr(err.msg, "give at least"),
	       "%s: a budget without room for a layer is refused: %s", pname, err.msg);
	p2pio_model_close(m);
}

/* Open a streamer of @slots slots (and @prefetch, 0: the default) on a fresh model. */
static struct p2pio_streamer *open_slots(struct p2pio_ctx *ctx, struct p2pio_model **m,
					 uint32_t slots, uint32_t prefetch)
{
	struct p2pio_streamer_opts so = { .slots = slots, .prefetch = prefetch };
	struct p2pio_error err = { 0 };
	struct p2pio_streamer *s = NULL;

	if (p2pio_model_open(ctx, model_path, NULL, m, &err))
		return NULL;
	if (p2pio_streamer_open(*m, &so, &s, &err)) {
		tap_diag("streamer: %s", err.msg);
		p2pio_model_close(*m);
		return NULL;
	}
	return s;
}

static void close_slots(struct p2pio_streamer *s, struct p2pio_model *m)
{
	p2pio_streamer_close(s);
	p2pio_model_close(m);
}

/*
 * The default prefetch window: every slot but the acquired layer's, up to 3. With it the
 * first layers of the next pass load during this one (what hides a slow first read after
 * a cache drop at the start of a pass), and p2pio_streamer_wait_prefetch() waits for them.
 */
static void test_prefetch_window(struct p2pio_ctx *ctx, const char *pname)
{
	struct p2pio_stream_stats tot, per[NLAYERS];
	struct p2pio_streamer *s;
	struct p2pio_model *m;
	const char *why = NULL;
	struct p2pio_layer l;
	int bad = 0, errs = 0;
	uint32_t i, n;

	s = open_slots(ctx, &m, 4, 0);
	if (!tap_ok(s != NULL, "%s: a streamer of 4 slots opens", pname))
		return;
	n = p2pio_streamer_prefetch(s, &why);
	tap_ok(n == 3 && why && strstr(why, "default"),
	       "%s: 4 slots: the default window is 3 (%s)", pname, why ? why : "");
	for (i = 0; i < NLAYERS; i++) {
		if (p2pio_streamer_acquire(s, i, NULL, &l)) {
			errs++;
			continue;
		}
		bad += check_tensors(l.tensors, l.ntensors);
		if (p2pio_streamer_release(s, i, NULL))
			errs++;
	}
	tap_is_int(p2pio_streamer_wait_prefetch(s), 0, "%s: waiting for the window", pname);
	p2pio_streamer_stats(s, &tot, per, NLAYERS);
	/* Open loaded 0-3; the pass 4-7 and then the next pass's 0, 1 and 2. */
	tap_ok(errs == 0 && bad == 0 && tot.loads == NLAYERS + 3 && tot.wasted == 0,
	       "%s: a pass is %llu loads: every layer, and the window of the next pass", pname,
	       (unsigned long long)tot.loads);
	tap_ok(per[0].loads == 2 && per[1].loads == 2 && per[2].loads == 2 && per[3].loads == 1,
	       "%s: layers 0-2 were loaded again for the next pass, 3 not yet", pname);
	/* The next pass finds them loaded: acquiring 0 loads only 3, the new end of it. */
	if (p2pio_streamer_acquire(s, 0, NULL, &l) == 0) {
		bad += check_tensors(l.tensors, l.ntensors);
		p2pio_streamer_release(s, 0, NULL);
	}
	p2pio_streamer_stats(s, &tot, per, NLAYERS);
	tap_ok(bad == 0 && per[0].loads == 2 && per[3].loads == 2 && tot.loads == NLAYERS + 4,
	       "%s: the next pass's layer 0 needed no load; 3 started behind it", pname);
	stream_passes(s, pname, &bad, &errs, 4);
	tap_ok(bad == 0 && errs == 0, "%s: passes with the default window are right", pname);
	close_slots(s, m);

	/*
	 * The old default, one layer ahead, given: on a host target (a stream that is idle at
	 * release) the furthest-next-use choice keeps the two other slots' layers, 0 and 1, for
	 * the next pass instead (hits), which the default window gives up.
	 */
	s = open_slots(ctx, &m, 4, 1);
	if (s) {
		n = p2pio_streamer_prefetch(s, &why);
		stream_passes(s, pname, &bad, &errs, 4);
		p2pio_streamer_stats(s, &tot, NULL, 0);
		tap_ok(n == 1 && !strcmp(why, "given") && bad == 0 && errs == 0 && tot.hits > 0,
		       "%s: prefetch 1 given (%s): right, %llu hits", pname, why,
		       (unsigned long long)tot.hits);
		close_slots(s, m);
	}

	/* Tight budgets: two slots leave one ahead, one slot none; a larger ask is capped. */
	s = open_slots(ctx, &m, 2, 0);
	if (s) {
		n = p2pio_streamer_prefetch(s, &why);
		tap_ok(n == 1, "%s: 2 slots: window 1 (%s)", pname, why);
		stream_passes(s, pname, &bad, &errs, 2);
		tap_ok(bad == 0 && errs == 0, "%s: 2 slots stream right", pname);
		close_slots(s, m);
	}
	s = open_slots(ctx, &m, 1, 0);
	if (s) {
		n = p2pio_streamer_prefetch(s, &why);
		tap_ok(n == 0 && strstr(why, "one slot"), "%s: 1 slot: no window (%s)", pname, why);
		stream_passes(s, pname, &bad, &errs, 1);
		tap_ok(bad == 0 && errs == 0, "%s: 1 slot streams right", pname);
		close_slots(s, m);
	}
	s = open_slots(ctx, &m, 4, 10);
	if (s) {
		n = p2pio_streamer_prefetch(s, &why);
		tap_ok(n == 3 && strstr(why, "given 10"), "%s: 10 asked of 4 slots: 3 (%s)", pname,
		       why);
		close_slots(s, m);
	}
	/* More slots than the cap: the rest keep layers, and the next pass hits them. */
	s = open_slots(ctx, &m, 6, 0);
	if (s) {
		n = p2pio_streamer_prefetch(s, &why);
		tap_ok(n == 3 && strstr(why, "at most 3"), "%s: 6 slots: window 3 (%s)", pname,
		       why);
		stream_passes(s, pname, &bad, &errs, 6);
		p2pio_streamer_stats(s, &tot, NULL, 0);
		tap_ok(bad == 0 && errs == 0 && tot.hits > 0,
		       "%s: 6 slots stream right, with %llu hits", pname,
		       (unsigned long long)tot.hits);
		close_slots(s, m);
	}
}

/*
 * The file shrinks under an open streamer (the last layers' bytes are gone): acquiring
 * those layers fails with an error instead of hanging or handing out garbage, the layers
 * still in the file keep working, and close is clean.
 */
static void test_io_error(enum p2pio_path path, const char *pname)
{
	char copy[PATH_MAX + 8];
	struct p2pio_streamer_opts so = { .slots = 2 };
	struct p2pio_error err = { 0 };
	struct p2pio_model_tensor t;
	struct p2pio_streamer *s = NULL;
	struct p2pio_model *m = NULL;
	struct p2pio_ctx *ctx = host_ctx(path);
	struct p2pio_layer l;
	int fd, i, ok = 0, failed = 0, bad = 0, ret;
	char cmd[2 * PATH_MAX + 32];

	snprintf(copy, sizeof(copy), "%s.cut", model_path);
	snprintf(cmd, sizeof(cmd), "cp %s %s", model_path, copy);
	if (!ctx || system(cmd)) {
		tap_skip(4, "no context or copy");
		p2pio_ctx_destroy(ctx);
		return;
	}
	if (p2pio_model_open(ctx, copy, NULL, &m, &err) ||
	    p2pio_streamer_open(m, &so, &s, &err)) {
		tap_ok(0, "%s: streamer on the copy: %s", pname, err.msg);
		goto out;
	}
	/* Cut the file in the middle of layer 5: layers 5.. are (partly) gone. */
	p2pio_model_tensor(m, "blk.5.ffn_up.weight", &t);
	fd = open(copy, O_WRONLY);
	ret = fd >= 0 ? ftruncate(fd, (off_t)t.file_offset + 100) : -1;
	if (fd >= 0) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
	if (ret) {
		tap_skip(4, "ftruncate");
		goto out;
	}
	for (i = 0; i < NLAYERS; i++) {
		ret = p2pio_streamer_acquire(s, (uint32_t)i, NULL, &l);
		if (ret) {
			if (i < 5)
				tap_diag("  layer %d: %s", i, p2pio_strerror(ret));
			failed += i >= 5;
			continue;
		}
		/* Layers 0-2 may have loaded before the cut; 3-4 load from what is left. */
		if (i < 5) {
			ok++;
			bad += check_tensors(l.tensors, l.ntensors);
		}
		p2pio_streamer_release(s, (uint32_t)i, NULL);
	}
	tap_ok(ok == 5 && bad == 0, "%s: layers before the cut load and are right", pname);
	tap_ok(failed >= 2, "%s: %d of the 3 layers past the cut fail instead of hanging", pname,
	       failed);
	/* Layer 4 acquired, the window is 5, past the cut: waiting for it ends. */
	ret = p2pio_streamer_acquire(s, 4, NULL, &l);
	if (!ret)
		p2pio_streamer_release(s, 4, NULL);
	tap_ok(ret == 0 && p2pio_streamer_wait_prefetch(s) == 0,
	       "%s: waiting for a window whose load fails returns", pname);
	ret = p2pio_streamer_acquire(s, 1, NULL, &l);
	tap_ok(ret == 0 && check_tensors(l.tensors, l.ntensors) == 0,
	       "%s: the streamer keeps working after the failures", pname);
	if (!ret)
		p2pio_streamer_release(s, 1, NULL);
out:
	p2pio_streamer_close(s);
	p2pio_model_close(m);
	p2pio_ctx_destroy(ctx);
	unlink(copy);
}

/* Lines of @text that start with @prefix (after the time column). */
static int trace_count(const char *text, const char *prefix)
{
	const char *l = text;
	int n = 0;
	double t;
	int off;

	while (l && *l) {
		if (sscanf(l, "%lf %n", &t, &off) == 1 && !strncmp(l + off, prefix, strlen(prefix)))
			n++;
		l = strchr(l, '\n');
		if (l)
			l++;
	}
	return n;
}

/* P2PIO_STREAM_TRACE: a line per load started and done, acquire and release. */
static void test_trace(struct p2pio_ctx *ctx)
{
	char path[PATH_MAX + 8], text[65536] = "", want[48];
	struct p2pio_error err = { 0 };
	struct p2pio_streamer *s = NULL;
	struct p2pio_model *m = NULL;
	struct p2pio_layer l;
	int i, errs = 0, acq = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s.trace", model_path);
	setenv("P2PIO_STREAM_TRACE", path, 1);
	if (p2pio_model_open(ctx, model_path, NULL, &m, &err) ||
	    p2pio_streamer_open(m, NULL, &s, &err)) {
		tap_ok(0, "trace: streamer opens: %s", err.msg);
		goto out;
	}
	unsetenv("P2PIO_STREAM_TRACE");
	for (i = 0; i < NLAYERS; i++) {
		errs += p2pio_streamer_acquire(s, (uint32_t)i, NULL, &l) != 0;
		errs += p2pio_streamer_release(s, (uint32_t)i, NULL) != 0;
	}
	p2pio_streamer_close(s);
	s = NULL;
	f = fopen(path, "r");
	if (f) {
		text[fread(text, 1, sizeof(text) - 1, f)] = '\0';
		fclose(f);
	}
	for (i = 0; i < NLAYERS; i++) {
		snprintf(want, sizeof(want), "acquire layer %d slot", i);
		acq += trace_count(text, want) == 1;
	}
	tap_ok(!errs && acq == NLAYERS && trace_count(text, "release layer ") == NLAYERS,
	       "trace: one acquire and one release line per layer (%d of %d)", acq, NLAYERS);
	tap_ok(trace_count(text, "load-start layer ") >= NLAYERS &&
		       trace_count(text, "load-start layer ") == trace_count(text, "load-done layer "),
	       "trace: every load that started is done (%d started)",
	       trace_count(text, "load-start layer "));
out:
	unsetenv("P2PIO_STREAM_TRACE");
	p2pio_streamer_close(s);
	p2pio_model_close(m);
	unlink(path);
}

int main(void)
{
	static const struct {
		enum p2pio_path path;
		const char *name;
	} paths[] = {
		{ P2PIO_PATH_AUTO, "auto" },
		{ P2PIO_PATH_POSIX, "posix" },
		{ P2PIO_PATH_BOUNCE, "bounce" },
	};
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	size_t i;
	int fd;

	tap_plan_lazy();
	snprintf(model_path, sizeof(model_path), "%s/p2pio-model-XXXXXX", dir);
	fd = mkstemp(model_path);
	if (fd < 0)
		tap_bail("mkstemp");
	close(fd);
	atexit(cleanup);
	if (model_fixture_write(model_path, NLAYERS, SEED))
		tap_bail("cannot write the test model");
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct p2pio_ctx *ctx = host_ctx(paths[i].path);
		struct p2pio_error err = { 0 };
		struct p2pio_file *f;

		if (!ctx) {
			tap_skip(1, "no context");
			continue;
		}
		/* O_DIRECT is not everywhere (tmpfs): skip the path the file cannot take. */
		if (p2pio_file_open(ctx, model_path, 0, &f, &err)) {
			tap_skip(1, err.msg);
			p2pio_ctx_destroy(ctx);
			continue;
		}
		p2pio_file_close(f);
		test_whole(ctx, paths[i].name);
		test_stream(ctx, paths[i].name, 0);
		test_stream(ctx, paths[i].name, P2PIO_STREAM_LRU);
		test_stream(ctx, paths[i].name, P2PIO_STREAM_NO_PREFETCH);
		test_prefetch_window(ctx, paths[i].name);
		if (i == 0)
			test_trace(ctx);
		p2pio_ctx_destroy(ctx);
		test_io_error(paths[i].path, paths[i].name);
	}
	return tap_exit();
}
