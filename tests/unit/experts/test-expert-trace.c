// SPDX-License-Identifier: MIT
/*
 * test-expert-trace.c - routing traces: the native format's writer and reader round trip,
 * one hand-broken file per validation rule, the JSON log readers on small hand-made files
 * of each layout (and on the real traces in ../shared/data/moe-traces when present), and
 * the replay on a hand-made trace with known answers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "p2pio.h"
#include "tap.h"

static char dir[64];

static const char *tmp_path(const char *name)
{
	static char p[128];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(data, 1, len, f) != len || fclose(f))
		tap_bail("cannot write a test file");
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = v >> 24;
}

/*
 * A native trace header (magic, version 1, the shape) and a 1-byte model name "m": 33
 * bytes at @p, where the first token goes.
 */
static size_t put_header(unsigned char *p, uint32_t layers, uint32_t experts, uint32_t top_k)
{
	memcpy(p, "P2PIOXT\n", 8);
	put32(p + 8, 1);
	put32(p + 12, layers);
	put32(p + 16, experts);
	put32(p + 20, top_k);
	put32(p + 24, 1);	/* model name length */
	p[32] = 'm';
	return 33;
}

/* trace_add (@w NULL) or writer_add refused with -EINVAL, and a message holding @needle:
 * the layer, the id and why. */
static void add_refused(struct p2pio_expert_trace *t, struct p2pio_expert_trace_writer *w,
			uint32_t layer, const uint32_t *ids, uint32_t n, const char *needle,
			const char *what)
{
	struct p2pio_error err = { 0 };
	int r = w ? p2pio_expert_trace_writer_add(w, layer, ids, n, &err) :
		    p2pio_expert_trace_add(t, layer, ids, n, &err);

	if (!tap_ok(r == -EINVAL && err.code == -EINVAL && err.offset == P2PIO_NO_OFFSET &&
		    strstr(err.msg, needle), "%s, %s: -EINVAL, the message says '%s'",
		    w ? "writer_add" : "trace_add", what, needle))
		tap_diag("got %d '%s'", r, err.msg);
}

/* As add_refused(), for trace_end_token (@w NULL) or writer_end_token, and errno @code. */
static void end_refused(struct p2pio_expert_trace *t, struct p2pio_expert_trace_writer *w,
			uint32_t flags, int code, const char *needle, const char *what)
{
	struct p2pio_error err = { 0 };
	int r = w ? p2pio_expert_trace_writer_end_token(w, flags, &err) :
		    p2pio_expert_trace_end_token(t, flags, &err);

	if (!tap_ok(r == code && err.code == code && err.offset == P2PIO_NO_OFFSET &&
		    strstr(err.msg, needle), "%s, %s: %d, the message says '%s'",
		    w ? "writer_end_token" : "trace_end_token", what, code, needle))
		tap_diag("got %d '%s'", r, err.msg);
}

static void test_roundtrip(void)
{
	struct p2pio_expert_trace_info info = { .nr_layers = 3, .nr_experts = 300, .top_k = 2 };
	struct p2pio_expert_trace_writer *w;
	struct p2pio_expert_trace *t = NULL, *u = NULL;
	struct p2pio_error err = { 0 };
	uint32_t a[2] = { 299, 7 }, b[2] = { 5, 5 }, c[3] = { 1, 2, 3 };
	const uint16_t *ids;
	bool same = true;
	uint64_t tok;
	uint32_t l;

	snprintf(info.model, sizeof(info.model), "test-model");
	tap_is_int(p2pio_expert_trace_new(&info, &t, NULL), 0, "a new trace");
	tap_is_int(p2pio_expert_trace_add(t, 0, a, 2, NULL), 0, "add layer 0");
	add_refused(t, NULL, 0, a, 2, "expert trace: layer 0 already added to this token",
		    "a layer twice in a token");
	add_refused(t, NULL, 1, b, 2, "expert trace: layer 1: expert id 5 repeated (at 0 and 1 of the 2 ids)",
		    "a repeated id");
	add_refused(t, NULL, 1, c, 3, "expert trace: layer 1: 3 experts, more than top_k 2",
		    "more than top_k");
	a[0] = 300;
	add_refused(t, NULL, 1, a, 1,
		    "expert trace: layer 1: expert id 300 out of range (0 to 299 allowed: nr_experts 300)",
		    "an id out of range");
	a[0] = 299;
	add_refused(t, NULL, 3, a, 1, "expert trace: layer 3 out of range (0 to 2 allowed: nr_layers 3)",
		    "a layer out of range");
	add_refused(t, NULL, 1, NULL, 1, "expert trace: layer 1: ids is NULL for 1 experts", "NULL ids");
	tap_is_int(p2pio_expert_trace_add(t, 3, a, 1, NULL), -EINVAL,
		   "trace_add without an error struct: still %s", "-EINVAL");
	tap_is_int(p2pio_expert_trace_add(t, 2, c, 1, NULL), 0, "layer 2 with one id; layer 1 left out");
	end_refused(t, NULL, 4, -EINVAL,
		    "expert trace: token 0: unknown flags 0x4 (the P2PIO_EXPERT_TOKEN_* bits are 0x3)",
		    "unknown token flags");
	tap_is_int(p2pio_expert_trace_end_token(t, 4, NULL), -EINVAL,
		   "end_token without an error struct: still %s", "-EINVAL");
	p2pio_expert_trace_end_token(t, P2PIO_EXPERT_TOKEN_SEQ_START | P2PIO_EXPERT_TOKEN_PREFILL, NULL);
	for (tok = 1; tok < 100; tok++) {
		for (l = 0; l < 3; l++) {
			uint32_t x[2] = { (uint32_t)(tok * 7 + l) % 300, (uint32_t)(tok * 13 + l + 1) % 300 };

			if (x[0] == x[1])
				x[1] = (x[1] + 1) % 300;
			p2pio_expert_trace_add(t, l, x, 2, NULL);
		}
		p2pio_expert_trace_end_token(t, 0, NULL);
	}
	tap_is_int(p2pio_expert_trace_save(t, tmp_path("rt.trace"), &err), 0, "save");
	tap_is_int(p2pio_expert_trace_load(tmp_path("rt.trace"), &u, &err), 0, "load it back");
	if (!u) {
		tap_diag("%s", err.msg);
		p2pio_expert_trace_free(t);
		return;
	}
	tap_ok(p2pio_expert_trace_tokens(u) == 100 && p2pio_expert_trace_info(u)->nr_layers == 3 &&
		       p2pio_expert_trace_info(u)->nr_experts == 300 &&
		       p2pio_expert_trace_info(u)->top_k == 2 &&
		       !strcmp(p2pio_expert_trace_info(u)->model, "test-model"),
	       "shape, model name and token count survive");
	for (tok = 0; tok < 100; tok++) {
		if (p2pio_expert_trace_token_flags(t, tok) != p2pio_expert_trace_token_flags(u, tok))
			same = false;
		for (l = 0; l < 3; l++) {
			const uint16_t *x, *y;
			int n = p2pio_expert_trace_cell(t, tok, l, &x);

			if (n != p2pio_expert_trace_cell(u, tok, l, &y) ||
			    memcmp(x, y, (size_t)n * sizeof(*x)))
				same = false;
		}
	}
	tap_ok(same, "every cell and flag is the same");
	tap_ok(p2pio_expert_trace_cell(u, 0, 1, &ids) == 0 && p2pio_expert_trace_cell(u, 0, 0, &ids) == 2 &&
		       ids[0] == 299 && ids[1] == 7, "order kept; a left-out layer reads as 0 experts");
	tap_is_int(p2pio_expert_trace_cell(u, 100, 0, &ids), -EINVAL, "a token out of range: %s", "-EINVAL");

	/* The streaming writer writes the same bytes as save. */
	tap_is_int(p2pio_expert_trace_writer_open(tmp_path("w.trace"), &info, &w, &err), 0, "writer open");
	for (tok = 0; tok < 100; tok++) {
		for (l = 0; l < 3; l++) {
			int n = p2pio_expert_trace_cell(t, tok, l, &ids);
			uint32_t x[2];

			if (n <= 0)
				continue;
			x[0] = ids[0];
			x[1] = n > 1 ? ids[1] : 0;
			p2pio_expert_trace_writer_add(w, l, x, (uint32_t)n, NULL);
		}
		p2pio_expert_trace_writer_end_token(w, p2pio_expert_trace_token_flags(t, tok), NULL);
	}
	tap_is_int(p2pio_expert_trace_writer_close(w, &err), 0, "writer close");
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "cmp -s %s/rt.trace %s/w.trace", dir, dir);
		tap_is_int(system(cmd), 0, "writer and save give identical files");
	}
	tap_ok(p2pio_expert_trace_writer_open("/nonexistent-dir/x", &info, &w, &err) == -ENOENT &&
		       strstr(err.msg, "/nonexistent-dir/x"), "a writer to a missing folder: -ENOENT, named");
	p2pio_expert_trace_free(t);
	p2pio_expert_trace_free(u);
}

