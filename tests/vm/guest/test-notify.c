// SPDX-License-Identifier: MIT
/*
 * test-notify - to the kernel's watchers a p2pio read is a read: the checks read() makes
 * before it reads are made, and can refuse it; the events read() sends after it are sent.
 *
 * Before every read, read() asks the LSM (security_file_permission(): SELinux revalidates
 * a relabelled file there) and fanotify's permission listeners (FAN_ACCESS_PERM: content
 * scanners, hierarchical storage managers), with the reader's credentials; after it,
 * inotify and fanotify hear IN_ACCESS / FAN_ACCESS. The module once checked permission
 * only when the file was opened (session 11's review, F7). The LSM has no policy in the
 * VM, but on 6.1 fanotify's permission event is asked from inside the LSM hook and on
 * 6.12 beside it, both from rw_verify_area(): one listener shows both are asked.
 *
 * On an ext4 file (512 B LBAs) and an xfs file (4 KiB LBAs), with a fanotify listener
 * thread (FAN_CLASS_CONTENT) that answers FAN_DENY while told to, else FAN_ALLOW:
 *  - denied: one read, then a batch of four, each completes with EPERM, nothing lands
 *    (the host finds the destination still poisoned), and the listener was asked once
 *    per read;
 *  - allowed: the read lands byte for byte, the listener was asked, and it and an
 *    inotify watch hear the access.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define LEN (64 * VM_KIB)
#define BATCH 4
#define POISON 0x6b

static int pfd, nvd;

/* The listener: what it was asked and heard, and how it answers. */
static struct vm_fanotify fan;
static atomic_bool deny;
static atomic_uint asked, denied, heard, unanswered;

/* The listener: answers every read's FAN_ACCESS_PERM, counts FAN_ACCESS. */
static bool on_event(int fd, const struct fanotify_event_metadata *m)
{
	if (m->mask & FAN_ACCESS_PERM) {
		struct fanotify_response r = { .fd = m->fd };
		bool no = atomic_load(&deny);

		r.response = no ? FAN_DENY : FAN_ALLOW;
		/*
		 * Counted before the answer: the answer lets the read go on, and its caller
		 * reads the counts as soon as it returns.
		 */
		atomic_fetch_add(&asked, 1);
		if (no)
			atomic_fetch_add(&denied, 1);
		if (write(fd, &r, sizeof(r)) != sizeof(r))
			atomic_fetch_add(&unanswered, 1);
	}
	if (m->mask & FAN_ACCESS)
		atomic_fetch_add(&heard, 1);
	return false;
}

/* Waits up to a second for @count to reach @want (events are queued asynchronously). */
static unsigned wait_count(atomic_uint *count, unsigned want)
{
	for (int i = 0; i < 100 && atomic_load(count) < want; i++)
		vm_sleep_ms(10);
	return atomic_load(count);
}

/* Debian taints itself X for a fanotify permission mark: vm_fanotify_allow_taint(). */
static void allow_taint(void)
{
	if (vm_fanotify_allow_taint(&fan))
		tap_diag("fanotify_mark() tainted the kernel X (Debian: fanotify permission checks)");
}

/* Submits @n reads of the first @n * @len bytes of the file and reaps them all. */
static int read_batch(uint32_t file, uint32_t mem, unsigned n, uint64_t len, int *status)
{
	struct p2pio_read r[BATCH];
	struct p2pio_completion c[BATCH];
	uint32_t accepted = 0, got = 0, k;
	int ret;

	for (unsigned i = 0; i < n; i++)
		r[i] = (struct p2pio_read){ .file = file, .mem = mem, .file_offset = i * len,
					    .length = len, .mem_offset = i * len,
					    .user_tag = i };
	ret = vm_p2p_submit(pfd, r, n, &accepted);
	if (ret || accepted != n)
		return ret ? ret : -EAGAIN;
	while (got < n) {
		ret = vm_p2p_reap(pfd, c, n - got, 1, 10000000000ll, &k);
		if (ret)
			return ret;
		if (!k)
			return -ETIMEDOUT;
		for (uint32_t j = 0; j < k; j++)
			if (c[j].user_tag < n)
				status[c[j].user_tag] = c[j].status;
		got += k;
	}
	return 0;
}

