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
 * mapping lives until p2pio_gguf_close(). Safe to call from several threads. If the file
 * is truncated behind the handle's back, touching the missing pages raises SIGBUS, as with
 * any mapping: files being read must not be modified.
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
 * every tensor's info and bytes with the input.
 *
 * Return: 0; -EINVAL (bad alignment, @out is @in), -EIO (the copy did not verify), or the
 * error of reading @in or writing @out. On failure nothing is left at @out that was not
 * there before.
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


/* ===================================================================================== */
/* Context, memory and I/O engine                  (userlib/src/engine/)                    */
/* ===================================================================================== */

/*
 * A context is one process's use of one GPU (or of host memory only). Files are opened on a
 * context; destination memory is described by buffers; reads go from a file range into a
 * buffer range by one of three paths:
 *
 *  P2P     the p2pio kernel module (/dev/p2pio) has the NVMe drive DMA straight into pinned
 *          GPU memory;
 *  BOUNCE  O_DIRECT reads through io_uring into a ring of pinned host buffers, overlapped
 *          with asynchronous host-to-device copies;
 *  POSIX   buffered (page-cache) reads by a pool of threads through pinned staging.
 *
 * P2PIO_PATH_AUTO takes the fastest one the file, the memory and the machine allow, and
 * records why each faster one was not taken (p2pio_path_info()). Any offset, length and
 * destination alignment is accepted: the library rounds to what a path needs and never
 * writes outside the destination range it was given. Documentation/engine.md describes the
 * paths and how their defaults were measured.
 */

/* The device index for a context without a GPU: every path reads into host memory. */
#define P2PIO_DEVICE_HOST (-1)

/**
 * enum p2pio_path - how bytes travel from a file into destination memory.
 * @P2PIO_PATH_AUTO:   pick per file: P2P where it qualifies, else BOUNCE, else POSIX.
 * @P2PIO_PATH_P2P:    NVMe DMA into pinned GPU memory through /dev/p2pio.
 * @P2PIO_PATH_BOUNCE: O_DIRECT + io_uring into pinned host buffers, then async copies.
 * @P2PIO_PATH_POSIX:  buffered reads by threads, through pinned staging.
 */
enum p2pio_path {
	P2PIO_PATH_AUTO = 0,
	P2PIO_PATH_P2P = 1,
	P2PIO_PATH_BOUNCE = 2,
	P2PIO_PATH_POSIX = 3,
};

/* Number of enum p2pio_path values: the size of per-path arrays, indexed by the path. */
#define P2PIO_PATH_NR 4

/**
 * p2pio_path_name() - "auto", "p2p", "bounce" or "posix".
 * @path: a path.
 *
 * Return: a static string; "?" for a value that is not a path.
 */
const char *p2pio_path_name(enum p2pio_path path);

/* Context flags (struct p2pio_ctx_opts.flags). */
/* AUTO: do not prefer POSIX for files that are already in the page cache. */
#define P2PIO_CTX_NO_WARM_CHECK (1u << 0)
/*
 * BOUNCE: hand every read to io_uring's worker threads (IOSQE_ASYNC) instead of issuing it
 * from the engine's own submitting threads first.
 */
#define P2PIO_CTX_BOUNCE_ASYNC (1u << 1)

/**
 * struct p2pio_ctx_opts - how a context reads; grows at the end, so set @size.
 * @size:          sizeof(struct p2pio_ctx_opts) as the caller compiled it.
 * @device:        CUDA device ordinal, or P2PIO_DEVICE_HOST for host memory only.
 * @path:          the path for files opened on this context (P2PIO_PATH_AUTO by default).
 * @queue_depth:   reads in flight per path (io_uring depth for BOUNCE, commands for P2P);
 *                 0 for the default.
 * @threads:       POSIX reader threads, and BOUNCE submitting threads (each with its own
 *                 io_uring, sharing @queue_depth; at most @queue_depth of them); 0 for
 *                 the default (one per CPU, 4 to 16).
 * @chunk_size:    bytes per read command and per staging buffer; 0 for the default.
 * @staging_bytes: pinned host memory shared by the BOUNCE threads (rounded down to whole
 *                 chunks, at least @queue_depth + 2 chunks); 0 for the default (enough for
 *                 each BOUNCE thread's reads plus one copy each, at least 96 MiB).
 * @pin_window:    P2P: bytes of GPU memory pinned at a time per window (64 KiB multiple);
 *                 0 for the default.
 * @flags:         P2PIO_CTX_* flags.
 *
 * Zeros mean "the measured default"; p2pio_ctx_get_opts() reports the values in use.
 */
struct p2pio_ctx_opts {
	size_t size;
	int device;
	enum p2pio_path path;
	uint32_t queue_depth;
	uint32_t threads;
	uint64_t chunk_size;
	uint64_t staging_bytes;
	uint64_t pin_window;
	uint32_t flags;
	uint32_t reserved;
};

/**
 * p2pio_ctx_opts_init() - fill @opts with defaults: device 0 if CUDA has one, else host.
 * @opts: options to initialise (all of it; @size is set).
 */
void p2pio_ctx_opts_init(struct p2pio_ctx_opts *opts);

struct p2pio_ctx;

/**
 * p2pio_ctx_create() - create a context.
 * @opts: options (NULL for the defaults of p2pio_ctx_opts_init()).
 * @ctxp: the new context.
 * @err:  optional; says why creation failed (e.g. "CUDA device 3 not usable: ...").
 *
 * A GPU context retains the device's primary CUDA context (the one the CUDA runtime uses),
 * so device pointers and streams of the runtime work with it.
 *
 * Return: 0, -EINVAL (bad options), -ENODEV (no such CUDA device, or no libcuda), -ENOMEM.
 */
int p2pio_ctx_create(const struct p2pio_ctx_opts *opts, struct p2pio_ctx **ctxp,
		     struct p2pio_error *err);

/**
 * p2pio_ctx_destroy() - wait for every read in flight, stop the engine, free the context.
 * @ctx: a context, or NULL. Its files, buffers and queues must be closed first.
 */
void p2pio_ctx_destroy(struct p2pio_ctx *ctx);

/**
 * p2pio_ctx_get_opts() - the options in use, defaults resolved.
 * @ctx:  a context.
 * @opts: filled up to @opts->size bytes (set it first).
 *
 * Return: 0 or -EINVAL.
 */
int p2pio_ctx_get_opts(const struct p2pio_ctx *ctx, struct p2pio_ctx_opts *opts);

/**
 * p2pio_ctx_device() - the context's CUDA device ordinal, or P2PIO_DEVICE_HOST.
 * @ctx: a context.
 */
int p2pio_ctx_device(const struct p2pio_ctx *ctx);

/**
 * p2pio_ctx_cuda_context() - the CUcontext the library uses (the primary one), or NULL.
 * @ctx: a context.
 */
void *p2pio_ctx_cuda_context(const struct p2pio_ctx *ctx);

/**
 * enum p2pio_mem - what kind of memory a buffer is.
 * @P2PIO_MEM_HOST:     host memory (any process memory the caller can write).
 * @P2PIO_MEM_CUDA:     CUDA device memory (a CUdeviceptr from cuMemAlloc or cudaMalloc) on
 *                      the context's device.
 * @P2PIO_MEM_NVDOUBLE: "GPU memory" of the NVIDIA test double (tests/vm/nvdouble); only the
 *                      VM tests use it, through p2pio_buf_alloc() on a host context.
 */
