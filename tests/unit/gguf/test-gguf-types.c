// SPDX-License-Identifier: MIT
/*
 * The ggml type table and tensor size arithmetic, driven by the reference table
 * (shared/reference/ggml-types.tsv, copied below): names, block geometry, removed and
 * unknown ids, row and tensor sizes with their refusals, and, for every type, a file with a
 * tensor of that type whose size the reader must compute the same way.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gguf_build.h"
#include "tap.h"

static const struct {
	const char *name;
	uint32_t id, elems, bytes;
} ref[] = {
	{ "F32", 0, 1, 4 },		{ "F16", 1, 1, 2 },		{ "Q4_0", 2, 32, 18 },
	{ "Q4_1", 3, 32, 20 },		{ "Q5_0", 6, 32, 22 },		{ "Q5_1", 7, 32, 24 },
	{ "Q8_0", 8, 32, 34 },		{ "Q8_1", 9, 32, 36 },		{ "Q2_K", 10, 256, 84 },
	{ "Q3_K", 11, 256, 110 },	{ "Q4_K", 12, 256, 144 },	{ "Q5_K", 13, 256, 176 },
	{ "Q6_K", 14, 256, 210 },	{ "Q8_K", 15, 256, 292 },	{ "IQ2_XXS", 16, 256, 66 },
	{ "IQ2_XS", 17, 256, 74 },	{ "IQ3_XXS", 18, 256, 98 },	{ "IQ1_S", 19, 256, 50 },
	{ "IQ4_NL", 20, 32, 18 },	{ "IQ3_S", 21, 256, 110 },	{ "IQ2_S", 22, 256, 82 },
	{ "IQ4_XS", 23, 256, 136 },	{ "I8", 24, 1, 1 },		{ "I16", 25, 1, 2 },
	{ "I32", 26, 1, 4 },		{ "I64", 27, 1, 8 },		{ "F64", 28, 1, 8 },
	{ "IQ1_M", 29, 256, 56 },	{ "BF16", 30, 1, 2 },		{ "TQ1_0", 34, 256, 54 },
	{ "TQ2_0", 35, 256, 66 },	{ "MXFP4", 39, 32, 17 },	{ "NVFP4", 40, 64, 36 },
	{ "Q1_0", 41, 128, 18 },	{ "Q2_0", 42, 64, 18 },
};
static const uint32_t removed[] = { 4, 5, 31, 32, 33, 36, 37, 38 };

static void test_table(void)
{
	uint32_t be, bb, id;
	size_t i, ok = 0, bad = 0;
	struct p2pio_error err;
	uint64_t n;

	for (i = 0; i < sizeof(ref) / sizeof(ref[0]); i++) {
		be = bb = 0;
		if (p2pio_ggml_type_block(ref[i].id, &be, &bb, NULL) == 0 && be == ref[i].elems &&
		    bb == ref[i].bytes && !strcmp(p2pio_ggml_type_name(ref[i].id), ref[i].name) &&
		    p2pio_ggml_type_from_name(ref[i].name) == (int)ref[i].id)
			ok++;
		else
			tap_diag("type %s (%u) differs", ref[i].name, ref[i].id);
	}
	tap_is_int(ok, sizeof(ref) / sizeof(ref[0]), "all %zu types: name, block elements and bytes",
		   sizeof(ref) / sizeof(ref[0]));
	tap_is_int(p2pio_ggml_type_from_name("q4_k"), 12, "names match case-insensitively");
	tap_is_int(p2pio_ggml_type_from_name("Q4_2"), -ENOENT, "a removed name is not found");
	tap_is_int(p2pio_ggml_type_from_name("nope"), -ENOENT, "an unknown name is not found");

	for (i = 0; i < sizeof(removed) / sizeof(removed[0]); i++) {
		if (p2pio_ggml_type_block(removed[i], &be, &bb, &err) == -ENOTSUP &&
		    err.code == -ENOTSUP && strstr(err.msg, "removed") &&
		    !p2pio_ggml_type_name(removed[i]))
			ok++;
		else
			bad++;
	}
	tap_ok(!bad, "the 8 removed ids are -ENOTSUP: e.g. %s", err.msg);
	for (id = 43; id < 1000; id++)
		if (p2pio_ggml_type_block(id, NULL, NULL, NULL) != -EINVAL || p2pio_ggml_type_name(id))
			bad++;
	tap_ok(!bad, "ids 43..999 are unknown");
	p2pio_ggml_type_block(UINT32_MAX, NULL, NULL, &err);
	tap_ok(err.code == -EINVAL && strstr(err.msg, "unknown ggml type 4294967295"),
	       "the message names the id: %s", err.msg);

	tap_ok(!p2pio_ggml_row_size(P2PIO_GGML_TYPE_Q4_K, 4096, &n, NULL) && n == 16 * 144,
	       "Q4_K row of 4096 = 2304 bytes");
	tap_is_int(p2pio_ggml_row_size(P2PIO_GGML_TYPE_Q4_K, 4000, &n, &err), -EINVAL,
		   "Q4_K row of 4000 is not whole blocks");
	tap_is_int(p2pio_ggml_row_size(P2PIO_GGML_TYPE_F32, 0, &n, NULL), -EINVAL, "a row of 0");
	tap_is_int(p2pio_ggml_row_size(P2PIO_GGML_TYPE_F64, 1ull << 62, &n, NULL), -ERANGE,
		   "an F64 row of 2^62 overflows");
	tap_ok(!p2pio_ggml_row_size(P2PIO_GGML_TYPE_F64, (1ull << 61) - 1, &n, NULL) &&
		       n == ((1ull << 61) - 1) * 8, "an F64 row of 2^61 - 1 fits");
}

static void test_sizes(void)
{
	uint64_t ne[4] = { 0 }, n;
	size_t i, ok = 0;

	for (i = 0; i < sizeof(ref) / sizeof(ref[0]); i++) {
		ne[0] = ref[i].elems * 3;
		ne[1] = 5;
		ne[2] = 7;
		ne[3] = 2;
		if (!p2pio_ggml_tensor_size(ref[i].id, 4, ne, &n, NULL) &&
		    n == 3ull * ref[i].bytes * 5 * 7 * 2)
			ok++;
	}
	tap_is_int(ok, sizeof(ref) / sizeof(ref[0]), "4-D sizes = ne0/block*bytes*ne1*ne2*ne3 for all");
	ne[0] = 256;
	ne[1] = 1ull << 40;
	ne[2] = 1ull << 22;
	tap_is_int(p2pio_ggml_tensor_size(P2PIO_GGML_TYPE_F32, 3, ne, &n, NULL), -ERANGE,
		   "an element count of 2^70 is refused");
	ne[2] = 1ull << 14;
	tap_ok(!p2pio_ggml_tensor_size(P2PIO_GGML_TYPE_Q4_0, 3, ne, &n, NULL) &&
		       n == 8ull * 18 * (1ull << 54), "2^62 Q4_0 elements: 2^54 * 144 bytes fit");
	ne[2] = 1ull << 15;
	tap_is_int(p2pio_ggml_tensor_size(P2PIO_GGML_TYPE_F64, 3, ne, &n, NULL), -ERANGE,
		   "2^63 elements are refused");
	tap_is_int(p2pio_ggml_tensor_size(P2PIO_GGML_TYPE_F32, 0, ne, &n, NULL), -EINVAL, "n_dims 0");
	tap_is_int(p2pio_ggml_tensor_size(P2PIO_GGML_TYPE_F32, 5, ne, &n, NULL), -EINVAL, "n_dims 5");
	ne[1] = 0;
	tap_is_int(p2pio_ggml_tensor_size(P2PIO_GGML_TYPE_F32, 2, ne, &n, NULL), -EINVAL, "ne[1] = 0");
}

/* Every type in one file: the reader's size and offsets agree with the table. */
static void test_file(void)
{
	enum { N = sizeof(ref) / sizeof(ref[0]) };
	struct gb_tensor t[N];
	char names[N][16];
	struct p2pio_gguf *g = NULL;
	struct p2pio_error err;
	struct gguf_build b;
	const struct p2pio_gguf_tensor *pt;
	size_t i, ok = 0, data;

	gb_init(&b);
	for (i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "t.%s", ref[i].name);
		t[i] = (struct gb_tensor)GB_T(names[i], ref[i].id, 2, ref[i].elems * 2, 3);
	}
	data = gb_model(&b, 3, 0, t, N);
	if (!tap_is_int(gb_open(&b, &g, &err), 0, "a file with a tensor of each of the %d types", N))
		tap_diag("%s", err.msg);
	for (i = 0; g && i < N; i++) {
		pt = p2pio_gguf_tensor_by_name(g, names[i]);
		if (pt && pt->type == ref[i].id && pt->size == 2ull * ref[i].bytes * 3 &&
		    pt->size == t[i].size && pt->offset == t[i].offset &&
		    pt->file_offset == data + t[i].offset && pt->n_dims == 2 && pt->ne[2] == 1 &&
		    pt->ne[3] == 1)
			ok++;
	}
	tap_is_int(ok, N, "each tensor's type, size and offsets as laid out");
	p2pio_gguf_close(g);
	gb_free(&b);
}

int main(void)
{
	tap_plan_lazy();
	test_table();
	test_sizes();
	test_file();
	return tap_exit();
}
