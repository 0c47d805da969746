// SPDX-License-Identifier: MIT
/*
 * gguf_cursor.c - reading the header of an untrusted file through a bounds-checked cursor.
 *
 * Every read asks gguf_need() first, which checks the request against the bytes left in the
 * file (and against P2PIO_GGUF_MAX_HEADER) before anything is allocated or copied, then
 * pulls the file into the header buffer with pread(), never more than GGUF_READAHEAD bytes
 * past what was asked, so the tensor data are not read at open.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/reader.h"

#define GGUF_READAHEAD (64u << 10)

uint64_t gguf_left(const struct gguf_cursor *c)
{
	return c->off < c->limit ? c->limit - c->off : 0;
}

static int gguf_fill(struct gguf_cursor *c, uint64_t want)
{
	uint64_t end = want;
	ssize_t r;

	if (end - c->len < GGUF_READAHEAD)
		end = c->len + GGUF_READAHEAD;
	if (end > c->limit)
		end = c->limit;
	if (end > c->cap) {
		uint64_t cap = c->cap ? c->cap : GGUF_READAHEAD;
		unsigned char *p;

		while (cap < end)
			cap *= 2;
		if (cap > c->limit)
			cap = c->limit;
		p = realloc(c->buf, cap);
		if (!p)
			return p2pio_set_error(c->err, -ENOMEM, c->off,
					       "out of memory for a %llu-byte header buffer",
					       (unsigned long long)cap);
		c->buf = p;
		c->cap = cap;
	}
	while (c->len < end) {
		r = pread(c->fd, c->buf + c->len, end - c->len, (off_t)c->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return p2pio_set_error(c->err, -errno, c->len, "reading byte %llu: %s",
					       (unsigned long long)c->len, strerror(errno));
		if (r == 0)
			break;
		c->len += (uint64_t)r;
	}
	if (c->len < want)
		return p2pio_set_error(c->err, -ENODATA, c->len,
				       "the file ends at byte %llu, but it had %llu bytes when opened",
				       (unsigned long long)c->len, (unsigned long long)c->file_size);
	return 0;
}

int gguf_need(struct gguf_cursor *c, uint64_t n, const char *what)
{
	if (n > c->file_size - c->off)
		return p2pio_set_error(c->err, -ENODATA, c->off,
				       "the file ends inside the %s at byte %llu (%llu bytes needed, %llu left)",
				       what, (unsigned long long)c->off, (unsigned long long)n,
				       (unsigned long long)(c->file_size - c->off));
	if (n > gguf_left(c))
		return p2pio_set_error(c->err, -EFBIG, c->off,
				       "the %s at byte %llu (%llu bytes) takes the header past the %llu-byte limit",
				       what, (unsigned long long)c->off, (unsigned long long)n,
				       (unsigned long long)P2PIO_GGUF_MAX_HEADER);
	if (c->off + n > c->len)
		return gguf_fill(c, c->off + n);
	return 0;
}

static uint64_t gguf_le(const unsigned char *p, unsigned int n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

int gguf_read_u32(struct gguf_cursor *c, uint32_t *v, const char *what)
{
	int ret = gguf_need(c, 4, what);

	if (ret)
		return ret;
	*v = (uint32_t)gguf_le(c->buf + c->off, 4);
	c->off += 4;
	return 0;
}

int gguf_read_u64(struct gguf_cursor *c, uint64_t *v, const char *what)
{
	int ret = gguf_need(c, 8, what);

	if (ret)
		return ret;
	*v = gguf_le(c->buf + c->off, 8);
	c->off += 8;
	return 0;
}

/*
 * A string is its uint64 length and its bytes. Once the length is read, its 8 bytes are of
 * no further use, so the bytes move down over them and a NUL goes after: the string becomes
 * a C string in place, with no allocation, at s->off = (position of the length).
 */
int gguf_read_str(struct gguf_cursor *c, struct gguf_str *s, const char *what)
{
	uint64_t pos = c->off, len;
	int ret;

	ret = gguf_read_u64(c, &len, what);
	if (ret)
		return ret;
	if (len > c->file_size - c->off)
		return p2pio_set_error(c->err, -ERANGE, pos,
				       "the %s length %llu at byte %llu exceeds the %llu bytes left in the file",
				       what, (unsigned long long)len, (unsigned long long)pos,
				       (unsigned long long)(c->file_size - c->off));
	ret = gguf_need(c, len, what);
	if (ret)
		return ret;
	memmove(c->buf + pos, c->buf + c->off, len);
	c->buf[pos + len] = '\0';
	s->off = pos;
	s->len = len;
	c->off += len;
	return 0;
}
