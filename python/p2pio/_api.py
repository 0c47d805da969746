# SPDX-License-Identifier: MIT
"""The p2pio Python API: contexts, files, buffers, models, streamers, and DLPack tensors."""

import ctypes
import os
import threading

from . import _dlpack
from ._lib import (MEMS, P2PIO_DEVICE_HOST, P2PIO_MODEL_SET_MEM, P2PIO_PATH_NR,
		   P2PIO_STREAM_LRU, P2PIO_STREAM_NO_PREFETCH, PATHS, PROGRESS_FN, P2pioError,
		   check, lib, new_error, p2pio_ctx_opts, p2pio_layer, p2pio_load_result,
		   p2pio_model_info, p2pio_model_load_opts, p2pio_model_opts, p2pio_model_tensor,
		   p2pio_path_info, p2pio_stream_stats, p2pio_streamer_opts)

# numpy/torch-style dtype names and their DLPack (type code, bits).
DTYPES = {
	"float16": (_dlpack.KDL_FLOAT, 16), "float32": (_dlpack.KDL_FLOAT, 32),
	"float64": (_dlpack.KDL_FLOAT, 64), "bfloat16": (_dlpack.KDL_BFLOAT, 16),
	"int8": (_dlpack.KDL_INT, 8), "int16": (_dlpack.KDL_INT, 16),
	"int32": (_dlpack.KDL_INT, 32), "int64": (_dlpack.KDL_INT, 64),
	"uint8": (_dlpack.KDL_UINT, 8), "uint16": (_dlpack.KDL_UINT, 16),
	"uint32": (_dlpack.KDL_UINT, 32), "uint64": (_dlpack.KDL_UINT, 64),
}

# ggml types with an element type; every other (quantized) type is exported as raw bytes.
GGML_DTYPES = {0: "float32", 1: "float16", 24: "int8", 25: "int16", 26: "int32",
	       27: "int64", 28: "float64", 30: "bfloat16"}


def version():
	"""The library's version, "MAJOR.MINOR.PATCH"."""
	return lib.p2pio_version().decode()


def ggml_type_name(t):
	"""The name of a ggml type id ("Q4_K"), or None."""
	n = lib.p2pio_ggml_type_name(t)
	return n.decode() if n else None


def _stream_handle(stream):
	"""A CUstream as an integer: None (the legacy default stream), an int, or a stream
	object of PyTorch (.cuda_stream) or CuPy (.ptr)."""
	if stream is None:
		return None
	if isinstance(stream, int):
		return stream or None
	for attr in ("cuda_stream", "ptr", "handle"):
		v = getattr(stream, attr, None)
		if isinstance(v, int):
			return v or None
	raise TypeError("stream: expected None, an int CUstream, or a torch/cupy stream")


def _path_flag(path):
	if path is None:
		return 0
	try:
		return PATHS[path]
	except KeyError:
		raise ValueError("path: one of %s" % ", ".join(PATHS)) from None


class _Resource:
	"""A native object that stays allocated while the user holds it open, or while
	anything made from it does (a file or model of a context, a DLPack tensor of a
	buffer). close() gives up the user's hold; the object is freed with the last one."""

	def __init__(self, handle, free, parents=()):
		self._lock = threading.Lock()
		self._handle = handle
		self._free = free
		self._holds = 1
		self._exports = 0
		self._closed = False
		self._parents = tuple(parents)
		for p in self._parents:
			p._pin()

	@property
	def closed(self):
		return self._closed

	def _h(self):
		if self._closed:
			raise ValueError("%s is closed" % type(self).__name__)
		return self._handle

	def _pin(self, export=False):
		with self._lock:
			if self._holds == 0:
				raise ValueError("%s is freed" % type(self).__name__)
			self._holds += 1
			if export:
				self._exports += 1

	def _unpin(self, export=False):
		with self._lock:
			self._holds -= 1
			if export:
				self._exports -= 1
			last = self._holds == 0
		if last:
			h, self._handle = self._handle, None
			if h:
				self._free(h)
			for p in self._parents:
				p._unpin()

	def close(self):
		"""Let go of the object; it is freed once nothing made from it is in use."""
		with self._lock:
			if self._closed:
				return
			self._closed = True
		self._unpin()

	def __enter__(self):
		return self

	def __exit__(self, *exc):
		self.close()

	def __del__(self):
		try:
			self.close()
		except Exception:
			pass