/* One broken native file per rule. */
static void expect_bad(const unsigned char *p, size_t len, const char *needle, const char *what)
{
	struct p2pio_expert_trace *t = NULL;
	struct p2pio_error err = { 0 };
	int r;

	write_file(tmp_path("bad.trace"), p, len);
	r = p2pio_expert_trace_load(tmp_path("bad.trace"), &t, &err);
	if (!tap_ok(r == -EINVAL && !t && strstr(err.msg, needle), "%s is refused", what))
		tap_diag("got %d '%s', wanted '%s'", r, err.msg, needle);
	p2pio_expert_trace_free(t);
}

static void test_malformed(void)
{
	unsigned char good[64], b[64];
	size_t len;

	memset(good, 0, sizeof(good));
	len = put_header(good, 2, 10, 2);	/* 2 layers, 10 experts, top_k 2 */
	/* token: flags 0, layer 0: 2 ids (1, 9), layer 1: 1 id (3) */
	good[len++] = 0;
	good[len++] = 2; good[len++] = 1; good[len++] = 0; good[len++] = 9; good[len++] = 0;
	good[len++] = 1; good[len++] = 3; good[len++] = 0;
	{
		struct p2pio_expert_trace *t = NULL;
		struct p2pio_error err = { 0 };

		write_file(tmp_path("good.trace"), good, len);
		tap_ok(!p2pio_expert_trace_load(tmp_path("good.trace"), &t, &err) &&
			       p2pio_expert_trace_tokens(t) == 1, "the hand-made file loads");
		p2pio_expert_trace_free(t);
	}
	{
		struct p2pio_expert_trace *t = NULL;
		struct p2pio_error err = { 0 };

		memcpy(b, good, len);
		b[32] = 0x1b;	/* the model name: an escape */
		write_file(tmp_path("esc.trace"), b, len);
		tap_ok(!p2pio_expert_trace_load(tmp_path("esc.trace"), &t, &err) &&
			       !strcmp(p2pio_expert_trace_info(t)->model, "?"),
		       "a model name's control byte is read as '?'");
		p2pio_expert_trace_free(t);
	}
	expect_bad(good, 20, "header truncated", "a short header");
	memcpy(b, good, len); put32(b + 8, 2);
	expect_bad(b, len, "version 2", "another version");
	memcpy(b, good, len); put32(b + 12, 0);
	expect_bad(b, len, "out of limits", "0 layers");
	memcpy(b, good, len); put32(b + 16, 70000);
	expect_bad(b, len, "out of limits", "70000 experts");
	memcpy(b, good, len); put32(b + 20, 11);
	expect_bad(b, len, "out of limits", "top_k above the experts");
	memcpy(b, good, len); put32(b + 24, 64);
	expect_bad(b, len, "model name of 64 bytes", "a long model name");
	memcpy(b, good, len); put32(b + 24, 40);
	expect_bad(b, 40, "model name truncated", "a truncated model name");
	memcpy(b, good, len); put32(b + 28, 1);
	expect_bad(b, len, "reserved", "a reserved field set");
	memcpy(b, good, len); b[32] = 0;
	expect_bad(b, len, "NUL", "a NUL in the model name");
	memcpy(b, good, len); b[33] = 8;
	expect_bad(b, len, "unknown flags", "unknown token flags");
	memcpy(b, good, len); b[34] = 3;
	expect_bad(b, len, "3 experts (top_k is 2)", "a cell above top_k");
	memcpy(b, good, len); b[37] = 10;
	expect_bad(b, len, "out of range", "an id out of range");
	memcpy(b, good, len); b[37] = 1;
	expect_bad(b, len, "repeated", "a repeated id");
	expect_bad(good, len - 1, "truncated at layer 1", "a token cut in its last cell");
	expect_bad(good, 35, "truncated at layer 0", "a token cut in its first cell");
	expect_bad((const unsigned char *)"hello", 5, "not an expert trace", "a text file");
	{
		struct p2pio_expert_trace *t = NULL;
		struct p2pio_error err = { 0 };

		tap_ok(p2pio_expert_trace_load(tmp_path("missing"), &t, &err) == -ENOENT,
		       "a missing file: -ENOENT");
	}
}

static struct p2pio_expert_trace *load_text(const char *name, const char *text)
{
	struct p2pio_expert_trace *t = NULL;
	struct p2pio_error err = { 0 };

	write_file(tmp_path(name), text, strlen(text));
	if (p2pio_expert_trace_load(tmp_path(name), &t, &err))
		tap_diag("%s: %s", name, err.msg);
	return t;
}

static int cell0(const struct p2pio_expert_trace *t, uint64_t tok, uint32_t l)
{
	const uint16_t *ids;
	int n = p2pio_expert_trace_cell(t, tok, l, &ids);

	return n > 0 ? ids[0] : -1;
}

/* Tokens 0 .. @k - 1 are the prompt (prefill), every token after them a decode step. */
static bool prompt_then_steps(const struct p2pio_expert_trace *t, uint64_t k)
{
	uint64_t tok, n = p2pio_expert_trace_tokens(t);

	for (tok = 0; tok < n; tok++)
		if (!!(p2pio_expert_trace_token_flags(t, tok) & P2PIO_EXPERT_TOKEN_PREFILL) !=
		    (tok < k))
			return false;
	return k <= n;
}

