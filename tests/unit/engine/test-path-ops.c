// SPDX-License-Identifier: MIT
/*
 * test-path-ops: the registry of I/O paths (engine/paths/registry.c) is one the engine can
 * dispatch through: every path of enum p2pio_path is registered once, fills in the
 * operations the engine calls unconditionally, and its chain of fallbacks ends at a path
 * that takes every read.
 */
#include <string.h>

#include "engine/path.h"
#include "tap.h"

int main(void)
{
	const struct p2pio_path_ops *ops, *fb;
	unsigned int i, n = 0, hops;
	bool seen[P2PIO_PATH_NR] = { false };

	tap_plan_lazy();
	for (i = 0; (ops = p2pio_paths[i]); i++, n++) {
		tap_ok(ops->id > P2PIO_PATH_AUTO && ops->id < P2PIO_PATH_NR && !seen[ops->id],
		       "%s: id %d is a path and registered once", ops->name, (int)ops->id);
		if (ops->id > P2PIO_PATH_AUTO && ops->id < P2PIO_PATH_NR)
			seen[ops->id] = true;
		tap_ok(ops->name && ops->auto_why && ops->start && ops->submit,
		       "%s: name, AUTO's reason, start and submit filled in", ops->name);
		tap_ok(p2pio_path_ops(ops->id) == ops &&
			       !strcmp(p2pio_path_name(ops->id), ops->name),
		       "%s: found by its id and named by p2pio_path_name()", ops->name);
		/* Every read finds a path: the chain ends at one without @op_ok. */
		fb = ops;
		for (hops = 0; fb && fb->op_ok && hops < P2PIO_PATH_NR; hops++)
			fb = p2pio_path_ops(fb->fallback);
		tap_ok(fb && !fb->op_ok, "%s: fallbacks end at %s, which takes every read",
		       ops->name, fb ? fb->name : "nothing");
	}
	tap_is_int((int)n, P2PIO_PATH_NR - 1, "every path but AUTO is registered");
	tap_ok(!p2pio_paths[n - 1]->auto_pass && !p2pio_paths[n - 1]->file_open,
	       "AUTO's last resort (%s) takes every file", p2pio_paths[n - 1]->name);
	tap_ok(!p2pio_path_ops(P2PIO_PATH_AUTO) &&
		       !strcmp(p2pio_path_name(P2PIO_PATH_AUTO), "auto") &&
		       !strcmp(p2pio_path_name(P2PIO_PATH_NR), "?"),
	       "AUTO is no path; unknown values are named \"?\"");
	return tap_exit();
}
