// SPDX-License-Identifier: MIT
/*
 * test-expert-pool.c - the expert pool's bookkeeping (experts/vmm_pool.c) against a fake
 * allocator that keeps its own books: nothing committed at creation, every expert a fixed,
 * aligned home inside the one reservation, chunks created only up to the limit and reused
 * through the free list, no home mapped twice, no chunk mapped in two places (except, with
 * deferred unmapping, a freed chunk at its old home until the flush), everything unmapped
 * and freed at the end; allocator failures leave the books consistent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experts/xmem.h"
#include "tap.h"

#define GRAN (64u << 10)
#define MAX_CHUNKS 256
#define MAX_MAPS 256

struct fake {
	uint64_t va, va_len;		/* the reservation */
	int reserves, unreserves;
	uint64_t next_handle;
	struct {
		bool live;
		uint64_t len;
	} chunk[MAX_CHUNKS];
	struct {
		bool live;
		uint64_t va, len, handle;
	} map[MAX_MAPS];		/* every mapping in place */
	int creates, destroys, maps, unmaps;
	int live, mapped;
	int errors;			/* misuse seen by the fake */
	int fail_create, fail_map;	/* fail the next one */
	bool alias_ok;			/* a chunk may be mapped at two homes (deferred) */
	bool io_view;			/* chunks come with a view of their own (io_buf) */
};

/* Mappings of chunk @handle in place. */
static int maps_of(const struct fake *f, uint64_t handle)
{
	int i, n = 0;

	for (i = 0; i < MAX_MAPS; i++)
		n += f->map[i].live && f->map[i].handle == handle;
	return n;
}

static void misuse(struct fake *f, const char *what)
{
	f->errors++;
	tap_diag("fake allocator: %s", what);
}

static int f_reserve(void *arg, uint64_t len, uint64_t *va)
{
	struct fake *f = arg;

	if (f->reserves)
		misuse(f, "second reservation");
	if (len % GRAN)
		misuse(f, "reservation not a granularity multiple");
	f->reserves++;
	f->va = 0x7f0000000000ull;
	f->va_len = len;
	*va = f->va;
	return 0;
}

static void f_unreserve(void *arg, uint64_t va, uint64_t len)
{
	struct fake *f = arg;
	int i;

	if (va != f->va || len != f->va_len)
		misuse(f, "unreserve of another range");
	for (i = 0; i < MAX_MAPS; i++)
		if (f->map[i].live)
			misuse(f, "unreserve while mapped");
	f->unreserves++;
}

static int f_create(void *arg, struct p2pio_xchunk *c)
{
	struct fake *f = arg;

	if (f->fail_create) {
		f->fail_create = 0;
		return -ENOMEM;
	}
	if (!c->len || c->len % GRAN)
		misuse(f, "chunk length not a granularity multiple");
	if (f->next_handle >= MAX_CHUNKS)
		return -ENOMEM;
	c->handle = f->next_handle++;
	if (f->io_view) {
		/* Only compared with NULL by the pool: any address of the fake's will do. */
		c->io_buf = (struct p2pio_buf *)&f->chunk[c->handle];
		c->io_addr = 0x600000000000ull + c->handle * (64ull << 20);
	}
	f->chunk[c->handle].live = true;
	f->chunk[c->handle].len = c->len;
	f->creates++;
	f->live++;
	return 0;
}

static void f_destroy(void *arg, struct p2pio_xchunk *c)
{
	struct fake *f = arg;

	if (c->handle >= MAX_CHUNKS || !f->chunk[c->handle].live)
		return misuse(f, "destroy of an unknown chunk");
	if (maps_of(f, c->handle))
		misuse(f, "destroy of a mapped chunk");
	f->chunk[c->handle].live = false;
	f->destroys++;
	f->live--;
}

static int f_map(void *arg, uint64_t va, struct p2pio_xchunk *c)
{
	struct fake *f = arg;
	int i;

	if (f->fail_map) {
		f->fail_map = 0;
		return -EIO;
	}
	if (c->handle >= MAX_CHUNKS || !f->chunk[c->handle].live)
		misuse(f, "map of an unknown chunk");
	else if (maps_of(f, c->handle) && !f->alias_ok)
		misuse(f, "chunk mapped twice");
	if (va % GRAN || va < f->va || va + c->len > f->va + f->va_len)
		misuse(f, "map outside the reservation or misaligned");
	for (i = 0; i < MAX_MAPS; i++)
		if (f->map[i].live && va < f->map[i].va + f->map[i].len && f->map[i].va < va + c->len)
			misuse(f, "map over a mapped range");
	for (i = 0; i < MAX_MAPS && f->map[i].live; i++)
		;
	if (i == MAX_MAPS)
		return -ENOMEM;
	f->map[i].live = true;
	f->map[i].va = va;
	f->map[i].len = c->len;
	f->map[i].handle = c->handle;
	c->addr = va;
	f->maps++;
	f->mapped++;
	return 0;
}

