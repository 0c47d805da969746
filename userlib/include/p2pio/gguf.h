/* SPDX-License-Identifier: MIT */
/*
 * p2pio/gguf.h - libp2pio: the GGUF reader, writer, layers and experts, and the test pattern.
 *
 * Part of the public API; include <p2pio.h>, which includes every part. Its source is
 * userlib/src/gguf/.
 */
#ifndef P2PIO_PUBLIC_GGUF_H
#define P2PIO_PUBLIC_GGUF_H

#include "p2pio/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ===================================================================================== */
/* GGUF: reader, writer, layers and experts              (userlib/src/gguf/)            */
/* ===================================================================================== */

/*
 * The GGUF file format, as libp2pio reads it (Documentation/gguf.md has every rule).
 * All numbers are little-endian; a file is
 *
 *	uint32 magic "GGUF"  uint32 version (2 or 3)  uint64 n_tensors  uint64 n_kv
 *	n_kv times:      string key, uint32 value type, value
 *	n_tensors times: string name, uint32 n_dims, uint64 ne[n_dims], uint32 ggml type,
 *	                 uint64 offset (relative to the data section, a multiple of the alignment)
 *	padding to the alignment (general.alignment, uint32, default 32)
 *	the data section: tensor data at their offsets
 *
 * where a string is uint64 length + bytes (no terminator) and an array value is
 * uint32 element type + uint64 count + elements. ne[0] is the innermost (contiguous)
 * dimension. The reader treats every file as hostile: each length, count, offset and size is
 * checked for overflow and against the file before it is used, and open() refuses anything
 * that breaks a rule with an error that names the field and its byte offset. Codes:
 *
 *	-EINVAL     a field has an invalid value (magic, value type, alignment, n_dims, ne,
 *	            ggml type id, a misaligned or overlapping tensor, a NUL byte in a name)
 *	-ENOTSUP    a well-formed file this reader does not support (GGUF v1, versions > 3,
 *	            big-endian files, removed ggml types)
 *	-ENODATA    the file ends inside a field (truncated)
 *	-ERANGE     a length, count, offset or size does not fit in the file or overflows
 *	-EEXIST     a duplicate metadata key or tensor name
 *	-EFBIG      the header (metadata and tensor infos) exceeds P2PIO_GGUF_MAX_HEADER
 *	-ENOMEM, or an errno from open/fstat/pread/mmap
 *
 * A parsed file is immutable: every accessor below that takes a const handle is safe to call
 * from several threads at once, and pointers it returns stay valid until p2pio_gguf_close().
 */

/** P2PIO_GGUF_MAGIC - the first four bytes, "GGUF", read as a little-endian uint32. */
#define P2PIO_GGUF_MAGIC 0x46554747u
/** P2PIO_GGUF_DEFAULT_ALIGNMENT - data alignment when general.alignment is absent. */
#define P2PIO_GGUF_DEFAULT_ALIGNMENT 32u
/** P2PIO_GGUF_MAX_DIMS - the most dimensions a tensor has (GGML_MAX_DIMS). */
#define P2PIO_GGUF_MAX_DIMS 4
/** P2PIO_GGUF_MAX_HEADER - the largest header (metadata and tensor infos) accepted: 256 MiB. */
#define P2PIO_GGUF_MAX_HEADER (256ull << 20)
/** P2PIO_GGUF_MAX_DEPTH - the deepest nesting of arrays in a metadata value. */
#define P2PIO_GGUF_MAX_DEPTH 8
/** P2PIO_GGUF_NO_LAYER - p2pio_gguf_layer.number of the group of non-layer tensors. */
#define P2PIO_GGUF_NO_LAYER UINT32_MAX

/**
 * enum p2pio_gguf_type - type of a metadata value, numbered as GGUF stores them.
 */
enum p2pio_gguf_type {
	P2PIO_GGUF_TYPE_UINT8 = 0,
	P2PIO_GGUF_TYPE_INT8 = 1,
	P2PIO_GGUF_TYPE_UINT16 = 2,
	P2PIO_GGUF_TYPE_INT16 = 3,
	P2PIO_GGUF_TYPE_UINT32 = 4,
	P2PIO_GGUF_TYPE_INT32 = 5,
	P2PIO_GGUF_TYPE_FLOAT32 = 6,
	P2PIO_GGUF_TYPE_BOOL = 7,
	P2PIO_GGUF_TYPE_STRING = 8,
	P2PIO_GGUF_TYPE_ARRAY = 9,
	P2PIO_GGUF_TYPE_UINT64 = 10,
	P2PIO_GGUF_TYPE_INT64 = 11,
	P2PIO_GGUF_TYPE_FLOAT64 = 12,
	P2PIO_GGUF_TYPE_COUNT,
};

/**
 * enum p2pio_ggml_type - ggml tensor types (ggml_type), numbered as GGUF stores them.
 *
 * Ids 4, 5, 31-33 and 36-38 belonged to types ggml removed; files using them, or any id
 * from P2PIO_GGML_TYPE_COUNT on, are refused.
 */
