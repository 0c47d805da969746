# SPDX-License-Identifier: MIT
"""The p2pio Python package on host memory, with NumPy as the DLPack consumer: every byte of
every tensor and range is compared with the file. Run by `make check-python`
(P2PIO_LIBRARY=build/lib/libp2pio.so, P2PIO_BIN=build/bin) or against the installed
packages (python3 -m unittest discover -s python/tests)."""

import ctypes
import errno
import gc
import os
import random
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

import p2pio
from p2pio import _dlpack

import gguf_writer as gw
from p2pio_tools import tool

HERE = os.path.dirname(os.path.abspath(__file__))


class Files:
	"""Models written once for all tests."""

	dir = None

	@classmethod
	def setup(cls):
		if cls.dir:
			return
		cls.dir = tempfile.mkdtemp(prefix="p2pio-py-")
		cls.tiny = os.path.join(cls.dir, "tiny.gguf")
		subprocess.run([tool("p2pio-mkmodel"), "-q", "-p", "tiny", "-s", "7", cls.tiny], check=True)
		cls.moe = os.path.join(cls.dir, "moe.gguf")
		subprocess.run([tool("p2pio-mkmodel"), "-q", "-p", "moe-tiny", "-a", "4096", "-s", "9", cls.moe],
			       check=True)
		# Every element type, plus a quantized one, in two layers and a non-layer group.
		rng = np.random.default_rng(5)
		cls.typed = os.path.join(cls.dir, "typed.gguf")
		cls.arrays = {}
		spec = []
		for layer in range(2):
			for dtype, gt in (("float32", gw.F32), ("float16", gw.F16), ("int8", gw.I8),
					  ("int16", gw.I16), ("int32", gw.I32), ("int64", gw.I64),
					  ("float64", gw.F64)):
				name = "blk.%d.%s.weight" % (layer, dtype)
				shape = (3 + layer, 5, 64)  # outermost first
				if dtype.startswith("float"):
					a = rng.standard_normal(shape).astype(dtype)
				else:
					a = rng.integers(-100, 100, shape).astype(dtype)
				cls.arrays[name] = a
				spec.append((name, gt, list(reversed(shape)), a.tobytes()))
			bf = rng.integers(0, 65535, (4, 32), dtype=np.uint16)
			name = "blk.%d.bf16.weight" % layer
			cls.arrays[name] = bf
			spec.append((name, gw.BF16, [32, 4], bf.tobytes()))
			q = rng.integers(0, 255, gw.nbytes(gw.Q8_0, [64, 6]), dtype=np.uint8)
			name = "blk.%d.q8.weight" % layer
			cls.arrays[name] = q
			spec.append((name, gw.Q8_0, [64, 6], q.tobytes()))
		norm = rng.standard_normal(128).astype(np.float32)
		cls.arrays["output_norm.weight"] = norm
		spec.append(("output_norm.weight", gw.F32, [128], norm.tobytes()))
		cls.offsets = gw.write(cls.typed, spec)
		cls.bytes = {}
		for p in (cls.tiny, cls.moe, cls.typed):
			with open(p, "rb") as f:
				cls.bytes[p] = f.read()


def setUpModule():
	Files.setup()


def tearDownModule():
	if Files.dir:
		shutil.rmtree(Files.dir)


def host_bytes(t):
	"""A tensor's bytes through NumPy's DLPack import (no copy), as bytes."""
	a = np.from_dlpack(t.view("uint8"))
	assert a.ctypes.data == t.data_ptr
	return a.tobytes()


