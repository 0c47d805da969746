// SPDX-License-Identifier: MIT
/*
 * GGUF metadata: every value type, in v2 and v3 files, read back through the typed getters
 * with their conversions and refusals; strings with NUL bytes; arrays of every element type;
 * arrays nested three deep; iteration order and hashed lookup.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gguf_build.h"
#include "tap.h"

#define N_KV 21

static void build(struct gguf_build *b, uint32_t version)
{
	gb_init(b);
	gb_header(b, version, 0, N_KV);
	gb_key(b, "t.u8", P2PIO_GGUF_TYPE_UINT8);
	gb_u8(b, 200);
	gb_key(b, "t.i8", P2PIO_GGUF_TYPE_INT8);
	gb_u8(b, (uint8_t)-5);
	gb_key(b, "t.u16", P2PIO_GGUF_TYPE_UINT16);
	gb_u16(b, 65535);
	gb_key(b, "t.i16", P2PIO_GGUF_TYPE_INT16);
	gb_u16(b, (uint16_t)-32768);
	gb_key(b, "t.u32", P2PIO_GGUF_TYPE_UINT32);
	gb_u32(b, 4000000000u);
	gb_key(b, "t.i32", P2PIO_GGUF_TYPE_INT32);
	gb_u32(b, (uint32_t)-123456);
	gb_key(b, "t.f32", P2PIO_GGUF_TYPE_FLOAT32);
	gb_u32(b, 0x3fc00000);		/* 1.5f */
	gb_key(b, "t.bool", P2PIO_GGUF_TYPE_BOOL);
	gb_u8(b, 1);
	gb_key(b, "t.false", P2PIO_GGUF_TYPE_BOOL);
	gb_u8(b, 0);
	gb_kv_str(b, "t.str", "héllo");
	gb_key(b, "t.nul", P2PIO_GGUF_TYPE_STRING);
	gb_strn(b, "a\0b", 3);
	gb_kv_str(b, "t.empty", "");
	gb_key(b, "t.u64", P2PIO_GGUF_TYPE_UINT64);
	gb_u64(b, UINT64_MAX);
	gb_key(b, "t.i64", P2PIO_GGUF_TYPE_INT64);
	gb_u64(b, (uint64_t)INT64_MIN);
	gb_key(b, "t.f64", P2PIO_GGUF_TYPE_FLOAT64);
	gb_u64(b, 0xc00921fb54442d18ull);	/* -pi */

	gb_key(b, "a.i16", P2PIO_GGUF_TYPE_ARRAY);
	gb_u32(b, P2PIO_GGUF_TYPE_INT16);
	gb_u64(b, 3);
	gb_u16(b, 1);
	gb_u16(b, (uint16_t)-2);
	gb_u16(b, 3);
	gb_key(b, "a.f32", P2PIO_GGUF_TYPE_ARRAY);
	gb_u32(b, P2PIO_GGUF_TYPE_FLOAT32);
	gb_u64(b, 2);
	gb_u32(b, 0x40000000);		/* 2.0f */
	gb_u32(b, 0xbf800000);		/* -1.0f */
	gb_key(b, "a.str", P2PIO_GGUF_TYPE_ARRAY);
	gb_u32(b, P2PIO_GGUF_TYPE_STRING);
	gb_u64(b, 3);
	gb_str(b, "<s>");
	gb_str(b, "");
	gb_str(b, "</s>");
	gb_key(b, "a.bool", P2PIO_GGUF_TYPE_ARRAY);
	gb_u32(b, P2PIO_GGUF_TYPE_BOOL);
	gb_u64(b, 2);
	gb_u8(b, 0);
	gb_u8(b, 1);
	gb_key(b, "a.empty", P2PIO_GGUF_TYPE_ARRAY);
	gb_u32(b, P2PIO_GGUF_TYPE_UINT64);
	gb_u64(b, 0);
	/* [[[1, 2], []], [[3]]] of uint32, and a sibling array of arrays of strings. */
	gb_key(b, "a.nested", P2PIO_GGUF_TYPE_ARRAY);
	gb_u32(b, P2PIO_GGUF_TYPE_ARRAY);
	gb_u64(b, 3);
	gb_u32(b, P2PIO_GGUF_TYPE_ARRAY);
	gb_u64(b, 2);
	gb_u32(b, P2PIO_GGUF_TYPE_UINT32);
	gb_u64(b, 2);
	gb_u32(b, 1);
	gb_u32(b, 2);
	gb_u32(b, P2PIO_GGUF_TYPE_UINT32);
	gb_u64(b, 0);
	gb_u32(b, P2PIO_GGUF_TYPE_ARRAY);
	gb_u64(b, 1);
	gb_u32(b, P2PIO_GGUF_TYPE_UINT32);
	gb_u64(b, 1);
	gb_u32(b, 3);
	gb_u32(b, P2PIO_GGUF_TYPE_ARRAY);
	gb_u64(b, 1);
	gb_u32(b, P2PIO_GGUF_TYPE_STRING);
	gb_u64(b, 2);
	gb_str(b, "x");
	gb_str(b, "yz");
}

