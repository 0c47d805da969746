// SPDX-License-Identifier: MIT
/* gguf_meta.c - metadata of a parsed GGUF file: iteration, lookup and typed access. */
#include <errno.h>
#include <string.h>

#include "gguf/reader.h"

static const char *const gguf_type_names[P2PIO_GGUF_TYPE_COUNT] = {
	"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
	"bool", "string", "array", "uint64", "int64", "float64",
};

const char *p2pio_gguf_type_name(uint32_t type)
{
	return type < P2PIO_GGUF_TYPE_COUNT ? gguf_type_names[type] : "invalid";
}

size_t p2pio_gguf_kv_count(const struct p2pio_gguf *g)
{
	return g->n_kv;
}

const char *p2pio_gguf_kv_key(const struct p2pio_gguf *g, size_t i)
{
	return i < g->n_kv ? g->kvs[i].name : NULL;
}

const struct p2pio_gguf_value *p2pio_gguf_kv_value(const struct p2pio_gguf *g, size_t i)
{
	return i < g->n_kv ? &g->kvs[i].v : NULL;
}

int p2pio_gguf_find_kv(const struct p2pio_gguf *g, const char *key)
{
	return gguf_hash_find(&g->kv_hash, g->kv_names, key);
}

const struct p2pio_gguf_value *p2pio_gguf_find_value(const struct p2pio_gguf *g,
						     const char *key)
{
	int i = p2pio_gguf_find_kv(g, key);

	return i < 0 ? NULL : &g->kvs[i].v;
}

enum p2pio_gguf_type p2pio_gguf_value_type(const struct p2pio_gguf_value *v)
{
	return (enum p2pio_gguf_type)v->type;
}

