/* SPDX-License-Identifier: MIT */
/*
 * p2pio/expert_trace.h - libp2pio: MoE routing traces (which experts each token chose at
 * each layer), their file format, a streaming writer for engines, readers for the native
 * format and for the JSON routing logs other tools write, and the trace-driven tools built
 * on them: replay through an expert cache's policies, and synthetic traces.
 *
 * Part of the public API; include <p2pio.h>, which includes every part. Its source is
 * userlib/src/experts/. Documentation/moe.md describes the formats and the replay model.
 *
 * The native file format, version 1 (all integers little-endian):
 *
 *	offset  size  field
 *	0       8     magic "P2PIOXT\n"
 *	8       4     version: 1
 *	12      4     nr_layers   1 .. 4096
 *	16      4     nr_experts  1 .. 65536
 *	20      4     top_k       1 .. 255: the most experts one (token, layer) cell holds
 *	24      4     model_len   0 .. 63: bytes of the model name that follows
 *	28      4     reserved, 0
 *	32      model_len bytes: the model's name (UTF-8, no NUL)
 *	then, to the end of the file, one record per token:
 *	        1     flags: P2PIO_EXPERT_TOKEN_* bits; the others must be 0
 *	        then for each layer 0 .. nr_layers - 1:
 *	        1     n: experts chosen, 0 .. top_k (0: not recorded)
 *	        2 * n expert ids, each < nr_experts, distinct, in the router's order
 *
 * A file that ends inside a record, or breaks any rule above, is refused with the byte
 * offset of the first bad field. A reader of version 1 refuses other versions.
 */
#ifndef P2PIO_PUBLIC_EXPERT_TRACE_H
#define P2PIO_PUBLIC_EXPERT_TRACE_H

#include "p2pio/common.h"
#include "p2pio/expert_policy.h"