static void one_file(const char *name)
{
	const char *path = vm_file_path(name);
	struct p2pio_register_file reg;
	struct vm_target t;
	int status[BATCH] = { 0 }, fd, ifd, ret;
	unsigned was, i, bad;
	char ev[256];

	if (!path || (fd = open(path, O_RDONLY)) < 0) {
		tap_ok(0, "%s: opened", name);
		return;
	}
	ret = vm_p2p_register(pfd, fd, &reg);
	if (!tap_ok(!ret, "%s: registered", name))
		tap_diag("register: %s", strerror(-ret));
	ret = vm_target_new(pfd, nvd, P2PIO_PROVIDER_NVIDIA, BATCH * LEN, 0, 0, 0, &t);
	if (!tap_ok(!ret, "%s: GPU memory pinned", name))
		tap_diag("target: %s", strerror(-ret));
	if (fanotify_mark(fan.fd, FAN_MARK_ADD, FAN_ACCESS_PERM | FAN_ACCESS, AT_FDCWD, path)) {
		tap_diag("fanotify_mark %s: %s", path, strerror(errno));
		tap_bail("fanotify_mark");
	}
	allow_taint();
	ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ifd < 0 || inotify_add_watch(ifd, path, IN_ACCESS) < 0) {
		tap_diag("inotify on %s: %s", path, strerror(errno));
		tap_bail("inotify");
	}

	/* Denied: one read, then a batch; nothing may land. */
	vm_mem_poison(&t.mem, 0, t.mem.size, POISON);
	tap_ok(!vm_host_sync(), "%s: destination poisoned", name);
	atomic_store(&deny, true);
	was = atomic_load(&denied);
	ret = vm_p2p_read(pfd, reg.handle, t.pin.handle, 0, LEN, 0);
	if (!tap_ok(ret == -EPERM, "%s: a read fanotify denies completes with EPERM", name))
		tap_diag("status %d (%s)", ret, strerror(-ret));
	tap_ok(atomic_load(&denied) == was + 1, "%s: the listener was asked before it (%u)",
	       name, atomic_load(&denied) - was);
	ret = read_batch(reg.handle, t.pin.handle, BATCH, LEN, status);
	for (i = 0, bad = 0; i < BATCH; i++)
		bad += status[i] != -EPERM;
	if (!tap_ok(!ret && !bad, "%s: each of a batch of %d denied reads completes with EPERM",
		    name, BATCH))
		tap_diag("batch %d, %u completions not EPERM (first %d)", ret, bad, status[0]);
	tap_ok(atomic_load(&denied) == was + 1 + BATCH, "%s: the listener was asked once per read",
	       name);
	atomic_store(&deny, false);
	vm_mem_expect_fill(&t.mem, 0, t.mem.size, POISON);
	if (!tap_ok(!vm_host_sync(), "%s: no byte of a denied read landed", name))
		tap_diag("%s", vm_host_why());
	tap_ok(read(ifd, ev, sizeof(ev)) < 0 && errno == EAGAIN,
	       "%s: a denied read is not an access to inotify", name);

	/* Allowed: the read lands, and the watchers hear it. */
	was = atomic_load(&asked);
	i = atomic_load(&heard);
	ret = vm_p2p_read(pfd, reg.handle, t.pin.handle, 0, LEN, 0);
	if (!tap_ok(!ret, "%s: a read fanotify allows completes", name))
		tap_diag("status %d (%s)", ret, strerror(-ret));
	tap_ok(atomic_load(&asked) == was + 1, "%s: the listener was asked before it", name);
	vm_mem_expect_file(&t.mem, 0, LEN, name, 0);
	if (!tap_ok(!vm_host_sync(), "%s: its bytes landed", name))
		tap_diag("%s", vm_host_why());
	tap_ok(wait_count(&heard, i + 1) == i + 1, "%s: fanotify heard one FAN_ACCESS", name);
	{
		const struct inotify_event *e = (const void *)ev;
		ssize_t n = read(ifd, ev, sizeof(ev));

		tap_ok(n >= (ssize_t)sizeof(*e) && (e->mask & IN_ACCESS),
		       "%s: inotify heard IN_ACCESS", name);
	}

	fanotify_mark(fan.fd, FAN_MARK_REMOVE, FAN_ACCESS_PERM | FAN_ACCESS, AT_FDCWD, path);
	close(ifd);
	tap_ok(!vm_target_free(pfd, &t), "%s: unpinned", name);
	tap_ok(!vm_p2p_unregister(pfd, reg.handle), "%s: unregistered", name);
	close(fd);
}

int main(void)
{
	static const char *const files[] = { "a1-1m", "a2-1m" };
	int ret;

	tap_plan(2 * 16 + 2);
	pfd = vm_test_open(&nvd, true);
	ret = vm_fanotify_start(&fan, on_event);
	if (ret) {
		/* The kernels of the matrix have CONFIG_FANOTIFY_ACCESS_PERMISSIONS. */
		tap_diag("fanotify listener: %s", strerror(-ret));
		tap_bail("fanotify listener");
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		one_file(files[i]);
	allow_taint();	/* whether the mark or the first event tainted */
	vm_fanotify_stop(&fan);
	tap_is_int((int)atomic_load(&unanswered), 0, "the listener answered every question");
	close(pfd);
	return tap_exit();
}
