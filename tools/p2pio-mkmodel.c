// SPDX-License-Identifier: MIT
/*
 * p2pio-mkmodel - write synthetic GGUF models with real architectures' shapes and names.
 *
 * The models are what llama.cpp would write for a dense llama-like or a mixture-of-experts
 * (qwen3moe-like, mixtral-like) network, with the metadata keys and tensor names it uses,
 * quantised roughly as its Q4_K_M mix does, but the tensor data are the deterministic test
 * pattern (pattern.h) of the seed stored under p2pio.pattern.seed: any byte that lands
 * anywhere can be checked from its file offset alone. Documentation/tools.md has the details.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "p2pio.h"

/* How a network is shaped; names follow llama.cpp's GGUF keys. */
struct mk_spec {
	const char *arch;		/* general.architecture */
	uint32_t layers;		/* block_count */
	uint64_t hidden;		/* embedding_length */
	uint64_t ffn;			/* feed_forward_length (dense layers) */
	uint64_t heads;			/* attention.head_count */
	uint64_t kv_heads;		/* attention.head_count_kv */
	uint64_t head_dim;		/* attention.key_length; 0: hidden / heads */
	uint64_t vocab;
	uint64_t context;		/* context_length */
	uint64_t experts;		/* expert_count; 0 for a dense model */
	uint64_t experts_used;		/* expert_used_count */
	uint64_t expert_ffn;		/* expert_feed_forward_length */
	bool qk_norm;			/* per-head attn_q_norm / attn_k_norm (qwen3) */
	uint32_t type;			/* ggml type of the weights */
	uint32_t embd_type;		/* token_embd */
	uint32_t output_type;		/* output */
	uint32_t more_bits_type;	/* attn_v and ffn_down in "more bits" layers (Q4_K_M) */
	bool mix;			/* apply the Q4_K_M-like mix */
	const char *tokenizer;		/* tokenizer.ggml.model */
	uint32_t expert_type;		/* ggml type of the *_exps weights; 0: @type's */
	bool expert_bias;		/* gpt-oss: ffn_{gate,up,down}_exps.bias (F32) */
};

struct mk_preset {
	const char *name;
	const char *about;
	struct mk_spec spec;
};

#define Q4K P2PIO_GGML_TYPE_Q4_K
#define Q6K P2PIO_GGML_TYPE_Q6_K
#define Q80 P2PIO_GGML_TYPE_Q8_0
#define MXFP4 P2PIO_GGML_TYPE_MXFP4

static const struct mk_preset mk_presets[] = {
	{ "tiny", "4-layer llama-like, Q4_K/Q6_K mix, ~8 MiB, for tests",
	  { "llama", 4, 512, 1536, 8, 2, 0, 2048, 2048, 0, 0, 0, false, Q4K, Q4K, Q6K, Q6K, true,
	    "llama", 0, false } },
	{ "moe-tiny", "4-layer qwen3moe-like, 8 experts (2 used), ~17 MiB, for tests",
	  { "qwen3moe", 4, 512, 1536, 8, 2, 64, 2048, 2048, 8, 2, 512, true, Q4K, Q4K, Q6K, Q6K,
	    true, "gpt2", 0, false } },
	{ "llama-8b-q4k", "Llama-3-8B shapes, Q4_K_M-like mix, ~4.6 GiB",
	  { "llama", 32, 4096, 14336, 32, 8, 0, 128256, 8192, 0, 0, 0, false, Q4K, Q4K, Q6K, Q6K,
	    true, "gpt2", 0, false } },
	{ "llama-70b-q4k", "Llama-3-70B shapes, Q4_K_M-like mix, ~40 GiB",
	  { "llama", 80, 8192, 28672, 64, 8, 0, 128256, 8192, 0, 0, 0, false, Q4K, Q4K, Q6K, Q6K,
	    true, "gpt2", 0, false } },
	{ "qwen3-30b-a3b-q4k", "Qwen3-30B-A3B shapes (48 layers, 128 experts, 8 used), ~17 GiB",
	  { "qwen3moe", 48, 2048, 6144, 32, 4, 128, 151936, 40960, 128, 8, 768, true, Q4K, Q4K,
	    Q6K, Q6K, true, "gpt2", 0, false } },
	{ "mixtral-8x7b-q4k", "Mixtral-8x7B shapes (32 layers, 8 experts, 2 used), ~26 GiB",
	  { "llama", 32, 4096, 14336, 32, 8, 0, 32000, 32768, 8, 2, 14336, false, Q4K, Q4K, Q6K,
	    Q6K, true, "llama", 0, false } },
	{ "gpt-oss-120b", "gpt-oss-120b shapes (36 layers, 128 experts, 4 used), MXFP4 "
	  "experts, Q8_0 rest, ~60 GB",
	  { "gpt-oss", 36, 2880, 2880, 64, 8, 64, 201088, 131072, 128, 4, 2880, false, Q80, Q80,
	    Q80, Q80, false, "gpt2", MXFP4, true } },
	{ "gpt-oss-tiny", "4-layer gpt-oss-like, 16 experts (4 used), MXFP4 experts, ~8 MiB, "
	  "for tests",
	  { "gpt-oss", 4, 256, 256, 4, 2, 64, 1024, 2048, 16, 4, 256, false, Q80, Q80, Q80, Q80,
	    false, "gpt2", MXFP4, true } },
};

