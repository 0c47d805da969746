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
	const char *dir, *v;
	char *out = NULL;
	int st;

	tool_init(argv[0]);
	tool_need_python();
	dir = tool_scratch("gguf-ext");
	tap_is_int(tool_run(NULL, "p2pio-mkmodel", "-p tiny %s/m.gguf >/dev/null 2>&1", dir), 0,
		   "made a tiny model");

	st = tool_run(&out, "p2pio-gguf", "--extents --json %s/m.gguf", dir);
	tap_is_int(st, 0, "--extents --json exits 0");
	tap_ok(tool_json_ok(out) == 1, "its output is JSON");
	v = tool_jeval(out, "all(sum(r[\"length\"] for r in t[\"runs\"]) == t[\"bytes\"] and "
			    "t[\"runs\"][0][\"file_offset\"] == t[\"file_offset\"] for t in "
			    "d[\"tensors\"])");
	tap_ok(strcmp(v, "True") == 0, "each tensor's runs cover exactly its bytes");
	v = tool_jeval(out, "all(r[\"nlb\"] * d[\"lba_size\"] >= r[\"length\"] for t in "
			    "d[\"tensors\"] for r in t[\"runs\"] if r[\"flags\"] == 0)");
	tap_ok(strcmp(v, "True") == 0, "each written run's LBA count holds its bytes");
	v = tool_jeval(out, "len(d[\"tensors\"]) > 0 and d[\"fstype\"] != \"\"");
	tap_ok(strcmp(v, "True") == 0, "tensors and file system reported");

	st = tool_run(&out, "p2pio-gguf", "--extents --full %s/m.gguf", dir);
	tap_ok(st == 0 && strstr(out, "token_embd.weight") && strstr(out, "-> lba "),
	       "text form lists tensors and, with --full, their runs");

	tap_is_int(tool_run(NULL, "p2pio-gguf", "--extents /nonexistent.gguf 2>/dev/null"), 3,
		   "a missing model: exit 3");
	tap_is_int(tool_run(NULL, "p2pio-gguf", "--extents --tensors %s/m.gguf 2>/dev/null", dir),
		   2, "--extents with another mode: exit 2");

	free(out);
	return tap_exit();
}
