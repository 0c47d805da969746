// SPDX-License-Identifier: MIT
/*
 * gguf_repack.c - copy a GGUF model with every tensor aligned to N bytes, and prove the copy.
 *
 * The input is read with the reader (so a hostile file is refused before anything is
 * written) and its tensors are read with pread() into the writer's buffers by a fill
 * callback. The copy goes to a temporary file beside the output, is fsynced, reopened with
 * the reader and compared with the input value by value and, with pread() again, byte by
 * byte; only then is it renamed onto the output: a failure at any step leaves the output
 * path as it was.
 *
 * Neither step reads tensor data through the reader's mapping: the input is not ours, and
 * if someone truncates it while we read, a mapping raises SIGBUS where pread() comes up
 * short; a short read is reported as the input having shrunk, naming the tensor.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf/repack.h"
#include "gguf/writer.h"
#include "internal.h"

/* Numeric arrays are copied as the packed little-endian bytes the reader hands out. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf_repack.c copies little-endian array data as host values"
#endif

#define REPACK_ALIGNMENT_KEY "general.alignment"

/* The verification compares input and copy in chunks of this many bytes. */
#define REPACK_CHUNK (4u << 20)

/* Room for a tensor name, which the writer limits to 63 bytes, in a message. */
#define REPACK_QUOTE_MAX 72

/* @s (a name or key from the file: untrusted) quoted, printable only, for a message. */
static const char *rp_q(char buf[REPACK_QUOTE_MAX], const char *s)
{
	return p2pio_quote(buf, REPACK_QUOTE_MAX, s, strlen(s));
}

/*
 * pread() @len bytes at @off of tensor @t's file @fd (the input's, or the copy's if not
 * @input) into @buf, over short reads and EINTR; @when names the step in messages. The
 * reader checked every tensor against the file's size, so a file that now ends first was
 * truncated by someone else: -ENODATA for the input (not ours: an error, not a failed
 * verification) and -EIO for the copy (which then did not verify).
 */
static int rp_read(int fd, bool input, const char *when, const struct p2pio_gguf_tensor *t,
		   void *buf, size_t len, uint64_t off, struct p2pio_error *err)
{
	const char *whose = input ? "the input" : "the copy";
	char q[REPACK_QUOTE_MAX];
	unsigned char *p = buf;
	struct stat st;
	uint64_t end;
	ssize_t r;
	int e;

	while (len) {
		r = pread(fd, p, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = errno;
			return p2pio_set_error(err, -e, off,
					       "reading tensor %s at byte %llu of %s failed: %s",
					       rp_q(q, t->name),
					       (unsigned long long)off, whose, strerror(e));
		}
		if (!r) {
			/* The read only says the file ends at or before @off. */
			end = off;
			if (!fstat(fd, &st) && (uint64_t)st.st_size < off)
				end = (uint64_t)st.st_size;
			return p2pio_set_error(err, input ? -ENODATA : -EIO, end,
					       "%s shrank %s: tensor %s needs %llu bytes at byte %llu, but the file now ends at byte %llu",
					       whose, when,
					       rp_q(q, t->name),
					       (unsigned long long)t->size,
					       (unsigned long long)t->file_offset,
					       (unsigned long long)end);
		}
		p += r;
		off += (uint64_t)r;
		len -= (size_t)r;
	}
	return 0;
}

static bool rp_is_signed(uint32_t t)
{
	return t == P2PIO_GGUF_TYPE_INT8 || t == P2PIO_GGUF_TYPE_INT16 ||
	       t == P2PIO_GGUF_TYPE_INT32 || t == P2PIO_GGUF_TYPE_INT64;
}

static bool rp_is_unsigned(uint32_t t)
{
	return t == P2PIO_GGUF_TYPE_UINT8 || t == P2PIO_GGUF_TYPE_UINT16 ||
	       t == P2PIO_GGUF_TYPE_UINT32 || t == P2PIO_GGUF_TYPE_UINT64;
}

