/* SPDX-License-Identifier: MIT */
/*
 * model.h - state shared by the model's files (model.c: open and lookup, model_load.c:
 * whole-model load, model_stream.c: layer streaming, model_verify.c: verification);
 * private to libp2pio.
 */
#ifndef P2PIO_MODEL_H
#define P2PIO_MODEL_H

#include "internal.h"
#include "model/plan.h"

/*
 * Reads are planned in blocks of this size: file offsets and region offsets of every run
 * are multiples of it, which is what O_DIRECT and the P2P path want (LBA size, page size),
 * so the engine never has to split off a head or tail.
 */
#define P2PIO_MODEL_BLOCK 4096u
/* Tensors closer than this share a read. */
#define P2PIO_MODEL_MERGE_GAP (64u << 10)
#define P2PIO_MODEL_DEF_CHUNK (64ull << 20)

/* A group of tensors read together into one region (a slot, or the resident arena). */
struct p2pio_model_group {
	uint32_t number;		/* blk.N, or P2PIO_GGUF_NO_LAYER */
	uint32_t ntensors;
	uint32_t *idx;			/* indices into model->tensors */
	uint64_t *dst;			/* tensor i lands at region + dst[i] */
	uint64_t bytes;			/* tensor bytes */
	uint32_t nruns;
	struct p2pio_run *runs;
	uint64_t region;		/* bytes of target memory the group takes */
};

struct p2pio_model {
	struct p2pio_ctx *ctx;
	struct p2pio_gguf *gguf;
	struct p2pio_file *file;
	enum p2pio_mem mem;
	bool gpu;			/* target memory is CUDA device memory */
	uint64_t file_size;
	uint64_t data_offset;
	uint64_t data_size;
	uint64_t seed;
	bool has_seed;

	uint32_t ntensors;
	struct p2pio_model_tensor *tensors;	/* addr: in the arena once loaded */
	uint32_t nlayers;
	struct p2pio_model_group *layers;
	struct p2pio_model_group resident;	/* the non-layer tensors */
	uint64_t slot_bytes;			/* the largest layer region */

	struct p2pio_model_group whole;		/* every tensor: the arena's plan */
	struct p2pio_buf *arena;
	struct p2pio_streamer *streamer;
	uint32_t experts_open;	/* expert caches over it (p2pio_experts_open()): no whole load
				 * or streamer meanwhile, which would load what they budget */
};

/*
 * model_load.c: read @g's runs into @buf at @base (region offset 0), from the caller. @res
 * (optional) gets the reads and the phases (first_ns .. mid_bytes), times since the call.
 */
P2PIO_HIDDEN int p2pio_model_read_group(struct p2pio_model *m, const struct p2pio_model_group *g,
					struct p2pio_buf *buf, uint64_t base, uint64_t chunk,
					p2pio_progress_fn progress, void *arg,
					struct p2pio_load_result *res);

/*
 * model.c: plan group @g (its idx[] and ntensors filled): its runs, destinations and region.
 * Tensors closer than @gap share a read. The expert cache plans its dense part with it.
 */
P2PIO_HIDDEN int p2pio_model_group_plan(struct p2pio_model *m, struct p2pio_model_group *g,
					uint64_t gap, struct p2pio_error *err);
P2PIO_HIDDEN void p2pio_model_group_free(struct p2pio_model_group *g);

/* Host CPU time of the process (user + system), in nanoseconds. */
P2PIO_HIDDEN uint64_t p2pio_model_cpu_ns(void);
P2PIO_HIDDEN uint64_t p2pio_model_now_ns(void);

#endif /* P2PIO_MODEL_H */
