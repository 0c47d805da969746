// SPDX-License-Identifier: MIT
/*
 * test-model-plan.c - the model loader's planning: tensor layout into block-aligned runs,
 * and the streaming slot scheduler (budget to slots, prefetch, eviction, reuse).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "model/plan.h"
#include "tap.h"

#define BLK 4096u

static void test_layout_contiguous(void)
{
	/* Three tensors, 32-byte aligned as GGUF leaves them, starting mid-block. */
	struct p2pio_span e[3] = { { 1000, 3000 }, { 4000, 100 }, { 4128, 9000 } };
	struct p2pio_run r[3];
	uint64_t dst[3], region;
	int n = p2pio_layout(e, 3, BLK, 0, 1 << 20, r, dst, &region);

	tap_is_int(n, 1, "contiguous tensors make one run");
	tap_ok(r[0].file_off == 0 && r[0].len == 16384 && r[0].dst_off == 0,
	       "the run is rounded out to whole blocks (%llu+%llu)",
	       (unsigned long long)r[0].file_off, (unsigned long long)r[0].len);
	tap_ok(dst[0] == 1000 && dst[1] == 4000 && dst[2] == 4128,
	       "tensors keep their file-relative offsets in the region");
	tap_is_u64(region, 16384, "region is the run");
}

static void test_layout_gaps_and_eof(void)
{
	/* Given out of order; the last one ends 10 bytes before an unaligned EOF. */
	struct p2pio_span e[3] = { { 1 << 20, 500 }, { 64, 64 }, { (1 << 21) + 7, 90 } };
	uint64_t fsize = (1 << 21) + 107;
	struct p2pio_run r[3];
	uint64_t dst[3], region;
	int n = p2pio_layout(e, 3, BLK, 0, fsize, r, dst, &region);

	tap_is_int(n, 3, "far apart tensors make one run each");
	tap_ok(r[1].dst_off == BLK && r[2].dst_off == 2 * BLK, "runs are packed block by block");
	tap_ok(dst[1] == 64 && dst[0] == BLK + 0 && dst[2] == 2 * BLK + 7,
	       "each tensor sits at its offset inside its run");
	tap_is_u64(r[2].file_off + r[2].len, fsize, "the last run is clamped at end of file");
	tap_is_u64(region, 2 * BLK + 107, "region ends with the clamped run");

	n = p2pio_layout(e, 3, BLK, 1 << 21, fsize, r, dst, &region);
	tap_is_int(n, 1, "a large merge gap joins them into one read");
	tap_ok(dst[0] == (1 << 20) && dst[2] == (1 << 21) + 7, "merged: file-relative offsets");
}

static void test_layout_errors(void)
{
	struct p2pio_span ov[2] = { { 0, 100 }, { 64, 64 } };
	struct p2pio_span past[1] = { { 4000, 200 } };
	struct p2pio_span wrap[1] = { { UINT64_MAX - 10, 20 } };
	struct p2pio_run r[2];
	uint64_t dst[2], region;

	tap_is_int(p2pio_layout(ov, 2, BLK, 0, 1 << 20, r, dst, &region), -EINVAL,
		   "overlapping tensors are refused");
	tap_is_int(p2pio_layout(past, 1, BLK, 0, 4096, r, dst, &region), -EINVAL,
		   "a tensor past the end of the file is refused");
	tap_is_int(p2pio_layout(wrap, 1, BLK, 0, UINT64_MAX, r, dst, &region), -EINVAL,
		   "offset + size overflowing is refused");
	tap_is_int(p2pio_layout(past, 1, 3000, 0, 1 << 20, r, dst, &region), -EINVAL,
		   "an alignment that is not a power of two is refused");
	tap_is_int(p2pio_layout(past, 0, BLK, 0, 1 << 20, r, dst, &region), 0,
		   "no tensors, no runs");
}

