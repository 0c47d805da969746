// SPDX-License-Identifier: MIT
/*
 * test-leasebreak - the layout lease of a registered xfs (reflink) file breaks while
 * large reads are in flight from several threads (issue 10, item 1).
 *
 * On each xfs file system, three threads each register the victim on their own fd and
 * read the whole file (32 MiB: 2048 commands on controller B) again and again, with
 * max_user_cmds=1 so that every issuer sleeps for a command slot between its commands
 * (held across the break, as a busy controller would) and lease_break_time=1 s. Then
 * another process breaks the lease:
 *  - "dedupe": a same-content twin deduped into the victim (FIDEDUPERANGE through the
 *    victim's read-only fd); the file system was filled first, so the victim's freed
 *    blocks are all it has left, and another file takes them and writes its own bytes
 *    over them at once (as test-dedupe does);
 *  - "reflink": the victim cloned into another file (FICLONERANGE with the victim as
 *    source: xfs breaks both files' layouts).
 * Truncate, hole punch and a reflink onto the victim need it open for writing, which
 * registration denies: they are checked to fail with ETXTBSY and to leave the
 * registration intact.
 *
 * Pass: the break returns before lease_break_time (p2pio gave the lease back; the kernel
 * did not have to take it); every read that completes whole is the victim's bytes
 * (checked by the host), every other read fails with ESTALE; every read submitted after
 * the break returned fails with ESTALE; no NVMe command is issued after the break
 * returned (the module's command counter); never a byte of the other file.
 *
 * A module whose commands trusted the extents once their read had started (before
 * "a command checks its file's layout lease once more after its last sleep") kept
 * issuing a read's remaining commands after the break, on blocks the dedupe had freed:
 * the break then waited for lease_break_time, commands were counted after it, and the
 * other file's bytes reached the GPU memory.
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

#define VSIZE (32 * VM_MIB)
#define NTHREADS 3
#define MAX_OLD 256
/* What a file system may keep of a test's files once they are gone (log, inode chunks). */
#define SLACK (4 * VM_MIB)
#define PARAM_CMDS "/sys/module/p2pio/parameters/max_user_cmds"
#define LEASE_TIME "/proc/sys/fs/lease-break-time"

static int nvd;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;	/* host channel */
static atomic_int stop;
static _Atomic uint64_t break_end_ns;	/* 0 until the breaker has returned */

struct reader {
	pthread_t tid;
	int pfd;
	int fd;
	struct p2pio_register_file reg;
	struct vm_target t;
	bool registered, pinned;
	/* results */
	unsigned int whole, stale, after_ok, odd, bad;
	atomic_uint done;
	char why[128];
};

/*
 * The file system being full but for the victim's freed blocks, @fd takes what is left
 * and the pattern of @name goes over every part of it on one of the @nold extents @old.
 * The bytes of @old now holding @name's data.
 */
static uint64_t overwrite_old_blocks(int fd, const char *name, const struct vm_extent *old,
				     int nold)
{
	static struct vm_extent z[4096];
	uint64_t covered;
	int nz;

	vm_fill_fs(fd);
	nz = vm_file_extents(fd, z, 4096);
	covered = vm_write_pattern_over(fd, name, z, nz, old, nold);
	fdatasync(fd);
	return covered;
}

static void odd(struct reader *r, const char *what, int ret)
{
	if (!r->odd++)
		snprintf(r->why, sizeof(r->why), "%s: %d (%s)", what, ret, strerror(-ret));
}

/* Reads the whole victim again and again until told to stop. */
static void *read_loop(void *arg)
{
	struct reader *r = arg;

	while (!atomic_load(&stop)) {
		struct p2pio_read rd = { .file = r->reg.handle, .mem = r->t.pin.handle,
					 .length = VSIZE };
		struct p2pio_completion c;
		uint64_t at = vm_now_ns(), end;
		uint32_t k = 0, got = 0;
		int ret;

		ret = vm_p2p_submit(r->pfd, &rd, 1, &k);
		if (ret || k != 1) {
			odd(r, "submit", ret);
			break;
		}
		ret = vm_p2p_reap(r->pfd, &c, 1, 1, 120000000000ll, &got);
		if (ret || got != 1) {
			odd(r, "reap", ret ? ret : -ETIMEDOUT);
			break;
		}
		end = atomic_load(&break_end_ns);
		if (!c.status) {
			r->whole++;
			if (end && at > end)
				r->after_ok++;
			pthread_mutex_lock(&lock);
			vm_mem_expect_file(&r->t.mem, 0, VSIZE, "lb-victim", 0);
			if (vm_host_sync()) {	/* before the next read overwrites it */
				if (!r->bad++)
					tap_diag("%s", vm_host_why());
			}
			pthread_mutex_unlock(&lock);
		} else if (c.status == -ESTALE) {
			r->stale++;
		} else {
			odd(r, "read status", c.status);
		}
		atomic_fetch_add(&r->done, 1);
	}
	return NULL;
}

