// SPDX-License-Identifier: MIT
/*
 * hello.c - a program built against the installed libp2pio-dev with nothing but
 * `cc hello.c $(pkg-config --cflags --libs p2pio)` (make check-pkg): loads a model that
 * p2pio-mkmodel wrote into host memory and checks every tensor byte against its pattern.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <p2pio.h>

int main(int argc, char **argv)
{
	struct p2pio_ctx_opts o;
	struct p2pio_error err = { 0 };
	struct p2pio_model_info info;
	struct p2pio_model_tensor t;
	struct p2pio_ctx *ctx = NULL;
	struct p2pio_model *m = NULL;
	uint64_t bytes = 0, bad;
	uint32_t i;
	int ret = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: hello MODEL.gguf\n");
		return 2;
	}
	p2pio_ctx_opts_init(&o);
	o.device = P2PIO_DEVICE_HOST;
	if (p2pio_ctx_create(&o, &ctx, &err)) {
		fprintf(stderr, "hello: context: %s\n", err.msg);
		return 1;
	}
	if (p2pio_model_open(ctx, argv[1], NULL, &m, &err)) {
		fprintf(stderr, "hello: %s\n", err.msg);
		goto out_ctx;
	}
	p2pio_model_info(m, &info);
	if (!info.has_seed || p2pio_model_load(m, NULL, NULL)) {
		fprintf(stderr, "hello: %s: not a p2pio-mkmodel model, or the load failed\n", argv[1]);
		goto out_model;
	}
	for (i = 0; i < info.tensors; i++) {
		if (p2pio_model_tensor_at(m, i, &t))
			goto out_model;
		if (!p2pio_pattern_check(info.pattern_seed, t.file_offset, t.host, t.size, &bad)) {
			fprintf(stderr, "hello: %s: wrong byte at file offset %" PRIu64 "\n", t.name, bad);
			goto out_model;
		}
		bytes += t.size;
	}
	printf("libp2pio %s: %u tensors, %" PRIu64 " bytes, all match\n", p2pio_version(),
	       info.tensors, bytes);
	ret = 0;
out_model:
	p2pio_model_close(m);
out_ctx:
	p2pio_ctx_destroy(ctx);
	return ret;
}
