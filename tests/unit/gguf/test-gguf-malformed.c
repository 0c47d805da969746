// SPDX-License-Identifier: MIT
/*
 * The GGUF reader against hostile input: a small valid file truncated at every byte, and one
 * handcrafted file per validation rule, each refused with the rule's error code, the byte
 * offset of the offending field, and a message that names that offset.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf_build.h"
#include "tap.h"

/* The base file: three tensors, one of them an expert tensor. */
static struct gb_tensor base_t[3];
static size_t base_data;

static void base(struct gguf_build *b, uint32_t version)
{
	static const struct gb_tensor t[3] = {
		GB_T("token_embd.weight", P2PIO_GGML_TYPE_F32, 2, 8, 4),
		GB_T("blk.0.attn_q.weight", P2PIO_GGML_TYPE_Q8_0, 2, 64, 2),
		GB_T("blk.0.ffn_up_exps.weight", P2PIO_GGML_TYPE_F16, 3, 4, 2, 3),
	};

	gb_init(b);
	memcpy(base_t, t, sizeof(t));
	base_data = gb_model(b, version, 0, base_t, 3);
}

/* Open @b and check that it is refused as described. */
static void expect(const struct gguf_build *b, int code, uint64_t offset, const char *substr,
		   const char *what)
{
	struct p2pio_gguf *g = NULL;
	struct p2pio_error err;
	char at[40];
	int ret;

	ret = gb_open(b, &g, &err);
	snprintf(at, sizeof(at), "byte %" PRIu64, offset);
	if (!tap_ok(ret == code && err.code == code && err.offset == offset &&
			    strstr(err.msg, substr) && strstr(err.msg, at) && !g,
		    "%s: %s at %s", what, p2pio_strerror(code), at))
		tap_diag("  got %d (%s) at offset %" PRIu64 ": %s", ret, p2pio_strerror(ret),
			 err.offset, err.msg);
	else
		tap_diag("  %s", err.msg);
	p2pio_gguf_close(g);
}

static void test_truncation(void)
{
	struct p2pio_gguf *g = NULL;
	struct p2pio_error err;
	struct gguf_build b;
	size_t len, bad = 0, first_bad = 0;
	int ret;

	base(&b, 3);
	ret = gb_open(&b, &g, &err);
	tap_is_int(ret, 0, "the base file opens (%s)", ret ? err.msg : "ok");
	p2pio_gguf_close(g);
	for (len = 0; len < b.len; len++) {
		g = NULL;
		ret = gb_open_prefix(&b, len, &g, &err);
		if (ret >= 0 || err.code != ret || !err.msg[0] || g) {
			if (!bad++)
				first_bad = len;
			p2pio_gguf_close(g);
		}
	}
	tap_ok(!bad, "each of the %zu truncations of a %zu-byte file is refused with a message",
	       b.len, b.len);
	if (bad)
		tap_diag("  %zu accepted, the first at length %zu", bad, first_bad);
	ret = gb_open_prefix(&b, 10, &g, &err);
	tap_ok(ret == -ENODATA && err.offset == 8 && strstr(err.msg, "tensor count"),
	       "a cut inside the tensor count is -ENODATA at byte 8: %s", err.msg);
	ret = gb_open_prefix(&b, base_data + 1, &g, &err);
	tap_ok(ret == -ERANGE && err.offset == base_t[0].info_pos + 8 + 17 + 4 + 16 + 4,
	       "a cut inside the data section is -ERANGE for the first tensor it cuts: %s", err.msg);
	gb_free(&b);
}

static void test_header(void)
{
	struct gguf_build b;
	struct p2pio_gguf *g = NULL;
	struct p2pio_error err;

	base(&b, 3);
	memcpy(b.p, "GGUX", 4);
	expect(&b, -EINVAL, 0, "not a GGUF file", "bad magic");
	memcpy(b.p, "FUGG", 4);
	expect(&b, -ENOTSUP, 0, "big-endian", "byte-swapped magic");
	memcpy(b.p, "GGUF", 4);
	gb_put_u32(&b, 4, 0x03000000);
	expect(&b, -ENOTSUP, 4, "big-endian (version 3", "big-endian version field");
	gb_put_u32(&b, 4, 1);
	expect(&b, -ENOTSUP, 4, "version 1", "GGUF v1");
	gb_put_u32(&b, 4, 4);
	expect(&b, -ENOTSUP, 4, "version 4", "GGUF v4");
	gb_put_u32(&b, 4, 0);
	expect(&b, -EINVAL, 4, "version 0", "GGUF v0");
	gb_put_u32(&b, 4, 3);
	gb_put_u64(&b, 8, 1ull << 62);
	expect(&b, -ERANGE, 8, "tensor count 4611686018427387904", "oversized tensor count");
	gb_put_u64(&b, 8, 3);
	gb_put_u64(&b, 16, UINT64_MAX);
	expect(&b, -ERANGE, 16, "metadata count", "oversized metadata count");
	gb_put_u64(&b, 16, 1);
	tap_is_int(gb_open(&b, &g, &err), 0, "the restored file opens again");
	p2pio_gguf_close(g);
	gb_free(&b);
}

