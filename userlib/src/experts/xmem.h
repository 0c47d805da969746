/* SPDX-License-Identifier: MIT */
/*
 * experts/xmem.h - the expert cache's memory: a pool of physical chunks behind a small
 * allocator interface, and the address every expert keeps. Private to libp2pio.
 *
 * Every expert of every layer owns a fixed range of one address reservation made at
 * open (its "home"), so a given expert always has the same pointer: the pool backs a home
 * with a physical chunk only while the expert is resident (map), and takes the chunk back
 * on eviction (unmap) into a free list, so a miss reuses a chunk instead of allocating
 * one: creating physical memory happens only while the cache grows towards its limit.
 * Nothing is committed at creation.
 *
 * Allocators (struct p2pio_xmem_ops):
 *  - CUDA (xmem_cuda.c): cuMemAddressReserve / cuMemCreate / cuMemMap / cuMemSetAccess;
 *  - host (xmem_host.c): an mmap(PROT_NONE) reservation, chunks are memfd pages mapped
 *    over the home with MAP_FIXED (a context without a GPU);
 *  - the NVIDIA test double (xmem_nvd.c), which cannot remap: it has no reservation,
 *    and an expert's address is its chunk's, which may change between residencies;
 *  - a fake one in the unit tests, which checks the pool's calls against its own books.
 * The pool serialises nothing: the cache calls it under its lock.
 */
#ifndef P2PIO_EXPERTS_XMEM_H
#define P2PIO_EXPERTS_XMEM_H

#include "internal.h"

/*
 * struct p2pio_xchunk - one piece of physical memory.
 * @handle:  the allocator's name for it.
 * @len:     bytes (a multiple of the granularity).
 * @addr:    where it is readable now: its home while mapped (stable allocators), or its
 *           own address (allocators without a reservation).
 * @buf:     the engine buffer reads into it go through while mapped ...
 * @buf_off: ... at this offset.
 * @host:    a CPU view of @addr, or NULL (CUDA memory).
 * @io_buf:  an engine buffer over the chunk at an address of its own, mapped for the
 *           chunk's whole life (allocators that make one at create; else NULL): reads go
 *           through it before the chunk is mapped at a home, so that a miss submits its
 *           reads first and maps the home while they run (p2pio_xpool_take()) ...
 * @io_off:  ... at this offset;
 * @io_addr: that address (the allocator's, for destroy).
 * @at_home: mapped at the home of the expert it backs (the pool's).
 * @next:    free list.
 */
struct p2pio_xchunk {
	uint64_t handle;
	uint64_t len;
	uint64_t addr;
	struct p2pio_buf *buf;
	uint64_t buf_off;
	void *host;
	struct p2pio_buf *io_buf;
	uint64_t io_off;
	uint64_t io_addr;
	bool at_home;
	struct p2pio_xchunk *next;
};

/*
 * struct p2pio_xmem_ops - a physical-memory allocator.
 * @name:      "cuda", "host", "nvdouble", ... for messages.
 * @reserve:   reserve @len bytes of address space (a granularity multiple), no memory;
 *             NULL when the allocator cannot remap (then homes do not exist).
 * @unreserve: give the reservation back (everything unmapped).
 * @create:    allocate a chunk of @c->len bytes; fill @c->handle (and, without a
 *             reservation, @c->addr, @c->buf, @c->buf_off, @c->host; optionally
 *             @c->io_buf, @c->io_off, @c->io_addr).
 * @destroy:   free an unmapped chunk (and its @io_buf mapping).
 * @map:       back [@va, @va + @c->len) with @c, accessible to the device; fill @c->addr,
 *             @c->buf, @c->buf_off, @c->host. NULL without a reservation.
 * @unmap:     undo @map (the caller guarantees no work uses it any more).
 * @fini:      free the allocator itself (p2pio_xmem_free()).
 * @granularity: every length and home is a multiple of it.
 */
struct p2pio_xmem_ops {
	const char *name;
	int (*reserve)(void *arg, uint64_t len, uint64_t *va);
	void (*unreserve)(void *arg, uint64_t va, uint64_t len);
	int (*create)(void *arg, struct p2pio_xchunk *c);
	void (*destroy)(void *arg, struct p2pio_xchunk *c);
	int (*map)(void *arg, uint64_t va, struct p2pio_xchunk *c);
	void (*unmap)(void *arg, struct p2pio_xchunk *c);
	void (*fini)(void *arg);
	uint64_t granularity;
};

/* struct p2pio_xpool_stats - what the pool did. */
struct p2pio_xpool_stats {
	uint64_t committed;	/* bytes of physical chunks that exist */
	uint64_t mapped;	/* of those, bytes backing a resident expert */
	uint64_t peak;		/* most @committed ever */
	uint64_t creates;	/* chunks created */
	uint64_t reuses;	/* maps that took a chunk from the free list */
	uint64_t maps;
	uint64_t unmaps;
	uint64_t destroys;
	uint64_t late_unmaps;	/* deferred unmaps done by a flush ... */
	uint64_t forced_unmaps;	/* ... and by a map of the same home before the flush */
};

struct p2pio_xpool;

/*
 * Create a pool for @nlayers x @nexperts experts, expert e of layer l taking
 * @expert_len[l] bytes (0: that layer has no experts), rounded up to the granularity;
 * @limit bounds @committed (bytes; 0: no limit). Reserves the homes (allocators that can
 * remap); commits nothing. Return 0 or -errno (-EOVERFLOW, -ENOMEM, the allocator's).
 */
