// SPDX-License-Identifier: MIT
/*
 * gguf.c - opening a GGUF file: the header, the metadata, the tensor infos and the layout
 * of the data section, each checked before it is used (Documentation/gguf.md lists the
 * rules). Accessors of the parsed file live in gguf_meta.c, gguf_tensors.c, gguf_layers.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf/reader.h"

#define GGUF_MAGIC_BE 0x47475546u	/* "GGUF" read on a big-endian machine */
#define GGUF_VERSION_MAX 3

static int gguf_parse_header(struct p2pio_gguf *g, struct gguf_cursor *c, uint64_t *n_tensors,
			     uint64_t *n_kv)
{
	struct p2pio_error *err = c->err;
	uint32_t magic, v;
	uint64_t left;
	int ret;

	ret = gguf_read_u32(c, &magic, "magic");
	if (ret)
		return ret;
	if (magic == GGUF_MAGIC_BE)
		return p2pio_set_error(err, -ENOTSUP, 0,
				       "magic at byte 0 is byte-swapped: the file is big-endian; only little-endian GGUF files are supported");
	if (magic != P2PIO_GGUF_MAGIC)
		return p2pio_set_error(err, -EINVAL, 0,
				       "not a GGUF file: magic at byte 0 is 0x%08x, expected 0x%08x (\"GGUF\")",
				       magic, P2PIO_GGUF_MAGIC);
	ret = gguf_read_u32(c, &v, "version");
	if (ret)
		return ret;
	/*
	 * Big-endian GGUF files keep the magic's byte order but swap the version: a small
	 * version read the wrong way round has its low 16 bits zero (ggml's test as well).
	 */
	if (v && !(v & 0xffff))
		return p2pio_set_error(err, -ENOTSUP, 4,
				       "version at byte 4 reads 0x%08x: the file is big-endian (version %u byte-swapped); only little-endian GGUF files are supported",
				       v, __builtin_bswap32(v));
	if (v == 1)
		return p2pio_set_error(err, -ENOTSUP, 4,
				       "GGUF version 1 at byte 4 (32-bit counts and lengths) is not supported; versions 2 and 3 are");
	if (v == 0)
		return p2pio_set_error(err, -EINVAL, 4, "GGUF version 0 at byte 4 is not valid");
	if (v > GGUF_VERSION_MAX)
		return p2pio_set_error(err, -ENOTSUP, 4,
				       "GGUF version %u at byte 4 is newer than this reader supports (2 and 3)",
				       v);
	g->version = v;

	ret = gguf_read_u64(c, n_tensors, "tensor count");
	if (!ret)
		ret = gguf_read_u64(c, n_kv, "metadata count");
	if (ret)
		return ret;
	/* Bound both counts by what the rest of the file can hold before allocating anything. */
	left = c->file_size - c->off;
	if (*n_tensors > left / GGUF_MIN_TENSOR_BYTES)
		return p2pio_set_error(err, -ERANGE, 8,
				       "tensor count %llu at byte 8: the %llu bytes after the header hold at most %llu tensor infos",
				       (unsigned long long)*n_tensors, (unsigned long long)left,
				       (unsigned long long)(left / GGUF_MIN_TENSOR_BYTES));
	left -= *n_tensors * GGUF_MIN_TENSOR_BYTES;
	if (*n_kv > left / GGUF_MIN_KV_BYTES)
		return p2pio_set_error(err, -ERANGE, 16,
				       "metadata count %llu at byte 16: the %llu bytes after the header and the tensor infos hold at most %llu pairs",
				       (unsigned long long)*n_kv, (unsigned long long)left,
				       (unsigned long long)(left / GGUF_MIN_KV_BYTES));
	return 0;
}