/* One key holding @levels arrays nested in each other; returns where the deepest begins. */
static size_t nested_file(struct gguf_build *b, int levels)
{
	size_t pos = 0;
	int i;

	gb_init(b);
	gb_header(b, 3, 0, 1);
	gb_key(b, "deep", P2PIO_GGUF_TYPE_ARRAY);
	for (i = 0; i < levels; i++) {
		pos = b->len;
		gb_u32(b, i < levels - 1 ? P2PIO_GGUF_TYPE_ARRAY : P2PIO_GGUF_TYPE_UINT8);
		gb_u64(b, 1);
	}
	gb_u8(b, 1);
	/* The array that holds the deepest one is the one refused. */
	return pos - 12;
}

static void test_metadata(void)
{
	struct p2pio_gguf *g = NULL;
	struct p2pio_error err;
	struct gguf_build b;
	size_t pos;

	/* Key length at byte 24. */
	base(&b, 3);
	gb_put_u64(&b, 24, 1ull << 63);
	expect(&b, -ERANGE, 24, "metadata key length 9223372036854775808", "oversized key length");
	gb_free(&b);

	base(&b, 3);
	gb_put_u64(&b, 24 + 8 + 20 + 4, b.len);
	expect(&b, -ERANGE, 56, "string length", "oversized string value length");
	gb_free(&b);

	base(&b, 3);
	gb_put_u32(&b, 24 + 8 + 20, 13);
	expect(&b, -EINVAL, 52, "value type 13", "unknown value type");
	gb_free(&b);

	gb_init(&b);
	gb_header(&b, 3, 0, 1);
	gb_key(&b, "a", P2PIO_GGUF_TYPE_ARRAY);
	gb_u32(&b, P2PIO_GGUF_TYPE_UINT32);
	gb_u64(&b, 1ull << 40);
	gb_u32(&b, 7);
	expect(&b, -ERANGE, 41, "array length 1099511627776", "oversized array length");
	gb_put_u32(&b, 37, 99);
	expect(&b, -EINVAL, 37, "array element type 99", "unknown array element type");
	gb_free(&b);

	gb_init(&b);
	gb_header(&b, 3, 0, 1);
	gb_key(&b, "strings", P2PIO_GGUF_TYPE_ARRAY);
	gb_u32(&b, P2PIO_GGUF_TYPE_STRING);
	gb_u64(&b, 2);
	gb_str(&b, "one");
	pos = b.len;
	gb_u64(&b, 1000);
	gb_bytes(&b, "two", 3);
	expect(&b, -ERANGE, pos, "element 1: the string length 1000", "string in an array past the end");
	gb_free(&b);

	pos = nested_file(&b, P2PIO_GGUF_MAX_DEPTH);
	tap_ok(gb_open(&b, &g, &err) == 0, "arrays nested %d deep open", P2PIO_GGUF_MAX_DEPTH);
	p2pio_gguf_close(g);
	g = NULL;
	gb_free(&b);
	pos = nested_file(&b, P2PIO_GGUF_MAX_DEPTH + 1);
	expect(&b, -EINVAL, pos, "deeper than 8", "arrays nested 9 deep");
	gb_free(&b);

	gb_init(&b);
	gb_header(&b, 3, 0, 1);
	gb_kv_u32(&b, "", 1);
	expect(&b, -EINVAL, 24, "is empty", "empty key");
	gb_free(&b);

	gb_init(&b);
	gb_header(&b, 3, 0, 1);
	gb_strn(&b, "a\0b", 3);
	gb_u32(&b, P2PIO_GGUF_TYPE_UINT8);
	gb_u8(&b, 1);
	expect(&b, -EINVAL, 24, "NUL byte", "NUL in a key");
	gb_free(&b);

	gb_init(&b);
	gb_header(&b, 3, 0, 3);
	gb_kv_u32(&b, "x.a", 1);
	gb_kv_u32(&b, "x.b", 1);
	pos = b.len;
	gb_kv_u32(&b, "x.a", 2);
	expect(&b, -EEXIST, pos, "'x.a' at byte 62 appears twice", "duplicate key");
	gb_free(&b);
}

