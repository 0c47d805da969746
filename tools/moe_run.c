// SPDX-License-Identifier: MIT
/*
 * moe_run.c - `p2pio-moe run`: decode a routing trace with the real expert cache on a
 * synthetic model (p2pio-mkmodel), one GPU kernel per required expert that reads every
 * byte of it and checks it against the pattern, and report tokens/s, hit rate, the
 * stream's stall, and the bound that the storage ceiling and the measured misses set:
 * tokens/s <= ceiling / (bytes missed per token).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "moe.h"
#include "p2pio.h"

#define RUN_MAX_USED 64
#define RUN_MAX_SLICES 16
/* The same path's rate: this much of the model, in expert-sized reads, this many deep. */
#define PATH_BYTES (2ull << 30)
#define PATH_DEPTH 32
/*
 * A decode shorter than this is no steady measurement: a cold file's first reads (and
 * the last token's tail) weigh in it, while the ceiling reads each shape for 0.3 s.
 * The H200's 1-layer decodes of 54 tokens lasted 30-78 ms (Documentation/moe.md).
 */
#define MOE_STEADY_S 0.5

struct run_opts {
	const char *model;
	const char *trace;
	uint64_t budget;
	double fraction;
	const char *policy;
	bool prefetch_prev;
	bool prefetch_learned;
	bool prefetch_next;		/* the trace's next layer as the prediction */
	double accuracy;		/* of each predicted expert, 0..1 (default 1) */
	bool accuracy_set;
	uint64_t tokens;
	uint64_t warmup;
	bool warmup_set;
	uint64_t compute_ns;
	double ceiling;			/* bytes/s; 0: measure */
	int device;
	bool device_set;
	enum p2pio_path path;
	bool miss_cost;
	bool no_verify;
	bool json;
	uint64_t chunk;			/* engine chunk size; 0: the library's default */
	uint32_t threads;		/* engine threads; 0: the library's default */
	uint32_t queue_depth;		/* engine queue depth; 0: the library's default */
	bool poll;			/* P2PIO_CTX_POLL */
	bool bounce_async;		/* P2PIO_CTX_BOUNCE_ASYNC */
	uint64_t read_piece;		/* the cache's read piece; 0: the library's default */
	uint32_t read_pieces;		/* or reads per expert load; 0: by the piece */
	bool keep_cache;		/* leave the model in the page cache */
	bool eager_unmap;		/* unmap victims before the miss loads (as before) */
	bool run_ahead;			/* require a layer before the stream reaches it */
};