enum p2pio_mem {
	P2PIO_MEM_HOST = 0,
	P2PIO_MEM_CUDA = 1,
	P2PIO_MEM_NVDOUBLE = 2,
};

struct p2pio_buf;

/**
 * p2pio_buf_register() - describe destination memory the caller owns.
 * @ctx:  a context.
 * @mem:  the memory's kind (P2PIO_MEM_CUDA needs a GPU context).
 * @addr: start: a host pointer cast to uint64_t, or a CUdeviceptr.
 * @len:  length in bytes, > 0.
 * @bufp: the new buffer.
 * @err:  optional; why registration failed.
 *
 * Registration is cheap: P2P pins windows of device memory through the module lazily, on
 * the first read into them, and unpins the least recently used window when the GPU's BAR1
 * space runs out.
 *
 * Return: 0, -EINVAL, -ENODEV (device memory on a host context), -ENOMEM.
 */
int p2pio_buf_register(struct p2pio_ctx *ctx, enum p2pio_mem mem, uint64_t addr, uint64_t len,
		       struct p2pio_buf **bufp, struct p2pio_error *err);

/**
 * p2pio_buf_alloc() - allocate destination memory of @mem's kind and register it.
 * @ctx:  a context.
 * @mem:  P2PIO_MEM_CUDA (cuMemAlloc on the context's device), P2PIO_MEM_HOST (page-aligned
 *        host memory) or P2PIO_MEM_NVDOUBLE (the test double's allocator).
 * @len:  bytes, > 0.
 * @bufp: the new buffer; p2pio_buf_free() releases the memory too.
 * @err:  optional; why allocation failed.
 *
 * Return: 0, -EINVAL, -ENODEV, -ENOMEM.
 */
int p2pio_buf_alloc(struct p2pio_ctx *ctx, enum p2pio_mem mem, uint64_t len,
		    struct p2pio_buf **bufp, struct p2pio_error *err);

/**
 * p2pio_buf_free() - unpin, unregister and (if p2pio_buf_alloc() made it) free a buffer.
 * @buf: a buffer with no reads in flight, or NULL.
 */
void p2pio_buf_free(struct p2pio_buf *buf);

/**
 * p2pio_buf_addr() - the buffer's start address (host pointer or CUdeviceptr).
 * @buf: a buffer.
 */
uint64_t p2pio_buf_addr(const struct p2pio_buf *buf);

/**
 * p2pio_buf_host_ptr() - a CPU mapping of the buffer, or NULL (CUDA device memory).
 * @buf: a buffer. Host memory maps to itself; test-double memory to its BAR mapping.
 */
void *p2pio_buf_host_ptr(const struct p2pio_buf *buf);

struct p2pio_file;

/**
 * p2pio_file_open() - open a file for reading on a context and choose its path.
 * @ctx:   a context.
 * @path:  the file's path.
 * @flags: 0 for the context's path, or an enum p2pio_path value to force one for this file.
 * @filep: the new file.
 * @err:   optional; why the file cannot be read by the forced path, or opened at all.
 *
 * For P2P the file is registered with the module, which denies writers (ETXTBSY) while it is
 * open here. AUTO records why each faster path was not taken; a forced path that does not
 * qualify fails with its reason.
 *
 * Return: 0, -errno of open(2), -EOPNOTSUPP (forced path not possible here), -ENOMEM.
 */
int p2pio_file_open(struct p2pio_ctx *ctx, const char *path, unsigned int flags,
		    struct p2pio_file **filep, struct p2pio_error *err);

/**
 * p2pio_file_open_fd() - like p2pio_file_open() for an fd the caller opened for reading.
 * @ctx:   a context.
 * @fd:    a readable regular file; the library keeps its own duplicate, so the caller may
 *         close @fd at once.
 * @flags: as for p2pio_file_open().
 * @filep: the new file.
 * @err:   optional.
 *
 * Return: as p2pio_file_open(); -EBADF for a bad fd.
 */
int p2pio_file_open_fd(struct p2pio_ctx *ctx, int fd, unsigned int flags,
		       struct p2pio_file **filep, struct p2pio_error *err);

/**
 * p2pio_file_close() - unregister and close a file with no reads in flight.
 * @file: a file, or NULL.
 */
void p2pio_file_close(struct p2pio_file *file);

/**
 * p2pio_file_size() - the file's size in bytes when it was opened.
 * @file: a file.
 */
uint64_t p2pio_file_size(const struct p2pio_file *file);

/* Length of each reason string in struct p2pio_path_info. */
#define P2PIO_REASON_LEN 192

/**
 * struct p2pio_path_info - which path a file's reads take and why.
 * @size:      sizeof(struct p2pio_path_info) as the caller compiled it.
 * @path:      the file's path (never AUTO).
 * @why:       why that path: "forced by the caller", "AUTO: fastest qualifying path", ...
 * @why_not:   indexed by enum p2pio_path: for each path faster than @path, why it was not
 *             taken ("P2P: /dev/p2pio not present", "BOUNCE: O_DIRECT not supported by
 *             tmpfs", ...); empty for the others. A read that had to leave @path (host
 *             memory cannot take P2P) records its reason here too.
 * @dio_align: file offset alignment O_DIRECT needs (0 without O_DIRECT).
 * @lba_size:  the namespace's logical block size for P2P (0 without P2P).
 */
struct p2pio_path_info {
	size_t size;
	enum p2pio_path path;
	uint32_t dio_align;
	uint32_t lba_size;
	uint32_t reserved;
	char why[P2PIO_REASON_LEN];
	char why_not[P2PIO_PATH_NR][P2PIO_REASON_LEN];
};

/**
 * p2pio_path_info() - the path @file's reads take, and the reasons.
 * @file: a file.
 * @info: filled up to @info->size bytes (set it first).
 *
 * Return: 0 or -EINVAL.
 */
int p2pio_path_info(struct p2pio_file *file, struct p2pio_path_info *info);

/**
 * p2pio_read() - read @len bytes at @off of @file into @buf at @buf_off; wait for them.
 * @file:    a file.
 * @off:     file offset; any alignment.
 * @len:     bytes; any length (0 is a no-op). The range must lie inside the file.
 * @buf:     destination buffer.
 * @buf_off: offset in @buf; any alignment. [@buf_off, @buf_off + @len) must lie in @buf.
 *
 * Return: 0 once every byte is in place (device memory included), -EINVAL (range outside
 * @buf), -ENODATA (range beyond the end of the file, or the file shrank), -EIO or another
 * -errno from the path.
 */
int p2pio_read(struct p2pio_file *file, uint64_t off, uint64_t len, struct p2pio_buf *buf,
	       uint64_t buf_off);

struct p2pio_queue;

/**
 * p2pio_queue_create() - a submission/completion queue for asynchronous reads.
 * @ctx: a context.
 * @qp:  the new queue.
 *
 * Queues are independent: each has its own completions and pollable fd. A queue is used by
 * one thread at a time.
 *
 * Return: 0, -ENOMEM, or -errno of eventfd(2).
 */
int p2pio_queue_create(struct p2pio_ctx *ctx, struct p2pio_queue **qp);

/**
 * p2pio_queue_destroy() - wait for the queue's reads in flight and free it.
 * @q: a queue, or NULL. Completions not reaped are dropped.
 */
