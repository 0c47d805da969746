// SPDX-License-Identifier: MIT
/*
 * moe_run_miss.c - what a miss costs in `p2pio-moe run`: the rate of the path's own
 * expert-sized reads, and (--miss-cost) cold batches of 1, 2, 4 and 8 misses timed from
 * require to the stream's release, beside their bytes / the ceiling, the fastest plain
 * reads of the same ranges and, into a GPU, those reads each copied as it lands.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "moe_run.h"

/*
 * What the cache's path reads at one good shape, for comparison with the ceiling (it is
 * not one: the decode read faster than this): expert-sized reads of the model (its expert
 * region, sequentially, as many as RUN_PATH_BYTES allow), @depth in flight, on the same
 * context and path, into target memory.
 */
int moe_run_measure_path(struct run *r, unsigned int depth, double *bps)
{
	uint64_t len = r->info.expert_data, start = r->minfo.data_offset, end = r->minfo.file_size;
	uint64_t off, total = 0, t0, ring = (uint64_t)depth * len;
	enum p2pio_mem mem = p2pio_ctx_device(r->ctx) == P2PIO_DEVICE_HOST ? P2PIO_MEM_HOST
									  : P2PIO_MEM_CUDA;
	struct p2pio_cqe cqe[RUN_PATH_DEPTH];
	struct p2pio_queue *q = NULL;
	struct p2pio_buf *buf = NULL;
	unsigned int inflight = 0, slot = 0;
	int ret, n, i;

	if (!len || !depth || depth > RUN_PATH_DEPTH)
		return -EINVAL;
	if (end - start > RUN_PATH_BYTES)
		end = start + RUN_PATH_BYTES;
	ret = p2pio_buf_alloc(r->ctx, mem, ring, &buf, NULL);
	ret = ret ?: p2pio_queue_create(r->ctx, &q);
	if (ret)
		goto out;
	if (!r->o.keep_cache)
		cli_drop_cache(r->o.model);
	t0 = run_now_ns();
	for (off = start; (off + len <= end || inflight) && !ret;) {
		while (off + len <= end && inflight < depth) {
			struct p2pio_req req = {
				.file = p2pio_model_file(r->m),
				.file_offset = off,
				.length = len,
				.buf = buf,
				.buf_offset = (uint64_t)(slot++ % depth) * len,
			};

			n = p2pio_submit(q, &req, 1);
			if (n < 0) {
				ret = n;
				break;
			}
			inflight++;
			off += len;
		}
		if (!inflight)
			break;
		n = p2pio_complete(q, cqe, RUN_PATH_DEPTH, 1, -1);
		if (n < 0) {
			ret = n;
			break;
		}
		for (i = 0; i < n; i++) {
			inflight--;
			if (cqe[i].res < 0)
				ret = cqe[i].res;
			total += cqe[i].bytes;
		}
	}
	*bps = (double)total / ((double)(run_now_ns() - t0) * 1e-9);
out:
	p2pio_queue_destroy(q);
	p2pio_buf_free(buf);
	return ret;
}

/* The file ranges of @k experts' slices: what a batch of their misses reads. */
static size_t batch_ranges(struct run *r, uint32_t layer, const uint32_t *ids, uint32_t k,
			   struct bench_range *out, size_t max)
{
	struct p2pio_expert_slice sl[RUN_MAX_SLICES];
	size_t n = 0;
	uint32_t i;
	int ns, j;

	for (i = 0; i < k; i++) {
		ns = p2pio_experts_slices(r->x, layer, ids[i], sl, RUN_MAX_SLICES);
		for (j = 0; j < ns && j < RUN_MAX_SLICES && n < max; j++)
			out[n++] = (struct bench_range){ sl[j].file_offset, sl[j].size };
	}
	return n;
}

