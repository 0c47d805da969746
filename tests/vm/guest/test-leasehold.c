// SPDX-License-Identifier: MIT
/*
 * test-leasehold - the layout lease of a registered xfs file is held until p2pio is done
 * with the old extents, however long that takes: the kernel must not time it out.
 *
 * A reader registers the victim and submits one read into a fresh pin, whose first use
 * with the controller maps it: the double's dma_map_pages is made to take 3 s
 * (map_delay_ms), while the issuer holds the registration busy. lease_break_time is 1 s.
 * Meanwhile another process dedupes a same-content twin into the victim (FIDEDUPERANGE),
 * which breaks the lease and, once it returns, frees the victim's old blocks.
 *
 * Pass: the read fails with ESTALE, and the dedupe returns only after it has (p2pio gave
 * the lease back once its issuer let go). A module that let the kernel drop the lease
 * after lease_break_time saw the dedupe return after 1 s while its issuer still held the
 * old extents: here the issuer checks the lease again before its command and fails, but
 * an issuer preempted between that check and the command's issue (a preemptible kernel,
 * a starved thread), or a command the NVMe driver completes late, then read blocks the
 * file system had freed and given to another file.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define VSIZE (1 * VM_MIB)
#define LEASE_TIME "/proc/sys/fs/lease-break-time"
#define MAP_DELAY "/sys/module/nvdouble/parameters/map_delay_ms"

static void one(int nvd, const char *mnt)
{
	char victim[128], twin[128];
	struct p2pio_register_file reg;
	struct vm_target t;
	struct vm_timed_read r = { .pfd = -1, .len = 65536 };
	uint64_t t0, back, rend;
	pthread_t tid;
	int xfd = -1, tfd = -1, ret, st;
	pid_t pid;

	snprintf(victim, sizeof(victim), "%s/lh-victim", mnt);
	snprintf(twin, sizeof(twin), "%s/lh-twin", mnt);
	if (!tap_ok(!vm_make_pattern_file(victim, "lh-victim", VSIZE) &&
		    !vm_make_pattern_file(twin, "lh-victim", VSIZE), "%s: victim and twin written", mnt))
		goto out;
	xfd = open(victim, O_RDONLY | O_CLOEXEC);
	tfd = open(twin, O_RDONLY | O_CLOEXEC);
	r.pfd = vm_p2p_open();
	ret = xfd < 0 || tfd < 0 || r.pfd < 0 ? -EBADF : vm_p2p_register(r.pfd, xfd, &reg);
	if (!tap_is_int(ret, 0, "%s: the victim registered", mnt))
		goto out;
	ret = vm_target_new(r.pfd, nvd, P2PIO_PROVIDER_NVIDIA, VSIZE, 0, 0, 0, &t);
	if (!tap_is_int(ret, 0, "%s: a fresh pin (not yet mapped for the controller)", mnt))
		goto out_unreg;
	r.file = reg.handle;
	r.pin = t.pin.handle;

	tap_is_int(vm_write_str(MAP_DELAY, "3000"), 0, "%s: the double's map takes 3 s", mnt);
	pthread_create(&tid, NULL, vm_timed_read, &r);
	vm_sleep_ms(500);	/* the issuer holds the registration, inside the map */
	t0 = vm_now_ns();
	pid = fork();
	if (pid == 0)
		_exit(-vm_dedupe(tfd, xfd, VSIZE, NULL));
	ret = waitpid(pid, &st, 0) == pid && WIFEXITED(st) ? -WEXITSTATUS(st) : -ECHILD;
	back = vm_now_ns();
	pthread_join(tid, NULL);
	vm_write_str(MAP_DELAY, "0");
	rend = atomic_load(&r.end_ns);

	tap_is_int(ret, 0, "%s: another process deduped into the victim (%llu ms)", mnt,
		   (unsigned long long)((back - t0) / 1000000));
	tap_is_int(r.status, -ESTALE, "%s: the read in the issuer's hands fails with ESTALE", mnt);
	tap_ok(rend && rend <= back,
	       "%s: the dedupe returned after the read ended (%lld ms after): the lease was held past lease_break_time (1 s) until p2pio let go",
	       mnt, (long long)((int64_t)(back - rend) / 1000000));
	tap_is_int(vm_p2p_read(r.pfd, r.file, r.pin, 0, 65536, 0), -ESTALE,
		   "%s: a later read: ESTALE", mnt);
	tap_is_int(vm_target_free(r.pfd, &t), 0, "%s: unpinned", mnt);
out_unreg:
	tap_is_int(vm_p2p_unregister(r.pfd, reg.handle), 0, "%s: unregistered", mnt);
out:
	if (r.pfd >= 0)
		close(r.pfd);
	if (tfd >= 0)
		close(tfd);
	if (xfd >= 0)
		close(xfd);
	unlink(twin);
	unlink(victim);
	sync();
}

int main(void)
{
	static const char *const xfs[] = { "/mnt/a2", "/mnt/b1" };
	char lease[32] = "45";
	int nvd, pfd;
	size_t i;

	tap_plan_lazy();
	pfd = vm_test_open(&nvd, false);
	vm_read_str(LEASE_TIME, lease, sizeof(lease));
	tap_is_int(vm_write_str(LEASE_TIME, "1"), 0, "lease_break_time=1 s (was %s)", lease);
	for (i = 0; i < sizeof(xfs) / sizeof(xfs[0]); i++)
		one(nvd, xfs[i]);
	vm_write_str(LEASE_TIME, lease);
	tap_ok(vm_nothing_left(pfd), "nothing left: commands, reads, files, pins, PRP pages");
	close(nvd);
	close(pfd);
	return tap_exit();
}
