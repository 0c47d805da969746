// SPDX-License-Identifier: MIT
/*
 * test-fuzz - a bounded, seeded random-ioctl run against /dev/p2pio.
 *
 * Thousands of calls: every command of the ABI and unknown ones, with arguments drawn
 * from valid handles and values, boundary values and garbage (bad pointers included),
 * as root and as an unprivileged user, with real files and GPU memory in play so that
 * random reads do reach the NVMe controllers. The module must answer every call with
 * 0 or an errno, never hang; afterwards every live-object counter is back to zero. The
 * harness fails the run on any BUG/WARNING/Oops in the guest log.
 *
 * The seed is printed; VM_FUZZ_SEED and VM_FUZZ_CALLS override it and the length.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define MAXH 8
#define BUF_ENTRIES 8192

struct fuzz {
	uint64_t rng;
	int pfd, nvd;
	int fds[4];
	uint32_t files[MAXH], mems[MAXH];
	struct vm_mem gpu[2];
	uint64_t bar_off;
	void *unmapped;
	unsigned ok, err, weird;
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

static uint32_t handle(struct fuzz *z, const uint32_t *h)
{
	switch (pick(z, 5)) {
	case 0:
		return (uint32_t)val(z);
	case 1:
		return h[pick(z, MAXH)] + 1;
	default:
		return h[pick(z, MAXH)];
	}
}

static void *ptr(struct fuzz *z, void *good)
{
	switch (pick(z, 8)) {
	case 0:
		return NULL;
	case 1:
		return z->unmapped;
	case 2:
		return (void *)(uintptr_t)(0xffff800000000000ull + pick(z, 1 << 20));
	default:
		return good;
	}
}

static void remember(uint32_t *h, uint32_t v, struct fuzz *z)
{
	h[pick(z, MAXH)] = v;
}

static void one_call(struct fuzz *z)
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
	/* as large as the module's limits: a random count or max never overruns them */
	static struct p2pio_read reads[BUF_ENTRIES];
	static struct p2pio_completion comp[BUF_ENTRIES];
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
		a.reg.fd = pick(z, 4) ? z->fds[pick(z, 4)] : (int)val(z);
		a.reg.flags = pick(z, 8) ? 0 : (uint32_t)val(z);
		if (!pick(z, 8))
			a.reg.reserved[pick(z, 4)] = val(z);
		break;
	case 2:
		cmd = P2PIO_IOC_UNREGISTER_FILE;
		a.h.handle = handle(z, z->files);
		a.h.flags = pick(z, 8) ? 0 : 1;
		break;
	case 3:
		cmd = P2PIO_IOC_PIN;
		if (pick(z, 3)) {
			const struct vm_mem *m = &z->gpu[pick(z, 2)];

			a.pin.provider = P2PIO_PROVIDER_NVIDIA;
			a.pin.addr = m->va + (pick(z, 2) ? 0 : val(z));
			a.pin.length = pick(z, 2) ? m->size : val(z);
			a.pin.flags = pick(z, 4) ? pick(z, 2) : (uint32_t)val(z);
		} else {
			uint32_t d, b, f;

			a.pin.provider = pick(z, 6) ? P2PIO_PROVIDER_PCIBAR : (uint32_t)val(z);
			vm_ivshmem_bdf(&d, &b, &f);
			/* the double's scratch range of the BAR, or a device that is not there;
			 * never other devices' BARs (an emulated AHCI would take random writes) */
			a.pin.pci_domain = d;
			a.pin.pci_bus = pick(z, 4) ? b : 0xfe;
			a.pin.pci_devfn = f;
			a.pin.bar = pick(z, 4) ? 2 : (uint32_t)pick(z, 8);
			a.pin.addr = z->bar_off + (pick(z, 2) ? 0 : pick(z, 4 * VM_MIB));
			a.pin.length = pick(z, 2) ? 4 * VM_MIB : val(z);
			if (a.pin.bar == 2 && a.pin.addr + a.pin.length > z->bar_off + 8 * VM_MIB)
				a.pin.length = 4096;	/* keep random DMA in the scratch range */
			if (a.pin.bar != 2)
				a.pin.pci_bus = 0xfe;	/* other BARs only of a missing device */
		}
		if (!pick(z, 8))
			a.pin.reserved[pick(z, 4)] = val(z);
		break;
	case 4:
		cmd = P2PIO_IOC_UNPIN;
		a.h.handle = handle(z, z->mems);
		break;
	case 5:
	case 6:
		cmd = P2PIO_IOC_SUBMIT;
		n = 1 + pick(z, 8);
		for (i = 0; i < n; i++) {
			reads[i] = (struct p2pio_read){
				.file = handle(z, z->files), .mem = handle(z, z->mems),
				.file_offset = pick(z, 2) ? pick(z, 2048) * 512 : val(z),
				.length = pick(z, 2) ? (1 + pick(z, 64)) * 512 : val(z),
				.mem_offset = pick(z, 2) ? pick(z, 1024) * 4 : val(z),
				.user_tag = val(z),
				.flags = pick(z, 16) ? 0 : 1,
				.reserved = pick(z, 16) ? 0 : 1,
			};
		}
		a.sub.reads = (uintptr_t)ptr(z, reads);
		a.sub.count = pick(z, 8) ? n : (uint32_t)val(z);
		a.sub.flags = pick(z, 16) ? 0 : 1;
		break;
	case 7:
		cmd = P2PIO_IOC_REAP;
		a.reap.completions = (uintptr_t)ptr(z, comp);
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
	ret = ioctl(z->pfd, cmd, pick(z, 16) ? (void *)&a : ptr(z, &a));
	if (ret == 0) {
		z->ok++;
		if (cmd == P2PIO_IOC_REGISTER_FILE)
			remember(z->files, a.reg.handle, z);
		else if (cmd == P2PIO_IOC_PIN)
			remember(z->mems, a.pin.handle, z);
	} else if (ret == -1 && errno > 0 && errno < 4096) {
		z->err++;
	} else {
		z->weird++;
	}
}

