// SPDX-License-Identifier: MIT
/*
 * test-lib-rereg - the library's P2P path when a file's layout lease breaks under it.
 *
 * A registered file cannot be written, so what breaks its lease is a change of its block
 * map that keeps its bytes: a dedupe (duperemove), a reflink copy of it, a defrag. The
 * module then fails every read of that registration with ESTALE. The library must
 * recover where it can: register the file again and send the failed reads again, those
 * queued against the old handle too, unregister the old handle, and say so.
 *
 * On each xfs file system (reflink on: mkfs.xfs's default), a host context (no CUDA in
 * the VM) with "GPU memory" of the NVIDIA test double and a plain-byte limit of one
 * 64 KiB chunk (so that reads wait in the library, held, against the old handle):
 *  - "rr-victim" (4 MiB) read whole by AUTO's P2P; then a twin with other bytes is
 *    deduped into it (FIDEDUPERANGE through a read-only fd): xfs breaks the victim's
 *    layout lease before it compares, finds the bytes differ and changes nothing, as for
 *    duperemove's candidates that are not duplicates after all. The registration is
 *    stale; the file could be registered again. 16 reads of 256 KiB submitted before the
 *    dedupe (most held in the library) and 16 after must all complete by P2P, every
 *    byte checked by the host; the file's reason says it was registered again; the
 *    module has as many files registered as before (the stale handle is gone) and
 *    counted failed reads (the ESTALE ones, sent again);
 *  - "rr-dup" with a same-content twin deduped into it for real: the file now shares
 *    its blocks and registering it again is refused (ENODATA). An AUTO file moves to its
 *    fallback (BOUNCE), saying why, and its reads, queued before and submitted after,
 *    land byte for byte; a forced P2P file's reads fail with ENODATA (not ESTALE), and
 *    its reason says why.
 * Before the library registered files again, every read after the break failed with
 * ESTALE.
 *
 * Linked with libp2pio.a (tests/vm/Makefile's rule for test-lib-*.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2pio.h"
#include "tap.h"
#include "vmlib.h"

#define LEN (4 * VM_MIB)
#define RLEN (256 * VM_KIB)
#define NR (LEN / RLEN)
#define POISON 0x6b

static int pfd, nvd;

static struct p2pio_ctx *mk_ctx(void)
{
	struct p2pio_ctx_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *ctx = NULL;

	p2pio_ctx_opts_init(&o);
	o.device = P2PIO_DEVICE_HOST;
	o.chunk_size = 64 * VM_KIB;
	o.queue_depth = 1;	/* one 64 KiB chunk at the device: the rest wait here */
	if (p2pio_ctx_create(&o, &ctx, &err))
		tap_diag("context: %s", err.msg);
	return ctx;
}

static uint64_t live_files(void)
{
	struct p2pio_stats s;

	if (vm_p2p_stats(pfd, P2PIO_STATS_GLOBAL, &s))
		return ~0ull;
	return s.live_files;
}

static uint64_t reads_failed(void)
{
	struct p2pio_stats s;

	if (vm_p2p_stats(pfd, P2PIO_STATS_GLOBAL, &s))
		return 0;
	return s.reads_failed;
}

/* Submit the whole file as NR reads of RLEN (the buffer's first or second half). */
static bool submit_all(struct p2pio_queue *q, struct p2pio_file *f, struct p2pio_buf *buf,
		       uint64_t half)
{
	struct p2pio_req r[NR];
	unsigned int i;

	for (i = 0; i < NR; i++)
		r[i] = (struct p2pio_req){ .file = f, .file_offset = i * RLEN, .length = RLEN,
					   .buf = buf, .buf_offset = half * LEN + i * RLEN,
					   .tag = half * NR + i };
	return p2pio_submit(q, r, NR) == (int)NR;
}

/* Completions of the last reap() by the path they name. */
static unsigned int reaped_by[P2PIO_PATH_NR];

/* Reap @n completions: how many succeeded, and by which path (all the same or -1). */

