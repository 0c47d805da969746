/* SPDX-License-Identifier: MIT */
/*
 * p2pio.h - the one public header of libp2pio.
 *
 * libp2pio moves large language model weights from files on NVMe SSDs into NVIDIA GPU
 * memory: peer-to-peer (the SSD DMAs straight into VRAM through the p2pio kernel module)
 * where the platform allows, and through a fast bounce path in pinned host memory
 * everywhere else. It parses GGUF models, loads them whole, and streams layers and MoE
 * experts through a VRAM budget.
 *
 * Conventions, for every function declared here:
 *  - one prefix, p2pio_ (P2PIO_ for macros and enum constants);
 *  - state lives behind opaque handles; constructors return int and hand the object back
 *    through an out-parameter;
 *  - 0 (or a count) on success, a negative errno on failure (p2pio_strerror() names it);
 *    predicates return bool;
 *  - where a failure has more to say (a parse error's byte offset, say), the function
 *    takes an optional struct p2pio_error * and fills it.
 *
 * The header is organised in sections, one per component of the library.
 */
#ifndef P2PIO_H
#define P2PIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ===================================================================================== */
/* Common: versions and errors                                                            */
/* ===================================================================================== */

#define P2PIO_VERSION_MAJOR 0
#define P2PIO_VERSION_MINOR 1
#define P2PIO_VERSION_PATCH 0

/**
 * p2pio_version() - the library's version as a string, "MAJOR.MINOR.PATCH".
 */
const char *p2pio_version(void);

/**
 * p2pio_strerror() - a message for a negative errno returned by libp2pio.
 * @err: a negative (or positive) errno value.
 *
 * Return: a static string; never NULL.
 */
const char *p2pio_strerror(int err);

/**
 * struct p2pio_error - what went wrong, where: filled by functions that take one.
 * @code:   the negative errno the function returned.
 * @offset: the byte offset in the input the error refers to, or P2PIO_NO_OFFSET.
 * @msg:    a complete, human-readable sentence naming the field and the problem.
 */
struct p2pio_error {
	int code;
	uint64_t offset;
	char msg[256];
};

#define P2PIO_NO_OFFSET UINT64_MAX

/* ===================================================================================== */
/* GGUF: reader, writer, layers and experts              (userlib/src/gguf*.c)           */
/* ===================================================================================== */

/* ===================================================================================== */
/* Context, memory and I/O engine                  (userlib/src/{ctx,cuda,mem,engine}*.c) */
/* ===================================================================================== */

/* ===================================================================================== */
/* Where the bytes lie: extents and PCIe topology       (userlib/src/{extents,topo}.c)   */
/* ===================================================================================== */

/* ===================================================================================== */
/* Models: whole-model load and layer streaming                 (userlib/src/model*.c)   */
/* ===================================================================================== */

#ifdef __cplusplus
}
#endif

#endif /* P2PIO_H */
