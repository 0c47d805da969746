// SPDX-License-Identifier: MIT
/*
 * load_opts.c - the command line of p2pio-load: its help text and its parser.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "load.h"

static void load_usage(void)
{
	printf("Usage: %s [OPTION]... MODEL.gguf\n"
	       "Load a GGUF model into GPU memory (host memory without a GPU) and report, or\n"
	       "stream its layers through a budget while a kernel per layer reads every byte.\n"
	       "\n"
	       "  -d, --device N        CUDA device (default 0 when there is a GPU)\n"
	       "      --host            load into host memory even with a GPU\n"
	       "  -p, --path PATH       auto (default), p2p, bounce or posix\n"
	       "      --mmap            baseline: mmap the file and copy each tensor with\n"
	       "                        cuMemcpyHtoD (memcpy on host), as llama.cpp loads\n"
	       "      --cold            drop the page cache (the file's pages; all when root)\n"
	       "                        before the load and before each streaming pass\n"
	       "      --no-verify       do not check the data against the generator's pattern\n"
	       "      --json            one JSON object on stdout\n"
	       "  -q, --quiet           no progress bar\n"
	       "      --threads N       BOUNCE rings, and POSIX readers (default: the engine's)\n"
	       "      --queue-depth N   engine queue depth (default: the engine's)\n"
	       "      --chunk SIZE      engine chunk size (default: the engine's)\n"
	       "      --staging SIZE    engine pinned staging (default: the engine's)\n"
	       "      --bounce-async    BOUNCE's reads go to the kernel's io_uring workers\n"
	       "      --repeat N        load the whole model N times into the same memory\n"
	       "                        (cold: the cache dropped before each), a result each;\n"
	       "                        the first load pays what a process pays once\n"
	       "\n"
	       "Streaming:\n"
	       "      --stream          stream layers instead of loading the model whole\n"
	       "      --budget SIZE     target memory for resident tensors and slots\n"
	       "                        (default: a quarter of the model, at least the\n"
	       "                        resident tensors and two slots)\n"
	       "      --slots N         layer slots (instead of --budget)\n"
	       "      --prefetch N      layers loaded ahead (default: every slot but the\n"
	       "                        acquired layer's, up to 3); --no-prefetch\n"
	       "      --lru             evict the least recently used slot\n"
	       "      --passes N        forward passes (default 3; the first is a warm-up when\n"
	       "                        there are more)\n"
	       "      --compute-us US   extra compute per layer, in microseconds\n"
	       "      --compute-ratio R extra compute per layer = R x its transfer time at the\n"
	       "                        ceiling\n"
	       "      --ceiling GBPS    the storage-to-target ceiling in GB/s (default: measured\n"
	       "                        here: the lower of the storage ceiling, the best\n"
	       "                        O_DIRECT or buffered reads of the file into host\n"
	       "                        memory over request sizes and depths, and into a\n"
	       "                        GPU the link ceiling, the best large pinned copies)\n"
	       "      --per-layer       a line per layer\n"
	       "\n"
	       "Exit status: 0 on success, 1 when verification found a wrong byte, 2 for usage\n"
	       "errors, 3 when loading failed.\n",
	       cli_prog());
}

enum {
	OPT_HOST = 256, OPT_MMAP, OPT_COLD, OPT_NO_VERIFY, OPT_JSON, OPT_STREAM, OPT_BUDGET,
	OPT_SLOTS, OPT_PREFETCH, OPT_NO_PREFETCH, OPT_LRU, OPT_PASSES, OPT_REPEAT, OPT_COMPUTE_US,
	OPT_COMPUTE_RATIO, OPT_CEILING, OPT_PER_LAYER, OPT_THREADS, OPT_QD, OPT_CHUNK, OPT_STAGING,
	OPT_BOUNCE_ASYNC,
};

static const struct option long_opts[] = {
	{ "device", required_argument, NULL, 'd' },
	{ "host", no_argument, NULL, OPT_HOST },
	{ "path", required_argument, NULL, 'p' },
	{ "mmap", no_argument, NULL, OPT_MMAP },
	{ "cold", no_argument, NULL, OPT_COLD },
	{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "quiet", no_argument, NULL, 'q' },
	{ "stream", no_argument, NULL, OPT_STREAM },
	{ "budget", required_argument, NULL, OPT_BUDGET },
	{ "slots", required_argument, NULL, OPT_SLOTS },
	{ "prefetch", required_argument, NULL, OPT_PREFETCH },
	{ "no-prefetch", no_argument, NULL, OPT_NO_PREFETCH },
	{ "lru", no_argument, NULL, OPT_LRU },
	{ "passes", required_argument, NULL, OPT_PASSES },
	{ "repeat", required_argument, NULL, OPT_REPEAT },
	{ "compute-us", required_argument, NULL, OPT_COMPUTE_US },
	{ "compute-ratio", required_argument, NULL, OPT_COMPUTE_RATIO },
	{ "ceiling", required_argument, NULL, OPT_CEILING },
	{ "per-layer", no_argument, NULL, OPT_PER_LAYER },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "queue-depth", required_argument, NULL, OPT_QD },
	{ "chunk", required_argument, NULL, OPT_CHUNK },
	{ "staging", required_argument, NULL, OPT_STAGING },
	{ "bounce-async", no_argument, NULL, OPT_BOUNCE_ASYNC },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_u32(const char *s, uint32_t *out, uint32_t min)
{
	uint64_t v;

	if (cli_parse_u64(s, &v) || v < min || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* A number of at least 0, and finite. */
