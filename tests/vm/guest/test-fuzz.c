// SPDX-License-Identifier: MIT
/*
 * test-fuzz - a seeded random-ioctl run against /dev/p2pio, with the world changing
 * under it.
 *
 * As root, then as nobody (VM_FUZZ_CALLS calls each, 10000 unless set), two threads make
 * random calls on two shared /dev/p2pio fds: every command of the ABI and unknown ones,
 * with arguments drawn from valid handles and values, boundary values and garbage (bad
 * pointers included), with real files and GPU memory in play so that random reads do
 * reach the NVMe controllers. Meanwhile a third thread
 *  - frees GPU memory through the NVIDIA test double, which fires the free callback of
 *    every callback pin on it (as the driver does), and allocates fresh memory;
 *  - at times closes the GPU allocator's fd: all of its memory freed at once, as when a
 *    CUDA process exits;
 *  - replaces a /dev/p2pio fd by a fresh one (dup2): the old file is closed while calls
 *    on it run and its reads are in flight;
 * and in the last phase of a boot (VM_PHASE=final) a fourth removes NVMe controller E
 * (PCI remove) 60 % into the root run, under random reads of its files.
 * The module must answer every call with 0 or an errno and never hang; afterwards every
 * live-object counter is back to zero. The harness fails the run on any KFENCE, SLUB,
 * BUG, WARNING, lockdep or hung-task line in the guest log.
 *
 * The seed is printed; VM_FUZZ_SEED sets it, VM_FUZZ_CALLS the length. The seed fixes
 * each thread's sequence of calls and actions; how they interleave is the scheduler's.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define NSLOT 2			/* /dev/p2pio fds the callers share */
#define NGPU 4			/* GPU allocations in play */
#define NWORKER 2		/* threads making calls */
#define NFILES 6
#define MAXH 8			/* handles remembered per fd */
#define BUF_ENTRIES 8192
#define REMOVE_SERIAL "p2pE"	/* the controller the final phase removes */

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

/* What the threads of one run share. */
struct world {
	int slot[NSLOT];		/* fixed fd numbers; dup2 swaps the file behind */
	uint32_t files[NSLOT][MAXH];	/* handles the calls got back */
	uint32_t mems[NSLOT][MAXH];
	uint64_t gpu_va[NGPU], gpu_size[NGPU];	/* 0: freed, not yet replaced */
	int fds[NFILES];		/* the files to register */
	uint64_t bar_off;		/* the pcibar scratch range (kept allocated) */
	void *unmapped;
	uint64_t seed;
	unsigned calls;			/* this run's total */
	unsigned progress;		/* calls made so far */
	int stop;			/* the callers are done */
	int nvd;			/* the allocator fd the chaos thread churns */
	char remove_bdf[64];		/* "" or the controller to remove */
	unsigned remove_at;		/* progress at the removal */
	int removed;			/* 1 removed, -1 failed */
	unsigned frees, nvd_closes, swaps;
};

/* One thread's random stream and tally. */
struct fuzz {
	struct world *w;
	uint64_t rng;
	struct p2pio_read *reads;
	struct p2pio_completion *comp;
	unsigned calls, ok, err, weird;
};

static uint64_t pick(struct fuzz *z, uint64_t n)
{
	return n ? vm_rand(&z->rng) % n : 0;
}

/* An interesting 64-bit value: small, LBA/page multiples, boundaries, random. */
static uint64_t val(struct fuzz *z)
{
	static const uint64_t v[] = { 0, 1, 2, 3, 4, 511, 512, 4095, 4096, 65535, 65536,
				      65540, 1u << 20, (1u << 20) + 512, 1ull << 31, 1ull << 32,
				      1ull << 40, 1ull << 63, ~0ull, ~0ull - 511, 0x7fffffff };

	switch (pick(z, 4)) {
	case 0:
		return v[pick(z, sizeof(v) / sizeof(v[0]))];
	case 1:
		return pick(z, 64) * 512;
	case 2:
		return pick(z, 4 * VM_MIB) & ~3ull;
	default:
		return vm_rand(&z->rng);
	}
}

static uint32_t handle(struct fuzz *z, uint32_t *h)
{
	switch (pick(z, 5)) {
	case 0:
		return (uint32_t)val(z);
	case 1:
		return LOAD(h[pick(z, MAXH)]) + 1;
	default:
		return LOAD(h[pick(z, MAXH)]);
	}
}

static void *ptr(struct fuzz *z, void *good)
{
	switch (pick(z, 8)) {
	case 0:
		return NULL;
	case 1:
		return z->w->unmapped;
	case 2:
		return (void *)(uintptr_t)(0xffff800000000000ull + pick(z, 1 << 20));
	default:
		return good;
	}
}