enum p2pio_ggml_type {
	P2PIO_GGML_TYPE_F32 = 0,
	P2PIO_GGML_TYPE_F16 = 1,
	P2PIO_GGML_TYPE_Q4_0 = 2,
	P2PIO_GGML_TYPE_Q4_1 = 3,
	P2PIO_GGML_TYPE_Q5_0 = 6,
	P2PIO_GGML_TYPE_Q5_1 = 7,
	P2PIO_GGML_TYPE_Q8_0 = 8,
	P2PIO_GGML_TYPE_Q8_1 = 9,
	P2PIO_GGML_TYPE_Q2_K = 10,
	P2PIO_GGML_TYPE_Q3_K = 11,
	P2PIO_GGML_TYPE_Q4_K = 12,
	P2PIO_GGML_TYPE_Q5_K = 13,
	P2PIO_GGML_TYPE_Q6_K = 14,
	P2PIO_GGML_TYPE_Q8_K = 15,
	P2PIO_GGML_TYPE_IQ2_XXS = 16,
	P2PIO_GGML_TYPE_IQ2_XS = 17,
	P2PIO_GGML_TYPE_IQ3_XXS = 18,
	P2PIO_GGML_TYPE_IQ1_S = 19,
	P2PIO_GGML_TYPE_IQ4_NL = 20,
	P2PIO_GGML_TYPE_IQ3_S = 21,
	P2PIO_GGML_TYPE_IQ2_S = 22,
	P2PIO_GGML_TYPE_IQ4_XS = 23,
	P2PIO_GGML_TYPE_I8 = 24,
	P2PIO_GGML_TYPE_I16 = 25,
	P2PIO_GGML_TYPE_I32 = 26,
	P2PIO_GGML_TYPE_I64 = 27,
	P2PIO_GGML_TYPE_F64 = 28,
	P2PIO_GGML_TYPE_IQ1_M = 29,
	P2PIO_GGML_TYPE_BF16 = 30,
	P2PIO_GGML_TYPE_TQ1_0 = 34,
	P2PIO_GGML_TYPE_TQ2_0 = 35,
	P2PIO_GGML_TYPE_MXFP4 = 39,
	P2PIO_GGML_TYPE_NVFP4 = 40,
	P2PIO_GGML_TYPE_Q1_0 = 41,
	P2PIO_GGML_TYPE_Q2_0 = 42,
	P2PIO_GGML_TYPE_COUNT = 43,
};

/* ---- the ggml type table ------------------------------------------------------------ */

/**
 * p2pio_ggml_type_name() - name of a ggml type ("Q4_K").
 * @type: a ggml type id.
 *
 * Return: a static string, or NULL for a removed or unknown id.
 */
const char *p2pio_ggml_type_name(uint32_t type);

/**
 * p2pio_ggml_type_from_name() - the id of a ggml type given its name.
 * @name: the name as p2pio_ggml_type_name() spells it, matched case-insensitively.
 *
 * Return: the id (>= 0), or -ENOENT.
 */
int p2pio_ggml_type_from_name(const char *name);

/**
 * p2pio_ggml_type_block() - block geometry of a ggml type.
 * @type:        a ggml type id.
 * @block_elems: out: elements per block (1 for plain types such as F32); may be NULL.
 * @block_bytes: out: bytes per block; may be NULL.
 * @err:         filled on failure; may be NULL.
 *
 * Return: 0; -ENOTSUP for a removed id; -EINVAL for an unknown id (the message names it).
 */
int p2pio_ggml_type_block(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes,
			  struct p2pio_error *err);

/**
 * p2pio_ggml_row_size() - bytes of one row of @ne0 elements of a ggml type.
 * @type:  a ggml type id.
 * @ne0:   elements in the row; must be a multiple of the type's block elements.
 * @bytes: out: ne0 / block_elems * block_bytes.
 * @err:   filled on failure; may be NULL.
 *
 * Return: 0; -EINVAL (unknown type, @ne0 zero or not a multiple of the block), -ENOTSUP
 * (removed type), -ERANGE (the size does not fit in 64 bits).
 */
int p2pio_ggml_row_size(uint32_t type, uint64_t ne0, uint64_t *bytes, struct p2pio_error *err);

/**
 * p2pio_ggml_tensor_size() - bytes of a tensor of a ggml type and shape.
 * @type:   a ggml type id.
 * @n_dims: 1..P2PIO_GGUF_MAX_DIMS.
 * @ne:     @n_dims extents, innermost first, each > 0 and < 2^63; ne[0] a multiple of the
 *          type's block elements.
 * @bytes:  out: row size * ne[1] * ... * ne[n_dims - 1].
 * @err:    filled on failure; may be NULL.
 *
 * Return: 0; -EINVAL (bad type, n_dims or extent), -ENOTSUP (removed type), -ERANGE (the
 * element count or the size overflows).
 */
int p2pio_ggml_tensor_size(uint32_t type, uint32_t n_dims, const uint64_t *ne, uint64_t *bytes,
			   struct p2pio_error *err);

/* ---- opening a file --------------------------------------------------------------- */

/**
 * struct p2pio_gguf - a parsed, validated GGUF file (opaque).
 */
struct p2pio_gguf;

/**
 * p2pio_gguf_open() - open and validate a GGUF file.
 * @path: the file; must be a regular file.
 * @out:  out: the handle, for p2pio_gguf_close(); untouched on failure.
 * @err:  filled on failure with the code, the byte offset and a message; may be NULL.
 *
 * Reads the header (metadata and tensor infos) with pread() and validates all of it,
 * including every tensor's position in the data section. Tensor data are not read.
 *
 * Return: 0, or a negative errno (see the codes above).
 */
int p2pio_gguf_open(const char *path, struct p2pio_gguf **out, struct p2pio_error *err);

/**
 * p2pio_gguf_open_fd() - like p2pio_gguf_open(), for a file the caller opened.
 * @fd:  a file descriptor open for reading on a regular file. It is duplicated (close-on-exec):
 *       the caller keeps ownership of @fd and may close it at once. Only pread() is used, so
 *       the file position of @fd is neither used nor moved.
 * @out: out: the handle.
 * @err: filled on failure; may be NULL.
 *
 * Return: 0, or a negative errno.
 */
int p2pio_gguf_open_fd(int fd, struct p2pio_gguf **out, struct p2pio_error *err);

/**
 * p2pio_gguf_close() - release a handle, its mapping and its file descriptor.
 * @g: the handle, or NULL.
 */
void p2pio_gguf_close(struct p2pio_gguf *g);

/**
 * p2pio_gguf_version() - the file's GGUF version (2 or 3).
 * @g: the handle.
 */
uint32_t p2pio_gguf_version(const struct p2pio_gguf *g);

/**
 * p2pio_gguf_alignment() - the data alignment: general.alignment, or 32 when absent.
 * @g: the handle.
 */
uint32_t p2pio_gguf_alignment(const struct p2pio_gguf *g);

