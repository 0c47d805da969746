// SPDX-License-Identifier: MIT
/*
 * test-openperm - the module's own open of a registered file (the one its layout lease is
 * taken on) asks fanotify's open-permission listeners (FAN_OPEN_PERM: virus scanners,
 * fapolicyd, hierarchical storage managers) with nothing of the file's held: a listener
 * may read the file and change its attributes before it answers, as it does for open().
 *
 * The open asks the listener and waits for its answer. Where it was made with the
 * file's i_rwsem held (xfs: the lease is taken under it, session 14), a listener that
 * needs that lock never answered: a scanner's read waits behind any writer of the lock
 * queued meanwhile (a chmod, a utime, a setxattr of the file's owner: the registering
 * user can queue one), and a scanner that records what it scanned in an xattr waits for
 * the lock itself. The scanner, every open it was to judge (every exec under fapolicyd),
 * and the writer stayed in D state until the registering task was killed.
 *
 * On each xfs file system, a file owned by nobody (the registering user), a listener of
 * root's (FAN_CLASS_CONTENT) marked on it once nobody has opened it, and nobody registers
 * it. For the open event the registration causes, the listener:
 *  - "xattr": sets a user.* xattr on the file through the event's fd;
 *  - "read": starts a chmod of the file, and once the chmod has had time to queue on the
 *    file's lock, reads the file through the event's fd.
 * Each must end within 3 s (the listener then answers FAN_ALLOW whatever happened, so a
 * module that holds the lock does not hang the test: the registration then goes on and
 * lets the waiters through). The registration must succeed, and the listener must have
 * been asked. A third listener, "deny", answers FAN_DENY: the registration is refused
 * with ENOLCK (no lease without the module's open), and the file registers again once
 * the listener is gone.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define LEN (256 * VM_KIB)
#define STUCK_MS 3000

enum how { XATTR, READ, DENY };
static const char *const how_name[] = { "xattr", "read", "deny" };

static struct vm_fanotify fan;
static atomic_int how;
/* Open events judged, and the ones whose work did not end within STUCK_MS. */
static atomic_uint asked, stuck, unanswered, after;


static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

struct job {
	int fd;
	atomic_bool done;
	int err;
};

static void *do_xattr(void *arg)
{
	struct job *j = arg;

	j->err = fsetxattr(j->fd, "user.p2pio-scanned", "1", 1, 0) ? errno : 0;
	atomic_store(&j->done, true);
	return NULL;
}

static void *do_chmod(void *arg)
{
	struct job *j = arg;

	j->err = fchmod(j->fd, 0644) ? errno : 0;
	atomic_store(&j->done, true);
	return NULL;
}

static void *do_read(void *arg)
{
	struct job *j = arg;
	char buf[4096];

	j->err = pread(j->fd, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf) ? 0 : errno ? errno : EIO;
	atomic_store(&j->done, true);
	return NULL;
}

/* Waits up to @ms for @j; true if it ended. */
static bool wait_job(struct job *j, unsigned ms)
{
	uint64_t t0 = now_ms();

	while (!atomic_load(&j->done) && now_ms() - t0 < ms)
		vm_sleep_ms(10);
	return atomic_load(&j->done);
}

/* A scanner's work on one event: its threads, and whether they ended in time. */
struct scan {
	struct job a, b;
	pthread_t ta, tb;
	bool two;
};

