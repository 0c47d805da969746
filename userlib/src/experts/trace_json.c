// SPDX-License-Identifier: MIT
/*
 * trace_json.c - readers for the JSON routing logs other tools write (parsed with json-c),
 * recognised by their keys; Documentation/moe.md lists them:
 *
 *  JSON Lines, one record per (token, layer):
 *   "experts" + "token_idx" (+ "problem_id")   vLLM routing profiler (speculative-moe):
 *                                                sorted by (problem, token, layer); each
 *                                                problem is a sequence; generated tokens.
 *   "experts" + "token_pos"                      the same profiler's raw log: prefill layer
 *                                                blocks (token_pos counts) up to the last
 *                                                non-zero token_pos (none: the first block
 *                                                is a one-token prompt), then decode steps
 *                                                (token_pos 0, a step ends where the layer
 *                                                number does not go up: in a log of one
 *                                                layer, every record is a step).
 *   "type": "meta" / "route" + "topk_ids"        vLLM FusedMoE logger (one layer): the
 *                                                leading run of uniform-weight records is
 *                                                vLLM's profiling pass on dummy input and
 *                                                is dropped.
 *  One JSON document:
 *   "routes": [{token_pos, phase, layers: {"L": {experts}}}]   RoutingTrace (moe_ocs)
 *   "decode_steps": [{step, layers: [{layer, topk_experts}]}]  HF greedy loop
 *                                                (expert_scheduler gen_*.json); step 0 is
 *                                                the last prompt token: marked prefill.
 *   "layers": [{token_data | topk_per_token: [{topk_experts}]}] its prefill file
 *                                                (trace_*.json): prompt tokens.
 *
 * Records are gathered as (sequence, token, layer, experts), sorted, and turned into tokens;
 * a (token, layer) cell no record names is "not recorded" (0 experts).
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experts/trace.h"

struct jrec {
	int64_t seq;
	int64_t tok;
	uint32_t layer;
	uint32_t n;
	size_t ids;	/* index into jtrace.ids */
	uint8_t flags;
	size_t order;	/* input order, for a stable sort */
};

struct jtrace {
	const char *path;
	struct p2pio_error *err;
	struct jrec *r;
	size_t nr, cap;
	uint32_t *ids;
	size_t nr_ids, cap_ids;
	uint32_t nr_experts_hint;	/* from the file's metadata, or 0 */
	char model[P2PIO_EXPERT_TRACE_MODEL_LEN];
	size_t len;			/* the document's bytes */
};

static int jt_fail(struct jtrace *j, uint64_t off, const char *what, const char *detail)
{
	return p2pio_set_error(j->err, -EINVAL, off, "%s: %s%s%s", j->path, what,
			       detail ? ": " : "", detail ? detail : "");
}

