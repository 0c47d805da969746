/* SPDX-License-Identifier: MIT */
/*
 * p2pio/model.h - libp2pio: whole-model load and layer streaming.
 *
 * Part of the public API; include <p2pio.h>, which includes every part. Its source is
 * userlib/src/model/.
 */
#ifndef P2PIO_PUBLIC_MODEL_H
#define P2PIO_PUBLIC_MODEL_H

#include "p2pio/common.h"
#include "p2pio/gguf.h"
#include "p2pio/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ===================================================================================== */
/* Models: whole-model load and layer streaming                 (userlib/src/model/)      */
/* ===================================================================================== */

/*
 * A model is a GGUF file opened on a context (see the engine section): the model knows its
 * tensors, groups them into layers (blk.N.*) and the rest (embeddings, output, norms), and
 * moves them into the context's target memory (GPU memory, or host memory when the context
 * has no GPU) in one of two ways:
 *
 *  - whole: p2pio_model_load() reads the file's data section into one arena, as a few large
 *    reads, with every tensor at its file-relative offset (so the GGUF's own alignment is
 *    kept and unaligned tensors need no extra copy); p2pio_model_tensor() finds a tensor's
 *    address by name.
 *  - streamed: p2pio_streamer_open() keeps the non-layer tensors resident and cycles the
 *    layers through a budget of slots, loading ahead of the compute; p2pio_streamer_acquire()
 *    hands out a layer and makes the caller's CUDA stream wait for its data,
 *    p2pio_streamer_release() gives the slot back once the work queued on that stream is
 *    done. Neither call synchronises the host with the GPU unless there is no free slot.
 *
 * A streamer may be used from several threads (its calls take its lock); a model's
 * whole-load and lookup calls are for one thread at a time.
 *
 * Addresses are uint64_t: a CUdeviceptr for a GPU context, a host pointer otherwise.
 * CUDA streams are passed as void * (a CUstream; NULL is the legacy default stream) and are
 * ignored on a context without a GPU.
 */

struct p2pio_model;
struct p2pio_streamer;
struct p2pio_verifier;

/**
 * struct p2pio_model_tensor - a tensor of a model, and where it is in target memory.
 * @name:        the GGUF tensor name; valid while the model is open.
 * @addr:        its address in target memory, or 0 while it is not loaded.
 * @host:        a CPU mapping of the same bytes where the target memory has one (host
 *               memory: the same as @addr; the VM's test double: its BAR mapping), NULL
 *               for CUDA device memory or while not loaded.
 * @size:        its size in bytes.
 * @file_offset: the absolute file offset of its first byte.
 * @type:        its ggml type id.
 * @layer:       the layer it belongs to (blk.N.*), or -1 for the non-layer tensors.
 */
struct p2pio_model_tensor {
	const char *name;
	uint64_t addr;
	void *host;
	uint64_t size;
	uint64_t file_offset;
	uint32_t type;
	int32_t layer;
};

/**
 * struct p2pio_model_info - the shape of a model as the loader sees it.
 * @file_size:      the file's size in bytes.
 * @data_offset:    absolute offset of the GGUF data section.
 * @data_size:      size of the data section (up to the end of the last tensor).
 * @tensors:        number of tensors.
 * @layers:         number of layers (blk.0 .. blk.layers-1).
 * @layer_bytes:    total bytes of all layer tensors.
 * @slot_bytes:     the target memory one streaming slot takes (the largest layer, laid out).
 * @resident_bytes: the target memory the non-layer tensors take when streaming.
 * @pattern_seed:   p2pio.pattern.seed from the metadata (synthetic models), if @has_seed.
 * @has_seed:       whether the file carries a pattern seed (p2pio-mkmodel's models do).
 */
struct p2pio_model_info {
	uint64_t file_size;
	uint64_t data_offset;
	uint64_t data_size;
	uint32_t tensors;
	uint32_t layers;
	uint64_t layer_bytes;
	uint64_t slot_bytes;
	uint64_t resident_bytes;
	uint64_t pattern_seed;
	bool has_seed;
};

/**
 * struct p2pio_model_opts - options of p2pio_model_open(); all zero means the defaults.
 * @flags: P2PIO_MODEL_* flags.
 * @mem:   the kind of target memory, when P2PIO_MODEL_SET_MEM is set; by default CUDA
 *         device memory on a GPU context and host memory otherwise. (The VM tests use
 *         P2PIO_MEM_NVDOUBLE.)
 * @path:  0 for the context's path, or an enum p2pio_path to force one for this file
 *         (as p2pio_file_open()'s flags).
 */