struct mk_opts {
	struct mk_spec spec;
	const char *preset;
	const char *out;
	uint64_t seed;
	uint64_t align;
	bool size_only;
	bool quiet;
};

static void mk_help(void)
{
	size_t i;

	printf("Usage: %s [OPTIONS] OUT.gguf\n"
	       "Write a synthetic GGUF model with a real architecture's shapes and tensor names,\n"
	       "its data the deterministic p2pio test pattern (seed in p2pio.pattern.seed).\n"
	       "\n"
	       "  -p, --preset NAME      start from a preset (below); options after it adjust it\n"
	       "      --arch NAME        general.architecture (llama, qwen3moe, ...)\n"
	       "      --layers N         number of blocks\n"
	       "      --hidden N         embedding length\n"
	       "      --ffn N            feed-forward length (dense layers)\n"
	       "      --heads N          attention heads\n"
	       "      --kv-heads N       key/value heads (grouped-query attention)\n"
	       "      --head-dim N       per-head dimension (default hidden / heads)\n"
	       "      --vocab N          vocabulary size\n"
	       "      --context N        context length\n"
	       "      --experts N        experts per layer (0: dense)\n"
	       "      --experts-used N   experts used per token\n"
	       "      --expert-ffn N     feed-forward length of one expert\n"
	       "      --qk-norm          per-head q/k norms (qwen3)\n"
	       "  -t, --type T           ggml type of the weight matrices (default Q4_K)\n"
	       "      --embd-type T      type of token_embd.weight (default: --type)\n"
	       "      --output-type T    type of output.weight (default Q6_K)\n"
	       "      --expert-type T    type of the *_exps weights (default: --type)\n"
	       "      --no-mix           no Q4_K_M-like Q6_K attn_v/ffn_down in some layers\n"
	       "  -s, --seed N           pattern seed (default 1)\n"
	       "  -a, --align N          data alignment, a power of two (default 32)\n"
	       "  -n, --size-only        print the file's size in bytes; write nothing\n"
	       "  -q, --quiet            no summary on stderr\n"
	       "  -h, --help             this help\n"
	       "\n"
	       "Presets:\n", cli_prog());
	for (i = 0; i < sizeof(mk_presets) / sizeof(mk_presets[0]); i++)
		printf("  %-20s %s\n", mk_presets[i].name, mk_presets[i].about);
	printf("\nExit status: 0 success, 2 bad usage, 3 the model could not be written.\n");
}

/*
 * llama.cpp's use_more_bits(): in Q4_K_M the first and last eighth of the layers, and every
 * third layer between, get more bits for attn_v and ffn_down.
 */