/* A key or tensor name must be a non-empty C string: the API hands them out as such. */
static int gguf_check_name(struct gguf_cursor *c, const struct gguf_str *s, uint64_t pos,
			   const char *what)
{
	char q[GGUF_QUOTE_MAX];
	const char *p = (const char *)c->buf + s->off;

	if (!s->len)
		return p2pio_set_error(c->err, -EINVAL, pos, "%s at byte %llu is empty", what,
				       (unsigned long long)pos);
	if (memchr(p, '\0', s->len))
		return p2pio_set_error(c->err, -EINVAL, pos, "%s '%s' at byte %llu contains a NUL byte",
				       what, gguf_quote(q, p, s->len), (unsigned long long)pos);
	return 0;
}

/*
 * The metadata key or tensor name at the cursor, checked; *@pos is where it starts and @q
 * holds it quoted, for the messages of the rest of its entry.
 */
static int gguf_read_name(struct gguf_cursor *c, struct gguf_str *s, uint64_t *pos,
			  const char *what, char q[GGUF_QUOTE_MAX])
{
	int ret;

	*pos = c->off;
	ret = gguf_read_str(c, s, what);
	if (!ret)
		ret = gguf_check_name(c, s, *pos, what);
	if (!ret)
		gguf_quote(q, (const char *)c->buf + s->off, s->len);
	return ret;
}

static int gguf_check_alignment(struct p2pio_gguf *g, struct gguf_cursor *c,
				const struct gguf_kv *kv)
{
	uint64_t a;

	if (kv->v.type != P2PIO_GGUF_TYPE_UINT32)
		return p2pio_set_error(c->err, -EINVAL, kv->pos,
				       "general.alignment at byte %llu is a %s; it must be a uint32",
				       (unsigned long long)kv->pos, p2pio_gguf_type_name(kv->v.type));
	a = c->buf[kv->v.off] | (uint32_t)c->buf[kv->v.off + 1] << 8 |
	    (uint32_t)c->buf[kv->v.off + 2] << 16 | (uint32_t)c->buf[kv->v.off + 3] << 24;
	if (!a || (a & (a - 1)))
		return p2pio_set_error(c->err, -EINVAL, kv->v.off,
				       "general.alignment at byte %llu is %llu; it must be a nonzero power of two",
				       (unsigned long long)kv->v.off, (unsigned long long)a);
	g->alignment = (uint32_t)a;
	return 0;
}

static int gguf_parse_kv(struct p2pio_gguf *g, struct gguf_cursor *c, struct gguf_kv *kv)
{
	char q[GGUF_QUOTE_MAX];
	uint64_t type_pos;
	uint32_t type;
	int ret;

	ret = gguf_read_name(c, &kv->key, &kv->pos, "metadata key", q);
	if (ret)
		return ret;
	type_pos = c->off;
	ret = gguf_read_u32(c, &type, "value type");
	if (!ret && type >= P2PIO_GGUF_TYPE_COUNT)
		ret = p2pio_set_error(c->err, -EINVAL, type_pos,
				      "value type %u at byte %llu is not a GGUF value type (0..%d)",
				      type, (unsigned long long)type_pos, P2PIO_GGUF_TYPE_COUNT - 1);
	if (!ret)
		ret = gguf_read_value(c, &kv->v, type, 0);
	if (ret) {
		p2pio_error_wrap(c->err, "metadata key '%s' at byte %llu: ", q, (unsigned long long)kv->pos);
		return ret;
	}
	if (!strcmp((const char *)c->buf + kv->key.off, "general.alignment"))
		return gguf_check_alignment(g, c, kv);
	return 0;
}