static void alignment_file(struct gguf_build *b, uint32_t type, uint64_t v)
{
	gb_init(b);
	gb_header(b, 3, 0, 1);
	gb_key(b, "general.alignment", type);
	if (type == P2PIO_GGUF_TYPE_UINT64)
		gb_u64(b, v);
	else
		gb_u32(b, (uint32_t)v);
}

static void test_alignment(void)
{
	struct gguf_build b;
	struct p2pio_gguf *g = NULL;
	struct p2pio_error err;
	static const struct gb_tensor t0[2] = {
		GB_T("a", P2PIO_GGML_TYPE_F32, 1, 3),
		GB_T("b", P2PIO_GGML_TYPE_F32, 1, 5),
	};
	struct gb_tensor t[2];

	alignment_file(&b, P2PIO_GGUF_TYPE_UINT64, 32);
	expect(&b, -EINVAL, 24, "it must be a uint32", "general.alignment as uint64");
	gb_free(&b);
	alignment_file(&b, P2PIO_GGUF_TYPE_UINT32, 0);
	expect(&b, -EINVAL, 53, "is 0; it must be a nonzero power of two", "general.alignment 0");
	gb_free(&b);
	alignment_file(&b, P2PIO_GGUF_TYPE_UINT32, 48);
	expect(&b, -EINVAL, 53, "is 48", "general.alignment 48");
	gb_free(&b);
	alignment_file(&b, P2PIO_GGUF_TYPE_UINT32, 1u << 31);
	tap_ok(gb_open(&b, &g, &err) == 0 && p2pio_gguf_alignment(g) == 1u << 31 &&
		       p2pio_gguf_data_offset(g) == 1ull << 31 && p2pio_gguf_data_size(g) == 0,
	       "alignment 2^31 without tensors opens; the data section starts past the end");
	p2pio_gguf_close(g);
	g = NULL;
	gb_free(&b);

	/* Tensor b at offset 16: a multiple of 16 but not of 32. */
	gb_init(&b);
	memcpy(t, t0, sizeof(t));
	gb_model(&b, 3, 16, t, 2);
	tap_ok(gb_open(&b, &g, &err) == 0 && p2pio_gguf_alignment(g) == 16 &&
		       p2pio_gguf_tensor(g, 1)->offset == 16,
	       "alignment 16: offsets 0 and 16");
	p2pio_gguf_close(g);
	g = NULL;
	gb_free(&b);
	memcpy(t, t0, sizeof(t));
	gb_model(&b, 3, 0, t, 2);
	gb_put_u64(&b, t[1].info_pos + 8 + 1 + 4 + 8 + 4, 16);
	expect(&b, -EINVAL, t[1].info_pos + 25, "offset 16 at byte", "misaligned tensor (16 with the default 32)");
	gb_free(&b);
}

