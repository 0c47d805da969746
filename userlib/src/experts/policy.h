/* SPDX-License-Identifier: MIT */
/*
 * experts/policy.h - what the built-in eviction policies share: the set of resident experts
 * per layer (kept from the inserted/removed hooks) and a victim search that scores every
 * evictable candidate and takes the lowest. A scan is O(resident experts of the layer, or of
 * all layers) per eviction: a few thousand comparisons, next to a load of megabytes.
 */
#ifndef P2PIO_EXPERTS_POLICY_H
#define P2PIO_EXPERTS_POLICY_H

#include "internal.h"

struct pol_set {
	uint32_t nr_layers;
	uint32_t nr_experts;
	uint32_t *members;	/* [layer][0 .. count[layer]) expert ids */
	uint32_t *count;	/* [layer] */
	uint32_t *pos;		/* [layer][expert]: index in members, or UINT32_MAX */
};

/* A candidate's score: lower is evicted first; @tie breaks equal @key (lower first). */
struct pol_score {
	double key;
	double tie;
};

P2PIO_HIDDEN int pol_set_init(struct pol_set *s, uint32_t nr_layers, uint32_t nr_experts);
P2PIO_HIDDEN void pol_set_fini(struct pol_set *s);
P2PIO_HIDDEN void pol_set_add(struct pol_set *s, struct p2pio_expert_ref ref);
P2PIO_HIDDEN void pol_set_del(struct pol_set *s, struct p2pio_expert_ref ref);

/* The evictable member (of @layer, or of every layer) with the lowest score(@state, ref). */
P2PIO_HIDDEN int pol_set_victim(const struct pol_set *s, uint32_t layer,
				bool (*evictable)(void *arg, struct p2pio_expert_ref ref), void *arg,
				struct pol_score (*score)(void *state, struct p2pio_expert_ref ref),
				void *state, struct p2pio_expert_ref *out);

/*
 * Parse "key=value,key=value" option strings: calls @set(@ctx, key, value) for each pair;
 * returns -EINVAL for a malformed string or when @set does.
 */
P2PIO_HIDDEN int pol_parse_args(const char *args, int (*set)(void *ctx, const char *key,
							     double value), void *ctx);

/*
 * The oracle's @data: every demand access of the replay to come, in order. A replay that
 * gives it must then make exactly these accesses (the oracle counts them by their @tick).
 */
struct pol_future {
	uint64_t nr;
	const struct p2pio_expert_ref *seq;
};

P2PIO_HIDDEN extern const struct p2pio_expert_policy_ops p2pio_expert_policy_lru;
P2PIO_HIDDEN extern const struct p2pio_expert_policy_ops p2pio_expert_policy_lfu;
P2PIO_HIDDEN extern const struct p2pio_expert_policy_ops p2pio_expert_policy_lrfu;
P2PIO_HIDDEN extern const struct p2pio_expert_policy_ops p2pio_expert_policy_oracle;

#endif /* P2PIO_EXPERTS_POLICY_H */