static int gguf_parse_tensor(struct p2pio_gguf *g, struct gguf_cursor *c, struct gguf_tensor *t)
{
	struct p2pio_gguf_tensor *pt = &t->t;
	char q[GGUF_QUOTE_MAX];
	uint64_t field;
	uint32_t i;
	int ret;

	ret = gguf_read_name(c, &t->name, &t->pos, "tensor name", q);
	if (ret)
		return ret;

	field = c->off;
	ret = gguf_read_u32(c, &pt->n_dims, "n_dims");
	if (!ret && (pt->n_dims < 1 || pt->n_dims > P2PIO_GGUF_MAX_DIMS))
		ret = p2pio_set_error(c->err, -EINVAL, field, "n_dims %u at byte %llu is outside 1..%d",
				      pt->n_dims, (unsigned long long)field, P2PIO_GGUF_MAX_DIMS);
	for (i = 0; !ret && i < P2PIO_GGUF_MAX_DIMS; i++) {
		pt->ne[i] = 1;
		if (i >= pt->n_dims)
			continue;
		field = c->off;
		ret = gguf_read_u64(c, &pt->ne[i], "ne");
		if (!ret && !pt->ne[i])
			ret = p2pio_set_error(c->err, -EINVAL, field, "ne[%u] at byte %llu is 0", i,
					      (unsigned long long)field);
		/* ggml holds extents in int64_t. */
		if (!ret && pt->ne[i] > INT64_MAX)
			ret = p2pio_set_error(c->err, -ERANGE, field,
					      "ne[%u] = %llu at byte %llu exceeds 2^63 - 1", i,
					      (unsigned long long)pt->ne[i], (unsigned long long)field);
	}
	if (!ret) {
		field = c->off;
		ret = gguf_read_u32(c, &pt->type, "ggml type");
	}
	/* The shape and the type are only known together; blame the type field for both. */
	if (!ret)
		ret = p2pio_ggml_tensor_size(pt->type, pt->n_dims, pt->ne, &pt->size, c->err);
	if (ret && c->err && c->err->offset == P2PIO_NO_OFFSET) {
		c->err->offset = field;
		p2pio_error_wrap(c->err, "type field at byte %llu: ", (unsigned long long)field);
	}
	if (!ret) {
		t->offset_pos = c->off;
		ret = gguf_read_u64(c, &pt->offset, "tensor offset");
	}
	if (!ret && pt->offset % g->alignment)
		ret = p2pio_set_error(c->err, -EINVAL, t->offset_pos,
				      "offset %llu at byte %llu is not a multiple of the alignment %u",
				      (unsigned long long)pt->offset, (unsigned long long)t->offset_pos,
				      g->alignment);
	if (ret)
		p2pio_error_wrap(c->err, "tensor '%s' at byte %llu: ", q, (unsigned long long)t->pos);
	return ret;
}

static int gguf_parse(struct p2pio_gguf *g, struct gguf_cursor *c)
{
	uint64_t n_tensors, n_kv, i;
	uint64_t cap = 0;
	int ret;

	ret = gguf_parse_header(g, c, &n_tensors, &n_kv);
	if (ret)
		return ret;
	for (i = 0; i < n_kv; i++) {
		if (gguf_grow((void **)&g->kvs, &cap, i, sizeof(*g->kvs)))
			return p2pio_set_error(c->err, -ENOMEM, c->off, "out of memory for metadata");
		g->kvs[i] = (struct gguf_kv){ 0 };
		g->n_kv = i + 1;
		ret = gguf_parse_kv(g, c, &g->kvs[i]);
		if (ret)
			return ret;
	}
	cap = 0;
	for (i = 0; i < n_tensors; i++) {
		if (gguf_grow((void **)&g->tensors, &cap, i, sizeof(*g->tensors)))
			return p2pio_set_error(c->err, -ENOMEM, c->off, "out of memory for tensor infos");
		g->tensors[i] = (struct gguf_tensor){ 0 };
		g->n_tensors = i + 1;
		ret = gguf_parse_tensor(g, c, &g->tensors[i]);
		if (ret)
			return ret;
	}
	return 0;
}