static void f_unmap(void *arg, struct p2pio_xchunk *c)
{
	struct fake *f = arg;
	int i;

	for (i = 0; i < MAX_MAPS; i++)
		if (f->map[i].live && f->map[i].va == c->addr && f->map[i].handle == c->handle &&
		    f->map[i].len == c->len)
			break;
	if (i == MAX_MAPS || !c->addr)
		return misuse(f, "unmap of a chunk not mapped there");
	f->map[i].live = false;
	f->unmaps++;
	f->mapped--;
}

static const struct p2pio_xmem_ops fake_ops = {
	.name = "fake",
	.reserve = f_reserve,
	.unreserve = f_unreserve,
	.create = f_create,
	.destroy = f_destroy,
	.map = f_map,
	.unmap = f_unmap,
	.granularity = GRAN,
};

static void test_homes(void)
{
	/* Layer 1 has no experts; layer 2's experts are not a granularity multiple. */
	static const uint64_t len[3] = { GRAN, 0, 2 * GRAN + 1 };
	struct fake f = { 0 };
	struct p2pio_xpool_stats st;
	struct p2pio_xpool *p;
	uint64_t h, seen[3][4];
	int l, e, bad = 0;

	tap_is_int(p2pio_xpool_create(&fake_ops, &f, 3, 4, len, 0, &p), 0, "pool created");
	p2pio_xpool_stats(p, &st);
	tap_ok(st.committed == 0 && f.creates == 0, "nothing committed at creation");
	tap_is_u64(f.va_len, 4 * GRAN + 4 * 3 * GRAN, "one reservation for every expert");
	tap_is_u64(p2pio_xpool_expert_bytes(p, 2), 3 * GRAN, "lengths rounded to the granularity");
	for (l = 0; l < 3; l++)
		for (e = 0; e < 4; e++) {
			h = p2pio_xpool_home(p, (uint32_t)l, (uint32_t)e);
			seen[l][e] = h;
			if (l == 1 ? h != 0 : (h % GRAN || h < f.va ||
					       h + p2pio_xpool_expert_bytes(p, (uint32_t)l) >
						       f.va + f.va_len))
				bad++;
		}
	for (e = 1; e < 4; e++)
		bad += seen[0][e] < seen[0][e - 1] + GRAN || seen[2][e] < seen[2][e - 1] + 3 * GRAN;
	bad += seen[2][0] < seen[0][3] + GRAN;
	tap_is_int(bad, 0, "homes are aligned, inside the reservation and disjoint");
	tap_ok(p2pio_xpool_stable(p), "a reserving allocator gives stable addresses");
	p2pio_xpool_destroy(p);
	tap_ok(f.unreserves == 1 && f.errors == 0, "the reservation is given back");
}

