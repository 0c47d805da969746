// SPDX-License-Identifier: MIT
/*
 * Grouping tensors into layers and MoE experts: a small MoE-shaped model (two layers of
 * attention, router and three *_exps tensors of 4 experts, plus embeddings and head), each
 * layer's tensors, bytes, span and contiguity, each expert's file range and bytes; then the
 * name rules (gaps, interleaving, names that look like layers but are not).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gguf_build.h"
#include "tap.h"

#define N_MOE 15

static struct gb_tensor moe[N_MOE] = {
	GB_T("token_embd.weight", P2PIO_GGML_TYPE_F32, 2, 16, 10),
	GB_T("blk.0.attn_norm.weight", P2PIO_GGML_TYPE_F32, 1, 16),
	GB_T("blk.0.attn_q.weight", P2PIO_GGML_TYPE_Q8_0, 2, 32, 16),
	GB_T("blk.0.ffn_gate_inp.weight", P2PIO_GGML_TYPE_F32, 2, 16, 4),
	GB_T("blk.0.ffn_gate_exps.weight", P2PIO_GGML_TYPE_F16, 3, 16, 8, 4),
	GB_T("blk.0.ffn_down_exps.weight", P2PIO_GGML_TYPE_F16, 3, 8, 16, 4),
	GB_T("blk.0.ffn_up_exps.weight", P2PIO_GGML_TYPE_F16, 3, 16, 8, 4),
	GB_T("blk.1.attn_norm.weight", P2PIO_GGML_TYPE_F32, 1, 16),
	GB_T("blk.1.attn_q.weight", P2PIO_GGML_TYPE_Q8_0, 2, 32, 16),
	GB_T("blk.1.ffn_gate_inp.weight", P2PIO_GGML_TYPE_F32, 2, 16, 4),
	GB_T("blk.1.ffn_gate_exps.weight", P2PIO_GGML_TYPE_F16, 3, 16, 8, 4),
	GB_T("blk.1.ffn_down_exps.weight", P2PIO_GGML_TYPE_F16, 3, 8, 16, 4),
	GB_T("blk.1.ffn_up_exps.weight", P2PIO_GGML_TYPE_F16, 3, 16, 8, 4),
	GB_T("output_norm.weight", P2PIO_GGML_TYPE_F32, 1, 16),
	GB_T("output.weight", P2PIO_GGML_TYPE_F32, 2, 16, 10),
};

static void check_layer(struct p2pio_gguf *g, size_t li, size_t first, size_t data)
{
	const struct p2pio_gguf_layer *l = p2pio_gguf_layer(g, li);
	uint64_t bytes = 0, ebytes = 0, off, len;
	const unsigned char *p;
	size_t i, order = 0, e, ranges = 0;

	for (i = 0; i < 6; i++) {
		bytes += moe[first + i].size;
		order += l->tensors[i] == first + i;
	}
	for (i = 3; i < 6; i++)
		ebytes += moe[first + i].size / 4;
	tap_ok(l && l->number == li && l->n_tensors == 6 && order == 6,
	       "layer %zu: 6 tensors, in file order", li);
	tap_ok(l->bytes == bytes && l->file_start == data + moe[first].offset &&
		       l->file_end == data + moe[first + 5].offset + moe[first + 5].size && l->contiguous,
	       "layer %zu: %llu bytes, spanning [%llu, %llu), contiguous", li,
	       (unsigned long long)l->bytes, (unsigned long long)l->file_start,
	       (unsigned long long)l->file_end);
	tap_ok(l->n_experts == 4 && l->n_expert_tensors == 3 && l->expert_tensors[0] == first + 3 &&
		       l->expert_tensors[2] == first + 5 && l->expert_bytes == ebytes,
	       "layer %zu: 4 experts in 3 tensors, %llu bytes per expert", li,
	       (unsigned long long)ebytes);
	for (i = first + 3; i < first + 6; i++) {
		const struct p2pio_gguf_tensor *t = p2pio_gguf_tensor(g, i);

		if (t->n_experts != 4 || t->expert_bytes != t->size / 4 || t->layer != li)
			continue;
		for (e = 0; e < 4; e++) {
			if (p2pio_gguf_expert_range(g, i, e, &off, &len) ||
			    off != t->file_offset + e * (t->size / 4) || len != t->size / 4 ||
			    p2pio_gguf_tensor_data(g, i, (const void **)&p, NULL))
				break;
			/* Expert e's first and last byte, through the mapping. */
			p += e * len;
			if (p[0] != gb_pattern(off) || p[len - 1] != gb_pattern(off + len - 1))
				break;
		}
		ranges += e == 4;
		ranges += p2pio_gguf_expert_range(g, i, 4, &off, &len) == -ERANGE;
	}
	tap_is_int(ranges, 6, "layer %zu: each expert's file range and bytes", li);
}