static void check_scalars(const struct p2pio_gguf *g)
{
	uint64_t u;
	int64_t s;
	double d;
	bool bo;
	const char *str;
	size_t len;

	tap_ok(!p2pio_gguf_get_u64(g, "t.u8", &u) && u == 200, "uint8 200");
	tap_ok(p2pio_gguf_get_u64(g, "t.i8", &u) == -ERANGE, "int8 -5 is -ERANGE as unsigned");
	tap_ok(!p2pio_gguf_get_i64(g, "t.i8", &s) && s == -5, "int8 -5");
	tap_ok(!p2pio_gguf_get_u64(g, "t.u16", &u) && u == 65535, "uint16 65535");
	tap_ok(!p2pio_gguf_get_i64(g, "t.i16", &s) && s == -32768, "int16 -32768");
	tap_ok(!p2pio_gguf_get_u64(g, "t.u32", &u) && u == 4000000000u, "uint32 4e9");
	tap_ok(!p2pio_gguf_get_i64(g, "t.u32", &s) && s == 4000000000ll, "uint32 as int64");
	tap_ok(!p2pio_gguf_get_i64(g, "t.i32", &s) && s == -123456, "int32 -123456");
	tap_ok(!p2pio_gguf_get_f64(g, "t.f32", &d) && d == 1.5, "float32 1.5");
	tap_ok(p2pio_gguf_get_u64(g, "t.f32", &u) == -EINVAL, "a float is not an integer");
	tap_ok(!p2pio_gguf_get_bool(g, "t.bool", &bo) && bo, "bool true");
	tap_ok(!p2pio_gguf_get_bool(g, "t.false", &bo) && !bo, "bool false");
	tap_ok(p2pio_gguf_get_u64(g, "t.bool", &u) == -EINVAL, "a bool is not an integer");
	tap_ok(!p2pio_gguf_get_string(g, "t.str", &str, &len) && len == 6 &&
		       !strcmp(str, "héllo"), "string (UTF-8)");
	tap_ok(!p2pio_gguf_get_string(g, "t.nul", &str, &len) && len == 3 &&
		       !memcmp(str, "a\0b", 4), "string with a NUL byte keeps its length");
	tap_ok(!p2pio_gguf_get_string(g, "t.empty", &str, NULL) && !strcmp(str, ""),
	       "empty string");
	tap_ok(p2pio_gguf_get_string(g, "t.u8", &str, &len) == -EINVAL, "a number is not a string");
	tap_ok(!p2pio_gguf_get_u64(g, "t.u64", &u) && u == UINT64_MAX, "uint64 max");
	tap_ok(p2pio_gguf_get_i64(g, "t.u64", &s) == -ERANGE, "uint64 max is -ERANGE as int64");
	tap_ok(!p2pio_gguf_get_i64(g, "t.i64", &s) && s == INT64_MIN, "int64 min");
	tap_ok(p2pio_gguf_get_u64(g, "t.i64", &u) == -ERANGE, "int64 min is -ERANGE as unsigned");
	tap_ok(!p2pio_gguf_get_f64(g, "t.f64", &d) && fabs(d + M_PI) < 1e-15, "float64 -pi");
	tap_ok(p2pio_gguf_get_f64(g, "t.u8", &d) == -EINVAL, "an integer is not a float");
	tap_ok(p2pio_gguf_get_u64(g, "no.such.key", &u) == -ENOENT, "a missing key is -ENOENT");
	tap_ok(p2pio_gguf_get_string(g, "t.str2", &str, &len) == -ENOENT, "-ENOENT for strings too");
	tap_ok(p2pio_gguf_get_bool(g, "t.str", &bo) == -EINVAL, "a string is not a bool");
}

