/* SPDX-License-Identifier: MIT */
/*
 * gguf_write.h - private pieces of the GGUF writer shared with repack: the double-buffered
 * sequential output and atomic creation of files.
 */
#ifndef P2PIO_GGUF_WRITE_H
#define P2PIO_GGUF_WRITE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* Size of each of the two output buffers. */
#define P2PIO_WOUT_BUF (8u << 20)

/*
 * Double-buffered sequential output to an fd: the caller fills one buffer (through
 * p2pio_wout_space()/p2pio_wout_commit() or p2pio_wout_copy()) while a thread writes the
 * other, so that generating data and writing them overlap.
 */
struct p2pio_wout {
	int fd;
	uint8_t *buf[2];
	size_t len[2];
	int cur;		/* the buffer being filled */
	uint64_t written;	/* bytes handed to the output so far, in order */
	pthread_t thread;
	bool thread_up;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pending;		/* index of the buffer the thread is to write, or -1 */
	bool quit;
	int error;		/* first write error, as -errno */
};

/* Start the output thread; 0 or -errno. */
P2PIO_HIDDEN int p2pio_wout_init(struct p2pio_wout *o, int fd);

/* Free room in the buffer being filled (flushing it first when full); 0 or the write error. */
P2PIO_HIDDEN int p2pio_wout_space(struct p2pio_wout *o, uint8_t **p, size_t *room);

/* Account for @n bytes the caller put at the pointer p2pio_wout_space() gave. */
P2PIO_HIDDEN void p2pio_wout_commit(struct p2pio_wout *o, size_t n);

/* Append @len bytes from @src, or zeros when @src is NULL. */
P2PIO_HIDDEN int p2pio_wout_copy(struct p2pio_wout *o, const void *src, uint64_t len);

/* Hand the current buffer to the thread. */
P2PIO_HIDDEN int p2pio_wout_flush(struct p2pio_wout *o);

/* Write out everything, stop the thread, free the buffers; 0 or the first write error. */
P2PIO_HIDDEN int p2pio_wout_finish(struct p2pio_wout *o);

/* write() all of @len bytes, retrying on EINTR and short writes; 0 or -errno. */
P2PIO_HIDDEN int p2pio_write_all(int fd, const uint8_t *p, size_t len);

/*
 * Create a new, empty temporary file beside @path (same directory, so that rename() onto
 * @path is atomic), named ".<base>.tmp-<random>", mode 0666 less the umask.
 * Return: the fd (open for writing, close-on-exec), with the name in *@tmp_path (malloc'd);
 * or a negative errno with @err filled.
 */
P2PIO_HIDDEN int p2pio_tmpfile_create(const char *path, char **tmp_path, struct p2pio_error *err);

#endif /* P2PIO_GGUF_WRITE_H */
