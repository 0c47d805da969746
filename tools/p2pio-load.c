// SPDX-License-Identifier: MIT
/*
 * p2pio-load - load a GGUF model into the GPU (or host memory), or stream its layers
 * through a memory budget while a kernel per layer reads every weight byte; report time,
 * throughput, path, CPU time, exposed stall and the bound that bandwidth sets.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "p2pio.h"
#include "bench.h"
#include "cli.h"
#include "load.h"

#define CU_STREAM_NON_BLOCKING_FLAG 0x1

static int setup(struct load_run *r)
{
	struct p2pio_error err = { 0 };
	struct p2pio_ctx_opts co;
	int ret;

	p2pio_ctx_opts_init(&co);
	if (r->o.device >= -1)
		co.device = r->o.device;
	co.path = r->o.io_path;
	if (r->o.threads)
		co.threads = r->o.threads;
	if (r->o.queue_depth)
		co.queue_depth = r->o.queue_depth;
	if (r->o.chunk)
		co.chunk_size = r->o.chunk;
	if (r->o.staging)
		co.staging_bytes = r->o.staging;
	if (r->o.bounce_async)
		co.flags |= P2PIO_CTX_BOUNCE_ASYNC;
	ret = p2pio_ctx_create(&co, &r->ctx, &err);
	if (ret) {
		cli_err_p2pio("context", ret, &err);
		return ret;
	}
	r->gpu = p2pio_ctx_device(r->ctx) != P2PIO_DEVICE_HOST;
	if (r->gpu) {
		if (!bench_cuda_init(&r->cu, p2pio_ctx_device(r->ctx))) {
			cli_err("CUDA: %s", r->cu.why);
			return -ENODEV;
		}
		/* A non-blocking stream: no implicit order with the engine's copy streams. */
		if (r->cu.StreamCreate(&r->stream, CU_STREAM_NON_BLOCKING_FLAG)) {
			cli_err("cuStreamCreate failed");
			return -ENODEV;
		}
	}
	/* AUTO chooses the file's path at open, by what the page cache holds then. */
	if (r->o.cold)
		cli_drop_cache(r->o.path);
	r->open_s = load_now_s();
	ret = p2pio_model_open(r->ctx, r->o.path, NULL, &r->m, &err);
	r->open_s = load_now_s() - r->open_s;
	if (ret) {
		cli_err_p2pio(r->o.path, ret, &err);
		return ret;
	}
	p2pio_model_info(r->m, &r->info);
	memset(&r->pi, 0, sizeof(r->pi));
	r->pi.size = sizeof(r->pi);
	p2pio_path_info(p2pio_model_file(r->m), &r->pi);
	if (!r->info.has_seed && r->o.verify) {
		r->verify_note = "no p2pio.pattern.seed in the model: not verified";
		r->o.verify = false;
	}
	/* The verifier also runs the compute kernel: needed even when not verifying. */
	if (r->o.verify || r->o.compute_us > 0 || r->o.compute_ratio > 0) {
		ret = p2pio_verifier_open(r->ctx, r->info.pattern_seed, &r->v, &err);
		if (ret) {
			if (r->o.compute_us > 0 || r->o.compute_ratio > 0) {
				cli_err_p2pio("verifier", ret, &err);
				return ret;
			}
			r->verify_note = strdup(err.msg);
			r->o.verify = false;
		}
	}
	return 0;
}

static void teardown(struct load_run *r)
{
	p2pio_verifier_close(r->v);
	p2pio_model_close(r->m);
	if (r->stream)
		r->cu.StreamDestroy(r->stream);
	p2pio_ctx_destroy(r->ctx);
}

const char *load_target_name(const struct load_run *r, char *buf, size_t len)
{
	if (r->gpu)
		snprintf(buf, len, "GPU %d", p2pio_ctx_device(r->ctx));
	else
		snprintf(buf, len, "host memory");
	return buf;
}

/* ---- verification of a whole model -------------------------------------------------- */

int load_verify_tensors(struct load_run *r, const struct p2pio_model_tensor *t, uint32_t n,
			  struct p2pio_verify_result *vr)
{
	int ret;

	memset(vr, 0, sizeof(*vr));
	if (!r->o.verify)
		return 0;
	ret = p2pio_verifier_check(r->v, t, n, r->stream, 0);
	if (!ret)
		ret = p2pio_verifier_result(r->v, vr, true);
	return ret;
}

struct p2pio_model_tensor *load_all_tensors(struct load_run *r)
{
	struct p2pio_model_tensor *t = calloc(r->info.tensors ? r->info.tensors : 1, sizeof(*t));
	uint32_t i;

	for (i = 0; t && i < r->info.tensors; i++)
		p2pio_model_tensor_at(r->m, i, &t[i]);
	return t;
}

void load_print_verify(const struct load_run *r, const struct p2pio_verify_result *vr)
{
	char h[CLI_HUMAN_LEN];

	if (!r->o.verify) {
		printf("verify     skipped%s%s\n", r->verify_note ? ": " : "",
		       r->verify_note ? r->verify_note : "");
		return;
	}
	if (vr->mismatches)
		printf("verify     FAILED: %" PRIu64 " bytes differ, the first at file offset %" PRIu64
		       "\n", vr->mismatches, vr->first_mismatch);
	else
		printf("verify     %s checked against the pattern: OK (checksum %016" PRIx64 ")\n",
		       cli_human_bytes(vr->bytes, h), vr->checksum);
}

/* The engine options that ran (the defaults unless the command line set them). */
void load_print_engine_json(const struct load_run *r)
{
	struct p2pio_ctx_opts co = { .size = sizeof(co) };

	if (p2pio_ctx_get_opts(r->ctx, &co))
		return;
	printf(",\"engine\":{\"threads\":%u,\"posix_threads\":%u,\"queue_depth\":%u,"
	       "\"file_max_in_flight\":%u,\"chunk\":%" PRIu64 ",\"staging\":%" PRIu64
	       ",\"bounce_async\":%s}", co.threads, co.posix_threads, co.queue_depth,
	       r->pi.max_in_flight, (uint64_t)co.chunk_size, (uint64_t)co.staging_bytes,
	       co.flags & P2PIO_CTX_BOUNCE_ASYNC ? "true" : "false");
	printf(",\"why\":");
	cli_json_str(stdout, r->pi.why);
}

int main(int argc, char **argv)
{
	struct load_run r = { 0 };
	uint32_t i;
	int rc;

	cli_init(argv[0]);
	rc = load_parse(argc, argv, &r.o);
	if (rc)
		return rc;
	if (setup(&r)) {
		teardown(&r);
		return CLI_EXIT_ERROR;
	}
	if (r.o.mmap_baseline)
		rc = load_run_mmap(&r);
	else if (r.o.stream)
		rc = load_run_stream(&r);
	else
		for (i = 0; i < r.o.repeat && rc == CLI_EXIT_OK; i++)
			rc = load_run_whole(&r, i);
	teardown(&r);
	return rc;
}
