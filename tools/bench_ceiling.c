// SPDX-License-Identifier: MIT
/*
 * bench_ceiling.c - the honest ceiling a tool's bound divides by (issue 11): the storage
 * ceiling (the best of p2pio-bench's storage sweep: O_DIRECT and buffered reads into host
 * memory at several request sizes and depths) on the file, in the caller's cache state,
 * and, into a GPU, the link ceiling (the best of large pinned copies on one and several
 * streams); the lower of the two. A ceiling measured at one shape, or on one path, is no
 * ceiling: p2pio-moe's expert-sized reads on its own path put its bound 8-13 % under what
 * its decode then read (Documentation/moe.md).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"

static double gib_to_gb(double gibps)
{
	return gibps * (double)(1ull << 30) / 1e9;
}

/* The ceiling: the storage's, or the link's where there is one and it is lower. */
static double lower_of(double storage_gbps, double link_gbps)
{
	return link_gbps > 0 && link_gbps < storage_gbps ? link_gbps : storage_gbps;
}

/* The sweep's parameters for @cp, before a shape is chosen. */
static void ceiling_params(const struct bench_ceiling_params *cp, struct bench_params *p)
{
	memset(p, 0, sizeof(*p));
	p->path = cp->path;
	p->file_size = cp->file_size;
	p->duration = cp->duration > 0 ? cp->duration : 1;
	/*
	 * The decodes and streams it bounds read for seconds; one pass of 64 threads over a
	 * 3 GB file is a quarter of that, much of it threads starting and finishing, and
	 * p2pio-moe's decodes then read faster than such a "ceiling" (1.06-1.20 of the bound).
	 */
	p->steady = p->duration < BENCH_CEILING_STEADY_S ? p->duration : BENCH_CEILING_STEADY_S;
	p->cold = cp->cold;
	p->gpu = cp->cu != NULL;
	p->cu = cp->cu;
	p->device = -1;
}

/* One storage shape in the caller's cache state: dropped before it, or the file read first. */
static void ceiling_shape(const struct bench_ceiling_params *cp, struct bench_params *p,
			  const struct bench_shape *shape, struct bench_result *res)
{
	p->io_size = shape->io_size;
	p->depth = shape->depth;
	p->threads = shape->threads;
	if (cp->cold) {
		cli_drop_cache(cp->path);
	} else {
		struct bench_params w = *p;

		w.io_size = 16u << 20;
		w.depth = 1;
		w.threads = 16;
		w.bytes = 0;
		w.duration = 0;
		w.steady = 0;
		bench_run("buffered", &w, res);
	}
	bench_run(shape->mode, p, res);
}

int bench_ceiling(const struct bench_ceiling_params *cp, double *gbps, char *why,
		  size_t why_len, struct bench_ceiling_best *best)
{
	struct bench_shape shapes[64], best_shape = { 0 };
	struct bench_result res, best_s = { 0 }, best_l = { 0 };
	struct bench_params p;
	unsigned int ncpu = (unsigned int)sysconf(_SC_NPROCESSORS_ONLN);
	size_t n, k;
	double s_gbps, l_gbps = 0;

	ceiling_params(cp, &p);
	n = bench_sweep("storage", ncpu, shapes, 64);
	for (k = 0; k < n; k++) {
		ceiling_shape(cp, &p, &shapes[k], &res);
		if (!res.err && res.gibps > best_s.gibps) {
			best_s = res;
			/* Kept apart: the link sweep below refills @shapes. */
			best_shape = shapes[k];
		}
	}
	/* The buffered shapes leave the file cached: a cold caller goes on from cold. */
	if (cp->cold)
		cli_drop_cache(cp->path);
	if (best_s.gibps <= 0)
		return -EIO;
	s_gbps = gib_to_gb(best_s.gibps);
	if (cp->cu) {
		n = bench_sweep("link", ncpu, shapes, 64);
		for (k = 0; k < n; k++) {
			p.io_size = shapes[k].io_size;
			p.depth = shapes[k].depth;
			p.threads = shapes[k].threads;
			bench_run("link", &p, &res);
			if (!res.err && res.gibps > best_l.gibps)
				best_l = res;
		}
		/* Its 1-2 GiB of pinned and device memory would otherwise stay for the caller. */
		bench_link_release();
		l_gbps = gib_to_gb(best_l.gibps);
	}
	*gbps = lower_of(s_gbps, l_gbps);
	if (best) {
		best->shape = best_shape;
		best->storage_gbps = s_gbps;
		best->link_gbps = l_gbps;
	}
	snprintf(why, why_len, "storage %.2f GB/s (%s %lluK qd%u x%u)%s", s_gbps, best_s.mode,
		 (unsigned long long)(best_s.io_size >> 10), best_s.depth, best_s.threads,
		 l_gbps > 0 ? "" : ", no link");
	if (l_gbps > 0) {
		size_t len = strlen(why);

		snprintf(why + len, why_len - len, ", link %.2f GB/s (%lluM x %u streams)", l_gbps,
			 (unsigned long long)(best_l.io_size >> 20), best_l.depth);
	}
	return 0;
}

int bench_ceiling_again(const struct bench_ceiling_params *cp,
			const struct bench_ceiling_best *best, double *gbps, char *why,
			size_t why_len)
{
	struct bench_result res;
	struct bench_params p;
	size_t len = strlen(why);
	double again, s_gbps;

	/* Only a storage shape: a link shape's rate is no storage ceiling. */
	if (!best->shape.mode || (strcmp(best->shape.mode, "direct") &&
				  strcmp(best->shape.mode, "buffered")))
		return -EINVAL;
	ceiling_params(cp, &p);
	ceiling_shape(cp, &p, &best->shape, &res);
	/* The buffered shapes leave the file cached: a cold caller goes on from cold. */
	if (cp->cold)
		cli_drop_cache(cp->path);
	if (res.err)
		return res.err;
	again = gib_to_gb(res.gibps);
	s_gbps = again > best->storage_gbps ? again : best->storage_gbps;
	*gbps = lower_of(s_gbps, best->link_gbps);
	snprintf(why + len, why_len - len,
		 "; its best storage shape again after (%s %lluK qd%u x%u): %.2f GB/s",
		 best->shape.mode, (unsigned long long)(best->shape.io_size >> 10),
		 best->shape.depth, best->shape.threads, again);
	return 0;
}
