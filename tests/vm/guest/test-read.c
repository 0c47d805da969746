// SPDX-License-Identifier: MIT
/*
 * test-read - reads land exactly where they should, byte for byte (checked by the host).
 *
 * For every test file on the four NVMe file systems (ext4 and xfs; 512 B and 4 KiB
 * LBAs; controller B with a 16 KiB MDTS) and each provider (nvidia through the test
 * double, with aligned, unaligned and scattered "GPU memory"; pcibar):
 *  - the whole file in one read (one LBA up to 64 MiB);
 *  - reads across every extent boundary (fragmented files) and across 64 KiB pages of
 *    the destination, at dword (not page) aligned destinations;
 *  - a batch of many random reads in flight at once.
 * Each destination is poisoned first; after the reads the host compares every byte that
 * landed with the file, and checks that the bytes right after each read are untouched.
 * In the "callback" and "ptv1" phases (the double loaded to refuse persistent pins, or
 * to report page-table version 1) the nvidia provider runs on a smaller set.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define POISON 0x5a
#define GUARD 512		/* bytes after a read that must stay poisoned */
#define BATCH 128

static int pfd, nvd;
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static bool full;		/* the default phase runs everything */

struct job {
	uint64_t foff, len, moff;
};

/* Poisons, submits all jobs in one batch, reaps, then has the host check each. */
static void run_jobs(const struct vm_file *f, const struct p2pio_register_file *reg,
		     const struct vm_target *t, const struct job *jobs, unsigned n,
		     const char *what)
{
	struct p2pio_read *r = calloc(n, sizeof(*r));
	struct p2pio_completion *c = calloc(n, sizeof(*c));
	uint32_t accepted = 0, got = 0, k;
	unsigned i, bad_status = 0, done = 0;
	int ret = 0;

	vm_mem_poison(&t->mem, 0, t->mem.size, POISON);
	if (!tap_ok(!vm_host_sync(), "%s: destination poisoned", what))
		tap_diag("%s", vm_host_why());
	for (i = 0; i < n; i++)
		r[i] = (struct p2pio_read){
			.file = reg->handle, .mem = t->pin.handle, .file_offset = jobs[i].foff,
			.length = jobs[i].len, .mem_offset = jobs[i].moff, .user_tag = 1000 + i,
		};
	while (accepted < n && !ret) {
		ret = vm_p2p_submit(pfd, r + accepted, n - accepted, &k);
		if (ret == -EAGAIN)
			ret = 0;	/* the queue is bounded: reap one, go on */
		accepted += k;
		if (!ret && accepted < n && done < accepted) {
			ret = vm_p2p_reap(pfd, c + done, n - done, 1, 10000000000ll, &got);
			if (!ret && !got)
				ret = -ETIMEDOUT;
			done += got;
		}
	}
	while (!ret && done < accepted) {
		ret = vm_p2p_reap(pfd, c + done, n - done, n - done, 10000000000ll, &got);
		if (!ret && !got)
			ret = -ETIMEDOUT;
		done += got;
	}
	if (!tap_ok(!ret && accepted == n && done == n, "%s: %u reads submitted and completed",
		    what, n))
		tap_diag("ret %d, accepted %u, completed %u", ret, accepted, done);

	/* stream every check, then wait once for each kind */
	for (i = 0; i < done; i++) {
		unsigned j = c[i].user_tag - 1000;
		uint64_t valid;

		if (j >= n || c[i].status || c[i].bytes != jobs[j].len) {
			if (bad_status++ < 3)
				tap_diag("read %u: status %d, %llu bytes", j, c[i].status,
					 (unsigned long long)c[i].bytes);
			continue;
		}
		/* only bytes of the file are defined; the rest of its last LBA is not */
		valid = jobs[j].foff >= f->size ? 0 :
			(jobs[j].len < f->size - jobs[j].foff ? jobs[j].len : f->size - jobs[j].foff);
		if (valid)
			vm_mem_expect_file(&t->mem, jobs[j].moff, valid, f->name, jobs[j].foff);
	}
	tap_ok(!bad_status, "%s: every read succeeded with its length", what);
	if (!tap_ok(!vm_host_sync() && !bad_status, "%s: the host found every byte in place", what))
		tap_diag("%s", vm_host_why());
	for (i = 0; i < n; i++)
		if (jobs[i].moff + jobs[i].len + GUARD <= t->mem.size)
			vm_mem_expect_fill(&t->mem, jobs[i].moff + jobs[i].len, GUARD, POISON);
	if (!tap_ok(!vm_host_sync(), "%s: nothing written past a read's end", what))
		tap_diag("%s", vm_host_why());
	free(r);
	free(c);
}

/* File offsets where one extent ends and the next begins. */
static unsigned extent_bounds(int fd, uint64_t *out, unsigned max)
{
	struct {
		struct fiemap fm;
		struct fiemap_extent ext[64];
	} q = { .fm = { .fm_length = ~0ull, .fm_extent_count = 64 } };
	unsigned i, n = 0;

	if (ioctl(fd, FS_IOC_FIEMAP, &q))
		return 0;
	for (i = 1; i < q.fm.fm_mapped_extents && n < max; i++)
		out[n++] = q.fm.fm_extents[i].fe_logical;
	return n;
}

