// SPDX-License-Identifier: MIT
/*
 * test-engine-urgent: P2PIO_REQ_URGENT reads jump the queue of BOUNCE and POSIX.
 *
 * One worker, one read in flight: the reads complete in the order the worker takes them,
 * which the queue decides. In one submission of many plain reads and an urgent one last,
 * the urgent read completes among the first (at most the reads the worker had taken
 * before it was queued come first); without the flag the same read completes among the
 * last. Urgent reads keep their order among themselves, and one queued behind a large
 * read whose first chunks are out goes ahead of the rest of it. Every byte is checked.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_fixture.h"
#include "tap.h"

#define CHUNK (64u << 10)
#define NR 40			/* plain reads of a chunk each, one submission */
#define BIG (256u * CHUNK)	/* a read of many chunks */
#define FILE_SIZE ((uint64_t)BIG + NR * CHUNK + 4 * CHUNK)
#define TAG_URGENT 900
/* Reads the worker may have taken before the urgent one was queued (POSIX queues one
 * read per call, so the worker may start before the last is in). */
#define SLACK 3

static char path[PATH_MAX];

struct rig {
	struct p2pio_ctx *ctx;
	struct p2pio_file *f;
	struct p2pio_buf *buf;
	struct p2pio_queue *q;
	uint8_t *mem;
};

static void rig_open(struct rig *r, enum p2pio_path p)
{
	struct p2pio_ctx_opts o;
	struct p2pio_error err = { 0 };

	p2pio_ctx_opts_init(&o);
	o.device = P2PIO_DEVICE_HOST;
	o.path = p;
	o.chunk_size = CHUNK;
	o.queue_depth = 1;
	o.threads = 1;
	o.staging_bytes = 4 * CHUNK;
	if (p2pio_ctx_create(&o, &r->ctx, &err) || p2pio_file_open(r->ctx, path, 0, &r->f, &err) ||
	    p2pio_buf_alloc(r->ctx, P2PIO_MEM_HOST, FILE_SIZE, &r->buf, &err) ||
	    p2pio_queue_create(r->ctx, &r->q)) {
		tap_diag("%s", err.msg);
		tap_bail("cannot set up a context, file, buffer and queue");
	}
	r->mem = p2pio_buf_host_ptr(r->buf);
}

static void rig_close(struct rig *r)
{
	p2pio_queue_destroy(r->q);
	p2pio_buf_free(r->buf);
	p2pio_file_close(r->f);
	p2pio_ctx_destroy(r->ctx);
}

/* A read of @len bytes at @off into the same offset of the buffer. */
static struct p2pio_req req_at(const struct rig *r, uint64_t off, uint64_t len, uint64_t tag,
			       uint32_t flags)
{
	return (struct p2pio_req){ .file = r->f, .file_offset = off, .length = len, .buf = r->buf,
				   .buf_offset = off, .tag = tag, .flags = flags };
}

/*
 * Submits requests [0, @split) of @n, then the rest in a second call, reaps them all into @order
 * (tags in completion order) and checks every byte read; false on any failure.
 */
static bool run_split(struct rig *r, const struct p2pio_req *req, int n, int split,
		      uint64_t *order)
{
	struct p2pio_cqe cqe[NR + 4];
	int got = 0, k, i;

	memset(r->mem, EFX_GUARD, FILE_SIZE);
	if (p2pio_submit(r->q, req, (unsigned int)split) != split)
		return false;
	if (split < n) {
		if (p2pio_submit(r->q, req + split, (unsigned int)(n - split)) != n - split)
			return false;
	}
	while (got < n) {
		k = p2pio_complete(r->q, cqe, (unsigned int)(n - got), 1, 20000);
		if (k <= 0)
			return false;
		for (i = 0; i < k; i++) {
			if (cqe[i].res)
				return false;
			order[got++] = cqe[i].tag;
		}
	}
	for (i = 0; i < n; i++)
		if (efx_mismatch(r->mem + req[i].buf_offset, req[i].file_offset, req[i].length) >= 0)
			return false;
	return true;
}

