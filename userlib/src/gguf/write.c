// SPDX-License-Identifier: MIT
/*
 * gguf_write.c - the GGUF writer.
 *
 * Metadata is encoded into a memory buffer as it is added (so that arrays can be built
 * element by element, nested to any depth the reader accepts), tensor infos are kept as a
 * list, and nothing touches the output until p2pio_gguf_writer_finish(): then the header,
 * the tensor infos, the padding and the data go out through gguf_write_out.c, in large
 * sequential writes from two buffers, one being filled while a thread writes the other, so
 * that generating tens of GB of pattern data runs at the disk's speed rather than at
 * fill + write speed.
 *
 * The writer only writes what a strict reader (ours, and ggml's) accepts: types from the
 * type table, rows that are whole blocks, unique keys and names, names ggml can hold,
 * sizes that fit in 64 bits, and a general.alignment that matches the layout.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/reader.h"
#include "gguf/writer.h"
#include "internal.h"

/* Deepest nesting of arrays inside arrays the writer builds. */
#define GW_MAX_DEPTH P2PIO_GGUF_MAX_DEPTH

/* ggml keeps tensor names in char[64], NUL included. */
#define GW_MAX_NAME 63

#define GW_ALIGNMENT_KEY "general.alignment"

struct gw_frame {
	uint32_t type;		/* element type of the open array */
	uint64_t left;		/* elements still to add */
};

struct gw_tensor {
	char *name;
	uint32_t type;
	uint32_t n_dims;
	uint64_t ne[P2PIO_GGUF_MAX_DIMS];
	uint64_t size;		/* bytes of data, without padding */
	uint64_t offset;	/* relative to the start of the data section */
	const void *data;
	int (*fill)(void *arg, void *buf, size_t len, uint64_t tensor_off, uint64_t file_off);
	void *arg;
};

/* Keys and tensor names, each unique: open addressing, FNV-1a. */
struct gw_set {
	char **slot;
	size_t cap;		/* power of two, or 0 */
	size_t count;
};

struct p2pio_gguf_writer {
	int fd;
	char *path;		/* final path, when created on a path */
	char *tmp_path;		/* the temporary file renamed onto path by finish */
	uint32_t version;
	uint32_t alignment;
	bool alignment_key;	/* general.alignment is among the metadata */
	bool finished;
	bool failed;		/* finish failed: the output is unusable */

	uint8_t *kv;
	size_t kv_len, kv_cap;
	uint64_t n_kv;
	struct gw_set keys;

	struct gw_frame frame[GW_MAX_DEPTH];
	int depth;

	struct gw_tensor *tensors;
	size_t n_tensors, cap_tensors;
	uint64_t info_len;	/* bytes of the tensor infos */
	uint64_t data_len;	/* bytes of the data section, padding included */
	struct gw_set names;

	struct p2pio_error error;
};

static uint64_t gw_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

static bool gw_set_has(const struct gw_set *set, const char *s)
{
	size_t i;

	if (!set->cap)
		return false;
	for (i = gw_hash(s) & (set->cap - 1); set->slot[i]; i = (i + 1) & (set->cap - 1))
		if (!strcmp(set->slot[i], s))
			return true;
	return false;
}

/* Insert @s (owned by the caller, who keeps it alive) into @set; @s must be absent. */
static int gw_set_add(struct gw_set *set, char *s)
{
	size_t i;

	if (2 * (set->count + 1) > set->cap) {
		size_t ncap = set->cap ? 2 * set->cap : 64, j;
		char **nslot = calloc(ncap, sizeof(*nslot));

		if (!nslot)
			return -ENOMEM;
		for (j = 0; j < set->cap; j++) {
			if (!set->slot[j])
				continue;
			for (i = gw_hash(set->slot[j]) & (ncap - 1); nslot[i]; i = (i + 1) & (ncap - 1))
				;
			nslot[i] = set->slot[j];
		}
		free(set->slot);
		set->slot = nslot;
		set->cap = ncap;
	}
	for (i = gw_hash(s) & (set->cap - 1); set->slot[i]; i = (i + 1) & (set->cap - 1))
		;
	set->slot[i] = s;
	set->count++;
	return 0;
}

