// SPDX-License-Identifier: MIT
/*
 * p2pio-bench, host only: storage ceilings and the library's paths into host memory on
 * a small generated file; every result line parses and moved the whole file; --json
 * parses; --plot writes an SVG; bad arguments exit 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "tool_run.h"

#define FILE_SIZE (8u << 20)

/* Run p2pio-bench with these arguments; its stdout lands in main()'s out. */
#define bench(...) tool_run(&out, "p2pio-bench", __VA_ARGS__)

/* Checks every "result" line; returns how many there were, -1 if one is malformed. */
static int check_lines(const char *out, int *skipped)
{
	const char *line = out;
	int n = 0;

	*skipped = 0;
	while (line && *line) {
		char mode[16], cache[8], target[8], size[16];
		unsigned int depth, threads;
		unsigned long long bytes;
		double gibps, avg, p99, cpu;

		if (!strncmp(line, "skipped ", 8))
			(*skipped)++;
		if (!strncmp(line, "result ", 7)) {
			if (sscanf(line,
				   "result mode=%15s cache=%7s target=%7s size=%15s depth=%u threads=%u "
				   "bytes=%llu gibps=%lf avg_us=%lf p99_us=%lf cpu_s_per_gib=%lf",
				   mode, cache, target, size, &depth, &threads, &bytes, &gibps, &avg,
				   &p99, &cpu) != 11)
				return -1;
			if (bytes != FILE_SIZE || gibps <= 0 || avg <= 0 || p99 < avg * 0.999 ||
			    cpu < 0 || strcmp(size, "1M") || depth != 4 || strcmp(target, "host"))
				return -1;
			n++;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return n;
}

/*
 * A storage sweep's output: direct and buffered at 1, 4 and 16 MiB, with 16 and 64 reads
 * in flight (direct with 4 too), every one moving the whole file; a best line whose rate is the fastest of
 * them; the ratio line dividing by that rate.
 */
static void check_sweep(const char *out)
{
	const char *line = out, *b;
	double best = 0, gibps, bg = -1;
	unsigned int depth, threads, seen = 0;
	unsigned long long bytes;
	char mode[16], size[16], want[64];
	int n = 0, bad = 0;

	for (; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, "result mode=direct ", 19) && strncmp(line, "result mode=buffered ", 21))
			continue;
		if (sscanf(line, "result mode=%15s cache=warm target=host size=%15s depth=%u "
				 "threads=%u bytes=%llu gibps=%lf", mode, size, &depth, &threads,
			   &bytes, &gibps) != 6 || bytes != FILE_SIZE || gibps <= 0) {
			bad++;
			continue;
		}
		n++;
		if (gibps > best)
			best = gibps;
		seen |= (!strcmp(size, "1M") ? 1u : !strcmp(size, "4M") ? 2u :
			 !strcmp(size, "16M") ? 4u : 0u) |
			(depth == 16 ? 8u : depth == 64 ? 16u : 0u) |
			(!strcmp(mode, "direct") ? 32u : 64u) |
			(!strcmp(mode, "direct") && depth == 4 && threads == 4 ? 128u : 0u) |
			(!strcmp(mode, "direct") && depth == 4 && threads == 1 ? 256u : 0u);
	}
	tap_ok(!bad && n >= 21 && seen == 511,
	       "storage sweep: %d shapes, direct and buffered at 1/4/16M, depth 16 and 64, "
	       "direct 4 x 1 and one ring 4 deep too", n);
	b = strstr(out, "best sweep=storage cache=warm of=");
	tap_ok(b && sscanf(strstr(b, "gibps="), "gibps=%lf", &bg) == 1 && bg == best,
	       "the best line names the fastest shape (%.3f, fastest %.3f)", bg, best);
	snprintf(want, sizeof(want), "storage %.3f:", best);
	tap_ok(strstr(out, want) != NULL, "the ratio line divides by that best (%s)", want);
}

