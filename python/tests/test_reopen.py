# SPDX-License-Identifier: MIT
"""Shapes and memory from one file only (review s11, R3). The binding used to read tensor
dimensions with its own parse of the path and let the model open the path again: a file
replaced in between gave a DLPack tensor that described more memory than existed. Now the
shapes come from the model's own parse (p2pio_model_gguf()), and a shape that does not
cover a tensor's bytes exactly is exported as raw bytes. Run by `make check-python`."""

import gc
import os
import shutil
import tempfile
import unittest
from unittest import mock

import numpy as np

import p2pio
from p2pio import _dlpack, _model
from p2pio._lib import p2pio_model_tensor
from p2pio._resource import _Export
from p2pio._tensor import Tensor

import gguf_writer as gw

NAME = "blk.0.attn_q.weight"


def write_model(path, ne0, fill):
	"""One F32 tensor of ne0 elements (the reproducer's big.gguf and small.gguf)."""
	gw.write(path, [(NAME, gw.F32, [ne0], np.full(ne0, fill, np.float32).tobytes())])


class TestMakeCapsule(unittest.TestCase):
	def setUp(self):
		self.ctx = p2pio.Context(device="host")
		self.buf = self.ctx.alloc(64)

	def tearDown(self):
		self.buf.close()
		self.ctx.close()

	def test_refuses_a_shape_larger_than_the_memory(self):
		gc.collect()
		base = _dlpack.live_exports()
		holds = self.buf._holds
		addr = self.buf.view().data_ptr
		with self.assertRaises(BufferError) as cm:
			_dlpack.make_capsule(_Export(self.buf), addr, 64, (_dlpack.KDL_CPU, 0),
					     (_dlpack.KDL_FLOAT, 32), (1 << 20,))
		self.assertIn("4194304", str(cm.exception))  # what the shape describes
		self.assertIn("64", str(cm.exception))  # what there is
		with self.assertRaises(BufferError):  # smaller is refused too: not exact
			_dlpack.make_capsule(_Export(self.buf), addr, 64, (_dlpack.KDL_CPU, 0),
					     (_dlpack.KDL_FLOAT, 32), (4, 2))
		with self.assertRaises(BufferError):  # a negative extent
			_dlpack.make_capsule(_Export(self.buf), addr, 64, (_dlpack.KDL_CPU, 0),
					     (_dlpack.KDL_UINT, 8), (-1, -64))
		# Nothing was pinned or registered by the refusals.
		self.assertEqual(self.buf._holds, holds)
		self.assertEqual(_dlpack.live_exports(), base)
		# The exact size is exported, in any shape that covers it.
		a = np.from_dlpack(self.buf.view().view("float32", (4, 4)))
		self.assertEqual((a.dtype, a.shape), (np.float32, (4, 4)))
		del a
		gc.collect()
		self.assertEqual(_dlpack.live_exports(), base)

	def test_a_tensor_whose_shape_disagrees_is_not_exported(self):
		t = self.buf.view()
		bad = Tensor(self.buf, t.data_ptr, 64, "float32", (1 << 20,), t.device)
		with self.assertRaises(BufferError):
			bad.__dlpack__()
		with self.assertRaises(BufferError):
			np.from_dlpack(bad)


class TestTensorMaker(unittest.TestCase):
	"""_TensorMaker.make() on its own: a shape is used only where it covers exactly the
	tensor's bytes."""

	def make(self, shapes, ggml_type, size):
		t = p2pio_model_tensor(name=NAME.encode(), addr=0, host=None, size=size,
				       file_offset=4096, type=ggml_type, layer=0)
		got = _model._TensorMaker(shapes, ("cpu", 0)).make(None, t)
		return got.dtype, got.shape, got.nbytes

	def test_shapes(self):
		self.assertEqual(self.make({NAME: (16, 4)}, gw.F32, 256), ("float32", (4, 16), 256))
		self.assertEqual(self.make({NAME: (16, 4)}, gw.F16, 128), ("float16", (4, 16), 128))
		# A shape of more (or fewer) bytes than the tensor has: raw bytes.
		self.assertEqual(self.make({NAME: (1 << 20,)}, gw.F32, 64), ("uint8", (64,), 64))
		self.assertEqual(self.make({NAME: (8,)}, gw.F32, 64), ("uint8", (64,), 64))
		self.assertEqual(self.make({}, gw.F32, 64), ("uint8", (64,), 64))
		# Quantized types stay raw bytes, whatever their shape.
		self.assertEqual(self.make({NAME: (64, 6)}, gw.Q8_0, 408), ("uint8", (408,), 408))


