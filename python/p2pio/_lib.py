# SPDX-License-Identifier: MIT
"""libp2pio through ctypes: the library, its structs and prototypes, and errors.

The structs mirror userlib/include/p2pio/*.h field for field; tests/test_layout.py (run by
`make check-python`) compares their sizes and offsets with the C compiler's.
"""

import ctypes
import errno
import operator
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char, c_char_p, c_double, c_int,
		    c_int32, c_size_t, c_uint, c_uint16, c_uint32, c_uint64, c_void_p)

P2PIO_PATH_NR = 4
P2PIO_REASON_LEN = 192
P2PIO_GGUF_MAX_DIMS = 4
P2PIO_DEVICE_HOST = -1
P2PIO_NO_OFFSET = (1 << 64) - 1

PATHS = {"auto": 0, "p2p": 1, "bounce": 2, "posix": 3}
# struct p2pio_ctx_opts.flags (p2pio/engine.h says what each does).
CTX_NO_WARM_CHECK = 1 << 0
CTX_BOUNCE_ASYNC = 1 << 1
CTX_POLL = 1 << 2
CTX_URGENT_ALONE = 1 << 3
MEMS = {"host": 0, "cuda": 1, "nvdouble": 2}

P2PIO_MODEL_SET_MEM = 1 << 0
P2PIO_STREAM_NO_PREFETCH = 1 << 0
P2PIO_STREAM_LRU = 1 << 1
P2PIO_EXPERTS_PREFETCH_PREV = 1 << 0
P2PIO_EXPERTS_EAGER_UNMAP = 1 << 1
P2PIO_EXPERTS_PREFETCH_LEARNED = 1 << 2
P2PIO_EXPERTS_KEEP_WRONG_HINTS = 1 << 3
P2PIO_EXPERTS_MISSES_IN_ORDER = 1 << 4

P2PIO_EXPERT_TRACE_MODEL_LEN = 64
P2PIO_EXPERT_TOKEN_PREFILL = 0x1
P2PIO_EXPERT_TOKEN_SEQ_START = 0x2
# A replay's prefetch sources (P2PIO_EXPERT_PREFETCH_*), by the names p2pio-moe replay -f takes.
EXPERT_PREFETCH = {"lag": 0x1, "next": 0x2, "learned": 0x4, "router": 0x8}


class P2pioError(OSError):
	"""An error of libp2pio: errno is the (positive) errno, strerror the library's message
	(struct p2pio_error.msg where the function fills one, else p2pio_strerror()), and
	offset the byte offset in the input it refers to, or None."""

	def __init__(self, err, message, offset=None, what=None):
		super().__init__(err, message)
		self.offset = offset
		self.what = what

	def __str__(self):
		s = self.strerror
		if self.what and self.what not in s:
			s = "%s: %s" % (self.what, s)
		return "[Errno %d] %s" % (self.errno, s)


class p2pio_error(Structure):
	_fields_ = [("code", c_int), ("offset", c_uint64), ("msg", c_char * 256)]


class p2pio_ctx_opts(Structure):
	_fields_ = [("size", c_size_t), ("device", c_int), ("path", c_int),
		    ("queue_depth", c_uint32), ("threads", c_uint32), ("chunk_size", c_uint64),
		    ("staging_bytes", c_uint64), ("pin_window", c_uint64), ("flags", c_uint32),
		    ("reserved", c_uint32), ("posix_threads", c_uint32), ("reserved2", c_uint32)]


class p2pio_path_info(Structure):
	_fields_ = [("size", c_size_t), ("path", c_int), ("dio_align", c_uint32),
		    ("lba_size", c_uint32), ("max_in_flight", c_uint32),
		    ("why", c_char * P2PIO_REASON_LEN),
		    ("why_not", (c_char * P2PIO_REASON_LEN) * P2PIO_PATH_NR)]


class p2pio_model_tensor(Structure):
	_fields_ = [("name", c_char_p), ("addr", c_uint64), ("host", c_void_p), ("size", c_uint64),
		    ("file_offset", c_uint64), ("type", c_uint32), ("layer", c_int32)]


