// SPDX-License-Identifier: MIT
/*
 * p2pio-gguf - what is in a GGUF model and where its tensors lie in the file.
 *
 * Modes: a summary (default), the metadata (--meta), the tensors (--tensors), a check of
 * every tensor against the test pattern (--verify-pattern), and a verified copy with every
 * tensor aligned to N bytes (--repack), and where each tensor lies on the disk (--extents). Every mode prints text for people or, with --json,
 * one JSON document for programs. Documentation/tools.md describes the output.
 *
 * New modes are added as one entry in gg_modes[] and one function.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "p2pio.h"

/* Elements of an array shown unless --full. */
#define GG_ARRAY_SHOWN 8
/* Read size of --verify-pattern. */
#define GG_CHUNK (8u << 20)

struct gg_opts {
	const char *path;
	const char *output;
	uint64_t align;
	bool json;
	bool full;
};

/* ---- values --------------------------------------------------------------------------- */

#define GG_SAFE_LEN 512

/*
 * @str for a terminal: as it is when it is plain printable ASCII, else quoted and escaped as
 * JSON, so that names and strings of a hostile file cannot send control sequences.
 */
static const char *gg_safe(const char *str, char buf[GG_SAFE_LEN])
{
	const unsigned char *p;
	FILE *f;

	for (p = (const unsigned char *)str; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '\\')
			break;
	if (!*p && *str)
		return str;
	/* A string too long for buf is cut; the last byte stays the terminating NUL. */
	buf[GG_SAFE_LEN - 1] = 0;
	f = fmemopen(buf, GG_SAFE_LEN - 1, "w");
	if (!f)
		return "\"?\"";
	cli_json_str(f, str);
	fclose(f);
	return buf;
}

static void gg_value(FILE *f, const struct p2pio_gguf_value *v, const struct gg_opts *o);

static bool gg_is_int(uint32_t t)
{
	return t <= P2PIO_GGUF_TYPE_INT32 || t == P2PIO_GGUF_TYPE_UINT64 ||
	       t == P2PIO_GGUF_TYPE_INT64;
}

static bool gg_is_signed(uint32_t t)
{
	return t == P2PIO_GGUF_TYPE_INT8 || t == P2PIO_GGUF_TYPE_INT16 ||
	       t == P2PIO_GGUF_TYPE_INT32 || t == P2PIO_GGUF_TYPE_INT64;
}

static void gg_float(FILE *f, double d, const struct gg_opts *o)
{
	if (o->json)
		cli_json_double(f, d);
	else
		fprintf(f, "%.9g", d);
}

/* Element @i of array @v, which has element type @t. */
static void gg_element(FILE *f, const struct p2pio_gguf_value *v, int t, uint64_t i,
		       const struct gg_opts *o)
{
	const struct p2pio_gguf_value *sub;
	const char *s;
	uint64_t u;
	int64_t n;
	double d;
	size_t len;
	bool b;

	if (t == P2PIO_GGUF_TYPE_STRING && !p2pio_gguf_array_string(v, i, &s, &len))
		cli_json_str_n(f, s, len);
	else if (t == P2PIO_GGUF_TYPE_ARRAY && !p2pio_gguf_array_array(v, i, &sub))
		gg_value(f, sub, o);
	else if (t == P2PIO_GGUF_TYPE_BOOL && !p2pio_gguf_array_bool(v, i, &b))
		fputs(b ? "true" : "false", f);
	else if (gg_is_int((uint32_t)t) && gg_is_signed((uint32_t)t) && !p2pio_gguf_array_i64(v, i, &n))
		fprintf(f, "%" PRId64, n);
	else if (gg_is_int((uint32_t)t) && !p2pio_gguf_array_u64(v, i, &u))
		fprintf(f, "%" PRIu64, u);
	else if (!p2pio_gguf_array_f64(v, i, &d))
		gg_float(f, d, o);
	else
		fputs("null", f);
}

/*
 * A value: numbers, true/false, strings quoted and escaped (in text too, since keys and
 * strings of a hostile file may hold anything), arrays as [a, b, ...]. Without --full, an
 * array shows its first GG_ARRAY_SHOWN elements; text then says how many more there are,
 * and JSON (where the array must stay an array) carries the count beside it.
 */
