// SPDX-License-Identifier: MIT
/*
 * final-regrace - registrations race the removal of their NVMe controller (issue 10,
 * item 8). Four threads register files of controller E (serial p2pE) in a tight loop
 * while the controller is removed (PCI remove) and rescanned, ROUNDS times: two read four
 * ranges through each registration in one submission, two only register and unregister,
 * so that many registrations and submissions meet the removal. Every call must return 0
 * or a clean errno, every byte a successful read landed is checked by the host, and
 * afterwards nothing may be left: no command, read, file, pin or PRP page, and the
 * user's count of registered files back at zero (one file registers under
 * max_user_files=1, a second does not).
 *
 * What it is for: a registration that looked at the controller after p2pio's removal
 * notifier had run but before the device left sysfs made a PRP pool (dma_pool_create)
 * for a device on its way out (ENOMEM when its sysfs directory was already gone, else a
 * "kernfs: can not remove 'pools'" WARNING when the pool was destroyed later), and a
 * submitter could get the map of a removed controller, whose DMA addresses were freed
 * (a general protection fault in p2pio_nv_dma). Registration now requires nvme-pci
 * bound, checked under the lock the notifier takes, and a dead binding's maps are never
 * handed out (tests/vm/FINDINGS.md has the runs on the module before the fix).
 *
 * Runs in the last phase (test-fuzz removed E there before; the first rescan brings it
 * back) and rescans it once more at the end: later programs find it present (unmounted).
 * The file systems of a removed controller stay mounted (init.sh: no umount).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define SERIAL "p2pE"
#define NSID 1
#define ROUNDS 24
#define NWORKERS 4
#define NREADERS 2		/* workers 0 and 1 read through each registration */
#define LEN (64 * VM_KIB)
#define BATCH 4			/* reads a reader submits at once, each into its own LEN */
#define PARAM "/sys/module/p2pio/parameters/max_user_files"

static const char *const names[NWORKERS] = { "fz-1m", "fz-odd", "fz-big", "fz-pub" };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;	/* host channel */
static atomic_int stop;

struct worker {
	pthread_t tid;
	int idx;
	int pfd;
	int fd;			/* this round's file, open before the removal */
	struct vm_target t;
	uint64_t seed;
	/* results, over all rounds */
	unsigned int regs, reg_errs, reads_ok, read_errs, checked, bad, odd;
	char why[160];
};

static void odd(struct worker *w, const char *what, int ret)
{
	if (!w->odd++)
		snprintf(w->why, sizeof(w->why), "%s: %d (%s)", what, ret, strerror(-ret));
}

/*
 * What a registration on a controller going away may say besides 0. Not ENOMEM: that is
 * what a module says whose dma_pool_create() met a device that has left sysfs.
 */
static bool clean_reg_errno(int ret)
{
	switch (-ret) {
	case ENODEV: case ENXIO: case EIO: case EAGAIN: case ENOLCK: case ENOTBLK:
		return true;
	}
	return false;
}

/* ... and a read through a registration made before or during the removal. */
static bool clean_read_errno(int ret)
{
	switch (-ret) {
	case ENODEV: case ENXIO: case EIO: case ESTALE:
		return true;
	}
	return false;
}

/*
 * BATCH reads through @reg into BATCH regions of the pin, submitted together (more
 * submissions meet the removal); the host then checks every one that succeeded, in one
 * round trip, before the next batch overwrites them.
 */
