// SPDX-License-Identifier: MIT
/*
 * test-engine-path: which path a file takes and why (p2pio_path_info()): AUTO without the
 * module, forced paths, the page-cache check, per-read fallbacks.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine_fixture.h"
#include "tap.h"

#define FILE_SIZE (1u << 20)

static char path[PATH_MAX];

static enum p2pio_path open_path(uint32_t ctx_flags, enum p2pio_path forced,
				 struct p2pio_path_info *info, int *ret, char *msg)
{
	struct p2pio_error err = { 0 };
	struct p2pio_file *f = NULL;
	struct p2pio_ctx *ctx = efx_host_ctx(P2PIO_PATH_AUTO, 0, ctx_flags);
	enum p2pio_path p = P2PIO_PATH_AUTO;

	info->size = sizeof(*info);
	*ret = p2pio_file_open(ctx, path, forced, &f, &err);
	strcpy(msg, err.msg);
	if (!*ret) {
		p2pio_path_info(f, info);
		p = info->path;
	}
	p2pio_file_close(f);
	p2pio_ctx_destroy(ctx);
	return p;
}

int main(void)
{
	struct p2pio_path_info info;
	bool have_module = access("/dev/p2pio", F_OK) == 0;
	char msg[256];
	int ret;

	tap_plan(10);
	if (efx_make_file(path, FILE_SIZE))
		tap_bail("cannot create the test file");

	/* Warm (just written): AUTO reads through the page cache. */
	tap_ok(open_path(0, 0, &info, &ret, msg) == P2PIO_PATH_POSIX,
	       "AUTO on a file in the page cache takes POSIX (%s)", info.why);
	tap_ok(strstr(info.why_not[P2PIO_PATH_BOUNCE], "page cache") != NULL,
	       "... and says why not BOUNCE: \"%s\"", info.why_not[P2PIO_PATH_BOUNCE]);
	if (have_module)
		tap_skip(1, "/dev/p2pio exists on this machine");
	else
		tap_ok(strcmp(info.why_not[P2PIO_PATH_P2P],
			      "P2P: /dev/p2pio not present (module not loaded)") == 0,
		       "... and why not P2P: \"%s\"", info.why_not[P2PIO_PATH_P2P]);

	/* Cold: AUTO takes O_DIRECT. */
	efx_drop_cache(path);
	tap_ok(open_path(0, 0, &info, &ret, msg) == P2PIO_PATH_BOUNCE,
	       "AUTO on a cold file takes BOUNCE (%s)", info.why);
	tap_ok(info.dio_align >= 512 && !(info.dio_align & (info.dio_align - 1)),
	       "O_DIRECT alignment %u reported", info.dio_align);
	tap_ok(info.why_not[P2PIO_PATH_BOUNCE][0] == 0 && info.why_not[P2PIO_PATH_POSIX][0] == 0,
	       "no reasons recorded against the path taken or slower ones");

	/* The page-cache check can be turned off. */
	tap_ok(open_path(P2PIO_CTX_NO_WARM_CHECK, 0, &info, &ret, msg) == P2PIO_PATH_BOUNCE,
	       "with P2PIO_CTX_NO_WARM_CHECK, AUTO takes BOUNCE on a warm file");

	/* Forcing. */
	tap_ok(open_path(0, P2PIO_PATH_POSIX, &info, &ret, msg) == P2PIO_PATH_POSIX &&
		       !strcmp(info.why, "forced by the caller"),
	       "a forced path is taken and says so");
	if (have_module) {
		tap_skip(2, "/dev/p2pio exists on this machine");
	} else {
		open_path(0, P2PIO_PATH_P2P, &info, &ret, msg);
		tap_is_int(ret, -EOPNOTSUPP, "forcing P2P without the module fails");
		tap_ok(strstr(msg, "/dev/p2pio not present") != NULL, "... saying why: \"%s\"",
		       msg);
	}
	unlink(path);
	return tap_exit();
}