class p2pio_model_info(Structure):
	_fields_ = [("file_size", c_uint64), ("data_offset", c_uint64), ("data_size", c_uint64),
		    ("tensors", c_uint32), ("layers", c_uint32), ("layer_bytes", c_uint64),
		    ("slot_bytes", c_uint64), ("resident_bytes", c_uint64),
		    ("pattern_seed", c_uint64), ("has_seed", c_bool)]


class p2pio_model_opts(Structure):
	_fields_ = [("flags", c_uint32), ("mem", c_int), ("path", c_uint32)]


PROGRESS_FN = CFUNCTYPE(c_int, c_void_p, c_uint64, c_uint64)


class p2pio_model_load_opts(Structure):
	_fields_ = [("progress", PROGRESS_FN), ("progress_arg", c_void_p), ("chunk", c_uint64)]


class p2pio_load_result(Structure):
	_fields_ = [("size", c_size_t)] + [(n, c_uint64) for n in ("bytes", "reads", "wall_ns", "cpu_ns", "arena",
					    "arena_bytes", "first_ns", "last_submit_ns",
					    "mid_start_ns", "mid_end_ns", "mid_bytes")]


class p2pio_streamer_opts(Structure):
	_fields_ = [("budget", c_uint64), ("slots", c_uint32), ("prefetch", c_uint32),
		    ("flags", c_uint32)]


class p2pio_layer(Structure):
	_fields_ = [("index", c_uint32), ("tensors", POINTER(p2pio_model_tensor)),
		    ("ntensors", c_uint32), ("bytes", c_uint64), ("slot", c_uint32)]


class p2pio_stream_stats(Structure):
	_fields_ = [(n, c_uint64) for n in ("bytes", "loads", "acquires", "hits", "reuses",
					    "wasted", "stall_ns", "io_ns", "host_wait_ns",
					    "wall_ns")]


class p2pio_gguf_tensor(Structure):
	_fields_ = [("name", c_char_p), ("type", c_uint32), ("n_dims", c_uint32),
		    ("ne", c_uint64 * P2PIO_GGUF_MAX_DIMS), ("size", c_uint64), ("offset", c_uint64),
		    ("file_offset", c_uint64), ("layer", c_uint32), ("reserved", c_uint32),
		    ("n_experts", c_uint64), ("expert_bytes", c_uint64)]


class p2pio_experts_opts(Structure):
	_fields_ = [("size", c_size_t), ("budget", c_uint64), ("layer_floor", POINTER(c_uint64)),
		    ("policy", c_char_p), ("policy_args", c_char_p), ("flags", c_uint32),
		    ("reserved", c_uint32), ("policy_ops", c_void_p), ("read_piece", c_uint64),
		    ("read_pieces", c_uint32), ("reserved2", c_uint32)]


class p2pio_experts_info(Structure):
	_fields_ = [("layers", c_uint32), ("experts", c_uint32), ("experts_used", c_uint32),
		    ("reserved", c_uint32)] + \
		[(n, c_uint64) for n in ("expert_bytes", "expert_data", "dense_bytes", "budget",
					 "capacity")] + [("stable", c_bool)]


class p2pio_expert_slice(Structure):
	_fields_ = [("name", c_char_p), ("offset", c_uint64), ("size", c_uint64),
		    ("file_offset", c_uint64), ("type", c_uint32), ("reserved", c_uint32)]


class p2pio_expert_stats(Structure):
	_fields_ = [("size", c_uint32), ("reserved", c_uint32)] + \
		[(n, c_uint64) for n in ("tokens", "accesses", "hits", "misses", "late",
					 "max_token_faults", "steady_tokens", "steady_accesses",
					 "steady_hits", "steady_misses", "loads", "bytes_loaded",
					 "evictions", "prefetches", "prefetch_used", "prefetch_wasted",
					 "stall_ns", "missed_layers", "steady_missed_layers")]


