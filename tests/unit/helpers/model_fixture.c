// SPDX-License-Identifier: MIT
/*
 * model_fixture.c - a small synthetic model for the model tests (unit and GPU).
 */
#include <stdio.h>

#include "p2pio.h"
#include "model_fixture.h"

static int add_f32(struct p2pio_gguf_writer *w, const char *name, uint64_t ne0, uint64_t ne1,
		   uint64_t *seed)
{
	struct p2pio_gguf_new_tensor t = {
		.name = name,
		.type = P2PIO_GGML_TYPE_F32,
		.n_dims = ne1 > 1 ? 2 : 1,
		.ne = { ne0, ne1, 1, 1 },
		.fill = p2pio_gguf_pattern_fill,
		.arg = seed,
	};

	return p2pio_gguf_writer_add_tensor(w, &t);
}

int model_fixture_write(const char *path, int nlayers, uint64_t seed)
{
	static const struct model_fixture_shape small = {
		.embd_rows = 37, .q_rows = 30, .q_step = 3, .up_rows = 50, .out_rows = 20,
	};

	return model_fixture_write_shape(path, nlayers, seed, &small);
}

int model_fixture_write_shape(const char *path, int nlayers, uint64_t seed,
			      const struct model_fixture_shape *shape)
{
	static uint64_t fill_seed;
	struct p2pio_gguf_writer *w;
	struct p2pio_error err = { 0 };
	char name[64];
	int l, ret;

	fill_seed = seed;
	ret = p2pio_gguf_writer_create(&w, path, 32, &err);
	if (ret)
		return ret;
	ret = p2pio_gguf_writer_add_str(w, "general.architecture", "llama");
	ret = ret ? ret : p2pio_gguf_writer_add_u64(w, "p2pio.pattern.seed", seed);
	ret = ret ? ret : add_f32(w, "token_embd.weight", 1000, shape->embd_rows, &fill_seed);
	for (l = 0; l < nlayers && !ret; l++) {
		snprintf(name, sizeof(name), "blk.%d.attn_norm.weight", l);
		ret = add_f32(w, name, 1000, 1, &fill_seed);
		snprintf(name, sizeof(name), "blk.%d.attn_q.weight", l);
		ret = ret ? ret : add_f32(w, name, 1000, shape->q_rows + shape->q_step * (uint64_t)l, &fill_seed);
		snprintf(name, sizeof(name), "blk.%d.ffn_up.weight", l);
		ret = ret ? ret : add_f32(w, name, 1000, shape->up_rows, &fill_seed);
		snprintf(name, sizeof(name), "blk.%d.ffn_norm.weight", l);
		ret = ret ? ret : add_f32(w, name, 7, 1, &fill_seed);
	}
	ret = ret ? ret : add_f32(w, "output_norm.weight", 1000, 1, &fill_seed);
	ret = ret ? ret : add_f32(w, "output.weight", 1000, shape->out_rows, &fill_seed);
	ret = ret ? ret : p2pio_gguf_writer_finish(w);
	p2pio_gguf_writer_free(w);
	return ret;
}

static int add_tensor(struct p2pio_gguf_writer *w, const char *name, uint32_t type,
		      uint32_t n_dims, uint64_t ne0, uint64_t ne1, uint64_t ne2, uint64_t *seed)
{
	struct p2pio_gguf_new_tensor t = {
		.name = name,
		.type = type,
		.n_dims = n_dims,
		.ne = { ne0, ne1, ne2, 1 },
		.fill = p2pio_gguf_pattern_fill,
		.arg = seed,
	};

	return p2pio_gguf_writer_add_tensor(w, &t);
}

int model_fixture_write_moe(const char *path, int nlayers, uint32_t nexperts, uint64_t hidden,
			    uint64_t ffn, uint64_t seed)
{
	return model_fixture_write_moe_ex(path, nlayers, 0, nexperts, hidden, ffn, seed);
}

int model_fixture_write_moe_ex(const char *path, int nlayers, int ndense, uint32_t nexperts,
			       uint64_t hidden, uint64_t ffn, uint64_t seed)
{
	static uint64_t fill_seed;
	struct p2pio_gguf_writer *w;
	struct p2pio_error err = { 0 };
	char name[64];
	int l, ret;

	fill_seed = seed;
	ret = p2pio_gguf_writer_create(&w, path, 32, &err);
	if (ret)
		return ret;
	ret = p2pio_gguf_writer_add_str(w, "general.architecture", "gpt-oss");
	ret = ret ? ret : p2pio_gguf_writer_add_u64(w, "p2pio.pattern.seed", seed);
	ret = ret ? ret : p2pio_gguf_writer_add_u32(w, "gpt-oss.expert_count", nexperts);
	ret = ret ? ret : p2pio_gguf_writer_add_u32(w, "gpt-oss.expert_used_count", 2);
	ret = ret ? ret : add_tensor(w, "token_embd.weight", P2PIO_GGML_TYPE_F32, 2, hidden, 50, 1,
				     &fill_seed);
	for (l = 0; l < nlayers && !ret; l++) {
#define T(suffix, ...)                                                                     \
	do {                                                                               \
		snprintf(name, sizeof(name), "blk.%d." suffix, l);                         \
		ret = ret ? ret : add_tensor(w, name, __VA_ARGS__, &fill_seed);            \
	} while (0)
		T("attn_norm.weight", P2PIO_GGML_TYPE_F32, 1, hidden, 1, 1);
		T("attn_q.weight", P2PIO_GGML_TYPE_F32, 2, hidden, 8 + (uint64_t)l, 1);
		if (l < ndense) {
			T("ffn_gate.weight", P2PIO_GGML_TYPE_F32, 2, hidden, ffn, 1);
			T("ffn_up.weight", P2PIO_GGML_TYPE_F32, 2, hidden, ffn, 1);
			T("ffn_down.weight", P2PIO_GGML_TYPE_F32, 2, ffn, hidden, 1);
			continue;
		}
		T("ffn_gate_inp.weight", P2PIO_GGML_TYPE_F32, 2, hidden, nexperts, 1);
		T("ffn_gate_exps.weight", P2PIO_GGML_TYPE_MXFP4, 3, hidden, ffn, nexperts);
		T("ffn_gate_exps.bias", P2PIO_GGML_TYPE_F32, 2, ffn, nexperts, 1);
		T("ffn_up_exps.weight", P2PIO_GGML_TYPE_MXFP4, 3, hidden, ffn, nexperts);
		T("ffn_down_exps.weight", P2PIO_GGML_TYPE_MXFP4, 3, ffn, hidden, nexperts);
#undef T
	}
	ret = ret ? ret : add_tensor(w, "output.weight", P2PIO_GGML_TYPE_F32, 2, hidden, 30, 1,
				     &fill_seed);
	ret = ret ? ret : p2pio_gguf_writer_finish(w);
	p2pio_gguf_writer_free(w);
	return ret;
}