struct run {
	struct run_opts o;
	struct p2pio_ctx *ctx;
	struct p2pio_model *m;
	struct p2pio_experts *x;
	uint32_t threads;		/* the engine's */
	uint32_t queue_depth;		/* the engine's */
	struct p2pio_verifier *v;
	struct p2pio_expert_trace *t;
	struct p2pio_experts_info info;
	struct p2pio_model_info minfo;
	struct bench_cuda cu;
	void *stream;
	uint64_t verified_bytes;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void run_help(void)
{
	printf("Usage: %s run MODEL.gguf --trace TRACE [OPTIONS]\n"
	       "Decode a routing trace with the real expert cache on a synthetic model, every\n"
	       "required expert read and checked by a GPU kernel, and report tokens/s, the hit\n"
	       "rate, the stream's stall, and the bound the storage ceiling and the misses set.\n"
	       "\n"
	       "  -t, --trace T        routing trace (native, or a JSON log p2pio-moe reads)\n"
	       "  -b, --budget B       memory for the dense part and the experts (K/M/G units)\n"
	       "  -f, --fraction F     instead: the dense part and F (0 < F <= 1) of all experts\n"
	       "      --policy P       eviction policy (lru, lfu, lrfu; default %s)\n"
	       "      --prefetch-prev  prefetch the previous token's routing, a layer ahead\n"
	       "      --prefetch-learned\n"
	       "                       the cache's learned prefetch: the next layer's experts\n"
	       "                       as the routing seen so far predicts them, a layer ahead\n"
	       "      --prefetch-next  once a layer is required, prefetch the next layer's\n"
	       "                       routing from the trace (p2pio_experts_prefetch()): a\n"
	       "                       predictor that is always right, never across tokens\n"
	       "      --accuracy F     with --prefetch-next: each predicted expert is the\n"
	       "                       trace's with probability F, else one the layer does not\n"
	       "                       route to (a fixed-seed draw; default 1)\n"
	       "      --run-ahead      require each layer's experts as soon as the trace names\n"
	       "                       them, tokens ahead of the stream (default: only once\n"
	       "                       the stream has finished the layers before, as an engine\n"
	       "                       must that reads each layer's routing back from the GPU)\n"
	       "  -n, --tokens N       decode at most N tokens of the trace\n"
	       "      --warmup N       tokens decoded before the measurement (default: a tenth)\n"
	       "      --compute-us U   GPU time per layer standing in for its arithmetic\n"
	       "      --ceiling GBPS   the ceiling in GB/s (default: measured, the best of the\n"
	       "                       storage sweep on the model and, into a GPU, of the link\n"
	       "                       sweep; the path's own expert-sized reads, %d deep, are\n"
	       "                       reported beside it)\n"
	       "  -d, --device N|host  CUDA device (default 0 if there is one)\n"
	       "      --path P         auto, p2p, bounce or posix (default auto)\n"
	       "      --chunk SIZE     the engine's read and staging chunk (default: the library's)\n"
	       "      --threads N      the engine's threads (default: the CPUs less two, for this\n"
	       "                       thread and the cache's reaper, within 4..16)\n"
	       "      --queue-depth N  the engine's reads in flight, shared out between its\n"
	       "                       threads (default: the library's)\n"
	       "      --poll, --no-poll  the engine's threads poll before they sleep, or not\n"
	       "                       (P2PIO_CTX_POLL: latency over CPU time; default: poll)\n"
	       "      --read-pieces N  cut each expert load into about N reads, shared out\n"
	       "                       between its tensors by their bytes (default: the\n"
	       "                       library's, half the engine's threads)\n"
	       "      --read-piece SIZE  instead: reads of SIZE\n"
	       "      --bounce-async   BOUNCE's reads go to the kernel's io_uring workers\n"
	       "                       (P2PIO_CTX_BOUNCE_ASYNC: more submitters than threads)\n"
	       "      --keep-cache     do not drop the model from the page cache first (times\n"
	       "                       the software path on a file in memory)\n"
	       "      --eager-unmap    unmap a victim before its miss loads, not after the\n"
	       "                       batch (for comparison; P2PIO_EXPERTS_EAGER_UNMAP)\n"
	       "      --miss-cost      also time batches of 1, 2, 4 and 8 cold misses against\n"
	       "                       their bytes / the ceiling, with where the time goes, and\n"
	       "                       against their floor: the fastest plain O_DIRECT reads of\n"
	       "                       a batch's own ranges (threads 1..64 x reads of each range\n"
	       "                       whole, 4M, 1M, 512K, 256K; a line per k names the best);\n"
	       "                       into a GPU also against the same reads each copied there\n"
	       "                       as it lands (+copy)\n"
	       "      --no-verify      do not check the experts' bytes\n"
	       "      --json           one JSON object instead of the report\n"
	       "\n"
	       "Exit status: 0 success, 1 a byte was wrong, 2 bad usage, 3 the run failed.\n",
	       cli_prog(), P2PIO_EXPERTS_DEFAULT_POLICY, PATH_DEPTH);
}

enum {
	OPT_POLICY = 256, OPT_PREFETCH_PREV, OPT_WARMUP, OPT_COMPUTE, OPT_CEILING, OPT_PATH,
	OPT_MISS_COST, OPT_NO_VERIFY, OPT_JSON, OPT_CHUNK, OPT_READ_PIECE, OPT_READ_PIECES,
	OPT_KEEP_CACHE, OPT_EAGER_UNMAP, OPT_THREADS, OPT_POLL, OPT_NO_POLL, OPT_BOUNCE_ASYNC,
	OPT_QUEUE_DEPTH, OPT_RUN_AHEAD, OPT_PREFETCH_NEXT, OPT_ACCURACY, OPT_PREFETCH_LEARNED,
};

static const struct option run_longopts[] = {
	{ "trace", required_argument, NULL, 't' },
	{ "budget", required_argument, NULL, 'b' },
	{ "fraction", required_argument, NULL, 'f' },
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "prefetch-prev", no_argument, NULL, OPT_PREFETCH_PREV },
	{ "prefetch-learned", no_argument, NULL, OPT_PREFETCH_LEARNED },
	{ "tokens", required_argument, NULL, 'n' },
	{ "warmup", required_argument, NULL, OPT_WARMUP },
	{ "compute-us", required_argument, NULL, OPT_COMPUTE },
	{ "ceiling", required_argument, NULL, OPT_CEILING },
	{ "device", required_argument, NULL, 'd' },
	{ "path", required_argument, NULL, OPT_PATH },
	{ "miss-cost", no_argument, NULL, OPT_MISS_COST },
	{ "eager-unmap", no_argument, NULL, OPT_EAGER_UNMAP },
	{ "run-ahead", no_argument, NULL, OPT_RUN_AHEAD },
	{ "prefetch-next", no_argument, NULL, OPT_PREFETCH_NEXT },
	{ "accuracy", required_argument, NULL, OPT_ACCURACY },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "queue-depth", required_argument, NULL, OPT_QUEUE_DEPTH },
	{ "poll", no_argument, NULL, OPT_POLL },
	{ "no-poll", no_argument, NULL, OPT_NO_POLL },
	{ "bounce-async", no_argument, NULL, OPT_BOUNCE_ASYNC },
	{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "chunk", required_argument, NULL, OPT_CHUNK },
	{ "read-piece", required_argument, NULL, OPT_READ_PIECE },
	{ "read-pieces", required_argument, NULL, OPT_READ_PIECES },
	{ "keep-cache", no_argument, NULL, OPT_KEEP_CACHE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int run_parse(int argc, char **argv, struct run_opts *o)
{
	uint64_t v;
	int c;

	memset(o, 0, sizeof(*o));
	o->tokens = UINT64_MAX;
	o->accuracy = 1;
	o->poll = true;		/* a decode waits on each miss: latency over CPU time */
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:b:f:n:d:h", run_longopts, NULL)) != -1) {
		switch (c) {
		case 't': o->trace = optarg; break;
		case 'b':
			if (cli_parse_size(optarg, &o->budget) || !o->budget)
				return cli_usage_err("bad budget '%s'", optarg);
			break;
		case 'f':
			if (cli_parse_double(optarg, &o->fraction) || !(o->fraction > 0) ||
			    o->fraction > 1)
				return cli_usage_err("the fraction must be in (0, 1], not '%s'", optarg);
			break;
		case OPT_POLICY: o->policy = optarg; break;
		case OPT_PREFETCH_PREV: o->prefetch_prev = true; break;
		case OPT_PREFETCH_LEARNED: o->prefetch_learned = true; break;
		case OPT_PREFETCH_NEXT: o->prefetch_next = true; break;
		case OPT_ACCURACY:
			if (cli_parse_double(optarg, &o->accuracy) || !(o->accuracy >= 0) ||
			    o->accuracy > 1)
				return cli_usage_err("the accuracy must be in [0, 1], not '%s'",
						     optarg);
			o->accuracy_set = true;
			break;
		case 'n':
			if (cli_parse_u64(optarg, &o->tokens) || !o->tokens)
				return cli_usage_err("bad token count '%s'", optarg);
			break;
		case OPT_WARMUP:
			if (cli_parse_u64(optarg, &o->warmup))
				return cli_usage_err("bad warm-up '%s'", optarg);
			o->warmup_set = true;
			break;
		case OPT_COMPUTE:
			if (cli_parse_u64(optarg, &v) || v > 10000000)
				return cli_usage_err("bad compute time '%s'", optarg);
			o->compute_ns = v * 1000;
			break;
		case OPT_CEILING:
			if (cli_parse_double(optarg, &o->ceiling) || !(o->ceiling > 0))
				return cli_usage_err("bad ceiling '%s'", optarg);
			o->ceiling *= 1e9;
			break;
		case 'd':
			o->device_set = true;
			if (!strcmp(optarg, "host")) {
				o->device = P2PIO_DEVICE_HOST;
			} else if (cli_parse_u64(optarg, &v) || v > 1024) {
				return cli_usage_err("bad device '%s'", optarg);
			} else {
				o->device = (int)v;
			}
			break;
		case OPT_PATH:
			if (!strcmp(optarg, "auto"))
				o->path = P2PIO_PATH_AUTO;
			else if (!strcmp(optarg, "p2p"))
				o->path = P2PIO_PATH_P2P;
			else if (!strcmp(optarg, "bounce"))
				o->path = P2PIO_PATH_BOUNCE;
			else if (!strcmp(optarg, "posix"))
				o->path = P2PIO_PATH_POSIX;
			else
				return cli_usage_err("unknown path '%s'", optarg);
			break;
		case OPT_MISS_COST: o->miss_cost = true; break;
		case OPT_EAGER_UNMAP: o->eager_unmap = true; break;
		case OPT_RUN_AHEAD: o->run_ahead = true; break;
		case OPT_POLL: o->poll = true; break;
		case OPT_NO_POLL: o->poll = false; break;
		case OPT_BOUNCE_ASYNC: o->bounce_async = true; break;
		case OPT_THREADS:
			if (cli_parse_u64(optarg, &v) || !v || v > 64)
				return cli_usage_err("bad thread count '%s'", optarg);
			o->threads = (uint32_t)v;
			break;
		case OPT_QUEUE_DEPTH:
			if (cli_parse_u64(optarg, &v) || !v || v > 1024)
				return cli_usage_err("bad queue depth '%s'", optarg);
			o->queue_depth = (uint32_t)v;
			break;
		case OPT_KEEP_CACHE: o->keep_cache = true; break;
		case OPT_NO_VERIFY: o->no_verify = true; break;
		case OPT_JSON: o->json = true; break;
		case OPT_CHUNK:
			if (cli_parse_size(optarg, &o->chunk) || !o->chunk)
				return cli_usage_err("bad chunk size '%s'", optarg);
			break;
		case OPT_READ_PIECE:
			if (cli_parse_size(optarg, &o->read_piece) || !o->read_piece ||
			    o->read_piece > (1ull << 30))
				return cli_usage_err("bad read piece '%s'", optarg);
			break;
		case OPT_READ_PIECES:
			if (cli_parse_u64(optarg, &v) || !v || v > 1024)
				return cli_usage_err("bad read piece count '%s'", optarg);
			o->read_pieces = (uint32_t)v;
			break;
		case 'h': run_help(); exit(CLI_EXIT_OK);
		default: return cli_usage_err("unknown option");
		}
	}
	if (optind != argc - 1)
		return cli_usage_err("give one model file");
	o->model = argv[optind];
	if (!o->trace)
		return cli_usage_err("--trace is required");
	if (o->budget && o->fraction > 0)
		return cli_usage_err("give --budget or --fraction, not both");
	if (o->accuracy_set && !o->prefetch_next)
		return cli_usage_err("--accuracy is the --prefetch-next predictor's");
	if (o->policy && !strcmp(o->policy, "oracle"))
		return cli_usage_err("the oracle needs the future: use p2pio-moe replay for it");
	return 0;
}

