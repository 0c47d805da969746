// SPDX-License-Identifier: MIT
/* gpu_fixture.c - the GPU tests' CUDA set-up and scratch file (see gpu_fixture.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "gpu_fixture.h"
#include "tap.h"

static char tmpfile_path[PATH_MAX];

const struct p2pio_cuda *gpu_fixture_cuda(void)
{
	const struct p2pio_cuda *cu;
	char why[160];

	cu = p2pio_cuda_get(why, sizeof(why));
	if (!cu)
		tap_skip_all(why);
	return cu;
}

struct p2pio_ctx *gpu_fixture_ctx_flags(const struct p2pio_cuda **cu, uint32_t flags)
{
	struct p2pio_error err = { 0 };
	struct p2pio_ctx_opts o;
	struct p2pio_ctx *ctx;

	*cu = gpu_fixture_cuda();
	p2pio_ctx_opts_init(&o);
	o.flags = flags;
	if (o.device == P2PIO_DEVICE_HOST || p2pio_ctx_create(&o, &ctx, &err))
		tap_skip_all("no GPU context");
	return ctx;
}

struct p2pio_ctx *gpu_fixture_ctx(const struct p2pio_cuda **cu)
{
	return gpu_fixture_ctx_flags(cu, 0);
}

CUstream gpu_fixture_stream(struct p2pio_ctx *ctx, const struct p2pio_cuda *cu)
{
	CUstream cs = NULL;
	CUcontext prev;
	CUresult r;

	prev = p2pio_ctx_enter(ctx);
	r = cu->StreamCreate(&cs, CU_STREAM_NON_BLOCKING);
	p2pio_ctx_leave(ctx, prev);
	if (r != CUDA_SUCCESS)
		tap_bail("cuStreamCreate");
	return cs;
}

void gpu_fixture_stream_destroy(struct p2pio_ctx *ctx, const struct p2pio_cuda *cu,
				CUstream cs)
{
	CUcontext prev;

	prev = p2pio_ctx_enter(ctx);
	cu->StreamSynchronize(cs);
	cu->StreamDestroy(cs);
	p2pio_ctx_leave(ctx, prev);
}

static void tmpfile_unlink(void)
{
	unlink(tmpfile_path);
}

const char *gpu_fixture_tmpfile(const char *stem)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int fd;

	if (tmpfile_path[0])
		tap_bail("gpu_fixture_tmpfile() twice: one scratch file per test");
	snprintf(tmpfile_path, sizeof(tmpfile_path), "%s/%s-XXXXXX", dir, stem);
	fd = mkstemp(tmpfile_path);
	if (fd < 0)
		tap_bail("mkstemp");
	close(fd);
	atexit(tmpfile_unlink);
	return tmpfile_path;
}
