// SPDX-License-Identifier: MIT
/*
 * test-regdedupe - a registration that races a dedupe into its file must not keep the
 * blocks the dedupe frees.
 *
 * xfs breaks layout leases before it takes a file's i_rwsem for a change of its block
 * map and once more right after, then holds the lock through the dedupe's compare and
 * the remap: it relies on lease takers holding that lock (as pNFS does). A registration
 * that took its lease without it could land inside the hold: it got the file's old
 * blocks and a lease no break ever reached, and the dedupe then freed the blocks under
 * it.
 *
 * On each xfs file system, rounds of: a victim and a same-content twin written and
 * dropped from the page cache (so that the dedupe's compare reads them from the disk, one
 * folio at a time, and takes long), a thread deduping the twin into the victim
 * (FIDEDUPERANGE through the victim's read-only fd), and the main thread registering the
 * victim again and again meanwhile, keeping each registration it gets. Once the dedupe
 * has returned, the victim's blocks are the twin's and its old ones are free: every
 * registration kept must be stale (a read fails with ESTALE and nothing lands), and
 * registering it again is refused (shared blocks). A registration that still reads is
 * one the dedupe did not break.
 *
 * The last round of each file system registers with P2PIO_REGISTER_NOWAIT (what the
 * library's completion thread sends when it registers a file again): while the dedupe
 * holds the file's I/O lock, the module answers EBUSY at once instead of waiting, so
 * such a round sees EBUSY, and each of its calls returns well before the dedupe ends;
 * what it registers obeys the same rules.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define LEN (16 * VM_MIB)
#define ROUNDS 3
#define MAX_REGS 48
#define POISON 0x3c
#define READ_LEN (64 * VM_KIB)

static int pfd, nvd;

struct deduper {
	int src, dst;
	atomic_int started, done;
	int ret;
};

/* Dedupes all of @d->src into @d->dst; d->ret 0 when the whole range now shares it. */
static void *dedupe_thread(void *arg)
{
	struct deduper *d = arg;
	struct file_dedupe_range *r = calloc(1, sizeof(*r) + sizeof(r->info[0]));
	int ret;

	atomic_store(&d->started, 1);
	if (!r) {
		d->ret = -ENOMEM;
		atomic_store(&d->done, 1);
		return NULL;
	}
	r->src_length = LEN;
	r->dest_count = 1;
	r->info[0].dest_fd = d->dst;
	ret = ioctl(d->src, FIDEDUPERANGE, r) ? -errno : 0;
	if (!ret && r->info[0].status != FILE_DEDUPE_RANGE_SAME)
		ret = r->info[0].status < 0 ? r->info[0].status : -EILSEQ;
	if (!ret && r->info[0].bytes_deduped != LEN)
		ret = -ERANGE;
	free(r);
	d->ret = ret;
	atomic_store(&d->done, 1);
	return NULL;
}

static int drop_caches(void)
{
	sync();
	return vm_write_str("/proc/sys/vm/drop_caches", "3");
}

