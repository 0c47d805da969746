// SPDX-License-Identifier: MIT
/*
 * op_queue.c - a path's queue of reads with pieces left to hand out (BOUNCE's and POSIX's
 * workers take them from its head): urgent reads first, each kind in the order submitted.
 *
 * An urgent read (P2PIO_REQ_URGENT) is one the caller waits for now; the others may be
 * speculative. The expert cache marks its misses urgent and its prefetches not: with
 * hints several layers ahead (p2pio-moe run --lookahead), a miss queued behind them
 * would wait for every hinted expert of the layers to come before its own bytes are read.
 * An urgent read goes ahead of a read whose first pieces are out already: the pieces in
 * flight go on, the rest are handed out after it. Urgent reads are always a prefix of
 * the queue, ending at @urgent_tail.
 */
#include "engine/engine.h"

void p2pio_opq_push(struct p2pio_opq *q, struct p2pio_op *op)
{
	struct p2pio_op *after = NULL;

	op->begin = op->cur;

	if (op->urgent) {
		after = q->urgent_tail;
		q->urgent_tail = op;
	} else {
		after = q->tail;
	}
	if (after) {
		op->next = after->next;
		after->next = op;
	} else {
		op->next = q->head;
		q->head = op;
	}
	if (!op->next)
		q->tail = op;
}

void p2pio_opq_pop(struct p2pio_opq *q)
{
	struct p2pio_op *op = q->head;

	q->head = op->next;
	if (!q->head)
		q->tail = NULL;
	if (q->urgent_tail == op)
		q->urgent_tail = NULL;
}

/*
 * P2PIO_CTX_URGENT_ALONE: plain pieces wait while urgent ones are read. On storage whose
 * bandwidth the readers share (zram's locks and copies; an SSD's channels), a miss read
 * beside prefetches gets a share of it and the decode waits for the whole miss; alone it
 * gets all of it, and the prefetches, which have time, start again once it is read.
 */
struct p2pio_op *p2pio_opq_next(const struct p2pio_opq *q)
{
	struct p2pio_op *op = q->head;

	if (op && !op->urgent && q->urgent_alone && q->urgent_out)
		return NULL;
	return op;
}

bool p2pio_opq_piece_out(struct p2pio_opq *q, const struct p2pio_op *op)
{
	/* Counted only where it gates (a path's lock per urgent piece read otherwise). */
	if (!op->urgent || !q->urgent_alone)
		return false;
	q->urgent_out++;
	return true;
}

bool p2pio_opq_piece_read(struct p2pio_opq *q, bool urgent)
{
	if (!urgent)
		return false;
	return !--q->urgent_out && q->urgent_alone && q->head;
}

/*
 * Unlinks every read of queue @cq tagged @tag that comes after @after (NULL: from the
 * head) onto *@out, in queue order; returns how many.
 */
static unsigned int opq_unlink_tag(struct p2pio_opq *q, struct p2pio_op *after,
				   const struct p2pio_queue *cq, uint64_t tag,
				   struct p2pio_op **out)
{
	struct p2pio_op *op, *prev = after, *next, *last = NULL;
	unsigned int n = 0;

	*out = NULL;
	for (op = after ? after->next : q->head; op; op = next) {
		next = op->next;
		if (op->q != cq || op->tag != tag) {
			prev = op;
			continue;
		}
		if (prev)
			prev->next = next;
		else
			q->head = next;
		if (q->tail == op)
			q->tail = prev;
		if (q->urgent_tail == op)
			q->urgent_tail = prev && prev->urgent ? prev : NULL;
		op->next = NULL;
		if (last)
			last->next = op;
		else
			*out = op;
		last = op;
		n++;
	}
	return n;
}

/*
 * p2pio_cancel(): all or nothing, so that a caller who counts a load's reads never sees
 * some of the ones it names withdrawn and the others read (it could not tell which).
 */
unsigned int p2pio_opq_withdraw(struct p2pio_opq *q, const struct p2pio_queue *cq,
				uint64_t tag, unsigned int n, struct p2pio_op **out)
{
	struct p2pio_op *op;
	unsigned int found = 0;

	for (op = q->head; op; op = op->next) {
		if (op->q != cq || op->tag != tag)
			continue;
		if (op->cur != op->begin)
			return 0;	/* a piece of it is out */
		found++;
	}
	if (!n || found != n)
		return 0;
	return opq_unlink_tag(q, NULL, cq, tag, out);
}

/*
 * p2pio_hasten(): the reads of a load the caller now waits for (a prefetch whose guess
 * was right) go behind the urgent reads already queued, in their order, and keep their
 * @begin: one with pieces out stays unwithdrawable.
 */
unsigned int p2pio_opq_hasten(struct p2pio_opq *q, const struct p2pio_queue *cq, uint64_t tag,
			      bool *released)
{
	struct p2pio_op *first, *last = NULL, *op;
	bool held = !p2pio_opq_next(q);
	unsigned int n;

	if (released)
		*released = false;
	/* The plain reads: those after the urgent ones. */
	n = opq_unlink_tag(q, q->urgent_tail, cq, tag, &first);
	if (!n)
		return 0;
	for (op = first; op; op = op->next) {
		op->urgent = true;
		last = op;
	}
	if (q->urgent_tail) {
		last->next = q->urgent_tail->next;
		q->urgent_tail->next = first;
	} else {
		last->next = q->head;
		q->head = first;
	}
	if (!last->next)
		q->tail = last;
	q->urgent_tail = last;
	/* A plain head held back (P2PIO_CTX_URGENT_ALONE) that may start now: wake workers. */
	if (released)
		*released = held && p2pio_opq_next(q);
	return n;
}

/*
 * The P2P path's p2pio_hasten(): its queue holds reads not yet sent to the device, which
 * it sends at once when hastened. Every read of queue @cq tagged @tag, in queue order.
 */
unsigned int p2pio_opq_take(struct p2pio_opq *q, const struct p2pio_queue *cq, uint64_t tag,
			    struct p2pio_op **out)
{
	return opq_unlink_tag(q, NULL, cq, tag, out);
}
