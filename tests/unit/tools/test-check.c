// SPDX-License-Identifier: MIT
/*
 * p2pio-check: JSON that parses and agrees with the exit status on this machine, exit
 * status 2 for errors, and the P2P verdict of a synthetic machine (fixture sysfs tree
 * with a GPU and an NVMe controller below one switch, and one with ACS redirect).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sysfs_fixture.h"
#include "tap.h"
#include "tool_run.h"

int main(int argc, char **argv)
{
	const char *root, *v;
	char file[128], *out = NULL;
	int st, ok;
	FILE *f;

	tool_init(argv[0]);
	tool_need_python();
	root = tool_scratch("check");
	snprintf(file, sizeof(file), "%s/model.bin", root);
	f = fopen(file, "w");
	if (!f)
		tap_bail("fopen");
	fprintf(f, "%s", "some bytes standing in for a model\n");
	fclose(f);

	st = tool_run(&out, "p2pio-check", "--json %s", file);
	tap_ok(st == 0 || st == 1, "--json FILE exits 0 or 1 (got %d)", st);
	ok = tool_json_ok(out);
	tap_ok(ok == 1, "its output is JSON");
	v = tool_jeval(out, "d[\"p2p_usable\"]");
	tap_ok(strcmp(v, st == 0 ? "True" : "False") == 0, "p2p_usable (%s) agrees with exit %d", v,
	       st);
	v = tool_jeval(out, "len(d[\"reasons\"]) > 0 or d[\"p2p_usable\"]");
	tap_ok(strcmp(v, "True") == 0, "a machine that cannot do P2P says why");
	v = tool_jeval(out, "d[\"file\"][\"fstype\"] != \"\" and "
			    "d[\"file\"][\"auto_path\"] != \"\"");
	tap_ok(strcmp(v, "True") == 0, "the file's file system and AUTO path are reported");
	v = tool_jeval(out, "d[\"file\"][\"max_in_flight\"] in (0, 4) and "
			    "(d[\"file\"][\"auto_path\"] != \"bounce\" or "
			    "(d[\"file\"][\"max_in_flight\"] == 4) == "
			    "(\"is rotational\" in d[\"file\"][\"auto_text\"]))");
	tap_ok(strcmp(v, "True") == 0,
	       "the reads in flight the file is held to, 0 or 4, as its reason says (%s)", v);
	v = tool_jeval(out, "d[\"module\"][\"library_abi\"]");
	tap_ok(atoi(v) >= 1, "the library's ABI version is reported (%s)", v);
	v = tool_jeval(out, "d[\"engine\"][\"p2p_plain_bytes\"] == "
			    "d[\"engine\"][\"queue_depth\"] * d[\"engine\"][\"chunk\"] > 0");
	tap_ok(strcmp(v, "True") == 0,
	       "the bytes P2P sends before it holds reads back: queue depth x chunk (%s)", v);

	st = tool_run(&out, "p2pio-check", "%s", file);
	tap_ok((st == 0 || st == 1) && strstr(out, "verdict") && strstr(out, "AUTO path"),
	       "the text screen has a verdict and the AUTO path");

	tap_is_int(tool_run(NULL, "p2pio-check", "/nonexistent/model.gguf 2>/dev/null"), 3,
		   "a missing file is an error: exit 3");
	tap_is_int(tool_run(NULL, "p2pio-check", "--no-such-option 2>/dev/null"), 2,
		   "a bad option is a usage error: exit 2");
	tap_is_int(tool_run(NULL, "p2pio-check", "%s %s 2>/dev/null", file, file), 2,
		   "two files: a usage error, exit 2");
	tap_is_int(tool_run(NULL, "p2pio-check", "--gpu 0000:99:00.0 %s 2>/dev/null", file), 3,
		   "an unknown --gpu is an error: exit 3");

	/* A synthetic machine: the verdicts come from its topology. */
	fx_p2p_tree(root, 0);
	st = tool_run(&out, "p2pio-check", "--json --sysfs %s/sys", root);
	tap_ok(tool_json_ok(out) == 1, "fixture machine: JSON");
	v = tool_jeval(out, "(len(d[\"gpus\"]), len(d[\"nvme\"]), len(d[\"pairs\"]))");
	tap_ok(strcmp(v, "(1, 3, 3)") == 0, "one GPU, three NVMe, three pairs: %s", v);
	v = tool_jeval(out, "d[\"pairs\"][0][\"text\"]");
	tap_ok(strstr(v, "same PCIe switch") != NULL, "GPU and nvme under one switch: %s", v);
	v = tool_jeval(out, "d[\"pairs\"][0][\"good\"] and d[\"iommu\"][\"enabled\"]");
	tap_ok(strcmp(v, "True") == 0, "that pair is good, and the IOMMU is seen");
	tap_ok(st == 0 || st == 1, "exit %d", st);

	fx_p2p_tree(root, 0x4);
	st = tool_run(&out, "p2pio-check", "--sysfs %s/sys --gpu 00000000:03:00.0", root);
	tap_ok(strstr(out, "ACS redirect enabled on bridge 0000:02:01.0") != NULL,
	       "ACS redirect is named on the screen");
	tap_ok(strstr(out, "no GPU/NVMe pair has a usable P2P route") == NULL,
	       "pairs through the root complex still count as a route");

	free(out);
	return tap_exit();
}
