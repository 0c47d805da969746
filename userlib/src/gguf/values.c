// SPDX-License-Identifier: MIT
/*
 * gguf_values.c - parsing one metadata value: scalars, strings and arrays, nested.
 *
 * Numbers and packed arrays stay where they are in the header buffer; strings are made
 * NUL-terminated in place (gguf_cursor.c); only arrays of strings and arrays of arrays
 * allocate, an index of their elements, grown as elements are actually read so that a
 * hostile count cannot make the reader allocate more than the file holds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "gguf/reader.h"

uint32_t gguf_type_size(uint32_t type)
{
	switch (type) {
	case P2PIO_GGUF_TYPE_UINT8:
	case P2PIO_GGUF_TYPE_INT8:
	case P2PIO_GGUF_TYPE_BOOL:
		return 1;
	case P2PIO_GGUF_TYPE_UINT16:
	case P2PIO_GGUF_TYPE_INT16:
		return 2;
	case P2PIO_GGUF_TYPE_UINT32:
	case P2PIO_GGUF_TYPE_INT32:
	case P2PIO_GGUF_TYPE_FLOAT32:
		return 4;
	case P2PIO_GGUF_TYPE_UINT64:
	case P2PIO_GGUF_TYPE_INT64:
	case P2PIO_GGUF_TYPE_FLOAT64:
		return 8;
	default:
		return 0;
	}
}

/* Fewest bytes one element of an array of @type takes in the file. */
static uint64_t gguf_min_size(uint32_t type)
{
	if (type == P2PIO_GGUF_TYPE_STRING)
		return 8;
	if (type == P2PIO_GGUF_TYPE_ARRAY)
		return 4 + 8;
	return gguf_type_size(type);
}

/*
 * Make room for element @i in *@p, doubling, so that memory follows what the file really
 * holds rather than the count it claims (the count was checked against the file too).
 */
int gguf_grow(void **p, uint64_t *cap, uint64_t i, size_t size)
{
	uint64_t n = *cap ? *cap * 2 : 16;
	void *q;

	if (i < *cap)
		return 0;
	if (n > SIZE_MAX / size)
		return -ENOMEM;
	q = realloc(*p, n * size);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

static int gguf_read_array(struct gguf_cursor *c, struct p2pio_gguf_value *v, unsigned int depth)
{
	uint64_t pos = c->off, n, i, cap = 0;
	uint32_t et;
	int ret;

	ret = gguf_read_u32(c, &et, "array element type");
	if (ret)
		return ret;
	if (et >= P2PIO_GGUF_TYPE_COUNT)
		return p2pio_set_error(c->err, -EINVAL, pos,
				       "array element type %u at byte %llu is not a GGUF value type (0..%d)",
				       et, (unsigned long long)pos, P2PIO_GGUF_TYPE_COUNT - 1);
	if (et == P2PIO_GGUF_TYPE_ARRAY && depth + 1 >= P2PIO_GGUF_MAX_DEPTH)
		return p2pio_set_error(c->err, -EINVAL, pos,
				       "array at byte %llu nests arrays deeper than %d levels",
				       (unsigned long long)pos, P2PIO_GGUF_MAX_DEPTH);
	ret = gguf_read_u64(c, &n, "array length");
	if (ret)
		return ret;
	if (n > (c->file_size - c->off) / gguf_min_size(et))
		return p2pio_set_error(c->err, -ERANGE, pos + 4,
				       "array length %llu at byte %llu: %llu elements of %s need at least %llu bytes each, %llu bytes are left in the file",
				       (unsigned long long)n, (unsigned long long)(pos + 4),
				       (unsigned long long)n, p2pio_gguf_type_name(et),
				       (unsigned long long)gguf_min_size(et),
				       (unsigned long long)(c->file_size - c->off));
	v->elem_type = et;
	/* Arrays of arrays count their elements as they are read, so a failure frees those. */
	v->len = et == P2PIO_GGUF_TYPE_ARRAY ? 0 : n;
	v->off = c->off;

	if (gguf_type_size(et)) {
		ret = gguf_need(c, n * gguf_type_size(et), "array elements");
		if (ret)
			return ret;
		c->off += n * gguf_type_size(et);
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (et == P2PIO_GGUF_TYPE_STRING) {
			ret = gguf_grow((void **)&v->strs, &cap, i, sizeof(*v->strs));
			if (!ret)
				ret = gguf_read_str(c, &v->strs[i], "string");
		} else {
			ret = gguf_grow((void **)&v->elems, &cap, i, sizeof(*v->elems));
			if (!ret) {
				v->len = i + 1;
				v->elems[i] = (struct p2pio_gguf_value){ .type = et };
				ret = gguf_read_array(c, &v->elems[i], depth + 1);
			}
		}
		if (ret == -ENOMEM)
			return p2pio_set_error(c->err, ret, c->off, "out of memory at element %llu",
					       (unsigned long long)i);
		if (ret) {
			p2pio_error_wrap(c->err, "element %llu: ", (unsigned long long)i);
			return ret;
		}
	}
	v->len = n;
	return 0;
}

int gguf_read_value(struct gguf_cursor *c, struct p2pio_gguf_value *v, uint32_t type,
		    unsigned int depth)
{
	struct gguf_str s;
	int ret;

	*v = (struct p2pio_gguf_value){ .type = type };
	if (type == P2PIO_GGUF_TYPE_ARRAY)
		return gguf_read_array(c, v, depth);
	if (type == P2PIO_GGUF_TYPE_STRING) {
		ret = gguf_read_str(c, &s, "string");
		if (ret)
			return ret;
		v->off = s.off;
		v->len = s.len;
		return 0;
	}
	v->off = c->off;
	ret = gguf_need(c, gguf_type_size(type), p2pio_gguf_type_name(type));
	if (ret)
		return ret;
	c->off += gguf_type_size(type);
	return 0;
}

void gguf_value_fixup(struct p2pio_gguf_value *v, const unsigned char *hdr)
{
	uint64_t i;

	v->data = hdr + v->off;
	v->base = hdr;
	if (v->type == P2PIO_GGUF_TYPE_ARRAY && v->elem_type == P2PIO_GGUF_TYPE_ARRAY)
		for (i = 0; i < v->len; i++)
			gguf_value_fixup(&v->elems[i], hdr);
}

void gguf_value_free(struct p2pio_gguf_value *v)
{
	uint64_t i;

	if (v->type != P2PIO_GGUF_TYPE_ARRAY)
		return;
	if (v->elems)
		for (i = 0; i < v->len; i++)
			gguf_value_free(&v->elems[i]);
	free(v->elems);
	free(v->strs);
	v->elems = NULL;
	v->strs = NULL;
}