static void test_file(const struct vm_file *f, uint32_t provider, uint32_t va_offset,
		      uint32_t aflags)
{
	struct p2pio_register_file reg;
	struct job jobs[BATCH];
	struct vm_target t;
	uint64_t bounds[48], lba, fsize, dsize;
	unsigned n, nb, i;
	char what[160];
	int fd, ret;

	snprintf(what, sizeof(what), "%s %s%s%s", f->name,
		 provider == P2PIO_PROVIDER_PCIBAR ? "pcibar" : "nvidia",
		 va_offset ? " unaligned" : "", aflags & NVDOUBLE_ALLOC_SCATTER ? " scattered" : "");
	fd = open(f->path, O_RDONLY);
	ret = fd < 0 ? -errno : vm_p2p_register(pfd, fd, &reg);
	if (!tap_is_int(ret, 0, "%s: register", what)) {
		if (fd >= 0)
			close(fd);
		return;
	}
	lba = reg.lba_size;
	/* a1 and b1 have 512-byte LBAs, a2 and b2 4 KiB ones */
	tap_ok(reg.size == f->size && lba == (f->name[1] == '2' ? 4096u : 512u),
	       "%s: size %llu, %llu-byte LBAs, %u extents, nsid %u", what,
	       (unsigned long long)reg.size, (unsigned long long)lba, reg.nr_extents, reg.nsid);
	fsize = (f->size + lba - 1) / lba * lba;
	dsize = fsize + 2 * VM_MIB;
	ret = vm_target_new(pfd, nvd, provider, dsize, va_offset, aflags, 0, &t);
	if (!tap_is_int(ret, 0, "%s: %llu bytes of destination pinned", what,
			(unsigned long long)dsize)) {
		vm_p2p_unregister(pfd, reg.handle);
		close(fd);
		return;
	}

	/*
	 * The whole file, one read: up to 2 MiB at a dword-aligned, not page-aligned
	 * destination; larger ones page aligned, so that controller A's 4 MiB commands
	 * chain PRP lists (QEMU takes at most 1024 PRP entries a command).
	 */
	jobs[0] = (struct job){ 0, fsize, 4 * 1021 };
	if (fsize > 2 * VM_MIB)
		jobs[0].moff = 4096 + (4096 - t.mem.va_offset % 4096) % 4096;
	run_jobs(f, &reg, &t, jobs, 1, what);

	/* across extent boundaries, and across the destination's 64 KiB pages */
	nb = extent_bounds(fd, bounds, 48);
	n = 0;
	for (i = 0; i < nb && n < BATCH / 2; i++) {
		uint64_t b = bounds[i] / lba * lba, start = b >= 2 * lba ? b - 2 * lba : 0;
		uint64_t end = b + 3 * lba <= fsize ? b + 3 * lba : fsize;
		/* each destination straddles a 64 KiB page, dword but not page aligned */
		uint64_t moff = (uint64_t)n * 131072 + 65536 - 2 * lba + 4 * (n % 7);

		if (moff + (end - start) + GUARD > dsize)
			break;
		jobs[n++] = (struct job){ start, end - start, moff };
	}
	if (n)
		run_jobs(f, &reg, &t, jobs, n, "extent boundaries");

	/* many reads in flight: random offsets and lengths, destinations apart */
	if (fsize >= 16 * lba && (full || f->size <= 4 * VM_MIB)) {
		uint64_t moff = 0;

		for (n = 0; n < BATCH; n++) {
			uint64_t len = (1 + vm_rand(&rng) % 32) * lba;
			uint64_t foff = vm_rand(&rng) % (fsize / lba) * lba;

			if (foff + len > fsize)
				len = fsize - foff;
			moff += 4 * (vm_rand(&rng) % 64);
			if (moff + len + GUARD > dsize)
				break;
			jobs[n] = (struct job){ foff, len, moff };
			moff += len + GUARD;
		}
		run_jobs(f, &reg, &t, jobs, n, "random reads in flight");
	}

	tap_is_int(vm_target_free(pfd, &t), 0, "%s: unpin", what);
	tap_is_int(vm_p2p_unregister(pfd, reg.handle), 0, "%s: unregister", what);
	close(fd);
}

int main(void)
{
	struct p2pio_stats s0, s1;
	struct vm_file f;
	int cur = 0, k = 0;

	tap_plan_lazy();
	pfd = vm_test_open(&nvd, false);
	full = !strcmp(vm_phase(), "default");
	vm_p2p_stats(pfd, P2PIO_STATS_GLOBAL, &s0);

	while (vm_file_next(&cur, &f)) {
		bool nvme_fs = !strncmp(f.mnt, "/mnt/a", 6) || !strncmp(f.mnt, "/mnt/b", 6);

		if (!nvme_fs || (strcmp(f.kind, "data") && strcmp(f.kind, "frag")) ||
		    strstr(f.name, "-secret") || strstr(f.name, "-wr"))
			continue;
		if (!full && (strstr(f.name, "-big") || strstr(f.name, "frag1") ||
			      strstr(f.name, "frag2")))
			continue;
		k++;
		/* vary the kind of destination from file to file */
		test_file(&f, P2PIO_PROVIDER_NVIDIA, (k % 3) * 4096 + (k % 2) * 256,
			  k % 2 ? NVDOUBLE_ALLOC_SCATTER : 0);
		if (full)
			test_file(&f, P2PIO_PROVIDER_PCIBAR, 0, 0);
	}
	vm_p2p_stats(pfd, P2PIO_STATS_GLOBAL, &s1);
	tap_ok(s1.bytes > s0.bytes && s1.commands > s0.commands,
	       "counters: %llu bytes in %llu commands",
	       (unsigned long long)(s1.bytes - s0.bytes),
	       (unsigned long long)(s1.commands - s0.commands));
	tap_ok(s1.splits > s0.splits, "counters: %llu splits (controller B's MDTS is 16 KiB)",
	       (unsigned long long)(s1.splits - s0.splits));
	close(nvd);
	close(pfd);
	return tap_exit();
}