static void test_json(void)
{
	struct p2pio_expert_trace *t;

	/* vLLM profiler: sorted by (problem, layer, token); a missing cell; two problems. */
	t = load_text("a.jsonl",
		      "{\"dataset\":\"d\",\"problem_id\":0,\"layer\":0,\"experts\":[6,5],\"token_idx\":0}\n"
		      "{\"dataset\":\"d\",\"problem_id\":0,\"layer\":0,\"experts\":[1,2],\"token_idx\":1}\n"
		      "{\"dataset\":\"d\",\"problem_id\":0,\"layer\":1,\"experts\":[3,4],\"token_idx\":0}\n"
		      "{\"dataset\":\"d\",\"problem_id\":1,\"layer\":1,\"experts\":[7,0],\"token_idx\":0}\n");
	tap_ok(t && p2pio_expert_trace_tokens(t) == 3 && p2pio_expert_trace_info(t)->nr_layers == 2 &&
		       p2pio_expert_trace_info(t)->nr_experts == 8 && cell0(t, 0, 0) == 6 &&
		       cell0(t, 0, 1) == 3 && cell0(t, 1, 0) == 1 && cell0(t, 1, 1) == -1 &&
		       cell0(t, 2, 1) == 7 &&
		       p2pio_expert_trace_token_flags(t, 0) == P2PIO_EXPERT_TOKEN_SEQ_START &&
		       p2pio_expert_trace_token_flags(t, 1) == 0 &&
		       p2pio_expert_trace_token_flags(t, 2) == P2PIO_EXPERT_TOKEN_SEQ_START,
	       "profiler JSONL: reordered by token, problems are sequences, a missing cell is empty");
	p2pio_expert_trace_free(t);

	/* Raw log: a prefill block per layer (token_pos counts), then decode steps. */
	t = load_text("raw.jsonl",
		      "{\"problem_id\":0,\"layer\":0,\"token_pos\":0,\"experts\":[1,2]}\n"
		      "{\"problem_id\":0,\"layer\":0,\"token_pos\":1,\"experts\":[3,4]}\n"
		      "{\"problem_id\":0,\"layer\":1,\"token_pos\":0,\"experts\":[5,6]}\n"
		      "{\"problem_id\":0,\"layer\":1,\"token_pos\":1,\"experts\":[7,0]}\n"
		      "{\"problem_id\":0,\"layer\":0,\"token_pos\":0,\"experts\":[2,1]}\n"
		      "{\"problem_id\":0,\"layer\":1,\"token_pos\":0,\"experts\":[6,5]}\n"
		      "{\"problem_id\":0,\"layer\":1,\"token_pos\":0,\"experts\":[0,7]}\n");
	tap_ok(t && p2pio_expert_trace_tokens(t) == 4 && cell0(t, 0, 1) == 5 && cell0(t, 1, 0) == 3 &&
		       prompt_then_steps(t, 2) && cell0(t, 2, 0) == 2 && cell0(t, 2, 1) == 6 &&
		       cell0(t, 3, 0) == -1 && cell0(t, 3, 1) == 0,
	       "raw JSONL: prefill by position, decode steps split where the layer goes back down");
	p2pio_expert_trace_free(t);

	/*
	 * Raw log with a prompt position of 2^40: the decode steps come after it, as tokens of
	 * their own. The reader keyed a decode step as 2^40 | step, so step 0 shared the
	 * prompt token 2^40 (a missing cell at layer 0 there): the two made one token, marked
	 * prefill, with the decode's layer 0 and the prompt's layer 1, and the decode lost a
	 * step; where both had the layer, the log was refused as "two records for the same
	 * token and layer".
	 */
	t = load_text("raw-far.jsonl",
		      "{\"layer\":0,\"token_pos\":0,\"experts\":[1]}\n"
		      "{\"layer\":0,\"token_pos\":1,\"experts\":[2]}\n"
		      "{\"layer\":1,\"token_pos\":0,\"experts\":[3]}\n"
		      "{\"layer\":1,\"token_pos\":1099511627776,\"experts\":[4]}\n"
		      "{\"layer\":0,\"token_pos\":0,\"experts\":[5]}\n"
		      "{\"layer\":0,\"token_pos\":0,\"experts\":[6]}\n"
		      "{\"layer\":1,\"token_pos\":0,\"experts\":[7]}\n");
	tap_ok(t && p2pio_expert_trace_tokens(t) == 5 && cell0(t, 2, 0) == -1 &&
		       cell0(t, 2, 1) == 4 && prompt_then_steps(t, 3) &&
		       cell0(t, 3, 0) == 5 && cell0(t, 3, 1) == -1 &&
		       cell0(t, 4, 0) == 6 && cell0(t, 4, 1) == 7,
	       "raw JSONL, a prompt position of 2^40: its token and the two decode steps after "
	       "it stay apart (%llu tokens)",
	       t ? (unsigned long long)p2pio_expert_trace_tokens(t) : 0ull);
	p2pio_expert_trace_free(t);
	t = load_text("raw-far2.jsonl",
		      "{\"layer\":0,\"token_pos\":0,\"experts\":[1]}\n"
		      "{\"layer\":0,\"token_pos\":1099511627776,\"experts\":[2]}\n"
		      "{\"layer\":1,\"token_pos\":0,\"experts\":[3]}\n"
		      "{\"layer\":1,\"token_pos\":1099511627776,\"experts\":[4]}\n"
		      "{\"layer\":0,\"token_pos\":0,\"experts\":[5]}\n"
		      "{\"layer\":1,\"token_pos\":0,\"experts\":[6]}\n");
	tap_ok(t && p2pio_expert_trace_tokens(t) == 3 && cell0(t, 1, 0) == 2 &&
		       cell0(t, 1, 1) == 4 && cell0(t, 2, 0) == 5 && cell0(t, 2, 1) == 6 &&
		       prompt_then_steps(t, 2),
	       "raw JSONL, a prompt position of 2^40 and a decode step with the same layers: "
	       "read, not refused as one cell twice");
	p2pio_expert_trace_free(t);
	/*
	 * Raw log of one layer: every decode record has the last prompt record's layer. The
	 * reader took the records after the prompt's last position that shared its layer for
	 * the prompt too, at position 0 again: the log was refused as two records of one cell.
	 */
	t = load_text("raw-one.jsonl",
		      "{\"layer\":0,\"token_pos\":0,\"experts\":[1,2]}\n"
		      "{\"layer\":0,\"token_pos\":1,\"experts\":[3,4]}\n"
		      "{\"layer\":0,\"token_pos\":2,\"experts\":[5,6]}\n"
		      "{\"layer\":0,\"token_pos\":0,\"experts\":[7,0]}\n"
		      "{\"layer\":0,\"token_pos\":0,\"experts\":[2,3]}\n");
	tap_ok(t && p2pio_expert_trace_tokens(t) == 5 && p2pio_expert_trace_info(t)->nr_layers == 1 &&
		       cell0(t, 0, 0) == 1 && cell0(t, 2, 0) == 5 && cell0(t, 3, 0) == 7 &&
		       cell0(t, 4, 0) == 2 && prompt_then_steps(t, 3),
	       "raw JSONL of one layer: 3 prompt tokens, then each record a decode step (%llu tokens)",
	       t ? (unsigned long long)p2pio_expert_trace_tokens(t) : 0ull);
	p2pio_expert_trace_free(t);
	/*
	 * No position past 0: a one-token prompt, whose block reads like a decode step, then
	 * decode steps. The reader took the prompt for a decode step (replay counted it).
	 */
	t = load_text("raw-decode.jsonl",
		      "{\"layer\":0,\"token_pos\":0,\"experts\":[1]}\n"
		      "{\"layer\":1,\"token_pos\":0,\"experts\":[2]}\n"
		      "{\"layer\":0,\"token_pos\":0,\"experts\":[3]}\n");
	tap_ok(t && p2pio_expert_trace_tokens(t) == 2 && cell0(t, 0, 0) == 1 &&
		       cell0(t, 0, 1) == 2 && cell0(t, 1, 0) == 3 && cell0(t, 1, 1) == -1 &&
		       prompt_then_steps(t, 1),
	       "raw JSONL without a position past 0: a one-token prompt, then a decode step");
	p2pio_expert_trace_free(t);
	/* The same in a log of one layer: the first record is the prompt, each after a step. */
	t = load_text("raw-decode1.jsonl",
		      "{\"layer\":0,\"token_pos\":0,\"experts\":[1]}\n"
		      "{\"layer\":0,\"token_pos\":0,\"experts\":[2]}\n"
		      "{\"layer\":0,\"token_pos\":0,\"experts\":[3]}\n");
	tap_ok(t && p2pio_expert_trace_tokens(t) == 3 && cell0(t, 0, 0) == 1 &&
		       cell0(t, 1, 0) == 2 && cell0(t, 2, 0) == 3 && prompt_then_steps(t, 1),
	       "raw JSONL of one layer without a position past 0: a one-token prompt, two steps");
	p2pio_expert_trace_free(t);
	{
		/* No key is left after the last position a record can give: said, not wrapped. */
		static const char far[] = "{\"layer\":0,\"token_pos\":0,\"experts\":[1]}\n"
					  "{\"layer\":0,\"token_pos\":9223372036854775806,"
					  "\"experts\":[2]}\n"
					  "{\"layer\":1,\"token_pos\":0,\"experts\":[3]}\n"
					  "{\"layer\":1,\"token_pos\":1,\"experts\":[4]}\n"
					  "{\"layer\":0,\"token_pos\":0,\"experts\":[5]}\n"
					  "{\"layer\":0,\"token_pos\":0,\"experts\":[6]}\n";
		struct p2pio_error err = { 0 };
		int r;

		t = NULL;
		write_file(tmp_path("raw-end.jsonl"), far, sizeof(far) - 1);
		r = p2pio_expert_trace_load(tmp_path("raw-end.jsonl"), &t, &err);
		p2pio_expert_trace_free(t);
		tap_ok(r == -EINVAL && strstr(err.msg, "token_pos 9223372036854775806") &&
			       strstr(err.msg, "2 decode steps"),
		       "raw JSONL, a prompt position with no room for the decode steps after it: "
		       "refused, saying so (%d: %s)", r, err.msg);
	}

	/* vLLM FusedMoE logger: meta line, dummy profiling lead dropped. */
	t = load_text("c.jsonl",
		      "{\"type\":\"meta\",\"model_id\":\"m\",\"top_k\":2,\"num_experts\":16}\n"
		      "{\"type\":\"route\",\"token_idx\":0,\"layer\":0,\"topk_ids\":[1,0],\"topk_weights\":[0.5,0.5]}\n"
		      "{\"type\":\"route\",\"token_idx\":1,\"layer\":0,\"topk_ids\":[1,0],\"topk_weights\":[0.5,0.5]}\n"
		      "{\"type\":\"route\",\"token_idx\":2,\"layer\":0,\"topk_ids\":[9,3],\"topk_weights\":[0.7,0.3]}\n"
		      "{\"type\":\"route\",\"token_idx\":3,\"layer\":0,\"topk_ids\":[4,5],\"topk_weights\":[0.5,0.5]}\n");
	tap_ok(t && p2pio_expert_trace_tokens(t) == 2 && p2pio_expert_trace_info(t)->nr_experts == 16 &&
		       !strcmp(p2pio_expert_trace_info(t)->model, "m") && cell0(t, 0, 0) == 9 && cell0(t, 1, 0) == 4,
	       "FusedMoE JSONL: the uniform-weight lead is dropped, later equal weights are kept");
	p2pio_expert_trace_free(t);

	/* RoutingTrace document. */
	t = load_text("r.json",
		      "{\"meta\":{\"model_id\":\"q\",\"num_experts\":12},\"routes\":["
		      "{\"token_pos\":0,\"phase\":\"prefill\",\"layers\":{\"0\":{\"experts\":[1,2]},\"1\":{\"experts\":[3,4]}}},"
		      "{\"token_pos\":1,\"phase\":\"decode\",\"layers\":{\"1\":{\"experts\":[11,4]},\"0\":{\"experts\":[5,6]}}}]}");
	tap_ok(t && p2pio_expert_trace_tokens(t) == 2 && p2pio_expert_trace_info(t)->nr_experts == 12 &&
		       prompt_then_steps(t, 1) && cell0(t, 1, 0) == 5 && cell0(t, 1, 1) == 11,
	       "RoutingTrace JSON: phases and layer keys");
	p2pio_expert_trace_free(t);

	/*
	 * Text from the file that tools print is printable ASCII (session 11's review): a
	 * model name with a terminal escape, and the same in a bad layer key's message.
	 */
	t = load_text("esc.json",
		      "{\"meta\":{\"model_id\":\"\\u001b]0;pwned\\u0007\\u001b[2J evil\",\"num_experts\":12},"
		      "\"routes\":[{\"token_pos\":0,\"layers\":{\"0\":{\"experts\":[1,2]}}}]}");
	tap_ok(t && !strcmp(p2pio_expert_trace_info(t)->model, "?]0;pwned??[2J evil"),
	       "a model name's control bytes are read as '?' (%s)",
	       t ? p2pio_expert_trace_info(t)->model : "not loaded");
	p2pio_expert_trace_free(t);
	{
		struct p2pio_error err = { 0 };
		const char *bad = "{\"routes\":[{\"token_pos\":0,\"layers\":{\"\\u001b[31mRED\":{\"experts\":[1]}}}]}";

		t = NULL;
		write_file(tmp_path("esckey.json"), bad, strlen(bad));
		tap_ok(p2pio_expert_trace_load(tmp_path("esckey.json"), &t, &err) == -EINVAL &&
			       strstr(err.msg, "?[31mRED") && !strchr(err.msg, 0x1b),
		       "a bad layer key is quoted without its escape: %s", err.msg);
		p2pio_expert_trace_free(t);
	}

	/* HF greedy loop: step 0 is the last prompt token. */
	t = load_text("g.json",
		      "{\"num_experts\":8,\"decode_steps\":["
		      "{\"step\":0,\"layers\":[{\"layer\":0,\"topk_experts\":[1,2]}]},"
		      "{\"step\":1,\"layers\":[{\"layer\":0,\"topk_experts\":[3,2]}]}]}");
	tap_ok(t && p2pio_expert_trace_tokens(t) == 2 &&
		       p2pio_expert_trace_token_flags(t, 0) == (P2PIO_EXPERT_TOKEN_PREFILL | P2PIO_EXPERT_TOKEN_SEQ_START) &&
		       cell0(t, 1, 0) == 3, "decode_steps JSON: step 0 counts as prompt");
	p2pio_expert_trace_free(t);

	/* A log of one line parses whole as one document: it is still a log. */
	t = load_text("one.jsonl", "{\"problem_id\":0,\"layer\":1,\"experts\":[3,4],\"token_idx\":0}\n");
	tap_ok(t && p2pio_expert_trace_tokens(t) == 1 && p2pio_expert_trace_info(t)->nr_layers == 2 &&
		       cell0(t, 0, 1) == 3 && cell0(t, 0, 0) == -1,
	       "profiler JSONL of one record: read as a log");
	p2pio_expert_trace_free(t);
	t = load_text("one-route.jsonl",
		      "{\"type\":\"route\",\"token_idx\":0,\"layer\":0,\"topk_ids\":[1,0],\"topk_weights\":[0.7,0.3]}");
	tap_ok(t && p2pio_expert_trace_tokens(t) == 1 && cell0(t, 0, 0) == 1,
	       "FusedMoE JSONL of one route, no newline: read as a log");
	p2pio_expert_trace_free(t);

	/* Hostile and malformed inputs. */
	tap_ok(!load_text("m1.json", "{\"routes\":[{\"token_pos\":0,\"layers\":{\"0\":{\"experts\":[1,1]}}}]}"),
	       "an expert listed twice is refused");
	tap_ok(!load_text("m2.json", "{\"routes\":[{\"token_pos\":0,\"layers\":{\"0\":{\"experts\":[-1]}}}]}"),
	       "a negative expert id is refused");
	tap_ok(!load_text("m3.json", "{\"routes\":[{\"token_pos\":0,\"layers\":{\"x\":{\"experts\":[1]}}}]}"),
	       "a layer key that is not a number is refused");
	{
		/*
		 * A layer key is a plain decimal number: strtol() took " 1", "+1" and "01" for
		 * layer 1 and "-0" for layer 0 (a second spelling of a layer beside it).
		 */
		static const char *const bad[] = { " 1", "+1", "01", "-0", "1 ", "", "0x1" };
		struct p2pio_error err = { 0 };
		char doc[160], want[64];
		size_t i;
		int r;

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			snprintf(doc, sizeof(doc), "{\"routes\":[{\"token_pos\":0,\"layers\":"
				 "{\"2\":{\"experts\":[1]},\"%s\":{\"experts\":[2]}}}]}", bad[i]);
			snprintf(want, sizeof(want), "layer key is not a layer number: \"%s\"", bad[i]);
			t = NULL;
			write_file(tmp_path("key.json"), doc, strlen(doc));
			r = p2pio_expert_trace_load(tmp_path("key.json"), &t, &err);
			if (!tap_ok(r == -EINVAL && !t && strstr(err.msg, want) &&
					    strstr(err.msg, "plain decimal"),
				    "layer key \"%s\" is refused, quoted", bad[i]))
				tap_diag("got %d '%s'", r, err.msg);
			p2pio_expert_trace_free(t);
		}
		t = load_text("key10.json", "{\"routes\":[{\"token_pos\":0,\"layers\":"
				"{\"0\":{\"experts\":[1]},\"10\":{\"experts\":[2]}}}]}");
		tap_ok(t && p2pio_expert_trace_info(t)->nr_layers == 11 && cell0(t, 0, 10) == 2,
		       "layer keys \"0\" and \"10\" are read");
		p2pio_expert_trace_free(t);
	}
	{
		/*
		 * num_experts out of range, or not a number, in each layout that carries it
		 * (a FusedMoE meta line, a RoutingTrace meta, a decode_steps document): it was
		 * passed over, and the count taken from the largest id. null is no count.
		 */
		/* Each layout: what goes before the value, and after it. */
		static const char *const fmt[][2] = {
			{ "{\"type\":\"meta\",\"num_experts\":",
			  "}\n{\"type\":\"route\",\"token_idx\":0,\"layer\":0,\"topk_ids\":[1,0],"
			  "\"topk_weights\":[0.7,0.3]}\n" },
			{ "{\"meta\":{\"num_experts\":",
			  "},\"routes\":[{\"token_pos\":0,\"layers\":{\"0\":{\"experts\":[1,0]}}}]}" },
			{ "{\"num_experts\":",
			  ",\"decode_steps\":[{\"step\":0,\"layers\":"
			  "[{\"layer\":0,\"topk_experts\":[1,0]}]}]}" },
		};
		static const char *const bad[] = { "0", "-1", "65537", "70000", "2.5", "\"8\"" };
		static const char *const want[] = { "num_experts out of range: 0 (1 to 65536",
						    "num_experts out of range: -1 (1 to 65536",
						    "num_experts out of range: 65537 (1 to 65536",
						    "num_experts out of range: 70000 (1 to 65536",
						    "num_experts out of range: not an integer",
						    "num_experts out of range: not an integer" };
		struct p2pio_error err = { 0 };
		char doc[256];
		size_t f, i;
		int r;

		for (f = 0; f < 3; f++) {
			bool ok = true;

			for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
				snprintf(doc, sizeof(doc), "%s%s%s", fmt[f][0], bad[i], fmt[f][1]);
				t = NULL;
				write_file(tmp_path("ne.json"), doc, strlen(doc));
				r = p2pio_expert_trace_load(tmp_path("ne.json"), &t, &err);
				if (r != -EINVAL || t || !strstr(err.msg, want[i])) {
					tap_diag("num_experts %s: got %d '%s'", bad[i], r, r ? err.msg : "");
					ok = false;
				}
				p2pio_expert_trace_free(t);
			}
			tap_ok(ok, "layout %zu: num_experts 0, -1, 65537, 70000, 2.5 and \"8\" are refused, "
			       "each with its value", f);
			snprintf(doc, sizeof(doc), "%s%s%s", fmt[f][0], "null", fmt[f][1]);
			t = load_text("ne-null.json", doc);
			tap_ok(t && p2pio_expert_trace_info(t)->nr_experts == 2,
			       "layout %zu: num_experts null is no count: the largest id + 1", f);
			p2pio_expert_trace_free(t);
			snprintf(doc, sizeof(doc), "%s%s%s", fmt[f][0], "65536", fmt[f][1]);
			t = load_text("ne-max.json", doc);
			tap_ok(t && p2pio_expert_trace_info(t)->nr_experts == 65536,
			       "layout %zu: num_experts 65536 is taken", f);
			p2pio_expert_trace_free(t);
		}
		t = NULL;
		snprintf(doc, sizeof(doc), "%s%s%s", fmt[1][0], "1", fmt[1][1]);
		write_file(tmp_path("ne-id.json"), doc, strlen(doc));
		r = p2pio_expert_trace_load(tmp_path("ne-id.json"), &t, &err);
		tap_ok(r == -EINVAL && strstr(err.msg, "expert id 1, num_experts 1 (ids 0 to 0)"),
		       "an id beyond num_experts is refused, naming both (%s)", err.msg);
		p2pio_expert_trace_free(t);
	}
	tap_ok(!load_text("m4.json", "{\"meta\":{\"num_experts\":4},\"routes\":[{\"token_pos\":0,\"layers\":{\"0\":{\"experts\":[5]}}}]}"),
	       "an id beyond the file's own expert count is refused");
	tap_ok(!load_text("m5.jsonl", "{\"token_idx\":0,\"layer\":0,\"experts\":[1]}\n{\"token_idx\":\n"),
	       "a broken JSON line is refused");
	tap_ok(!load_text("m6.json", "{\"something\":1}"), "a document of unknown layout is refused");
	tap_ok(!load_text("m7.jsonl", "{\"token_idx\":0,\"layer\":0,\"experts\":[1]}\n{\"token_idx\":0,\"layer\":0,\"experts\":[2]}\n"),
	       "two records for one cell are refused");
	tap_ok(!load_text("m8.json", "{\"routes\":[{\"token_pos\":0,\"layers\":{\"0\":{\"experts\":[70000]}}}]}"),
	       "an id above 65535 is refused");
	/*
	 * json-c reads an integer beyond int64 as INT64_MAX (or INT64_MIN), with no error: two
	 * token indices past 2^63 - 1 were one token, their layers merged.
	 */
	t = load_text("m10.jsonl",
		      "{\"token_idx\":9223372036854775808,\"layer\":0,\"experts\":[1]}\n"
		      "{\"token_idx\":9223372036854775809,\"layer\":1,\"experts\":[2]}\n");
	tap_ok(!t, "token indices beyond int64 are refused, not read as 2^63 - 1 (%llu tokens)",
	       t ? (unsigned long long)p2pio_expert_trace_tokens(t) : 0ull);
	p2pio_expert_trace_free(t);
	t = load_text("m11.json",
		      "{\"decode_steps\":[{\"step\":18446744073709551616,\"layers\":[{\"layer\":0,"
		      "\"topk_experts\":[1]}]},{\"step\":18446744073709551617,\"layers\":[{\"layer\":1,"
		      "\"topk_experts\":[2]}]}]}");
	tap_ok(!t, "decode steps beyond int64 are refused (%llu tokens)",
	       t ? (unsigned long long)p2pio_expert_trace_tokens(t) : 0ull);
	p2pio_expert_trace_free(t);
	{
		/* NUL is no JSON blank: a binary tail after a line or a document is refused. */
		static const char nul_line[] = "{\"token_idx\":0,\"layer\":0,\"experts\":[1]}\0\n"
					       "{\"token_idx\":1,\"layer\":0,\"experts\":[2]}\n";
		static const char nul_doc[] = "{\"num_experts\":8,\"decode_steps\":[{\"step\":1,"
					      "\"layers\":[{\"layer\":0,\"topk_experts\":[1]}]}]}\n\0\0";
		struct p2pio_error err = { 0 };
		int r1, r2;

		t = NULL;
		write_file(tmp_path("nul.jsonl"), nul_line, sizeof(nul_line) - 1);
		r1 = p2pio_expert_trace_load(tmp_path("nul.jsonl"), &t, &err);
		p2pio_expert_trace_free(t);
		t = NULL;
		write_file(tmp_path("nul.json"), nul_doc, sizeof(nul_doc) - 1);
		r2 = p2pio_expert_trace_load(tmp_path("nul.json"), &t, &err);
		p2pio_expert_trace_free(t);
		tap_ok(r1 == -EINVAL && r2 == -EINVAL,
		       "NUL bytes after a JSON line or a document are refused, not taken for blanks (%d, %d)",
		       r1, r2);
	}
	{
		char deep[300];

		memset(deep, '[', sizeof(deep));
		memcpy(deep, "{\"routes\":", 10);
		deep[sizeof(deep) - 1] = '\0';
		tap_ok(!load_text("m9.json", deep), "nesting deeper than the parser's limit is refused");
	}
}