/**
 * p2pio_gguf_data_offset() - absolute file offset of the data section.
 * @g: the handle.
 *
 * The end of the tensor infos rounded up to the alignment. Tensor offsets are relative to it.
 */
uint64_t p2pio_gguf_data_offset(const struct p2pio_gguf *g);

/**
 * p2pio_gguf_data_size() - bytes from the data section's start to the end of the file.
 * @g: the handle.
 *
 * Every tensor lies inside [p2pio_gguf_data_offset(), + this). 0 for a file without tensors
 * that ends before the (padded) data section would start.
 */
uint64_t p2pio_gguf_data_size(const struct p2pio_gguf *g);

/**
 * p2pio_gguf_file_size() - the file's size in bytes when it was opened.
 * @g: the handle.
 */
uint64_t p2pio_gguf_file_size(const struct p2pio_gguf *g);

/**
 * p2pio_gguf_fd() - the handle's own file descriptor, for reading tensor data.
 * @g: the handle.
 *
 * Return: an fd owned by @g (closed by p2pio_gguf_close()); use pread() only.
 */
int p2pio_gguf_fd(const struct p2pio_gguf *g);

/* ---- metadata ----------------------------------------------------------------------- */

/**
 * struct p2pio_gguf_value - a metadata value, or an array nested in one (opaque).
 *
 * Owned by its struct p2pio_gguf; valid until p2pio_gguf_close().
 */
struct p2pio_gguf_value;

/**
 * p2pio_gguf_type_name() - name of a metadata value type ("uint32", "string", "array").
 * @type: a value type.
 *
 * Return: a static string; "invalid" for a number that is no type.
 */
const char *p2pio_gguf_type_name(uint32_t type);

/**
 * p2pio_gguf_kv_count() - number of metadata key/value pairs.
 * @g: the handle.
 */
size_t p2pio_gguf_kv_count(const struct p2pio_gguf *g);

/**
 * p2pio_gguf_kv_key() - key of pair @i, in file order.
 * @g: the handle.
 * @i: 0 .. p2pio_gguf_kv_count() - 1.
 *
 * Return: a NUL-terminated key (keys never contain NUL bytes), or NULL if @i is out of range.
 */
const char *p2pio_gguf_kv_key(const struct p2pio_gguf *g, size_t i);

/**
 * p2pio_gguf_kv_value() - value of pair @i.
 * @g: the handle.
 * @i: 0 .. p2pio_gguf_kv_count() - 1.
 *
 * Return: the value, or NULL if @i is out of range.
 */
const struct p2pio_gguf_value *p2pio_gguf_kv_value(const struct p2pio_gguf *g, size_t i);

/**
 * p2pio_gguf_find_kv() - index of the pair with key @key (a hash lookup).
 * @g:   the handle.
 * @key: the key, e.g. "general.architecture".
 *
 * Return: the index (>= 0), or -ENOENT.
 */
int p2pio_gguf_find_kv(const struct p2pio_gguf *g, const char *key);

/**
 * p2pio_gguf_find_value() - value of the pair with key @key.
 * @g:   the handle.
 * @key: the key.
 *
 * Return: the value, or NULL if there is no such key.
 */
const struct p2pio_gguf_value *p2pio_gguf_find_value(const struct p2pio_gguf *g,
						     const char *key);

/**
 * p2pio_gguf_value_type() - type of a value.
 * @v: a value.
 */
enum p2pio_gguf_type p2pio_gguf_value_type(const struct p2pio_gguf_value *v);

/**
 * p2pio_gguf_value_u64() - a value of any integer type as an unsigned 64-bit number.
 * @v:   a value.
 * @out: out: the number.
 *
 * Return: 0; -EINVAL if @v is not an integer (bool, float, string and array are not);
 * -ERANGE if it is negative.
 */
int p2pio_gguf_value_u64(const struct p2pio_gguf_value *v, uint64_t *out);

/**
 * p2pio_gguf_value_i64() - a value of any integer type as a signed 64-bit number.
 * @v:   a value.
 * @out: out: the number.
 *
 * Return: 0; -EINVAL if @v is not an integer; -ERANGE for a uint64 above INT64_MAX.
 */
int p2pio_gguf_value_i64(const struct p2pio_gguf_value *v, int64_t *out);

/**
 * p2pio_gguf_value_f64() - a float32 or float64 value as a double.
 * @v:   a value.
 * @out: out: the number.
 *
 * Return: 0, or -EINVAL if @v is not a float32 or float64.
 */
int p2pio_gguf_value_f64(const struct p2pio_gguf_value *v, double *out);

/**
 * p2pio_gguf_value_bool() - a bool value.
 * @v:   a value.
 * @out: out: false for a stored 0, true for anything else (GGUF stores bools as one byte).
 *
 * Return: 0, or -EINVAL if @v is not a bool.
 */
int p2pio_gguf_value_bool(const struct p2pio_gguf_value *v, bool *out);

/**
 * p2pio_gguf_value_string() - a string value.
 * @v:   a value.
 * @str: out: the bytes, followed by a NUL that is not part of the string. GGUF strings may
 *       contain NUL bytes: @len is authoritative.
 * @len: out: length in bytes; may be NULL.
 *
 * Return: 0, or -EINVAL if @v is not a string.
 */
int p2pio_gguf_value_string(const struct p2pio_gguf_value *v, const char **str, size_t *len);

/**
 * p2pio_gguf_get_u64() - p2pio_gguf_value_u64() of the value of @key.
 * @g:   the handle.
 * @key: the key.
 * @out: out: the number.
 *
 * The p2pio_gguf_get_*() functions below look @key up and convert its value the same way
 * as the p2pio_gguf_value_*() function of the same suffix; each returns -ENOENT when there
 * is no such key.
 *
 * Return: 0, -ENOENT, -EINVAL or -ERANGE.
 */
int p2pio_gguf_get_u64(const struct p2pio_gguf *g, const char *key, uint64_t *out);

