// SPDX-License-Identifier: MIT
/*
 * moe_run_opts.c - the command line of `p2pio-moe run`: its help text and its parser,
 * which checks each value and each combination before anything is opened.
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "moe_run.h"

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
	       "      --lookahead L    with --prefetch-next: hint the next L layers (1-16,\n"
	       "                       default 1), each guess right with the same --accuracy\n"
	       "      --run-ahead      require each layer's experts as soon as the trace names\n"
	       "                       them, tokens ahead of the stream (default: only once\n"
	       "                       the stream has finished the layers before, as an engine\n"
	       "                       must that reads each layer's routing back from the GPU)\n"
	       "  -n, --tokens N       decode at most N tokens of the trace\n"
	       "      --warmup N       tokens decoded before the measurement, fewer than the\n"
	       "                       tokens decoded (default: a tenth)\n"
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
	       "      --keep-wrong-hints  hinted loads its layer did not require load on (for\n"
	       "                       comparison; default: withdrawn where none of their\n"
	       "                       reads has started; P2PIO_EXPERTS_KEEP_WRONG_HINTS)\n"
	       "      --misses-in-order  misses queue behind the hints before them, and right\n"
	       "                       hints stay where they are (for comparison; default: both\n"
	       "                       read first; P2PIO_EXPERTS_MISSES_IN_ORDER)\n"
	       "      --urgent-alone   no hint starts reading while a miss is read, and misses\n"
	       "                       are cut as lone ones (P2PIO_CTX_URGENT_ALONE; default:\n"
	       "                       hints read beside misses)\n"
	       "      --miss-cost      also time batches of 1, 2, 4 and 8 cold misses against\n"
	       "                       their bytes / the ceiling, with where the time goes, and\n"
	       "                       against their floor: the fastest plain O_DIRECT reads of\n"
	       "                       a batch's own ranges (threads 1..64 x reads of each range\n"
	       "                       whole, 4M, 1M, 512K, 256K; a line per k names the best);\n"
	       "                       into a GPU also against the same reads each copied there\n"
	       "                       as it lands (+copy); with --json, the object's\n"
	       "                       miss_cost\n"
	       "      --no-verify      do not check the experts' bytes\n"
	       "      --json           one JSON object instead of the report\n"
	       "\n"
	       "Exit status: 0 success, 1 a byte was wrong, 2 bad usage, 3 an input could not be\n"
	       "read or is invalid (a trace without tokens too), or the run failed.\n",
	       cli_prog(), P2PIO_EXPERTS_DEFAULT_POLICY, RUN_PATH_DEPTH);
}

enum {
	OPT_POLICY = 256, OPT_PREFETCH_PREV, OPT_WARMUP, OPT_COMPUTE, OPT_CEILING, OPT_PATH,
	OPT_MISS_COST, OPT_NO_VERIFY, OPT_JSON, OPT_CHUNK, OPT_READ_PIECE, OPT_READ_PIECES,
	OPT_KEEP_CACHE, OPT_EAGER_UNMAP, OPT_KEEP_WRONG_HINTS, OPT_MISSES_IN_ORDER, OPT_THREADS,
	OPT_POLL, OPT_NO_POLL, OPT_BOUNCE_ASYNC, OPT_URGENT_ALONE,
	OPT_QUEUE_DEPTH, OPT_RUN_AHEAD, OPT_PREFETCH_NEXT, OPT_ACCURACY, OPT_PREFETCH_LEARNED,
	OPT_LOOKAHEAD,
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
	{ "keep-wrong-hints", no_argument, NULL, OPT_KEEP_WRONG_HINTS },
	{ "misses-in-order", no_argument, NULL, OPT_MISSES_IN_ORDER },
	{ "run-ahead", no_argument, NULL, OPT_RUN_AHEAD },
	{ "prefetch-next", no_argument, NULL, OPT_PREFETCH_NEXT },
	{ "accuracy", required_argument, NULL, OPT_ACCURACY },
	{ "lookahead", required_argument, NULL, OPT_LOOKAHEAD },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "queue-depth", required_argument, NULL, OPT_QUEUE_DEPTH },
	{ "poll", no_argument, NULL, OPT_POLL },
	{ "no-poll", no_argument, NULL, OPT_NO_POLL },
	{ "bounce-async", no_argument, NULL, OPT_BOUNCE_ASYNC },
	{ "urgent-alone", no_argument, NULL, OPT_URGENT_ALONE },
	{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "chunk", required_argument, NULL, OPT_CHUNK },
	{ "read-piece", required_argument, NULL, OPT_READ_PIECE },
	{ "read-pieces", required_argument, NULL, OPT_READ_PIECES },
	{ "keep-cache", no_argument, NULL, OPT_KEEP_CACHE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

int moe_run_parse(int argc, char **argv, struct run_opts *o)
{
	uint64_t v;
	int c;

	memset(o, 0, sizeof(*o));
	o->tokens = UINT64_MAX;
	o->accuracy = 1;
	o->lookahead = 1;
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
		case OPT_LOOKAHEAD:
			if (cli_parse_u64(optarg, &v) || !v || v > RUN_MAX_LOOKAHEAD)
				return cli_usage_err("the lookahead must be 1 to %d layers, not '%s'",
						     RUN_MAX_LOOKAHEAD, optarg);
			o->lookahead = (uint32_t)v;
			o->lookahead_set = true;
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
			/* Finite in bytes/s too: "inf" (or 1e300 GB/s) made an infinite bound. */
			if (cli_parse_double(optarg, &o->ceiling) || !(o->ceiling > 0) ||
			    !isfinite(o->ceiling * 1e9))
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
			if (cli_parse_path(optarg, &o->path))
				return cli_usage_err("unknown path '%s'", optarg);
			break;
		case OPT_MISS_COST: o->miss_cost = true; break;
		case OPT_EAGER_UNMAP: o->eager_unmap = true; break;
		case OPT_KEEP_WRONG_HINTS: o->keep_wrong_hints = true; break;
		case OPT_MISSES_IN_ORDER: o->misses_in_order = true; break;
		case OPT_RUN_AHEAD: o->run_ahead = true; break;
		case OPT_POLL: o->poll = true; break;
		case OPT_NO_POLL: o->poll = false; break;
		case OPT_BOUNCE_ASYNC: o->bounce_async = true; break;
		case OPT_URGENT_ALONE: o->urgent_alone = true; break;
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
	if (o->lookahead_set && !o->prefetch_next)
		return cli_usage_err("--lookahead is the --prefetch-next predictor's");
	if (o->policy && !strcmp(o->policy, "oracle"))
		return cli_usage_err("the oracle needs the future: use p2pio-moe replay for it");
	return 0;
}