/* Replay on a hand-made one-layer trace: Belady's string as 12 tokens of one expert. */
static void test_replay(void)
{
	static const uint32_t s[] = { 1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5 };
	struct p2pio_expert_trace_info info = { .nr_layers = 2, .nr_experts = 8, .top_k = 1 };
	struct p2pio_expert_replay_opts o = { .policy = "oracle", .capacity = 3, .per_layer = true };
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_expert_layer_stats ls[2];
	struct p2pio_expert_trace *t;
	struct p2pio_error err = { 0 };
	size_t i;

	p2pio_expert_trace_new(&info, &t, NULL);
	for (i = 0; i < 12; i++) {
		uint32_t x = s[i];

		p2pio_expert_trace_add(t, 0, &x, 1, NULL);
		p2pio_expert_trace_add(t, 1, &x, 1, NULL);
		p2pio_expert_trace_end_token(t, 0, NULL);
	}
	tap_is_int(p2pio_expert_replay(t, &o, &st, ls, &err), 0, "replay oracle");
	tap_ok(st.hits == 10 && st.accesses == 24 && ls[0].hits == 5 && ls[1].hits == 5 &&
		       ls[0].max_resident == 3, "per-layer oracle, 3 frames: 5 hits per layer");
	o.policy = "lru";
	p2pio_expert_replay(t, &o, &st, ls, &err);
	tap_ok(st.hits == 4 && st.misses == 20 && st.tokens == 12, "per-layer LRU, 3 frames: 2 hits per layer");
	o.per_layer = false;
	o.capacity = 6;
	p2pio_expert_replay(t, &o, &st, ls, &err);
	tap_ok(st.hits == 4, "a global budget of 6 behaves as 3 per layer here (%llu)",
	       (unsigned long long)st.hits);
	o.per_layer = true;
	o.capacity = 3;
	o.prefetch = P2PIO_EXPERT_PREFETCH_NEXT;
	p2pio_expert_replay(t, &o, &st, NULL, &err);
	tap_ok(st.hits + 2 >= st.accesses - 2 && st.prefetches > 0 && st.loads >= st.misses + st.prefetch_used,
	       "an oracle next-layer predictor turns misses into used prefetches (%llu hits, %llu used)",
	       (unsigned long long)st.hits, (unsigned long long)st.prefetch_used);
	o.prefetch = P2PIO_EXPERT_PREFETCH_LAG;
	p2pio_expert_replay(t, &o, &st, NULL, &err);
	tap_ok(st.prefetches == 0, "lag prefetch under LRU with room for the last token: nothing to load");
	o.capacity = 0;
	tap_is_int(p2pio_expert_replay(t, &o, &st, NULL, &err), -EINVAL, "a capacity of 0: %s", "-EINVAL");
	o.capacity = 3;
	o.policy = "nope";
	tap_is_int(p2pio_expert_replay(t, &o, &st, NULL, &err), -EINVAL, "an unknown policy: %s", "-EINVAL");
	/* Prefill tokens are skipped unless asked for; sequences reset the cache. */
	p2pio_expert_trace_free(t);
	p2pio_expert_trace_new(&info, &t, NULL);
	for (i = 0; i < 4; i++) {
		uint32_t x = 1;

		p2pio_expert_trace_add(t, 0, &x, 1, NULL);
		p2pio_expert_trace_end_token(t, i == 0 ? P2PIO_EXPERT_TOKEN_PREFILL | P2PIO_EXPERT_TOKEN_SEQ_START :
						i == 2 ? P2PIO_EXPERT_TOKEN_SEQ_START : 0, NULL);
	}
	o.policy = "lru";
	o.prefetch = 0;
	p2pio_expert_replay(t, &o, &st, NULL, &err);
	tap_ok(st.tokens == 3 && st.misses == 2 && st.hits == 1,
	       "generated tokens only; each sequence starts cold");
	o.with_prefill = true;
	p2pio_expert_replay(t, &o, &st, NULL, &err);
	tap_ok(st.tokens == 4 && st.misses == 2 && st.hits == 2, "with the prompt: 4 tokens");
	p2pio_expert_trace_free(t);
}