static void stream_sync(struct run *r)
{
	if (r->stream)
		r->cu.StreamSynchronize(r->stream);
}

/* Queue the check of every slice of (layer, expert) at @ptr: one kernel launch. */
static int verify_expert(struct run *r, uint32_t layer, uint32_t expert, uint64_t ptr)
{
	struct p2pio_expert_slice s[RUN_MAX_SLICES];
	struct p2pio_model_tensor t[RUN_MAX_SLICES];
	void *host = r->stream ? NULL : p2pio_experts_host(r->x, layer, expert);
	int n, i;

	n = p2pio_experts_slices(r->x, layer, expert, s, RUN_MAX_SLICES);
	if (n < 0 || n > RUN_MAX_SLICES)
		return n < 0 ? n : -E2BIG;
	for (i = 0; i < n; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].name = s[i].name;
		t[i].addr = ptr + s[i].offset;
		t[i].host = host ? (char *)host + s[i].offset : NULL;
		t[i].size = s[i].size;
		t[i].file_offset = s[i].file_offset;
		r->verified_bytes += s[i].size;
	}
	return p2pio_verifier_check(r->v, t, (uint32_t)n, r->stream, 0);
}

/*
 * An engine learns which experts layer l needs from the router of layer l, on the GPU,
 * after the layers before it: it cannot require them before its stream gets there. The
 * trace names them in advance, so without this wait the decode would queue tokens ahead
 * of the stream, as far as the cache's budget lets it, and overlap loads that no engine
 * could overlap (and leave the policy to evict among fewer experts: those tokens' own are
 * in use). The wait yields its CPU: on zram the CPUs are what reads.
 */
static void route_wait(struct run *r)
{
	if (!r->stream || r->o.run_ahead)
		return;
	while (r->cu.StreamQuery(r->stream) == BENCH_CU_NOT_READY)
		sched_yield();
}

/* splitmix64: the predictor's draws, a function of (token, layer, rank) alone. */
static uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static bool in_ids(const uint32_t *ids, int n, uint32_t e)
{
	int i;

	for (i = 0; i < n; i++)
		if (ids[i] == e)
			return true;
	return false;
}

/*
 * --prefetch-next: hint the next layer's experts while this one's are loading and in use,
 * as an engine would that predicts a layer's routing from the input of the layer before
 * (the next layer's router run early): here the prediction is the trace itself, so the
 * decode shows what a predictor that is always right can give, and with --accuracy F one
 * whose every guess is right with probability F (a wrong one names an expert the layer
 * does not route to, so it costs a load and saves none). Not across tokens: the next
 * token's first layer waits for this token's last, and its sampling.
 */
static int predict_next(struct run *r, uint64_t tok, uint32_t layer)
{
	const struct p2pio_expert_trace_info *ti = p2pio_expert_trace_info(r->t);
	uint32_t ids[RUN_MAX_USED], guess[RUN_MAX_USED];
	const uint16_t *cell;
	int n, i, ret;

	if (!r->o.prefetch_next || layer + 1 >= ti->nr_layers)
		return 0;
	n = p2pio_expert_trace_cell(r->t, tok, layer + 1, &cell);
	if (n < 0)
		return n;
	if (n > RUN_MAX_USED)
		return -E2BIG;
	for (i = 0; i < n; i++)
		ids[i] = guess[i] = cell[i];
	for (i = 0; i < n; i++) {
		uint64_t z = mix64((tok * ti->nr_layers + layer + 1) * RUN_MAX_USED + (uint64_t)i);
		uint32_t e, k;

		if ((double)(z >> 11) * 0x1.0p-53 < r->o.accuracy)
			continue;
		/*
		 * A wrong guess: the first expert from a random start that is neither routed
		 * to nor guessed already (none where the layer has no other: the guess stays).
		 */
		e = (uint32_t)(mix64(z) % ti->nr_experts);
		for (k = 0; k < ti->nr_experts && (in_ids(ids, n, e) || in_ids(guess, n, e)); k++)
			e = (e + 1) % ti->nr_experts;
		if (k < ti->nr_experts)
			guess[i] = e;
	}
	ret = p2pio_experts_prefetch(r->x, layer + 1, guess, (uint32_t)n);
	return ret < 0 ? ret : 0;
}

