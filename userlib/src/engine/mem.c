// SPDX-License-Identifier: MIT
/*
 * mem.c - destination buffers: host memory, CUDA device memory, the test double's memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/engine.h"
#include "engine/nvdouble.h"

static int p2pio_buf_new(struct p2pio_ctx *ctx, enum p2pio_mem mem, uint64_t addr,
			 uint64_t len, struct p2pio_buf **bufp)
{
	struct p2pio_buf *buf;

	buf = calloc(1, sizeof(*buf));
	if (!buf)
		return -ENOMEM;
	buf->ctx = ctx;
	buf->mem = mem;
	buf->addr = addr;
	buf->len = len;
	if (mem == P2PIO_MEM_HOST)
		buf->host = (void *)(uintptr_t)addr;
	pthread_mutex_init(&buf->lock, NULL);
	*bufp = buf;
	return 0;
}

/* A CUDA range must be device memory of this context's device, inside one allocation. */
static int p2pio_buf_check_cuda(struct p2pio_ctx *ctx, uint64_t addr, uint64_t len,
				struct p2pio_error *err)
{
	const struct p2pio_cuda *cu = ctx->cu;
	CUdeviceptr start = 0;
	unsigned int type = 0;
	int ordinal = -1;
	size_t size = 0;
	CUcontext prev;
	CUresult res;

	prev = p2pio_ctx_enter(ctx);
	res = cu->PointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, addr);
	if (res == CUDA_SUCCESS)
		res = cu->PointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, addr);
	if (res == CUDA_SUCCESS)
		res = cu->PointerGetAttribute(&start, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, addr);
	if (res == CUDA_SUCCESS)
		res = cu->PointerGetAttribute(&size, CU_POINTER_ATTRIBUTE_RANGE_SIZE, addr);
	p2pio_ctx_leave(ctx, prev);
	if (res != CUDA_SUCCESS)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "0x%llx is not CUDA memory: %s", (unsigned long long)addr,
				       p2pio_cuda_errname(res));
	if (type != CU_MEMORYTYPE_DEVICE || ordinal != ctx->opts.device)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "0x%llx is not device memory of CUDA device %d",
				       (unsigned long long)addr, ctx->opts.device);
	if (addr + len > start + size)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "range 0x%llx+%llu runs past its allocation (0x%llx+%zu)",
				       (unsigned long long)addr, (unsigned long long)len,
				       (unsigned long long)start, size);
	return 0;
}

int p2pio_buf_wrap(struct p2pio_ctx *ctx, enum p2pio_mem mem, uint64_t addr, uint64_t len,
		   struct p2pio_buf **bufp)
{
	*bufp = NULL;
	return p2pio_buf_new(ctx, mem, addr, len, bufp);
}

int p2pio_buf_register(struct p2pio_ctx *ctx, enum p2pio_mem mem, uint64_t addr, uint64_t len,
		       struct p2pio_buf **bufp, struct p2pio_error *err)
{
	uint64_t end;
	int ret;

	*bufp = NULL;
	if (!len || !addr || p2pio_add_overflow(addr, len, &end))
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "buffer 0x%llx+%llu is empty or wraps",
				       (unsigned long long)addr, (unsigned long long)len);
	switch (mem) {
	case P2PIO_MEM_HOST:
		break;
	case P2PIO_MEM_CUDA:
		if (!ctx->cu)
			return p2pio_set_error(err, -ENODEV, P2PIO_NO_OFFSET,
					       "CUDA memory on a host-only context");
		ret = p2pio_buf_check_cuda(ctx, addr, len, err);
		if (ret)
			return ret;
		break;
	case P2PIO_MEM_NVDOUBLE:
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "test-double memory comes from p2pio_buf_alloc()");
	default:
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "memory kind %d unknown",
				       (int)mem);
	}
	ret = p2pio_buf_new(ctx, mem, addr, len, bufp);
	if (ret)
		return p2pio_set_error(err, ret, P2PIO_NO_OFFSET, "out of memory");
	return 0;
}

int p2pio_buf_alloc(struct p2pio_ctx *ctx, enum p2pio_mem mem, uint64_t len,
		    struct p2pio_buf **bufp, struct p2pio_error *err)
{
	struct p2pio_nvd_alloc nvd;
	CUdeviceptr dptr = 0;
	CUcontext prev;
	CUresult res;
	void *p;
	int ret;