void p2pio_queue_destroy(struct p2pio_queue *q);

/**
 * p2pio_queue_fd() - an fd that polls readable while completions wait to be reaped.
 * @q: a queue.
 *
 * Return: an eventfd owned by the queue; do not read or close it, p2pio_complete() does.
 */
int p2pio_queue_fd(const struct p2pio_queue *q);

/* Request flags (struct p2pio_req.flags). */
/* @stream is set: work queued on it after p2pio_submit() waits for this read. */
#define P2PIO_REQ_STREAM (1u << 0)

/**
 * struct p2pio_req - one asynchronous read.
 * @file:        source file.
 * @file_offset: offset in the file; any alignment.
 * @length:      bytes; the range must lie inside the file.
 * @buf:         destination buffer.
 * @buf_offset:  offset in @buf; any alignment.
 * @tag:         the caller's value, handed back in the completion.
 * @stream:      with P2PIO_REQ_STREAM, a CUstream of the context's device: work the caller
 *               queues on it after p2pio_submit() runs only once this read's data is in
 *               place (the stream waits on a completion flag; the device is never
 *               synchronised). The stream is released when the read fails too: check the
 *               completion before trusting the data.
 * @flags:       P2PIO_REQ_* flags.
 * @reserved:    must be 0.
 */
struct p2pio_req {
	struct p2pio_file *file;
	uint64_t file_offset;
	uint64_t length;
	struct p2pio_buf *buf;
	uint64_t buf_offset;
	uint64_t tag;
	void *stream;
	uint32_t flags;
	uint32_t reserved;
};

/**
 * struct p2pio_cqe - one completed read.
 * @tag:        the request's tag.
 * @res:        0, or the negative errno that failed it (p2pio_read()'s values).
 * @path:       the enum p2pio_path that served it.
 * @bytes:      bytes placed in the destination (the request's length on success).
 * @latency_ns: from submission to completion.
 */
struct p2pio_cqe {
	uint64_t tag;
	int32_t res;
	uint32_t path;
	uint64_t bytes;
	uint64_t latency_ns;
};

/**
 * p2pio_submit() - queue reads; they run in any order and in parallel.
 * @q:    a queue.
 * @reqs: requests; checked one by one, in order.
 * @nr:   number of requests.
 *
 * Return: the number queued. When request i is invalid, the ones before it are queued and
 * i is returned; when the first is invalid, its negative errno: -EINVAL (bad range, buffer
 * or flags), -ENODATA (beyond the end of the file), -ENODEV (a stream on a host context),
 * -EAGAIN (too many stream-ordered reads in flight).
 */
int p2pio_submit(struct p2pio_queue *q, const struct p2pio_req *reqs, unsigned int nr);

/**
 * p2pio_complete() - reap completions.
 * @q:          a queue.
 * @cqes:       where to put them.
 * @max:        at most this many.
 * @min:        wait until at least this many are available (0: do not wait).
 * @timeout_ms: give up waiting after this long; negative waits for ever.
 *
 * Return: the number reaped (possibly fewer than @min on time-out), or -EINVAL.
 */
int p2pio_complete(struct p2pio_queue *q, struct p2pio_cqe *cqes, unsigned int max,
		   unsigned int min, int timeout_ms);

/**
 * p2pio_inflight() - reads submitted on @q and not yet reaped.
 * @q: a queue.
 */
unsigned int p2pio_inflight(const struct p2pio_queue *q);

/**
 * struct p2pio_path_stats - counters of one path.
 * @requests:   reads completed.
 * @errors:     of those, reads that failed.
 * @bytes:      bytes delivered into destinations.
 * @bytes_read: bytes read from storage (more than @bytes where rounding to blocks read
 *              extra).
 * @latency_ns: sum over reads of submission-to-completion time.
 */
struct p2pio_path_stats {
	uint64_t requests;
	uint64_t errors;
	uint64_t bytes;
	uint64_t bytes_read;
	uint64_t latency_ns;
};

/**
 * struct p2pio_ctx_stats - a context's counters since creation (or the last reset).
 * @size:    sizeof(struct p2pio_ctx_stats) as the caller compiled it.
 * @path:    per path, indexed by enum p2pio_path ([P2PIO_PATH_AUTO] is the total).
 * @waits:   calls that blocked waiting for completions (p2pio_read(), p2pio_complete()).
 * @wait_ns: time spent blocked in them.
 */
struct p2pio_ctx_stats {
	size_t size;
	struct p2pio_path_stats path[P2PIO_PATH_NR];
	uint64_t waits;
	uint64_t wait_ns;
};

/**
 * p2pio_ctx_stats() - read (and optionally reset) a context's counters.
 * @ctx:   a context.
 * @stats: filled up to @stats->size bytes (set it first).
 * @reset: zero the counters after reading them.
 *
 * Return: 0 or -EINVAL.
 */
int p2pio_ctx_stats(struct p2pio_ctx *ctx, struct p2pio_ctx_stats *stats, bool reset);

/* ===================================================================================== */
/* Where the bytes lie: extents and PCIe topology       (userlib/src/placement/)         */
/* ===================================================================================== */

/*
 * Extents: a userspace view of where a file's bytes lie on its block device, for
 * planning reads and for display (p2pio-gguf --extents, p2pio-check). The P2P path never
 * trusts these numbers: the kernel module resolves blocks itself. What they are good for
 * is saying, before any read, whether a file can be read peer to peer at all, and how
 * fragmented it is.
 */

/*
 * Flags of an extent. The ones in P2PIO_EXTENT_NOT_RAW mark bytes that are not plain
 * written data at a known place on the device, which P2P (raw LBA reads) must never read.
 */
#define P2PIO_EXTENT_LAST	 (1u << 0)  /* the file's last extent */
#define P2PIO_EXTENT_UNKNOWN	 (1u << 1)  /* location not known yet */
#define P2PIO_EXTENT_DELALLOC	 (1u << 2)  /* delayed allocation: no blocks yet */
#define P2PIO_EXTENT_ENCODED	 (1u << 3)  /* compressed or otherwise encoded */
#define P2PIO_EXTENT_ENCRYPTED	 (1u << 4)  /* encrypted on disk */
#define P2PIO_EXTENT_UNALIGNED	 (1u << 5)  /* not block aligned on the device */
#define P2PIO_EXTENT_INLINE	 (1u << 6)  /* data inside the metadata (inode) */
#define P2PIO_EXTENT_TAIL	 (1u << 7)  /* packed with other files' tails */
#define P2PIO_EXTENT_UNWRITTEN	 (1u << 8)  /* allocated (fallocate) but reads as zeros */
#define P2PIO_EXTENT_MERGED	 (1u << 9)  /* the file system merged several extents */
#define P2PIO_EXTENT_SHARED	 (1u << 10) /* shared with another file (reflink) */
#define P2PIO_EXTENT_HOLE	 (1u << 16) /* no extent: a hole, reads as zeros */

#define P2PIO_EXTENT_NOT_RAW                                                              \
	(P2PIO_EXTENT_UNKNOWN | P2PIO_EXTENT_DELALLOC | P2PIO_EXTENT_ENCODED |             \
	 P2PIO_EXTENT_ENCRYPTED | P2PIO_EXTENT_UNALIGNED | P2PIO_EXTENT_INLINE |           \
	 P2PIO_EXTENT_TAIL | P2PIO_EXTENT_UNWRITTEN | P2PIO_EXTENT_SHARED | P2PIO_EXTENT_HOLE)