/* Random non-overlapping tensors: every byte of every tensor is read to its place. */
static void test_layout_random(void)
{
	enum { N = 200 };
	struct p2pio_span e[N];
	struct p2pio_run r[N];
	uint64_t dst[N], region, off = 0;
	int i, j, n, bad = 0;

	srand(5);
	for (i = 0; i < N; i++) {
		off += (uint64_t)(rand() % 3 ? rand() % 64 : rand() % 200000) * 32;
		e[i].off = off;
		e[i].size = 1 + rand() % 100000;
		off += e[i].size;
	}
	/* Shuffle the input order. */
	for (i = N - 1; i > 0; i--) {
		struct p2pio_span t = e[i];

		j = rand() % (i + 1);
		e[i] = e[j];
		e[j] = t;
	}
	n = p2pio_layout(e, N, BLK, 65536, off + 5, r, dst, &region);
	tap_ok(n > 1 && n < N, "random tensors: %d runs", n);
	for (j = 0; j < n; j++) {
		if (r[j].file_off % BLK || r[j].dst_off % BLK)
			bad++;
		if (j && r[j].dst_off < r[j - 1].dst_off + r[j - 1].len)
			bad++;
	}
	tap_is_int(bad, 0, "runs are aligned and do not overlap in the region");
	for (i = 0; i < N; i++) {
		int hit = 0;

		for (j = 0; j < n; j++)
			if (e[i].off >= r[j].file_off &&
			    e[i].off + e[i].size <= r[j].file_off + r[j].len &&
			    dst[i] == r[j].dst_off + (e[i].off - r[j].file_off))
				hit++;
		if (hit != 1 || dst[i] + e[i].size > region)
			bad++;
	}
	tap_is_int(bad, 0, "every tensor lies inside exactly one run, at its relative offset");
}

static void test_budget(void)
{
	uint32_t k = 0;

	tap_ok(p2pio_sched_slots_for_budget(1000, 100, 300, &k) == 0 && k == 3,
	       "budget 1000, resident 100, slot 300: 3 slots");
	tap_is_int(p2pio_sched_slots_for_budget(350, 100, 300, &k), -ENOSPC,
		   "a budget without room for one slot is refused");
	tap_is_int(p2pio_sched_slots_for_budget(50, 100, 300, &k), -ENOSPC,
		   "a budget below the resident tensors is refused");
}

/*
 * Drive the scheduler as model_stream.c does, with "streams" whose work on a released
 * slot completes @lag releases later and loads that complete when the next acquire
 * comes. Checks that every acquire gets its own layer, in a slot nobody else holds.
 */
struct sim {
	struct p2pio_sched s;
	uint32_t lag;
	int32_t *released;	/* slots in release order */
	uint32_t nrel;
	int errors;
};

static void sim_progress(struct sim *m)
{
	uint32_t i;

	for (i = 0; i < m->s.nslots; i++)
		if (m->s.slot[i].loading)
			p2pio_sched_loaded(&m->s, i);
	if (m->nrel > m->lag) {
		int32_t sl = m->released[m->nrel - m->lag - 1];

		if (sl >= 0)
			p2pio_sched_idle(&m->s, (uint32_t)sl);
	}
}

static int sim_acquire(struct sim *m, uint32_t layer)
{
	int slot = p2pio_sched_lookup(&m->s, layer), t;

	if (slot < 0) {
		slot = p2pio_sched_victim(&m->s, false, true);
		if (slot == -EAGAIN) {
			sim_progress(m);
			slot = p2pio_sched_victim(&m->s, false, true);
		}
		if (slot < 0)
			return slot;
		if (m->s.slot[slot].busy)
			p2pio_sched_idle(&m->s, (uint32_t)slot);	/* "waited for its event" */
		p2pio_sched_assign(&m->s, (uint32_t)slot, layer);
	}
	if (m->s.slot[slot].loading)
		p2pio_sched_loaded(&m->s, (uint32_t)slot);	/* "waited for the read" */
	if (m->s.slot[slot].layer != (int32_t)layer || m->s.slot[slot].held)
		m->errors++;
	p2pio_sched_hold(&m->s, (uint32_t)slot);
	while ((t = p2pio_sched_next_prefetch(&m->s)) >= 0) {
		int v = p2pio_sched_victim(&m->s, true, false);

		if (v < 0)
			break;
		p2pio_sched_assign(&m->s, (uint32_t)v, (uint32_t)t);
	}
	return slot;
}

static void sim_release(struct sim *m, uint32_t slot)
{
	p2pio_sched_release(&m->s, slot, true);
	m->released[m->nrel++] = (int32_t)slot;
	sim_progress(m);
}