/**
 * p2pio_gguf_get_i64() - p2pio_gguf_value_i64() of the value of @key.
 * @g:   the handle.
 * @key: the key.
 * @out: out: the number.
 *
 * Return: 0, -ENOENT, -EINVAL or -ERANGE.
 */
int p2pio_gguf_get_i64(const struct p2pio_gguf *g, const char *key, int64_t *out);

/**
 * p2pio_gguf_get_f64() - p2pio_gguf_value_f64() of the value of @key.
 * @g:   the handle.
 * @key: the key.
 * @out: out: the number.
 *
 * Return: 0, -ENOENT or -EINVAL.
 */
int p2pio_gguf_get_f64(const struct p2pio_gguf *g, const char *key, double *out);

/**
 * p2pio_gguf_get_bool() - p2pio_gguf_value_bool() of the value of @key.
 * @g:   the handle.
 * @key: the key.
 * @out: out: the value.
 *
 * Return: 0, -ENOENT or -EINVAL.
 */
int p2pio_gguf_get_bool(const struct p2pio_gguf *g, const char *key, bool *out);

/**
 * p2pio_gguf_get_string() - p2pio_gguf_value_string() of the value of @key.
 * @g:   the handle.
 * @key: the key.
 * @str: out: the NUL-terminated bytes.
 * @len: out: the length; may be NULL.
 *
 * Return: 0, -ENOENT or -EINVAL.
 */
int p2pio_gguf_get_string(const struct p2pio_gguf *g, const char *key, const char **str,
			  size_t *len);

/**
 * p2pio_gguf_array_type() - element type of an array value.
 * @v: a value.
 *
 * Return: the element type (>= 0), or -EINVAL if @v is not an array.
 */
int p2pio_gguf_array_type(const struct p2pio_gguf_value *v);

/**
 * p2pio_gguf_array_len() - number of elements of an array value.
 * @v: a value.
 *
 * Return: the count; 0 if @v is not an array.
 */
uint64_t p2pio_gguf_array_len(const struct p2pio_gguf_value *v);

/**
 * p2pio_gguf_array_u64() - element @i of an integer array, as p2pio_gguf_value_u64().
 * @v:   an array value.
 * @i:   the element.
 * @out: out: the number.
 *
 * The p2pio_gguf_array_*() element getters return -EINVAL when @v is not an array or its
 * elements are not of a fitting type, -ERANGE when @i is out of range or (for the integer
 * getters) the value does not fit.
 *
 * Return: 0, -EINVAL or -ERANGE.
 */
int p2pio_gguf_array_u64(const struct p2pio_gguf_value *v, uint64_t i, uint64_t *out);

/**
 * p2pio_gguf_array_i64() - element @i of an integer array, as p2pio_gguf_value_i64().
 * @v:   an array value.
 * @i:   the element.
 * @out: out: the number.
 *
 * Return: 0, -EINVAL or -ERANGE.
 */
int p2pio_gguf_array_i64(const struct p2pio_gguf_value *v, uint64_t i, int64_t *out);

/**
 * p2pio_gguf_array_f64() - element @i of a float32 or float64 array.
 * @v:   an array value.
 * @i:   the element.
 * @out: out: the number.
 *
 * Return: 0, -EINVAL or -ERANGE.
 */
int p2pio_gguf_array_f64(const struct p2pio_gguf_value *v, uint64_t i, double *out);

/**
 * p2pio_gguf_array_bool() - element @i of a bool array.
 * @v:   an array value.
 * @i:   the element.
 * @out: out: the value.
 *
 * Return: 0, -EINVAL or -ERANGE.
 */
int p2pio_gguf_array_bool(const struct p2pio_gguf_value *v, uint64_t i, bool *out);

/**
 * p2pio_gguf_array_string() - element @i of a string array.
 * @v:   an array value.
 * @i:   the element.
 * @str: out: the NUL-terminated bytes (see p2pio_gguf_value_string()).
 * @len: out: the length; may be NULL.
 *
 * Return: 0, -EINVAL or -ERANGE.
 */
int p2pio_gguf_array_string(const struct p2pio_gguf_value *v, uint64_t i, const char **str,
			    size_t *len);

/**
 * p2pio_gguf_array_array() - element @i of an array of arrays.
 * @v:   an array value.
 * @i:   the element.
 * @out: out: the nested array, itself a value to pass to the p2pio_gguf_array_*() functions.
 *
 * Return: 0, -EINVAL or -ERANGE.
 */
int p2pio_gguf_array_array(const struct p2pio_gguf_value *v, uint64_t i,
			   const struct p2pio_gguf_value **out);

/**
 * p2pio_gguf_array_data() - the packed elements of a numeric or bool array, zero-copy.
 * @v:         an array value.
 * @elem_size: out: bytes per element (1, 2, 4 or 8); may be NULL.
 *
 * The elements are little-endian, as in the file, and the pointer may be unaligned for the
 * element type: copy with memcpy().
 *
 * Return: the first element, or NULL if @v is not an array of numbers or bools (or is empty).
 */
const void *p2pio_gguf_array_data(const struct p2pio_gguf_value *v, size_t *elem_size);

/* ---- tensors ------------------------------------------------------------------------ */

/**
 * struct p2pio_gguf_tensor - what the file says about one tensor, validated.
 * @name:         NUL-terminated; unique in the file; never contains NUL bytes.
 * @type:         ggml type id (enum p2pio_ggml_type), known and not removed.
 * @n_dims:       1..P2PIO_GGUF_MAX_DIMS.
 * @ne:           extents, innermost first; dimensions beyond @n_dims are 1.
 * @size:         bytes of data (p2pio_ggml_tensor_size()).
 * @offset:       offset of the data from the start of the data section (aligned).
 * @file_offset:  absolute offset of the data in the file; the data are
 *                [@file_offset, @file_offset + @size).
 * @layer:        N for a tensor named "blk.N.*", else P2PIO_GGUF_NO_LAYER.
 * @n_experts:    for an MoE expert tensor ("*_exps" names): the number of experts, which is
 *                the outermost extent ne[n_dims - 1]; 0 for any other tensor.
 * @expert_bytes: for an expert tensor, bytes of one expert (@size / @n_experts); expert e is
 *                [@file_offset + e * @expert_bytes, + @expert_bytes). 0 otherwise.
 *
 * Owned by the handle. Later versions may append fields; they never reorder them.
 */