static unsigned int reap(struct p2pio_queue *q, unsigned int n, int *path, int *first_err)
{
	struct p2pio_cqe c[2 * NR];
	unsigned int ok = 0, i;
	int got = 0, k;

	memset(reaped_by, 0, sizeof(reaped_by));
	*path = -2;
	*first_err = 0;
	while ((unsigned int)got < n) {
		k = p2pio_complete(q, c + got, n - got, n - got, 30000);
		if (k <= 0)
			break;
		got += k;
	}
	for (i = 0; i < (unsigned int)got; i++) {
		if ((unsigned int)c[i].path < P2PIO_PATH_NR)
			reaped_by[c[i].path]++;
		if (!c[i].res)
			ok++;
		else if (!*first_err)
			*first_err = c[i].res;
		if (*path == -2)
			*path = (int)c[i].path;
		else if (*path != (int)c[i].path)
			*path = -1;
	}
	return ok;
}

/* The host compares the whole buffer (both halves) with @name's pattern. */
static bool host_check(struct p2pio_buf *buf, const char *pattern, const char *what)
{
	struct vm_mem m;
	bool ok;

	if (vm_gpu_lookup(nvd, p2pio_buf_addr(buf), 2 * LEN, &m))
		return tap_ok(0, "%s: the buffer's BAR pages", what);
	vm_mem_expect_file(&m, 0, LEN, pattern, 0);
	vm_mem_expect_file(&m, LEN, LEN, pattern, 0);
	ok = !vm_host_sync();
	if (!tap_ok(ok, "%s: every byte landed right (host)", what))
		tap_diag("%s", vm_host_why());
	vm_mem_release(&m);
	return ok;
}

static void poison(struct p2pio_buf *buf)
{
	memset(p2pio_buf_host_ptr(buf), POISON, 2 * LEN);
}

/* Two reads after the break, each checked by the host against the file @tag names. */
static void reads_after(struct p2pio_file *f, struct p2pio_buf *buf, const char *tag,
			const char *what)
{
	poison(buf);
	tap_is_int(p2pio_read(f, 0, LEN, buf, 0), 0, "%s: a read after", what);
	tap_is_int(p2pio_read(f, 0, LEN, buf, LEN), 0, "%s: and another", what);
	host_check(buf, tag, what);
}

/* What a case opened, closed and removed (NULL and -1 for what it did not get to). */
static void teardown(struct p2pio_queue *q, struct p2pio_buf *buf, struct p2pio_file *f,
		     struct p2pio_ctx *ctx, int xfd, int tfd, const char *twin,
		     const char *victim)
{
	p2pio_queue_destroy(q);
	p2pio_buf_free(buf);
	p2pio_file_close(f);
	p2pio_ctx_destroy(ctx);
	if (xfd >= 0)
		close(xfd);
	if (tfd >= 0)
		close(tfd);
	unlink(twin);
	unlink(victim);
}

/*
 * The victim's lease breaks, its block map stays: the library registers it again and
 * every read, held or sent after, completes by P2P.
 */
