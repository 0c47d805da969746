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
