/* SPDX-License-Identifier: MIT */
/*
 * gpu_fixture.h - what the GPU tests share: the CUDA driver and a library context on the
 * GPU, or a TAP skip of the whole program where there is none (so that every GPU test
 * builds and passes, skipped, on a machine without one, as CI's is); streams in that
 * context; and a scratch file for a test's model.
 */
#ifndef P2PIO_GPU_FIXTURE_H
#define P2PIO_GPU_FIXTURE_H

#include "engine/engine.h"

/*
 * The CUDA driver's entry points, as the library loaded them. Where libcuda or a GPU is
 * missing, prints "1..0 # SKIP <the library's reason>" and exits 0.
 */
const struct p2pio_cuda *gpu_fixture_cuda(void);

/*
 * gpu_fixture_cuda() into *@cu, then a context with p2pio_ctx_opts_init()'s defaults (GPU
 * 0 where CUDA loads), as an application's first context would be. Where the defaults pick
 * host memory or the context cannot be made, skips the whole program ("no GPU context"),
 * exit 0. The caller destroys the context.
 */
struct p2pio_ctx *gpu_fixture_ctx(const struct p2pio_cuda **cu);
/* The same with the context flags @flags (P2PIO_CTX_*). */
struct p2pio_ctx *gpu_fixture_ctx_flags(const struct p2pio_cuda **cu, uint32_t flags);

/*
 * A non-blocking stream in @ctx's CUDA context, for the work a test queues behind the
 * library's reads (the way an inference engine's stream would); bails if there is none.
 */
CUstream gpu_fixture_stream(struct p2pio_ctx *ctx, const struct p2pio_cuda *cu);

/*
 * Wait for @cs's work, then destroy it, in @ctx's context: before the test frees what that
 * work reads.
 */
void gpu_fixture_stream_destroy(struct p2pio_ctx *ctx, const struct p2pio_cuda *cu,
				CUstream cs);

/*
 * An empty file $TMPDIR/@stem-XXXXXX (/tmp without TMPDIR, so that a run can put the
 * model on the storage it measures) for the test's model, removed at exit however the
 * test ends; bails if it cannot be made. One per test program.
 */
const char *gpu_fixture_tmpfile(const char *stem);

#endif /* P2PIO_GPU_FIXTURE_H */
