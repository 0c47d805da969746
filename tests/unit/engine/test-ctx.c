// SPDX-License-Identifier: MIT
/*
 * test-ctx: context options (defaults, validation, a caller's older and smaller struct),
 * host contexts, host and device buffers on them; the default BOUNCE rings and POSIX
 * readers (from the online CPUs) and counts the caller sets.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "p2pio.h"
#include "tap.h"

static int create(void (*edit)(struct p2pio_ctx_opts *), struct p2pio_error *err)
{
	struct p2pio_ctx_opts o;
	struct p2pio_ctx *ctx = NULL;
	int ret;

	p2pio_ctx_opts_init(&o);
	o.device = P2PIO_DEVICE_HOST;
	edit(&o);
	ret = p2pio_ctx_create(&o, &ctx, err);
	p2pio_ctx_destroy(ctx);
	return ret;
}

static void bad_path(struct p2pio_ctx_opts *o) { o->path = (enum p2pio_path)7; }
static void bad_posix(struct p2pio_ctx_opts *o) { o->posix_threads = 100000; }
static void bad_reserved2(struct p2pio_ctx_opts *o) { o->reserved2 = 1; }
static void bad_chunk(struct p2pio_ctx_opts *o) { o->chunk_size = 12345; }
static void bad_depth(struct p2pio_ctx_opts *o) { o->queue_depth = 100000; }
static void bad_staging(struct p2pio_ctx_opts *o) { o->staging_bytes = 1 << 20; }
static void bad_window(struct p2pio_ctx_opts *o) { o->pin_window = 4096; }
static void bad_flags(struct p2pio_ctx_opts *o) { o->flags = 0x80; }
static void bad_device(struct p2pio_ctx_opts *o) { o->device = -7; }
static void bad_size(struct p2pio_ctx_opts *o) { o->size = 4; }

/* Three BOUNCE rings for every four CPUs, a POSIX reader per CPU, each within 4..16. */
static void default_threads(void)
{
	static const struct { long cpus; uint32_t rings, readers; } t[] = {
		{ 1, 4, 4 }, { 2, 4, 4 }, { 5, 4, 5 }, { 6, 4, 6 }, { 8, 6, 8 },
		{ 16, 12, 16 }, { 20, 15, 16 }, { 22, 16, 16 }, { 256, 16, 16 },
	};
	struct p2pio_ctx_opts o;
	unsigned int i, bad = 0;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&o, 0, sizeof(o));
		p2pio_threads_resolve(&o, t[i].cpus);
		if (o.threads != t[i].rings || o.posix_threads != t[i].readers) {
			tap_diag("%ld CPUs: %u rings, %u readers; want %u, %u", t[i].cpus, o.threads,
				 o.posix_threads, t[i].rings, t[i].readers);
			bad++;
		}
	}
	tap_ok(!bad, "rings and readers from 1 to 256 CPUs (%u wrong)", bad);
}

/* On 16 CPUs: what a context resolves from the caller's thread counts, zeros and set. */
static void threads_resolved(void)
{
	static const struct { uint32_t threads, posix, want_threads, want_posix; } t[] = {
		{ 0, 0, 12, 16 }, { 7, 0, 7, 7 }, { 0, 3, 12, 3 }, { 5, 3, 5, 3 },
	};
	struct p2pio_ctx_opts o;
	unsigned int i, bad = 0;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&o, 0, sizeof(o));
		o.threads = t[i].threads;
		o.posix_threads = t[i].posix;
		p2pio_threads_resolve(&o, 16);
		if (o.threads != t[i].want_threads || o.posix_threads != t[i].want_posix) {
			tap_diag("threads %u, POSIX %u: resolved %u, %u; want %u, %u", t[i].threads,
				 t[i].posix, o.threads, o.posix_threads, t[i].want_threads,
				 t[i].want_posix);
			bad++;
		}
	}
	tap_ok(!bad, "16 CPUs: 12 rings and 16 readers by default, the caller's threads for "
	       "both, its POSIX readers beside default rings (%u wrong)", bad);
}

