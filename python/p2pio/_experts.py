# SPDX-License-Identifier: MIT
"""Expert caches: a mixture-of-experts model whose experts do not fit, its dense part
resident and each layer's experts loaded on demand into a memory budget (p2pio/experts.h)."""

import ctypes

from ._lib import (P2PIO_EXPERTS_EAGER_UNMAP, P2PIO_EXPERTS_KEEP_WRONG_HINTS,
		   P2PIO_EXPERTS_MISSES_IN_ORDER, P2PIO_EXPERTS_PREFETCH_LEARNED,
		   P2PIO_EXPERTS_PREFETCH_PREV, check, lib, open_handle, p2pio_expert_layer_stats, p2pio_expert_slice, p2pio_expert_stats,
		   p2pio_experts_info, p2pio_experts_io, p2pio_experts_opts, p2pio_model_tensor,
		   uint, _U32)
from ._model import _stream_handle
from ._resource import _Resource
from ._tensor import DTYPES, GGML_DTYPES, Tensor

# More slices than any expert has (gate, up, down and their scales or biases).
_MAX_SLICES = 32


def _fields(st, skip=("size", "reserved", "reserved2")):
	return {f: getattr(st, f) for f, _ in st._fields_ if f not in skip}


def _ids(ids):
	"""Expert ids (ints or Expert objects) as a C array and its length."""
	ids = [e.id if isinstance(e, Expert) else uint(e, "expert id", _U32) for e in ids]
	return (ctypes.c_uint32 * max(len(ids), 1))(*ids), len(ids)


class Expert:
	"""One expert handed out by Experts.require(): its slices of the layer's *_exps tensors
	as tensors, by tensor name (expert[name]). Its memory is the expert's while it is held:
	use it only in work ordered before Experts.release() of it."""

	def __init__(self, experts, layer, expert, addr):
		self.layer = layer
		self.id = expert
		self.data_ptr = addr
		self.tensors = {}
		for s in experts.slices(layer, expert):
			self.tensors[s["name"]] = experts._slice_tensor(s, addr, layer)

	def __getitem__(self, name):
		return self.tensors[name]

	def __repr__(self):
		return "<p2pio.Expert %d of layer %d at 0x%x>" % (self.id, self.layer, self.data_ptr)


