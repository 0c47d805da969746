// SPDX-License-Identifier: MIT
/*
 * test-teardown - p2pio cleans up whatever the user does, and never writes into memory
 * it no longer owns:
 *  - a process closes its fd, exits, or is killed with many reads in flight;
 *  - GPU memory is freed under a callback pin, idle and with reads in flight: the free
 *    callback waits for them, later reads fail with ENODEV, and nothing lands in the
 *    memory after the free returned (the host re-poisons it and checks);
 *  - GPU memory is freed under a persistent pin: the memory stays until unpinned;
 *  - the modules cannot be unloaded while in use;
 * and after each case the module's and the double's live-object counters are back to
 * zero. (The phase's final rmmod, a test of its own, proves the rest.)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define POISON 0x3c
#define NREADS 64
#define READ_LEN (256 * VM_KIB)

static int pfd;

/* The file the heavy cases read: on controller B (16 KiB MDTS: many commands). */
static const char *heavy_file(void)
{
	return vm_file_path("b1-big");
}

/* Everything that must be back to zero when no fd but ours (holding nothing) is open. */
static void no_leaks(const char *when)
{
	struct p2pio_stats s;
	struct nvdouble_info ni;
	int ret = vm_p2p_stats(pfd, P2PIO_STATS_GLOBAL, &s);

	if (!tap_ok(!ret && !s.inflight_cmds && !s.outstanding && !s.live_files && !s.live_pins &&
		    !s.live_prp_pages && s.live_fds == 1,
		    "%s: no commands, reads, files, pins or PRP pages left", when))
		tap_diag("inflight %llu outstanding %llu files %llu pins %llu prp %llu fds %llu",
			 (unsigned long long)s.inflight_cmds, (unsigned long long)s.outstanding,
			 (unsigned long long)s.live_files, (unsigned long long)s.live_pins,
			 (unsigned long long)s.live_prp_pages, (unsigned long long)s.live_fds);
	ret = vm_nvd_info(&ni);
	if (!tap_ok(!ret && !ni.pins_persistent && !ni.pins_callback && !ni.dma_mappings &&
		    !ni.allocs, "%s: no GPU pins, DMA mappings or allocations left", when))
		tap_diag("persistent %u callback %u mappings %u allocs %u", ni.pins_persistent,
			 ni.pins_callback, ni.dma_mappings, ni.allocs);
}

/*
 * Sets up a reader on its own fds: registers the heavy file, pins 16 MiB of GPU memory
 * (callback pin if @pflags says so) and submits NREADS reads. Returns the p2pio fd.
 */
struct reader {
	int pfd, nvd, file;
	struct vm_target t;
	uint32_t fh, submitted;
};

static int reader_start(struct reader *r, uint32_t pflags, bool nvd_first)
{
	struct p2pio_register_file reg;
	struct p2pio_read rd[NREADS];
	uint32_t i, k;
	int ret;

	memset(r, 0, sizeof(*r));
	/* the fd closed first at exit is the lower one */
	if (nvd_first) {
		r->nvd = vm_nvd_open();
		r->pfd = vm_p2p_open();
	} else {
		r->pfd = vm_p2p_open();
		r->nvd = vm_nvd_open();
	}
	r->file = open(heavy_file(), O_RDONLY);
	if (r->pfd < 0 || r->nvd < 0 || r->file < 0)
		return -ENODEV;
	ret = vm_p2p_register(r->pfd, r->file, &reg);
	if (ret)
		return ret;
	r->fh = reg.handle;
	ret = vm_target_new(r->pfd, r->nvd, P2PIO_PROVIDER_NVIDIA, NREADS * READ_LEN, 0, 0,
			    pflags, &r->t);
	if (ret)
		return ret;
	for (i = 0; i < NREADS; i++)
		rd[i] = (struct p2pio_read){ .file = r->fh, .mem = r->t.pin.handle,
					     .file_offset = i * READ_LEN, .length = READ_LEN,
					     .mem_offset = i * READ_LEN, .user_tag = i };
	for (i = 0; i < NREADS; i += k) {
		ret = vm_p2p_submit(r->pfd, rd + i, NREADS - i, &k);
		if (ret)
			return ret;
	}
	r->submitted = NREADS;
	return 0;
}

/* A child that starts reads, tells the parent, then does @how. */
enum how { CLOSE_FD, EXIT, EXIT_CALLBACK, WAIT_FOR_KILL };