/**
 * struct p2pio_extent - one extent of a file, as the file system reports it (FIEMAP).
 * @file_offset: byte offset in the file.
 * @length:      bytes.
 * @physical:    byte offset on the file system's block device (the partition, if any);
 *               meaningless with P2PIO_EXTENT_UNKNOWN or P2PIO_EXTENT_DELALLOC.
 * @flags:       P2PIO_EXTENT_* flags.
 *
 * Neighbours that are contiguous in the file and on the device and have the same flags
 * are merged (ext4 splits long runs into 128 MiB extents).
 */
struct p2pio_extent {
	uint64_t file_offset;
	uint64_t length;
	uint64_t physical;
	uint32_t flags;
	uint32_t reserved;
};

/**
 * struct p2pio_blockdev - the block device a file system lives on, read from sysfs and,
 * for NVMe namespaces, from libnvme.
 * @major:         device number of the file system's device (st_dev).
 * @minor:         ...
 * @name:          kernel name of that device ("nvme0n1p2", "vda", "loop0"); empty when
 *                 the file system has no block device (tmpfs, overlay, NFS).
 * @disk:          the whole disk it is a partition of (or @name itself).
 * @part_start:    byte offset of the partition on @disk (0 for a whole disk).
 * @is_partition:  @name is a partition of @disk.
 * @is_stacked:    @disk is a device-mapper, md, loop or other stacked device.
 * @is_nvme:       @disk is an NVMe namespace (nvmeXnY).
 * @is_pcie:       the NVMe controller is a local PCIe function (not over fabrics).
 * @is_multipath:  @disk is a native multipath head (nvmeXnY with no single controller).
 * @nsid:          NVMe namespace id (0 when not NVMe).
 * @ctrl:          NVMe controller name ("nvme0"), or empty.
 * @pci_addr:      the PCI function ("0000:01:00.0") of the NVMe controller or of the
 *                 disk's device, or empty.
 * @transport:     NVMe transport ("pcie", "tcp", "rdma", "fc", "loop"), or empty.
 * @model:         model string of the disk, if sysfs has one.
 * @lba_size:      logical block size in bytes (the namespace's LBA format for NVMe).
 * @metadata_size: metadata bytes per LBA (NVMe; P2P refuses namespaces that have some).
 * @max_hw_bytes:  the largest single request the device takes (max_hw_sectors_kb, which
 *                 folds NVMe's MDTS), in bytes.
 * @size:          bytes of @disk.
 * @source:        where the NVMe numbers came from: "libnvme" or "sysfs".
 * @why_not:       empty when the device can take P2P reads as far as userspace can tell;
 *                 otherwise the reason, as a sentence.
 */
struct p2pio_blockdev {
	unsigned int major;
	unsigned int minor;
	char name[32];
	char disk[32];
	uint64_t part_start;
	bool is_partition;
	bool is_stacked;
	bool is_nvme;
	bool is_pcie;
	bool is_multipath;
	uint32_t nsid;
	char ctrl[32];
	char pci_addr[32];
	char transport[16];
	char model[64];
	uint32_t lba_size;
	uint32_t metadata_size;
	uint64_t max_hw_bytes;
	uint64_t size;
	char source[16];
	char why_not[160];
};

/**
 * p2pio_blockdev_probe() - describe the block device with number @major:@minor.
 * @sysfs:  the sysfs root ("/sys"; tests pass a synthetic tree). With "/sys", NVMe
 *          namespaces are also asked through libnvme where that works.
 * @major:  device number, e.g. major(st.st_dev).
 * @minor:  ...
 * @out:    filled on success.
 * @err:    optional error details.
 *
 * A device number with no block device behind it (tmpfs, overlay) is not an error: @out
 * gets an empty @name and a @why_not.
 *
 * Return: 0, or a negative errno when sysfs could not be read.
 */
int p2pio_blockdev_probe(const char *sysfs, unsigned int major, unsigned int minor,
			 struct p2pio_blockdev *out, struct p2pio_error *err);

/* Flags for p2pio_extents_open(). */
#define P2PIO_EXTENTS_SYNC (1u << 0) /* flush dirty data first, so delalloc gets blocks */

/* Opaque: a file's extents and its block device. */
struct p2pio_extents;

/**
 * p2pio_extents_open() - read where the file open as @fd lies.
 * @fd:    a regular file open for reading.
 * @flags: P2PIO_EXTENTS_* flags.
 * @out:   the new object, freed with p2pio_extents_free().
 * @err:   optional error details.
 *
 * Return: 0; -EOPNOTSUPP when the file system has no FIEMAP (the object is then not
 * created: such a file can only be read through the page cache); other negative errnos.
 */
int p2pio_extents_open(int fd, unsigned int flags, struct p2pio_extents **out,
		       struct p2pio_error *err);

/**
 * p2pio_extents_open_path() - p2pio_extents_open() on a path.
 * @path:  the file.
 * @flags: P2PIO_EXTENTS_* flags.
 * @out:   the new object.
 * @err:   optional error details.
 *
 * Return: 0 or a negative errno.
 */
int p2pio_extents_open_path(const char *path, unsigned int flags, struct p2pio_extents **out,
			    struct p2pio_error *err);

/**
 * p2pio_extents_free() - free an extents object; NULL is ignored.
 * @ext: the object.
 */
void p2pio_extents_free(struct p2pio_extents *ext);

/**
 * p2pio_extents_count() - number of (merged) extents.
 * @ext: the object.
 */
size_t p2pio_extents_count(const struct p2pio_extents *ext);

/**
 * p2pio_extents_get() - extent @i, in file order.
 * @ext: the object.
 * @i:   index below p2pio_extents_count().
 *
 * Return: the extent, or NULL when @i is out of range.
 */
const struct p2pio_extent *p2pio_extents_get(const struct p2pio_extents *ext, size_t i);

/**
 * p2pio_extents_device() - the block device of the file's file system.
 * @ext: the object.
 */
const struct p2pio_blockdev *p2pio_extents_device(const struct p2pio_extents *ext);

/**
 * p2pio_extents_fstype() - the file system's type name ("ext4", "xfs", "overlay", ...).
 * @ext: the object.
 */
const char *p2pio_extents_fstype(const struct p2pio_extents *ext);

/**
 * p2pio_extents_file_size() - the file's size in bytes when it was read.
 * @ext: the object.
 */
uint64_t p2pio_extents_file_size(const struct p2pio_extents *ext);

/**
 * struct p2pio_lba_run - a piece of a file range that lies contiguously on the disk.
 * @file_offset: byte offset in the file.
 * @length:      bytes of the file in this run.
 * @disk_offset: byte offset on the whole disk (partition start included); 0 where @flags
 *               says the bytes have no place on the disk.
 * @lba:         first logical block on the whole disk (disk_offset / lba_size).
 * @nlb:         logical blocks the run touches (head and tail rounding included).
 * @flags:       the extent's P2PIO_EXTENT_* flags (P2PIO_EXTENT_HOLE for holes).
 */
struct p2pio_lba_run {
	uint64_t file_offset;
	uint64_t length;
	uint64_t disk_offset;
	uint64_t lba;
	uint64_t nlb;
	uint32_t flags;
	uint32_t reserved;
};

