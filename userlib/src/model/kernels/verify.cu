// SPDX-License-Identifier: MIT
/*
 * verify.cu - GPU kernels of the model verifier (model_verify.c), compiled by nvcc at build
 * time into a fatbin that the library embeds and loads with cuModuleLoadData.
 *
 * p2pio_verify reads every byte of up to P2PIO_VERIFY_MAX_RANGES ranges of device memory
 * and compares each with the deterministic pattern (pattern.h) of the file offset it came
 * from: a sum of all 64-bit words (so nothing can be skipped), the number of bytes that
 * differ and the lowest file offset of one, accumulated into a result in device memory.
 * p2pio_spin keeps the stream busy for a given time, standing in for a layer's arithmetic.
 */
#include <stdint.h>

#include "../../common/pattern.h"
#include "../kernels.h"

__device__ static void note_mismatch(struct p2pio_verify_dev *res, uint64_t off, uint64_t nbytes)
{
	atomicAdd((unsigned long long *)&res->mismatches, (unsigned long long)nbytes);
	atomicMin((unsigned long long *)&res->first_mismatch, (unsigned long long)off);
}

/* Bytes that differ between two words. */
__device__ static uint64_t diff_bytes(uint64_t a, uint64_t b)
{
	uint64_t x = a ^ b, n = 0;
	int i;

	for (i = 0; i < 8; i++)
		n += ((x >> (8 * i)) & 0xff) != 0;
	return n;
}

__device__ static uint64_t lowest_diff(uint64_t a, uint64_t b)
{
	return (uint64_t)(__ffsll((long long)(a ^ b)) - 1) / 8;
}

extern "C" __global__ void p2pio_verify(struct p2pio_verify_args args)
{
	uint64_t tid = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	uint64_t nthreads = (uint64_t)gridDim.x * blockDim.x;
	uint64_t sum = 0, bad = 0, first = UINT64_MAX;
	uint32_t r;

	for (r = 0; r < args.n; r++) {
		const uint8_t *p = (const uint8_t *)args.r[r].addr;
		uint64_t off = args.r[r].file_off, len = args.r[r].len;
		uint64_t w0 = (off + 7) / 8, w1 = (off + len) / 8, w, i;

		/*
		 * Whole words: memory and file agree modulo 8 (the loader keeps file-relative
		 * offsets within blocks), so word w of the file is an aligned load.
		 */
		if (((uint64_t)p - off) % 8 == 0 && w0 < w1) {
			const uint64_t *q = (const uint64_t *)(p - off);

			for (w = w0 + tid; w < w1; w += nthreads) {
				uint64_t got = q[w], want = p2pio_pattern_word(args.seed, w);

				sum += got;
				if (got != want) {
					bad += diff_bytes(got, want);
					if (w * 8 + lowest_diff(got, want) < first)
						first = w * 8 + lowest_diff(got, want);
				}
			}
			/* The ragged head and tail, byte by byte. */
			for (i = tid; i < w0 * 8 - off; i += nthreads)
				if (p[i] != p2pio_pattern_byte(args.seed, off + i)) {
					bad++;
					first = min((unsigned long long)first, (unsigned long long)(off + i));
				}
			for (i = w1 * 8 - off + tid; i < len; i += nthreads)
				if (p[i] != p2pio_pattern_byte(args.seed, off + i)) {
					bad++;
					first = min((unsigned long long)first, (unsigned long long)(off + i));
				}
			continue;
		}
		for (i = tid; i < len; i += nthreads) {
			sum += p[i];
			if (p[i] != p2pio_pattern_byte(args.seed, off + i)) {
				bad++;
				first = min((unsigned long long)first, (unsigned long long)(off + i));
			}
		}
	}
	/* One atomic per warp. */
	for (int d = 16; d > 0; d /= 2) {
		sum += __shfl_down_sync(0xffffffffu, sum, d);
		bad += __shfl_down_sync(0xffffffffu, bad, d);
		first = min((unsigned long long)first,
			    (unsigned long long)__shfl_down_sync(0xffffffffu, first, d));
	}
	if ((threadIdx.x & 31) == 0) {
		atomicAdd((unsigned long long *)&args.res->checksum, (unsigned long long)sum);
		if (bad)
			note_mismatch(args.res, first, bad);
	}
}

extern "C" __global__ void p2pio_spin(uint64_t ns)
{
	uint64_t t0, t;

	asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
	do {
		asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
	} while (t - t0 < ns);
}
