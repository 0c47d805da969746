/* SPDX-License-Identifier: MIT */
/*
 * p2pio/common.h - libp2pio: versions, errors and the conventions every section shares.
 *
 * Part of the public API; include <p2pio.h>, which includes every part. Its source is
 * userlib/src/common/.
 */
#ifndef P2PIO_PUBLIC_COMMON_H
#define P2PIO_PUBLIC_COMMON_H

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

#ifdef __cplusplus
}
#endif

#endif /* P2PIO_PUBLIC_COMMON_H */
