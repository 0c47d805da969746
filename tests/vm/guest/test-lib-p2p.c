// SPDX-License-Identifier: MIT
/*
 * test-lib-p2p - the library's P2P path, unchanged, on the NVIDIA test double.
 *
 * A host-only context (there is no CUDA in the VM) reads into "GPU memory" from the
 * double's allocator (P2PIO_MEM_NVDOUBLE), which the library pins through /dev/p2pio like
 * CUDA memory. For every data file of the VM:
 *  - AUTO takes P2P on the NVMe file systems, and on the others says why not (metadata
 *    namespaces, separate or extended LBAs: EPROTONOSUPPORT; virtio and loop: ENOTBLK)
 *    and takes BOUNCE; so it does for a user who may read a file but not register it
 *    (nobody and a root-owned file: EACCES), saying so; and so it does for a user whose
 *    pins the module refuses (nobody, with persistent pins refused as under MIG or vGPU:
 *    only callback pins would work, and they are root's: EPERM), while a forced P2P read
 *    fails with EPERM, saying so;
 *  - the whole file, then random reads at any offset, length and destination offset
 *    (unaligned heads and tails, pieces across pin windows), land byte for byte as a
 *    buffered pread() of the same range reads them, with the bytes around each
 *    destination untouched;
 *  - a batch of asynchronous reads completes through the queue's pollable fd, every
 *    completion saying P2P;
 *  - with the double's BAR1 aperture cut to 1 MiB (module parameter bar1_kib), reads into a
 *    buffer many times that size still land byte for byte: the library unpins its least
 *    recently used idle windows when a pin fails with -ENOMEM; cut below one window, a read
 *    fails with that error instead of hanging, and nothing stays pinned;
 *  - with the module's max_user_pins cut to 3, the same: windows unpinned at EDQUOT;
 *  - plain reads beyond queue_depth x chunk_size wait in the library: an urgent read
 *    submitted after 24 plain ones completes among the first 5; held reads are
 *    withdrawn by p2pio_cancel() (never land, no completion) or sent at once by
 *    p2pio_hasten() (one submitted last completes among the first 5); with nothing held,
 *    an urgent read submitted last in a batch is sent first (among the first 3).
 * Then the guest's CPU time per GiB (all CPUs, /proc/stat: the kernel's interrupt and
 * io_uring worker time included) of P2P against BOUNCE for the largest file, side by side.
 *
 * Linked with libp2pio.a (tests/vm/Makefile's rule for test-lib-*.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "p2pio.h"
#include "tap.h"
#include "vmlib.h"

#define POISON 0x5a
#define GUARD 4096
#define ROUNDS 24
#define MAX_USER_PINS "/sys/module/p2pio/parameters/max_user_pins"
#define BATCH 32
#define MAXLEN (64 * VM_MIB)

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint8_t *want;

/* Busy and total jiffies of all CPUs, from /proc/stat. */
static void cpu_jiffies(uint64_t *busy, uint64_t *total)
{
	unsigned long long v[10] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	int i;

	*busy = *total = 0;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
		   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) >= 8) {
		for (i = 0; i < 10; i++)
			*total += v[i];
		*busy = *total - v[3] - v[4];	/* all but idle and iowait */
	}
	fclose(f);
}

/* One read into the middle of a poisoned window; true if it matches pread and guards. */
static bool read_check(struct p2pio_file *f, int fd, struct p2pio_buf *buf, uint64_t blen,
		       uint64_t off, uint64_t len, uint64_t dst, int *ret)
{
	uint8_t *mem = p2pio_buf_host_ptr(buf);
	uint64_t lo = dst < GUARD ? 0 : dst - GUARD;
	uint64_t hi = dst + len + GUARD > blen ? blen : dst + len + GUARD;
	uint64_t i;

	memset(mem + lo, POISON, hi - lo);
	*ret = p2pio_read(f, off, len, buf, dst);
	if (*ret)
		return false;
	if (pread(fd, want, len, (off_t)off) != (ssize_t)len)
		return false;
	if (memcmp(mem + dst, want, len)) {
		tap_diag("data of read off=%llu len=%llu dst=%llu differs", (unsigned long long)off,
			 (unsigned long long)len, (unsigned long long)dst);
		return false;
	}
	for (i = lo; i < hi; i++) {
		if ((i < dst || i >= dst + len) && mem[i] != POISON) {
			tap_diag("byte %llu outside read off=%llu len=%llu dst=%llu was written",
				 (unsigned long long)i, (unsigned long long)off,
				 (unsigned long long)len, (unsigned long long)dst);
			return false;
		}
	}
	return true;
}

static struct p2pio_ctx *host_ctx(enum p2pio_path path, uint64_t window)
{
	struct p2pio_ctx_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *ctx = NULL;

	p2pio_ctx_opts_init(&o);
	o.device = P2PIO_DEVICE_HOST;
	o.path = path;
	o.chunk_size = 1 * VM_MIB;
	o.queue_depth = 8;
	o.pin_window = window;
	if (p2pio_ctx_create(&o, &ctx, &err))
		tap_diag("context: %s", err.msg);
	return ctx;
}

/* What a test's set-up opened, each part where it got that far. */
static void close_all(struct p2pio_ctx *c, struct p2pio_file *f, struct p2pio_buf *buf, int fd)
{
	p2pio_buf_free(buf);
	p2pio_file_close(f);
	p2pio_ctx_destroy(c);
	if (fd >= 0)
		close(fd);
}

