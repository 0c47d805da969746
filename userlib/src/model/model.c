// SPDX-License-Identifier: MIT
/*
 * model.c - open a GGUF model on a context: parse it, open it on the engine, plan where
 * every tensor goes for a whole-model load and for layer streaming.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "model/model.h"

uint64_t p2pio_model_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t p2pio_model_cpu_ns(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
}

void p2pio_model_group_free(struct p2pio_model_group *g)
{
	free(g->idx);
	free(g->dst);
	free(g->runs);
	memset(g, 0, sizeof(*g));
}

/*
 * Plan group @g (its idx[] filled): runs and destinations. @gap: tensors closer than this
 * share a read; the whole-model plan passes the file size, so that it is one range.
 */
int p2pio_model_group_plan(struct p2pio_model *m, struct p2pio_model_group *g, uint64_t gap,
			   struct p2pio_error *err)
{
	struct p2pio_span *ext;
	uint32_t i;
	int n;

	g->dst = calloc(g->ntensors ? g->ntensors : 1, sizeof(*g->dst));
	g->runs = calloc(g->ntensors ? g->ntensors : 1, sizeof(*g->runs));
	ext = calloc(g->ntensors ? g->ntensors : 1, sizeof(*ext));
	if (!g->dst || !g->runs || !ext) {
		free(ext);
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory planning reads");
	}
	g->bytes = 0;
	for (i = 0; i < g->ntensors; i++) {
		const struct p2pio_model_tensor *t = &m->tensors[g->idx[i]];

		ext[i].off = t->file_offset;
		ext[i].size = t->size;
		g->bytes += t->size;
	}
	n = p2pio_layout(ext, g->ntensors, P2PIO_MODEL_BLOCK, gap, m->file_size, g->runs, g->dst,
			 &g->region);
	free(ext);
	if (n < 0)
		return p2pio_set_error(err, n, P2PIO_NO_OFFSET,
				       "cannot lay out the tensors of %s %u: %s",
				       g->number == P2PIO_GGUF_NO_LAYER ? "the non-layer group" : "layer",
				       g->number == P2PIO_GGUF_NO_LAYER ? 0 : g->number,
				       p2pio_strerror(n));
	g->nruns = (uint32_t)n;
	return 0;
}

static int group_from_gguf(struct p2pio_model *m, struct p2pio_model_group *g,
			   const struct p2pio_gguf_layer *gl, struct p2pio_error *err)
{
	size_t i;

	g->number = gl->number;
	if (gl->n_tensors > m->ntensors)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "layer has too many tensors");
	g->ntensors = (uint32_t)gl->n_tensors;
	g->idx = calloc(g->ntensors ? g->ntensors : 1, sizeof(*g->idx));
	if (!g->idx)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	for (i = 0; i < gl->n_tensors; i++) {
		if (gl->tensors[i] >= m->ntensors)
			return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
					       "layer %u names tensor %zu of %u", gl->number,
					       gl->tensors[i], m->ntensors);
		g->idx[i] = (uint32_t)gl->tensors[i];
	}
	return p2pio_model_group_plan(m, g, P2PIO_MODEL_MERGE_GAP, err);
}

static int model_plan(struct p2pio_model *m, struct p2pio_error *err)
{
	struct p2pio_gguf *g = m->gguf;
	size_t nt = p2pio_gguf_tensor_count(g), nl = p2pio_gguf_layer_count(g), i;
	int ret;

	if (nt > UINT32_MAX || nl > UINT32_MAX)
		return p2pio_set_error(err, -E2BIG, P2PIO_NO_OFFSET, "too many tensors or layers");
	m->ntensors = (uint32_t)nt;
	m->nlayers = (uint32_t)nl;
	m->tensors = calloc(nt ? nt : 1, sizeof(*m->tensors));
	m->layers = calloc(nl ? nl : 1, sizeof(*m->layers));
	m->whole.idx = calloc(nt ? nt : 1, sizeof(*m->whole.idx));
	if (!m->tensors || !m->layers || !m->whole.idx)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	for (i = 0; i < nt; i++) {
		const struct p2pio_gguf_tensor *gt = p2pio_gguf_tensor(g, i);
		struct p2pio_model_tensor *t = &m->tensors[i];

		t->name = gt->name;
		t->size = gt->size;
		t->file_offset = gt->file_offset;
		t->type = gt->type;
		t->layer = -1;
		if (gt->layer != P2PIO_GGUF_NO_LAYER) {
			int li = p2pio_gguf_find_layer(g, gt->layer);

			if (li < 0)
				return p2pio_set_error(err, -EINVAL, gt->file_offset,
						       "tensor %s: layer %u not grouped", gt->name,
						       gt->layer);
			t->layer = li;
		}
		m->whole.idx[i] = (uint32_t)i;
	}
	m->whole.ntensors = m->ntensors;
	m->whole.number = P2PIO_GGUF_NO_LAYER;
	/* The whole model is one range: the data section, rounded out to blocks. */
	ret = p2pio_model_group_plan(m, &m->whole, m->file_size, err);
	if (ret)
		return ret;
	for (i = 0; i < nl; i++) {
		ret = group_from_gguf(m, &m->layers[i], p2pio_gguf_layer(g, i), err);
		if (ret)
			return ret;
		if (m->layers[i].region > m->slot_bytes)
			m->slot_bytes = m->layers[i].region;
	}
	/* Layers of empty tensors still take a (minimal) slot. */
	if (nl && !m->slot_bytes)
		m->slot_bytes = P2PIO_MODEL_BLOCK;
	return group_from_gguf(m, &m->resident, p2pio_gguf_nonlayer(g), err);
}