static struct json_object *jget(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/*
 * JSON's blanks. Not strchr(" \t\r\n", c): that finds c == '\0' as well (the string's
 * own terminator), so NUL bytes in a log passed for blanks and a binary tail was read
 * as the end of the document or of a line.
 */
bool p2pio_json_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * @v as an integer in [@lo, @hi]. json-c reads an integer beyond int64 as INT64_MAX (or
 * INT64_MIN) and says nothing, so those two values are never taken: 2^63 and 2^63 + 1 as
 * token indices were one token.
 */
static bool jint(struct json_object *v, int64_t lo, int64_t hi, int64_t *out)
{
	int64_t x;

	if (!v || !json_object_is_type(v, json_type_int))
		return false;
	errno = 0;
	x = json_object_get_int64(v);
	if (errno || x == INT64_MAX || x == INT64_MIN || x < lo || x > hi)
		return false;
	*out = x;
	return true;
}

/*
 * The file's own expert count, "num_experts" in @o, where it has one (null: none). One
 * out of range or not an integer is refused: it was passed over without a word, and the
 * count taken from the largest id instead, so a file that said 0, 70000 or "8" was read
 * as if it had said nothing.
 */
static int jt_num_experts(struct jtrace *j, uint64_t off, struct json_object *o)
{
	struct json_object *v = jget(o, "num_experts");
	char detail[96];
	int64_t n;

	if (!v || json_object_is_type(v, json_type_null))
		return 0;
	if (jint(v, 1, P2PIO_EXPERT_TRACE_MAX_EXPERTS, &n)) {
		j->nr_experts_hint = (uint32_t)n;
		return 0;
	}
	if (jint(v, INT64_MIN, INT64_MAX, &n))
		snprintf(detail, sizeof(detail), "%lld (1 to %d allowed)", (long long)n,
			 P2PIO_EXPERT_TRACE_MAX_EXPERTS);
	else
		snprintf(detail, sizeof(detail), "not an integer from 1 to %d",
			 P2PIO_EXPERT_TRACE_MAX_EXPERTS);
	return jt_fail(j, off, "num_experts out of range", detail);
}

/* Add one record; @arr is the JSON array of expert ids. */
static int jt_add(struct jtrace *j, uint64_t off, int64_t seq, int64_t tok, int64_t layer,
		  struct json_object *arr, uint8_t flags)
{
	size_t n, i, k;
	int64_t id;

	if (layer < 0 || layer >= P2PIO_EXPERT_TRACE_MAX_LAYERS)
		return jt_fail(j, off, "layer number out of range", NULL);
	if (!arr || !json_object_is_type(arr, json_type_array))
		return jt_fail(j, off, "a record has no list of experts", NULL);
	n = json_object_array_length(arr);
	if (n > P2PIO_EXPERT_TRACE_MAX_TOP_K)
		return jt_fail(j, off, "a record lists more than 255 experts", NULL);
	if (j->nr == j->cap) {
		size_t cap = j->cap ? j->cap * 2 : 1024;
		struct jrec *r = realloc(j->r, cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		j->r = r;
		j->cap = cap;
	}
	if (j->nr_ids + n > j->cap_ids) {
		size_t cap = j->cap_ids ? j->cap_ids * 2 : 8192;
		uint32_t *ids;

		while (cap < j->nr_ids + n)
			cap *= 2;
		ids = realloc(j->ids, cap * sizeof(*ids));
		if (!ids)
			return -ENOMEM;
		j->ids = ids;
		j->cap_ids = cap;
	}
	for (i = 0; i < n; i++) {
		if (!jint(json_object_array_get_idx(arr, i), 0, P2PIO_EXPERT_TRACE_MAX_EXPERTS - 1, &id))
			return jt_fail(j, off, "an expert id is not an integer from 0 to 65535", NULL);
		for (k = 0; k < i; k++)
			if (j->ids[j->nr_ids + k] == (uint32_t)id)
				return jt_fail(j, off, "a record lists an expert twice", NULL);
		j->ids[j->nr_ids + i] = (uint32_t)id;
	}
	j->r[j->nr] = (struct jrec){ seq, tok, (uint32_t)layer, (uint32_t)n, j->nr_ids, flags, j->nr };
	j->nr++;
	j->nr_ids += n;
	return 0;
}

static int jrec_cmp(const void *a, const void *b)
{
	const struct jrec *x = a, *y = b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	if (x->tok != y->tok)
		return x->tok < y->tok ? -1 : 1;
	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Sort the records and build the trace. */
static int jt_build(struct jtrace *j, struct p2pio_expert_trace **out)
{
	struct p2pio_expert_trace_info info = { 0 };
	struct p2pio_expert_trace *t;
	uint32_t max_id = 0;
	size_t i, k;
	int ret;

	if (!j->nr)
		return jt_fail(j, 0, "no routing records found", NULL);
	for (i = 0; i < j->nr; i++) {
		if (j->r[i].layer + 1 > info.nr_layers)
			info.nr_layers = j->r[i].layer + 1;
		if (j->r[i].n > info.top_k)
			info.top_k = j->r[i].n;
		for (k = 0; k < j->r[i].n; k++)
			if (j->ids[j->r[i].ids + k] > max_id)
				max_id = j->ids[j->r[i].ids + k];
	}
	info.nr_experts = max_id + 1;
	if (j->nr_experts_hint) {
		if (j->nr_experts_hint <= max_id) {
			char detail[96];

			snprintf(detail, sizeof(detail), "expert id %u, num_experts %u (ids 0 to %u)",
				 max_id, j->nr_experts_hint, j->nr_experts_hint - 1);
			return jt_fail(j, 0, "an expert id is beyond the file's own expert count",
				       detail);
		}
		info.nr_experts = j->nr_experts_hint;
	}
	if (!info.top_k)
		return jt_fail(j, 0, "every record lists 0 experts", NULL);
	memcpy(info.model, j->model, sizeof(info.model));
	ret = p2pio_trace_check_info(&info, j->err, 0);
	if (ret)
		return ret;
	qsort(j->r, j->nr, sizeof(*j->r), jrec_cmp);
	/* Dense tokens from sparse records: bounded by the file's size (trace.h). */
	for (i = 0, k = 0; i < j->nr; i++)
		k += !i || j->r[i].seq != j->r[i - 1].seq || j->r[i].tok != j->r[i - 1].tok;
	if (p2pio_trace_too_sparse(&info, k, j->len))
		return p2pio_set_error(j->err, -E2BIG, 0,
				       "%s: %zu tokens of %u layers x top_k %u would take %llu MiB in memory, more than %d times the log's %zu bytes: its records are too sparse for a dense trace",
				       j->path, k, info.nr_layers, info.top_k,
				       (unsigned long long)((uint64_t)k *
							    p2pio_trace_token_bytes(&info) >> 20),
				       P2PIO_TRACE_JSON_RATIO, j->len);
	ret = p2pio_expert_trace_new(&info, &t, j->err);
	if (ret)
		return ret;
	for (i = 0; i < j->nr; i++) {
		const struct jrec *r = &j->r[i];
		bool first = !i || r->seq != j->r[i - 1].seq;

		if (!first && r->tok == j->r[i - 1].tok && r->layer == j->r[i - 1].layer) {
			ret = jt_fail(j, 0, "two records for the same token and layer", NULL);
			goto out_free;
		}
		/* jt_add() checked the ids, and the loop above the layer twice. */
		ret = p2pio_expert_trace_add(t, r->layer, &j->ids[r->ids], r->n, j->err);
		if (ret)
			goto out_free;
		if (i + 1 == j->nr || j->r[i + 1].seq != r->seq || j->r[i + 1].tok != r->tok) {
			size_t b = i;
			bool seq_start;

			/* The token started at the first record with this (seq, tok). */
			while (b && j->r[b - 1].seq == r->seq && j->r[b - 1].tok == r->tok)
				b--;
			seq_start = !b || j->r[b - 1].seq != r->seq;
			ret = p2pio_expert_trace_end_token(t, r->flags |
							   (seq_start ? P2PIO_EXPERT_TOKEN_SEQ_START : 0),
							   j->err);
			/* The log's own message, as before: it names the file. */
			if (ret) {
				p2pio_error_wrap(j->err, "%s: ", j->path);
				goto out_free;
			}
		}
	}
	*out = t;
	return 0;

out_free:
	p2pio_expert_trace_free(t);
	return ret;
}

static void jt_model(struct jtrace *j, struct json_object *v)
{
	const char *s;

	if (v && json_object_is_type(v, json_type_string)) {
		s = json_object_get_string(v);
		/* Printable only: tools print it (p2pio_quote()). */
		p2pio_quote(j->model, sizeof(j->model), s, strlen(s));
	}
}

/* ---- JSON Lines ---- */

/*
 * The profiler's raw log: records in write order; see the comment at the top. Prompt
 * tokens keep their position as their key, and decode step s gets the key after the
 * largest position plus s, so the steps sort after the prompt and never share a token
 * with it (they were keyed 2^40 | s: a prompt position of 2^40 or more made one token of a
 * prompt token and a decode step, or refused the log as two records of one cell). A log
 * whose largest position leaves no key for its steps is refused.
 */
/*
 * Does record @i of a raw log start a block (a token's layers, read in going-up order)?
 * At @from, where the decode steps start, and wherever the layer does not go up.
 */
static bool jt_raw_block_starts(const struct jtrace *j, size_t i, size_t from)
{
	return i == from || j->r[i].layer <= j->r[i - 1].layer;
}

static int jt_raw_fixup(struct jtrace *j, const int64_t *pos)
{
	size_t i, last_pf = SIZE_MAX, decode_from = 0, steps = 0;
	int64_t step = -1, max_pos = -1;	/* -1: no prompt token, the steps from key 0 */
	uint64_t room;
	char detail[128];

	/*
	 * The prompt ends at its last non-zero position: a layer block's positions count up,
	 * and every decode record has position 0. Records after it that share its layer are
	 * decode steps too: in a log of one layer, each is one (they were taken for the
	 * prompt, position 0 again, and the log was refused as two records of one cell).
	 */
	for (i = 0; i < j->nr; i++)
		if (pos[i])
			last_pf = i;
	if (last_pf != SIZE_MAX) {
		decode_from = last_pf + 1;
	} else {
		/*
		 * No position past 0: the prompt was one token, whose block (one record a
		 * layer, layers going up) reads like a decode step; the log's first block is
		 * it, as every generation starts from a prompt (it was taken for a decode step).
		 */
		for (decode_from = 1;
		     decode_from < j->nr && !jt_raw_block_starts(j, decode_from, 0); decode_from++)
			;
	}
	for (i = 0; i < j->nr; i++) {
		if (i < decode_from) {
			if (pos[i] > max_pos)
				max_pos = pos[i];
		} else if (jt_raw_block_starts(j, i, decode_from)) {
			steps++;
		}
	}
	/* Keys max_pos + 1 .. max_pos + steps, at most INT64_MAX (2^63 of them from key 0). */
	room = max_pos < 0 ? (uint64_t)INT64_MAX + 1 : (uint64_t)(INT64_MAX - max_pos);
	if (steps > room) {
		snprintf(detail, sizeof(detail), "token_pos %lld leaves no room for the %zu decode "
			 "steps after it", (long long)max_pos, steps);
		return jt_fail(j, 0, "raw routing log: a prompt position too large", detail);
	}
	for (i = 0; i < j->nr; i++) {
		if (i < decode_from) {
			j->r[i].tok = pos[i];
			j->r[i].flags = P2PIO_EXPERT_TOKEN_PREFILL;
			continue;
		}
		if (jt_raw_block_starts(j, i, decode_from))
			step++;
		j->r[i].tok = max_pos + 1 + step;
		j->r[i].flags = 0;
	}
	return 0;
}

static int jt_lines(struct jtrace *j, const char *buf, size_t len)
{
	struct json_tokener *tk = json_tokener_new();
	bool in_dummy = true, raw = false;
	size_t off = 0, line = 0, nr_pos = 0, cap_pos = 0;
	int64_t *pos = NULL;
	char what[96];
	int ret = 0;

	if (!tk)
		return -ENOMEM;
	while (off < len && !ret) {
		const char *p = buf + off, *nl = memchr(p, '\n', len - off);
		size_t n = nl ? (size_t)(nl - p) : len - off;
		struct json_object *o, *v;
		int64_t seq = 0, tok, layer;

		line++;
		off += n + (nl ? 1 : 0);
		while (n && p[n - 1] != '\n' && p2pio_json_blank(p[n - 1]))
			n--;
		if (!n)
			continue;
		json_tokener_reset(tk);
		o = json_tokener_parse_ex(tk, p, (int)n);
		snprintf(what, sizeof(what), "line %zu", line);
		if (!o || json_tokener_get_error(tk) != json_tokener_success ||
		    json_tokener_get_parse_end(tk) != n || !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			ret = jt_fail(j, (uint64_t)(p - buf), what, "not one JSON object");
			break;
		}
		v = jget(o, "type");
		if (v && !strcmp(json_object_get_string(v), "meta")) {
			ret = jt_num_experts(j, (uint64_t)(p - buf), o);
			jt_model(j, jget(o, "model_id"));
		} else if (jget(o, "topk_ids")) {
			struct json_object *w = jget(o, "topk_weights");
			bool uniform = w && json_object_is_type(w, json_type_array) &&
				       json_object_array_length(w) > 0;
			size_t i, nw = uniform ? json_object_array_length(w) : 0;

			for (i = 1; i < nw; i++)
				if (json_object_get_double(json_object_array_get_idx(w, i)) !=
				    json_object_get_double(json_object_array_get_idx(w, 0)))
					uniform = false;
			/* vLLM's profiling pass on dummy input: equal weights. Drop that lead. */
			if (in_dummy && uniform) {
				json_object_put(o);
				continue;
			}
			in_dummy = false;
			if (!jint(jget(o, "token_idx"), 0, INT64_MAX, &tok) ||
			    !jint(jget(o, "layer"), 0, INT32_MAX, &layer))
				ret = jt_fail(j, (uint64_t)(p - buf), what, "a route without token_idx and layer");
			else
				ret = jt_add(j, (uint64_t)(p - buf), 0, tok, layer, jget(o, "topk_ids"), 0);
		} else if (jget(o, "experts") && jget(o, "token_idx")) {
			if (jget(o, "problem_id") && !jint(jget(o, "problem_id"), 0, INT64_MAX, &seq))
				ret = jt_fail(j, (uint64_t)(p - buf), what, "problem_id is not a number");
			else if (!jint(jget(o, "token_idx"), 0, INT64_MAX, &tok) ||
				 !jint(jget(o, "layer"), 0, INT32_MAX, &layer))
				ret = jt_fail(j, (uint64_t)(p - buf), what, "a record without token_idx and layer");
			else
				ret = jt_add(j, (uint64_t)(p - buf), seq, tok, layer, jget(o, "experts"), 0);
		} else if (jget(o, "experts") && jget(o, "token_pos")) {
			raw = true;
			if (!jint(jget(o, "token_pos"), 0, INT64_MAX, &tok) ||
			    !jint(jget(o, "layer"), 0, INT32_MAX, &layer)) {
				ret = jt_fail(j, (uint64_t)(p - buf), what, "a record without token_pos and layer");
			} else {
				if (nr_pos == cap_pos) {
					size_t c = cap_pos ? cap_pos * 2 : 1024;
					int64_t *np = realloc(pos, c * sizeof(*np));

					if (!np) {
						ret = -ENOMEM;
						json_object_put(o);
						break;
					}
					pos = np;
					cap_pos = c;
				}
				pos[nr_pos++] = tok;
				ret = jt_add(j, (uint64_t)(p - buf), 0, 0, layer, jget(o, "experts"), 0);
			}
		} else {
			ret = jt_fail(j, (uint64_t)(p - buf), what, "not a routing record this reader knows");
		}
		json_object_put(o);
	}
	json_tokener_free(tk);
	if (!ret && raw)
		ret = nr_pos == j->nr ? jt_raw_fixup(j, pos) :
		      jt_fail(j, 0, "raw routing log mixed with other records", NULL);
	free(pos);
	return ret;
}

/* ---- single documents ---- */

/*
 * A RoutingTrace layer key: decimal digits as its writer prints a layer number, without a
 * sign, blanks or a leading 0 (strtol() took " 1", "+1" and "01" for layer 1, and "-0" for
 * layer 0: two spellings of one layer). Stops past the largest layer: jt_add() says so.
 */
static bool jt_layer_key(const char *key, int64_t *out)
{
	int64_t l = 0;
	const char *p;

	if (!*key || (key[0] == '0' && key[1]))
		return false;
	for (p = key; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		if (l <= P2PIO_EXPERT_TRACE_MAX_LAYERS)
			l = l * 10 + (*p - '0');
	}
	*out = l;
	return true;
}

static int jt_routes(struct jtrace *j, struct json_object *doc, struct json_object *routes)
{
	struct json_object *meta = jget(doc, "meta");
	size_t i, n = json_object_array_length(routes);
	int ret = 0;

	if (meta) {
		ret = jt_num_experts(j, 0, meta);
		jt_model(j, jget(meta, "model_id"));
	}
	for (i = 0; i < n && !ret; i++) {
		struct json_object *r = json_object_array_get_idx(routes, i), *layers, *ph;
		uint8_t flags = 0;
		int64_t tok;

		if (!r || !json_object_is_type(r, json_type_object) ||
		    !jint(jget(r, "token_pos"), 0, INT64_MAX, &tok) ||
		    !(layers = jget(r, "layers")) || !json_object_is_type(layers, json_type_object))
			return jt_fail(j, 0, "a route without token_pos and layers", NULL);
		ph = jget(r, "phase");
		if (ph && !strcmp(json_object_get_string(ph), "prefill"))
			flags = P2PIO_EXPERT_TOKEN_PREFILL;
		json_object_object_foreach(layers, key, val) {
			int64_t l;

			if (ret)
				break;
			if (!jt_layer_key(key, &l)) {
				char q[64], detail[128];

				snprintf(detail, sizeof(detail), "\"%s\" (a layer key is a plain "
					 "decimal number: 0, 1, 2...)",
					 p2pio_quote(q, sizeof(q), key, strlen(key)));
				ret = jt_fail(j, 0, "a route's layer key is not a layer number", detail);
			} else if (!json_object_is_type(val, json_type_object)) {
				ret = jt_fail(j, 0, "a route's layer entry is not an object", NULL);
			} else {
				ret = jt_add(j, 0, 0, tok, l, jget(val, "experts"), flags);
			}
		}
	}
	return ret;
}

static int jt_steps(struct jtrace *j, struct json_object *doc, struct json_object *steps)
{
	size_t i, k, n = json_object_array_length(steps);
	int64_t step, layer;
	int ret = 0;

	ret = jt_num_experts(j, 0, doc);
	for (i = 0; i < n && !ret; i++) {
		struct json_object *s = json_object_array_get_idx(steps, i), *layers;

		if (!s || !json_object_is_type(s, json_type_object) ||
		    !jint(jget(s, "step"), 0, INT64_MAX, &step) || !(layers = jget(s, "layers")) ||
		    !json_object_is_type(layers, json_type_array))
			return jt_fail(j, 0, "a decode step without step and layers", NULL);
		for (k = 0; k < json_object_array_length(layers) && !ret; k++) {
			struct json_object *c = json_object_array_get_idx(layers, k);

			if (!c || !json_object_is_type(c, json_type_object) ||
			    !jint(jget(c, "layer"), 0, INT32_MAX, &layer))
				return jt_fail(j, 0, "a decode step's layer entry has no layer number", NULL);
			/* Step 0 routes the last prompt token (it produces the first new one). */
			ret = jt_add(j, 0, 0, step, layer, jget(c, "topk_experts"),
				     step ? 0 : P2PIO_EXPERT_TOKEN_PREFILL);
		}
	}
	return ret;
}

static int jt_prefill_layers(struct jtrace *j, struct json_object *layers)
{
	size_t l, i, n = json_object_array_length(layers);
	int64_t layer;
	int ret = 0;

	for (l = 0; l < n && !ret; l++) {
		struct json_object *e = json_object_array_get_idx(layers, l), *toks;

		if (!e || !json_object_is_type(e, json_type_object))
			return jt_fail(j, 0, "a layer entry is not an object", NULL);
		toks = jget(e, "token_data");
		if (!toks)
			toks = jget(e, "topk_per_token");
		if (!toks || !json_object_is_type(toks, json_type_array))
			return jt_fail(j, 0, "a layer entry has no token_data or topk_per_token list", NULL);
		if (!jint(jget(e, "layer"), 0, INT32_MAX, &layer))
			layer = (int64_t)l;
		for (i = 0; i < json_object_array_length(toks) && !ret; i++) {
			struct json_object *c = json_object_array_get_idx(toks, i);

			if (!c || !json_object_is_type(c, json_type_object))
				return jt_fail(j, 0, "a token entry is not an object", NULL);
			ret = jt_add(j, 0, 0, (int64_t)i, layer, jget(c, "topk_experts"),
				     P2PIO_EXPERT_TOKEN_PREFILL);
		}
	}
	return ret;
}

/*
 * Whether @o is one record of a JSON Lines log (the keys jt_lines() goes by) rather than
 * a document (the keys jt_document() goes by).
 */
static bool jt_is_record(struct json_object *o)
{
	if (jget(o, "routes") || jget(o, "decode_steps") || jget(o, "layers"))
		return false;
	return jget(o, "type") || jget(o, "topk_ids") || jget(o, "experts");
}

static int jt_document(struct jtrace *j, struct json_object *doc)
{
	struct json_object *v;

	if ((v = jget(doc, "routes")) && json_object_is_type(v, json_type_array))
		return jt_routes(j, doc, v);
	if ((v = jget(doc, "decode_steps")) && json_object_is_type(v, json_type_array))
		return jt_steps(j, doc, v);
	if ((v = jget(doc, "layers")) && json_object_is_type(v, json_type_array))
		return jt_prefill_layers(j, v);
	return jt_fail(j, 0, "a JSON document with none of the keys of a known routing log",
		       "routes, decode_steps or layers");
}

int p2pio_trace_parse_json(const char *path, const char *buf, size_t len,
			   struct p2pio_expert_trace **out, struct p2pio_error *err)
{
	struct jtrace j = { .path = path, .err = err, .len = len };
	struct json_tokener *tk;
	struct json_object *doc;
	size_t end;
	int ret;

	if (len > INT32_MAX)
		return jt_fail(&j, 0, "too large for the JSON reader", NULL);
	tk = json_tokener_new();
	if (!tk)
		return -ENOMEM;
	doc = json_tokener_parse_ex(tk, buf, (int)len);
	end = json_tokener_get_parse_end(tk);
	/* One document, or the first of several lines (JSON Lines). */
	while (end < len && p2pio_json_blank(buf[end]))
		end++;
	if (doc && end == len && json_tokener_get_error(tk) == json_tokener_success) {
		/* A JSON Lines log of one line is one document too: read it as a log. */
		if (!json_object_is_type(doc, json_type_object))
			ret = jt_fail(&j, 0, "the JSON document is not an object", NULL);
		else if (jt_is_record(doc))
			ret = jt_lines(&j, buf, len);
		else
			ret = jt_document(&j, doc);
	} else if (doc || json_tokener_get_error(tk) == json_tokener_continue) {
		ret = jt_lines(&j, buf, len);
	} else {
		ret = jt_fail(&j, json_tokener_get_parse_end(tk), "malformed JSON",
			      json_tokener_error_desc(json_tokener_get_error(tk)));
	}
	json_object_put(doc);
	json_tokener_free(tk);
	if (!ret)
		ret = jt_build(&j, out);
	free(j.r);
	free(j.ids);
	return ret;
}