static uint64_t gguf_le(const unsigned char *p, unsigned int n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

static bool gguf_is_signed(uint32_t type)
{
	return type == P2PIO_GGUF_TYPE_INT8 || type == P2PIO_GGUF_TYPE_INT16 ||
	       type == P2PIO_GGUF_TYPE_INT32 || type == P2PIO_GGUF_TYPE_INT64;
}

static bool gguf_is_int(uint32_t type)
{
	return gguf_is_signed(type) || type == P2PIO_GGUF_TYPE_UINT8 ||
	       type == P2PIO_GGUF_TYPE_UINT16 || type == P2PIO_GGUF_TYPE_UINT32 ||
	       type == P2PIO_GGUF_TYPE_UINT64;
}

/* Decode an integer of @type at @p: its bits, sign-extended to 64, and whether it is negative. */
static int gguf_int_at(const unsigned char *p, uint32_t type, uint64_t *u, bool *neg)
{
	unsigned int bits = 8 * gguf_type_size(type);

	if (!gguf_is_int(type))
		return -EINVAL;
	*u = gguf_le(p, bits / 8);
	*neg = gguf_is_signed(type) && ((*u >> (bits - 1)) & 1);
	if (*neg && bits < 64)
		*u |= ~0ull << bits;
	return 0;
}

static int gguf_u64_at(const unsigned char *p, uint32_t type, uint64_t *out)
{
	uint64_t u;
	bool neg;
	int ret = gguf_int_at(p, type, &u, &neg);

	if (ret)
		return ret;
	if (neg)
		return -ERANGE;
	*out = u;
	return 0;
}

static int gguf_i64_at(const unsigned char *p, uint32_t type, int64_t *out)
{
	uint64_t u;
	bool neg;
	int ret = gguf_int_at(p, type, &u, &neg);

	if (ret)
		return ret;
	if (!neg && u > INT64_MAX)
		return -ERANGE;
	/* Two's complement bits to int64_t without implementation-defined conversions. */
	memcpy(out, &u, sizeof(*out));
	return 0;
}

static int gguf_f64_at(const unsigned char *p, uint32_t type, double *out)
{
	uint64_t u;
	uint32_t w;
	float f;

	if (type == P2PIO_GGUF_TYPE_FLOAT32) {
		w = (uint32_t)gguf_le(p, 4);
		memcpy(&f, &w, sizeof(f));
		*out = f;
		return 0;
	}
	if (type == P2PIO_GGUF_TYPE_FLOAT64) {
		u = gguf_le(p, 8);
		memcpy(out, &u, sizeof(*out));
		return 0;
	}
	return -EINVAL;
}

int p2pio_gguf_value_u64(const struct p2pio_gguf_value *v, uint64_t *out)
{
	return gguf_u64_at(v->data, v->type, out);
}

int p2pio_gguf_value_i64(const struct p2pio_gguf_value *v, int64_t *out)
{
	return gguf_i64_at(v->data, v->type, out);
}

int p2pio_gguf_value_f64(const struct p2pio_gguf_value *v, double *out)
{
	return gguf_f64_at(v->data, v->type, out);
}

int p2pio_gguf_value_bool(const struct p2pio_gguf_value *v, bool *out)
{
	if (v->type != P2PIO_GGUF_TYPE_BOOL)
		return -EINVAL;
	*out = v->data[0] != 0;
	return 0;
}

int p2pio_gguf_value_string(const struct p2pio_gguf_value *v, const char **str, size_t *len)
{
	if (v->type != P2PIO_GGUF_TYPE_STRING)
		return -EINVAL;
	*str = (const char *)v->data;
	if (len)
		*len = (size_t)v->len;
	return 0;
}

int p2pio_gguf_get_u64(const struct p2pio_gguf *g, const char *key, uint64_t *out)
{
	const struct p2pio_gguf_value *v = p2pio_gguf_find_value(g, key);

	return v ? p2pio_gguf_value_u64(v, out) : -ENOENT;
}

int p2pio_gguf_get_i64(const struct p2pio_gguf *g, const char *key, int64_t *out)
{
	const struct p2pio_gguf_value *v = p2pio_gguf_find_value(g, key);

	return v ? p2pio_gguf_value_i64(v, out) : -ENOENT;
}

int p2pio_gguf_get_f64(const struct p2pio_gguf *g, const char *key, double *out)
{
	const struct p2pio_gguf_value *v = p2pio_gguf_find_value(g, key);

	return v ? p2pio_gguf_value_f64(v, out) : -ENOENT;
}

int p2pio_gguf_get_bool(const struct p2pio_gguf *g, const char *key, bool *out)
{
	const struct p2pio_gguf_value *v = p2pio_gguf_find_value(g, key);

	return v ? p2pio_gguf_value_bool(v, out) : -ENOENT;
}

int p2pio_gguf_get_string(const struct p2pio_gguf *g, const char *key, const char **str,
			  size_t *len)
{
	const struct p2pio_gguf_value *v = p2pio_gguf_find_value(g, key);

	return v ? p2pio_gguf_value_string(v, str, len) : -ENOENT;
}

int p2pio_gguf_array_type(const struct p2pio_gguf_value *v)
{
	return v->type == P2PIO_GGUF_TYPE_ARRAY ? (int)v->elem_type : -EINVAL;
}

uint64_t p2pio_gguf_array_len(const struct p2pio_gguf_value *v)
{
	return v->type == P2PIO_GGUF_TYPE_ARRAY ? v->len : 0;
}

/* Element @i of a packed numeric array, or the reason there is none. */
static int gguf_elem(const struct p2pio_gguf_value *v, uint64_t i, const unsigned char **p)
{
	uint32_t size;

	if (v->type != P2PIO_GGUF_TYPE_ARRAY)
		return -EINVAL;
	size = gguf_type_size(v->elem_type);
	if (!size)
		return -EINVAL;
	if (i >= v->len)
		return -ERANGE;
	*p = v->data + i * size;
	return 0;
}

int p2pio_gguf_array_u64(const struct p2pio_gguf_value *v, uint64_t i, uint64_t *out)
{
	const unsigned char *p;
	int ret = gguf_elem(v, i, &p);

	return ret ? ret : gguf_u64_at(p, v->elem_type, out);
}

int p2pio_gguf_array_i64(const struct p2pio_gguf_value *v, uint64_t i, int64_t *out)
{
	const unsigned char *p;
	int ret = gguf_elem(v, i, &p);

	return ret ? ret : gguf_i64_at(p, v->elem_type, out);
}

int p2pio_gguf_array_f64(const struct p2pio_gguf_value *v, uint64_t i, double *out)
{
	const unsigned char *p;
	int ret = gguf_elem(v, i, &p);

	return ret ? ret : gguf_f64_at(p, v->elem_type, out);
}

int p2pio_gguf_array_bool(const struct p2pio_gguf_value *v, uint64_t i, bool *out)
{
	const unsigned char *p;
	int ret = gguf_elem(v, i, &p);

	if (ret)
		return ret;
	if (v->elem_type != P2PIO_GGUF_TYPE_BOOL)
		return -EINVAL;
	*out = *p != 0;
	return 0;
}

int p2pio_gguf_array_string(const struct p2pio_gguf_value *v, uint64_t i, const char **str,
			    size_t *len)
{
	if (v->type != P2PIO_GGUF_TYPE_ARRAY || v->elem_type != P2PIO_GGUF_TYPE_STRING)
		return -EINVAL;
	if (i >= v->len)
		return -ERANGE;
	*str = (const char *)v->base + v->strs[i].off;
	if (len)
		*len = (size_t)v->strs[i].len;
	return 0;
}

int p2pio_gguf_array_array(const struct p2pio_gguf_value *v, uint64_t i,
			   const struct p2pio_gguf_value **out)
{
	if (v->type != P2PIO_GGUF_TYPE_ARRAY || v->elem_type != P2PIO_GGUF_TYPE_ARRAY)
		return -EINVAL;
	if (i >= v->len)
		return -ERANGE;
	*out = &v->elems[i];
	return 0;
}

const void *p2pio_gguf_array_data(const struct p2pio_gguf_value *v, size_t *elem_size)
{
	if (v->type != P2PIO_GGUF_TYPE_ARRAY || !gguf_type_size(v->elem_type) || !v->len)
		return NULL;
	if (elem_size)
		*elem_size = gguf_type_size(v->elem_type);
	return v->data;
}
