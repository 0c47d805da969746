// SPDX-License-Identifier: MIT
/*
 * gguf_types.c - the ggml tensor type table and tensor size arithmetic.
 *
 * Values from ggml's type traits (shared/reference/ggml-types.tsv). Removed ids keep their
 * old names so that a refusal can say what the file meant.
 */
#include <errno.h>
#include <strings.h>

#include "gguf/reader.h"

struct ggml_type_desc {
	const char *name;
	uint32_t block_elems;	/* 0: the id was removed from ggml */
	uint32_t block_bytes;
};

static const struct ggml_type_desc ggml_types[P2PIO_GGML_TYPE_COUNT] = {
	[0] = { "F32", 1, 4 },
	[1] = { "F16", 1, 2 },
	[2] = { "Q4_0", 32, 18 },
	[3] = { "Q4_1", 32, 20 },
	[4] = { "Q4_2", 0, 0 },
	[5] = { "Q4_3", 0, 0 },
	[6] = { "Q5_0", 32, 22 },
	[7] = { "Q5_1", 32, 24 },
	[8] = { "Q8_0", 32, 34 },
	[9] = { "Q8_1", 32, 36 },
	[10] = { "Q2_K", 256, 84 },
	[11] = { "Q3_K", 256, 110 },
	[12] = { "Q4_K", 256, 144 },
	[13] = { "Q5_K", 256, 176 },
	[14] = { "Q6_K", 256, 210 },
	[15] = { "Q8_K", 256, 292 },
	[16] = { "IQ2_XXS", 256, 66 },
	[17] = { "IQ2_XS", 256, 74 },
	[18] = { "IQ3_XXS", 256, 98 },
	[19] = { "IQ1_S", 256, 50 },
	[20] = { "IQ4_NL", 32, 18 },
	[21] = { "IQ3_S", 256, 110 },
	[22] = { "IQ2_S", 256, 82 },
	[23] = { "IQ4_XS", 256, 136 },
	[24] = { "I8", 1, 1 },
	[25] = { "I16", 1, 2 },
	[26] = { "I32", 1, 4 },
	[27] = { "I64", 1, 8 },
	[28] = { "F64", 1, 8 },
	[29] = { "IQ1_M", 256, 56 },
	[30] = { "BF16", 1, 2 },
	[31] = { "Q4_0_4_4", 0, 0 },
	[32] = { "Q4_0_4_8", 0, 0 },
	[33] = { "Q4_0_8_8", 0, 0 },
	[34] = { "TQ1_0", 256, 54 },
	[35] = { "TQ2_0", 256, 66 },
	[36] = { "IQ4_NL_4_4", 0, 0 },
	[37] = { "IQ4_NL_4_8", 0, 0 },
	[38] = { "IQ4_NL_8_8", 0, 0 },
	[39] = { "MXFP4", 32, 17 },
	[40] = { "NVFP4", 64, 36 },
	[41] = { "Q1_0", 128, 18 },
	[42] = { "Q2_0", 64, 18 },
};

static const struct ggml_type_desc *ggml_type_get(uint32_t type)
{
	if (type >= P2PIO_GGML_TYPE_COUNT || !ggml_types[type].block_elems)
		return NULL;
	return &ggml_types[type];
}

const char *p2pio_ggml_type_name(uint32_t type)
{
	const struct ggml_type_desc *d = ggml_type_get(type);

	return d ? d->name : NULL;
}

int p2pio_ggml_type_from_name(const char *name)
{
	uint32_t i;

	if (!name)
		return -ENOENT;
	for (i = 0; i < P2PIO_GGML_TYPE_COUNT; i++)
		if (ggml_types[i].block_elems && !strcasecmp(name, ggml_types[i].name))
			return (int)i;
	return -ENOENT;
}

int p2pio_ggml_type_block(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes,
			  struct p2pio_error *err)
{
	const struct ggml_type_desc *d = ggml_type_get(type);

	if (!d) {
		if (type < P2PIO_GGML_TYPE_COUNT)
			return p2pio_set_error(err, -ENOTSUP, P2PIO_NO_OFFSET,
					       "ggml type %u (%s) was removed from ggml", type,
					       ggml_types[type].name);
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "unknown ggml type %u (known ids are 0..%d)", type,
				       P2PIO_GGML_TYPE_COUNT - 1);
	}
	if (block_elems)
		*block_elems = d->block_elems;
	if (block_bytes)
		*block_bytes = d->block_bytes;
	return 0;
}

int p2pio_ggml_row_size(uint32_t type, uint64_t ne0, uint64_t *bytes, struct p2pio_error *err)
{
	uint32_t be, bb;
	uint64_t n;
	int ret;

	ret = p2pio_ggml_type_block(type, &be, &bb, err);
	if (ret)
		return ret;
	if (!ne0 || ne0 % be)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "ne[0] = %llu is not a positive multiple of %s's block of %u elements",
				       (unsigned long long)ne0, ggml_types[type].name, be);
	if (p2pio_mul_overflow(ne0 / be, bb, &n))
		return p2pio_set_error(err, -ERANGE, P2PIO_NO_OFFSET,
				       "a row of %llu %s elements overflows 64 bits",
				       (unsigned long long)ne0, ggml_types[type].name);
	*bytes = n;
	return 0;
}

int p2pio_ggml_tensor_size(uint32_t type, uint32_t n_dims, const uint64_t *ne, uint64_t *bytes,
			   struct p2pio_error *err)
{
	uint64_t elems = 1, size;
	uint32_t i;
	int ret;

	if (n_dims < 1 || n_dims > P2PIO_GGUF_MAX_DIMS)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "n_dims %u is outside 1..%d", n_dims, P2PIO_GGUF_MAX_DIMS);
	/* ggml keeps extents and the element count in int64_t: both must stay below 2^63. */
	for (i = 0; i < n_dims; i++) {
		if (!ne[i])
			return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "ne[%u] is 0", i);
		if (ne[i] > INT64_MAX || p2pio_mul_overflow(elems, ne[i], &elems) ||
		    elems > INT64_MAX)
			return p2pio_set_error(err, -ERANGE, P2PIO_NO_OFFSET,
					       "ne[%u] = %llu takes the element count past 2^63 - 1",
					       i, (unsigned long long)ne[i]);
	}
	ret = p2pio_ggml_row_size(type, ne[0], &size, err);
	if (ret)
		return ret;
	for (i = 1; i < n_dims; i++)
		if (p2pio_mul_overflow(size, ne[i], &size))
			return p2pio_set_error(err, -ERANGE, P2PIO_NO_OFFSET,
					       "the size in bytes overflows 64 bits at ne[%u] = %llu",
					       i, (unsigned long long)ne[i]);
	*bytes = size;
	return 0;
}