struct p2pio_gguf_tensor {
	const char *name;
	uint32_t type;
	uint32_t n_dims;
	uint64_t ne[P2PIO_GGUF_MAX_DIMS];
	uint64_t size;
	uint64_t offset;
	uint64_t file_offset;
	uint32_t layer;
	uint32_t reserved;
	uint64_t n_experts;
	uint64_t expert_bytes;
};

/**
 * p2pio_gguf_tensor_count() - number of tensors.
 * @g: the handle.
 */
size_t p2pio_gguf_tensor_count(const struct p2pio_gguf *g);

/**
 * p2pio_gguf_tensor() - tensor @i, in the order of the file's tensor infos.
 * @g: the handle.
 * @i: 0 .. p2pio_gguf_tensor_count() - 1.
 *
 * Return: the tensor, or NULL if @i is out of range.
 */
const struct p2pio_gguf_tensor *p2pio_gguf_tensor(const struct p2pio_gguf *g, size_t i);

/**
 * p2pio_gguf_find_tensor() - index of the tensor named @name (a hash lookup).
 * @g:    the handle.
 * @name: the name, e.g. "blk.0.attn_q.weight".
 *
 * Return: the index (>= 0), or -ENOENT.
 */
int p2pio_gguf_find_tensor(const struct p2pio_gguf *g, const char *name);

/**
 * p2pio_gguf_tensor_by_name() - the tensor named @name.
 * @g:    the handle.
 * @name: the name.
 *
 * Return: the tensor, or NULL if there is none of that name.
 */
const struct p2pio_gguf_tensor *p2pio_gguf_tensor_by_name(const struct p2pio_gguf *g,
							  const char *name);

/**
 * p2pio_gguf_tensor_data() - zero-copy, read-only view of tensor @i's data.
 * @g:    the handle.
 * @i:    the tensor.
 * @data: out: @size bytes at the tensor's place in a read-only shared mapping of the file.
 * @err:  filled on failure; may be NULL.
 *
 * The first call maps the file (PROT_READ, MAP_SHARED); pages are read when touched. The
 * mapping lives until p2pio_gguf_close(). Safe to call from several threads.
 *
 * The view is a shared mapping of the file, not a copy: if another process truncates the
 * file, touching the pages past its new end raises SIGBUS, which kills the caller unless it
 * handles the signal. A caller whose file others may truncate (a file it does not own, an
 * untrusted download) should instead read the tensor with pread() on p2pio_gguf_fd() at
 * its file_offset, where a short read is an error it can report; p2pio_gguf_repack() does.
 *
 * Return: 0; -ERANGE if @i is out of range; or the negative errno of mmap().
 */
int p2pio_gguf_tensor_data(struct p2pio_gguf *g, size_t i, const void **data,
			   struct p2pio_error *err);

/**
 * p2pio_gguf_expert_range() - absolute file range of expert @e of expert tensor @i.
 * @g:      the handle.
 * @i:      a tensor with n_experts > 0.
 * @e:      0 .. n_experts - 1.
 * @offset: out: absolute file offset of the expert's slice; may be NULL.
 * @len:    out: its length, the tensor's expert_bytes; may be NULL.
 *
 * Return: 0; -EINVAL if tensor @i is not an expert tensor; -ERANGE if @i or @e is out of range.
 */
int p2pio_gguf_expert_range(const struct p2pio_gguf *g, size_t i, uint64_t e, uint64_t *offset,
			    uint64_t *len);

/**
 * p2pio_gguf_tensor_experts() - the experts of tensor @i, or why it has none.
 * @g:         the handle.
 * @i:         0 .. p2pio_gguf_tensor_count() - 1.
 * @n_experts: out: its expert count (its n_experts); may be NULL.
 * @err:       optional: why it has no experts.
 *
 * A tensor named like an expert tensor ("*_exps") with a single dimension is valid GGUF and
 * is listed as an ordinary tensor (n_experts 0); this is where a caller that needs its
 * experts learns why there are none.
 *
 * Return: 0; -EINVAL if the tensor has no experts (a 1-D "*_exps" tensor, or a name that is
 * not an expert tensor's); -ERANGE if @i is out of range.
 */
int p2pio_gguf_tensor_experts(const struct p2pio_gguf *g, size_t i, uint64_t *n_experts,
			      struct p2pio_error *err);

/* ---- layers and experts --------------------------------------------------------------- */

/**
 * struct p2pio_gguf_layer - the tensors of one layer ("blk.N.*"), or the non-layer tensors.
 * @number:          N, or P2PIO_GGUF_NO_LAYER for the group of non-layer tensors.
 * @n_tensors:       number of tensors in the group.
 * @tensors:         their indices (for p2pio_gguf_tensor()), by increasing file offset.
 * @bytes:           sum of the tensors' sizes.
 * @file_start:      absolute offset of the first tensor's data (0 for an empty group).
 * @file_end:        absolute end of the last tensor's data: the group lies within
 *                   [@file_start, @file_end), with alignment padding between tensors.
 * @contiguous:      true when no tensor of another group lies inside [@file_start, @file_end),
 *                   so one read of that range fetches exactly this group (plus padding).
 * @n_experts:       expert count shared by the group's expert tensors; 0 if it has none.
 * @n_expert_tensors: number of expert tensors in the group.
 * @expert_tensors:  their indices, by increasing file offset.
 * @expert_bytes:    bytes of one expert summed over the group's expert tensors.
 *
 * A name belongs to layer N when it starts with "blk.", then N in decimal (no sign, no
 * leading zero, at most 9 digits), then ".". Owned by the handle; fields may be appended.
 */
