// SPDX-License-Identifier: MIT
/*
 * demo-load - the guest side of `make demo`: reads every tensor of a GGUF model through
 * p2pio into "GPU memory" (the NVIDIA test double), has the host verify every byte
 * against the model file, and reports path, bytes, throughput, commands and splits.
 *
 * /etc/demo-model holds the model's path; /etc/demo-tensors one line per tensor:
 * "file_offset bytes name" (from p2pio-gguf --tensors on the host). Each tensor lands at
 * its offset relative to the first tensor, as a whole-model load into one arena would.
 * The I/O is plain /dev/p2pio ioctls: libp2pio's engine takes this over later.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define MAX_TENSORS 4096

struct tensor {
	uint64_t off, bytes;
	char name[96];
};

static struct tensor tensors[MAX_TENSORS];
static struct p2pio_read reads[MAX_TENSORS];
static struct p2pio_completion comps[MAX_TENSORS];

static unsigned load_tensors(void)
{
	FILE *f = fopen("/etc/demo-tensors", "r");
	unsigned long long off, bytes;
	unsigned n = 0;

	while (f && n < MAX_TENSORS &&
	       fscanf(f, "%llu %llu %95s", &off, &bytes, tensors[n].name) == 3) {
		tensors[n].off = off;
		tensors[n].bytes = bytes;
		n++;
	}
	if (f)
		fclose(f);
	return n;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
	struct p2pio_register_file reg;
	struct p2pio_stats s0, s1;
	struct p2pio_version v;
	struct vm_target t;
	char path[256] = "";
	uint64_t lba, base = ~0ull, end = 0, bytes = 0;
	uint32_t n, i, accepted = 0, done = 0, k, got, bad = 0;
	int pfd, nvd, fd, ret;
	double t0, t1;
	FILE *f;

	tap_plan_lazy();
	f = fopen("/etc/demo-model", "r");
	if (!f || !fgets(path, sizeof(path), f))
		tap_bail("no /etc/demo-model");
	fclose(f);
	path[strcspn(path, "\n")] = 0;
	n = load_tensors();
	tap_ok(n > 0, "%u tensors listed", n);
	pfd = vm_p2p_open();
	nvd = vm_nvd_open();
	if (pfd < 0 || nvd < 0)
		tap_bail("no /dev/p2pio or /dev/nvdouble");
	vm_p2p_version(pfd, &v);

	fd = open(path, O_RDONLY);
	ret = fd < 0 ? -errno : vm_p2p_register(pfd, fd, &reg);
	if (!tap_is_int(ret, 0, "register %s", path))
		return tap_exit();
	lba = reg.lba_size;
	for (i = 0; i < n; i++) {
		uint64_t a = tensors[i].off / lba * lba;
		uint64_t e = (tensors[i].off + tensors[i].bytes + lba - 1) / lba * lba;

		base = a < base ? a : base;
		end = e > end ? e : end;
		bytes += tensors[i].bytes;
	}
	ret = vm_target_new(pfd, nvd, P2PIO_PROVIDER_NVIDIA, end - base, 0, 0, 0, &t);
	if (!tap_is_int(ret, 0, "%llu MiB of GPU memory pinned",
			(unsigned long long)((end - base) >> 20)))
		return tap_exit();

	for (i = 0; i < n; i++) {
		uint64_t a = tensors[i].off / lba * lba;
		uint64_t e = (tensors[i].off + tensors[i].bytes + lba - 1) / lba * lba;

		reads[i] = (struct p2pio_read){ .file = reg.handle, .mem = t.pin.handle,
						.file_offset = a, .length = e - a,
						.mem_offset = a - base, .user_tag = i };
	}
	vm_p2p_stats(pfd, P2PIO_STATS_FD, &s0);
	t0 = now();
	while (done < n) {
		k = 0;
		if (accepted < n) {
			ret = vm_p2p_submit(pfd, reads + accepted,
					    n - accepted < v.max_batch ? n - accepted : v.max_batch, &k);
			if (ret && ret != -EAGAIN)
				break;
			accepted += k;
		}
		if (!k || accepted == n) {
			ret = vm_p2p_reap(pfd, comps + done, accepted - done, 1, 10000000000ll, &got);
			if (ret || !got)
				break;
			done += got;
		}
	}
	t1 = now();
	vm_p2p_stats(pfd, P2PIO_STATS_FD, &s1);
	for (i = 0; i < done; i++)
		bad += comps[i].status != 0;
	tap_ok(done == n && !bad, "%u tensors read, %u failed", done, bad);

	/* the host compares every tensor with the model file it wrote */
	for (i = 0; i < n; i++)
		vm_mem_expect_file(&t.mem, tensors[i].off - base, tensors[i].bytes, "model.gguf",
				   tensors[i].off);
	if (!tap_ok(!vm_host_sync(), "the host verified every byte of every tensor"))
		tap_diag("%s", vm_host_why());

	tap_diag("model     %s (%llu-byte LBAs, %u extents, nsid %u)", path,
		 (unsigned long long)lba, reg.nr_extents, reg.nsid);
	tap_diag("tensors   %u, %llu bytes (%llu read with LBA rounding)", n,
		 (unsigned long long)bytes, (unsigned long long)(s1.bytes - s0.bytes));
	tap_diag("time      %.1f ms, %.1f MB/s (emulated NVMe under TCG: not a hardware figure)",
		 (t1 - t0) * 1e3, (s1.bytes - s0.bytes) / (t1 - t0) / 1e6);
	tap_diag("commands  %llu NVMe reads, %llu splits, %llu errors",
		 (unsigned long long)(s1.commands - s0.commands),
		 (unsigned long long)(s1.splits - s0.splits),
		 (unsigned long long)(s1.errors - s0.errors));
	vm_target_free(pfd, &t);
	vm_p2p_unregister(pfd, reg.handle);
	close(fd);
	close(nvd);
	close(pfd);
	return tap_exit();
}
