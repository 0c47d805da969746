# SPDX-License-Identifier: MIT
"""DLPack export (the unversioned "dltensor" capsule of DLPack 0.x, which every consumer
takes: torch.from_dlpack, cupy.from_dlpack, jax.dlpack, numpy.from_dlpack).

A capsule points to a DLManagedTensor allocated here; its manager_ctx is a key into
_live, which holds the tensor's shape and strides arrays and a reference to the owner of
the memory (so the memory stays allocated while a consumer uses it). The consumer calls
the deleter when it is done; a capsule that nobody consumed calls it when it is collected.
"""

import ctypes
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_int64, c_uint8,
		    c_uint16, c_uint64, c_void_p)

KDL_CPU = 1
KDL_CUDA = 2

KDL_INT = 0
KDL_UINT = 1
KDL_FLOAT = 2
KDL_BFLOAT = 4


class DLDevice(Structure):
	_fields_ = [("device_type", c_int), ("device_id", c_int)]


class DLDataType(Structure):
	_fields_ = [("code", c_uint8), ("bits", c_uint8), ("lanes", c_uint16)]


class DLTensor(Structure):
	_fields_ = [("data", c_void_p), ("device", DLDevice), ("ndim", c_int),
		    ("dtype", DLDataType), ("shape", POINTER(c_int64)),
		    ("strides", POINTER(c_int64)), ("byte_offset", c_uint64)]


class DLManagedTensor(Structure):
	pass


DELETER = CFUNCTYPE(None, POINTER(DLManagedTensor))
DLManagedTensor._fields_ = [("dl_tensor", DLTensor), ("manager_ctx", c_void_p),
			    ("deleter", DELETER)]

_NAME = b"dltensor"
_api = ctypes.pythonapi
_api.PyCapsule_New.restype = ctypes.py_object
_api.PyCapsule_New.argtypes = [c_void_p, c_char_p, c_void_p]
_api.PyCapsule_IsValid.restype = c_int
_api.PyCapsule_IsValid.argtypes = [c_void_p, c_char_p]
_api.PyCapsule_GetPointer.restype = c_void_p
_api.PyCapsule_GetPointer.argtypes = [c_void_p, c_char_p]

_lock = threading.Lock()
_live = {}
_next_key = [1]


def _delete(managed):
	try:
		key = managed.contents.manager_ctx
		with _lock:
			entry = _live.pop(key, None)
		if entry is not None and entry[-1] is not None:
			entry[-1]._unpin()
	except Exception:  # a deleter must not raise into C; at worst memory stays pinned
		pass


_deleter = DELETER(_delete)


@CFUNCTYPE(None, c_void_p)
def _capsule_destructor(capsule):
	# Not consumed: the capsule still has its name, and the tensor is ours to delete.
	try:
		if _api.PyCapsule_IsValid(capsule, _NAME):
			ptr = _api.PyCapsule_GetPointer(capsule, _NAME)
			_delete(ctypes.cast(ptr, POINTER(DLManagedTensor)))
	except Exception:
		pass


def live_exports():
	"""How many DLPack tensors consumers hold (for tests)."""
	with _lock:
		return len(_live)


def make_capsule(owner, data, nbytes_check, device, dtype, shape):
	"""A "dltensor" capsule for @shape elements of @dtype ((code, bits)) at address @data
	on @device ((type, id)), C-contiguous. @owner._pin() is called now and
	@owner._unpin() when the consumer deletes the tensor. @nbytes_check is the size of the
	memory at @data: BufferError unless @shape of @dtype covers exactly that many bytes (a
	consumer reads and writes every byte the tensor describes)."""
	count = 1
	for d in shape:
		if not 0 <= d < 1 << 63:
			raise BufferError("p2pio: shape %r has an extent a DLPack tensor cannot have"
					  % (tuple(shape),))
		count *= d
	nbytes = count * dtype[1] // 8
	if nbytes != nbytes_check:
		raise BufferError("p2pio: shape %r of %d-bit elements is %d bytes, but the memory "
				  "is %d bytes" % (tuple(shape), dtype[1], nbytes, nbytes_check))
	ndim = len(shape)
	shape_arr = (c_int64 * max(ndim, 1))(*shape)
	strides = []
	step = 1
	for d in reversed(shape):
		strides.insert(0, step)
		step *= d
	strides_arr = (c_int64 * max(ndim, 1))(*strides)
	m = DLManagedTensor()
	m.dl_tensor.data = data
	m.dl_tensor.device = DLDevice(*device)
	m.dl_tensor.ndim = ndim
	m.dl_tensor.dtype = DLDataType(dtype[0], dtype[1], 1)
	m.dl_tensor.shape = ctypes.cast(shape_arr, POINTER(c_int64))
	m.dl_tensor.strides = ctypes.cast(strides_arr, POINTER(c_int64))
	m.dl_tensor.byte_offset = 0
	m.deleter = _deleter
	owner._pin()
	with _lock:
		key = _next_key[0]
		_next_key[0] += 1
		m.manager_ctx = key
		_live[key] = (m, shape_arr, strides_arr, owner)
	try:
		return _api.PyCapsule_New(ctypes.addressof(m), _NAME,
					  ctypes.cast(_capsule_destructor, c_void_p))
	except BaseException:
		_delete(ctypes.pointer(m))
		raise
