// SPDX-License-Identifier: MIT
/*
 * p2pio-load, run as built on a generated tiny model, always into host memory (--host, so
 * that a machine with a GPU runs the same checks): a whole load reads every tensor byte and
 * verifies it; --cold drops the file's pages before AUTO picks the path, so a file that was
 * just read warm (POSIX) loads cold through BOUNCE; the mmap baseline and the text screen
 * verify too; streaming keeps its books (every acquire of the measured passes is a load or
 * a hit, a budget sets the slots, all layers in slots means no loads after the warm-up, LRU
 * never hits a cyclic sweep larger than its slots) under every option; one flipped byte in
 * a layer makes the whole load, the mmap baseline and streaming exit 1 and name its offset;
 * bad arguments exit 2, unreadable models exit 3.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "tool_run.h"

static const char *dir;		/* the scratch directory, removed at exit */
static char *out;		/* the last run's standard output */

/* Run p2pio-load --host with these arguments; its stdout lands in out. */
#define load(...) tool_run(&out, "p2pio-load", "--host " __VA_ARGS__)

/* Read @path through the page cache, so that AUTO finds it there. */
static void warm(const char *path)
{
	static char buf[1 << 16];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

/* Without O_DIRECT (tmpfs) a cold file has no path around the page cache. */
static bool direct_io_works(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int main(int argc, char **argv)
{
	uint64_t tensor_bytes, data_off, file_size, ntensors, nlayers, resident, max_layer, bad_off;
	uint64_t bad_resident_off;
	uint64_t acquires;
	char model[128], bad[128], bad2[128], args[512], want[160];
	const char *v = tool_jval;	/* what the last JSON check saw */
	char *g = NULL;
	double compute;
	int st;

	tool_init(argv[0]);
	tool_need_python();
	dir = tool_scratch("load");
	snprintf(model, sizeof(model), "%s/t.gguf", dir);
	snprintf(bad, sizeof(bad), "%s/bad.gguf", dir);
	snprintf(bad2, sizeof(bad2), "%s/bad-resident.gguf", dir);

	/* A seed other than the default: verification must take it from the metadata. */
	if (tool_run(NULL, "p2pio-mkmodel", "-q -p tiny -s 3 %s", model))
		tap_bail("p2pio-mkmodel -p tiny failed");
	if (tool_run(&g, "p2pio-gguf", "--json %s", model) ||
	    sscanf(tool_jeval(g, "(d[\"tensor_bytes\"], d[\"data_offset\"], d[\"file_size\"], "
				 "d[\"tensor_count\"], len(d[\"layers\"]), "
				 "d[\"nonlayer\"][\"bytes\"], max(l[\"bytes\"] for l in "
				 "d[\"layers\"]))"),
		   "(%" SCNu64 ", %" SCNu64 ", %" SCNu64 ", %" SCNu64 ", %" SCNu64 ", %" SCNu64
		   ", %" SCNu64 ")", &tensor_bytes, &data_off, &file_size, &ntensors, &nlayers,
		   &resident, &max_layer) != 7 || nlayers < 4)
		tap_bail("p2pio-gguf --json: no tiny model with 4 layers "
			 "(the slot checks need them)");
	/* One flipped byte inside a layer's tensor, another inside a resident one. */
	if (tool_run(&g, "p2pio-gguf", "--tensors --json %s", model))
		tap_bail("p2pio-gguf --tensors --json");
	bad_off = tool_ju64(g, "next(t[\"file_offset\"] + t[\"bytes\"] // 2 for t in "
			       "d[\"tensors\"] if t[\"layer\"] == 1 and t[\"bytes\"] > 4096)");
	bad_resident_off = tool_ju64(g, "next(t[\"file_offset\"] + t[\"bytes\"] // 2 for t in "
					"d[\"tensors\"] if t[\"layer\"] is None and "
					"t[\"bytes\"] > 4096)");
	free(g);
	if (!bad_off || !bad_resident_off)
		tap_bail("no tensor of layer 1 or no resident tensor to corrupt");

	/* ---- the whole model ---- */
	st = load("--json -q %s", model);
	tap_is_int(st, 0, "whole load into host memory: exit 0");
	tap_ok(tool_json_ok(out) == 1, "its output is JSON");
	tap_ok(tool_jis(out, "(d[\"mode\"], d[\"target\"], d[\"verified\"], d[\"mismatches\"])",
			"('load', 'host', True, 0)"),
	       "mode load, target host, verified, no mismatch: %s", v);
	tap_ok(tool_ju64(out, "d[\"bytes\"]") >= tensor_bytes,
	       "every tensor byte was read (%s >= %" PRIu64 ")", v, tensor_bytes);
	/* The data is one run to the end of the file, read from the block below its start. */
	tap_is_u64(tool_ju64(out, "d[\"bytes\"]"), file_size - (data_off & ~4095ull),
		   "bytes: the block-aligned span of the tensor data, no more");
	tap_ok(tool_jis(out, "d[\"reads\"] >= 1 and d[\"gbps\"] > 0 and d[\"seconds\"] > 0",
			"True"),
	       "reads, time and throughput are reported");

	/* ---- --bounce-async: the engine option reaches the context, the load verifies ---- */
	if (direct_io_works(model)) {
		st = load("--json -q --cold -p bounce --bounce-async --queue-depth 8 %s", model);
		tap_ok(st == 0 && tool_jis(out, "(d[\"path\"], d[\"engine\"][\"bounce_async\"], "
					  "d[\"engine\"][\"queue_depth\"], d[\"verified\"], "
					  "d[\"mismatches\"])", "('bounce', True, 8, True, 0)"),
		       "--bounce-async: BOUNCE through io_uring's workers, verified: %s", v);
	} else {
		tap_skip(1, "no O_DIRECT on this file system");
	}

	/* ---- --repeat: loads into the same arena, each verified on what it wrote ---- */
	st = load("--json -q --repeat 2 %s", model);
	tap_is_int(st, 0, "--repeat 2: exit 0");
	tap_is_int(tool_count_lines(out, "{\"mode\":\"load\","), 2, "--repeat 2: two results");
	{
		const char *second = tool_line(out, "{\"mode\":\"load\",\"round\":1,");

		tap_ok(second && tool_jis(second, "(d[\"round\"], d[\"verified\"], "
					  "d[\"mismatches\"], d[\"bytes\"] > 0)",
					  "(1, True, 0, True)"),
		       "the second load is round 1, read and verified: %s", v);
	}
	st = load("-q --repeat 2 %s", model);
	tap_ok(st == 0 && tool_count_lines(out, "load ") == 2 &&
		       tool_count_lines(out, "verify ") == 2 &&
		       tool_has_line(out, "load ", "(again, same arena)"),
	       "--repeat 2 in text: two loads, two verifications, the second says so");

	/* ---- --cold: AUTO sees the cache as --cold leaves it ---- */
	if (direct_io_works(model)) {
		warm(model);
		st = load("--json -q %s", model);
		tap_ok(st == 0 && tool_jis(out, "(d[\"path\"], d[\"cold\"])", "('posix', False)"),
		       "a warm file loads through the page cache: %s", v);
		st = load("--json -q --cold %s", model);
		tap_is_int(st, 0, "--cold: exit 0");
		tap_ok(tool_jis(out, "(d[\"path\"], d[\"cold\"])", "('bounce', True)"),
		       "--cold drops the pages before AUTO looks: bounce, not posix: %s", v);
		tap_ok(tool_jis(out, "(d[\"verified\"], d[\"mismatches\"])", "(True, 0)"),
		       "the cold load verifies");
	} else {
		tap_skip(4, "no O_DIRECT on this file system: a cold file cannot skip the cache");
	}

	/* ---- the mmap baseline ---- */
	st = load("--json -q --mmap %s", model);
	tap_is_int(st, 0, "--mmap: exit 0");
	tap_ok(tool_jis(out, "(d[\"mode\"], d[\"verified\"], d[\"mismatches\"])",
			"('mmap', True, 0)"),
	       "mode mmap, verified, no mismatch: %s", v);
	tap_is_u64(tool_ju64(out, "d[\"bytes\"]"), tensor_bytes,
		   "--mmap copies exactly the tensor bytes");
	st = load("-q --mmap %s", model);
	tap_ok(st == 0 && tool_has_line(out, "mmap ", "tensor by tensor") &&
		       tool_has_line(out, "verify ", ": OK"),
	       "--mmap's text says it verified the copy");

	/* ---- the text screen ---- */
	st = load("-q %s", model);
	tap_is_int(st, 0, "text output: exit 0");
	snprintf(want, sizeof(want), ": %" PRIu64 " tensors, %" PRIu64 " layers", ntensors,
		 nlayers);
	tap_ok(tool_has_line(out, "model ", want), "the model line agrees with p2pio-gguf (%s)",
	       want);
	tap_ok(tool_has_line(out, "target ", "host memory") && tool_has_line(out, "path ", "(") &&
		       tool_has_line(out, "load ", " reads, ") && tool_has_line(out, "cpu ", NULL),
	       "target, path with its reason, load and cpu lines");
	tap_ok(tool_has_line(out, "verify ", "checked against the pattern: OK"), "verify ... OK");

	/* ---- streaming: 3 passes, the first a warm-up, so 2 measured ---- */
	acquires = 2 * nlayers;
	st = load("--stream --json -q --passes 3 %s", model);
	tap_is_int(st, 0, "--stream, default budget: exit 0");
	tap_ok(tool_json_ok(out) == 1, "its output is JSON");
	tap_ok(tool_jis(out, "(d[\"mode\"], d[\"target\"], d[\"verified\"], d[\"mismatches\"])",
			"('stream', 'host', True, 0)"),
	       "mode stream, target host, verified, no mismatch: %s", v);
	/* A quarter of the tiny model is less than its resident tensors and two slots. */
	tap_is_u64(tool_ju64(out, "d[\"slots\"]"), 2, "the default budget's floor: two slots");
	tap_is_u64(tool_ju64(out, "d[\"passes\"]"), 2,
		   "3 passes: the first is a warm-up, 2 measured");
	tap_is_u64(tool_ju64(out, "d[\"acquires\"]"), acquires,
		   "acquires: measured passes x layers");
	/* Each acquire either finds its layer still in a slot or waits for a load of it. */
	tap_is_u64(tool_ju64(out, "d[\"loads\"] + d[\"hits\"] - d[\"wasted\"]"), acquires,
		   "loads + hits (- wasted prefetches) = measured passes x layers");
	/* One slot held, the other taken by the prefetch of the next layer: nothing stays. */
	snprintf(want, sizeof(want), "(%" PRIu64 ", 0)", acquires);
	tap_ok(tool_jis(out, "(d[\"loads\"], d[\"hits\"])", want),
	       "two slots with prefetch: every acquire takes a fresh load: %s", v);
	tap_ok(tool_jis(out, "d[\"bytes_per_pass\"] > 0 and d[\"passes_per_s\"] > 0 and "
			"d[\"ceiling_gbps\"] > 0", "True"),
	       "bytes per pass, passes per second and the ceiling are reported");
	tap_ok(tool_jis(out, "__import__(\"re\").search(" TOOL_CEILING_AGAIN_RE ", "
			"d[\"ceiling_from\"]) is not None", "True"),
	       "the ceiling's best storage shape (a storage mode) was read again after the passes");

	/*
	 * The streams below are about slots, windows and verification: they give a ceiling
	 * (--ceiling 1) instead of sweeping the storage for seconds each.
	 */

	/* Stats reset after the warm-up, which left every layer in its own slot. */
	st = load("--stream --ceiling 1 --json -q --passes 3 --slots %" PRIu64 " %s", nlayers,
		  model);
	tap_ok(st == 0 && tool_ju64(out, "d[\"slots\"]") == nlayers,
	       "--slots %" PRIu64 ": exit 0, %s slots", nlayers, v);
	snprintf(want, sizeof(want), "(0, %" PRIu64 ", 0, 0)", acquires);
	tap_ok(tool_jis(out, "(d[\"loads\"], d[\"hits\"], d[\"bytes_per_pass\"], "
			"d[\"mismatches\"])", want),
	       "every layer in a slot: no loads after the warm-up, every acquire hits: %s", v);

	/*
	 * On demand only, so every load is consumed by the acquire that started it; and with
	 * no prefetch to take the second slot, furthest-next-use keeps a layer in it.
	 */
	st = load("--stream --ceiling 1 --json -q --passes 3 --no-prefetch %s", model);
	tap_ok(st == 0 && tool_ju64(out, "d[\"loads\"] + d[\"hits\"]") == acquires &&
		       tool_ju64(out, "d[\"hits\"]") > 0,
	       "--no-prefetch, two slots: loads + hits = acquires, and some hit (%s)", v);
	st = load("--stream --ceiling 1 --json -q --passes 3 --slots 3 --no-prefetch %s", model);
	tap_ok(st == 0 && tool_ju64(out, "d[\"loads\"] + d[\"hits\"]") == acquires &&
		       tool_ju64(out, "d[\"hits\"]") > 0,
	       "--no-prefetch, 3 slots, furthest next use: some layers stay for their next use "
	       "(hits %s)", v);
	/* LRU evicts exactly the layer a cyclic sweep needs next. */
	st = load("--stream --ceiling 1 --json -q --passes 3 --slots 3 --no-prefetch --lru %s", model);
	snprintf(want, sizeof(want), "(%" PRIu64 ", 0, 0)", acquires);
	tap_ok(st == 0 && tool_jis(out, "(d[\"loads\"], d[\"hits\"], d[\"mismatches\"])", want),
	       "--lru, 3 slots: every acquire loads, none hits: %s", v);
	st = load("--stream --ceiling 1 --json -q --passes 3 --lru %s", model);
	snprintf(want, sizeof(want), "(%" PRIu64 ", True, 0)", acquires);
	tap_ok(st == 0 && tool_jis(out, "(d[\"loads\"] + d[\"hits\"] - d[\"wasted\"], "
				   "d[\"verified\"], d[\"mismatches\"])", want),
	       "--lru with prefetch, default budget: the books balance, verified: %s", v);

	/* The held layer and two prefetched ones fill all three slots: no layer stays. */
	st = load("--stream --ceiling 1 --json -q --passes 3 --slots 3 --prefetch 2 %s", model);
	snprintf(want, sizeof(want), "(3, %" PRIu64 ", 0, True, 0)", acquires);
	tap_ok(st == 0 && tool_jis(out, "(d[\"slots\"], d[\"loads\"], d[\"hits\"], "
				   "d[\"verified\"], d[\"mismatches\"])", want),
	       "--prefetch 2, 3 slots: every acquire takes a fresh load, verified: %s", v);

	st = load("--stream --ceiling 1 --json -q --passes 3 --compute-us 200 %s", model);
	compute = atof(tool_jeval(out, "d[\"compute_s\"]"));
	tap_ok(st == 0 && fabs(compute - 200e-6 * (double)acquires) < 1e-9,
	       "--compute-us 200: 200 us per layer of the measured passes (%s s)", v);
	tap_ok(tool_jis(out, "d[\"seconds\"] >= d[\"compute_s\"] and d[\"mismatches\"] == 0",
			"True"),
	       "the measured passes took at least their compute");

	st = load("--stream --ceiling 1 --passes 3 --per-layer %s", model);
	tap_is_int(st, 0, "--per-layer text: exit 0");
	{
		int l, per = 0;

		for (l = 0; l < (int)nlayers; l++) {
			snprintf(want, sizeof(want), "layer %-4d ", l);
			per += tool_has_line(out, want, " loads, ");
		}
		tap_ok(per == (int)nlayers && tool_count_lines(out, "layer ") == (int)nlayers,
		       "one 'layer N' line for each of the %" PRIu64 " layers", nlayers);
	}
	tap_ok(tool_count_lines(out, "pass ") == 3 &&
		       tool_has_line(out, "pass 1 ", "(warm-up, not counted)"),
	       "three pass lines, the first a warm-up");
	tap_ok(tool_has_line(out, "slots ", " loads, ") && tool_has_line(out, "verify ", ": OK"),
	       "the slots line, and verify ... OK");

	/* Room for the resident tensors and three and a half slots: three. */
	st = load("--stream --ceiling 1 --json -q --passes 2 --budget %" PRIu64 " %s",
		  resident + 3 * max_layer + max_layer / 2, model);
	tap_ok(st == 0 && tool_jis(out, "(d[\"slots\"], d[\"mismatches\"])", "(3, 0)"),
	       "--budget in bytes: the slots it holds: %s", v);
	st = load("--stream --ceiling 1 --json -q --passes 2 --budget 1G %s", model);
	tap_ok(st == 0 && tool_ju64(out, "d[\"slots\"]") == nlayers,
	       "--budget 1G: no more slots than layers (%s)", v);

	/* ---- errors ---- */
	st = load("--stream --budget 1K %s 2>&1", model);
	tap_is_int(st, 3, "--stream --budget 1K: exit 3");
	tap_ok(strstr(out, "budget of 1024 bytes does not hold the resident tensors") != NULL,
	       "and says the budget does not even hold the resident tensors");
	st = load("--stream --budget %" PRIu64 " %s 2>&1", resident + max_layer / 2, model);
	tap_ok(st == 3 && strstr(out, "holds the resident tensors (") &&
		       strstr(out, "but not one layer slot"),
	       "a budget short of one slot: exit 3, says so");
	tap_is_int(load("--passes 0 %s 2>/dev/null", model), 2, "--passes 0: exit 2");
	tap_is_int(load("--stream --budget 12Q %s 2>/dev/null", model), 2, "--budget 12Q: exit 2");
	tap_is_int(load("--path nosuch %s 2>/dev/null", model), 2, "--path nosuch: exit 2");
	tap_is_int(load("--no-such-option %s 2>/dev/null", model), 2, "an unknown option: exit 2");
	tap_is_int(load("2>/dev/null"), 2, "no model: exit 2");
	tap_is_int(load("--mmap --stream %s 2>/dev/null", model), 2,
		   "--mmap with --stream: exit 2");
	tap_is_int(load("%s/nosuch.gguf 2>/dev/null", dir), 3, "a missing file: exit 3");
	snprintf(args, sizeof(args), "%s/notgguf.bin", dir);
	{
		FILE *f = fopen(args, "w");

		if (f) {
			fputs("this is not a GGUF model, only some text standing in for one\n", f);
			fclose(f);
		}
	}
	tap_is_int(load("%s 2>/dev/null", args), 3, "a file that is not GGUF: exit 3");

	/* ---- one wrong byte ---- */
	if (!tool_corrupt_copy(model, bad, &bad_off, 1)) {
		tap_skip(6, "could not make a corrupted copy");
	} else {
		st = load("--json -q %s", bad);
		tap_is_int(st, 1, "a flipped byte: the whole load exits 1");
		tap_ok(tool_jis(out, "(d[\"verified\"], d[\"mismatches\"])", "(True, 1)"),
		       "and counts one mismatch: %s", v);
		st = load("-q %s", bad);
		snprintf(want, sizeof(want), "FAILED: 1 bytes differ, the first at file offset %"
			 PRIu64, bad_off);
		tap_ok(st == 1 && tool_has_line(out, "verify ", want),
		       "the text names its offset (%" PRIu64 ")", bad_off);
		st = load("--json -q --mmap %s", bad);
		tap_ok(st == 1 && tool_jis(out, "d[\"mismatches\"]", "1"),
		       "--mmap: exit 1, one mismatch");
		st = load("--stream --ceiling 1 --json -q --passes 3 %s", bad);
		tap_is_int(st, 1, "streaming the corrupted file: exit 1");
		tap_ok(tool_ju64(out, "d[\"mismatches\"]") >= 1, "with mismatches (%s)", v);
	}
	/* Resident tensors load once when streaming starts: they are checked then. */
	if (!tool_corrupt_copy(model, bad2, &bad_resident_off, 1)) {
		tap_skip(2, "could not make a corrupted copy");
	} else {
		st = load("--stream --ceiling 1 --json -q --passes 2 %s", bad2);
		tap_is_int(st, 1, "a flipped byte in a resident tensor: streaming exits 1");
		tap_ok(tool_jis(out, "(d[\"verified\"], d[\"mismatches\"])", "(True, 1)"),
		       "one mismatch, found once: %s", v);
	}

	free(out);
	return tap_exit();
}