static void same_map(const char *mnt)
{
	char victim[128], twin[128], what[160];
	struct p2pio_path_info info = { .size = sizeof(info) };
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *ctx = mk_ctx();
	struct p2pio_file *f = NULL;
	struct p2pio_buf *buf = NULL;
	struct p2pio_queue *q = NULL;
	uint64_t files0, failed0;
	int xfd = -1, tfd = -1, path, e, ret;
	unsigned int ok;

	snprintf(victim, sizeof(victim), "%s/rr-victim", mnt);
	snprintf(twin, sizeof(twin), "%s/rr-twin", mnt);
	snprintf(what, sizeof(what), "%s same map", mnt);
	if (!tap_ok(ctx && !vm_make_pattern_file(victim, "rr-victim", LEN) &&
			    !vm_make_pattern_file(twin, "rr-twin", LEN),
		    "%s: victim and a twin of other bytes written", what))
		goto out;
	if (!tap_ok(!p2pio_file_open(ctx, victim, 0, &f, &err), "%s: open: %s", what, err.msg))
		goto out;
	p2pio_path_info(f, &info);
	if (!tap_ok(info.path == P2PIO_PATH_P2P, "%s: AUTO takes P2P (%s)", what, info.why))
		goto out;
	if (!tap_ok(!p2pio_buf_alloc(ctx, P2PIO_MEM_NVDOUBLE, 2 * LEN, &buf, &err) &&
			    !p2pio_queue_create(ctx, &q),
		    "%s: test-double memory and a queue", what))
		goto out;
	poison(buf);
	tap_is_int(p2pio_read(f, 0, LEN, buf, 0), 0, "%s: read whole before", what);
	tap_is_int(p2pio_read(f, 0, LEN, buf, LEN), 0, "%s: and again", what);
	host_check(buf, "rr-victim", what);
	files0 = live_files();
	failed0 = reads_failed();

	poison(buf);
	/* Queued before the break: most of them wait in the library, on the old handle. */
	tap_ok(submit_all(q, f, buf, 0), "%s: %u reads submitted before the break", what,
	       (unsigned int)NR);
	xfd = open(victim, O_RDONLY | O_CLOEXEC);
	tfd = open(twin, O_RDONLY | O_CLOEXEC);
	ret = vm_dedupe(tfd, xfd, LEN, NULL);
	tap_is_int(ret, -EILSEQ, "%s: a dedupe of other bytes into the victim: refused (differ)",
		   what);
	tap_ok(submit_all(q, f, buf, 1), "%s: %u reads submitted after the break", what,
	       (unsigned int)NR);
	ok = reap(q, 2 * NR, &path, &e);
	tap_ok(ok == 2 * NR && path == P2PIO_PATH_P2P,
	       "%s: all %u reads complete by P2P (%u did; path %d; first error %d)", what,
	       (unsigned int)(2 * NR), ok, path, e);
	host_check(buf, "rr-victim", what);
	tap_ok(reads_failed() > failed0,
	       "%s: the module failed reads of the stale registration (%llu), sent again", what,
	       (unsigned long long)(reads_failed() - failed0));
	memset(&info, 0, sizeof(info));
	info.size = sizeof(info);
	p2pio_path_info(f, &info);
	tap_ok(info.path == P2PIO_PATH_P2P && strstr(info.why, "registered again"),
	       "%s: the file stays on P2P and says it was registered again: \"%s\"", what,
	       info.why);
	tap_ok(live_files() == files0,
	       "%s: the stale handle is gone (%llu files registered, %llu before)", what,
	       (unsigned long long)live_files(), (unsigned long long)files0);
	reads_after(f, buf, "rr-victim", what);
out:
	teardown(q, buf, f, ctx, xfd, tfd, twin, victim);
}

/*
 * A real dedupe: the file shares its blocks and is refused from then on. AUTO moves the
 * file to its fallback; a forced P2P file's reads fail with the refusal.
 */