static void remember(uint32_t *h, uint32_t v, struct fuzz *z)
{
	STORE(h[pick(z, MAXH)], v);
}

static void pin_args(struct fuzz *z, struct p2pio_pin *pin)
{
	struct world *w = z->w;

	if (pick(z, 3)) {
		unsigned g = pick(z, NGPU);

		pin->provider = P2PIO_PROVIDER_NVIDIA;
		pin->addr = LOAD(w->gpu_va[g]) + (pick(z, 2) ? 0 : val(z));
		pin->length = pick(z, 2) ? LOAD(w->gpu_size[g]) : val(z);
		pin->flags = pick(z, 4) ? pick(z, 2) : (uint32_t)val(z);
	} else {
		uint32_t d, b, f;

		pin->provider = pick(z, 6) ? P2PIO_PROVIDER_PCIBAR : (uint32_t)val(z);
		vm_ivshmem_bdf(&d, &b, &f);
		/* the double's scratch range of the BAR, or a device that is not there;
		 * never other devices' BARs (an emulated AHCI would take random writes) */
		pin->pci_domain = d;
		pin->pci_bus = pick(z, 4) ? b : 0xfe;
		pin->pci_devfn = f;
		pin->bar = pick(z, 4) ? 2 : (uint32_t)pick(z, 8);
		pin->addr = w->bar_off + (pick(z, 2) ? 0 : pick(z, 4 * VM_MIB));
		pin->length = pick(z, 2) ? 4 * VM_MIB : val(z);
		if (pin->bar == 2 && pin->addr + pin->length > w->bar_off + 8 * VM_MIB)
			pin->length = 4096;	/* keep random DMA in the scratch range */
		if (pin->bar != 2)
			pin->pci_bus = 0xfe;	/* other BARs only of a missing device */
	}
	if (!pick(z, 8))
		pin->reserved[pick(z, 4)] = val(z);
}

static void one_call(struct fuzz *z, unsigned s)
{
	union {
		struct p2pio_version v;
		struct p2pio_register_file reg;
		struct p2pio_handle_arg h;
		struct p2pio_pin pin;
		struct p2pio_submit sub;
		struct p2pio_reap reap;
		struct p2pio_stats st;
		unsigned char raw[512];
	} a;
	struct world *w = z->w;
	unsigned long cmd;
	unsigned i, n;
	int ret;

	memset(&a, 0, sizeof(a));
	switch (pick(z, 10)) {
	case 0:
		cmd = P2PIO_IOC_VERSION;
		break;
	case 1:
		cmd = P2PIO_IOC_REGISTER_FILE;
		a.reg.fd = pick(z, 4) ? w->fds[pick(z, NFILES)] : (int)val(z);
		a.reg.flags = pick(z, 8) ? 0 : (uint32_t)val(z);
		if (!pick(z, 8))
			a.reg.reserved[pick(z, 4)] = val(z);
		break;
	case 2:
		cmd = P2PIO_IOC_UNREGISTER_FILE;
		a.h.handle = handle(z, w->files[s]);
		a.h.flags = pick(z, 8) ? 0 : 1;
		break;
	case 3:
		cmd = P2PIO_IOC_PIN;
		pin_args(z, &a.pin);
		break;
	case 4:
		cmd = P2PIO_IOC_UNPIN;
		a.h.handle = handle(z, w->mems[s]);
		break;
	case 5:
	case 6:
		cmd = P2PIO_IOC_SUBMIT;
		n = 1 + pick(z, 8);
		if (!pick(z, 3)) {
			/* well formed: 4 KiB-aligned reads of files and pins this fd got, the
			 * ones that reach the controllers (and race the frees and removal) */
			for (i = 0; i < n; i++)
				z->reads[i] = (struct p2pio_read){
					.file = LOAD(w->files[s][pick(z, MAXH)]),
					.mem = LOAD(w->mems[s][pick(z, MAXH)]),
					.file_offset = pick(z, 256) * 4096,
					.length = (1 + pick(z, 16)) * 4096,
					.mem_offset = pick(z, 256) * 4096, .user_tag = i,
				};
			a.sub.reads = (uintptr_t)z->reads;
			a.sub.count = n;
			break;
		}
		for (i = 0; i < n; i++) {
			z->reads[i] = (struct p2pio_read){
				.file = handle(z, w->files[s]), .mem = handle(z, w->mems[s]),
				.file_offset = pick(z, 2) ? pick(z, 2048) * 512 : val(z),
				.length = pick(z, 2) ? (1 + pick(z, 64)) * 512 : val(z),
				.mem_offset = pick(z, 2) ? pick(z, 1024) * 4 : val(z),
				.user_tag = val(z),
				.flags = pick(z, 16) ? 0 : 1,
				.reserved = pick(z, 16) ? 0 : 1,
			};
		}
		a.sub.reads = (uintptr_t)ptr(z, z->reads);
		a.sub.count = pick(z, 8) ? n : (uint32_t)val(z);
		a.sub.flags = pick(z, 16) ? 0 : 1;
		break;
	case 7:
		cmd = P2PIO_IOC_REAP;
		a.reap.completions = (uintptr_t)ptr(z, z->comp);
		a.reap.max = pick(z, 8) ? 1 + pick(z, 8) : (uint32_t)val(z);
		a.reap.min = pick(z, 2) ? 0 : pick(z, 3);
		/* never block for long: 0 or up to 2 ms */
		a.reap.timeout_ns = pick(z, 2) ? 0 : (int64_t)pick(z, 2000000);
		a.reap.flags = pick(z, 16) ? 0 : 1;
		break;
	case 8:
		cmd = P2PIO_IOC_STATS;
		a.st.scope = pick(z, 4) ? pick(z, 2) : (uint32_t)val(z);
		break;
	default:
		/* unknown numbers, sizes and directions, and raw garbage */
		cmd = _IOC(pick(z, 4), pick(z, 2) ? P2PIO_IOC_MAGIC : pick(z, 256), pick(z, 32),
			   pick(z, 600));
		for (i = 0; i < sizeof(a.raw); i++)
			a.raw[i] = (unsigned char)vm_rand(&z->rng);
		break;
	}
	ret = ioctl(w->slot[s], cmd, pick(z, 16) ? (void *)&a : ptr(z, &a));
	if (ret == 0) {
		z->ok++;
		if (cmd == P2PIO_IOC_REGISTER_FILE)
			remember(w->files[s], a.reg.handle, z);
		else if (cmd == P2PIO_IOC_PIN)
			remember(w->mems[s], a.pin.handle, z);
	} else if (ret == -1 && errno > 0 && errno < 4096) {
		z->err++;
	} else {
		z->weird++;
	}
}

