/* SPDX-License-Identifier: MIT */
/*
 * experts/trace.h - the in-memory trace, shared by the trace's readers, writer, replay and
 * synthesiser. Cells have a fixed stride of top_k ids.
 */
#ifndef P2PIO_EXPERTS_TRACE_H
#define P2PIO_EXPERTS_TRACE_H

#include "internal.h"

struct p2pio_expert_trace {
	struct p2pio_expert_trace_info info;
	uint64_t nr_tokens;
	uint64_t cap_tokens;
	uint8_t *flags;		/* [token] */
	uint8_t *count;		/* [token][layer] */
	uint16_t *ids;		/* [token][layer][top_k] */
	/* the token being built */
	uint8_t *cur_count;	/* [layer] */
	bool *cur_set;		/* [layer] */
	uint16_t *cur_ids;	/* [layer][top_k] */
};

/* Check a shape against the format's limits; 0 or -EINVAL with a message in @err. */
P2PIO_HIDDEN int p2pio_trace_check_info(const struct p2pio_expert_trace_info *info,
					struct p2pio_error *err, uint64_t off);

/* Whether @x is among @ids[@n] (a cell being built: n is small). */
static inline bool cell_has(const uint32_t *ids, uint32_t n, uint32_t x)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (ids[i] == x)
			return true;
	return false;
}

/* Check a token's P2PIO_EXPERT_TOKEN_* @flags: 0 or -EINVAL with a message in @err
 * naming token @tok and the unknown bits. */
P2PIO_HIDDEN int p2pio_trace_check_flags(uint32_t flags, uint64_t tok, struct p2pio_error *err);

/* The file's bytes, read whole (at most P2PIO_TRACE_MAX_FILE). */
#define P2PIO_TRACE_MAX_FILE (1ull << 30)

/*
 * An in-memory trace keeps every token as a dense [nr_layers][top_k] block (and a count
 * per layer), whatever the file holds: a small file can describe a huge one (a JSON log
 * with one record at layer 4095 listing 255 experts makes every token 2 MB wide; 17.8 KB
 * of such a log took 800 MiB). So a trace's tokens may take at most P2PIO_TRACE_MAX_BYTES
 * (a replay then takes 4 times that again), and a file's (native or JSON) at most
 * P2PIO_TRACE_JSON_RATIO times its own size plus P2PIO_TRACE_JSON_SLACK: -E2BIG beyond.
 * A native file of full cells takes in memory about what it takes on disk.
 * A real trace is far inside both: 500 000 tokens of 61 layers x 8 experts take 510 MB.
 */
#define P2PIO_TRACE_MAX_BYTES (1ull << 30)
#define P2PIO_TRACE_JSON_RATIO 64
#define P2PIO_TRACE_JSON_SLACK (64ull << 20)

/* Bytes one token of a trace of @info's shape takes in memory. */
static inline uint64_t p2pio_trace_token_bytes(const struct p2pio_expert_trace_info *info)
{
	return 1 + (uint64_t)info->nr_layers * (1 + 2 * (uint64_t)info->top_k);
}

/* Whether @tokens of @info's shape take more memory than a file of @file_len bytes may. */
static inline bool p2pio_trace_too_sparse(const struct p2pio_expert_trace_info *info,
					  uint64_t tokens, size_t file_len)
{
	return tokens * p2pio_trace_token_bytes(info) >
	       P2PIO_TRACE_JSON_RATIO * (uint64_t)file_len + P2PIO_TRACE_JSON_SLACK;
}

/* Whether @c is a JSON blank (space, tab, CR, LF): never NUL (trace_json.c). */
P2PIO_HIDDEN bool p2pio_json_blank(char c);

/* Parse a JSON routing log already in memory (trace_json.c). */
P2PIO_HIDDEN int p2pio_trace_parse_json(const char *path, const char *buf, size_t len,
					struct p2pio_expert_trace **out, struct p2pio_error *err);
#endif /* P2PIO_EXPERTS_TRACE_H */
