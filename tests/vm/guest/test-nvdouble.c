// SPDX-License-Identifier: MIT
/*
 * test-nvdouble - the NVIDIA test double's allocator and the host channel, without p2pio:
 * allocations, their BAR pages, CPU mappings, the host's view of what the guest wrote
 * into the BAR, and the allocator's refusals.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

static void *map_mem(const struct vm_mem *m)
{
	uint64_t span = (uint64_t)m->npages * NVDOUBLE_PAGE_SIZE;
	void *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_SHARED, m->nvd_fd,
		       m->va - m->va_offset - NVDOUBLE_VA_BASE);

	return p == MAP_FAILED ? NULL : (char *)p + m->va_offset;
}

static void unmap_mem(const struct vm_mem *m, void *p)
{
	munmap((char *)p - m->va_offset, (uint64_t)m->npages * NVDOUBLE_PAGE_SIZE);
}

/* Writes a file's pattern through the CPU mapping; the host must see it in the BAR. */
static void write_and_check(const struct vm_mem *m, const char *name, const char *what)
{
	char *p = map_mem(m);

	if (!tap_ok(p != NULL, "%s: mmap of the allocation", what)) {
		tap_skip(1, "no mapping");
		return;
	}
	vm_pattern_fill(vm_pattern_seed(name), 0, p, m->size);
	unmap_mem(m, p);
	vm_mem_expect_file(m, 0, m->size, name, 0);
	if (!tap_ok(!vm_host_sync(),
		    "%s: the host sees every byte written in the BAR", what))
		tap_diag("%s", vm_host_why());
}

int main(void)
{
	struct nvdouble_info info0, info;
	struct nvdouble_alloc bad;
	struct vm_mem a, s;
	uint32_t i;
	bool desc = true;
	int fd, fd2, st;
	pid_t pid;
	char *p;

	tap_plan_lazy();
	fd = vm_nvd_open();
	if (fd < 0)
		tap_skip_all("no /dev/nvdouble");
	tap_ok(!vm_nvd_info(&info0), "info");
	tap_ok(info0.bar_size >= 128 * VM_MIB, "the BAR has %llu MiB",
	       (unsigned long long)(info0.bar_size >> 20));

	tap_is_int(vm_gpu_alloc(fd, &a, VM_MIB, 0, 0), 0, "allocate 1 MiB");
	tap_ok(a.va % NVDOUBLE_PAGE_SIZE == 0 && a.va >= NVDOUBLE_VA_BASE,
	       "address %#llx is 64 KiB aligned", (unsigned long long)a.va);
	tap_is_int(a.npages, 16, "16 pages of 64 KiB");
	write_and_check(&a, "nvd-smoke-contig", "contiguous");

	tap_is_int(vm_gpu_alloc(fd, &s, 200 * VM_KIB, 4096 + 256, NVDOUBLE_ALLOC_SCATTER), 0,
		   "allocate 200 KiB, scattered, 4352 bytes into its first page");
	for (i = 1; i < s.npages; i++)
		desc &= s.pages[i] < s.pages[i - 1];
	tap_ok(s.npages == 4 && desc, "4 pages at descending BAR offsets");
	tap_is_int(s.va % NVDOUBLE_PAGE_SIZE, 4352, "the address keeps the offset");
	write_and_check(&s, "nvd-smoke-scatter", "scattered");

	/* The other direction: the host poisons, the guest sees it through the mapping. */
	vm_mem_poison(&a, 4096, 8192, 0xa5);
	tap_ok(!vm_host_sync(), "host poisons 8 KiB");
	p = map_mem(&a);
	tap_ok(p && p[4096] == (char)0xa5 && p[4096 + 8191] == (char)0xa5 && p[4095] != (char)0xa5,
	       "the guest sees the poison, and only there");
	if (p)
		unmap_mem(&a, p);
	vm_mem_expect_fill(&a, 4096, 8192, 0xa5);
	tap_ok(!vm_host_sync(), "host check of a fill");
	vm_host_expect_mismatch(true);
	vm_mem_expect_fill(&a, 0, 8192, 0xa5);
	tap_ok(vm_host_sync() && strstr(vm_host_why(), "BAD"),
	       "a host check can fail: %s", vm_host_why());
	vm_host_expect_mismatch(false);

	/* Refusals */
	memset(&bad, 0, sizeof(bad));
	bad.size = VM_MIB;
	bad.va_offset = 100;
	tap_ok(ioctl(fd, NVDOUBLE_IOC_ALLOC, &bad) && errno == EINVAL,
	       "va_offset not a multiple of 256: EINVAL");
	bad.va_offset = 65536;
	tap_ok(ioctl(fd, NVDOUBLE_IOC_ALLOC, &bad) && errno == EINVAL, "va_offset of 64 KiB: EINVAL");
	bad.va_offset = 0;
	bad.size = 0;
	tap_ok(ioctl(fd, NVDOUBLE_IOC_ALLOC, &bad) && errno == EINVAL, "size 0: EINVAL");
	bad.size = info0.bar_size + 1;
	tap_ok(ioctl(fd, NVDOUBLE_IOC_ALLOC, &bad) && errno == ENOMEM, "more than the BAR: ENOMEM");
	bad.size = VM_MIB;
	bad.reserved = 1;
	tap_ok(ioctl(fd, NVDOUBLE_IOC_ALLOC, &bad) && errno == EINVAL, "reserved field set: EINVAL");
	bad.reserved = 0;
	bad.flags = 0x80;
	tap_ok(ioctl(fd, NVDOUBLE_IOC_ALLOC, &bad) && errno == EINVAL, "unknown flag: EINVAL");

	fd2 = vm_nvd_open();
	{
		struct nvdouble_free f = { .gpu_va = a.va };

		tap_ok(ioctl(fd2, NVDOUBLE_IOC_FREE, &f) && errno == EINVAL,
		       "another fd cannot free the allocation");
		f.gpu_va = a.va + 65536;
		tap_ok(ioctl(fd, NVDOUBLE_IOC_FREE, &f) && errno == EINVAL,
		       "free of an address inside an allocation: EINVAL");
	}
	close(fd2);

	/* A process's allocations go when it exits. */
	pid = fork();
	if (pid == 0) {
		struct vm_mem c;
		int cfd = vm_nvd_open();

		_exit(cfd < 0 || vm_gpu_alloc(cfd, &c, 4 * VM_MIB, 0, 0) ? 1 : 0);
	}
	tap_ok(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st),
	       "a child allocates 4 MiB and exits");
	vm_nvd_info(&info);
	tap_is_int(info.allocs, info0.allocs + 2, "its allocation is gone");

	{
		uint64_t va = a.va;
		struct nvdouble_free f = { .gpu_va = va };

		tap_is_int(vm_gpu_free(&a), 0, "free");
		tap_ok(ioctl(fd, NVDOUBLE_IOC_FREE, &f) && errno == EINVAL, "double free: EINVAL");
	}
	tap_is_int(vm_gpu_alloc(fd, &a, VM_MIB, 0, 0), 0, "allocate again");
	tap_ok(a.va > s.va, "a new allocation never reuses an address");
	vm_gpu_free(&a);
	vm_gpu_free(&s);
	close(fd);

	vm_nvd_info(&info);
	tap_is_int(info.allocs, info0.allocs, "no allocation left");
	tap_is_int(info.pages_free, info0.pages_free, "every BAR page is free again");
	tap_is_int(info.pins_persistent + info.pins_callback + info.dma_mappings, 0,
		   "no pins, no DMA mappings");
	return tap_exit();
}
