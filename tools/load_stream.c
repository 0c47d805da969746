// SPDX-License-Identifier: MIT
/*
 * load_stream.c - p2pio-load --stream: the layers streamed through a budget for a number
 * of passes while a kernel per layer reads every byte (and computes for as long as asked),
 * against the bound that the honest ceiling sets on the bytes of a pass.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "load.h"

/* ---- streaming ------------------------------------------------------------------------ */

/*
 * The ceiling streaming is held to, the honest one of issue 11 (bench_ceiling(), and
 * bench_ceiling_again() after the passes), on the model file in the stream's cache state.
 * Each shape reads the whole file, for at most 1 s: on the H200 a 2 GiB read per shape put
 * the ceiling 9 % under the same shapes over the whole file (thread start and the last
 * reads weigh more in a short read), and the stream above it.
 */
static void ceiling_params(struct load_run *r, struct bench_ceiling_params *cp)
{
	*cp = (struct bench_ceiling_params){
		.path = r->o.path,
		.file_size = r->info.file_size,
		.cold = r->o.cold,
		.cu = r->gpu ? &r->cu : NULL,
		.duration = 1,
	};
}

static void print_stream_json(const struct load_run *r, struct p2pio_streamer *s,
			      const struct p2pio_stream_stats *st, uint32_t measured, double wall,
			      double ceiling, double compute_s, const struct p2pio_verify_result *vr)
{
	const char *why = "";
	uint32_t prefetch = p2pio_streamer_prefetch(s, &why);
	double per_pass = measured ? (double)st->bytes / measured : 0;
	double bound = per_pass > 0 ? ceiling * 1e9 / per_pass : 0;

	printf("{\"mode\":\"stream\",\"model\":");
	cli_json_str(stdout, r->o.path);
	printf(",\"target\":\"%s\",\"requested\":\"%s\",\"path\":\"%s\",\"cold\":%s,"
	       "\"slots\":%u,\"prefetch\":%u,\"prefetch_why\":",
	       r->gpu ? "gpu" : "host", p2pio_path_name(r->o.io_path), p2pio_path_name(r->pi.path),
	       r->o.cold ? "true" : "false", p2pio_streamer_slots(s), prefetch);
	cli_json_str(stdout, why);
	printf(",\"passes\":%u", measured);
	printf(",\"seconds\":");
	cli_json_double(stdout, wall);
	printf(",\"passes_per_s\":");
	cli_json_double(stdout, wall > 0 ? measured / wall : 0);
	printf(",\"bytes_per_pass\":");
	cli_json_double(stdout, per_pass);
	printf(",\"ceiling_gbps\":");
	cli_json_double(stdout, ceiling);
	printf(",\"ceiling_from\":");
	cli_json_str(stdout, r->o.ceiling_gbps > 0 ? "given" : r->ceiling_why);
	printf(",\"bound_passes_per_s\":");
	cli_json_double(stdout, bound);
	printf(",\"of_bound\":");
	cli_json_double(stdout, bound > 0 && wall > 0 ? measured / wall / bound : 0);
	printf(",\"stall_s\":");
	cli_json_double(stdout, (double)st->stall_ns * 1e-9);
	printf(",\"stall_fraction\":");
	cli_json_double(stdout, wall > 0 ? (double)st->stall_ns * 1e-9 / wall : 0);
	printf(",\"compute_s\":");
	cli_json_double(stdout, compute_s);
	printf(",\"acquires\":%" PRIu64 ",\"loads\":%" PRIu64 ",\"hits\":%" PRIu64
	       ",\"reuses\":%" PRIu64 ",\"wasted\":%" PRIu64 ",\"verified\":%s,"
	       "\"mismatches\":%" PRIu64 "}\n", st->acquires, st->loads, st->hits, st->reuses,
	       st->wasted, r->o.verify ? "true" : "false", vr->mismatches);
}

static void verify_add(struct p2pio_verify_result *acc, const struct p2pio_verify_result *vr)
{
	acc->bytes += vr->bytes;
	acc->mismatches += vr->mismatches;
	acc->checksum += vr->checksum;
	if (vr->first_mismatch < acc->first_mismatch)
		acc->first_mismatch = vr->first_mismatch;
}