/**
 * p2pio_extents_lba_runs() - the LBA runs that hold file bytes [@offset, @offset+@len).
 * @ext:    the object.
 * @offset: file byte offset.
 * @len:    bytes; the part beyond the end of the file is ignored.
 * @runs:   array to fill (may be NULL when @max is 0).
 * @max:    its capacity.
 *
 * Holes come back as runs with P2PIO_EXTENT_HOLE.
 *
 * Return: the number of runs the range has (which may exceed @max: call again with a
 * larger array), or a negative errno.
 */
ssize_t p2pio_extents_lba_runs(const struct p2pio_extents *ext, uint64_t offset, uint64_t len,
			       struct p2pio_lba_run *runs, size_t max);

/**
 * struct p2pio_frag_summary - how a file range lies, in numbers.
 * @bytes:            bytes of the range inside the file.
 * @runs:             contiguous runs on the disk holding written data.
 * @mapped_bytes:     bytes in plain written extents (what P2P can read raw).
 * @hole_bytes:       bytes in holes.
 * @unwritten_bytes:  bytes in unwritten (fallocated) extents.
 * @delalloc_bytes:   bytes not yet allocated (delayed allocation, dirty data).
 * @other_bytes:      bytes in other extents P2P must not read raw (encoded, encrypted,
 *                    inline, tail-packed, unaligned, shared, unknown).
 * @largest_run:      bytes of the largest run of written data.
 * @not_raw_flags:    OR of P2PIO_EXTENT_NOT_RAW flags met in the range.
 * @runs_per_gib:     @runs per GiB of @mapped_bytes (0 when nothing is mapped).
 */
struct p2pio_frag_summary {
	uint64_t bytes;
	uint64_t runs;
	uint64_t mapped_bytes;
	uint64_t hole_bytes;
	uint64_t unwritten_bytes;
	uint64_t delalloc_bytes;
	uint64_t other_bytes;
	uint64_t largest_run;
	uint32_t not_raw_flags;
	double runs_per_gib;
};

/**
 * p2pio_extents_summary() - summarise file bytes [@offset, @offset+@len).
 * @ext:    the object.
 * @offset: file byte offset.
 * @len:    bytes (UINT64_MAX: to the end of the file).
 * @out:    filled.
 *
 * Return: 0 or a negative errno.
 */
int p2pio_extents_summary(const struct p2pio_extents *ext, uint64_t offset, uint64_t len,
			  struct p2pio_frag_summary *out);

/**
 * p2pio_extent_flag_reason() - why bytes with one P2PIO_EXTENT_NOT_RAW flag cannot be read
 * peer to peer, as a phrase.
 * @flag: one flag (the lowest set bit is used when several are given).
 *
 * Return: a static string; "" for flags that do not prevent P2P.
 */
const char *p2pio_extent_flag_reason(uint32_t flag);


/*
 * Topology: where the GPU and the NVMe controllers sit on PCIe, read through libpci (and
 * sysfs for the parent chain and IOMMU state), and a verdict per (GPU, NVMe) pair on
 * whether peer-to-peer DMA can work and what bounds it.
 */

/**
 * struct p2pio_pci_link - a PCIe link's generation (1 = 2.5 GT/s ... 6 = 64 GT/s; 0 unknown)
 * and width in lanes, as trained now and at most.
 */
struct p2pio_pci_link {
	uint8_t gen;
	uint8_t width;
	uint8_t max_gen;
	uint8_t max_width;
};

/* PCIe port types (the PCI Express capability's Device/Port Type), and "none". */
#define P2PIO_PCI_PORT_NONE	 -1 /* no PCI Express capability: conventional PCI */
#define P2PIO_PCI_PORT_ENDPOINT	 0x0
#define P2PIO_PCI_PORT_ROOT	 0x4
#define P2PIO_PCI_PORT_UPSTREAM	 0x5
#define P2PIO_PCI_PORT_DOWNSTREAM 0x6
#define P2PIO_PCI_PORT_RC_ENDPOINT 0x9

/**
 * struct p2pio_pci_dev - one PCI function.
 * @addr:        "dddd:bb:dd.f".
 * @vendor:      vendor id.
 * @device:      device id.
 * @class:       class code with programming interface (0x010802 for NVMe).
 * @name:        "vendor device" from the PCI ID database, or numbers.
 * @port_type:   P2PIO_PCI_PORT_*.
 * @link:        the function's link (for a port: the link below it for root and
 *               downstream ports, above it for an upstream port).
 * @has_acs:     the function has an ACS capability.
 * @acs_cap:     ACS capability register.
 * @acs_ctrl:    ACS control register (P2P request redirect is bit 2, completion redirect 3).
 * @iommu_group: the IOMMU group number, or -1.
 * @numa_node:   NUMA node, or -1.
 * @parent:      address of the upstream bridge, or "" under a host bridge.
 * @host_bridge: the sysfs host bridge the function sits under ("pci0000:00").
 */
struct p2pio_pci_dev {
	char addr[16];
	uint16_t vendor;
	uint16_t device;
	uint32_t class;
	char name[128];
	int port_type;
	struct p2pio_pci_link link;
	bool has_acs;
	uint16_t acs_cap;
	uint16_t acs_ctrl;
	int iommu_group;
	int numa_node;
	char parent[16];
	char host_bridge[24];
};

/**
 * struct p2pio_iommu_state - the IOMMU as the kernel set it up.
 * @enabled:     an IOMMU driver registered units (/sys/class/iommu is not empty).
 * @groups:      IOMMU groups in /sys/kernel/iommu_groups.
 * @passthrough: the default domain is identity (iommu=pt or equivalent).
 * @cmdline:     the iommu-related kernel command line options, space separated.
 * @summary:     one sentence.
 */
struct p2pio_iommu_state {
	bool enabled;
	int groups;
	bool passthrough;
	char cmdline[128];
	char summary[192];
};

/* Opaque: a scan of the PCI functions that matter to p2pio. */
struct p2pio_topo;

/**
 * p2pio_topo_scan() - read the PCI topology.
 * @sysfs: the sysfs root ("/sys"; tests pass a synthetic tree with bus/pci/devices and
 *         config space files); libpci reads config space through @sysfs/bus/pci.
 * @out:   the scan, freed with p2pio_topo_free().
 * @err:   optional error details.
 *
 * A machine with no PCI bus (or no GPU, no NVMe) scans fine and reports empty lists.
 *
 * Return: 0 or a negative errno.
 */
int p2pio_topo_scan(const char *sysfs, struct p2pio_topo **out, struct p2pio_error *err);

/**
 * p2pio_topo_free() - free a scan; NULL is ignored.
 * @topo: the scan.
 */
void p2pio_topo_free(struct p2pio_topo *topo);

/**
 * p2pio_topo_gpus() - the NVIDIA display and 3D controllers found, by address.
 * @topo:  the scan.
 * @count: set to the number of entries.
 *
 * Return: the array (owned by @topo).
 */
const struct p2pio_pci_dev *p2pio_topo_gpus(const struct p2pio_topo *topo, size_t *count);

/**
 * p2pio_topo_nvmes() - the NVMe controllers (class 0x010802) found, by address.
 * @topo:  the scan.
 * @count: set to the number of entries.
 *
 * Return: the array (owned by @topo).
 */
const struct p2pio_pci_dev *p2pio_topo_nvmes(const struct p2pio_topo *topo, size_t *count);

