// SPDX-License-Identifier: MIT
/*
 * GGUF tensors: many tensors found by name at their index, infos and absolute file ranges,
 * zero-copy data through the mapping (the same from several threads), opening by path and
 * by fd (the fd is duplicated and its position untouched), custom alignments, v2 files.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf_build.h"
#include "tap.h"

#define MANY 5000

struct many {
	struct gb_tensor t[MANY];
	char names[MANY][24];
	size_t data;
};

static void build_many(struct gguf_build *b, struct many *m, uint32_t version, uint32_t align)
{
	size_t i;

	gb_init(b);
	for (i = 0; i < MANY; i++) {
		snprintf(m->names[i], sizeof(m->names[i]), "t.%zu.weight", i);
		/* Shapes vary so that sizes and padding do. */
		m->t[i] = (struct gb_tensor)GB_T(m->names[i], P2PIO_GGML_TYPE_F32, 2, 1 + i % 7, 1 + i % 3);
	}
	m->data = gb_model(b, version, align, m->t, MANY);
}

/* Does tensor @i of @g hold exactly the pattern bytes of its file range? */
static bool data_ok(struct p2pio_gguf *g, size_t i)
{
	const struct p2pio_gguf_tensor *t = p2pio_gguf_tensor(g, i);
	const unsigned char *p;
	uint64_t k;

	if (p2pio_gguf_tensor_data(g, i, (const void **)&p, NULL))
		return false;
	for (k = 0; k < t->size; k++)
		if (p[k] != gb_pattern(t->file_offset + k))
			return false;
	return true;
}

static void test_many(uint32_t version, uint32_t align)
{
	static struct many m;
	struct p2pio_gguf *g = NULL;
	struct p2pio_error err;
	struct gguf_build b;
	char path[64];
	size_t i, found = 0, info = 0, data = 0;
	const struct p2pio_gguf_tensor *t;
	uint32_t want_align = align ? align : 32;

	build_many(&b, &m, version, align);
	if (gb_tmpfile(&b, path)) {
		tap_bail("cannot write a temporary file");
		return;
	}
	if (!tap_is_int(p2pio_gguf_open(path, &g, &err), 0, "v%u, alignment %u: %d tensors open by path",
			version, want_align, MANY)) {
		tap_diag("%s", err.msg);
		unlink(path);
		gb_free(&b);
		return;
	}
	tap_ok(p2pio_gguf_tensor_count(g) == MANY && p2pio_gguf_alignment(g) == want_align &&
		       p2pio_gguf_data_offset(g) == m.data && m.data % want_align == 0 &&
		       p2pio_gguf_file_size(g) == b.len && p2pio_gguf_data_size(g) == b.len - m.data,
	       "count, alignment, data offset and sizes");
	for (i = 0; i < MANY; i++) {
		found += p2pio_gguf_find_tensor(g, m.names[i]) == (int)i;
		t = p2pio_gguf_tensor(g, i);
		info += t && !strcmp(t->name, m.names[i]) && t->type == P2PIO_GGML_TYPE_F32 &&
			t->n_dims == 2 && t->ne[0] == 1 + i % 7 && t->ne[1] == 1 + i % 3 &&
			t->ne[2] == 1 && t->ne[3] == 1 && t->size == m.t[i].size &&
			t->offset == m.t[i].offset && t->offset % want_align == 0 &&
			t->file_offset == m.data + m.t[i].offset &&
			t->layer == P2PIO_GGUF_NO_LAYER && t->n_experts == 0;
		if (i % 97 == 0 || i == MANY - 1)
			data += !data_ok(g, i);
	}
	tap_is_int(found, MANY, "every name is found at its index");
	tap_is_int(info, MANY, "every tensor's type, shape, size and offsets");
	tap_is_int(data, 0, "sampled tensors' data read through the mapping are the file's bytes");
	tap_ok(p2pio_gguf_find_tensor(g, "t.5000.weight") == -ENOENT &&
		       p2pio_gguf_find_tensor(g, "t.1.weigh") == -ENOENT &&
		       !p2pio_gguf_tensor_by_name(g, "T.1.weight") && !p2pio_gguf_tensor(g, MANY),
	       "names not in the file are not found");
	tap_is_int(p2pio_gguf_tensor_data(g, MANY, (const void **)&t, &err), -ERANGE,
		   "data of a tensor past the end is -ERANGE");
	p2pio_gguf_close(g);
	unlink(path);
	gb_free(&b);
}

struct thread_arg {
	struct p2pio_gguf *g;
	const void *p;
};

static void *thread_map(void *arg)
{
	struct thread_arg *a = arg;

	if (p2pio_gguf_tensor_data(a->g, 1, &a->p, NULL))
		a->p = NULL;
	return NULL;
}

static void test_fd(void)
{
	struct gb_tensor t[2] = {
		GB_T("a", P2PIO_GGML_TYPE_Q4_K, 1, 512),
		GB_T("b", P2PIO_GGML_TYPE_BF16, 3, 3, 5, 7),
	};
	struct thread_arg a[4];
	pthread_t th[4];
	struct p2pio_gguf *g = NULL;
	struct p2pio_error err;
	struct gguf_build b;
	const void *p;
	int fd, i, same = 0;

	gb_init(&b);
	gb_model(&b, 2, 4096, t, 2);
	fd = gb_memfd(&b);
	lseek(fd, 7, SEEK_SET);
	tap_is_int(p2pio_gguf_open_fd(fd, &g, &err), 0, "v2, alignment 4096: opens from an fd");
	tap_ok(lseek(fd, 0, SEEK_CUR) == 7, "the caller's file position is untouched");
	close(fd);
	tap_ok(p2pio_gguf_fd(g) >= 0 && p2pio_gguf_fd(g) != fd &&
		       (fcntl(p2pio_gguf_fd(g), F_GETFD) & FD_CLOEXEC),
	       "the handle holds its own close-on-exec fd");
	tap_ok(p2pio_gguf_data_offset(g) == 4096 && p2pio_gguf_tensor(g, 1)->offset == 4096 &&
		       p2pio_gguf_tensor(g, 1)->size == 3 * 5 * 7 * 2 && p2pio_gguf_tensor(g, 0)->size == 288,
	       "data at 4096, b at 4096 into the data section");
	for (i = 0; i < 4; i++) {
		a[i].g = g;
		pthread_create(&th[i], NULL, thread_map, &a[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		same += a[i].p && a[i].p == a[0].p;
	}
	tap_is_int(same, 4, "four threads mapping at once get the same view");
	tap_ok(data_ok(g, 0) && data_ok(g, 1), "after the caller closed its fd, data still read");
	tap_ok(!p2pio_gguf_tensor_data(g, 0, &p, NULL) &&
		       (const char *)a[0].p - (const char *)p == 4096, "tensors lie at their file distance");
	p2pio_gguf_close(g);
	gb_free(&b);
}

int main(void)
{
	tap_plan_lazy();
	test_many(3, 0);
	test_many(2, 64);
	test_fd();
	return tap_exit();
}
