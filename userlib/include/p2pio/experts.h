/* SPDX-License-Identifier: MIT */
/*
 * p2pio/experts.h - libp2pio: the MoE expert cache (the runtime: memory, I/O, streams).
 *
 * Part of the public API; include <p2pio.h>, which includes every part. Its source is
 * userlib/src/experts/. The eviction policies and the statistics the cache shares with the
 * trace simulator are in p2pio/expert_policy.h.
 */
#ifndef P2PIO_PUBLIC_EXPERTS_H
#define P2PIO_PUBLIC_EXPERTS_H

#include "p2pio/common.h"
#include "p2pio/engine.h"
#include "p2pio/model.h"
#include "p2pio/expert_policy.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ===================================================================================== */
/* MoE expert cache                                              (userlib/src/experts/)     */
/* ===================================================================================== */

/*
 * An expert cache runs a mixture-of-experts model whose experts do not fit in target
 * memory. The dense part (attention, norms, router, shared experts, embeddings: every
 * tensor that is not a "*_exps" tensor) is loaded once and stays resident; the experts are
 * loaded on demand into a budget of memory and evicted by a policy (p2pio/expert_policy.h).
 *
 * Expert e of a layer is slice e of each of the layer's "*_exps" tensors (gate, up, down,
 * and their scales or biases); the cache reads all of an expert's slices in one load, as a
 * few block-aligned reads, on the path the context uses for the model's file (P2P, BOUNCE
 * or POSIX; host memory on a context without a GPU).
 *
 * Memory: on a GPU the cache reserves address space for every expert of every layer once
 * (CUDA virtual memory management), so an expert has the same device pointer whenever it is
 * resident (CUDA-graph friendly), and backs it with physical memory only while it is
 * resident; physical chunks are recycled, so a miss maps a chunk but does not allocate one.
 * Nothing is committed for experts at open. Host contexts do the same with mmap.
 *
 * Everything is stream-ordered: p2pio_experts_require() hands out pointers at once and
 * makes the caller's CUDA stream wait for the experts still loading (the host is not
 * blocked); p2pio_experts_release() records, on the stream, the point after which the
 * experts may be evicted. Without a GPU, require returns once the data is in place and
 * release takes effect at once.
 *
 * A cache may be used from several threads (its calls take its lock).
 */

struct p2pio_experts;

/* Flags (struct p2pio_experts_opts.flags). */
/*
 * Built-in prefetch from the previous token's routing: when layer L is required, the
 * experts the next layer with experts used in the previous token (and, at the last layer,
 * those the first used in this one) start loading, one layer ahead of their use. Dense
 * layers (no *_exps tensors, never required) are skipped.
 */
#define P2PIO_EXPERTS_PREFETCH_PREV (1u << 0)
/*
 * Unmap a victim's memory before the miss that evicts it loads, as before deferred
 * unmapping (for measurements). By default a miss maps the victim's physical memory at
 * its own address at once and the victim's address is unmapped later, at the next
 * p2pio_experts_release(), off the miss's path.
 */
#define P2PIO_EXPERTS_EAGER_UNMAP (1u << 1)
/*
 * Built-in learned prefetch: the cache learns, from the routing its require calls show
 * it, which experts of a layer come with which experts of the one or two layers before,
 * and when layer L is required it starts loading the experts it predicts for the next
 * layer with experts (the first after the last layer), as many as this call required, one
 * layer ahead of their use. It sees only the past, so it needs no router of the next
 * layer: on the real traces the same predictor turned 2-21 points of misses at 25 % of
 * the experts resident into loads that land before their layer, for 4-90 % more loads
 * (Documentation/moe.md, "Closing the gap"). It seldom gets all of a layer's experts
 * right, so a decode that waits for each layer's routing waits about as often as without
 * it ("Tenth round"); a caller's own guess of the next layer (p2pio_experts_prefetch())
 * does better where it is right nearly always. Its tables take 2 x layers x experts^2 x 4
 * bytes of host memory (256 MiB at most: p2pio_experts_open() fails with -E2BIG above).
 * Require each layer's experts in one call per token, layers in order: every call is one
 * step of the routing it learns. With P2PIO_EXPERTS_PREFETCH_PREV both prefetch.
 */
#define P2PIO_EXPERTS_PREFETCH_LEARNED (1u << 2)
/*
 * Keep loading wrong hints. By default, when a layer is required, the loads of its
 * hinted experts that it did not require (wrong guesses, p2pio_experts_prefetch() or the
 * built-in prefetch) are withdrawn if none of their reads has started (p2pio_cancel()):
 * their bandwidth goes to the loads the decode waits for. With this flag they load on and
 * stay as ordinary experts, as every hint did before session 13. A caller that requires
 * one layer's experts in several calls per token wants this flag: its first call would
 * withdraw the hints the later ones need.
 */