/**
 * p2pio_topo_find() - any scanned function (GPUs, NVMe controllers and the bridges above
 * them) by address.
 * @topo:   the scan.
 * @bus_id: "dddd:bb:dd.f", or CUDA's form with an 8-digit domain ("00000000:65:00.0");
 *          case does not matter.
 *
 * Return: the function, or NULL.
 */
const struct p2pio_pci_dev *p2pio_topo_find(const struct p2pio_topo *topo, const char *bus_id);

/**
 * p2pio_topo_iommu() - the IOMMU state read during the scan.
 * @topo: the scan.
 */
const struct p2pio_iommu_state *p2pio_topo_iommu(const struct p2pio_topo *topo);

/* How a GPU and an NVMe controller are connected, best first. */
enum p2pio_p2p_kind {
	P2PIO_P2P_SAME_SWITCH = 0, /* below one PCIe switch: traffic stays in the switch */
	P2PIO_P2P_HOST_BRIDGE,	    /* through the root complex of one host bridge */
	P2PIO_P2P_ACS_REDIRECT,     /* a switch, but ACS sends P2P up to the root complex */
	P2PIO_P2P_CROSS_HOST,	    /* different host bridges (sockets, root complexes) */
	P2PIO_P2P_UNKNOWN,	    /* a device is missing or the chain could not be read */
};

/**
 * struct p2pio_p2p_verdict - the verdict on one (GPU, NVMe) pair.
 * @kind:           enum p2pio_p2p_kind.
 * @good:           P2P is expected to work at full speed.
 * @common:         the closest common upstream bridge, or "" when there is none.
 * @path:           the chain GPU ... common ... NVMe, as addresses joined by " > "/" < ".
 * @acs_bridge:     the bridge whose ACS redirects P2P traffic, or "".
 * @slowest:        the function whose link is the slowest on the path.
 * @slowest_link:   that link.
 * @slowest_gbps:   its bandwidth in GB/s (one direction, after encoding).
 * @text:           the verdict as a sentence.
 */
struct p2pio_p2p_verdict {
	enum p2pio_p2p_kind kind;
	bool good;
	char common[16];
	char path[256];
	char acs_bridge[16];
	char slowest[16];
	struct p2pio_pci_link slowest_link;
	double slowest_gbps;
	char text[256];
};

/**
 * p2pio_topo_verdict() - judge the path between a GPU and an NVMe controller.
 * @topo: the scan.
 * @gpu:  the GPU's PCI address (any form p2pio_topo_find() takes).
 * @nvme: the NVMe controller's PCI address.
 * @out:  filled.
 *
 * Return: 0; -ENODEV when either address is not in the scan (@out then says so too).
 */
int p2pio_topo_verdict(const struct p2pio_topo *topo, const char *gpu, const char *nvme,
		       struct p2pio_p2p_verdict *out);

/**
 * p2pio_pci_link_gbps() - usable bandwidth of a link in GB/s, one direction.
 * @gen:   PCIe generation (1-6).
 * @width: lanes.
 *
 * Return: GB/s after line encoding (8b/10b for gen 1-2, 128b/130b for 3-5, FLIT for 6);
 * 0 when unknown.
 */
double p2pio_pci_link_gbps(unsigned int gen, unsigned int width);

/* ===================================================================================== */
/* Models: whole-model load and layer streaming                 (userlib/src/model/)      */
/* ===================================================================================== */

/*
 * A model is a GGUF file opened on a context (see the engine section): the model knows its
 * tensors, groups them into layers (blk.N.*) and the rest (embeddings, output, norms), and
 * moves them into the context's target memory (GPU memory, or host memory when the context
 * has no GPU) in one of two ways:
 *
 *  - whole: p2pio_model_load() reads the file's data section into one arena, as a few large
 *    reads, with every tensor at its file-relative offset (so the GGUF's own alignment is
 *    kept and unaligned tensors need no extra copy); p2pio_model_tensor() finds a tensor's
 *    address by name.
 *  - streamed: p2pio_streamer_open() keeps the non-layer tensors resident and cycles the
 *    layers through a budget of slots, loading ahead of the compute; p2pio_streamer_acquire()
 *    hands out a layer and makes the caller's CUDA stream wait for its data,
 *    p2pio_streamer_release() gives the slot back once the work queued on that stream is
 *    done. Neither call synchronises the host with the GPU unless there is no free slot.
 *
 * A streamer may be used from several threads (its calls take its lock); a model's
 * whole-load and lookup calls are for one thread at a time.
 *
 * Addresses are uint64_t: a CUdeviceptr for a GPU context, a host pointer otherwise.
 * CUDA streams are passed as void * (a CUstream; NULL is the legacy default stream) and are
 * ignored on a context without a GPU.
 */

struct p2pio_model;
struct p2pio_streamer;
struct p2pio_verifier;

/**
 * struct p2pio_model_tensor - a tensor of a model, and where it is in target memory.
 * @name:        the GGUF tensor name; valid while the model is open.
 * @addr:        its address in target memory, or 0 while it is not loaded.
 * @host:        a CPU mapping of the same bytes where the target memory has one (host
 *               memory: the same as @addr; the VM's test double: its BAR mapping), NULL
 *               for CUDA device memory or while not loaded.
 * @size:        its size in bytes.
 * @file_offset: the absolute file offset of its first byte.
 * @type:        its ggml type id.
 * @layer:       the layer it belongs to (blk.N.*), or -1 for the non-layer tensors.
 */
struct p2pio_model_tensor {
	const char *name;
	uint64_t addr;
	void *host;
	uint64_t size;
	uint64_t file_offset;
	uint32_t type;
	int32_t layer;
};

/**
 * struct p2pio_model_info - the shape of a model as the loader sees it.
 * @file_size:      the file's size in bytes.
 * @data_offset:    absolute offset of the GGUF data section.
 * @data_size:      size of the data section (up to the end of the last tensor).
 * @tensors:        number of tensors.
 * @layers:         number of layers (blk.0 .. blk.layers-1).
 * @layer_bytes:    total bytes of all layer tensors.
 * @slot_bytes:     the target memory one streaming slot takes (the largest layer, laid out).
 * @resident_bytes: the target memory the non-layer tensors take when streaming.
 * @pattern_seed:   p2pio.pattern.seed from the metadata (synthetic models), if @has_seed.
 * @has_seed:       whether the file carries a pattern seed (p2pio-mkmodel's models do).
 */
struct p2pio_model_info {
	uint64_t file_size;
	uint64_t data_offset;
	uint64_t data_size;
	uint32_t tensors;
	uint32_t layers;
	uint64_t layer_bytes;
	uint64_t slot_bytes;
	uint64_t resident_bytes;
	uint64_t pattern_seed;
	bool has_seed;
};

/**
 * struct p2pio_model_opts - options of p2pio_model_open(); all zero means the defaults.
 * @flags: P2PIO_MODEL_* flags.
 * @mem:   the kind of target memory, when P2PIO_MODEL_SET_MEM is set; by default CUDA
 *         device memory on a GPU context and host memory otherwise. (The VM tests use
 *         P2PIO_MEM_NVDOUBLE.)
 * @path:  0 for the context's path, or an enum p2pio_path to force one for this file
 *         (as p2pio_file_open()'s flags).
 */
struct p2pio_model_opts {
	uint32_t flags;
	enum p2pio_mem mem;
	uint32_t path;
};

/* struct p2pio_model_opts.mem is set. */
#define P2PIO_MODEL_SET_MEM (1u << 0)