static void gg_value(FILE *f, const struct p2pio_gguf_value *v, const struct gg_opts *o)
{
	uint32_t t = p2pio_gguf_value_type(v);
	uint64_t n, i, shown;
	const char *s;
	uint64_t u;
	int64_t k;
	double d;
	size_t len;
	bool b;
	int et;

	if (t == P2PIO_GGUF_TYPE_ARRAY) {
		et = p2pio_gguf_array_type(v);
		n = p2pio_gguf_array_len(v);
		shown = o->full || n <= GG_ARRAY_SHOWN ? n : GG_ARRAY_SHOWN;
		fputc('[', f);
		for (i = 0; i < shown; i++) {
			if (i)
				fputs(", ", f);
			gg_element(f, v, et, i, o);
		}
		if (shown < n && !o->json)
			fprintf(f, ", ... %" PRIu64 " more", n - shown);
		fputc(']', f);
	} else if (t == P2PIO_GGUF_TYPE_STRING && !p2pio_gguf_value_string(v, &s, &len)) {
		cli_json_str_n(f, s, len);
	} else if (t == P2PIO_GGUF_TYPE_BOOL && !p2pio_gguf_value_bool(v, &b)) {
		fputs(b ? "true" : "false", f);
	} else if (gg_is_int(t) && gg_is_signed(t) && !p2pio_gguf_value_i64(v, &k)) {
		fprintf(f, "%" PRId64, k);
	} else if (gg_is_int(t) && !p2pio_gguf_value_u64(v, &u)) {
		fprintf(f, "%" PRIu64, u);
	} else if (!p2pio_gguf_value_f64(v, &d)) {
		gg_float(f, d, o);
	} else {
		fputs("null", f);
	}
}

/* "array[string]" or "uint32": a value's type for listings. */
static const char *gg_type_str(const struct p2pio_gguf_value *v, char *buf, size_t len)
{
	uint32_t t = p2pio_gguf_value_type(v);

	if (t != P2PIO_GGUF_TYPE_ARRAY)
		return p2pio_gguf_type_name(t);
	snprintf(buf, len, "array[%s]", p2pio_gguf_type_name((uint32_t)p2pio_gguf_array_type(v)));
	return buf;
}

static int gg_meta(struct p2pio_gguf *g, const struct gg_opts *o)
{
	size_t i, n = p2pio_gguf_kv_count(g);
	char tbuf[64], sbuf[GG_SAFE_LEN];

	if (o->json)
		fputs("{\"metadata\": [\n", stdout);
	for (i = 0; i < n; i++) {
		const struct p2pio_gguf_value *v = p2pio_gguf_kv_value(g, i);
		bool arr = p2pio_gguf_value_type(v) == P2PIO_GGUF_TYPE_ARRAY;

		if (o->json) {
			fputs(i ? ",\n  {\"key\": " : "  {\"key\": ", stdout);
			cli_json_str(stdout, p2pio_gguf_kv_key(g, i));
			printf(", \"type\": \"%s\"", p2pio_gguf_type_name(p2pio_gguf_value_type(v)));
			if (arr)
				printf(", \"element_type\": \"%s\", \"count\": %" PRIu64
				       ", \"truncated\": %s",
				       p2pio_gguf_type_name((uint32_t)p2pio_gguf_array_type(v)),
				       p2pio_gguf_array_len(v),
				       !o->full && p2pio_gguf_array_len(v) > GG_ARRAY_SHOWN ? "true" : "false");
			fputs(", \"value\": ", stdout);
			gg_value(stdout, v, o);
			fputc('}', stdout);
			continue;
		}
		printf("%s  %s = ", gg_safe(p2pio_gguf_kv_key(g, i), sbuf),
		       gg_type_str(v, tbuf, sizeof(tbuf)));
		gg_value(stdout, v, o);
		fputc('\n', stdout);
	}
	if (o->json)
		fputs("\n]}\n", stdout);
	return CLI_EXIT_OK;
}

/* ---- tensors ------------------------------------------------------------------------- */

/* The largest power of two that divides @off (up to 2^30; 0 is aligned to anything). */
static uint64_t gg_offset_alignment(uint64_t off)
{
	uint64_t a = off ? off & -off : 1ull << 30;

	return a > (1ull << 30) ? 1ull << 30 : a;
}

static void gg_shape(FILE *f, const struct p2pio_gguf_tensor *t, bool json)
{
	uint32_t d;

	fputc('[', f);
	for (d = 0; d < t->n_dims; d++)
		fprintf(f, "%s%" PRIu64, d ? (json ? ", " : " x ") : "", t->ne[d]);
	fputc(']', f);
}

