// SPDX-License-Identifier: MIT
/*
 * trace_file.c - the native trace file (format in p2pio/expert_trace.h): load (and
 * dispatch JSON logs to their reader), save, and the streaming writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "experts/trace.h"

static const char trace_magic[8] = { 'P', '2', 'P', 'I', 'O', 'X', 'T', '\n' };
#define TRACE_HDR 32

static uint32_t get_le32(const unsigned char *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = v >> 24;
}

static int read_whole(const char *path, char **buf, size_t *len, struct p2pio_error *err)
{
	struct stat sb;
	size_t got = 0;
	ssize_t n;
	char *b;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return p2pio_set_error(err, -errno, P2PIO_NO_OFFSET, "%s: %s", path, strerror(errno));
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > P2PIO_TRACE_MAX_FILE) {
		close(fd);
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "%s: not a regular file of at most %llu bytes", path,
				       (unsigned long long)P2PIO_TRACE_MAX_FILE);
	}
	b = malloc((size_t)sb.st_size + 1);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)sb.st_size) {
		n = read(fd, b + got, (size_t)sb.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got != (size_t)sb.st_size) {
		free(b);
		return p2pio_set_error(err, -EIO, P2PIO_NO_OFFSET, "%s: short read", path);
	}
	b[got] = '\0';
	*buf = b;
	*len = got;
	return 0;
}

/* The trace's own message about a token of file @path, said where in the file. */
static void at_token(struct p2pio_error *err, const char *path, uint64_t tok, size_t off)
{
	p2pio_error_wrap(err, "%s: token %llu: ", path, (unsigned long long)tok);
	if (err)
		err->offset = off;
}

static int parse_native(const char *path, const unsigned char *p, size_t len,
			struct p2pio_expert_trace **out, struct p2pio_error *err)
{
	struct p2pio_expert_trace_info info = { 0 };
	struct p2pio_expert_trace *t;
	uint32_t ids[P2PIO_EXPERT_TRACE_MAX_TOP_K], ver, mlen, l, i, n;
	size_t off;
	uint8_t flags;
	int ret;

	if (len < TRACE_HDR)
		return p2pio_set_error(err, -EINVAL, len, "%s: expert trace header truncated (%zu of %d bytes)",
				       path, len, TRACE_HDR);
	ver = get_le32(p + 8);
	if (ver != P2PIO_EXPERT_TRACE_VERSION)
		return p2pio_set_error(err, -EINVAL, 8, "%s: expert trace version %u (this reader knows %u)",
				       path, ver, P2PIO_EXPERT_TRACE_VERSION);
	info.nr_layers = get_le32(p + 12);
	info.nr_experts = get_le32(p + 16);
	info.top_k = get_le32(p + 20);
	mlen = get_le32(p + 24);
	if (get_le32(p + 28))
		return p2pio_set_error(err, -EINVAL, 28, "%s: expert trace reserved field is not 0", path);
	if (mlen >= P2PIO_EXPERT_TRACE_MODEL_LEN)
		return p2pio_set_error(err, -EINVAL, 24, "%s: expert trace model name of %u bytes (at most %d)",
				       path, mlen, P2PIO_EXPERT_TRACE_MODEL_LEN - 1);
	if (len < TRACE_HDR + mlen)
		return p2pio_set_error(err, -EINVAL, len, "%s: expert trace model name truncated", path);
	memcpy(info.model, p + TRACE_HDR, mlen);
	if (memchr(info.model, '\0', mlen))
		return p2pio_set_error(err, -EINVAL, TRACE_HDR, "%s: expert trace model name holds a NUL byte", path);
	/* Printable only: tools print it (as p2pio_quote() does, but never cut). */
	for (i = 0; i < mlen; i++)
		if (!p2pio_printable(info.model[i]))
			info.model[i] = '?';
	if (p2pio_trace_check_info(&info, NULL, 12))
		return p2pio_set_error(err, -EINVAL, 12,
				       "%s: expert trace shape out of limits: %u layers, %u experts, top_k %u",
				       path, info.nr_layers, info.nr_experts, info.top_k);
	ret = p2pio_expert_trace_new(&info, &t, err);
	if (ret)
		return ret;
	off = TRACE_HDR + mlen;
	while (off < len) {
		flags = p[off];
		if (flags & ~P2PIO_EXPERT_TOKEN_FLAGS) {
			ret = p2pio_set_error(err, -EINVAL, off, "%s: token %llu: unknown flags 0x%02x",
					      path, (unsigned long long)t->nr_tokens, flags);
			goto out_free;
		}
		off++;
		for (l = 0; l < info.nr_layers; l++) {
			if (off >= len) {
				ret = p2pio_set_error(err, -EINVAL, off, "%s: token %llu truncated at layer %u",
						      path, (unsigned long long)t->nr_tokens, l);
				goto out_free;
			}
			n = p[off];
			if (n > info.top_k) {
				ret = p2pio_set_error(err, -EINVAL, off, "%s: token %llu layer %u: %u experts (top_k is %u)",
						      path, (unsigned long long)t->nr_tokens, l, n, info.top_k);
				goto out_free;
			}
			if (len - off - 1 < 2 * (size_t)n) {
				ret = p2pio_set_error(err, -EINVAL, off, "%s: token %llu truncated at layer %u",
						      path, (unsigned long long)t->nr_tokens, l);
				goto out_free;
			}
			for (i = 0; i < n; i++)
				ids[i] = p[off + 1 + 2 * i] | (uint32_t)p[off + 2 + 2 * i] << 8;
			/* It checks the ids (range, repeats) and says which is wrong. */
			ret = p2pio_expert_trace_add(t, l, ids, n, err);
			if (ret) {
				at_token(err, path, t->nr_tokens, off);
				goto out_free;
			}
			off += 1 + 2 * (size_t)n;
		}
		ret = p2pio_expert_trace_end_token(t, flags, err);
		/* Dense tokens from mostly empty cells: bounded by the file's size (trace.h). */
		if (!ret && p2pio_trace_too_sparse(&info, t->nr_tokens, len)) {
			ret = p2pio_set_error(err, -E2BIG, off,
					      "%s: token %llu: %u layers x top_k %u take more than %d times the file's %zu bytes in memory: its cells are too sparse for a dense trace",
					      path, (unsigned long long)t->nr_tokens, info.nr_layers,
					      info.top_k, P2PIO_TRACE_JSON_RATIO, len);
			goto out_free;
		}
		if (ret) {
			at_token(err, path, t->nr_tokens, off);
			goto out_free;
		}
	}
	*out = t;
	return 0;

out_free:
	p2pio_expert_trace_free(t);
	return ret;
}