#define P2PIO_EXPERTS_KEEP_WRONG_HINTS (1u << 3)
/*
 * Queue a miss's reads behind every read queued before it, hints included, as before
 * session 13, for comparison. By default a miss's reads are P2PIO_REQ_URGENT: on BOUNCE
 * and POSIX they go ahead of every hint not yet started; and a hinted load still queued
 * when its layer is required with it (a right guess) is made urgent then
 * (p2pio_hasten()), so that it goes with the misses, ahead of the hints for later layers
 * and of misses required after it. This flag does neither.
 */
#define P2PIO_EXPERTS_MISSES_IN_ORDER (1u << 4)

/*
 * The eviction policy where the caller names none: LRFU (recency and frequency). In the
 * replay of the real traces it was ahead of LRU or level in every cell but one (Mixtral at
 * 25 %, 2.2 points behind), by up to 19 points at 10 % where LRU collapses; on the H200
 * the runtime decoded the fitted gpt-oss-120b trace in 8 GiB at 30.1 % hits against LRU's
 * 22.5 %: 14.3 tokens/s against 11.9 (Documentation/moe.md, "Ninth round").
 */
#define P2PIO_EXPERTS_DEFAULT_POLICY "lrfu"

/**
 * struct p2pio_experts_opts - options of p2pio_experts_open(); grows at the end, set @size.
 * @size:        sizeof(struct p2pio_experts_opts) as the caller compiled it.
 * @budget:      bytes of target memory for the dense part and the resident experts
 *               together; 0: enough for every expert (nothing is evicted).
 * @layer_floor: optional, [layers] bytes: a layer never loses experts to another layer's
 *               miss below this many bytes of its own.
 * @policy:      eviction policy by name (p2pio_expert_policy_find()); NULL:
 *               P2PIO_EXPERTS_DEFAULT_POLICY.
 * @policy_args: the policy's option string, or NULL.
 * @flags:       P2PIO_EXPERTS_* flags (others: -EINVAL).
 * @policy_ops:  the caller's own eviction policy (struct p2pio_expert_policy_ops: @name,
 *               @create, @destroy, @inserted, @accessed, @removed and @victim filled in);
 *               when set, @policy must be NULL. The table must outlive the cache; its
 *               @create gets @policy_args and NULL data.
 * @read_piece:  bytes of each engine read an expert load is cut into (rounded up to
 *               4 KiB), between 1 MiB and the context's chunk; 0: by @read_pieces.
 * @read_pieces: cut each load into about this many reads, shared out between its
 *               tensors' runs in proportion to their bytes (none larger than the
 *               context's chunk), so that one expert's bytes are read by many engine
 *               threads at once and copied while the rest is read; 0 (with @read_piece
 *               0): the default, half the context's threads, each read at least 1 MiB.
 */
struct p2pio_experts_opts {
	size_t size;
	uint64_t budget;
	const uint64_t *layer_floor;
	const char *policy;
	const char *policy_args;
	uint32_t flags;
	uint32_t reserved;
	const struct p2pio_expert_policy_ops *policy_ops;
	uint64_t read_piece;
	uint32_t read_pieces;
	uint32_t reserved2;
};

/**
 * p2pio_experts_opts_init() - fill @o with the defaults (and @o->size).
 * @o: the options.
 */
void p2pio_experts_opts_init(struct p2pio_experts_opts *o);

/**
 * p2pio_experts_open() - load a model's dense part and open an expert cache over the rest.
 * @m:    a model opened with p2pio_model_open(), not loaded whole and not streaming; it must
 *        outlive the cache, and while the cache is open it is neither loaded whole nor
 *        streamed (p2pio_model_load() and p2pio_streamer_open() return -EBUSY).
 * @opts: options, or NULL for the defaults.
 * @out:  the cache.
 * @err:  optional: why it cannot open (no expert tensors, a budget smaller than the dense
 *        part and one expert, no virtual memory management on the GPU, ...).
 *
 * Return: 0, -EINVAL, -EBUSY (@m loaded whole or streaming), -ENOSPC (budget), -EOPNOTSUPP,
 * -ENOMEM, or an I/O error loading the dense part.
 */
int p2pio_experts_open(struct p2pio_model *m, const struct p2pio_experts_opts *opts,
		       struct p2pio_experts **out, struct p2pio_error *err);

/**
 * p2pio_experts_close() - wait for loads and released stream work, free everything.
 * @x: a cache, or NULL.
 */
