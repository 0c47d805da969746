// SPDX-License-Identifier: MIT
/*
 * p2pio-mkmodel and p2pio-gguf, run as built (build/bin or build-asan/bin beside this
 * test's directory): the tiny and moe-tiny presets read back through the reader with the
 * names, shapes, types, layer and expert structure llama.cpp would write, their bytes are
 * the pattern of the seed in the metadata; p2pio-gguf's JSON parses in every mode, and its
 * exit codes say what happened.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "p2pio.h"
#include "tap.h"
#include "tool_run.h"

static const char *bin;		/* where the tools are: tool_bindir() */
static const char *dir;		/* the scratch directory, removed at exit */
static char *out;		/* the last command's standard output */

/* Run a shell command line; its stdout lands in out; returns the exit status. */
#define run(...) tool_sh(&out, __VA_ARGS__)

static const struct p2pio_gguf_tensor *tensor(struct p2pio_gguf *g, const char *name)
{
	return p2pio_gguf_tensor_by_name(g, name);
}

static bool shape_is(const struct p2pio_gguf_tensor *t, uint32_t n, uint64_t a, uint64_t b,
		     uint64_t c)
{
	return t && t->n_dims == n && t->ne[0] == a && (n < 2 || t->ne[1] == b) &&
	       (n < 3 || t->ne[2] == c);
}

/* Every tensor's bytes are the pattern of their file offsets. */
static bool all_pattern(struct p2pio_gguf *g, uint64_t seed)
{
	size_t i;

	for (i = 0; i < p2pio_gguf_tensor_count(g); i++) {
		const struct p2pio_gguf_tensor *t = p2pio_gguf_tensor(g, i);
		const void *data;
		uint64_t bad;

		if (p2pio_gguf_tensor_data(g, i, &data, NULL) ||
		    !p2pio_pattern_check(seed, t->file_offset, data, t->size, &bad)) {
			tap_diag("tensor %s differs from the pattern", t->name);
			return false;
		}
	}
	return true;
}