int p2pio_expert_trace_load(const char *path, struct p2pio_expert_trace **out,
			    struct p2pio_error *err)
{
	size_t len = 0, i;
	char *buf = NULL;
	int ret;

	*out = NULL;
	ret = read_whole(path, &buf, &len, err);
	if (ret)
		return ret;
	if (len >= sizeof(trace_magic) && !memcmp(buf, trace_magic, sizeof(trace_magic))) {
		ret = parse_native(path, (const unsigned char *)buf, len, out, err);
		goto out;
	}
	for (i = 0; i < len && p2pio_json_blank(buf[i]); i++)
		;
	if (i < len && buf[i] == '{') {
		ret = p2pio_trace_parse_json(path, buf, len, out, err);
		goto out;
	}
	ret = p2pio_set_error(err, -EINVAL, 0,
			      "%s: not an expert trace (neither the native format nor a JSON routing log)", path);
out:
	free(buf);
	return ret;
}

/* ---- writing ---- */

struct p2pio_expert_trace_writer {
	FILE *f;
	char *path;
	int error;			/* the first write error */
	int error_errno;		/* its errno from the C library, for the message */
	uint64_t error_tok;		/* the token it failed at (UINT64_MAX: the header) */
	uint64_t tokens;		/* tokens ended so far, written or not */
	struct p2pio_expert_trace *tok;	/* builds one token at a time */
};

static int write_header(FILE *f, const struct p2pio_expert_trace_info *info)
{
	unsigned char h[TRACE_HDR];
	size_t mlen = strlen(info->model);

	memcpy(h, trace_magic, sizeof(trace_magic));
	put_le32(h + 8, P2PIO_EXPERT_TRACE_VERSION);
	put_le32(h + 12, info->nr_layers);
	put_le32(h + 16, info->nr_experts);
	put_le32(h + 20, info->top_k);
	put_le32(h + 24, (uint32_t)mlen);
	put_le32(h + 28, 0);
	if (fwrite(h, sizeof(h), 1, f) != 1 || (mlen && fwrite(info->model, mlen, 1, f) != 1))
		return -EIO;
	return 0;
}

/* One token record from a trace's token @tok (or its token being built when @cur). */
static int write_token(FILE *f, const struct p2pio_expert_trace *t, uint64_t tok, bool cur,
		       uint8_t flags)
{
	size_t L = t->info.nr_layers, K = t->info.top_k, l, i;
	unsigned char rec[1 + 2 * P2PIO_EXPERT_TRACE_MAX_TOP_K];

	if (fputc(flags, f) == EOF)
		return -EIO;
	for (l = 0; l < L; l++) {
		uint8_t n = cur ? t->cur_count[l] : t->count[tok * L + l];
		const uint16_t *ids = cur ? &t->cur_ids[l * K] : &t->ids[(tok * L + l) * K];

		rec[0] = n;
		for (i = 0; i < n; i++) {
			rec[1 + 2 * i] = ids[i] & 0xff;
			rec[2 + 2 * i] = ids[i] >> 8;
		}
		if (fwrite(rec, 1 + 2 * (size_t)n, 1, f) != 1)
			return -EIO;
	}
	return 0;
}