class TestContext(unittest.TestCase):
	def test_version(self):
		self.assertRegex(p2pio.version(), r"^\d+\.\d+\.\d+$")
		self.assertEqual(p2pio.ggml_type_name(12), "Q4_K")

	def test_host_context(self):
		with p2pio.Context(device="host") as ctx:
			self.assertEqual(ctx.device, -1)
			self.assertFalse(ctx.is_gpu)

	def test_bad_options_raise_with_message(self):
		with self.assertRaises(p2pio.P2pioError) as cm:
			p2pio.Context(device=7)  # no GPU here, or not that many
		self.assertIn(cm.exception.errno, (errno.ENODEV, errno.EINVAL))
		self.assertTrue(cm.exception.strerror)

	def test_flags(self):
		# Each flag the library knows is taken; one beyond them is refused with EINVAL.
		for flag in (p2pio.CTX_NO_WARM_CHECK, p2pio.CTX_BOUNCE_ASYNC, p2pio.CTX_POLL,
			     p2pio.CTX_URGENT_ALONE,
			     p2pio.CTX_POLL | p2pio.CTX_URGENT_ALONE):
			with p2pio.Context(device="host", flags=flag) as ctx:
				with ctx.open_file(Files.tiny) as f:
					self.assertEqual(host_bytes(f.read(4096, 8192)),
							 Files.bytes[Files.tiny][4096:4096 + 8192], flag)
		with self.assertRaises(p2pio.P2pioError) as cm:
			p2pio.Context(device="host", flags=p2pio.CTX_URGENT_ALONE << 1)
		self.assertEqual(cm.exception.errno, errno.EINVAL)

	def test_posix_threads(self):
		# Taken and read with (POSIX forced: every read goes by the readers); too many refused.
		with p2pio.Context(device="host", path="posix", posix_threads=3) as ctx:
			opts = p2pio._lib.p2pio_ctx_opts()
			opts.size = ctypes.sizeof(opts)
			self.assertEqual(p2pio._lib.lib.p2pio_ctx_get_opts(ctx._h(), ctypes.byref(opts)), 0)
			self.assertEqual(opts.posix_threads, 3)
			with ctx.open_file(Files.tiny) as f:
				self.assertEqual(host_bytes(f.read(0, 65536)), Files.bytes[Files.tiny][:65536])
		with self.assertRaises(p2pio.P2pioError) as cm:
			p2pio.Context(device="host", posix_threads=100000)
		self.assertEqual(cm.exception.errno, errno.EINVAL)

	def test_bad_path_name(self):
		with self.assertRaises(ValueError):
			p2pio.Context(device="host", path="teleport")


class TestFileReads(unittest.TestCase):
	def setUp(self):
		self.ctx = p2pio.Context(device="host")
		self.data = Files.bytes[Files.tiny]

	def tearDown(self):
		self.ctx.close()

	def test_random_ranges_into_new_buffers(self):
		rng = random.Random(3)
		with self.ctx.open_file(Files.tiny) as f:
			self.assertEqual(f.size, len(self.data))
			for _ in range(40):
				off = rng.randrange(0, len(self.data) - 1)
				n = rng.randrange(1, min(len(self.data) - off, 3 << 20) + 1)
				t = f.read(off, n)
				self.assertEqual(t.shape, (n,))
				self.assertEqual(t.dtype, "uint8")
				self.assertEqual(host_bytes(t), self.data[off:off + n], (off, n))

	def test_read_into_registered_numpy_array_at_offset(self):
		dest = np.full(1 << 20, 0xA5, dtype=np.uint8)
		with self.ctx.register(dest) as buf, self.ctx.open_file(Files.tiny) as f:
			t = f.read(12345, 500000, into=buf, buf_offset=777)
			self.assertEqual(t.data_ptr, dest.ctypes.data + 777)
			self.assertEqual(dest[777:777 + 500000].tobytes(), self.data[12345:12345 + 500000])
			self.assertTrue((dest[:777] == 0xA5).all())
			self.assertTrue((dest[777 + 500000:] == 0xA5).all())
			del t

	def test_typed_view_of_a_buffer(self):
		off = Files.offsets["blk.1.float32.weight"]
		want = Files.arrays["blk.1.float32.weight"]
		with self.ctx.open_file(Files.typed) as f:
			t = f.read(off, want.nbytes)
			a = np.from_dlpack(t.view("float32", want.shape))
			self.assertEqual(a.shape, want.shape)
			self.assertTrue(np.array_equal(a, want))

	def test_path_info(self):
		with self.ctx.open_file(Files.tiny) as f:
			info = f.path_info()
		self.assertIn(info["path"], ("p2p", "bounce", "posix"))
		self.assertTrue(info["why"])

	def test_errors(self):
		with self.assertRaises(p2pio.P2pioError) as cm:
			self.ctx.open_file(os.path.join(Files.dir, "absent.gguf"))
		self.assertEqual(cm.exception.errno, errno.ENOENT)
		self.assertIn("absent.gguf", str(cm.exception))
		with self.ctx.open_file(Files.tiny) as f:
			buf = self.ctx.alloc(4096)
			with self.assertRaises(p2pio.P2pioError) as cm:
				f.read(len(self.data) - 10, 100, into=buf)
			self.assertEqual(cm.exception.errno, errno.ENODATA)
			with self.assertRaises(p2pio.P2pioError) as cm:
				f.read(0, 4097, into=buf)
			self.assertEqual(cm.exception.errno, errno.EINVAL)
			buf.close()
		with self.assertRaises(ValueError):
			f.read(0, 1)


