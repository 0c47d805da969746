// SPDX-License-Identifier: MIT
/*
 * test-op-queue: a path's queue of reads (engine/op_queue.c) without threads, so that
 * every order and every refusal is decided by the code alone: urgent reads a prefix in
 * their own order, plain ones after in theirs, the head handed out piece by piece and
 * popped, the tail and the urgent tail kept through pops and withdrawals; withdrawing
 * all or none, never a read with a piece out, never another queue's reads; hastening a
 * tag's plain reads to the end of the urgent ones, in order, a piece out or not.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "tap.h"

#define NOPS 16

static struct p2pio_op ops[NOPS];
static struct p2pio_queue qa, qb;	/* only their addresses matter */

static struct p2pio_op *mk(int i, bool urgent, struct p2pio_queue *q, uint64_t tag)
{
	struct p2pio_op *op = &ops[i];

	memset(op, 0, sizeof(*op));
	op->urgent = urgent;
	op->q = q;
	op->tag = tag;
	op->cur = 4096;
	op->end = 4096 + 3 * 4096;
	return op;
}

/* The queue's reads, as indices into ops[], into @out; their number. Checks the links. */
static int walk(const struct p2pio_opq *q, int *out, bool *links_ok)
{
	const struct p2pio_op *op, *last = NULL, *last_urgent = NULL;
	bool plain_seen = false;
	int n = 0;

	*links_ok = true;
	for (op = q->head; op && n < NOPS; op = op->next) {
		out[n++] = (int)(op - ops);
		if (op->urgent) {
			if (plain_seen)
				*links_ok = false;	/* urgent reads must be a prefix */
			last_urgent = op;
		} else {
			plain_seen = true;
		}
		last = op;
	}
	if (q->tail != last || q->urgent_tail != last_urgent)
		*links_ok = false;
	return n;
}

static bool order_is(const struct p2pio_opq *q, const int *want, int nwant)
{
	int got[NOPS], n;
	bool links;

	n = walk(q, got, &links);
	if (!links || n != nwant)
		return false;
	for (int i = 0; i < n; i++)
		if (got[i] != want[i])
			return false;
	return true;
}

/* Hand out one piece of the head, popping it after its last (as the workers do). */
static void take_piece(struct p2pio_opq *q)
{
	struct p2pio_op *op = q->head;

	op->cur += 4096;
	if (op->cur == op->end)
		p2pio_opq_pop(q);
}