/* A thread making z->calls random calls on random slots, draining now and then. */
static void *caller(void *arg)
{
	struct fuzz *z = arg;
	unsigned i;

	for (i = 0; i < z->calls; i++) {
		unsigned s = pick(z, NSLOT);

		one_call(z, s);
		__atomic_add_fetch(&z->w->progress, 1, __ATOMIC_RELAXED);
		if (i % 500 == 499 && pick(z, 2)) {	/* sometimes drain politely */
			struct p2pio_completion c[64];
			uint32_t got;

			while (!vm_p2p_reap(z->w->slot[s], c, 64, 0, 0, &got) && got)
				;
		}
	}
	return NULL;
}

/* GPU allocation @g: sizes, offsets and layouts of cudaMalloc's kinds. */
static void gpu_new(struct world *w, unsigned g)
{
	static const uint32_t off[NGPU] = { 0, 4096 + 512, 256, 0 };
	struct nvdouble_alloc al = {
		.size = g % 2 ? 2 * VM_MIB : 4 * VM_MIB, .va_offset = off[g],
		.flags = g == 1 ? NVDOUBLE_ALLOC_SCATTER : 0,
	};

	/* the BAR may be full of memory that persistent pins still hold: try later */
	if (ioctl(w->nvd, NVDOUBLE_IOC_ALLOC, &al))
		return;
	STORE(w->gpu_size[g], al.size);
	STORE(w->gpu_va[g], al.gpu_va);
}

static void gpu_free(struct world *w, unsigned g)
{
	struct nvdouble_free f = { .gpu_va = LOAD(w->gpu_va[g]) };

	STORE(w->gpu_va[g], 0);
	if (f.gpu_va && !ioctl(w->nvd, NVDOUBLE_IOC_FREE, &f))
		w->frees++;
}