static int gg_tensors(struct p2pio_gguf *g, const struct gg_opts *o)
{
	size_t i, n = p2pio_gguf_tensor_count(g);
	char h[CLI_HUMAN_LEN], sbuf[GG_SAFE_LEN];

	if (o->json)
		fputs("{\"tensors\": [\n", stdout);
	else
		printf("%-14s %8s  %-7s %12s  %-24s %s\n", "file_offset", "align", "type", "bytes",
		       "shape", "name");
	for (i = 0; i < n; i++) {
		const struct p2pio_gguf_tensor *t = p2pio_gguf_tensor(g, i);

		if (!o->json) {
			char shape[128] = "";
			FILE *sf = fmemopen(shape, sizeof(shape) - 1, "w");

			if (sf) {
				gg_shape(sf, t, false);
				fclose(sf);
			} else {
				shape[0] = 0;
			}
			printf("%-14" PRIu64 " %8" PRIu64 "  %-7s %12" PRIu64 "  %-24s %s\n",
			       t->file_offset, gg_offset_alignment(t->file_offset),
			       p2pio_ggml_type_name(t->type), t->size, shape, gg_safe(t->name, sbuf));
			continue;
		}
		fputs(i ? ",\n  {\"name\": " : "  {\"name\": ", stdout);
		cli_json_str(stdout, t->name);
		printf(", \"type\": \"%s\", \"type_id\": %" PRIu32 ", \"shape\": ",
		       p2pio_ggml_type_name(t->type), t->type);
		gg_shape(stdout, t, true);
		printf(", \"bytes\": %" PRIu64 ", \"offset\": %" PRIu64 ", \"file_offset\": %" PRIu64
		       ", \"offset_alignment\": %" PRIu64 ", \"layer\": ",
		       t->size, t->offset, t->file_offset, gg_offset_alignment(t->file_offset));
		if (t->layer == P2PIO_GGUF_NO_LAYER)
			fputs("null", stdout);
		else
			printf("%" PRIu32, t->layer);
		printf(", \"experts\": %" PRIu64 ", \"expert_bytes\": %" PRIu64 "}", t->n_experts,
		       t->expert_bytes);
	}
	if (o->json)
		fputs("\n]}\n", stdout);
	else
		printf("%zu tensors, %s of data\n", n, cli_human_bytes(p2pio_gguf_data_size(g), h));
	return CLI_EXIT_OK;
}

/* ---- summary ------------------------------------------------------------------------- */

/* <arch>.<suffix> as a number, or 0. */
static uint64_t gg_arch_u64(const struct p2pio_gguf *g, const char *arch, const char *suffix)
{
	char key[160];
	uint64_t v = 0;

	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	if (p2pio_gguf_get_u64(g, key, &v))
		return 0;
	return v;
}

static void gg_layer_json(const struct p2pio_gguf_layer *l)
{
	if (l->number == P2PIO_GGUF_NO_LAYER)
		fputs("{", stdout);
	else
		printf("{\"layer\": %" PRIu32 ", ", l->number);
	printf("\"tensors\": %zu, \"bytes\": %" PRIu64 ", \"file_start\": %" PRIu64
	       ", \"file_end\": %" PRIu64 ", \"contiguous\": %s, \"experts\": %" PRIu64
	       ", \"expert_tensors\": %zu, \"expert_bytes\": %" PRIu64 "}",
	       l->n_tensors, l->bytes, l->file_start, l->file_end, l->contiguous ? "true" : "false",
	       l->n_experts, l->n_expert_tensors, l->expert_bytes);
}

static void gg_layer_text(const struct p2pio_gguf_layer *l)
{
	char h[CLI_HUMAN_LEN], name[32];

	if (l->number == P2PIO_GGUF_NO_LAYER)
		snprintf(name, sizeof(name), "(no layer)");
	else
		snprintf(name, sizeof(name), "blk.%" PRIu32, l->number);
	printf("    %-11s %4zu tensors %11s  [%" PRIu64 ", %" PRIu64 ")%s", name, l->n_tensors,
	       cli_human_bytes(l->bytes, h), l->file_start, l->file_end,
	       l->contiguous ? "" : " interleaved");
	if (l->n_experts)
		printf("  %" PRIu64 " experts x %s", l->n_experts, cli_human_bytes(l->expert_bytes, h));
	fputc('\n', stdout);
}

