// SPDX-License-Identifier: MIT
/*
 * The GGUF writer, byte for byte: a small file is written to a memfd and compared with the
 * bytes the format says it must hold (built here independently, field by field); then every
 * validation rule of the writer, and the atomic path mode (nothing at the path until
 * finish, no temporary file left behind on failure). Round trips through the reader are in
 * test-gguf-write-roundtrip.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "p2pio.h"
#include "common/pattern.h"
#include "tap.h"

/* An expected file, built by hand. */
static uint8_t exp_buf[1 << 16];
static size_t exp_len;

static void put(const void *p, size_t n)
{
	memcpy(exp_buf + exp_len, p, n);
	exp_len += n;
}

static void put_le(uint64_t v, unsigned int n)
{
	while (n--) {
		exp_buf[exp_len++] = (uint8_t)v;
		v >>= 8;
	}
}

static void put_str(const char *s)
{
	put_le(strlen(s), 8);
	put(s, strlen(s));
}

static void pad_to(size_t align)
{
	while (exp_len % align)
		exp_buf[exp_len++] = 0;
}

static size_t read_fd(int fd, uint8_t *buf, size_t max)
{
	ssize_t n = pread(fd, buf, max, 0);

	return n < 0 ? 0 : (size_t)n;
}

static int failing_fill(void *arg, void *buf, size_t len, uint64_t toff, uint64_t foff)
{
	return toff > 0 ? -EIO : (memset(buf, 1, len), 0);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_exact_bytes(void)
{
	static uint8_t got[1 << 16];
	struct p2pio_gguf_writer *w = NULL;
	struct p2pio_gguf_new_tensor t;
	const float f32data[3] = { 1.0f, -2.5f, 3.25f };
	const char *strs[] = { "a", "", "hello" };
	const int16_t i16s[] = { -1, 2 };
	uint64_t seed = 77, data_off, size;
	size_t n, tinfo_end;
	int fd = memfd_create("gguf", 0);
	float fv = 0.5f;
	double dv = -1.0 / 3.0;

	tap_ok(!p2pio_gguf_writer_create_fd(&w, fd, 64, NULL), "create on a memfd, alignment 64");
	tap_ok(!p2pio_gguf_writer_add_u32(w, "k.u32", 7) &&
	       !p2pio_gguf_writer_add(w, "k.f64", P2PIO_GGUF_TYPE_FLOAT64, &dv) &&
	       !p2pio_gguf_writer_add_f32(w, "k.f32", fv) &&
	       !p2pio_gguf_writer_add_str(w, "k.str", "hi") &&
	       !p2pio_gguf_writer_add_array(w, "k.strs", P2PIO_GGUF_TYPE_STRING, strs, 3) &&
	       !p2pio_gguf_writer_begin_array(w, "k.nest", P2PIO_GGUF_TYPE_ARRAY, 2) &&
	       !p2pio_gguf_writer_add_array(w, NULL, P2PIO_GGUF_TYPE_INT16, i16s, 2) &&
	       !p2pio_gguf_writer_begin_array(w, NULL, P2PIO_GGUF_TYPE_BOOL, 1) &&
	       !p2pio_gguf_writer_add_bool(w, NULL, true) &&
	       !p2pio_gguf_writer_end_array(w) && !p2pio_gguf_writer_end_array(w),
	       "metadata added: scalars, string, string array, nested arrays");
	memset(&t, 0, sizeof(t));
	t.name = "t.f32";
	t.type = P2PIO_GGML_TYPE_F32;
	t.n_dims = 1;
	t.ne[0] = 3;
	t.data = f32data;
	tap_ok(!p2pio_gguf_writer_add_tensor(w, &t), "F32 tensor from a pointer");
	memset(&t, 0, sizeof(t));
	t.name = "t.q8";
	t.type = P2PIO_GGML_TYPE_Q8_0;
	t.n_dims = 2;
	t.ne[0] = 64;
	t.ne[1] = 3;
	t.fill = p2pio_gguf_pattern_fill;
	t.arg = &seed;
	tap_ok(!p2pio_gguf_writer_add_tensor(w, &t), "Q8_0 tensor from the pattern fill callback");
	p2pio_gguf_writer_layout(w, &data_off, &size);
	tap_ok(!p2pio_gguf_writer_finish(w), "finish");
	p2pio_gguf_writer_free(w);

	put("GGUF", 4);
	put_le(3, 4);
	put_le(2, 8);		/* tensors */
	put_le(7, 8);		/* kvs: six added, general.alignment */
	put_str("k.u32");
	put_le(P2PIO_GGUF_TYPE_UINT32, 4);
	put_le(7, 4);
	put_str("k.f64");
	put_le(P2PIO_GGUF_TYPE_FLOAT64, 4);
	put(&dv, 8);
	put_str("k.f32");
	put_le(P2PIO_GGUF_TYPE_FLOAT32, 4);
	put(&fv, 4);
	put_str("k.str");
	put_le(P2PIO_GGUF_TYPE_STRING, 4);
	put_str("hi");
	put_str("k.strs");
	put_le(P2PIO_GGUF_TYPE_ARRAY, 4);
	put_le(P2PIO_GGUF_TYPE_STRING, 4);
	put_le(3, 8);
	put_str("a");
	put_str("");
	put_str("hello");
	put_str("k.nest");
	put_le(P2PIO_GGUF_TYPE_ARRAY, 4);
	put_le(P2PIO_GGUF_TYPE_ARRAY, 4);
	put_le(2, 8);
	put_le(P2PIO_GGUF_TYPE_INT16, 4);
	put_le(2, 8);
	put_le(0xffff, 2);
	put_le(2, 2);
	put_le(P2PIO_GGUF_TYPE_BOOL, 4);
	put_le(1, 8);
	put_le(1, 1);
	put_str("general.alignment");
	put_le(P2PIO_GGUF_TYPE_UINT32, 4);
	put_le(64, 4);
	put_str("t.f32");
	put_le(1, 4);
	put_le(3, 8);
	put_le(P2PIO_GGML_TYPE_F32, 4);
	put_le(0, 8);
	put_str("t.q8");
	put_le(2, 4);
	put_le(64, 8);
	put_le(3, 8);
	put_le(P2PIO_GGML_TYPE_Q8_0, 4);
	put_le(64, 8);		/* 12 bytes of F32 padded to 64 */
	tinfo_end = exp_len;
	pad_to(64);
	tap_is_u64(data_off, exp_len, "layout's data offset is the tensor infos' end aligned to 64");
	put(f32data, sizeof(f32data));
	pad_to(64);
	p2pio_pattern_fill(seed, exp_len, exp_buf + exp_len, 3 * 2 * 34);
	exp_len += 3 * 2 * 34;
	pad_to(64);

	n = read_fd(fd, got, sizeof(got));
	tap_is_u64(n, exp_len, "file size is what the format says (%zu bytes)", exp_len);
	tap_is_u64(size, exp_len, "layout's file size agrees");
	tap_ok(n == exp_len && !memcmp(got, exp_buf, tinfo_end),
	       "header, metadata and tensor infos are byte-exact");
	tap_ok(n == exp_len && !memcmp(got, exp_buf, exp_len),
	       "padding, pointer data and pattern data are byte-exact");
	close(fd);

	/* Alignment 32 writes no general.alignment; version 2 is written when asked. */
	fd = memfd_create("gguf", 0);
	p2pio_gguf_writer_create_fd(&w, fd, 32, NULL);
	tap_ok(!p2pio_gguf_writer_set_version(w, 2) && p2pio_gguf_writer_set_version(w, 1) == -EINVAL &&
	       p2pio_gguf_writer_set_version(w, 4) == -EINVAL, "versions 2 and 3 only");
	p2pio_gguf_writer_finish(w);
	p2pio_gguf_writer_free(w);
	exp_len = 0;
	put("GGUF", 4);
	put_le(2, 4);
	put_le(0, 8);
	put_le(0, 8);
	pad_to(32);
	n = read_fd(fd, got, sizeof(got));
	tap_ok(n == 32 && !memcmp(got, exp_buf, 32),
	       "an empty v2 file: 24-byte header padded to 32, no general.alignment");
	close(fd);
}

static void test_validation(void)
{
	struct p2pio_gguf_writer *w = NULL;
	struct p2pio_gguf_new_tensor t;
	struct p2pio_error e = { 0 };
	uint8_t b2 = 2, data[4096] = { 0 };
	int i, ret, fd = memfd_create("gguf", 0);

	tap_is_int(p2pio_gguf_writer_create_fd(&w, fd, 48, &e), -EINVAL, "alignment 48 refused");
	tap_ok(strstr(e.msg, "48") != NULL, "the message names the alignment: %s", e.msg);
	tap_is_int(p2pio_gguf_writer_create_fd(&w, fd, 0, NULL), -EINVAL, "alignment 0 refused");
	tap_is_int(p2pio_gguf_writer_create_fd(&w, -1, 32, NULL), -EBADF, "fd -1 refused");
	tap_ok(w == NULL, "no writer handed out on failure");
	tap_ok(!p2pio_gguf_writer_create_fd(&w, fd, 32, NULL), "alignment 32 accepted");

	tap_ok(!p2pio_gguf_writer_add_u32(w, "a", 1), "add a");
	tap_is_int(p2pio_gguf_writer_add_u32(w, "a", 2), -EEXIST, "duplicate key refused");
	tap_ok(strstr(p2pio_gguf_writer_error(w)->msg, "\"a\"") != NULL, "message: %s",
	       p2pio_gguf_writer_error(w)->msg);
	tap_is_int(p2pio_gguf_writer_add_u32(w, "general.alignment", 32), -EINVAL,
		   "general.alignment belongs to the writer");
	tap_is_int(p2pio_gguf_writer_add_u32(w, "", 1), -EINVAL, "empty key refused");
	tap_is_int(p2pio_gguf_writer_add_u32(w, NULL, 1), -EINVAL, "NULL key outside an array refused");
	tap_is_int(p2pio_gguf_writer_add(w, "b", P2PIO_GGUF_TYPE_BOOL, &b2), -EINVAL,
		   "bool 2 refused");
	tap_is_int(p2pio_gguf_writer_add(w, "b", 13, &b2), -EINVAL, "value type 13 refused");
	tap_is_int(p2pio_gguf_writer_add(w, "b", P2PIO_GGUF_TYPE_ARRAY, &b2), -EINVAL,
		   "ARRAY is not a scalar");

	tap_ok(!p2pio_gguf_writer_begin_array(w, "arr", P2PIO_GGUF_TYPE_UINT32, 2), "open an array");
	tap_is_int(p2pio_gguf_writer_add_u32(w, "x", 1), -EINVAL, "a key inside an array refused");
	tap_is_int(p2pio_gguf_writer_add_i32(w, NULL, 1), -EINVAL, "wrong element type refused");
	tap_ok(!p2pio_gguf_writer_add_u32(w, NULL, 1), "first element");
	tap_is_int(p2pio_gguf_writer_end_array(w), -EINVAL, "closing with an element missing refused");
	tap_is_int(p2pio_gguf_writer_finish(w), -EINVAL, "finish with an open array refused");
	tap_ok(!p2pio_gguf_writer_add_u32(w, NULL, 2), "second element");
	tap_is_int(p2pio_gguf_writer_add_u32(w, NULL, 3), -EINVAL, "a third element refused");
	tap_ok(!p2pio_gguf_writer_end_array(w), "close the array");
	tap_is_int(p2pio_gguf_writer_end_array(w), -EINVAL, "no array left to close");

	ret = 0;
	for (i = 0; i < P2PIO_GGUF_MAX_DEPTH && !ret; i++)
		ret = p2pio_gguf_writer_begin_array(w, i ? NULL : "deep", P2PIO_GGUF_TYPE_ARRAY, 1);
	tap_ok(!ret, "arrays nest %d deep", P2PIO_GGUF_MAX_DEPTH);
	tap_is_int(p2pio_gguf_writer_begin_array(w, NULL, P2PIO_GGUF_TYPE_ARRAY, 0), -E2BIG,
		   "one level deeper refused");

	p2pio_gguf_writer_free(w);
	w = NULL;
	p2pio_gguf_writer_create_fd(&w, fd, 32, NULL);
	memset(&t, 0, sizeof(t));
	t.name = "t";
	t.type = P2PIO_GGML_TYPE_Q4_K;
	t.n_dims = 2;
	t.ne[0] = 256;
	t.ne[1] = 2;
	t.data = data;
	tap_ok(!p2pio_gguf_writer_add_tensor(w, &t), "Q4_K 256x2 accepted");
	tap_is_int(p2pio_gguf_writer_add_tensor(w, &t), -EEXIST, "duplicate tensor name refused");
	t.name = "u";
	t.ne[0] = 128;
	ret = p2pio_gguf_writer_add_tensor(w, &t);
	tap_ok(ret == -EINVAL, "Q4_K row of 128 elements refused: %s", p2pio_gguf_writer_error(w)->msg);
	t.ne[0] = 256;
	t.type = 4;
	tap_is_int(p2pio_gguf_writer_add_tensor(w, &t), -ENOTSUP, "removed type 4 refused");
	t.type = P2PIO_GGML_TYPE_COUNT;
	tap_is_int(p2pio_gguf_writer_add_tensor(w, &t), -EINVAL, "unknown type 43 refused");
	t.type = P2PIO_GGML_TYPE_F32;
	t.n_dims = 0;
	tap_is_int(p2pio_gguf_writer_add_tensor(w, &t), -EINVAL, "0 dimensions refused");
	t.n_dims = 5;
	tap_is_int(p2pio_gguf_writer_add_tensor(w, &t), -EINVAL, "5 dimensions refused");
	t.n_dims = 2;
	t.ne[1] = 0;
	tap_is_int(p2pio_gguf_writer_add_tensor(w, &t), -ERANGE, "a zero extent refused");
	t.ne[0] = 1ULL << 32;
	t.ne[1] = 1ULL << 32;
	tap_is_int(p2pio_gguf_writer_add_tensor(w, &t), -ERANGE,
		   "2^64 elements refused (overflow)");
	t.n_dims = 1;
	t.ne[0] = (1ULL << 62);
	tap_is_int(p2pio_gguf_writer_add_tensor(w, &t), -ERANGE,
		   "2^62 F32 elements (2^64 bytes) refused");
	t.ne[0] = 4;
	t.name = "0123456789012345678901234567890123456789012345678901234567890123";
	tap_is_int(p2pio_gguf_writer_add_tensor(w, &t), -ENAMETOOLONG, "a 64-byte name refused");
	t.name = "012345678901234567890123456789012345678901234567890123456789012";
	tap_ok(!p2pio_gguf_writer_add_tensor(w, &t), "a 63-byte name accepted");
	t.name = "both";
	t.fill = p2pio_gguf_pattern_fill;
	tap_is_int(p2pio_gguf_writer_add_tensor(w, &t), -EINVAL, "data and fill together refused");
	t.data = NULL;
	t.fill = NULL;
	tap_is_int(p2pio_gguf_writer_add_tensor(w, &t), -EINVAL, "neither data nor fill refused");
	tap_ok(!p2pio_gguf_writer_finish(w), "finish after refused adds writes the good ones");
	tap_is_int(p2pio_gguf_writer_finish(w), -EINVAL, "a second finish refused");
	tap_is_int(p2pio_gguf_writer_add_u32(w, "late", 1), -EINVAL, "adding after finish refused");
	p2pio_gguf_writer_free(w);
	close(fd);
}

static void test_path_mode(void)
{
	char dir[] = "/tmp/p2pio-test-write-XXXXXX", path[256];
	struct p2pio_gguf_writer *w = NULL;
	struct p2pio_gguf_new_tensor t;
	struct p2pio_error e = { 0 };
	uint64_t size, seed = 5;
	struct stat st;

	if (!mkdtemp(dir)) {
		tap_skip(9, "mkdtemp failed");
		return;
	}
	snprintf(path, sizeof(path), "%s/m.gguf", dir);
	tap_ok(!p2pio_gguf_writer_create(&w, path, 4096, &e), "create on a path");
	memset(&t, 0, sizeof(t));
	t.name = "x";
	t.type = P2PIO_GGML_TYPE_F16;
	t.n_dims = 1;
	t.ne[0] = 3 << 20;	/* 6 MiB: crosses the writer's buffers */
	t.fill = p2pio_gguf_pattern_fill;
	t.arg = &seed;
	p2pio_gguf_writer_add_tensor(w, &t);
	t.name = "y";
	p2pio_gguf_writer_add_tensor(w, &t);
	tap_ok(stat(path, &st) && errno == ENOENT, "nothing at the path before finish");
	tap_is_int(count_entries(dir), 1, "only the temporary file in the directory");
	p2pio_gguf_writer_layout(w, NULL, &size);
	tap_ok(!p2pio_gguf_writer_finish(w), "finish");
	tap_ok(!stat(path, &st) && (uint64_t)st.st_size == size && size % 4096 == 0,
	       "the file is at the path with the layout's size, a multiple of 4096");
	tap_is_int(count_entries(dir), 1, "the temporary file was renamed, not copied");
	p2pio_gguf_writer_free(w);

	/* A failing fill callback: no file, no leftovers; the old file stays. */
	w = NULL;
	p2pio_gguf_writer_create(&w, path, 32, NULL);
	t.fill = failing_fill;
	t.ne[0] = 6 << 20;	/* 12 MiB: the callback is called more than once */
	p2pio_gguf_writer_add_tensor(w, &t);
	tap_is_int(p2pio_gguf_writer_finish(w), -EIO, "a fill callback's error fails finish");
	tap_ok(strstr(p2pio_gguf_writer_error(w)->msg, "tensor y") != NULL, "message: %s",
	       p2pio_gguf_writer_error(w)->msg);
	p2pio_gguf_writer_free(w);
	tap_ok(!stat(path, &st) && (uint64_t)st.st_size == size && count_entries(dir) == 1,
	       "the previous file is untouched and the temporary file is gone");
	unlink(path);
	rmdir(dir);
}

/* The fd mode writes sequentially with write(): a pipe works, nothing seeks. */
static void test_pipe(void)
{
	struct p2pio_gguf_writer *w = NULL;
	struct p2pio_gguf_new_tensor t;
	uint8_t buf[4096];
	uint64_t seed = 9, size = 0, data_off = 0;
	int fds[2];
	ssize_t n;

	if (pipe(fds)) {
		tap_skip(2, "no pipe");
		return;
	}
	memset(&t, 0, sizeof(t));
	t.name = "p";
	t.type = P2PIO_GGML_TYPE_F32;
	t.n_dims = 1;
	t.ne[0] = 100;
	t.fill = p2pio_gguf_pattern_fill;
	t.arg = &seed;
	/* Small enough to fit the pipe's buffer, so no reader thread is needed. */
	tap_ok(!p2pio_gguf_writer_create_fd(&w, fds[1], 128, NULL) &&
	       !p2pio_gguf_writer_add_tensor(w, &t) && !p2pio_gguf_writer_finish(w),
	       "a model written into a pipe");
	p2pio_gguf_writer_layout(w, &data_off, &size);
	p2pio_gguf_writer_free(w);
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf));
	close(fds[0]);
	tap_ok(n == (ssize_t)size && !memcmp(buf, "GGUF", 4) &&
	       p2pio_pattern_check(seed, data_off, buf + data_off, 400, NULL),
	       "the pipe carries the whole file (%zd bytes), data at the data offset", n);
}

int main(void)
{
	tap_plan(11 + 45 + 9 + 2);
	test_exact_bytes();
	test_validation();
	test_path_mode();
	test_pipe();
	return tap_exit();
}