static bool mk_more_bits(uint32_t i, uint32_t n)
{
	return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

struct mk_ctx {
	struct p2pio_gguf_writer *w;
	uint64_t *seed;
	uint32_t n_tensors;
};

static int mk_tensor(struct mk_ctx *c, const char *name, uint32_t type, uint32_t n_dims,
		     uint64_t ne0, uint64_t ne1, uint64_t ne2)
{
	struct p2pio_gguf_new_tensor t;
	int ret;

	memset(&t, 0, sizeof(t));
	t.name = name;
	t.type = type;
	t.n_dims = n_dims;
	t.ne[0] = ne0;
	t.ne[1] = ne1;
	t.ne[2] = ne2;
	t.fill = p2pio_gguf_pattern_fill;
	t.arg = c->seed;
	ret = p2pio_gguf_writer_add_tensor(c->w, &t);
	if (ret)
		cli_err("%s", p2pio_gguf_writer_error(c->w)->msg);
	else
		c->n_tensors++;
	return ret;
}

static int mk_layer(struct mk_ctx *c, const struct mk_spec *s, uint32_t i)
{
	uint64_t hd = s->head_dim ? s->head_dim : s->hidden / s->heads;
	uint32_t vtype = s->type, dtype = s->type;
	char n[64];
	int ret = 0;

#define MK(suffix, ...)                                                                  \
	do {                                                                             \
		snprintf(n, sizeof(n), "blk.%" PRIu32 "." suffix, i);                    \
		ret = ret ?: mk_tensor(c, n, __VA_ARGS__);                               \
	} while (0)

	if (s->mix && mk_more_bits(i, s->layers))
		vtype = dtype = s->more_bits_type;
	MK("attn_norm.weight", P2PIO_GGML_TYPE_F32, 1, s->hidden, 1, 1);
	MK("attn_q.weight", s->type, 2, s->hidden, s->heads * hd, 1);
	MK("attn_k.weight", s->type, 2, s->hidden, s->kv_heads * hd, 1);
	MK("attn_v.weight", vtype, 2, s->hidden, s->kv_heads * hd, 1);
	MK("attn_output.weight", s->type, 2, s->heads * hd, s->hidden, 1);
	if (s->qk_norm) {
		MK("attn_q_norm.weight", P2PIO_GGML_TYPE_F32, 1, hd, 1, 1);
		MK("attn_k_norm.weight", P2PIO_GGML_TYPE_F32, 1, hd, 1, 1);
	}
	MK("ffn_norm.weight", P2PIO_GGML_TYPE_F32, 1, s->hidden, 1, 1);
	if (s->experts) {
		uint32_t et = s->expert_type ? s->expert_type : s->type;

		/* Experts are the outermost dimension: expert e is one contiguous slice. */
		MK("ffn_gate_inp.weight", P2PIO_GGML_TYPE_F32, 2, s->hidden, s->experts, 1);
		MK("ffn_gate_exps.weight", et, 3, s->hidden, s->expert_ffn, s->experts);
		if (s->expert_bias)
			MK("ffn_gate_exps.bias", P2PIO_GGML_TYPE_F32, 2, s->expert_ffn, s->experts, 1);
		MK("ffn_up_exps.weight", et, 3, s->hidden, s->expert_ffn, s->experts);
		if (s->expert_bias)
			MK("ffn_up_exps.bias", P2PIO_GGML_TYPE_F32, 2, s->expert_ffn, s->experts, 1);
		MK("ffn_down_exps.weight", s->expert_type ? et : dtype, 3, s->expert_ffn, s->hidden,
		   s->experts);
		if (s->expert_bias)
			MK("ffn_down_exps.bias", P2PIO_GGML_TYPE_F32, 2, s->hidden, s->experts, 1);
	} else {
		MK("ffn_gate.weight", s->type, 2, s->hidden, s->ffn, 1);
		MK("ffn_up.weight", s->type, 2, s->hidden, s->ffn, 1);
		MK("ffn_down.weight", dtype, 2, s->ffn, s->hidden, 1);
	}
#undef MK
	return ret;
}

/* tokenizer.ggml.tokens: one string per vocabulary entry, as real models carry. */
static int mk_tokens(struct p2pio_gguf_writer *w, uint64_t vocab)
{
	char tok[32];
	uint64_t i;
	int ret;

	ret = p2pio_gguf_writer_begin_array(w, "tokenizer.ggml.tokens", P2PIO_GGUF_TYPE_STRING, vocab);
	for (i = 0; !ret && i < vocab; i++) {
		if (i < 3)
			snprintf(tok, sizeof(tok), "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
		else
			snprintf(tok, sizeof(tok), "<tok-%" PRIu64 ">", i);
		ret = p2pio_gguf_writer_add_str(w, NULL, tok);
	}
	ret = ret ?: p2pio_gguf_writer_end_array(w);
	ret = ret ?: p2pio_gguf_writer_begin_array(w, "tokenizer.ggml.token_type",
						    P2PIO_GGUF_TYPE_INT32, vocab);
	/* 2 is "unknown", 3 "control", 1 "normal" in llama.cpp's vocabulary types. */
	for (i = 0; !ret && i < vocab; i++)
		ret = p2pio_gguf_writer_add_i32(w, NULL, i == 0 ? 2 : i < 3 ? 3 : 1);
	return ret ?: p2pio_gguf_writer_end_array(w);
}

static int mk_metadata(struct p2pio_gguf_writer *w, const struct mk_opts *o)
{
	const struct mk_spec *s = &o->spec;
	uint64_t hd = s->head_dim ? s->head_dim : s->hidden / s->heads;
	char key[128], name[128];
	int ret;

#define KEY(k) (snprintf(key, sizeof(key), "%s." k, s->arch), key)
	snprintf(name, sizeof(name), "p2pio synthetic %s", o->preset ? o->preset : s->arch);
	ret = p2pio_gguf_writer_add_str(w, "general.architecture", s->arch);
	ret = ret ?: p2pio_gguf_writer_add_str(w, "general.name", name);
	/* 15 is LLAMA_FTYPE_MOSTLY_Q4_K_M, 0 ALL_F32; others are not named here. */
	ret = ret ?: p2pio_gguf_writer_add_u32(w, "general.file_type",
					       s->type == Q4K && s->mix ? 15 : 0);
	ret = ret ?: p2pio_gguf_writer_add_u32(w, "general.quantization_version", 2);
	ret = ret ?: p2pio_gguf_writer_add_u32(w, KEY("block_count"), s->layers);
	ret = ret ?: p2pio_gguf_writer_add_u32(w, KEY("context_length"), (uint32_t)s->context);
	ret = ret ?: p2pio_gguf_writer_add_u32(w, KEY("embedding_length"), (uint32_t)s->hidden);
	ret = ret ?: p2pio_gguf_writer_add_u32(w, KEY("feed_forward_length"), (uint32_t)s->ffn);
	ret = ret ?: p2pio_gguf_writer_add_u32(w, KEY("attention.head_count"), (uint32_t)s->heads);
	ret = ret ?: p2pio_gguf_writer_add_u32(w, KEY("attention.head_count_kv"),
					       (uint32_t)s->kv_heads);
	ret = ret ?: p2pio_gguf_writer_add_u32(w, KEY("attention.key_length"), (uint32_t)hd);
	ret = ret ?: p2pio_gguf_writer_add_u32(w, KEY("attention.value_length"), (uint32_t)hd);
	ret = ret ?: p2pio_gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
	ret = ret ?: p2pio_gguf_writer_add_f32(w, KEY("rope.freq_base"), 1000000.0f);
	ret = ret ?: p2pio_gguf_writer_add_u32(w, KEY("vocab_size"), (uint32_t)s->vocab);
	if (s->experts) {
		ret = ret ?: p2pio_gguf_writer_add_u32(w, KEY("expert_count"), (uint32_t)s->experts);
		ret = ret ?: p2pio_gguf_writer_add_u32(w, KEY("expert_used_count"),
						       (uint32_t)s->experts_used);
		ret = ret ?: p2pio_gguf_writer_add_u32(w, KEY("expert_feed_forward_length"),
						       (uint32_t)s->expert_ffn);
	}
#undef KEY
	ret = ret ?: p2pio_gguf_writer_add_str(w, "tokenizer.ggml.model", s->tokenizer);
	ret = ret ?: mk_tokens(w, s->vocab);
	ret = ret ?: p2pio_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1);
	ret = ret ?: p2pio_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2);
	ret = ret ?: p2pio_gguf_writer_add_u64(w, P2PIO_PATTERN_SEED_KEY, o->seed);
	if (ret)
		cli_err("metadata: %s", p2pio_gguf_writer_error(w)->msg);
	return ret;
}

