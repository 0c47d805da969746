// SPDX-License-Identifier: MIT
/*
 * test-leaseuser - a registration's layout lease is the module's: it goes back whoever
 * releases the registration and from whatever namespace, and no lease is ever left
 * naming a registration that is gone.
 *
 * On each xfs file system root writes a world-writable pattern file and opens it for
 * reading. A child drops to nobody (a member of the p2pio group with write permission on
 * the file, not its owner), registers that open file, and releases the registration in
 * one of three ways (the open file lives on in the parent, as it would in the child's
 * other fds; a lease goes away with its open file):
 *  - "unregister": P2PIO_IOC_UNREGISTER_FILE;
 *  - "close": closing /dev/p2pio;
 *  - "userns": entering a new user namespace first (unshare(CLONE_NEWUSER), as any user
 *    may on Debian), then closing /dev/p2pio. There the child is not privileged over the
 *    file's owner and capable(CAP_LEASE) fails whatever its effective set holds, so a
 *    lease given back with the closer's credentials is refused (EACCES).
 * Then the file must have no lease left (/proc/locks), and a write to it must go through
 * at once. The open file's owner (F_SETOWN to the parent, F_SETSIG), set before the
 * registration, must be as it was: the module takes its lease on an open file of its own,
 * because giving a lease back clears its file's owner, and on the user's file that undid
 * the user's F_SETOWN and F_SETSIG (both read 0 after the release before session 14). A lease left behind names the freed registration: the write's layout break
 * calls the module's break handler on freed memory (the boot's slub_debug reports
 * "Poison overwritten", KFENCE a use-after-free) and waits lease_break_time (set to 3 s).
 * Before the fix that gives leases back with the module's own credentials, "userns" left
 * the lease ("LEASE ACTIVE READ" in /proc/locks) and its write waited 3 s.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define LEN (256 * VM_KIB)
#define LEASE_TIME "/proc/sys/fs/lease-break-time"
#define USERNS_CLONE "/proc/sys/kernel/unprivileged_userns_clone"

enum how { UNREGISTER, CLOSE, USERNS };
static const char *const how_name[] = { "unregister", "close", "userns" };

/* The child's exit codes: where it stopped. */
enum {
	CHILD_OK, CHILD_DROP, CHILD_OPEN, CHILD_REGISTER, CHILD_NO_LEASE, CHILD_UNSHARE,
	CHILD_UNREGISTER,
};
static const char *const child_why[] = {
	"ok", "dropping to nobody failed", "/dev/p2pio or the file did not open as nobody",
	"registering as nobody failed", "no lease on the file while registered",
	"unshare(CLONE_NEWUSER) failed", "unregistering failed",
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

/* Leases /proc/locks lists on the inode of @st ("maj:min:ino" in hex, hex, decimal). */
static int leases_on(const struct stat *st)
{
	char want[64], line[256];
	FILE *f = fopen("/proc/locks", "r");
	int n = 0;

	if (!f)
		return -1;
	snprintf(want, sizeof(want), " %02x:%02x:%llu ", major(st->st_dev), minor(st->st_dev),
		 (unsigned long long)st->st_ino);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, want) && strstr(line, "LEASE")) {
			tap_diag("/proc/locks: %s", line);
			n++;
		}
	fclose(f);
	return n;
}

/*
 * As nobody: register the file open at @fd (the parent's open file, which outlives this
 * process: a lease goes with its open file, and closing that last would take any lease
 * away) and release the registration @how. Exits with CHILD_*.
 */
static void child(int fd, enum how how)
{
	struct p2pio_register_file reg;
	struct stat st;
	int pfd;

	if (!vm_drop_privileges())
		_exit(CHILD_DROP);
	pfd = vm_p2p_open();
	if (pfd < 0 || fstat(fd, &st))
		_exit(CHILD_OPEN);
	if (vm_p2p_register(pfd, fd, &reg))
		_exit(CHILD_REGISTER);
	if (leases_on(&st) != 1)
		_exit(CHILD_NO_LEASE);
	switch (how) {
	case UNREGISTER:
		if (vm_p2p_unregister(pfd, reg.handle))
			_exit(CHILD_UNREGISTER);
		break;
	case USERNS:
		if (unshare(CLONE_NEWUSER))
			_exit(CHILD_UNSHARE);
		/* fall through: the release runs in the new namespace */
	case CLOSE:
		break;
	}
	/* The last reference: the registration is released here, as this task. */
	close(pfd);
	_exit(CHILD_OK);
}

