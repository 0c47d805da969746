# SPDX-License-Identifier: MIT
"""Tensors: typed, shaped views of p2pio memory, exported through DLPack."""

from . import _dlpack
from ._lib import lib
from ._resource import _Export

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