static int parse_double(const char *s, double *out)
{
	return cli_parse_double(s, out) || !(*out >= 0) || isinf(*out) ? -EINVAL : 0;
}

int load_parse(int argc, char **argv, struct load_opts *o)
{
	uint32_t u;
	int c;

	*o = (struct load_opts){ .device = -2, .passes = 3, .repeat = 1, .verify = true };
	while ((c = getopt_long(argc, argv, "d:p:qh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (parse_u32(optarg, &u, 0) || u > INT32_MAX)
				return cli_usage_err("bad device '%s'", optarg);
			o->device = (int)u;
			break;
		case OPT_HOST:
			o->device = P2PIO_DEVICE_HOST;
			break;
		case 'p':
			if (cli_parse_path(optarg, &o->io_path))
				return cli_usage_err("unknown path '%s'", optarg);
			break;
		case OPT_MMAP:
			o->mmap_baseline = true;
			break;
		case OPT_COLD:
			o->cold = true;
			break;
		case OPT_NO_VERIFY:
			o->verify = false;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case OPT_STREAM:
			o->stream = true;
			break;
		case OPT_BUDGET:
			if (cli_parse_size(optarg, &o->budget) || !o->budget)
				return cli_usage_err("bad budget '%s'", optarg);
			break;
		case OPT_SLOTS:
			if (parse_u32(optarg, &o->slots, 1))
				return cli_usage_err("bad slot count '%s'", optarg);
			break;
		case OPT_PREFETCH:
			if (parse_u32(optarg, &o->prefetch, 1))
				return cli_usage_err("bad prefetch depth '%s'", optarg);
			break;
		case OPT_NO_PREFETCH:
			o->no_prefetch = true;
			break;
		case OPT_LRU:
			o->lru = true;
			break;
		case OPT_PASSES:
			if (parse_u32(optarg, &o->passes, 1))
				return cli_usage_err("bad pass count '%s'", optarg);
			break;
		case OPT_REPEAT:
			if (parse_u32(optarg, &o->repeat, 1))
				return cli_usage_err("bad repeat count '%s'", optarg);
			break;
		case OPT_COMPUTE_US:
			if (parse_double(optarg, &o->compute_us))
				return cli_usage_err("bad --compute-us '%s'", optarg);
			break;
		case OPT_COMPUTE_RATIO:
			if (parse_double(optarg, &o->compute_ratio))
				return cli_usage_err("bad --compute-ratio '%s'", optarg);
			break;
		case OPT_CEILING:
			if (parse_double(optarg, &o->ceiling_gbps) || o->ceiling_gbps <= 0)
				return cli_usage_err("bad --ceiling '%s'", optarg);
			break;
		case OPT_PER_LAYER:
			o->per_layer = true;
			break;
		case OPT_THREADS:
			if (parse_u32(optarg, &o->threads, 1))
				return cli_usage_err("bad thread count '%s'", optarg);
			break;
		case OPT_QD:
			if (parse_u32(optarg, &o->queue_depth, 1))
				return cli_usage_err("bad queue depth '%s'", optarg);
			break;
		case OPT_BOUNCE_ASYNC:
			o->bounce_async = true;
			break;
		case OPT_STAGING:
			if (cli_parse_size(optarg, &o->staging) || !o->staging)
				return cli_usage_err("bad staging size '%s'", optarg);
			break;
		case OPT_CHUNK:
			if (cli_parse_size(optarg, &o->chunk) || !o->chunk)
				return cli_usage_err("bad chunk size '%s'", optarg);
			break;
		case 'h':
			load_usage();
			exit(CLI_EXIT_OK);
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		return cli_usage_err("expected one model file");
	o->path = argv[optind];
	if (o->mmap_baseline && o->stream)
		return cli_usage_err("--mmap is a whole-model baseline; it does not stream");
	return 0;
}