/* Add scalar @v (of a reader) to @w under @key (NULL inside an array). */
static int rp_copy_scalar(struct p2pio_gguf_writer *w, const char *key,
			  const struct p2pio_gguf_value *v)
{
	uint32_t t = p2pio_gguf_value_type(v);
	const char *s;
	uint64_t u = 0;
	int64_t i = 0;
	double d = 0;
	bool b = false;
	size_t len;
	int ret;

	if (t == P2PIO_GGUF_TYPE_STRING) {
		ret = p2pio_gguf_value_string(v, &s, &len);
		return ret ?: p2pio_gguf_writer_add_str_n(w, key, s, len);
	}
	if (rp_is_unsigned(t)) {
		ret = p2pio_gguf_value_u64(v, &u);
		if (ret)
			return ret;
		switch (t) {
		case P2PIO_GGUF_TYPE_UINT8: { uint8_t x = (uint8_t)u; return p2pio_gguf_writer_add(w, key, t, &x); }
		case P2PIO_GGUF_TYPE_UINT16: { uint16_t x = (uint16_t)u; return p2pio_gguf_writer_add(w, key, t, &x); }
		case P2PIO_GGUF_TYPE_UINT32: { uint32_t x = (uint32_t)u; return p2pio_gguf_writer_add(w, key, t, &x); }
		default: return p2pio_gguf_writer_add(w, key, t, &u);
		}
	}
	if (rp_is_signed(t)) {
		ret = p2pio_gguf_value_i64(v, &i);
		if (ret)
			return ret;
		switch (t) {
		case P2PIO_GGUF_TYPE_INT8: { int8_t x = (int8_t)i; return p2pio_gguf_writer_add(w, key, t, &x); }
		case P2PIO_GGUF_TYPE_INT16: { int16_t x = (int16_t)i; return p2pio_gguf_writer_add(w, key, t, &x); }
		case P2PIO_GGUF_TYPE_INT32: { int32_t x = (int32_t)i; return p2pio_gguf_writer_add(w, key, t, &x); }
		default: return p2pio_gguf_writer_add(w, key, t, &i);
		}
	}
	if (t == P2PIO_GGUF_TYPE_FLOAT32 || t == P2PIO_GGUF_TYPE_FLOAT64) {
		ret = p2pio_gguf_value_f64(v, &d);
		if (ret)
			return ret;
		/* float -> double -> float is exact, NaN payloads aside. */
		if (t == P2PIO_GGUF_TYPE_FLOAT32)
			return p2pio_gguf_writer_add_f32(w, key, (float)d);
		return p2pio_gguf_writer_add(w, key, t, &d);
	}
	if (t == P2PIO_GGUF_TYPE_BOOL) {
		ret = p2pio_gguf_value_bool(v, &b);
		return ret ?: p2pio_gguf_writer_add_bool(w, key, b);
	}
	return -EINVAL;
}

/* Add value @v, of any type, arrays of arrays included. */
static int rp_copy_value(struct p2pio_gguf_writer *w, const char *key,
			 const struct p2pio_gguf_value *v)
{
	uint64_t n, i;
	const char *s;
	size_t len;
	bool b;
	int t, ret;

	if (p2pio_gguf_value_type(v) != P2PIO_GGUF_TYPE_ARRAY)
		return rp_copy_scalar(w, key, v);
	t = p2pio_gguf_array_type(v);
	if (t < 0)
		return t;
	n = p2pio_gguf_array_len(v);
	if (t != P2PIO_GGUF_TYPE_STRING && t != P2PIO_GGUF_TYPE_ARRAY && t != P2PIO_GGUF_TYPE_BOOL)
		return p2pio_gguf_writer_add_array(w, key, (uint32_t)t,
						   n ? p2pio_gguf_array_data(v, NULL) : NULL, n);
	ret = p2pio_gguf_writer_begin_array(w, key, (uint32_t)t, n);
	for (i = 0; !ret && i < n; i++) {
		const struct p2pio_gguf_value *sub;

		switch (t) {
		case P2PIO_GGUF_TYPE_STRING:
			ret = p2pio_gguf_array_string(v, i, &s, &len);
			ret = ret ?: p2pio_gguf_writer_add_str_n(w, NULL, s, len);
			break;
		case P2PIO_GGUF_TYPE_BOOL:
			/* The reader takes any non-zero byte as true; the writer stores 1. */
			ret = p2pio_gguf_array_bool(v, i, &b);
			ret = ret ?: p2pio_gguf_writer_add_bool(w, NULL, b);
			break;
		default:
			ret = p2pio_gguf_array_array(v, i, &sub);
			ret = ret ?: rp_copy_value(w, NULL, sub);
			break;
		}
	}
	return ret ?: p2pio_gguf_writer_end_array(w);
}