static void sim_run(struct sim *m, uint32_t layers, uint32_t slots, uint32_t prefetch, bool lru,
		   uint32_t lag, uint32_t passes)
{
	uint32_t p, l;

	memset(m, 0, sizeof(*m));
	m->lag = lag;
	m->released = calloc((size_t)layers * passes, sizeof(*m->released));
	if (p2pio_sched_init(&m->s, layers, slots, prefetch, lru))
		tap_bail("sched init");
	for (p = 0; p < passes; p++) {
		for (l = 0; l < layers; l++) {
			int slot = sim_acquire(m, l);

			if (slot < 0) {
				m->errors++;
				continue;
			}
			sim_release(m, (uint32_t)slot);
		}
	}
	free(m->released);
}

static void test_sched_stream(void)
{
	struct sim m;

	/* A quarter budget: 16 layers, 4 slots, the next layer prefetched. */
	sim_run(&m, 16, 4, 1, false, 1, 4);
	tap_is_int(m.errors, 0, "quarter budget: every acquire got its layer in a free slot");
	tap_is_u64(m.s.total.acquires, 64, "64 acquires");
	/* The prefetch after the last acquire already loads layer 0 of a fifth pass. */
	tap_is_u64(m.s.total.loads + m.s.total.hits, 65,
		   "each acquire was a load or a hit, plus the next pass's first prefetch");
	tap_ok(m.s.total.hits > 0, "keeping the layers needed furthest ahead hits (%llu)",
	       (unsigned long long)m.s.total.hits);
	tap_is_u64(m.s.total.reuses, m.s.total.loads - 4, "every load after the first 4 reused a slot");
	tap_is_u64(m.s.total.wasted, 0, "no prefetched layer was evicted before use");
	p2pio_sched_fini(&m.s);

	/*
	 * Streams that finish at once: besides the acquired and the prefetched layer, 2 slots
	 * cache layers, and the furthest-next-use choice makes both hit every later pass.
	 */
	sim_run(&m, 16, 4, 1, false, 0, 4);
	tap_ok(m.errors == 0 && m.s.total.hits >= 2 * 3,
	       "idle streams: at least 2 hits per pass after the first (%llu)",
	       (unsigned long long)m.s.total.hits);
	p2pio_sched_fini(&m.s);

	sim_run(&m, 16, 4, 1, true, 1, 4);
	tap_is_int(m.errors, 0, "LRU: every acquire got its layer");
	tap_is_u64(m.s.total.hits, 0, "LRU over a cyclic scan never hits");
	tap_is_u64(m.s.total.loads, 65, "LRU loads every layer every pass");
	p2pio_sched_fini(&m.s);

	/* Deep prefetch, slow streams: work completes 3 releases later. */
	sim_run(&m, 10, 5, 3, false, 3, 3);
	tap_is_int(m.errors, 0, "prefetch 3, lagging streams: acquires stay correct");
	tap_is_u64(m.s.total.wasted, 0, "prefetches are used");
	p2pio_sched_fini(&m.s);

	/* One slot: no prefetch possible, every acquire loads. */
	sim_run(&m, 6, 1, 1, false, 0, 2);
	tap_is_int(m.s.prefetch, 0, "one slot leaves no room to prefetch");
	tap_ok(m.errors == 0 && m.s.total.loads == 12, "one slot: 12 loads for 2 passes of 6");
	p2pio_sched_fini(&m.s);

	/* Budget for the whole model: the second pass is all hits. */
	sim_run(&m, 8, 8, 2, false, 1, 3);
	tap_ok(m.errors == 0 && m.s.total.loads == 8 && m.s.total.hits == 16,
	       "all layers fit: 8 loads, then hits (%llu loads, %llu hits)",
	       (unsigned long long)m.s.total.loads, (unsigned long long)m.s.total.hits);
	tap_is_u64(m.s.total.reuses, 0, "and no slot is ever recycled");
	p2pio_sched_fini(&m.s);
}

/*
 * The default window: every slot but the acquired layer's, up to 3; with more slots the
 * rest keep layers, which a window over every slot would give up.
 */
