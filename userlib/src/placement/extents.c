// SPDX-License-Identifier: MIT
/*
 * extents.c - where a file's bytes lie: FIEMAP extents, mapped onto the whole disk's LBAs
 * through the partition start and the logical block size (blockdev.c), per file range.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/fiemap.h>
#include <linux/fs.h>

#include "internal.h"

/* Extents asked for per FIEMAP call: a 4 KiB-ish buffer's worth, repeated as needed. */
#define FIEMAP_BATCH 256
/* No file worth planning has more; stops a file system that never says "last". */
#define EXTENTS_MAX (64u << 20)

struct p2pio_extents {
	struct p2pio_extent *v;
	size_t n, cap;
	uint64_t size;
	char fstype[16];
	struct p2pio_blockdev bd;
};

static const struct {
	uint32_t fiemap;
	uint32_t ours;
} flag_map[] = {
	{ FIEMAP_EXTENT_LAST, P2PIO_EXTENT_LAST },
	{ FIEMAP_EXTENT_UNKNOWN, P2PIO_EXTENT_UNKNOWN },
	{ FIEMAP_EXTENT_DELALLOC, P2PIO_EXTENT_DELALLOC },
	{ FIEMAP_EXTENT_ENCODED, P2PIO_EXTENT_ENCODED },
	{ FIEMAP_EXTENT_DATA_ENCRYPTED, P2PIO_EXTENT_ENCRYPTED },
	{ FIEMAP_EXTENT_NOT_ALIGNED, P2PIO_EXTENT_UNALIGNED },
	{ FIEMAP_EXTENT_DATA_INLINE, P2PIO_EXTENT_INLINE },
	{ FIEMAP_EXTENT_DATA_TAIL, P2PIO_EXTENT_TAIL },
	{ FIEMAP_EXTENT_UNWRITTEN, P2PIO_EXTENT_UNWRITTEN },
	{ FIEMAP_EXTENT_MERGED, P2PIO_EXTENT_MERGED },
	{ FIEMAP_EXTENT_SHARED, P2PIO_EXTENT_SHARED },
};

static uint32_t map_flags(uint32_t f)
{
	uint32_t out = 0;
	size_t i;

	for (i = 0; i < P2PIO_ARRAY_SIZE(flag_map); i++)
		if (f & flag_map[i].fiemap)
			out |= flag_map[i].ours;
	return out;
}

const char *p2pio_extent_flag_reason(uint32_t flag)
{
	flag &= P2PIO_EXTENT_NOT_RAW;
	if (!flag)
		return "";
	switch (flag & -flag) {
	case P2PIO_EXTENT_UNKNOWN:
		return "location unknown to the file system";
	case P2PIO_EXTENT_DELALLOC:
		return "delayed allocation: dirty data with no blocks yet (sync the file)";
	case P2PIO_EXTENT_ENCODED:
		return "encoded (compressed) on disk";
	case P2PIO_EXTENT_ENCRYPTED:
		return "encrypted on disk";
	case P2PIO_EXTENT_UNALIGNED:
		return "not aligned to the device's blocks";
	case P2PIO_EXTENT_INLINE:
		return "stored inline in the inode";
	case P2PIO_EXTENT_TAIL:
		return "packed with other files' tails";
	case P2PIO_EXTENT_UNWRITTEN:
		return "unwritten (fallocated): the disk holds stale bytes, the file reads zeros";
	case P2PIO_EXTENT_SHARED:
		return "shared with another file (reflink): a write may move it";
	default:
		return "a hole: no blocks, the file reads zeros";
	}
}

static const char *fs_name(unsigned long magic)
{
	static const struct {
		unsigned long magic;
		const char *name;
	} names[] = {
		{ 0xEF53, "ext4" },	     { 0x58465342, "xfs" },	  { 0x9123683E, "btrfs" },
		{ 0x794c7630, "overlay" },   { 0x01021994, "tmpfs" },	  { 0x6969, "nfs" },
		{ 0xF2F52010, "f2fs" },	     { 0x2fc12fc1, "zfs" },	  { 0x4d44, "vfat" },
		{ 0x5346544e, "ntfs" },	     { 0x65735546, "fuse" },	  { 0xCA451A4E, "bcachefs" },
		{ 0x858458f6, "ramfs" },     { 0x9fa0, "proc" },	  { 0x62656572, "sysfs" },
	};
	size_t i;

	for (i = 0; i < P2PIO_ARRAY_SIZE(names); i++)
		if (names[i].magic == magic)
			return names[i].name;
	return NULL;
}