/* The header buffer is final: turn offsets into pointers, and index keys and names. */
static int gguf_index(struct p2pio_gguf *g, struct p2pio_error *err)
{
	char q[GGUF_QUOTE_MAX];
	size_t i, dup;
	int ret;

	g->kv_names = calloc(g->n_kv + 1, sizeof(*g->kv_names));
	g->tensor_names = calloc(g->n_tensors + 1, sizeof(*g->tensor_names));
	if (!g->kv_names || !g->tensor_names)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory for the name index");
	for (i = 0; i < g->n_kv; i++) {
		g->kvs[i].name = (const char *)g->hdr + g->kvs[i].key.off;
		g->kv_names[i] = g->kvs[i].name;
		gguf_value_fixup(&g->kvs[i].v, g->hdr);
	}
	for (i = 0; i < g->n_tensors; i++) {
		g->tensors[i].t.name = (const char *)g->hdr + g->tensors[i].name.off;
		g->tensor_names[i] = g->tensors[i].t.name;
	}
	ret = gguf_hash_build(&g->kv_hash, g->kv_names, g->n_kv, &dup);
	if (ret == -EEXIST)
		return p2pio_set_error(err, ret, g->kvs[dup].pos,
				       "metadata key '%s' at byte %llu appears twice",
				       gguf_quote(q, g->kv_names[dup], g->kvs[dup].key.len),
				       (unsigned long long)g->kvs[dup].pos);
	if (!ret)
		ret = gguf_hash_build(&g->tensor_hash, g->tensor_names, g->n_tensors, &dup);
	if (ret == -EEXIST)
		return p2pio_set_error(err, ret, g->tensors[dup].pos,
				       "tensor name '%s' at byte %llu appears twice",
				       gguf_quote(q, g->tensor_names[dup], g->tensors[dup].name.len),
				       (unsigned long long)g->tensors[dup].pos);
	if (ret)
		return p2pio_set_error(err, ret, P2PIO_NO_OFFSET, "out of memory for the name index");
	return 0;
}