/* The input as rp_fill() reads it, and what went wrong there: the writer only says it failed. */
struct rp_in {
	int fd;
	struct p2pio_error err;
};

/* One tensor of the input, the arg of its fill. */
struct rp_src {
	struct rp_in *in;
	const struct p2pio_gguf_tensor *t;
};

static int rp_fill(void *arg, void *buf, size_t len, uint64_t tensor_off, uint64_t file_off)
{
	struct rp_src *s = arg;

	return rp_read(s->in->fd, true, "while being copied", s->t, buf, len,
		       s->t->file_offset + tensor_off, &s->in->err);
}

static int rp_copy(struct p2pio_gguf *g, struct p2pio_gguf_writer *w, struct p2pio_error *err)
{
	struct rp_in in = { .fd = p2pio_gguf_fd(g) };
	char q[REPACK_QUOTE_MAX];
	struct rp_src *src;
	size_t i, n;
	int ret;

	ret = p2pio_gguf_writer_set_version(w, p2pio_gguf_version(g));
	if (ret)
		goto out_writer;
	n = p2pio_gguf_kv_count(g);
	for (i = 0; i < n; i++) {
		const char *key = p2pio_gguf_kv_key(g, i);

		/* The writer writes general.alignment itself, with the new value. */
		if (!strcmp(key, REPACK_ALIGNMENT_KEY)) {
			ret = p2pio_gguf_writer_keep_alignment_key(w);
		} else {
			ret = rp_copy_value(w, key, p2pio_gguf_kv_value(g, i));
			if (ret && !p2pio_gguf_writer_error(w)->msg[0])
				return p2pio_set_error(err, ret, P2PIO_NO_OFFSET,
						       "cannot read metadata %s: %s", rp_q(q, key),
						       p2pio_strerror(ret));
		}
		if (ret)
			goto out_writer;
	}
	n = p2pio_gguf_tensor_count(g);
	/* The fills run in p2pio_gguf_writer_finish(): their args live until then. */
	src = calloc(n ?: 1, sizeof(*src));
	if (!src)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	for (i = 0; i < n; i++) {
		const struct p2pio_gguf_tensor *t = p2pio_gguf_tensor(g, i);
		struct p2pio_gguf_new_tensor nt;

		src[i].in = &in;
		src[i].t = t;
		memset(&nt, 0, sizeof(nt));
		nt.name = t->name;
		nt.type = t->type;
		nt.n_dims = t->n_dims;
		memcpy(nt.ne, t->ne, sizeof(nt.ne));
		nt.fill = rp_fill;
		nt.arg = &src[i];
		ret = p2pio_gguf_writer_add_tensor(w, &nt);
		if (ret)
			break;
	}
	ret = ret ?: p2pio_gguf_writer_finish(w);
	free(src);
	if (!ret)
		return 0;
	/* A fill that failed said what happened to the input; the writer only that it failed. */
	if (in.err.code) {
		if (err)
			*err = in.err;
		return in.err.code;
	}

out_writer:
	return p2pio_set_error(err, ret, P2PIO_NO_OFFSET, "%s", p2pio_gguf_writer_error(w)->msg);
}

/* ---- verification ------------------------------------------------------------------ */

static bool rp_value_equal(const struct p2pio_gguf_value *a, const struct p2pio_gguf_value *b);