static void test_reuse(void)
{
	static const uint64_t len[2] = { GRAN, 2 * GRAN };
	const struct p2pio_xchunk *c, *c2;
	struct fake f = { 0 };
	struct p2pio_xpool_stats st;
	struct p2pio_xpool *p;
	uint64_t first_addr;
	int e;

	/* Room for four chunks of layer 0, or two of layer 1. */
	tap_is_int(p2pio_xpool_create(&fake_ops, &f, 2, 8, len, 4 * GRAN, &p), 0,
		   "pool with a limit of four small chunks");
	tap_is_int(p2pio_xpool_map(p, 0, 3, &c), 0, "map an expert");
	tap_ok(c && c->addr == p2pio_xpool_home(p, 0, 3), "it is readable at its home");
	first_addr = c->addr;
	tap_is_int(p2pio_xpool_map(p, 0, 3, &c2), -EEXIST, "mapping it twice is refused");
	tap_ok(p2pio_xpool_chunk(p, 0, 3) == c, "the chunk backing it is found");
	for (e = 4; e < 7; e++)
		tap_is_int(p2pio_xpool_map(p, 0, (uint32_t)e, &c2), 0, "map expert %d", e);
	tap_is_int(p2pio_xpool_map(p, 0, 7, &c2), -ENOSPC, "a fifth chunk is over the limit");
	tap_is_int(f.creates, 4, "four chunks created");
	tap_is_int(p2pio_xpool_unmap(p, 0, 3), 0, "evict expert 3");
	tap_ok(p2pio_xpool_chunk(p, 0, 3) == NULL, "nothing backs it any more");
	tap_is_int(p2pio_xpool_unmap(p, 0, 3), -ENOENT, "unmapping it again is refused");
	tap_is_int(p2pio_xpool_map(p, 0, 7, &c2), 0, "expert 7 takes the freed chunk");
	tap_ok(f.creates == 4 && c2->addr == p2pio_xpool_home(p, 0, 7),
	       "without a new allocation, at its own home");
	p2pio_xpool_stats(p, &st);
	tap_ok(st.reuses == 1 && st.committed == 4 * GRAN && st.mapped == 4 * GRAN &&
	       st.maps == 5 && st.unmaps == 1, "statistics: 1 reuse, 4 chunks, 5 maps, 1 unmap");

	/* Expert 3 comes back at the same address. */
	tap_is_int(p2pio_xpool_unmap(p, 0, 4), 0, "evict expert 4");
	tap_is_int(p2pio_xpool_map(p, 0, 3, &c), 0, "expert 3 is loaded again");
	tap_is_u64(c->addr, first_addr, "at the address it had before");

	/* A larger layer: free small chunks are destroyed to make room within the limit. */
	tap_is_int(p2pio_xpool_unmap(p, 0, 5), 0, "evict expert 5");
	tap_is_int(p2pio_xpool_unmap(p, 0, 6), 0, "evict expert 6");
	tap_is_int(p2pio_xpool_map(p, 1, 0, &c), 0, "a layer-1 expert fits once they go");
	p2pio_xpool_stats(p, &st);
	tap_ok(st.committed == 4 * GRAN && st.destroys == 2 && f.live == 3,
	       "two free small chunks destroyed, the limit holds");
	tap_is_int(p2pio_xpool_map(p, 1, 1, &c), -ENOSPC, "no room for a second one");

	/* Allocator failures. */
	tap_is_int(p2pio_xpool_unmap(p, 0, 7), 0, "evict expert 7");
	f.fail_map = 1;
	tap_is_int(p2pio_xpool_map(p, 0, 0, &c), -EIO, "a failed map is reported");
	tap_ok(p2pio_xpool_chunk(p, 0, 0) == NULL, "and leaves the expert unbacked");
	tap_is_int(p2pio_xpool_map(p, 0, 0, &c), 0, "the chunk is still there to map");
	p2pio_xpool_stats(p, &st);
	tap_ok(st.creates == 5 && f.live == 3, "no chunk was lost or created by the failure");

	p2pio_xpool_set_limit(p, 0);
	tap_is_int(p2pio_xpool_unmap(p, 0, 0), 0, "evict expert 0");
	f.fail_create = 1;
	tap_is_int(p2pio_xpool_map(p, 1, 1, &c), -ENOMEM, "a failed create is reported");
	p2pio_xpool_trim(p, 0);
	p2pio_xpool_stats(p, &st);
	tap_ok(st.committed == 2 * GRAN + GRAN && f.live == 2,
	       "trim frees the free chunks, keeps the mapped ones");
	p2pio_xpool_destroy(p);
	tap_ok(f.live == 0 && f.mapped == 0 && f.unreserves == 1,
	       "destroy unmaps and frees everything");
	tap_is_int(f.errors, 0, "the fake allocator saw no misuse");
}