class p2pio_experts_io(Structure):
	_fields_ = [("size", c_size_t)] + \
		[(n, c_uint64) for n in ("loads", "prefetches", "reads", "bytes", "io_ns", "stalls",
					 "stall_ns", "host_wait_ns", "committed", "peak", "creates",
					 "maps", "unmaps", "dense_bytes", "wall_ns", "batches",
					 "batch_submit_ns", "batch_first_ns", "batch_done_ns", "map_ns",
					 "unmap_ns", "read_piece", "late_unmaps", "late_unmap_ns",
					 "forced_unmaps", "busy_ns", "read_pieces", "batch_taken_ns",
					 "batch_landed_ns", "cancels", "hastened", "cut_short")]


class p2pio_expert_layer_stats(Structure):
	_fields_ = [("accesses", c_uint64), ("hits", c_uint64), ("misses", c_uint64),
		    ("max_resident", c_uint32), ("resident", c_uint32)]


class p2pio_expert_trace_info(Structure):
	_fields_ = [("nr_layers", c_uint32), ("nr_experts", c_uint32), ("top_k", c_uint32),
		    ("model", c_char * P2PIO_EXPERT_TRACE_MODEL_LEN)]


class p2pio_expert_replay_opts(Structure):
	_fields_ = [("policy", c_char_p), ("policy_args", c_char_p), ("capacity", c_uint32),
		    ("per_layer", c_bool), ("prefetch", c_uint), ("with_prefill", c_bool),
		    ("warmup_tokens", c_uint64), ("fixed_warmup", c_bool), ("router_wrong", c_double)]


class p2pio_expert_synth_params(Structure):
	_fields_ = [("nr_layers", c_uint32), ("nr_experts", c_uint32), ("top_k", c_uint32),
		    ("tokens", c_uint64), ("skew", c_double), ("locality", c_double),
		    ("window", c_uint32), ("seed", c_uint64)] + \
		[(n, c_double) for n in ("layer_spread", "drift", "cutoff", "repeat", "offset",
					 "chain")]


# Every struct above, by its C name: tests compare them with the compiler's layout.
STRUCTS = {c.__name__: c for c in (p2pio_error, p2pio_ctx_opts, p2pio_path_info,
				     p2pio_model_tensor, p2pio_model_info, p2pio_model_opts,
				     p2pio_model_load_opts, p2pio_load_result, p2pio_streamer_opts,
				     p2pio_layer, p2pio_stream_stats, p2pio_gguf_tensor,
				     p2pio_experts_opts, p2pio_experts_info, p2pio_expert_slice,
				     p2pio_expert_stats, p2pio_experts_io, p2pio_expert_layer_stats,
				     p2pio_expert_trace_info, p2pio_expert_replay_opts,
				     p2pio_expert_synth_params)}