int main(void)
{
	struct p2pio_ctx_opts o, got, want;
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *ctx = NULL;
	struct p2pio_buf *buf = NULL;
	struct {
		size_t size;
		int device;
		enum p2pio_path path;
	} old = { sizeof(old), P2PIO_DEVICE_HOST, P2PIO_PATH_POSIX };
	uint64_t host[4];

	tap_plan(31);
	p2pio_ctx_opts_init(&o);
	tap_ok(o.size == sizeof(o) && o.path == P2PIO_PATH_AUTO && !o.queue_depth,
	       "opts_init: size set, AUTO, zeros for the measured defaults");
	o.device = P2PIO_DEVICE_HOST;
	tap_is_int(p2pio_ctx_create(&o, &ctx, &err), 0, "host context");
	tap_is_int(p2pio_ctx_device(ctx), P2PIO_DEVICE_HOST, "its device is P2PIO_DEVICE_HOST");
	tap_ok(p2pio_ctx_cuda_context(ctx) == NULL, "and it has no CUDA context");
	got.size = sizeof(got);
	p2pio_ctx_get_opts(ctx, &got);
	tap_ok(got.queue_depth && got.threads && got.chunk_size && got.pin_window &&
		       got.staging_bytes >= (got.queue_depth + 2) * got.chunk_size,
	       "defaults resolved: depth %u, threads %u, chunk %llu, staging %llu, window %llu",
	       got.queue_depth, got.threads, (unsigned long long)got.chunk_size,
	       (unsigned long long)got.staging_bytes, (unsigned long long)got.pin_window);

	tap_is_int(p2pio_buf_alloc(ctx, P2PIO_MEM_CUDA, 4096, &buf, &err), -ENODEV,
		   "CUDA memory on a host context: -ENODEV (%s)", err.msg);
	tap_is_int(p2pio_buf_register(ctx, P2PIO_MEM_CUDA, 0x1000, 4096, &buf, &err), -ENODEV,
		   "registering a CUDA pointer on a host context: -ENODEV");
	tap_is_int(p2pio_buf_register(ctx, P2PIO_MEM_HOST, (uintptr_t)host, 0, &buf, &err),
		   -EINVAL, "an empty buffer: -EINVAL");
	tap_is_int(p2pio_buf_register(ctx, P2PIO_MEM_HOST, UINT64_MAX - 10, 100, &buf, &err),
		   -EINVAL, "a wrapping buffer: -EINVAL");
	tap_is_int(p2pio_buf_register(ctx, P2PIO_MEM_HOST, (uintptr_t)host, sizeof(host), &buf,
				      &err), 0, "host memory registered");
	tap_ok(buf && p2pio_buf_host_ptr(buf) == (void *)host &&
		       p2pio_buf_addr(buf) == (uintptr_t)host,
	       "its address and CPU mapping are the caller's");
	p2pio_buf_free(buf);
	tap_ok(p2pio_buf_alloc(ctx, P2PIO_MEM_NVDOUBLE, 65536, &buf, &err) != 0 && !buf,
	       "test-double memory without the double fails (%s)", err.msg);
	p2pio_ctx_destroy(ctx);

	tap_is_int(create(bad_path, &err), -EINVAL, "unknown path refused (%s)", err.msg);
	tap_is_int(create(bad_chunk, &err), -EINVAL, "odd chunk size refused (%s)", err.msg);
	tap_is_int(create(bad_depth, &err), -EINVAL, "huge queue depth refused");
	tap_is_int(create(bad_staging, &err), -EINVAL, "staging below depth + 2 chunks refused (%s)",
		   err.msg);
	tap_is_int(create(bad_window, &err), -EINVAL, "pin window not 64 KiB-aligned refused");
	tap_is_int(create(bad_flags, &err), -EINVAL, "unknown flags refused");
	tap_is_int(create(bad_device, &err), -EINVAL, "negative device ordinal refused");
	tap_is_int(create(bad_size, &err), -EINVAL, "a size too small to hold the fields refused");
	tap_is_int(create(bad_posix, &err), -EINVAL, "huge POSIX thread count refused (%s)",
		   err.msg);
	tap_is_int(create(bad_reserved2, &err), -EINVAL, "reserved2 set refused");

	/* The defaults above are this machine's: rings and readers from its online CPUs. */
	memset(&want, 0, sizeof(want));
	p2pio_threads_resolve(&want, sysconf(_SC_NPROCESSORS_ONLN));
	tap_ok(got.threads == want.threads && got.posix_threads == want.posix_threads,
	       "host context: %u rings, %u POSIX readers, as the CPUs give (%u, %u)", got.threads,
	       got.posix_threads, want.threads, want.posix_threads);
	default_threads();
	threads_resolved();
	o.device = P2PIO_DEVICE_HOST;
	o.threads = 7;
	tap_is_int(p2pio_ctx_create(&o, &ctx, &err), 0, "threads 7, POSIX threads left");
	got.size = sizeof(got);
	p2pio_ctx_get_opts(ctx, &got);
	tap_ok(got.threads == 7 && got.posix_threads == 7,
	       "POSIX readers left to the library: one per thread (%u, %u)", got.threads,
	       got.posix_threads);
	p2pio_ctx_destroy(ctx);
	o.device = P2PIO_DEVICE_HOST;
	o.threads = 5;
	o.posix_threads = 3;
	tap_is_int(p2pio_ctx_create(&o, &ctx, &err), 0, "threads 5, POSIX threads 3");
	got.size = sizeof(got);
	p2pio_ctx_get_opts(ctx, &got);
	tap_ok(got.threads == 5 && got.posix_threads == 3, "both kept as given (%u, %u)",
	       got.threads, got.posix_threads);
	p2pio_ctx_destroy(ctx);

	/* A caller compiled against an older, shorter struct gets defaults for the rest. */
	tap_is_int(p2pio_ctx_create((struct p2pio_ctx_opts *)&old, &ctx, &err), 0,
		   "an older, shorter options struct works");
	got.size = sizeof(got);
	p2pio_ctx_get_opts(ctx, &got);
	tap_ok(got.path == P2PIO_PATH_POSIX && got.queue_depth && got.chunk_size,
	       "its fields are used and the newer ones default");
	p2pio_ctx_destroy(ctx);
	return tap_exit();
}