int p2pio_model_open(struct p2pio_ctx *ctx, const char *path, const struct p2pio_model_opts *opts,
		     struct p2pio_model **out, struct p2pio_error *err)
{
	struct p2pio_model *m;
	int fd, ret;

	if (!ctx || !path || !out)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "missing argument");
	m = calloc(1, sizeof(*m));
	if (!m)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	m->ctx = ctx;
	m->gpu = p2pio_ctx_device(ctx) != P2PIO_DEVICE_HOST;
	m->mem = m->gpu ? P2PIO_MEM_CUDA : P2PIO_MEM_HOST;
	if (opts && (opts->flags & P2PIO_MODEL_SET_MEM)) {
		m->mem = opts->mem;
		m->gpu = opts->mem == P2PIO_MEM_CUDA;
	}
	/*
	 * One open for the header and the reads: opening the path twice could parse one file
	 * and read another, should the path be replaced in between (session 11's review).
	 */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = p2pio_set_error(err, -errno, P2PIO_NO_OFFSET, "%s: %s", path,
				      strerror(errno));
		goto out_free;
	}
	ret = p2pio_gguf_open_fd(fd, &m->gguf, err);
	if (!ret)
		ret = p2pio_file_open_fd(ctx, fd, opts ? opts->path : 0, &m->file, err);
	close(fd);
	if (ret) {
		p2pio_error_wrap(err, "%s: ", path);
		goto out_free;
	}
	m->file_size = p2pio_gguf_file_size(m->gguf);
	m->data_offset = p2pio_gguf_data_offset(m->gguf);
	m->data_size = p2pio_gguf_data_size(m->gguf);
	m->has_seed = p2pio_gguf_get_u64(m->gguf, "p2pio.pattern.seed", &m->seed) == 0;
	ret = model_plan(m, err);
	if (ret)
		goto out_free;
	*out = m;
	return 0;

out_free:
	p2pio_model_close(m);
	return ret;
}

void p2pio_model_close(struct p2pio_model *m)
{
	uint32_t i;

	if (!m)
		return;
	p2pio_streamer_close(m->streamer);
	p2pio_buf_free(m->arena);
	for (i = 0; i < m->nlayers && m->layers; i++)
		p2pio_model_group_free(&m->layers[i]);
	p2pio_model_group_free(&m->resident);
	p2pio_model_group_free(&m->whole);
	free(m->layers);
	free(m->tensors);
	p2pio_file_close(m->file);
	p2pio_gguf_close(m->gguf);
	free(m);
}

struct p2pio_file *p2pio_model_file(const struct p2pio_model *m)
{
	return m->file;
}

struct p2pio_gguf *p2pio_model_gguf(const struct p2pio_model *m)
{
	return m->gguf;
}

void p2pio_model_info(const struct p2pio_model *m, struct p2pio_model_info *info)
{
	uint32_t i;

	memset(info, 0, sizeof(*info));
	info->file_size = m->file_size;
	info->data_offset = m->data_offset;
	info->data_size = m->data_size;
	info->tensors = m->ntensors;
	info->layers = m->nlayers;
	for (i = 0; i < m->nlayers; i++)
		info->layer_bytes += m->layers[i].bytes;
	info->slot_bytes = m->slot_bytes;
	info->resident_bytes = m->resident.region;
	info->pattern_seed = m->seed;
	info->has_seed = m->has_seed;
}

int p2pio_model_tensor_at(const struct p2pio_model *m, uint32_t i, struct p2pio_model_tensor *out)
{
	if (i >= m->ntensors)
		return -ERANGE;
	*out = m->tensors[i];
	return 0;
}

int p2pio_model_tensor(const struct p2pio_model *m, const char *name,
		       struct p2pio_model_tensor *out)
{
	int i = p2pio_gguf_find_tensor(m->gguf, name);

	if (i < 0)
		return -ENOENT;
	return p2pio_model_tensor_at(m, (uint32_t)i, out);
}
