# SPDX-License-Identifier: MIT
"""Misuse a demanding user runs into: sizes and ids that ctypes would truncate, a buffer
registered larger than the object it wraps, an object closed while a call of it runs. Each
must raise a clear exception, never reach the library wrong or read freed memory. Cases
that crashed the interpreter run in a child (python3 -X dev), so a crash fails one test."""

import errno
import os
import shutil
import subprocess
import sys
import textwrap
import unittest

import numpy as np

import p2pio

from test_host import Files


def setUpModule():
	if Files.dir and not os.path.isdir(Files.dir):  # test_host's module removed them
		Files.dir = None
	Files.setup()


def tearDownModule():
	shutil.rmtree(Files.dir, ignore_errors=True)


def run_child(code, *args):
	"""@code run by a fresh python3 -X dev: (exit status, its output)."""
	p = subprocess.run([sys.executable, "-X", "dev", "-c", textwrap.dedent(code)] + list(args),
			   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
	return p.returncode, p.stdout.decode(errors="replace")


class TestSizes(unittest.TestCase):
	def setUp(self):
		self.ctx = p2pio.Context(device="host")

	def tearDown(self):
		self.ctx.close()

	def test_register_more_than_the_array_is_refused(self):
		# It registered 1 MiB over a 16-byte array, and a read wrote past its end.
		rc, out = run_child("""
			import sys, numpy as np, p2pio
			ctx = p2pio.Context("host")
			arr = np.zeros(16, np.uint8)
			try:
				b = ctx.register(arr, nbytes=1 << 20)
			except ValueError as e:
				print("refused:", e)
				sys.exit(0)
			ctx.open_file(sys.argv[1]).read(0, 1 << 20, into=b)
			print("wrote 1 MiB into 16 bytes")
			sys.exit(1)
			""", Files.tiny)
		self.assertEqual(rc, 0, out)
		a = np.zeros(64, np.uint8)
		with self.ctx.register(a, nbytes=32) as b:  # less is fine
			self.assertEqual(b.nbytes, 32)
		with self.ctx.register(a) as b:
			self.assertEqual(b.nbytes, 64)

	def test_sizes_beyond_64_bits_are_refused(self):
		# ctypes passed 2**64 + 4096 as 4096: the buffer had 4096 bytes, Buffer.nbytes
		# said 2**64 + 4096, and a uint64 view of it was exported to NumPy whole.
		rc, out = run_child("""
			import sys, numpy as np, p2pio
			ctx = p2pio.Context("host")
			try:
				b = ctx.alloc(2**64 + 4096)
			except p2pio.P2pioError as e:
				print("refused:", e)
				sys.exit(0)
			a = np.from_dlpack(b.view("uint64"))
			print("exported", a.nbytes, "bytes of a 4096-byte buffer")
			print(a[1 << 40])
			sys.exit(1)
			""")
		self.assertEqual(rc, 0, out)
		f = self.ctx.open_file(Files.tiny)
		for call in (lambda: f.read(0, 2**64 + 10), lambda: f.read(-1, 10),
			     lambda: self.ctx.alloc(-1)):
			with self.assertRaises(p2pio.P2pioError) as cm:
				call()
			self.assertEqual(cm.exception.errno, errno.EINVAL)
		with self.assertRaises(TypeError):
			f.read(0, 10.5)

	def test_expert_ids_and_layers_are_not_truncated(self):
		# require(0, [2**32 + 1]) handed out expert 1; layer 2**32 was layer 0.
		with self.ctx.open_model(Files.moe) as m, m.experts() as x:
			for layer, ids in ((0, [2**32 + 1]), (2**32, [0]), (0, [-1]), (-1, [0])):
				with self.assertRaises(p2pio.P2pioError) as cm:
					x.require(layer, ids)
				self.assertEqual(cm.exception.errno, errno.EINVAL, (layer, ids))
			for call in (lambda: x.prefetch(2**32, [0]), lambda: x.pin(0, [2**32 + 3]),
				     lambda: x.layer_stats(2**32), lambda: x.slices(0, 2**32 + 1)):
				with self.assertRaises(p2pio.P2pioError):
					call()
			with self.assertRaises(TypeError):
				x.require(0, [1.5])
			self.assertEqual([e.id for e in x.require(0, [np.uint32(1)])], [1])
			x.release(0, [1])


class TestCloseDuringACall(unittest.TestCase):
	def test_close_from_the_progress_callback(self):
		# The model was freed under the running load, which went on with the freed
		# model and arena (a crash, or EFAULT).
		rc, out = run_child("""
			import sys, p2pio
			ctx = p2pio.Context("host")
			m = ctx.open_model(sys.argv[1])
			calls = []
			def progress(done, total):
				calls.append(done)
				m.close()
			m.load(chunk=4096, progress=progress)
			assert calls and m.closed
			assert m._handle is None, "not freed once the load returned"
			ctx.close()
			assert ctx._handle is None
			print("ok")
			""", Files.tiny)
		self.assertEqual((rc, out.strip()), (0, "ok"), out)

	def test_close_buffer_from_another_thread_during_a_read(self):
		# The buffer is kept until the read returns, whoever closes it meanwhile.
		ctx = p2pio.Context(device="host")
		f = ctx.open_file(Files.tiny)
		b = ctx.alloc(f.size)
		with f._using(), b._using():  # as a read running in another thread does
			f.close()
			b.close()
			self.assertIsNotNone(b._handle)
			self.assertIsNotNone(f._handle)
		self.assertIsNone(b._handle)
		self.assertIsNone(f._handle)
		with self.assertRaises(ValueError):
			f.read(0, 16)
		ctx.close()

if __name__ == "__main__":
	unittest.main()