#ifdef __cplusplus
extern "C" {
#endif

#define P2PIO_EXPERT_TRACE_VERSION 1
#define P2PIO_EXPERT_TRACE_MAX_LAYERS 4096
#define P2PIO_EXPERT_TRACE_MAX_EXPERTS 65536
#define P2PIO_EXPERT_TRACE_MAX_TOP_K 255
#define P2PIO_EXPERT_TRACE_MODEL_LEN 64

/* Token flags. */
#define P2PIO_EXPERT_TOKEN_PREFILL   0x1u	/* a prompt token, not a generated one */
#define P2PIO_EXPERT_TOKEN_SEQ_START 0x2u	/* first token of a new sequence (prompt) */
#define P2PIO_EXPERT_TOKEN_FLAGS     0x3u

/**
 * struct p2pio_expert_trace_info - the shape of a trace.
 * @nr_layers:  MoE layers.
 * @nr_experts: routed experts per layer.
 * @top_k:      the most experts one token chooses at one layer.
 * @model:      the model's name, NUL-terminated (may be empty).
 */
struct p2pio_expert_trace_info {
	uint32_t nr_layers;
	uint32_t nr_experts;
	uint32_t top_k;
	char model[P2PIO_EXPERT_TRACE_MODEL_LEN];
};

/* A trace in memory. */
struct p2pio_expert_trace;
/* A trace being written to a file, token by token. */
struct p2pio_expert_trace_writer;

/**
 * p2pio_expert_trace_new() - an empty trace in memory, to fill with _add() and _end_token().
 * @info: its shape (limits: the P2PIO_EXPERT_TRACE_MAX_* values).
 * @out:  the trace.
 * @err:  optional: what was wrong (the field, its value and the range allowed).
 *
 * Return: 0, -EINVAL for a shape out of limits, -ENOMEM.
 */
int p2pio_expert_trace_new(const struct p2pio_expert_trace_info *info,
			   struct p2pio_expert_trace **out, struct p2pio_error *err);

/**
 * p2pio_expert_trace_add() - record the experts a layer chose for the token being built.
 * @t:     the trace.
 * @layer: the layer; each at most once per token, in any order (a layer never added is a
 *         cell of 0 experts: not recorded).
 * @ids:   the experts, in the router's order.
 * @n:     how many (at most top_k).
 * @err:   optional: what was wrong (the layer, the id and why: out of range with the
 *         range allowed, repeated, more than top_k, or the layer already added).
 *
 * Return: 0; -EINVAL for a layer out of range, a layer already added to this token, an id
 * out of range or repeated, or @n above top_k (the token being built is left unchanged).
 */
int p2pio_expert_trace_add(struct p2pio_expert_trace *t, uint32_t layer, const uint32_t *ids,
			   uint32_t n, struct p2pio_error *err);

/**
 * p2pio_expert_trace_end_token() - close the token being built and append it.
 * @t:     the trace.
 * @flags: P2PIO_EXPERT_TOKEN_* bits.
 * @err:   optional: what was wrong (the unknown flags, or the size a token takes and the
 *         trace's bound).
 *
 * A trace in memory keeps each token as a dense nr_layers x top_k block: its tokens
 * may take 1 GiB at most (1 + nr_layers x (1 + 2 top_k) bytes each).
 *
 * Return: 0, -EINVAL for unknown flags, -E2BIG when the trace would pass that size,
 * -ENOMEM.
 */
int p2pio_expert_trace_end_token(struct p2pio_expert_trace *t, uint32_t flags,
				 struct p2pio_error *err);

/**
 * p2pio_expert_trace_free() - free a trace.
 * @t: the trace; NULL is fine.
 */
void p2pio_expert_trace_free(struct p2pio_expert_trace *t);

/**
 * p2pio_expert_trace_info() - the trace's shape.
 * @t: the trace.
 *
 * Return: its info, owned by the trace.
 */
const struct p2pio_expert_trace_info *p2pio_expert_trace_info(const struct p2pio_expert_trace *t);

/**
 * p2pio_expert_trace_tokens() - tokens in the trace.
 * @t: the trace.
 *
 * Return: the count.
 */
uint64_t p2pio_expert_trace_tokens(const struct p2pio_expert_trace *t);

/**
 * p2pio_expert_trace_token_flags() - a token's P2PIO_EXPERT_TOKEN_* flags.
 * @t:     the trace.
 * @token: 0 .. tokens - 1.
 *
 * Return: the flags, 0 for a token out of range.
 */
uint32_t p2pio_expert_trace_token_flags(const struct p2pio_expert_trace *t, uint64_t token);

/**
 * p2pio_expert_trace_cell() - the experts a token chose at a layer.
 * @t:     the trace.
 * @token: 0 .. tokens - 1.
 * @layer: 0 .. nr_layers - 1.
 * @ids:   set to the ids (valid while the trace lives), in the router's order.
 *
 * Return: how many (0: the cell was not recorded), or -EINVAL out of range.
 */
int p2pio_expert_trace_cell(const struct p2pio_expert_trace *t, uint64_t token, uint32_t layer,
			    const uint16_t **ids);

/**
 * p2pio_expert_trace_load() - read a trace file.
 * @path: a native trace (the format above), or one of the JSON routing logs that
 *        Documentation/moe.md lists (detected by their content).
 * @out:  the trace.
 * @err:  optional: what was wrong, and at which byte.
 *
 * Return: 0; -ENOENT and the like when the file cannot be read; -EINVAL for a malformed
 * or unrecognised file; -E2BIG when the trace would take more than 1 GiB in memory
 * (p2pio_expert_trace_end_token()), or more than 64 times the file's size plus 64 MiB
 * (cells or records so sparse that a small file describes a huge dense trace);
 * -ENOMEM.
 */
int p2pio_expert_trace_load(const char *path, struct p2pio_expert_trace **out,
			    struct p2pio_error *err);

/**
 * p2pio_expert_trace_save() - write a trace in the native format.
 * @t:    the trace.
 * @path: the file, created or truncated.
 * @err:  optional: what failed.
 *
 * Return: 0 or -errno.
 */
int p2pio_expert_trace_save(const struct p2pio_expert_trace *t, const char *path,
			    struct p2pio_error *err);

/**
 * p2pio_expert_trace_writer_open() - start writing a native trace file, token by token,
 * as an engine decodes (memory does not grow with the trace).
 * @path: the file, created or truncated.
 * @info: the trace's shape.
 * @out:  the writer.
 * @err:  optional: what failed.
 *
 * Return: 0, -EINVAL for a shape out of limits, or -errno from creating the file.
 */
int p2pio_expert_trace_writer_open(const char *path, const struct p2pio_expert_trace_info *info,
				   struct p2pio_expert_trace_writer **out, struct p2pio_error *err);

/**
 * p2pio_expert_trace_writer_add() - as p2pio_expert_trace_add(), for a writer.
 * @w:     the writer.
 * @layer: as p2pio_expert_trace_add().
 * @ids:   as p2pio_expert_trace_add().
 * @n:     as p2pio_expert_trace_add().
 * @err:   optional: as p2pio_expert_trace_add().
 *
 * Return: 0 or -EINVAL.
 */
int p2pio_expert_trace_writer_add(struct p2pio_expert_trace_writer *w, uint32_t layer,
				  const uint32_t *ids, uint32_t n, struct p2pio_error *err);

/**
 * p2pio_expert_trace_writer_end_token() - write the token being built.
 * @w:     the writer.
 * @flags: P2PIO_EXPERT_TOKEN_* bits.
 * @err:   optional: what was wrong (the unknown flags), or what failed (the file, the
 *         token and the write's error, this token's or an earlier one's).
 *
 * Return: 0, -EINVAL for unknown flags, -EIO when writing failed (this token or an
 * earlier one: the writer records nothing more after a failed write).
 */
int p2pio_expert_trace_writer_end_token(struct p2pio_expert_trace_writer *w, uint32_t flags,
					struct p2pio_error *err);

/**
 * p2pio_expert_trace_writer_close() - finish the file and free the writer. A token still
 * being built (added to but not ended) is dropped.
 * @w:   the writer (NULL is fine).
 * @err: optional: what failed.
 *
 * Return: 0, or -errno when any write, the flush or the close failed (the file is then
 * incomplete).
 */
int p2pio_expert_trace_writer_close(struct p2pio_expert_trace_writer *w, struct p2pio_error *err);

/* ------------------------------------------------------------------------------------ */
/* Replay: a trace through the residency core and a policy, as the expert cache runs it  */
/* ------------------------------------------------------------------------------------ */

/* Prefetch sources for a replay (bits). */
#define P2PIO_EXPERT_PREFETCH_LAG  0x1u	/* the previous token's experts at the layer */
#define P2PIO_EXPERT_PREFETCH_NEXT 0x2u	/* the true routing of the layer, one layer ahead:
					 * an oracle predictor, the ceiling of any
					 * next-layer predictor */
#define P2PIO_EXPERT_PREFETCH_LEARNED 0x4u /* a predictor a caller can run: for layer l,
					 * the top_k experts most likely at l given the
					 * experts chosen one and two layers before it
					 * (l - 1, l - 2; across the token boundary for
					 * l < 2): for each of those, the share of its
					 * co-occurrences that went to each expert,
					 * summed, two layers back at half weight;
					 * counted over the tokens replayed so far (the
					 * whole replay, never the future) */
#define P2PIO_EXPERT_PREFETCH_ROUTER 0x8u /* the next layer's routing as an engine that
					 * runs that layer's router early, on this
					 * layer's input, would predict it: the true
					 * routing, each expert right with probability
					 * 1 - @router_wrong (else one the layer does not
					 * route to, a seeded draw); never across
					 * tokens: layer 0 waits for the token before's
					 * sampling */

/**
 * struct p2pio_expert_replay_opts - one replay.
 * @policy:        a built-in policy name (p2pio_expert_policy_find()).
 * @policy_args:   its options, or NULL.
 * @capacity:      experts the cache holds: per layer when @per_layer, else in all.
 * @per_layer:     a cache of @capacity experts per layer (each layer evicts only its own),
 *                 or one global budget of @capacity experts shared by every layer.
 * @prefetch:      P2PIO_EXPERT_PREFETCH_* bits.
 * @with_prefill:  replay prompt tokens too (default: generated tokens only).
 * @warmup_tokens: with @fixed_warmup, the steady state starts after this many tokens of
 *                 each sequence; without, after the cache first had to evict.
 * @fixed_warmup:  see @warmup_tokens.
 * @router_wrong:  P2PIO_EXPERT_PREFETCH_ROUTER's chance of a wrong guess per expert,
 *                 0 .. 1 (0: always right).
 */
struct p2pio_expert_replay_opts {
	const char *policy;
	const char *policy_args;
	uint32_t capacity;
	bool per_layer;
	unsigned int prefetch;
	bool with_prefill;
	uint64_t warmup_tokens;
	bool fixed_warmup;
	double router_wrong;
};

/**
 * p2pio_expert_replay() - run a trace through an expert cache's bookkeeping (no memory,
 * no I/O) and report what the cache would have done.
 * @t:      the trace; each sequence (P2PIO_EXPERT_TOKEN_SEQ_START) starts with an empty
 *          cache, and the statistics add up over the sequences.
 * @o:      the replay's options.
 * @st:     the statistics (set @st->size first); one expert counts as 1 byte.
 * @layers: optional, [nr_layers]: each layer's statistics (max_resident: over sequences).
 * @err:    optional: what was wrong.
 *
 * Each token visits the layers in order; at each layer its experts are accessed one after
 * another (a miss admits the expert at once, so with a capacity below top_k a token's own
 * experts evict each other). Prefetches for layer l + 1 are issued after layer l's
 * accesses, stay protected (busy) until layer l + 1 is done, and are dropped where no
 * room can be made. Documentation/moe.md has the details.
 *
 * Return: 0; -EINVAL for an unknown policy, bad options or a capacity of 0; -E2BIG when
 * the learned predictor's table (layers x experts^2 counters) would pass 2^26; -ENOMEM.
 */
int p2pio_expert_replay(const struct p2pio_expert_trace *t,
			const struct p2pio_expert_replay_opts *o, struct p2pio_expert_stats *st,
			struct p2pio_expert_layer_stats *layers, struct p2pio_error *err);

/* ------------------------------------------------------------------------------------ */
/* Synthetic traces                                                                      */
/* ------------------------------------------------------------------------------------ */

/**
 * struct p2pio_expert_synth_params - a synthetic routing trace.
 * @nr_layers, @nr_experts, @top_k: its shape.
 * @tokens:   tokens to generate (one sequence, all generated tokens).
 * @skew:     Zipf exponent of each layer's expert popularity (0: uniform); each layer
 *            ranks its experts in its own random order.
 * @locality: probability that a slot reuses an expert from the layer's last @window
 *            tokens (temporal locality), 0 .. 1.
 * @window:   tokens of history @locality draws from, 1 .. 1024.
 * @seed:     the random seed: the same parameters give the same trace on every machine.
 * @layer_spread: 0 .. 1: each layer's Zipf exponent is @skew x (1 + @layer_spread x u) and its
 *            locality @locality x (1 + @layer_spread x u') (at most 1), u and u'
 *            drawn uniformly in -1 .. 1 per layer (real models mix flat and skewed layers);
 *            0: every layer has @skew and @locality.
 * @drift:    0 .. 1: per token and layer, the probability that two experts (drawn
 *            uniformly) swap popularity ranks, so the popular set moves over the sequence.
 * @cutoff:   0 .. 64: rank r's weight is also multiplied by exp(-@cutoff x r / nr_experts),
 *            thinning the tail (real layers leave many experts unused over a few hundred
 *            tokens); 0: plain Zipf.
 * @repeat:   0 .. 1: probability that a slot takes one of the experts the layer chose for
 *            the token just before (drawn before @locality): the short-range reuse a
 *            recency policy catches, apart from @locality's longer window.
 * @offset:   0 .. 1024: Zipf-Mandelbrot offset: rank r's weight is 1 / (r + 1 + @offset)^skew
 *            (times the cutoff), a flat head of about @offset experts before the power
 *            law: a layer's working set, which recency catches once it fits; 0: plain Zipf.
 * @chain:    0 .. 1: probability that a slot at layer l >= 1 takes the expert a fixed
 *            per-layer map assigns to one of the token's experts at layer l - 1 (drawn
 *            uniformly among them), in place of a popularity draw (after @repeat and
 *            @locality): routing coupled across layers, which a next-layer predictor
 *            (P2PIO_EXPERT_PREFETCH_LEARNED) learns. The map pairs the two layers' experts
 *            by popularity rank, one to one, so the layers' popularity barely moves.
 *            Layer 0 is never chained. 0: layers independent.
 *
 * @layer_spread, @drift and @repeat draw from a stream of their own, @chain from another:
 * with all four 0 the trace is the one the other parameters gave before they existed.
 */
struct p2pio_expert_synth_params {
	uint32_t nr_layers;
	uint32_t nr_experts;
	uint32_t top_k;
	uint64_t tokens;
	double skew;
	double locality;
	uint32_t window;
	uint64_t seed;
	double layer_spread;
	double drift;
	double cutoff;
	double repeat;
	double offset;
	double chain;
};

/**
 * p2pio_expert_synth() - generate a synthetic trace.
 * @p:   its parameters.
 * @out: the trace.
 * @err: optional: what was wrong (the field, its value and the range allowed).
 *
 * Return: 0, -EINVAL for parameters out of range (a shape out of the trace's limits,
 * top_k > nr_experts, skew < 0 or > 8, locality outside 0 .. 1, window 0 or above 1024,
 * tokens 0 or above 2^24, layer_spread or drift outside 0 .. 1, cutoff outside 0 .. 64,
 * repeat outside 0 .. 1, offset outside 0 .. 1024, chain outside 0 .. 1), -ENOMEM.
 */
int p2pio_expert_synth(const struct p2pio_expert_synth_params *p,
		       struct p2pio_expert_trace **out, struct p2pio_error *err);

#ifdef __cplusplus
}
#endif

#endif /* P2PIO_PUBLIC_EXPERT_TRACE_H */