/* Frees and reallocates GPU memory, closes the allocator, swaps /dev/p2pio fds. */
static void *chaos(void *arg)
{
	struct fuzz *z = arg;
	struct world *w = z->w;
	unsigned g;
	int fd;

	while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
		unsigned r = pick(z, 32);

		if (r < 8) {
			g = pick(z, NGPU);
			gpu_free(w, g);
			gpu_new(w, g);
		} else if (r < 10) {
			fd = vm_p2p_open();
			if (fd >= 0) {
				dup2(fd, w->slot[pick(z, NSLOT)]);
				close(fd);
				w->swaps++;
			}
		} else if (r == 10) {
			/* "process exit": the double frees everything the fd holds */
			for (g = 0; g < NGPU; g++)
				STORE(w->gpu_va[g], 0);
			fd = vm_nvd_open();
			if (fd >= 0) {
				dup2(fd, w->nvd);
				close(fd);
				w->nvd_closes++;
			}
			for (g = 0; g < NGPU; g++)
				gpu_new(w, g);
		} else {
			for (g = 0; g < NGPU; g++)
				if (!LOAD(w->gpu_va[g]))
					gpu_new(w, g);
		}
		usleep(pick(z, 6000));
	}
	return NULL;
}

/* Removes the controller once 60 % of the calls are made. */
static void *remover(void *arg)
{
	struct world *w = arg;
	char path[128];
	int fd;

	while (__atomic_load_n(&w->progress, __ATOMIC_RELAXED) < w->calls * 6 / 10 &&
	       !__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE))
		usleep(1000);
	w->remove_at = __atomic_load_n(&w->progress, __ATOMIC_RELAXED);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", w->remove_bdf);
	fd = open(path, O_WRONLY);
	w->removed = fd >= 0 && write(fd, "1", 1) == 1 ? 1 : -1;
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* One run of w->calls calls; the tally of all callers in @sum. 0, or -errno when
 * /dev/p2pio or /dev/nvdouble does not open for this user (nothing was tried). */
static int run(struct world *w, struct fuzz *sum)
{
	struct fuzz z[NWORKER + 1];
	pthread_t t[NWORKER + 2];
	unsigned i, g, nt = 0;

	memset(sum, 0, sizeof(*sum));
	w->progress = 0;
	w->stop = 0;
	memset(w->files, 0, sizeof(w->files));
	memset(w->mems, 0, sizeof(w->mems));
	for (i = 0; i < NSLOT; i++) {
		w->slot[i] = vm_p2p_open();
		if (w->slot[i] < 0)
			return w->slot[i];
	}
	w->nvd = vm_nvd_open();
	if (w->nvd < 0)
		return w->nvd;
	for (g = 0; g < NGPU; g++)
		gpu_new(w, g);
	for (i = 0; i <= NWORKER; i++) {
		z[i] = (struct fuzz){ .w = w, .rng = (w->seed ^ (0x9e3779b97f4a7c15ull * (i + 1))) | 1 };
		if (i < NWORKER)
			z[i].calls = w->calls / NWORKER + (i < w->calls % NWORKER);
		z[i].reads = calloc(BUF_ENTRIES, sizeof(*z[i].reads));
		z[i].comp = calloc(BUF_ENTRIES, sizeof(*z[i].comp));
		if (!z[i].reads || !z[i].comp)
			tap_bail("out of memory");
	}
	for (i = 0; i < NWORKER; i++)
		if (!pthread_create(&t[nt], NULL, caller, &z[i]))
			nt++;
	if (!pthread_create(&t[nt], NULL, chaos, &z[NWORKER]))
		nt++;
	if (w->remove_bdf[0] && !pthread_create(&t[nt], NULL, remover, w))
		nt++;
	for (i = 0; i < NWORKER && i < nt; i++)
		pthread_join(t[i], NULL);
	__atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
	for (; i < nt; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < NSLOT; i++)
		close(w->slot[i]);
	close(w->nvd);
	for (i = 0; i < NWORKER; i++) {
		sum->calls += z[i].ok + z[i].err + z[i].weird;
		sum->ok += z[i].ok;
		sum->err += z[i].err;
		sum->weird += z[i].weird;
	}
	for (i = 0; i <= NWORKER; i++) {
		free(z[i].reads);
		free(z[i].comp);
	}
	return 0;
}