static int push_extent(struct p2pio_extents *ext, const struct fiemap_extent *fe)
{
	struct p2pio_extent e = {
		.file_offset = fe->fe_logical,
		.length = fe->fe_length,
		.physical = fe->fe_physical,
		.flags = map_flags(fe->fe_flags),
	};
	const uint32_t same = ~(P2PIO_EXTENT_LAST | P2PIO_EXTENT_MERGED);
	struct p2pio_extent *prev = ext->n ? &ext->v[ext->n - 1] : NULL;

	if (!e.length)
		return 0;
	if (prev && prev->file_offset + prev->length == e.file_offset &&
	    !(e.flags & (P2PIO_EXTENT_UNKNOWN | P2PIO_EXTENT_DELALLOC)) &&
	    prev->physical + prev->length == e.physical && (prev->flags & same) == (e.flags & same)) {
		prev->length += e.length;
		prev->flags |= e.flags & P2PIO_EXTENT_LAST;
		return 0;
	}
	if (ext->n == ext->cap) {
		size_t cap = ext->cap ? ext->cap * 2 : 64;
		struct p2pio_extent *v;

		if (cap > EXTENTS_MAX)
			return -EFBIG;
		v = realloc(ext->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		ext->v = v;
		ext->cap = cap;
	}
	ext->v[ext->n++] = e;
	return 0;
}

static int read_fiemap(int fd, unsigned int flags, struct p2pio_extents *ext,
		       struct p2pio_error *err)
{
	size_t sz = sizeof(struct fiemap) + FIEMAP_BATCH * sizeof(struct fiemap_extent);
	struct fiemap *fm = malloc(sz);
	uint64_t start = 0;
	int ret = 0;

	if (!fm)
		return -ENOMEM;
	for (;;) {
		const struct fiemap_extent *last;
		uint32_t i;

		memset(fm, 0, sz);
		fm->fm_start = start;
		fm->fm_length = FIEMAP_MAX_OFFSET - start;
		fm->fm_flags = (flags & P2PIO_EXTENTS_SYNC) ? FIEMAP_FLAG_SYNC : 0;
		fm->fm_extent_count = FIEMAP_BATCH;
		if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
			ret = (errno == ENOTTY || errno == EOPNOTSUPP) ? -EOPNOTSUPP : -errno;
			p2pio_set_error(err, ret, P2PIO_NO_OFFSET,
					"FIEMAP failed on this %s file system: %s",
					ext->fstype, strerror(-ret));
			break;
		}
		if (!fm->fm_mapped_extents)
			break;
		for (i = 0; i < fm->fm_mapped_extents && i < FIEMAP_BATCH; i++) {
			ret = push_extent(ext, &fm->fm_extents[i]);
			if (ret) {
				p2pio_set_error(err, ret, fm->fm_extents[i].fe_logical,
						"too many extents");
				goto out;
			}
		}
		last = &fm->fm_extents[fm->fm_mapped_extents - 1];
		if ((last->fe_flags & FIEMAP_EXTENT_LAST) ||
		    last->fe_logical + last->fe_length <= start ||
		    last->fe_logical + last->fe_length < last->fe_logical)
			break;
		start = last->fe_logical + last->fe_length;
	}
out:
	free(fm);
	return ret;
}

int p2pio_extents_open(int fd, unsigned int flags, struct p2pio_extents **out,
		       struct p2pio_error *err)
{
	struct p2pio_extents *ext;
	struct statfs sfs;
	struct stat st;
	const char *fs;
	int ret;

	*out = NULL;
	if (flags & ~P2PIO_EXTENTS_SYNC)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "unknown flags 0x%x", flags);
	if (fstat(fd, &st) < 0 || fstatfs(fd, &sfs) < 0)
		return p2pio_set_error(err, -errno, P2PIO_NO_OFFSET, "stat: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "not a regular file");
	ext = calloc(1, sizeof(*ext));
	if (!ext)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	ext->size = (uint64_t)st.st_size;
	fs = fs_name((unsigned long)sfs.f_type);
	if (fs)
		snprintf(ext->fstype, sizeof(ext->fstype), "%s", fs);
	else
		snprintf(ext->fstype, sizeof(ext->fstype), "0x%lx", (unsigned long)sfs.f_type);

	ret = p2pio_blockdev_probe("/sys", major(st.st_dev), minor(st.st_dev), &ext->bd, err);
	if (ret)
		goto out_free;
	ret = read_fiemap(fd, flags, ext, err);
	if (ret)
		goto out_free;
	*out = ext;
	return 0;

out_free:
	p2pio_extents_free(ext);
	return ret;
}

int p2pio_extents_open_path(const char *path, unsigned int flags, struct p2pio_extents **out,
			    struct p2pio_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ret;

	*out = NULL;
	if (fd < 0)
		return p2pio_set_error(err, -errno, P2PIO_NO_OFFSET, "%s: %s", path, strerror(errno));
	ret = p2pio_extents_open(fd, flags, out, err);
	close(fd);
	return ret;
}

void p2pio_extents_free(struct p2pio_extents *ext)
{
	if (!ext)
		return;
	free(ext->v);
	free(ext);
}

size_t p2pio_extents_count(const struct p2pio_extents *ext)
{
	return ext->n;
}

const struct p2pio_extent *p2pio_extents_get(const struct p2pio_extents *ext, size_t i)
{
	return i < ext->n ? &ext->v[i] : NULL;
}

const struct p2pio_blockdev *p2pio_extents_device(const struct p2pio_extents *ext)
{
	return &ext->bd;
}

