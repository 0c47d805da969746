// SPDX-License-Identifier: MIT
/*
 * xmem_nvd.c - expert memory from the NVIDIA test double (the VM tests' "GPU memory"):
 * the double cannot remap, so there is no reservation; each chunk is an allocation of
 * its own and an expert's address is its chunk's.
 */
#include <errno.h>
#include <stdlib.h>

#include "experts/xmem.h"

/* The double pins and maps in 64 KiB pages, like NVIDIA's driver. */
#define NVD_GRANULARITY (64u << 10)

struct xmem_nvd {
	struct p2pio_ctx *ctx;
};

static int nvd_create(void *arg, struct p2pio_xchunk *c)
{
	struct xmem_nvd *n = arg;
	struct p2pio_buf *buf;
	int ret;

	ret = p2pio_buf_alloc(n->ctx, P2PIO_MEM_NVDOUBLE, c->len, &buf, NULL);
	if (ret)
		return ret;
	c->buf = buf;
	c->buf_off = 0;
	c->addr = p2pio_buf_addr(buf);
	c->host = p2pio_buf_host_ptr(buf);
	return 0;
}

static void nvd_destroy(void *arg, struct p2pio_xchunk *c)
{
	p2pio_buf_free(c->buf);
	c->buf = NULL;
}

static void nvd_fini(void *arg)
{
	free(arg);
}

static const struct p2pio_xmem_ops nvd_ops = {
	.name = "nvdouble",
	.create = nvd_create,
	.destroy = nvd_destroy,
	.fini = nvd_fini,
	.granularity = NVD_GRANULARITY,
};

int p2pio_xmem_nvd_create(struct p2pio_ctx *ctx, const struct p2pio_xmem_ops **ops, void **arg)
{
	struct xmem_nvd *n = calloc(1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	n->ctx = ctx;
	*ops = &nvd_ops;
	*arg = n;
	return 0;
}