struct p2pio_model_opts {
	uint32_t flags;
	enum p2pio_mem mem;
	uint32_t path;
};

/* struct p2pio_model_opts.mem is set. */
#define P2PIO_MODEL_SET_MEM (1u << 0)

/**
 * p2pio_model_open() - open a GGUF model for loading through a context.
 * @ctx:  the context whose target memory and I/O engine the model uses; it must outlive
 *        the model.
 * @path: the GGUF file.
 * @opts: options, or NULL for the defaults.
 * @out:  the model, on success.
 * @err:  optional: what was wrong with the file, and where.
 *
 * Parses the file (strictly, as untrusted input), opens it on the engine (which picks the
 * path) and plans the reads; loads nothing yet.
 *
 * Return: 0, or a negative errno (-EINVAL/-EBADMSG for a malformed file, -ENOENT, ...).
 */
int p2pio_model_open(struct p2pio_ctx *ctx, const char *path, const struct p2pio_model_opts *opts,
		     struct p2pio_model **out, struct p2pio_error *err);

/**
 * p2pio_model_file() - the engine's file of a model, for p2pio_path_info() and the like.
 * @m: the model.
 */
struct p2pio_file *p2pio_model_file(const struct p2pio_model *m);

/**
 * p2pio_model_gguf() - the model's own parsed GGUF header.
 * @m: the model.
 *
 * The header the model was opened with (metadata, and each tensor's name, type and
 * dimensions), parsed from the same open file the model reads: take a tensor's shape here
 * rather than by opening the path again, which could find another file there by then.
 * Owned by @m: valid until p2pio_model_close(); do not close it.
 *
 * Return: the handle.
 */
struct p2pio_gguf *p2pio_model_gguf(const struct p2pio_model *m);

/**
 * p2pio_model_close() - free a model's target memory and close its file. NULL is a no-op.
 * @m: the model; every streamer opened on it must be closed first.
 */
void p2pio_model_close(struct p2pio_model *m);

/**
 * p2pio_model_info() - the model's sizes, layer count and pattern seed.
 * @m:    the model.
 * @info: filled on return.
 */
void p2pio_model_info(const struct p2pio_model *m, struct p2pio_model_info *info);

/**
 * typedef p2pio_progress_fn - progress of a whole-model load.
 * @arg:   the opaque pointer given with the callback.
 * @done:  bytes landed so far.
 * @total: bytes the load moves in all.
 *
 * Called from the loading thread as reads complete, at least once at the end.
 * Return: 0 to go on; non-zero stops the load, which then fails with -ECANCELED.
 */
typedef int (*p2pio_progress_fn)(void *arg, uint64_t done, uint64_t total);

/**
 * struct p2pio_model_load_opts - options of p2pio_model_load(); zero means the default.
 * @progress:     optional progress callback.
 * @progress_arg: passed to @progress.
 * @chunk:        the size of each read the data section is cut into (default 64 MiB): large
 *                enough that every path streams at full speed, small enough that reads run
 *                in parallel and progress moves.
 */
struct p2pio_model_load_opts {
	p2pio_progress_fn progress;
	void *progress_arg;
	uint64_t chunk;
};

/**
 * struct p2pio_load_result - what a whole-model load did; grows at the end, set @size.
 * @size:     sizeof(struct p2pio_load_result) as the caller compiled it: the library
 *            writes no further (a caller built before a field was added gets the fields
 *            it knows).
 * @bytes:    bytes read from the file (the data section, rounded out to whole blocks).
 * @reads:    reads submitted.
 * @wall_ns:  wall time of the load, from the first submit to the last completion.
 * @cpu_ns:   CPU time the process spent meanwhile (user + system, all threads).
 * @arena:    the arena's address in target memory.
 * @arena_bytes: the arena's size.
 * @first_ns: from the start of the load until its first read (of up to the chunk size)
 *            landed: the start-up.
 * @last_submit_ns: until the last read was submitted.
 * @mid_start_ns: until a tenth of the bytes had landed.
 * @mid_end_ns: until nine tenths had landed.
 * @mid_bytes: bytes landed between those two moments: @mid_bytes / (@mid_end_ns -
 *            @mid_start_ns) is the rate of the middle of the load, its start and tail left
 *            out (0 when the load has too few reads to tell them apart).
 */
