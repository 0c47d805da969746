# SPDX-License-Identifier: MIT
"""Contexts, buffers and files: reading file ranges into GPU or host memory."""

import ctypes
import operator
import os

from ._lib import (MEMS, P2PIO_DEVICE_HOST, P2PIO_PATH_NR, PATHS, check, lib, open_handle,
		   p2pio_ctx_opts, p2pio_path_info, uint)
from ._resource import _Resource
from ._tensor import Tensor


def _path_flag(path):
	if path is None:
		return 0
	try:
		return PATHS[path]
	except KeyError:
		raise ValueError("path: one of %s" % ", ".join(PATHS)) from None


class Context(_Resource):
	"""One process's use of one GPU, or of host memory only.

	device: None (GPU 0 if CUDA has one, else host memory), "host" (or -1), or a CUDA
	ordinal. path: "auto" (the library picks per file and says why), "p2p", "bounce" or
	"posix". The other options are struct p2pio_ctx_opts's; 0 means the measured default.
	flags: p2pio.CTX_* or'ed (CTX_URGENT_ALONE: an expert cache's misses read with no
	prefetch starting beside them; CTX_POLL: latency over CPU time; ...).
	"""

	def __init__(self, device=None, path="auto", queue_depth=0, threads=0, chunk_size=0,
		     staging_bytes=0, pin_window=0, flags=0, posix_threads=0):
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
		opts.posix_threads = posix_threads
		h = open_handle(lib.p2pio_ctx_create, ctypes.byref(opts), what="context")
		super().__init__(h, lib.p2pio_ctx_destroy)
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
		from ._model import Model  # models are made on contexts; _model imports this module
		return Model(self, path, path_mode, mem)


class Buffer(_Resource):
	"""Destination memory registered with a context. Exported through DLPack as bytes;
	view() gives it an element type and shape."""

	@classmethod
	def _alloc(cls, ctx, nbytes, mem):
		nbytes = uint(nbytes, "buffer size")
		h = open_handle(lib.p2pio_buf_alloc, ctx._h(), MEMS[mem], nbytes, what="buffer")
		return cls(ctx, h, nbytes, mem, None)

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
			size = obj.numel() * obj.element_size()
			mem = mem or ("cuda" if obj.is_cuda else "host")
			keep = obj
		elif hasattr(obj, "__array_interface__"):  # numpy
			ai = obj.__array_interface__
			if ai.get("strides") is not None or ai["data"][1]:
				raise ValueError("register: the array must be C-contiguous and writable")
			addr = ai["data"][0]
			size = obj.nbytes
			mem = mem or "host"
			keep = obj
		else:
			raise TypeError("register: an address, a torch tensor or a NumPy array")
		if keep is not None:
			# Reads land anywhere in the buffer: never past the end of the object.
			nbytes = size if not nbytes else uint(nbytes, "buffer size")
			if nbytes > size:
				raise ValueError("register: %d bytes, but the object has %d" %
						 (nbytes, size))
		addr = uint(addr, "address")
		nbytes = uint(nbytes, "buffer size")
		h = open_handle(lib.p2pio_buf_register, ctx._h(), MEMS[mem], addr, nbytes,
				what="buffer")
		return cls(ctx, h, nbytes, mem, keep)

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
		offset = operator.index(offset)
		if nbytes is None:
			nbytes = self.nbytes - offset
		nbytes = operator.index(nbytes)
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
		h = open_handle(lib.p2pio_file_open, ctx._h(), os.fsencode(path),
				_path_flag(path_mode), what=str(path))
		super().__init__(h, lib.p2pio_file_close, (ctx,))
		self.context = ctx
		self.name = str(path)
		self.size = lib.p2pio_file_size(h)

	def path_info(self):
		"""The path this file's reads take, why, and why not each faster one."""
		info = p2pio_path_info()
		info.size = ctypes.sizeof(info)
		check(self._call(lib.p2pio_path_info, ctypes.byref(info)))
		names = {v: k for k, v in PATHS.items()}
		return {"path": names.get(info.path, str(info.path)),
			"why": info.why.decode(errors="replace"),
			"why_not": {names[i]: info.why_not[i].value.decode(errors="replace")
				    for i in range(P2PIO_PATH_NR) if info.why_not[i].value},
			"dio_align": info.dio_align, "lba_size": info.lba_size,
			"max_in_flight": info.max_in_flight}

	def read(self, offset, length, into=None, buf_offset=0, mem=None):
		"""Reads @length bytes at file @offset, waiting for them, into Buffer @into at
		@buf_offset (or a new buffer of the context's memory, @mem to choose), and
		returns them as a uint8 Tensor over that buffer range."""
		offset = uint(offset, "file offset")
		length = uint(length, "length")
		buf_offset = uint(buf_offset, "buffer offset")
		if into is None:
			into = self.context.alloc(length, mem)
			buf_offset = 0
		with self._using() as h, into._using() as b:
			check(lib.p2pio_read(h, offset, length, b, buf_offset), None,
			      "read %s [%d, +%d)" % (self.name, offset, length))
		return into.view(offset=buf_offset, nbytes=length)
