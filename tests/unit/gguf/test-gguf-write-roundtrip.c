// SPDX-License-Identifier: MIT
/*
 * What the writer writes, the reader reads back: every metadata type, arrays of every type,
 * arrays nested to the deepest level, every alignment from 32 to 65536, every ggml type,
 * GGUF v2 and v3, and the data of tensors given by pointer and by fill callback.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2pio.h"
#include "tap.h"

static char dir[] = "/tmp/p2pio-test-roundtrip-XXXXXX";
static char path[256];

static struct p2pio_gguf *reopen(void)
{
	struct p2pio_error e = { 0 };
	struct p2pio_gguf *g = NULL;

	if (p2pio_gguf_open(path, &g, &e))
		tap_diag("open %s: %s (offset %llu)", path, e.msg, (unsigned long long)e.offset);
	return g;
}

static void test_scalars(void)
{
	const uint8_t u8 = 200;
	const int8_t i8 = -100;
	const uint16_t u16 = 60000;
	const int16_t i16 = -30000;
	const int32_t i32 = -2000000000;
	const uint64_t u64 = UINT64_MAX - 5;
	const int64_t i64 = INT64_MIN + 7;
	const double f64 = -1.0 / 3.0;
	const char nul_str[] = "a\0b";
	struct p2pio_gguf_writer *w = NULL;
	struct p2pio_gguf *g;
	const char *s;
	uint64_t u;
	int64_t i;
	double d;
	size_t len;
	bool b;
	int ok;

	p2pio_gguf_writer_create(&w, path, 32, NULL);
	ok = !p2pio_gguf_writer_add(w, "u8", P2PIO_GGUF_TYPE_UINT8, &u8) &&
	     !p2pio_gguf_writer_add(w, "i8", P2PIO_GGUF_TYPE_INT8, &i8) &&
	     !p2pio_gguf_writer_add(w, "u16", P2PIO_GGUF_TYPE_UINT16, &u16) &&
	     !p2pio_gguf_writer_add(w, "i16", P2PIO_GGUF_TYPE_INT16, &i16) &&
	     !p2pio_gguf_writer_add_u32(w, "u32", 4000000000u) &&
	     !p2pio_gguf_writer_add_i32(w, "i32", i32) &&
	     !p2pio_gguf_writer_add_f32(w, "f32", 0.15625f) &&
	     !p2pio_gguf_writer_add_bool(w, "bool", true) &&
	     !p2pio_gguf_writer_add_str(w, "str", "hello") &&
	     !p2pio_gguf_writer_add_str_n(w, "nulstr", nul_str, 3) &&
	     !p2pio_gguf_writer_add_str(w, "empty", "") &&
	     !p2pio_gguf_writer_add_u64(w, "u64", u64) &&
	     !p2pio_gguf_writer_add(w, "i64", P2PIO_GGUF_TYPE_INT64, &i64) &&
	     !p2pio_gguf_writer_add(w, "f64", P2PIO_GGUF_TYPE_FLOAT64, &f64) &&
	     !p2pio_gguf_writer_finish(w);
	tap_ok(ok, "every scalar type written");
	p2pio_gguf_writer_free(w);
	g = reopen();
	if (!g) {
		tap_skip(14, "the file does not open");
		return;
	}
	tap_is_int(p2pio_gguf_kv_count(g), 14, "14 pairs, no general.alignment at 32");
	tap_ok(!p2pio_gguf_get_u64(g, "u8", &u) && u == 200 &&
	       p2pio_gguf_value_type(p2pio_gguf_find_value(g, "u8")) == P2PIO_GGUF_TYPE_UINT8, "uint8");
	tap_ok(!p2pio_gguf_get_i64(g, "i8", &i) && i == -100 &&
	       p2pio_gguf_value_type(p2pio_gguf_find_value(g, "i8")) == P2PIO_GGUF_TYPE_INT8, "int8");
	tap_ok(!p2pio_gguf_get_u64(g, "u16", &u) && u == 60000, "uint16");
	tap_ok(!p2pio_gguf_get_i64(g, "i16", &i) && i == -30000, "int16");
	tap_ok(!p2pio_gguf_get_u64(g, "u32", &u) && u == 4000000000u, "uint32");
	tap_ok(!p2pio_gguf_get_i64(g, "i32", &i) && i == i32, "int32");
	tap_ok(!p2pio_gguf_get_f64(g, "f32", &d) && d == 0.15625 &&
	       p2pio_gguf_value_type(p2pio_gguf_find_value(g, "f32")) == P2PIO_GGUF_TYPE_FLOAT32,
	       "float32");
	tap_ok(!p2pio_gguf_get_bool(g, "bool", &b) && b, "bool");
	tap_ok(!p2pio_gguf_get_string(g, "str", &s, &len) && len == 5 && !strcmp(s, "hello"), "string");
	tap_ok(!p2pio_gguf_get_string(g, "nulstr", &s, &len) && len == 3 && !memcmp(s, "a\0b", 3),
	       "string with a NUL byte keeps its length");
	tap_ok(!p2pio_gguf_get_string(g, "empty", &s, &len) && len == 0, "empty string");
	tap_ok(!p2pio_gguf_get_u64(g, "u64", &u) && u == u64, "uint64");
	tap_ok(!p2pio_gguf_get_i64(g, "i64", &i) && i == i64 && !p2pio_gguf_get_f64(g, "f64", &d) &&
	       d == f64, "int64 and float64");
	p2pio_gguf_close(g);
}

static void test_arrays(void)
{
	const uint8_t u8s[] = { 1, 2, 255 };
	const int8_t i8s[] = { -1, 0, 1 };
	const uint16_t u16s[] = { 1, 65535 };
	const int16_t i16s[] = { -32768, 32767 };
	const uint32_t u32s[] = { 7, 8, 9, 10 };
	const int32_t i32s[] = { -5 };
	const float f32s[] = { 1.5f, -0.0f, INFINITY };
	const uint8_t bools[] = { 1, 0, 1 };
	const char *strs[] = { "x", "", "long string with spaces" };
	const uint64_t u64s[] = { UINT64_MAX, 0 };
	const int64_t i64s[] = { INT64_MIN, INT64_MAX };
	const double f64s[] = { 1e300, -2.5 };
	const struct p2pio_gguf_value *v, *sub, *sub2;
	struct p2pio_gguf_writer *w = NULL;
	struct p2pio_gguf *g;
	const char *s;
	uint64_t u;
	int64_t i;
	double d;
	size_t len;
	bool b, ok;
	int k;

	p2pio_gguf_writer_create(&w, path, 32, NULL);
	ok = !p2pio_gguf_writer_add_array(w, "a.u8", P2PIO_GGUF_TYPE_UINT8, u8s, 3) &&
	     !p2pio_gguf_writer_add_array(w, "a.i8", P2PIO_GGUF_TYPE_INT8, i8s, 3) &&
	     !p2pio_gguf_writer_add_array(w, "a.u16", P2PIO_GGUF_TYPE_UINT16, u16s, 2) &&
	     !p2pio_gguf_writer_add_array(w, "a.i16", P2PIO_GGUF_TYPE_INT16, i16s, 2) &&
	     !p2pio_gguf_writer_add_array(w, "a.u32", P2PIO_GGUF_TYPE_UINT32, u32s, 4) &&
	     !p2pio_gguf_writer_add_array(w, "a.i32", P2PIO_GGUF_TYPE_INT32, i32s, 1) &&
	     !p2pio_gguf_writer_add_array(w, "a.f32", P2PIO_GGUF_TYPE_FLOAT32, f32s, 3) &&
	     !p2pio_gguf_writer_add_array(w, "a.bool", P2PIO_GGUF_TYPE_BOOL, bools, 3) &&
	     !p2pio_gguf_writer_add_array(w, "a.str", P2PIO_GGUF_TYPE_STRING, strs, 3) &&
	     !p2pio_gguf_writer_add_array(w, "a.u64", P2PIO_GGUF_TYPE_UINT64, u64s, 2) &&
	     !p2pio_gguf_writer_add_array(w, "a.i64", P2PIO_GGUF_TYPE_INT64, i64s, 2) &&
	     !p2pio_gguf_writer_add_array(w, "a.f64", P2PIO_GGUF_TYPE_FLOAT64, f64s, 2) &&
	     !p2pio_gguf_writer_add_array(w, "a.empty", P2PIO_GGUF_TYPE_UINT32, NULL, 0);
	/* [[7, 8, 9, 10], [["x", "", ...], []]] */
	ok = ok && !p2pio_gguf_writer_begin_array(w, "a.nest", P2PIO_GGUF_TYPE_ARRAY, 2) &&
	     !p2pio_gguf_writer_add_array(w, NULL, P2PIO_GGUF_TYPE_UINT32, u32s, 4) &&
	     !p2pio_gguf_writer_begin_array(w, NULL, P2PIO_GGUF_TYPE_ARRAY, 2) &&
	     !p2pio_gguf_writer_add_array(w, NULL, P2PIO_GGUF_TYPE_STRING, strs, 3) &&
	     !p2pio_gguf_writer_add_array(w, NULL, P2PIO_GGUF_TYPE_INT64, NULL, 0) &&
	     !p2pio_gguf_writer_end_array(w) && !p2pio_gguf_writer_end_array(w);
	/* The deepest nesting: arrays of arrays down to a uint32 array at depth MAX_DEPTH. */
	for (k = 0; ok && k < P2PIO_GGUF_MAX_DEPTH - 1; k++)
		ok = !p2pio_gguf_writer_begin_array(w, k ? NULL : "a.deep", P2PIO_GGUF_TYPE_ARRAY, 1);
	ok = ok && !p2pio_gguf_writer_add_array(w, NULL, P2PIO_GGUF_TYPE_UINT32, u32s, 4);
	for (k = 0; ok && k < P2PIO_GGUF_MAX_DEPTH - 1; k++)
		ok = !p2pio_gguf_writer_end_array(w);
	ok = ok && !p2pio_gguf_writer_finish(w);
	tap_ok(ok, "arrays of every type, an empty one, nested and %d-deep arrays written",
	       P2PIO_GGUF_MAX_DEPTH);
	p2pio_gguf_writer_free(w);
	g = reopen();
	if (!g) {
		tap_skip(12, "the file does not open");
		return;
	}
	v = p2pio_gguf_find_value(g, "a.u8");
	tap_ok(p2pio_gguf_array_type(v) == P2PIO_GGUF_TYPE_UINT8 && p2pio_gguf_array_len(v) == 3 &&
	       !p2pio_gguf_array_u64(v, 2, &u) && u == 255, "uint8 array");
	v = p2pio_gguf_find_value(g, "a.i16");
	tap_ok(!p2pio_gguf_array_i64(v, 0, &i) && i == -32768 && !p2pio_gguf_array_i64(v, 1, &i) &&
	       i == 32767, "int16 array");
	v = p2pio_gguf_find_value(g, "a.u32");
	len = 0;
	tap_ok(p2pio_gguf_array_data(v, &len) && len == 4 &&
	       !memcmp(p2pio_gguf_array_data(v, NULL), u32s, sizeof(u32s)), "uint32 array, packed");
	v = p2pio_gguf_find_value(g, "a.f32");
	tap_ok(!p2pio_gguf_array_f64(v, 0, &d) && d == 1.5 && !p2pio_gguf_array_f64(v, 1, &d) &&
	       d == 0 && signbit(d) && !p2pio_gguf_array_f64(v, 2, &d) && isinf(d),
	       "float32 array with -0 and infinity");
	v = p2pio_gguf_find_value(g, "a.bool");
	tap_ok(!p2pio_gguf_array_bool(v, 0, &b) && b && !p2pio_gguf_array_bool(v, 1, &b) && !b,
	       "bool array");
	v = p2pio_gguf_find_value(g, "a.str");
	tap_ok(p2pio_gguf_array_len(v) == 3 && !p2pio_gguf_array_string(v, 2, &s, &len) &&
	       !strcmp(s, strs[2]) && !p2pio_gguf_array_string(v, 1, &s, &len) && len == 0,
	       "string array");
	v = p2pio_gguf_find_value(g, "a.i64");
	tap_ok(!p2pio_gguf_array_i64(v, 0, &i) && i == INT64_MIN && !p2pio_gguf_array_u64(
	       p2pio_gguf_find_value(g, "a.u64"), 0, &u) && u == UINT64_MAX, "64-bit integer arrays");
	v = p2pio_gguf_find_value(g, "a.f64");
	tap_ok(!p2pio_gguf_array_f64(v, 0, &d) && d == 1e300, "float64 array");
	v = p2pio_gguf_find_value(g, "a.empty");
	tap_ok(v && p2pio_gguf_array_type(v) == P2PIO_GGUF_TYPE_UINT32 && p2pio_gguf_array_len(v) == 0,
	       "empty array keeps its type");
	v = p2pio_gguf_find_value(g, "a.nest");
	ok = p2pio_gguf_array_type(v) == P2PIO_GGUF_TYPE_ARRAY && p2pio_gguf_array_len(v) == 2 &&
	     !p2pio_gguf_array_array(v, 0, &sub) && !p2pio_gguf_array_u64(sub, 3, &u) && u == 10 &&
	     !p2pio_gguf_array_array(v, 1, &sub) && p2pio_gguf_array_len(sub) == 2 &&
	     !p2pio_gguf_array_array(sub, 0, &sub2) && !p2pio_gguf_array_string(sub2, 2, &s, NULL) &&
	     !strcmp(s, strs[2]) && !p2pio_gguf_array_array(sub, 1, &sub2) &&
	     p2pio_gguf_array_type(sub2) == P2PIO_GGUF_TYPE_INT64 && p2pio_gguf_array_len(sub2) == 0;
	tap_ok(ok, "nested arrays read back element by element");
	v = p2pio_gguf_find_value(g, "a.deep");
	for (k = 0; v && k < P2PIO_GGUF_MAX_DEPTH - 1; k++)
		v = p2pio_gguf_array_array(v, 0, &sub) ? NULL : sub;
	tap_ok(v && !p2pio_gguf_array_u64(v, 3, &u) && u == 10, "the %d-deep array reads back",
	       P2PIO_GGUF_MAX_DEPTH);
	tap_ok(p2pio_gguf_array_len(p2pio_gguf_find_value(g, "a.i8")) == 3 &&
	       p2pio_gguf_array_len(p2pio_gguf_find_value(g, "a.u16")) == 2 &&
	       p2pio_gguf_array_len(p2pio_gguf_find_value(g, "a.i32")) == 1, "array lengths");
	p2pio_gguf_close(g);
}