struct p2pio_load_result {
	size_t size;
	uint64_t bytes;
	uint64_t reads;
	uint64_t wall_ns;
	uint64_t cpu_ns;
	uint64_t arena;
	uint64_t arena_bytes;
	uint64_t first_ns;
	uint64_t last_submit_ns;
	uint64_t mid_start_ns;
	uint64_t mid_end_ns;
	uint64_t mid_bytes;
};

/**
 * p2pio_model_load() - load the whole model into one arena of target memory.
 * @m:    the model.
 * @opts: options, or NULL for the defaults.
 * @res:  optional: what the load did (set @res->size first).
 *
 * Allocates the arena (the data section rounded out to the engine's block size), reads the
 * data section into it with large reads in parallel, and returns once every byte has
 * landed (for a GPU context: is visible to work launched afterwards on any stream). After
 * it, p2pio_model_tensor() gives each tensor's address. Loading twice reloads.
 *
 * Return: 0, or a negative errno (-EINVAL when @res->size is not set, -ENOMEM when the
 * arena does not fit, -EBUSY while a streamer or an expert cache is open on @m, -EIO,
 * -ECANCELED).
 */
int p2pio_model_load(struct p2pio_model *m, const struct p2pio_model_load_opts *opts,
		     struct p2pio_load_result *res);

/**
 * p2pio_model_tensor() - look a tensor up by name (hashed).
 * @m:    the model.
 * @name: the GGUF tensor name.
 * @out:  filled on success; @out->addr is 0 until the model is loaded.
 *
 * Return: 0, or -ENOENT.
 */
int p2pio_model_tensor(const struct p2pio_model *m, const char *name,
		       struct p2pio_model_tensor *out);

/**
 * p2pio_model_tensor_at() - the tensor at index @i (0 .. tensors-1, in the file's order of
 * tensor infos).
 * @m:   the model.
 * @i:   the index.
 * @out: filled on success.
 *
 * Return: 0, or -ERANGE.
 */
int p2pio_model_tensor_at(const struct p2pio_model *m, uint32_t i,
			  struct p2pio_model_tensor *out);

/**
 * struct p2pio_streamer_opts - options of p2pio_streamer_open(); zero means the default.
 * @budget:   target memory the streamer may use in bytes, resident tensors included; the
 *            slots are what is left divided by the slot size. Ignored when @slots is set.
 * @slots:    number of layer slots (at least 1; 2 or more let loads overlap compute).
 * @prefetch: layers loaded ahead of the last one acquired; at most slots - 1. By default
 *            every slot but the acquired layer's, up to 3: the next layers load while this
 *            one computes, and at the end of a pass the next pass's first layers do, so
 *            a slow first read (a cold cache) hides behind several layers' compute; with
 *            more slots the rest keep layers for the next pass. p2pio_streamer_prefetch()
 *            says what was chosen.
 * @flags:    P2PIO_STREAM_* flags.
 */
struct p2pio_streamer_opts {
	uint64_t budget;
	uint32_t slots;
	uint32_t prefetch;
	uint32_t flags;
};

/* Load nothing ahead: each layer loads when it is acquired. */
#define P2PIO_STREAM_NO_PREFETCH (1u << 0)
/* Evict the least recently used slot instead of the one needed furthest in the future. */
#define P2PIO_STREAM_LRU (1u << 1)

/**
 * struct p2pio_layer - a layer handed out by p2pio_streamer_acquire().
 * @index:    the layer number.
 * @tensors:  its tensors (@ntensors of them) with their addresses in the layer's slot;
 *            valid until the layer is released.
 * @ntensors: number of tensors.
 * @bytes:    the layer's tensor bytes.
 * @slot:     the slot it occupies.
 */
struct p2pio_layer {
	uint32_t index;
	const struct p2pio_model_tensor *tensors;
	uint32_t ntensors;
	uint64_t bytes;
	uint32_t slot;
};

/**
 * struct p2pio_stream_stats - what streaming did, in total or for one layer.
 * @bytes:      bytes read from the file into slots (and, in the total, resident tensors).
 * @loads:      layer loads (reads of a layer into a slot).
 * @acquires:   acquire calls.
 * @hits:       acquires served by a slot that still held the layer from an earlier acquire
 *              (no I/O).
 * @reuses:     times a slot was recycled for another layer.
 * @wasted:     prefetched loads evicted before they were acquired.
 * @stall_ns:   time the compute waited for I/O: on a GPU, the time each stream spent at the
 *              wait that acquire queued (measured with CUDA events); without a GPU, the time
 *              acquire blocked. This is the exposed stall.
 * @io_ns:      sum over loads of the time from submit to completion.
 * @host_wait_ns: time acquire/release blocked the calling thread (waiting for a slot, or
 *              for data where the stream cannot wait by itself).
 * @wall_ns:    (total only) time since the streamer opened or the stats were reset.
 */