/* The sets only point at strings; the key set owns its strings, the name set does not. */
static void gw_set_free(struct gw_set *set, bool owned)
{
	size_t i;

	if (owned)
		for (i = 0; i < set->cap; i++)
			free(set->slot[i]);
	free(set->slot);
	set->slot = NULL;
	set->cap = set->count = 0;
}

static int gw_fail(struct p2pio_gguf_writer *w, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int gw_fail(struct p2pio_gguf_writer *w, int code, const char *fmt, ...)
{
	va_list ap;

	w->error.code = code;
	w->error.offset = P2PIO_NO_OFFSET;
	va_start(ap, fmt);
	vsnprintf(w->error.msg, sizeof(w->error.msg), fmt, ap);
	va_end(ap);
	return code;
}

static int gw_usable(struct p2pio_gguf_writer *w)
{
	if (w->finished || w->failed)
		return gw_fail(w, -EINVAL, "the writer has already %s", w->finished ? "finished" : "failed");
	return 0;
}

/* Make room for @n more metadata bytes. */
static int gw_kv_reserve(struct p2pio_gguf_writer *w, size_t n)
{
	size_t need, cap;
	uint8_t *p;

	if (n > SIZE_MAX - w->kv_len || w->kv_len + n > P2PIO_GGUF_MAX_HEADER) {
		w->failed = true;
		return gw_fail(w, -EFBIG, "metadata larger than the %llu bytes a header may have",
			       (unsigned long long)P2PIO_GGUF_MAX_HEADER);
	}
	need = w->kv_len + n;
	if (need <= w->kv_cap)
		return 0;
	cap = w->kv_cap ? w->kv_cap : 4096;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : 2 * cap;
	p = realloc(w->kv, cap);
	if (!p) {
		/* A value may be half added: the writer cannot go on. */
		w->failed = true;
		return gw_fail(w, -ENOMEM, "out of memory for %zu bytes of metadata", cap);
	}
	w->kv = p;
	w->kv_cap = cap;
	return 0;
}

static void gw_put(struct p2pio_gguf_writer *w, const void *p, size_t n)
{
	memcpy(w->kv + w->kv_len, p, n);
	w->kv_len += n;
}

/* GGUF is little-endian here: values are stored least significant byte first. */
static void gw_put_le(struct p2pio_gguf_writer *w, uint64_t v, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		w->kv[w->kv_len++] = (uint8_t)(v >> (8 * i));
}

static int gw_put_str(struct p2pio_gguf_writer *w, const char *s, size_t len)
{
	int ret = gw_kv_reserve(w, 8 + len);

	if (ret)
		return ret;
	gw_put_le(w, len, 8);
	gw_put(w, s, len);
	return 0;
}

/*
 * A scalar of @n bytes from a C object in host byte order (floats by their bits), read
 * with memcpy: the caller's pointer may be of any type and alignment.
 */
static uint64_t gw_load(const void *p, unsigned int n)
{
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64 = 0;

	switch (n) {
	case 1:
		memcpy(&u8, p, 1);
		return u8;
	case 2:
		memcpy(&u16, p, 2);
		return u16;
	case 4:
		memcpy(&u32, p, 4);
		return u32;
	default:
		memcpy(&u64, p, 8);
		return u64;
	}
}

static bool gw_valid_type(uint32_t type)
{
	return gguf_type_size(type) || type == P2PIO_GGUF_TYPE_STRING || type == P2PIO_GGUF_TYPE_ARRAY;
}

/*
 * Start one value of @type: at top level (@key given) write the key and the type, inside
 * an open array (@key NULL) check that @type is the array's element type and count it.
 */
static int gw_begin_value(struct p2pio_gguf_writer *w, const char *key, uint32_t type)
{
	struct gw_frame *f;
	size_t klen;
	char *dup;
	int ret;

	ret = gw_usable(w);
	if (ret)
		return ret;
	if (!gw_valid_type(type))
		return gw_fail(w, -EINVAL, "unknown GGUF value type %u", type);
	if (w->depth) {
		f = &w->frame[w->depth - 1];
		if (key)
			return gw_fail(w, -EINVAL, "key \"%s\" given while an array is open", key);
		if (type != f->type)
			return gw_fail(w, -EINVAL, "value of type %u added to an array of type %u",
				       type, f->type);
		if (!f->left)
			return gw_fail(w, -EINVAL, "more elements added than the array's count");
		f->left--;
		return 0;
	}
	if (!key)
		return gw_fail(w, -EINVAL, "a metadata value needs a key");
	klen = strlen(key);
	if (!klen)
		return gw_fail(w, -EINVAL, "empty metadata key");
	if (gw_set_has(&w->keys, key))
		return gw_fail(w, -EEXIST, "duplicate metadata key \"%s\"", key);
	if (!strcmp(key, GW_ALIGNMENT_KEY))
		return gw_fail(w, -EINVAL, "%s is written by the writer from its alignment",
			       GW_ALIGNMENT_KEY);
	ret = gw_kv_reserve(w, 8 + klen + 4);
	if (ret)
		return ret;
	dup = strdup(key);
	if (!dup || gw_set_add(&w->keys, dup)) {
		free(dup);
		return gw_fail(w, -ENOMEM, "out of memory");
	}
	gw_put_le(w, klen, 8);
	gw_put(w, key, klen);
	gw_put_le(w, type, 4);
	w->n_kv++;
	return 0;
}

int p2pio_gguf_writer_add(struct p2pio_gguf_writer *w, const char *key, uint32_t type,
			  const void *value)
{
	unsigned int n = gguf_type_size(type);
	uint64_t v;
	int ret;

	if (!value)
		return gw_fail(w, -EINVAL, "no value given");
	if (type == P2PIO_GGUF_TYPE_STRING) {
		const char *s = *(const char *const *)value;

		return p2pio_gguf_writer_add_str_n(w, key, s, s ? strlen(s) : 0);
	}
	if (!n)
		return gw_fail(w, -EINVAL, "type %u is not a scalar type", type);
	if (type == P2PIO_GGUF_TYPE_BOOL && gw_load(value, 1) > 1)
		return gw_fail(w, -EINVAL, "bool value %u is neither 0 nor 1", *(const uint8_t *)value);
	ret = gw_begin_value(w, key, type);
	if (ret)
		return ret;
	ret = gw_kv_reserve(w, n);
	if (ret)
		return ret;
	v = gw_load(value, n);
	gw_put_le(w, v, n);
	return 0;
}

int p2pio_gguf_writer_add_u32(struct p2pio_gguf_writer *w, const char *key, uint32_t v)
{
	return p2pio_gguf_writer_add(w, key, P2PIO_GGUF_TYPE_UINT32, &v);
}

int p2pio_gguf_writer_add_i32(struct p2pio_gguf_writer *w, const char *key, int32_t v)
{
	return p2pio_gguf_writer_add(w, key, P2PIO_GGUF_TYPE_INT32, &v);
}

int p2pio_gguf_writer_add_u64(struct p2pio_gguf_writer *w, const char *key, uint64_t v)
{
	return p2pio_gguf_writer_add(w, key, P2PIO_GGUF_TYPE_UINT64, &v);
}

int p2pio_gguf_writer_add_f32(struct p2pio_gguf_writer *w, const char *key, float v)
{
	return p2pio_gguf_writer_add(w, key, P2PIO_GGUF_TYPE_FLOAT32, &v);
}

int p2pio_gguf_writer_add_bool(struct p2pio_gguf_writer *w, const char *key, bool v)
{
	uint8_t b = v;

	return p2pio_gguf_writer_add(w, key, P2PIO_GGUF_TYPE_BOOL, &b);
}

int p2pio_gguf_writer_add_str(struct p2pio_gguf_writer *w, const char *key, const char *s)
{
	return p2pio_gguf_writer_add_str_n(w, key, s, s ? strlen(s) : 0);
}

int p2pio_gguf_writer_add_str_n(struct p2pio_gguf_writer *w, const char *key, const char *s,
				size_t len)
{
	int ret;

	if (!s && len)
		return gw_fail(w, -EINVAL, "no string given");
	ret = gw_begin_value(w, key, P2PIO_GGUF_TYPE_STRING);
	if (ret)
		return ret;
	return gw_put_str(w, s ? s : "", len);
}

int p2pio_gguf_writer_begin_array(struct p2pio_gguf_writer *w, const char *key, uint32_t type,
				  uint64_t count)
{
	int ret;

	if (!gw_valid_type(type))
		return gw_fail(w, -EINVAL, "unknown GGUF array element type %u", type);
	if (w->depth == GW_MAX_DEPTH)
		return gw_fail(w, -E2BIG, "arrays nested deeper than %d", GW_MAX_DEPTH);
	ret = gw_begin_value(w, key, P2PIO_GGUF_TYPE_ARRAY);
	if (ret)
		return ret;
	ret = gw_kv_reserve(w, 12);
	if (ret)
		return ret;
	gw_put_le(w, type, 4);
	gw_put_le(w, count, 8);
	w->frame[w->depth].type = type;
	w->frame[w->depth].left = count;
	w->depth++;
	return 0;
}

int p2pio_gguf_writer_end_array(struct p2pio_gguf_writer *w)
{
	struct gw_frame *f;

	if (!w->depth)
		return gw_fail(w, -EINVAL, "no array is open");
	f = &w->frame[w->depth - 1];
	if (f->left)
		return gw_fail(w, -EINVAL, "array closed with %llu elements missing",
			       (unsigned long long)f->left);
	w->depth--;
	return 0;
}

int p2pio_gguf_writer_add_array(struct p2pio_gguf_writer *w, const char *key, uint32_t type,
				const void *data, uint64_t count)
{
	unsigned int n = gguf_type_size(type);
	uint64_t i, bytes = 0;
	int ret;

	if (count && !data)
		return gw_fail(w, -EINVAL, "no array data given");
	if (type == P2PIO_GGUF_TYPE_ARRAY)
		return gw_fail(w, -EINVAL, "arrays of arrays are built with begin_array");
	if (type == P2PIO_GGUF_TYPE_BOOL)
		for (i = 0; i < count; i++)
			if (((const uint8_t *)data)[i] > 1)
				return gw_fail(w, -EINVAL, "bool element %llu is neither 0 nor 1",
					       (unsigned long long)i);
	if (type == P2PIO_GGUF_TYPE_STRING) {
		const char *const *strs = data;

		for (i = 0; i < count; i++)
			if (!strs[i])
				return gw_fail(w, -EINVAL, "string element %llu is NULL",
					       (unsigned long long)i);
	}
	if (n && (p2pio_mul_overflow(count, n, &bytes) || bytes > P2PIO_GGUF_MAX_HEADER))
		return gw_fail(w, -EFBIG, "array of %llu elements too large",
			       (unsigned long long)count);
	ret = p2pio_gguf_writer_begin_array(w, key, type, count);
	if (ret)
		return ret;
	if (type == P2PIO_GGUF_TYPE_STRING) {
		const char *const *strs = data;

		for (i = 0; i < count; i++) {
			ret = p2pio_gguf_writer_add_str(w, NULL, strs[i]);
			if (ret)
				return ret;
		}
		return p2pio_gguf_writer_end_array(w);
	}
	ret = gw_kv_reserve(w, (size_t)bytes);
	if (ret)
		return ret;
	for (i = 0; i < count; i++)
		gw_put_le(w, gw_load((const uint8_t *)data + i * n, n), n);
	w->frame[w->depth - 1].left = 0;
	return p2pio_gguf_writer_end_array(w);
}

int p2pio_gguf_writer_add_tensor(struct p2pio_gguf_writer *w, const struct p2pio_gguf_new_tensor *t)
{
	struct p2pio_error e = { 0 };
	struct gw_tensor *gt;
	uint64_t row, size, padded, elems, info, end;
	size_t nlen;
	uint32_t i;
	int ret;

	ret = gw_usable(w);
	if (ret)
		return ret;
	if (!t || !t->name)
		return gw_fail(w, -EINVAL, "tensor without a name");
	nlen = strlen(t->name);
	if (!nlen || nlen > GW_MAX_NAME)
		return gw_fail(w, -ENAMETOOLONG, "tensor name \"%.80s\" is %zu bytes; 1 to %d allowed",
			       t->name, nlen, GW_MAX_NAME);
	if (gw_set_has(&w->names, t->name))
		return gw_fail(w, -EEXIST, "duplicate tensor name \"%s\"", t->name);
	if (!t->data == !t->fill)
		return gw_fail(w, -EINVAL, "tensor %s needs exactly one of data and fill", t->name);
	if (t->n_dims < 1 || t->n_dims > P2PIO_GGUF_MAX_DIMS)
		return gw_fail(w, -EINVAL, "tensor %s has %u dimensions; 1 to %d allowed", t->name,
			       t->n_dims, P2PIO_GGUF_MAX_DIMS);
	elems = 1;
	for (i = 0; i < t->n_dims; i++) {
		/* ggml counts elements in int64_t. */
		if (!t->ne[i] || t->ne[i] > INT64_MAX ||
		    p2pio_mul_overflow(elems, t->ne[i], &elems) || elems > INT64_MAX)
			return gw_fail(w, -ERANGE, "tensor %s: dimension %u (%llu) is zero or too large",
				       t->name, i, (unsigned long long)t->ne[i]);
	}
	ret = p2pio_ggml_row_size(t->type, t->ne[0], &row, &e);
	if (ret)
		return gw_fail(w, ret, "tensor %s: %s", t->name, e.msg);
	size = row;
	for (i = 1; i < t->n_dims; i++)
		if (p2pio_mul_overflow(size, t->ne[i], &size))
			return gw_fail(w, -ERANGE, "tensor %s too large", t->name);
	padded = (size + w->alignment - 1) & ~(uint64_t)(w->alignment - 1);
	info = 8 + nlen + 4 + 8ull * t->n_dims + 4 + 8;
	if (padded < size || p2pio_add_overflow(w->data_len, padded, &end) || end > INT64_MAX)
		return gw_fail(w, -ERANGE, "tensor %s: data section larger than 2^63 bytes", t->name);

	if (w->n_tensors == w->cap_tensors) {
		size_t ncap = w->cap_tensors ? 2 * w->cap_tensors : 64;
		struct gw_tensor *nt = realloc(w->tensors, ncap * sizeof(*nt));

		if (!nt)
			return gw_fail(w, -ENOMEM, "out of memory");
		w->tensors = nt;
		w->cap_tensors = ncap;
	}
	gt = &w->tensors[w->n_tensors];
	memset(gt, 0, sizeof(*gt));
	gt->name = strdup(t->name);
	if (!gt->name)
		return gw_fail(w, -ENOMEM, "out of memory");
	ret = gw_set_add(&w->names, gt->name);
	if (ret) {
		free(gt->name);
		return gw_fail(w, ret, "out of memory");
	}
	gt->type = t->type;
	gt->n_dims = t->n_dims;
	for (i = 0; i < P2PIO_GGUF_MAX_DIMS; i++)
		gt->ne[i] = i < t->n_dims ? t->ne[i] : 1;
	gt->size = size;
	gt->offset = w->data_len;
	gt->data = t->data;
	gt->fill = t->fill;
	gt->arg = t->arg;
	w->n_tensors++;
	w->info_len += info;
	w->data_len = end;
	return 0;
}

/* Whether general.alignment goes into the file: always when it is not the default. */
static bool gw_writes_alignment(const struct p2pio_gguf_writer *w)
{
	return w->alignment != P2PIO_GGUF_DEFAULT_ALIGNMENT || w->alignment_key;
}

/* Key, type and value of general.alignment. */
#define GW_ALIGNMENT_KV_LEN (8 + sizeof(GW_ALIGNMENT_KEY) - 1 + 4 + 4)

static uint64_t gw_header_len(const struct p2pio_gguf_writer *w)
{
	return 4 + 4 + 8 + 8 + w->kv_len + (gw_writes_alignment(w) ? GW_ALIGNMENT_KV_LEN : 0) +
	       w->info_len;
}

void p2pio_gguf_writer_layout(const struct p2pio_gguf_writer *w, uint64_t *data_offset,
			      uint64_t *file_size)
{
	uint64_t hdr = gw_header_len(w);
	uint64_t data = (hdr + w->alignment - 1) & ~(uint64_t)(w->alignment - 1);

	if (data_offset)
		*data_offset = data;
	if (file_size)
		*file_size = data + w->data_len;
}

const struct p2pio_error *p2pio_gguf_writer_error(const struct p2pio_gguf_writer *w)
{
	return &w->error;
}

int p2pio_gguf_writer_set_version(struct p2pio_gguf_writer *w, uint32_t version)
{
	int ret = gw_usable(w);

	if (ret)
		return ret;
	if (version != 2 && version != 3)
		return gw_fail(w, -EINVAL, "GGUF version %u cannot be written; 2 and 3 can", version);
	w->version = version;
	return 0;
}

int p2pio_gguf_writer_keep_alignment_key(struct p2pio_gguf_writer *w)
{
	int ret = gw_usable(w);

	if (ret)
		return ret;
	w->alignment_key = true;
	return 0;
}

static int gw_out_le(struct p2pio_wout *o, uint64_t v, unsigned int n)
{
	uint8_t b[8];
	unsigned int i;

	for (i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return p2pio_wout_copy(o, b, n);
}

static int gw_out_header(struct p2pio_gguf_writer *w, struct p2pio_wout *o)
{
	int ret;
	size_t i;
	uint32_t d;
	uint64_t n_kv = w->n_kv + (gw_writes_alignment(w) ? 1 : 0);

	ret = p2pio_wout_copy(o, "GGUF", 4);
	ret = ret ?: gw_out_le(o, w->version, 4);
	ret = ret ?: gw_out_le(o, w->n_tensors, 8);
	ret = ret ?: gw_out_le(o, n_kv, 8);
	ret = ret ?: p2pio_wout_copy(o, w->kv, w->kv_len);
	if (!ret && gw_writes_alignment(w)) {
		ret = gw_out_le(o, sizeof(GW_ALIGNMENT_KEY) - 1, 8);
		ret = ret ?: p2pio_wout_copy(o, GW_ALIGNMENT_KEY, sizeof(GW_ALIGNMENT_KEY) - 1);
		ret = ret ?: gw_out_le(o, P2PIO_GGUF_TYPE_UINT32, 4);
		ret = ret ?: gw_out_le(o, w->alignment, 4);
	}
	for (i = 0; !ret && i < w->n_tensors; i++) {
		const struct gw_tensor *t = &w->tensors[i];
		size_t nlen = strlen(t->name);

		ret = gw_out_le(o, nlen, 8);
		ret = ret ?: p2pio_wout_copy(o, t->name, nlen);
		ret = ret ?: gw_out_le(o, t->n_dims, 4);
		for (d = 0; !ret && d < t->n_dims; d++)
			ret = gw_out_le(o, t->ne[d], 8);
		ret = ret ?: gw_out_le(o, t->type, 4);
		ret = ret ?: gw_out_le(o, t->offset, 8);
	}
	return ret;
}

static int gw_out_tensor(struct p2pio_gguf_writer *w, struct p2pio_wout *o, const struct gw_tensor *t,
			 uint64_t data_off)
{
	uint64_t done = 0, pad;
	int ret;

	if (t->data) {
		ret = p2pio_wout_copy(o, t->data, t->size);
		if (ret)
			return ret;
	}
	while (t->fill && done < t->size) {
		uint8_t *p;
		size_t room;

		ret = p2pio_wout_space(o, &p, &room);
		if (ret)
			return ret;
		if (room > t->size - done)
			room = (size_t)(t->size - done);
		ret = t->fill(t->arg, p, room, done, data_off + t->offset + done);
		if (ret)
			return gw_fail(w, ret < 0 ? ret : -EIO,
				       "filling tensor %s at byte %llu failed: %s", t->name,
				       (unsigned long long)done, p2pio_strerror(ret));
		p2pio_wout_commit(o, room);
		done += room;
	}
	pad = ((t->size + w->alignment - 1) & ~(uint64_t)(w->alignment - 1)) - t->size;
	return p2pio_wout_copy(o, NULL, pad);
}

int p2pio_gguf_writer_finish(struct p2pio_gguf_writer *w)
{
	struct p2pio_wout o;
	uint64_t data_off, size;
	size_t i;
	int ret, ret2;

	ret = gw_usable(w);
	if (ret)
		return ret;
	if (w->depth)
		return gw_fail(w, -EINVAL, "an array is still open");
	if (gw_header_len(w) > P2PIO_GGUF_MAX_HEADER)
		return gw_fail(w, -EFBIG, "metadata and tensor infos take %llu bytes; a header may have %llu",
			       (unsigned long long)gw_header_len(w),
			       (unsigned long long)P2PIO_GGUF_MAX_HEADER);
	p2pio_gguf_writer_layout(w, &data_off, &size);
	/* From here a failure spoils the output; an error code set below is already described. */
	w->failed = true;
	w->error.code = 0;
	ret = p2pio_wout_init(&o, w->fd);
	if (ret)
		return gw_fail(w, ret, "cannot start the output: %s", p2pio_strerror(ret));
	ret = gw_out_header(w, &o);
	if (!ret)
		ret = p2pio_wout_copy(&o, NULL, data_off - o.written);
	for (i = 0; !ret && i < w->n_tensors; i++)
		ret = gw_out_tensor(w, &o, &w->tensors[i], data_off);
	ret2 = p2pio_wout_finish(&o);
	if (ret) {
		if (!w->error.code)
			gw_fail(w, ret, "writing %s failed: %s", w->path ? w->path : "the output",
				p2pio_strerror(ret));
		return ret;
	}
	if (ret2)
		return gw_fail(w, ret2, "writing %s failed: %s", w->path ? w->path : "the output",
			       p2pio_strerror(ret2));
	if (o.written != size)
		return gw_fail(w, -EIO, "wrote %llu bytes, the layout says %llu",
			       (unsigned long long)o.written, (unsigned long long)size);
	if (w->path) {
		/* Durable before visible: a crash leaves the old file or the whole new one. */
		if (fsync(w->fd))
			return gw_fail(w, -errno, "fsync of %s failed: %s", w->tmp_path, strerror(errno));
		if (rename(w->tmp_path, w->path))
			return gw_fail(w, -errno, "renaming %s to %s failed: %s", w->tmp_path, w->path,
				       strerror(errno));
		free(w->tmp_path);
		w->tmp_path = NULL;
	}
	w->failed = false;
	w->finished = true;
	return 0;
}

/* ---- construction ---------------------------------------------------------------- */

static int gw_new(struct p2pio_gguf_writer **wp, uint32_t alignment, struct p2pio_error *err)
{
	struct p2pio_gguf_writer *w;

	if (!wp)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "no writer pointer given");
	if (alignment < 1 || alignment > (1u << 30) || (alignment & (alignment - 1)))
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "alignment %u is not a power of two between 1 and 2^30",
				       alignment);
	w = calloc(1, sizeof(*w));
	if (!w)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	w->fd = -1;
	w->version = 3;
	w->alignment = alignment;
	w->error.offset = P2PIO_NO_OFFSET;
	*wp = w;
	return 0;
}