/* The resident (non-layer) tensors load once, when streaming starts: check them once. */
static int verify_resident(struct load_run *r, struct p2pio_streamer *s,
			   struct p2pio_verify_result *acc)
{
	struct p2pio_model_tensor *t, mt;
	struct p2pio_verify_result vr;
	uint32_t i, n = 0;
	int ret = 0;

	if (!r->o.verify)
		return 0;
	t = calloc(r->info.tensors ? r->info.tensors : 1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (i = 0; i < r->info.tensors && !ret; i++) {
		p2pio_model_tensor_at(r->m, i, &mt);
		if (mt.layer < 0)
			ret = p2pio_streamer_tensor(s, mt.name, &t[n++]);
	}
	if (!ret && n)
		ret = load_verify_tensors(r, t, n, &vr);
	if (!ret && n)
		verify_add(acc, &vr);
	free(t);
	return ret;
}

int load_run_stream(struct load_run *r)
{
	struct p2pio_streamer_opts so = { .budget = r->o.budget, .slots = r->o.slots,
					   .prefetch = r->o.prefetch };
	struct p2pio_verify_result vr, acc = { .first_mismatch = P2PIO_NO_OFFSET };
	struct p2pio_stream_stats st, *per = NULL;
	struct p2pio_error err = { 0 };
	struct p2pio_streamer *s = NULL;
	char h[CLI_HUMAN_LEN], h2[CLI_HUMAN_LEN], tn[32];
	double ceiling = r->o.ceiling_gbps, wall = 0, compute_s = 0, t0;
	struct bench_ceiling_best best = { 0 };
	struct bench_ceiling_params cp;
	uint32_t p, l, slots, measured = 0;
	int ret, rc = CLI_EXIT_ERROR;

	if (r->o.no_prefetch)
		so.flags |= P2PIO_STREAM_NO_PREFETCH;
	if (r->o.lru)
		so.flags |= P2PIO_STREAM_LRU;
	ceiling_params(r, &cp);
	if (ceiling <= 0) {
		ret = bench_ceiling(&cp, &ceiling, r->ceiling_why, sizeof(r->ceiling_why), &best);
		if (ret) {
			cli_err("measuring the ceiling: %s", p2pio_strerror(ret));
			return CLI_EXIT_ERROR;
		}
	}
	if (r->o.cold)
		cli_drop_cache(r->o.path);
	ret = p2pio_streamer_open(r->m, &so, &s, &err);
	if (ret) {
		cli_err_p2pio("streaming", ret, &err);
		return CLI_EXIT_ERROR;
	}
	slots = p2pio_streamer_slots(s);
	per = calloc(r->info.layers, sizeof(*per));
	if (!per)
		goto out;
	ret = verify_resident(r, s, &acc);
	if (ret) {
		cli_err("checking the resident tensors: %s", p2pio_strerror(ret));
		goto out;
	}
	if (!r->o.json) {
		printf("model      %s: %u layers, %s per slot, %s resident\n", r->o.path,
		       r->info.layers, cli_human_bytes(r->info.slot_bytes, h),
		       cli_human_bytes(r->info.resident_bytes, h2));
		printf("target     %s, path %s (%s)\n", load_target_name(r, tn, sizeof(tn)),
		       p2pio_path_name(r->pi.path), r->pi.why);
		const char *why = "";
		uint32_t prefetch = p2pio_streamer_prefetch(s, &why);

		printf("stream     %u slots, prefetch %u (%s)%s, %u passes\n", slots, prefetch, why,
		       r->o.lru ? ", LRU" : "", r->o.passes);
		printf("ceiling    %.2f GB/s (%s)\n", ceiling,
		       r->o.ceiling_gbps > 0 ? "given" : r->ceiling_why);
	}
	for (p = 0; p < r->o.passes; p++) {
		struct p2pio_layer layer;
		double pass_compute = 0;

		if (r->o.cold && p)
			cli_drop_cache(r->o.path);
		t0 = load_now_s();
		for (l = 0; l < r->info.layers; l++) {
			uint64_t cns = (uint64_t)(r->o.compute_us * 1e3);

			ret = p2pio_streamer_acquire(s, l, r->stream, &layer);
			if (ret) {
				cli_err("acquire layer %u: %s", l, p2pio_strerror(ret));
				goto out;
			}
			if (r->o.compute_ratio > 0)
				cns += (uint64_t)(r->o.compute_ratio * (double)layer.bytes / ceiling);
			pass_compute += (double)cns * 1e-9;
			if (r->v) {
				ret = p2pio_verifier_check(r->v, layer.tensors,
							   r->o.verify ? layer.ntensors : 0,
							   r->stream, cns);
				if (ret) {
					cli_err("kernel for layer %u: %s", l, p2pio_strerror(ret));
					goto out;
				}
			}
			ret = p2pio_streamer_release(s, l, r->stream);
			if (ret) {
				cli_err("layer %u: %s", l, p2pio_strerror(ret));
				goto out;
			}
		}
		/* The end of a pass: wait for its kernels (as a token's logits would). */
		if (r->v) {
			ret = p2pio_verifier_result(r->v, &vr, true);
			if (ret)
				goto out;
			verify_add(&acc, &vr);
		} else if (r->stream) {
			r->cu.StreamSynchronize(r->stream);
		}
		/*
		 * And for the loads the window started meanwhile: the next pass's first layers
		 * load in this pass's time, not in the gap before the next (the cache drop).
		 */
		ret = p2pio_streamer_wait_prefetch(s);
		if (ret) {
			cli_err("waiting for the prefetch: %s", p2pio_strerror(ret));
			goto out;
		}
		if (!r->o.json && !r->o.quiet)
			printf("pass %-5u %.3f s%s\n", p + 1, load_now_s() - t0,
			       p == 0 && r->o.passes > 1 ? " (warm-up, not counted)" : "");
		if (p == 0 && r->o.passes > 1) {
			p2pio_streamer_reset_stats(s);
			continue;
		}
		wall += load_now_s() - t0;
		compute_s += pass_compute;
		measured++;
	}
	p2pio_streamer_stats(s, &st, per, r->info.layers);
	if (r->o.ceiling_gbps <= 0) {
		ret = bench_ceiling_again(&cp, &best, &ceiling, r->ceiling_why,
					  sizeof(r->ceiling_why));
		if (ret) {
			cli_err("measuring the ceiling again: %s", p2pio_strerror(ret));
			goto out;
		}
	}
	if (r->o.json) {
		print_stream_json(r, s, &st, measured, wall, ceiling, compute_s, &acc);
	} else {
		double per_pass = (double)st.bytes / measured;
		double bound = ceiling * 1e9 / per_pass;

		printf("result     %.3f passes/s, %s streamed per pass, %.2f GB/s effective\n",
		       measured / wall, cli_human_bytes((uint64_t)per_pass, h),
		       load_gbps(st.bytes, wall));
		printf("stall      %.3f s exposed = %.1f%% of wall time (compute %.1f%% of wall)\n",
		       (double)st.stall_ns * 1e-9, 100.0 * (double)st.stall_ns * 1e-9 / wall,
		       100.0 * compute_s / wall);
		printf("bound      %.3f passes/s (bytes per pass / ceiling): %.2f of the bound\n",
		       bound, measured / wall / bound);
		printf("slots      %" PRIu64 " loads, %" PRIu64 " hits, %" PRIu64 " reuses, %" PRIu64
		       " wasted prefetches, host waited %.3f s\n", st.loads, st.hits, st.reuses,
		       st.wasted, (double)st.host_wait_ns * 1e-9);
		if (r->o.per_layer)
			for (l = 0; l < r->info.layers; l++)
				printf("layer %-4u %s, %" PRIu64 " loads, %" PRIu64 " hits, stall %.3f ms, "
				       "I/O %.3f ms\n", l, cli_human_bytes(per[l].bytes, h),
				       per[l].loads, per[l].hits, (double)per[l].stall_ns * 1e-6,
				       (double)per[l].io_ns * 1e-6 / (per[l].loads ? per[l].loads : 1));
		load_print_verify(r, &acc);
	}
	rc = acc.mismatches ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
	free(per);
	p2pio_streamer_close(s);
	return rc;
}

