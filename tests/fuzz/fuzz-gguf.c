// SPDX-License-Identifier: MIT
/*
 * fuzz-gguf.c - libFuzzer target for the GGUF reader.
 *
 * Each input becomes the whole file (a memfd, since the reader needs a regular file). When
 * the reader accepts it, every accessor is driven over everything it exposes, and the
 * invariants the API promises are checked: a crash, a sanitizer report, a leak or an
 * abort() here is a bug. Build and run: make -f tests/fuzz/Makefile run (Documentation/gguf.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "p2pio.h"

#define FUZZ_NAME "fuzz-gguf"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static volatile unsigned long sink;

static void walk_value(const struct p2pio_gguf_value *v)
{
	const struct p2pio_gguf_value *w;
	const char *s;
	uint64_t i, n, u;
	int64_t x;
	double d;
	size_t len, es;
	bool b;

	sink += !p2pio_gguf_value_u64(v, &u) + !p2pio_gguf_value_i64(v, &x);
	sink += !p2pio_gguf_value_f64(v, &d) + !p2pio_gguf_value_bool(v, &b);
	if (!p2pio_gguf_value_string(v, &s, &len)) {
		CHECK(s[len] == '\0');
		sink += len;
	}
	if (p2pio_gguf_value_type(v) != P2PIO_GGUF_TYPE_ARRAY)
		return;
	n = p2pio_gguf_array_len(v);
	CHECK(p2pio_gguf_array_type(v) >= 0);
	if (p2pio_gguf_array_data(v, &es))
		CHECK(es == 1 || es == 2 || es == 4 || es == 8);
	for (i = 0; i < n && i < 4096; i++) {
		sink += !p2pio_gguf_array_u64(v, i, &u) + !p2pio_gguf_array_i64(v, i, &x);
		sink += !p2pio_gguf_array_f64(v, i, &d) + !p2pio_gguf_array_bool(v, i, &b);
		if (!p2pio_gguf_array_string(v, i, &s, &len))
			CHECK(s[len] == '\0');
		if (!p2pio_gguf_array_array(v, i, &w))
			walk_value(w);
	}
	CHECK(p2pio_gguf_array_u64(v, n, &u) != 0);
}

static void walk_group(const struct p2pio_gguf *g, const struct p2pio_gguf_layer *l)
{
	const struct p2pio_gguf_tensor *t;
	uint64_t bytes = 0;
	size_t i;

	for (i = 0; i < l->n_tensors; i++) {
		t = p2pio_gguf_tensor(g, l->tensors[i]);
		CHECK(t && t->layer == l->number);
		CHECK(t->file_offset >= l->file_start && t->file_offset + t->size <= l->file_end);
		bytes += t->size;
	}
	CHECK(bytes == l->bytes);
	for (i = 0; i < l->n_expert_tensors; i++) {
		t = p2pio_gguf_tensor(g, l->expert_tensors[i]);
		CHECK(t && t->n_experts == l->n_experts);
	}
}

static void walk(struct p2pio_gguf *g)
{
	const struct p2pio_gguf_tensor *t;
	const unsigned char *p;
	uint64_t off, len, fsize = p2pio_gguf_file_size(g);
	size_t i, n;

	CHECK(p2pio_gguf_version(g) == 2 || p2pio_gguf_version(g) == 3);
	CHECK(p2pio_gguf_data_offset(g) % p2pio_gguf_alignment(g) == 0);
	n = p2pio_gguf_kv_count(g);
	for (i = 0; i < n; i++) {
		CHECK(p2pio_gguf_find_kv(g, p2pio_gguf_kv_key(g, i)) == (int)i);
		walk_value(p2pio_gguf_kv_value(g, i));
	}
	n = p2pio_gguf_tensor_count(g);
	for (i = 0; i < n; i++) {
		t = p2pio_gguf_tensor(g, i);
		CHECK(p2pio_gguf_find_tensor(g, t->name) == (int)i);
		CHECK(t->size && t->file_offset + t->size <= fsize);
		CHECK(t->offset % p2pio_gguf_alignment(g) == 0);
		CHECK(p2pio_ggml_type_name(t->type));
		if (!p2pio_gguf_tensor_data(g, i, (const void **)&p, NULL))
			sink += p[0] + p[t->size - 1];
		if (t->n_experts) {
			CHECK(!p2pio_gguf_expert_range(g, i, t->n_experts - 1, &off, &len));
			CHECK(off + len == t->file_offset + t->size);
		}
	}
	for (i = 0; i < p2pio_gguf_layer_count(g); i++)
		walk_group(g, p2pio_gguf_layer(g, i));
	walk_group(g, p2pio_gguf_nonlayer(g));
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	int fd = fuzz_input_fd(data, size);
	struct p2pio_gguf *g = NULL;
	struct p2pio_error err;
	int ret;

	memset(&err, 0, sizeof(err));
	ret = p2pio_gguf_open_fd(fd, &g, &err);
	if (ret) {
		CHECK(ret < 0 && err.code == ret && err.msg[0] && !g);
		return 0;
	}
	walk(g);
	p2pio_gguf_close(g);
	return 0;
}