int main(void)
{
	const char *names[NFILES] = { "a1-1m", "b1-odd", "a2-small", "b2-lba", "fz-big", "fz-odd" };
	struct world w = { 0 };
	struct nvdouble_info i0, i1;
	struct fuzz sum;
	struct p2pio_stats s;
	uint64_t seed = 0x70a2c0ffee5eedull, cmds0;
	unsigned calls = 10000, i;
	const char *e;
	int st, p, keep, ret;
	pid_t pid;

	tap_plan_lazy();
	if ((e = getenv("VM_FUZZ_SEED")))
		seed = strtoull(e, NULL, 0);
	if ((e = getenv("VM_FUZZ_CALLS")))
		calls = strtoul(e, NULL, 0);
	p = vm_p2p_open();
	if (p < 0)
		tap_skip_all("no /dev/p2pio");
	{
		struct p2pio_version v;

		vm_p2p_version(p, &v);
		if (v.max_batch > BUF_ENTRIES || v.max_outstanding > BUF_ENTRIES)
			tap_bail("the module's limits outgrew the fuzzer's buffers");
	}
	tap_diag("seed %#" PRIx64 ", %u calls as root and as nobody (VM_FUZZ_SEED, VM_FUZZ_CALLS)",
		 seed, calls);
	w.seed = seed;
	w.calls = calls;
	for (i = 0; i < NFILES; i++) {
		const char *path = vm_file_path(names[i]);

		/* controller E's files are absent once it is removed: another file then */
		w.fds[i] = open(path ? path : vm_file_path(names[0]), O_RDONLY);
	}
	keep = vm_nvd_open();
	{
		struct vm_mem scratch;	/* reserves the pcibar scratch range */

		if (vm_gpu_alloc(keep, &scratch, 8 * VM_MIB, 0, 0))
			tap_bail("no GPU memory for the pcibar scratch range");
		w.bar_off = vm_mem_bar(&scratch, 0);
		vm_mem_release(&scratch);
	}
	w.unmapped = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!strcmp(vm_phase(), "final"))
		tap_is_int(vm_nvme_ctrl_bdf(REMOVE_SERIAL, w.remove_bdf, sizeof(w.remove_bdf)), 0,
			   "controller %s is there to be removed under the run (%s)",
			   REMOVE_SERIAL, w.remove_bdf);

	vm_p2p_stats(p, P2PIO_STATS_GLOBAL, &s);
	cmds0 = s.commands;
	vm_nvd_info(&i0);
	ret = run(&w, &sum);
	if (ret)
		tap_bail("/dev/p2pio or /dev/nvdouble does not open as root");
	vm_nvd_info(&i1);
	tap_is_int(sum.calls, calls, "%u random calls as root on %d threads: %u succeeded, %u failed with an errno",
		   sum.calls, NWORKER, sum.ok, sum.err);
	tap_is_int(sum.weird, 0, "every call returned 0 or -1 with an errno");
	vm_p2p_stats(p, P2PIO_STATS_GLOBAL, &s);
	tap_ok(s.commands > cmds0, "random reads reached the controllers: %llu NVMe commands",
	       (unsigned long long)(s.commands - cmds0));
	tap_ok(w.frees > 0 && i1.callbacks_fired > i0.callbacks_fired,
	       "under the calls: %u GPU frees and %u allocator closes fired %llu free callbacks; %u fds replaced",
	       w.frees, w.nvd_closes, (unsigned long long)(i1.callbacks_fired - i0.callbacks_fired),
	       w.swaps);
	if (w.remove_bdf[0])
		tap_ok(w.removed == 1, "controller %s (%s) removed at call %u of %u",
		       REMOVE_SERIAL, w.remove_bdf, w.remove_at, calls);

	/* the same as nobody, in a child (its GPU memory is its own) */
	pid = fork();
	if (pid == 0) {
		struct world y = w;

		if (!vm_drop_privileges())
			_exit(99);
		y.seed ^= 0x5555;
		y.remove_bdf[0] = 0;
		y.frees = y.nvd_closes = y.swaps = 0;
		ret = run(&y, &sum);
		if (ret) {
			tap_diag("as nobody: /dev/p2pio or /dev/nvdouble does not open: %s",
				 strerror(-ret));
			_exit(2);
		}
		/* a diagnostic line is all a child may print into the TAP stream */
		tap_diag("as nobody: %u calls, %u succeeded, %u failed with an errno, %u odd; "
			 "%u GPU frees, %u allocator closes, %u fds replaced",
			 sum.calls, sum.ok, sum.err, sum.weird, y.frees, y.nvd_closes, y.swaps);
		_exit(sum.calls == calls && !sum.weird ? 0 : 1);
	}
	tap_ok(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st),
	       "%u random calls as nobody, with frees and closes: every call returned 0 or an errno",
	       calls);

	for (i = 0; i < NFILES; i++)
		close(w.fds[i]);
	close(keep);
	vm_p2p_stats(p, P2PIO_STATS_GLOBAL, &s);
	tap_ok(!s.inflight_cmds && !s.outstanding && !s.live_files && !s.live_pins &&
	       !s.live_prp_pages && s.live_fds == 1,
	       "afterwards: no commands, reads, files, pins or PRP pages left");
	close(p);
	return tap_exit();
}