static void test_sched_default_prefetch(void)
{
	struct sim m;
	uint64_t capped_hits;

	tap_is_int(p2pio_sched_default_prefetch(1, 32), 0, "1 slot: nothing ahead");
	tap_is_int(p2pio_sched_default_prefetch(2, 32), 1, "2 slots: 1 ahead");
	tap_is_int(p2pio_sched_default_prefetch(3, 32), 2, "3 slots: 2 ahead");
	tap_is_int(p2pio_sched_default_prefetch(4, 32), 3, "4 slots: 3 ahead");
	tap_is_int(p2pio_sched_default_prefetch(30, 32), P2PIO_SCHED_PREFETCH_MAX,
		   "30 slots: the cap");
	tap_is_int(p2pio_sched_default_prefetch(8, 3), 2, "more slots than layers: layers - 1");
	tap_is_int(p2pio_sched_default_prefetch(0, 3), 0, "no slot: nothing");

	/* A quarter budget with the default window: the pass's end loads the next's start. */
	sim_run(&m, 16, 4, p2pio_sched_default_prefetch(4, 16), false, 1, 4);
	tap_ok(m.errors == 0 && m.s.total.wasted == 0, "default window: acquires right, no waste");
	/*
	 * Each acquire a load or a hit, plus the next pass's window, but for the layer whose
	 * slot the stream still uses (lag 1): acquire does not wait for it, the streamer's
	 * prefetcher thread does.
	 */
	tap_is_u64(m.s.total.loads + m.s.total.hits, 64 + m.s.prefetch - 1,
		   "a pass's acquires, plus the next pass's window (%u) but one", m.s.prefetch);
	p2pio_sched_fini(&m.s);

	/* 30 slots of 32 layers: capped, the other slots hit; a window of 29 never would. */
	sim_run(&m, 32, 30, p2pio_sched_default_prefetch(30, 32), false, 1, 3);
	capped_hits = m.s.total.hits;
	tap_ok(m.errors == 0 && capped_hits >= 2 * (30 - 3 - 2),
	       "30 slots, window 3: %llu hits over the 2 passes after the first",
	       (unsigned long long)capped_hits);
	p2pio_sched_fini(&m.s);
	sim_run(&m, 32, 30, 29, false, 1, 3);
	tap_ok(m.errors == 0 && m.s.total.hits < capped_hits,
	       "a window over every slot: %llu hits", (unsigned long long)m.s.total.hits);
	p2pio_sched_fini(&m.s);
}

static void test_sched_states(void)
{
	struct p2pio_sched s;
	int v;

	if (p2pio_sched_init(&s, 4, 2, 1, false))
		tap_bail("sched init");
	p2pio_sched_assign(&s, 0, 0);
	p2pio_sched_assign(&s, 1, 1);
	tap_is_int(p2pio_sched_victim(&s, false, true), -EAGAIN,
		   "slots that are loading cannot be evicted: wait");
	p2pio_sched_loaded(&s, 0);
	p2pio_sched_loaded(&s, 1);
	p2pio_sched_hold(&s, 0);
	p2pio_sched_hold(&s, 1);
	tap_is_int(p2pio_sched_victim(&s, false, true), -ENOSPC,
		   "every slot held: no space");
	p2pio_sched_release(&s, 0, true);
	tap_is_int(p2pio_sched_victim(&s, false, false), -EAGAIN,
		   "a busy slot is not taken without waiting");
	tap_is_int(p2pio_sched_victim(&s, false, true), 0, "but is when the caller may wait");
	p2pio_sched_idle(&s, 0);
	tap_is_int(p2pio_sched_victim(&s, false, false), 0, "an idle released slot is taken");
	/* Cursor is at 1; layer 2 is the window: a prefetch may not evict it. */
	p2pio_sched_assign(&s, 0, 2);
	p2pio_sched_loaded(&s, 0);
	tap_is_int(p2pio_sched_victim(&s, true, true), -ENOSPC,
		   "a prefetch does not evict a layer in the prefetch window");
	p2pio_sched_release(&s, 1, false);
	v = p2pio_sched_victim(&s, false, true);
	tap_is_int(v, 1, "an acquire evicts the layer needed furthest ahead (1, not 2)");
	p2pio_sched_assign(&s, 0, 3);
	tap_is_u64(s.total.wasted, 1, "evicting a prefetched layer before use counts as wasted");
	tap_is_int(p2pio_sched_lookup(&s, 2), -1, "the evicted layer is no longer found");
	p2pio_sched_failed(&s, 0);
	tap_is_int(p2pio_sched_lookup(&s, 3), -1, "a failed load leaves the slot empty");
	p2pio_sched_fini(&s);
}

/*
 * The end of a pass with two slots: layers 18 and 19 are released, both still computing.
 * The prefetch of layer 0 must wait for 18's slot, which frees first, not for 19's (the
 * furthest next use), or it starts a whole layer's compute late.
 */