int main(int argc, char **argv)
{
	const char *dir, *v;
	char path[1024], *out = NULL, *svg = NULL;
	int st, n, skipped;

	tool_init(argv[0]);
	dir = tool_scratch("bench");

	st = bench("--generate 8M --device host --modes buffered,bounce,posix,auto --size 1M "
		   "--depth 4 --threads 2 --cache warm --plot %s/sweep.svg %s/data", dir, dir);
	tap_is_int(st, 0, "warm host-only run exits 0");
	n = check_lines(out, &skipped);
	tap_is_int(n, 4, "four result lines that parse, each moved the whole file");
	tap_ok(strstr(out, "mode=auto") && strstr(out, "path=posix"),
	       "AUTO picks POSIX for a warm file and says so");
	tap_ok(strstr(out, "ratio cache=warm best=") != NULL, "the ratios line is there");

	snprintf(path, sizeof(path), "%s/sweep.svg", dir);
	{
		FILE *f = fopen(path, "r");
		long len = 0;

		if (f) {
			fseek(f, 0, SEEK_END);
			len = ftell(f);
			rewind(f);
			svg = calloc(1, (size_t)len + 1);
			if (svg && fread(svg, 1, (size_t)len, f) != (size_t)len)
				svg[0] = '\0';
			fclose(f);
		}
		tap_ok(svg && strstr(svg, "<svg") && strstr(svg, "<polyline") &&
			       strstr(svg, "</svg>"),
		       "--plot wrote an SVG line chart");
		free(svg);
	}

	/* Cold: drops the cache (as root) and reads with O_DIRECT. */
	st = bench("--device host --modes direct,bounce --size 1M --depth 4 --cache cold --json "
		   "%s/data", dir);
	tap_is_int(st, 0, "cold JSON run exits 0");
	tap_ok(tool_json_ok(out) != 0, "--json output parses");
	if (tool_json_ok(out) == 1) {
		v = tool_jeval(out, "[(r[\"mode\"], r[\"ok\"], r[\"bytes\"]) for r in "
				    "d[\"results\"]]");
		tap_ok(strcmp(v, "[('direct', True, 8388608), ('bounce', True, 8388608)]") == 0,
		       "both modes moved the file: %s", v);
		v = tool_jeval(out, "d[\"ratios\"][0][\"cache\"]");
		tap_ok(strcmp(v, "cold") == 0, "a cold ratio is reported");
	} else {
		tap_skip(2, "no python3");
	}

	/* --steady: O_DIRECT reads its stripes again until the time has passed; one pass without. */
	st = bench("--device host --modes direct --size 1M --depth 4 --threads 2 --cache warm "
		   "--steady 0.2 --duration 5 --json %s/data", dir);
	tap_is_int(st, 0, "--steady run exits 0");
	if (tool_json_ok(out) == 1) {
		tap_ok(tool_jis(out, "(d[\"results\"][0][\"bytes\"] > 2 * 8388608, "
				"0.2 <= d[\"results\"][0][\"seconds\"] < 5)", "(True, True)"),
		       "--steady 0.2 read the 8 MiB file again for at least 0.2 s");
	} else {
		tap_skip(1, "no python3");
	}
	tap_is_int(bench("--steady 0 %s/data 2>/dev/null", dir), 2, "--steady 0: exit 2");

	/* Library modes run with the library's defaults unless --lib-* and --chunk say. */
	st = bench("--device host --modes bounce --size 1M --depth 4 --lib-threads 3 --lib-depth 6 "
		   "--chunk 256K --bounce-async --cache warm %s/data", dir);
	n = check_lines(out, &skipped);
	tap_ok(st == 0 && n == 1, "BOUNCE with context options moved the file");
	tap_ok(strstr(out, "lib qd=6 threads=3 posix_threads=3 chunk=256K") && strstr(out, " async"),
	       "the result line names the context options that ran");
	st = bench("--device host --modes posix --size 1M --depth 4 --cache warm %s/data", dir);
	tap_ok(st == 0 && check_lines(out, &skipped) == 1 && strstr(out, "chunk=4096K"),
	       "without them, the library's default chunk size runs, not --size");

	/* GPU modes without a GPU: skipped with a reason, not failed (link: each shape). */
	st = bench("--device host --modes naive,link --size 1M --depth 4 --cache warm %s/data",
		   dir);
	n = check_lines(out, &skipped);
	tap_ok(st == 0 && n == 0 && skipped == 5 && strstr(out, "best sweep=link cache=warm: no shape"),
	       "GPU baselines are skipped into host memory, the link sweep's four shapes too");

	/* The storage ceiling: a sweep of shapes, its best reported and used by the ratios. */
	st = bench("--device host --modes storage,posix --size 1M --depth 4 --cache warm %s/data",
		   dir);
	tap_is_int(st, 0, "storage sweep exits 0");
	check_sweep(out);
	st = bench("--device host --modes storage --fixed --size 1M --depth 4 --threads 2 "
		   "--cache warm %s/data", dir);
	n = check_lines(out, &skipped);
	tap_ok(st == 0 && n == 2 && strstr(out, "mode=direct") && strstr(out, "mode=buffered") &&
		       !strstr(out, "best sweep="),
	       "--fixed: the storage modes at the given shape only, no sweep");

	tap_is_int(bench("--modes nosuch %s/data 2>/dev/null", dir), 2, "an unknown mode: exit 2");
	tap_is_int(bench("--size 0 %s/data 2>/dev/null", dir), 2, "a zero size: exit 2");
	tap_is_int(bench("/nonexistent/x 2>/dev/null"), 2, "a missing file: exit 2");

	free(out);
	return tap_exit();
}
