// SPDX-License-Identifier: MIT
/*
 * bench_report.c - p2pio-bench's bookkeeping and output: latency samples, clocks, CPU
 * time, result lines, JSON objects and an SVG line chart written by hand.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"
#include "cli.h"

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double bench_cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

void bench_lat_add(struct bench_lat *l, double us)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		double *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return; /* the average still counts it */
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = us;
	l->sum += us;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

void bench_lat_finish(struct bench_lat *l, double *avg, double *p99)
{
	*avg = l->n ? l->sum / (double)l->n : 0;
	*p99 = 0;
	if (l->n) {
		size_t i = (size_t)ceil(0.99 * (double)l->n);

		qsort(l->v, l->n, sizeof(*l->v), cmp_double);
		*p99 = l->v[(i ? i : 1) - 1];
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void bench_size_str(uint64_t n, char *buf, size_t sz)
{
	if (n && !(n & ((1ull << 30) - 1)))
		snprintf(buf, sz, "%lluG", (unsigned long long)(n >> 30));
	else if (n && !(n & ((1ull << 20) - 1)))
		snprintf(buf, sz, "%lluM", (unsigned long long)(n >> 20));
	else if (n && !(n & ((1ull << 10) - 1)))
		snprintf(buf, sz, "%lluK", (unsigned long long)(n >> 10));
	else
		snprintf(buf, sz, "%llu", (unsigned long long)n);
}

/*
 * One line per run, key=value, so people read it and scripts split it:
 * result mode=bounce cache=cold target=gpu size=16M depth=16 threads=4 gibps=1.234 ...
 */
void bench_print_line(FILE *f, const struct bench_result *r)
{
	char sz[32];

	bench_size_str(r->io_size, sz, sizeof(sz));
	if (r->err) {
		fprintf(f, "skipped mode=%s cache=%s size=%s depth=%u: %s\n", r->mode,
			r->cold ? "cold" : "warm", sz, r->depth, r->note);
		return;
	}
	fprintf(f,
		"result mode=%s cache=%s target=%s size=%s depth=%u threads=%u bytes=%llu "
		"gibps=%.3f avg_us=%.1f p99_us=%.1f cpu_s_per_gib=%.3f",
		r->mode, r->cold ? "cold" : "warm", r->target, sz, r->depth, r->threads,
		(unsigned long long)r->bytes, r->gibps, r->avg_us, r->p99_us, r->cpu_s_per_gib);
	if (r->path_used[0])
		fprintf(f, " path=%s", r->path_used);
	if (r->note[0])
		fprintf(f, " # %s", r->note);
	fputc('\n', f);
}

void bench_print_json(FILE *f, const struct bench_result *r)
{
	fprintf(f, "{\"mode\":");
	cli_json_str(f, r->mode);
	fprintf(f, ",\"cache\":\"%s\",\"target\":\"%s\",\"io_size\":%llu,\"depth\":%u,"
		   "\"threads\":%u,\"ok\":%s,\"bytes\":%llu,\"seconds\":%.6f,\"gibps\":%.4f,"
		   "\"avg_us\":%.2f,\"p99_us\":%.2f,\"cpu_s_per_gib\":%.4f,\"path\":",
		r->cold ? "cold" : "warm", r->target, (unsigned long long)r->io_size, r->depth,
		r->threads, r->err ? "false" : "true", (unsigned long long)r->bytes, r->seconds,
		r->gibps, r->avg_us, r->p99_us, r->cpu_s_per_gib);
	cli_json_str(f, r->path_used);
	fprintf(f, ",\"note\":");
	cli_json_str(f, r->note);
	fputc('}', f);
}

/* ---- SVG ------------------------------------------------------------------------- */

#define W 720
#define H 420
#define ML 70
#define MR 170
#define MT 30
#define MB 50

static const char *const colours[] = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
				       "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf" };

/* The x value of a result: log2 of the size or the depth. */
static double xval(const struct bench_result *r, bool by_depth)
{
	return log2(by_depth ? (double)r->depth : (double)r->io_size);
}

int bench_plot_svg(const char *path, const struct bench_result *rs, size_t n)
{
	double xmin = INFINITY, xmax = -INFINITY, ymax = 0;
	bool by_depth = true, *drawn;
	size_t i, j, series = 0;
	FILE *f;

	for (i = 1; i < n; i++)
		if (rs[i].io_size != rs[0].io_size)
			by_depth = false;
	for (i = 0; i < n; i++) {
		if (rs[i].err)
			continue;
		xmin = fmin(xmin, xval(&rs[i], by_depth));
		xmax = fmax(xmax, xval(&rs[i], by_depth));
		ymax = fmax(ymax, rs[i].gibps);
	}
	if (!(xmax >= xmin))
		return -ENODATA;
	if (xmax == xmin) {
		xmin -= 1;
		xmax += 1;
	}
	ymax = ymax > 0 ? ymax * 1.1 : 1;
	drawn = calloc(n, sizeof(*drawn));
	if (!drawn)
		return -ENOMEM;
	f = fopen(path, "w");
	if (!f) {
		free(drawn);
		return -errno;
	}
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		   "font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
	fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
	fprintf(f, "<text x=\"%d\" y=\"18\" font-size=\"14\">p2pio-bench: GiB/s by %s</text>\n",
		ML, by_depth ? "queue depth" : "I/O size");
	/* Axes, y grid every fifth of the range, x ticks at each power of two present. */
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", ML,
		H - MB, W - MR, H - MB);
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", ML, MT,
		ML, H - MB);
	for (i = 0; i <= 5; i++) {
		double y = H - MB - (double)(H - MT - MB) * (double)i / 5;

		fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
			ML, y, W - MR, y);
		fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", ML - 6,
			y + 4, ymax * (double)i / 5);
	}
	for (i = 0; i < n; i++) {
		double x;
		char label[32];

		if (rs[i].err)
			continue;
		x = ML + (xval(&rs[i], by_depth) - xmin) / (xmax - xmin) * (W - ML - MR);
		if (by_depth)
			snprintf(label, sizeof(label), "%u", rs[i].depth);
		else
			bench_size_str(rs[i].io_size, label, sizeof(label));
		fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x,
			H - MB + 16, label);
	}
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", (ML + W - MR) / 2,
		H - 12, by_depth ? "queue depth" : "I/O size");
	fprintf(f, "<text x=\"16\" y=\"%d\" transform=\"rotate(-90 16 %d)\" "
		   "text-anchor=\"middle\">GiB/s</text>\n", (MT + H - MB) / 2, (MT + H - MB) / 2);
	/* One polyline per (mode, cache). */
	for (i = 0; i < n; i++) {
		const char *col = colours[series % (sizeof(colours) / sizeof(colours[0]))];

		if (rs[i].err || drawn[i])
			continue;
		fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
		for (j = i; j < n; j++) {
			if (rs[j].err || strcmp(rs[j].mode, rs[i].mode) || rs[j].cold != rs[i].cold)
				continue;
			drawn[j] = true;
			fprintf(f, "%.1f,%.1f ",
				ML + (xval(&rs[j], by_depth) - xmin) / (xmax - xmin) * (W - ML - MR),
				H - MB - rs[j].gibps / ymax * (H - MT - MB));
		}
		fprintf(f, "\"/>\n");
		fprintf(f, "<text x=\"%d\" y=\"%zu\" fill=\"%s\">%s (%s)</text>\n", W - MR + 10,
			MT + 10 + series * 16, col, rs[i].mode, rs[i].cold ? "cold" : "warm");
		series++;
	}
	fprintf(f, "</svg>\n");
	free(drawn);
	return fclose(f) ? -errno : 0;
}
