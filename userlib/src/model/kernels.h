/* SPDX-License-Identifier: MIT */
/*
 * model_kernels.h - the interface between model_verify.c and the GPU kernels in
 * kernels/verify.cu (their parameters, by value), and the embedded fatbin. Private.
 */
#ifndef P2PIO_MODEL_KERNELS_H
#define P2PIO_MODEL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Ranges per launch: the parameter block stays well under the 4 KiB launch limit. */
#define P2PIO_VERIFY_MAX_RANGES 32

struct p2pio_verify_range {
	uint64_t addr;		/* device address */
	uint64_t file_off;	/* file offset of its first byte */
	uint64_t len;
};

/* Accumulated in device memory; first_mismatch starts at UINT64_MAX. */
struct p2pio_verify_dev {
	uint64_t checksum;
	uint64_t mismatches;
	uint64_t first_mismatch;
	uint64_t pad;
};

struct p2pio_verify_args {
	uint64_t seed;
	struct p2pio_verify_dev *res;
	uint32_t n;
	uint32_t pad;
	struct p2pio_verify_range r[P2PIO_VERIFY_MAX_RANGES];
};

#ifndef __CUDACC__
/* The fatbin nvcc made of kernels/verify.cu; empty when the library was built without nvcc. */
extern const unsigned char p2pio_model_fatbin[] __attribute__((visibility("hidden")));
extern const size_t p2pio_model_fatbin_len __attribute__((visibility("hidden")));
#endif

#endif /* P2PIO_MODEL_KERNELS_H */
