// SPDX-License-Identifier: MIT
/*
 * predict.c - the learned next-layer predictor (predict.h): co-occurrence shares of the
 * experts chosen one and two cells before, in routing order.
 *
 * The prediction for layer l: for each expert a of the cells before, the share of a's
 * co-occurrences (at that distance) that went to each expert b at l - the chance that b
 * comes that far after a - summed over the cells' experts, the cell one before at full
 * weight and the one two before at half. Shares, not raw counts: with counts an expert seen
 * often outvotes one seen rarely whatever either says; on the real traces shares hit 0.1-6
 * points more, and the second cell 0.1-2 more again with 1-4 % fewer loads
 * (Documentation/moe.md, "Closing the gap").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "experts/predict.h"

struct pcell {
	uint32_t layer;
	uint32_t n;
	uint32_t *ids;		/* [experts] */
};

struct p2pio_predictor {
	uint32_t nl, ne;
	/*
	 * cooc[d - 1][l][a][b]: cells of layer l with expert b whose cell d before had expert
	 * a; sum[d - 1][l][a] the row's total. Counters saturate (a row that full says
	 * nothing new).
	 */
	uint32_t *cooc[P2PIO_PREDICT_BACK];
	uint64_t *sum[P2PIO_PREDICT_BACK];
	uint64_t *score;	/* [experts], scratch */
	uint32_t seen;		/* cells in @hist, up to P2PIO_PREDICT_BACK */
	struct pcell hist[P2PIO_PREDICT_BACK];	/* [0]: the last cell seen */
};

int p2pio_predictor_create(uint32_t nr_layers, uint32_t nr_experts,
			   struct p2pio_predictor **out, struct p2pio_error *err)
{
	size_t rows = (size_t)nr_layers * nr_experts, cells;
	struct p2pio_predictor *p;
	uint32_t d;

	*out = NULL;
	if (!nr_layers || !nr_experts)
		return p2pio_set_error(err, -EINVAL, P2PIO_NO_OFFSET,
				       "learned prefetch: no layers or no experts");
	if (rows > P2PIO_PREDICT_MAX_COUNTERS / nr_experts / P2PIO_PREDICT_BACK)
		return p2pio_set_error(err, -E2BIG, P2PIO_NO_OFFSET,
				       "learned prefetch: its table for %u layer%s of %u experts "
				       "(%d x layers x experts^2 counters) would pass 2^26",
				       nr_layers, nr_layers == 1 ? "" : "s", nr_experts,
				       P2PIO_PREDICT_BACK);
	cells = rows * nr_experts;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->nl = nr_layers;
	p->ne = nr_experts;
	p->score = calloc(nr_experts, sizeof(*p->score));
	if (!p->score)
		goto nomem;
	for (d = 0; d < P2PIO_PREDICT_BACK; d++) {
		p->cooc[d] = calloc(cells, sizeof(*p->cooc[d]));
		p->sum[d] = calloc(rows, sizeof(*p->sum[d]));
		p->hist[d].ids = calloc(nr_experts, sizeof(*p->hist[d].ids));
		if (!p->cooc[d] || !p->sum[d] || !p->hist[d].ids)
			goto nomem;
	}
	*out = p;
	return 0;
nomem:
	p2pio_predictor_destroy(p);
	return -ENOMEM;
}

void p2pio_predictor_destroy(struct p2pio_predictor *p)
{
	uint32_t d;

	if (!p)
		return;
	for (d = 0; d < P2PIO_PREDICT_BACK; d++) {
		free(p->cooc[d]);
		free(p->sum[d]);
		free(p->hist[d].ids);
	}
	free(p->score);
	free(p);
}

void p2pio_predictor_forget(struct p2pio_predictor *p)
{
	p->seen = 0;
}

static size_t row_of(const struct p2pio_predictor *p, uint32_t layer, uint32_t a)
{
	return (size_t)layer * p->ne + a;
}

void p2pio_predictor_observe(struct p2pio_predictor *p, uint32_t layer, const uint32_t *ids,
			     uint32_t n)
{
	struct pcell last;
	uint32_t d, i, j;

	for (d = 1; d <= p->seen; d++) {
		const struct pcell *c = &p->hist[d - 1];

		for (i = 0; i < c->n; i++) {
			size_t k = row_of(p, layer, c->ids[i]);
			uint32_t *row = &p->cooc[d - 1][k * p->ne];

			for (j = 0; j < n; j++)
				if (row[ids[j]] < UINT32_MAX) {
					row[ids[j]]++;
					p->sum[d - 1][k]++;
				}
		}
	}
	/* The oldest cell's memory takes the new one. */
	last = p->hist[P2PIO_PREDICT_BACK - 1];
	memmove(&p->hist[1], &p->hist[0], (P2PIO_PREDICT_BACK - 1) * sizeof(p->hist[0]));
	last.layer = layer;
	last.n = n < p->ne ? n : p->ne;
	memcpy(last.ids, ids, last.n * sizeof(*ids));
	p->hist[0] = last;
	if (p->seen < P2PIO_PREDICT_BACK)
		p->seen++;
}

uint32_t p2pio_predictor_predict(struct p2pio_predictor *p, uint32_t layer, uint32_t k,
				 uint32_t *out)
{
	uint32_t E = p->ne, d, e, i, n = 0;

	if (!p->seen || !p->hist[0].n)
		return 0;
	if (!k)
		k = p->hist[0].n;
	memset(p->score, 0, E * sizeof(*p->score));
	for (d = 1; d <= p->seen; d++) {
		const struct pcell *c = &p->hist[d - 1];

		for (i = 0; i < c->n; i++) {
			size_t r = row_of(p, layer, c->ids[i]);
			const uint32_t *row = &p->cooc[d - 1][r * E];
			uint64_t sum = p->sum[d - 1][r];

			/* Fixed point, 2^20 to one (2^19 two cells back): at most
			 * 2^32 * 2^20 / sum per row, 2 x E rows. Most counts are 0: no
			 * division for them (the fit replays this millions of times). */
			for (e = 0; e < E && sum; e++)
				if (row[e])
					p->score[e] += (((uint64_t)row[e] << 20) / sum) >> (d - 1);
		}
	}
	/* The k best, ties to the lower id: k is small, a selection pass each. */
	while (n < k) {
		uint32_t best = UINT32_MAX;

		for (e = 0; e < E; e++)
			if (p->score[e] && (best == UINT32_MAX || p->score[e] > p->score[best]))
				best = e;
		if (best == UINT32_MAX)
			break;
		out[n++] = best;
		p->score[best] = 0;
	}
	return n;
}
