// SPDX-License-Identifier: MIT
/*
 * test-engine-async: batched asynchronous reads with tags, the pollable completion fd,
 * partial submission, error propagation (a file that shrank, bad fds), statistics.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"	/* p2pio_complete_phases(): the library's own, hidden */
#include "engine_fixture.h"
#include "tap.h"

#define FILE_SIZE ((2u << 20) + 777)
#define CHUNK (64u << 10)
#define NR 150			/* more than one engine batch (P2PIO_SUBMIT_BATCH, 64) */
#define SLOT (96u << 10)		/* each request's own destination slot */

static char path[PATH_MAX];
static uint64_t seed;

static bool poll_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static void run_batch(enum p2pio_path path_id, const char *what)
{
	struct p2pio_req req[NR];
	struct p2pio_cqe cqe[NR];
	struct p2pio_cqe_phases ph[NR];
	struct p2pio_ctx_stats st = { .size = sizeof(st) };
	struct p2pio_error err = { 0 };
	struct p2pio_file *f = NULL;
	struct p2pio_buf *buf = NULL;
	struct p2pio_queue *q = NULL;
	struct p2pio_ctx *ctx;
	bool seen[NR] = { false }, data_ok = true, tags_ok = true, guards = true;
	uint64_t want_bytes = 0;
	int i, n, got = 0, polls = 0, phased;
	bool ordered = true;
	uint8_t *mem;

	ctx = efx_host_ctx(path_id, CHUNK, 0);
	if (!ctx || p2pio_file_open(ctx, path, 0, &f, &err) ||
	    p2pio_buf_alloc(ctx, P2PIO_MEM_HOST, (uint64_t)NR * SLOT, &buf, &err) ||
	    p2pio_queue_create(ctx, &q)) {
		tap_bail("cannot set up a context, file, buffer and queue");
	}
	mem = p2pio_buf_host_ptr(buf);
	memset(mem, EFX_GUARD, (size_t)NR * SLOT);
	for (i = 0; i < NR; i++) {
		uint64_t off = efx_rand(&seed) % FILE_SIZE;
		uint64_t max = FILE_SIZE - off < SLOT - 8192 ? FILE_SIZE - off : SLOT - 8192;

		req[i] = (struct p2pio_req){
			.file = f,
			.file_offset = off,
			.length = efx_rand(&seed) % (max + 1),
			.buf = buf,
			.buf_offset = (uint64_t)i * SLOT + efx_rand(&seed) % 4096,
			.tag = 1000 + (uint64_t)i,
		};
		want_bytes += req[i].length;
	}
	tap_ok(!poll_readable(p2pio_queue_fd(q), 0), "%s: fd not readable before submitting",
	       what);
	tap_is_int(p2pio_submit(q, req, NR), NR, "%s: submitted a batch of %d", what, NR);
	tap_ok(p2pio_inflight(q) == NR, "%s: %u reads in flight", what, p2pio_inflight(q));
	while (got < NR && polls < 1000) {
		polls++;
		if (!poll_readable(p2pio_queue_fd(q), 10000))
			break;
		n = p2pio_complete(q, cqe, NR, 0, 0);
		for (i = 0; i < n; i++) {
			uint64_t t = cqe[i].tag - 1000;

			if (t >= NR || seen[t] || cqe[i].res ||
			    cqe[i].bytes != req[t].length || cqe[i].path != (uint32_t)path_id) {
				tags_ok = false;
				continue;
			}
			seen[t] = true;
			got++;
		}
	}
	tap_ok(got == NR && tags_ok, "%s: every tag completed once, successfully, by poll + reap (%d polls)",
	       what, polls);
	tap_ok(!poll_readable(p2pio_queue_fd(q), 0) && p2pio_inflight(q) == 0,
	       "%s: fd not readable once everything is reaped", what);
	for (i = 0; i < NR; i++) {
		uint8_t *slot = mem + (uint64_t)i * SLOT;
		uint64_t d = req[i].buf_offset - (uint64_t)i * SLOT;

		if (efx_mismatch(slot + d, req[i].file_offset, req[i].length) >= 0)
			data_ok = false;
		if (!efx_guard_intact(slot, d) ||
		    !efx_guard_intact(slot + d + req[i].length, SLOT - d - req[i].length))
			guards = false;
	}
	tap_ok(data_ok && guards, "%s: all %d destinations byte-exact, guards intact", what, NR);

	/*
	 * Blocking reap: submit again and wait for all with min == NR, with each read's
	 * phases (the expert cache's breakdown): every read that moved bytes was submitted
	 * (its completion less its latency), handed to a worker, read and completed, in that
	 * order.
	 */
	tap_is_int(p2pio_submit(q, req, NR), NR, "%s: resubmitted", what);
	tap_is_int(p2pio_complete_phases(q, cqe, ph, NR, NR, 20000), NR,
		   "%s: p2pio_complete_phases(min=%d) waits for all", what, NR);
	for (i = 0, phased = 0; i < NR; i++) {
		uint64_t t = cqe[i].tag - 1000, submitted = ph[i].done_ns - cqe[i].latency_ns;

		if (t >= NR || !req[t].length)
			continue;
		if (ph[i].done_ns > cqe[i].latency_ns && submitted <= ph[i].taken_ns &&
		    ph[i].taken_ns <= ph[i].landed_ns && ph[i].landed_ns <= ph[i].done_ns)
			phased++;
		else
			ordered = false;
	}
	tap_ok(ordered && phased > 0, "%s: %d reads: submitted <= taken <= landed <= done",
	       what, phased);
	tap_is_int(p2pio_complete(q, cqe, NR, 1, 100), 0,
		   "%s: waiting with nothing in flight returns 0 at once", what);

	/* A bad request in the middle: the ones before it are queued. */
	req[5].length = FILE_SIZE;
	tap_is_int(p2pio_submit(q, req, 10), 5, "%s: submit stops at an invalid request", what);
	tap_is_int(p2pio_submit(q, req + 5, 1), -ENODATA, "%s: ... which alone gives -ENODATA",
		   what);
	req[5].length = 1;
	req[6].flags = P2PIO_REQ_STREAM;
	tap_is_int(p2pio_submit(q, req + 6, 1), -ENODEV,
		   "%s: a stream-ordered read on a host context gives -ENODEV", what);
	req[6].flags = 0;
	tap_is_int(p2pio_complete(q, cqe, NR, 5, 20000), 5, "%s: the 5 queued complete", what);

	p2pio_ctx_stats(ctx, &st, true);
	tap_ok(st.path[path_id].requests == 2 * NR + 5 && st.path[path_id].errors == 0,
	       "%s: statistics: %llu requests, %llu errors", what,
	       (unsigned long long)st.path[path_id].requests,
	       (unsigned long long)st.path[path_id].errors);
	p2pio_ctx_stats(ctx, &st, false);
	tap_ok(st.path[P2PIO_PATH_AUTO].requests == 0 && st.waits == 0,
	       "%s: statistics reset", what);

	/* Destroying a queue with reads in flight waits for them. */
	p2pio_submit(q, req, NR);
	p2pio_queue_destroy(q);
	p2pio_buf_free(buf);
	p2pio_file_close(f);
	p2pio_ctx_destroy(ctx);
	(void)want_bytes;
}