/* @info refused with -EINVAL, no trace, and a message holding @needle: the field, its
 * value and the range allowed. */
static void new_refused(const struct p2pio_expert_trace_info *info, const char *needle,
			const char *what)
{
	struct p2pio_expert_trace *t = NULL;
	struct p2pio_error err = { 0 };
	int r = p2pio_expert_trace_new(info, &t, &err);

	if (!tap_ok(r == -EINVAL && !t && err.code == -EINVAL && err.offset == P2PIO_NO_OFFSET &&
		    strstr(err.msg, needle), "trace_new, %s: -EINVAL, the message says '%s'", what,
		    needle))
		tap_diag("got %d '%s'", r, err.msg);
	p2pio_expert_trace_free(t);
}

/* Each of p2pio_expert_trace_new()'s refusals, with its message; @err stays optional. */
static void test_new_refused(void)
{
	struct p2pio_expert_trace_info info = { .nr_layers = 2, .nr_experts = 8, .top_k = 2 };
	struct p2pio_expert_trace *t = NULL;

	new_refused(NULL, "info is NULL", "no info");
	info.nr_layers = 0;
	new_refused(&info, "nr_layers 0 (1 to 4096 allowed)", "no layers");
	info.nr_layers = P2PIO_EXPERT_TRACE_MAX_LAYERS + 1;
	new_refused(&info, "nr_layers 4097 (1 to 4096 allowed)", "too many layers");
	info.nr_layers = 2;
	info.nr_experts = 0;
	new_refused(&info, "nr_experts 0 (1 to 65536 allowed)", "no experts");
	info.nr_experts = P2PIO_EXPERT_TRACE_MAX_EXPERTS + 1;
	new_refused(&info, "nr_experts 65537 (1 to 65536 allowed)", "too many experts");
	info.nr_experts = 8;
	info.top_k = 0;
	new_refused(&info, "top_k 0 (1 to 255 allowed", "top_k 0");
	info.top_k = 9;
	new_refused(&info, "top_k 9 (1 to 255 allowed, and at most nr_experts, 8)",
		    "top_k above the experts");
	info.nr_experts = 1024;
	info.top_k = P2PIO_EXPERT_TRACE_MAX_TOP_K + 1;
	new_refused(&info, "top_k 256 (1 to 255 allowed", "top_k above its limit");
	info.nr_experts = 8;
	info.top_k = 2;
	memset(info.model, 'm', sizeof(info.model));
	new_refused(&info, "model not NUL-terminated within its 64 bytes", "an unterminated model");
	info.nr_layers = 0;
	tap_ok(p2pio_expert_trace_new(&info, &t, NULL) == -EINVAL && !t,
	       "trace_new without an error struct: still -EINVAL");
}

