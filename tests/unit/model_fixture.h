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

#endif /* P2PIO_MODEL_FIXTURE_H */