/* Deferred unmapping: evictions cost no allocator call until the flush. */
static void test_deferred(void)
{
	static const uint64_t len[2] = { GRAN, 2 * GRAN };
	const struct p2pio_xchunk *c;
	struct fake f = { .alias_ok = true };
	struct p2pio_xpool_stats st;
	struct p2pio_xpool *p;
	uint64_t h;
	int e;

	tap_is_int(p2pio_xpool_create(&fake_ops, &f, 2, 8, len, 2 * GRAN, &p), 0,
		   "pool with room for two small chunks, deferred unmapping");
	p2pio_xpool_set_deferred(p, true);
	for (e = 0; e < 2; e++)
		p2pio_xpool_map(p, 0, (uint32_t)e, &c);
	h = c->handle;
	tap_is_int(p2pio_xpool_unmap(p, 0, 1), 0, "evict expert 1");
	tap_ok(f.unmaps == 0 && f.mapped == 2 && p2pio_xpool_ghosts(p) == 1 &&
	       p2pio_xpool_chunk(p, 0, 1) == NULL,
	       "no allocator call: its home stays mapped, the pool calls it free");
	tap_is_int(p2pio_xpool_map(p, 0, 2, &c), 0, "expert 2 takes the freed chunk");
	tap_ok(c->handle == h && c->addr == p2pio_xpool_home(p, 0, 2) && f.mapped == 3 &&
	       f.creates == 2, "at its own home, the chunk mapped at both homes for now");
	tap_is_int(p2pio_xpool_unmap(p, 0, 2), 0, "evict expert 2 too");
	tap_is_int(p2pio_xpool_map(p, 0, 1, &c), 0, "expert 1 comes back before the flush");
	p2pio_xpool_stats(p, &st);
	tap_ok(c->addr == p2pio_xpool_home(p, 0, 1) && st.forced_unmaps == 1 &&
	       p2pio_xpool_ghosts(p) == 1 && f.errors == 0,
	       "its old mapping is undone first (forced), expert 2's waits");
	tap_is_int((int)p2pio_xpool_flush(p), 1, "the flush undoes the one left");
	p2pio_xpool_stats(p, &st);
	tap_ok(f.mapped == 2 && st.late_unmaps == 1 && p2pio_xpool_ghosts(p) == 0,
	       "two homes mapped, one for each resident expert");
	/* A larger layer needs the small free chunks destroyed: their ghosts go first. */
	p2pio_xpool_unmap(p, 0, 0);
	p2pio_xpool_unmap(p, 0, 1);
	tap_is_int(p2pio_xpool_map(p, 1, 0, &c), 0, "a layer-1 expert fits once both go");
	tap_ok(f.live == 1 && p2pio_xpool_ghosts(p) == 0 && f.errors == 0,
	       "the ghosts were unmapped before their chunks were destroyed");
	p2pio_xpool_unmap(p, 1, 0);
	tap_ok(p2pio_xpool_ghosts(p) == 1, "a ghost left at destruction ...");
	p2pio_xpool_destroy(p);
	tap_ok(f.live == 0 && f.mapped == 0 && f.unreserves == 1,
	       "... is unmapped by destroy, with everything else");
	tap_is_int(f.errors, 0, "the fake allocator saw no misuse");
}

/*
 * Chunks with a view of their own: take leaves the home unmapped (reads go through the
 * view), go_home maps it; a chunk taken and never homed is freed without an allocator call.
 */
static void test_io_view(void)
{
	static const uint64_t len[1] = { GRAN };
	const struct p2pio_xchunk *c, *c2;
	struct fake f = { .alias_ok = true, .io_view = true };
	struct p2pio_xpool_stats st;
	struct p2pio_xpool *p;
	uint64_t h;

	tap_is_int(p2pio_xpool_create(&fake_ops, &f, 1, 8, len, 3 * GRAN, &p), 0,
		   "pool over chunks with views, room for three, deferred unmapping");
	p2pio_xpool_set_deferred(p, true);
	tap_is_int(p2pio_xpool_take(p, 0, 1, &c), 0, "take a chunk for expert 1");
	tap_ok(c->io_buf && !c->at_home && f.maps == 0 && p2pio_xpool_chunk(p, 0, 1) == c,
	       "it backs the expert, readable through its view, its home not mapped yet");
	tap_is_int(p2pio_xpool_take(p, 0, 1, &c2), -EEXIST, "taking it twice is refused");
	tap_is_int(p2pio_xpool_go_home(p, 0, 1), 0, "map its home");
	tap_ok(c->at_home && f.maps == 1 && c->addr == p2pio_xpool_home(p, 0, 1),
	       "one allocator map, at the expert's home");
	tap_is_int(p2pio_xpool_go_home(p, 0, 1), 0, "going home again ...");
	tap_is_int(f.maps, 1, "... maps nothing");
	tap_is_int(p2pio_xpool_go_home(p, 0, 0), -ENOENT, "an expert nothing backs has no home");

	/* Taken, never homed, evicted: freed without an allocator call, and reused. */
	tap_is_int(p2pio_xpool_take(p, 0, 2, &c2), 0, "take a chunk for expert 2");
	h = c2->handle;
	tap_is_int(p2pio_xpool_unmap(p, 0, 2), 0, "evict it before its home is mapped");
	tap_ok(f.unmaps == 0 && p2pio_xpool_ghosts(p) == 0 && !p2pio_xpool_chunk(p, 0, 2),
	       "no unmap, no ghost: there was nothing to undo");
	tap_is_int(p2pio_xpool_take(p, 0, 3, &c2), 0, "expert 3 is taken");
	tap_ok(c2->handle == h && f.creates == 2, "with the freed chunk");

	/* A home that cannot be mapped: the expert stays backed until the caller evicts it. */
	f.fail_map = 1;
	tap_is_int(p2pio_xpool_go_home(p, 0, 3), -EIO, "a failed home map is reported");
	tap_ok(p2pio_xpool_chunk(p, 0, 3) == c2 && !c2->at_home,
	       "the chunk still backs it (its reads may be in flight), not at home");
	tap_is_int(p2pio_xpool_unmap(p, 0, 3), 0, "evicting it ...");
	tap_ok(f.unmaps == 0 && f.errors == 0, "... undoes no mapping");

	/* p2pio_xpool_map() does both steps. */
	tap_is_int(p2pio_xpool_map(p, 0, 4, &c2), 0, "map expert 4 in one call");
	tap_ok(c2->at_home && c2->addr == p2pio_xpool_home(p, 0, 4) && f.maps == 2,
	       "mapped at its home");
	f.fail_map = 1;
	tap_is_int(p2pio_xpool_map(p, 0, 5, &c2), -EIO, "a one-call map whose home fails ...");
	p2pio_xpool_stats(p, &st);
	tap_ok(!p2pio_xpool_chunk(p, 0, 5) && st.maps == 4 && st.mapped == 2 * GRAN,
	       "... leaves the expert unbacked and the books as before");

	/* Deferred: the ghost of a home goes when that home is mapped again, not at take. */
	tap_is_int(p2pio_xpool_unmap(p, 0, 1), 0, "evict expert 1 (deferred)");
	tap_is_int((int)p2pio_xpool_ghosts(p), 1, "its home is a ghost");
	tap_is_int(p2pio_xpool_take(p, 0, 1, &c2), 0, "expert 1 is taken again");
	tap_is_int((int)p2pio_xpool_ghosts(p), 1, "its old mapping is still there");
	tap_is_int(p2pio_xpool_go_home(p, 0, 1), 0, "its home is mapped");
	p2pio_xpool_stats(p, &st);
	tap_ok(p2pio_xpool_ghosts(p) == 0 && st.forced_unmaps == 1 && f.errors == 0,
	       "after the old mapping was undone (forced)");
	p2pio_xpool_destroy(p);
	tap_ok(f.live == 0 && f.mapped == 0 && f.unreserves == 1,
	       "destroy unmaps and frees everything");
	tap_is_int(f.errors, 0, "the fake allocator saw no misuse");
}