struct p2pio_stream_stats {
	uint64_t bytes;
	uint64_t loads;
	uint64_t acquires;
	uint64_t hits;
	uint64_t reuses;
	uint64_t wasted;
	uint64_t stall_ns;
	uint64_t io_ns;
	uint64_t host_wait_ns;
	uint64_t wall_ns;
};

/**
 * p2pio_streamer_open() - start streaming a model's layers through a budget.
 * @m:    the model (not loaded whole; p2pio_model_load() and a streamer exclude each other).
 * @opts: options, or NULL: a budget of a quarter of the model's size (but at least the
 *        resident tensors and two slots), the default prefetch window (see
 *        struct p2pio_streamer_opts).
 * @out:  the streamer, on success.
 * @err:  optional: why the budget does not work (too small for the resident tensors and
 *        one layer, say).
 *
 * Allocates the resident arena and the slots, loads the non-layer tensors (synchronously),
 * and starts prefetching from layer 0.
 *
 * Return: 0, or a negative errno (-ENOSPC: budget too small; -EBUSY: already streaming,
 * loaded whole, or an expert cache open on @m).
 */
int p2pio_streamer_open(struct p2pio_model *m, const struct p2pio_streamer_opts *opts,
			struct p2pio_streamer **out, struct p2pio_error *err);

/**
 * p2pio_streamer_close() - wait for outstanding loads and stream work, free the slots and
 * the resident arena. NULL is a no-op.
 * @s: the streamer; every acquired layer should have been released.
 */
void p2pio_streamer_close(struct p2pio_streamer *s);

/**
 * p2pio_streamer_slots() - the number of layer slots the budget gave.
 * @s: the streamer.
 */
uint32_t p2pio_streamer_slots(const struct p2pio_streamer *s);

/**
 * p2pio_streamer_prefetch() - the prefetch window: how many layers load ahead.
 * @s:   the streamer.
 * @why: optional: set to how it was chosen (the default from the slots, the caller's
 *       value, capped to the slots), a string valid until the streamer is closed.
 */
uint32_t p2pio_streamer_prefetch(const struct p2pio_streamer *s, const char **why);

/**
 * p2pio_streamer_wait_prefetch() - wait until the prefetch window has landed.
 * @s: the streamer.
 *
 * Starts the loads of the window that can start and waits until no load is in flight:
 * say, at the end of a pass, before a benchmark stops its clock (so that the next pass's
 * first layers, loaded ahead, are timed in this one) or drops the page cache. A slot whose
 * stream work is still running is waited for; held slots are not freed.
 *
 * Return: 0, or a negative errno when the engine's queue failed.
 */
int p2pio_streamer_wait_prefetch(struct p2pio_streamer *s);

/**
 * p2pio_streamer_tensor() - a resident (non-layer) tensor's address, by name.
 * @s:    the streamer.
 * @name: the tensor name.
 * @out:  filled on success.
 *
 * Return: 0; -ENOENT if there is no such tensor; -EINVAL if it belongs to a layer
 * (acquire the layer instead).
 */
int p2pio_streamer_tensor(const struct p2pio_streamer *s, const char *name,
			  struct p2pio_model_tensor *out);

/**
 * p2pio_streamer_acquire() - hand out a layer, ordered before work queued on @stream.
 * @s:      the streamer.
 * @layer:  the layer number.
 * @stream: the CUstream the layer's compute will run on (NULL: the legacy default stream);
 *          ignored without a GPU.
 * @out:    the layer's tensors and their addresses, valid until p2pio_streamer_release().
 *
 * Loads the layer into a slot if no slot holds it (evicting one whose stream work is done,
 * waiting for such a slot if there is none), makes @stream wait until its data has landed
 * without blocking the host where the engine can order the stream itself (otherwise the
 * host waits; without a GPU it always does), then starts loading the layers that follow
 * (the prefetch depth, wrapping around to layer 0 for the next pass).
 *
 * Return: 0; -ERANGE: no such layer; -EBUSY: the layer is already acquired; -ENOSPC: every
 * slot is acquired and none can be freed; -EIO (or another errno) when its load failed.
 */
int p2pio_streamer_acquire(struct p2pio_streamer *s, uint32_t layer, void *stream,
			   struct p2pio_layer *out);

