/* SPDX-License-Identifier: MIT */
/*
 * gguf/repack.h - p2pio_gguf_repack()'s steps on a reader that is already open, for the
 * unit test: an input truncated by someone else while it is copied or verified must fail
 * cleanly, and truncating it between p2pio_gguf_open() and these steps is the one way to
 * make that case happen every time.
 */
#ifndef P2PIO_GGUF_REPACK_H
#define P2PIO_GGUF_REPACK_H

#include <stdint.h>

#include "internal.h"

/*
 * p2pio_gguf_repack() from the input's reader @in on: refuse an @out that is @in's file,
 * copy to a temporary file beside @out, verify, rename. @in stays the caller's to close.
 */
P2PIO_HIDDEN int gguf_repack_from(struct p2pio_gguf *in, const char *out, uint32_t alignment,
				  struct p2pio_error *err);

/* Compare the written file @copy with @in: every metadata value, tensor info and byte. */
P2PIO_HIDDEN int gguf_repack_verify(struct p2pio_gguf *in, const char *copy, uint32_t alignment,
				    struct p2pio_error *err);

#endif /* P2PIO_GGUF_REPACK_H */