static void dup_map(const char *mnt, bool forced)
{
	char victim[128], twin[128], what[160];
	struct p2pio_path_info info = { .size = sizeof(info) };
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *ctx = mk_ctx();
	struct p2pio_file *f = NULL;
	struct p2pio_buf *buf = NULL;
	struct p2pio_queue *q = NULL;
	int xfd = -1, tfd = -1, wfd, path, e, ret;
	uint64_t files0;
	unsigned int ok;

	snprintf(victim, sizeof(victim), "%s/rr-dup", mnt);
	snprintf(twin, sizeof(twin), "%s/rr-dup-twin", mnt);
	snprintf(what, sizeof(what), "%s dedupe %s", mnt, forced ? "forced P2P" : "AUTO");
	if (!tap_ok(ctx && !vm_make_pattern_file(victim, "rr-dup", LEN) &&
			    !vm_make_pattern_file(twin, "rr-dup", LEN),
		    "%s: victim and a same-content twin written", what))
		goto out;
	if (!tap_ok(!p2pio_file_open(ctx, victim, forced ? P2PIO_PATH_P2P : 0, &f, &err),
		    "%s: open: %s", what, err.msg))
		goto out;
	if (!tap_ok(!p2pio_buf_alloc(ctx, P2PIO_MEM_NVDOUBLE, 2 * LEN, &buf, &err) &&
			    !p2pio_queue_create(ctx, &q),
		    "%s: test-double memory and a queue", what))
		goto out;
	poison(buf);
	tap_is_int(p2pio_read(f, 0, LEN, buf, 0), 0, "%s: read whole before", what);
	tap_is_int(p2pio_read(f, 0, LEN, buf, LEN), 0, "%s: and again", what);
	host_check(buf, "rr-dup", what);
	files0 = live_files();
	wfd = open(victim, O_WRONLY | O_CLOEXEC);
	tap_ok(wfd < 0 && errno == ETXTBSY, "%s: registered, the file cannot be written (%s)",
	       what, wfd < 0 ? strerror(errno) : "opened for writing");
	if (wfd >= 0)
		close(wfd);
	poison(buf);
	tap_ok(submit_all(q, f, buf, 0), "%s: reads submitted before the dedupe", what);
	xfd = open(victim, O_RDONLY | O_CLOEXEC);
	tfd = open(twin, O_RDONLY | O_CLOEXEC);
	ret = vm_dedupe(tfd, xfd, LEN, NULL);
	tap_is_int(ret, 0, "%s: the twin deduped into the victim", what);
	tap_ok(submit_all(q, f, buf, 1), "%s: reads submitted after it", what);
	ok = reap(q, 2 * NR, &path, &e);
	memset(&info, 0, sizeof(info));
	info.size = sizeof(info);
	p2pio_path_info(f, &info);
	if (forced) {
		/* Those sent before the break may have completed whole: the rest fail. */
		tap_ok(ok < 2 * NR && e == -ENODATA,
		       "%s: the reads after the break fail with ENODATA, not ESTALE (%u of %u ok, first error %d)",
		       what, ok, (unsigned int)(2 * NR), e);
		tap_ok(strstr(info.why_not[P2PIO_PATH_P2P], "refused it again: ENODATA") != NULL,
		       "%s: P2P's reason says so: \"%s\"", what, info.why_not[P2PIO_PATH_P2P]);
		tap_is_int(p2pio_read(f, 0, LEN, buf, 0), -ENODATA, "%s: a later read: ENODATA",
			   what);
	} else {
		tap_ok(ok == 2 * NR, "%s: all %u reads complete (%u did; first error %d)", what,
		       (unsigned int)(2 * NR), ok, e);
		/*
		 * The reads held in the library (one piece at the device) when the file was
		 * refused are read whole through pread(): their completions say POSIX (they
		 * said P2P); the ones that went out before say P2P, stale pieces and all, and
		 * those submitted after the file moved to BOUNCE say BOUNCE. The first half,
		 * 64 commands one at a time under TCG, is still being read at the dedupe.
		 */
		tap_ok(reaped_by[P2PIO_PATH_POSIX] >= 1 && reaped_by[P2PIO_PATH_BOUNCE] <= NR &&
			       reaped_by[P2PIO_PATH_P2P] + reaped_by[P2PIO_PATH_POSIX] +
					       reaped_by[P2PIO_PATH_BOUNCE] == 2 * NR,
		       "%s: the reads held when the file was refused complete as POSIX, the rest P2P or, sent after the move, BOUNCE (%u POSIX, %u P2P, %u BOUNCE)",
		       what, reaped_by[P2PIO_PATH_POSIX], reaped_by[P2PIO_PATH_P2P],
		       reaped_by[P2PIO_PATH_BOUNCE]);
		host_check(buf, "rr-dup", what);
		tap_ok(info.path == P2PIO_PATH_BOUNCE && strstr(info.why, "refused it again: ENODATA"),
		       "%s: the file moved to BOUNCE, saying why: \"%s\"", what, info.why);
		reads_after(f, buf, "rr-dup", what);
	}
	/*
	 * Refused for good, the stale registration serves nothing: it is gone once its
	 * reads are in, and with it the deny-write that kept the file from being written
	 * (it lasted until the file was closed).
	 */
	tap_ok(live_files() == files0 - 1,
	       "%s: the refused registration is gone with the file still open (%llu files registered, %llu before)",
	       what, (unsigned long long)live_files(), (unsigned long long)files0);
	wfd = open(victim, O_WRONLY | O_CLOEXEC);
	tap_ok(wfd >= 0, "%s: and the file can be opened for writing again (%s)", what,
	       wfd < 0 ? strerror(errno) : "ok");
	if (wfd >= 0)
		close(wfd);
out:
	teardown(q, buf, f, ctx, xfd, tfd, twin, victim);
}

int main(void)
{
	static const char *const xfs[] = { "/mnt/a2", "/mnt/b1" };
	size_t i;

	tap_plan_lazy();
	pfd = vm_test_open(&nvd, true);
	for (i = 0; i < sizeof(xfs) / sizeof(xfs[0]); i++) {
		same_map(xfs[i]);
		dup_map(xfs[i], false);
		dup_map(xfs[i], true);
	}
	tap_ok(vm_nothing_left(pfd), "nothing left registered, pinned or in flight");
	close(nvd);
	close(pfd);
	return tap_exit();
}