static void child_case(enum how how, const char *what)
{
	struct reader r;
	int p[2], st;
	char c = 0;
	pid_t pid;

	if (pipe(p))
		return;
	pid = fork();
	if (pid == 0) {
		int ret = reader_start(&r, how == EXIT_CALLBACK ? P2PIO_PIN_F_NONPERSISTENT : 0,
				       how == EXIT || how == EXIT_CALLBACK);

		c = ret ? 'E' : 'S';
		if (write(p[1], &c, 1) != 1)
			_exit(3);
		if (ret)
			_exit(2);
		switch (how) {
		case CLOSE_FD:
			close(r.pfd);
			_exit(0);
		case EXIT:
		case EXIT_CALLBACK:
			_exit(0);	/* the GPU memory's fd goes first */
		case WAIT_FOR_KILL:
			pause();
		}
		_exit(1);
	}
	close(p[1]);
	tap_ok(read(p[0], &c, 1) == 1 && c == 'S', "%s: %d reads of %llu KiB in flight", what,
	       NREADS, (unsigned long long)(READ_LEN >> 10));
	close(p[0]);
	if (how == WAIT_FOR_KILL)
		kill(pid, SIGKILL);
	tap_ok(waitpid(pid, &st, 0) == pid &&
	       (how == WAIT_FOR_KILL ? WIFSIGNALED(st) : WIFEXITED(st) && !WEXITSTATUS(st)),
	       "%s: the process ended", what);
	no_leaks(what);
}

static uint64_t revoked_count(void)
{
	struct p2pio_stats s;

	vm_p2p_stats(pfd, P2PIO_STATS_GLOBAL, &s);
	return s.revoked;
}

/* Free under an idle pin; persistent pins keep the memory, callback pins are revoked. */
static void free_idle(uint32_t pflags, const char *what)
{
	struct p2pio_register_file reg;
	struct nvdouble_info before, after;
	struct nvdouble_free fr;
	struct vm_target t;
	uint64_t rev0 = revoked_count();
	int nvd = vm_nvd_open(), fd = open(vm_file_path("a1-1m"), O_RDONLY), ret;
	bool persistent;

	tap_is_int(vm_p2p_register(pfd, fd, &reg), 0, "%s: register", what);
	ret = vm_target_new(pfd, nvd, P2PIO_PROVIDER_NVIDIA, VM_MIB, 0, 0, pflags, &t);
	tap_is_int(ret, 0, "%s: pin 1 MiB", what);
	persistent = t.pin.out_flags & P2PIO_PIN_OUT_PERSISTENT;
	tap_ok(persistent == !(t.pin.out_flags & P2PIO_PIN_OUT_REVOCABLE),
	       "%s: the pin is %s", what, persistent ? "persistent" : "revocable");
	tap_is_int(vm_p2p_read(pfd, reg.handle, t.pin.handle, 0, 65536, 0), 0,
		   "%s: a read before the free", what);
	vm_nvd_info(&before);
	fr.gpu_va = t.backing.va;
	tap_ok(!ioctl(nvd, NVDOUBLE_IOC_FREE, &fr), "%s: cuMemFree of the pinned memory", what);
	vm_nvd_info(&after);
	vm_mem_poison(&t.mem, 0, VM_MIB, POISON);
	vm_host_sync();
	ret = vm_p2p_read(pfd, reg.handle, t.pin.handle, 65536, 65536, 65536);
	if (persistent) {
		tap_is_int(after.allocs, before.allocs, "%s: the pinned memory stays allocated", what);
		tap_is_int(ret, 0, "%s: reads into the pin still work", what);
		vm_mem_expect_file(&t.mem, 65536, 65536, "a1-1m", 65536);
		tap_ok(!vm_host_sync(), "%s: and land", what);
	} else {
		tap_is_u64(after.callbacks_fired, before.callbacks_fired + 1,
			   "%s: the free callback fired", what);
		tap_is_u64(revoked_count(), rev0 + 1, "%s: p2pio counted the revocation", what);
		tap_is_int(ret, -ENODEV, "%s: a read after the free: ENODEV", what);
		vm_mem_expect_fill(&t.mem, 0, VM_MIB, POISON);
		tap_ok(!vm_host_sync(), "%s: nothing landed in freed memory", what);
	}
	tap_is_int(vm_p2p_unpin(pfd, t.pin.handle), 0, "%s: unpin", what);
	vm_mem_release(&t.mem);
	vm_mem_release(&t.backing);
	vm_p2p_unregister(pfd, reg.handle);
	close(fd);
	close(nvd);
	no_leaks(what);
}

/*
 * Free a callback pin's memory while its reads are in flight: a child (sharing the
 * allocator fd, as a second thread would) frees it as soon as commands are in flight,
 * while this process keeps submitting; the child then has the host poison the freed
 * memory at once, and in the end nothing may have landed there after the free returned.
 */
#define FLIGHT_READS 1024
#define FLIGHT_LEN (64 * VM_KIB)