/* As new_refused(), for p2pio_expert_synth(). */
static void synth_refused(const struct p2pio_expert_synth_params *p, const char *needle,
			  const char *what)
{
	struct p2pio_expert_trace *t = NULL;
	struct p2pio_error err = { 0 };
	int r = p2pio_expert_synth(p, &t, &err);

	if (!tap_ok(r == -EINVAL && !t && err.code == -EINVAL && err.offset == P2PIO_NO_OFFSET &&
		    strstr(err.msg, needle), "synth, %s: -EINVAL, the message says '%s'", what,
		    needle))
		tap_diag("got %d '%s'", r, err.msg);
	p2pio_expert_trace_free(t);
}

/* The synth's refusals that test_synth() and test-expert-predict.c do not try; @p is
 * valid. */
static void test_synth_refused(struct p2pio_expert_synth_params p)
{
	struct p2pio_expert_synth_params q = p;
	struct p2pio_expert_trace *t = NULL;

	q.nr_layers = 0;
	synth_refused(&q, "nr_layers 0 (1 to 4096 allowed)", "no layers");
	q = p;
	q.nr_experts = P2PIO_EXPERT_TRACE_MAX_EXPERTS + 1;
	synth_refused(&q, "nr_experts 65537 (1 to 65536 allowed)", "too many experts");
	q = p;
	q.skew = 9;
	synth_refused(&q, "skew 9 (0 to 8 allowed)", "skew above 8");
	q = p;
	q.window = 0;
	synth_refused(&q, "window 0 (1 to 1024 allowed)", "window 0");
	q.window = 1025;
	synth_refused(&q, "window 1025 (1 to 1024 allowed)", "window above 1024");
	q = p;
	q.tokens = 0;
	synth_refused(&q, "tokens 0 (1 to 16777216 allowed)", "no tokens");
	q.tokens = (1u << 24) + 1;
	synth_refused(&q, "tokens 16777217 (1 to 16777216 allowed)", "too many tokens");
	q = p;
	q.cutoff = 65;
	synth_refused(&q, "cutoff 65 (0 to 64 allowed)", "cutoff above 64");
	q = p;
	q.skew = -1;
	tap_ok(p2pio_expert_synth(&q, &t, NULL) == -EINVAL && !t,
	       "synth without an error struct: still -EINVAL");
}

/* @repeat 1: a layer keeps the token before's experts; @offset flattens the head. */
static void test_synth_refinements(struct p2pio_expert_synth_params p,
				   const struct p2pio_expert_trace *plain)
{
	struct p2pio_expert_replay_opts o = { .policy = "lru", .capacity = 8, .per_layer = true };
	struct p2pio_expert_stats s0 = { .size = sizeof(s0) }, s1 = { .size = sizeof(s1) };
	struct p2pio_expert_trace *t = NULL;
	bool same = true, kept = true;
	uint64_t tok;
	uint32_t l, i, j;

	/* Both 0: the trace without them (@plain, made from the same parameters). */
	p2pio_expert_synth(&p, &t, NULL);
	for (tok = 0; t && tok < p.tokens; tok++)
		for (l = 0; l < p.nr_layers; l++) {
			const uint16_t *x, *y;

			if (p2pio_expert_trace_cell(t, tok, l, &x) != 4 ||
			    p2pio_expert_trace_cell(plain, tok, l, &y) != 4 || memcmp(x, y, 8))
				same = false;
		}
	tap_ok(t && same, "repeat 0, offset 0: the same trace as without them");
	p2pio_expert_trace_free(t);
	t = NULL;
	p.repeat = 1;
	tap_is_int(p2pio_expert_synth(&p, &t, NULL), 0, "synth with repeat 1");
	for (tok = 1; t && tok < p.tokens; tok++)
		for (l = 0; l < p.nr_layers; l++) {
			const uint16_t *x, *y;

			p2pio_expert_trace_cell(t, tok - 1, l, &x);
			p2pio_expert_trace_cell(t, tok, l, &y);
			for (i = 0; i < 4; i++) {
				for (j = 0; j < 4 && y[i] != x[j]; j++)
					;
				kept &= j < 4;
			}
		}
	tap_ok(t && kept, "repeat 1: every token takes the experts of the token before");
	p2pio_expert_trace_free(t);
	t = NULL;
	/* A flat head of 16 experts: with 8 slots per layer LRU catches less of it. */
	p.repeat = 0;
	p.locality = 0;
	p.skew = 2;
	p2pio_expert_synth(&p, &t, NULL);
	p2pio_expert_replay(t, &o, &s0, NULL, NULL);
	p2pio_expert_trace_free(t);
	t = NULL;
	p.offset = 16;
	p2pio_expert_synth(&p, &t, NULL);
	p2pio_expert_replay(t, &o, &s1, NULL, NULL);
	tap_ok(t && s1.hits < s0.hits, "offset 16 flattens the head: fewer LRU hits (%llu < %llu)",
	       (unsigned long long)s1.hits, (unsigned long long)s0.hits);
	p2pio_expert_trace_free(t);
}

