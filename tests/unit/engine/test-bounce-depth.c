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
#include <stdbool.h>
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

/*
 * A capped file's read, then a fast file's, in one queue: once the capped read is all
 * handed out, the fast file heads the queue and its reads must go as deep as the
 * context's depth, not only as deep as the workers the capped file's landings happened
 * to wake (a review found 9-11 of 16 before the pop woke the sleepers). Both files in
 * one context, the first opened against a rotational tree, the second against a plain
 * one. Returns the fast file's most reads in flight, or -1.
 */
static int mixed(const char *rot_root, const char *plain_root)
{
	struct p2pio_ctx_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_ctx *ctx = NULL;
	struct p2pio_file *fc = NULL, *fu = NULL;
	struct p2pio_buf *bc = NULL, *bu = NULL;
	struct p2pio_queue *q = NULL;
	struct p2pio_req r[2];
	struct p2pio_cqe c[2];
	int ret = -1, i;

	p2pio_ctx_opts_init(&o);
	o.device = P2PIO_DEVICE_HOST;
	o.path = P2PIO_PATH_BOUNCE;
	o.chunk_size = CHUNK;
	o.threads = 16;
	if (p2pio_ctx_create(&o, &ctx, &err))
		return -1;
	p2pio_sysfs_root = rot_root;
	if (p2pio_file_open(ctx, fpath, 0, &fc, &err))
		goto out;
	p2pio_sysfs_root = plain_root;
	if (p2pio_file_open(ctx, fpath, 0, &fu, &err) ||
	    p2pio_buf_alloc(ctx, P2PIO_MEM_HOST, FILE_SIZE, &bc, &err) ||
	    p2pio_buf_alloc(ctx, P2PIO_MEM_HOST, FILE_SIZE, &bu, &err) ||
	    p2pio_queue_create(ctx, &q))
		goto out;
	efx_drop_cache(fpath);
	memset(r, 0, sizeof(r));
	r[0] = (struct p2pio_req){ .file = fc, .length = 8 * CHUNK, .buf = bc, .tag = 1 };
	r[1] = (struct p2pio_req){ .file = fu, .length = FILE_SIZE, .buf = bu, .tag = 2 };
	if (p2pio_submit(q, r, 2) != 2 || efx_reap(q, c, 2, 20000) != 2)
		goto out;
	for (i = 0; i < 2; i++)
		if (c[i].res)
			goto out;
	if (efx_mismatch(p2pio_buf_host_ptr(bu), 0, FILE_SIZE) >= 0 ||
	    efx_mismatch(p2pio_buf_host_ptr(bc), 0, 8 * CHUNK) >= 0)
		goto out;
	tap_diag("capped file: cap %u, most %u; the other: most %u", fc->bounce_cap,
		 fc->bounce_out_max, fu->bounce_out_max);
	ret = fc->bounce_cap == P2PIO_DEF_ROTATIONAL_DEPTH ? (int)fu->bounce_out_max : -1;
out:
	p2pio_queue_destroy(q);
	p2pio_buf_free(bc);
	p2pio_buf_free(bu);
	p2pio_file_close(fc);
	p2pio_file_close(fu);
	p2pio_ctx_destroy(ctx);
	return ret;
}

/* A fresh directory for a synthetic sysfs tree, in @buf (24 bytes). */
static char *fresh_root(char *buf)
{
	strcpy(buf, "/tmp/p2pio-sysfs-XXXXXX");
	if (!mkdtemp(buf))
		tap_bail("mkdtemp");
	return buf;
}

/* No cap where the tree says nothing: the disk has no @rot (NULL), or no disk at all. */
static void no_cap(bool disk, const char *what)
{
	struct p2pio_path_info pi;
	uint32_t most = 0;
	char root[24];
	int ret;

	fresh_root(root);
	if (disk)
		make_tree(root, NULL);
	p2pio_sysfs_root = root;
	ret = read_all(0, &pi, &most);
	tap_ok(!ret && pi.max_in_flight == 0, "%s: no cap", what);
	tool_rm_dir(root);
}

int main(void)
{
	char root[24], r0[24];
	struct p2pio_path_info pi;
	uint32_t most = 0;
	const char *rots[] = { "1", "0" };
	char disk[32] = "";
	int i, ret;

	tap_plan(14);
	if (efx_make_file(fpath, FILE_SIZE))
		tap_bail("cannot create the test file");
	for (i = 0; i < 2; i++) {
		make_tree(fresh_root(root), rots[i]);
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
	}

	/* A capped file ahead of a fast one in one queue. */
	make_tree(fresh_root(root), "1");
	make_tree(fresh_root(r0), "0");
	ret = mixed(root, r0);
	tap_ok(ret >= 12, "behind a capped file's read, the next file's go 12 or more deep "
	       "(%d of 16)", ret);
	tool_rm_dir(root);
	tool_rm_dir(r0);

	no_cap(true, "no queue/rotational");
	no_cap(false, "device unknown to sysfs");

	/* The disk under a partition answers for it. */
	fresh_root(root);
	fx_file(root, "devices/virtual/block/sdz/queue", "rotational", "1");
	fx_file(root, "devices/virtual/block/sdz/sdz2", "partition", "2");
	fx_devlink(root, "8:242", "sdz/sdz2", "devices/virtual/block");
	fx_devlink(root, "8:240", "sdz", "devices/virtual/block");
	tap_is_int(p2pio_blockdev_rotational(root, 8, 242, disk, sizeof(disk)), 1,
		   "partition sdz2: its disk %s is rotational", disk);
	fx_file(root, "devices/virtual/block/sdz/queue", "rotational", "0");
	tap_is_int(p2pio_blockdev_rotational(root, 8, 240, disk, sizeof(disk)), 0,
		   "disk %s, not rotational now", disk);
	tool_rm_dir(root);
	return tap_exit();
}
