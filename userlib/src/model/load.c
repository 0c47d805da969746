// SPDX-License-Identifier: MIT
/*
 * model_load.c - load a whole model into one arena: the data section as a few large reads,
 * each tensor at its file-relative offset.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

/* Reads in flight at once; the engine splits each into its own chunks and queue depth. */
#define P2PIO_MODEL_MAX_INFLIGHT 32

/*
 * The phases of a load, for telling its start and its tail from its middle: when the first
 * read landed, when the last was submitted, and when a tenth and nine tenths of the bytes
 * had landed (with the bytes between those two moments). Times since @t0.
 */
static void note_phases(struct p2pio_load_result *res, uint64_t t0, uint64_t before,
			uint64_t done, uint64_t total)
{
	uint64_t t = p2pio_model_now_ns() - t0;

	if (!res)
		return;
	if (!before)
		res->first_ns = t;
	if (before * 10 < total && done * 10 >= total) {
		res->mid_start_ns = t;
		res->mid_bytes = done;
	}
	if (before * 10 < total * 9 && done * 10 >= total * 9) {
		res->mid_end_ns = t;
		res->mid_bytes = done - res->mid_bytes;
	}
}

int p2pio_model_read_group(struct p2pio_model *m, const struct p2pio_model_group *g,
			   struct p2pio_buf *buf, uint64_t base, uint64_t chunk,
			   p2pio_progress_fn progress, void *arg, struct p2pio_load_result *res)
{
	struct p2pio_cqe cqe[P2PIO_MODEL_MAX_INFLIGHT];
	uint64_t total = 0, done = 0, pos = 0, nreads = 0, before, t0 = p2pio_model_now_ns();
	struct p2pio_queue *q;
	unsigned int inflight = 0;
	uint32_t run = 0, i;
	bool stop = false;
	int ret, first_err = 0;

	for (i = 0; i < g->nruns; i++)
		total += g->runs[i].len;
	ret = p2pio_queue_create(m->ctx, &q);
	if (ret)
		return ret;
	while (run < g->nruns || inflight) {
		/* Keep the engine fed with chunk-sized reads, in file order. */
		while (!stop && run < g->nruns && inflight < P2PIO_MODEL_MAX_INFLIGHT) {
			const struct p2pio_run *r = &g->runs[run];
			uint64_t len = r->len - pos < chunk ? r->len - pos : chunk;
			struct p2pio_req req = {
				.file = m->file,
				.file_offset = r->file_off + pos,
				.length = len,
				.buf = buf,
				.buf_offset = base + r->dst_off + pos,
				.tag = len,
			};

			ret = p2pio_submit(q, &req, 1);
			if (ret < 0) {
				first_err = ret;
				stop = true;
				break;
			}
			inflight++;
			nreads++;
			pos += len;
			if (pos == r->len) {
				run++;
				pos = 0;
			}
			if (res && run == g->nruns)
				res->last_submit_ns = p2pio_model_now_ns() - t0;
		}
		if (!inflight)
			break;
		ret = p2pio_complete(q, cqe, P2PIO_ARRAY_SIZE(cqe), 1, -1);
		if (ret < 0) {
			/* The queue itself failed: the reads in flight cannot be waited for. */
			first_err = first_err ? first_err : ret;
			break;
		}
		before = done;
		for (i = 0; i < (uint32_t)ret; i++) {
			inflight--;
			if (cqe[i].res < 0 && !first_err) {
				first_err = cqe[i].res;
				stop = true;
			}
			done += cqe[i].tag;
		}
		note_phases(res, t0, before, done, total);
		if (progress && !stop && progress(arg, done, total)) {
			first_err = -ECANCELED;
			stop = true;
		}
	}
	if (!inflight)
		p2pio_queue_destroy(q);
	if (res)
		res->reads = nreads;
	return first_err;
}

int p2pio_model_load(struct p2pio_model *m, const struct p2pio_model_load_opts *opts,
		     struct p2pio_load_result *res)
{
	uint64_t chunk = opts && opts->chunk ? opts->chunk : P2PIO_MODEL_DEF_CHUNK;
	struct p2pio_load_result r = { 0 };
	uint64_t t0, c0, bytes = 0, addr;
	uint8_t *host;
	uint32_t i;
	int ret;

	if (res && res->size < offsetof(struct p2pio_load_result, bytes) + sizeof(res->bytes))
		return -EINVAL;
	if (m->streamer || m->experts_open)
		return -EBUSY;
	if (chunk < P2PIO_MODEL_BLOCK)
		chunk = P2PIO_MODEL_BLOCK;
	chunk -= chunk % P2PIO_MODEL_BLOCK;
	if (!m->arena && m->whole.region) {
		ret = p2pio_buf_alloc(m->ctx, m->mem, m->whole.region, &m->arena, NULL);
		if (ret)
			return ret;
	}
	for (i = 0; i < m->whole.nruns; i++)
		bytes += m->whole.runs[i].len;
	t0 = p2pio_model_now_ns();
	c0 = p2pio_model_cpu_ns();
	ret = p2pio_model_read_group(m, &m->whole, m->arena, 0, chunk,
				     opts ? opts->progress : NULL, opts ? opts->progress_arg : NULL,
				     &r);
	if (res) {
		size_t len = res->size < sizeof(r) ? res->size : sizeof(r);

		r.wall_ns = p2pio_model_now_ns() - t0;
		r.cpu_ns = p2pio_model_cpu_ns() - c0;
		r.bytes = bytes;
		r.arena = m->arena ? p2pio_buf_addr(m->arena) : 0;
		r.arena_bytes = m->whole.region;
		/* No further than the caller's struct reaches; its size stays its own. */
		r.size = res->size;
		memcpy(res, &r, len);
	}
	if (ret)
		return ret;
	addr = m->arena ? p2pio_buf_addr(m->arena) : 0;
	host = m->arena ? p2pio_buf_host_ptr(m->arena) : NULL;
	for (i = 0; i < m->ntensors; i++) {
		m->tensors[i].addr = addr + m->whole.dst[i];
		m->tensors[i].host = host ? host + m->whole.dst[i] : NULL;
	}
	if (opts && opts->progress)
		opts->progress(opts->progress_arg, bytes, bytes);
	return 0;
}
