// SPDX-License-Identifier: MIT
/*
 * nvdouble.c - the NVIDIA test double's allocator as a memory source (VM tests only).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/nvdouble.h"

#if __has_include("../../../tests/vm/nvdouble/nvdouble_ioctl.h")
#include "../../../tests/vm/nvdouble/nvdouble_ioctl.h"

int p2pio_nvd_alloc(uint64_t len, struct p2pio_nvd_alloc *a, struct p2pio_error *err)
{
	struct nvdouble_alloc arg = { .size = len };
	struct nvdouble_free fr;
	uint64_t base, off;
	void *map;
	int fd, ret;

	/* Each allocation gets its own fd: the double frees allocations when it closes. */
	fd = open(NVDOUBLE_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		return p2pio_set_error(err, ret == -ENOENT ? -ENODEV : ret, P2PIO_NO_OFFSET,
				       "%s: %s (is the NVIDIA test double loaded?)",
				       NVDOUBLE_DEVICE, strerror(-ret));
	}
	if (ioctl(fd, NVDOUBLE_IOC_ALLOC, &arg) < 0) {
		ret = -errno;
		close(fd);
		return p2pio_set_error(err, ret, P2PIO_NO_OFFSET,
				       "test double: allocating %llu bytes: %s",
				       (unsigned long long)len, strerror(-ret));
	}
	base = arg.gpu_va - arg.gpu_va % NVDOUBLE_PAGE_SIZE;
	off = arg.gpu_va - base;
	a->map_len = (size_t)((uint64_t)arg.npages * NVDOUBLE_PAGE_SIZE);
	map = mmap(NULL, a->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		   (off_t)(base - NVDOUBLE_VA_BASE));
	if (map == MAP_FAILED) {
		ret = -errno;
		fr.gpu_va = arg.gpu_va;
		ioctl(fd, NVDOUBLE_IOC_FREE, &fr);
		close(fd);
		return p2pio_set_error(err, ret, P2PIO_NO_OFFSET,
				       "test double: mapping 0x%llx: %s",
				       (unsigned long long)arg.gpu_va, strerror(-ret));
	}
	a->handle = (uint64_t)fd;
	a->gpu_va = arg.gpu_va;
	a->map = (char *)map + off;
	return 0;
}

void p2pio_nvd_free(struct p2pio_nvd_alloc *a)
{
	struct nvdouble_free fr = { .gpu_va = a->gpu_va };
	uint64_t off = a->gpu_va % NVDOUBLE_PAGE_SIZE;

	munmap((char *)a->map - off, a->map_len);
	ioctl((int)a->handle, NVDOUBLE_IOC_FREE, &fr);
	close((int)a->handle);
}

#else /* the double's ABI header is not in this tree */

int p2pio_nvd_alloc(uint64_t len, struct p2pio_nvd_alloc *a, struct p2pio_error *err)
{
	return p2pio_set_error(err, -ENODEV, P2PIO_NO_OFFSET,
			       "libp2pio was built without the NVIDIA test double's ABI");
}

void p2pio_nvd_free(struct p2pio_nvd_alloc *a)
{
}

#endif