/* "16 threads x 512K", "1 thread x whole ranges": the floor's shape. */
static void floor_shape(const struct bench_burst *fl, char *buf, size_t len)
{
	char piece[32] = "whole ranges";

	if (fl->piece)
		bench_size_str(fl->piece, piece, sizeof(piece));
	snprintf(buf, len, "%u thread%s x %s", fl->threads, fl->threads == 1 ? "" : "s", piece);
}

/* "  floor shape k=1: 16 threads x 512K (O_DIRECT; ...)": the best shape of a floor. */
static void shape_line(FILE *out, const char *what, uint32_t k, const struct bench_burst *fl,
		       int err)
{
	char shape[64];

	if (err) {
		fprintf(out, "  %s shape k=%u: none (%s)\n", what, k, fl->note);
		return;
	}
	floor_shape(fl, shape, sizeof(shape));
	fprintf(out, "  %s shape k=%u: %s (%s%s; %u run%s, %.2f MiB; the best of %d tries at "
		"each of %u shape%s)\n", what, k, shape, fl->buffered ? fl->note : "O_DIRECT",
		fl->gpu ? ", each read copied on its thread's stream" : "", fl->runs,
		fl->runs == 1 ? "" : "s", (double)fl->bytes / 1048576.0, BENCH_BURST_REPS,
		fl->shapes, fl->shapes == 1 ? "" : "s");
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The median of @n sorted times in ns, in us. */
static double median_us(const uint64_t *v, uint32_t n)
{
	return (n % 2 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2) * 1e-3;
}

/*
 * The next @k experts of a walk through every expert in order, layer by layer (a layer's
 * last experts are skipped where fewer than @k remain).
 */
static void walk_next(const struct run *r, uint32_t *layer, uint32_t *next, uint32_t k,
		      uint32_t *ids)
{
	uint32_t i;

	if (*next + k > r->info.experts) {
		*next = 0;
		*layer = (*layer + 1) % r->info.layers;
	}
	for (i = 0; i < k; i++)
		ids[i] = (*next)++;
}

/*
 * A cache of its own for the batches: the decode's cache closed, one opened with the same
 * budget, LRU and no prefetch, and filled by the walk, so that every batch of the walk
 * evicts experts and finds none of its own resident as long as the walk is longer than the
 * cache holds. The decode's cache (LRFU by default) kept its hot experts through the walk,
 * and a batch of 4 or 8 of moe-tiny's 8 experts per layer was never wholly cold (no rows
 * for k=4 and 8 in the H200's run 8).
 */
static int miss_cache(struct run *r, uint32_t *layer, uint32_t *next)
{
	uint32_t ids[8], k, held = 0;
	int ret;

	p2pio_experts_close(r->x);
	r->x = NULL;
	ret = moe_run_cache_open(r, r->info.budget, "lru", 0);
	if (ret)
		return ret;
	while (held < r->info.capacity) {
		k = r->info.capacity - held < 8 ? (uint32_t)(r->info.capacity - held) : 8;
		if (k > r->info.experts)
			k = r->info.experts;
		walk_next(r, layer, next, k, ids);
		ret = p2pio_experts_require(r->x, *layer, ids, k, r->stream, (uint64_t[8]){ 0 });
		if (ret)
			return ret;
		p2pio_experts_release(r->x, *layer, ids, k, r->stream);
		moe_run_stream_sync(r);
		held += k;
	}
	return 0;
}

/*
 * Batches of @k cold misses: time until the stream has them, against bytes / ceiling, and
 * where it goes (means per batch, from the start of require): every read submitted
 * (admission, unmapping victims, backing with memory: "map" and "unmap"; on a GPU "map"
 * also counts the homes mapped after the reads were submitted, while they run), the first
 * read's bytes in place, the last load complete (its completion word stored: on BOUNCE the last
 * copy is done), the stream released (require, then the stream synchronised); and, off
 * that path, the victims' deferred unmapping at release ("late"). Each batch's ranges
 * leave the page cache first (unless --keep-cache), so that a buffered path's misses are
 * cold too.
 *
 * Then the floor (issue 12's reference for the 150 us a batch may cost over its bytes):
 * the fastest plain reads of the last wholly cold batch's very ranges, in the same cache
 * state (bench_burst_floor()). bytes / the steady ceiling is no fair reference for a
 * burst of a few MB, which cannot reach steady bandwidth even with plain O_DIRECT.
 * Into a GPU also "+copy": the same sweep with each read copied into the GPU as it lands
 * (on its thread's own stream), what a plain read-then-copy loop takes at its best shape.
 * A peer, not a floor: on the H200 machine it took 0.3-0.4 ms more than the reads alone
 * for one 12 MiB expert (reads and copies share the host's memory), and the cache beat
 * it for batches of 4 and 8 (moe.md, "Eighth round").
 *
 * This measures one row (@row->k set); moe_run_miss_cost_text() and _json() say them.
 */
static void miss_row(struct run *r, double ceiling, int fd, uint32_t *layer, uint32_t *next,
		     struct miss_row *row)
{
	struct p2pio_experts_io a = { .size = sizeof(a) }, b = { .size = sizeof(b) };
	struct bench_range batch[8 * RUN_MAX_SLICES], cold[8 * RUN_MAX_SLICES];
	uint64_t t0, dt, ns, bytes, reads, submit, first, last, map, unmap, late, taken, landed;
	uint32_t ids[8], k = row->k, tries, done, warm;
	size_t nbatch, ncold;
	double n;

	ns = bytes = reads = submit = first = last = map = unmap = late = taken = landed = 0;
	ncold = 0;
	/*
	 * Ten wholly cold batches, at most thirty tries: a batch of which an expert was
	 * still resident (a hit: a walk no longer than the cache) is timed but not counted, as its
	 * time is not a cold batch's (it used to dilute every mean by its share).
	 */
	for (tries = 0, done = 0, warm = 0; done < MISS_BATCHES && tries < 3 * MISS_BATCHES;
	     tries++) {
		/* Walk the experts in order: each batch is ones not used for longest. */
		walk_next(r, layer, next, k, ids);
		nbatch = batch_ranges(r, *layer, ids, k, batch, sizeof(batch) / sizeof(batch[0]));
		if (!r->o.keep_cache)
			bench_evict_ranges(fd, batch, nbatch);
		p2pio_experts_stats(r->x, NULL, &a, false);
		t0 = run_now_ns();
		if (p2pio_experts_require(r->x, *layer, ids, k, r->stream, (uint64_t[8]){ 0 }))
			continue;
		moe_run_stream_sync(r);
		dt = run_now_ns() - t0;
		p2pio_experts_release(r->x, *layer, ids, k, r->stream);
		moe_run_stream_sync(r);
		p2pio_experts_stats(r->x, NULL, &b, false);
		if ((b.loads - b.prefetches) - (a.loads - a.prefetches) != k ||
		    b.batches - a.batches != 1) {
			warm++;
			continue;
		}
		/* All k loaded: the floor reads what this batch read. */
		memcpy(cold, batch, nbatch * sizeof(batch[0]));
		ncold = nbatch;
		row->rel[done++] = dt;
		ns += dt;
		bytes += b.bytes - a.bytes;
		reads += b.reads - a.reads;
		submit += b.batch_submit_ns - a.batch_submit_ns;
		first += b.batch_first_ns - a.batch_first_ns;
		last += b.batch_done_ns - a.batch_done_ns;
		map += b.map_ns - a.map_ns;
		unmap += b.unmap_ns - a.unmap_ns;
		late += b.late_unmap_ns - a.late_unmap_ns;
		taken += b.batch_taken_ns - a.batch_taken_ns;
		landed += b.batch_landed_ns - a.batch_landed_ns;
	}
	row->tries = tries;
	row->done = done;
	row->warm = warm;
	if (!done)
		return;
	row->cfl_err = -ENODEV;
	if (!ncold) {
		row->fl_err = -ENODATA;
		snprintf(row->fl.note, sizeof(row->fl.note), "no batch loaded all %u", k);
	} else {
		struct bench_burst_params bp = {
			.fd = fd,
			.ranges = cold,
			.nr_ranges = ncold,
			.cold = !r->o.keep_cache,
		};

		row->fl_err = bench_burst_floor(&bp, &row->fl);
		if (r->stream) {
			bp.cu = &r->cu;
			row->cfl_err = bench_burst_floor(&bp, &row->cfl);
		}
	}
	n = (double)done;
	row->mib = (double)bytes / n / 1048576.0;
	row->reads = (double)reads / n;
	row->submit_us = (double)submit / n * 1e-3;
	row->map_us = (double)map / n * 1e-3;
	row->unmap_us = (double)unmap / n * 1e-3;
	row->first_us = (double)first / n * 1e-3;
	row->last_us = (double)last / n * 1e-3;
	row->released_us = (double)ns / n * 1e-3;
	row->bytes_us = (double)bytes / n / ceiling * 1e6;
	row->late_us = (double)late / n * 1e-3;
	/* NAN: the path does not say (both 0). */
	row->taken_us = taken && landed ? (double)taken / n * 1e-3 : NAN;
	row->landed_us = taken && landed ? (double)landed / n * 1e-3 : NAN;
	qsort(row->rel, done, sizeof(row->rel[0]), cmp_u64);
}

int moe_run_miss_cost(struct run *r, double ceiling, struct miss_cost *mc)
{
	static const uint32_t ks[MISS_KS] = { 1, 2, 4, 8 };
	struct p2pio_experts_io a = { .size = sizeof(a) };
	uint32_t layer = 0, next = 0, k;
	size_t ki;
	/* The model's own descriptor: the file the cache reads, whatever its path names now. */
	int fd = p2pio_gguf_fd(p2pio_model_gguf(r->m));

	memset(mc, 0, sizeof(*mc));
	mc->ceiling = ceiling;
	mc->err = miss_cache(r, &layer, &next);
	if (mc->err)
		return mc->err;
	mc->capacity = r->info.capacity;
	mc->all = (uint64_t)r->info.layers * r->info.experts;
	p2pio_experts_stats(r->x, NULL, &a, false);
	mc->read_piece = a.read_piece;
	for (ki = 0; ki < MISS_KS; ki++) {
		struct miss_row *row = &mc->rows[mc->nr_rows++];

		row->k = k = ks[ki];
		if (k > r->info.experts || k > r->info.capacity) {
			/* No more rows: a larger k does not fit either. */
			row->too_many = true;
			row->limit = k > r->info.experts ? r->info.experts : r->info.capacity;
			row->of_layer = k > r->info.experts;
			break;
		}
		miss_row(r, ceiling, fd, &layer, &next, row);
	}
	return 0;
}

static void miss_row_text(FILE *out, const struct miss_cost *mc, const struct miss_row *row)
{
	if (row->too_many) {
		fprintf(out, "  %-3u none: more than the %" PRIu64 " experts %s\n", row->k,
			row->limit, row->of_layer ? "of a layer" : "the cache holds");
		return;
	}
	if (!row->done) {
		fprintf(out, "  %-3u none: no batch of %u tries was wholly cold (the cache "
			"holds %" PRIu64 " of %" PRIu64 " experts)\n", row->k, row->tries,
			mc->capacity, mc->all);
		return;
	}
	fprintf(out, "  %-3u %8.2f %6.1f %8.1f %7.1f %7.1f %8.1f %8.1f %9.1f %9.1f %+9.1f %7.1f",
		row->k, row->mib, row->reads, row->submit_us, row->map_us, row->unmap_us,
		row->first_us, row->last_us, row->released_us, row->bytes_us,
		row->released_us - row->bytes_us, row->late_us);
	if (row->fl_err)
		fprintf(out, " %8s %10s", "-", "-");
	else
		fprintf(out, " %8.1f %+10.1f", row->fl.seconds * 1e6,
			row->released_us - row->fl.seconds * 1e6);
	if (!isnan(row->taken_us))
		fprintf(out, " %8.1f %8.1f", row->taken_us, row->landed_us);
	else
		fprintf(out, " %8s %8s", "-", "-");
	if (row->cfl_err)
		fprintf(out, " %8s %10s\n", "-", "-");
	else
		fprintf(out, " %8.1f %+10.1f\n", row->cfl.seconds * 1e6,
			row->released_us - row->cfl.seconds * 1e6);
	if (row->warm)
		fprintf(out, "      (%u of %u batches not wholly cold, left out of the means)\n",
			row->warm, row->warm + row->done);
}

void moe_run_miss_cost_text(FILE *out, const struct run *r, const struct miss_cost *mc)
{
	size_t i;

	fprintf(out, "miss cost (ceiling %.2f GB/s):\n", mc->ceiling * 1e-9);
	if (mc->err) {
		fprintf(out, "  none: the cache for the batches: %s\n", p2pio_strerror(mc->err));
		return;
	}
	fprintf(out, "  a cache of its own: %" PRIu64 " of %" PRIu64 " experts, LRU, filled by "
		"walking the experts in order; each batch the next k of the walk\n",
		mc->capacity, mc->all);
	fprintf(out, "  reads of %.0f KiB; times in us per batch, from the start of require:\n",
		(double)mc->read_piece / 1024.0);
	fprintf(out, "  floor: the fastest plain reads of a cold batch's ranges (shapes below); "
		"over floor = released - floor\n");
	fprintf(out, "  taken, landed: its last read handed to an engine thread, and read "
		"(before any copy; - where the path does not say)\n");
	if (r->stream)
		fprintf(out, "  +copy: the same plain reads, each copied into the GPU as it lands, "
			"at their best shape (below); over +copy = released - +copy\n");
	fprintf(out, "  %-3s %8s %6s %8s %7s %7s %8s %8s %9s %9s %9s %7s %8s %10s %8s %8s %8s "
		"%10s\n", "k", "MiB", "reads", "submit", "(map", "unmap)", "first", "last",
		"released", "bytes/ceil", "overhead", "late", "floor", "over floor", "taken",
		"landed", "+copy", "over +copy");
	for (i = 0; i < mc->nr_rows; i++)
		miss_row_text(out, mc, &mc->rows[i]);
	/* After the table, so that its rows stay together: one line per k. */
	for (i = 0; i < mc->nr_rows; i++) {
		const struct miss_row *row = &mc->rows[i];

		if (!row->done)
			continue;
		/*
		 * The spread of the batches behind each mean: the first batch after the decode
		 * ran 100-400 us slower than the rest in session 7, and a median shows what a
		 * typical miss costs where one slow batch moves the mean.
		 */
		fprintf(out, "  released k=%u: median %.1f us, fastest %.1f, slowest %.1f (%u "
			"batch%s)\n", row->k, median_us(row->rel, row->done), row->rel[0] * 1e-3,
			row->rel[row->done - 1] * 1e-3, row->done, row->done == 1 ? "" : "es");
	}
	for (i = 0; i < mc->nr_rows; i++)
		if (mc->rows[i].done)
			shape_line(out, "floor", mc->rows[i].k, &mc->rows[i].fl, mc->rows[i].fl_err);
	for (i = 0; r->stream && i < mc->nr_rows; i++)
		if (mc->rows[i].done)
			shape_line(out, "+copy", mc->rows[i].k, &mc->rows[i].cfl,
				   mc->rows[i].cfl_err);
}

/* A floor in JSON: its time and shape, or null where it was not read (its note in text). */
static void floor_json(FILE *out, const char *name, const struct bench_burst *fl, int err)
{
	fprintf(out, ",\"%s\":", name);
	if (err) {
		fprintf(out, "null");
		return;
	}
	fprintf(out, "{\"us\":");
	cli_json_double(out, fl->seconds * 1e6);
	fprintf(out, ",\"threads\":%u,\"piece_bytes\":%" PRIu64 ",\"buffered\":%s,"
		"\"bytes\":%" PRIu64 ",\"runs\":%u,\"shapes\":%u}", fl->threads, fl->piece,
		fl->buffered ? "true" : "false", fl->bytes, fl->runs, fl->shapes);
}

static void miss_row_json(FILE *out, const struct miss_row *row)
{
	static const struct {
		const char *name;
		size_t off;
	} us[] = {
		{ "mib", offsetof(struct miss_row, mib) },
		{ "reads", offsetof(struct miss_row, reads) },
		{ "submit_us", offsetof(struct miss_row, submit_us) },
		{ "map_us", offsetof(struct miss_row, map_us) },
		{ "unmap_us", offsetof(struct miss_row, unmap_us) },
		{ "first_us", offsetof(struct miss_row, first_us) },
		{ "last_us", offsetof(struct miss_row, last_us) },
		{ "released_us", offsetof(struct miss_row, released_us) },
		{ "bytes_ceiling_us", offsetof(struct miss_row, bytes_us) },
		{ "late_us", offsetof(struct miss_row, late_us) },
		{ "taken_us", offsetof(struct miss_row, taken_us) },
		{ "landed_us", offsetof(struct miss_row, landed_us) },
	};
	size_t i;

	fprintf(out, "{\"k\":%u,\"timed\":%s", row->k, row->done ? "true" : "false");
	if (row->too_many) {
		fprintf(out, ",\"why\":\"more than the %" PRIu64 " experts %s\"}", row->limit,
			row->of_layer ? "of a layer" : "the cache holds");
		return;
	}
	fprintf(out, ",\"batches\":%u,\"not_wholly_cold\":%u", row->done, row->warm);
	if (!row->done) {
		fprintf(out, ",\"why\":\"no batch of %u tries was wholly cold\"}", row->tries);
		return;
	}
	for (i = 0; i < sizeof(us) / sizeof(us[0]); i++) {
		fprintf(out, ",\"%s\":", us[i].name);
		cli_json_double(out, *(const double *)((const char *)row + us[i].off));
	}
	fprintf(out, ",\"overhead_us\":");
	cli_json_double(out, row->released_us - row->bytes_us);
	fprintf(out, ",\"released_median_us\":");
	cli_json_double(out, median_us(row->rel, row->done));
	fprintf(out, ",\"released_fastest_us\":");
	cli_json_double(out, row->rel[0] * 1e-3);
	fprintf(out, ",\"released_slowest_us\":");
	cli_json_double(out, row->rel[row->done - 1] * 1e-3);
	floor_json(out, "floor", &row->fl, row->fl_err);
	floor_json(out, "copy", &row->cfl, row->cfl_err);
	fprintf(out, "}");
}

void moe_run_miss_cost_json(FILE *out, const struct miss_cost *mc)
{
	size_t i;

	fprintf(out, "{\"ceiling_Bps\":");
	cli_json_double(out, mc->ceiling);
	if (mc->err) {
		fprintf(out, ",\"error\":");
		cli_json_str(out, p2pio_strerror(mc->err));
		fprintf(out, "}");
		return;
	}
	fprintf(out, ",\"cache_experts\":%" PRIu64 ",\"experts\":%" PRIu64
		",\"read_piece_bytes\":%" PRIu64 ",\"rows\":[", mc->capacity, mc->all,
		mc->read_piece);
	for (i = 0; i < mc->nr_rows; i++) {
		if (i)
			fprintf(out, ",");
		miss_row_json(out, &mc->rows[i]);
	}
	fprintf(out, "]}");
}