class TestModel(unittest.TestCase):
	def setUp(self):
		self.ctx = p2pio.Context(device="host")

	def tearDown(self):
		self.ctx.close()

	def check_every_tensor(self, path, tensors):
		data = Files.bytes[path]
		total = 0
		for name, t in tensors.items():
			self.assertEqual(host_bytes(t), data[t.file_offset:t.file_offset + t.nbytes], name)
			total += t.nbytes
		return total

	def test_load_whole_mkmodel_every_byte(self):
		for path in (Files.tiny, Files.moe):
			with self.ctx.open_model(path) as m:
				self.assertEqual(m.info["has_seed"], True)
				seen = []
				res = m.load(chunk=1 << 20, progress=lambda d, t: seen.append((d, t)))
				self.assertGreaterEqual(res["bytes"], m.info["data_size"])
				self.assertTrue(seen and seen[-1][0] == seen[-1][1])
				# The phases, in order within the load's time.
				self.assertTrue(0 < res["first_ns"] <= res["wall_ns"])
				self.assertTrue(0 < res["last_submit_ns"] <= res["wall_ns"])
				self.assertTrue(res["mid_start_ns"] <= res["mid_end_ns"] <= res["wall_ns"])
				ts = m.tensors()
				self.assertEqual(sorted(ts), sorted(m.names))
				self.assertEqual(len(ts), m.info["tensors"])
				total = self.check_every_tensor(path, ts)
				self.assertGreater(total, 1 << 20)
				# F32 tensors come with their shape, outermost first.
				f32 = [t for t in ts.values() if t.ggml_type == 0]
				self.assertTrue(f32)
				for t in f32:
					a = np.from_dlpack(t)
					self.assertEqual(a.dtype, np.float32)
					self.assertEqual(a.nbytes, t.nbytes)
					self.assertEqual(a.shape, t.shape)
				# Quantized tensors are raw bytes.
				q = [t for t in ts.values() if t.type_name == "Q4_K"]
				self.assertTrue(q)
				a = np.from_dlpack(q[0])
				self.assertEqual((a.dtype, a.shape), (np.uint8, (q[0].nbytes,)))
				del ts, f32, q, a

	def test_element_types_and_shapes(self):
		with self.ctx.open_model(Files.typed) as m:
			m.load()
			for name, want in Files.arrays.items():
				t = m[name]
				self.assertEqual(t.file_offset, Files.offsets[name])
				if name.endswith("bf16.weight"):
					self.assertEqual((t.dtype, t.shape), ("bfloat16", want.shape))
					self.assertEqual(t.__dlpack_device__(), (1, 0))
					# NumPy has no bfloat16: compare the same bytes as uint16.
					a = np.from_dlpack(t.view("uint16", want.shape))
				elif name.endswith("q8.weight"):
					self.assertEqual((t.dtype, t.shape, t.type_name), ("uint8", want.shape, "Q8_0"))
					a = np.from_dlpack(t)
				else:
					self.assertEqual((t.dtype, t.shape), (str(want.dtype), want.shape))
					a = np.from_dlpack(t)
				self.assertEqual(a.dtype, want.dtype, name)
				self.assertTrue(np.array_equal(a, want), name)

	def test_stream_layers_two_passes(self):
		for path in (Files.tiny, Files.typed):
			data = Files.bytes[path]
			with self.ctx.open_model(path) as m, m.stream(slots=2) as s:
				self.assertEqual(s.slots, 2)
				# Two slots: the default window is the one not acquired.
				self.assertEqual(s.prefetch, 1)
				self.assertIn("default", s.prefetch_why)
				layers = m.layers
				self.assertGreaterEqual(layers, 2)
				seen = set()
				for _ in range(2):
					for i in range(layers):
						with s.layer(i) as L:
							self.assertEqual(L.index, i)
							self.assertTrue(L.tensors)
							for name, t in L.tensors.items():
								self.assertTrue(name.startswith("blk.%d." % i))
								self.assertEqual(t.layer, i)
								self.assertEqual(host_bytes(t), data[t.file_offset:
												       t.file_offset + t.nbytes])
								seen.add(name)
				resident = [n for n in m.names if not n.startswith("blk.")]
				for n in resident:
					t = s.tensor(n)
					self.assertEqual(host_bytes(t), data[t.file_offset:t.file_offset + t.nbytes])
				self.assertEqual(len(seen) + len(resident), len(m.names))
				s.wait_prefetch()
				st = s.stats()
				self.assertEqual(st["acquires"], 2 * layers)
				with self.assertRaises(p2pio.P2pioError) as cm:
					s.acquire(layers)
				self.assertEqual(cm.exception.errno, errno.ERANGE)

	def test_model_errors(self):
		with self.assertRaises(p2pio.P2pioError) as cm:
			self.ctx.open_model(os.path.join(Files.dir, "absent.gguf"))
		self.assertEqual(cm.exception.errno, errno.ENOENT)
		bad = os.path.join(Files.dir, "truncated.gguf")
		with open(bad, "wb") as f:
			f.write(Files.bytes[Files.tiny][:200])
		with self.assertRaises(p2pio.P2pioError) as cm:
			self.ctx.open_model(bad)
		self.assertIsNotNone(cm.exception.offset)
		self.assertRegex(cm.exception.strerror, r"byte \d+")  # the library's message
		self.assertNotEqual(cm.exception.strerror, os.strerror(cm.exception.errno))
		with self.ctx.open_model(Files.tiny) as m:
			with self.assertRaises(ValueError):
				m["output_norm.weight"]
			m.load()
			with self.assertRaises(p2pio.P2pioError) as cm:
				m["no.such.tensor"]
			self.assertEqual(cm.exception.errno, errno.ENOENT)


