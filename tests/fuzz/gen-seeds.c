// SPDX-License-Identifier: MIT
/*
 * gen-seeds.c - writes the fuzz target's seed corpus into a directory: small valid GGUF
 * files that between them use every value type, nested arrays, v2 and v3, a custom
 * alignment, block-quantized types, layers and MoE expert tensors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_build.h"

static void save(const struct gguf_build *b, const char *dir, const char *name)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(b->p, 1, b->len, f) != b->len || fclose(f)) {
		perror(path);
		exit(1);
	}
}

static void metadata(const char *dir, uint32_t version)
{
	struct gguf_build b;
	char name[32];
	uint32_t t;

	gb_init(&b);
	gb_header(&b, version, 0, 16);
	for (t = 0; t <= P2PIO_GGUF_TYPE_FLOAT64; t++) {
		if (t == P2PIO_GGUF_TYPE_ARRAY || t == P2PIO_GGUF_TYPE_STRING)
			continue;
		snprintf(name, sizeof(name), "k.%s", p2pio_gguf_type_name(t));
		gb_key(&b, name, t);
		gb_u64(&b, 0x8070605040302010ull);
		b.len -= 8;
		gb_bytes(&b, "\x10\x20\x30\x40\x50\x60\x70\x80", t == 7 || t < 2 ? 1 :
			 t < 4 ? 2 : t < 7 ? 4 : 8);
	}
	gb_kv_str(&b, "general.architecture", "llama");
	gb_kv_u32(&b, "general.alignment", 64);
	gb_key(&b, "tokens", P2PIO_GGUF_TYPE_ARRAY);
	gb_u32(&b, P2PIO_GGUF_TYPE_STRING);
	gb_u64(&b, 3);
	gb_str(&b, "<s>");
	gb_str(&b, "a");
	gb_str(&b, "");
	gb_key(&b, "scores", P2PIO_GGUF_TYPE_ARRAY);
	gb_u32(&b, P2PIO_GGUF_TYPE_FLOAT32);
	gb_u64(&b, 2);
	gb_u32(&b, 0x3f800000);
	gb_u32(&b, 0xbf800000);
	gb_key(&b, "nested", P2PIO_GGUF_TYPE_ARRAY);
	gb_u32(&b, P2PIO_GGUF_TYPE_ARRAY);
	gb_u64(&b, 2);
	gb_u32(&b, P2PIO_GGUF_TYPE_INT16);
	gb_u64(&b, 1);
	gb_u16(&b, 7);
	gb_u32(&b, P2PIO_GGUF_TYPE_STRING);
	gb_u64(&b, 1);
	gb_str(&b, "x");
	snprintf(name, sizeof(name), "meta-v%u.gguf", version);
	save(&b, dir, name);
	gb_free(&b);
}

static void moe(const char *dir)
{
	struct gb_tensor t[] = {
		GB_T("token_embd.weight", P2PIO_GGML_TYPE_Q4_0, 2, 32, 4),
		GB_T("blk.0.attn_q.weight", P2PIO_GGML_TYPE_F16, 2, 8, 8),
		GB_T("blk.0.ffn_gate_inp.weight", P2PIO_GGML_TYPE_F32, 2, 8, 4),
		GB_T("blk.0.ffn_up_exps.weight", P2PIO_GGML_TYPE_Q8_0, 3, 32, 2, 4),
		GB_T("blk.0.ffn_down_exps.weight", P2PIO_GGML_TYPE_BF16, 3, 2, 8, 4),
		GB_T("blk.1.attn_q.weight", P2PIO_GGML_TYPE_F16, 2, 8, 8),
		GB_T("blk.1.ffn_up_exps.weight", P2PIO_GGML_TYPE_Q8_0, 3, 32, 2, 4),
		GB_T("output.weight", P2PIO_GGML_TYPE_Q4_K, 1, 256),
	};
	struct gguf_build b;

	gb_init(&b);
	gb_model(&b, 3, 0, t, sizeof(t) / sizeof(t[0]));
	save(&b, dir, "moe.gguf");
	gb_free(&b);
	gb_init(&b);
	gb_model(&b, 2, 128, t, 3);
	save(&b, dir, "dense-v2-align128.gguf");
	gb_free(&b);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	metadata(argv[1], 2);
	metadata(argv[1], 3);
	moe(argv[1]);
	return 0;
}