static void test_tiny(void)
{
	struct p2pio_gguf *g = NULL;
	struct p2pio_error e = { 0 };
	const char *s = NULL;
	uint64_t v = 0, size = 0;
	char path[PATH_MAX];
	struct stat st;
	bool ok;
	int i;

	tap_is_int(run("%s/p2pio-mkmodel -q -p tiny %s/tiny.gguf", bin, dir), 0, "mkmodel -p tiny");
	snprintf(path, sizeof(path), "%s/tiny.gguf", dir);
	if (p2pio_gguf_open(path, &g, &e)) {
		tap_diag("%s", e.msg);
		tap_skip(9, "tiny.gguf does not open");
		return;
	}
	tap_ok(!p2pio_gguf_get_string(g, "general.architecture", &s, NULL) && !strcmp(s, "llama") &&
	       !p2pio_gguf_get_u64(g, "llama.block_count", &v) && v == 4,
	       "llama architecture, 4 blocks");
	tap_ok(!p2pio_gguf_get_u64(g, "llama.embedding_length", &v) && v == 512 &&
	       !p2pio_gguf_get_u64(g, "llama.attention.head_count_kv", &v) && v == 2 &&
	       !p2pio_gguf_get_u64(g, "llama.feed_forward_length", &v) && v == 1536 &&
	       p2pio_gguf_array_len(p2pio_gguf_find_value(g, "tokenizer.ggml.tokens")) == 2048,
	       "hyperparameters and a 2048-token list in the metadata");
	tap_ok(p2pio_gguf_tensor_count(g) == 39 && p2pio_gguf_layer_count(g) == 4 &&
	       p2pio_gguf_layer(g, 0)->n_tensors == 9 && p2pio_gguf_nonlayer(g)->n_tensors == 3,
	       "39 tensors: 4 layers of 9, token_embd, output_norm, output");
	ok = shape_is(tensor(g, "token_embd.weight"), 2, 512, 2048, 0) &&
	     shape_is(tensor(g, "blk.0.attn_q.weight"), 2, 512, 512, 0) &&
	     shape_is(tensor(g, "blk.1.attn_k.weight"), 2, 512, 128, 0) &&
	     shape_is(tensor(g, "blk.2.ffn_down.weight"), 2, 1536, 512, 0) &&
	     shape_is(tensor(g, "blk.3.ffn_gate.weight"), 2, 512, 1536, 0) &&
	     shape_is(tensor(g, "blk.3.attn_norm.weight"), 1, 512, 0, 0) &&
	     shape_is(tensor(g, "output.weight"), 2, 512, 2048, 0);
	tap_ok(ok, "llama.cpp's tensor names and shapes");
	ok = tensor(g, "output.weight")->type == P2PIO_GGML_TYPE_Q6_K &&
	     tensor(g, "output_norm.weight")->type == P2PIO_GGML_TYPE_F32 &&
	     tensor(g, "blk.0.attn_v.weight")->type == P2PIO_GGML_TYPE_Q4_K &&
	     tensor(g, "blk.3.attn_v.weight")->type == P2PIO_GGML_TYPE_Q6_K &&
	     tensor(g, "blk.3.ffn_down.weight")->type == P2PIO_GGML_TYPE_Q6_K &&
	     tensor(g, "blk.0.ffn_up.weight")->type == P2PIO_GGML_TYPE_Q4_K;
	tap_ok(ok, "Q4_K_M-like types: Q6_K output and more-bits attn_v/ffn_down, F32 norms");
	tap_ok(!p2pio_gguf_get_u64(g, P2PIO_PATTERN_SEED_KEY, &v) && v == 1 && all_pattern(g, 1),
	       "seed 1 in the metadata; every byte is its pattern");
	tap_is_int(run("%s/p2pio-mkmodel -p tiny --size-only", bin), 0, "--size-only");
	size = strtoull(out, NULL, 10);
	tap_ok(!stat(p2pio_gguf_file_size(g) ? path : "", &st) &&
	       (uint64_t)st.st_size == size && size == p2pio_gguf_file_size(g),
	       "--size-only prints the size it writes (%llu)", (unsigned long long)size);
	p2pio_gguf_close(g);

	tap_is_int(run("%s/p2pio-mkmodel -q -p tiny --align 4096 --seed 77 --layers 3 %s/a.gguf",
		       bin, dir), 0, "mkmodel --align 4096 --seed 77 --layers 3");
	g = NULL;
	snprintf(path, sizeof(path), "%s/a.gguf", dir);
	if (p2pio_gguf_open(path, &g, NULL)) {
		tap_skip(1, "a.gguf does not open");
		return;
	}
	ok = p2pio_gguf_alignment(g) == 4096 && p2pio_gguf_layer_count(g) == 3 &&
	     !p2pio_gguf_get_u64(g, P2PIO_PATTERN_SEED_KEY, &v) && v == 77 && all_pattern(g, 77);
	for (i = 0; ok && i < (int)p2pio_gguf_tensor_count(g); i++)
		ok = p2pio_gguf_tensor(g, (size_t)i)->file_offset % 4096 == 0;
	tap_ok(ok, "every tensor 4096-aligned, 3 layers, pattern of seed 77");
	p2pio_gguf_close(g);
}

static void test_moe(void)
{
	const struct p2pio_gguf_tensor *t;
	const struct p2pio_gguf_layer *l;
	struct p2pio_gguf *g = NULL;
	uint64_t v = 0, off = 0, len = 0;
	char path[PATH_MAX];
	const void *data;
	int idx;

	tap_is_int(run("%s/p2pio-mkmodel -q -p moe-tiny %s/moe.gguf", bin, dir), 0,
		   "mkmodel -p moe-tiny");
	snprintf(path, sizeof(path), "%s/moe.gguf", dir);
	if (p2pio_gguf_open(path, &g, NULL)) {
		tap_skip(5, "moe.gguf does not open");
		return;
	}
	tap_ok(!p2pio_gguf_get_u64(g, "qwen3moe.expert_count", &v) && v == 8 &&
	       !p2pio_gguf_get_u64(g, "qwen3moe.expert_used_count", &v) && v == 2 &&
	       !p2pio_gguf_get_u64(g, "qwen3moe.expert_feed_forward_length", &v) && v == 512,
	       "expert count, used count and expert FFN length in the metadata");
	t = tensor(g, "blk.1.ffn_down_exps.weight");
	tap_ok(shape_is(tensor(g, "blk.1.ffn_gate_exps.weight"), 3, 512, 512, 8) &&
	       shape_is(t, 3, 512, 512, 8) && shape_is(tensor(g, "blk.1.ffn_gate_inp.weight"), 2, 512, 8, 0) &&
	       shape_is(tensor(g, "blk.1.attn_q_norm.weight"), 1, 64, 0, 0),
	       "expert tensors with the experts outermost, router, q/k norms");
	l = p2pio_gguf_layer(g, 1);
	tap_ok(l && l->n_experts == 8 && l->n_expert_tensors == 3 && t && t->n_experts == 8 &&
	       t->expert_bytes * 8 == t->size, "the reader detects 8 experts in 3 tensors per layer");
	idx = p2pio_gguf_find_tensor(g, "blk.1.ffn_down_exps.weight");
	tap_ok(idx >= 0 && !p2pio_gguf_expert_range(g, (size_t)idx, 5, &off, &len) &&
	       off == t->file_offset + 5 * t->expert_bytes && len == t->expert_bytes &&
	       !p2pio_gguf_tensor_data(g, (size_t)idx, &data, NULL) &&
	       p2pio_pattern_check(1, off, (const uint8_t *)data + 5 * len, len, NULL),
	       "expert 5's byte range holds the pattern of its file offsets");
	tap_ok(all_pattern(g, 1), "every byte of the MoE model is its pattern");
	p2pio_gguf_close(g);
}

