// SPDX-License-Identifier: MIT
/* gguf_build.c - byte-exact GGUF images for the reader's tests (see gguf_build.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gguf_build.h"

void gb_init(struct gguf_build *b)
{
	memset(b, 0, sizeof(*b));
}

void gb_free(struct gguf_build *b)
{
	free(b->p);
	gb_init(b);
}

void gb_bytes(struct gguf_build *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p) {
			fprintf(stderr, "gguf_build: out of memory\n");
			abort();
		}
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void gb_le(struct gguf_build *b, uint64_t v, unsigned int n)
{
	unsigned char c[8];
	unsigned int i;

	for (i = 0; i < n; i++)
		c[i] = (unsigned char)(v >> (8 * i));
	gb_bytes(b, c, n);
}

void gb_u8(struct gguf_build *b, uint8_t v)
{
	gb_le(b, v, 1);
}

void gb_u16(struct gguf_build *b, uint16_t v)
{
	gb_le(b, v, 2);
}

void gb_u32(struct gguf_build *b, uint32_t v)
{
	gb_le(b, v, 4);
}

void gb_u64(struct gguf_build *b, uint64_t v)
{
	gb_le(b, v, 8);
}

void gb_strn(struct gguf_build *b, const void *s, size_t n)
{
	gb_u64(b, n);
	gb_bytes(b, s, n);
}

void gb_str(struct gguf_build *b, const char *s)
{
	gb_strn(b, s, strlen(s));
}

void gb_pad(struct gguf_build *b, uint64_t align)
{
	while (b->len % align)
		gb_u8(b, 0);
}

void gb_put_u32(struct gguf_build *b, size_t at, uint32_t v)
{
	unsigned int i;

	for (i = 0; i < 4; i++)
		b->p[at + i] = (unsigned char)(v >> (8 * i));
}

void gb_put_u64(struct gguf_build *b, size_t at, uint64_t v)
{
	unsigned int i;

	for (i = 0; i < 8; i++)
		b->p[at + i] = (unsigned char)(v >> (8 * i));
}

void gb_header(struct gguf_build *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
	gb_bytes(b, "GGUF", 4);
	gb_u32(b, version);
	gb_u64(b, n_tensors);
	gb_u64(b, n_kv);
}

void gb_key(struct gguf_build *b, const char *key, uint32_t type)
{
	gb_str(b, key);
	gb_u32(b, type);
}

void gb_kv_u32(struct gguf_build *b, const char *key, uint32_t v)
{
	gb_key(b, key, P2PIO_GGUF_TYPE_UINT32);
	gb_u32(b, v);
}

void gb_kv_str(struct gguf_build *b, const char *key, const char *s)
{
	gb_key(b, key, P2PIO_GGUF_TYPE_STRING);
	gb_str(b, s);
}

void gb_tensor_info(struct gguf_build *b, const char *name, uint32_t n_dims, const uint64_t *ne,
		    uint32_t type, uint64_t offset)
{
	uint32_t i;

	gb_str(b, name);
	gb_u32(b, n_dims);
	for (i = 0; i < n_dims; i++)
		gb_u64(b, ne[i]);
	gb_u32(b, type);
	gb_u64(b, offset);
}

uint8_t gb_pattern(uint64_t off)
{
	uint64_t x = off * 0x9e3779b97f4a7c15ull;

	return (uint8_t)(x >> 56);
}

size_t gb_model(struct gguf_build *b, uint32_t version, uint32_t alignment,
		struct gb_tensor *t, size_t n)
{
	uint64_t align = alignment ? alignment : P2PIO_GGUF_DEFAULT_ALIGNMENT, off = 0, end;
	size_t i, data;

	gb_header(b, version, n, alignment ? 2 : 1);
	gb_kv_str(b, "general.architecture", "test");
	if (alignment)
		gb_kv_u32(b, "general.alignment", alignment);
	for (i = 0; i < n; i++) {
		if (p2pio_ggml_tensor_size(t[i].type, t[i].n_dims, t[i].ne, &t[i].size, NULL)) {
			fprintf(stderr, "gb_model: tensor %s has a bad shape\n", t[i].name);
			abort();
		}
		t[i].offset = off;
		t[i].info_pos = b->len;
		gb_tensor_info(b, t[i].name, t[i].n_dims, t[i].ne, t[i].type, off);
		off = (off + t[i].size + align - 1) / align * align;
	}
	gb_pad(b, align);
	data = b->len;
	end = data + (n ? t[n - 1].offset + t[n - 1].size : 0);
	while (b->len < end)
		gb_u8(b, gb_pattern(b->len));
	return data;
}

int gb_memfd(const struct gguf_build *b)
{
	size_t done = 0;
	ssize_t r;
	int fd = memfd_create("gguf-test", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	while (done < b->len) {
		r = write(fd, b->p + done, b->len - done);
		if (r <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)r;
	}
	return fd;
}

int gb_tmpfile(const struct gguf_build *b, char *path)
{
	const char *dir = getenv("TMPDIR");
	size_t done = 0;
	ssize_t r;
	int fd;

	snprintf(path, 64, "%.40s/gguf-test-XXXXXX", dir ? dir : "/tmp");
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	while (done < b->len) {
		r = write(fd, b->p + done, b->len - done);
		if (r <= 0) {
			close(fd);
			unlink(path);
			return -EIO;
		}
		done += (size_t)r;
	}
	close(fd);
	return 0;
}

int gb_open_prefix(const struct gguf_build *b, size_t len, struct p2pio_gguf **g,
		   struct p2pio_error *err)
{
	struct gguf_build part = { .p = b->p, .len = len, .cap = len };
	int fd, ret;

	if (err)
		memset(err, 0, sizeof(*err));
	fd = gb_memfd(&part);
	if (fd < 0)
		return -EBADF;
	ret = p2pio_gguf_open_fd(fd, g, err);
	close(fd);
	return ret;
}

int gb_open(const struct gguf_build *b, struct p2pio_gguf **g, struct p2pio_error *err)
{
	return gb_open_prefix(b, b->len, g, err);
}