/* An async batch through the queue and its fd: every tag back, by P2P, data right. */
static bool batch(struct p2pio_ctx *ctx, struct p2pio_file *f, int fd, struct p2pio_buf *buf,
		  uint64_t size)
{
	struct p2pio_req r[BATCH];
	struct p2pio_cqe c[BATCH];
	struct p2pio_queue *q;
	uint8_t *mem = p2pio_buf_host_ptr(buf);
	struct pollfd pfd;
	int i, n, got = 0;
	bool ok = true;

	if (p2pio_queue_create(ctx, &q))
		return false;
	for (i = 0; i < BATCH; i++) {
		uint64_t off = vm_rand(&rng) % size;
		uint64_t len = 1 + vm_rand(&rng) % (size - off < 65536 ? size - off : 65536);

		/* Destination and file offset alike modulo 4: the PRP rule lets P2P take it. */
		r[i] = (struct p2pio_req){ .file = f, .file_offset = off, .length = len,
					   .buf = buf, .buf_offset = (uint64_t)i * 70000 + off % 4,
					   .tag = (uint64_t)i };
	}
	if (p2pio_submit(q, r, BATCH) != BATCH)
		ok = false;
	pfd = (struct pollfd){ .fd = p2pio_queue_fd(q), .events = POLLIN };
	while (ok && got < BATCH && poll(&pfd, 1, 30000) == 1) {
		n = p2pio_complete(q, c + got, BATCH - got, 0, 0);
		got += n > 0 ? n : 0;
	}
	for (i = 0; ok && i < got; i++) {
		const struct p2pio_req *rq = &r[c[i].tag % BATCH];

		if (c[i].res || c[i].path != P2PIO_PATH_P2P ||
		    pread(fd, want, rq->length, (off_t)rq->file_offset) != (ssize_t)rq->length ||
		    memcmp(mem + rq->buf_offset, want, rq->length)) {
			tap_diag("batch read %llu: res %d path %u", (unsigned long long)c[i].tag,
				 c[i].res, c[i].path);
			ok = false;
		}
	}
	p2pio_queue_destroy(q);
	return ok && got == BATCH;
}

struct reader {
	pthread_t th;
	struct p2pio_file *f;
	struct p2pio_buf *buf;
	uint64_t off, len, dst;
	int ret;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	int i;

	for (i = 0; i < 4 && !r->ret; i++)
		r->ret = p2pio_read(r->f, r->off, r->len, r->buf, r->dst);
	return NULL;
}

/*
 * Threads reading into one context whose windows fill BAR1: one that finds no room waits
 * for the others' pieces instead of failing, and none holds windows while it waits.
 */
static bool concurrent_readers(struct p2pio_file *f, int fd, struct p2pio_buf *buf,
			       uint64_t size)
{
	struct reader r[3];
	uint8_t *mem = p2pio_buf_host_ptr(buf);
	uint64_t part = (size / 3) & ~4095ull;
	bool ok = part > 0;
	int i;

	for (i = 0; i < 3 && ok; i++) {
		r[i] = (struct reader){ .f = f, .buf = buf, .off = (uint64_t)i * part, .len = part,
					.dst = (uint64_t)i * part + GUARD };
		memset(mem + r[i].dst, POISON, part);
		ok = !pthread_create(&r[i].th, NULL, reader_main, &r[i]);
	}
	while (i-- > 0) {
		pthread_join(r[i].th, NULL);
		if (r[i].ret) {
			tap_diag("reader %d: %s", i, p2pio_strerror(r[i].ret));
			ok = false;
		} else if (pread(fd, want, part, (off_t)r[i].off) != (ssize_t)part ||
			   memcmp(mem + r[i].dst, want, part)) {
			tap_diag("reader %d: data differs", i);
			ok = false;
		}
	}
	return ok;
}

/*
 * BAR1 smaller than the destination: a 1 MiB aperture, 256 KiB windows (each pin is a
 * window plus one 64 KiB page), so @path, read whole and at random into a buffer larger
 * than itself, needs the library to unpin idle windows and pin again, many times.
 */
static void small_bar1(const char *path, uint64_t size)
{
	struct p2pio_ctx *c = host_ctx(P2PIO_PATH_P2P, 256 * VM_KIB);
	struct nvdouble_info i0 = { 0 }, i1 = { 0 }, i2 = { 0 };
	uint64_t blen = size + 2 * GUARD + 3 * VM_MIB, off, len, dst;
	struct p2pio_error err = { 0 };
	struct p2pio_file *f = NULL;
	struct p2pio_buf *buf = NULL;
	int fd = open(path, O_RDONLY), i, ret = 0;
	bool ok = true;

	if (!c || fd < 0 || vm_nvd_info(&i0) || p2pio_file_open(c, path, 0, &f, &err) ||
	    p2pio_buf_alloc(c, P2PIO_MEM_NVDOUBLE, blen, &buf, &err)) {
		tap_ok(0, "small BAR1: set-up: %s", err.msg);
		goto out;
	}
	if (vm_nvd_set_bar1_kib(1024)) {
		tap_skip(4, "the double has no bar1_kib parameter");
		goto out;
	}
	ok &= read_check(f, fd, buf, blen, 0, size, GUARD, &ret);
	ok &= read_check(f, fd, buf, blen, 0, size, blen - GUARD - size, &ret);
	for (i = 0; i < ROUNDS && ok; i++) {
		off = (vm_rand(&rng) % size) & ~4095ull;
		len = 1 + vm_rand(&rng) % (size - off < 8 * VM_MIB ? size - off : 8 * VM_MIB);
		dst = ((vm_rand(&rng) % (blen - len - 4)) & ~3ull) + off % 4;
		ok &= read_check(f, fd, buf, blen, off, len, dst, &ret);
	}
	vm_nvd_info(&i1);
	tap_ok(concurrent_readers(f, fd, buf, size),
	       "small BAR1: three threads reading %s four times each, byte-exact", path);
	tap_ok(ok && i1.pinned_bytes <= VM_MIB && i1.refused_bar1 > i0.refused_bar1,
	       "small BAR1 (1 MiB, %llu MiB buffer): %s whole twice and %d random reads byte-exact, %llu pins refused and recovered by unpinning idle windows%s%s",
	       (unsigned long long)(blen >> 20), path, ROUNDS,
	       (unsigned long long)(i1.refused_bar1 - i0.refused_bar1), ret ? ": " : "",
	       ret ? p2pio_strerror(ret) : "");
	/* Below one window nothing can be pinned: an error, not a wait for a free window. */
	p2pio_buf_free(buf);
	buf = NULL;
	if (p2pio_buf_alloc(c, P2PIO_MEM_NVDOUBLE, blen, &buf, &err)) {
		tap_ok(0, "small BAR1: a fresh buffer: %s", err.msg);
		goto out;
	}
	vm_nvd_set_bar1_kib(64);
	ret = p2pio_read(f, 0, size, buf, 0);
	tap_ok(ret == -ENOMEM, "a 64 KiB aperture, less than one window: the read fails (%s)",
	       p2pio_strerror(ret));
	p2pio_buf_free(buf);
	buf = NULL;
	vm_nvd_info(&i2);
	tap_is_u64(i2.pinned_bytes, i0.pinned_bytes,
		   "freeing the buffers unpinned every window it had");
out:
	vm_nvd_set_bar1_kib(0);
	close_all(c, f, buf, fd);
}