void p2pio_experts_close(struct p2pio_experts *x);

/**
 * struct p2pio_experts_info - the shape of the cache.
 * @layers:       layers of the model (blk.0 .. blk.layers-1).
 * @experts:      experts per layer (the largest count of any layer).
 * @experts_used: experts a token routes to per layer ({arch}.expert_used_count; 0 unknown).
 * @expert_bytes: bytes one expert commits (its reads laid out, rounded to the allocation
 *                granularity), the largest of any layer.
 * @expert_data:  bytes of tensor data of one expert (the sum of its slices), largest layer.
 * @dense_bytes:  target memory the resident dense part takes.
 * @budget:       the budget in force (bytes, dense part included).
 * @capacity:     experts of the largest size that fit beside the dense part.
 * @stable:       whether experts keep one address (false only for the VM's test double).
 */
struct p2pio_experts_info {
	uint32_t layers;
	uint32_t experts;
	uint32_t experts_used;
	uint32_t reserved;
	uint64_t expert_bytes;
	uint64_t expert_data;
	uint64_t dense_bytes;
	uint64_t budget;
	uint64_t capacity;
	bool stable;
};

/**
 * p2pio_experts_info() - the cache's shape.
 * @x:    a cache.
 * @info: filled on return.
 */
void p2pio_experts_info(const struct p2pio_experts *x, struct p2pio_experts_info *info);

/**
 * struct p2pio_expert_slice - one tensor's slice of an expert, in the expert's memory.
 * @name:        the "*_exps" tensor's name; valid while the model is open.
 * @offset:      offset of the slice from the expert's pointer.
 * @size:        bytes (the tensor's expert_bytes).
 * @file_offset: absolute file offset of its first byte.
 * @type:        the tensor's ggml type.
 */
struct p2pio_expert_slice {
	const char *name;
	uint64_t offset;
	uint64_t size;
	uint64_t file_offset;
	uint32_t type;
	uint32_t reserved;
};

/**
 * p2pio_experts_slices() - where each of an expert's slices lies in its memory.
 * @x:      a cache.
 * @layer:  the layer.
 * @expert: the expert.
 * @out:    up to @max slices, by increasing file offset.
 * @max:    room in @out.
 *
 * Offsets keep each slice's file offset modulo the block size (the reads land in place,
 * with no copy), so they may differ between experts of a layer; they never change.
 * Return: the number of slices (may exceed @max: then only @max are filled), -ERANGE.
 */
int p2pio_experts_slices(const struct p2pio_experts *x, uint32_t layer, uint32_t expert,
			 struct p2pio_expert_slice *out, uint32_t max);

/**
 * p2pio_experts_tensor() - a resident (dense) tensor's address, by name.
 * @x:    a cache.
 * @name: the tensor name.
 * @out:  filled on success.
 *
 * Return: 0, -ENOENT (no such tensor), -EINVAL (an expert tensor: require its experts).
 */
int p2pio_experts_tensor(const struct p2pio_experts *x, const char *name,
			 struct p2pio_model_tensor *out);

/**
 * p2pio_experts_require() - hand out experts of a layer, ordered before work on @stream.
 * @x:        a cache.
 * @layer:    the layer.
 * @ids:      the experts the token routes to (distinct).
 * @n:        how many.
 * @stream:   a CUstream of the context's device (NULL: the legacy stream); ignored
 *            without a GPU.
 * @ptrs_out: [@n] each expert's address (a CUdeviceptr, or a host pointer).
 *
 * Each expert counts as a hit or a miss; misses are loaded at once, all in parallel
 * (evicting what the policy chooses among experts that are not pinned, not held and not in
 * use by released stream work). @stream waits for every expert still loading, whether this
 * call or an earlier prefetch started it; the host does not. The experts are held (never
 * evicted) until p2pio_experts_release(). Without a GPU the call returns once they are
 * loaded. When the budget is full of held, pinned or in-use experts, the call waits for
 * released stream work to finish; it fails with -ENOSPC when nothing can ever free room.
 *
 * Return: 0; -ERANGE (layer or expert out of range), -EINVAL (duplicate ids, a layer
 * without experts), -ENOSPC, -ENOMEM, or the -errno of a failed load (also reported for a
 * load that failed after a stream had started waiting on it).
 */
int p2pio_experts_require(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
			  uint32_t n, void *stream, uint64_t *ptrs_out);

/**
 * p2pio_experts_host() - a CPU view of a resident expert's memory.
 * @x:      a cache.
 * @layer:  the layer.
 * @expert: the expert.
 *
 * Return: the CPU address of the expert's first byte (host memory; the VM test double's BAR
 * mapping), or NULL for CUDA device memory or an expert that is not resident.
 */
