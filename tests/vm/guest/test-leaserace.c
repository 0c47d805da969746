// SPDX-License-Identifier: MIT
/*
 * test-leaserace - a registration made while a dedupe waits for a broken layout lease.
 *
 * fs/locks.c's __break_lease() breaks the leases it finds when it starts and sleeps until
 * they are given back; woken, it waits for any lease that conflicts now without breaking
 * it. A registration made right after the module gave its broken lease back (as libp2pio
 * makes one when its reads come back with ESTALE) took a lease the dedupe then waited for
 * until that registration was unregistered: for good where the deduper is the one to do
 * it. The module now looks for a breaker sleeping on its lease and breaks it then
 * (kmod/file.c, p2pio_lease_watch()).
 *
 * On each xfs file system: a victim registered; a dedupe of a twin with other bytes into
 * it on a thread (xfs breaks the lease before it compares, then refuses: EILSEQ); this
 * thread registers the victim again as soon as the module lets it (EAGAIN while the break
 * is pending). ITERS rounds; each dedupe must end within 5 s. Where one does not, the
 * second registration is unregistered, which frees it (so the test cannot hang), and the
 * round fails. Before the fix 17 of 80 rounds hung (6.1, IOMMU).
 *
 * The watch runs only around breaks: the registrations made again during a break watch
 * (the global lease_watches gauge is above 0 then), the watches stop once no break has
 * been under way for 10 s, and a registration made then does not watch.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define LEN (1 * VM_MIB)
#define ITERS 30

static int pfd, nvd;
static uint64_t watch_seen;	/* the most lease_watches seen after a second registration */

static uint64_t lease_watches(void)
{
	struct p2pio_stats st;

	if (vm_p2p_stats(pfd, P2PIO_STATS_GLOBAL, &st))
		return ~0ull;
	return st.lease_watches;
}

struct dedupe {
	int src, dst, ret;
	_Atomic int done;
};

static void *dedupe_thread(void *arg)
{
	struct dedupe *d = arg;

	d->ret = vm_dedupe(d->src, d->dst, LEN, NULL);
	d->done = 1;
	return NULL;
}

static bool wait_done(struct dedupe *d, uint64_t ms)
{
	uint64_t t0 = vm_now_ns();

	while (!d->done && vm_now_ns() - t0 < ms * 1000000ull)
		usleep(1000);
	return d->done;
}

static void rounds(const char *mnt)
{
	char victim[128], twin[128];
	struct p2pio_register_file r1, r2;
	int vfd, tfd, i, hung = 0, again = 0, other = 0, ret;
	struct dedupe d;
	pthread_t th;
	uint64_t t0;

	snprintf(victim, sizeof(victim), "%s/lr-victim", mnt);
	snprintf(twin, sizeof(twin), "%s/lr-twin", mnt);
	if (!tap_ok(!vm_make_pattern_file(victim, "lr-victim", LEN) &&
			    !vm_make_pattern_file(twin, "lr-twin", LEN),
		    "%s: victim and a twin of other bytes written", mnt))
		return;
	vfd = open(victim, O_RDONLY | O_CLOEXEC);
	tfd = open(twin, O_RDONLY | O_CLOEXEC);
	for (i = 0; i < ITERS; i++) {
		if (vm_p2p_register(pfd, vfd, &r1)) {
			other++;
			continue;
		}
		memset(&d, 0, sizeof(d));
		d.src = tfd;
		d.dst = vfd;
		if (pthread_create(&th, NULL, dedupe_thread, &d)) {
			vm_p2p_unregister(pfd, r1.handle);
			other++;
			continue;
		}
		t0 = vm_now_ns();
		do
			ret = vm_p2p_register(pfd, vfd, &r2);
		while (ret == -EAGAIN && !d.done && vm_now_ns() - t0 < 2000000000ull);
		if (!ret) {
			uint64_t w = lease_watches();

			again++;
			if (w != ~0ull && w > watch_seen)
				watch_seen = w;
		}
		if (!wait_done(&d, 5000)) {
			hung++;
			tap_diag("%s: round %d: the dedupe still waits 5 s after the second registration (%d)",
				 mnt, i, ret);
			if (!ret)
				vm_p2p_unregister(pfd, r2.handle);
			ret = -1;
			wait_done(&d, 60000);
		}
		pthread_join(th, NULL);
		if (d.ret != -EILSEQ)
			other++;
		if (!ret)
			vm_p2p_unregister(pfd, r2.handle);
		vm_p2p_unregister(pfd, r1.handle);
	}
	tap_ok(!hung && !other,
	       "%s: %d dedupes across a registration made again during their break all end (%d hung; %d registered again; %d other failures)",
	       mnt, ITERS, hung, again, other);
	close(vfd);
	close(tfd);
	unlink(victim);
	unlink(twin);
}