/*
 * The module's per-user bound on pins (max_user_pins) set to 3: @path, read whole and at
 * random into a buffer of many 256 KiB windows, needs the library to unpin idle windows
 * when a pin fails with EDQUOT, as it does when BAR1 is full, and pin again.
 */
static void few_pins(const char *path, uint64_t size)
{
	struct p2pio_ctx *c = host_ctx(P2PIO_PATH_P2P, 256 * VM_KIB);
	uint64_t blen = size + 2 * GUARD, off, len, dst;
	struct p2pio_error err = { 0 };
	struct p2pio_file *f = NULL;
	struct p2pio_buf *buf = NULL;
	char was[32] = "4096";
	int fd = open(path, O_RDONLY), i, ret = 0;
	bool ok = true;

	if (!c || fd < 0 || p2pio_file_open(c, path, 0, &f, &err) ||
	    p2pio_buf_alloc(c, P2PIO_MEM_NVDOUBLE, blen, &buf, &err)) {
		tap_ok(0, "few pins: set-up: %s", err.msg);
		goto out;
	}
	vm_read_str(MAX_USER_PINS, was, sizeof(was));
	if (!tap_is_int(vm_write_str(MAX_USER_PINS, "3"), 0, "max_user_pins set to 3"))
		goto out;
	ok &= read_check(f, fd, buf, blen, 0, size, GUARD, &ret);
	for (i = 0; i < ROUNDS && ok; i++) {
		off = (vm_rand(&rng) % size) & ~4095ull;
		len = 1 + vm_rand(&rng) % (size - off < 8 * VM_MIB ? size - off : 8 * VM_MIB);
		dst = ((vm_rand(&rng) % (blen - len - 4)) & ~3ull) + off % 4;
		ok &= read_check(f, fd, buf, blen, off, len, dst, &ret);
	}
	tap_ok(ok, "few pins (3 for %llu MiB in 256 KiB windows): %s whole and %d random reads byte-exact, idle windows unpinned at EDQUOT%s%s",
	       (unsigned long long)(blen >> 20), path, ROUNDS, ret ? ": " : "",
	       ret ? p2pio_strerror(ret) : "");
	vm_write_str(MAX_USER_PINS, was);
out:
	close_all(c, f, buf, fd);
}

/*
 * Held plain reads on P2P: a context of one 64 KiB chunk in flight (queue_depth 1), so
 * that one plain read is at the device and the rest wait in the library.
 */
#define HELD_NR 24
#define HELD_LEN (64 * VM_KIB)
#define HELD_TAG 900
#define HELD_SLACK 3
/* held_round()'s urgent read: none, last in the plain reads' submission, or its own after. */
#define HELD_URGENT_NONE 0
#define HELD_URGENT_BATCH 1
#define HELD_URGENT_AFTER 2
/* Rounds of the hastened read tried before giving up (held_reads()). */
#define HELD_TRIES 5
/* Read 0 is this long (64 KiB pieces): the reads after it stay held while it is read. */
#define HELD_FIRST (4 * VM_MIB)
#define HELD_BUF ((HELD_NR + 1) * HELD_LEN + HELD_FIRST)

/*
 * Submits HELD_NR plain reads (tag i reads chunk i into slot i) and, as @urgent says
 * (HELD_URGENT_*), one urgent read of chunk HELD_NR tagged HELD_TAG; then withdraws tags @cancel_from.. (each
 * alone, n = 1) or hastens tag @hasten (*@hastened: whether it was still held); reaps
 * everything into @order and checks every byte of what completed and that withdrawn
 * slots are still poison. The number completed, or -1 on a failure.
 */