struct p2pio_gguf_layer {
	uint32_t number;
	bool contiguous;
	size_t n_tensors;
	const size_t *tensors;
	uint64_t bytes;
	uint64_t file_start;
	uint64_t file_end;
	uint64_t n_experts;
	size_t n_expert_tensors;
	const size_t *expert_tensors;
	uint64_t expert_bytes;
};

/**
 * p2pio_gguf_layer_count() - number of distinct layers "blk.N" in the file.
 * @g: the handle.
 */
size_t p2pio_gguf_layer_count(const struct p2pio_gguf *g);

/**
 * p2pio_gguf_layer() - layer @i, by increasing N.
 * @g: the handle.
 * @i: 0 .. p2pio_gguf_layer_count() - 1. In a model with layers 0..L-1, @i is N.
 *
 * Return: the layer, or NULL if @i is out of range.
 */
const struct p2pio_gguf_layer *p2pio_gguf_layer(const struct p2pio_gguf *g, size_t i);

/**
 * p2pio_gguf_find_layer() - index of layer number @number.
 * @g:      the handle.
 * @number: N of "blk.N".
 *
 * Return: the index for p2pio_gguf_layer() (>= 0), or -ENOENT.
 */
int p2pio_gguf_find_layer(const struct p2pio_gguf *g, uint32_t number);

/**
 * p2pio_gguf_nonlayer() - the group of tensors that belong to no layer.
 * @g: the handle.
 *
 * Token embeddings, output norm and output head, typically. The group may be empty.
 *
 * Return: the group, never NULL; its number is P2PIO_GGUF_NO_LAYER.
 */
const struct p2pio_gguf_layer *p2pio_gguf_nonlayer(const struct p2pio_gguf *g);

/* ---- GGUF writer (userlib/src/gguf/write*.c) -------------------------------------------- */

/*
 * The writer builds a GGUF file in three steps: create it (on a path or an fd, with the
 * data alignment), add metadata and tensor infos in the order they are to appear, then
 * p2pio_gguf_writer_finish() writes header, tensor infos, padding and data in large
 * sequential writes. Tensor data come from a pointer or from a fill callback that
 * generates them chunk by chunk, so files of tens of GB never need to be held in memory.
 *
 * The writer writes only what a strict reader accepts: GGUF v3 (or v2), keys and tensor
 * names unique and non-empty, names of at most 63 bytes (ggml's limit), ggml types from the
 * type table with rows of whole blocks, 1..4 dimensions each > 0, sizes that do not
 * overflow. general.alignment is written by the writer itself (when the alignment is not 32,
 * or when asked to), never by the caller. Each tensor's data is padded with zeros to the
 * alignment, the last one included.
 *
 * Every call but create returns 0 or a negative errno and, on failure, leaves a message in
 * p2pio_gguf_writer_error(). A failed add leaves the writer as it was, except -ENOMEM,
 * after which the writer refuses further work.
 */

/**
 * struct p2pio_gguf_writer - a GGUF file being written (opaque).
 */
struct p2pio_gguf_writer;

/**
 * p2pio_gguf_writer_create() - start writing a GGUF file at @path.
 * @out:       out: the writer, for p2pio_gguf_writer_free(); untouched on failure.
 * @path:      the file to write. Nothing appears there until p2pio_gguf_writer_finish()
 *             succeeds: the data go to a temporary file beside it (same directory), which
 *             finish fsyncs and renames onto @path. An existing file at @path is replaced
 *             only then; a writer freed unfinished removes its temporary file.
 * @alignment: data alignment, a power of two from 1 to 2^30 (GGUF's default is 32).
 * @err:       filled on failure; may be NULL.
 *
 * Return: 0, -EINVAL (bad alignment or path), or the errno of creating the temporary file.
 */
int p2pio_gguf_writer_create(struct p2pio_gguf_writer **out, const char *path,
			     uint32_t alignment, struct p2pio_error *err);

/**
 * p2pio_gguf_writer_create_fd() - start writing a GGUF file to an open file descriptor.
 * @out:       out: the writer.
 * @fd:        open for writing; the file is written with write() from its current position
 *             on (a pipe works too). The caller keeps ownership: the writer neither fsyncs
 *             nor closes it.
 * @alignment: as for p2pio_gguf_writer_create().
 * @err:       filled on failure; may be NULL.
 *
 * Return: 0, -EBADF or -EINVAL.
 */
int p2pio_gguf_writer_create_fd(struct p2pio_gguf_writer **out, int fd, uint32_t alignment,
				struct p2pio_error *err);

/**
 * p2pio_gguf_writer_free() - release a writer; if it did not finish, remove its temporary file.
 * @w: the writer, or NULL.
 */
void p2pio_gguf_writer_free(struct p2pio_gguf_writer *w);

/**
 * p2pio_gguf_writer_error() - what the last failed call on @w said.
 * @w: the writer.
 *
 * Return: the error (code, P2PIO_NO_OFFSET, message); valid until the next call on @w.
 */
const struct p2pio_error *p2pio_gguf_writer_error(const struct p2pio_gguf_writer *w);

/**
 * p2pio_gguf_writer_set_version() - write GGUF version 2 instead of the default, 3.
 * @w:       the writer.
 * @version: 2 or 3 (the two differ only in what big-endian files may do).
 *
 * Return: 0, or -EINVAL.
 */
int p2pio_gguf_writer_set_version(struct p2pio_gguf_writer *w, uint32_t version);

/**
 * p2pio_gguf_writer_keep_alignment_key() - write general.alignment even when it is 32.
 * @w: the writer.
 *
 * Return: 0, or -EINVAL if the writer has finished.
 */
int p2pio_gguf_writer_keep_alignment_key(struct p2pio_gguf_writer *w);

/**
 * p2pio_gguf_writer_add() - add a scalar or string metadata value.
 * @w:     the writer.
 * @key:   the key, unique and not "general.alignment"; NULL to add an element to the
 *         innermost open array (p2pio_gguf_writer_begin_array()), whose element type must
 *         then be @type.
 * @type:  any enum p2pio_gguf_type but P2PIO_GGUF_TYPE_ARRAY.
 * @value: points to the value as a C object of the type: uint8_t, int8_t, uint16_t, int16_t,
 *         uint32_t, int32_t, float, uint8_t (bool: 0 or 1), const char * (a NUL-terminated
 *         string), uint64_t, int64_t, double.
 *
 * Return: 0; -EINVAL (bad type or value, misplaced key), -EEXIST (duplicate key), -ENOMEM.
 */
