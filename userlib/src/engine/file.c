// SPDX-License-Identifier: MIT
/*
 * file.c - files on a context: open, the choice of path (the forced one, or AUTO's among
 * the registered paths), the reasons.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"

void p2pio_file_note(struct p2pio_file *f, enum p2pio_path path, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&f->lock);
	va_start(ap, fmt);
	vsnprintf(f->why_not[path], sizeof(f->why_not[path]), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&f->lock);
}

/*
 * Open @f on @ops, then on the paths its reads fall back to (whether they take the file or
 * not: a read of it may need them). Fills @why when @ops does not take the file.
 */
static int p2pio_file_try(struct p2pio_file *f, const struct p2pio_path_ops *ops, char *why,
			  size_t why_len)
{
	const struct p2pio_path_ops *fb;
	char fb_why[P2PIO_REASON_LEN];
	int ret;

	ret = ops->file_open ? ops->file_open(f, why, why_len) : 0;
	if (ret)
		return ret;
	for (fb = p2pio_path_ops(ops->fallback); fb; fb = p2pio_path_ops(fb->fallback))
		if (fb->file_open)
			fb->file_open(f, fb_why, sizeof(fb_why));
	return 0;
}

void p2pio_file_why_depth(struct p2pio_file *f)
{
	size_t n = strlen(f->why);

	if (f->path == P2PIO_PATH_BOUNCE && f->bounce_why[0])
		snprintf(f->why + n, sizeof(f->why) - n, "; %s", f->bounce_why);
}

/*
 * Decide the file's path: the forced one if it takes the file, else (AUTO) the first
 * registered path that takes it and does not pass it on.
 */
static int p2pio_file_choose(struct p2pio_file *f, enum p2pio_path want, struct p2pio_error *err)
{
	char why[P2PIO_REASON_LEN], passed[P2PIO_REASON_LEN] = "";
	const struct p2pio_path_ops *ops;
	unsigned int i;

	if (want != P2PIO_PATH_AUTO) {
		ops = p2pio_path_ops(want);
		if (!ops)
			return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET, "path %d unknown",
					       (int)want);
		if (p2pio_file_try(f, ops, why, sizeof(why)))
			return p2pio_set_error(err, -EOPNOTSUPP, P2PIO_NO_OFFSET, "%s", why);
		f->path = ops->id;
		f->forced = true;
		snprintf(f->why, sizeof(f->why), "forced by the caller");
		p2pio_file_why_depth(f);
		return 0;
	}
	for (i = 0; (ops = p2pio_paths[i]); i++) {
		if (p2pio_file_try(f, ops, why, sizeof(why))) {
			snprintf(f->why_not[ops->id], P2PIO_REASON_LEN, "%s", why);
			continue;
		}
		if (ops->auto_pass &&
		    ops->auto_pass(f, f->why_not[ops->id], passed, sizeof(passed)))
			continue;
		f->path = ops->id;
		snprintf(f->why, sizeof(f->why), "%s", passed[0] ? passed : ops->auto_why);
		p2pio_file_why_depth(f);
		return 0;
	}
	return p2pio_set_error(err, -EOPNOTSUPP, P2PIO_NO_OFFSET, "no path takes the file");
}

/* Undo what the paths set up on @f. */
static void p2pio_file_close_paths(struct p2pio_file *f)
{
	const struct p2pio_path_ops *ops;
	unsigned int i;

	for (i = 0; (ops = p2pio_paths[i]); i++)
		if (ops->file_close)
			ops->file_close(f);
}

int p2pio_file_open_fd(struct p2pio_ctx *ctx, int fd, unsigned int flags,
		       struct p2pio_file **filep, struct p2pio_error *err)
{
	enum p2pio_path want;
	void *priv;
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
	p2pio_path_start(ctx, p2pio_path_ops(f->path), &priv);
	*filep = f;
	return 0;

out_close:
	p2pio_file_close_paths(f);
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
	p2pio_file_close_paths(f);
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
	const struct p2pio_path_ops *ops;
	struct p2pio_path_info tmp;
	unsigned int i;
	size_t n;

	if (!f || !info || info->size < sizeof(size_t))
		return -EINVAL;
	memset(&tmp, 0, sizeof(tmp));
	tmp.path = f->path;
	for (i = 0; (ops = p2pio_paths[i]); i++)
		if (ops->file_info)
			ops->file_info(f, &tmp);
	pthread_mutex_lock(&f->lock);
	memcpy(tmp.why, f->why, sizeof(tmp.why));
	memcpy(tmp.why_not, f->why_not, sizeof(tmp.why_not));
	pthread_mutex_unlock(&f->lock);
	n = info->size < sizeof(tmp) ? info->size : sizeof(tmp);
	memcpy((char *)info + sizeof(size_t), (char *)&tmp + sizeof(size_t), n - sizeof(size_t));
	return 0;
}