/**
 * p2pio_model_open() - open a GGUF model for loading through a context.
 * @ctx:  the context whose target memory and I/O engine the model uses; it must outlive
 *        the model.
 * @path: the GGUF file.
 * @opts: options, or NULL for the defaults.
 * @out:  the model, on success.
 * @err:  optional: what was wrong with the file, and where.
 *
 * Parses the file (strictly, as untrusted input), opens it on the engine (which picks the
 * path) and plans the reads; loads nothing yet.
 *
 * Return: 0, or a negative errno (-EINVAL/-EBADMSG for a malformed file, -ENOENT, ...).
 */
int p2pio_model_open(struct p2pio_ctx *ctx, const char *path, const struct p2pio_model_opts *opts,
		     struct p2pio_model **out, struct p2pio_error *err);

/**
 * p2pio_model_file() - the engine's file of a model, for p2pio_path_info() and the like.
 * @m: the model.
 */
struct p2pio_file *p2pio_model_file(const struct p2pio_model *m);

/**
 * p2pio_model_close() - free a model's target memory and close its file. NULL is a no-op.
 * @m: the model; every streamer opened on it must be closed first.
 */
void p2pio_model_close(struct p2pio_model *m);

/**
 * p2pio_model_info() - the model's sizes, layer count and pattern seed.
 * @m:    the model.
 * @info: filled on return.
 */
void p2pio_model_info(const struct p2pio_model *m, struct p2pio_model_info *info);

/**
 * typedef p2pio_progress_fn - progress of a whole-model load.
 * @arg:   the opaque pointer given with the callback.
 * @done:  bytes landed so far.
 * @total: bytes the load moves in all.
 *
 * Called from the loading thread as reads complete, at least once at the end.
 * Return: 0 to go on; non-zero stops the load, which then fails with -ECANCELED.
 */
typedef int (*p2pio_progress_fn)(void *arg, uint64_t done, uint64_t total);

/**
 * struct p2pio_model_load_opts - options of p2pio_model_load(); zero means the default.
 * @progress:     optional progress callback.
 * @progress_arg: passed to @progress.
 * @chunk:        the size of each read the data section is cut into (default 64 MiB): large
 *                enough that every path streams at full speed, small enough that reads run
 *                in parallel and progress moves.
 */
struct p2pio_model_load_opts {
	p2pio_progress_fn progress;
	void *progress_arg;
	uint64_t chunk;
};

/**
 * struct p2pio_load_result - what a whole-model load did.
 * @bytes:    bytes read from the file (the data section, rounded out to whole blocks).
 * @reads:    reads submitted.
 * @wall_ns:  wall time of the load, from the first submit to the last completion.
 * @cpu_ns:   CPU time the process spent meanwhile (user + system, all threads).
 * @arena:    the arena's address in target memory.
 * @arena_bytes: the arena's size.
 */
struct p2pio_load_result {
	uint64_t bytes;
	uint64_t reads;
	uint64_t wall_ns;
	uint64_t cpu_ns;
	uint64_t arena;
	uint64_t arena_bytes;
};

/**
 * p2pio_model_load() - load the whole model into one arena of target memory.
 * @m:    the model.
 * @opts: options, or NULL for the defaults.
 * @res:  optional: what the load did.
 *
 * Allocates the arena (the data section rounded out to the engine's block size), reads the
 * data section into it with large reads in parallel, and returns once every byte has
 * landed (for a GPU context: is visible to work launched afterwards on any stream). After
 * it, p2pio_model_tensor() gives each tensor's address. Loading twice reloads.
 *
 * Return: 0, or a negative errno (-ENOMEM when the arena does not fit, -EIO, -ECANCELED).
 */
int p2pio_model_load(struct p2pio_model *m, const struct p2pio_model_load_opts *opts,
		     struct p2pio_load_result *res);

/**
 * p2pio_model_tensor() - look a tensor up by name (hashed).
 * @m:    the model.
 * @name: the GGUF tensor name.
 * @out:  filled on success; @out->addr is 0 until the model is loaded.
 *
 * Return: 0, or -ENOENT.
 */
int p2pio_model_tensor(const struct p2pio_model *m, const char *name,
		       struct p2pio_model_tensor *out);

/**
 * p2pio_model_tensor_at() - the tensor at index @i (0 .. tensors-1, in the file's order of
 * tensor infos).
 * @m:   the model.
 * @i:   the index.
 * @out: filled on success.
 *
 * Return: 0, or -ERANGE.
 */
int p2pio_model_tensor_at(const struct p2pio_model *m, uint32_t i,
			  struct p2pio_model_tensor *out);

/**
 * struct p2pio_streamer_opts - options of p2pio_streamer_open(); zero means the default.
 * @budget:   target memory the streamer may use in bytes, resident tensors included; the
 *            slots are what is left divided by the slot size. Ignored when @slots is set.
 * @slots:    number of layer slots (at least 1; 2 or more let loads overlap compute).
 * @prefetch: layers loaded ahead of the last one acquired (default 1: the next layer
 *            loads while this one computes); at most slots - 1 are ever in flight.
 * @flags:    P2PIO_STREAM_* flags.
 */
struct p2pio_streamer_opts {
	uint64_t budget;
	uint32_t slots;
	uint32_t prefetch;
	uint32_t flags;
};

/* Load nothing ahead: each layer loads when it is acquired. */
#define P2PIO_STREAM_NO_PREFETCH (1u << 0)
/* Evict the least recently used slot instead of the one needed furthest in the future. */
#define P2PIO_STREAM_LRU (1u << 1)

/**
 * struct p2pio_layer - a layer handed out by p2pio_streamer_acquire().
 * @index:    the layer number.
 * @tensors:  its tensors (@ntensors of them) with their addresses in the layer's slot;
 *            valid until the layer is released.
 * @ntensors: number of tensors.
 * @bytes:    the layer's tensor bytes.
 * @slot:     the slot it occupies.
 */
struct p2pio_layer {
	uint32_t index;
	const struct p2pio_model_tensor *tensors;
	uint32_t ntensors;
	uint64_t bytes;
	uint32_t slot;
};

/**
 * struct p2pio_stream_stats - what streaming did, in total or for one layer.
 * @bytes:      bytes read from the file into slots (and, in the total, resident tensors).
 * @loads:      layer loads (reads of a layer into a slot).
 * @acquires:   acquire calls.
 * @hits:       acquires served by a slot that still held the layer from an earlier acquire
 *              (no I/O).
 * @reuses:     times a slot was recycled for another layer.
 * @wasted:     prefetched loads evicted before they were acquired.
 * @stall_ns:   time the compute waited for I/O: on a GPU, the time each stream spent at the
 *              wait that acquire queued (measured with CUDA events); without a GPU, the time
 *              acquire blocked. This is the exposed stall.
 * @io_ns:      sum over loads of the time from submit to completion.
 * @host_wait_ns: time acquire/release blocked the calling thread (waiting for a slot, or
 *              for data where the stream cannot wait by itself).
 * @wall_ns:    (total only) time since the streamer opened or the stats were reset.
 */
struct p2pio_stream_stats {
	uint64_t bytes;
	uint64_t loads;
	uint64_t acquires;
	uint64_t hits;
	uint64_t reuses;
	uint64_t wasted;
	uint64_t stall_ns;
	uint64_t io_ns;
	uint64_t host_wait_ns;
	uint64_t wall_ns;
};

