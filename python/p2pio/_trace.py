# SPDX-License-Identifier: MIT
"""MoE routing traces (p2pio/expert_trace.h): which experts each token chose at each layer.
An engine records its real routing with TraceWriter (or a Trace in memory) and evaluates
expert caching on it with Trace.replay(), the expert cache's own bookkeeping and policies
run without memory or I/O; the same files feed `p2pio-moe replay`."""

import ctypes
import errno
import os

from ._lib import (EXPERT_PREFETCH, P2PIO_EXPERT_TOKEN_PREFILL, P2PIO_EXPERT_TOKEN_SEQ_START,
		   P2PIO_EXPERT_TRACE_MODEL_LEN, P2pioError, check, lib, new_error, open_handle,
		   p2pio_expert_layer_stats, p2pio_expert_replay_opts, p2pio_expert_stats,
		   p2pio_expert_synth_params, p2pio_expert_trace_info, uint, _U32)
from ._resource import _Resource


def _ids(ids):
	"""Expert ids (any iterable of integers: a list, a NumPy array, a torch tensor's
	tolist()) as a C array and its length. Floats are refused, not truncated."""
	ids = [uint(e, "expert id", _U32) for e in ids]
	return (ctypes.c_uint32 * max(len(ids), 1))(*ids), len(ids)


def _flags(prefill, seq_start):
	return (P2PIO_EXPERT_TOKEN_PREFILL if prefill else 0) | \
		(P2PIO_EXPERT_TOKEN_SEQ_START if seq_start else 0)


def _info(layers, experts, top_k, model):
	"""struct p2pio_expert_trace_info; the library checks the shape's limits."""
	name = model.encode() if isinstance(model, str) else bytes(model)
	if len(name) >= P2PIO_EXPERT_TRACE_MODEL_LEN or b"\0" in name:
		raise P2pioError(errno.EINVAL, "model name %r: at most %d bytes, no NUL" %
				 (model, P2PIO_EXPERT_TRACE_MODEL_LEN - 1))
	return p2pio_expert_trace_info(nr_layers=uint(layers, "layers", _U32),
				       nr_experts=uint(experts, "experts", _U32),
				       top_k=uint(top_k, "top_k", _U32), model=name)


def _fields(st, skip=("size", "reserved")):
	return {f: getattr(st, f) for f, _ in st._fields_ if f not in skip}


class TraceWriter(_Resource):
	"""A native trace file written token by token as an engine decodes: memory does not
	grow with the trace, and a crash leaves every token ended so far on disk (less what
	the C library still buffers). For each token, add() each layer's routing, then
	end_token(). close() finishes the file and raises if any write failed."""

	def __init__(self, path, layers, experts, top_k, model=""):
		info = _info(layers, experts, top_k, model)
		self.path = os.fsdecode(path)
		h = open_handle(lib.p2pio_expert_trace_writer_open, os.fsencode(path),
				ctypes.byref(info), what=self.path)
		# The close's result, kept apart from self so that the free function holds no
		# reference to the writer (the writer can then be freed by reference counting).
		self._closing = closing = {}

		def finish(h):
			err = new_error()
			ret = lib.p2pio_expert_trace_writer_close(h, ctypes.byref(err))
			if ret < 0:
				closing["error"] = (ret, err)

		super().__init__(h, finish)
		self.layers, self.experts, self.top_k = layers, experts, top_k
		self.model = info.model.decode("utf-8", "replace")
		self.tokens = 0

	def add(self, layer, ids):
		"""Record the experts @layer chose for the token being built, in the router's
		order (at most top_k, distinct, each below experts). Each layer at most once per
		token; a layer never added is stored as not recorded (0 experts)."""
		arr, n = _ids(ids)
		err = new_error()
		ret = self._call(lib.p2pio_expert_trace_writer_add, uint(layer, "layer", _U32), arr, n,
							 ctypes.byref(err))
		if ret < 0:
			check(ret, err, "layer %d experts %s" % (layer, list(arr)[:n]))

	def end_token(self, prefill=False, seq_start=False):
		"""Write the token built by add(): @prefill for a prompt token (a replay skips
		them unless with_prefill), @seq_start for the first token of a new sequence (a
		replay starts it with a cold cache). A write that failed raises, here or at
		close(); the writer records nothing more after one."""
		err = new_error()
		check(self._call(lib.p2pio_expert_trace_writer_end_token, _flags(prefill, seq_start),
							      ctypes.byref(err)), err, self.path)
		self.tokens += 1

	def close(self):
		"""Finish the file (a token added to but not ended is dropped). Raises
		P2pioError with the library's message if any write, the flush or the close
		failed: the file is then incomplete."""
		super().close()
		got = self._closing.pop("error", None)
		if got:
			check(got[0], got[1], self.path)

	def __repr__(self):
		return "<p2pio.TraceWriter %s: %d tokens of %d layers%s>" % (
			self.path, self.tokens, self.layers, " (closed)" if self.closed else "")


