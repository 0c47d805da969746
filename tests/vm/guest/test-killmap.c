// SPDX-License-Identifier: MIT
/*
 * test-killmap - a reader queued behind another fd's slow map of the same controller
 * dies on SIGKILL at once.
 *
 * The first use of a pin with a controller maps it, under the controller's lock
 * (nvme->lock), which is held across the driver's dma_map_pages on purpose (the unbind
 * waits for a map in progress). Here the double's map takes MAP_MS (map_delay_ms). This
 * process's thread makes such a map (a read of its fresh pin); a second process, with its
 * own fd, pin and file on the same controller, then submits a read that needs the same
 * lock, and is killed while it waits.
 *
 * Pass: the killed process is gone within KILL_MS (well under the map's remaining time);
 * the first read completes and its bytes are what the host expects; nothing is left and
 * the double's map is back to 0 ms. A module that took the lock with mutex_lock() left
 * the killed process in D state until the map returned (MAP_MS - 1 s later).
 *
 * Then a batch: one SUBMIT of two reads into two fresh pins, each needing its own map
 * (BATCH_MAP_MS each), killed inside the first map. Pass: the process is gone once that
 * map returns, well before a second map could have run. The module went on to the next
 * read of a killed submitter's batch, and its map took the lock uncontended: the process
 * lived through every map of the batch.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define FSIZE (1 * VM_MIB)
#define RLEN 65536
#define MAP_MS 6000
#define KILL_MS 1500
#define POISON 0x6b
#define MAP_DELAY "/sys/module/nvdouble/parameters/map_delay_ms"
#define BATCH_MAP_MS 3000
#define BATCH_KILL_AFTER_MS 1000
#define MNT "/mnt/a1"		/* both files on controller A's namespace 1 */

/*
 * The second process: its own /dev/p2pio and /dev/nvdouble fds, file and pin; says
 * "ready" (1) or why not (0) on @ready, waits for a byte on @go, then reads (and is
 * killed while it waits). Writes nothing to stdout: the TAP stream is the parent's.
 */
static void second(const char *path, int ready, int go)
{
	struct p2pio_register_file reg;
	struct vm_target t;
	char c = 0;
	int pfd, nvd, xfd;

	pfd = vm_p2p_open();
	nvd = vm_nvd_open();
	xfd = open(path, O_RDONLY | O_CLOEXEC);
	if (pfd >= 0 && nvd >= 0 && xfd >= 0 && !vm_p2p_register(pfd, xfd, &reg) &&
	    !vm_target_new(pfd, nvd, P2PIO_PROVIDER_NVIDIA, FSIZE, 0, 0, 0, &t))
		c = 1;
	if (write(ready, &c, 1) != 1 || !c)
		_exit(2);
	if (read(go, &c, 1) != 1)
		_exit(3);
	vm_p2p_read(pfd, reg.handle, t.pin.handle, 0, RLEN, 0);
	_exit(4);	/* not reached before the kill, or the kill came too late */
}

/* Whether /proc/<pid>/stack shows @fn (root only; the kernels have CONFIG_STACKTRACE). */
static bool stack_has(pid_t pid, const char *fn)
{
	char path[64], buf[4096];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stack", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	if (!strstr(buf, fn))
		tap_diag("stack of %d:\n%s", (int)pid, buf);
	return strstr(buf, fn) != NULL;
}

/*
 * The batch's process: its own fds, @path registered, two fresh pins; says "ready" as
 * second() does, waits for @go, then submits one read into each pin in one SUBMIT.
 */
static void batcher(const char *path, int ready, int go)
{
	struct p2pio_register_file reg;
	struct p2pio_read rd[2];
	struct vm_target t[2];
	uint32_t accepted;
	char c = 0;
	int pfd, nvd, xfd, i;

	pfd = vm_p2p_open();
	nvd = vm_nvd_open();
	xfd = open(path, O_RDONLY | O_CLOEXEC);
	if (pfd >= 0 && nvd >= 0 && xfd >= 0 && !vm_p2p_register(pfd, xfd, &reg) &&
	    !vm_target_new(pfd, nvd, P2PIO_PROVIDER_NVIDIA, FSIZE, 0, 0, 0, &t[0]) &&
	    !vm_target_new(pfd, nvd, P2PIO_PROVIDER_NVIDIA, FSIZE, 0, 0, 0, &t[1]))
		c = 1;
	if (write(ready, &c, 1) != 1 || !c)
		_exit(2);
	if (read(go, &c, 1) != 1)
		_exit(3);
	memset(rd, 0, sizeof(rd));
	for (i = 0; i < 2; i++) {
		rd[i].file = reg.handle;
		rd[i].mem = t[i].pin.handle;
		rd[i].length = RLEN;
		rd[i].user_tag = (uint64_t)i;
	}
	vm_p2p_submit(pfd, rd, 2, &accepted);
	_exit(4);	/* not reached before the kill, or the kill came too late */
}