static void test_synth(void)
{
	struct p2pio_expert_synth_params p = { .nr_layers = 4, .nr_experts = 32, .top_k = 4,
					       .tokens = 200, .skew = 1.0, .locality = 0.5,
					       .window = 2, .seed = 42 };
	struct p2pio_expert_trace *a = NULL, *b = NULL, *c = NULL;
	struct p2pio_expert_replay_opts o = { .policy = "lru", .capacity = 8, .per_layer = true };
	struct p2pio_expert_stats sa = { .size = sizeof(sa) }, sl = { .size = sizeof(sl) };
	bool same = true, differ = false;
	uint64_t tok;
	uint32_t l;

	tap_is_int(p2pio_expert_synth(&p, &a, NULL), 0, "synth");
	p2pio_expert_synth(&p, &b, NULL);
	p.seed = 43;
	p2pio_expert_synth(&p, &c, NULL);
	for (tok = 0; a && b && c && tok < 200; tok++)
		for (l = 0; l < 4; l++) {
			const uint16_t *x, *y, *z;
			int n = p2pio_expert_trace_cell(a, tok, l, &x);

			if (n != 4 || p2pio_expert_trace_cell(b, tok, l, &y) != 4 || memcmp(x, y, 8))
				same = false;
			if (p2pio_expert_trace_cell(c, tok, l, &z) == 4 && memcmp(x, z, 8))
				differ = true;
		}
	tap_ok(same, "the same seed gives the same trace");
	tap_ok(differ, "another seed gives another trace");
	/* Locality raises the LRU hit rate; so does skew. */
	p2pio_expert_replay(a, &o, &sa, NULL, NULL);
	p2pio_expert_trace_free(c);
	p.seed = 42;
	p.locality = 0.9;
	p2pio_expert_synth(&p, &c, NULL);
	p2pio_expert_replay(c, &o, &sl, NULL, NULL);
	tap_ok(sl.hits > sa.hits, "more locality, more LRU hits (%llu > %llu)",
	       (unsigned long long)sl.hits, (unsigned long long)sa.hits);
	p2pio_expert_trace_free(c);
	p.locality = 0;
	p.skew = 0;
	p2pio_expert_synth(&p, &c, NULL);
	p2pio_expert_replay(c, &o, &sl, NULL, NULL);
	tap_ok(sl.hits * 100 < sl.accesses * 35,
	       "uniform and no locality: LRU near capacity/experts = 25%% (%llu of %llu)",
	       (unsigned long long)sl.hits, (unsigned long long)sl.accesses);
	p2pio_expert_trace_free(c);
	c = NULL;
	p.top_k = 40;
	synth_refused(&p, "top_k 40 (1 to 255 allowed, and at most nr_experts, 32)",
		      "top_k above the experts");
	p.top_k = 4;
	p.locality = 1.5;
	synth_refused(&p, "locality 1.5 (0 to 1 allowed)", "locality above 1");
	p.locality = 0.5;
	p.skew = 1.0;
	p.repeat = 1.5;
	synth_refused(&p, "repeat 1.5 (0 to 1 allowed)", "repeat above 1");
	p.repeat = 0;
	p.offset = 2000;
	synth_refused(&p, "offset 2000 (0 to 1024 allowed)", "offset above 1024");
	p.offset = 0;
	test_synth_refused(p);
	test_synth_refinements(p, a);
	p2pio_expert_trace_free(a);
	p2pio_expert_trace_free(b);
	p2pio_expert_trace_free(c);
}

/* Its tokens marked prefill. */
static uint64_t prefill_tokens(const struct p2pio_expert_trace *t)
{
	uint64_t i, n = 0;

	for (i = 0; i < p2pio_expert_trace_tokens(t); i++)
		n += !!(p2pio_expert_trace_token_flags(t, i) & P2PIO_EXPERT_TOKEN_PREFILL);
	return n;
}

/*
 * The profiler's raw log (SOURCES.md: 135 prompt tokens, then 83 decode steps whose first
 * routes layer 0 to [6, 5]), whole and cut to its layer 0 in the test's directory (the
 * trace stays out of the repository). The cut was refused: the reader took the decode
 * records for prompt ones, as they share the prompt's last layer.
 */
static void test_real_raw(const char *base)
{
	struct p2pio_expert_trace *t = NULL;
	struct p2pio_error err = { 0 };
	char path[256], line[4096];
	FILE *in, *out;
	int pass;

	snprintf(path, sizeof(path), "%s/speculative-moe/analysis/deep_analysis/routing_raw.jsonl", base);
	in = fopen(path, "r");
	out = fopen(tmp_path("raw-layer0.jsonl"), "w");
	if (!in || !out)
		tap_bail("cannot cut the raw log to its layer 0");
	while (fgets(line, sizeof(line), in))
		if (strstr(line, "\"layer\": 0,") && fputs(line, out) == EOF)
			tap_bail("cannot write the raw log's layer 0");
	if (fclose(out))
		tap_bail("cannot write the raw log's layer 0");
	fclose(in);
	for (pass = 0; pass < 2; pass++) {
		int r = p2pio_expert_trace_load(pass ? tmp_path("raw-layer0.jsonl") : path, &t, &err);

		if (!tap_ok(!r && p2pio_expert_trace_tokens(t) == 218 && prefill_tokens(t) == 135 &&
				    p2pio_expert_trace_info(t)->nr_layers == (pass ? 1u : 32u) &&
				    cell0(t, 135, 0) == 6 && !(p2pio_expert_trace_token_flags(t, 135) &
							      P2PIO_EXPERT_TOKEN_PREFILL),
			    "the raw log%s: 135 prompt tokens, then 83 decode steps from [6, 5]",
			    pass ? " cut to its layer 0" : ""))
			tap_diag("%d %s; %llu tokens, %llu prefill", r, r ? err.msg : "",
				 t ? (unsigned long long)p2pio_expert_trace_tokens(t) : 0ull,
				 t ? (unsigned long long)prefill_tokens(t) : 0ull);
		p2pio_expert_trace_free(t);
		t = NULL;
	}
}

/*
 * The real traces, when ../shared/data/moe-traces (or ../../, or $P2PIO_MOE_TRACES) is
 * here - not on CI's clean clone: the
 * readers take them, and per-layer LRU on the Mixtral set reproduces the hit rates that
 * SOURCES.md there computed with an independent simulator.
 */
static void test_real(void)
{
	static const char *const where[] = { "../shared/data/moe-traces", "../../shared/data/moe-traces" };
	const char *base = getenv("P2PIO_MOE_TRACES");
	static const double want[] = { 0.318, 0.458, 0.589, 0.697, 0.799, 0.894, 0.973 };
	struct p2pio_expert_trace *t[2] = { NULL, NULL };
	struct p2pio_error err = { 0 };
	char path[256];
	uint32_t c;

	for (c = 0; !base && c < 2; c++)
		if (!access(where[c], R_OK))
			base = where[c];
	if (!base) {
		tap_skip(5, "no ../shared/data/moe-traces here (or P2PIO_MOE_TRACES)");
		return;
	}
	test_real_raw(base);
	snprintf(path, sizeof(path), "%s/speculative-moe/routing_data_collected/humaneval_2_routing.jsonl", base);
	tap_is_int(p2pio_expert_trace_load(path, &t[0], &err), 0, "the HumanEval trace loads");
	snprintf(path, sizeof(path), "%s/speculative-moe/routing_data_collected/gsm8k_2_routing.jsonl", base);
	tap_is_int(p2pio_expert_trace_load(path, &t[1], &err), 0, "the GSM8K trace loads");
	if (t[0] && t[1]) {
		bool ok = true;

		for (c = 2; c <= 8; c++) {
			struct p2pio_expert_replay_opts o = { .policy = "lru", .capacity = c, .per_layer = true };
			struct p2pio_expert_stats a = { .size = sizeof(a) }, b = { .size = sizeof(b) };
			double h;

			p2pio_expert_replay(t[0], &o, &a, NULL, NULL);
			p2pio_expert_replay(t[1], &o, &b, NULL, NULL);
			h = (double)(a.hits + b.hits) / (double)(a.accesses + b.accesses);
			if (h < want[c - 2] - 0.0005 || h > want[c - 2] + 0.0005) {
				tap_diag("capacity %u: %.4f, SOURCES.md says %.3f", c, h, want[c - 2]);
				ok = false;
			}
		}
		tap_ok(ok, "per-layer LRU at 2..8 experts matches SOURCES.md to 3 digits");
	} else {
		tap_skip(1, "the traces did not load");
	}
	p2pio_expert_trace_free(t[0]);
	p2pio_expert_trace_free(t[1]);
}

/* Peak resident memory of this process so far, in MiB (getrusage: kilobytes). */
static long peak_mib(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_SELF, &ru) ? -1 : ru.ru_maxrss / 1024;
}

/*
 * Files that describe a huge dense trace in a few bytes (session 11's review): a JSON
 * log with one record at layer 4095 listing 255 experts and then 399 one-expert tokens
 * (18 KB; every token 2 MB wide in memory: 800 MiB before), and a native file of
 * 4096 layers x top_k 255 whose 40 tokens have only empty cells (164 KB, 83 MB). Each is
 * refused with -E2BIG and says why, without taking the memory.
 */
