# SPDX-License-Identifier: MIT
"""Models: whole loads and layer streaming, their tensors typed and shaped from the GGUF."""

import ctypes
import os

from ._context import _path_flag
from ._lib import (MEMS, P2PIO_MODEL_SET_MEM, P2PIO_STREAM_LRU, P2PIO_STREAM_NO_PREFETCH, PATHS,
		   PROGRESS_FN, check, lib, open_handle, p2pio_layer, p2pio_load_result,
		   p2pio_model_info, p2pio_model_load_opts, p2pio_model_opts, p2pio_model_tensor,
		   p2pio_path_info, p2pio_stream_stats, p2pio_streamer_opts)
from ._resource import _Resource
from ._tensor import DTYPES, GGML_DTYPES, Tensor


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


def _gguf_shapes(g):
	"""name -> ne (innermost extent first) of every tensor of the parsed GGUF header @g."""
	shapes = {}
	for i in range(lib.p2pio_gguf_tensor_count(g)):
		t = lib.p2pio_gguf_tensor(g, i).contents
		shapes[t.name.decode()] = tuple(t.ne[d] for d in range(t.n_dims))
	return shapes


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
		shape = tuple(reversed(self.shapes.get(name, ())))  # GGUF lists the innermost first
		n = 1
		for d in shape:
			n *= d
		# Quantized types, and a shape that does not cover exactly the tensor's bytes (a
		# shape read from another file than the model's): raw bytes, as many as there are.
		if not dtype or n * DTYPES[dtype][1] // 8 != t.size:
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
		h = open_handle(lib.p2pio_model_open, ctx._h(), os.fsencode(path),
				ctypes.byref(opts), what=str(path))
		try:
			# The shapes from the model's own parse of the file it reads
			# (p2pio_model_gguf()): a second open of the path could find another file
			# there, whose shapes would describe memory this model does not have.
			shapes = _gguf_shapes(lib.p2pio_model_gguf(h))
			info = p2pio_model_info()
			lib.p2pio_model_info(h, ctypes.byref(info))
			names = []
			t = p2pio_model_tensor()
			for i in range(info.tensors):
				check(lib.p2pio_model_tensor_at(h, i, ctypes.byref(t)))
				names.append(t.name.decode())
		except BaseException:
			lib.p2pio_model_close(h)
			raise
		super().__init__(h, lib.p2pio_model_close, (ctx,))
		self.context = ctx
		self.path = str(path)
		self.mem = mem or ctx._default_mem()
		self._maker = _TensorMaker(shapes, ctx._devtuple(self.mem))
		self.info = {f: getattr(info, f) for f, _ in p2pio_model_info._fields_}
		self.names = names
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
		check(lib.p2pio_path_info(self._call(lib.p2pio_model_file), ctypes.byref(info)))
		names = {v: k for k, v in PATHS.items()}
		return {"path": names.get(info.path), "why": info.why.decode(errors="replace")}

	def load(self, chunk=0, progress=None):
		"""Loads the whole model into one arena of target memory; returns what the load
		did. @progress(done, total) is called as reads complete; returning True stops
		the load (P2pioError ECANCELED)."""
		with self._using() as h:
			return self._load(h, chunk, progress)

	def _load(self, h, chunk, progress):
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
		res = p2pio_load_result(size=ctypes.sizeof(p2pio_load_result))
		ret = lib.p2pio_model_load(h, ctypes.byref(opts), ctypes.byref(res))
		if cb_error:
			raise cb_error[0]
		check(ret, None, "load %s" % self.path)
		self.loaded = True
		return {f: getattr(res, f) for f, _ in p2pio_load_result._fields_ if f != "size"}

	def tensor(self, name):
		"""The tensor @name in target memory (after load())."""
		if not self.loaded:
			raise ValueError("the model is not loaded: call load() first")
		t = p2pio_model_tensor()
		check(self._call(lib.p2pio_model_tensor, name.encode(), ctypes.byref(t)), None, name)
		return self._maker.make(self, t)

	__getitem__ = tensor

	def tensors(self):
		"""Every tensor, by name (after load())."""
		return {n: self.tensor(n) for n in self.names}

	def experts(self, budget=0, policy=None, **kw):
		"""An expert cache of this mixture-of-experts model (p2pio.Experts): the dense
		part loaded, the experts of each layer kept within @budget bytes of target memory
		(dense part included; 0: all of them) and loaded as require() asks; @policy
		"lru", "lfu" or "lrfu" (None: the library's default). The model must not be
		loaded whole or streamed."""
		from ._experts import Experts  # _experts imports this module
		return Experts(self, budget, policy, **kw)

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
		h = open_handle(lib.p2pio_streamer_open, model._h(), ctypes.byref(opts),
				what="stream %s" % model.path)
		super().__init__(h, lib.p2pio_streamer_close, (model,))
		self.model = model
		self._maker = model._maker
		self.slots = lib.p2pio_streamer_slots(h)
		why = ctypes.c_char_p()
		# The layers loaded ahead, and how that was chosen (the default from the slots).
		self.prefetch = lib.p2pio_streamer_prefetch(h, ctypes.byref(why))
		self.prefetch_why = why.value.decode()

	def acquire(self, layer, stream=None):
		"""Layer @layer, its data ordered before work queued on @stream (a CUstream, a
		torch or CuPy stream; None: the legacy default stream; ignored on host)."""
		raw = p2pio_layer()
		check(self._call(lib.p2pio_streamer_acquire, layer, _stream_handle(stream),
						 ctypes.byref(raw)), None, "layer %d" % layer)
		return Layer(self, raw, stream)

	layer = acquire

	def release(self, layer, stream=None):
		check(self._call(lib.p2pio_streamer_release, layer, _stream_handle(stream)), None,
		      "layer %d" % layer)

	def tensor(self, name):
		"""A resident (non-layer) tensor."""
		t = p2pio_model_tensor()
		check(self._call(lib.p2pio_streamer_tensor, name.encode(), ctypes.byref(t)), None,
		      name)
		return self._maker.make(self, t)

	def stats(self):
		s = p2pio_stream_stats()
		self._call(lib.p2pio_streamer_stats, ctypes.byref(s), None, 0)
		return {f: getattr(s, f) for f, _ in p2pio_stream_stats._fields_}

	def reset_stats(self):
		self._call(lib.p2pio_streamer_reset_stats)

	def wait_prefetch(self):
		"""Waits until the layers loaded ahead have landed (say, at the end of a pass)."""
		check(self._call(lib.p2pio_streamer_wait_prefetch), None, "waiting for the prefetch")