static int gguf_cmp_offset(const void *a, const void *b, void *arg)
{
	const struct p2pio_gguf *g = arg;
	uint64_t x = g->tensors[*(const size_t *)a].t.offset;
	uint64_t y = g->tensors[*(const size_t *)b].t.offset;

	if (x != y)
		return x < y ? -1 : 1;
	return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

/* Every tensor inside the data section, and no two overlapping. */
static int gguf_layout(struct p2pio_gguf *g, uint64_t header_end, struct p2pio_error *err)
{
	char q[GGUF_QUOTE_MAX], q2[GGUF_QUOTE_MAX];
	const struct gguf_tensor *t, *prev;
	uint64_t end;
	size_t i;

	/* header_end < 2^28 and alignment <= 2^31: no overflow. */
	g->data_offset = (header_end + g->alignment - 1) & ~((uint64_t)g->alignment - 1);
	g->data_size = g->file_size > g->data_offset ? g->file_size - g->data_offset : 0;
	for (i = 0; i < g->n_tensors; i++) {
		t = &g->tensors[i];
		if (p2pio_add_overflow(t->t.offset, t->t.size, &end) || end > g->data_size)
			return p2pio_set_error(err, -ERANGE, t->offset_pos,
					       "tensor '%s' at byte %llu: offset %llu + size %llu overflows the data section (%llu bytes from byte %llu to the end of the file at %llu)",
					       gguf_quote(q, t->t.name, t->name.len),
					       (unsigned long long)t->offset_pos,
					       (unsigned long long)t->t.offset,
					       (unsigned long long)t->t.size,
					       (unsigned long long)g->data_size,
					       (unsigned long long)g->data_offset,
					       (unsigned long long)g->file_size);
		g->tensors[i].t.file_offset = g->data_offset + t->t.offset;
	}

	g->by_offset = malloc((g->n_tensors + 1) * sizeof(*g->by_offset));
	if (!g->by_offset)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	for (i = 0; i < g->n_tensors; i++)
		g->by_offset[i] = i;
	qsort_r(g->by_offset, g->n_tensors, sizeof(*g->by_offset), gguf_cmp_offset, g);
	for (i = 1; i < g->n_tensors; i++) {
		prev = &g->tensors[g->by_offset[i - 1]];
		t = &g->tensors[g->by_offset[i]];
		if (t->t.offset < prev->t.offset + prev->t.size)
			return p2pio_set_error(err, -EINVAL, t->offset_pos,
					       "tensor '%s' at byte %llu: data [%llu, %llu) overlaps tensor '%s' [%llu, %llu) (offsets in the data section)",
					       gguf_quote(q, t->t.name, t->name.len),
					       (unsigned long long)t->offset_pos,
					       (unsigned long long)t->t.offset,
					       (unsigned long long)(t->t.offset + t->t.size),
					       gguf_quote(q2, prev->t.name, prev->name.len),
					       (unsigned long long)prev->t.offset,
					       (unsigned long long)(prev->t.offset + prev->t.size));
	}
	return 0;
}

static int gguf_load(struct p2pio_gguf *g, struct p2pio_error *err)
{
	struct gguf_cursor c = { .fd = g->fd, .err = err };
	struct stat st;
	unsigned char *hdr;
	int ret;

	if (fstat(g->fd, &st))
		return p2pio_set_error(err, -errno, P2PIO_NO_OFFSET, "fstat: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "not a regular file");
	g->file_size = (uint64_t)st.st_size;
	g->alignment = P2PIO_GGUF_DEFAULT_ALIGNMENT;
	c.file_size = g->file_size;
	c.limit = g->file_size < P2PIO_GGUF_MAX_HEADER ? g->file_size : P2PIO_GGUF_MAX_HEADER;

	ret = gguf_parse(g, &c);
	/* Keep only the header: the read-ahead past it is not needed any more. */
	hdr = c.buf && c.off ? realloc(c.buf, c.off) : NULL;
	g->hdr = hdr ? hdr : c.buf;
	g->hdr_len = c.off;
	if (ret)
		return ret;
	ret = gguf_index(g, err);
	if (!ret)
		ret = gguf_layout(g, c.off, err);
	if (!ret)
		ret = gguf_group(g, err);
	return ret;
}

static int gguf_open_owned(int fd, struct p2pio_gguf **out, struct p2pio_error *err)
{
	struct p2pio_gguf *g;
	int ret;

	g = calloc(1, sizeof(*g));
	if (!g) {
		close(fd);
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	}
	g->fd = fd;
	ret = gguf_load(g, err);
	if (ret) {
		p2pio_gguf_close(g);
		return ret;
	}
	*out = g;
	return 0;
}

int p2pio_gguf_open(const char *path, struct p2pio_gguf **out, struct p2pio_error *err)
{
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return p2pio_set_error(err, -errno, P2PIO_NO_OFFSET, "%s: %s", path, strerror(errno));
	ret = gguf_open_owned(fd, out, err);
	if (ret)
		p2pio_error_wrap(err, "%s: ", path);
	return ret;
}

int p2pio_gguf_open_fd(int fd, struct p2pio_gguf **out, struct p2pio_error *err)
{
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	if (dfd < 0)
		return p2pio_set_error(err, -errno, P2PIO_NO_OFFSET, "duplicating fd %d: %s", fd,
				       strerror(errno));
	return gguf_open_owned(dfd, out, err);
}

void p2pio_gguf_close(struct p2pio_gguf *g)
{
	size_t i;

	if (!g)
		return;
	if (g->map)
		munmap(g->map, g->file_size);
	gguf_group_free(g);
	free(g->by_offset);
	gguf_hash_free(&g->tensor_hash);
	gguf_hash_free(&g->kv_hash);
	free(g->tensor_names);
	free(g->tensors);
	free(g->kv_names);
	for (i = 0; i < g->n_kv; i++)
		gguf_value_free(&g->kvs[i].v);
	free(g->kvs);
	free(g->hdr);
	close(g->fd);
	free(g);
}

uint32_t p2pio_gguf_version(const struct p2pio_gguf *g)
{
	return g->version;
}

uint32_t p2pio_gguf_alignment(const struct p2pio_gguf *g)
{
	return g->alignment;
}

uint64_t p2pio_gguf_data_offset(const struct p2pio_gguf *g)
{
	return g->data_offset;
}

uint64_t p2pio_gguf_data_size(const struct p2pio_gguf *g)
{
	return g->data_size;
}

uint64_t p2pio_gguf_file_size(const struct p2pio_gguf *g)
{
	return g->file_size;
}

int p2pio_gguf_fd(const struct p2pio_gguf *g)
{
	return g->fd;
}