int main(void)
{
	struct p2pio_opq q = { 0 };
	struct p2pio_op *out;
	int n;

	tap_plan(34);

	p2pio_opq_push(&q, mk(0, false, &qa, 1));
	p2pio_opq_push(&q, mk(1, false, &qa, 1));
	p2pio_opq_push(&q, mk(2, true, &qa, 2));
	p2pio_opq_push(&q, mk(3, false, &qa, 3));
	p2pio_opq_push(&q, mk(4, true, &qa, 2));
	tap_ok(order_is(&q, (int[]){ 2, 4, 0, 1, 3 }, 5),
	       "urgent reads first in their order, then the plain ones in theirs");

	take_piece(&q);	/* a piece of 2 is out */
	tap_is_int(p2pio_opq_withdraw(&q, &qa, 2, 2, &out), 0,
		   "reads with a piece out are not withdrawn, nor their untouched twin");
	tap_ok(order_is(&q, (int[]){ 2, 4, 0, 1, 3 }, 5), "... and the queue is unchanged");
	take_piece(&q);
	take_piece(&q);	/* 2 is out whole: popped */
	tap_ok(order_is(&q, (int[]){ 4, 0, 1, 3 }, 4), "a read whose last piece is out is popped");

	p2pio_opq_push(&q, mk(5, true, &qa, 5));
	tap_ok(order_is(&q, (int[]){ 4, 5, 0, 1, 3 }, 5), "a new urgent read after the urgent ones");

	tap_is_int(p2pio_opq_withdraw(&q, &qa, 1, 1, &out), 0,
		   "a count below the reads with the tag withdraws nothing");
	tap_is_int(p2pio_opq_withdraw(&q, &qa, 1, 3, &out), 0,
		   "a count above them withdraws nothing");
	tap_is_int(p2pio_opq_withdraw(&q, &qb, 1, 2, &out), 0,
		   "another queue's tag withdraws nothing");
	n = (int)p2pio_opq_withdraw(&q, &qa, 1, 2, &out);
	tap_ok(n == 2 && out && out->next && !out->next->next &&
	       ((out == &ops[0] && out->next == &ops[1]) || (out == &ops[1] && out->next == &ops[0])),
	       "the exact count withdraws both, handed back linked");
	tap_ok(order_is(&q, (int[]){ 4, 5, 3 }, 3), "the queue keeps the others in order");

	n = (int)p2pio_opq_withdraw(&q, &qa, 5, 1, &out);
	tap_ok(n == 1 && out == &ops[5] && order_is(&q, (int[]){ 4, 3 }, 2),
	       "withdrawing the last urgent read moves the urgent tail back");
	p2pio_opq_push(&q, mk(6, true, &qa, 6));
	tap_ok(order_is(&q, (int[]){ 4, 6, 3 }, 3), "... where the next urgent read goes after it");

	n = (int)p2pio_opq_withdraw(&q, &qa, 3, 1, &out);
	tap_ok(n == 1 && order_is(&q, (int[]){ 4, 6 }, 2), "withdrawing the tail moves the tail back");
	n = (int)p2pio_opq_withdraw(&q, &qa, 2, 1, &out);	/* 4, the twin of 2 */
	tap_ok(n == 1 && order_is(&q, (int[]){ 6 }, 1), "withdrawing the head moves the head on");
	p2pio_opq_pop(&q);
	p2pio_opq_push(&q, mk(7, false, &qa, 7));
	p2pio_opq_push(&q, mk(8, true, &qa, 8));
	tap_ok(order_is(&q, (int[]){ 8, 7 }, 2), "emptied and refilled: an urgent read at the head");

	/* Hastening: 8 urgent; 7, 9, 10 (tag 9), 11, 12 (tag 9), 13 (tag 9 of qb) plain. */
	p2pio_opq_push(&q, mk(9, false, &qa, 9));
	p2pio_opq_push(&q, mk(10, false, &qa, 10));
	p2pio_opq_push(&q, mk(11, false, &qa, 9));
	p2pio_opq_push(&q, mk(12, false, &qb, 9));
	tap_is_int(p2pio_opq_hasten(&q, &qa, 99, NULL), 0,
		   "hastening a tag nobody has moves nothing");
	tap_is_int(p2pio_opq_hasten(&q, &qa, 9, NULL), 2,
		   "hastening a tag makes its two plain reads urgent");
	tap_ok(order_is(&q, (int[]){ 8, 9, 11, 7, 10, 12 }, 6),
	       "... after the urgent read queued before, in their order; another queue's untouched");
	tap_is_int(p2pio_opq_hasten(&q, &qa, 9, NULL), 0, "hastening them again moves nothing");
	p2pio_opq_push(&q, mk(13, true, &qa, 13));
	tap_ok(order_is(&q, (int[]){ 8, 9, 11, 13, 7, 10, 12 }, 7),
	       "a new urgent read goes after the hastened ones");
	n = (int)p2pio_opq_hasten(&q, &qb, 9, NULL);
	tap_ok(n == 1 && order_is(&q, (int[]){ 8, 9, 11, 13, 12, 7, 10 }, 7),
	       "hastening the tail moves the tail back");
	while (q.head != &ops[7])
		take_piece(&q);
	take_piece(&q);	/* a piece of 7 is out, 7 at the head with no urgent read */
	n = (int)p2pio_opq_hasten(&q, &qa, 10, NULL);
	tap_ok(n == 1 && order_is(&q, (int[]){ 10, 7 }, 2),
	       "with no urgent read queued, a hastened one goes to the head, ahead of one begun");
	n = (int)p2pio_opq_hasten(&q, &qa, 7, NULL);
	tap_ok(n == 1 && order_is(&q, (int[]){ 10, 7 }, 2) && ops[7].urgent,
	       "a read with a piece out is hastened in place");
	tap_is_int(p2pio_opq_withdraw(&q, &qa, 7, 1, &out), 0,
		   "... and still cannot be withdrawn (hastening keeps its start)");

	/*
	 * P2PIO_CTX_URGENT_ALONE: a plain head waits while urgent pieces are out; the last
	 * urgent piece read lets it go (and says so, for the workers to be woken).
	 */
	{
		struct p2pio_opq a = { .urgent_alone = true };
		bool u1, u2, p1;

		p2pio_opq_push(&a, mk(14, true, &qa, 14));
		p2pio_opq_push(&a, mk(15, false, &qa, 15));
		tap_ok(p2pio_opq_next(&a) == &ops[14], "alone: an urgent head is handed out");
		u1 = p2pio_opq_piece_out(&a, &ops[14]);
		take_piece(&a);
		u2 = p2pio_opq_piece_out(&a, &ops[14]);
		take_piece(&a);
		tap_ok(u1 && u2 && a.urgent_out == 2, "alone: its pieces out are counted urgent");
		tap_ok(p2pio_opq_next(&a) == &ops[14], "alone: its last piece may still go");
		take_piece(&a);		/* its last: popped without the count, as if it failed */
		tap_ok(a.head == &ops[15] && p2pio_opq_next(&a) == NULL,
		       "alone: a plain head waits while urgent pieces are out");
		tap_ok(!p2pio_opq_piece_read(&a, true) && p2pio_opq_next(&a) == NULL,
		       "alone: ... the first of two read, it still waits");
		tap_ok(p2pio_opq_piece_read(&a, true) && p2pio_opq_next(&a) == &ops[15],
		       "alone: the last read lets it go, and says so");
		/* A plain piece out, then its read hastened: its piece still counts plain. */
		p1 = p2pio_opq_piece_out(&a, &ops[15]);
		ops[15].cur += 4096;
		tap_ok(!p1 && p2pio_opq_hasten(&a, &qa, 15, NULL) == 1 && ops[15].urgent &&
		       !p2pio_opq_piece_read(&a, p1) && a.urgent_out == 0 &&
		       p2pio_opq_next(&a) == &ops[15],
		       "alone: a piece counts as it was handed out, though its read is hastened");

		struct p2pio_opq b = { .urgent_alone = false };

		p2pio_opq_push(&b, mk(14, true, &qa, 14));
		p2pio_opq_push(&b, mk(15, false, &qa, 15));
		u1 = p2pio_opq_piece_out(&b, &ops[14]);
		take_piece(&b);
		take_piece(&b);
		take_piece(&b);
		tap_ok(!u1 && b.urgent_out == 0 && p2pio_opq_next(&b) == &ops[15] &&
		       !p2pio_opq_piece_read(&b, u1),
		       "beside (the default): urgent pieces are not counted, a plain head goes");

		/* Hastening a held plain head says the workers may take it now. */
		struct p2pio_opq c = { .urgent_alone = true };
		bool rel = true, rel2 = false;

		p2pio_opq_push(&c, mk(13, false, &qa, 13));
		tap_ok(p2pio_opq_hasten(&c, &qa, 13, &rel) == 1 && !rel &&
		       p2pio_opq_next(&c) == &ops[13],
		       "alone: hastening a head nothing held back releases nothing");
		u1 = p2pio_opq_piece_out(&c, &ops[13]);
		p2pio_opq_push(&c, mk(11, false, &qa, 11));
		take_piece(&c);
		take_piece(&c);
		take_piece(&c);
		tap_ok(u1 && c.head == &ops[11] && p2pio_opq_next(&c) == NULL &&
		       p2pio_opq_hasten(&c, &qa, 11, &rel2) == 1 && rel2 &&
		       p2pio_opq_next(&c) == &ops[11],
		       "alone: hastening the held plain head releases it, and says so");
	}
	return tap_exit();
}
