/* SPDX-License-Identifier: MIT */
/*
 * gguf_build.h - byte-exact GGUF images for the reader's tests: an appender that writes
 * every field by hand (so tests can write corrupt ones), and a helper that lays out a whole
 * valid file from a list of tensors.
 */
#ifndef P2PIO_GGUF_BUILD_H
#define P2PIO_GGUF_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "p2pio.h"

struct gguf_build {
	unsigned char *p;
	size_t len;
	size_t cap;
};

void gb_init(struct gguf_build *b);
void gb_free(struct gguf_build *b);
void gb_bytes(struct gguf_build *b, const void *p, size_t n);
void gb_u8(struct gguf_build *b, uint8_t v);
void gb_u16(struct gguf_build *b, uint16_t v);
void gb_u32(struct gguf_build *b, uint32_t v);
void gb_u64(struct gguf_build *b, uint64_t v);
void gb_str(struct gguf_build *b, const char *s);
void gb_strn(struct gguf_build *b, const void *s, size_t n);
/* Zeros up to the next multiple of @align. */
void gb_pad(struct gguf_build *b, uint64_t align);
void gb_put_u32(struct gguf_build *b, size_t at, uint32_t v);
void gb_put_u64(struct gguf_build *b, size_t at, uint64_t v);

/* "GGUF", version, n_tensors, n_kv. */
void gb_header(struct gguf_build *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv);
/* A key and the type of its value; the value follows with gb_u32() etc. */
void gb_key(struct gguf_build *b, const char *key, uint32_t type);
void gb_kv_u32(struct gguf_build *b, const char *key, uint32_t v);
void gb_kv_str(struct gguf_build *b, const char *key, const char *s);
void gb_tensor_info(struct gguf_build *b, const char *name, uint32_t n_dims, const uint64_t *ne,
		    uint32_t type, uint64_t offset);

/* The deterministic byte the test files hold at absolute file offset @off. */
uint8_t gb_pattern(uint64_t off);

struct gb_tensor {
	const char *name;
	uint32_t type;
	uint32_t n_dims;
	uint64_t ne[P2PIO_GGUF_MAX_DIMS];
	/* out, filled by gb_model(): */
	uint64_t size;
	uint64_t offset;	/* relative to the data section */
	size_t info_pos;	/* file offset of the tensor info */
};

/* A tensor for gb_model(): name, ggml type, n_dims, extents. */
#define GB_T(nm, ty, nd, ...) { .name = (nm), .type = (ty), .n_dims = (nd), .ne = { __VA_ARGS__ } }

/*
 * A whole valid file: header, general.architecture = "test", general.alignment when
 * @alignment is not 0, then @n tensor infos laid out in order, each at the next multiple of
 * the alignment, then padding and data (gb_pattern bytes). Returns the data section's offset.
 */
size_t gb_model(struct gguf_build *b, uint32_t version, uint32_t alignment,
		struct gb_tensor *t, size_t n);

/* A memfd holding the image (the reader needs a regular file); -1 on failure. */
int gb_memfd(const struct gguf_build *b);
/* Write the image to a fresh temporary file; its path goes into @path (64 bytes). */
int gb_tmpfile(const struct gguf_build *b, char *path);
/* p2pio_gguf_open_fd() on a memfd of the image; err->code/msg cleared first. */
int gb_open(const struct gguf_build *b, struct p2pio_gguf **g, struct p2pio_error *err);
/* Same, on the first @len bytes only. */
int gb_open_prefix(const struct gguf_build *b, size_t len, struct p2pio_gguf **g,
		   struct p2pio_error *err);

#endif /* P2PIO_GGUF_BUILD_H */
