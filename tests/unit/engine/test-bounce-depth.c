// SPDX-License-Identifier: MIT
/*
 * test-bounce-depth: a file on a disk that says it is rotational is read a few reads at a
 * time (P2PIO_DEF_ROTATIONAL_DEPTH) where the caller left the queue depth to the library.
 *
 * The engine asks sysfs (p2pio_sysfs_root, pointed here at a synthetic tree) about the
 * disk under the test file's device number. Each case reads a 64 MiB file in 1 MiB
 * chunks with 16 BOUNCE workers into host memory, checks every byte, and compares the
 * most reads the file ever had in flight (the engine's own count) with what the case
 * expects: at most the cap, and the cap reached, on a rotational disk with the default
 * depth; more than the cap (the control: the same reads, the disk not rotational) where
 * nothing holds them back; the path's reason and p2pio_path_info() say which.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine_fixture.h"
#include "placement/sysfs.h"
#include "sysfs_fixture.h"
#include "tap.h"
#include "tool_run.h"

#define CHUNK (1u << 20)
#define FILE_SIZE (64ull << 20)

static char fpath[PATH_MAX];

/* A tree where the test file's device is disk "fakedisk" with queue/rotational @rot. */
static void make_tree(const char *root, const char *rot)
{
	struct stat st;
	char devno[32];

	if (stat(fpath, &st))
		tap_bail("stat of the test file");
	snprintf(devno, sizeof(devno), "%u:%u", major(st.st_dev), minor(st.st_dev));
	fx_file(root, "devices/virtual/block/fakedisk", "size", "100");
	if (rot)
		fx_file(root, "devices/virtual/block/fakedisk/queue", "rotational", rot);
	fx_devlink(root, devno, "fakedisk", "devices/virtual/block");
}

/*
 * Read the whole file with a default-depth host context (or @depth) through BOUNCE; 0 and
 * the file's path info and most reads in flight, or -1.
 */
static int read_all(uint32_t depth, struct p2pio_path_info *pi, uint32_t *out_max)
{
	struct p2pio_ctx_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *ctx = NULL;
	struct p2pio_file *f = NULL;
	struct p2pio_buf *buf = NULL;
	int64_t bad;
	int ret = -1;

	p2pio_ctx_opts_init(&o);
	o.device = P2PIO_DEVICE_HOST;
	o.path = P2PIO_PATH_BOUNCE;
	o.chunk_size = CHUNK;
	o.threads = 16;
	o.queue_depth = depth;
	if (p2pio_ctx_create(&o, &ctx, &err)) {
		tap_diag("context: %s", err.msg);
		return -1;
	}
	efx_drop_cache(fpath);
	if (p2pio_file_open(ctx, fpath, 0, &f, &err) ||
	    p2pio_buf_alloc(ctx, P2PIO_MEM_HOST, FILE_SIZE, &buf, &err)) {
		tap_diag("open: %s", err.msg);
		goto out;
	}
	memset(pi, 0, sizeof(*pi));
	pi->size = sizeof(*pi);
	if (p2pio_path_info(f, pi) || p2pio_read(f, 0, FILE_SIZE, buf, 0)) {
		tap_diag("read failed");
		goto out;
	}
	bad = efx_mismatch(p2pio_buf_host_ptr(buf), 0, FILE_SIZE);
	if (bad >= 0) {
		tap_diag("byte %lld wrong", (long long)bad);
		goto out;
	}
	*out_max = f->bounce_out_max;
	ret = 0;
out:
	p2pio_buf_free(buf);
	p2pio_file_close(f);
	p2pio_ctx_destroy(ctx);
	return ret;
}

int main(void)
{
	char root[] = "/tmp/p2pio-sysfs-XXXXXX";
	struct p2pio_path_info pi;
	uint32_t most = 0;
	const char *rots[] = { "1", "0" };
	int i, ret;

	tap_plan(13);
	if (efx_make_file(fpath, FILE_SIZE))
		tap_bail("cannot create the test file");
	for (i = 0; i < 2; i++) {
		if (!mkdtemp(root))
			tap_bail("mkdtemp");
		make_tree(root, rots[i]);
		p2pio_sysfs_root = root;
		ret = read_all(0, &pi, &most);
		tap_is_int(ret, 0, "rotational %s, default depth: 64 MiB read, every byte right",
			   rots[i]);
		if (i == 0) {
			tap_is_int((int)pi.max_in_flight, P2PIO_DEF_ROTATIONAL_DEPTH,
				   "path info: %u reads in flight", pi.max_in_flight);
			tap_ok(strstr(pi.why, "4 reads in flight (fakedisk is rotational)") != NULL,
			       "the reason says so: %s", pi.why);
			tap_is_int((int)most, P2PIO_DEF_ROTATIONAL_DEPTH,
				   "at most, and at last, %d reads in flight (%u)",
				   P2PIO_DEF_ROTATIONAL_DEPTH, most);
			/* The caller's own depth is the caller's: no cap. */
			ret = read_all(16, &pi, &most);
			tap_ok(!ret && pi.max_in_flight == 0 && !strstr(pi.why, "rotational"),
			       "queue depth 16 set by the caller: no cap (%s)", pi.why);
		} else {
			tap_is_int((int)pi.max_in_flight, 0, "not rotational: no cap");
			tap_ok(!strstr(pi.why, "rotational"), "nor a word of it: %s", pi.why);
			tap_ok(most > P2PIO_DEF_ROTATIONAL_DEPTH,
			       "the same reads go %u deep uncapped (the cap is what held them)", most);
		}
		tool_rm_dir(root);
		strcpy(root, "/tmp/p2pio-sysfs-XXXXXX");
	}

	/* A disk that does not say, and a device number sysfs does not know. */
	if (!mkdtemp(root))
		tap_bail("mkdtemp");
	make_tree(root, NULL);
	p2pio_sysfs_root = root;
	ret = read_all(0, &pi, &most);
	tap_ok(!ret && pi.max_in_flight == 0, "no queue/rotational: no cap");
	tool_rm_dir(root);
	strcpy(root, "/tmp/p2pio-sysfs-XXXXXX");
	if (!mkdtemp(root))
		tap_bail("mkdtemp");
	p2pio_sysfs_root = root;
	ret = read_all(0, &pi, &most);
	tap_ok(!ret && pi.max_in_flight == 0, "device unknown to sysfs: no cap");
	tool_rm_dir(root);

	/* The disk under a partition answers for it. */
	strcpy(root, "/tmp/p2pio-sysfs-XXXXXX");
	if (!mkdtemp(root))
		tap_bail("mkdtemp");
	{
		char disk[32] = "";

		fx_file(root, "devices/virtual/block/sdz/queue", "rotational", "1");
		fx_file(root, "devices/virtual/block/sdz/sdz2", "partition", "2");
		fx_devlink(root, "8:242", "sdz/sdz2", "devices/virtual/block");
		fx_devlink(root, "8:240", "sdz", "devices/virtual/block");
		tap_is_int(p2pio_blockdev_rotational(root, 8, 242, disk, sizeof(disk)), 1,
			   "partition sdz2: its disk %s is rotational", disk);
		fx_file(root, "devices/virtual/block/sdz/queue", "rotational", "0");
		tap_is_int(p2pio_blockdev_rotational(root, 8, 240, disk, sizeof(disk)), 0,
			   "disk %s, not rotational now", disk);
	}
	tool_rm_dir(root);
	return tap_exit();
}