void *p2pio_experts_host(struct p2pio_experts *x, uint32_t layer, uint32_t expert);

/**
 * p2pio_experts_release() - the work queued on @stream so far is the last to use experts.
 * @x:      a cache.
 * @layer:  the layer.
 * @ids:    experts handed out by p2pio_experts_require().
 * @n:      how many.
 * @stream: the stream that used them; the experts become evictable once the work queued on
 *          it before this call has completed (a CUDA event; at once without a GPU).
 *
 * Return: 0, -ERANGE, -EINVAL (an expert not held).
 */
int p2pio_experts_release(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
			  uint32_t n, void *stream);

/**
 * p2pio_experts_prefetch() - a hint: start loading experts likely to be required soon.
 * @x:     a cache.
 * @layer: the layer.
 * @ids:   experts (already resident or loading ones are skipped).
 * @n:     how many.
 *
 * The hint that pays is the next layer's routing, as soon as it can be guessed (an early
 * router run on this layer's input): a decode that requires each layer once the layers
 * before it are done otherwise waits for a miss batch in nearly every layer. On the H200
 * stand-in the gpt-oss-120b-shaped model in 8 GiB decoded at 18.35 tokens/s with every
 * next layer hinted, 16.38 with each guess right 90 % of the time, and 14.67 with no hint
 * (Documentation/moe.md, "Eleventh round").
 *
 * A prefetched expert waits for the next access of its layer: until then no miss or
 * prefetch evicts it while anything else can go (a policy ranks an expert never accessed
 * last), so a hint may be given several layers ahead; once its layer was accessed without
 * it, it was a wrong guess: its load is withdrawn if none of its reads has started
 * (P2PIO_EXPERTS_KEEP_WRONG_HINTS keeps it), else it loads and is evicted like any other
 * expert.
 *
 * A hint's reads go behind every miss's (a miss's reads are P2PIO_REQ_URGENT): on BOUNCE
 * and POSIX a miss does not wait for hints queued before it, only for reads already out.
 * Once its layer is required with it, a hint still queued is made urgent too
 * (p2pio_hasten()), and the layer's wrong hints are withdrawn before its misses are
 * admitted, so that the misses take their room.
 *
 * Never blocks; a prefetch that would need room nobody can give up now is dropped.
 * Return: the number of loads started, or -ERANGE.
 */
int p2pio_experts_prefetch(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
			   uint32_t n);

/**
 * p2pio_experts_pin() - keep experts resident (loading them if needed), or let them go.
 * @x:     a cache.
 * @layer: the layer.
 * @ids:   experts.
 * @n:     how many.
 * @pin:   true to pin, false to unpin.
 *
 * Pinned experts count against the budget and are never evicted.
 * Return: 0, -ERANGE, -ENOSPC (no room to load one), or a load's -errno.
 */
int p2pio_experts_pin(struct p2pio_experts *x, uint32_t layer, const uint32_t *ids,
		      uint32_t n, bool pin);

/**
 * p2pio_experts_token_begin() - a token's forward pass starts (statistics, prefetch).
 * @x: a cache.
 */
void p2pio_experts_token_begin(struct p2pio_experts *x);

/**
 * p2pio_experts_token_end() - the token's forward pass is queued.
 * @x: a cache.
 *
 * Return: 0, or the -errno of a load that failed after a stream had started waiting on it.
 */
int p2pio_experts_token_end(struct p2pio_experts *x);