static void read_batch(struct worker *w, const struct p2pio_register_file *reg)
{
	struct p2pio_read rd[BATCH];
	struct p2pio_completion c[BATCH];
	uint32_t k = 0, got = 0, n, j;
	unsigned int ok = 0;
	int ret;

	for (j = 0; j < BATCH; j++) {
		uint64_t off = vm_rand(&w->seed) % (reg->size > LEN ? reg->size - LEN : 1) & ~4095ull;

		rd[j] = (struct p2pio_read){ .file = reg->handle, .mem = w->t.pin.handle,
					     .file_offset = off,
					     .length = reg->size - off < LEN ? reg->size - off : LEN,
					     .mem_offset = j * LEN, .user_tag = j };
	}
	ret = vm_p2p_submit(w->pfd, rd, BATCH, &k);
	if (ret && ret != -EAGAIN)
		odd(w, "submit", ret);
	while (got < k && !vm_p2p_reap(w->pfd, c + got, k - got, k - got, 10000000000ll, &n) && n)
		got += n;
	if (got < k)
		odd(w, "reap (a read that never completes)", -ETIMEDOUT);
	pthread_mutex_lock(&lock);
	for (j = 0; j < got; j++) {
		const struct p2pio_read *r = &rd[c[j].user_tag % BATCH];

		if (!c[j].status) {
			w->reads_ok++;
			vm_mem_expect_file(&w->t.mem, r->mem_offset, r->length, names[w->idx],
					   r->file_offset);
			ok++;
		} else {
			w->read_errs++;
			if (!clean_read_errno(c[j].status))
				odd(w, "read", c[j].status);
		}
	}
	if (ok) {
		if (vm_host_sync()) {
			if (!w->bad)
				tap_diag("worker %d: %s", w->idx, vm_host_why());
			w->bad += ok;
		}
		w->checked += ok;
	}
	pthread_mutex_unlock(&lock);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct p2pio_register_file reg;
	int fd = w->fd, ret;

	while (!atomic_load(&stop)) {
		ret = vm_p2p_register(w->pfd, fd, &reg);
		if (ret) {
			w->reg_errs++;
			if (!clean_reg_errno(ret))
				odd(w, "register", ret);
			continue;
		}
		w->regs++;
		if (w->idx >= NREADERS)
			goto unregister;	/* registrations only: more of them meet the removal */
		read_batch(w, &reg);
unregister:
		ret = vm_p2p_unregister(w->pfd, reg.handle);
		if (ret)
			odd(w, "unregister", ret);
	}
	return NULL;
}

/* Rescans the PCI bus until controller E's namespace is a block device again. */
static int bring_back(char *bdf, size_t bdflen, char *ns, size_t nslen)
{
	int i;

	if (!vm_nvme_find(SERIAL, NSID, bdf, bdflen, ns, nslen))
		return 0;
	if (vm_write_str("/sys/bus/pci/rescan", "1"))
		return -EIO;
	for (i = 0; i < 200; i++) {	/* the namespace scan is asynchronous */
		char dev[96];

		if (!vm_nvme_find(SERIAL, NSID, bdf, bdflen, ns, nslen)) {
			snprintf(dev, sizeof(dev), "/dev/%s", ns);
			if (!access(dev, R_OK))
				return 0;
		}
		vm_sleep_ms(50);
	}
	return -ENODEV;
}

/* Mounts the fresh namespace read-only; the disk may still be coming up (ENXIO). */
static int mount_fresh(const char *dev, const char *path)
{
	int i;

	for (i = 0; i < 100; i++) {
		if (!mount(dev, path, "ext4", MS_RDONLY, "noload"))
			return 0;
		if (errno != ENXIO && errno != ENODEV && errno != ENOENT)
			return -1;
		vm_sleep_ms(50);
	}
	return -1;
}

/* Registers @path once under max_user_files=1: 0 when the user holds no file. */
static void user_count_is_zero(int pfd)
{
	struct p2pio_register_file r1, r2;
	const char *file = vm_file_path("a1-small");
	int fd, ret, ret2;

	if (access(PARAM, W_OK)) {
		tap_skip(1, "this module has no per-user limits (no max_user_files)");
		return;
	}
	fd = file ? open(file, O_RDONLY) : -1;
	vm_write_str(PARAM, "1");
	ret = vm_p2p_register(pfd, fd, &r1);
	ret2 = ret ? ret : vm_p2p_register(pfd, fd, &r2);
	vm_write_str(PARAM, "4096");
	tap_ok(!ret && ret2 == -EDQUOT,
	       "the user's count of registered files is back at zero (max_user_files=1: one registers (%d), a second gets EDQUOT (%d))",
	       ret, ret2);
	if (!ret)
		vm_p2p_unregister(pfd, r1.handle);
	if (!ret2)
		vm_p2p_unregister(pfd, r2.handle);
	if (fd >= 0)
		close(fd);
}