/**
 * p2pio_streamer_open() - start streaming a model's layers through a budget.
 * @m:    the model (not loaded whole; p2pio_model_load() and a streamer exclude each other).
 * @opts: options, or NULL: a budget of a quarter of the model's size (but at least the
 *        resident tensors and two slots), prefetch 1.
 * @out:  the streamer, on success.
 * @err:  optional: why the budget does not work (too small for the resident tensors and
 *        one layer, say).
 *
 * Allocates the resident arena and the slots, loads the non-layer tensors (synchronously),
 * and starts prefetching from layer 0.
 *
 * Return: 0, or a negative errno (-ENOSPC: budget too small; -EBUSY: already streaming).
 */
int p2pio_streamer_open(struct p2pio_model *m, const struct p2pio_streamer_opts *opts,
			struct p2pio_streamer **out, struct p2pio_error *err);

/**
 * p2pio_streamer_close() - wait for outstanding loads and stream work, free the slots and
 * the resident arena. NULL is a no-op.
 * @s: the streamer; every acquired layer should have been released.
 */
void p2pio_streamer_close(struct p2pio_streamer *s);

/**
 * p2pio_streamer_slots() - the number of layer slots the budget gave.
 * @s: the streamer.
 */
uint32_t p2pio_streamer_slots(const struct p2pio_streamer *s);

/**
 * p2pio_streamer_tensor() - a resident (non-layer) tensor's address, by name.
 * @s:    the streamer.
 * @name: the tensor name.
 * @out:  filled on success.
 *
 * Return: 0; -ENOENT if there is no such tensor; -EINVAL if it belongs to a layer
 * (acquire the layer instead).
 */
int p2pio_streamer_tensor(const struct p2pio_streamer *s, const char *name,
			  struct p2pio_model_tensor *out);

/**
 * p2pio_streamer_acquire() - hand out a layer, ordered before work queued on @stream.
 * @s:      the streamer.
 * @layer:  the layer number.
 * @stream: the CUstream the layer's compute will run on (NULL: the legacy default stream);
 *          ignored without a GPU.
 * @out:    the layer's tensors and their addresses, valid until p2pio_streamer_release().
 *
 * Loads the layer into a slot if no slot holds it (evicting one whose stream work is done,
 * waiting for such a slot if there is none), makes @stream wait until its data has landed
 * without blocking the host where the engine can order the stream itself (otherwise the
 * host waits; without a GPU it always does), then starts loading the layers that follow
 * (the prefetch depth, wrapping around to layer 0 for the next pass).
 *
 * Return: 0; -ERANGE: no such layer; -EBUSY: the layer is already acquired; -ENOSPC: every
 * slot is acquired and none can be freed; -EIO (or another errno) when its load failed.
 */
int p2pio_streamer_acquire(struct p2pio_streamer *s, uint32_t layer, void *stream,
			   struct p2pio_layer *out);

/**
 * p2pio_streamer_release() - give a layer's slot back once @stream's work on it is done.
 * @s:      the streamer.
 * @layer:  the layer, acquired before.
 * @stream: the stream its work was queued on (an event is recorded there; the slot is
 *          reused only after the event completed). Ignored without a GPU.
 *
 * Never blocks on the GPU. The layer stays in its slot until the slot is needed, so a later
 * acquire may hit.
 *
 * Return: 0, or -EINVAL when the layer is not acquired.
 */
int p2pio_streamer_release(struct p2pio_streamer *s, uint32_t layer, void *stream);

/**
 * p2pio_streamer_stats() - statistics in total and per layer.
 * @s:         the streamer.
 * @total:     filled with the totals (optional).
 * @per_layer: optional array of @n entries; entry i gets layer i's numbers.
 * @n:         entries in @per_layer (at most the layer count are filled).
 *
 * Collects the stall times of stream waits that have completed; call it after
 * synchronising the streams for exact numbers.
 */
void p2pio_streamer_stats(struct p2pio_streamer *s, struct p2pio_stream_stats *total,
			  struct p2pio_stream_stats *per_layer, uint32_t n);

/**
 * p2pio_streamer_reset_stats() - zero the statistics and restart the wall clock (say,
 * after a warm-up pass).
 * @s: the streamer.
 */
void p2pio_streamer_reset_stats(struct p2pio_streamer *s);

/*
 * Verification of synthetic models (p2pio-mkmodel's deterministic pattern): check that the
 * bytes of tensors in target memory are the file's bytes, on the GPU with a kernel that
 * reads every byte (and can spin on to emulate a model's arithmetic), or on the CPU for a
 * host context.
 */

/**
 * struct p2pio_verify_result - what a verifier saw since it was opened or last reset.
 * @bytes:          bytes checked.
 * @mismatches:     bytes that differed from the pattern.
 * @first_mismatch: file offset of the lowest differing byte, or P2PIO_NO_OFFSET.
 * @checksum:       a sum over every 64-bit word checked (an order-independent digest that
 *                  makes the kernel read every byte even where nothing differs).
 * @launches:       kernel launches (GPU) or checks (CPU) done.
 */
struct p2pio_verify_result {
	uint64_t bytes;
	uint64_t mismatches;
	uint64_t first_mismatch;
	uint64_t checksum;
	uint64_t launches;
};

/**
 * p2pio_verifier_open() - prepare to verify tensors of a context's target memory.
 * @ctx:  the context.
 * @seed: the pattern seed (struct p2pio_model_info.pattern_seed).
 * @out:  the verifier, on success.
 * @err:  optional: why not (no GPU kernels built into this library, say).
 *
 * Return: 0; -ENOTSUP when the context has a GPU but the library was built without nvcc
 * (the verification kernels are compiled at build time).
 */
int p2pio_verifier_open(struct p2pio_ctx *ctx, uint64_t seed, struct p2pio_verifier **out,
			struct p2pio_error *err);

/**
 * p2pio_verifier_close() - free a verifier. NULL is a no-op.
 * @v: the verifier.
 */
void p2pio_verifier_close(struct p2pio_verifier *v);

/**
 * p2pio_verifier_check() - queue a check of @n tensors, then @compute_ns of busy compute.
 * @v:          the verifier.
 * @t:          the tensors, with their addresses in target memory (a host context
 *              reads them through @t->host).
 * @n:          how many.
 * @stream:     the CUstream to queue on (GPU); ignored for a host context, where the check
 *              runs before the call returns.
 * @compute_ns: extra time to keep the stream (or the CPU) busy after the check, emulating
 *              a layer's arithmetic; 0 for none.
 *
 * Return: 0; -E2BIG when checks since the last result went to more than 8 streams; or a
 * negative errno from the launch.
 */
int p2pio_verifier_check(struct p2pio_verifier *v, const struct p2pio_model_tensor *t,
			 uint32_t n, void *stream, uint64_t compute_ns);

/**
 * p2pio_verifier_result() - wait for queued checks and read the totals.
 * @v:     the verifier.
 * @res:   filled on return.
 * @reset: zero the totals afterwards.
 *
 * Synchronises with the streams checks were queued on: call it between passes, not per
 * layer.
 * Return: 0, or a negative errno.
 */
int p2pio_verifier_result(struct p2pio_verifier *v, struct p2pio_verify_result *res,
			  bool reset);

#ifdef __cplusplus
}
#endif

#endif /* P2PIO_H */