/* A file that shrinks after it was opened: reads beyond the new end fail with -ENODATA. */
static void run_shrunk(enum p2pio_path path_id, const char *what)
{
	char copy[PATH_MAX];
	struct p2pio_req req[2];
	struct p2pio_cqe cqe[2];
	struct p2pio_file *f = NULL;
	struct p2pio_buf *buf = NULL;
	struct p2pio_queue *q = NULL;
	struct p2pio_ctx *ctx;
	int n, res[2] = { 1, 1 };

	ctx = efx_host_ctx(path_id, CHUNK, 0);
	if (!ctx || efx_make_file(copy, FILE_SIZE) || p2pio_file_open(ctx, copy, 0, &f, NULL) ||
	    p2pio_buf_alloc(ctx, P2PIO_MEM_HOST, FILE_SIZE, &buf, NULL) ||
	    p2pio_queue_create(ctx, &q))
		tap_bail("cannot set up the shrinking file");
	if (truncate(copy, FILE_SIZE / 2))
		tap_bail("truncate");
	req[0] = (struct p2pio_req){ .file = f, .file_offset = 0, .length = FILE_SIZE / 4,
				     .buf = buf, .tag = 0 };
	req[1] = (struct p2pio_req){ .file = f, .file_offset = FILE_SIZE / 2 - 100,
				     .length = 300000, .buf = buf, .buf_offset = 1, .tag = 1 };
	tap_is_int(p2pio_submit(q, req, 2), 2, "%s: reads of a shrunk file submitted", what);
	n = p2pio_complete(q, cqe, 2, 2, 20000);
	for (int i = 0; i < n; i++)
		if (cqe[i].tag < 2)
			res[cqe[i].tag] = cqe[i].res;
	tap_ok(n == 2 && res[0] == 0 && res[1] == -ENODATA,
	       "%s: the read inside the file succeeds, the one past its new end fails with ENODATA (%d, %d)",
	       what, res[0], res[1]);
	tap_is_int(p2pio_read(f, FILE_SIZE - 10, 10, buf, 0), -ENODATA,
		   "%s: synchronous read past the new end: ENODATA", what);
	p2pio_queue_destroy(q);
	p2pio_buf_free(buf);
	p2pio_file_close(f);
	p2pio_ctx_destroy(ctx);
	unlink(copy);
}

static void run_bad_files(void)
{
	struct p2pio_error err = { 0 };
	struct p2pio_file *f = NULL;
	struct p2pio_ctx *ctx = efx_host_ctx(P2PIO_PATH_AUTO, CHUNK, 0);
	int fd;

	tap_is_int(p2pio_file_open_fd(ctx, 987, 0, &f, &err), -EBADF, "a closed fd: -EBADF (%s)",
		   err.msg);
	tap_is_int(p2pio_file_open(ctx, "/nonexistent/p2pio", 0, &f, &err), -ENOENT,
		   "a missing file: -ENOENT");
	fd = open("/tmp", O_RDONLY | O_DIRECTORY);
	tap_is_int(p2pio_file_open_fd(ctx, fd, 0, &f, &err), -EINVAL,
		   "a directory: -EINVAL (%s)", err.msg);
	close(fd);
	tap_is_int(p2pio_file_open(ctx, path, 9, &f, &err), -EINVAL, "unknown open flags: -EINVAL");
	tap_ok(f == NULL, "no file handed back on failure");
	p2pio_ctx_destroy(ctx);
}

int main(void)
{
	seed = getenv("P2PIO_SEED") ? strtoull(getenv("P2PIO_SEED"), NULL, 0) :
				      (uint64_t)time(NULL) | 1;
	tap_plan(2 * 16 + 2 * 3 + 5);
	tap_diag("seed %llu (set P2PIO_SEED to repeat)", (unsigned long long)seed);
	if (efx_make_file(path, FILE_SIZE))
		tap_bail("cannot create the test file");
	run_batch(P2PIO_PATH_POSIX, "posix");
	run_batch(P2PIO_PATH_BOUNCE, "bounce");
	run_shrunk(P2PIO_PATH_POSIX, "posix");
	run_shrunk(P2PIO_PATH_BOUNCE, "bounce");
	run_bad_files();
	unlink(path);
	return tap_exit();
}