static bool rp_scalar_equal(const struct p2pio_gguf_value *a, const struct p2pio_gguf_value *b)
{
	uint32_t t = p2pio_gguf_value_type(a);
	const char *sa, *sb;
	size_t la, lb;
	uint64_t ua, ub;
	int64_t ia, ib;
	double da, db;
	bool ba, bb;

	if (t != p2pio_gguf_value_type(b))
		return false;
	if (t == P2PIO_GGUF_TYPE_STRING)
		return !p2pio_gguf_value_string(a, &sa, &la) && !p2pio_gguf_value_string(b, &sb, &lb) &&
		       la == lb && !memcmp(sa, sb, la);
	if (rp_is_unsigned(t))
		return !p2pio_gguf_value_u64(a, &ua) && !p2pio_gguf_value_u64(b, &ub) && ua == ub;
	if (rp_is_signed(t))
		return !p2pio_gguf_value_i64(a, &ia) && !p2pio_gguf_value_i64(b, &ib) && ia == ib;
	if (t == P2PIO_GGUF_TYPE_FLOAT32 || t == P2PIO_GGUF_TYPE_FLOAT64)
		/* Bitwise, so that NaNs compare equal to themselves. */
		return !p2pio_gguf_value_f64(a, &da) && !p2pio_gguf_value_f64(b, &db) &&
		       !memcmp(&da, &db, sizeof(da));
	if (t == P2PIO_GGUF_TYPE_BOOL)
		return !p2pio_gguf_value_bool(a, &ba) && !p2pio_gguf_value_bool(b, &bb) && ba == bb;
	return t == P2PIO_GGUF_TYPE_ARRAY && rp_value_equal(a, b);
}

static bool rp_value_equal(const struct p2pio_gguf_value *a, const struct p2pio_gguf_value *b)
{
	const struct p2pio_gguf_value *xa, *xb;
	const char *sa, *sb;
	size_t la, lb, esize;
	uint64_t n, i;
	bool ba, bb;
	int t;

	if (p2pio_gguf_value_type(a) != P2PIO_GGUF_TYPE_ARRAY ||
	    p2pio_gguf_value_type(b) != P2PIO_GGUF_TYPE_ARRAY)
		return rp_scalar_equal(a, b);
	t = p2pio_gguf_array_type(a);
	n = p2pio_gguf_array_len(a);
	if (t < 0 || t != p2pio_gguf_array_type(b) || n != p2pio_gguf_array_len(b))
		return false;
	for (i = 0; i < n; i++) {
		switch (t) {
		case P2PIO_GGUF_TYPE_STRING:
			if (p2pio_gguf_array_string(a, i, &sa, &la) ||
			    p2pio_gguf_array_string(b, i, &sb, &lb) || la != lb || memcmp(sa, sb, la))
				return false;
			break;
		case P2PIO_GGUF_TYPE_ARRAY:
			if (p2pio_gguf_array_array(a, i, &xa) || p2pio_gguf_array_array(b, i, &xb) ||
			    !rp_value_equal(xa, xb))
				return false;
			break;
		case P2PIO_GGUF_TYPE_BOOL:
			if (p2pio_gguf_array_bool(a, i, &ba) || p2pio_gguf_array_bool(b, i, &bb) ||
			    ba != bb)
				return false;
			break;
		default:
			/* Numbers: all elements at once, bytewise. */
			sa = p2pio_gguf_array_data(a, &esize);
			sb = p2pio_gguf_array_data(b, NULL);
			return sa && sb && !memcmp(sa, sb, n * esize);
		}
	}
	return true;
}