/**
 * p2pio_streamer_release() - give a layer's slot back once @stream's work on it is done.
 * @s:      the streamer.
 * @layer:  the layer, acquired before.
 * @stream: the stream its work was queued on (an event is recorded there; the slot is
 *          reused only after the event completed). Ignored without a GPU.
 *
 * Never blocks on the GPU. The layer stays in its slot until the slot is needed, so a later
 * acquire may hit.
 *
 * Return: 0, or -EINVAL when the layer is not acquired.
 */
int p2pio_streamer_release(struct p2pio_streamer *s, uint32_t layer, void *stream);

/**
 * p2pio_streamer_stats() - statistics in total and per layer.
 * @s:         the streamer.
 * @total:     filled with the totals (optional).
 * @per_layer: optional array of @n entries; entry i gets layer i's numbers.
 * @n:         entries in @per_layer (at most the layer count are filled).
 *
 * Collects the stall times of stream waits that have completed; call it after
 * synchronising the streams for exact numbers.
 */
void p2pio_streamer_stats(struct p2pio_streamer *s, struct p2pio_stream_stats *total,
			  struct p2pio_stream_stats *per_layer, uint32_t n);

/**
 * p2pio_streamer_reset_stats() - zero the statistics and restart the wall clock (say,
 * after a warm-up pass).
 * @s: the streamer.
 */
void p2pio_streamer_reset_stats(struct p2pio_streamer *s);

/*
 * Verification of synthetic models (p2pio-mkmodel's deterministic pattern): check that the
 * bytes of tensors in target memory are the file's bytes, on the GPU with a kernel that
 * reads every byte (and can spin on to emulate a model's arithmetic), or on the CPU for a
 * host context.
 */

/**
 * struct p2pio_verify_result - what a verifier saw since it was opened or last reset.
 * @bytes:          bytes checked.
 * @mismatches:     bytes that differed from the pattern.
 * @first_mismatch: file offset of the lowest differing byte, or P2PIO_NO_OFFSET.
 * @checksum:       a sum over every 64-bit word checked (an order-independent digest that
 *                  makes the kernel read every byte even where nothing differs).
 * @launches:       kernel launches (GPU) or checks (CPU) done.
 */
struct p2pio_verify_result {
	uint64_t bytes;
	uint64_t mismatches;
	uint64_t first_mismatch;
	uint64_t checksum;
	uint64_t launches;
};

/**
 * p2pio_verifier_open() - prepare to verify tensors of a context's target memory.
 * @ctx:  the context.
 * @seed: the pattern seed (struct p2pio_model_info.pattern_seed).
 * @out:  the verifier, on success.
 * @err:  optional: why not (no GPU kernels built into this library, say).
 *
 * Return: 0; -ENOTSUP when the context has a GPU but the library was built without nvcc
 * (the verification kernels are compiled at build time).
 */
int p2pio_verifier_open(struct p2pio_ctx *ctx, uint64_t seed, struct p2pio_verifier **out,
			struct p2pio_error *err);

/**
 * p2pio_verifier_close() - free a verifier. NULL is a no-op.
 * @v: the verifier.
 */
void p2pio_verifier_close(struct p2pio_verifier *v);

/**
 * p2pio_verifier_check() - queue a check of @n tensors, then @compute_ns of busy compute.
 * @v:          the verifier.
 * @t:          the tensors, with their addresses in target memory (a host context
 *              reads them through @t->host).
 * @n:          how many.
 * @stream:     the CUstream to queue on (GPU); ignored for a host context, where the check
 *              runs before the call returns.
 * @compute_ns: extra time to keep the stream (or the CPU) busy after the check, emulating
 *              a layer's arithmetic; 0 for none.
 *
 * Return: 0; -E2BIG when checks since the last result went to more than 8 streams; or a
 * negative errno from the launch.
 */
int p2pio_verifier_check(struct p2pio_verifier *v, const struct p2pio_model_tensor *t,
			 uint32_t n, void *stream, uint64_t compute_ns);

/**
 * p2pio_verifier_result() - wait for queued checks and read the totals.
 * @v:     the verifier.
 * @res:   filled on return.
 * @reset: zero the totals afterwards.
 *
 * Synchronises with the streams checks were queued on: call it between passes, not per
 * layer.
 * Return: 0, or a negative errno.
 */
int p2pio_verifier_result(struct p2pio_verifier *v, struct p2pio_verify_result *res,
			  bool reset);

#ifdef __cplusplus
}
#endif

#endif /* P2PIO_PUBLIC_MODEL_H */
