/* SPDX-License-Identifier: MIT */
/*
 * model_fixture.h - a small synthetic model for the model tests (unit and GPU).
 */
#ifndef P2PIO_MODEL_FIXTURE_H
#define P2PIO_MODEL_FIXTURE_H

#include <stdint.h>

/*
 * Write a llama-like model of @nlayers layers to @path: per layer blk.N.attn_norm
 * (4000 bytes), attn_q (grows with N), ffn_up (200000 bytes) and ffn_norm (28 bytes), plus
 * token_embd, output_norm and output; every tensor F32 and only 32-byte aligned, filled
 * with the test pattern of @seed (stored as p2pio.pattern.seed). Returns 0 or -errno.
 */
int model_fixture_write(const char *path, int nlayers, uint64_t seed);

/*
 * The fixture's sizes, in rows of 1000 F32 values: token_embd, attn_q of layer 0 (and
 * how many rows it grows by per layer), ffn_up and output.
 */
struct model_fixture_shape {
	uint64_t embd_rows, q_rows, q_step, up_rows, out_rows;
};

/* model_fixture_write() with other sizes (the VM test's layers are about 1 MB). */
int model_fixture_write_shape(const char *path, int nlayers, uint64_t seed,
			      const struct model_fixture_shape *shape);

#endif /* P2PIO_MODEL_FIXTURE_H */