static int held_round(struct p2pio_ctx *c, struct p2pio_file *f, int fd, struct p2pio_buf *buf,
		      int urgent, int cancel_from, int hasten, uint64_t *order, int *cancelled,
		      int *hastened)
{
	struct p2pio_req r[HELD_NR + 1];
	struct p2pio_cqe cqe[HELD_NR + 1];
	uint8_t *mem = p2pio_buf_host_ptr(buf);
	struct p2pio_queue *q;
	int n = HELD_NR + (urgent != HELD_URGENT_NONE), got = 0, k, i, want_done;

	*cancelled = 0;
	if (p2pio_queue_create(c, &q))
		return -1;
	memset(mem, POISON, HELD_BUF);
	for (i = 0; i <= HELD_NR; i++)
		r[i] = (struct p2pio_req){ .file = f, .file_offset = (uint64_t)i * HELD_LEN,
					   .length = HELD_LEN, .buf = buf,
					   .buf_offset = (uint64_t)i * HELD_LEN, .tag = (uint64_t)i };
	r[0].file_offset = r[0].buf_offset = (HELD_NR + 1) * HELD_LEN;
	r[0].length = HELD_FIRST;
	r[HELD_NR].tag = HELD_TAG;
	r[HELD_NR].flags = P2PIO_REQ_URGENT;
	if (urgent == HELD_URGENT_AFTER) {
		if (p2pio_submit(q, r, HELD_NR) != HELD_NR || p2pio_submit(q, &r[HELD_NR], 1) != 1)
			goto fail;
	} else if (p2pio_submit(q, r, (unsigned int)n) != n) {
		goto fail;
	}
	if (cancel_from >= 0)
		for (i = cancel_from; i < HELD_NR; i++)
			*cancelled += p2pio_cancel(q, (uint64_t)i, 1) == 1;
	if (hasten >= 0) {
		int h = p2pio_hasten(q, (uint64_t)hasten);

		if (h < 0 || h > 1)
			goto fail;
		*hastened = h;
		/*
		 * 0 only where the feeder sent it first: it goes when the read before it has
		 * been read, so (one read at the device at a time) nearly all the others have
		 * completed by now. Anything less is a held read that hasten missed.
		 */
		if (!h) {
			k = p2pio_complete(q, cqe, HELD_NR, 0, 0);
			for (i = 0; i < k; i++) {
				if (cqe[i].res || cqe[i].path != P2PIO_PATH_P2P)
					goto fail;
				order[got++] = cqe[i].tag;
			}
			if (got < HELD_NR - 2) {
				tap_diag("hasten found nothing held with %d of %d complete", got,
					 HELD_NR);
				goto fail;
			}
		}
	}
	want_done = n - *cancelled;
	if (p2pio_inflight(q) != (unsigned int)(want_done - got))
		goto fail;
	while (got < want_done) {
		k = p2pio_complete(q, cqe, (unsigned int)(want_done - got), 1, 30000);
		if (k <= 0)
			goto fail;
		for (i = 0; i < k; i++) {
			if (cqe[i].res || cqe[i].path != P2PIO_PATH_P2P)
				goto fail;
			order[got++] = cqe[i].tag;
		}
	}
	for (i = 0; i < n; i++) {
		bool withdrawn = cancel_from >= 0 && i >= cancel_from && i < HELD_NR;
		const uint8_t *at = mem + r[i].buf_offset;

		if (withdrawn) {
			for (uint64_t b = 0; b < r[i].length; b++)
				if (at[b] != POISON)
					goto fail;
			continue;
		}
		if (pread(fd, want, r[i].length, (off_t)r[i].file_offset) != (ssize_t)r[i].length ||
		    memcmp(at, want, r[i].length))
			goto fail;
	}
	p2pio_queue_destroy(q);
	return got;
fail:
	/* What is still in flight completes before the queue goes. */
	while (p2pio_inflight(q) && p2pio_complete(q, cqe, HELD_NR + 1, 1, 30000) > 0)
		;
	p2pio_queue_destroy(q);
	return -1;
}

static int held_position(const uint64_t *order, int n, uint64_t tag)
{
	for (int i = 0; i < n; i++)
		if (order[i] == tag)
			return i;
	return -1;
}

/*
 * A P2P context of HELD_LEN chunks, @depth of them at the device, with @flags; @path open
 * on it and a test-double buffer of HELD_BUF. False (and why in @err) on a failure.
 */
static bool held_open(const char *path, unsigned int depth, uint32_t flags,
		      struct p2pio_ctx **c, struct p2pio_file **f, struct p2pio_buf **buf,
		      struct p2pio_error *err)
{
	struct p2pio_ctx_opts o;

	p2pio_ctx_opts_init(&o);
	o.device = P2PIO_DEVICE_HOST;
	o.path = P2PIO_PATH_P2P;
	o.chunk_size = HELD_LEN;
	o.queue_depth = depth;
	o.flags = flags;
	return !p2pio_ctx_create(&o, c, err) && !p2pio_file_open(*c, path, 0, f, err) &&
	       !p2pio_buf_alloc(*c, P2PIO_MEM_NVDOUBLE, HELD_BUF, buf, err);
}

static void held_reads(const char *path)
{
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *c = NULL;
	struct p2pio_file *f = NULL;
	struct p2pio_buf *buf = NULL;
	uint64_t order[HELD_NR + 1];
	int fd = open(path, O_RDONLY), got, pos, cancelled, hastened = 0, tries = 0;

	if (fd < 0 || !held_open(path, 1, 0, &c, &f, &buf, &err)) {
		tap_ok(0, "held reads: set-up: %s", err.msg);
		goto out;
	}
	/*
	 * The urgent read goes past the 23 held ones; the device has read 0's 64 pieces
	 * ahead of it (2nd or 3rd in the VM), and the feeder may send one or two held reads
	 * before the second p2pio_submit() comes: two places more, as for the hastened read
	 * below. Held behind them, it would be 25th.
	 */
	got = held_round(c, f, fd, buf, HELD_URGENT_AFTER, -1, -1, order, &cancelled, NULL);
	pos = got > 0 ? held_position(order, got, HELD_TAG) : -1;
	if (!tap_ok(got == HELD_NR + 1 && pos >= 0 && pos < HELD_SLACK + 2,
		    "P2P: %d plain reads, then an urgent one in a p2pio_submit() of its own, "
		    "byte-exact; the urgent one completes among the first %d (at %d)", HELD_NR,
		    HELD_SLACK + 2, pos + 1))
		tap_diag("completed %d", got);
	got = held_round(c, f, fd, buf, HELD_URGENT_NONE, HELD_NR - 8, -1, order, &cancelled,
			 NULL);
	tap_ok(got == HELD_NR - 8 && cancelled == 8,
	       "P2P: 8 held plain reads withdrawn (%d): no completion, nothing landed; the "
	       "other %d byte-exact", cancelled, got);
	/*
	 * Two places more than the urgent read above: p2pio_hasten() comes from this
	 * thread after the submission, and the feeder may send a held read or two before
	 * it (a loaded clean-clone check had it 4th; held, it would be 24th).
	 */
	/*
	 * A round whose last read the feeder sent before p2pio_hasten() came (the submitter
	 * descheduled while 23 reads were read: once under a loaded host) shows nothing: it
	 * is run again.
	 */
	do
		got = held_round(c, f, fd, buf, HELD_URGENT_NONE, -1, HELD_NR - 1, order,
				 &cancelled, &hastened);
	while (got > 0 && !hastened && ++tries < HELD_TRIES);
	pos = got > 0 ? held_position(order, got, HELD_NR - 1) : -1;
	tap_ok(got == HELD_NR && hastened && pos >= 0 && pos < HELD_SLACK + 2,
	       "P2P: the last of %d plain reads hastened completes among the first %d (at %d), "
	       "all byte-exact (round %d)", HELD_NR, HELD_SLACK + 2, pos + 1, tries + 1);
	close_all(c, f, buf, -1);
	c = NULL;
	f = NULL;
	buf = NULL;
	/*
	 * Nothing held (128 chunks of room at the device: the plain reads' 5.4 MiB all go):
	 * the urgent read submitted last in the batch is still sent first, so it does not
	 * wait behind the 87 commands of the plain reads before it (sent in the order given
	 * it completed about 24th).
	 */
	if (!held_open(path, 128, 0, &c, &f, &buf, &err)) {
		tap_ok(0, "urgent first in a batch: set-up: %s", err.msg);
		goto out;
	}
	got = held_round(c, f, fd, buf, HELD_URGENT_BATCH, -1, -1, order, &cancelled, NULL);
	pos = got > 0 ? held_position(order, got, HELD_TAG) : -1;
	tap_ok(got == HELD_NR + 1 && pos >= 0 && pos < HELD_SLACK,
	       "P2P, nothing held: an urgent read submitted after %d plain ones in one batch is "
	       "sent before them and completes among the first %d (at %d), all byte-exact",
	       HELD_NR, HELD_SLACK, pos + 1);
out:
	close_all(c, f, buf, fd);
}