P2PIO_HIDDEN int p2pio_xpool_create(const struct p2pio_xmem_ops *ops, void *arg,
				    uint32_t nlayers, uint32_t nexperts,
				    const uint64_t *expert_len, uint64_t limit,
				    struct p2pio_xpool **out);
/* Unmap every expert, destroy every chunk, give the reservation back. NULL is a no-op. */
P2PIO_HIDDEN void p2pio_xpool_destroy(struct p2pio_xpool *p);

/* Bytes one expert of @layer commits (its rounded length); 0 for a layer without experts. */
P2PIO_HIDDEN uint64_t p2pio_xpool_expert_bytes(const struct p2pio_xpool *p, uint32_t layer);
/* The expert's home (its address whenever resident), or 0 without a reservation. */
P2PIO_HIDDEN uint64_t p2pio_xpool_home(const struct p2pio_xpool *p, uint32_t layer,
				       uint32_t expert);
/* Whether every expert keeps one address (the allocator reserves homes). */
P2PIO_HIDDEN bool p2pio_xpool_stable(const struct p2pio_xpool *p);

/*
 * Back (@layer, @expert) with a chunk: a free one of its size, else a new one within the
 * limit, mapped at the expert's home. Return the chunk (owned by the pool until
 * p2pio_xpool_unmap()) through @out; 0, -EEXIST (already backed), -ENOSPC (the limit),
 * -ERANGE, or the allocator's -errno.
 */
P2PIO_HIDDEN int p2pio_xpool_map(struct p2pio_xpool *p, uint32_t layer, uint32_t expert,
				 const struct p2pio_xchunk **out);
/*
 * p2pio_xpool_map() in two steps. Take backs the expert with a chunk and, where the chunk
 * has an @io_buf, leaves the home unmapped (@at_home false: reads may go through @io_buf
 * at once); go_home maps it (0 when it is already). Between the two the expert is backed
 * but has no address: the caller maps the home before anyone is handed the address, and
 * unmapping (or a failed home) just frees the chunk. The errors are p2pio_xpool_map()'s;
 * go_home: -ENOENT when nothing backs the expert.
 */
P2PIO_HIDDEN int p2pio_xpool_take(struct p2pio_xpool *p, uint32_t layer, uint32_t expert,
				  const struct p2pio_xchunk **out);
P2PIO_HIDDEN int p2pio_xpool_go_home(struct p2pio_xpool *p, uint32_t layer, uint32_t expert);
/* The chunk backing (@layer, @expert), or NULL. */
P2PIO_HIDDEN const struct p2pio_xchunk *p2pio_xpool_chunk(const struct p2pio_xpool *p,
							  uint32_t layer, uint32_t expert);
/*
 * Take the chunk back into the free list. Return 0, or -ENOENT when none backs it.
 * Deferred (p2pio_xpool_set_deferred()), the home stays mapped until the next flush, or
 * until the home is mapped again: the caller must guarantee, as for an unmap, that no
 * work reads the expert any more; a stale pointer reads whatever the chunk holds next.
 */
P2PIO_HIDDEN int p2pio_xpool_unmap(struct p2pio_xpool *p, uint32_t layer, uint32_t expert);
/*
 * Defer unmapping (on) or not (off: flushes). A deferred eviction costs no allocator call:
 * the next miss maps the freed chunk at its own home right away (a chunk may be mapped at
 * two homes at once, which CUDA and mmap allow) and the old home is unmapped later, off
 * the miss path. No effect on allocators without a reservation.
 */
P2PIO_HIDDEN void p2pio_xpool_set_deferred(struct p2pio_xpool *p, bool on);
/* Undo every deferred unmap now; the number undone. */
P2PIO_HIDDEN size_t p2pio_xpool_flush(struct p2pio_xpool *p);
/* Deferred unmaps pending. */
P2PIO_HIDDEN size_t p2pio_xpool_ghosts(const struct p2pio_xpool *p);
/* Change the limit on @committed (0: none); free chunks above it are destroyed. */
P2PIO_HIDDEN void p2pio_xpool_set_limit(struct p2pio_xpool *p, uint64_t limit);
/* Destroy free chunks until @committed <= @keep. */
P2PIO_HIDDEN void p2pio_xpool_trim(struct p2pio_xpool *p, uint64_t keep);
P2PIO_HIDDEN void p2pio_xpool_stats(const struct p2pio_xpool *p, struct p2pio_xpool_stats *st);

/* The allocators of the library; @arg is what each create_* hands back. */
P2PIO_HIDDEN int p2pio_xmem_host_create(struct p2pio_ctx *ctx, const struct p2pio_xmem_ops **ops,
					void **arg);
P2PIO_HIDDEN int p2pio_xmem_cuda_create(struct p2pio_ctx *ctx, const struct p2pio_xmem_ops **ops,
					void **arg, struct p2pio_error *err);
P2PIO_HIDDEN int p2pio_xmem_nvd_create(struct p2pio_ctx *ctx, const struct p2pio_xmem_ops **ops,
				       void **arg);
/* Free what create_* made (after p2pio_xpool_destroy()). */
P2PIO_HIDDEN void p2pio_xmem_free(const struct p2pio_xmem_ops *ops, void *arg);

#endif /* P2PIO_EXPERTS_XMEM_H */