/* What a scanner does with the file before it answers: false if it got stuck. */
static bool scan_start(struct scan *s, int fd)
{
	bool ok;

	memset(s, 0, sizeof(*s));
	s->a.fd = s->b.fd = fd;
	if (atomic_load(&how) == XATTR) {
		if (pthread_create(&s->ta, NULL, do_xattr, &s->a))
			tap_bail("pthread_create");
		ok = wait_job(&s->a, STUCK_MS);
		if (!ok)
			tap_diag("the scanner's setxattr waits (%d ms)", STUCK_MS);
		else if (s->a.err)
			tap_diag("setxattr: %s", strerror(s->a.err));
		return ok && !s->a.err;
	}
	s->two = true;
	if (pthread_create(&s->ta, NULL, do_chmod, &s->a))
		tap_bail("pthread_create");
	/* Time for the chmod to queue on the file's lock, if someone holds it. */
	vm_sleep_ms(300);
	if (pthread_create(&s->tb, NULL, do_read, &s->b))
		tap_bail("pthread_create");
	ok = wait_job(&s->b, STUCK_MS);
	if (!ok)
		tap_diag("the scanner's read waits (%d ms), the chmod %s", STUCK_MS,
			 atomic_load(&s->a.done) ? "ended" : "waits too");
	else if (s->b.err)
		tap_diag("read: %s", strerror(s->b.err));
	return ok && !s->b.err;
}

/* After the answer: what waited for the registration ends now (10 s at most). */
static void scan_end(struct scan *s, int fd)
{
	bool ended = wait_job(&s->a, 10000) && (!s->two || wait_job(&s->b, 10000));

	if (!ended) {
		tap_diag("the scanner's work still waits after its answer");
		atomic_fetch_add(&after, 1);
		pthread_detach(s->ta);
		if (s->two)
			pthread_detach(s->tb);
		return;
	}
	pthread_join(s->ta, NULL);
	if (s->two)
		pthread_join(s->tb, NULL);
	close(fd);
}

/* The listener: judges each FAN_OPEN_PERM as the test's @how says; true: it has the fd. */
static bool on_event(int fd, const struct fanotify_event_metadata *m)
{
	struct fanotify_response r = { .fd = m->fd, .response = FAN_ALLOW };
	struct scan s;

	if (!(m->mask & FAN_OPEN_PERM))
		return false;
	atomic_fetch_add(&asked, 1);
	if (atomic_load(&how) == DENY) {
		r.response = FAN_DENY;
		if (write(fd, &r, sizeof(r)) != sizeof(r))
			atomic_fetch_add(&unanswered, 1);
		return false;
	}
	if (!scan_start(&s, m->fd))
		atomic_fetch_add(&stuck, 1);
	/* Allowed whatever happened: a stuck scan would hang the test. */
	if (write(fd, &r, sizeof(r)) != sizeof(r))
		atomic_fetch_add(&unanswered, 1);
	scan_end(&s, m->fd);	/* closes it, or leaves it to the stuck threads */
	return true;
}

/* Debian taints itself X for a fanotify permission mark: vm_fanotify_allow_taint(). */
static void allow_taint(void)
{
	if (vm_fanotify_allow_taint(&fan))
		tap_diag("fanotify_mark() tainted the kernel X (Debian: fanotify permission checks)");
}

enum { CHILD_OK, CHILD_DROP, CHILD_OPEN, CHILD_SYNC, CHILD_REGISTER, CHILD_AGAIN };
static const char *const child_why[] = {
	"ok", "dropping to nobody failed", "/dev/p2pio or the file did not open as nobody",
	"the parent did not answer", "registering as nobody failed (or, denied, not ENOLCK)",
	"registering again after the denial failed",
};

/*
 * As nobody, the file's owner: open it, let the parent mark it, register it. @deny: the
 * registration must fail with ENOLCK; then the parent removes the mark and it must work.
 */
static void child(const char *path, int tell, int hear, bool deny)
{
	struct p2pio_register_file reg;
	int pfd, fd, ret;
	char c = 0;

	if (!vm_drop_privileges())
		_exit(CHILD_DROP);
	pfd = vm_p2p_open();
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (pfd < 0 || fd < 0)
		_exit(CHILD_OPEN);
	if (write(tell, &c, 1) != 1 || read(hear, &c, 1) != 1)
		_exit(CHILD_SYNC);
	ret = vm_p2p_register(pfd, fd, &reg);
	if (deny) {
		if (ret != -ENOLCK) {
			fprintf(stderr, "register: %s, not ENOLCK\n", strerror(-ret));
			_exit(CHILD_REGISTER);
		}
		if (write(tell, &c, 1) != 1 || read(hear, &c, 1) != 1)
			_exit(CHILD_SYNC);
		if (vm_p2p_register(pfd, fd, &reg))
			_exit(CHILD_AGAIN);
	} else if (ret) {
		fprintf(stderr, "register: %s\n", strerror(-ret));
		_exit(CHILD_REGISTER);
	}
	vm_p2p_unregister(pfd, reg.handle);
	_exit(CHILD_OK);
}