class TestExperts(unittest.TestCase):
	"""The expert cache on host memory: the moe-tiny model (4 layers, 8 experts, 2 used)
	in a budget of the dense part and three experts, every slice of every expert handed
	out compared with the file."""

	def setUp(self):
		self.ctx = p2pio.Context(device="host")
		self.data = Files.bytes[Files.moe]

	def tearDown(self):
		self.ctx.close()

	def check_expert(self, x, e):
		self.assertEqual(len(e.tensors), len(x.slices(e.layer, e.id)))
		for name, t in e.tensors.items():
			self.assertTrue(name.startswith("blk.%d." % e.layer) and "_exps" in name)
			self.assertEqual((t.layer, t.data_ptr - e.data_ptr),
					 (e.layer, next(s["offset"] for s in x.slices(e.layer, e.id)
							if s["name"] == name)))
			self.assertEqual(host_bytes(t), self.data[t.file_offset:t.file_offset + t.nbytes],
					 "%s of expert %d" % (name, e.id))

	def test_decode_in_a_budget_every_byte(self):
		with self.ctx.open_model(Files.moe) as m:
			with m.experts() as whole:
				info = whole.info
			self.assertEqual((info["layers"], info["experts"], info["experts_used"]), (4, 8, 2))
			# Budget 0: room for every expert, counted in experts of the largest layer's
			# size (Q6_K layers' are larger), so up to all 32.
			self.assertTrue(0 < info["capacity"] <= 32 and info["budget"] > info["dense_bytes"])
			budget = info["dense_bytes"] + 3 * info["expert_bytes"]
			with m.experts(budget=budget, policy="lru") as x:
				self.assertEqual(x.capacity, 3)
				# The dense part is resident, typed like the model's own tensors.
				norm = x["output_norm.weight"]
				self.assertEqual((norm.dtype, norm.layer), ("float32", None))
				self.assertEqual(host_bytes(norm),
						 self.data[norm.file_offset:norm.file_offset + norm.nbytes])
				rng = random.Random(11)
				tokens = 12
				for _ in range(tokens):
					x.token_begin()
					for layer in range(x.layers):
						ids = rng.sample(range(8), 2)
						es = x.require(layer, ids)
						self.assertEqual([e.id for e in es], ids)
						for e in es:
							self.check_expert(x, e)
						x.release(layer, es)
					x.token_end()
				st = x.stats()
				self.assertEqual(st["accesses"], tokens * 4 * 2)
				self.assertEqual(st["hits"] + st["misses"], st["accesses"])
				self.assertGreater(st["evictions"], 0)
				self.assertEqual(x.io()["loads"], st["misses"])
				self.assertEqual(sum(x.layer_stats(i)["accesses"] for i in range(4)),
						 st["accesses"])
				# A hint loads what is absent; a pinned expert stays through misses.
				self.assertIn(x.prefetch(3, [0, 1]), (0, 1, 2))
				x.pin(0, [7])
				for layer in (1, 2, 3):
					x.release(layer, x.require(layer, [4, 5]))
				self.assertEqual(x.layer_stats(0)["resident"], 1)
				x.unpin(0, [7])
				io = x.io(reset=True)
				self.assertGreater(io["bytes"], 0)
				self.assertEqual(x.io()["loads"], 0)

	def test_learned_prefetch(self):
		# Chained routing: layer 0 of token t takes t and t + 1, each later layer maps the
		# one before through e -> 3e + 1 (mod 8). Once the predictor has seen each
		# expert lead to its successor, layers 1-3 never miss again; without it they do.
		def route(token, layer):
			ids = [token % 8, (token + 1) % 8]
			for _ in range(layer):
				ids = [(3 * e + 1) % 8 for e in ids]
			return ids

		with self.ctx.open_model(Files.moe) as m:
			with m.experts() as whole:
				info = whole.info
			budget = info["dense_bytes"] + 6 * info["expert_bytes"]
			late = {}
			for learned in (False, True):
				with m.experts(budget=budget, policy="lru", prefetch_learned=learned) as x:
					warm = None
					for token in range(40):
						if token == 16:
							warm = [x.layer_stats(i)["misses"] for i in range(4)]
						x.token_begin()
						for layer in range(4):
							es = x.require(layer, route(token, layer))
							for e in es:
								self.check_expert(x, e)
							x.release(layer, es)
						x.token_end()
					late[learned] = sum(x.layer_stats(i)["misses"] - warm[i]
							    for i in (1, 2, 3))
					if learned:
						self.assertGreater(x.stats()["prefetch_used"], 0)
			self.assertEqual(late[True], 0)
			self.assertGreater(late[False], 0)

	def test_keep_wrong_hints(self):
		# Kept, every hint loads though its layer was required without it: no
		# withdrawal, and the layer's experts all hit afterwards.
		with self.ctx.open_model(Files.moe) as m, m.experts(keep_wrong_hints=True) as x:
			x.prefetch(1, list(range(8)))
			x.release(1, x.require(1, [0]))
			es = x.require(1, list(range(8)))
			for e in es:
				self.check_expert(x, e)
			x.release(1, es)
			self.assertEqual((x.io()["cancels"], x.io()["cut_short"]), (0, 0))
			self.assertEqual(x.layer_stats(1)["misses"], 0)

	def test_no_whole_load_under_a_cache(self):
		# Loaded whole or streamed, the model would load what the cache's budget leaves
		# out: both are refused while the cache is open, and work once it is closed.
		with self.ctx.open_model(Files.moe) as m:
			with m.experts():
				with self.assertRaises(p2pio.P2pioError) as cm:
					m.load()
				self.assertEqual(cm.exception.errno, errno.EBUSY)
			m.load()

	def test_errors(self):
		with self.ctx.open_model(Files.moe) as m, m.experts() as x:
			for layer, ids, code in ((4, [0], errno.ERANGE), (0, [8], errno.ERANGE),
						 (0, [1, 1], errno.EINVAL)):
				with self.assertRaises(p2pio.P2pioError) as cm:
					x.require(layer, ids)
				self.assertEqual(cm.exception.errno, code, (layer, ids))
			with self.assertRaises(p2pio.P2pioError) as cm:
				x["blk.0.ffn_up_exps.weight"]  # an expert tensor: require its experts
			self.assertEqual(cm.exception.errno, errno.EINVAL)
			with self.assertRaises(p2pio.P2pioError) as cm:
				x.release(0, [3])  # not held
			self.assertEqual(cm.exception.errno, errno.EINVAL)
		with self.ctx.open_model(Files.moe) as m:
			with self.assertRaises(p2pio.P2pioError) as cm:
				m.experts(policy="fifo")
			self.assertEqual(cm.exception.errno, errno.EINVAL)
			self.assertIn("fifo", cm.exception.strerror)
			with self.assertRaises(p2pio.P2pioError) as cm:
				m.experts(budget=4096)  # not even the dense part
			self.assertEqual(cm.exception.errno, errno.ENOSPC)
			with self.assertRaises(ValueError):
				m.experts(layer_floor=[0])
		with self.ctx.open_model(Files.tiny) as m:
			with self.assertRaises(p2pio.P2pioError):
				m.experts()  # a dense model has no experts

	def test_exported_expert_outlives_close(self):
		gc.collect()
		base = _dlpack.live_exports()
		m = self.ctx.open_model(Files.moe)
		x = m.experts()
		e = x.require(2, [6])[0]
		name = "blk.2.ffn_down_exps.weight"
		a = np.from_dlpack(e[name])
		want = self.data[e[name].file_offset:e[name].file_offset + e[name].nbytes]
		self.assertEqual(_dlpack.live_exports(), base + 1)
		x.release(2, [6])
		x.close()
		m.close()
		self.assertIsNotNone(x._handle)  # still allocated: NumPy uses it
		self.assertEqual(a.tobytes(), want)
		del a
		gc.collect()
		self.assertEqual(_dlpack.live_exports(), base)
		self.assertIsNone(x._handle)
		self.assertIsNone(m._handle)