static void test_sparse_refused(void)
{
	struct p2pio_expert_trace *t = NULL;
	struct p2pio_error err = { 0 };
	size_t cap = 1 << 20, len = 0, hdr;
	char *text = malloc(cap);
	unsigned char *nat;
	long before = peak_mib();
	int r, i, k;

	if (!text)
		tap_bail("malloc");
	len += (size_t)snprintf(text + len, cap - len, "{\"experts\":[");
	for (k = 0; k < 255; k++)
		len += (size_t)snprintf(text + len, cap - len, "%s%d", k ? "," : "", k);
	len += (size_t)snprintf(text + len, cap - len, "],\"token_idx\":0,\"layer\":4095}\n");
	for (i = 1; i < 400; i++)
		len += (size_t)snprintf(text + len, cap - len,
					"{\"experts\":[0],\"token_idx\":%d,\"layer\":0}\n", i);
	write_file(tmp_path("sparse.jsonl"), text, len);
	r = p2pio_expert_trace_load(tmp_path("sparse.jsonl"), &t, &err);
	if (!tap_ok(r == -E2BIG && !t && strstr(err.msg, "too sparse"),
		    "a %zu-byte JSON log of 400 tokens 4096 layers wide: -E2BIG, too sparse", len))
		tap_diag("got %d '%s'", r, err.msg);
	p2pio_expert_trace_free(t);
	t = NULL;

	/* native: the header, then 40 tokens of a flag byte and 4096 empty cells */
	hdr = 33;
	len = hdr + 40 * (1 + 4096);
	nat = calloc(1, len);
	if (!nat)
		tap_bail("calloc");
	put_header(nat, 4096, 255, 255);	/* 4096 layers, 255 experts, top_k 255 */
	write_file(tmp_path("sparse.trace"), nat, len);
	r = p2pio_expert_trace_load(tmp_path("sparse.trace"), &t, &err);
	if (!tap_ok(r == -E2BIG && !t && strstr(err.msg, "too sparse"),
		    "a %zu-byte native file of 40 empty tokens 4096 layers x 255 wide: -E2BIG, too sparse",
		    len))
		tap_diag("got %d '%s'", r, err.msg);
	p2pio_expert_trace_free(t);
	tap_ok(peak_mib() - before < 200, "refusing them took %ld MiB more at the peak (< 200)",
	       peak_mib() - before);
	free(nat);
	free(text);
}

/* The writer's refusals, each with its message; what was refused is not written. */
static void test_writer_refused(void)
{
	struct p2pio_expert_trace_info info = { .nr_layers = 2, .nr_experts = 8, .top_k = 2 };
	uint32_t one[1] = { 1 }, two[1] = { 2 }, eight[1] = { 8 }, twice[2] = { 1, 1 };
	uint32_t three[3] = { 1, 2, 3 };
	struct p2pio_expert_trace_writer *w = NULL;
	struct p2pio_expert_trace *u = NULL;
	struct p2pio_error err = { 0 };
	const uint16_t *ids;

	if (p2pio_expert_trace_writer_open(tmp_path("wr.trace"), &info, &w, &err))
		tap_bail(err.msg);
	add_refused(NULL, w, 2, one, 1, "expert trace: layer 2 out of range (0 to 1 allowed: nr_layers 2)",
		    "a layer out of range");
	add_refused(NULL, w, 0, eight, 1,
		    "expert trace: layer 0: expert id 8 out of range (0 to 7 allowed: nr_experts 8)",
		    "an id out of range");
	add_refused(NULL, w, 1, three, 3, "expert trace: layer 1: 3 experts, more than top_k 2",
		    "more than top_k");
	add_refused(NULL, w, 0, twice, 2, "expert trace: layer 0: expert id 1 repeated (at 0 and 1 of the 2 ids)",
		    "a repeated id");
	tap_is_int(p2pio_expert_trace_writer_add(w, 0, one, 1, &err), 0, "writer_add layer 0");
	add_refused(NULL, w, 0, two, 1, "expert trace: layer 0 already added to this token",
		    "a layer twice in a token");
	tap_is_int(p2pio_expert_trace_writer_add(w, 0, two, 1, NULL), -EINVAL,
		   "writer_add without an error struct: still %s", "-EINVAL");
	end_refused(NULL, w, 8, -EINVAL,
		    "expert trace: token 0: unknown flags 0x8 (the P2PIO_EXPERT_TOKEN_* bits are 0x3)",
		    "unknown token flags");
	tap_is_int(p2pio_expert_trace_writer_end_token(w, 0, &err), 0, "writer_end_token");
	end_refused(NULL, w, 0x5, -EINVAL, "expert trace: token 1: unknown flags 0x5",
		    "unknown flags beside known ones");
	tap_is_int(p2pio_expert_trace_writer_end_token(w, 4, NULL), -EINVAL,
		   "writer_end_token without an error struct: still %s", "-EINVAL");
	tap_is_int(p2pio_expert_trace_writer_close(w, &err), 0, "writer close");
	tap_ok(!p2pio_expert_trace_load(tmp_path("wr.trace"), &u, &err) &&
		       p2pio_expert_trace_tokens(u) == 1 && p2pio_expert_trace_cell(u, 0, 0, &ids) == 1 &&
		       ids[0] == 1 && p2pio_expert_trace_cell(u, 0, 1, &ids) == 0,
	       "the refusals wrote nothing: one token, layer 0 = [1]");
	p2pio_expert_trace_free(u);
}

/* A write that fails (a full disk): -EIO, and a message naming the file, the token and
 * the write's error; later tokens say which one failed. */
static void test_writer_full(void)
{
	struct p2pio_expert_trace_info info = { .nr_layers = 4, .nr_experts = 64, .top_k = 8 };
	uint32_t ids[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
	struct p2pio_expert_trace_writer *w = NULL;
	struct p2pio_error err = { 0 };
	char needle[200];
	uint32_t l, tok;
	int r = 0;

	if (access("/dev/full", W_OK) ||
	    p2pio_expert_trace_writer_open("/dev/full", &info, &w, &err)) {
		tap_skip(3, "no writable /dev/full");
		return;
	}
	for (tok = 0; !r && tok < 100000; tok++) {
		for (l = 0; l < 4; l++)
			p2pio_expert_trace_writer_add(w, l, ids, 8, NULL);
		r = p2pio_expert_trace_writer_end_token(w, 0, &err);
	}
	tok--;
	snprintf(needle, sizeof(needle), "/dev/full: token %u: writing the expert trace failed: %s",
		 tok, strerror(ENOSPC));
	if (!tap_ok(r == -EIO && err.code == -EIO && strstr(err.msg, needle),
		    "a full disk: -EIO at token %u, the message says '%s'", tok, needle))
		tap_diag("got %d '%s'", r, err.msg);
	snprintf(needle, sizeof(needle),
		 "/dev/full: token %u not written: writing the expert trace failed at token %u: %s",
		 tok + 1, tok, strerror(ENOSPC));
	end_refused(NULL, w, 0, -EIO, needle, "the token after a failed write");
	tap_ok(p2pio_expert_trace_writer_close(w, &err) < 0, "close reports the failure too: %s",
	       err.msg);
}

/* end_token's -E2BIG: a trace's tokens take at most 1 GiB in memory. 4096 layers x top_k
 * 255 take 2093057 bytes a token: 513 fit. */
static void test_end_token_too_big(void)
{
	struct p2pio_expert_trace_info info = { .nr_layers = 4096, .nr_experts = 255, .top_k = 255 };
	struct p2pio_expert_trace *t = NULL;
	uint32_t tok;
	int r = 0;

	if (p2pio_expert_trace_new(&info, &t, NULL))
		tap_bail("trace_new");
	for (tok = 0; !r && tok < 1000; tok++)
		r = p2pio_expert_trace_end_token(t, 0, NULL);
	tap_ok(r == -E2BIG && tok == 514, "E2BIG at token 513, with 513 tokens taken (got %d at %u)",
	       r, tok - 1);
	end_refused(t, NULL, 0, -E2BIG,
		    "expert trace: token 513: 4096 layers x top_k 255 take 2093057 bytes a token in memory, past the trace's bound of 1024 MiB",
		    "past 1 GiB of tokens");
	tap_ok(p2pio_expert_trace_tokens(t) == 513, "the trace keeps its 513 tokens");
	p2pio_expert_trace_free(t);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/p2pio-trace-XXXXXX");
	if (!mkdtemp(dir))
		tap_bail("mkdtemp");
	tap_plan_lazy();
	test_roundtrip();
	test_writer_refused();
	test_writer_full();
	test_end_token_too_big();
	test_new_refused();
	test_malformed();
	test_sparse_refused();
	test_json();
	test_replay();
	test_synth();
	test_real();
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd))
			tap_diag("could not remove %s", dir);
	}
	return tap_exit();
}