class TestFileSwappedAfterOpen(unittest.TestCase):
	def setUp(self):
		self.dir = tempfile.mkdtemp(prefix="p2pio-py-reopen-")
		self.path = os.path.join(self.dir, "model.gguf")
		self.small = os.path.join(self.dir, "small.gguf")
		write_model(self.path, 1 << 20, 1.0)  # 4 MiB of data
		write_model(self.small, 16, 2.0)  # 64 bytes
		self.ctx = p2pio.Context(device="host")

	def tearDown(self):
		self.ctx.close()
		shutil.rmtree(self.dir)

	def test_the_model_reads_the_file_it_parsed(self):
		# The reproducer's race: another file renamed over the path once the model is
		# open. Its shapes and its bytes both come from the file it opened.
		with self.ctx.open_model(self.path) as m:
			os.replace(self.small, self.path)
			m.load()
			t = m[NAME]
			self.assertEqual((t.dtype, t.shape, t.nbytes), ("float32", (1 << 20,), 4 << 20))
			a = np.from_dlpack(t)
			self.assertTrue(np.array_equal(a, np.full(1 << 20, 1.0, np.float32)))
			del a, t
		# Opened again, the path gives the new file, its own shapes and bytes.
		with self.ctx.open_model(self.path) as m:
			m.load()
			t = m[NAME]
			self.assertEqual((t.dtype, t.shape, t.nbytes), ("float32", (16,), 64))
			a = np.from_dlpack(t)
			self.assertTrue(np.array_equal(a, np.full(16, 2.0, np.float32)))
			del a, t

	def test_shapes_come_from_the_models_own_parse(self):
		# No second parse of the path: the binding reads the model's header handle.
		calls = []
		orig = _model._gguf_shapes

		def spy(g):
			calls.append(g)
			return orig(g)

		with mock.patch.object(_model, "_gguf_shapes", spy), \
		     mock.patch.object(_model.lib, "p2pio_gguf_open",
				       side_effect=AssertionError("the path parsed twice")):
			with self.ctx.open_model(self.path) as m:
				self.assertEqual(calls, [_model.lib.p2pio_model_gguf(m._h())])

	def test_shape_that_disagrees_is_exported_flat(self):
		# Should a shape not match its tensor's bytes, the tensor is raw bytes of its
		# own size: never a shape over memory that is not there.
		orig = _model._gguf_shapes

		def other_shapes(g):
			got = orig(g)
			got[NAME] = (1 << 22,)
			return got

		with mock.patch.object(_model, "_gguf_shapes", other_shapes):
			m = self.ctx.open_model(self.path)
			m2 = self.ctx.open_model(self.path)
		with m:
			m.load()
			t = m[NAME]
			self.assertEqual((t.dtype, t.shape, t.nbytes), ("uint8", (4 << 20,), 4 << 20))
			self.assertEqual(t.type_name, "F32")
			a = np.from_dlpack(t)
			self.assertEqual((a.dtype, a.nbytes), (np.uint8, 4 << 20))
			self.assertTrue(np.array_equal(a.view(np.float32),
						       np.full(1 << 20, 1.0, np.float32)))
			del a, t
		# Streamed layers take their tensors the same way.
		with m2, m2.stream(slots=1) as s:
			with s.acquire(0) as layer:
				lt = layer[NAME]
				self.assertEqual((lt.dtype, lt.shape, lt.nbytes),
						 ("uint8", (4 << 20,), 4 << 20))
				a = np.from_dlpack(lt)
				self.assertEqual(a.nbytes, 4 << 20)
				del a, lt

	def test_unchanged_file_keeps_its_shapes(self):
		with self.ctx.open_model(self.path) as m:
			m.load()
			t = m[NAME]
			self.assertEqual((t.dtype, t.shape, t.nbytes), ("float32", (1 << 20,), 4 << 20))
			del t


if __name__ == "__main__":
	unittest.main()