static void free_in_flight(void)
{
	const char *what = "free during reads";
	static struct p2pio_read rd[FLIGHT_READS];
	static struct p2pio_completion c[FLIGHT_READS];
	struct p2pio_register_file reg;
	struct vm_target t;
	uint32_t accepted = 0, done = 0, got, k, ok = 0, gone = 0, other = 0, i;
	int nvd = vm_nvd_open(), fd = open(heavy_file(), O_RDONLY), st, ret;
	pid_t pid;

	ret = vm_p2p_register(pfd, fd, &reg);
	ret = ret ? ret : vm_target_new(pfd, nvd, P2PIO_PROVIDER_NVIDIA, 16 * VM_MIB, 0, 0,
					P2PIO_PIN_F_NONPERSISTENT, &t);
	if (!tap_is_int(ret, 0, "%s: 16 MiB pinned with a free callback", what))
		return;
	vm_mem_poison(&t.mem, 0, t.mem.size, POISON);
	vm_host_sync();
	for (i = 0; i < FLIGHT_READS; i++)
		rd[i] = (struct p2pio_read){ .file = reg.handle, .mem = t.pin.handle,
					     .file_offset = i * FLIGHT_LEN % (16 * VM_MIB),
					     .length = FLIGHT_LEN,
					     .mem_offset = i * FLIGHT_LEN % (16 * VM_MIB),
					     .user_tag = i };
	pid = fork();
	if (pid == 0) {
		struct nvdouble_free fr = { .gpu_va = t.backing.va };
		struct p2pio_stats s = { 0 };
		int sp = vm_p2p_open(), n;

		for (n = 0; n < 20000 && !s.inflight_cmds; n++)
			vm_p2p_stats(sp, P2PIO_STATS_GLOBAL, &s);
		if (ioctl(nvd, NVDOUBLE_IOC_FREE, &fr))
			_exit(255);
		vm_mem_poison(&t.mem, 0, t.mem.size, POISON);
		vm_host_sync();
		_exit(s.inflight_cmds > 200 ? 200 : (int)s.inflight_cmds);
	}
	while (accepted < FLIGHT_READS) {
		ret = vm_p2p_submit(pfd, rd + accepted, FLIGHT_READS - accepted, &k);
		if (ret && ret != -EAGAIN)
			break;		/* the pin was revoked: nothing more is accepted */
		accepted += k;
		if (!k && done < accepted &&
		    !vm_p2p_reap(pfd, c + done, accepted - done, 1, 10000000000ll, &got))
			done += got;
		else if (!k)
			break;
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		st = 255 << 8;
	tap_ok(WEXITSTATUS(st) > 0 && WEXITSTATUS(st) < 255,
	       "%s: cuMemFree returned, called with %d commands in flight", what, WEXITSTATUS(st));
	while (done < accepted &&
	       !vm_p2p_reap(pfd, c + done, accepted - done, 1, 10000000000ll, &got) && got)
		done += got;
	tap_is_int(done, accepted, "%s: each of the %u accepted reads completed", what, accepted);
	for (i = 0; i < done; i++) {
		if (c[i].status == 0)
			ok++;
		else if (c[i].status == -ENODEV)
			gone++;
		else
			other++;
	}
	tap_ok(!other && gone + (FLIGHT_READS - accepted) > 0,
	       "%s: %u done before the free, %u failed with ENODEV, %u not accepted, %u otherwise",
	       what, ok, gone, FLIGHT_READS - accepted, other);
	usleep(200000);
	vm_mem_expect_fill(&t.mem, 0, t.mem.size, POISON);
	if (!tap_ok(!vm_host_sync(), "%s: nothing landed after the free returned", what))
		tap_diag("%s", vm_host_why());
	tap_is_int(vm_p2p_unpin(pfd, t.pin.handle), 0, "%s: unpin the revoked pin", what);
	vm_mem_release(&t.mem);
	vm_mem_release(&t.backing);
	vm_p2p_unregister(pfd, reg.handle);
	close(fd);
	close(nvd);
	no_leaks(what);
}

static void unload_refused(void)
{
	tap_ok(syscall(SYS_delete_module, "p2pio", O_NONBLOCK) && errno == EWOULDBLOCK,
	       "rmmod p2pio while /dev/p2pio is open: refused (in use)");
	tap_ok(syscall(SYS_delete_module, "nvdouble", O_NONBLOCK) && errno == EWOULDBLOCK,
	       "rmmod of the NVIDIA double while p2pio uses it: refused");
}

int main(void)
{
	tap_plan_lazy();
	pfd = vm_p2p_open();
	if (pfd < 0)
		tap_skip_all("no /dev/p2pio");
	if (!heavy_file())
		tap_bail("no b1-big");
	tap_ok(!vm_host_sync(), "host channel");
	no_leaks("at start");

	child_case(CLOSE_FD, "close with reads in flight");
	child_case(EXIT, "exit with reads in flight");
	child_case(EXIT_CALLBACK, "exit with reads in flight, callback pin");
	child_case(WAIT_FOR_KILL, "SIGKILL with reads in flight");
	free_idle(0, "free under a pin");
	free_idle(P2PIO_PIN_F_NONPERSISTENT, "free under a callback pin");
	free_in_flight();
	unload_refused();
	no_leaks("at the end");
	close(pfd);
	return tap_exit();
}