vp = c_void_p
ERRP = POINTER(p2pio_error)
PROTOTYPES = {
	"p2pio_version": (c_char_p, []),
	"p2pio_strerror": (c_char_p, [c_int]),
	"p2pio_path_name": (c_char_p, [c_int]),
	"p2pio_ggml_type_name": (c_char_p, [c_uint32]),
	"p2pio_ctx_opts_init": (None, [POINTER(p2pio_ctx_opts)]),
	"p2pio_ctx_create": (c_int, [POINTER(p2pio_ctx_opts), POINTER(vp), ERRP]),
	"p2pio_ctx_destroy": (None, [vp]),
	"p2pio_ctx_get_opts": (c_int, [vp, POINTER(p2pio_ctx_opts)]),
	"p2pio_ctx_device": (c_int, [vp]),
	"p2pio_buf_register": (c_int, [vp, c_int, c_uint64, c_uint64, POINTER(vp), ERRP]),
	"p2pio_buf_alloc": (c_int, [vp, c_int, c_uint64, POINTER(vp), ERRP]),
	"p2pio_buf_free": (None, [vp]),
	"p2pio_buf_addr": (c_uint64, [vp]),
	"p2pio_buf_host_ptr": (vp, [vp]),
	"p2pio_file_open": (c_int, [vp, c_char_p, c_uint, POINTER(vp), ERRP]),
	"p2pio_file_close": (None, [vp]),
	"p2pio_file_size": (c_uint64, [vp]),
	"p2pio_path_info": (c_int, [vp, POINTER(p2pio_path_info)]),
	"p2pio_read": (c_int, [vp, c_uint64, c_uint64, vp, c_uint64]),
	"p2pio_model_open": (c_int, [vp, c_char_p, POINTER(p2pio_model_opts), POINTER(vp), ERRP]),
	"p2pio_model_file": (vp, [vp]),
	"p2pio_model_gguf": (vp, [vp]),
	"p2pio_model_close": (None, [vp]),
	"p2pio_model_info": (None, [vp, POINTER(p2pio_model_info)]),
	"p2pio_model_load": (c_int, [vp, POINTER(p2pio_model_load_opts),
				     POINTER(p2pio_load_result)]),
	"p2pio_model_tensor": (c_int, [vp, c_char_p, POINTER(p2pio_model_tensor)]),
	"p2pio_model_tensor_at": (c_int, [vp, c_uint32, POINTER(p2pio_model_tensor)]),
	"p2pio_streamer_open": (c_int, [vp, POINTER(p2pio_streamer_opts), POINTER(vp), ERRP]),
	"p2pio_streamer_close": (None, [vp]),
	"p2pio_streamer_slots": (c_uint32, [vp]),
	"p2pio_streamer_prefetch": (c_uint32, [vp, POINTER(c_char_p)]),
	"p2pio_streamer_wait_prefetch": (c_int, [vp]),
	"p2pio_streamer_tensor": (c_int, [vp, c_char_p, POINTER(p2pio_model_tensor)]),
	"p2pio_streamer_acquire": (c_int, [vp, c_uint32, vp, POINTER(p2pio_layer)]),
	"p2pio_streamer_release": (c_int, [vp, c_uint32, vp]),
	"p2pio_streamer_stats": (None, [vp, POINTER(p2pio_stream_stats),
					POINTER(p2pio_stream_stats), c_uint32]),
	"p2pio_streamer_reset_stats": (None, [vp]),
	"p2pio_experts_opts_init": (None, [POINTER(p2pio_experts_opts)]),
	"p2pio_experts_open": (c_int, [vp, POINTER(p2pio_experts_opts), POINTER(vp), ERRP]),
	"p2pio_experts_close": (None, [vp]),
	"p2pio_experts_info": (None, [vp, POINTER(p2pio_experts_info)]),
	"p2pio_experts_slices": (c_int, [vp, c_uint32, c_uint32, POINTER(p2pio_expert_slice),
					 c_uint32]),
	"p2pio_experts_tensor": (c_int, [vp, c_char_p, POINTER(p2pio_model_tensor)]),
	"p2pio_experts_require": (c_int, [vp, c_uint32, POINTER(c_uint32), c_uint32, vp,
					  POINTER(c_uint64)]),
	"p2pio_experts_release": (c_int, [vp, c_uint32, POINTER(c_uint32), c_uint32, vp]),
	"p2pio_experts_prefetch": (c_int, [vp, c_uint32, POINTER(c_uint32), c_uint32]),
	"p2pio_experts_pin": (c_int, [vp, c_uint32, POINTER(c_uint32), c_uint32, c_bool]),
	"p2pio_experts_token_begin": (None, [vp]),
	"p2pio_experts_token_end": (c_int, [vp]),
	"p2pio_experts_stats": (c_int, [vp, POINTER(p2pio_expert_stats),
					POINTER(p2pio_experts_io), c_bool]),
	"p2pio_experts_layer_stats": (c_int, [vp, c_uint32, POINTER(p2pio_expert_layer_stats)]),
	"p2pio_expert_trace_new": (c_int, [POINTER(p2pio_expert_trace_info), POINTER(vp), ERRP]),
	"p2pio_expert_trace_add": (c_int, [vp, c_uint32, POINTER(c_uint32), c_uint32, ERRP]),
	"p2pio_expert_trace_end_token": (c_int, [vp, c_uint32, ERRP]),
	"p2pio_expert_trace_free": (None, [vp]),
	"p2pio_expert_trace_info": (POINTER(p2pio_expert_trace_info), [vp]),
	"p2pio_expert_trace_tokens": (c_uint64, [vp]),
	"p2pio_expert_trace_token_flags": (c_uint32, [vp, c_uint64]),
	"p2pio_expert_trace_cell": (c_int, [vp, c_uint64, c_uint32, POINTER(POINTER(c_uint16))]),
	"p2pio_expert_trace_load": (c_int, [c_char_p, POINTER(vp), ERRP]),
	"p2pio_expert_trace_save": (c_int, [vp, c_char_p, ERRP]),
	"p2pio_expert_trace_writer_open": (c_int, [c_char_p, POINTER(p2pio_expert_trace_info),
						   POINTER(vp), ERRP]),
	"p2pio_expert_trace_writer_add": (c_int, [vp, c_uint32, POINTER(c_uint32), c_uint32, ERRP]),
	"p2pio_expert_trace_writer_end_token": (c_int, [vp, c_uint32, ERRP]),
	"p2pio_expert_trace_writer_close": (c_int, [vp, ERRP]),
	"p2pio_expert_replay": (c_int, [vp, POINTER(p2pio_expert_replay_opts),
					POINTER(p2pio_expert_stats),
					POINTER(p2pio_expert_layer_stats), ERRP]),
	"p2pio_expert_synth": (c_int, [POINTER(p2pio_expert_synth_params), POINTER(vp), ERRP]),
	"p2pio_gguf_open": (c_int, [c_char_p, POINTER(vp), ERRP]),
	"p2pio_gguf_close": (None, [vp]),
	"p2pio_gguf_fd": (c_int, [vp]),
	"p2pio_gguf_file_size": (c_uint64, [vp]),
	"p2pio_gguf_tensor_count": (c_size_t, [vp]),
	"p2pio_gguf_tensor": (POINTER(p2pio_gguf_tensor), [vp, c_size_t]),
}