class TestLifetime(unittest.TestCase):
	def test_exported_memory_outlives_close(self):
		gc.collect()
		base = _dlpack.live_exports()
		ctx = p2pio.Context(device="host")
		m = ctx.open_model(Files.typed)
		m.load()
		a = np.from_dlpack(m["blk.0.float64.weight"])
		want = Files.arrays["blk.0.float64.weight"]
		self.assertEqual(_dlpack.live_exports(), base + 1)
		with self.assertRaises(BufferError):
			m.load()  # would move exported tensors
		m.close()
		ctx.close()
		self.assertIsNotNone(m._handle)  # still allocated: NumPy uses it
		self.assertTrue(np.array_equal(a, want))
		del a
		gc.collect()
		self.assertEqual(_dlpack.live_exports(), base)
		self.assertIsNone(m._handle)
		self.assertIsNone(ctx._handle)

	def test_unconsumed_capsule_is_deleted(self):
		gc.collect()
		base = _dlpack.live_exports()
		with p2pio.Context(device="host") as ctx:
			b = ctx.alloc(64)
			cap = b.__dlpack__()
			self.assertEqual(_dlpack.live_exports(), base + 1)
			del cap
			gc.collect()
			self.assertEqual(_dlpack.live_exports(), base)
			with self.assertRaises(BufferError):
				b.__dlpack__(copy=True)
			with self.assertRaises(BufferError):
				b.__dlpack__(dl_device=(2, 0))
			b.close()
			self.assertIsNone(b._handle)


if __name__ == "__main__":
	unittest.main()
