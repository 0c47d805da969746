// SPDX-License-Identifier: MIT
/*
 * file.c - files on a context: open, O_DIRECT probe, page-cache residency, path choice.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "engine/engine.h"

/* AUTO prefers buffered reads when at least this share of a sample is in the page cache. */
#define P2PIO_WARM_PERCENT 90
#define P2PIO_WARM_SAMPLES 1024

static const char *p2pio_fs_name(int fd)
{
	struct statfs sfs;

	if (fstatfs(fd, &sfs))
		return "unknown";
	switch ((unsigned long)sfs.f_type) {
	case 0xEF53: return "ext4";
	case 0x58465342: return "xfs";
	case 0x9123683E: return "btrfs";
	case 0x01021994: return "tmpfs";
	case 0x6969: return "nfs";
	case 0x65735546: return "fuse";
	case 0x794C7630: return "overlayfs";
	case 0x2FC12FC1: return "zfs";
	default: return "this file system";
	}
}

/*
 * Open the O_DIRECT twin of @f->fd and learn its alignment; a one-block read proves it
 * works (some file systems accept O_DIRECT at open and fail the read).
 */
static int p2pio_dio_open(struct p2pio_file *f, char *why, size_t why_len)
{
	char proc[64];
	struct statx stx;
	void *blk = NULL;
	ssize_t n;
	int dfd, ret;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
	dfd = open(proc, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (dfd < 0) {
		ret = -errno;
		snprintf(why, why_len, "BOUNCE: O_DIRECT not supported by %s (%s)",
			 p2pio_fs_name(f->fd), strerror(-ret));
		return ret;
	}
	f->dio_align = 4096;
	f->dio_mem_align = 4096;
	if (!statx(dfd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) &&
	    (stx.stx_mask & STATX_DIOALIGN)) {
		if (!stx.stx_dio_offset_align) {
			snprintf(why, why_len, "BOUNCE: O_DIRECT not supported by %s",
				 p2pio_fs_name(f->fd));
			ret = -EOPNOTSUPP;
			goto out_close;
		}
		f->dio_align = stx.stx_dio_offset_align;
		f->dio_mem_align = stx.stx_dio_mem_align > 1 ? stx.stx_dio_mem_align : 1;
	}
	if (f->dio_align > 65536 || f->dio_align & (f->dio_align - 1) ||
	    f->dio_mem_align > 4096 || f->dio_mem_align & (f->dio_mem_align - 1)) {
		snprintf(why, why_len, "BOUNCE: unusual O_DIRECT alignment %u/%u", f->dio_align,
			 f->dio_mem_align);
		ret = -EOPNOTSUPP;
		goto out_close;
	}
	if (f->size) {
		if (posix_memalign(&blk, 4096, f->dio_align)) {
			ret = -ENOMEM;
			snprintf(why, why_len, "BOUNCE: out of memory");
			goto out_close;
		}
		n = pread(dfd, blk, f->dio_align, 0);
		ret = n < 0 ? -errno : 0;
		free(blk);
		if (ret) {
			snprintf(why, why_len, "BOUNCE: O_DIRECT read fails on %s (%s)",
				 p2pio_fs_name(f->fd), strerror(-ret));
			goto out_close;
		}
	}
	f->dfd = dfd;
	return 0;

out_close:
	close(dfd);
	return ret;
}

/* Percentage of a sample of the file's pages that sit in the page cache. */
static int p2pio_resident_percent(struct p2pio_file *f)
{
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE), npages, step, i, hits = 0, n = 0;
	unsigned char vec;
	char *map;

	if (!f->size)
		return 100;
	map = mmap(NULL, f->size, PROT_READ, MAP_SHARED, f->fd, 0);
	if (map == MAP_FAILED)
		return 0;
	npages = (f->size + pg - 1) / pg;
	step = npages > P2PIO_WARM_SAMPLES ? npages / P2PIO_WARM_SAMPLES : 1;
	for (i = 0; i < npages; i += step, n++)
		if (!mincore(map + i * pg, 1, &vec) && (vec & 1))
			hits++;
	munmap(map, f->size);
	return (int)(hits * 100 / n);
}

void p2pio_file_note(struct p2pio_file *f, enum p2pio_path path, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&f->lock);
	va_start(ap, fmt);
	vsnprintf(f->why_not[path], sizeof(f->why_not[path]), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&f->lock);
}