/* Write tensors of the given types; check alignment, sizes, offsets and bytes. */
static int check_tensors(uint32_t alignment, uint32_t version, const uint32_t *types, int n,
			 const char *what)
{
	static uint8_t src[8192];
	struct p2pio_gguf_writer *w = NULL;
	struct p2pio_gguf_new_tensor t;
	uint64_t seed = alignment * 31 + (uint64_t)n, size, file_size;
	struct p2pio_gguf *g;
	char name[32];
	int i, bad = 0;

	for (i = 0; i < (int)sizeof(src); i++)
		src[i] = (uint8_t)(i * 7 + 3);
	if (p2pio_gguf_writer_create(&w, path, alignment, NULL) ||
	    p2pio_gguf_writer_set_version(w, version))
		return 0;
	for (i = 0; i < n; i++) {
		uint32_t be = 0;

		p2pio_ggml_type_block(types[i], &be, NULL, NULL);
		memset(&t, 0, sizeof(t));
		snprintf(name, sizeof(name), "t%d.%s", i, p2pio_ggml_type_name(types[i]));
		t.name = name;
		t.type = types[i];
		t.n_dims = 1 + (uint32_t)(i % 4);
		t.ne[0] = 2 * be;
		t.ne[1] = 3;
		t.ne[2] = 1;
		t.ne[3] = 2;
		/* Odd tensors come from memory, even ones from the pattern. */
		if (i % 2) {
			t.data = src;
		} else {
			t.fill = p2pio_gguf_pattern_fill;
			t.arg = &seed;
		}
		if (p2pio_gguf_writer_add_tensor(w, &t)) {
			tap_diag("%s: %s", what, p2pio_gguf_writer_error(w)->msg);
			bad++;
		}
	}
	p2pio_gguf_writer_layout(w, NULL, &file_size);
	if (p2pio_gguf_writer_finish(w))
		bad++;
	p2pio_gguf_writer_free(w);
	g = reopen();
	if (!g)
		return 0;
	bad += p2pio_gguf_alignment(g) != alignment || p2pio_gguf_version(g) != version ||
	       p2pio_gguf_tensor_count(g) != (size_t)n || p2pio_gguf_file_size(g) != file_size;
	for (i = 0; i < n && !bad; i++) {
		const struct p2pio_gguf_tensor *rt = p2pio_gguf_tensor(g, (size_t)i);
		const void *data;

		p2pio_ggml_tensor_size(types[i], rt->n_dims, rt->ne, &size, NULL);
		if (rt->type != types[i] || rt->size != size || rt->n_dims != 1 + (uint32_t)(i % 4) ||
		    rt->file_offset % alignment || p2pio_gguf_tensor_data(g, (size_t)i, &data, NULL)) {
			tap_diag("%s: tensor %s reads back wrong", what, rt->name);
			bad++;
			break;
		}
		if (i % 2 ? memcmp(data, src, size) :
			    !p2pio_pattern_check(seed, rt->file_offset, data, size, NULL)) {
			tap_diag("%s: the data of %s differ", what, rt->name);
			bad++;
		}
	}
	p2pio_gguf_close(g);
	return !bad;
}