static void test_sched_busy_order(void)
{
	struct p2pio_sched s;
	uint32_t l;

	if (p2pio_sched_init(&s, 20, 2, 1, false))
		tap_bail("sched init");
	for (l = 18; l < 20; l++) {
		p2pio_sched_assign(&s, l - 18, l);
		p2pio_sched_loaded(&s, l - 18);
		p2pio_sched_hold(&s, l - 18);
		p2pio_sched_release(&s, l - 18, true);
	}
	tap_is_int(p2pio_sched_next_prefetch(&s), 0, "the window after layer 19 is layer 0");
	tap_is_int(p2pio_sched_victim(&s, true, false), -EAGAIN,
		   "both slots busy: nothing without a wait");
	tap_is_int(p2pio_sched_victim(&s, true, true), 0,
		   "a prefetch waits for the slot released first (layer 18)");
	tap_is_int(p2pio_sched_victim(&s, false, true), 0, "and so does an acquire");
	p2pio_sched_reserve(&s, 0, true);
	tap_is_int(p2pio_sched_victim(&s, true, true), 1,
		   "with that slot reserved by another waiter, the other one");
	p2pio_sched_reserve(&s, 0, false);
	p2pio_sched_idle(&s, 1);
	tap_is_int(p2pio_sched_victim(&s, true, true), 1, "a slot that needs no wait comes first");
	p2pio_sched_fini(&s);
}

/*
 * Two threads lay out models at once, as two model opens may: each its own spans (in
 * reverse file order, so the sort has work), each checking its result every time. The
 * layout once sorted through a process-global base pointer: the threads then sorted by
 * each other's offsets (wrong layouts, or overlaps refused) or crashed on its reset.
 */
#define THREAD_SPANS 20000u
#define THREAD_ROUNDS 40

struct layout_job {
	uint64_t stride;	/* this thread's spacing of its spans */
	int bad;		/* rounds whose layout was wrong */
};

static void *layout_thread(void *arg)
{
	struct layout_job *j = arg;
	struct p2pio_span *e = calloc(THREAD_SPANS, sizeof(*e));
	struct p2pio_run *r = calloc(THREAD_SPANS, sizeof(*r));
	uint64_t *dst = calloc(THREAD_SPANS, sizeof(*dst)), region;
	uint32_t i;
	int round, n;

	if (!e || !r || !dst) {
		j->bad = THREAD_ROUNDS;
		goto out;
	}
	for (i = 0; i < THREAD_SPANS; i++)
		e[i] = (struct p2pio_span){ (uint64_t)(THREAD_SPANS - 1 - i) * j->stride, 32 };
	for (round = 0; round < THREAD_ROUNDS; round++) {
		n = p2pio_layout(e, THREAD_SPANS, BLK, 0, (uint64_t)THREAD_SPANS * j->stride, r,
				 dst, &region);
		/* Apart by more than a block: a run each, in file order, packed block by block. */
		for (i = 0; n == (int)THREAD_SPANS && i < THREAD_SPANS; i++)
			if (dst[i] != (uint64_t)(THREAD_SPANS - 1 - i) * BLK + e[i].off % BLK)
				break;
		if (n != (int)THREAD_SPANS || i < THREAD_SPANS)
			j->bad++;
	}
out:
	free(e);
	free(r);
	free(dst);
	return NULL;
}

static void test_layout_threads(void)
{
	struct layout_job jobs[2] = { { .stride = 3 * BLK }, { .stride = 5 * BLK + 64 } };
	pthread_t t[2];
	int i, started = 0;

	for (i = 0; i < 2; i++)
		started += !pthread_create(&t[i], NULL, layout_thread, &jobs[i]);
	for (i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	tap_is_int(started, 2, "two threads laying out models");
	tap_ok(!jobs[0].bad && !jobs[1].bad,
	       "each thread's %d layouts of %u spans right while the other lays out its own "
	       "(%d and %d wrong)", THREAD_ROUNDS, THREAD_SPANS, jobs[0].bad, jobs[1].bad);
}

int main(void)
{
	tap_plan_lazy();
	test_layout_threads();
	test_layout_contiguous();
	test_layout_gaps_and_eof();
	test_layout_errors();
	test_layout_random();
	test_budget();
	test_sched_stream();
	test_sched_default_prefetch();
	test_sched_states();
	test_sched_busy_order();
	return tap_exit();
}
