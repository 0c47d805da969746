/* SPDX-License-Identifier: MIT */
/*
 * path.h - the operations every I/O path provides, and how the engine finds the paths;
 * private to libp2pio.
 *
 * The engine (ctx.c, file.c, engine.c, mem.c) reaches a path only through its
 * struct p2pio_path_ops, as the kernel reaches a driver through its file_operations. A path
 * is one file under engine/paths/ that fills the table in; engine/paths/registry.c lists the
 * tables, in the order AUTO prefers them (fastest first). Adding a path: a new value in
 * enum p2pio_path (the public header), a new file that fills a table in, one line in the
 * registry. Documentation/engine.md says what each operation must do.
 */
#ifndef P2PIO_PATH_H
#define P2PIO_PATH_H

#include <stdbool.h>
#include <stddef.h>

#include "internal.h"

struct p2pio_ctx;
struct p2pio_file;
struct p2pio_buf;
struct p2pio_op;
struct p2pio_queue;

/*
 * Every operation but @submit and @start may be NULL: the path has nothing to do there (or,
 * for @file_open and @op_ok, accepts every file and every read).
 */
struct p2pio_path_ops {
	enum p2pio_path id;		/* its slot in the context, the file and the statistics */
	const char *name;		/* p2pio_path_name() */
	const char *auto_why;		/* the file's reason when AUTO picks this path */
	/*
	 * Where a read goes that this path cannot take (@op_ok said no). P2PIO_PATH_AUTO: no
	 * fallback; @op_ok must then accept every read. The fallbacks of a file's path are also
	 * opened on the file (their @file_open result is ignored), so they are ready.
	 */
	enum p2pio_path fallback;

	/*
	 * Per context. @start runs once, on first use, under ctx->lock; on success *@privp is
	 * the path's state on @ctx (ctx->path_priv[id]), handed to the other operations. On
	 * failure it has freed what it made. @stop runs at p2pio_ctx_destroy(): it waits for
	 * what is queued to complete and frees the state.
	 */
	int (*start)(struct p2pio_ctx *ctx, void **privp);
	void (*stop)(void *priv);

	/*
	 * Per file. @file_open: can @f take this path? Sets up the path's per-file state, or
	 * fills @why (a reason the caller will read, starting with the path's name in capitals)
	 * and returns -errno. It may find the file open on the path already (as the fallback of
	 * a path AUTO passed by): then it returns 0. A path that needs its context state here
	 * gets it from p2pio_path_start(). @auto_pass (AUTO only, after @file_open accepted @f): should AUTO
	 * pass this path by anyway, for the next one? Fills @why_not (this path's reason) and
	 * @why (the file's reason for the path AUTO takes instead) when it does.
	 * @file_close undoes @file_open; it is called on every file, opened by the path or not.
	 * @file_info fills in the path's fields of p2pio_path_info().
	 */
	int (*file_open)(struct p2pio_file *f, char *why, size_t why_len);
	bool (*auto_pass)(struct p2pio_file *f, char *why_not, char *why, size_t why_len);
	void (*file_close)(struct p2pio_file *f);
	void (*file_info)(const struct p2pio_file *f, struct p2pio_path_info *info);

	/*
	 * Per read. @op_ok: can this read (of a file open on the path) take it? A false with
	 * @why filled is recorded as the path's reason on the file; a false with @why empty is
	 * silent. @submit queues the read: the path holds the first reference (op->pending) and
	 * drops it (p2pio_op_put()) once it has handed out the last piece; a nonzero return
	 * means nothing was queued and fails the read.
	 */
	bool (*op_ok)(struct p2pio_op *op, char *why, size_t why_len);
	int (*submit)(void *priv, struct p2pio_op *op);
	/*
	 * Optional: @submit for @n reads at once (one p2pio_submit() of many requests): the
	 * path queues them all or none (a nonzero return fails every one), so that its
	 * threads are woken and its lock taken once, not once per read (BOUNCE, POSIX), or
	 * so that it may order them (P2P sends the urgent ones first). It may reorder @ops,
	 * and must not touch an op once it has handed it on: the op may complete and be
	 * freed at once.
	 */
	int (*submit_many)(void *priv, struct p2pio_op **ops, unsigned int n);

	/*
	 * Optional: p2pio_cancel(). If exactly @n reads of queue @q tagged @tag wait in the
	 * path's queue with no piece handed out, unlink them onto *@out (through ->next),
	 * still holding the path's reference, and return @n; else change nothing and return
	 * 0. P2P withdraws only the plain reads it holds back (not yet sent to the device).
	 */
	unsigned int (*withdraw)(void *priv, const struct p2pio_queue *q, uint64_t tag,
				 unsigned int n, struct p2pio_op **out);
	/*
	 * Optional: p2pio_hasten(). The reads of queue @q tagged @tag that wait in the path's
	 * queue and are not urgent become urgent (p2pio_opq_hasten()); returns how many. P2P
	 * sends the ones it holds back at once.
	 */
	unsigned int (*hasten)(void *priv, const struct p2pio_queue *q, uint64_t tag);
	/* Per buffer, before p2pio_buf_free() frees it: let go of what the path holds on it. */
	void (*buf_release)(void *priv, struct p2pio_buf *buf);
};

/* registry.c: every path, in AUTO's order of preference; NULL-terminated. */
P2PIO_HIDDEN extern const struct p2pio_path_ops *const p2pio_paths[];
/* The table of @path, NULL for AUTO or an unknown value. */
P2PIO_HIDDEN const struct p2pio_path_ops *p2pio_path_ops(enum p2pio_path path);

/* ctx.c: @ops's state on @ctx, started on first use. Returns 0 or @start's -errno. */
P2PIO_HIDDEN int p2pio_path_start(struct p2pio_ctx *ctx, const struct p2pio_path_ops *ops,
				  void **privp);
/* ctx.c: @ops's state on @ctx if it has started, else NULL. */
P2PIO_HIDDEN void *p2pio_path_priv(struct p2pio_ctx *ctx, const struct p2pio_path_ops *ops);

/* The tables, for the registry only. */
P2PIO_HIDDEN extern const struct p2pio_path_ops p2pio_p2p_ops;
P2PIO_HIDDEN extern const struct p2pio_path_ops p2pio_bounce_ops;
P2PIO_HIDDEN extern const struct p2pio_path_ops p2pio_posix_ops;

#endif /* P2PIO_PATH_H */
