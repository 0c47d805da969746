/* SPDX-License-Identifier: MIT */
/*
 * gguf_read.h - the GGUF reader's private structures, shared by gguf*.c (not the writer).
 *
 * The reader copies the file's header region (metadata and tensor infos, everything before
 * the data section) into one heap buffer, hdr, whose byte i is the file's byte i, and keeps
 * offsets into it; once the buffer stops growing, the offsets are turned into pointers.
 * Strings are made NUL-terminated in place (gguf_cursor.c says how), so keys, names and
 * string values are returned without copies.
 */
#ifndef P2PIO_GGUF_READ_H
#define P2PIO_GGUF_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Fewest bytes a metadata pair, a tensor info and an array element of a type can take. */
#define GGUF_MIN_KV_BYTES (8 + 1 + 4 + 1)	/* key length, 1-byte key, type, 1-byte value */
#define GGUF_MIN_TENSOR_BYTES (8 + 1 + 4 + 8 + 4 + 8) /* name, n_dims, ne[0], type, offset */

/* A read position over the file, filling hdr from the file on demand (gguf_cursor.c). */
struct gguf_cursor {
	int fd;
	uint64_t file_size;
	uint64_t limit;		/* min(file_size, P2PIO_GGUF_MAX_HEADER) */
	unsigned char *buf;	/* the file's bytes [0, len) */
	uint64_t len;
	uint64_t cap;
	uint64_t off;		/* next byte to read */
	struct p2pio_error *err;
};

/* A string inside hdr: bytes [off, off + len), followed by a NUL. */
struct gguf_str {
	uint64_t off;
	uint64_t len;
};

struct p2pio_gguf_value {
	uint32_t type;
	uint32_t elem_type;	/* arrays: type of the elements */
	uint64_t len;		/* strings: bytes; arrays: elements */
	uint64_t off;		/* scalars, strings, numeric arrays: where the bytes are in hdr */
	const unsigned char *data; /* hdr + off, once hdr is final */
	const unsigned char *base; /* hdr, for strs of string arrays */
	struct gguf_str *strs;	/* arrays of strings: each element */
	struct p2pio_gguf_value *elems; /* arrays of arrays: each element */
};

struct gguf_kv {
	struct gguf_str key;
	const char *name;	/* hdr + key.off, once hdr is final */
	uint64_t pos;		/* file offset of the pair, for messages */
	struct p2pio_gguf_value v;
};

struct gguf_tensor {
	struct p2pio_gguf_tensor t;	/* what the API hands out */
	struct gguf_str name;
	uint64_t pos;		/* file offset of the tensor info */
	uint64_t offset_pos;	/* file offset of its offset field */
};

/* A set of names, open addressing over indices into a caller's array (gguf_hash.c). */
struct gguf_hash {
	uint32_t *slot;		/* index + 1, 0 when empty */
	uint64_t mask;
	uint64_t seed;
};

struct p2pio_gguf {
	int fd;
	uint32_t version;
	uint32_t alignment;
	uint64_t file_size;
	uint64_t data_offset;
	uint64_t data_size;

	unsigned char *hdr;
	uint64_t hdr_len;

	struct gguf_kv *kvs;
	size_t n_kv;
	const char **kv_names;	/* kvs[i].name, for the hash */
	struct gguf_hash kv_hash;

	struct gguf_tensor *tensors;
	size_t n_tensors;
	const char **tensor_names;
	struct gguf_hash tensor_hash;
	size_t *by_offset;	/* tensor indices by increasing offset */

	struct p2pio_gguf_layer *layers;
	size_t n_layers;
	struct p2pio_gguf_layer nonlayer;
	size_t *group_idx;	/* storage for every group's tensors and expert_tensors */

	void *map;		/* the whole file, PROT_READ, mapped on first use */
};

/* gguf_cursor.c */
P2PIO_HIDDEN int gguf_need(struct gguf_cursor *c, uint64_t n, const char *what);
P2PIO_HIDDEN int gguf_read_u32(struct gguf_cursor *c, uint32_t *v, const char *what);
P2PIO_HIDDEN int gguf_read_u64(struct gguf_cursor *c, uint64_t *v, const char *what);
P2PIO_HIDDEN int gguf_read_str(struct gguf_cursor *c, struct gguf_str *s, const char *what);
P2PIO_HIDDEN uint64_t gguf_left(const struct gguf_cursor *c);

/* gguf_values.c: one metadata value at the cursor, arrays nested up to depth levels. */
P2PIO_HIDDEN int gguf_read_value(struct gguf_cursor *c, struct p2pio_gguf_value *v, uint32_t type,
				 unsigned int depth);
P2PIO_HIDDEN void gguf_value_fixup(struct p2pio_gguf_value *v, const unsigned char *hdr);
P2PIO_HIDDEN void gguf_value_free(struct p2pio_gguf_value *v);
P2PIO_HIDDEN uint32_t gguf_type_size(uint32_t type);
P2PIO_HIDDEN int gguf_grow(void **p, uint64_t *cap, uint64_t i, size_t size);

/* gguf_hash.c */
P2PIO_HIDDEN int gguf_hash_build(struct gguf_hash *h, const char *const *names, size_t n,
				 size_t *dup);
P2PIO_HIDDEN int gguf_hash_find(const struct gguf_hash *h, const char *const *names,
				const char *name);
P2PIO_HIDDEN void gguf_hash_free(struct gguf_hash *h);

/* gguf_layers.c */
P2PIO_HIDDEN int gguf_group(struct p2pio_gguf *g, struct p2pio_error *err);
P2PIO_HIDDEN void gguf_group_free(struct p2pio_gguf *g);

/* gguf_errors.c: a short, printable rendering of an untrusted name for messages. */
#define GGUF_QUOTE_MAX 64
P2PIO_HIDDEN const char *gguf_quote(char buf[GGUF_QUOTE_MAX], const char *s, uint64_t len);

#endif /* P2PIO_GGUF_READ_H */
