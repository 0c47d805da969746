// SPDX-License-Identifier: MIT
/*
 * test-host-buf: host memory as the target. A large host buffer is mapped for huge pages
 * (a warm load into host memory faulted in 4 KiB pages and ran at 0.12 of a buffered read
 * into a reused buffer), and a whole-file read into it by each host path lands byte for
 * byte.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_fixture.h"
#include "tap.h"

#define FILE_SIZE (24u << 20)

/* Whether the kernel gives huge pages to regions that ask (madvise or always). */
static bool thp_available(void)
{
	char line[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (!f)
		return false;
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	return strstr(line, "[madvise]") || strstr(line, "[always]");
}

/* The THPeligible field of the mapping that holds @p, or -1 if not found. */
static int thp_eligible(const void *p)
{
	char line[256];
	unsigned long lo, hi;
	uintptr_t a = (uintptr_t)p;
	bool in = false;
	int v = -1;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = a >= lo && a < hi;
			continue;
		}
		if (in && sscanf(line, "THPeligible: %d", &v) == 1)
			break;
	}
	fclose(f);
	return v;
}

int main(void)
{
	struct p2pio_error err = { 0 };
	struct p2pio_file *f = NULL;
	struct p2pio_buf *buf = NULL;
	char path[PATH_MAX];
	struct p2pio_ctx *ctx;
	enum p2pio_path paths[] = { P2PIO_PATH_POSIX, P2PIO_PATH_BOUNCE };
	unsigned int i;
	int64_t bad;
	uint8_t *mem;

	if (efx_make_file(path, FILE_SIZE))
		tap_bail("cannot create the test file");
	for (i = 0; i < 2; i++) {
		const char *name = paths[i] == P2PIO_PATH_POSIX ? "posix" : "bounce";

		ctx = efx_host_ctx(paths[i], 1u << 20, 0);
		if (!ctx)
			tap_bail("no host context");
		tap_ok(!p2pio_file_open(ctx, path, 0, &f, &err), "%s: open (%s)", name, err.msg);
		tap_ok(!p2pio_buf_alloc(ctx, P2PIO_MEM_HOST, FILE_SIZE, &buf, &err),
		       "%s: a %u MiB host buffer", name, FILE_SIZE >> 20);
		mem = buf ? p2pio_buf_host_ptr(buf) : NULL;
		if (thp_available())
			tap_is_int(mem ? thp_eligible(mem) : -1, 1,
				   "%s: the buffer may take huge pages (THPeligible)", name);
		else
			tap_skip(1, "transparent huge pages off on this kernel");
		tap_ok(f && mem && !p2pio_read(f, 0, FILE_SIZE, buf, 0), "%s: whole-file read", name);
		bad = mem ? efx_mismatch(mem, 0, FILE_SIZE) : 0;
		tap_ok(mem && bad < 0, "%s: every byte right (first bad %" PRId64 ")", name, bad);
		p2pio_buf_free(buf);
		p2pio_file_close(f);
		p2pio_ctx_destroy(ctx);
	}
	unlink(path);
	return tap_exit();
}