static int close_file(FILE *f, const char *path, int ret, struct p2pio_error *err)
{
	if (fflush(f) && !ret)
		ret = -errno ? -errno : -EIO;
	if (fclose(f) && !ret)
		ret = -errno ? -errno : -EIO;
	if (ret)
		return p2pio_set_error(err, ret, P2PIO_NO_OFFSET, "%s: writing the expert trace failed: %s",
				       path, strerror(-ret));
	return 0;
}

int p2pio_expert_trace_save(const struct p2pio_expert_trace *t, const char *path,
			    struct p2pio_error *err)
{
	uint64_t i;
	FILE *f;
	int ret;

	f = fopen(path, "wbe");
	if (!f)
		return p2pio_set_error(err, -errno, P2PIO_NO_OFFSET, "%s: %s", path, strerror(errno));
	ret = write_header(f, &t->info);
	for (i = 0; !ret && i < t->nr_tokens; i++)
		ret = write_token(f, t, i, false, t->flags[i]);
	return close_file(f, path, ret, err);
}

int p2pio_expert_trace_writer_open(const char *path, const struct p2pio_expert_trace_info *info,
				   struct p2pio_expert_trace_writer **out, struct p2pio_error *err)
{
	struct p2pio_expert_trace_writer *w;
	int ret;

	*out = NULL;
	ret = p2pio_trace_check_info(info, err, P2PIO_NO_OFFSET);
	if (ret)
		return ret;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->path = strdup(path);
	ret = w->path ? p2pio_expert_trace_new(info, &w->tok, err) : -ENOMEM;
	if (ret)
		goto out_free;
	w->f = fopen(path, "wbe");
	if (!w->f) {
		ret = p2pio_set_error(err, -errno, P2PIO_NO_OFFSET, "%s: %s", path, strerror(errno));
		goto out_free;
	}
	errno = 0;
	if (write_header(w->f, info)) {
		w->error = -EIO;
		w->error_errno = errno ? errno : EIO;
		w->error_tok = UINT64_MAX;
	}
	*out = w;
	return 0;

out_free:
	p2pio_expert_trace_free(w->tok);
	free(w->path);
	free(w);
	return ret;
}

int p2pio_expert_trace_writer_add(struct p2pio_expert_trace_writer *w, uint32_t layer,
				  const uint32_t *ids, uint32_t n, struct p2pio_error *err)
{
	/* w->tok only builds the token (it never ends one): its messages name the layer and
	 * the ids, not the token. */
	return p2pio_expert_trace_add(w->tok, layer, ids, n, err);
}

int p2pio_expert_trace_writer_end_token(struct p2pio_expert_trace_writer *w, uint32_t flags,
					struct p2pio_error *err)
{
	struct p2pio_expert_trace *t = w->tok;
	uint64_t tok;
	int ret;

	ret = p2pio_trace_check_flags(flags, w->tokens, err);
	if (ret)
		return ret;
	tok = w->tokens++;
	if (!w->error) {
		errno = 0;
		if (write_token(w->f, t, 0, true, (uint8_t)flags)) {
			w->error = -EIO;
			w->error_errno = errno ? errno : EIO;
			w->error_tok = tok;
		}
	}
	memset(t->cur_count, 0, t->info.nr_layers);
	memset(t->cur_set, 0, t->info.nr_layers * sizeof(*t->cur_set));
	if (!w->error)
		return 0;
	if (w->error_tok == tok)
		return p2pio_set_error(err, w->error, P2PIO_NO_OFFSET,
				       "%s: token %llu: writing the expert trace failed: %s",
				       w->path, (unsigned long long)tok, strerror(w->error_errno));
	/* The writer records nothing after a failed write: say which one failed. */
	if (w->error_tok == UINT64_MAX)
		return p2pio_set_error(err, w->error, P2PIO_NO_OFFSET,
				       "%s: token %llu not written: writing the expert trace's header failed: %s",
				       w->path, (unsigned long long)tok, strerror(w->error_errno));
	return p2pio_set_error(err, w->error, P2PIO_NO_OFFSET,
			       "%s: token %llu not written: writing the expert trace failed at token %llu: %s",
			       w->path, (unsigned long long)tok, (unsigned long long)w->error_tok,
			       strerror(w->error_errno));
}

int p2pio_expert_trace_writer_close(struct p2pio_expert_trace_writer *w, struct p2pio_error *err)
{
	int ret;

	if (!w)
		return 0;
	ret = close_file(w->f, w->path, w->error, err);
	p2pio_expert_trace_free(w->tok);
	free(w->path);
	free(w);
	return ret;
}