const char *p2pio_extents_fstype(const struct p2pio_extents *ext)
{
	return ext->fstype;
}

uint64_t p2pio_extents_file_size(const struct p2pio_extents *ext)
{
	return ext->size;
}

/* First extent that ends after @off (extents are sorted and disjoint). */
static size_t first_after(const struct p2pio_extents *ext, uint64_t off)
{
	size_t lo = 0, hi = ext->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct p2pio_extent *e = &ext->v[mid];

		if (e->file_offset + e->length <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void make_run(const struct p2pio_extents *ext, const struct p2pio_extent *e, uint64_t off,
		     uint64_t len, struct p2pio_lba_run *r)
{
	uint32_t lbs = ext->bd.lba_size;

	memset(r, 0, sizeof(*r));
	r->file_offset = off;
	r->length = len;
	if (!e) {
		r->flags = P2PIO_EXTENT_HOLE;
		return;
	}
	r->flags = e->flags & ~P2PIO_EXTENT_LAST;
	if (e->flags & (P2PIO_EXTENT_UNKNOWN | P2PIO_EXTENT_DELALLOC))
		return;
	r->disk_offset = e->physical + (off - e->file_offset) + ext->bd.part_start;
	if (lbs) {
		r->lba = r->disk_offset / lbs;
		r->nlb = (r->disk_offset + len + lbs - 1) / lbs - r->lba;
	}
}

/* Calls @fn for each run of [@off, @off+@len) clipped to the file; returns the count. */
static size_t walk_runs(const struct p2pio_extents *ext, uint64_t off, uint64_t len,
			void (*fn)(const struct p2pio_lba_run *r, void *arg), void *arg)
{
	uint64_t end, cur = off;
	struct p2pio_lba_run r;
	size_t i, count = 0;

	if (off >= ext->size)
		return 0;
	end = (len > ext->size - off) ? ext->size : off + len;
	for (i = first_after(ext, off); cur < end; i++) {
		const struct p2pio_extent *e = i < ext->n ? &ext->v[i] : NULL;
		uint64_t estart = e ? e->file_offset : end;

		if (estart > cur) {
			uint64_t hole_end = estart < end ? estart : end;

			make_run(ext, NULL, cur, hole_end - cur, &r);
			fn(&r, arg);
			count++;
			cur = hole_end;
		}
		if (!e || cur >= end)
			break;
		{
			uint64_t eend = e->file_offset + e->length;
			uint64_t piece_end = eend < end ? eend : end;

			make_run(ext, e, cur, piece_end - cur, &r);
			fn(&r, arg);
			count++;
			cur = piece_end;
		}
	}
	return count;
}

struct collect {
	struct p2pio_lba_run *runs;
	size_t max, n;
};

static void collect_run(const struct p2pio_lba_run *r, void *arg)
{
	struct collect *c = arg;

	if (c->n < c->max)
		c->runs[c->n] = *r;
	c->n++;
}

ssize_t p2pio_extents_lba_runs(const struct p2pio_extents *ext, uint64_t offset, uint64_t len,
			       struct p2pio_lba_run *runs, size_t max)
{
	struct collect c = { .runs = runs, .max = runs ? max : 0 };

	if (!ext)
		return -EINVAL;
	return (ssize_t)walk_runs(ext, offset, len, collect_run, &c);
}

struct summarise {
	struct p2pio_frag_summary *s;
	uint64_t prev_disk_end;
	bool have_prev;
};

static void summarise_run(const struct p2pio_lba_run *r, void *arg)
{
	struct summarise *st = arg;
	struct p2pio_frag_summary *s = st->s;
	uint32_t bad = r->flags & P2PIO_EXTENT_NOT_RAW;

	s->bytes += r->length;
	s->not_raw_flags |= bad;
	if (bad) {
		if (bad & P2PIO_EXTENT_HOLE)
			s->hole_bytes += r->length;
		else if (bad & P2PIO_EXTENT_UNWRITTEN)
			s->unwritten_bytes += r->length;
		else if (bad & P2PIO_EXTENT_DELALLOC)
			s->delalloc_bytes += r->length;
		else
			s->other_bytes += r->length;
		st->have_prev = false;
		return;
	}
	s->mapped_bytes += r->length;
	/* A run that continues the previous one on the disk is not a new fragment. */
	if (!st->have_prev || r->disk_offset != st->prev_disk_end)
		s->runs++;
	st->prev_disk_end = r->disk_offset + r->length;
	st->have_prev = true;
	if (r->length > s->largest_run)
		s->largest_run = r->length;
}

int p2pio_extents_summary(const struct p2pio_extents *ext, uint64_t offset, uint64_t len,
			  struct p2pio_frag_summary *out)
{
	struct summarise st = { .s = out };

	if (!ext || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	walk_runs(ext, offset, len, summarise_run, &st);
	if (out->mapped_bytes)
		out->runs_per_gib = (double)out->runs * (double)(1ull << 30) / (double)out->mapped_bytes;
	return 0;
}