static int rp_verify_meta(const struct p2pio_gguf *in, const struct p2pio_gguf *out,
			  uint32_t alignment, struct p2pio_error *err)
{
	char q[REPACK_QUOTE_MAX];
	uint64_t a = 0;
	size_t i, j = 0, n = p2pio_gguf_kv_count(in);

	if (p2pio_gguf_version(in) != p2pio_gguf_version(out))
		return p2pio_set_error(err, -EIO, P2PIO_NO_OFFSET, "the copy's GGUF version differs");
	if (p2pio_gguf_alignment(out) != alignment ||
	    (p2pio_gguf_find_kv(out, REPACK_ALIGNMENT_KEY) >= 0 &&
	     (p2pio_gguf_get_u64(out, REPACK_ALIGNMENT_KEY, &a) || a != alignment)))
		return p2pio_set_error(err, -EIO, P2PIO_NO_OFFSET,
				       "the copy's alignment is %u, not %u", p2pio_gguf_alignment(out),
				       alignment);
	/* Same pairs in the same order, general.alignment aside (the writer puts it last). */
	for (i = 0; i < n; i++) {
		const char *key = p2pio_gguf_kv_key(in, i);

		if (!strcmp(key, REPACK_ALIGNMENT_KEY))
			continue;
		if (!strcmp(p2pio_gguf_kv_key(out, j) ?: "", REPACK_ALIGNMENT_KEY))
			j++;
		if (!p2pio_gguf_kv_key(out, j) || strcmp(p2pio_gguf_kv_key(out, j), key) ||
		    !rp_value_equal(p2pio_gguf_kv_value(in, i), p2pio_gguf_kv_value(out, j)))
			return p2pio_set_error(err, -EIO, P2PIO_NO_OFFSET,
					       "metadata %s differs in the copy", rp_q(q, key));
		j++;
	}
	for (; j < p2pio_gguf_kv_count(out); j++)
		if (strcmp(p2pio_gguf_kv_key(out, j), REPACK_ALIGNMENT_KEY))
			return p2pio_set_error(err, -EIO, P2PIO_NO_OFFSET,
					       "the copy has extra metadata %s",
					       rp_q(q, p2pio_gguf_kv_key(out, j)));
	return 0;
}

/* Compare tensor @i's bytes in @in and @out, a chunk at a time, with pread() (see the top). */
static int rp_verify_data(struct p2pio_gguf *in, struct p2pio_gguf *out, size_t i,
			  unsigned char *ba, unsigned char *bb, struct p2pio_error *err)
{
	const struct p2pio_gguf_tensor *a = p2pio_gguf_tensor(in, i);
	const struct p2pio_gguf_tensor *b = p2pio_gguf_tensor(out, i);
	char q[REPACK_QUOTE_MAX];
	uint64_t done;
	size_t len;
	int ret;

	for (done = 0; done < a->size; done += len) {
		len = a->size - done < REPACK_CHUNK ? (size_t)(a->size - done) : REPACK_CHUNK;
		ret = rp_read(p2pio_gguf_fd(in), true, "during the verification", a, ba, len,
			      a->file_offset + done, err);
		ret = ret ?: rp_read(p2pio_gguf_fd(out), false, "during the verification", b,
				     bb, len, b->file_offset + done, err);
		if (ret)
			return ret;
		if (memcmp(ba, bb, len))
			return p2pio_set_error(err, -EIO, b->file_offset,
					       "the data of tensor %s differ in the copy",
					       rp_q(q, a->name));
	}
	return 0;
}

static int rp_verify_tensors(struct p2pio_gguf *in, struct p2pio_gguf *out, uint32_t alignment,
			     struct p2pio_error *err)
{
	size_t i, n = p2pio_gguf_tensor_count(in);
	char q[REPACK_QUOTE_MAX];
	unsigned char *ba, *bb;
	int ret = 0;