int p2pio_gguf_writer_create_fd(struct p2pio_gguf_writer **wp, int fd, uint32_t alignment,
				struct p2pio_error *err)
{
	int ret;

	if (fd < 0)
		return p2pio_set_error(err, -EBADF, P2PIO_NO_OFFSET, "invalid file descriptor %d", fd);
	ret = gw_new(wp, alignment, err);
	if (ret)
		return ret;
	(*wp)->fd = fd;
	return 0;
}

int p2pio_gguf_writer_create(struct p2pio_gguf_writer **wp, const char *path, uint32_t alignment,
			     struct p2pio_error *err)
{
	struct p2pio_gguf_writer *w;
	const char *base;
	int ret;

	if (!path || !*path)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "no output path given");
	ret = gw_new(wp, alignment, err);
	if (ret)
		return ret;
	w = *wp;
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	w->path = strdup(path);
	if (!w->path) {
		ret = p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
		goto out_free;
	}
	ret = p2pio_tmpfile_create(path, &w->tmp_path, err);
	if (ret < 0)
		goto out_free;
	w->fd = ret;
	return 0;

out_free:
	p2pio_gguf_writer_free(w);
	*wp = NULL;
	return ret;
}

void p2pio_gguf_writer_free(struct p2pio_gguf_writer *w)
{
	size_t i;

	if (!w)
		return;
	if (w->path && w->fd >= 0)
		close(w->fd);
	/* An unfinished or failed file never appears under its final name. */
	if (w->tmp_path)
		unlink(w->tmp_path);
	free(w->tmp_path);
	free(w->path);
	for (i = 0; i < w->n_tensors; i++)
		free(w->tensors[i].name);
	free(w->tensors);
	gw_set_free(&w->names, false);
	gw_set_free(&w->keys, true);
	free(w->kv);
	free(w);
}