def _load():
	"""libp2pio.so.0: $P2PIO_LIBRARY if set (a build tree), else the installed one."""
	path = os.environ.get("P2PIO_LIBRARY") or "libp2pio.so.0"
	try:
		lib = ctypes.CDLL(path)
	except OSError as e:
		raise ImportError("p2pio: cannot load %s (%s); install libp2pio0, or set "
				  "P2PIO_LIBRARY to build/lib/libp2pio.so" % (path, e)) from e
	for name, (res, args) in PROTOTYPES.items():
		fn = getattr(lib, name)
		fn.restype = res
		fn.argtypes = args
	return lib


lib = _load()


_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1


def uint(v, what, top=_U64):
	"""@v as an unsigned C integer. ctypes truncates what does not fit (2**64 + 4096 would
	reach the library as 4096 while Python goes on believing the larger size; 2**32 + 1 as
	expert 1), so the range is checked here."""
	v = operator.index(v)
	if not 0 <= v <= top:
		raise P2pioError(errno.EINVAL, "%s %d out of range" % (what, v))
	return v


def strerror(ret):
	return lib.p2pio_strerror(ret).decode("utf-8", "replace")


def check(ret, err=None, what=None):
	"""Raises P2pioError for a negative return; returns @ret otherwise."""
	if ret >= 0:
		return ret
	msg, offset = "", None
	if err is not None:
		msg = err.msg.decode("utf-8", "replace")
		if err.offset != P2PIO_NO_OFFSET and msg:
			offset = err.offset
	if not msg:
		msg = strerror(ret)
	raise P2pioError(-ret, msg, offset, what)


def new_error():
	e = p2pio_error()
	e.offset = P2PIO_NO_OFFSET
	return e


def open_handle(fn, *args, what=None):
	"""@fn(*args, &handle, &error), the shape of every constructor of the library: the
	handle, or P2pioError with the library's message about @what."""
	h = ctypes.c_void_p()
	err = new_error()
	check(fn(*args, ctypes.byref(h), ctypes.byref(err)), err, what)
	return h.value

