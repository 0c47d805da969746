// SPDX-License-Identifier: MIT
/*
 * xmem_cuda.c - expert memory on a GPU through CUDA's virtual memory management: one
 * cuMemAddressReserve for every expert's home, physical chunks from cuMemCreate mapped
 * over a home (cuMemMap + cuMemSetAccess) while the expert is resident, and over an
 * address of the chunk's own for its whole life (the view reads go through). Each mapping
 * is an engine buffer of its own, since the engine's paths work on one allocation per buffer
 * (made without the driver queries of p2pio_buf_register(): a miss pays for the mapping
 * calls only).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "experts/xmem.h"

#ifdef P2PIO_HAVE_CUDA_H

struct xmem_cuda {
	struct p2pio_ctx *ctx;
	const struct p2pio_cuda *cu;
	CUmemAllocationProp prop;
	CUmemAccessDesc access;
	struct p2pio_xmem_ops ops;	/* the granularity is the device's */
};

static int cuda_reserve(void *arg, uint64_t len, uint64_t *va)
{
	struct xmem_cuda *x = arg;
	CUdeviceptr p = 0;
	CUcontext prev = p2pio_ctx_enter(x->ctx);
	CUresult res = x->cu->MemAddressReserve(&p, len, x->ops.granularity, 0, 0);

	p2pio_ctx_leave(x->ctx, prev);
	if (res != CUDA_SUCCESS)
		return p2pio_cuda_errno(res);
	*va = p;
	return 0;
}

static void cuda_unreserve(void *arg, uint64_t va, uint64_t len)
{
	struct xmem_cuda *x = arg;
	CUcontext prev = p2pio_ctx_enter(x->ctx);

	x->cu->MemAddressFree(va, len);
	p2pio_ctx_leave(x->ctx, prev);
}

/*
 * Map @c at @va (reserved) for this device and wrap it in an engine buffer, in @buf; all
 * undone on failure. Called with the context current.
 */
static int map_wrapped(struct xmem_cuda *x, uint64_t va, const struct p2pio_xchunk *c,
		       struct p2pio_buf **buf)
{
	CUresult res = x->cu->MemMap(va, c->len, 0, c->handle, 0);
	int ret;

	if (res == CUDA_SUCCESS) {
		res = x->cu->MemSetAccess(va, c->len, &x->access, 1);
		if (res != CUDA_SUCCESS)
			x->cu->MemUnmap(va, c->len);
	}
	if (res != CUDA_SUCCESS)
		return p2pio_cuda_errno(res);
	/* Device memory of this context, one allocation: nothing for the driver to check. */
	ret = p2pio_buf_wrap(x->ctx, P2PIO_MEM_CUDA, va, c->len, buf);
	if (ret)
		x->cu->MemUnmap(va, c->len);
	return ret;
}

/*
 * The chunk's own view: an address range of its own with the chunk mapped there for its
 * whole life, so that a miss's reads can go into the chunk before its home is mapped (the
 * mapping calls, 50-100 us for 14 MiB on the H200, then overlap the reads instead of
 * preceding them), and so that P2P pins the chunk once rather than at every residency.
 * Without one (out of address space, say) reads wait for the home, as they used to.
 */
static void cuda_view(struct xmem_cuda *x, struct p2pio_xchunk *c)
{
	CUdeviceptr va = 0;

	if (x->cu->MemAddressReserve(&va, c->len, x->ops.granularity, 0, 0) != CUDA_SUCCESS)
		return;
	if (!map_wrapped(x, va, c, &c->io_buf)) {
		c->io_addr = va;
		c->io_off = 0;
		return;
	}
	x->cu->MemAddressFree(va, c->len);
	c->io_buf = NULL;
}

static int cuda_create(void *arg, struct p2pio_xchunk *c)
{
	struct xmem_cuda *x = arg;
	CUmemGenericAllocationHandle h;
	CUcontext prev = p2pio_ctx_enter(x->ctx);
	CUresult res = x->cu->MemCreate(&h, c->len, &x->prop, 0);

	if (res == CUDA_SUCCESS) {
		c->handle = h;
		cuda_view(x, c);
	}
	p2pio_ctx_leave(x->ctx, prev);
	if (res != CUDA_SUCCESS)
		return p2pio_cuda_errno(res);
	return 0;
}

