// SPDX-License-Identifier: MIT
/*
 * p2pio-gguf --extents: every tensor's LBA runs cover exactly its bytes, the JSON parses,
 * and the text form names every tensor; a missing file is an error (exit 3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "tool_run.h"

int main(int argc, char **argv)
{
	char dir[] = "/tmp/p2pio-gguf-ext-XXXXXX", args[512], v[256];
	char *out = NULL;
	int st;

	tool_init(argv[0]);
	if (system("command -v python3 >/dev/null 2>&1"))
		tap_skip_all("python3 is needed to parse the JSON");
	if (!mkdtemp(dir))
		tap_bail("mkdtemp");
	snprintf(args, sizeof(args), "-p tiny %s/m.gguf >/dev/null 2>&1", dir);
	tap_is_int(tool_run("p2pio-mkmodel", args, NULL), 0, "made a tiny model");

	snprintf(args, sizeof(args), "--extents --json %s/m.gguf", dir);
	st = tool_run("p2pio-gguf", args, &out);
	tap_is_int(st, 0, "--extents --json exits 0");
	tap_ok(tool_json_ok(out) == 1, "its output is JSON");
	tool_json_eval(out, "all(sum(r[\"length\"] for r in t[\"runs\"]) == t[\"bytes\"] and "
			    "t[\"runs\"][0][\"file_offset\"] == t[\"file_offset\"] for t in d[\"tensors\"])",
		       v, sizeof(v));
	tap_ok(strcmp(v, "True") == 0, "each tensor's runs cover exactly its bytes");
	tool_json_eval(out, "all(r[\"nlb\"] * d[\"lba_size\"] >= r[\"length\"] for t in "
			    "d[\"tensors\"] for r in t[\"runs\"] if r[\"flags\"] == 0)",
		       v, sizeof(v));
	tap_ok(strcmp(v, "True") == 0, "each written run's LBA count holds its bytes");
	tool_json_eval(out, "len(d[\"tensors\"]) > 0 and d[\"fstype\"] != \"\"", v, sizeof(v));
	tap_ok(strcmp(v, "True") == 0, "tensors and file system reported");
	free(out);

	snprintf(args, sizeof(args), "--extents --full %s/m.gguf", dir);
	st = tool_run("p2pio-gguf", args, &out);
	tap_ok(st == 0 && strstr(out, "token_embd.weight") && strstr(out, "-> lba "),
	       "text form lists tensors and, with --full, their runs");
	free(out);

	tap_is_int(tool_run("p2pio-gguf", "--extents /nonexistent.gguf 2>/dev/null", NULL), 3,
		   "a missing model: exit 3");
	snprintf(args, sizeof(args), "--extents --tensors %s/m.gguf 2>/dev/null", dir);
	tap_is_int(tool_run("p2pio-gguf", args, NULL), 2, "--extents with another mode: exit 2");

	snprintf(args, sizeof(args), "rm -rf %s", dir);
	if (system(args))
		tap_diag("could not remove %s", dir);
	return tap_exit();
}