/* What another process does to the victim: 0 or -errno. */
static int breaker(const char *kind, int victim, int twin, int copy)
{
	struct file_clone_range cr = { .src_fd = victim, .src_length = VSIZE };

	if (!strcmp(kind, "dedupe"))
		return vm_dedupe(twin, victim, VSIZE, NULL);
	return ioctl(copy, FICLONERANGE, &cr) ? -errno : 0;
}

/* Truncate, punch and reflink onto a registered file: refused, lease intact. */
static void denied_writers(const char *victim_path, const char *mnt)
{
	int wfd, tr;

	tr = truncate(victim_path, VSIZE / 2) ? -errno : 0;
	wfd = open(victim_path, O_WRONLY | O_CLOEXEC);
	tap_ok(tr == -ETXTBSY && wfd < 0 && errno == ETXTBSY,
	       "%s: truncate (%d) and an open for writing (punch hole, reflink onto it) fail with ETXTBSY",
	       mnt, tr);
	if (wfd >= 0)
		close(wfd);
}

static void one_break(const char *mnt, const char *kind, bool first)
{
	static struct reader rs[NTHREADS];
	char victim[128], twin[128], other[128], filler[128], copy[128];
	struct vm_extent old[MAX_OLD];
	struct p2pio_stats s0, s1;
	uint64_t t0, took, covered = 0, free0 = vm_fs_free(mnt);
	unsigned int i, whole = 0, stale = 0, after_ok = 0, nodd = 0, bad = 0;
	int xfd = -1, tfd = -1, ffd = -1, zfd = -1, cfd = -1, nold = 0, ret, st, ready;
	bool dd = !strcmp(kind, "dedupe");
	pid_t pid;

	snprintf(victim, sizeof(victim), "%s/lb-victim", mnt);
	snprintf(twin, sizeof(twin), "%s/lb-twin", mnt);
	snprintf(other, sizeof(other), "%s/lb-other", mnt);
	snprintf(filler, sizeof(filler), "%s/lb-filler", mnt);
	snprintf(copy, sizeof(copy), "%s/lb-copy", mnt);
	memset(rs, 0, sizeof(rs));
	for (i = 0; i < NTHREADS; i++)
		rs[i].pfd = -1;
	if (!tap_ok(!vm_make_pattern_file(victim, "lb-victim", VSIZE) &&
		    (!dd || !vm_make_pattern_file(twin, "lb-victim", VSIZE)),
		    "%s %s: victim%s written (%llu MiB)", mnt, kind, dd ? " and twin" : "",
		    VSIZE / VM_MIB))
		goto out;
	xfd = open(victim, O_RDONLY | O_CLOEXEC);
	tfd = dd ? open(twin, O_RDONLY | O_CLOEXEC) : -1;
	cfd = dd ? -1 : open(copy, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	nold = xfd < 0 ? -EBADF : vm_file_extents(xfd, old, MAX_OLD);
	if (!tap_ok(nold > 0 && (dd ? tfd >= 0 : cfd >= 0), "%s %s: the victim's blocks (%d extents)",
		    mnt, kind, nold))
		goto out;
	for (i = 0; i < NTHREADS; i++) {
		rs[i].pfd = vm_p2p_open();
		rs[i].fd = xfd;
		ret = rs[i].pfd < 0 ? rs[i].pfd : vm_p2p_register(rs[i].pfd, xfd, &rs[i].reg);
		rs[i].registered = !ret;
		if (!ret)
			ret = vm_target_new(rs[i].pfd, nvd, P2PIO_PROVIDER_NVIDIA, VSIZE, 0, 0, 0,
					    &rs[i].t);
		rs[i].pinned = rs[i].registered && !ret;
		if (!tap_is_int(ret, 0, "%s %s: reader %u registered the victim on its fd, %llu MiB pinned",
				mnt, kind, i, VSIZE / VM_MIB))
			goto out_close;
	}
	if (first)
		denied_writers(victim, mnt);
	if (dd) {
		/* full: the victim's blocks, once freed, are all there is */
		ffd = open(filler, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		tap_ok(ffd >= 0 && vm_fill_fs(ffd) > 0, "%s %s: file system filled", mnt, kind);
	}

	atomic_store(&stop, 0);
	atomic_store(&break_end_ns, 0);
	for (i = 0; i < NTHREADS; i++)
		pthread_create(&rs[i].tid, NULL, read_loop, &rs[i]);
	/* every reader has read the victim whole once: reads are streaming */
	for (ready = 0; ready < 600; ready++) {
		for (i = 0; i < NTHREADS && atomic_load(&rs[i].done); i++)
			;
		if (i == NTHREADS)
			break;
		vm_sleep_ms(50);
	}
	vm_sleep_ms(100);	/* into the middle of the next reads */

	t0 = vm_now_ns();
	pid = fork();
	if (pid == 0)
		_exit(-breaker(kind, xfd, tfd, cfd));
	ret = waitpid(pid, &st, 0) == pid && WIFEXITED(st) ? -WEXITSTATUS(st) : -ECHILD;
	took = vm_now_ns() - t0;
	vm_p2p_stats(rs[0].pfd, P2PIO_STATS_GLOBAL, &s0);
	atomic_store(&break_end_ns, vm_now_ns());
	tap_is_int(ret, 0, "%s %s: another process broke the lease", mnt, kind);
	tap_ok(took < 1000000000ull,
	       "%s %s: the break returned in %llu ms, before lease_break_time (1 s): p2pio gave the lease back",
	       mnt, kind, (unsigned long long)(took / 1000000));
	if (dd) {
		zfd = open(other, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		covered = zfd < 0 ? 0 : overwrite_old_blocks(zfd, "lb-other", old, nold);
		tap_ok(covered > 0, "%s %s: another file's data lies on %llu of the victim's old bytes",
		       mnt, kind, (unsigned long long)covered);
	}
	vm_sleep_ms(300);	/* reads submitted after the break */
	atomic_store(&stop, 1);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(rs[i].tid, NULL);
	vm_p2p_stats(rs[0].pfd, P2PIO_STATS_GLOBAL, &s1);

	for (i = 0; i < NTHREADS; i++) {
		whole += rs[i].whole;
		stale += rs[i].stale;
		after_ok += rs[i].after_ok;
		bad += rs[i].bad;
		nodd += rs[i].odd;
		if (rs[i].odd)
			tap_diag("reader %u: %s", i, rs[i].why);
	}
	tap_ok(!bad && whole > 0,
	       "%s %s: every read that completed is the victim's bytes (%u whole, %u wrong)", mnt,
	       kind, whole, bad);
	tap_ok(!nodd && stale > 0, "%s %s: every other read failed with ESTALE (%u; %u odd)", mnt,
	       kind, stale, nodd);
	tap_is_int(after_ok, 0, "%s %s: no read submitted after the break succeeded", mnt, kind);
	tap_ok(s1.commands == s0.commands,
	       "%s %s: no NVMe command issued after the break returned (%llu)", mnt, kind,
	       (unsigned long long)(s1.commands - s0.commands));
	for (i = 0; i < NTHREADS; i++)
		tap_is_int(vm_p2p_read(rs[i].pfd, rs[i].reg.handle, rs[i].t.pin.handle, 0, 65536, 0),
			   -ESTALE, "%s %s: reader %u: a later read: ESTALE", mnt, kind, i);
out_close:
	for (i = 0; i < NTHREADS; i++) {
		if (rs[i].pinned)
			tap_is_int(vm_target_free(rs[i].pfd, &rs[i].t), 0, "%s %s: reader %u unpinned",
				   mnt, kind, i);
		if (rs[i].registered)
			tap_is_int(vm_p2p_unregister(rs[i].pfd, rs[i].reg.handle), 0,
				   "%s %s: reader %u: the stale registration unregisters", mnt, kind, i);
		if (rs[i].pfd > 0)
			close(rs[i].pfd);
	}
out:
	if (zfd >= 0)
		close(zfd);
	if (ffd >= 0)
		close(ffd);
	if (cfd >= 0)
		close(cfd);
	if (tfd >= 0)
		close(tfd);
	if (xfd >= 0)
		close(xfd);
	unlink(filler);
	unlink(other);
	unlink(copy);
	unlink(twin);
	unlink(victim);
	sync();
	/* it filled the file system: the runs and tests after it need the space back */
	tap_is_int(vm_fs_wait_free(mnt, free0 > SLACK ? free0 - SLACK : 0, 20000), 0,
		   "%s %s: the file system's space is free again", mnt, kind);
}

int main(void)
{
	static const char *const xfs[] = { "/mnt/a2", "/mnt/b1" };
	char cmds[32] = "1024", lease[32] = "45";
	int pfd;
	size_t i;

	tap_plan_lazy();
	pfd = vm_test_open(&nvd, true);
	vm_read_str(PARAM_CMDS, cmds, sizeof(cmds));
	vm_read_str(LEASE_TIME, lease, sizeof(lease));
	/* issuers sleep for a slot between commands; the kernel waits 1 s for a break */
	tap_ok(!vm_write_str(PARAM_CMDS, "1") && !vm_write_str(LEASE_TIME, "1"),
	       "max_user_cmds=1 (was %s), lease_break_time=1 s (was %s)", cmds, lease);
	for (i = 0; i < sizeof(xfs) / sizeof(xfs[0]); i++) {
		one_break(xfs[i], "dedupe", true);
		one_break(xfs[i], "reflink", false);
	}
	vm_write_str(PARAM_CMDS, cmds);
	vm_write_str(LEASE_TIME, lease);
	tap_ok(vm_nothing_left(pfd), "nothing left: commands, reads, files, pins, PRP pages");
	close(nvd);
	close(pfd);
	return tap_exit();
}