static bool run(struct rig *r, const struct p2pio_req *req, int n, uint64_t *order)
{
	return run_split(r, req, n, n, order);
}

static int position(const uint64_t *order, int n, uint64_t tag)
{
	for (int i = 0; i < n; i++)
		if (order[i] == tag)
			return i;
	return -1;
}

static void one_path(enum p2pio_path p, const char *what)
{
	struct p2pio_req req[NR + 4];
	uint64_t order[NR + 4];
	struct rig r;
	int i, pos, pos2;

	rig_open(&r, p);

	/* NR plain reads, then one more with and without the flag, all in one submission. */
	for (i = 0; i < NR; i++)
		req[i] = req_at(&r, (uint64_t)i * CHUNK, CHUNK, (uint64_t)i, 0);
	req[NR] = req_at(&r, (uint64_t)NR * CHUNK, CHUNK, TAG_URGENT, P2PIO_REQ_URGENT);
	tap_ok(run(&r, req, NR + 1, order), "%s: %d plain reads and an urgent one land", what, NR);
	pos = position(order, NR + 1, TAG_URGENT);
	if (!tap_ok(pos >= 0 && pos <= SLACK, "%s: the urgent one, submitted last, completes among the first",
		    what))
		tap_diag("completed %d of %d", pos + 1, NR + 1);
	req[NR].flags = 0;
	tap_ok(run(&r, req, NR + 1, order), "%s: the same without the flag land", what);
	pos = position(order, NR + 1, TAG_URGENT);
	if (!tap_ok(pos >= NR - SLACK, "%s: without the flag it completes among the last", what))
		tap_diag("completed %d of %d", pos + 1, NR + 1);

	/* Two urgent reads behind the plain ones: both first, in their order. */
	req[NR] = req_at(&r, (uint64_t)NR * CHUNK, CHUNK, TAG_URGENT, P2PIO_REQ_URGENT);
	req[NR + 1] = req_at(&r, (uint64_t)(NR + 1) * CHUNK, CHUNK, TAG_URGENT + 1,
			     P2PIO_REQ_URGENT);
	tap_ok(run(&r, req, NR + 2, order), "%s: two urgent reads land", what);
	pos = position(order, NR + 2, TAG_URGENT);
	pos2 = position(order, NR + 2, TAG_URGENT + 1);
	if (!tap_ok(pos >= 0 && pos2 == pos + 1 && pos2 <= SLACK + 1,
		    "%s: both complete first, in the order submitted", what))
		tap_diag("completed %d and %d of %d", pos + 1, pos2 + 1, NR + 2);

	/*
	 * A large read whose first chunks are out when an urgent one comes: the urgent one
	 * goes ahead of the rest of it. Its plain twin, submitted alike, waits for all of it.
	 */
	req[0] = req_at(&r, (uint64_t)NR * CHUNK + 2 * CHUNK, BIG, 1, 0);
	req[1] = req_at(&r, 0, CHUNK, TAG_URGENT, P2PIO_REQ_URGENT);
	tap_ok(run_split(&r, req, 2, 1, order), "%s: a large read and an urgent one land", what);
	tap_ok(order[0] == TAG_URGENT, "%s: the urgent one completes before the large read", what);
	req[1].flags = 0;
	tap_ok(run_split(&r, req, 2, 1, order) && order[0] == 1,
	       "%s: without the flag the large read completes first", what);

	/* Flags beyond the known ones are still refused. */
	req[0].flags = P2PIO_REQ_URGENT << 1;
	tap_is_int(p2pio_submit(r.q, req, 1), -EINVAL, "%s: an unknown flag is refused", what);
	rig_close(&r);
}

int main(void)
{
	tap_plan(2 * 10);
	if (efx_make_file(path, FILE_SIZE))
		tap_bail("cannot create the test file");
	one_path(P2PIO_PATH_POSIX, "posix");
	one_path(P2PIO_PATH_BOUNCE, "bounce");
	unlink(path);
	return tap_exit();
}