/*
 * P2PIO_CTX_URGENT_ALONE on P2P: an urgent read of HELD_FIRST (64 pieces) submitted
 * first, then HELD_NR plain ones, with room at the device for all of them (queue depth
 * 64), then the last plain one withdrawn at once. With the flag the plain reads are held
 * in the library until every piece of the urgent one is reaped: the last is withdrawn
 * (no completion, its slot still poison) and the urgent read completes first. Beside (the
 * default) they are sent at once: none can be withdrawn. Every byte checked.
 * Returns the urgent read's place among the completions, or -1 on a failure;
 * *@withdrawn: whether the last plain read was; *@out: whether the urgent read was
 * provably still out when the submission of all of them returned (submitted after the
 * call began, it completed its latency later, past the call's end).
 */
static int alone_round(const char *path, int fd, uint32_t flags, bool *withdrawn, bool *out)
{
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *c = NULL;
	struct p2pio_file *f = NULL;
	struct p2pio_buf *buf = NULL;
	struct p2pio_queue *q = NULL;
	struct p2pio_req r[HELD_NR + 1];
	struct p2pio_cqe cqe[HELD_NR + 1];
	uint8_t *mem;
	int got = 0, k, i, pos = -1, want_done = HELD_NR + 1;
	uint64_t t0, t1;

	*withdrawn = false;
	*out = false;
	if (!held_open(path, 64, flags, &c, &f, &buf, &err) || p2pio_queue_create(c, &q)) {
		tap_diag("urgent alone: set-up: %s", err.msg);
		goto out;
	}
	mem = p2pio_buf_host_ptr(buf);
	memset(mem, POISON, HELD_BUF);
	r[0] = (struct p2pio_req){ .file = f, .file_offset = (HELD_NR + 1) * HELD_LEN,
				   .length = HELD_FIRST, .buf = buf,
				   .buf_offset = (HELD_NR + 1) * HELD_LEN, .tag = HELD_TAG,
				   .flags = P2PIO_REQ_URGENT };
	for (i = 1; i <= HELD_NR; i++)
		r[i] = (struct p2pio_req){ .file = f, .file_offset = (uint64_t)i * HELD_LEN,
					   .length = HELD_LEN, .buf = buf,
					   .buf_offset = (uint64_t)i * HELD_LEN, .tag = (uint64_t)i };
	t0 = vm_now_ns();
	if (p2pio_submit(q, r, HELD_NR + 1) != HELD_NR + 1)
		goto out;
	t1 = vm_now_ns();
	*withdrawn = p2pio_cancel(q, HELD_NR, 1) == 1;
	want_done -= *withdrawn;
	while (got < want_done) {
		k = p2pio_complete(q, cqe, (unsigned int)(want_done - got), 1, 30000);
		if (k <= 0)
			goto out;
		for (i = 0; i < k; i++, got++) {
			if (cqe[i].res || cqe[i].path != P2PIO_PATH_P2P)
				goto out;
			if (cqe[i].tag == HELD_TAG) {
				pos = got;
				*out = t0 + cqe[i].latency_ns > t1;
			}
		}
	}
	for (i = 0; i <= HELD_NR; i++) {
		const uint8_t *at = mem + r[i].buf_offset;

		if (i == HELD_NR && *withdrawn) {
			for (uint64_t b = 0; b < r[i].length; b++)
				if (at[b] != POISON)
					pos = -1;
			continue;
		}
		if (pread(fd, want, r[i].length, (off_t)r[i].file_offset) != (ssize_t)r[i].length ||
		    memcmp(at, want, r[i].length))
			pos = -1;
	}
out:
	while (q && p2pio_inflight(q) && p2pio_complete(q, cqe, HELD_NR + 1, 1, 30000) > 0)
		;
	p2pio_queue_destroy(q);
	close_all(c, f, buf, -1);
	return got == want_done ? pos : -1;
}

/*
 * With the flag, only a round whose urgent read was still out when the plain reads were
 * queued shows them held: on a loaded machine the submitting thread may be preempted
 * between the urgent read and the plain ones long enough for the urgent one to be read
 * whole (then nothing is out to hold them for). Such a round is run again.
 */
#define ALONE_TRIES 5