static void test_gguf_tool(void)
{
	static const char *modes[] = { "", "--meta", "--meta --full", "--tensors", "--verify-pattern" };
	char path[512];
	size_t i;
	int ok = 1;

	snprintf(path, sizeof(path), "%s/moe.gguf", dir);
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		int st = run("%s/p2pio-gguf --json %s %s | python3 -m json.tool >/dev/null && echo parsed",
			     bin, modes[i], path);

		if (st || !strstr(out, "parsed")) {
			tap_diag("p2pio-gguf --json %s: not valid JSON", modes[i]);
			ok = 0;
		}
	}
	tap_ok(ok, "p2pio-gguf --json output parses in every mode");
	tap_is_int(run("%s/p2pio-gguf %s", bin, path), 0, "summary");
	tap_ok(strstr(out, "qwen3moe") && strstr(out, "8 per layer in 4 layers") &&
	       strstr(out, "Q6_K") && strstr(out, "blk.3"), "summary names arch, experts, types, layers");
	tap_is_int(run("%s/p2pio-gguf --json --tensors %s | python3 -c 'import json,sys; "
		       "t=json.load(sys.stdin)[\"tensors\"]; print(len(t), t[1][\"name\"], "
		       "t[1][\"layer\"], t[11][\"experts\"])'", bin, path), 0, "tensor JSON read by python");
	tap_ok(!strcmp(out, "51 blk.0.attn_norm.weight 0 8\n"), "tensor JSON fields: %.*s",
	       (int)strcspn(out, "\n"), out);
	tap_is_int(run("%s/p2pio-gguf --verify-pattern %s", bin, path), 0,
		   "--verify-pattern on an intact model");

	/* One changed byte: exit 1, the tensor and the offset named. */
	tap_is_int(run("cp %s %s/bad.gguf && printf 'Z' | dd of=%s/bad.gguf bs=1 seek=1000003 "
		       "conv=notrunc 2>/dev/null", path, dir, dir), 0, "corrupt a copy at byte 1000003");
	tap_is_int(run("%s/p2pio-gguf --verify-pattern %s/bad.gguf", bin, dir), 1,
		   "--verify-pattern exits 1 on a mismatch");
	tap_ok(strstr(out, "blk.0.attn_output.weight") && strstr(out, "1000003"),
	       "and names the tensor and file offset: %.90s", out);

	tap_is_int(run("%s/p2pio-gguf --repack --align 4K -o %s/r.gguf %s", bin, dir, path), 0,
		   "--repack --align 4K");
	tap_is_int(run("%s/p2pio-gguf --json --tensors %s/r.gguf | python3 -c 'import json,sys; "
		       "print(all(t[\"file_offset\"] %% 4096 == 0 for t in json.load(sys.stdin)[\"tensors\"]))'",
		       bin, dir), 0, "read the repacked copy's tensors");
	tap_ok(!strcmp(out, "True\n"), "every tensor of the copy is 4096-aligned");
	tap_is_int(run("%s/p2pio-gguf --repack --align 4096 -o %s %s 2>/dev/null", bin, path, path), 3,
		   "--repack onto the input exits 3");

	tap_is_int(run("head -c 100 %s > %s/trunc.gguf; %s/p2pio-gguf %s/trunc.gguf 2>&1", path, dir,
		       bin, dir), 3, "a truncated file exits 3");
	tap_ok(strstr(out, "byte offset") != NULL, "with the offset of the problem: %.100s", out);
	tap_is_int(run("%s/p2pio-gguf --meta --tensors %s 2>/dev/null", bin, path), 2,
		   "two modes: exit 2");
	tap_is_int(run("%s/p2pio-gguf --repack %s 2>/dev/null", bin, path), 2,
		   "--repack without --align and -o: exit 2");
	tap_is_int(run("%s/p2pio-mkmodel -p tiny --hidden 320 %s/x.gguf 2>&1", bin, dir), 2,
		   "mkmodel with a hidden size Q4_K cannot hold: exit 2");
	tap_ok(strstr(out, "multiple") != NULL, "and says why: %.100s", out);
}

