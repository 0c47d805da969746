// SPDX-License-Identifier: MIT
/*
 * test-stall - a submitter stuck waiting for a request of a stalled NVMe queue must not
 * hold up the free callback of the memory it is about to read into.
 *
 * Controller D's queue is cut to 4 requests and its bus mastering switched off, so that
 * 4 reads fill the queue and never complete (until the nvme driver times them out,
 * aborts and resets the controller, which turns bus mastering back on). A second thread
 * then submits a read into a callback pin: it blocks in request allocation. Freeing the
 * GPU memory under that pin fires the free callback, which must return at once instead
 * of waiting for the stuck submitter; afterwards every read completes, the controller
 * works again and nothing is left. The file system on D is remounted read-only for the
 * test and stays so (only final-hotremove reads it later): a journal write caught in the
 * stall is not retried cleanly by the emulated controller (QEMU marks itself fatal when a
 * DMA fails), which would leave D unusable.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define SERIAL "p2pD"
#define LEN (4 * VM_KIB)
#define NFILL 4

struct stuck {
	int pfd;
	uint32_t file, pin;
	int status;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sets or clears Bus Master Enable in the PCI command register of @bdf. */
static int bus_master(const char *bdf, bool on)
{
	char path[128];
	uint16_t cmd;
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(path, O_RDWR);
	if (fd < 0)
		return -errno;
	if (pread(fd, &cmd, 2, 4) != 2) {
		ret = -EIO;
	} else {
		cmd = on ? cmd | 0x4 : cmd & ~0x4;
		if (pwrite(fd, &cmd, 2, 4) != 2)
			ret = -EIO;
	}
	close(fd);
	return ret;
}

static void *stuck_reader(void *arg)
{
	struct stuck *s = arg;

	s->status = vm_p2p_read(s->pfd, s->file, s->pin, 0, LEN, 0);
	return NULL;
}