class Trace(_Resource):
	"""A routing trace in memory: built with add() and end_token(), read from a file with
	Trace.load(), or generated with synth(); written with save() and run through an expert
	cache's policies with replay(). Not safe to build from several threads at once."""

	def __init__(self, layers, experts, top_k, model=""):
		info = _info(layers, experts, top_k, model)
		h = open_handle(lib.p2pio_expert_trace_new, ctypes.byref(info),
				what="trace of %d layers, %d experts, top_k %d" % (layers, experts, top_k))
		self._own(h, None)

	def _own(self, h, path):
		_Resource.__init__(self, h, lib.p2pio_expert_trace_free)
		self.path = path
		info = lib.p2pio_expert_trace_info(h).contents
		# The shape never changes: read once, so the properties work after close().
		self._shape = (info.nr_layers, info.nr_experts, info.top_k,
			       info.model.decode("utf-8", "replace"))

	@classmethod
	def _wrap(cls, h, path=None):
		t = cls.__new__(cls)
		t._own(h, path)
		return t

	@classmethod
	def load(cls, path):
		"""A trace file: the native format, or any JSON routing log the library reads
		(vLLM's routing profiler and FusedMoE logger, RoutingTrace documents, the HF
		greedy loop's gen_*.json and trace_*.json; Documentation/moe.md lists them)."""
		h = open_handle(lib.p2pio_expert_trace_load, os.fsencode(path),
				what=os.fsdecode(path))
		return cls._wrap(h, os.fsdecode(path))

	@property
	def layers(self):
		return self._shape[0]

	@property
	def experts(self):
		return self._shape[1]

	@property
	def top_k(self):
		return self._shape[2]

	@property
	def model(self):
		return self._shape[3]

	@property
	def tokens(self):
		"""Tokens ended so far."""
		return self._call(lib.p2pio_expert_trace_tokens)

	def __len__(self):
		return self.tokens

	def add(self, layer, ids):
		"""As TraceWriter.add(), for the token being built in memory."""
		arr, n = _ids(ids)
		err = new_error()
		ret = self._call(lib.p2pio_expert_trace_add, uint(layer, "layer", _U32), arr, n,
						 ctypes.byref(err))
		if ret < 0:
			check(ret, err, "layer %d experts %s" % (layer, list(arr)[:n]))

	def end_token(self, prefill=False, seq_start=False):
		"""As TraceWriter.end_token(): append the token built by add()."""
		err = new_error()
		check(self._call(lib.p2pio_expert_trace_end_token, _flags(prefill, seq_start),
						       ctypes.byref(err)), err, "end of token")

	def cell(self, token, layer):
		"""The experts @token chose at @layer, in the router's order ([]: not recorded)."""
		ids = ctypes.POINTER(ctypes.c_uint16)()
		n = check(self._call(lib.p2pio_expert_trace_cell, uint(token, "token"),
						      uint(layer, "layer", _U32), ctypes.byref(ids)),
			  None, "token %d layer %d" % (token, layer))
		return ids[:n]

	def token_flags(self, token):
		"""{"prefill": ..., "seq_start": ...}: the flags end_token() was given, so that
		t.end_token(**other.token_flags(i)) copies a token."""
		token = uint(token, "token")
		if token >= self.tokens:
			raise P2pioError(errno.EINVAL, "token %d of %d" % (token, self.tokens))
		f = self._call(lib.p2pio_expert_trace_token_flags, token)
		return {"prefill": bool(f & P2PIO_EXPERT_TOKEN_PREFILL),
			"seq_start": bool(f & P2PIO_EXPERT_TOKEN_SEQ_START)}

	def save(self, path):
		"""Write the trace in the native format (the file is created or truncated)."""
		err = new_error()
		check(self._call(lib.p2pio_expert_trace_save, os.fsencode(path), ctypes.byref(err)),
		      err, os.fsdecode(path))

	def replay(self, capacity, policy="lru", per_layer=True, prefetch=(), router_accuracy=1.0,
		   with_prefill=False, warmup_tokens=None, policy_args=None):
		"""What an expert cache would have done on this routing (p2pio_expert_replay():
		no memory, no I/O; every load completes at once, one expert counts as one byte).

		@capacity: experts resident per layer (@per_layer), or in all layers together.
		@policy: "lru", "lfu", "lrfu", or "oracle" (Belady's optimum, which the replay
		can run because it knows the future); @policy_args its options ("decay=0.8").
		@prefetch: prefetch sources, any of "lag" (the token before's experts), "learned"
		(a predictor learned from the routing replayed so far), "next" (the true routing
		one layer ahead: the ceiling of any predictor), "router" (that, right with
		probability @router_accuracy, as an engine running the next router early would
		guess). @with_prefill replays prompt tokens too. @warmup_tokens: the steady
		state starts after that many tokens of each sequence (None: once the cache
		first had to evict).

		Returns every counter of struct p2pio_expert_stats (tokens, accesses, hits,
		misses, loads, prefetches, prefetch_used, missed_layers, the steady_* ones, ...)
		and "layers": per layer, accesses, hits, misses, max_resident and resident."""
		if isinstance(prefetch, str):
			prefetch = (prefetch,)
		bits = 0
		for name in prefetch:
			if name not in EXPERT_PREFETCH:
				raise ValueError("unknown prefetch source %r (known: %s)" %
						 (name, ", ".join(sorted(EXPERT_PREFETCH))))
			bits |= EXPERT_PREFETCH[name]
		if not 0 <= router_accuracy <= 1:
			raise ValueError("router_accuracy must be in 0 .. 1, not %r" % (router_accuracy,))
		o = p2pio_expert_replay_opts()
		# The strings must live until the call returns: o only points at them.
		pol = policy.encode()
		args = policy_args.encode() if policy_args is not None else None
		o.policy = pol
		o.policy_args = args
		o.capacity = uint(capacity, "capacity", _U32)
		o.per_layer = per_layer
		o.prefetch = bits
		o.with_prefill = with_prefill
		o.router_wrong = 1.0 - router_accuracy
		if warmup_tokens is not None:
			o.warmup_tokens = uint(warmup_tokens, "warmup_tokens")
			o.fixed_warmup = True
		st = p2pio_expert_stats(size=ctypes.sizeof(p2pio_expert_stats))
		ls = (p2pio_expert_layer_stats * self.layers)()
		err = new_error()
		check(self._call(lib.p2pio_expert_replay, ctypes.byref(o), ctypes.byref(st), ls,
					      ctypes.byref(err)), err, "replay")
		out = _fields(st)
		out["layers"] = [_fields(x, ()) for x in ls]
		return out

	def __repr__(self):
		if self.closed:
			return "<p2pio.Trace (closed)>"
		return "<p2pio.Trace %s%d tokens of %d layers, %d experts, top_k %d>" % (
			"%s: " % self.path if self.path else "", self.tokens, self.layers,
			self.experts, self.top_k)


def synth(layers, experts, top_k, tokens, skew=0.8, locality=0.5, window=4, seed=1,
	  layer_spread=0.0, drift=0.0, cutoff=0.0, repeat=0.0, offset=0.0, chain=0.0):
	"""A synthetic routing trace (p2pio_expert_synth(); one sequence of generated tokens):
	Zipf popularity of exponent @skew per layer, @locality reuse of the last @window
	tokens' experts, and the refinements of struct p2pio_expert_synth_params. The
	defaults are `p2pio-moe synth`'s; the same arguments give the same trace on every
	machine."""
	p = p2pio_expert_synth_params(
		nr_layers=uint(layers, "layers", _U32), nr_experts=uint(experts, "experts", _U32),
		top_k=uint(top_k, "top_k", _U32), tokens=uint(tokens, "tokens"), skew=skew,
		locality=locality, window=uint(window, "window", _U32), seed=uint(seed, "seed"),
		layer_spread=layer_spread, drift=drift, cutoff=cutoff, repeat=repeat,
		offset=offset, chain=chain)
	return Trace._wrap(open_handle(lib.p2pio_expert_synth, ctypes.byref(p),
				       what="synthetic trace"))
