// SPDX-License-Identifier: MIT
/*
 * test-bounce-submit: BOUNCE's reads when io_uring_submit() fails for a while.
 *
 * io_uring_enter() may take none of a submission's reads (EAGAIN: short of resources,
 * EBUSY: completions to reap first); they stay in the submission ring, and the worker must
 * submit them again. This program puts its own io_uring_submit() in front of liburing's
 * (the library's reference resolves to it, as the program defines it) and fails the first
 * calls with -EAGAIN, submitting nothing. One worker, two reads in flight: the worker takes
 * two chunks, its submission fails, the next pass has nothing new to take and no
 * completion to reap. Before the fix it then waited for completions of reads it had never
 * sent, for ever; every read must now complete within 5 s, every byte right.
 */
#include <dlfcn.h>
#include <errno.h>
#include <liburing.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "engine_fixture.h"
#include "tap.h"

#define CHUNK (64u << 10)
#define NR 16
#define FILE_SIZE ((uint64_t)NR * CHUNK)

static atomic_int fails_left;	/* calls still to fail */
static atomic_int failed;	/* calls failed so far */

int io_uring_submit(struct io_uring *ring)
{
	static int (*real)(struct io_uring *);

	if (atomic_fetch_sub(&fails_left, 1) > 0) {
		atomic_fetch_add(&failed, 1);
		return -EAGAIN;
	}
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "io_uring_submit");
	return real ? real(ring) : -ENOSYS;
}

static void submit_fails(int fails)
{
	char fpath[PATH_MAX];
	struct p2pio_ctx_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_req req[NR];
	struct p2pio_cqe cqe[NR];
	struct p2pio_ctx *ctx = NULL;
	struct p2pio_file *f = NULL;
	struct p2pio_buf *buf = NULL;
	struct p2pio_queue *q = NULL;
	int got, wrong = 0, i;

	p2pio_ctx_opts_init(&o);
	o.device = P2PIO_DEVICE_HOST;
	o.path = P2PIO_PATH_BOUNCE;
	o.chunk_size = CHUNK;
	o.queue_depth = 2;
	o.threads = 1;
	o.staging_bytes = 4 * CHUNK;
	atomic_store(&fails_left, 0);
	if (efx_make_file(fpath, FILE_SIZE) || p2pio_ctx_create(&o, &ctx, &err) ||
	    p2pio_file_open(ctx, fpath, 0, &f, &err) ||
	    p2pio_buf_alloc(ctx, P2PIO_MEM_HOST, FILE_SIZE, &buf, &err) ||
	    p2pio_queue_create(ctx, &q)) {
		tap_diag("%s", err.msg);
		tap_bail("cannot set up a BOUNCE context, a file, a buffer and a queue");
	}
	for (i = 0; i < NR; i++)
		req[i] = (struct p2pio_req){ .file = f, .file_offset = (uint64_t)i * CHUNK,
					     .length = CHUNK, .buf = buf,
					     .buf_offset = (uint64_t)i * CHUNK, .tag = (uint64_t)i };
	memset(p2pio_buf_host_ptr(buf), EFX_GUARD, FILE_SIZE);
	efx_drop_cache(fpath);
	atomic_store(&failed, 0);
	atomic_store(&fails_left, fails);
	if (p2pio_submit(q, req, NR) != NR)
		tap_bail("cannot submit");
	/* 5 s: the reads take milliseconds, unless the worker waits for nothing. */
	got = efx_reap(q, cqe, NR, 5000);
	for (i = 0; i < got; i++)
		wrong += cqe[i].res || efx_mismatch((uint8_t *)p2pio_buf_host_ptr(buf) +
							    cqe[i].tag * CHUNK,
						    cqe[i].tag * CHUNK, CHUNK) >= 0;
	tap_ok(got == NR && !wrong && atomic_load(&failed) == fails,
	       "the first %d submissions fail with EAGAIN: all %d reads complete, bytes right "
	       "(%d completed, %d wrong, %d submissions failed)",
	       fails, NR, got, wrong, atomic_load(&failed));
	/* Reads never completed would be waited for by the context's end. */
	if (got < NR)
		tap_bail("reads never completed: the context cannot be destroyed");
	p2pio_queue_destroy(q);
	p2pio_buf_free(buf);
	p2pio_file_close(f);
	p2pio_ctx_destroy(ctx);
	unlink(fpath);
}

int main(void)
{
	tap_plan(3);
	submit_fails(0);
	submit_fails(2);
	submit_fails(5);
	return tap_exit();
}