static void release_as_nobody(const char *mnt, enum how how)
{
	char path[128];
	struct stat st;
	uint64_t t0, ms;
	pid_t pid;
	int status = 0, fd, rfd, left, owner, sig;

	snprintf(path, sizeof(path), "%s/lu-%s", mnt, how_name[how]);
	if (!tap_ok(!vm_make_pattern_file(path, "lu-file", LEN) && !chmod(path, 0666) &&
		    !stat(path, &st), "%s %s: a world-writable file of root's", mnt, how_name[how]))
		return;
	/* Opened by root for reading, kept open here until the end: the child registers it. */
	rfd = open(path, O_RDONLY);
	if (!tap_ok(rfd >= 0, "%s %s: the file is open for reading", mnt, how_name[how]))
		return;
	/* Its owner: this process, a signal of its choosing (its own leases' breaks). */
	tap_ok(!fcntl(rfd, F_SETOWN, getpid()) && !fcntl(rfd, F_SETSIG, SIGRTMIN + 1),
	       "%s %s: the open file's owner is this process, with its signal", mnt,
	       how_name[how]);
	pid = fork();
	if (pid == 0)
		child(rfd, how);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		status = -1;
	if (!tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == CHILD_OK,
		    "%s %s: nobody registered the file (a lease on it) and released it", mnt,
		    how_name[how]))
		tap_diag("child: %s", WIFEXITED(status) &&
			 WEXITSTATUS(status) < sizeof(child_why) / sizeof(child_why[0]) ?
			 child_why[WEXITSTATUS(status)] : "died");
	left = leases_on(&st);
	tap_is_int(left, 0, "%s %s: no lease is left on the file", mnt, how_name[how]);
	owner = fcntl(rfd, F_GETOWN);
	sig = fcntl(rfd, F_GETSIG);
	if (!tap_ok(owner == getpid() && sig == SIGRTMIN + 1,
		    "%s %s: the open file's owner and signal are as they were", mnt, how_name[how]))
		tap_diag("F_GETOWN %d (want %d), F_GETSIG %d (want %d)", owner, (int)getpid(), sig,
			 SIGRTMIN + 1);
	/* A left lease is broken by the write and held until lease_break_time. */
	t0 = now_ms();
	fd = open(path, O_WRONLY | O_CLOEXEC);
	tap_ok(fd >= 0 && pwrite(fd, "x", 1, 0) == 1 && !fsync(fd),
	       "%s %s: the file is written", mnt, how_name[how]);
	ms = now_ms() - t0;
	tap_ok(ms < 1500, "%s %s: the write went through in %llu ms (no break to wait for)", mnt,
	       how_name[how], (unsigned long long)ms);
	if (fd >= 0)
		close(fd);
	close(rfd);
	unlink(path);
}

int main(void)
{
	static const char *const xfs[] = { "/mnt/a2", "/mnt/b1" };
	char lease[32] = "45", userns[32] = "";
	size_t i;
	int h, pfd;

	tap_plan_lazy();
	pfd = vm_p2p_open();
	if (pfd < 0)
		tap_skip_all("no /dev/p2pio");
	close(pfd);
	vm_read_str(LEASE_TIME, lease, sizeof(lease));
	tap_is_int(vm_write_str(LEASE_TIME, "3"), 0, "lease_break_time=3 s (was %s)", lease);
	/* Debian's default; say so where a kernel has it off */
	if (!vm_read_str(USERNS_CLONE, userns, sizeof(userns)) && strcmp(userns, "1"))
		tap_is_int(vm_write_str(USERNS_CLONE, "1"), 0,
			   "unprivileged user namespaces on (were %s)", userns);
	for (i = 0; i < sizeof(xfs) / sizeof(xfs[0]); i++)
		for (h = UNREGISTER; h <= USERNS; h++)
			release_as_nobody(xfs[i], (enum how)h);
	vm_write_str(LEASE_TIME, lease);
	if (userns[0] && strcmp(userns, "1"))
		vm_write_str(USERNS_CLONE, userns);
	sync();
	return tap_exit();
}