class _Export:
	"""Adapts a _Resource to the pin/unpin calls of a DLPack export."""

	__slots__ = ("res",)

	def __init__(self, res):
		self.res = res

	def _pin(self):
		self.res._pin(export=True)

	def _unpin(self):
		self.res._unpin(export=True)


class Tensor:
	"""Memory of a buffer, model or streamer with an element type and a shape; consumers
	take it through DLPack without a copy: torch.from_dlpack(t), cupy.from_dlpack(t),
	jax.dlpack.from_dlpack(t), numpy.from_dlpack(t) (host memory)."""

	def __init__(self, owner, addr, nbytes, dtype, shape, device, name=None, ggml_type=None,
		     file_offset=None, layer=None):
		self._owner = owner
		self.data_ptr = addr
		self.nbytes = nbytes
		self.dtype = dtype
		self.shape = tuple(shape)
		self.device = device  # ("cpu", 0) or ("cuda", ordinal)
		self.name = name
		self.ggml_type = ggml_type
		self.file_offset = file_offset
		self.layer = layer

	@property
	def type_name(self):
		"""The ggml type's name ("Q4_K", "F32"), or None for a plain buffer view."""
		return None if self.ggml_type is None else ggml_type_name(self.ggml_type)

	def view(self, dtype, shape=None):
		"""The same bytes as another element type (and shape: default 1-D)."""
		code_bits = DTYPES[dtype]
		size = code_bits[1] // 8
		if shape is None:
			if self.nbytes % size:
				raise ValueError("%d bytes are not a whole number of %s" % (self.nbytes, dtype))
			shape = (self.nbytes // size,)
		n = 1
		for d in shape:
			n *= d
		if n * size != self.nbytes:
			raise ValueError("shape %r of %s is not %d bytes" % (tuple(shape), dtype, self.nbytes))
		return Tensor(self._owner, self.data_ptr, self.nbytes, dtype, shape, self.device,
			      self.name, self.ggml_type, self.file_offset, self.layer)

	def __dlpack_device__(self):
		if self.device[0] == "cuda":
			return (_dlpack.KDL_CUDA, self.device[1])
		return (_dlpack.KDL_CPU, 0)

	def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
		"""A DLPack capsule of this memory (no copy). The data is in place when the
		call that produced the tensor returned (loads and reads are synchronous; a
		streamed layer is ordered before work on the stream it was acquired with),
		so @stream needs no further ordering."""
		if copy:
			raise BufferError("p2pio tensors are exported without a copy only")
		if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
			raise BufferError("p2pio: tensor is on %r, not %r" % (self.device, dl_device))
		if self.device[0] == "cpu" and stream not in (None, -1):
			raise BufferError("stream must be None for host memory")
		return _dlpack.make_capsule(_Export(self._owner), self.data_ptr, self.nbytes,
					    self.__dlpack_device__(), DTYPES[self.dtype], self.shape)

	def __repr__(self):
		what = self.name or "buffer range"
		t = (" %s" % self.type_name) if self.ggml_type is not None else ""
		return "<p2pio.Tensor %s%s %s %s on %s:%d>" % (what, t, self.dtype, self.shape,
							     self.device[0], self.device[1])


class Context(_Resource):
	"""One process's use of one GPU, or of host memory only.

	device: None (GPU 0 if CUDA has one, else host memory), "host" (or -1), or a CUDA
	ordinal. path: "auto" (the library picks per file and says why), "p2p", "bounce" or
	"posix". The other options are struct p2pio_ctx_opts's; 0 means the measured default.
	"""

	def __init__(self, device=None, path="auto", queue_depth=0, threads=0, chunk_size=0,
		     staging_bytes=0, pin_window=0, flags=0):
		opts = p2pio_ctx_opts()
		lib.p2pio_ctx_opts_init(ctypes.byref(opts))
		if device == "host":
			device = P2PIO_DEVICE_HOST
		if device is not None:
			opts.device = int(device)
		opts.path = _path_flag(path)
		opts.queue_depth = queue_depth
		opts.threads = threads
		opts.chunk_size = chunk_size
		opts.staging_bytes = staging_bytes
		opts.pin_window = pin_window
		opts.flags = flags
		h = ctypes.c_void_p()
		err = new_error()
		check(lib.p2pio_ctx_create(ctypes.byref(opts), ctypes.byref(h), ctypes.byref(err)),
		      err, "context")
		super().__init__(h.value, lib.p2pio_ctx_destroy)
		self.device = lib.p2pio_ctx_device(h)

	@property
	def is_gpu(self):
		return self.device != P2PIO_DEVICE_HOST

	def _default_mem(self):
		return "cuda" if self.is_gpu else "host"

	def _devtuple(self, mem):
		return ("cuda", self.device) if mem == "cuda" else ("cpu", 0)

	def alloc(self, nbytes, mem=None):
		"""A new buffer of @nbytes: "cuda" (device memory, the default on a GPU
		context) or "host" (page-aligned host memory)."""
		return Buffer._alloc(self, nbytes, mem or self._default_mem())

	def register(self, obj, nbytes=None, mem=None):
		"""A buffer over memory the caller owns: an address (int) and @nbytes, or a
		contiguous torch tensor or NumPy array (kept alive by the buffer)."""
		return Buffer._register(self, obj, nbytes, mem)

	def open_file(self, path, path_mode=None):
		"""A file to read ranges of; @path_mode forces "p2p", "bounce" or "posix"."""
		return File(self, path, path_mode)

	def open_model(self, path, path_mode=None, mem=None):
		"""A GGUF model opened for loading into this context's memory (@mem: "cuda" or
		"host"; by default device memory on a GPU context)."""
		return Model(self, path, path_mode, mem)


class Buffer(_Resource):
	"""Destination memory registered with a context. Exported through DLPack as bytes;
	view() gives it an element type and shape."""

	@classmethod
	def _alloc(cls, ctx, nbytes, mem):
		h = ctypes.c_void_p()
		err = new_error()
		check(lib.p2pio_buf_alloc(ctx._h(), MEMS[mem], nbytes, ctypes.byref(h),
					  ctypes.byref(err)), err, "buffer")
		return cls(ctx, h.value, nbytes, mem, None)

	@classmethod
	def _register(cls, ctx, obj, nbytes, mem):
		keep = None
		if isinstance(obj, int):
			addr = obj
			if nbytes is None:
				raise TypeError("register(address, nbytes): nbytes is needed")
			mem = mem or ctx._default_mem()
		elif hasattr(obj, "data_ptr") and hasattr(obj, "is_contiguous"):  # torch
			if not obj.is_contiguous():
				raise ValueError("register: the tensor must be contiguous")
			addr = obj.data_ptr()
			nbytes = nbytes or obj.numel() * obj.element_size()
			mem = mem or ("cuda" if obj.is_cuda else "host")
			keep = obj
		elif hasattr(obj, "__array_interface__"):  # numpy
			ai = obj.__array_interface__
			if ai.get("strides") is not None or ai["data"][1]:
				raise ValueError("register: the array must be C-contiguous and writable")
			addr = ai["data"][0]
			nbytes = nbytes or obj.nbytes
			mem = mem or "host"
			keep = obj
		else:
			raise TypeError("register: an address, a torch tensor or a NumPy array")
		h = ctypes.c_void_p()
		err = new_error()
		check(lib.p2pio_buf_register(ctx._h(), MEMS[mem], addr, nbytes, ctypes.byref(h),
					     ctypes.byref(err)), err, "buffer")
		return cls(ctx, h.value, nbytes, mem, keep)

	def __init__(self, ctx, handle, nbytes, mem, keep):
		super().__init__(handle, lib.p2pio_buf_free, (ctx,))
		self.context = ctx
		self.nbytes = nbytes
		self.mem = mem
		self._keep = keep
		self.data_ptr = lib.p2pio_buf_addr(handle)
		host = lib.p2pio_buf_host_ptr(handle)
		self.host_ptr = host or None
		self.device = ctx._devtuple(mem)

	def view(self, dtype="uint8", shape=None, offset=0, nbytes=None):
		"""Bytes [@offset, @offset + @nbytes) of the buffer as a Tensor of @dtype."""
		self._h()
		if nbytes is None:
			nbytes = self.nbytes - offset
		if offset < 0 or nbytes < 0 or offset + nbytes > self.nbytes:
			raise ValueError("range [%d, +%d) outside the buffer of %d bytes" %
					 (offset, nbytes, self.nbytes))
		base = self.host_ptr if self.device[0] == "cpu" else self.data_ptr
		t = Tensor(self, base + offset, nbytes, "uint8", (nbytes,), self.device)
		return t if dtype == "uint8" and shape is None else t.view(dtype, shape)

	def __dlpack__(self, **kw):
		return self.view().__dlpack__(**kw)

	def __dlpack_device__(self):
		return self.view().__dlpack_device__()


class File(_Resource):
	"""A file opened on a context for reading ranges into buffers."""

	def __init__(self, ctx, path, path_mode=None):
		h = ctypes.c_void_p()
		err = new_error()
		check(lib.p2pio_file_open(ctx._h(), os.fsencode(path), _path_flag(path_mode),
					  ctypes.byref(h), ctypes.byref(err)), err, str(path))
		super().__init__(h.value, lib.p2pio_file_close, (ctx,))
		self.context = ctx
		self.name = str(path)
		self.size = lib.p2pio_file_size(h)

	def path_info(self):
		"""The path this file's reads take, why, and why not each faster one."""
		info = p2pio_path_info()
		info.size = ctypes.sizeof(info)
		check(lib.p2pio_path_info(self._h(), ctypes.byref(info)))
		names = {v: k for k, v in PATHS.items()}
		return {"path": names.get(info.path, str(info.path)),
			"why": info.why.decode(errors="replace"),
			"why_not": {names[i]: info.why_not[i].value.decode(errors="replace")
				    for i in range(P2PIO_PATH_NR) if info.why_not[i].value},
			"dio_align": info.dio_align, "lba_size": info.lba_size}

	def read(self, offset, length, into=None, buf_offset=0, mem=None):
		"""Reads @length bytes at file @offset, waiting for them, into Buffer @into at
		@buf_offset (or a new buffer of the context's memory, @mem to choose), and
		returns them as a uint8 Tensor over that buffer range."""
		if into is None:
			into = self.context.alloc(length, mem)
			buf_offset = 0
		check(lib.p2pio_read(self._h(), offset, length, into._h(), buf_offset), None,
		      "read %s [%d, +%d)" % (self.name, offset, length))
		return into.view(offset=buf_offset, nbytes=length)


def _gguf_shapes(path):
	"""name -> (n_dims, ne) for every tensor of a GGUF file."""
	g = ctypes.c_void_p()
	err = new_error()
	check(lib.p2pio_gguf_open(os.fsencode(path), ctypes.byref(g), ctypes.byref(err)), err,
	      str(path))
	try:
		shapes = {}
		for i in range(lib.p2pio_gguf_tensor_count(g)):
			t = lib.p2pio_gguf_tensor(g, i).contents
			shapes[t.name.decode()] = tuple(t.ne[d] for d in range(t.n_dims))
		return shapes
	finally:
		lib.p2pio_gguf_close(g)


class _TensorMaker:
	"""Tensors of a model's target memory, with their GGUF element types and shapes."""

	def __init__(self, shapes, device):
		self.shapes = shapes
		self.device = device

	def make(self, owner, t):
		name = t.name.decode()
		if self.device[0] == "cpu":
			addr = t.host or 0
		else:
			addr = t.addr
		dtype = GGML_DTYPES.get(t.type)
		ne = self.shapes.get(name, ())
		if dtype:
			shape = tuple(reversed(ne))  # GGUF lists the innermost extent first
		else:
			dtype, shape = "uint8", (t.size,)
		return Tensor(owner, addr, t.size, dtype, shape, self.device, name, t.type,
			      t.file_offset, t.layer if t.layer >= 0 else None)


class Model(_Resource):
	"""A GGUF model opened on a context: load it whole (load(), then tensor()/tensors()),
	or stream its layers through a memory budget (stream())."""

	def __init__(self, ctx, path, path_mode=None, mem=None):
		opts = p2pio_model_opts()
		opts.path = _path_flag(path_mode)
		if mem is not None:
			opts.flags |= P2PIO_MODEL_SET_MEM
			opts.mem = MEMS[mem]
		shapes = _gguf_shapes(path)
		h = ctypes.c_void_p()
		err = new_error()
		check(lib.p2pio_model_open(ctx._h(), os.fsencode(path), ctypes.byref(opts),
					   ctypes.byref(h), ctypes.byref(err)), err, str(path))
		super().__init__(h.value, lib.p2pio_model_close, (ctx,))
		self.context = ctx
		self.path = str(path)
		self.mem = mem or ctx._default_mem()
		self._maker = _TensorMaker(shapes, ctx._devtuple(self.mem))
		info = p2pio_model_info()
		lib.p2pio_model_info(h, ctypes.byref(info))
		self.info = {f: getattr(info, f) for f, _ in p2pio_model_info._fields_}
		self.names = []
		t = p2pio_model_tensor()
		for i in range(info.tensors):
			check(lib.p2pio_model_tensor_at(h, i, ctypes.byref(t)))
			self.names.append(t.name.decode())
		self.loaded = False

	def __len__(self):
		return len(self.names)

	def __iter__(self):
		return iter(self.names)

	@property
	def layers(self):
		return self.info["layers"]

	def path_info(self):
		"""The path the model's reads take and why (as File.path_info())."""
		info = p2pio_path_info()
		info.size = ctypes.sizeof(info)
		check(lib.p2pio_path_info(lib.p2pio_model_file(self._h()), ctypes.byref(info)))
		names = {v: k for k, v in PATHS.items()}
		return {"path": names.get(info.path), "why": info.why.decode(errors="replace")}

	def load(self, chunk=0, progress=None):
		"""Loads the whole model into one arena of target memory; returns what the load
		did. @progress(done, total) is called as reads complete; returning True stops
		the load (P2pioError ECANCELED)."""
		h = self._h()
		if self._exports:
			raise BufferError("tensors of this model are still exported; a reload "
					  "would move them")
		opts = p2pio_model_load_opts()
		opts.chunk = chunk
		cb_error = []
		if progress is not None:
			def cb(_arg, done, total):
				try:
					return 1 if progress(done, total) else 0
				except BaseException as e:  # stop the load, re-raise below
					cb_error.append(e)
					return 1
			opts.progress = PROGRESS_FN(cb)
		res = p2pio_load_result()
		ret = lib.p2pio_model_load(h, ctypes.byref(opts), ctypes.byref(res))
		if cb_error:
			raise cb_error[0]
		check(ret, None, "load %s" % self.path)
		self.loaded = True
		return {f: getattr(res, f) for f, _ in p2pio_load_result._fields_}

	def tensor(self, name):
		"""The tensor @name in target memory (after load())."""
		if not self.loaded:
			raise ValueError("the model is not loaded: call load() first")
		t = p2pio_model_tensor()
		check(lib.p2pio_model_tensor(self._h(), name.encode(), ctypes.byref(t)), None, name)
		return self._maker.make(self, t)

	__getitem__ = tensor

	def tensors(self):
		"""Every tensor, by name (after load())."""
		return {n: self.tensor(n) for n in self.names}

	def stream(self, budget=0, slots=0, prefetch=0, no_prefetch=False, lru=False):
		"""A Streamer of this model's layers through @budget bytes of target memory (or
		@slots layer slots); 0 for the defaults."""
		return Streamer(self, budget, slots, prefetch, no_prefetch, lru)


class Layer:
	"""A layer acquired from a Streamer: its tensors, valid until release()."""

	def __init__(self, streamer, raw, stream):
		self._streamer = streamer
		self._stream = stream
		self.index = raw.index
		self.slot = raw.slot
		self.bytes = raw.bytes
		self.tensors = {}
		for i in range(raw.ntensors):
			t = streamer._maker.make(streamer, raw.tensors[i])
			self.tensors[t.name] = t
		self.released = False

	def __getitem__(self, name):
		return self.tensors[name]

	def release(self, stream=None):
		"""Gives the slot back once work queued on @stream (default: the stream it was
		acquired with) is done; the tensors must not be used after that work."""
		if not self.released:
			self._streamer.release(self.index,
					       self._stream if stream is None else stream)
			self.released = True

	def __enter__(self):
		return self

	def __exit__(self, *exc):
		self.release()


class Streamer(_Resource):
	"""Layers of a model cycling through a memory budget, loaded ahead of the compute."""

	def __init__(self, model, budget, slots, prefetch, no_prefetch, lru):
		opts = p2pio_streamer_opts()
		opts.budget = budget
		opts.slots = slots
		opts.prefetch = prefetch
		opts.flags = (P2PIO_STREAM_NO_PREFETCH if no_prefetch else 0) | \
			(P2PIO_STREAM_LRU if lru else 0)
		h = ctypes.c_void_p()
		err = new_error()
		check(lib.p2pio_streamer_open(model._h(), ctypes.byref(opts), ctypes.byref(h),
					      ctypes.byref(err)), err, "stream %s" % model.path)
		super().__init__(h.value, lib.p2pio_streamer_close, (model,))
		self.model = model
		self._maker = model._maker
		self.slots = lib.p2pio_streamer_slots(h)

	def acquire(self, layer, stream=None):
		"""Layer @layer, its data ordered before work queued on @stream (a CUstream, a
		torch or CuPy stream; None: the legacy default stream; ignored on host)."""
		raw = p2pio_layer()
		check(lib.p2pio_streamer_acquire(self._h(), layer, _stream_handle(stream),
						 ctypes.byref(raw)), None, "layer %d" % layer)
		return Layer(self, raw, stream)

	layer = acquire

	def release(self, layer, stream=None):
		check(lib.p2pio_streamer_release(self._h(), layer, _stream_handle(stream)), None,
		      "layer %d" % layer)

	def tensor(self, name):
		"""A resident (non-layer) tensor."""
		t = p2pio_model_tensor()
		check(lib.p2pio_streamer_tensor(self._h(), name.encode(), ctypes.byref(t)), None,
		      name)
		return self._maker.make(self, t)

	def stats(self):
		s = p2pio_stream_stats()
		lib.p2pio_streamer_stats(self._h(), ctypes.byref(s), None, 0)
		return {f: getattr(s, f) for f, _ in p2pio_stream_stats._fields_}

	def reset_stats(self):
		lib.p2pio_streamer_reset_stats(self._h())


__all__ = ["Context", "Buffer", "File", "Model", "Streamer", "Layer", "Tensor", "P2pioError",
	   "version", "ggml_type_name", "DTYPES", "GGML_DTYPES"]
