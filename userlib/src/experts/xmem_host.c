// SPDX-License-Identifier: MIT
/*
 * xmem_host.c - expert memory on a context without a GPU: an mmap(PROT_NONE) reservation
 * whose pages are backed by ranges of one memfd while an expert is resident, so host
 * experts keep stable addresses and commit nothing while absent, as on a GPU.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "experts/xmem.h"

#define HOST_GRANULARITY (64u << 10)

struct xmem_host {
	struct p2pio_ctx *ctx;
	int fd;
	uint64_t fd_len;		/* bytes of the memfd handed out so far */
	uint64_t *holes;		/* offsets of destroyed chunks ... */
	uint64_t *hole_len;		/* ... and their lengths */
	size_t nholes, cap;
	uint64_t va;
	uint64_t va_len;
	struct p2pio_buf *buf;		/* the whole reservation, for the engine */
};

static int host_reserve(void *arg, uint64_t len, uint64_t *va)
{
	struct xmem_host *h = arg;
	void *p;
	int ret;

	p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	ret = p2pio_buf_register(h->ctx, P2PIO_MEM_HOST, (uintptr_t)p, len, &h->buf, NULL);
	if (ret) {
		munmap(p, len);
		return ret;
	}
	h->va = (uintptr_t)p;
	h->va_len = len;
	*va = h->va;
	return 0;
}

static void host_unreserve(void *arg, uint64_t va, uint64_t len)
{
	struct xmem_host *h = arg;

	p2pio_buf_free(h->buf);
	h->buf = NULL;
	munmap((void *)(uintptr_t)va, len);
}

static int host_create(void *arg, struct p2pio_xchunk *c)
{
	struct xmem_host *h = arg;
	size_t i;

	for (i = 0; i < h->nholes; i++) {
		if (h->hole_len[i] != c->len)
			continue;
		c->handle = h->holes[i];
		h->holes[i] = h->holes[--h->nholes];
		h->hole_len[i] = h->hole_len[h->nholes];
		return 0;
	}
	if (ftruncate(h->fd, (off_t)(h->fd_len + c->len)))
		return -errno;
	c->handle = h->fd_len;
	h->fd_len += c->len;
	return 0;
}

static void host_destroy(void *arg, struct p2pio_xchunk *c)
{
	struct xmem_host *h = arg;
	uint64_t *o, *l;

	/* The pages go back to the system; the range is reused by a later create. */
	fallocate(h->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)c->handle,
		  (off_t)c->len);
	if (h->nholes == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 16;

		o = realloc(h->holes, cap * sizeof(*o));
		if (o)
			h->holes = o;
		l = realloc(h->hole_len, cap * sizeof(*l));
		if (l)
			h->hole_len = l;
		if (!o || !l)
			return;	/* the range is lost to reuse; its pages are freed all the same */
		h->cap = cap;
	}
	h->holes[h->nholes] = c->handle;
	h->hole_len[h->nholes++] = c->len;
}

static int host_map(void *arg, uint64_t va, struct p2pio_xchunk *c)
{
	struct xmem_host *h = arg;
	void *p;

	p = mmap((void *)(uintptr_t)va, c->len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 h->fd, (off_t)c->handle);
	if (p == MAP_FAILED)
		return -errno;
	c->addr = va;
	c->host = p;
	c->buf = h->buf;
	c->buf_off = va - h->va;
	return 0;
}

static void host_unmap(void *arg, struct p2pio_xchunk *c)
{
	/* Back to an inaccessible reservation: a stale pointer faults instead of reading. */
	mmap((void *)(uintptr_t)c->addr, c->len, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	c->host = NULL;
	c->buf = NULL;
}

static void host_fini(void *arg);

static const struct p2pio_xmem_ops host_ops = {
	.name = "host",
	.reserve = host_reserve,
	.unreserve = host_unreserve,
	.create = host_create,
	.destroy = host_destroy,
	.map = host_map,
	.unmap = host_unmap,
	.fini = host_fini,
	.granularity = HOST_GRANULARITY,
};

int p2pio_xmem_host_create(struct p2pio_ctx *ctx, const struct p2pio_xmem_ops **ops, void **arg)
{
	struct xmem_host *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->ctx = ctx;
	h->fd = memfd_create("p2pio-experts", MFD_CLOEXEC);
	if (h->fd < 0) {
		free(h);
		return -errno;
	}
	*ops = &host_ops;
	*arg = h;
	return 0;
}

static void host_fini(void *arg)
{
	struct xmem_host *h = arg;

	close(h->fd);
	free(h->holes);
	free(h->hole_len);
	free(h);
}