	if (p2pio_gguf_tensor_count(out) != n)
		return p2pio_set_error(err, -EIO, P2PIO_NO_OFFSET, "the copy has %zu tensors, not %zu",
				       p2pio_gguf_tensor_count(out), n);
	ba = malloc(REPACK_CHUNK);
	bb = malloc(REPACK_CHUNK);
	if (!ba || !bb) {
		ret = p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
		goto out;
	}
	for (i = 0; !ret && i < n; i++) {
		const struct p2pio_gguf_tensor *a = p2pio_gguf_tensor(in, i);
		const struct p2pio_gguf_tensor *b = p2pio_gguf_tensor(out, i);

		if (strcmp(a->name, b->name) || a->type != b->type || a->n_dims != b->n_dims ||
		    memcmp(a->ne, b->ne, sizeof(a->ne)) || a->size != b->size)
			ret = p2pio_set_error(err, -EIO, P2PIO_NO_OFFSET,
					      "tensor %zu (%s) differs in the copy", i, rp_q(q, a->name));
		else if (b->file_offset % alignment)
			ret = p2pio_set_error(err, -EIO, b->file_offset,
					      "tensor %s is not aligned to %u in the copy", rp_q(q, b->name),
					      alignment);
		else
			ret = rp_verify_data(in, out, i, ba, bb, err);
	}
out:
	free(ba);
	free(bb);
	return ret;
}

int gguf_repack_verify(struct p2pio_gguf *in, const char *path, uint32_t alignment,
		       struct p2pio_error *err)
{
	struct p2pio_error e = { 0 };
	struct p2pio_gguf *out;
	int ret;

	ret = p2pio_gguf_open(path, &out, &e);
	if (ret)
		return p2pio_set_error(err, -EIO, e.offset, "the copy does not read back: %s", e.msg);
	ret = rp_verify_meta(in, out, alignment, err);
	ret = ret ?: rp_verify_tensors(in, out, alignment, err);
	p2pio_gguf_close(out);
	return ret;
}

/* ---- the whole operation ----------------------------------------------------------- */

/* fsync the directory holding @path, so that a rename into it survives a crash. */
static void rp_sync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd;

	if (!copy)
		return;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(copy);
}

int gguf_repack_from(struct p2pio_gguf *g, const char *out, uint32_t alignment,
		     struct p2pio_error *err)
{
	struct p2pio_gguf_writer *w = NULL;
	struct stat si, so;
	char *tmp = NULL;
	int fd, ret;

	/* Never write over the input, whatever name reaches it. */
	if (!fstat(p2pio_gguf_fd(g), &si) && !stat(out, &so) && si.st_dev == so.st_dev &&
	    si.st_ino == so.st_ino)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "the output %s is the input file", out);
	fd = p2pio_tmpfile_create(out, &tmp, err);
	if (fd < 0)
		return fd;
	ret = p2pio_gguf_writer_create_fd(&w, fd, alignment, err);
	if (ret)
		goto out_unlink;
	ret = rp_copy(g, w, err);
	if (ret)
		goto out_unlink;
	if (fsync(fd)) {
		ret = p2pio_set_error(err, -errno, P2PIO_NO_OFFSET, "fsync of %s failed: %s", tmp,
				      strerror(errno));
		goto out_unlink;
	}
	ret = gguf_repack_verify(g, tmp, alignment, err);
	if (ret)
		goto out_unlink;
	if (rename(tmp, out)) {
		ret = p2pio_set_error(err, -errno, P2PIO_NO_OFFSET, "renaming %s to %s failed: %s",
				      tmp, out, strerror(errno));
		goto out_unlink;
	}
	rp_sync_dir(out);
	goto out_free;

out_unlink:
	unlink(tmp);
out_free:
	p2pio_gguf_writer_free(w);
	close(fd);
	free(tmp);
	return ret;
}

int p2pio_gguf_repack(const char *in, const char *out, uint32_t alignment,
		      struct p2pio_error *err)
{
	struct p2pio_gguf *g = NULL;
	int ret;

	if (!in || !out)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "no input or output path");
	if (alignment < P2PIO_GGUF_DEFAULT_ALIGNMENT || alignment > (1u << 30) ||
	    (alignment & (alignment - 1)))
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "alignment %u is not a power of two from 32 to 2^30", alignment);
	ret = p2pio_gguf_open(in, &g, err);
	if (ret)
		return ret;
	if (!strcmp(in, out))
		ret = p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				      "the output %s is the input file", out);
	else
		ret = gguf_repack_from(g, out, alignment, err);
	p2pio_gguf_close(g);
	return ret;
}