static int gg_summary(struct p2pio_gguf *g, const struct gg_opts *o)
{
	uint64_t type_bytes[P2PIO_GGML_TYPE_COUNT] = { 0 }, seed = 0, experts = 0, used, eff;
	size_t type_count[P2PIO_GGML_TYPE_COUNT] = { 0 };
	size_t i, n = p2pio_gguf_tensor_count(g), nl = p2pio_gguf_layer_count(g), moe_layers = 0;
	const char *arch = NULL;
	char h[CLI_HUMAN_LEN], sbuf[GG_SAFE_LEN];
	uint64_t total = 0;
	bool has_seed, first;
	uint32_t t;

	if (p2pio_gguf_get_string(g, "general.architecture", &arch, NULL))
		arch = NULL;
	has_seed = !p2pio_gguf_get_u64(g, P2PIO_PATTERN_SEED_KEY, &seed);
	for (i = 0; i < n; i++) {
		const struct p2pio_gguf_tensor *ts = p2pio_gguf_tensor(g, i);

		type_bytes[ts->type] += ts->size;
		type_count[ts->type]++;
		total += ts->size;
	}
	for (i = 0; i < nl; i++) {
		const struct p2pio_gguf_layer *l = p2pio_gguf_layer(g, i);

		if (l->n_experts) {
			moe_layers++;
			if (l->n_experts > experts)
				experts = l->n_experts;
		}
	}
	used = arch ? gg_arch_u64(g, arch, "expert_used_count") : 0;
	eff = arch ? gg_arch_u64(g, arch, "expert_feed_forward_length") : 0;

	if (o->json) {
		fputs("{\"file\": ", stdout);
		cli_json_str(stdout, o->path);
		printf(", \"version\": %" PRIu32 ", \"architecture\": ", p2pio_gguf_version(g));
		if (arch)
			cli_json_str(stdout, arch);
		else
			fputs("null", stdout);
		printf(", \"alignment\": %" PRIu32 ", \"file_size\": %" PRIu64 ", \"data_offset\": %" PRIu64
		       ", \"data_size\": %" PRIu64 ", \"kv_count\": %zu, \"tensor_count\": %zu"
		       ", \"tensor_bytes\": %" PRIu64 ", \"pattern_seed\": ",
		       p2pio_gguf_alignment(g), p2pio_gguf_file_size(g), p2pio_gguf_data_offset(g),
		       p2pio_gguf_data_size(g), p2pio_gguf_kv_count(g), n, total);
		if (has_seed)
			printf("%" PRIu64, seed);
		else
			fputs("null", stdout);
		fputs(",\n \"types\": [", stdout);
		for (t = 0, first = true; t < P2PIO_GGML_TYPE_COUNT; t++) {
			if (!type_count[t])
				continue;
			printf("%s{\"type\": \"%s\", \"tensors\": %zu, \"bytes\": %" PRIu64 "}",
			       first ? "" : ", ", p2pio_ggml_type_name(t), type_count[t], type_bytes[t]);
			first = false;
		}
		fputs("],\n \"layers\": [", stdout);
		for (i = 0; i < nl; i++) {
			fputs(i ? ",\n   " : "\n   ", stdout);
			gg_layer_json(p2pio_gguf_layer(g, i));
		}
		fputs("],\n \"nonlayer\": ", stdout);
		gg_layer_json(p2pio_gguf_nonlayer(g));
		printf(",\n \"moe\": {\"layers\": %zu, \"experts\": %" PRIu64 ", \"experts_used\": %" PRIu64
		       ", \"expert_ffn\": %" PRIu64 "}}\n", moe_layers, experts, used, eff);
		return CLI_EXIT_OK;
	}

	printf("%s: GGUF v%" PRIu32 ", %s, %s (%" PRIu64 " bytes)\n", o->path, p2pio_gguf_version(g),
	       arch ? gg_safe(arch, sbuf) : "no architecture", cli_human_bytes(p2pio_gguf_file_size(g), h),
	       p2pio_gguf_file_size(g));
	printf("  alignment     %" PRIu32 " (data section at byte %" PRIu64 ")\n",
	       p2pio_gguf_alignment(g), p2pio_gguf_data_offset(g));
	printf("  metadata      %zu pairs\n", p2pio_gguf_kv_count(g));
	printf("  tensors       %zu, %s of data\n", n, cli_human_bytes(total, h));
	if (has_seed)
		printf("  pattern seed  %" PRIu64 " (synthetic model: --verify-pattern checks it)\n", seed);
	printf("  by type:\n");
	for (t = 0; t < P2PIO_GGML_TYPE_COUNT; t++)
		if (type_count[t])
			printf("    %-8s %5zu tensors %11s\n", p2pio_ggml_type_name(t), type_count[t],
			       cli_human_bytes(type_bytes[t], h));
	printf("  layers        %zu\n", nl);
	for (i = 0; i < nl; i++)
		gg_layer_text(p2pio_gguf_layer(g, i));
	gg_layer_text(p2pio_gguf_nonlayer(g));
	if (moe_layers)
		printf("  experts       %" PRIu64 " per layer in %zu layers, %" PRIu64
		       " used per token, expert FFN %" PRIu64 "\n", experts, moe_layers, used, eff);
	return CLI_EXIT_OK;
}