/*
 * The watches are there around the breaks only (kmod/file.c, p2pio_breaks_recent()): a
 * registration made again during a break watches, and stops by itself once no break has
 * been under way for 10 s, while still registered; one made after that does not watch.
 */
static void idle_watches(const char *mnt)
{
	char victim[128], twin[128];
	struct p2pio_register_file r1, r2, r3;
	int vfd, tfd, ret;
	uint64_t t0, w = ~0ull;
	struct dedupe d = { 0 };
	pthread_t th;

	tap_ok(watch_seen > 0, "registrations made during a break watch their lease (up to %llu at once)",
	       (unsigned long long)watch_seen);
	snprintf(victim, sizeof(victim), "%s/lr-idle", mnt);
	snprintf(twin, sizeof(twin), "%s/lr-idle-twin", mnt);
	if (vm_make_pattern_file(victim, "lr-idle", LEN) ||
	    vm_make_pattern_file(twin, "lr-idle-twin", LEN)) {
		tap_ok(0, "%s: idle watches: set-up", mnt);
		return;
	}
	vfd = open(victim, O_RDONLY | O_CLOEXEC);
	tfd = open(twin, O_RDONLY | O_CLOEXEC);
	d.src = tfd;
	d.dst = vfd;
	if (vm_p2p_register(pfd, vfd, &r1) || pthread_create(&th, NULL, dedupe_thread, &d)) {
		tap_ok(0, "%s: idle watches: a registration and a dedupe", mnt);
		goto out;
	}
	t0 = vm_now_ns();
	do
		ret = vm_p2p_register(pfd, vfd, &r2);
	while (ret == -EAGAIN && vm_now_ns() - t0 < 2000000000ull);
	wait_done(&d, 60000);
	pthread_join(th, NULL);
	vm_p2p_unregister(pfd, r1.handle);
	if (!ret)
		vm_p2p_unregister(pfd, r2.handle);
	/*
	 * The twin, registered just after the break and kept: nothing breaks its lease (the
	 * victim's registration made again may be, by its own watch, which then stops).
	 */
	ret = vm_p2p_register(pfd, tfd, &r2);
	if (!tap_ok(!ret && lease_watches() >= 1,
		    "%s: a registration made just after a break, kept: it watches (%d, %llu)",
		    mnt, ret, (unsigned long long)lease_watches()))
		goto out_r2;
	t0 = vm_now_ns();
	while ((w = lease_watches()) && w != ~0ull && vm_now_ns() - t0 < 20000000000ull)
		usleep(50000);
	tap_ok(w == 0, "%s: its watch stopped by itself %.1f s later, still registered (%llu)", mnt,
	       (double)(vm_now_ns() - t0) * 1e-9, (unsigned long long)w);
	if (tap_ok(!vm_p2p_register(pfd, vfd, &r3), "%s: a registration with no break under way",
		   mnt)) {
		usleep(100000);
		tap_ok(lease_watches() == 0, "%s: does not watch its lease (%llu watches)", mnt,
		       (unsigned long long)lease_watches());
		vm_p2p_unregister(pfd, r3.handle);
	}
out_r2:
	if (!ret)
		vm_p2p_unregister(pfd, r2.handle);
out:
	close(vfd);
	close(tfd);
	unlink(victim);
	unlink(twin);
}

int main(void)
{
	static const char *const xfs[] = { "/mnt/a2", "/mnt/b1" };
	size_t i;

	tap_plan_lazy();
	pfd = vm_test_open(&nvd, false);
	for (i = 0; i < sizeof(xfs) / sizeof(xfs[0]); i++)
		rounds(xfs[i]);
	idle_watches(xfs[0]);
	tap_ok(vm_nothing_left(pfd), "nothing left registered, pinned or in flight");
	close(nvd);
	close(pfd);
	return tap_exit();
}
