/* SPDX-License-Identifier: MIT */
/*
 * experts/predict.h - the learned next-layer predictor, shared by the replay (its LEARNED
 * prefetch) and the cache (P2PIO_EXPERTS_PREFETCH_LEARNED). Private.
 *
 * It watches the routing go by, cell after cell in routing order (a cell: one layer of one
 * token, the experts the router chose there), and counts, for every layer l, how often an
 * expert a chosen one cell before l (and, separately, two cells before) came with expert b
 * at l. Its prediction for the cell after the last one seen is the experts with the largest
 * summed shares (see predict.c). It sees only the past: what an engine can run without the
 * next layer's router.
 */
#ifndef P2PIO_EXPERTS_PREDICT_H
#define P2PIO_EXPERTS_PREDICT_H

#include "internal.h"

/* Cells back the predictor looks (the second at half weight). */
#define P2PIO_PREDICT_BACK 2
/* Its tables' counters, at most (256 MiB): P2PIO_PREDICT_BACK x layers x experts^2. */
#define P2PIO_PREDICT_MAX_COUNTERS ((size_t)1 << 26)

struct p2pio_predictor;

/*
 * A predictor for @nr_layers layers of @nr_experts experts: 0, -E2BIG where its tables
 * would exceed P2PIO_PREDICT_MAX_COUNTERS (message in @err), -ENOMEM.
 */
P2PIO_HIDDEN int p2pio_predictor_create(uint32_t nr_layers, uint32_t nr_experts,
					struct p2pio_predictor **out, struct p2pio_error *err);
P2PIO_HIDDEN void p2pio_predictor_destroy(struct p2pio_predictor *p);

/* Forget the cells seen (a new sequence starts); what was learned stays. */
P2PIO_HIDDEN void p2pio_predictor_forget(struct p2pio_predictor *p);

/*
 * Layer @layer ran with experts @ids[@n] (distinct, in range): learn from the cells before
 * it, and it becomes the last cell seen. Every call is a cell of its own: a layer whose
 * experts come in several calls is seen as several cells (with one layer, consecutive
 * cells of the same layer are consecutive tokens, so a repeated layer cannot be told from
 * a continued one), and predicts worse.
 */
P2PIO_HIDDEN void p2pio_predictor_observe(struct p2pio_predictor *p, uint32_t layer,
					  const uint32_t *ids, uint32_t n);

/*
 * Predict the experts of @layer, the cell after the last one seen: the @k most likely
 * (0: as many as the last cell has), best first, only experts seen with the cells before
 * at least once. Returns how many were put in @out (room for @k, or for the last cell's
 * count with @k 0); 0 with no cell seen.
 */
P2PIO_HIDDEN uint32_t p2pio_predictor_predict(struct p2pio_predictor *p, uint32_t layer,
					      uint32_t k, uint32_t *out);

#endif /* P2PIO_EXPERTS_PREDICT_H */