/* An allocator that cannot remap: addresses are the chunks'. */
static int n_create(void *arg, struct p2pio_xchunk *c)
{
	int *n = arg;

	c->handle = (uint64_t)++*n;
	c->addr = 0x100000ull * c->handle;
	return 0;
}

static void n_destroy(void *arg, struct p2pio_xchunk *c)
{
	int *n = arg;

	--*n;
}

static void test_unstable(void)
{
	static const struct p2pio_xmem_ops ops = {
		.name = "fixed", .create = n_create, .destroy = n_destroy, .granularity = GRAN,
	};
	static const uint64_t len[1] = { GRAN };
	const struct p2pio_xchunk *c;
	struct p2pio_xpool *p;
	int n = 0;

	tap_is_int(p2pio_xpool_create(&ops, &n, 1, 4, len, 2 * GRAN, &p), 0,
		   "pool over an allocator without a reservation");
	tap_ok(!p2pio_xpool_stable(p) && p2pio_xpool_home(p, 0, 0) == 0, "no homes");
	tap_ok(p2pio_xpool_map(p, 0, 1, &c) == 0 && c->addr == 0x100000ull,
	       "an expert lives where its chunk is");
	p2pio_xpool_unmap(p, 0, 1);
	tap_ok(p2pio_xpool_map(p, 0, 2, &c) == 0 && c->addr == 0x100000ull && n == 1,
	       "the chunk is reused");
	p2pio_xpool_destroy(p);
	tap_is_int(n, 0, "every chunk destroyed");
}

static void test_bad(void)
{
	static const uint64_t huge[2] = { UINT64_MAX / 2, UINT64_MAX / 2 };
	struct fake f = { 0 };
	struct p2pio_xpool *p = NULL;

	tap_is_int(p2pio_xpool_create(&fake_ops, &f, 2, 4, huge, 0, &p), -EOVERFLOW,
		   "a reservation that overflows is refused");
	tap_is_int(p2pio_xpool_create(&fake_ops, &f, 0, 4, huge, 0, &p), -EINVAL,
		   "no layers is refused");
	tap_is_int(f.reserves, 0, "nothing was reserved");
}

int main(void)
{
	tap_plan_lazy();
	test_homes();
	test_reuse();
	test_deferred();
	test_io_view();
	test_unstable();
	test_bad();
	return tap_exit();
}
