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

/*
 * Write a gpt-oss-like mixture-of-experts model of @nlayers layers with @nexperts experts
 * each (2 used per token) to @path: per layer attn_norm, attn_q, ffn_gate_inp (the router)
 * and the expert tensors ffn_gate_exps, ffn_up_exps (MXFP4, @hidden x @ffn per expert),
 * ffn_down_exps (MXFP4, @ffn x @hidden) and ffn_gate_exps.bias (F32, @ffn), so an expert's
 * slices are neither block-aligned nor block-sized; plus token_embd and output. Every byte
 * is the test pattern of @seed. @hidden and @ffn must be multiples of 32. Returns 0 or -errno.
 */
int model_fixture_write_moe(const char *path, int nlayers, uint32_t nexperts, uint64_t hidden,
			    uint64_t ffn, uint64_t seed);

/*
 * The same with its first @ndense layers dense (ffn_gate, ffn_up and ffn_down, F32, no
 * router, no experts), as DeepSeek's and Kimi's first layers are.
 */
int model_fixture_write_moe_ex(const char *path, int nlayers, int ndense, uint32_t nexperts,
			       uint64_t hidden, uint64_t ffn, uint64_t seed);

#endif /* P2PIO_MODEL_FIXTURE_H */