int p2pio_gguf_writer_add(struct p2pio_gguf_writer *w, const char *key, uint32_t type,
			  const void *value);

/**
 * p2pio_gguf_writer_add_u32() - add a uint32 value; see p2pio_gguf_writer_add().
 * @w:   the writer.
 * @key: the key, or NULL inside an array of uint32.
 * @v:   the value.
 *
 * The typed p2pio_gguf_writer_add_*() functions below behave as p2pio_gguf_writer_add()
 * with the corresponding type.
 *
 * Return: 0 or a negative errno.
 */
int p2pio_gguf_writer_add_u32(struct p2pio_gguf_writer *w, const char *key, uint32_t v);

/**
 * p2pio_gguf_writer_add_i32() - add an int32 value.
 * @w:   the writer.
 * @key: the key, or NULL inside an array of int32.
 * @v:   the value.
 *
 * Return: 0 or a negative errno.
 */
int p2pio_gguf_writer_add_i32(struct p2pio_gguf_writer *w, const char *key, int32_t v);

/**
 * p2pio_gguf_writer_add_u64() - add a uint64 value.
 * @w:   the writer.
 * @key: the key, or NULL inside an array of uint64.
 * @v:   the value.
 *
 * Return: 0 or a negative errno.
 */
int p2pio_gguf_writer_add_u64(struct p2pio_gguf_writer *w, const char *key, uint64_t v);

/**
 * p2pio_gguf_writer_add_f32() - add a float32 value.
 * @w:   the writer.
 * @key: the key, or NULL inside an array of float32.
 * @v:   the value.
 *
 * Return: 0 or a negative errno.
 */
int p2pio_gguf_writer_add_f32(struct p2pio_gguf_writer *w, const char *key, float v);

/**
 * p2pio_gguf_writer_add_bool() - add a bool value.
 * @w:   the writer.
 * @key: the key, or NULL inside an array of bool.
 * @v:   the value.
 *
 * Return: 0 or a negative errno.
 */
int p2pio_gguf_writer_add_bool(struct p2pio_gguf_writer *w, const char *key, bool v);

/**
 * p2pio_gguf_writer_add_str() - add a NUL-terminated string value.
 * @w:   the writer.
 * @key: the key, or NULL inside an array of strings.
 * @s:   the string.
 *
 * Return: 0 or a negative errno.
 */
int p2pio_gguf_writer_add_str(struct p2pio_gguf_writer *w, const char *key, const char *s);

/**
 * p2pio_gguf_writer_add_str_n() - add a string of @len bytes, which may contain NUL bytes.
 * @w:   the writer.
 * @key: the key, or NULL inside an array of strings.
 * @s:   the bytes (NULL allowed when @len is 0).
 * @len: their number.
 *
 * Return: 0 or a negative errno.
 */
int p2pio_gguf_writer_add_str_n(struct p2pio_gguf_writer *w, const char *key, const char *s,
				size_t len);

/**
 * p2pio_gguf_writer_add_array() - add an array of scalars or strings in one call.
 * @w:     the writer.
 * @key:   the key; NULL to add the array as an element of the innermost open array, which
 *         must be an array of arrays.
 * @type:  element type, any but P2PIO_GGUF_TYPE_ARRAY (arrays of arrays are built with
 *         p2pio_gguf_writer_begin_array()).
 * @data:  @count elements as a C array of the type's C object (see p2pio_gguf_writer_add());
 *         for strings, an array of @count NUL-terminated const char *.
 * @count: number of elements; 0 makes an empty array.
 *
 * Return: 0 or a negative errno.
 */
int p2pio_gguf_writer_add_array(struct p2pio_gguf_writer *w, const char *key, uint32_t type,
				const void *data, uint64_t count);

/**
 * p2pio_gguf_writer_begin_array() - open an array whose elements are added one by one.
 * @w:     the writer.
 * @key:   the key; NULL to open a nested array as the next element of an array of arrays.
 * @type:  element type; P2PIO_GGUF_TYPE_ARRAY for an array of arrays.
 * @count: the number of elements that will be added before p2pio_gguf_writer_end_array().
 *
 * Elements are then added with a NULL key (p2pio_gguf_writer_add*(), and for arrays of
 * arrays p2pio_gguf_writer_add_array() or a nested begin_array()). Arrays nest at most
 * P2PIO_GGUF_MAX_DEPTH deep.
 *
 * Return: 0; -EINVAL, -EEXIST, -E2BIG (too deep), -ENOMEM.
 */
int p2pio_gguf_writer_begin_array(struct p2pio_gguf_writer *w, const char *key, uint32_t type,
				  uint64_t count);

/**
 * p2pio_gguf_writer_end_array() - close the innermost open array.
 * @w: the writer.
 *
 * Return: 0, or -EINVAL if no array is open or fewer elements than its count were added.
 */
int p2pio_gguf_writer_end_array(struct p2pio_gguf_writer *w);

/**
 * struct p2pio_gguf_new_tensor - a tensor to add to a writer.
 * @name:   unique, 1 to 63 bytes.
 * @type:   ggml type id (enum p2pio_ggml_type).
 * @n_dims: 1..P2PIO_GGUF_MAX_DIMS.
 * @ne:     the extents, innermost first, each > 0; ne[0] a multiple of the type's block.
 * @data:   the tensor's bytes, which must stay valid until p2pio_gguf_writer_finish()
 *          returns; or NULL when @fill generates them.
 * @fill:   called by p2pio_gguf_writer_finish(), in order, for consecutive chunks of the
 *          tensor: fill @len bytes at @buf with the tensor's bytes @tensor_off ..
 *          @tensor_off + @len - 1, which land at absolute file offset @file_off. Returns 0,
 *          or a negative errno that makes finish fail. NULL when @data is given.
 * @arg:    passed to @fill.
 *
 * Fields may be appended in later versions: zero-initialise the struct.
 */