static void urgent_alone(const char *path)
{
	int fd = open(path, O_RDONLY), pos, tries = 0;
	bool withdrawn, out;

	do
		pos = alone_round(path, fd, P2PIO_CTX_URGENT_ALONE, &withdrawn, &out);
	while (pos >= 0 && !out && ++tries < ALONE_TRIES);
	tap_ok(pos == 0 && withdrawn && out, "P2P, urgent reads alone: a 4 MiB urgent read and "
	       "%d plain ones after it: the plain ones held while it is read (the last "
	       "withdrawn: %d), it completes first (at %d), the rest byte-exact (round %d: the "
	       "urgent read still out when they were queued: %d)", HELD_NR, withdrawn, pos + 1,
	       tries + 1, out);
	pos = alone_round(path, fd, 0, &withdrawn, &out);
	tap_ok(pos >= 0 && !withdrawn, "P2P, beside (the default): the plain ones sent at once "
	       "(the last not withdrawn: %d), all byte-exact (the urgent one completed %d of %d)",
	       withdrawn, pos + 1, HELD_NR + 1);
	if (fd >= 0)
		close(fd);
}

/* CPU seconds per GiB of the guest reading @path whole @reps times into @buf. */
static double cpu_per_gib(struct p2pio_ctx *ctx, const char *path, unsigned int flags,
			  struct p2pio_buf *buf, uint64_t size, int reps, enum p2pio_path *used)
{
	struct p2pio_path_info info = { .size = sizeof(info) };
	struct p2pio_error err = { 0 };
	struct p2pio_file *f = NULL;
	uint64_t b0, t0, b1, t1;
	long hz = sysconf(_SC_CLK_TCK);
	int i, ret = 0;

	if (p2pio_file_open(ctx, path, flags, &f, &err)) {
		tap_diag("%s: %s", path, err.msg);
		return -1;
	}
	p2pio_path_info(f, &info);
	*used = info.path;
	cpu_jiffies(&b0, &t0);
	for (i = 0; i < reps && !ret; i++)
		ret = p2pio_read(f, 0, size, buf, 0);
	cpu_jiffies(&b1, &t1);
	p2pio_file_close(f);
	if (ret) {
		tap_diag("%s: reading by %s: %s", path, p2pio_path_name(info.path),
			 p2pio_strerror(ret));
		return -1;
	}
	return (double)(b1 - b0) / hz / ((double)size * reps / (1 << 30));
}

static void measure(const char *path, uint64_t size)
{
	struct p2pio_ctx *p2p = host_ctx(P2PIO_PATH_AUTO, 0), *bnc = host_ctx(P2PIO_PATH_BOUNCE, 0);
	struct p2pio_buf *gpu = NULL, *host = NULL;
	struct p2pio_error err = { 0 };
	enum p2pio_path u1 = 0, u2 = 0, u3 = 0;
	double c_p2p = -1, c_bh = -1, c_bg = -1;
	int reps = (int)(1024 * VM_MIB / size);

	if (reps < 1)
		reps = 1;
	if (p2p && bnc && !p2pio_buf_alloc(p2p, P2PIO_MEM_NVDOUBLE, size, &gpu, NULL) &&
	    !p2pio_buf_alloc(bnc, P2PIO_MEM_HOST, size, &host, NULL)) {
		c_p2p = cpu_per_gib(p2p, path, 0, gpu, size, reps, &u1);
		p2pio_buf_free(gpu);
		gpu = NULL;
		c_bh = cpu_per_gib(bnc, path, 0, host, size, reps, &u2);
		if (!p2pio_buf_alloc(bnc, P2PIO_MEM_NVDOUBLE, size, &gpu, &err))
			c_bg = cpu_per_gib(bnc, path, 0, gpu, size, reps, &u3);
		else
			tap_diag("test-double memory for BOUNCE: %s", err.msg);
	}
	tap_ok(c_p2p > 0 && c_bh > 0 && u1 == P2PIO_PATH_P2P && u2 == P2PIO_PATH_BOUNCE,
	       "guest CPU s/GiB, %s (%llu MiB x %d): P2P %.3f, BOUNCE into host memory %.3f (%.1fx P2P), BOUNCE into test-double memory %.3f (%.1fx)",
	       path, (unsigned long long)(size >> 20), reps, c_p2p, c_bh,
	       c_p2p > 0 ? c_bh / c_p2p : 0, c_bg, c_p2p > 0 ? c_bg / c_p2p : 0);
	p2pio_buf_free(gpu);
	p2pio_buf_free(host);
	p2pio_ctx_destroy(p2p);
	p2pio_ctx_destroy(bnc);
	(void)u3;
}

/*
 * As nobody, a root-owned world-readable file: the module refuses to register it (that
 * would lock its writers out), and AUTO falls back to BOUNCE saying why.
 */
static void nobody_fallback(void)
{
	char why[P2PIO_REASON_LEN + 64] = "";
	int pfds[2], st = -1;
	pid_t pid;
	ssize_t n;

	if (pipe(pfds)) {
		tap_ok(0, "pipe");
		return;
	}
	pid = fork();
	if (pid == 0) {
		struct p2pio_path_info info = { .size = sizeof(info) };
		struct p2pio_error err = { 0 };
		struct p2pio_ctx_opts o;
		struct p2pio_ctx *c = NULL;
		struct p2pio_file *f;
		int code;

		close(pfds[0]);
		if (!vm_drop_privileges())
			_exit(2);
		p2pio_ctx_opts_init(&o);
		o.device = P2PIO_DEVICE_HOST;
		/* the file was read above: in the page cache, AUTO would prefer buffered reads */
		o.flags |= P2PIO_CTX_NO_WARM_CHECK;
		if (p2pio_ctx_create(&o, &c, &err) ||
		    p2pio_file_open(c, vm_file_path("b1-pub"), 0, &f, &err))
			_exit(3);
		p2pio_path_info(f, &info);
		dprintf(pfds[1], "%s", info.why_not[P2PIO_PATH_P2P]);
		code = info.path == P2PIO_PATH_BOUNCE &&
		       strstr(info.why_not[P2PIO_PATH_P2P], "EACCES") ? 0 : 4;
		p2pio_file_close(f);
		p2pio_ctx_destroy(c);
		_exit(code);
	}
	close(pfds[1]);
	n = read(pfds[0], why, sizeof(why) - 1);
	why[n > 0 ? n : 0] = 0;
	close(pfds[0]);
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		st = -1;
	else
		st = WEXITSTATUS(st);
	tap_is_int(st, 0, "nobody, a root-owned file: AUTO takes BOUNCE; why not P2P: \"%s\"",
		   why);
}

