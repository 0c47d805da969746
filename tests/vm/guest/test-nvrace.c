// SPDX-License-Identifier: MIT
/*
 * test-nvrace - a callback (non-persistent) NVIDIA pin against its free callback.
 *
 * Round after round, one thread reads into a fresh callback pin from files on two NVMe
 * controllers (so p2pio maps the pin for each on first use), a second unpins it, and the
 * main thread frees the GPU memory under it (the double fires the free callback, under
 * its API lock, as NVIDIA's driver does), all three started together with a random
 * jitter. The module must never call the driver with a page table or DMA mapping the
 * driver has freed (the double reports MISUSE, and its freed structures are poisoned
 * tombstones that fault when read), never deadlock with the driver's lock, and leave
 * nothing pinned or mapped. And callback pins are root's only: as nobody, EPERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define ROUNDS 400
#define PIN_SIZE (8 * VM_MIB)
#define READ_LEN (64 * VM_KIB)

struct round {
	int pfd;
	uint32_t files[2];
	uint32_t pin;
	uint64_t seed;
	pthread_barrier_t go;
	bool idle;		/* the reader only maps, then stops: unpin meets free */
	unsigned int max_us;	/* jitter */
	/* results */
	unsigned int reads_ok, reads_failed, odd;
	int unpin_ret;
	char why[128];
};

static void jitter(uint64_t *seed, unsigned int max_us)
{
	unsigned int us = vm_rand(seed) % (max_us + 1);

	if (us)
		usleep(us);
}

static void odd(struct round *r, const char *what, int ret)
{
	if (!r->odd++)
		snprintf(r->why, sizeof(r->why), "%s: %s", what, strerror(-ret));
}

/* Reads into the pin, two commands per batch (one per controller), until it is gone. */
static void *reader(void *arg)
{
	struct round *r = arg;
	struct p2pio_completion c[2];
	uint64_t seed = r->seed ^ 0x5151;
	uint32_t n, got, i;
	int k, ret;

	pthread_barrier_wait(&r->go);
	if (r->idle)
		return NULL;
	for (k = 0; k < 64; k++) {
		struct p2pio_read rd[2];

		for (i = 0; i < 2; i++)
			rd[i] = (struct p2pio_read){
				.file = r->files[i], .mem = r->pin,
				.file_offset = (vm_rand(&seed) % 16) * READ_LEN, .length = READ_LEN,
				.mem_offset = (vm_rand(&seed) % (PIN_SIZE / READ_LEN)) * READ_LEN,
				.user_tag = i,
			};
		ret = vm_p2p_submit(r->pfd, rd, 2, &n);
		if (ret) {
			odd(r, "submit", ret);
			break;
		}
		for (got = 0; got < n;) {
			uint32_t m;

			ret = vm_p2p_reap(r->pfd, c + got, n - got, n - got, 10000000000ll, &m);
			if (ret || !m) {
				odd(r, "reap", ret ? ret : -ETIMEDOUT);
				return NULL;
			}
			got += m;
		}
		for (i = 0; i < n; i++) {
			if (!c[i].status && c[i].bytes == READ_LEN)
				r->reads_ok++;
			else if (c[i].status == -ENODEV || c[i].status == -EBADF)
				r->reads_failed++;
			else
				odd(r, "read", c[i].status);
		}
		/* The pin is gone (EBADF) or revoked (ENODEV): nothing more to race. */
		if (r->reads_failed)
			break;
	}
	return NULL;
}

static void *unpinner(void *arg)
{
	struct round *r = arg;
	uint64_t seed = r->seed ^ 0xa5a5;
	int tries;

	pthread_barrier_wait(&r->go);
	jitter(&seed, r->max_us);
	/* EBUSY while a read of the reader is in flight: try again. */
	for (tries = 0; tries < 10000; tries++) {
		r->unpin_ret = vm_p2p_unpin(r->pfd, r->pin);
		if (r->unpin_ret != -EBUSY)
			break;
		usleep(50);
	}
	return NULL;
}

/* One round; false when a call returned what it must not. */
static bool one_round(int pfd, int nvd, const uint32_t files[2], uint64_t seed,
		      unsigned int *ok, unsigned int *failed, char *why, size_t whylen)
{
	struct round r = { .pfd = pfd, .files = { files[0], files[1] }, .seed = seed };
	/*
	 * Odd rounds: the pin is mapped for both controllers first, then unpin (which unmaps
	 * both) and free start within 300 us of each other: the callback lands in the
	 * middle of a release. Even rounds: reads run on while both come, within 2 ms.
	 */
	r.idle = seed & 1;
	r.max_us = r.idle ? 300 : 2000;
	struct p2pio_pin pin;
	struct vm_mem m;
	pthread_t tr, tu;
	int ret;

	ret = vm_gpu_alloc(nvd, &m, PIN_SIZE, 0, 0);
	if (ret) {
		snprintf(why, whylen, "alloc: %s", strerror(-ret));
		return false;
	}
	ret = vm_p2p_pin_gpu(pfd, &m, P2PIO_PIN_F_NONPERSISTENT, &pin);
	if (ret) {
		snprintf(why, whylen, "callback pin as root: %s", strerror(-ret));
		vm_gpu_free(&m);
		return false;
	}
	r.pin = pin.handle;
	if (r.idle) {
		uint32_t i;

		for (i = 0; i < 2; i++) {
			ret = vm_p2p_read(pfd, files[i], r.pin, 0, READ_LEN, 0);
			if (ret) {
				snprintf(why, whylen, "first read: %s", strerror(-ret));
				vm_p2p_unpin(pfd, r.pin);
				vm_gpu_free(&m);
				return false;
			}
		}
	}
	pthread_barrier_init(&r.go, NULL, 3);
	pthread_create(&tr, NULL, reader, &r);
	pthread_create(&tu, NULL, unpinner, &r);
	pthread_barrier_wait(&r.go);
	jitter(&seed, r.max_us);
	ret = vm_gpu_free(&m);		/* fires the free callback unless unpinned first */
	pthread_join(tr, NULL);
	pthread_join(tu, NULL);
	pthread_barrier_destroy(&r.go);
	*ok += r.reads_ok;
	*failed += r.reads_failed;
	if (ret) {
		snprintf(why, whylen, "free: %s", strerror(-ret));
		return false;
	}
	if (r.unpin_ret) {
		snprintf(why, whylen, "unpin: %s", strerror(-r.unpin_ret));
		return false;
	}
	if (r.odd) {
		memcpy(why, r.why, whylen < sizeof(r.why) ? whylen : sizeof(r.why));
		why[whylen - 1] = 0;
		return false;
	}
	return true;
}