static void cuda_destroy(void *arg, struct p2pio_xchunk *c)
{
	struct xmem_cuda *x = arg;
	CUcontext prev;

	/* The engine's pins of the view go first (p2pio_buf_free() releases them). */
	p2pio_buf_free(c->io_buf);
	c->io_buf = NULL;
	prev = p2pio_ctx_enter(x->ctx);
	if (c->io_addr) {
		x->cu->MemUnmap(c->io_addr, c->len);
		x->cu->MemAddressFree(c->io_addr, c->len);
		c->io_addr = 0;
	}
	x->cu->MemRelease(c->handle);
	p2pio_ctx_leave(x->ctx, prev);
}

static int cuda_map(void *arg, uint64_t va, struct p2pio_xchunk *c)
{
	struct xmem_cuda *x = arg;
	CUcontext prev = p2pio_ctx_enter(x->ctx);
	int ret = map_wrapped(x, va, c, &c->buf);

	p2pio_ctx_leave(x->ctx, prev);
	if (ret)
		return ret;
	c->addr = va;
	c->buf_off = 0;
	c->host = NULL;
	return 0;
}

static void cuda_unmap(void *arg, struct p2pio_xchunk *c)
{
	struct xmem_cuda *x = arg;
	CUcontext prev;

	/* The engine's pins of the range go first (p2pio_buf_free() releases them). */
	p2pio_buf_free(c->buf);
	c->buf = NULL;
	prev = p2pio_ctx_enter(x->ctx);
	x->cu->MemUnmap(c->addr, c->len);
	p2pio_ctx_leave(x->ctx, prev);
}

static void cuda_fini(void *arg)
{
	free(arg);
}

int p2pio_xmem_cuda_create(struct p2pio_ctx *ctx, const struct p2pio_xmem_ops **ops,
			   void **arg, struct p2pio_error *err)
{
	struct xmem_cuda *x;
	int vmm = 0, rdma = 0;
	size_t gran = 0;
	CUcontext prev;
	CUresult res;

	if (!ctx->cu)
		return p2pio_set_error(err, -ENODEV, P2PIO_NO_OFFSET,
				       "CUDA expert memory on a context without a GPU");
	x = calloc(1, sizeof(*x));
	if (!x)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	x->ctx = ctx;
	x->cu = ctx->cu;
	prev = p2pio_ctx_enter(ctx);
	res = x->cu->DeviceGetAttribute(&vmm, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED,
					ctx->dev);
	if (res == CUDA_SUCCESS && vmm)
		x->cu->DeviceGetAttribute(&rdma,
					  CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_WITH_CUDA_VMM_SUPPORTED,
					  ctx->dev);
	x->prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	x->prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	x->prop.location.id = ctx->dev;
	/* Third-party DMA (the P2P path) into the chunks needs this flag on the allocation. */
	x->prop.allocFlags.gpuDirectRDMACapable = rdma ? 1 : 0;
	if (res == CUDA_SUCCESS && vmm)
		res = x->cu->MemGetAllocationGranularity(&gran, &x->prop,
							 CU_MEM_ALLOC_GRANULARITY_RECOMMENDED);
	p2pio_ctx_leave(ctx, prev);
	if (res != CUDA_SUCCESS || !vmm || !gran) {
		free(x);
		return p2pio_set_error(err, -EOPNOTSUPP, P2PIO_NO_OFFSET,
				       "CUDA device %d has no virtual memory management (%s)",
				       ctx->opts.device,
				       res != CUDA_SUCCESS ? p2pio_cuda_errname(res) : "not supported");
	}
	x->access.location = x->prop.location;
	x->access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	x->ops = (struct p2pio_xmem_ops){
		.name = "cuda",
		.reserve = cuda_reserve,
		.unreserve = cuda_unreserve,
		.create = cuda_create,
		.destroy = cuda_destroy,
		.map = cuda_map,
		.unmap = cuda_unmap,
		.fini = cuda_fini,
		.granularity = gran,
	};
	*ops = &x->ops;
	*arg = x;
	return 0;
}

#else /* !P2PIO_HAVE_CUDA_H */

int p2pio_xmem_cuda_create(struct p2pio_ctx *ctx, const struct p2pio_xmem_ops **ops,
			   void **arg, struct p2pio_error *err)
{
	return p2pio_set_error(err, -EOPNOTSUPP, P2PIO_NO_OFFSET,
			       "libp2pio was built without cuda.h: no CUDA expert memory");
}

#endif