/* Writes @s to the double's parameter @name; 0 or -errno. */
static int nvd_param(const char *name, const char *s)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/module/nvdouble/parameters/%s", name);
	return vm_write_str(path, s);
}

/* A context that does not prefer buffered reads of files in the page cache. */
static struct p2pio_ctx *cold_ctx(enum p2pio_path path)
{
	struct p2pio_ctx_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *ctx = NULL;

	p2pio_ctx_opts_init(&o);
	o.device = P2PIO_DEVICE_HOST;
	o.path = path;
	o.flags |= P2PIO_CTX_NO_WARM_CHECK;
	if (p2pio_ctx_create(&o, &ctx, &err))
		return NULL;
	return ctx;
}

/*
 * The child of nobody_pin_refused(), as nobody: AUTO, then a forced P2P, on @path (a file
 * nobody owns, so the module registers it). Returns a bit per failed check; the reasons
 * go to @out.
 */
static int nobody_pins(const char *path, int out)
{
	struct p2pio_path_info info = { .size = sizeof(info) };
	struct p2pio_ctx_stats st = { .size = sizeof(st) };
	struct p2pio_ctx *c = cold_ctx(P2PIO_PATH_AUTO), *forced = cold_ctx(P2PIO_PATH_P2P);
	struct p2pio_error err = { 0 };
	struct p2pio_buf *buf = NULL, *buf2 = NULL;
	struct p2pio_file *f = NULL, *g = NULL;
	uint64_t size = VM_MIB + 12288, blen = size + 2 * GUARD;
	int fd = open(path, O_RDONLY), code = 0, ret = 0;

	if (!c || !forced || fd < 0 || p2pio_file_open(c, path, 0, &f, &err) ||
	    p2pio_buf_alloc(c, P2PIO_MEM_NVDOUBLE, blen, &buf, &err))
		return 1;
	p2pio_path_info(f, &info);
	if (info.path != P2PIO_PATH_P2P)	/* registered: the pin is what fails */
		code |= 2;
	/* AUTO: the read lands, by BOUNCE, and the file says why */
	if (!read_check(f, fd, buf, blen, 0, size, GUARD, &ret))
		code |= 4;
	p2pio_path_info(f, &info);
	p2pio_ctx_stats(c, &st, false);
	dprintf(out, "AUTO: path %s (%s); why not P2P: %s\n", p2pio_path_name(info.path), info.why,
		info.why_not[P2PIO_PATH_P2P]);
	if (info.path != P2PIO_PATH_BOUNCE || !strstr(info.why_not[P2PIO_PATH_P2P], "EPERM") ||
	    !strstr(info.why_not[P2PIO_PATH_P2P], "CAP_SYS_ADMIN"))
		code |= 8;
	if (st.path[P2PIO_PATH_P2P].errors || !st.path[P2PIO_PATH_BOUNCE].requests)
		code |= 16;
	/* a second read goes straight by BOUNCE */
	if (!read_check(f, fd, buf, blen, 4096, 65536, GUARD + 4096, &ret))
		code |= 4;
	/* forced P2P: the read fails with EPERM and the file says why */
	if (p2pio_file_open(forced, path, 0, &g, &err) ||
	    p2pio_buf_alloc(forced, P2PIO_MEM_NVDOUBLE, blen, &buf2, &err))
		return code | 32;
	ret = p2pio_read(g, 0, 65536, buf2, 0);
	p2pio_path_info(g, &info);
	dprintf(out, "forced P2P: read %d (%s); why not P2P: %s", ret, p2pio_strerror(ret),
		info.why_not[P2PIO_PATH_P2P]);
	if (ret != -EPERM || info.path != P2PIO_PATH_P2P ||
	    !strstr(info.why_not[P2PIO_PATH_P2P], "EPERM"))
		code |= 64;
	p2pio_buf_free(buf2);
	p2pio_file_close(g);
	p2pio_buf_free(buf);
	p2pio_file_close(f);
	p2pio_ctx_destroy(forced);
	p2pio_ctx_destroy(c);
	close(fd);
	return code;
}

/*
 * The driver refuses persistent pins (MIG, vGPU: the double's persistent=0), so the
 * module could pin only with a free callback, which it allows root alone: nobody gets
 * EPERM for the pin of a file it may register. AUTO reads it by BOUNCE and says why; a
 * forced P2P read fails with EPERM, saying why.
 */
static void nobody_pin_refused(void)
{
	char why[2 * P2PIO_REASON_LEN + 256] = "", path[160];
	const char *src = vm_file_path("a1-1m");
	int pfds[2], st = -1, in = -1, outfd = -1;
	size_t len;
	ssize_t n;
	pid_t pid;

	snprintf(path, sizeof(path), "/mnt/a1/lib-nobody");
	/* a copy of a1-1m that nobody owns: the module lets its owner register it */
	in = src ? open(src, O_RDONLY) : -1;
	outfd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (in < 0 || outfd < 0 || pread(in, want, VM_MIB + 12288, 0) != VM_MIB + 12288 ||
	    write(outfd, want, VM_MIB + 12288) != VM_MIB + 12288 || fsync(outfd) ||
	    fchown(outfd, 65534, 65534)) {
		tap_ok(0, "a file nobody owns");
		goto out;
	}
	close(outfd);	/* a writer would make the registration ETXTBSY */
	outfd = -1;
	if (!tap_ok(!nvd_param("persistent", "0"), "the double refuses persistent pins (MIG, vGPU)") ||
	    pipe(pfds))
		goto out_param;
	pid = fork();
	if (pid == 0) {
		close(pfds[0]);
		_exit(vm_drop_privileges() ? nobody_pins(path, pfds[1]) : 128);
	}
	close(pfds[1]);
	/* to the end: a pipe closed early would kill the child (SIGPIPE) */
	for (len = 0; (n = read(pfds[0], why + len, sizeof(why) - 1 - len)) > 0;)
		len += n;
	why[len] = 0;
	close(pfds[0]);
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		st = -1;
	else
		st = WEXITSTATUS(st);
	tap_is_int(st, 0,
		   "nobody, persistent pins refused: AUTO reads by BOUNCE byte for byte, a forced P2P read fails with EPERM, both say why");
	tap_diag("%s", why);
out_param:
	nvd_param("persistent", "1");
out:
	if (in >= 0)
		close(in);
	if (outfd >= 0)
		close(outfd);
	unlink(path);
}