/* As nobody: a callback pin is refused with EPERM; exit 0 if so. */
static int nobody_callback_pin(void)
{
	struct p2pio_pin pin;
	struct vm_mem m;
	int pfd, nvd, ret;

	if (!vm_drop_privileges())
		return 99;
	pfd = vm_p2p_open();
	nvd = vm_nvd_open();
	if (pfd < 0 || nvd < 0 || vm_gpu_alloc(nvd, &m, PIN_SIZE, 0, 0))
		return 98;
	ret = vm_p2p_pin_gpu(pfd, &m, P2PIO_PIN_F_NONPERSISTENT, &pin);
	if (ret == 0)
		return 1;
	if (ret != -EPERM)
		return 2;
	/* A persistent pin of the same memory is still theirs to make. */
	ret = vm_p2p_pin_gpu(pfd, &m, 0, &pin);
	if (ret)
		return 3;
	if (!(pin.out_flags & P2PIO_PIN_OUT_PERSISTENT))
		return 4;
	return vm_p2p_unpin(pfd, pin.handle) ? 5 : 0;
}

int main(void)
{
	const char *names[2] = { "a1-big", "b1-big" };
	struct p2pio_register_file reg[2];
	struct nvdouble_info before, after;
	struct p2pio_stats s;
	unsigned int i, good = 0, ok = 0, failed = 0;
	uint32_t files[2];
	uint64_t seed = 0x6e7261636531ull ^ (uint64_t)time(NULL);
	char why[160] = "";
	int pfd, nvd, fds[2], st;
	pid_t pid;

	tap_plan_lazy();
	pfd = vm_p2p_open();
	if (pfd < 0)
		tap_skip_all("no /dev/p2pio");
	nvd = vm_nvd_open();
	if (nvd < 0)
		tap_skip_all("no /dev/nvdouble");
	for (i = 0; i < 2; i++) {
		const char *path = vm_file_path(names[i]);

		fds[i] = path ? open(path, O_RDONLY) : -1;
		if (fds[i] < 0 || vm_p2p_register(pfd, fds[i], &reg[i]))
			tap_skip_all("cannot register the test files");
		files[i] = reg[i].handle;
	}
	tap_diag("seed %#llx", (unsigned long long)seed);
	vm_nvd_info(&before);

	for (i = 0; i < ROUNDS; i++) {
		if (!one_round(pfd, nvd, files, seed + i, &ok, &failed, why, sizeof(why)))
			break;
		good++;
	}
	if (!tap_ok(good == ROUNDS,
		    "%u rounds of read, unpin and free racing on a callback pin: every call returned 0 or an expected errno",
		    ROUNDS))
		tap_diag("round %u: %s", good, why);
	vm_nvd_info(&after);
	tap_diag("%u reads succeeded, %u failed with ENODEV/EBADF; %llu free callbacks fired; %llu maps lost the race with a free",
		 ok, failed, (unsigned long long)(after.callbacks_fired - before.callbacks_fired),
		 (unsigned long long)after.maps_after_revoke);
	tap_ok(after.callbacks_fired > before.callbacks_fired,
	       "the free callback raced the other threads in some rounds");

	for (i = 0; i < 2; i++) {
		vm_p2p_unregister(pfd, files[i]);
		close(fds[i]);
	}
	vm_p2p_stats(pfd, P2PIO_STATS_GLOBAL, &s);
	tap_ok(!s.inflight_cmds && !s.outstanding && !s.live_pins && !s.live_prp_pages,
	       "nothing left in p2pio: commands, reads, pins, PRP pages");
	vm_nvd_info(&after);
	if (!tap_ok(!after.pins_callback && !after.pins_persistent && !after.dma_mappings &&
		    !after.allocs, "nothing left in the driver: pins, DMA mappings, allocations"))
		tap_diag("callback %u persistent %u mappings %u allocs %u", after.pins_callback,
			 after.pins_persistent, after.dma_mappings, after.allocs);

	pid = fork();
	if (pid == 0)
		_exit(nobody_callback_pin());
	st = -1;
	if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st))
		st = WEXITSTATUS(st);
	tap_is_int(st, 0, "as nobody: a callback pin is refused (EPERM), a persistent one works");
	close(nvd);
	close(pfd);
	return tap_exit();
}