	*bufp = NULL;
	if (!len || len > (1ull << 48))
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "bad buffer length %llu",
				       (unsigned long long)len);
	switch (mem) {
	case P2PIO_MEM_HOST:
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET,
					       "cannot map %llu bytes", (unsigned long long)len);
		/*
		 * The first read into each page faults it in: with 4 KiB pages that costs more
		 * than the read itself (a warm load into host memory ran at 0.12 of a buffered
		 * read into a reused buffer). Huge pages, where the kernel has them, fault 512
		 * times less often; advice only, so a kernel without them changes nothing.
		 */
		if (len >= (2u << 20))
			madvise(p, len, MADV_HUGEPAGE);
		ret = p2pio_buf_new(ctx, mem, (uintptr_t)p, len, bufp);
		if (ret) {
			munmap(p, len);
			return p2pio_set_error(err, ret, P2PIO_NO_OFFSET, "out of memory");
		}
		break;
	case P2PIO_MEM_CUDA:
		if (!ctx->cu)
			return p2pio_set_error(err, -ENODEV, P2PIO_NO_OFFSET,
					       "CUDA memory on a host-only context");
		prev = p2pio_ctx_enter(ctx);
		res = ctx->cu->MemAlloc(&dptr, len);
		p2pio_ctx_leave(ctx, prev);
		if (res != CUDA_SUCCESS)
			return p2pio_set_error(err, p2pio_cuda_errno(res), P2PIO_NO_OFFSET,
					       "cuMemAlloc(%llu): %s", (unsigned long long)len,
					       p2pio_cuda_errname(res));
		ret = p2pio_buf_new(ctx, mem, dptr, len, bufp);
		if (ret) {
			prev = p2pio_ctx_enter(ctx);
			ctx->cu->MemFree(dptr);
			p2pio_ctx_leave(ctx, prev);
			return p2pio_set_error(err, ret, P2PIO_NO_OFFSET, "out of memory");
		}
		break;
	case P2PIO_MEM_NVDOUBLE:
		ret = p2pio_nvd_alloc(len, &nvd, err);
		if (ret)
			return ret;
		ret = p2pio_buf_new(ctx, mem, nvd.gpu_va, len, bufp);
		if (ret) {
			p2pio_nvd_free(&nvd);
			return p2pio_set_error(err, ret, P2PIO_NO_OFFSET, "out of memory");
		}
		(*bufp)->host = nvd.map;
		(*bufp)->nvd_handle = nvd.handle;
		(*bufp)->nvd_map_len = nvd.map_len;
		break;
	default:
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "memory kind %d unknown",
				       (int)mem);
	}
	(*bufp)->owned = true;
	return 0;
}

void p2pio_buf_free(struct p2pio_buf *buf)
{
	const struct p2pio_path_ops *ops;
	struct p2pio_nvd_alloc nvd;
	struct p2pio_ctx *ctx;
	CUcontext prev;
	unsigned int i;
	void *priv;

	if (!buf)
		return;
	ctx = buf->ctx;
	/* The paths' hold first (P2P's pins): the module must let go before the memory goes. */
	for (i = 0; (ops = p2pio_paths[i]); i++) {
		if (!ops->buf_release)
			continue;
		priv = p2pio_path_priv(ctx, ops);
		if (priv)
			ops->buf_release(priv, buf);
	}
	if (buf->owned) {
		switch (buf->mem) {
		case P2PIO_MEM_HOST:
			munmap(buf->host, buf->len);
			break;
		case P2PIO_MEM_CUDA:
			prev = p2pio_ctx_enter(ctx);
			ctx->cu->MemFree(buf->addr);
			p2pio_ctx_leave(ctx, prev);
			break;
		case P2PIO_MEM_NVDOUBLE:
			nvd.handle = buf->nvd_handle;
			nvd.gpu_va = buf->addr;
			nvd.map = buf->host;
			nvd.map_len = buf->nvd_map_len;
			p2pio_nvd_free(&nvd);
			break;
		}
	}
	pthread_mutex_destroy(&buf->lock);
	free(buf);
}

uint64_t p2pio_buf_addr(const struct p2pio_buf *buf)
{
	return buf->addr;
}

void *p2pio_buf_host_ptr(const struct p2pio_buf *buf)
{
	return buf->host;
}

/*
 * A copy the caller waits for (the P2P path's unaligned edges, and the reads it finishes
 * through host memory). Not cuMemcpyHtoD(): that runs on the legacy default stream, which
 * waits for the work queued before it on every blocking stream, a stream-ordered read's
 * own wait on its completion flag included; with a read ordered on such a stream (the
 * legacy stream itself, or one made without CU_STREAM_NON_BLOCKING) the copy would wait
 * for the read it is part of, for good. A non-blocking stream of the library's waits for
 * nothing but its own copies.
 */
int p2pio_dst_write_sync(struct p2pio_op *op, uint64_t dst, const void *src, uint64_t len)
{
	struct p2pio_ctx *ctx = op->ctx;
	struct p2pio_buf *buf = op->buf;
	CUcontext prev;
	CUresult res = CUDA_SUCCESS;

	if (buf->host) {
		memcpy((char *)buf->host + dst, src, len);
		return 0;
	}
	prev = p2pio_ctx_enter(ctx);
	pthread_mutex_lock(&ctx->sync_lock);
	if (!ctx->sync_stream)
		res = ctx->cu->StreamCreate(&ctx->sync_stream, CU_STREAM_NON_BLOCKING);
	if (res == CUDA_SUCCESS)
		res = ctx->cu->MemcpyHtoDAsync(buf->addr + dst, src, len, ctx->sync_stream);
	if (res == CUDA_SUCCESS)
		res = ctx->cu->StreamSynchronize(ctx->sync_stream);
	pthread_mutex_unlock(&ctx->sync_lock);
	p2pio_ctx_leave(ctx, prev);
	return res == CUDA_SUCCESS ? 0 : p2pio_cuda_errno(res);
}