static void one(const char *mnt, enum how h)
{
	int up[2], down[2], status = -1;
	unsigned was_asked = atomic_load(&asked), was_stuck = atomic_load(&stuck);
	char path[128], c = 0;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/op-%s", mnt, how_name[h]);
	if (!tap_ok(!vm_make_pattern_file(path, "op-file", LEN) && !chown(path, 65534, 65534),
		    "%s %s: a file of nobody's", mnt, how_name[h]))
		return;
	atomic_store(&how, h);
	if (pipe(up) || pipe(down))
		tap_bail("pipe");
	pid = fork();
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		child(path, up[1], down[0], h == DENY);
	}
	close(up[1]);
	close(down[0]);
	if (pid > 0 && read(up[0], &c, 1) == 1) {
		if (fanotify_mark(fan.fd, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD, path)) {
			tap_diag("fanotify_mark %s: %s", path, strerror(errno));
			tap_bail("fanotify_mark");
		}
		allow_taint();
		if (write(down[1], &c, 1) != 1)
			tap_diag("the child went away");
		/* Denied: the mark goes before the child registers again. */
		if (h == DENY && read(up[0], &c, 1) == 1) {
			fanotify_mark(fan.fd, FAN_MARK_REMOVE, FAN_OPEN_PERM, AT_FDCWD, path);
			if (write(down[1], &c, 1) != 1)
				tap_diag("the child went away");
		}
	}
	close(up[0]);
	close(down[1]);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		status = -1;
	if (!tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == CHILD_OK,
		    "%s %s: nobody registered the file%s", mnt, how_name[h],
		    h == DENY ? " (denied first: ENOLCK; with the listener gone, registered)" : ""))
		tap_diag("child: %s", WIFEXITED(status) &&
			 WEXITSTATUS(status) < sizeof(child_why) / sizeof(child_why[0]) ?
			 child_why[WEXITSTATUS(status)] : "died");
	if (h != DENY)
		fanotify_mark(fan.fd, FAN_MARK_REMOVE, FAN_OPEN_PERM, AT_FDCWD, path);
	tap_ok(atomic_load(&asked) > was_asked, "%s %s: the listener was asked (%u)", mnt,
	       how_name[h], atomic_load(&asked) - was_asked);
	if (h != DENY)
		tap_is_int((int)(atomic_load(&stuck) - was_stuck), 0,
			   "%s %s: the listener's %s ended: the registration held none of the file's locks while it asked",
			   mnt, how_name[h], h == XATTR ? "setxattr" : "read (behind a chmod)");
	unlink(path);
}

int main(void)
{
	static const char *const xfs[] = { "/mnt/a2", "/mnt/b1" };
	int pfd, ret;

	tap_plan_lazy();
	pfd = vm_p2p_open();
	if (pfd < 0)
		tap_skip_all("no /dev/p2pio");
	close(pfd);
	ret = vm_fanotify_start(&fan, on_event);
	if (ret) {
		tap_diag("fanotify listener: %s", strerror(-ret));
		tap_bail("fanotify listener");
	}
	for (size_t i = 0; i < sizeof(xfs) / sizeof(xfs[0]); i++)
		for (int h = XATTR; h <= DENY; h++)
			one(xfs[i], (enum how)h);
	allow_taint();
	vm_fanotify_stop(&fan);
	tap_is_int((int)atomic_load(&unanswered), 0, "the listener answered every question");
	tap_is_int((int)atomic_load(&after), 0, "nothing the listener did waited past its answer");
	sync();
	return tap_exit();
}