static void test_moe(void)
{
	struct p2pio_gguf *g = NULL;
	struct p2pio_error err;
	struct gguf_build b;
	const struct p2pio_gguf_layer *nl;
	uint64_t off, len;
	size_t data;

	gb_init(&b);
	data = gb_model(&b, 3, 0, moe, N_MOE);
	if (!tap_is_int(gb_open(&b, &g, &err), 0, "a small MoE model opens")) {
		tap_diag("%s", err.msg);
		return;
	}
	tap_is_int(p2pio_gguf_layer_count(g), 2, "2 layers");
	check_layer(g, 0, 1, data);
	check_layer(g, 1, 7, data);
	nl = p2pio_gguf_nonlayer(g);
	tap_ok(nl->number == P2PIO_GGUF_NO_LAYER && nl->n_tensors == 3 && nl->tensors[0] == 0 &&
		       nl->tensors[1] == 13 && nl->tensors[2] == 14 && !nl->contiguous &&
		       nl->n_experts == 0 && nl->n_expert_tensors == 0,
	       "non-layer tensors: embeddings, output norm and head; not contiguous");
	tap_ok(nl->file_start == data && nl->file_end == b.len, "they span the whole data section");
	tap_ok(p2pio_gguf_find_layer(g, 1) == 1 && p2pio_gguf_find_layer(g, 2) == -ENOENT &&
		       !p2pio_gguf_layer(g, 2), "layer lookup");
	tap_ok(p2pio_gguf_tensor(g, 3)->n_experts == 0 && p2pio_gguf_tensor(g, 3)->layer == 0 &&
		       p2pio_gguf_expert_range(g, 3, 0, &off, &len) == -EINVAL,
	       "the router is not an expert tensor");
	tap_is_int(p2pio_gguf_expert_range(g, N_MOE, 0, &off, &len), -ERANGE, "no tensor 15");
	p2pio_gguf_close(g);
	gb_free(&b);
}

