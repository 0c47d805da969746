// SPDX-License-Identifier: MIT
/*
 * gguf_write_out.c - the GGUF writer's output: two large buffers, one filled by the caller
 * while a thread writes the other with plain sequential write()s, and atomic creation of
 * the temporary file a new model is written to.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "gguf/writer.h"

int p2pio_write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void *wout_thread(void *arg)
{
	struct p2pio_wout *o = arg;

	pthread_mutex_lock(&o->lock);
	for (;;) {
		int idx, ret;

		while (o->pending < 0 && !o->quit)
			pthread_cond_wait(&o->cond, &o->lock);
		if (o->pending < 0)
			break;
		idx = o->pending;
		pthread_mutex_unlock(&o->lock);
		ret = o->error ? 0 : p2pio_write_all(o->fd, o->buf[idx], o->len[idx]);
		pthread_mutex_lock(&o->lock);
		if (ret && !o->error)
			o->error = ret;
		o->len[idx] = 0;
		o->pending = -1;
		pthread_cond_broadcast(&o->cond);
	}
	pthread_mutex_unlock(&o->lock);
	return NULL;
}

int p2pio_wout_init(struct p2pio_wout *o, int fd)
{
	int ret;

	memset(o, 0, sizeof(*o));
	o->fd = fd;
	o->pending = -1;
	/* Page-aligned buffers: friendly to the kernel's copy and to O_DIRECT file descriptors. */
	if (posix_memalign((void **)&o->buf[0], 4096, P2PIO_WOUT_BUF))
		return -ENOMEM;
	if (posix_memalign((void **)&o->buf[1], 4096, P2PIO_WOUT_BUF)) {
		free(o->buf[0]);
		return -ENOMEM;
	}
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->cond, NULL);
	ret = pthread_create(&o->thread, NULL, wout_thread, o);
	if (ret) {
		pthread_cond_destroy(&o->cond);
		pthread_mutex_destroy(&o->lock);
		free(o->buf[1]);
		free(o->buf[0]);
		return -ret;
	}
	o->thread_up = true;
	return 0;
}

/* Hand the current buffer to the thread (once it is done with the other) and switch. */
int p2pio_wout_flush(struct p2pio_wout *o)
{
	int ret;

	pthread_mutex_lock(&o->lock);
	while (o->pending >= 0)
		pthread_cond_wait(&o->cond, &o->lock);
	ret = o->error;
	if (!ret && o->len[o->cur]) {
		o->pending = o->cur;
		o->cur ^= 1;
		pthread_cond_broadcast(&o->cond);
	}
	pthread_mutex_unlock(&o->lock);
	return ret;
}

/* Wait until everything handed over is written; stop the thread. */
int p2pio_wout_finish(struct p2pio_wout *o)
{
	int ret;

	if (!o->thread_up)
		return 0;
	ret = p2pio_wout_flush(o);
	pthread_mutex_lock(&o->lock);
	while (o->pending >= 0)
		pthread_cond_wait(&o->cond, &o->lock);
	o->quit = true;
	pthread_cond_broadcast(&o->cond);
	if (!ret)
		ret = o->error;
	pthread_mutex_unlock(&o->lock);
	pthread_join(o->thread, NULL);
	pthread_cond_destroy(&o->cond);
	pthread_mutex_destroy(&o->lock);
	free(o->buf[0]);
	free(o->buf[1]);
	o->thread_up = false;
	return ret;
}

/* Free space in the buffer being filled, flushing first when it is full. */
int p2pio_wout_space(struct p2pio_wout *o, uint8_t **p, size_t *room)
{
	int ret;

	if (o->len[o->cur] == P2PIO_WOUT_BUF) {
		ret = p2pio_wout_flush(o);
		if (ret)
			return ret;
	}
	*p = o->buf[o->cur] + o->len[o->cur];
	*room = P2PIO_WOUT_BUF - o->len[o->cur];
	return 0;
}

void p2pio_wout_commit(struct p2pio_wout *o, size_t n)
{
	o->len[o->cur] += n;
	o->written += n;
}

/* Copy @len bytes from @src (or zeros when @src is NULL) to the output. */
int p2pio_wout_copy(struct p2pio_wout *o, const void *src, uint64_t len)
{
	const uint8_t *s = src;

	while (len) {
		uint8_t *p;
		size_t room;
		int ret = p2pio_wout_space(o, &p, &room);

		if (ret)
			return ret;
		if (room > len)
			room = (size_t)len;
		if (s) {
			memcpy(p, s, room);
			s += room;
		} else {
			memset(p, 0, room);
		}
		p2pio_wout_commit(o, room);
		len -= room;
	}
	return 0;
}


int p2pio_tmpfile_create(const char *path, char **tmp_path, struct p2pio_error *err)
{
	const char *base = strrchr(path, '/');
	unsigned int tries;
	uint64_t r;

	base = base ? base + 1 : path;
	for (tries = 0; tries < 100; tries++) {
		char *tmp;
		int fd;

		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			r = (uint64_t)getpid() << 32 ^ (uint64_t)tries << 16 ^ (uint64_t)time(NULL);
		/* Beside the target, so that rename() is atomic; hidden, so nobody picks it up. */
		if (asprintf(&tmp, "%.*s.%s.tmp-%012llx", (int)(base - path), path, base,
			     (unsigned long long)(r & 0xffffffffffffULL)) < 0)
			return p2pio_set_error(err, -ENOMEM, P2PIO_NO_OFFSET, "out of memory");
		/* 0666 less the umask, like any file a program creates. */
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd >= 0) {
			*tmp_path = tmp;
			return fd;
		}
		free(tmp);
		if (errno != EEXIST)
			return p2pio_set_error(err, -errno, P2PIO_NO_OFFSET,
					       "cannot create a temporary file beside %s: %s", path,
					       strerror(errno));
	}
	return p2pio_set_error(err, -EEXIST, P2PIO_NO_OFFSET,
			       "cannot find a free temporary name beside %s", path);
}