static void check_arrays(const struct p2pio_gguf *g)
{
	const struct p2pio_gguf_value *v, *w, *x;
	const char *str;
	size_t len, es;
	uint64_t u;
	int64_t s;
	double d;
	bool bo;
	const unsigned char *raw;

	v = p2pio_gguf_find_value(g, "a.i16");
	tap_ok(v && p2pio_gguf_value_type(v) == P2PIO_GGUF_TYPE_ARRAY &&
		       p2pio_gguf_array_type(v) == P2PIO_GGUF_TYPE_INT16 && p2pio_gguf_array_len(v) == 3,
	       "int16[3]");
	tap_ok(!p2pio_gguf_array_i64(v, 1, &s) && s == -2, "int16[1] = -2");
	tap_ok(p2pio_gguf_array_u64(v, 1, &u) == -ERANGE, "int16[1] is -ERANGE as unsigned");
	tap_ok(!p2pio_gguf_array_u64(v, 2, &u) && u == 3, "int16[2] = 3");
	tap_ok(p2pio_gguf_array_i64(v, 3, &s) == -ERANGE, "int16[3] is out of range");
	tap_ok(p2pio_gguf_array_f64(v, 0, &d) == -EINVAL, "an int16 array has no floats");
	tap_ok(p2pio_gguf_array_string(v, 0, &str, &len) == -EINVAL, "nor strings");
	raw = p2pio_gguf_array_data(v, &es);
	tap_ok(raw && es == 2 && raw[2] == 0xfe && raw[3] == 0xff, "packed data, little-endian");
	tap_ok(p2pio_gguf_value_u64(v, &u) == -EINVAL, "an array is not a number");

	v = p2pio_gguf_find_value(g, "a.f32");
	tap_ok(!p2pio_gguf_array_f64(v, 0, &d) && d == 2.0 && !p2pio_gguf_array_f64(v, 1, &d) &&
		       d == -1.0, "float32[2] = {2, -1}");
	v = p2pio_gguf_find_value(g, "a.str");
	tap_ok(!p2pio_gguf_array_string(v, 0, &str, &len) && len == 3 && !strcmp(str, "<s>") &&
		       !p2pio_gguf_array_string(v, 1, &str, &len) && len == 0 && !strcmp(str, "") &&
		       !p2pio_gguf_array_string(v, 2, &str, &len) && !strcmp(str, "</s>"),
	       "string[3]");
	tap_ok(p2pio_gguf_array_data(v, &es) == NULL, "a string array has no packed data");
	tap_ok(p2pio_gguf_array_string(v, 3, &str, &len) == -ERANGE, "string[3] is out of range");
	v = p2pio_gguf_find_value(g, "a.bool");
	tap_ok(!p2pio_gguf_array_bool(v, 0, &bo) && !bo && !p2pio_gguf_array_bool(v, 1, &bo) && bo,
	       "bool[2] = {false, true}");
	v = p2pio_gguf_find_value(g, "a.empty");
	tap_ok(p2pio_gguf_array_len(v) == 0 && p2pio_gguf_array_type(v) == P2PIO_GGUF_TYPE_UINT64 &&
		       p2pio_gguf_array_u64(v, 0, &u) == -ERANGE && !p2pio_gguf_array_data(v, NULL),
	       "empty uint64 array");
	tap_ok(p2pio_gguf_array_type(p2pio_gguf_find_value(g, "t.u8")) == -EINVAL &&
		       p2pio_gguf_array_len(p2pio_gguf_find_value(g, "t.u8")) == 0,
	       "a scalar is not an array");

	v = p2pio_gguf_find_value(g, "a.nested");
	tap_ok(v && p2pio_gguf_array_type(v) == P2PIO_GGUF_TYPE_ARRAY && p2pio_gguf_array_len(v) == 3,
	       "array of 3 arrays");
	tap_ok(!p2pio_gguf_array_array(v, 0, &w) && p2pio_gguf_array_len(w) == 2 &&
		       !p2pio_gguf_array_array(w, 0, &x) && p2pio_gguf_array_len(x) == 2 &&
		       !p2pio_gguf_array_u64(x, 1, &u) && u == 2, "[0][0][1] = 2");
	tap_ok(!p2pio_gguf_array_array(w, 1, &x) && p2pio_gguf_array_len(x) == 0 &&
		       p2pio_gguf_array_type(x) == P2PIO_GGUF_TYPE_UINT32, "[0][1] is an empty uint32 array");
	tap_ok(!p2pio_gguf_array_array(v, 1, &w) && !p2pio_gguf_array_array(w, 0, &x) &&
		       !p2pio_gguf_array_u64(x, 0, &u) && u == 3, "[1][0][0] = 3");
	tap_ok(!p2pio_gguf_array_array(v, 2, &w) && !p2pio_gguf_array_array(w, 0, &x) &&
		       !p2pio_gguf_array_string(x, 1, &str, &len) && len == 2 && !strcmp(str, "yz"),
	       "[2][0][1] = \"yz\"");
	tap_ok(p2pio_gguf_array_array(x, 0, &w) == -EINVAL, "a string array holds no arrays");
	tap_ok(p2pio_gguf_array_array(v, 3, &w) == -ERANGE, "[3] is out of range");
}