class Experts(_Resource):
	"""The expert cache of a model (Model.experts()): the dense part loaded, the experts of
	every layer kept within @budget bytes of target memory, dense part included. require()
	hands out a token's experts of a layer, ordered before work queued on a stream;
	release() gives them back once that work is done."""

	def __init__(self, model, budget=0, policy=None, policy_args=None, prefetch_prev=False,
		     layer_floor=None, read_piece=0, read_pieces=0, eager_unmap=False,
		     prefetch_learned=False, keep_wrong_hints=False, misses_in_order=False):
		if layer_floor is not None and len(layer_floor) < model.layers:
			raise ValueError("layer_floor: %d values for %d layers" %
					 (len(layer_floor), model.layers))
		opts = p2pio_experts_opts()
		lib.p2pio_experts_opts_init(ctypes.byref(opts))
		opts.budget = budget
		# The strings and the floor array must live until the open has copied them.
		pol = policy.encode() if policy is not None else None
		args = policy_args.encode() if policy_args is not None else None
		opts.policy = pol
		opts.policy_args = args
		floors = None
		if layer_floor is not None:
			floors = (ctypes.c_uint64 * len(layer_floor))(*layer_floor)
			opts.layer_floor = floors
		opts.flags = (P2PIO_EXPERTS_PREFETCH_PREV if prefetch_prev else 0) | \
			(P2PIO_EXPERTS_EAGER_UNMAP if eager_unmap else 0) | \
			(P2PIO_EXPERTS_PREFETCH_LEARNED if prefetch_learned else 0) | \
			(P2PIO_EXPERTS_KEEP_WRONG_HINTS if keep_wrong_hints else 0) | \
			(P2PIO_EXPERTS_MISSES_IN_ORDER if misses_in_order else 0)
		opts.read_piece = read_piece
		opts.read_pieces = read_pieces
		h = open_handle(lib.p2pio_experts_open, model._h(), ctypes.byref(opts),
				what="experts of %s" % model.path)
		super().__init__(h, lib.p2pio_experts_close, (model,))
		self.model = model
		self._maker = model._maker
		self._slices = {}  # (layer, expert) -> slices: they never change
		info = p2pio_experts_info()
		lib.p2pio_experts_info(h, ctypes.byref(info))
		self.info = _fields(info)

	@property
	def layers(self):
		return self.info["layers"]

	@property
	def capacity(self):
		"""How many experts (of the largest size) fit beside the dense part."""
		return self.info["capacity"]

	def slices(self, layer, expert):
		"""Where each slice of (@layer, @expert) lies in the expert's memory: dicts of
		name, offset, size, file_offset and type (the ggml type), by file offset."""
		layer, expert = uint(layer, "layer", _U32), uint(expert, "expert", _U32)
		got = self._slices.get((layer, expert))
		if got is not None:
			return [dict(s) for s in got]
		out = (p2pio_expert_slice * _MAX_SLICES)()
		n = check(self._call(lib.p2pio_experts_slices, layer, expert, out, _MAX_SLICES), None,
			  "layer %d expert %d" % (layer, expert))
		if n > _MAX_SLICES:
			raise ValueError("layer %d: %d slices per expert, more than %d" %
					 (layer, n, _MAX_SLICES))
		got = [dict(_fields(out[i], skip=("reserved",)), name=out[i].name.decode())
		       for i in range(n)]
		self._slices[(layer, expert)] = got
		return [dict(s) for s in got]

	def _slice_tensor(self, s, addr, layer):
		"""A slice as a tensor: typed and shaped like one expert of its GGUF tensor (the
		tensor's dimensions less the outermost, the experts'), raw bytes if quantized."""
		dtype = GGML_DTYPES.get(s["type"])
		ne = self._maker.shapes.get(s["name"], ())[:-1]
		shape = tuple(reversed(ne))
		n = 1
		for d in shape:
			n *= d
		if not dtype or n * DTYPES[dtype][1] // 8 != s["size"]:
			dtype, shape = "uint8", (s["size"],)
		return Tensor(self, addr + s["offset"], s["size"], dtype, shape, self._maker.device,
			      s["name"], s["type"], s["file_offset"], layer)

	def tensor(self, name):
		"""A resident (dense) tensor: attention, norms, router, embeddings, ..."""
		t = p2pio_model_tensor()
		check(self._call(lib.p2pio_experts_tensor, name.encode(), ctypes.byref(t)), None,
		      name)
		return self._maker.make(self, t)

	__getitem__ = tensor

	def require(self, layer, ids, stream=None):
		"""The experts @ids of @layer (the token's routing), each an Expert, ordered
		before work queued on @stream (a CUstream, a torch or CuPy stream; None: the
		legacy default stream; without a GPU the call returns once they are loaded).
		Misses load at once, all in parallel; the experts stay held until release()."""
		layer = uint(layer, "layer", _U32)
		arr, n = _ids(ids)
		ptrs = (ctypes.c_uint64 * max(n, 1))()
		ret = self._call(lib.p2pio_experts_require, layer, arr, n, _stream_handle(stream), ptrs)
		if ret < 0:
			check(ret, None, "layer %d experts %s" % (layer, list(arr)[:n]))
		return [Expert(self, layer, arr[i], ptrs[i]) for i in range(n)]

	def release(self, layer, ids, stream=None):
		"""The work queued on @stream so far is the last to use these experts (ids or
		Expert objects): they may be evicted once it is done."""
		layer = uint(layer, "layer", _U32)
		arr, n = _ids(ids)
		ret = self._call(lib.p2pio_experts_release, layer, arr, n, _stream_handle(stream))
		if ret < 0:
			check(ret, None, "release layer %d experts %s" % (layer, list(arr)[:n]))

	def prefetch(self, layer, ids):
		"""A hint: start loading these experts of @layer (a prediction). Never blocks;
		returns how many loads started."""
		layer = uint(layer, "layer", _U32)
		arr, n = _ids(ids)
		return check(self._call(lib.p2pio_experts_prefetch, layer, arr, n), None,
			     "prefetch layer %d" % layer)

	def pin(self, layer, ids, pin=True):
		"""Keep these experts resident (loading them) until unpin()."""
		layer = uint(layer, "layer", _U32)
		arr, n = _ids(ids)
		check(self._call(lib.p2pio_experts_pin, layer, arr, n, pin), None,
		      "%s layer %d" % ("pin" if pin else "unpin", layer))

	def unpin(self, layer, ids):
		self.pin(layer, ids, False)

	def token_begin(self):
		"""Marks the start of a token's forward pass (for the per-token statistics)."""
		self._call(lib.p2pio_experts_token_begin)

	def token_end(self):
		check(self._call(lib.p2pio_experts_token_end), None, "token end")

	def stats(self):
		"""Hits, misses, loads, evictions, prefetches, per token and in steady state."""
		st = p2pio_expert_stats(size=ctypes.sizeof(p2pio_expert_stats))
		check(self._call(lib.p2pio_experts_stats, ctypes.byref(st), None, False))
		return _fields(st)

	def io(self, reset=False):
		"""What the runtime did: reads, bytes, the stream's stall, memory mapped, the
		miss batches' phases (struct p2pio_experts_io); @reset zeroes them after."""
		io = p2pio_experts_io(size=ctypes.sizeof(p2pio_experts_io))
		check(self._call(lib.p2pio_experts_stats, None, ctypes.byref(io), reset))
		return _fields(io)

	def layer_stats(self, layer):
		layer = uint(layer, "layer", _U32)
		st = p2pio_expert_layer_stats()
		check(self._call(lib.p2pio_experts_layer_stats, layer, ctypes.byref(st)), None,
		      "layer %d" % layer)
		return _fields(st)
