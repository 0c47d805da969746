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
	char root[] = "/tmp/p2pio-check-XXXXXX", file[128], args[512], v[512];
	char *out = NULL;
	int st, ok;
	FILE *f;

	tool_init(argv[0]);
	if (system("command -v python3 >/dev/null 2>&1"))
		tap_skip_all("python3 is needed to parse the JSON");
	if (!mkdtemp(root))
		tap_bail("mkdtemp");
	snprintf(file, sizeof(file), "%s/model.bin", root);
	f = fopen(file, "w");
	if (!f)
		tap_bail("fopen");
	fprintf(f, "%s", "some bytes standing in for a model\n");
	fclose(f);

	snprintf(args, sizeof(args), "--json %s", file);
	st = tool_run("p2pio-check", args, &out);
	tap_ok(st == 0 || st == 1, "--json FILE exits 0 or 1 (got %d)", st);
	ok = tool_json_ok(out);
	tap_ok(ok == 1, "its output is JSON");
	tool_json_eval(out, "d[\"p2p_usable\"]", v, sizeof(v));
	tap_ok(strcmp(v, st == 0 ? "True" : "False") == 0, "p2p_usable (%s) agrees with exit %d", v,
	       st);
	tool_json_eval(out, "len(d[\"reasons\"]) > 0 or d[\"p2p_usable\"]", v, sizeof(v));
	tap_ok(strcmp(v, "True") == 0, "a machine that cannot do P2P says why");
	tool_json_eval(out, "d[\"file\"][\"fstype\"] != \"\" and d[\"file\"][\"auto_path\"] != \"\"",
		       v, sizeof(v));
	tap_ok(strcmp(v, "True") == 0, "the file's file system and AUTO path are reported");
	tool_json_eval(out, "d[\"module\"][\"library_abi\"]", v, sizeof(v));
	tap_ok(atoi(v) >= 1, "the library's ABI version is reported (%s)", v);
	free(out);

	st = tool_run("p2pio-check", file, &out);
	tap_ok((st == 0 || st == 1) && strstr(out, "verdict") && strstr(out, "AUTO path"),
	       "the text screen has a verdict and the AUTO path");
	free(out);

	tap_is_int(tool_run("p2pio-check", "/nonexistent/model.gguf 2>/dev/null", NULL), 3,
		   "a missing file is an error: exit 3");
	tap_is_int(tool_run("p2pio-check", "--no-such-option 2>/dev/null", NULL), 2,
		   "a bad option is a usage error: exit 2");
	snprintf(args, sizeof(args), "%s %s 2>/dev/null", file, file);
	tap_is_int(tool_run("p2pio-check", args, NULL), 2, "two files: a usage error, exit 2");
	snprintf(args, sizeof(args), "--gpu 0000:99:00.0 %s 2>/dev/null", file);
	tap_is_int(tool_run("p2pio-check", args, NULL), 3, "an unknown --gpu is an error: exit 3");

	/* A synthetic machine: the verdicts come from its topology. */
	fx_p2p_tree(root, 0);
	snprintf(args, sizeof(args), "--json --sysfs %s/sys", root);
	st = tool_run("p2pio-check", args, &out);
	tap_ok(tool_json_ok(out) == 1, "fixture machine: JSON");
	tool_json_eval(out, "(len(d[\"gpus\"]), len(d[\"nvme\"]), len(d[\"pairs\"]))", v, sizeof(v));
	tap_ok(strcmp(v, "(1, 3, 3)") == 0, "one GPU, three NVMe, three pairs: %s", v);
	tool_json_eval(out, "d[\"pairs\"][0][\"text\"]", v, sizeof(v));
	tap_ok(strstr(v, "same PCIe switch") != NULL, "GPU and nvme under one switch: %s", v);
	tool_json_eval(out, "d[\"pairs\"][0][\"good\"] and d[\"iommu\"][\"enabled\"]", v, sizeof(v));
	tap_ok(strcmp(v, "True") == 0, "that pair is good, and the IOMMU is seen");
	tap_ok(st == 0 || st == 1, "exit %d", st);
	free(out);

	fx_p2p_tree(root, 0x4);
	snprintf(args, sizeof(args), "--sysfs %s/sys --gpu 00000000:03:00.0", root);
	st = tool_run("p2pio-check", args, &out);
	tap_ok(strstr(out, "ACS redirect enabled on bridge 0000:02:01.0") != NULL,
	       "ACS redirect is named on the screen");
	tap_ok(strstr(out, "no GPU/NVMe pair has a usable P2P route") == NULL,
	       "pairs through the root complex still count as a route");
	free(out);

	fx_rm(root);
	return tap_exit();
}