int main(void)
{
	static struct worker w[NWORKERS];
	unsigned int r, i, removed = 0, mounted = 0, regs = 0, regerr = 0, rok = 0, rerr = 0;
	unsigned int bad = 0, nodd = 0, checked = 0, opened = 0, k;
	char bdf[64], ns[64], dev[96], path[128];
	int pfd, nvd, ret;

	tap_plan_lazy();
	pfd = vm_test_open(&nvd, true);
	for (i = 0; i < NWORKERS; i++) {
		w[i].idx = i;
		w[i].seed = 0x5eed0000 + i;
		w[i].pfd = vm_p2p_open();
		ret = w[i].pfd < 0 ? w[i].pfd :
				     vm_target_new(w[i].pfd, nvd, P2PIO_PROVIDER_NVIDIA, BATCH * LEN, 0,
						   0, 0, &w[i].t);
		if (!tap_is_int(ret, 0, "worker %u: own fd, %llu KiB of GPU memory pinned", i,
				BATCH * LEN / VM_KIB))
			return tap_exit();
	}

	/* still there (test-fuzz did not run): its file system is mounted read-write from
	 * boot; every round mounts a fresh controller's read-only */
	if (!vm_nvme_find(SERIAL, 0, bdf, sizeof(bdf), NULL, 0)) {
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", bdf);
		vm_write_str(path, "1");
	}
	for (r = 0; r < ROUNDS; r++) {
		ret = bring_back(bdf, sizeof(bdf), ns, sizeof(ns));
		if (ret) {
			tap_diag("round %u: controller %s did not come back: %s", r, SERIAL,
				 strerror(-ret));
			break;
		}
		snprintf(path, sizeof(path), "/mnt/rr%u", r);
		snprintf(dev, sizeof(dev), "/dev/%s", ns);
		mkdir(path, 0755);
		if (mount_fresh(dev, path)) {
			tap_diag("round %u: mount %s on %s: %s", r, dev, path, strerror(errno));
			break;
		}
		mounted++;

		/*
		 * Opened once a round, before the removal: newer kernels shut a file system
		 * down when its disk goes (opens then fail), and registrations must still
		 * meet the removal. A fresh disk may fail its first reads for a moment.
		 */
		for (i = 0; i < NWORKERS; i++) {
			snprintf(path, sizeof(path), "/mnt/rr%u/%s", r, names[i]);
			for (k = 0; (w[i].fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 && k < 40; k++)
				vm_sleep_ms(50);
			if (w[i].fd < 0)
				tap_diag("round %u: open %s: %s", r, path, strerror(errno));
			else
				opened++;
		}
		atomic_store(&stop, 0);
		for (i = 0; i < NWORKERS; i++)
			if (w[i].fd >= 0)
				pthread_create(&w[i].tid, NULL, work, &w[i]);
		/* a few registrations and reads first, then the removal under them */
		vm_sleep_ms(60 + 15 * (r % 8));
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", bdf);
		if (!vm_write_str(path, "1"))
			removed++;
		vm_sleep_ms(60);	/* registrations against the removed controller */
		atomic_store(&stop, 1);
		for (i = 0; i < NWORKERS; i++) {
			if (w[i].fd < 0)
				continue;
			pthread_join(w[i].tid, NULL);
			close(w[i].fd);
		}
	}
	tap_ok(mounted == ROUNDS && removed == ROUNDS && opened >= ROUNDS * NWORKERS * 3 / 4,
	       "%u rounds: controller %s mounted %u times, removed %u times, %u of %u files opened",
	       ROUNDS, SERIAL, mounted, removed, opened, ROUNDS * NWORKERS);
	tap_ok(!bring_back(bdf, sizeof(bdf), ns, sizeof(ns)), "%s rescanned: present again",
	       SERIAL);

	for (i = 0; i < NWORKERS; i++) {
		regs += w[i].regs;
		regerr += w[i].reg_errs;
		rok += w[i].reads_ok;
		rerr += w[i].read_errs;
		bad += w[i].bad;
		checked += w[i].checked;
		nodd += w[i].odd;
		if (w[i].odd)
			tap_diag("worker %u: %u odd results, first %s", i, w[i].odd, w[i].why);
	}
	tap_diag("registrations: %u, refused %u; reads: %u landed, %u failed", regs, regerr,
		 rok, rerr);
	tap_ok(!nodd, "every call returned 0 or a clean errno (%u odd)", nodd);
	tap_ok(rok > 0 && checked == rok && !bad,
	       "every byte of the %u successful reads checked by the host (%u wrong)", rok, bad);
	tap_ok(rerr + regerr > 0, "the removal was met: %u reads and %u registrations failed",
	       rerr, regerr);

	for (i = 0; i < NWORKERS; i++) {
		tap_is_int(vm_target_free(w[i].pfd, &w[i].t), 0, "worker %u: unpin", i);
		close(w[i].pfd);
	}
	close(nvd);
	tap_ok(vm_nothing_left(pfd), "nothing left: commands, reads, files, pins, PRP pages");
	user_count_is_zero(pfd);
	close(pfd);
	return tap_exit();
}
