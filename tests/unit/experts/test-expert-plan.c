// SPDX-License-Identifier: MIT
/*
 * test-expert-plan.c - how one expert is read (experts/expert_io.c): one read per slice of
 * each "*_exps" tensor, merged where slices share a block, every read block-aligned in the
 * file and in the expert's memory, every slice at its file offset modulo the block, inside
 * the region, no two slices overlapping; bad arguments refused.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "experts/expert_io.h"
#include "model_fixture.h"
#include "tap.h"

#define BLOCK 4096u

static int check_plan(const struct p2pio_gguf *g, const struct p2pio_gguf_layer *gl, uint64_t e,
		      const struct p2pio_expert_plan *p, uint64_t file_size)
{
	uint64_t off, len;
	uint32_t i, r;
	int bad = 0;

	if (p->nslices != gl->n_expert_tensors || !p->nruns || p->nruns > p->nslices)
		return 1;
	for (r = 0; r < p->nruns; r++) {
		bad += p->runs[r].file_off % BLOCK != 0 || p->runs[r].dst_off % BLOCK != 0;
		bad += p->runs[r].len % BLOCK != 0 && p->runs[r].file_off + p->runs[r].len != file_size;
		bad += p->runs[r].dst_off + p->runs[r].len > p->region;
		bad += r && p->runs[r].dst_off < p->runs[r - 1].dst_off + p->runs[r - 1].len;
	}
	for (i = 0; i < p->nslices; i++) {
		bool inside = false;

		p2pio_gguf_expert_range(g, gl->expert_tensors[i], e, &off, &len);
		bad += p->file_off[i] != off || p->size[i] != len;
		bad += p->dst[i] % BLOCK != off % BLOCK || p->dst[i] + len > p->region;
		bad += i && p->dst[i] < p->dst[i - 1] + p->size[i - 1];
		/* The slice lies inside one run, at the run's file-relative position. */
		for (r = 0; r < p->nruns; r++)
			if (off >= p->runs[r].file_off && off + len <= p->runs[r].file_off + p->runs[r].len &&
			    p->dst[i] == p->runs[r].dst_off + (off - p->runs[r].file_off))
				inside = true;
		bad += !inside;
	}
	return bad;
}

int main(void)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	struct p2pio_expert_plan p;
	struct p2pio_error err = { 0 };
	const struct p2pio_gguf_layer *gl;
	struct p2pio_gguf *g;
	char path[PATH_MAX];
	uint64_t e, size, merged = 0, data;
	int fd, bad = 0;
	size_t l;

	tap_plan_lazy();
	snprintf(path, sizeof(path), "%s/p2pio-plan-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0)
		tap_bail("mkstemp");
	close(fd);
	/* Tiny experts: the bias slice (64 bytes) often shares a block with its neighbours. */
	if (model_fixture_write_moe(path, 3, 16, 64, 32, 7) || p2pio_gguf_open(path, &g, &err)) {
		unlink(path);
		tap_bail("cannot write or open the test model");
	}
	size = p2pio_gguf_file_size(g);
	for (l = 0; l < p2pio_gguf_layer_count(g); l++) {
		gl = p2pio_gguf_layer(g, l);
		for (e = 0; e < gl->n_experts; e++) {
			if (p2pio_expert_plan(g, gl, e, BLOCK, size, &p)) {
				bad++;
				continue;
			}
			bad += check_plan(g, gl, e, &p, size);
			merged += p.nruns < p.nslices;
		}
	}
	tap_is_int(bad, 0, "every expert of every layer: reads block-aligned, slices in place");
	tap_ok(merged > 0, "slices that share a block share a read (%llu experts)",
	       (unsigned long long)merged);
	gl = p2pio_gguf_layer(g, 1);
	p2pio_expert_plan(g, gl, 5, BLOCK, size, &p);
	for (data = 0, l = 0; l < p.nslices; l++)
		data += p.size[l];
	tap_ok(data == gl->expert_bytes && p.region >= data &&
	       p.region <= data + 2 * BLOCK * p.nslices, "the region holds the expert's %llu bytes "
	       "with at most two blocks of rounding per slice (%llu)", (unsigned long long)data,
	       (unsigned long long)p.region);
	tap_is_int(p2pio_expert_plan(g, gl, gl->n_experts, BLOCK, size, &p), -EINVAL,
		   "an expert out of range is refused");
	tap_is_int(p2pio_expert_plan(g, gl, 0, 3000, size, &p), -EINVAL,
		   "a block that is not a power of two is refused");
	tap_is_int(p2pio_expert_plan(g, p2pio_gguf_nonlayer(g), 0, BLOCK, size, &p), -EINVAL,
		   "a group without experts is refused");
	p2pio_gguf_close(g);
	unlink(path);
	return tap_exit();
}