int main(void)
{
	struct p2pio_ctx *ctx, *small;
	struct p2pio_ctx_stats st = { .size = sizeof(st) };
	struct vm_file vf;
	char big[160] = "";
	uint64_t big_size = 0;
	int cur = 0, nr_p2p = 0;

	tap_plan_lazy();
	/* A 256 KiB pin window makes reads cross windows (and the LRU work) on small files. */
	ctx = host_ctx(P2PIO_PATH_AUTO, 0);
	small = host_ctx(P2PIO_PATH_AUTO, 256 * VM_KIB);
	want = malloc(MAXLEN);
	if (!ctx || !small || !want)
		tap_bail("cannot create contexts");
	while (vm_file_next(&cur, &vf)) {
		struct p2pio_path_info info = { .size = sizeof(info) };
		struct p2pio_ctx *c = vf.size <= 4 * VM_MIB ? small : ctx;
		struct p2pio_error err = { 0 };
		struct p2pio_file *f = NULL;
		struct p2pio_buf *buf = NULL;
		bool nvme = vf.name[0] == 'a' || vf.name[0] == 'b';
		uint64_t blen = vf.size + 2 * GUARD + 3 * VM_MIB, off, len, dst;
		bool ok = true;
		int fd, i, ret = 0;

		if (strcmp(vf.kind, "data") || vf.size > MAXLEN || strstr(vf.name, "-wr"))
			continue;
		if (p2pio_file_open(c, vf.path, 0, &f, &err)) {
			tap_ok(0, "%s: open: %s", vf.path, err.msg);
			continue;
		}
		p2pio_path_info(f, &info);
		if (!nvme) {
			const char *want_e = !strncmp(vf.name, "md-", 3) ||
						     !strncmp(vf.name, "mx-", 3) ?
						     "EPROTONOSUPPORT" : "ENOTBLK";

			tap_ok(info.path == P2PIO_PATH_BOUNCE &&
				       strstr(info.why_not[P2PIO_PATH_P2P], want_e),
			       "%s: AUTO takes %s; why not P2P: \"%s\"", vf.path,
			       p2pio_path_name(info.path), info.why_not[P2PIO_PATH_P2P]);
			p2pio_file_close(f);
			continue;
		}
		if (!tap_ok(info.path == P2PIO_PATH_P2P, "%s: AUTO takes P2P (%s%s)", vf.path,
			    info.why, info.why_not[P2PIO_PATH_P2P])) {
			p2pio_file_close(f);
			continue;
		}
		nr_p2p++;
		fd = open(vf.path, O_RDONLY);
		if (p2pio_buf_alloc(c, P2PIO_MEM_NVDOUBLE, blen, &buf, &err) || fd < 0) {
			tap_ok(0, "%s: test-double memory: %s", vf.path, err.msg);
			p2pio_file_close(f);
			continue;
		}
		ok &= read_check(f, fd, buf, blen, 0, vf.size, GUARD, &ret);
		ok &= read_check(f, fd, buf, blen, 0, vf.size, GUARD + 4, &ret);
		for (i = 0; i < ROUNDS && ok; i++) {
			off = vm_rand(&rng) % vf.size;
			if (i % 4 == 0)
				off -= off % info.lba_size;
			len = 1 + vm_rand(&rng) % (vf.size - off < 2 * VM_MIB ? vf.size - off :
										  2 * VM_MIB);
			/* Same dword alignment as the file offset, mostly: P2P can take it. */
			dst = GUARD + (vm_rand(&rng) % (VM_MIB / 4)) * 4 + (i % 3 ? off % 4 : 1);
			ok &= read_check(f, fd, buf, blen, off, len, dst, &ret);
		}
		tap_ok(ok, "%s (LBA %u): whole file and %d random reads byte-exact, guards intact%s%s",
		       vf.path, info.lba_size, ROUNDS, ret ? ": " : "",
		       ret ? p2pio_strerror(ret) : "");
		if (vf.size >= 4 * VM_MIB)
			tap_ok(batch(c, f, fd, buf, vf.size), "%s: a batch of %d async reads by P2P",
			       vf.path, BATCH);
		if (vf.size > big_size) {
			big_size = vf.size;
			snprintf(big, sizeof(big), "%s", vf.path);
		}
		close(fd);
		p2pio_buf_free(buf);
		p2pio_file_close(f);
	}
	tap_ok(nr_p2p >= 4, "%d files read through the library's P2P path", nr_p2p);
	p2pio_ctx_stats(ctx, &st, false);
	tap_ok(st.path[P2PIO_PATH_P2P].bytes > 0 && st.path[P2PIO_PATH_P2P].errors == 0,
	       "statistics: P2P delivered %llu bytes in %llu reads, read %llu from storage",
	       (unsigned long long)st.path[P2PIO_PATH_P2P].bytes,
	       (unsigned long long)st.path[P2PIO_PATH_P2P].requests,
	       (unsigned long long)st.path[P2PIO_PATH_P2P].bytes_read);
	p2pio_ctx_destroy(small);
	p2pio_ctx_destroy(ctx);
	if (big_size) {
		small_bar1(big, big_size);
		few_pins(big, big_size);
	} else {
		tap_ok(0, "no NVMe data file for the small-BAR1 test");
	}
	if (big_size) {
		held_reads(big);
		urgent_alone(big);
		measure(big, big_size);
	}
	nobody_fallback();
	nobody_pin_refused();
	free(want);
	return tap_exit();
}