/*
 * Fork a process that runs @fn on @path: its pid once it said it is ready, with *@go_wr
 * the pipe it waits on for a byte; -1 if it could not get ready (reaped).
 */
static pid_t spawn_ready(void (*fn)(const char *, int, int), const char *path, int *go_wr)
{
	int ready[2], go[2];
	pid_t pid;
	char c = 0;

	if (pipe2(ready, O_CLOEXEC) || pipe2(go, O_CLOEXEC))
		tap_bail("pipe");
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(ready[0]);
		close(go[1]);
		fn(path, ready[1], go[0]);
	}
	close(ready[1]);
	close(go[0]);
	if (pid > 0 && (read(ready[0], &c, 1) != 1 || c != 1)) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		pid = -1;
	}
	close(ready[0]);
	if (pid <= 0) {
		close(go[1]);
		return -1;
	}
	*go_wr = go[1];
	return pid;
}

/*
 * SIGKILL @pid, at *@t_kill: when it was reaped, its status in *@st; 0 if not within
 * @limit_ms (it is reaped anyway, later). Polled: a child stuck until a map returns must
 * not stop the checks after.
 */
static uint64_t kill_and_wait(pid_t pid, unsigned int limit_ms, uint64_t *t_kill, int *st)
{
	uint64_t t_gone = 0;
	pid_t w;

	*t_kill = vm_now_ns();
	kill(pid, SIGKILL);
	while (vm_now_ns() - *t_kill < limit_ms * 1000000ull) {
		w = waitpid(pid, st, WNOHANG);
		if (w == pid) {
			t_gone = vm_now_ns();
			break;
		}
		if (w < 0)
			break;
		vm_sleep_ms(10);
	}
	if (!t_gone)
		waitpid(pid, NULL, 0);
	return t_gone;
}

/* A killed submitter of a batch of reads into fresh pins lives through one map, not all. */
static void batch_killed(const char *path)
{
	uint64_t t_go, t_kill, t_gone;
	int go = -1, st = 0;
	pid_t pid;

	pid = spawn_ready(batcher, path, &go);
	if (!tap_ok(pid > 0, "batch: a process with its own fd, the file and two fresh pins"))
		return;
	tap_is_int(vm_write_str(MAP_DELAY, "3000"), 0, "batch: the double's map takes %d ms",
		   BATCH_MAP_MS);
	t_go = vm_now_ns();
	if (write(go, "g", 1) != 1)
		tap_diag("go: %s", strerror(errno));
	vm_sleep_ms(BATCH_KILL_AFTER_MS);	/* inside the first read's map */
	tap_ok(waitpid(pid, &st, WNOHANG) == 0 && stack_has(pid, "p2pio_mem_get_map"),
	       "batch: the process is inside its first read's map");
	t_gone = kill_and_wait(pid, 3 * BATCH_MAP_MS + 10000, &t_kill, &st);
	/* The first map has BATCH_MAP_MS - BATCH_KILL_AFTER_MS left; a second takes 3 s more. */
	tap_ok(t_gone && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL &&
		       t_gone - t_kill < (BATCH_MAP_MS - BATCH_KILL_AFTER_MS + 1500) * 1000000ull,
	       "batch: SIGKILLed inside its first map, gone in %lld ms, once that map returned (at most %d; a second map would end at %d)",
	       t_gone ? (long long)((t_gone - t_kill) / 1000000) : -1LL,
	       BATCH_MAP_MS - BATCH_KILL_AFTER_MS + 1500,
	       2 * BATCH_MAP_MS - (int)((t_kill - t_go) / 1000000));
	vm_write_str(MAP_DELAY, "0");
	close(go);
}