static void round_on(const char *mnt, int round, bool nowait, struct vm_target *t)
{
	char victim[128], twin[128];
	struct p2pio_register_file regs[MAX_REGS], again;
	struct deduper d = { .src = -1, .dst = -1 };
	unsigned int nregs = 0, tries = 0, during = 0, live = 0, odd = 0, ebusy = 0, i;
	uint64_t t0, t1, longest = 0, dedupe_ns;
	pthread_t tid;
	int ret;

	snprintf(victim, sizeof(victim), "%s/rd-victim", mnt);
	snprintf(twin, sizeof(twin), "%s/rd-twin", mnt);
	if (!tap_ok(!vm_make_pattern_file(victim, "rd-victim", LEN) &&
		    !vm_make_pattern_file(twin, "rd-victim", LEN) && !drop_caches(),
		    "%s round %d: victim and twin written, dropped from the page cache", mnt,
		    round))
		goto out;
	d.dst = open(victim, O_RDONLY | O_CLOEXEC);
	d.src = open(twin, O_RDONLY | O_CLOEXEC);
	if (!tap_ok(d.dst >= 0 && d.src >= 0 && !pthread_create(&tid, NULL, dedupe_thread, &d),
		    "%s round %d: the dedupe started", mnt, round))
		goto out;
	while (!atomic_load(&d.started))
		;
	t0 = vm_now_ns();
	/* Register while the dedupe runs; keep every registration that succeeds. */
	while (!atomic_load(&d.done) && nregs < MAX_REGS) {
		tries++;
		t1 = vm_now_ns();
		if (nowait) {
			memset(&regs[nregs], 0, sizeof(regs[nregs]));
			regs[nregs].fd = d.dst;
			regs[nregs].flags = P2PIO_REGISTER_NOWAIT;
			ret = ioctl(pfd, P2PIO_IOC_REGISTER_FILE, &regs[nregs]) ? -errno : 0;
		} else {
			ret = vm_p2p_register(pfd, d.dst, &regs[nregs]);
		}
		if (vm_now_ns() - t1 > longest)
			longest = vm_now_ns() - t1;
		if (!atomic_load(&d.done))
			during++;
		if (!ret)
			nregs++;
		else if (ret == -EBUSY && nowait)
			ebusy++;
		else if (ret != -ENODATA && ret != -EAGAIN && !odd++)
			tap_diag("register during the dedupe: %d (%s)", ret, strerror(-ret));
	}
	pthread_join(tid, NULL);
	dedupe_ns = vm_now_ns() - t0;
	tap_is_int(d.ret, 0, "%s round %d: the twin deduped into the victim", mnt, round);
	tap_diag("%s round %d%s: %u registrations tried, %u returned while the dedupe ran, "
		 "%u succeeded, %u EBUSY; the longest took %llu ms of the dedupe's %llu", mnt,
		 round, nowait ? " (NOWAIT)" : "", tries, during, nregs, ebusy,
		 (unsigned long long)(longest / 1000000), (unsigned long long)(dedupe_ns / 1000000));
	if (nowait) {
		tap_ok(ebusy > 0, "%s round %d: NOWAIT registrations met the dedupe's lock: EBUSY "
		       "(%u of %u)", mnt, round, ebusy, tries);
		tap_ok(longest * 2 < dedupe_ns,
		       "%s round %d: no NOWAIT registration waited for it (longest %llu ms, the "
		       "dedupe %llu ms)", mnt, round, (unsigned long long)(longest / 1000000),
		       (unsigned long long)(dedupe_ns / 1000000));
	}
	tap_ok(tries > 0, "%s round %d: registrations raced the dedupe (%u tried)", mnt, round,
	       tries);
	/* Every registration kept was made before the remap: each must be stale now. */
	for (i = 0; i < nregs; i++) {
		vm_mem_poison(&t->mem, 0, READ_LEN, POISON);
		vm_host_sync();
		ret = vm_p2p_read(pfd, regs[i].handle, t->pin.handle, 0, READ_LEN, 0);
		if (ret != -ESTALE) {
			if (!live++)
				tap_diag("registration %u (of %u) read after the dedupe: %d", i,
					 nregs, ret);
		} else {
			vm_mem_expect_fill(&t->mem, 0, READ_LEN, POISON);
		}
		vm_p2p_unregister(pfd, regs[i].handle);
	}
	tap_is_int(live, 0, "%s round %d: every registration made during the dedupe is stale "
		   "(%u kept)", mnt, round, nregs);
	if (!tap_ok(!vm_host_sync(), "%s round %d: nothing landed from a stale one", mnt, round))
		tap_diag("%s", vm_host_why());
	tap_is_int(vm_p2p_register(pfd, d.dst, &again), -ENODATA,
		   "%s round %d: the deduped victim is refused (shared blocks)", mnt, round);
	tap_is_int(odd, 0, "%s round %d: registrations failed only with ENODATA, EAGAIN or (NOWAIT) EBUSY", mnt,
		   round);
out:
	if (d.src >= 0)
		close(d.src);
	if (d.dst >= 0)
		close(d.dst);
	unlink(twin);
	unlink(victim);
	sync();
}

int main(void)
{
	static const char *const xfs[] = { "/mnt/a2", "/mnt/b1" };
	struct vm_target t;
	size_t i;
	int r;

	tap_plan_lazy();
	pfd = vm_test_open(&nvd, true);
	if (!tap_is_int(vm_target_new(pfd, nvd, P2PIO_PROVIDER_NVIDIA, READ_LEN, 0, 0, 0, &t),
			0, "GPU memory pinned"))
		return tap_exit();
	for (i = 0; i < sizeof(xfs) / sizeof(xfs[0]); i++)
		for (r = 1; r <= ROUNDS; r++)
			round_on(xfs[i], r, r == ROUNDS, &t);
	tap_is_int(vm_target_free(pfd, &t), 0, "unpinned");
	close(nvd);
	close(pfd);
	return tap_exit();
}