static int mk_tensors(struct mk_ctx *c, const struct mk_spec *s)
{
	uint32_t i;
	int ret;

	ret = mk_tensor(c, "token_embd.weight", s->embd_type, 2, s->hidden, s->vocab, 1);
	for (i = 0; !ret && i < s->layers; i++)
		ret = mk_layer(c, s, i);
	ret = ret ?: mk_tensor(c, "output_norm.weight", P2PIO_GGML_TYPE_F32, 1, s->hidden, 1, 1);
	return ret ?: mk_tensor(c, "output.weight", s->output_type, 2, s->hidden, s->vocab, 1);
}

/* Shapes that would make llama.cpp (or the writer) choke, caught with a plain message. */
static int mk_check(const struct mk_spec *s)
{
	if (!s->layers || !s->hidden || !s->heads || !s->kv_heads || !s->vocab)
		return cli_usage_err("layers, hidden, heads, kv-heads and vocab must be positive");
	if (s->layers > 100000 || s->hidden > UINT32_MAX || s->vocab > UINT32_MAX ||
	    s->ffn > UINT32_MAX || s->expert_ffn > UINT32_MAX || s->experts > 65536)
		return cli_usage_err("a dimension is out of range");
	/*
	 * The metadata holds these as uint32, and heads x head_dim sizes attn_q: unchecked,
	 * --heads 3 --head-dim 6148914691236517206 wrapped to 2 and wrote a [hidden x 2]
	 * attn_q under a key_length that was cut to 32 bits, with exit 0.
	 */
	if (s->heads > UINT32_MAX || s->kv_heads > UINT32_MAX || s->head_dim > UINT32_MAX ||
	    s->context > UINT32_MAX)
		return cli_usage_err("a dimension is out of range");
	if ((s->head_dim ? s->head_dim : s->hidden / s->heads) * s->heads > UINT32_MAX)
		return cli_usage_err("heads x head-dim (%" PRIu64 " x %" PRIu64 ") is out of range",
				     s->heads, s->head_dim ? s->head_dim : s->hidden / s->heads);
	if (!s->head_dim && s->hidden % s->heads)
		return cli_usage_err("hidden (%" PRIu64 ") is not a multiple of heads (%" PRIu64 ")",
				     s->hidden, s->heads);
	if (s->heads % s->kv_heads)
		return cli_usage_err("heads (%" PRIu64 ") is not a multiple of kv-heads (%" PRIu64 ")",
				     s->heads, s->kv_heads);
	if (s->experts && (!s->expert_ffn || !s->experts_used || s->experts_used > s->experts))
		return cli_usage_err("an MoE model needs expert-ffn > 0 and 0 < experts-used <= experts");
	if (!s->experts && !s->ffn)
		return cli_usage_err("a dense model needs ffn > 0");
	return 0;
}