static void check_file(uint32_t version)
{
	static const char *const keys[N_KV] = {
		"t.u8", "t.i8", "t.u16", "t.i16", "t.u32", "t.i32", "t.f32", "t.bool", "t.false",
		"t.str", "t.nul", "t.empty", "t.u64", "t.i64", "t.f64", "a.i16", "a.f32", "a.str",
		"a.bool", "a.empty", "a.nested",
	};
	static const uint32_t types[N_KV] = { 0, 1, 2, 3, 4, 5, 6, 7, 7, 8, 8, 8, 10, 11, 12,
					      9, 9, 9, 9, 9, 9 };
	struct p2pio_gguf *g = NULL;
	struct p2pio_error err;
	struct gguf_build b;
	size_t i, order = 0, found = 0;
	int ret;

	build(&b, version);
	ret = gb_open(&b, &g, &err);
	if (!tap_is_int(ret, 0, "v%u file with every value type opens", version)) {
		tap_diag("%s", err.msg);
		gb_free(&b);
		return;
	}
	tap_is_int(p2pio_gguf_version(g), version, "version %u", version);
	tap_is_int(p2pio_gguf_kv_count(g), N_KV, "%d pairs", N_KV);
	for (i = 0; i < N_KV; i++) {
		order += p2pio_gguf_kv_key(g, i) && !strcmp(p2pio_gguf_kv_key(g, i), keys[i]) &&
			 p2pio_gguf_value_type(p2pio_gguf_kv_value(g, i)) == types[i];
		found += p2pio_gguf_find_kv(g, keys[i]) == (int)i;
	}
	tap_is_int(order, N_KV, "iteration gives keys and types in file order");
	tap_is_int(found, N_KV, "each key is found at its index");
	tap_ok(!p2pio_gguf_kv_key(g, N_KV) && !p2pio_gguf_kv_value(g, N_KV),
	       "index past the end is NULL");
	tap_ok(p2pio_gguf_find_kv(g, "t.u") == -ENOENT && p2pio_gguf_find_kv(g, "") == -ENOENT &&
		       !p2pio_gguf_find_value(g, "t.u88"), "unknown keys are not found");
	tap_is_int(p2pio_gguf_alignment(g), 32, "default alignment 32");
	tap_ok(p2pio_gguf_tensor_count(g) == 0 && p2pio_gguf_layer_count(g) == 0 &&
		       p2pio_gguf_nonlayer(g)->n_tensors == 0, "no tensors, no layers");
	check_scalars(g);
	check_arrays(g);
	p2pio_gguf_close(g);
	gb_free(&b);
}

static void check_names(void)
{
	static const char *const want[P2PIO_GGUF_TYPE_COUNT] = {
		"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
		"bool", "string", "array", "uint64", "int64", "float64",
	};
	int i, ok = 0;

	for (i = 0; i < P2PIO_GGUF_TYPE_COUNT; i++)
		ok += !strcmp(p2pio_gguf_type_name((uint32_t)i), want[i]);
	tap_is_int(ok, P2PIO_GGUF_TYPE_COUNT, "value type names");
	tap_ok(!strcmp(p2pio_gguf_type_name(13), "invalid"), "type 13 is invalid");
}

int main(void)
{
	tap_plan_lazy();
	check_names();
	check_file(2);
	check_file(3);
	return tap_exit();
}
