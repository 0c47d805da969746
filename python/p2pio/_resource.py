# SPDX-License-Identifier: MIT
"""Native objects that live as long as their users and everything made from them."""

import contextlib
import threading


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

	@contextlib.contextmanager
	def _using(self):
		"""The handle, kept allocated until the with block ends: a close() meanwhile (from
		a callback of the call, or another thread) frees it only then."""
		with self._lock:
			if self._closed:
				raise ValueError("%s is closed" % type(self).__name__)
			self._holds += 1
			h = self._handle
		try:
			yield h
		finally:
			self._unpin()

	def _call(self, fn, *args):
		"""fn(the handle, *args), the handle kept allocated until it returns (_using()):
		ctypes lets go of the GIL, so another thread's close() may come meanwhile."""
		with self._using() as h:
			return fn(h, *args)

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