/* Names and strings with control characters and invalid UTF-8 stay harmless in every mode. */
static void test_hostile_strings(void)
{
	static const char *modes[] = { "", "--meta", "--tensors" };
	const char *strs[] = { "ok", "\xc3\x28", "\x1b]0;title\x07" };
	struct p2pio_gguf_writer *w = NULL;
	struct p2pio_gguf_new_tensor t;
	char path[512];
	float data[8] = { 0 };
	size_t i;
	int ok = 1, ret;

	snprintf(path, sizeof(path), "%s/hostile.gguf", dir);
	memset(&t, 0, sizeof(t));
	t.name = "blk.0.\x1b[31mred\n\"q\"";
	t.type = P2PIO_GGML_TYPE_F32;
	t.n_dims = 1;
	t.ne[0] = 8;
	t.data = data;
	ret = p2pio_gguf_writer_create(&w, path, 32, NULL);
	ret = ret ?: p2pio_gguf_writer_add_str(w, "general.architecture", "\xff\xfe\x1b[2J");
	ret = ret ?: p2pio_gguf_writer_add_str(w, "key with \"quotes\" and \x1b", "line\nbreak\ttab");
	ret = ret ?: p2pio_gguf_writer_add_array(w, "strs", P2PIO_GGUF_TYPE_STRING, strs, 3);
	ret = ret ?: p2pio_gguf_writer_add_tensor(w, &t);
	ret = ret ?: p2pio_gguf_writer_finish(w);
	p2pio_gguf_writer_free(w);
	tap_ok(!ret, "a model with escape sequences, quotes and invalid UTF-8 in its strings");
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (run("%s/p2pio-gguf --json %s %s | python3 -m json.tool >/dev/null && echo parsed",
			bin, modes[i], path) || !strstr(out, "parsed"))
			ok = 0;
		if (run("%s/p2pio-gguf %s %s", bin, modes[i], path) || strchr(out, 0x1b))
			ok = 0;
	}
	tap_ok(ok, "its JSON parses and its text output carries no escape byte, in every mode");
}

/*
 * Shapes whose product or metadata would not fit: heads x head-dim wrapped past 2^64 (to 2
 * here: an F32 model was written with a [512 x 2] attn_q), and values cut to uint32 in
 * the metadata. Each is a usage error (exit 2), and nothing is written.
 */
static void test_shape_overflow(void)
{
	static const char *const bad[] = {
		"--heads 3 --kv-heads 3 --head-dim 6148914691236517206",
		"--heads 4294967296 --kv-heads 1 --head-dim 1",
		"--head-dim 4294967296",
		"--context 4294967296",
	};
	char path[512];
	size_t i;
	int ok = 1, st;

	snprintf(path, sizeof(path), "%s/wrap.gguf", dir);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		st = run("%s/p2pio-mkmodel -q -p tiny -t F32 --output-type F32 %s %s 2>/dev/null",
			 bin, bad[i], path);
		if (st != 2 || !access(path, F_OK)) {
			tap_diag("%s: exit %d, %s", bad[i], st,
				 access(path, F_OK) ? "nothing written" : "a model written");
			ok = 0;
			unlink(path);
		}
	}
	tap_ok(ok, "heads x head-dim past 2^32 (or 2^64), and values cut to uint32: exit 2, nothing written");
}

int main(int argc, char **argv)
{
	char self[PATH_MAX];

	/* build/tests/test-mkmodel finds its tools in build/bin (build-asan likewise). */
	tool_init(argv[0]);
	bin = tool_bindir();
	if (access(strcat(strcpy(self, bin), "/p2pio-mkmodel"), X_OK) ||
	    access(strcat(strcpy(self, bin), "/p2pio-gguf"), X_OK))
		tap_bail("the tools are not built beside this test (make tools)");
	dir = tool_scratch("mkmodel");
	tap_plan(11 + 6 + 19 + 2 + 1);
	test_tiny();
	test_moe();
	test_gguf_tool();
	test_hostile_strings();
	test_shape_overflow();
	free(out);
	return tap_exit();
}
