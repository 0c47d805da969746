// SPDX-License-Identifier: MIT
/*
 * Repack: the copy has every tensor aligned to N, the same bytes, the same metadata in the
 * same order (general.alignment updated), the same tensor order; the input is never
 * touched; output == input is refused under any name; a failure leaves nothing behind.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "p2pio.h"
#include "tap.h"

static char dir[] = "/tmp/p2pio-test-repack-XXXXXX";
static char in[256], out[256];

static int count_entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n;
}

/* The whole file, for before/after comparisons. */
static uint8_t *slurp(const char *p, size_t *len)
{
	FILE *f = fopen(p, "rb");
	uint8_t *buf = NULL;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static uint64_t seed = 1234;

/* An input with varied metadata, general.alignment kept at 32, odd-sized tensors. */
static int make_input(uint32_t alignment)
{
	const uint32_t u32s[] = { 1, 2, 3 };
	const char *strs[] = { "a", "b" };
	struct p2pio_gguf_writer *w = NULL;
	struct p2pio_gguf_new_tensor t;
	static const uint32_t types[] = { P2PIO_GGML_TYPE_F32, P2PIO_GGML_TYPE_Q4_K,
		P2PIO_GGML_TYPE_Q6_K, P2PIO_GGML_TYPE_Q8_0, P2PIO_GGML_TYPE_F16 };
	static const char *names[] = { "token_embd.weight", "blk.0.attn_q.weight",
		"blk.0.ffn_down_exps.weight", "blk.1.attn_k.weight", "output.weight" };
	int i, ret;

	ret = p2pio_gguf_writer_create(&w, in, alignment, NULL);
	ret = ret ?: p2pio_gguf_writer_add_str(w, "general.architecture", "llama");
	ret = ret ?: p2pio_gguf_writer_keep_alignment_key(w);
	ret = ret ?: p2pio_gguf_writer_add_array(w, "x.u32s", P2PIO_GGUF_TYPE_UINT32, u32s, 3);
	ret = ret ?: p2pio_gguf_writer_begin_array(w, "x.nest", P2PIO_GGUF_TYPE_ARRAY, 1);
	ret = ret ?: p2pio_gguf_writer_add_array(w, NULL, P2PIO_GGUF_TYPE_STRING, strs, 2);
	ret = ret ?: p2pio_gguf_writer_end_array(w);
	ret = ret ?: p2pio_gguf_writer_add_f32(w, "x.f32", -1.25f);
	ret = ret ?: p2pio_gguf_writer_add_bool(w, "x.bool", false);
	ret = ret ?: p2pio_gguf_writer_add_u64(w, P2PIO_PATTERN_SEED_KEY, seed);
	for (i = 0; !ret && i < 5; i++) {
		uint32_t be;

		p2pio_ggml_type_block(types[i], &be, NULL, NULL);
		memset(&t, 0, sizeof(t));
		t.name = names[i];
		t.type = types[i];
		t.n_dims = i == 2 ? 3 : 2;
		t.ne[0] = be * (i == 0 ? 3 : 1);
		t.ne[1] = 5;
		t.ne[2] = 4;
		t.fill = p2pio_gguf_pattern_fill;
		t.arg = &seed;
		ret = p2pio_gguf_writer_add_tensor(w, &t);
	}
	ret = ret ?: p2pio_gguf_writer_finish(w);
	p2pio_gguf_writer_free(w);
	return ret;
}

static void check_copy(uint32_t alignment)
{
	struct p2pio_gguf *a = NULL, *b = NULL;
	struct p2pio_error e = { 0 };
	size_t i, ok = 1;
	uint64_t v;
	int ret;

	ret = p2pio_gguf_repack(in, out, alignment, &e);
	tap_ok(!ret, "repack to alignment %u: %s", alignment, ret ? e.msg : "ok");
	if (p2pio_gguf_open(in, &a, NULL) || p2pio_gguf_open(out, &b, NULL)) {
		tap_skip(4, "cannot open");
		goto out;
	}
	tap_ok(p2pio_gguf_alignment(b) == alignment && !p2pio_gguf_get_u64(b, "general.alignment", &v) &&
	       v == alignment, "general.alignment is %u", alignment);
	for (i = 0; i < p2pio_gguf_tensor_count(b); i++) {
		const struct p2pio_gguf_tensor *ta = p2pio_gguf_tensor(a, i), *tb = p2pio_gguf_tensor(b, i);
		const void *db;

		ok &= tb->file_offset % alignment == 0 && !strcmp(ta->name, tb->name);
		ok &= !p2pio_gguf_tensor_data(b, i, &db, NULL) &&
		      p2pio_pattern_check(seed, ta->file_offset, db, tb->size, NULL);
	}
	tap_ok(ok && p2pio_gguf_tensor_count(b) == 5,
	       "every tensor aligned, in order, with the input's bytes (pattern of the input offsets)");
	ok = p2pio_gguf_kv_count(a) == p2pio_gguf_kv_count(b);
	for (i = 0; ok && i < p2pio_gguf_kv_count(a); i++) {
		const char *k = p2pio_gguf_kv_key(a, i);

		ok = !strcmp(k, p2pio_gguf_kv_key(b, i));
	}
	tap_ok(ok, "metadata keys preserved in order");
	tap_ok(!strcmp(p2pio_gguf_kv_key(b, p2pio_gguf_kv_count(b) - 1), "general.alignment"),
	       "general.alignment comes last");
out:
	p2pio_gguf_close(a);
	p2pio_gguf_close(b);
}

int main(void)
{
	uint8_t *before, *after;
	size_t lb, la;
	struct p2pio_error e = { 0 };
	char other[300];
	struct stat st;
	int ret;

	if (!mkdtemp(dir))
		tap_bail("mkdtemp failed");
	snprintf(in, sizeof(in), "%s/in.gguf", dir);
	snprintf(out, sizeof(out), "%s/out.gguf", dir);
	tap_plan(3 * 5 + 13);
	tap_ok(!make_input(32), "input written (alignment 32, general.alignment kept)");
	before = slurp(in, &lb);

	check_copy(4096);
	check_copy(65536);
	check_copy(32);

	after = slurp(in, &la);
	tap_ok(before && after && la == lb && !memcmp(before, after, la), "the input is untouched");
	free(after);

	tap_is_int(p2pio_gguf_repack(in, in, 4096, &e), -EINVAL, "output == input refused");
	tap_ok(strstr(e.msg, "input") != NULL, "message: %s", e.msg);
	snprintf(other, sizeof(other), "%s/link.gguf", dir);
	ret = symlink("in.gguf", other);
	tap_is_int(ret ?: p2pio_gguf_repack(in, other, 4096, NULL), -EINVAL,
		   "output that is a symlink to the input refused");
	unlink(other);
	ret = link(in, other) ?: p2pio_gguf_repack(in, other, 4096, NULL);
	tap_is_int(ret, -EINVAL, "output that is a hard link to the input refused");
	unlink(other);
	tap_is_int(p2pio_gguf_repack(in, out, 48, NULL), -EINVAL, "alignment 48 refused");
	tap_is_int(p2pio_gguf_repack(in, out, 16, NULL), -EINVAL, "alignment 16 refused");

	/* Failures leave no output and no temporary file. */
	unlink(out);
	snprintf(other, sizeof(other), "%s/nodir/out.gguf", dir);
	tap_ok(p2pio_gguf_repack(in, other, 4096, &e) == -ENOENT, "unwritable output fails: %s", e.msg);
	tap_ok(p2pio_gguf_repack(out, other, 4096, &e) == -ENOENT && count_entries() == 1,
	       "missing input fails and nothing is created: %s", e.msg);
	/* A corrupt input: the reader's error comes through; the output stays absent. */
	snprintf(other, sizeof(other), "%s/bad.gguf", dir);
	{
		FILE *f = fopen(other, "wb");

		fwrite(before, 1, 40, f);
		fclose(f);
	}
	ret = p2pio_gguf_repack(other, out, 4096, &e);
	tap_ok(ret < 0 && e.offset != P2PIO_NO_OFFSET, "a truncated input is refused at offset %llu: %s",
	       (unsigned long long)e.offset, e.msg);
	tap_ok(stat(out, &st) && errno == ENOENT && count_entries() == 2, "no output, no temporary file");
	unlink(other);
	after = slurp(in, &la);
	tap_ok(after && la == lb && !memcmp(before, after, la), "the input is still untouched");
	free(after);
	free(before);
	unlink(in);
	unlink(out);
	rmdir(dir);
	return tap_exit();
}