static void test_tensors(void)
{
	uint32_t all[P2PIO_GGML_TYPE_COUNT], some[] = { P2PIO_GGML_TYPE_F32, P2PIO_GGML_TYPE_Q4_K,
		P2PIO_GGML_TYPE_Q6_K, P2PIO_GGML_TYPE_F16, P2PIO_GGML_TYPE_Q8_0 };
	uint32_t a, t;
	int n = 0, ok = 1;

	for (t = 0; t < P2PIO_GGML_TYPE_COUNT; t++)
		if (p2pio_ggml_type_name(t))
			all[n++] = t;
	tap_ok(n == 35, "35 ggml types in the table");
	tap_ok(check_tensors(32, 3, all, n, "all types"),
	       "a tensor of every ggml type, 1 to 4 dims, reads back with its size and bytes");
	for (a = 32; a <= 65536; a *= 2)
		ok &= check_tensors(a, 3, some, 5, "alignment");
	tap_ok(ok, "alignments 32 to 65536: general.alignment, aligned offsets, same bytes");
	tap_ok(check_tensors(4096, 2, some, 5, "v2"), "GGUF v2 with alignment 4096");
}

int main(void)
{
	if (!mkdtemp(dir))
		tap_bail("mkdtemp failed");
	snprintf(path, sizeof(path), "%s/rt.gguf", dir);
	tap_plan(15 + 13 + 4);
	test_scalars();
	test_arrays();
	test_tensors();
	unlink(path);
	rmdir(dir);
	return tap_exit();
}