/* Each round gets a fresh fd; some end with reads in flight. Returns calls made. */
static unsigned fuzz_rounds(struct fuzz *z, unsigned calls)
{
	unsigned done = 0, i;

	while (done < calls) {
		z->pfd = vm_p2p_open();
		if (z->pfd < 0)
			return done;
		memset(z->files, 0, sizeof(z->files));
		memset(z->mems, 0, sizeof(z->mems));
		for (i = 0; i < 500 && done < calls; i++, done++)
			one_call(z);
		if (pick(z, 2)) {	/* sometimes drain politely */
			struct p2pio_completion c[64];
			uint32_t got;

			while (!vm_p2p_reap(z->pfd, c, 64, 0, 0, &got) && got)
				;
		}
		close(z->pfd);
	}
	return done;
}

int main(void)
{
	const char *names[4] = { "a1-1m", "b1-odd", "a2-small", "b2-lba" };
	struct fuzz z = { 0 };
	struct p2pio_stats s;
	uint64_t seed = 0x70a2c0ffee5eedull, cmds0;
	unsigned calls = 6000, done, i;
	const char *e;
	int st, p;
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
	tap_diag("seed %#" PRIx64 ", %u calls", seed, calls);
	z.rng = seed ? seed : 1;
	z.nvd = vm_nvd_open();
	for (i = 0; i < 4; i++)
		z.fds[i] = open(vm_file_path(names[i]), O_RDONLY);
	vm_gpu_alloc(z.nvd, &z.gpu[0], 4 * VM_MIB, 0, 0);
	vm_gpu_alloc(z.nvd, &z.gpu[1], 2 * VM_MIB, 4096 + 512, NVDOUBLE_ALLOC_SCATTER);
	{
		struct vm_mem scratch;	/* reserves the pcibar scratch range */

		vm_gpu_alloc(z.nvd, &scratch, 8 * VM_MIB, 0, 0);
		z.bar_off = vm_mem_bar(&scratch, 0);
	}
	z.unmapped = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	vm_p2p_stats(p, P2PIO_STATS_GLOBAL, &s);
	cmds0 = s.commands;
	done = fuzz_rounds(&z, calls);
	tap_is_int(done, calls, "%u random calls as root: %u succeeded, %u failed with an errno",
		   done, z.ok, z.err);
	tap_is_int(z.weird, 0, "every call returned 0 or -1 with an errno");
	vm_p2p_stats(p, P2PIO_STATS_GLOBAL, &s);
	tap_ok(s.commands > cmds0, "random reads reached the controllers: %llu NVMe commands",
	       (unsigned long long)(s.commands - cmds0));

	/* the same as nobody, in a child (its GPU memory is its own) */
	pid = fork();
	if (pid == 0) {
		struct fuzz y = z;

		if (!vm_drop_privileges())
			_exit(99);
		y.nvd = vm_nvd_open();
		vm_gpu_alloc(y.nvd, &y.gpu[0], 4 * VM_MIB, 0, 0);
		vm_gpu_alloc(y.nvd, &y.gpu[1], 2 * VM_MIB, 256, 0);
		y.rng ^= 0x5555;
		y.ok = y.err = y.weird = 0;
		done = fuzz_rounds(&y, calls / 2);
		/* a diagnostic line is all a child may print into the TAP stream */
		tap_diag("as nobody: %u calls, %u succeeded, %u failed with an errno, %u odd",
			 done, y.ok, y.err, y.weird);
		_exit(done == calls / 2 && !y.weird ? 0 : 1);
	}
	tap_ok(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st),
	       "%u random calls as nobody: every call returned 0 or an errno", calls / 2);

	for (i = 0; i < 4; i++)
		close(z.fds[i]);
	close(z.nvd);
	vm_p2p_stats(p, P2PIO_STATS_GLOBAL, &s);
	tap_ok(!s.inflight_cmds && !s.outstanding && !s.live_files && !s.live_pins &&
	       !s.live_prp_pages && s.live_fds == 1,
	       "afterwards: no commands, reads, files, pins or PRP pages left");
	close(p);
	return tap_exit();
}