/* Decide the file's path: the forced one if it qualifies, else the fastest that does. */
static int p2pio_file_choose(struct p2pio_file *f, enum p2pio_path want, struct p2pio_error *err)
{
	char why[P2PIO_REASON_LEN];
	bool auto_ = want == P2PIO_PATH_AUTO;
	int ret, pct;

	if (want == P2PIO_PATH_P2P || auto_) {
		ret = p2pio_p2p_file_open(f, why, sizeof(why));
		if (!ret) {
			/* Reads into memory P2P cannot reach fall back to O_DIRECT if it works. */
			p2pio_dio_open(f, why, sizeof(why));
			f->path = P2PIO_PATH_P2P;
			snprintf(f->why, sizeof(f->why), "%s",
				 auto_ ? "AUTO: the module accepted the file" :
					 "forced by the caller");
			return 0;
		}
		if (!auto_)
			return p2pio_set_error(err, -EOPNOTSUPP, P2PIO_NO_OFFSET, "%s", why);
		snprintf(f->why_not[P2PIO_PATH_P2P], P2PIO_REASON_LEN, "%s", why);
	}
	if (want == P2PIO_PATH_BOUNCE || auto_) {
		ret = p2pio_dio_open(f, why, sizeof(why));
		if (!ret && auto_ && !(f->ctx->opts.flags & P2PIO_CTX_NO_WARM_CHECK)) {
			pct = p2pio_resident_percent(f);
			if (pct >= P2PIO_WARM_PERCENT) {
				snprintf(f->why_not[P2PIO_PATH_BOUNCE], P2PIO_REASON_LEN,
					 "BOUNCE: %d%% of the file is in the page cache, where buffered reads are faster",
					 pct);
				f->path = P2PIO_PATH_POSIX;
				snprintf(f->why, sizeof(f->why),
					 "AUTO: the file is in the page cache");
				return 0;
			}
		}
		if (!ret) {
			f->path = P2PIO_PATH_BOUNCE;
			snprintf(f->why, sizeof(f->why), "%s",
				 auto_ ? "AUTO: O_DIRECT works on the file" :
					 "forced by the caller");
			return 0;
		}
		if (!auto_)
			return p2pio_set_error(err, -EOPNOTSUPP, P2PIO_NO_OFFSET, "%s", why);
		snprintf(f->why_not[P2PIO_PATH_BOUNCE], P2PIO_REASON_LEN, "%s", why);
	}
	f->path = P2PIO_PATH_POSIX;
	snprintf(f->why, sizeof(f->why), "%s",
		 auto_ ? "AUTO: buffered reads work everywhere" : "forced by the caller");
	return 0;
}

int p2pio_file_open_fd(struct p2pio_ctx *ctx, int fd, unsigned int flags,
		       struct p2pio_file **filep, struct p2pio_error *err)
{
	enum p2pio_path want;
	struct p2pio_file *f;
	struct stat st;
	int ret;

	*filep = NULL;
	if (flags >= P2PIO_PATH_NR)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "open flags 0x%x unknown",
				       flags);
	want = flags ? (enum p2pio_path)flags : ctx->opts.path;
	if (fstat(fd, &st))
		return p2pio_set_error(err, -errno, P2PIO_NO_OFFSET, "fd %d: %s", fd,
				       strerror(errno));
	if (!S_ISREG(st.st_mode))
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "fd %d is not a regular file",
				       fd);
	if ((fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY)
		return p2pio_set_error(err, -EBADF, P2PIO_NO_OFFSET, "fd %d is not open for reading",
				       fd);
	f = calloc(1, sizeof(*f));
	if (!f)
		return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
	f->ctx = ctx;
	f->dfd = -1;
	f->size = (uint64_t)st.st_size;
	pthread_mutex_init(&f->lock, NULL);
	f->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (f->fd < 0) {
		ret = p2pio_set_error(err, -errno, P2PIO_NO_OFFSET, "dup of fd %d: %s", fd,
				      strerror(errno));
		goto out_free;
	}
	ret = p2pio_file_choose(f, want, err);
	if (ret)
		goto out_close;
	/*
	 * Start the path the file will read through now, so that the first read does not pay
	 * for its threads and pinned staging (a 96 MiB cuMemHostAlloc alone is tens of
	 * milliseconds, a sixth of a whole 5 GB load on an H200). A path that cannot start
	 * here fails its first read instead, with the same error.
	 */
	if (f->path == P2PIO_PATH_BOUNCE)
		p2pio_bounce_prepare(ctx);
	else if (f->path == P2PIO_PATH_POSIX)
		p2pio_posix_prepare(ctx);
	*filep = f;
	return 0;

out_close:
	if (f->dfd >= 0)
		close(f->dfd);
	close(f->fd);
out_free:
	pthread_mutex_destroy(&f->lock);
	free(f);
	return ret;
}

int p2pio_file_open(struct p2pio_ctx *ctx, const char *path, unsigned int flags,
		    struct p2pio_file **filep, struct p2pio_error *err)
{
	int fd, ret;

	*filep = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return p2pio_set_error(err, -errno, P2PIO_NO_OFFSET, "%s: %s", path,
				       strerror(errno));
	ret = p2pio_file_open_fd(ctx, fd, flags, filep, err);
	close(fd);
	return ret;
}

void p2pio_file_close(struct p2pio_file *f)
{
	if (!f)
		return;
	p2pio_p2p_file_close(f);
	if (f->dfd >= 0)
		close(f->dfd);
	close(f->fd);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

uint64_t p2pio_file_size(const struct p2pio_file *f)
{
	return f->size;
}

int p2pio_path_info(struct p2pio_file *f, struct p2pio_path_info *info)
{
	struct p2pio_path_info tmp;
	size_t n;

	if (!f || !info || info->size < sizeof(size_t))
		return -EINVAL;
	memset(&tmp, 0, sizeof(tmp));
	tmp.path = f->path;
	tmp.dio_align = f->dfd >= 0 ? f->dio_align : 0;
	tmp.lba_size = f->p2p_ok ? f->lba_size : 0;
	pthread_mutex_lock(&f->lock);
	memcpy(tmp.why, f->why, sizeof(tmp.why));
	memcpy(tmp.why_not, f->why_not, sizeof(tmp.why_not));
	pthread_mutex_unlock(&f->lock);
	n = info->size < sizeof(tmp) ? info->size : sizeof(tmp);
	memcpy((char *)info + sizeof(size_t), (char *)&tmp + sizeof(size_t), n - sizeof(size_t));
	return 0;
}