int main(void)
{
	const char *one = MNT "/km-one", *two = MNT "/km-two";
	struct p2pio_register_file reg;
	struct vm_timed_read r = { .pfd = -1, .len = RLEN };
	int go = -1, nvd, pfd, xfd = -1, ret, st = 0;
	uint64_t t_kill, t_gone, t_read0;
	struct vm_target t;
	pthread_t tid;
	pid_t pid;

	tap_plan_lazy();
	pfd = vm_test_open(&nvd, true);
	if (!tap_ok(!vm_make_pattern_file(one, "km-one", FSIZE) &&
		    !vm_make_pattern_file(two, "km-two", FSIZE), "two files on " MNT " written"))
		goto out;
	xfd = open(one, O_RDONLY | O_CLOEXEC);
	r.pfd = vm_p2p_open();
	ret = xfd < 0 || r.pfd < 0 ? -EBADF : vm_p2p_register(r.pfd, xfd, &reg);
	if (!tap_is_int(ret, 0, "the first file registered"))
		goto out;
	ret = vm_target_new(r.pfd, nvd, P2PIO_PROVIDER_NVIDIA, FSIZE, 0, 0, 0, &t);
	if (!tap_is_int(ret, 0, "a fresh pin (not yet mapped for the controller)"))
		goto out_unreg;
	r.file = reg.handle;
	r.pin = t.pin.handle;
	vm_mem_poison(&t.mem, 0, RLEN + 4096, POISON);
	tap_ok(!vm_host_sync(), "destination poisoned");

	pid = spawn_ready(second, two, &go);
	if (!tap_ok(pid > 0, "a second process: its own fd, file on the same controller, fresh pin"))
		goto out_free;

	tap_is_int(vm_write_str(MAP_DELAY, "6000"), 0, "the double's map takes %d ms", MAP_MS);
	t_read0 = vm_now_ns();
	pthread_create(&tid, NULL, vm_timed_read, &r);
	vm_sleep_ms(500);	/* the first read is inside its map, holding nvme->lock */
	if (write(go, "g", 1) != 1)
		tap_diag("go: %s", strerror(errno));
	vm_sleep_ms(500);	/* the second read waits for the controller's lock */
	tap_ok(waitpid(pid, &st, WNOHANG) == 0 && stack_has(pid, "p2pio_mem_get_map"),
	       "the second process waits in p2pio_mem_get_map (the first map holds the lock)");
	t_gone = kill_and_wait(pid, MAP_MS + 10000, &t_kill, &st);
	tap_ok(t_gone && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL &&
	       t_gone - t_kill < KILL_MS * 1000000ull,
	       "SIGKILLed while it waited, it was gone in %lld ms (at most %d; the map had %lld ms left)",
	       t_gone ? (long long)((t_gone - t_kill) / 1000000) : -1LL, KILL_MS,
	       (long long)MAP_MS - (long long)((t_kill - t_read0) / 1000000));
	pthread_join(tid, NULL);
	vm_write_str(MAP_DELAY, "0");
	tap_is_int(r.status, 0, "the first read completed (after %llu ms)",
		   (unsigned long long)((atomic_load(&r.end_ns) - t_read0) / 1000000));
	tap_ok(atomic_load(&r.end_ns) - t_read0 >= (MAP_MS - 100) * 1000000ull,
	       "... after its map's delay (the map was the slow one)");
	vm_mem_expect_file(&t.mem, 0, RLEN, "km-one", 0);
	vm_mem_expect_fill(&t.mem, RLEN, 4096, POISON);
	if (!tap_ok(!vm_host_sync(), "the host finds the first read's bytes, nothing past them"))
		tap_diag("%s", vm_host_why());
	tap_is_int(vm_p2p_read(r.pfd, r.file, r.pin, RLEN, RLEN, RLEN), 0,
		   "a later read of the same pin (mapped now)");
	vm_mem_expect_file(&t.mem, RLEN, RLEN, "km-one", RLEN);
	if (!tap_ok(!vm_host_sync(), "... its bytes too"))
		tap_diag("%s", vm_host_why());
	close(go);
	batch_killed(two);
out_free:
	tap_is_int(vm_target_free(r.pfd, &t), 0, "unpinned");
out_unreg:
	tap_is_int(vm_p2p_unregister(r.pfd, reg.handle), 0, "unregistered");
out:
	vm_write_str(MAP_DELAY, "0");
	if (r.pfd >= 0)
		close(r.pfd);
	if (xfd >= 0)
		close(xfd);
	unlink(one);
	unlink(two);
	tap_ok(vm_nothing_left(pfd), "nothing left: commands, reads, files, pins, PRP pages");
	close(nvd);
	close(pfd);
	return tap_exit();
}
