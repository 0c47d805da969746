/* SPDX-License-Identifier: MIT */
/*
 * p2pio/engine.h - libp2pio: the context, memory and the I/O engine with its three paths.
 *
 * Part of the public API; include <p2pio.h>, which includes every part. Its source is
 * userlib/src/engine/.
 */
#ifndef P2PIO_PUBLIC_ENGINE_H
#define P2PIO_PUBLIC_ENGINE_H

#include "p2pio/common.h"

#ifdef __cplusplus
extern "C" {
#endif

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
/*
 * Latency over CPU time: BOUNCE's threads, and an expert cache's completion thread, poll
 * (yielding the CPU to any thread that wants it) for P2PIO_CTX_POLL_US before they sleep
 * on new work or on completions, and BOUNCE's threads then spin on a copy to the GPU
 * rather than sleep on it. Where waking a sleeping thread is slow (a virtual machine's
 * idle vCPUs; a blocking-sync CUDA event, 250-300 us late on the H200) each hand-off of
 * a read otherwise pays that wake-up.
 */
#define P2PIO_CTX_POLL (1u << 2)
#define P2PIO_CTX_POLL_US 200
/*
 * Urgent reads read alone: while a piece of a P2PIO_REQ_URGENT read is being read, no
 * piece of a plain read starts (those already started go on; on the P2P path the test is
 * made per read as it is sent, so a plain read whose pieces are being sent goes on whole),
 * so the reads the caller waits for get the storage's whole bandwidth rather than a share
 * of it beside reads that can wait (an expert cache's misses beside its prefetches).
 * Where no urgent read is submitted it changes nothing. Off by default: on zram (reads
 * that are CPU copies) a decode with hints three layers ahead ran at 0.96 x its tokens/s
 * without it, as a miss still waits for the pieces already started
 * (Documentation/moe.md, "Fifteenth round").
 */
#define P2PIO_CTX_URGENT_ALONE (1u << 3)

/**
 * struct p2pio_ctx_opts - how a context reads; grows at the end, so set @size.
 * @size:          sizeof(struct p2pio_ctx_opts) as the caller compiled it.
 * @device:        CUDA device ordinal, or P2PIO_DEVICE_HOST for host memory only.
 * @path:          the path for files opened on this context (P2PIO_PATH_AUTO by default).
 * @queue_depth:   reads in flight per path (commands for P2P; BOUNCE shares them out
 *                 between its threads, rounded up per thread, so it keeps up to
 *                 @threads x ceil(@queue_depth / @threads) in flight); 0 for the default.
 * @threads:       BOUNCE submitting threads (each with its own io_uring; at most
 *                 @queue_depth of them); 0 for the default: three for every four CPUs,
 *                 4 to 16 (on a device that reads in the submitting task, zram, a ring
 *                 per CPU cost a third more CPU per GB for the same rate). Set, it is
 *                 the POSIX readers' count too where @posix_threads is 0.
 * @chunk_size:    bytes per read command and per staging buffer; 0 for the default.
 * @staging_bytes: pinned host memory shared by the BOUNCE threads (rounded down to whole
 *                 chunks, at least @queue_depth + 2 chunks); 0 for the default (enough for
 *                 each BOUNCE thread's reads plus one copy each, at least 96 MiB).
 * @pin_window:    P2P: bytes of GPU memory pinned at a time per window (64 KiB multiple);
 *                 0 for the default.
 * @flags:         P2PIO_CTX_* flags.
 * @reserved:      must be 0.
 * @posix_threads: POSIX reader threads; 0 for the default: @threads where the caller
 *                 set it, else one per CPU (4 to 16), into a GPU as into host memory
 *                 (fewer readers into a GPU measured no faster in paired rounds, 8
 *                 slower; Documentation/engine.md).
 * @reserved2:     must be 0.
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
	uint32_t posix_threads;
	uint32_t reserved2;
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
 * @max_in_flight: the most reads of the file in flight at once, where its path is BOUNCE
 *             and the library holds it below the context's queue depth (0: it does
 *             not): a disk that says it is rotational gets a few, when the context's
 *             queue depth is the default (@why says so too).
 */
struct p2pio_path_info {
	size_t size;
	enum p2pio_path path;
	uint32_t dio_align;
	uint32_t lba_size;
	uint32_t max_in_flight;
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
/*
 * Something waits for this read now (a cache miss), where the reads without the flag may
 * be speculative (prefetches): the context's threads take it before every read without
 * the flag that has pieces not yet handed out (one already being read goes on); urgent
 * reads keep their order among themselves. BOUNCE and POSIX queue reads in the library
 * and honour it. P2P sends reads to the device as they are submitted (of each run of up
 * to 64 consecutive requests of one p2pio_submit() that take P2P, the urgent ones first),
 * except plain reads beyond queue_depth x chunk_size bytes at the device, which wait in
 * the library: an urgent read goes past those at once (it still shares the device with
 * the plain reads already sent).
 */
#define P2PIO_REQ_URGENT (1u << 1)

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
	uint32_t posix_threads;
	uint32_t reserved2;
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
 * p2pio_cancel() - withdraw queued reads that nothing has started reading.
 * @q:   the queue they were submitted on.
 * @tag: their tag.
 * @n:   how many reads of @q carry @tag and have not completed.
 *
 * All or nothing: when exactly @n reads of @q tagged @tag wait in the library's queue and
 * no piece of any has been handed to a thread, they are withdrawn: never read, no
 * completion (p2pio_inflight() stops counting them), a stream waiting on one
 * (P2PIO_REQ_STREAM) released as for a failed read. Otherwise nothing changes and they
 * complete as usual. Made for a cache that gives up a speculative load (a prefetch whose
 * guess turned out wrong): what is withdrawn costs no bandwidth, and the caller never
 * has some of the @n read and the others withdrawn (it may pass the reads of a load it has
 * not reaped yet, and so withdraw the rest of a load some of whose reads it has). BOUNCE and POSIX queue reads in the
 * library; P2P withdraws only reads without P2PIO_REQ_URGENT that it still holds back, not
 * those it has sent to the device.
 *
 * Return: @n when withdrawn, 0 when not, -EINVAL for a NULL @q or a zero @n.
 */
int p2pio_cancel(struct p2pio_queue *q, uint64_t tag, unsigned int n);

/**
 * p2pio_hasten() - make queued reads urgent.
 * @q:   the queue they were submitted on.
 * @tag: their tag.
 *
 * The reads of @q tagged @tag that wait in the library's queue without P2PIO_REQ_URGENT
 * get it: their pieces not yet handed to a thread go after the urgent reads queued
 * already and before every other read, in the order they were submitted. Pieces in
 * flight go on. Made for a cache whose speculative load turns out wanted: a prefetch
 * queued as a mere hint is now a read the caller waits for, and a later urgent miss must
 * not pass it. BOUNCE and POSIX queue reads in the library; P2P sends the reads without
 * P2PIO_REQ_URGENT that it still holds back at once.
 *
 * Return: the number of reads made urgent (0 when none waited, or all were urgent), or
 * -EINVAL for a NULL @q.
 */
int p2pio_hasten(struct p2pio_queue *q, uint64_t tag);

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

#ifdef __cplusplus
}
#endif

#endif /* P2PIO_PUBLIC_ENGINE_H */