static void test_tensors(void)
{
	struct gguf_build b;
	uint64_t ne_pos, type_pos, off_pos, info;

	/* In the base file tensor 1 is "blk.0.attn_q.weight": name 8 + 19, n_dims, ne[2]. */
	base(&b, 3);
	info = base_t[1].info_pos;
	ne_pos = info + 8 + 19 + 4;
	type_pos = ne_pos + 16;
	off_pos = type_pos + 4;

	gb_put_u32(&b, info + 27, 0);
	expect(&b, -EINVAL, info + 27, "n_dims 0", "n_dims 0");
	gb_put_u32(&b, info + 27, 5);
	expect(&b, -EINVAL, info + 27, "n_dims 5 at byte", "n_dims 5");
	gb_put_u32(&b, info + 27, 2);

	gb_put_u64(&b, ne_pos + 8, 0);
	expect(&b, -EINVAL, ne_pos + 8, "ne[1] at byte", "an extent of 0");
	gb_put_u64(&b, ne_pos + 8, 1ull << 63);
	expect(&b, -ERANGE, ne_pos + 8, "exceeds 2^63 - 1", "an extent above int64");
	gb_put_u64(&b, ne_pos + 8, 1ull << 62);
	expect(&b, -ERANGE, type_pos, "element count", "an element count above int64");
	gb_put_u64(&b, ne_pos + 8, 2);
	gb_put_u64(&b, ne_pos, 33);
	expect(&b, -EINVAL, type_pos, "not a positive multiple of Q8_0's block of 32", "ne[0] not a whole block");
	gb_put_u64(&b, ne_pos, 64);

	gb_put_u32(&b, type_pos, 4);
	expect(&b, -ENOTSUP, type_pos, "ggml type 4 (Q4_2) was removed", "removed type Q4_2");
	gb_put_u32(&b, type_pos, 37);
	expect(&b, -ENOTSUP, type_pos, "(IQ4_NL_4_8) was removed", "removed type IQ4_NL_4_8");
	gb_put_u32(&b, type_pos, 43);
	expect(&b, -EINVAL, type_pos, "unknown ggml type 43", "unknown type 43");
	gb_put_u32(&b, type_pos, 0xdeadbeef);
	expect(&b, -EINVAL, type_pos, "unknown ggml type 3735928559", "unknown type 0xdeadbeef");
	gb_put_u32(&b, type_pos, P2PIO_GGML_TYPE_Q8_0);

	gb_put_u64(&b, off_pos, 4096);
	expect(&b, -ERANGE, off_pos, "offset 4096 + size 136 overflows the data section", "tensor past the end");
	gb_put_u64(&b, off_pos, UINT64_MAX - 31);
	expect(&b, -ERANGE, off_pos, "overflows the data section", "offset + size wrapping around");
	gb_put_u64(&b, off_pos, 0);
	expect(&b, -EINVAL, off_pos, "overlaps tensor 'token_embd.weight' [0, 128)", "overlapping tensors");
	gb_put_u64(&b, off_pos, 96);
	expect(&b, -EINVAL, off_pos, "overlaps", "a tensor starting inside another");
	gb_put_u64(&b, off_pos, base_t[1].offset);

	gb_free(&b);

	gb_init(&b);
	{
		struct gb_tensor t[2] = {
			GB_T("same", P2PIO_GGML_TYPE_F32, 1, 8),
			GB_T("same", P2PIO_GGML_TYPE_F32, 1, 8),
		};
		gb_model(&b, 3, 0, t, 2);
		expect(&b, -EEXIST, t[1].info_pos, "tensor name 'same'", "duplicate tensor name");
		gb_free(&b);
	}
	gb_init(&b);
	{
		struct gb_tensor t[1] = { GB_T("", P2PIO_GGML_TYPE_F32, 1, 8) };
		gb_model(&b, 3, 0, t, 1);
		expect(&b, -EINVAL, t[0].info_pos, "tensor name at byte", "empty tensor name");
		gb_free(&b);
	}
	gb_init(&b);
	{
		struct gb_tensor t[1] = { GB_T("ab", P2PIO_GGML_TYPE_F32, 1, 8) };
		gb_model(&b, 3, 0, t, 1);
		b.p[t[0].info_pos + 9] = 0;
		expect(&b, -EINVAL, t[0].info_pos, "contains a NUL byte", "NUL in a tensor name");
		gb_free(&b);
	}
	gb_init(&b);
	{
		struct gb_tensor t[2] = {
			GB_T("blk.1.ffn_up_exps.weight", P2PIO_GGML_TYPE_F32, 3, 8, 2, 4),
			GB_T("blk.1.ffn_down_exps.weight", P2PIO_GGML_TYPE_F32, 3, 2, 8, 5),
		};
		gb_model(&b, 3, 0, t, 2);
		expect(&b, -EINVAL, t[1].info_pos, "has 5 experts, but tensor 'blk.1.ffn_up_exps.weight' of the same layer has 4",
		       "expert counts that differ within a layer");
		gb_free(&b);
	}
}

static void test_files(void)
{
	struct p2pio_gguf *g = NULL;
	struct p2pio_error err;
	struct gguf_build b;
	int fd, ret;

	ret = p2pio_gguf_open("/nonexistent/x.gguf", &g, &err);
	tap_ok(ret == -ENOENT && err.code == -ENOENT && strstr(err.msg, "/nonexistent/x.gguf"),
	       "a missing file is -ENOENT and named: %s", err.msg);
	ret = p2pio_gguf_open("/", &g, &err);
	tap_ok(ret == -EINVAL && strstr(err.msg, "not a regular file"),
	       "a directory is refused: %s", err.msg);
	tap_ok(p2pio_gguf_open_fd(-1, &g, &err) == -EBADF, "a bad fd is -EBADF");
	tap_ok(p2pio_gguf_open_fd(-1, &g, NULL) == -EBADF, "err may be NULL");

	/* A sparse 300 MiB file whose first key claims 280 MiB: over the header limit. */
	gb_init(&b);
	gb_header(&b, 3, 0, 1);
	gb_u64(&b, 280ull << 20);
	fd = gb_memfd(&b);
	tap_ok(fd >= 0 && !ftruncate(fd, 300ll << 20), "a sparse 300 MiB file");
	memset(&err, 0, sizeof(err));
	ret = p2pio_gguf_open_fd(fd, &g, &err);
	tap_ok(ret == -EFBIG && err.offset == 32 && strstr(err.msg, "268435456-byte limit"),
	       "a 280 MiB key is over the header limit: %s", err.msg);
	close(fd);
	gb_free(&b);
}

int main(void)
{
	tap_plan_lazy();
	test_truncation();
	test_header();
	test_metadata();
	test_alignment();
	test_tensors();
	test_files();
	return tap_exit();
}