static int mk_type(const char *arg, uint32_t *out)
{
	int t = p2pio_ggml_type_from_name(arg);

	if (t < 0)
		return cli_usage_err("unknown ggml type '%s'", arg);
	*out = (uint32_t)t;
	return 0;
}

enum {
	OPT_ARCH = 256, OPT_LAYERS, OPT_HIDDEN, OPT_FFN, OPT_HEADS, OPT_KV_HEADS, OPT_HEAD_DIM,
	OPT_VOCAB, OPT_CONTEXT, OPT_EXPERTS, OPT_EXPERTS_USED, OPT_EXPERT_FFN, OPT_QK_NORM,
	OPT_EMBD_TYPE, OPT_OUTPUT_TYPE, OPT_NO_MIX, OPT_EXPERT_TYPE,
};

static const struct option mk_longopts[] = {
	{ "preset", required_argument, NULL, 'p' },
	{ "arch", required_argument, NULL, OPT_ARCH },
	{ "layers", required_argument, NULL, OPT_LAYERS },
	{ "hidden", required_argument, NULL, OPT_HIDDEN },
	{ "ffn", required_argument, NULL, OPT_FFN },
	{ "heads", required_argument, NULL, OPT_HEADS },
	{ "kv-heads", required_argument, NULL, OPT_KV_HEADS },
	{ "head-dim", required_argument, NULL, OPT_HEAD_DIM },
	{ "vocab", required_argument, NULL, OPT_VOCAB },
	{ "context", required_argument, NULL, OPT_CONTEXT },
	{ "experts", required_argument, NULL, OPT_EXPERTS },
	{ "experts-used", required_argument, NULL, OPT_EXPERTS_USED },
	{ "expert-ffn", required_argument, NULL, OPT_EXPERT_FFN },
	{ "qk-norm", no_argument, NULL, OPT_QK_NORM },
	{ "type", required_argument, NULL, 't' },
	{ "embd-type", required_argument, NULL, OPT_EMBD_TYPE },
	{ "output-type", required_argument, NULL, OPT_OUTPUT_TYPE },
	{ "no-mix", no_argument, NULL, OPT_NO_MIX },
	{ "expert-type", required_argument, NULL, OPT_EXPERT_TYPE },
	{ "seed", required_argument, NULL, 's' },
	{ "align", required_argument, NULL, 'a' },
	{ "size-only", no_argument, NULL, 'n' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int mk_parse(int argc, char **argv, struct mk_opts *o)
{
	struct mk_spec *s = &o->spec;
	bool embd_set = false;
	uint64_t v;
	size_t i;
	int c, ret;

	memset(o, 0, sizeof(*o));
	*s = mk_presets[0].spec;
	o->seed = 1;
	o->align = P2PIO_GGUF_DEFAULT_ALIGNMENT;
	while ((c = getopt_long(argc, argv, "p:t:s:a:nqh", mk_longopts, NULL)) != -1) {
		uint64_t *num = NULL;

		switch (c) {
		case 'p':
			for (i = 0; i < sizeof(mk_presets) / sizeof(mk_presets[0]); i++)
				if (!strcmp(optarg, mk_presets[i].name))
					break;
			if (i == sizeof(mk_presets) / sizeof(mk_presets[0]))
				return cli_usage_err("unknown preset '%s' (--help lists them)", optarg);
			*s = mk_presets[i].spec;
			o->preset = mk_presets[i].name;
			embd_set = false;
			continue;
		case OPT_ARCH: s->arch = optarg; continue;
		case OPT_QK_NORM: s->qk_norm = true; continue;
		case OPT_NO_MIX: s->mix = false; continue;
		case 'n': o->size_only = true; continue;
		case 'q': o->quiet = true; continue;
		case 'h': mk_help(); exit(CLI_EXIT_OK);
		case 't':
			ret = mk_type(optarg, &s->type);
			if (ret)
				return ret;
			if (!embd_set)
				s->embd_type = s->type;
			continue;
		case OPT_EMBD_TYPE:
			embd_set = true;
			ret = mk_type(optarg, &s->embd_type);
			if (ret)
				return ret;
			continue;
		case OPT_EXPERT_TYPE:
			ret = mk_type(optarg, &s->expert_type);
			if (ret)
				return ret;
			continue;
		case OPT_OUTPUT_TYPE:
			ret = mk_type(optarg, &s->output_type);
			if (ret)
				return ret;
			continue;
		case OPT_HIDDEN: num = &s->hidden; break;
		case OPT_FFN: num = &s->ffn; break;
		case OPT_HEADS: num = &s->heads; break;
		case OPT_KV_HEADS: num = &s->kv_heads; break;
		case OPT_HEAD_DIM: num = &s->head_dim; break;
		case OPT_VOCAB: num = &s->vocab; break;
		case OPT_CONTEXT: num = &s->context; break;
		case OPT_EXPERTS: num = &s->experts; break;
		case OPT_EXPERTS_USED: num = &s->experts_used; break;
		case OPT_EXPERT_FFN: num = &s->expert_ffn; break;
		case 's': num = &o->seed; break;
		case OPT_LAYERS:
		case 'a':
			num = &v;
			break;
		default:
			return cli_usage_err("unknown option");
		}
		if (cli_parse_u64(optarg, num))
			return cli_usage_err("'%s' is not a number (option %s)", optarg, argv[optind - 1]);
		if (c == OPT_LAYERS) {
			if (v > UINT32_MAX)
				return cli_usage_err("too many layers");
			s->layers = (uint32_t)v;
		} else if (c == 'a') {
			if (v > (1u << 30) || (v & (v - 1)) || v < 1)
				return cli_usage_err("alignment %" PRIu64 " is not a power of two up to 2^30", v);
			o->align = v;
		}
	}
	if (optind + 1 != argc && !(o->size_only && optind == argc))
		return cli_usage_err("expected one output file");
	o->out = optind < argc ? argv[optind] : NULL;
	return mk_check(s);
}

static double mk_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct p2pio_gguf_writer *w = NULL;
	struct p2pio_error err = { 0 };
	struct mk_ctx c = { 0 };
	char human[CLI_HUMAN_LEN];
	struct mk_opts o;
	uint64_t size;
	double t0, dt;
	int ret;

	cli_init(argv[0]);
	ret = mk_parse(argc, argv, &o);
	if (ret)
		return ret;
	c.seed = &o.seed;
	if (o.size_only)
		ret = p2pio_gguf_writer_create_fd(&w, 1, (uint32_t)o.align, &err);
	else
		ret = p2pio_gguf_writer_create(&w, o.out, (uint32_t)o.align, &err);
	if (ret) {
		cli_err_p2pio(o.out ? o.out : "output", ret, &err);
		return CLI_EXIT_ERROR;
	}
	c.w = w;
	ret = mk_metadata(w, &o);
	ret = ret ?: mk_tensors(&c, &o.spec);
	if (ret) {
		p2pio_gguf_writer_free(w);
		/* Shapes the writer refuses are a usage problem: the options made them. */
		return ret == -ENOMEM ? CLI_EXIT_ERROR : CLI_EXIT_USAGE;
	}
	p2pio_gguf_writer_layout(w, NULL, &size);
	if (o.size_only) {
		printf("%" PRIu64 "\n", size);
		p2pio_gguf_writer_free(w);
		return CLI_EXIT_OK;
	}
	t0 = mk_now();
	ret = p2pio_gguf_writer_finish(w);
	dt = mk_now() - t0;
	if (ret) {
		cli_err_p2pio(o.out, ret, p2pio_gguf_writer_error(w));
		p2pio_gguf_writer_free(w);
		return CLI_EXIT_ERROR;
	}
	if (!o.quiet)
		fprintf(stderr, "%s: wrote %s: %s (%" PRIu64 " bytes), %" PRIu32 " tensors, %" PRIu32
			" layers%s, seed %" PRIu64 ", in %.1f s (%.0f MB/s, fsync included)\n",
			cli_prog(), o.out, cli_human_bytes(size, human), size, c.n_tensors,
			o.spec.layers, o.spec.experts ? ", MoE" : "", o.seed, dt,
			dt > 0 ? (double)size / dt / 1e6 : 0.0);
	p2pio_gguf_writer_free(w);
	return CLI_EXIT_OK;
}
