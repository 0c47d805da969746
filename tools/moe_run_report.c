// SPDX-License-Identifier: MIT
/*
 * moe_run_report.c - the results of `p2pio-moe run`: a line per subject in text (the
 * model, budget, path, engine, decode, hits, bytes, stall, memory, reads, batches,
 * waits, ceiling, bound, verification), or every number in one JSON object (--json), with
 * --miss-cost's batches in it (in text, moe_run_miss_cost_text() follows the report).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "cli.h"
#include "moe_run.h"

void moe_run_report(FILE *out, const struct run *r, const struct run_result *res,
		    const struct miss_cost *mc)
{
	unsigned int i;
	char h1[CLI_HUMAN_LEN], h2[CLI_HUMAN_LEN], h3[CLI_HUMAN_LEN];
	char what[64];

	if (r->o.json) {
		fprintf(out, "{\"model\":");
		cli_json_str(out, r->o.model);
		fprintf(out, ",\"trace\":");
		cli_json_str(out, r->o.trace);
		fprintf(out, ",\"threads\":%u,\"queue_depth\":%u", r->threads, r->queue_depth);
		fprintf(out, ",\"run_ahead\":%s", r->stream && r->o.run_ahead ? "true" : "false");
		fprintf(out, ",\"prefetch_next\":%s,\"accuracy\":", r->o.prefetch_next ? "true" : "false");
		cli_json_double(out, r->o.accuracy);
		fprintf(out, ",\"lookahead\":%u", r->o.lookahead);
		fprintf(out, ",\"prefetch_learned\":%s", r->o.prefetch_learned ? "true" : "false");
		fprintf(out, ",\"keep_wrong_hints\":%s", r->o.keep_wrong_hints ? "true" : "false");
		fprintf(out, ",\"misses_in_order\":%s", r->o.misses_in_order ? "true" : "false");
		fprintf(out, ",\"path\":\"%s\",\"policy\":\"%s\",\"prefetch_prev\":%s,"
			"\"budget\":%" PRIu64 ",\"dense_bytes\":%" PRIu64 ",\"expert_bytes\":%" PRIu64
			",\"capacity\":%" PRIu64 ",\"experts\":%" PRIu64 ",\"resident_fraction\":",
			p2pio_path_name(res->pi.path), r->o.policy ? r->o.policy : P2PIO_EXPERTS_DEFAULT_POLICY,
			r->o.prefetch_prev ? "true" : "false", r->info.budget, r->info.dense_bytes,
			r->info.expert_bytes, r->info.capacity, res->all);
		cli_json_double(out, (double)r->info.capacity / (double)res->all);
		fprintf(out, ",\"warmup_tokens\":%" PRIu64 ",\"tokens\":%" PRIu64 ",\"wall_s\":",
			res->warm, res->tokens);
		cli_json_double(out, (double)res->wall_ns * 1e-9);
		fprintf(out, ",\"tokens_per_s\":");
		cli_json_double(out, res->tps);
		fprintf(out, ",\"accesses\":%" PRIu64 ",\"hits\":%" PRIu64 ",\"misses\":%" PRIu64
			",\"late\":%" PRIu64 ",\"prefetches\":%" PRIu64 ",\"prefetch_used\":%" PRIu64
			",\"missed_layers\":%" PRIu64 ",\"hit_rate\":", res->st.accesses, res->st.hits, res->st.misses,
			res->st.late, res->st.prefetches, res->st.prefetch_used, res->st.missed_layers);
		cli_json_double(out, res->hit);
		fprintf(out, ",\"cancels\":%" PRIu64 ",\"cut_short\":%" PRIu64
			",\"hastened\":%" PRIu64, res->io.cancels, res->io.cut_short,
			res->io.hastened);
		fprintf(out, ",\"bytes_read\":%" PRIu64 ",\"missed_bytes_per_token\":", res->io.bytes);
		cli_json_double(out, res->missed);
		fprintf(out, ",\"stall_s\":");
		cli_json_double(out, (double)res->io.stall_ns * 1e-9);
		fprintf(out, ",\"host_wait_s\":");
		cli_json_double(out, (double)res->io.host_wait_ns * 1e-9);
		fprintf(out, ",\"ceiling_Bps\":");
		cli_json_double(out, res->ceiling);
		fprintf(out, ",\"ceiling_measured\":%s,\"ceiling_from\":",
			r->o.ceiling > 0 ? "false" : "true");
		cli_json_str(out, res->ceiling_why);
		fprintf(out, ",\"path_Bps\":");
		cli_json_double(out, res->path_rate);
		fprintf(out, ",\"path_Bps_by_depth\":{");
		for (i = 0; i < RUN_PATH_NDEPTHS; i++) {
			fprintf(out, "%s\"%u\":", i ? "," : "", run_path_depths[i]);
			cli_json_double(out, res->path_rates[i]);
		}
		fprintf(out, "}");
		fprintf(out, ",\"bound_tokens_per_s\":");
		cli_json_double(out, res->bound);
		fprintf(out, ",\"of_bound\":");
		cli_json_double(out, res->bound > 0 ? res->tps / res->bound : 0);
		fprintf(out, ",\"short_decode\":%s", res->short_decode ? "true" : "false");
		fprintf(out, ",\"reads_busy_s\":");
		cli_json_double(out, (double)res->io.busy_ns * 1e-9);
		fprintf(out, ",\"batches\":%" PRIu64 ",\"batch_loads\":", res->io.batches);
		cli_json_double(out, res->batch_loads);
		fprintf(out, ",\"batch_done_us\":");
		cli_json_double(out, res->batch_us);
		fprintf(out, ",\"batch_bytes_us\":");
		cli_json_double(out, res->batch_bytes_us);
		fprintf(out, ",\"wait_per_missed_layer_us\":");
		cli_json_double(out, res->wait_us);
		fprintf(out, ",\"verified_bytes\":%" PRIu64 ",\"mismatches\":%" PRIu64,
			res->vr.bytes, res->vr.mismatches);
		if (mc) {
			fprintf(out, ",\"miss_cost\":");
			moe_run_miss_cost_json(out, mc);
		}
		fprintf(out, "}\n");
	} else {
		fprintf(out, "model     %s: %u layers x %u experts (%u used), expert %s, dense %s\n",
			r->o.model, r->info.layers, r->info.experts, r->info.experts_used,
			cli_human_bytes(r->info.expert_data, h1), cli_human_bytes(r->info.dense_bytes, h2));
		fprintf(out, "budget    %s: dense + %" PRIu64 " experts = %.1f%% of the experts "
			"(%s each, rounded to the allocation granularity)\n",
			cli_human_bytes(r->info.budget, h1), r->info.capacity,
			100.0 * (double)r->info.capacity / (double)res->all,
			cli_human_bytes(r->info.expert_bytes, h3));
		fprintf(out, "path      %s (%s); policy %s%s", p2pio_path_name(res->pi.path), res->pi.why,
			r->o.policy ? r->o.policy : P2PIO_EXPERTS_DEFAULT_POLICY,
			r->o.prefetch_prev ? ", previous-token prefetch" : "");
		if (r->o.prefetch_learned)
			fprintf(out, ", learned next-layer prefetch");
		if (r->o.prefetch_next)
			fprintf(out, ", next-layer prefetch (the trace's, %u layer%s ahead, each "
				"guess right with probability %.2f)", r->o.lookahead,
				r->o.lookahead == 1 ? "" : "s", r->o.accuracy);
		fprintf(out, "\n");
		fprintf(out, "engine    %u threads%s%s; %u reads in flight%s%s\n", r->threads,
			r->o.threads ? " (given)" : " (the CPUs less two, within 4..16)",
			r->o.poll ? ", polling before they sleep" : "", r->queue_depth,
			r->o.queue_depth ? " (given)" : " (the library's)",
			r->o.urgent_alone ? "; misses read alone (no hint starts while one is)" : "");
		fprintf(out, "decode    %" PRIu64 " tokens after %" PRIu64 " of warm-up in %.3f s: "
			"%.2f tokens/s%s\n", res->tokens, res->warm, (double)res->wall_ns * 1e-9, res->tps,
			!r->stream ? "" : r->o.run_ahead ? " (run ahead: layers required before "
			"the stream reaches them)" : " (in step: each layer required once the "
			"stream is done with the layers before)");
		fprintf(out, "hits      %.1f%% (%" PRIu64 " of %" PRIu64 "; %" PRIu64 " late), %.2f "
			"misses/token in %.2f of %u layers, %" PRIu64 " prefetches (%" PRIu64
			" used, %" PRIu64 " withdrawn unread, %" PRIu64 " cut short, %" PRIu64
			" hastened)\n", 100 * res->hit,
			res->st.hits, res->st.accesses, res->st.late,
			res->tokens ? (double)res->st.misses / (double)res->tokens : 0,
			res->tokens ? (double)res->st.missed_layers / (double)res->tokens : 0, r->info.layers,
			res->st.prefetches, res->st.prefetch_used, res->io.cancels, res->io.cut_short,
			res->io.hastened);
		fprintf(out, "missed    %s per token (%s read)\n",
			cli_human_bytes((uint64_t)res->missed, h1), cli_human_bytes(res->io.bytes, h2));
		fprintf(out, "stall     %.3f s on the stream (%.3f ms/token), host waited %.3f s\n",
			(double)res->io.stall_ns * 1e-9,
			res->tokens ? (double)res->io.stall_ns * 1e-6 / (double)res->tokens : 0,
			(double)res->io.host_wait_ns * 1e-9);
		/* Where the caller's thread spends its time on memory, per call. */
		fprintf(out, "memory    %" PRIu64 " maps %.1f us, unmaps in require %.1f us, %" PRIu64
			" after the batch %.1f us (%" PRIu64 " forced)\n", res->io.maps,
			res->io.maps ? (double)res->io.map_ns * 1e-3 / (double)res->io.maps : 0,
			res->io.unmaps ? (double)res->io.unmap_ns * 1e-3 / (double)res->io.unmaps : 0,
			res->io.late_unmaps,
			res->io.late_unmaps ? (double)res->io.late_unmap_ns * 1e-3 / (double)res->io.late_unmaps : 0,
			res->io.forced_unmaps);
		/* Loads in flight: where the decode loses to the bound, idle reads or slow ones. */
		if (res->io.read_pieces)
			snprintf(what, sizeof(what), "about %" PRIu64 " per load", res->io.read_pieces);
		else
			snprintf(what, sizeof(what), "at most %s each",
				 cli_human_bytes(res->io.read_piece, h1));
		fprintf(out, "reads     %" PRIu64 " (%s): loads in flight %.1f%% of the decode, "
			"%.2f GB/s while any were\n", res->io.reads, what,
			res->wall_ns ? 100.0 * (double)res->io.busy_ns / (double)res->wall_ns : 0,
			res->io.busy_ns ? (double)res->io.bytes / (double)res->io.busy_ns : 0);
		if (res->io.batches)
			fprintf(out, "batches   %" PRIu64 " miss batches of %.2f loads: each done %.0f us "
				"after its require, its bytes / the ceiling %.0f us: %+.0f us over (%s)\n",
				res->io.batches, res->batch_loads, res->batch_us, res->batch_bytes_us,
				res->batch_us - res->batch_bytes_us,
				!r->stream ? "require waits for it" : r->o.run_ahead ?
				"run ahead: batches overlap and share the reads" :
				"in step: what each layer with a miss waits beyond its bytes");
		if (!isnan(res->wait_us))
			fprintf(out, "waits     %.2f of %u layers a token missed; %.0f us a token "
				"beyond its bytes / the ceiling: %.0f us per missed layer (replay "
				"--miss-overhead)\n", (double)res->st.missed_layers / (double)res->tokens,
				r->info.layers, res->beyond_us, res->wait_us);
		fprintf(out, "ceiling   %.2f GB/s (%s); the path's expert-sized reads, %d deep: "
			"%.2f GB/s\n", res->ceiling * 1e-9, res->ceiling_why, RUN_PATH_DEPTH, res->path_rate * 1e-9);
		fprintf(out, "depths    the path's expert-sized reads");
		for (i = 0; i < RUN_PATH_NDEPTHS; i++)
			fprintf(out, "%s %u deep %.2f GB/s", i ? "," : "", run_path_depths[i],
				res->path_rates[i] * 1e-9);
		fprintf(out, " (%.2f-%.2f of the ceiling)\n", res->path_rates[0] / res->ceiling,
			res->path_rates[RUN_PATH_NDEPTHS - 1] / res->ceiling);
		if (res->bound > 0)
			fprintf(out, "bound     %.2f tokens/s = ceiling / missed bytes per token; "
				"achieved %.2f of it%s\n", res->bound, res->tps / res->bound,
				res->short_decode ? " (a short decode: its first reads weigh in; "
					       "decode more tokens for a steady ratio)" : "");
		else
			fprintf(out, "bound     none: no misses in the measurement\n");
		if (!r->o.no_verify)
			fprintf(out, "verify    %s checked by %s, %" PRIu64 " bytes wrong\n",
				cli_human_bytes(res->vr.bytes, h1), r->stream ? "GPU kernels" : "the CPU",
				res->vr.mismatches);
	}
}