static void test_names(void)
{
	struct gb_tensor t[10] = {
		GB_T("blk.10.a", P2PIO_GGML_TYPE_F32, 1, 8),
		GB_T("blk.3.a", P2PIO_GGML_TYPE_F32, 1, 8),
		GB_T("blk.10.b", P2PIO_GGML_TYPE_F32, 1, 8),
		GB_T("blk.01.a", P2PIO_GGML_TYPE_F32, 1, 8),
		GB_T("blk.x.a", P2PIO_GGML_TYPE_F32, 1, 8),
		GB_T("blk.1234567890.a", P2PIO_GGML_TYPE_F32, 1, 8),
		GB_T("blk.5", P2PIO_GGML_TYPE_F32, 1, 8),
		GB_T("blk.0.ffn_up_exps", P2PIO_GGML_TYPE_F32, 2, 8, 6),
		GB_T("blk.0.ffn_down_shexp.weight", P2PIO_GGML_TYPE_F32, 2, 8, 6),
		GB_T("blk.999999999.ffn_gate_exps.bias", P2PIO_GGML_TYPE_F32, 2, 8, 3),
	};
	const struct p2pio_gguf_layer *l;
	struct p2pio_gguf *g = NULL;
	struct p2pio_error err;
	struct gguf_build b;
	size_t i, nonlayer = 0;

	gb_init(&b);
	gb_model(&b, 3, 0, t, 10);
	if (!tap_is_int(gb_open(&b, &g, &err), 0, "a file of odd names opens")) {
		tap_diag("%s", err.msg);
		return;
	}
	tap_is_int(p2pio_gguf_layer_count(g), 4, "layers 0, 3, 10 and 999999999");
	l = p2pio_gguf_layer(g, 2);
	tap_ok(l->number == 10 && l->n_tensors == 2 && !l->contiguous && l->tensors[0] == 0 &&
		       l->tensors[1] == 2, "layer 10, interleaved with layer 3, is not contiguous");
	l = p2pio_gguf_layer(g, 1);
	tap_ok(l->number == 3 && l->n_tensors == 1 && l->contiguous, "layer 3 has one tensor");
	for (i = 3; i < 7; i++)
		nonlayer += p2pio_gguf_tensor(g, i)->layer == P2PIO_GGUF_NO_LAYER;
	tap_is_int(nonlayer, 4, "blk.01, blk.x, 10 digits and a missing dot are not layers");
	tap_is_int(p2pio_gguf_nonlayer(g)->n_tensors, 4, "they are the non-layer group");
	tap_ok(p2pio_gguf_tensor(g, 7)->n_experts == 6 && p2pio_gguf_tensor(g, 8)->n_experts == 0,
	       "a bare '_exps' name is an expert tensor, a shared expert ('_shexp') is not");
	l = p2pio_gguf_layer(g, 3);
	tap_ok(l->number == 999999999 && l->n_experts == 3 && l->expert_bytes == 32,
	       "9 digits are a layer; an _exps bias counts experts too");
	p2pio_gguf_close(g);
	gb_free(&b);
}

/* A 1-D "*_exps" tensor is valid GGUF: listed as an ordinary tensor, refused only when its
 * experts are asked for, with the reason. */
static void test_one_dim_experts(void)
{
	struct gb_tensor t[2] = {
		GB_T("blk.0.ffn_up_exps.weight", P2PIO_GGML_TYPE_F32, 1, 8),
		GB_T("blk.0.ffn_down_exps.weight", P2PIO_GGML_TYPE_F32, 3, 8, 2, 4),
	};
	struct p2pio_gguf *g = NULL;
	struct p2pio_error err;
	struct gguf_build b;
	uint64_t n = 0, off, len;

	gb_init(&b);
	gb_model(&b, 3, 0, t, 2);
	if (!tap_is_int(gb_open(&b, &g, &err), 0, "a file with a 1-D '_exps' tensor opens")) {
		tap_diag("%s", err.msg);
		gb_free(&b);
		return;
	}
	tap_ok(p2pio_gguf_tensor(g, 0)->n_experts == 0 && p2pio_gguf_tensor(g, 0)->expert_bytes == 0 &&
		       p2pio_gguf_tensor(g, 0)->layer == 0,
	       "it is listed as an ordinary tensor of layer 0 (n_experts 0)");
	tap_ok(p2pio_gguf_layer(g, 0)->n_experts == 4 && p2pio_gguf_layer(g, 0)->n_expert_tensors == 1,
	       "the layer's experts come from its 3-D expert tensor only");
	tap_is_int(p2pio_gguf_expert_range(g, 0, 0, &off, &len), -EINVAL,
		   "its expert range is refused");
	memset(&err, 0, sizeof(err));
	tap_is_int(p2pio_gguf_tensor_experts(g, 0, &n, &err), -EINVAL, "asking for its experts fails");
	tap_ok(strstr(err.msg, "blk.0.ffn_up_exps.weight") && strstr(err.msg, "1 dimension") &&
		       strstr(err.msg, "needs at least 2"),
	       "and says why: %s", err.msg);
	tap_ok(!p2pio_gguf_tensor_experts(g, 1, &n, NULL) && n == 4, "the 3-D one has 4 experts");
	tap_is_int(p2pio_gguf_tensor_experts(g, 2, &n, NULL), -ERANGE, "tensor 2 does not exist");
	p2pio_gguf_close(g);
	gb_free(&b);
}

int main(void)
{
	tap_plan_lazy();
	test_moe();
	test_names();
	test_one_dim_experts();
	return tap_exit();
}