struct p2pio_gguf_new_tensor {
	const char *name;
	uint32_t type;
	uint32_t n_dims;
	uint64_t ne[P2PIO_GGUF_MAX_DIMS];
	const void *data;
	int (*fill)(void *arg, void *buf, size_t len, uint64_t tensor_off, uint64_t file_off);
	void *arg;
};

/**
 * p2pio_gguf_writer_add_tensor() - add a tensor; its data go after those of earlier tensors.
 * @w: the writer.
 * @t: the tensor (copied, except the memory @t->data points to).
 *
 * Return: 0; -EINVAL (bad type, shape or data source), -ENAMETOOLONG, -EEXIST (duplicate
 * name), -ENOTSUP (removed ggml type), -ERANGE (sizes overflow), -ENOMEM.
 */
int p2pio_gguf_writer_add_tensor(struct p2pio_gguf_writer *w, const struct p2pio_gguf_new_tensor *t);

/**
 * p2pio_gguf_writer_layout() - where the data section starts and how large the file will be,
 *                              with what has been added so far.
 * @w:           the writer.
 * @data_offset: out: absolute offset of the data section; may be NULL.
 * @file_size:   out: the size of the whole file; may be NULL.
 *
 * Useful to report a file's size without writing it, and to know where tensors will land.
 */
void p2pio_gguf_writer_layout(const struct p2pio_gguf_writer *w, uint64_t *data_offset,
			      uint64_t *file_size);

/**
 * p2pio_gguf_writer_finish() - write the file.
 * @w: the writer.
 *
 * Writes header, metadata, tensor infos, padding and every tensor's data (calling the fill
 * callbacks) in 8 MiB sequential writes, generation overlapping output. A writer created on
 * a path then fsyncs the file and renames it into place. Call once; afterwards only
 * p2pio_gguf_writer_error() and p2pio_gguf_writer_free() may be called.
 *
 * Return: 0; -EINVAL (an array is still open, already finished), a fill callback's error,
 * or the errno of write, fsync or rename.
 */
int p2pio_gguf_writer_finish(struct p2pio_gguf_writer *w);

/**
 * p2pio_gguf_pattern_fill() - a fill callback for struct p2pio_gguf_new_tensor that writes
 *                             the test pattern (see p2pio_pattern_fill()).
 * @arg:        points to the uint64_t pattern seed.
 * @buf:        where to write.
 * @len:        bytes to write.
 * @tensor_off: unused: the pattern depends on the file offset only.
 * @file_off:   absolute file offset of @buf[0].
 *
 * Return: 0, or -EINVAL when @arg is NULL.
 */
int p2pio_gguf_pattern_fill(void *arg, void *buf, size_t len, uint64_t tensor_off,
			    uint64_t file_off);

/* ---- GGUF repack (userlib/src/gguf/repack.c) ------------------------------------------ */

/**
 * p2pio_gguf_repack() - copy a GGUF file with every tensor aligned to @alignment bytes.
 * @in:        the model to copy; never modified.
 * @out:       the new file; must not be @in (not the same path, nor the same file through
 *             another name). It is written to a temporary file beside @out, fsynced,
 *             verified, and only then renamed onto @out.
 * @alignment: a power of two, 32 to 2^30; 4096 makes every tensor an exact, LBA-aligned read.
 * @err:       filled on failure (the reader's error for a bad input); may be NULL.
 *
 * The copy keeps the GGUF version, every metadata pair in order (general.alignment set to
 * @alignment, added if absent and @alignment is not 32) and every tensor in order. The
 * verification reopens the copy with the reader and compares every metadata value and
 * every tensor's info and bytes with the input. Tensor data are read with pread(), never
 * through a mapping, so an input that another process truncates meanwhile is an error
 * (-ENODATA), not a SIGBUS.
 *
 * Return: 0; -EINVAL (bad alignment, @out is @in), -EIO (the copy did not verify), -ENODATA
 * (@in shrank while it was read), or the error of reading @in or writing @out. On failure
 * nothing is left at @out that was not there before.
 */
int p2pio_gguf_repack(const char *in, const char *out, uint32_t alignment,
		      struct p2pio_error *err);

/* ---- the deterministic test pattern (userlib/src/common/pattern.[ch]) ------------------ */

/**
 * P2PIO_PATTERN_SEED_KEY - metadata key (uint64) under which synthetic models carry the seed
 * of the pattern their tensor data were generated with.
 */
#define P2PIO_PATTERN_SEED_KEY "p2pio.pattern.seed"

/**
 * p2pio_pattern_fill() - fill a buffer with the test pattern of a file range.
 * @seed:   the pattern seed.
 * @offset: absolute file offset of @buf[0]; any alignment.
 * @buf:    where to write.
 * @len:    bytes to write.
 *
 * The pattern is a pure function of (seed, offset): the little-endian 64-bit word at file
 * offset 8*i is splitmix64-mix(seed ^ (i * 0x9e3779b97f4a7c15)). userlib/src/common/pattern.h holds
 * the same code as dependency-free static inline functions for CUDA kernels and test
 * programs.
 */
void p2pio_pattern_fill(uint64_t seed, uint64_t offset, void *buf, size_t len);

/**
 * p2pio_pattern_check() - compare a buffer with the test pattern of a file range.
 * @seed:     the pattern seed.
 * @offset:   absolute file offset @buf[0] came from; any alignment.
 * @buf:      the bytes to check.
 * @len:      their number.
 * @mismatch: out: the absolute file offset of the first byte that differs; may be NULL.
 *
 * Return: true when all @len bytes match.
 */
bool p2pio_pattern_check(uint64_t seed, uint64_t offset, const void *buf, size_t len,
			 uint64_t *mismatch);

#ifdef __cplusplus
}
#endif

#endif /* P2PIO_PUBLIC_GGUF_H */