int main(void)
{
	static struct p2pio_read rd[NFILL];
	struct p2pio_completion c[NFILL];
	struct p2pio_register_file ra, rb;
	struct vm_target x;
	struct p2pio_pin py;
	struct p2pio_stats s;
	struct vm_mem y;
	struct stuck st = { .status = 1 };
	char bdf[64], ns[64], qnr[160], qto[160], old_nr[32] = "", old_to[32] = "", mnt[160];
	const char *file = vm_file_path("hr-big");
	uint32_t n, done = 0, i, got;
	double t0, t_free;
	pthread_t th;
	cpu_set_t cpu0;
	int pa, pb, nvd, fa, fb, ret;

	tap_plan_lazy();
	if (!file || vm_nvme_find(SERIAL, 1, bdf, sizeof(bdf), ns, sizeof(ns)))
		tap_skip_all("controller p2pD is not there");
	snprintf(qnr, sizeof(qnr), "/sys/block/%s/queue/nr_requests", ns);
	/* nvme_init_request() takes the command timeout from this, not from the queue */
	snprintf(qto, sizeof(qto), "/sys/module/nvme_core/parameters/io_timeout");
	if (vm_read_str(qnr, old_nr, sizeof(old_nr)) || vm_read_str(qto, old_to, sizeof(old_to)))
		tap_skip_all("no queue attributes for the namespace");
	snprintf(mnt, sizeof(mnt), "%s", file);
	*strrchr(mnt, '/') = 0;
	ret = mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL) ? -errno : 0;
	tap_is_int(ret, 0, "%s remounted read-only: no file system I/O during the stall", mnt);
	pa = vm_p2p_open();
	pb = vm_p2p_open();
	nvd = vm_nvd_open();
	if (pa < 0 || pb < 0 || nvd < 0)
		tap_skip_all("no /dev/p2pio or /dev/nvdouble");
	/* One CPU: the stuck submitter and the reads that fill the queue share its hw queue. */
	CPU_ZERO(&cpu0);
	CPU_SET(0, &cpu0);
	sched_setaffinity(0, sizeof(cpu0), &cpu0);

	fa = open(file, O_RDONLY);
	fb = open(file, O_RDONLY);
	tap_is_int(vm_p2p_register(pa, fa, &ra), 0, "register %s on two fds", file);
	tap_is_int(vm_p2p_register(pb, fb, &rb), 0, "... the second");
	tap_is_int(vm_target_new(pa, nvd, P2PIO_PROVIDER_NVIDIA, VM_MIB, 0, 0, 0, &x), 0,
		   "a persistent pin to fill the queue with");
	ret = vm_gpu_alloc(nvd, &y, VM_MIB, 0, 0);
	if (!ret)
		ret = vm_p2p_pin_gpu(pb, &y, P2PIO_PIN_F_NONPERSISTENT, &py);
	tap_is_int(ret, 0, "a callback pin for the stuck submitter");
	if (ret)
		return tap_exit();
	/* Both pins mapped for the controller now: later reads only allocate and issue. */
	tap_is_int(vm_p2p_read(pa, ra.handle, x.pin.handle, 0, LEN, 0), 0, "a read maps pin 1");
	tap_is_int(vm_p2p_read(pb, rb.handle, py.handle, 0, LEN, 0), 0, "a read maps pin 2");

	tap_is_int(vm_write_str(qnr, "4"), 0, "%s: 4 requests (was %s)", ns, old_nr);
	tap_is_int(vm_write_str(qto, "8"), 0, "nvme: 8 s I/O timeout (was %s s)", old_to);
	tap_is_int(bus_master(bdf, false), 0, "%s: bus mastering off", bdf);
	for (i = 0; i < NFILL; i++)
		rd[i] = (struct p2pio_read){ .file = ra.handle, .mem = x.pin.handle,
					     .file_offset = (i + 1) * LEN, .length = LEN,
					     .mem_offset = (i + 1) * LEN, .user_tag = i };
	ret = vm_p2p_submit(pa, rd, NFILL, &n);
	tap_ok(!ret && n == NFILL, "%u reads fill the queue and hang", NFILL);

	st.pfd = pb;
	st.file = rb.handle;
	st.pin = py.handle;
	pthread_create(&th, NULL, stuck_reader, &st);
	sleep(1);	/* it is now waiting for a request */
	t0 = now();
	ret = vm_gpu_free(&y);	/* the free callback of the stuck submitter's pin */
	t_free = now() - t0;
	tap_is_int(ret, 0, "the memory under the stuck submitter's pin freed");
	tap_ok(t_free < 2.0, "the free callback did not wait for the stuck submitter (%.2f s)",
	       t_free);
	bus_master(bdf, true);

	/* The nvme driver times out, aborts, resets: every read ends, with or without data. */
	while (done < n && !vm_p2p_reap(pa, c + done, n - done, 1, 60000000000ll, &got) && got)
		done += got;
	tap_is_int(done, n, "the reads that filled the queue completed");
	pthread_join(th, NULL);
	tap_ok(st.status == -ENODEV || st.status == 0 || st.status == -EIO,
	       "the stuck read ended: %s", strerror(-st.status));
	vm_write_str(qnr, old_nr);
	vm_write_str(qto, old_to);
	ret = -1;
	for (i = 0; i < 50 && ret; i++) {	/* the reset may still be finishing */
		ret = vm_p2p_read(pa, ra.handle, x.pin.handle, 64 * VM_KIB, 64 * VM_KIB, 0);
		if (ret)
			usleep(200000);
	}
	tap_is_int(ret, 0, "the controller reads again");
	vm_mem_expect_file(&x.mem, 0, 64 * VM_KIB, "hr-big", 64 * VM_KIB);
	tap_ok(!vm_host_sync(), "the host finds the file's bytes in the GPU memory");

	tap_is_int(vm_p2p_unpin(pb, py.handle), 0, "unpin the revoked pin");
	tap_is_int(vm_target_free(pa, &x), 0, "unpin the other");
	vm_p2p_unregister(pa, ra.handle);
	vm_p2p_unregister(pb, rb.handle);
	close(fa);
	close(fb);
	vm_p2p_stats(pa, P2PIO_STATS_GLOBAL, &s);
	tap_ok(!s.inflight_cmds && !s.live_pins && !s.live_prp_pages,
	       "nothing left: commands, pins, PRP pages");
	close(nvd);
	close(pb);
	close(pa);
	/* Left read-only: after the reset the journal of D is best not written (only reads follow). */
	return tap_exit();
}
