/* SPDX-License-Identifier: MIT */
/*
 * experts/expert_io.h - how one expert is read: its slices of the layer's "*_exps"
 * tensors as a few block-aligned reads into its memory. Pure planning, no I/O: the unit
 * tests drive it directly. Private to libp2pio.
 */
#ifndef P2PIO_EXPERTS_EXPERT_IO_H
#define P2PIO_EXPERTS_EXPERT_IO_H

#include "internal.h"
#include "model/plan.h"

/* The most "*_exps" tensors a layer may have (gate, up, down, their scales and biases). */
#define P2PIO_EXPERT_MAX_SLICES 16

/*
 * struct p2pio_expert_plan - expert e of a layer.
 * @nslices: the layer's expert tensors, by increasing file offset.
 * @tensor:  [nslices] their indices (p2pio_gguf_tensor()).
 * @file_off, @size: [nslices] the slice's absolute file range.
 * @dst:     [nslices] the slice's offset in the expert's memory (same value modulo the
 *           block size as @file_off, so every read lands in place).
 * @nruns, @runs: the reads: runs[i].file_off/len block-aligned (the last clamped to the
 *           file), runs[i].dst_off block-aligned in the expert's memory.
 * @region:  bytes of memory the runs take.
 */
struct p2pio_expert_plan {
	uint32_t nslices;
	uint32_t nruns;
	uint64_t region;
	size_t tensor[P2PIO_EXPERT_MAX_SLICES];
	uint64_t file_off[P2PIO_EXPERT_MAX_SLICES];
	uint64_t size[P2PIO_EXPERT_MAX_SLICES];
	uint64_t dst[P2PIO_EXPERT_MAX_SLICES];
	struct p2pio_run runs[P2PIO_EXPERT_MAX_SLICES];
};

/*
 * Plan expert @e of layer @gl of @g, reads in @block units (a power of two) within
 * @file_size. Slices that share or touch a block share a read. Return 0, -EINVAL (no
 * expert tensors, @e out of range, bad block), -E2BIG (too many expert tensors).
 */
P2PIO_HIDDEN int p2pio_expert_plan(const struct p2pio_gguf *g, const struct p2pio_gguf_layer *gl,
				   uint64_t e, uint64_t block, uint64_t file_size,
				   struct p2pio_expert_plan *out);

#endif /* P2PIO_EXPERTS_EXPERT_IO_H */