/**
 * struct p2pio_experts_io - what the cache's runtime did (beside the hit and miss counts of
 * struct p2pio_expert_stats).
 * @size:        sizeof(struct p2pio_experts_io) as the caller compiled it.
 * @loads:       expert loads started (demand and prefetch).
 * @prefetches:  of those, prefetches.
 * @reads:       engine reads submitted.
 * @bytes:       bytes read for experts.
 * @io_ns:       sum over loads of submit-to-completion time.
 * @stalls:      waits queued on streams (or, without a GPU, blocking waits) for experts
 *               still loading.
 * @stall_ns:    time the streams waited at them (CUDA events), or require blocked.
 * @host_wait_ns: time the calling thread blocked: no room until released work finished,
 *               or 64 stalled requires ahead of its streams (how far a caller may run
 *               ahead of the GPU work it queued).
 * @committed:   physical bytes the expert pool holds now ...
 * @peak:        ... and at most;
 * @creates:     physical allocations made; @maps, @unmaps: mappings made and removed.
 * @dense_bytes: the resident dense part.
 * @wall_ns:     time since open (or the last reset).
 * @batches:     require calls that started loads (a miss batch); for those, summed, the
 *               time from the call's start until ...
 * @batch_submit_ns: ... every read of its misses was submitted (admission, unmapping
 *               victims, backing them with memory, submission; on a GPU the experts'
 *               addresses are mapped after that, while the reads run);
 * @batch_first_ns: ... the first read of its misses completed (its bytes in place);
 * @batch_done_ns: ... the last of its misses completed and its completion word was
 *               stored (the caller's stream may go on).
 * @map_ns:      time spent backing experts with memory (taking chunks, mapping their
 *               addresses: on a GPU, after the reads are submitted), and ...
 * @unmap_ns:    ... taking it back from victims, on the caller's thread, in require (with
 *               deferred unmapping only the bookkeeping, and @forced_unmaps);
 * @read_piece:  the bytes of each read a load is cut into.
 * @late_unmaps: victims' addresses unmapped after their miss batch (in release) ...
 * @late_unmap_ns: ... and the time that took;
 * @forced_unmaps: of the deferred unmaps, those a miss had to do first (the expert came
 *               back before its old mapping was undone).
 * @busy_ns:     time at least one load was in flight (the reads' wall time: @bytes over
 *               it is the rate the loads got while there were any).
 * @read_pieces: the reads per load (0: loads cut by @read_piece).
 * @batch_taken_ns: for the miss batches, summed, the time from the call's start until the
 *               last of its reads was handed to one of the engine's threads, and ...
 * @batch_landed_ns: ... until the last of them was read (its bytes in the path's staging
 *               or in place, before any copy to the GPU). Both 0 where the path does not
 *               say (P2P); with @batch_submit_ns, @batch_first_ns and @batch_done_ns they
 *               tell the engine's hand-out, its reads and its copies apart.
 * @cancels:     hinted loads withdrawn before any of their reads started, their layer
 *               required without them (not in @loads, @prefetches, @reads or @bytes).
 * @hastened:    hinted loads still queued when their layer was required with them: their
 *               reads made urgent (p2pio_hasten()), as a miss's are.
 * @cut_short:   hinted loads some of whose reads were done when their layer was required
 *               without them, the others still queued: those withdrawn, the expert not
 *               resident. Counted when it happens, as @cancels and @hastened are; the load
 *               stays in the @loads and @prefetches of the statistics it started in, whose
 *               @reads and @bytes keep what was read.
 */
struct p2pio_experts_io {
	size_t size;
	uint64_t loads;
	uint64_t prefetches;
	uint64_t reads;
	uint64_t bytes;
	uint64_t io_ns;
	uint64_t stalls;
	uint64_t stall_ns;
	uint64_t host_wait_ns;
	uint64_t committed;
	uint64_t peak;
	uint64_t creates;
	uint64_t maps;
	uint64_t unmaps;
	uint64_t dense_bytes;
	uint64_t wall_ns;
	uint64_t batches;
	uint64_t batch_submit_ns;
	uint64_t batch_first_ns;
	uint64_t batch_done_ns;
	uint64_t map_ns;
	uint64_t unmap_ns;
	uint64_t read_piece;
	uint64_t late_unmaps;
	uint64_t late_unmap_ns;
	uint64_t forced_unmaps;
	uint64_t busy_ns;
	uint64_t read_pieces;
	uint64_t batch_taken_ns;
	uint64_t batch_landed_ns;
	uint64_t cancels;
	uint64_t hastened;
	uint64_t cut_short;
};

/**
 * p2pio_experts_stats() - the cache's statistics.
 * @x:     a cache.
 * @st:    optional: hits, misses, per token and per layer (the residency statistics, the
 *         same a trace replay reports); set its size first.
 * @io:    optional: the runtime's counters; set @io->size first.
 * @reset: zero the runtime counters (@io) afterwards; stream waits queued before are
 *         waited for first, so they count before the reset.
 *
 * Return: 0 or -EINVAL.
 */
int p2pio_experts_stats(struct p2pio_experts *x, struct p2pio_expert_stats *st,
			struct p2pio_experts_io *io, bool reset);

/**
 * p2pio_experts_layer_stats() - one layer's hits, misses and resident experts.
 * @x:     a cache.
 * @layer: the layer.
 * @st:    filled on return.
 *
 * Return: 0 or -ERANGE.
 */
int p2pio_experts_layer_stats(struct p2pio_experts *x, uint32_t layer,
			      struct p2pio_expert_layer_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* P2PIO_PUBLIC_EXPERTS_H */