/* ---- pattern verification ------------------------------------------------------------- */

static double gg_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Check one tensor; 1 on a mismatch (with *@bad set), 0 if clean, -errno on a read error. */
static int gg_check_tensor(int fd, uint64_t seed, const struct p2pio_gguf_tensor *t, uint8_t *buf,
			   uint64_t *bad)
{
	uint64_t done = 0;

	while (done < t->size) {
		size_t want = t->size - done > GG_CHUNK ? GG_CHUNK : (size_t)(t->size - done);
		ssize_t got = pread(fd, buf, want, (off_t)(t->file_offset + done));

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return -ENODATA;
		if (!p2pio_pattern_check(seed, t->file_offset + done, buf, (size_t)got, bad))
			return 1;
		done += (uint64_t)got;
	}
	return 0;
}

static int gg_verify(struct p2pio_gguf *g, const struct gg_opts *o)
{
	size_t i, n = p2pio_gguf_tensor_count(g), nbad = 0;
	uint64_t seed, bytes = 0;
	char sbuf[GG_SAFE_LEN];
	uint8_t *buf;
	double t0, dt;
	int ret = 0;

	if (p2pio_gguf_get_u64(g, P2PIO_PATTERN_SEED_KEY, &seed)) {
		cli_err("%s: no %s in the metadata: not a p2pio-mkmodel model", o->path,
			P2PIO_PATTERN_SEED_KEY);
		return CLI_EXIT_ERROR;
	}
	buf = malloc(GG_CHUNK);
	if (!buf) {
		cli_err("out of memory");
		return CLI_EXIT_ERROR;
	}
	if (o->json)
	{
		fputs("{\"file\": ", stdout);
		cli_json_str(stdout, o->path);
		printf(", \"seed\": %" PRIu64 ", \"mismatches\": [", seed);
	}
	t0 = gg_now();
	for (i = 0; i < n; i++) {
		const struct p2pio_gguf_tensor *t = p2pio_gguf_tensor(g, i);
		uint64_t bad = 0;

		ret = gg_check_tensor(p2pio_gguf_fd(g), seed, t, buf, &bad);
		if (ret < 0) {
			cli_err("%s: reading tensor %s: %s", o->path, gg_safe(t->name, sbuf),
				p2pio_strerror(ret));
			break;
		}
		bytes += t->size;
		if (!ret)
			continue;
		if (o->json) {
			fputs(nbad ? ", {\"tensor\": " : "{\"tensor\": ", stdout);
			cli_json_str(stdout, t->name);
			printf(", \"file_offset\": %" PRIu64 ", \"tensor_offset\": %" PRIu64 "}", bad,
			       bad - t->file_offset);
		} else {
			printf("MISMATCH tensor %s at file offset %" PRIu64 " (byte %" PRIu64
			       " of the tensor)\n", gg_safe(t->name, sbuf), bad, bad - t->file_offset);
		}
		nbad++;
		ret = 0;
	}
	dt = gg_now() - t0;
	free(buf);
	if (nbad == n && n && !o->json)
		printf("every tensor differs: the data do not sit at the offsets they were generated\n"
		       "for (a repacked copy?); p2pio-mkmodel --align N writes aligned pattern models\n");
	if (o->json)
		printf("], \"tensors\": %zu, \"bytes\": %" PRIu64 ", \"ok\": %s}\n", n, bytes,
		       !nbad && !ret ? "true" : "false");
	else if (!ret)
		printf("%s: %zu tensors, %" PRIu64 " bytes checked against seed %" PRIu64 " in %.1f s"
		       " (%.0f MB/s): %s\n", o->path, n, bytes, seed, dt,
		       dt > 0 ? (double)bytes / dt / 1e6 : 0.0, nbad ? "MISMATCH" : "all match");
	if (ret < 0)
		return CLI_EXIT_ERROR;
	return nbad ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- repack ------------------------------------------------------------------------------ */

static int gg_repack(struct p2pio_gguf *g, const struct gg_opts *o)
{
	struct p2pio_error err = { 0 };
	struct p2pio_gguf *out;
	char h[CLI_HUMAN_LEN];
	uint64_t size = 0;
	int ret;

	ret = p2pio_gguf_repack(o->path, o->output, (uint32_t)o->align, &err);
	if (ret) {
		cli_err_p2pio("repack", ret, &err);
		return ret == -EIO && strstr(err.msg, "copy") ? CLI_EXIT_FAIL : CLI_EXIT_ERROR;
	}
	if (!p2pio_gguf_open(o->output, &out, NULL)) {
		size = p2pio_gguf_file_size(out);
		p2pio_gguf_close(out);
	}
	if (o->json) {
		fputs("{\"input\": ", stdout);
		cli_json_str(stdout, o->path);
		fputs(", \"output\": ", stdout);
		cli_json_str(stdout, o->output);
		printf(", \"alignment\": %" PRIu64 ", \"input_size\": %" PRIu64
		       ", \"output_size\": %" PRIu64 ", \"tensors\": %zu, \"verified\": true}\n",
		       o->align, p2pio_gguf_file_size(g), size, p2pio_gguf_tensor_count(g));
	} else {
		printf("%s -> %s: %zu tensors aligned to %" PRIu64 ", %s, verified\n", o->path,
		       o->output, p2pio_gguf_tensor_count(g), o->align, cli_human_bytes(size, h));
	}
	return CLI_EXIT_OK;
}

/* ---- extents --------------------------------------------------------------------------- */

static void gg_run_flags(FILE *f, uint32_t flags)
{
	if (flags & P2PIO_EXTENT_NOT_RAW)
		fprintf(f, " (%s)", p2pio_extent_flag_reason(flags));
}

/* Where each tensor lies on the disk: its LBA runs, and how fragmented the file is. */
static int gg_extents(struct p2pio_gguf *g, const struct gg_opts *o)
{
	size_t i, k, n = p2pio_gguf_tensor_count(g);
	struct p2pio_lba_run *runs = NULL;
	const struct p2pio_blockdev *bd;
	struct p2pio_error err = { 0 };
	struct p2pio_extents *ext;
	struct p2pio_frag_summary s;
	char h[CLI_HUMAN_LEN], sbuf[GG_SAFE_LEN];
	size_t cap = 0;
	int ret;

	ret = p2pio_extents_open_path(o->path, 0, &ext, &err);
	if (ret) {
		cli_err_p2pio(o->path, ret, &err);
		return CLI_EXIT_ERROR;
	}
	bd = p2pio_extents_device(ext);
	p2pio_extents_summary(ext, 0, UINT64_MAX, &s);
	if (o->json) {
		fputs("{\"fstype\": ", stdout);
		cli_json_str(stdout, p2pio_extents_fstype(ext));
		fputs(", \"device\": ", stdout);
		cli_json_str(stdout, bd->name);
		fputs(", \"disk\": ", stdout);
		cli_json_str(stdout, bd->disk);
		printf(", \"partition_start\": %" PRIu64 ", \"lba_size\": %" PRIu32
		       ", \"nvme\": %s, \"nsid\": %" PRIu32 ", \"max_request\": %" PRIu64
		       ", \"why_not_p2p\": ",
		       bd->part_start, bd->lba_size, bd->is_nvme ? "true" : "false", bd->nsid,
		       bd->max_hw_bytes);
		cli_json_str(stdout, bd->why_not);
		printf(", \"extents\": %zu, \"runs\": %" PRIu64 ", \"runs_per_gib\": ",
		       p2pio_extents_count(ext), s.runs);
		cli_json_double(stdout, s.runs_per_gib);
		printf(", \"largest_run\": %" PRIu64 ", \"mapped_bytes\": %" PRIu64
		       ", \"hole_bytes\": %" PRIu64 ", \"unwritten_bytes\": %" PRIu64
		       ", \"delalloc_bytes\": %" PRIu64 ", \"other_bytes\": %" PRIu64
		       ", \"tensors\": [\n",
		       s.largest_run, s.mapped_bytes, s.hole_bytes, s.unwritten_bytes,
		       s.delalloc_bytes, s.other_bytes);
	} else {
		printf("%s: %s on %s (disk %s, partition at %" PRIu64 ", LBA %" PRIu32 " B%s)\n",
		       gg_safe(o->path, sbuf), p2pio_extents_fstype(ext),
		       bd->name[0] ? bd->name : "no block device", bd->disk[0] ? bd->disk : "-",
		       bd->part_start, bd->lba_size, bd->is_nvme ? ", NVMe" : "");
		if (bd->why_not[0])
			printf("  P2P: %s\n", bd->why_not);
		printf("  %zu extents, %" PRIu64 " runs on disk (%.1f per GiB), largest %s",
		       p2pio_extents_count(ext), s.runs, s.runs_per_gib,
		       cli_human_bytes(s.largest_run, h));
		printf(", holes %s", cli_human_bytes(s.hole_bytes, h));
		printf(", unwritten %s", cli_human_bytes(s.unwritten_bytes, h));
		printf(", not yet allocated %s\n", cli_human_bytes(s.delalloc_bytes, h));
		printf("%-14s %12s %6s %14s  %s\n", "file_offset", "bytes", "runs", "first_lba",
		       "name");
	}
	for (i = 0; i < n; i++) {
		const struct p2pio_gguf_tensor *t = p2pio_gguf_tensor(g, i);
		ssize_t nr = p2pio_extents_lba_runs(ext, t->file_offset, t->size, NULL, 0);
		uint32_t bad = 0;

		if (nr < 0)
			nr = 0;
		if ((size_t)nr > cap) {
			struct p2pio_lba_run *nrs = realloc(runs, (size_t)nr * sizeof(*runs));

			if (!nrs) {
				cli_err("out of memory");
				ret = CLI_EXIT_ERROR;
				goto out;
			}
			runs = nrs;
			cap = (size_t)nr;
		}
		nr = p2pio_extents_lba_runs(ext, t->file_offset, t->size, runs, cap);
		for (k = 0; k < (size_t)nr; k++)
			bad |= runs[k].flags & P2PIO_EXTENT_NOT_RAW;
		if (o->json) {
			fputs(i ? ",\n  {\"name\": " : "  {\"name\": ", stdout);
			cli_json_str(stdout, t->name);
			printf(", \"file_offset\": %" PRIu64 ", \"bytes\": %" PRIu64
			       ", \"p2p_readable\": %s, \"runs\": [",
			       t->file_offset, t->size, bad ? "false" : "true");
			for (k = 0; k < (size_t)nr; k++)
				printf("%s{\"file_offset\": %" PRIu64 ", \"length\": %" PRIu64
				       ", \"lba\": %" PRIu64 ", \"nlb\": %" PRIu64 ", \"flags\": %" PRIu32 "}",
				       k ? ", " : "", runs[k].file_offset, runs[k].length, runs[k].lba,
				       runs[k].nlb, runs[k].flags);
			fputs("]}", stdout);
			continue;
		}
		printf("%-14" PRIu64 " %12" PRIu64 " %6zd ", t->file_offset, t->size, nr);
		if (nr && !(runs[0].flags & P2PIO_EXTENT_NOT_RAW))
			printf("%14" PRIu64, runs[0].lba);
		else
			printf("%14s", "-");
		printf("  %s", gg_safe(t->name, sbuf));
		gg_run_flags(stdout, bad);
		fputc('\n', stdout);
		for (k = 0; o->full && k < (size_t)nr; k++) {
			printf("    file %" PRIu64 " +%" PRIu64 " -> lba %" PRIu64 " +%" PRIu64,
			       runs[k].file_offset, runs[k].length, runs[k].lba, runs[k].nlb);
			gg_run_flags(stdout, runs[k].flags);
			fputc('\n', stdout);
		}
	}
	if (o->json)
		fputs("\n]}\n", stdout);
	ret = CLI_EXIT_OK;
out:
	free(runs);
	p2pio_extents_free(ext);
	return ret;
}

/* ---- command line ------------------------------------------------------------------------ */

struct gg_mode {
	const char *name;	/* the option that selects it; NULL for the default */
	int (*run)(struct p2pio_gguf *g, const struct gg_opts *o);
};

enum { GG_SUMMARY, GG_META, GG_TENSORS, GG_VERIFY, GG_REPACK, GG_EXTENTS, GG_N_MODES };

static const struct gg_mode gg_modes[GG_N_MODES] = {
	[GG_SUMMARY] = { NULL, gg_summary },
	[GG_META] = { "--meta", gg_meta },
	[GG_TENSORS] = { "--tensors", gg_tensors },
	[GG_VERIFY] = { "--verify-pattern", gg_verify },
	[GG_REPACK] = { "--repack", gg_repack },
	[GG_EXTENTS] = { "--extents", gg_extents },
};

enum { OPT_FULL = 256, OPT_VERIFY, OPT_REPACK, OPT_EXTENTS };

static const struct option gg_longopts[] = {
	{ "meta", no_argument, NULL, 'm' },
	{ "tensors", no_argument, NULL, 't' },
	{ "verify-pattern", no_argument, NULL, OPT_VERIFY },
	{ "repack", no_argument, NULL, OPT_REPACK },
	{ "extents", no_argument, NULL, OPT_EXTENTS },
	{ "json", no_argument, NULL, 'j' },
	{ "full", no_argument, NULL, OPT_FULL },
	{ "align", required_argument, NULL, 'a' },
	{ "output", required_argument, NULL, 'o' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void gg_help(void)
{
	printf("Usage: %s [MODE] [OPTIONS] MODEL.gguf\n"
	       "Show what is in a GGUF model and where its tensors lie in the file.\n"
	       "\n"
	       "Modes (one; the default is a summary):\n"
	       "  -m, --meta             every metadata pair (arrays abbreviated unless --full)\n"
	       "  -t, --tensors          every tensor: file offset, its alignment, type, bytes, shape\n"
	       "      --verify-pattern   check every tensor's bytes against the test pattern whose\n"
	       "                         seed is in the metadata (p2pio.pattern.seed)\n"
	       "      --repack           copy the model with every tensor aligned: --align N -o OUT\n"
	       "      --extents          where each tensor lies on the disk: LBA runs (all of them\n"
	       "                         with --full), the file's fragmentation, P2P readability\n"
	       "Options:\n"
	       "  -j, --json             one JSON document on stdout, for programs\n"
	       "      --full             show arrays in full\n"
	       "  -a, --align N          alignment for --repack: a power of two >= 32 (4096: every\n"
	       "                         tensor an exact LBA-aligned read); sizes like 4K work\n"
	       "  -o, --output FILE      output of --repack; never the input\n"
	       "  -h, --help             this help\n"
	       "\n"
	       "Exit status: 0 success; 1 --verify-pattern found a mismatch or a repacked copy did\n"
	       "not verify; 2 bad usage; 3 the model could not be read (the message gives the byte\n"
	       "offset of the problem) or the output could not be written.\n", cli_prog());
}

static int gg_set_mode(int *mode, int m)
{
	if (*mode != GG_SUMMARY && *mode != m)
		return cli_usage_err("%s and %s cannot be combined", gg_modes[*mode].name,
				     gg_modes[m].name);
	*mode = m;
	return 0;
}

int main(int argc, char **argv)
{
	struct gg_opts o = { .align = 0 };
	struct p2pio_error err = { 0 };
	struct p2pio_gguf *g = NULL;
	int c, ret, mode = GG_SUMMARY;

	cli_init(argv[0]);
	while ((c = getopt_long(argc, argv, "mtja:o:h", gg_longopts, NULL)) != -1) {
		ret = 0;
		switch (c) {
		case 'm': ret = gg_set_mode(&mode, GG_META); break;
		case 't': ret = gg_set_mode(&mode, GG_TENSORS); break;
		case OPT_VERIFY: ret = gg_set_mode(&mode, GG_VERIFY); break;
		case OPT_REPACK: ret = gg_set_mode(&mode, GG_REPACK); break;
		case OPT_EXTENTS: ret = gg_set_mode(&mode, GG_EXTENTS); break;
		case 'j': o.json = true; break;
		case OPT_FULL: o.full = true; break;
		case 'o': o.output = optarg; break;
		case 'a':
			if (cli_parse_size(optarg, &o.align) || o.align < 32 || o.align > (1u << 30) ||
			    (o.align & (o.align - 1)))
				return cli_usage_err("--align %s: not a power of two from 32 to 1G", optarg);
			break;
		case 'h':
			gg_help();
			return CLI_EXIT_OK;
		default:
			return cli_usage_err("unknown option");
		}
		if (ret)
			return ret;
	}
	if (optind + 1 != argc)
		return cli_usage_err("expected one model file");
	o.path = argv[optind];
	if (mode == GG_REPACK && (!o.output || !o.align))
		return cli_usage_err("--repack needs --align N and -o OUT");
	if (mode != GG_REPACK && (o.output || o.align))
		return cli_usage_err("--align and -o go with --repack");

	ret = p2pio_gguf_open(o.path, &g, &err);
	if (ret) {
		cli_err_p2pio(o.path, ret, &err);
		return CLI_EXIT_ERROR;
	}
	ret = gg_modes[mode].run(g, &o);
	p2pio_gguf_close(g);
	if (fflush(stdout) || ferror(stdout)) {
		cli_err("writing the output failed");
		return CLI_EXIT_ERROR;
	}
	return ret;
}