/* Decode tokens [@from, @to) of the trace. */
static int decode(struct run *r, uint64_t from, uint64_t to)
{
	const struct p2pio_expert_trace_info *ti = p2pio_expert_trace_info(r->t);
	uint32_t ids[RUN_MAX_USED];
	uint64_t ptr[RUN_MAX_USED], tok;
	const uint16_t *cell;
	uint32_t l, i;
	int n, ret;

	for (tok = from; tok < to; tok++) {
		p2pio_experts_token_begin(r->x);
		for (l = 0; l < ti->nr_layers; l++) {
			n = p2pio_expert_trace_cell(r->t, tok, l, &cell);
			if (n < 0)
				return n;
			if (n > RUN_MAX_USED)
				return -E2BIG;
			for (i = 0; i < (uint32_t)n; i++)
				ids[i] = cell[i];
			route_wait(r);
			ret = p2pio_experts_require(r->x, l, ids, (uint32_t)n, r->stream, ptr);
			if (ret) {
				cli_err("token %" PRIu64 " layer %u: %s", tok, l, p2pio_strerror(ret));
				return ret;
			}
			for (i = 0; !r->o.no_verify && i < (uint32_t)n; i++) {
				ret = verify_expert(r, l, ids[i], ptr[i]);
				if (ret)
					return ret;
			}
			if (r->o.compute_ns)
				p2pio_verifier_check(r->v, NULL, 0, r->stream, r->o.compute_ns);
			ret = p2pio_experts_release(r->x, l, ids, (uint32_t)n, r->stream);
			if (ret)
				return ret;
			ret = predict_next(r, tok, l);
			if (ret)
				return ret;
		}
		ret = p2pio_experts_token_end(r->x);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * What the cache's path reads at one good shape, for comparison with the ceiling (it is
 * not one: the decode read faster than this): expert-sized reads of the model (its expert
 * region, sequentially, as many as PATH_BYTES allow), PATH_DEPTH in flight, on the same
 * context and path, into target memory.
 */
static int measure_path(struct run *r, double *bps)
{
	uint64_t len = r->info.expert_data, start = r->minfo.data_offset, end = r->minfo.file_size;
	uint64_t off, total = 0, t0, ring = (uint64_t)PATH_DEPTH * len;
	enum p2pio_mem mem = p2pio_ctx_device(r->ctx) == P2PIO_DEVICE_HOST ? P2PIO_MEM_HOST
									  : P2PIO_MEM_CUDA;
	struct p2pio_cqe cqe[PATH_DEPTH];
	struct p2pio_queue *q = NULL;
	struct p2pio_buf *buf = NULL;
	unsigned int inflight = 0, slot = 0;
	int ret, n, i;

	if (!len)
		return -EINVAL;
	if (end - start > PATH_BYTES)
		end = start + PATH_BYTES;
	ret = p2pio_buf_alloc(r->ctx, mem, ring, &buf, NULL);
	ret = ret ?: p2pio_queue_create(r->ctx, &q);
	if (ret)
		goto out;
	if (!r->o.keep_cache)
		cli_drop_cache(r->o.model);
	t0 = now_ns();
	for (off = start; (off + len <= end || inflight) && !ret;) {
		while (off + len <= end && inflight < PATH_DEPTH) {
			struct p2pio_req req = {
				.file = p2pio_model_file(r->m),
				.file_offset = off,
				.length = len,
				.buf = buf,
				.buf_offset = (uint64_t)(slot++ % PATH_DEPTH) * len,
			};

			n = p2pio_submit(q, &req, 1);
			if (n < 0) {
				ret = n;
				break;
			}
			inflight++;
			off += len;
		}
		if (!inflight)
			break;
		n = p2pio_complete(q, cqe, PATH_DEPTH, 1, -1);
		if (n < 0) {
			ret = n;
			break;
		}
		for (i = 0; i < n; i++) {
			inflight--;
			if (cqe[i].res < 0)
				ret = cqe[i].res;
			total += cqe[i].bytes;
		}
	}
	*bps = (double)total / ((double)(now_ns() - t0) * 1e-9);
out:
	p2pio_queue_destroy(q);
	p2pio_buf_free(buf);
	return ret;
}

/* The file ranges of @k experts' slices: what a batch of their misses reads. */
static size_t batch_ranges(struct run *r, uint32_t layer, const uint32_t *ids, uint32_t k,
			   struct bench_range *out, size_t max)
{
	struct p2pio_expert_slice sl[RUN_MAX_SLICES];
	size_t n = 0;
	uint32_t i;
	int ns, j;

	for (i = 0; i < k; i++) {
		ns = p2pio_experts_slices(r->x, layer, ids[i], sl, RUN_MAX_SLICES);
		for (j = 0; j < ns && j < RUN_MAX_SLICES && n < max; j++)
			out[n++] = (struct bench_range){ sl[j].file_offset, sl[j].size };
	}
	return n;
}

/* "16 threads x 512K", "1 thread x whole ranges": the floor's shape. */
static void floor_shape(const struct bench_burst *fl, char *buf, size_t len)
{
	char piece[32] = "whole ranges";

	if (fl->piece)
		bench_size_str(fl->piece, piece, sizeof(piece));
	snprintf(buf, len, "%u thread%s x %s", fl->threads, fl->threads == 1 ? "" : "s", piece);
}

/* "  floor shape k=1: 16 threads x 512K (O_DIRECT; ...)": the best shape of a floor. */
static void shape_line(FILE *out, const char *what, uint32_t k, const struct bench_burst *fl,
		       int err)
{
	char shape[64];

	if (err) {
		fprintf(out, "  %s shape k=%u: none (%s)\n", what, k, fl->note);
		return;
	}
	floor_shape(fl, shape, sizeof(shape));
	fprintf(out, "  %s shape k=%u: %s (%s%s; %u run%s, %.2f MiB; the best of %d tries at "
		"each of %u shape%s)\n", what, k, shape, fl->buffered ? fl->note : "O_DIRECT",
		fl->gpu ? ", each read copied on its thread's stream" : "", fl->runs,
		fl->runs == 1 ? "" : "s", (double)fl->bytes / 1048576.0, BENCH_BURST_REPS,
		fl->shapes, fl->shapes == 1 ? "" : "s");
}

#define MISS_KS 4
#define MISS_BATCHES 10u	/* cold batches timed per k */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The median of @n sorted times in ns, in us. */
static double median_us(const uint64_t *v, uint32_t n)
{
	return (n % 2 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2) * 1e-3;
}

/*
 * Batches of @k cold misses: time until the stream has them, against bytes / ceiling, and
 * where it goes (means per batch, from the start of require): every read submitted
 * (admission, unmapping victims, backing with memory: "map" and "unmap"; on a GPU "map"
 * also counts the homes mapped after the reads were submitted, while they run), the first
 * read's bytes in place, the last load complete (its completion word stored: on BOUNCE the last
 * copy is done), the stream released (require, then the stream synchronised); and, off
 * that path, the victims' deferred unmapping at release ("late"). Each batch's ranges
 * leave the page cache first (unless --keep-cache), so that a buffered path's misses are
 * cold too.
 *
 * Then the floor (issue 12's reference for the 150 us a batch may cost over its bytes):
 * the fastest plain reads of the last wholly cold batch's very ranges, in the same cache
 * state (bench_burst_floor()). bytes / the steady ceiling is no fair reference for a
 * burst of a few MB, which cannot reach steady bandwidth even with plain O_DIRECT.
 * Into a GPU also "+copy": the same sweep with each read copied into the GPU as it lands
 * (on its thread's own stream), what a plain read-then-copy loop takes at its best shape.
 * A peer, not a floor: on the H200 machine it took 0.3-0.4 ms more than the reads alone
 * for one 12 MiB expert (reads and copies share the host's memory), and the cache beat
 * it for batches of 4 and 8 (moe.md, "Eighth round").
 */
static void miss_cost(struct run *r, double ceiling, FILE *out)
{
	static const uint32_t ks[MISS_KS] = { 1, 2, 4, 8 };
	struct p2pio_experts_io a = { .size = sizeof(a) }, b = { .size = sizeof(b) };
	struct bench_range batch[8 * RUN_MAX_SLICES], cold[8 * RUN_MAX_SLICES];
	struct bench_burst fl[MISS_KS], cfl[MISS_KS];	/* the floors: reads; with copies */
	int fl_err[MISS_KS], cfl_err[MISS_KS];
	uint64_t rel[MISS_KS][MISS_BATCHES];	/* each counted batch's released time */
	uint32_t n_rel[MISS_KS] = { 0 };	/* counted batches: a row for ks[i] if any */
	uint32_t ids[8], layer = 0, next = 0, i, tries, k, done, warm;
	uint64_t t0, dt, ns, bytes, reads, submit, first, last, map, unmap, late, taken, landed;
	double n, us, floor_us;
	size_t ki, nbatch, ncold;
	int fd = open(r->o.model, O_RDONLY | O_CLOEXEC), open_err = fd < 0 ? -errno : 0;

	p2pio_experts_stats(r->x, NULL, &a, false);
	fprintf(out, "  reads of %.0f KiB; times in us per batch, from the start of require:\n",
		(double)a.read_piece / 1024.0);
	fprintf(out, "  floor: the fastest plain reads of a cold batch's ranges (shapes below); "
		"over floor = released - floor\n");
	fprintf(out, "  taken, landed: its last read handed to an engine thread, and read "
		"(before any copy; - where the path does not say)\n");
	if (r->stream)
		fprintf(out, "  +copy: the same plain reads, each copied into the GPU as it lands, "
			"at their best shape (below); over +copy = released - +copy\n");
	fprintf(out, "  %-3s %8s %6s %8s %7s %7s %8s %8s %9s %9s %9s %7s %8s %10s %8s %8s %8s "
		"%10s\n", "k", "MiB", "reads", "submit", "(map", "unmap)", "first", "last",
		"released", "bytes/ceil", "overhead", "late", "floor", "over floor", "taken",
		"landed", "+copy", "over +copy");
	for (ki = 0; ki < MISS_KS; ki++) {
		k = ks[ki];
		if (k > r->info.experts || k > r->info.capacity)
			break;
		ns = bytes = reads = submit = first = last = map = unmap = late = taken = landed = 0;
		ncold = 0;
		/*
		 * Ten wholly cold batches, at most thirty tries: a batch of which an expert was
		 * still resident (a hit, left by the decode) is timed but not counted, as its
		 * time is not a cold batch's (it used to dilute every mean by its share).
		 */
		for (tries = 0, done = 0, warm = 0; done < MISS_BATCHES && tries < 3 * MISS_BATCHES;
		     tries++) {
			/* Walk the experts in order: each batch is ones not used for longest. */
			if (next + k > r->info.experts) {
				next = 0;
				layer = (layer + 1) % r->info.layers;
			}
			for (i = 0; i < k; i++)
				ids[i] = next++;
			nbatch = batch_ranges(r, layer, ids, k, batch,
					      sizeof(batch) / sizeof(batch[0]));
			if (fd >= 0 && !r->o.keep_cache)
				bench_evict_ranges(fd, batch, nbatch);
			p2pio_experts_stats(r->x, NULL, &a, false);
			t0 = now_ns();
			if (p2pio_experts_require(r->x, layer, ids, k, r->stream, (uint64_t[8]){ 0 }))
				continue;
			stream_sync(r);
			dt = now_ns() - t0;
			p2pio_experts_release(r->x, layer, ids, k, r->stream);
			stream_sync(r);
			p2pio_experts_stats(r->x, NULL, &b, false);
			if ((b.loads - b.prefetches) - (a.loads - a.prefetches) != k ||
			    b.batches - a.batches != 1) {
				warm++;
				continue;
			}
			/* All k loaded: the floor reads what this batch read. */
			memcpy(cold, batch, nbatch * sizeof(batch[0]));
			ncold = nbatch;
			rel[ki][done++] = dt;
			ns += dt;
			bytes += b.bytes - a.bytes;
			reads += b.reads - a.reads;
			submit += b.batch_submit_ns - a.batch_submit_ns;
			first += b.batch_first_ns - a.batch_first_ns;
			last += b.batch_done_ns - a.batch_done_ns;
			map += b.map_ns - a.map_ns;
			unmap += b.unmap_ns - a.unmap_ns;
			late += b.late_unmap_ns - a.late_unmap_ns;
			taken += b.batch_taken_ns - a.batch_taken_ns;
			landed += b.batch_landed_ns - a.batch_landed_ns;
		}
		if (!done)
			continue;
		memset(&fl[ki], 0, sizeof(fl[ki]));
		memset(&cfl[ki], 0, sizeof(cfl[ki]));
		cfl_err[ki] = -ENODEV;
		if (fd < 0) {
			fl_err[ki] = open_err;
			snprintf(fl[ki].note, sizeof(fl[ki].note), "cannot open %s: %s", r->o.model,
				 strerror(-open_err));
		} else if (!ncold) {
			fl_err[ki] = -ENODATA;
			snprintf(fl[ki].note, sizeof(fl[ki].note), "no batch loaded all %u", k);
		} else {
			struct bench_burst_params bp = {
				.fd = fd,
				.ranges = cold,
				.nr_ranges = ncold,
				.cold = !r->o.keep_cache,
			};

			fl_err[ki] = bench_burst_floor(&bp, &fl[ki]);
			if (r->stream) {
				bp.cu = &r->cu;
				cfl_err[ki] = bench_burst_floor(&bp, &cfl[ki]);
			}
		}
		n_rel[ki] = done;
		n = (double)done;
		us = (double)bytes / n / ceiling * 1e6;
		fprintf(out, "  %-3u %8.2f %6.1f %8.1f %7.1f %7.1f %8.1f %8.1f %9.1f %9.1f %+9.1f "
			"%7.1f",
			k, (double)bytes / n / 1048576.0, (double)reads / n,
			(double)submit / n * 1e-3, (double)map / n * 1e-3, (double)unmap / n * 1e-3,
			(double)first / n * 1e-3, (double)last / n * 1e-3, (double)ns / n * 1e-3,
			us, (double)ns / n * 1e-3 - us, (double)late / n * 1e-3);
		floor_us = fl[ki].seconds * 1e6;
		if (fl_err[ki])
			fprintf(out, " %8s %10s", "-", "-");
		else
			fprintf(out, " %8.1f %+10.1f", floor_us, (double)ns / n * 1e-3 - floor_us);
		if (taken && landed)
			fprintf(out, " %8.1f %8.1f", (double)taken / n * 1e-3,
				(double)landed / n * 1e-3);
		else
			fprintf(out, " %8s %8s", "-", "-");
		if (cfl_err[ki])
			fprintf(out, " %8s %10s\n", "-", "-");
		else
			fprintf(out, " %8.1f %+10.1f\n", cfl[ki].seconds * 1e6,
				(double)ns / n * 1e-3 - cfl[ki].seconds * 1e6);
		if (warm)
			fprintf(out, "      (%u of %u batches not wholly cold, left out of the means)\n",
				warm, warm + done);
	}
	/* After the table, so that its rows stay together: one line per k. */
	for (ki = 0; ki < MISS_KS; ki++) {
		if (!n_rel[ki])
			continue;
		/*
		 * The spread of the batches behind each mean: the first batch after the decode
		 * ran 100-400 us slower than the rest in session 7, and a median shows what a
		 * typical miss costs where one slow batch moves the mean.
		 */
		qsort(rel[ki], n_rel[ki], sizeof(rel[ki][0]), cmp_u64);
		fprintf(out, "  released k=%u: median %.1f us, fastest %.1f, slowest %.1f (%u "
			"batch%s)\n", ks[ki], median_us(rel[ki], n_rel[ki]), rel[ki][0] * 1e-3,
			rel[ki][n_rel[ki] - 1] * 1e-3, n_rel[ki], n_rel[ki] == 1 ? "" : "es");
	}
	for (ki = 0; ki < MISS_KS; ki++)
		if (n_rel[ki])
			shape_line(out, "floor", ks[ki], &fl[ki], fl_err[ki]);
	for (ki = 0; r->stream && ki < MISS_KS; ki++)
		if (n_rel[ki])
			shape_line(out, "+copy", ks[ki], &cfl[ki], cfl_err[ki]);
	if (fd >= 0)
		close(fd);
}

/* The most experts one layer of one token to decode requires at once. */
static uint32_t widest_cell(const struct run *r)
{
	const struct p2pio_expert_trace_info *ti = p2pio_expert_trace_info(r->t);
	uint64_t tok, tokens = p2pio_expert_trace_tokens(r->t);
	const uint16_t *cell;
	uint32_t l, widest = 0;
	int n;

	if (tokens > r->o.tokens)
		tokens = r->o.tokens;
	for (tok = 0; tok < tokens; tok++)
		for (l = 0; l < ti->nr_layers; l++) {
			n = p2pio_expert_trace_cell(r->t, tok, l, &cell);
			if (n > 0 && (uint32_t)n > widest)
				widest = (uint32_t)n;
		}
	return widest;
}

static int run_open(struct run *r)
{
	struct p2pio_experts_opts xo;
	struct p2pio_ctx_opts co;
	struct p2pio_model_opts mo = { 0 };
	struct p2pio_error err = { 0 };
	const struct p2pio_expert_trace_info *ti;
	uint64_t all;
	uint32_t need;
	int ret;

	ret = p2pio_expert_trace_load(r->o.trace, &r->t, &err);
	if (ret) {
		cli_err_p2pio(r->o.trace, ret, &err);
		return ret;
	}
	p2pio_ctx_opts_init(&co);
	if (r->o.device_set)
		co.device = r->o.device;
	co.path = r->o.path;
	co.chunk_size = r->o.chunk;
	co.threads = r->o.threads;
	co.queue_depth = r->o.queue_depth;
	if (!co.threads) {
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

		/*
		 * The CPUs less two: this thread and the cache's reaper need one each, and where
		 * the CPUs are the storage (zram) a thread per CPU starved them: 14 threads
		 * beat 16 on the H200's 16 CPUs (Documentation/moe.md).
		 */
		co.threads = ncpu - 2 < 4 ? 4 : ncpu - 2 > 16 ? 16 : (uint32_t)(ncpu - 2);
	}
	r->threads = co.threads;
	co.flags |= r->o.poll ? P2PIO_CTX_POLL : 0;
	co.flags |= r->o.bounce_async ? P2PIO_CTX_BOUNCE_ASYNC : 0;
	ret = p2pio_ctx_create(&co, &r->ctx, &err);
	if (ret) {
		cli_err_p2pio("context", ret, &err);
		return ret;
	}
	/* What the engine resolved (its default depth where none was given). */
	if (p2pio_ctx_get_opts(r->ctx, &co) == 0)
		r->queue_depth = co.queue_depth;
	/* Cold: the experts come from storage, and AUTO does not take POSIX for a cached file. */
	if (!r->o.keep_cache)
		cli_drop_cache(r->o.model);
	ret = p2pio_model_open(r->ctx, r->o.model, &mo, &r->m, &err);
	if (ret) {
		cli_err_p2pio(r->o.model, ret, &err);
		return ret;
	}
	p2pio_model_info(r->m, &r->minfo);
	if (!r->minfo.has_seed && !r->o.no_verify) {
		cli_err("%s has no pattern seed (not from p2pio-mkmodel): use --no-verify",
			r->o.model);
		return -EINVAL;
	}
	/* The shape first, with every expert allowed: nothing is loaded for it. */
	ret = p2pio_experts_open(r->m, NULL, &r->x, &err);
	if (ret) {
		cli_err_p2pio(r->o.model, ret, &err);
		return ret;
	}
	p2pio_experts_info(r->x, &r->info);
	p2pio_experts_close(r->x);
	r->x = NULL;
	ti = p2pio_expert_trace_info(r->t);
	if (ti->nr_layers != r->info.layers || ti->nr_experts > r->info.experts) {
		cli_err("the trace (%u layers, %u experts) does not fit the model (%u layers, %u "
			"experts)", ti->nr_layers, ti->nr_experts, r->info.layers, r->info.experts);
		return -EINVAL;
	}
	p2pio_experts_opts_init(&xo);
	all = (uint64_t)r->info.layers * r->info.experts;
	if (r->o.fraction > 0)
		xo.budget = r->info.dense_bytes +
			    (uint64_t)((double)all * r->o.fraction + 0.5) * r->info.expert_bytes;
	else
		xo.budget = r->o.budget;
	xo.policy = r->o.policy;
	xo.flags = (r->o.prefetch_prev ? P2PIO_EXPERTS_PREFETCH_PREV : 0) |
		   (r->o.prefetch_learned ? P2PIO_EXPERTS_PREFETCH_LEARNED : 0);
	xo.flags |= r->o.eager_unmap ? P2PIO_EXPERTS_EAGER_UNMAP : 0;
	xo.read_piece = r->o.read_piece;
	xo.read_pieces = r->o.read_pieces;
	ret = p2pio_experts_open(r->m, &xo, &r->x, &err);
	if (ret) {
		cli_err_p2pio("expert cache", ret, &err);
		return ret;
	}
	p2pio_experts_info(r->x, &r->info);
	/*
	 * The cache only checks that the budget holds one expert; a layer's experts of a token
	 * are resident at once, so with fewer slots than the trace's largest cell the first
	 * require failed with a bare "token 0 layer 0: No space left on device". Say what is
	 * missing instead.
	 */
	need = widest_cell(r);
	if (r->info.capacity < need) {
		cli_err("a budget of %" PRIu64 " bytes holds the dense part (%" PRIu64 ") and %"
			PRIu64 " experts, but the trace needs %u of a layer at once: give at least %"
			PRIu64, r->info.budget, r->info.dense_bytes, r->info.capacity, need,
			r->info.dense_bytes + (uint64_t)need * r->info.expert_bytes);
		return -ENOSPC;
	}
	ret = p2pio_verifier_open(r->ctx, r->minfo.pattern_seed, &r->v, &err);
	if (ret) {
		cli_err_p2pio("verifier", ret, &err);
		return ret;
	}
	if (p2pio_ctx_device(r->ctx) != P2PIO_DEVICE_HOST) {
		if (!bench_cuda_init(&r->cu, p2pio_ctx_device(r->ctx))) {
			cli_err("%s", r->cu.why);
			return -ENODEV;
		}
		if (r->cu.StreamCreate(&r->stream, 1 /* CU_STREAM_NON_BLOCKING */)) {
			cli_err("cuStreamCreate failed");
			return -ENODEV;
		}
	}
	return 0;
}

static void run_close(struct run *r)
{
	if (r->stream) {
		r->cu.StreamSynchronize(r->stream);
		r->cu.StreamDestroy(r->stream);
	}
	p2pio_verifier_close(r->v);
	p2pio_experts_close(r->x);
	p2pio_model_close(r->m);
	p2pio_ctx_destroy(r->ctx);
	p2pio_expert_trace_free(r->t);
}

static int moe_run(int argc, char **argv)
{
	struct p2pio_expert_stats st = { .size = sizeof(st) };
	struct p2pio_experts_io io = { .size = sizeof(io) };
	struct p2pio_path_info pi = { .size = sizeof(pi) };
	struct p2pio_verify_result vr = { 0 };
	struct run r;
	uint64_t tokens, warm, t0, wall, all;
	double tps, ceiling, ceiling_gbps, missed, bound, hit, path_rate = 0;
	double batch_loads = 0, batch_us = 0, batch_bytes_us = 0, beyond_us = 0, wait_us = NAN;
	bool short_decode;		/* under MOE_STEADY_S: no steady ratio */
	char ceiling_why[256] = "given";
	struct bench_ceiling_params cp;
	struct bench_ceiling_best best;
	char h1[CLI_HUMAN_LEN], h2[CLI_HUMAN_LEN], h3[CLI_HUMAN_LEN];
	char what[64];
	FILE *out = stdout;
	int ret;

	memset(&r, 0, sizeof(r));
	ret = run_parse(argc, argv, &r.o);
	if (ret)
		return ret;
	ret = run_open(&r);
	if (ret)
		goto out_fail;
	tokens = p2pio_expert_trace_tokens(r.t);
	if (tokens > r.o.tokens)
		tokens = r.o.tokens;
	warm = r.o.warmup_set ? r.o.warmup : tokens / 10;
	if (warm >= tokens)
		warm = 0;
	ret = measure_path(&r, &path_rate);
	if (ret) {
		cli_err("measuring the path's reads: %s", p2pio_strerror(ret));
		goto out_fail;
	}
	cp = (struct bench_ceiling_params){
		.path = r.o.model,
		.file_size = r.minfo.file_size,
		.cold = !r.o.keep_cache,
		.cu = r.stream ? &r.cu : NULL,
		.duration = 1,
	};
	ceiling = r.o.ceiling;
	if (!(ceiling > 0)) {
		ret = bench_ceiling(&cp, &ceiling_gbps, ceiling_why, sizeof(ceiling_why), &best);
		if (ret) {
			cli_err("measuring the ceiling: %s", p2pio_strerror(ret));
			goto out_fail;
		}
		ceiling = ceiling_gbps * 1e9;
	}
	p2pio_path_info(p2pio_model_file(r.m), &pi);
	/* Warm-up, then the measurement, each ending with the stream drained. */
	ret = decode(&r, 0, warm);
	stream_sync(&r);
	if (ret)
		goto out_fail;
	p2pio_experts_stats(r.x, NULL, &io, true);
	{
		struct p2pio_expert_stats s0 = { .size = sizeof(s0) };

		p2pio_experts_stats(r.x, &s0, NULL, false);
		t0 = now_ns();
		ret = decode(&r, warm, tokens);
		stream_sync(&r);
		wall = now_ns() - t0;
		if (ret)
			goto out_fail;
		p2pio_experts_stats(r.x, &st, &io, false);
		st.accesses -= s0.accesses;
		st.hits -= s0.hits;
		st.misses -= s0.misses;
		st.late -= s0.late;
		st.prefetches -= s0.prefetches;
		st.prefetch_used -= s0.prefetch_used;
		st.evictions -= s0.evictions;
		st.missed_layers -= s0.missed_layers;
	}
	if (!r.o.no_verify) {
		ret = p2pio_verifier_result(r.v, &vr, false);
		if (ret)
			goto out_fail;
	}
	/* The best storage shape again: a device faster now than before is no bound's excuse. */
	if (!(r.o.ceiling > 0)) {
		ret = bench_ceiling_again(&cp, &best, &ceiling_gbps, ceiling_why,
					  sizeof(ceiling_why));
		if (ret) {
			cli_err("measuring the ceiling again: %s", p2pio_strerror(ret));
			goto out_fail;
		}
		ceiling = ceiling_gbps * 1e9;
	}
	tokens -= warm;
	all = (uint64_t)r.info.layers * r.info.experts;
	tps = tokens ? (double)tokens / ((double)wall * 1e-9) : 0;
	short_decode = (double)wall * 1e-9 < MOE_STEADY_S;
	missed = tokens ? (double)io.bytes / (double)tokens : 0;
	bound = missed > 0 ? ceiling / missed : 0;
	/*
	 * The miss batches of the decode itself (the demand loads of each require): how long
	 * each took from its require to its last load done, against its bytes / the ceiling.
	 * In step that difference is what every layer with a miss waits beyond the bytes
	 * (issue 12's overhead per miss batch, in the decode rather than --miss-cost's cold
	 * batches); run ahead, batches overlap and wait for each other's reads.
	 */
	if (io.batches && io.loads && ceiling > 0) {
		batch_loads = (double)(io.loads - io.prefetches) / (double)io.batches;
		batch_us = (double)io.batch_done_ns * 1e-3 / (double)io.batches;
		batch_bytes_us = batch_loads * ((double)io.bytes / (double)io.loads) / ceiling * 1e6;
	}
	/*
	 * The whole decode's time beyond its bytes / the ceiling, per layer with a miss: the
	 * one constant of the replay's model of a decode in step (p2pio-moe replay
	 * --miss-overhead), everything a token spends besides reading lumped on its waits.
	 */
	if (tokens && st.missed_layers && ceiling > 0) {
		beyond_us = (double)wall * 1e-3 / (double)tokens - missed / ceiling * 1e6;
		wait_us = beyond_us / ((double)st.missed_layers / (double)tokens);
	}
	hit = st.accesses ? (double)st.hits / (double)st.accesses : 0;
	if (r.o.json) {
		fprintf(out, "{\"model\":");
		cli_json_str(out, r.o.model);
		fprintf(out, ",\"trace\":");
		cli_json_str(out, r.o.trace);
		fprintf(out, ",\"threads\":%u,\"queue_depth\":%u", r.threads, r.queue_depth);
		fprintf(out, ",\"run_ahead\":%s", r.stream && r.o.run_ahead ? "true" : "false");
		fprintf(out, ",\"prefetch_next\":%s,\"accuracy\":", r.o.prefetch_next ? "true" : "false");
		cli_json_double(out, r.o.accuracy);
		fprintf(out, ",\"prefetch_learned\":%s", r.o.prefetch_learned ? "true" : "false");
		fprintf(out, ",\"path\":\"%s\",\"policy\":\"%s\",\"prefetch_prev\":%s,"
			"\"budget\":%" PRIu64 ",\"dense_bytes\":%" PRIu64 ",\"expert_bytes\":%" PRIu64
			",\"capacity\":%" PRIu64 ",\"experts\":%" PRIu64 ",\"resident_fraction\":",
			p2pio_path_name(pi.path), r.o.policy ? r.o.policy : P2PIO_EXPERTS_DEFAULT_POLICY,
			r.o.prefetch_prev ? "true" : "false", r.info.budget, r.info.dense_bytes,
			r.info.expert_bytes, r.info.capacity, all);
		cli_json_double(out, (double)r.info.capacity / (double)all);
		fprintf(out, ",\"warmup_tokens\":%" PRIu64 ",\"tokens\":%" PRIu64 ",\"wall_s\":",
			warm, tokens);
		cli_json_double(out, (double)wall * 1e-9);
		fprintf(out, ",\"tokens_per_s\":");
		cli_json_double(out, tps);
		fprintf(out, ",\"accesses\":%" PRIu64 ",\"hits\":%" PRIu64 ",\"misses\":%" PRIu64
			",\"late\":%" PRIu64 ",\"prefetches\":%" PRIu64 ",\"prefetch_used\":%" PRIu64
			",\"missed_layers\":%" PRIu64 ",\"hit_rate\":", st.accesses, st.hits, st.misses,
			st.late, st.prefetches, st.prefetch_used, st.missed_layers);
		cli_json_double(out, hit);
		fprintf(out, ",\"bytes_read\":%" PRIu64 ",\"missed_bytes_per_token\":", io.bytes);
		cli_json_double(out, missed);
		fprintf(out, ",\"stall_s\":");
		cli_json_double(out, (double)io.stall_ns * 1e-9);
		fprintf(out, ",\"host_wait_s\":");
		cli_json_double(out, (double)io.host_wait_ns * 1e-9);
		fprintf(out, ",\"ceiling_Bps\":");
		cli_json_double(out, ceiling);
		fprintf(out, ",\"ceiling_measured\":%s,\"ceiling_from\":",
			r.o.ceiling > 0 ? "false" : "true");
		cli_json_str(out, ceiling_why);
		fprintf(out, ",\"path_Bps\":");
		cli_json_double(out, path_rate);
		fprintf(out, ",\"bound_tokens_per_s\":");
		cli_json_double(out, bound);
		fprintf(out, ",\"of_bound\":");
		cli_json_double(out, bound > 0 ? tps / bound : 0);
		fprintf(out, ",\"short_decode\":%s", short_decode ? "true" : "false");
		fprintf(out, ",\"reads_busy_s\":");
		cli_json_double(out, (double)io.busy_ns * 1e-9);
		fprintf(out, ",\"batches\":%" PRIu64 ",\"batch_loads\":", io.batches);
		cli_json_double(out, batch_loads);
		fprintf(out, ",\"batch_done_us\":");
		cli_json_double(out, batch_us);
		fprintf(out, ",\"batch_bytes_us\":");
		cli_json_double(out, batch_bytes_us);
		fprintf(out, ",\"wait_per_missed_layer_us\":");
		cli_json_double(out, wait_us);
		fprintf(out, ",\"verified_bytes\":%" PRIu64 ",\"mismatches\":%" PRIu64 "}\n",
			vr.bytes, vr.mismatches);
	} else {
		fprintf(out, "model     %s: %u layers x %u experts (%u used), expert %s, dense %s\n",
			r.o.model, r.info.layers, r.info.experts, r.info.experts_used,
			cli_human_bytes(r.info.expert_data, h1), cli_human_bytes(r.info.dense_bytes, h2));
		fprintf(out, "budget    %s: dense + %" PRIu64 " experts = %.1f%% of the experts "
			"(%s each, rounded to the allocation granularity)\n",
			cli_human_bytes(r.info.budget, h1), r.info.capacity,
			100.0 * (double)r.info.capacity / (double)all,
			cli_human_bytes(r.info.expert_bytes, h3));
		fprintf(out, "path      %s (%s); policy %s%s", p2pio_path_name(pi.path), pi.why,
			r.o.policy ? r.o.policy : P2PIO_EXPERTS_DEFAULT_POLICY,
			r.o.prefetch_prev ? ", previous-token prefetch" : "");
		if (r.o.prefetch_learned)
			fprintf(out, ", learned next-layer prefetch");
		if (r.o.prefetch_next)
			fprintf(out, ", next-layer prefetch (the trace's, each guess right with "
				"probability %.2f)", r.o.accuracy);
		fprintf(out, "\n");
		fprintf(out, "engine    %u threads%s%s; %u reads in flight%s\n", r.threads,
			r.o.threads ? " (given)" : " (the CPUs less two, within 4..16)",
			r.o.poll ? ", polling before they sleep" : "", r.queue_depth,
			r.o.queue_depth ? " (given)" : " (the library's)");
		fprintf(out, "decode    %" PRIu64 " tokens after %" PRIu64 " of warm-up in %.3f s: "
			"%.2f tokens/s%s\n", tokens, warm, (double)wall * 1e-9, tps,
			!r.stream ? "" : r.o.run_ahead ? " (run ahead: layers required before "
			"the stream reaches them)" : " (in step: each layer required once the "
			"stream is done with the layers before)");
		fprintf(out, "hits      %.1f%% (%" PRIu64 " of %" PRIu64 "; %" PRIu64 " late), %.2f "
			"misses/token in %.2f of %u layers, %" PRIu64 " prefetches (%" PRIu64
			" used)\n", 100 * hit, st.hits, st.accesses, st.late,
			tokens ? (double)st.misses / (double)tokens : 0,
			tokens ? (double)st.missed_layers / (double)tokens : 0, r.info.layers,
			st.prefetches, st.prefetch_used);
		fprintf(out, "missed    %s per token (%s read)\n",
			cli_human_bytes((uint64_t)missed, h1), cli_human_bytes(io.bytes, h2));
		fprintf(out, "stall     %.3f s on the stream (%.3f ms/token), host waited %.3f s\n",
			(double)io.stall_ns * 1e-9,
			tokens ? (double)io.stall_ns * 1e-6 / (double)tokens : 0,
			(double)io.host_wait_ns * 1e-9);
		/* Where the caller's thread spends its time on memory, per call. */
		fprintf(out, "memory    %" PRIu64 " maps %.1f us, unmaps in require %.1f us, %" PRIu64
			" after the batch %.1f us (%" PRIu64 " forced)\n", io.maps,
			io.maps ? (double)io.map_ns * 1e-3 / (double)io.maps : 0,
			io.unmaps ? (double)io.unmap_ns * 1e-3 / (double)io.unmaps : 0,
			io.late_unmaps,
			io.late_unmaps ? (double)io.late_unmap_ns * 1e-3 / (double)io.late_unmaps : 0,
			io.forced_unmaps);
		/* Loads in flight: where the decode loses to the bound, idle reads or slow ones. */
		if (io.read_pieces)
			snprintf(what, sizeof(what), "about %" PRIu64 " per load", io.read_pieces);
		else
			snprintf(what, sizeof(what), "at most %s each",
				 cli_human_bytes(io.read_piece, h1));
		fprintf(out, "reads     %" PRIu64 " (%s): loads in flight %.1f%% of the decode, "
			"%.2f GB/s while any were\n", io.reads, what,
			wall ? 100.0 * (double)io.busy_ns / (double)wall : 0,
			io.busy_ns ? (double)io.bytes / (double)io.busy_ns : 0);
		if (io.batches)
			fprintf(out, "batches   %" PRIu64 " miss batches of %.2f loads: each done %.0f us "
				"after its require, its bytes / the ceiling %.0f us: %+.0f us over (%s)\n",
				io.batches, batch_loads, batch_us, batch_bytes_us,
				batch_us - batch_bytes_us,
				!r.stream ? "require waits for it" : r.o.run_ahead ?
				"run ahead: batches overlap and share the reads" :
				"in step: what each layer with a miss waits beyond its bytes");
		if (!isnan(wait_us))
			fprintf(out, "waits     %.2f of %u layers a token missed; %.0f us a token "
				"beyond its bytes / the ceiling: %.0f us per missed layer (replay "
				"--miss-overhead)\n", (double)st.missed_layers / (double)tokens,
				r.info.layers, beyond_us, wait_us);
		fprintf(out, "ceiling   %.2f GB/s (%s); the path's expert-sized reads, %d deep: "
			"%.2f GB/s\n", ceiling * 1e-9, ceiling_why, PATH_DEPTH, path_rate * 1e-9);
		if (bound > 0)
			fprintf(out, "bound     %.2f tokens/s = ceiling / missed bytes per token; "
				"achieved %.2f of it%s\n", bound, tps / bound,
				short_decode ? " (a short decode: its first reads weigh in; "
					       "decode more tokens for a steady ratio)" : "");
		else
			fprintf(out, "bound     none: no misses in the measurement\n");
		if (!r.o.no_verify)
			fprintf(out, "verify    %s checked by %s, %" PRIu64 " bytes wrong\n",
				cli_human_bytes(vr.bytes, h1), r.stream ? "GPU kernels" : "the CPU",
				vr.mismatches);
	}
	if (r.o.miss_cost && !r.o.json) {
		fprintf(out, "miss cost (ceiling %.2f GB/s):\n", ceiling * 1e-9);
		miss_cost(&r, ceiling, out);
	}
	ret = vr.mismatches ? CLI_EXIT_FAIL : CLI_EXIT_OK;
	if (vr.mismatches)
		cli_err("%" PRIu64 " bytes differ from the model (first at file offset %" PRIu64 ")",
			vr.mismatches, vr.first_mismatch);
	run_close(&r);
	return ret;

out_fail:
	run_close(&r);
	return CLI_EXIT_ERROR;
}

const struct moe_cmd moe_cmd_run = {
	.name = "run",
	.summary = "decode a trace with the real expert cache, every expert verified; tokens/s "
		   "against the bound",
	.main = moe_run,
};
