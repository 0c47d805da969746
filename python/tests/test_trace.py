# SPDX-License-Identifier: MIT
"""Routing traces from Python (p2pio.Trace, TraceWriter, synth): what is written is read back
cell for cell, the replay gives the answers the C tests worked out by hand
(tests/unit/experts/test-expert-predict.c) and what `p2pio-moe replay` prints for a real
trace, and bad input fails with the C API's errno. Run by `make check-python`
(P2PIO_LIBRARY, P2PIO_BIN); the real trace is looked for in $P2PIO_MOE_TRACES or
../shared/data/moe-traces beside the source tree, as the C tests do, and skipped without."""

import errno
import json
import os
import random
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

import p2pio
from p2pio._lib import p2pio_expert_stats
from p2pio_tools import tool

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.join(HERE, "..", "..")
REAL = "expert_scheduler/gpt-oss-20b/oasst/gen_0000.json"


def real_trace():
	"""The gpt-oss-20b trace's path, or a skip where the traces are not here (CI's clean
	clone)."""
	bases = [os.environ.get("P2PIO_MOE_TRACES")] + \
		[os.path.join(TREE, up, "shared", "data", "moe-traces") for up in ("..", "../..")]
	for b in bases:
		if b and os.access(os.path.join(b, REAL), os.R_OK):
			return os.path.join(b, REAL)
	raise unittest.SkipTest("no moe-traces/%s here (set P2PIO_MOE_TRACES)" % REAL)


def routing(layers, experts, top_k, seed):
	"""Two sequences, each a prompt of 3 prefill tokens then 5 generated ones: a list of
	(flags, cells) with cells[layer] a list of distinct ids, of every length 0 .. top_k
	(0: a layer not recorded)."""
	rng = random.Random(seed)
	toks = []
	for seq in range(2):
		for i in range(8):
			flags = {"prefill": i < 3, "seq_start": i == 0}
			cells = [rng.sample(range(experts), rng.randint(0, top_k)) for _ in range(layers)]
			toks.append((flags, cells))
	return toks


def mirror(xs, layers, experts):
	"""test-expert-predict.c's mirror_trace(): token t picks xs[t] at every layer, top_k 1."""
	t = p2pio.Trace(layers, experts, 1)
	for x in xs:
		for layer in range(layers):
			t.add(layer, [x])
		t.end_token()
	return t


class Tmp(unittest.TestCase):
	def setUp(self):
		self.dir = tempfile.mkdtemp(prefix="p2pio-py-trace-")

	def tearDown(self):
		shutil.rmtree(self.dir)

	def path(self, name):
		return os.path.join(self.dir, name)


class TestRoundTrip(Tmp):
	LAYERS, EXPERTS, TOP_K = 5, 300, 4  # ids above 255: both bytes of the 16-bit field

	def check_same(self, t, toks, model):
		self.assertEqual((t.layers, t.experts, t.top_k, t.model),
				 (self.LAYERS, self.EXPERTS, self.TOP_K, model))
		self.assertEqual(t.tokens, len(toks))
		self.assertEqual(len(t), len(toks))
		for i, (flags, cells) in enumerate(toks):
			self.assertEqual(t.token_flags(i), flags, "token %d" % i)
			for layer, ids in enumerate(cells):
				self.assertEqual(t.cell(i, layer), ids, "token %d layer %d" % (i, layer))

	def test_writer_then_load(self):
		toks = routing(self.LAYERS, self.EXPERTS, self.TOP_K, 1)
		p = self.path("w.trace")
		with p2pio.TraceWriter(p, self.LAYERS, self.EXPERTS, self.TOP_K, "gpt-oss-20b") as w:
			for flags, cells in toks:
				# Layers in any order, ids as an engine has them: a NumPy array.
				for layer in reversed(range(self.LAYERS)):
					w.add(layer, np.array(cells[layer], dtype=np.int64))
				w.end_token(**flags)
			# A token added to but not ended is dropped by close().
			w.add(0, [1, 2])
			self.assertEqual(w.tokens, len(toks))
		self.assertTrue(w.closed)
		with p2pio.Trace.load(p) as t:
			self.check_same(t, toks, "gpt-oss-20b")
			# Only generated tokens are replayed unless with_prefill, each sequence cold.
			self.assertEqual(t.replay(self.EXPERTS)["tokens"], 10)
			r = t.replay(self.EXPERTS, with_prefill=True)
			self.assertEqual(r["tokens"], 16)
			distinct = sum(len(set(x for f, c in toks[s * 8:s * 8 + 8] for x in c[layer]))
				       for s in range(2) for layer in range(self.LAYERS))
			self.assertEqual(r["misses"], distinct, "room for all: one miss per expert "
					 "and layer in each sequence")

	def test_add_save_load(self):
		toks = routing(self.LAYERS, self.EXPERTS, self.TOP_K, 2)
		t = p2pio.Trace(self.LAYERS, self.EXPERTS, self.TOP_K)
		for flags, cells in toks:
			for layer, ids in enumerate(cells):
				t.add(layer, ids)
			t.end_token(**flags)
		self.check_same(t, toks, "")
		p = self.path("t.trace")
		t.save(p)
		with p2pio.Trace.load(p) as back:
			self.check_same(back, toks, "")
			self.assertEqual(back.replay(3, with_prefill=True), t.replay(3, with_prefill=True))
		# A copy token by token is the same trace, byte for byte.
		c = p2pio.Trace(t.layers, t.experts, t.top_k, t.model)
		for i in range(t.tokens):
			for layer in range(t.layers):
				c.add(layer, t.cell(i, layer))
			c.end_token(**t.token_flags(i))
		c.save(self.path("c.trace"))
		with open(p, "rb") as a, open(self.path("c.trace"), "rb") as b:
			self.assertEqual(a.read(), b.read())

	def test_synth(self):
		a = p2pio.synth(6, 32, 4, 200, seed=3, chain=0.5)
		b = p2pio.synth(6, 32, 4, 200, seed=3, chain=0.5)
		c = p2pio.synth(6, 32, 4, 200, seed=4, chain=0.5)
		self.assertEqual((a.layers, a.experts, a.top_k, a.tokens), (6, 32, 4, 200))
		cells = lambda t: [t.cell(i, l) for i in range(t.tokens) for l in range(t.layers)]
		self.assertEqual(cells(a), cells(b), "the same parameters, the same trace")
		self.assertNotEqual(cells(a), cells(c))
		self.assertTrue(all(len(x) == 4 and len(set(x)) == 4 for x in cells(a)))
		# One sequence of generated tokens.
		self.assertEqual([a.token_flags(i) for i in range(3)],
				 [{"prefill": False, "seq_start": True}] +
				 [{"prefill": False, "seq_start": False}] * 2)


class TestReplay(unittest.TestCase):
	def test_learned(self):
		"""test-expert-predict.c test_learned: alternating 0, 1 at both layers, 1 frame."""
		t = mirror([0, 1, 0, 1, 0, 1], 2, 2)
		r = t.replay(1)
		self.assertEqual((r["hits"], r["misses"]), (0, 12))
		r = t.replay(1, prefetch=["learned"])
		self.assertEqual([x["hits"] for x in r["layers"]], [3, 4])
		self.assertEqual({k: r[k] for k in ("hits", "misses", "prefetches", "prefetch_used",
						    "prefetch_wasted", "loads")},
				 {"hits": 7, "misses": 5, "prefetches": 7, "prefetch_used": 7,
				  "prefetch_wasted": 0, "loads": 12})
		r = t.replay(1, prefetch="lag")
		self.assertEqual((r["hits"], r["prefetches"]), (0, 0))

	def test_router(self):
		"""test-expert-predict.c test_router: a cycle of 8 experts over 24 tokens, 4 layers,
		2 per layer."""
		t = mirror([i % 8 for i in range(24)], 4, 8)
		r = t.replay(2)
		self.assertEqual((r["misses"], r["missed_layers"]), (96, 96))
		r = t.replay(2, prefetch={"router"})
		self.assertEqual((r["misses"], r["layers"][0]["misses"], r["missed_layers"],
				  r["prefetches"], r["prefetch_used"]), (24, 24, 24, 72, 72))
		r = t.replay(2, prefetch=["router"], router_accuracy=0)
		self.assertGreater(sum(x["misses"] for x in r["layers"][1:]), 48)
		self.assertGreater(r["prefetches"], 0)
		self.assertLess(r["prefetch_used"], r["prefetches"] / 2)
		a = t.replay(2, prefetch=["router"], router_accuracy=0.5)
		self.assertTrue(24 < a["misses"] < 96)
		self.assertEqual(a, t.replay(2, prefetch=["router"], router_accuracy=0.5),
				 "the same draws every replay")

	def test_fields(self):
		t = p2pio.synth(8, 64, 4, 300)
		r = t.replay(16, prefetch=["lag", "learned", "next"])
		want = [f for f, _ in p2pio_expert_stats._fields_ if f not in ("size", "reserved")]
		self.assertEqual(sorted(r), sorted(want + ["layers"]))
		self.assertEqual(len(r["layers"]), 8)
		for k in ("accesses", "hits", "misses"):
			self.assertEqual(sum(x[k] for x in r["layers"]), r[k], k)
		self.assertEqual(r["tokens"], 300)
		self.assertEqual(r["accesses"], 300 * 8 * 4)
		self.assertEqual(r["hits"] + r["misses"], r["accesses"])
		self.assertTrue(all(x["max_resident"] <= 16 for x in r["layers"]))
		# A fixed warm-up: the steady state is every token after it.
		r = t.replay(16, warmup_tokens=50)
		self.assertEqual(r["steady_tokens"], 250)
		self.assertEqual(r["steady_accesses"], 250 * 8 * 4)
		self.assertLess(t.replay(16, warmup_tokens=None)["steady_tokens"], 300)

	def test_oracle_never_below_lru(self):
		t = p2pio.synth(12, 64, 6, 400, skew=1.0, locality=0.3, drift=0.01)
		for cap, per_layer in ((6, True), (16, True), (40, True), (6 * 12, False),
				       (300, False)):
			lru = t.replay(cap, per_layer=per_layer)
			opt = t.replay(cap, policy="oracle", per_layer=per_layer)
			self.assertEqual(opt["accesses"], lru["accesses"])
			self.assertGreater(lru["misses"], 0)
			self.assertGreaterEqual(opt["hits"], lru["hits"], (cap, per_layer))
			self.assertEqual(opt["loads"], opt["misses"], "no prefetch: loads are misses")
			for pol in ("lfu", "lrfu"):
				self.assertGreaterEqual(opt["hits"], t.replay(cap, policy=pol,
									      per_layer=per_layer)["hits"],
							(pol, cap, per_layer))
		# One global budget of 300 lets a layer hold more than its share of 300 / 12.
		r = t.replay(300, per_layer=False)
		self.assertGreater(max(x["max_resident"] for x in r["layers"]), 300 // 12)
		self.assertLessEqual(sum(x["resident"] for x in r["layers"]), 300)

	def test_real_trace_matches_the_tool(self):
		path, exe = real_trace(), tool("p2pio-moe")
		out = subprocess.run([exe, "replay", "--json", "-c", "8", "-p", "lru", "-f", "none",
				      "--no-oracle", path], check=True, capture_output=True,
				     text=True).stdout
		want = json.loads(out)["results"]
		self.assertEqual(len(want), 1)
		want = want[0]
		with p2pio.Trace.load(path) as t:
			self.assertEqual((t.layers, t.experts, t.top_k), (24, 32, 4))
			got = t.replay(8, policy="lru")
		for k in ("tokens", "accesses", "hits", "misses", "loads", "evictions",
			  "max_token_faults", "missed_layers", "steady_tokens"):
			self.assertEqual(got[k], want[k], k)
		self.assertGreater(got["hits"], 0)


class TestErrors(Tmp):
	def assertErrno(self, code, fn, *args, **kw):
		with self.assertRaises(p2pio.P2pioError) as cm:
			fn(*args, **kw)
		self.assertEqual(cm.exception.errno, code, str(cm.exception))
		return cm.exception

	def test_bad_cells(self):
		t = p2pio.Trace(2, 8, 2)
		w = p2pio.TraceWriter(self.path("w"), 2, 8, 2)
		for add in (t.add, w.add):
			self.assertErrno(errno.EINVAL, add, 0, [8])            # id out of range
			self.assertErrno(errno.EINVAL, add, 0, [3, 3])         # repeated
			self.assertErrno(errno.EINVAL, add, 0, [1, 2, 3])      # above top_k
			self.assertErrno(errno.EINVAL, add, 2, [1])            # layer out of range
			self.assertErrno(errno.EINVAL, add, 0, [-1])
			self.assertErrno(errno.EINVAL, add, 0, [(1 << 32) + 1])  # not wrapped to 1
			self.assertErrno(errno.EINVAL, add, (1 << 32), [1])      # ... nor to layer 0
			self.assertRaises(TypeError, add, 0, [1.0])            # not truncated
			add(0, [1, 2])
			self.assertErrno(errno.EINVAL, add, 0, [3])            # layer added twice
		t.end_token()
		w.end_token()
		w.close()
		self.assertEqual([t.cell(0, 0), t.cell(0, 1)], [[1, 2], []])
		self.assertErrno(errno.EINVAL, t.cell, 1, 0)
		self.assertErrno(errno.EINVAL, t.cell, 0, 2)
		self.assertErrno(errno.EINVAL, t.token_flags, 1)
		with p2pio.Trace.load(self.path("w")) as back:
			self.assertEqual([back.cell(0, 0), back.cell(0, 1)], [[1, 2], []])

	def test_bad_cell_messages(self):
		"""The library's message reaches the exception of add() and end_token(): which
		layer, which id and why."""
		t = p2pio.Trace(2, 8, 2)
		w = p2pio.TraceWriter(self.path("w"), 2, 8, 2)
		for add in (t.add, w.add):
			e = self.assertErrno(errno.EINVAL, add, 0, [8])
			self.assertIn("layer 0: expert id 8 out of range (0 to 7 allowed: nr_experts 8)",
				      e.strerror)
			self.assertIn("expert id 8", str(e))
			self.assertIsNone(e.offset)
			e = self.assertErrno(errno.EINVAL, add, 1, [3, 3])
			self.assertIn("layer 1: expert id 3 repeated", e.strerror)
			e = self.assertErrno(errno.EINVAL, add, 0, [1, 2, 3])
			self.assertIn("layer 0: 3 experts, more than top_k 2", e.strerror)
			e = self.assertErrno(errno.EINVAL, add, 2, [1])
			self.assertIn("layer 2 out of range (0 to 1 allowed: nr_layers 2)", e.strerror)
			add(0, [1, 2])
			e = self.assertErrno(errno.EINVAL, add, 0, [3])
			self.assertIn("layer 0 already added to this token", e.strerror)
		t.end_token()
		w.end_token()
		w.close()
		self.assertEqual(t.cell(0, 0), [1, 2])

	def test_bad_shapes(self):
		self.assertErrno(errno.EINVAL, p2pio.Trace, 0, 8, 2)
		self.assertErrno(errno.EINVAL, p2pio.Trace, 2, 8, 9)          # top_k above experts
		self.assertErrno(errno.EINVAL, p2pio.Trace, 2, 65537, 2)
		self.assertErrno(errno.EINVAL, p2pio.Trace, 2, 8, 2, "m" * 64)  # name too long
		self.assertEqual(p2pio.Trace(2, 8, 2, "m" * 63).model, "m" * 63)
		self.assertErrno(errno.EINVAL, p2pio.TraceWriter, self.path("w"), 2, 8, 0)
		self.assertErrno(errno.EINVAL, p2pio.synth, 2, 8, 2, 0)        # no tokens
		self.assertErrno(errno.EINVAL, p2pio.synth, 2, 8, 2, 10, skew=9)
		self.assertErrno(errno.EINVAL, p2pio.synth, 2, 8, 2, 10, chain=1.5)

	def test_bad_shape_messages(self):
		"""The library's message reaches the exception: the field, its value, the range."""
		e = self.assertErrno(errno.EINVAL, p2pio.Trace, 2, 8, 9)
		self.assertIn("top_k 9 (1 to 255 allowed, and at most nr_experts, 8)", e.strerror)
		self.assertIn("top_k 9", str(e))
		self.assertIsNone(e.offset)
		e = self.assertErrno(errno.EINVAL, p2pio.Trace, 0, 8, 2)
		self.assertIn("nr_layers 0 (1 to 4096 allowed)", e.strerror)
		e = self.assertErrno(errno.EINVAL, p2pio.synth, 2, 8, 2, 10, skew=9)
		self.assertIn("skew 9 (0 to 8 allowed)", e.strerror)
		self.assertIn("skew 9", str(e))
		e = self.assertErrno(errno.EINVAL, p2pio.synth, 2, 8, 2, 0)
		self.assertIn("tokens 0 (1 to 16777216 allowed)", e.strerror)
		e = self.assertErrno(errno.EINVAL, p2pio.synth, 2, 8, 9, 10)
		self.assertIn("top_k 9", e.strerror)

	def test_files(self):
		missing = self.path("missing.trace")
		e = self.assertErrno(errno.ENOENT, p2pio.Trace.load, missing)
		self.assertIn(missing, str(e))
		nodir = self.path("no/such/dir.trace")
		self.assertErrno(errno.ENOENT, p2pio.TraceWriter, nodir, 2, 8, 2)
		t = p2pio.synth(3, 8, 2, 10)
		self.assertErrno(errno.ENOENT, t.save, nodir)
		# A file cut short is refused with the byte offset of what is missing.
		p = self.path("cut.trace")
		t.save(p)
		with open(p, "rb") as f:
			data = f.read()
		with open(p, "wb") as f:
			f.write(data[:-1])
		e = self.assertErrno(errno.EINVAL, p2pio.Trace.load, p)
		self.assertIn("truncated", e.strerror)
		self.assertIsNotNone(e.offset)
		with open(p, "wb") as f:
			f.write(b"neither a trace nor JSON")
		self.assertErrno(errno.EINVAL, p2pio.Trace.load, p)

	@unittest.skipUnless(os.path.exists("/dev/full"), "no /dev/full")
	def test_write_errors(self):
		"""A full disk: the writer's buffered writes fail at close() (or at end_token() once
		the buffer is flushed), with the library's message."""
		w = p2pio.TraceWriter("/dev/full", 2, 8, 2)
		w.add(0, [1])
		w.end_token()
		e = self.assertErrno(errno.ENOSPC, w.close)
		self.assertIn("writing the expert trace failed", e.strerror)
		self.assertIn("/dev/full", str(e))
		w.close()  # closed once: nothing more to report
		w = p2pio.TraceWriter("/dev/full", 4, 64, 8)
		with self.assertRaises(p2pio.P2pioError) as cm:
			for _ in range(100000):
				for layer in range(4):
					w.add(layer, range(8))
				w.end_token()
		self.assertEqual(cm.exception.errno, errno.EIO)
		self.assertIn("/dev/full: token %d: writing the expert trace failed: %s" %
			      (w.tokens, os.strerror(errno.ENOSPC)), cm.exception.strerror)
		self.assertLess(w.tokens, 100000)
		self.assertErrno(errno.EIO, w.close)

	def test_bad_replays(self):
		t = mirror([0, 1, 2], 2, 4)
		self.assertRaises(ValueError, t.replay, 2, prefetch=["lag", "psychic"])
		self.assertRaises(ValueError, t.replay, 2, prefetch="none")
		self.assertRaises(ValueError, t.replay, 2, prefetch=["router"], router_accuracy=1.5)
		e = self.assertErrno(errno.EINVAL, t.replay, 2, policy="fifo")
		self.assertIn("fifo", e.strerror)
		self.assertErrno(errno.EINVAL, t.replay, 0)
		self.assertErrno(errno.EINVAL, t.replay, 2, policy="oracle", policy_args="x=1")
		self.assertEqual(t.replay(2, policy="lfu", policy_args="decay=0.5")["misses"], 6)

	def test_closed(self):
		with p2pio.synth(3, 8, 2, 10) as t:
			self.assertEqual(t.tokens, 10)
		self.assertTrue(t.closed)
		for fn, args in ((t.add, (0, [1])), (t.end_token, ()), (t.cell, (0, 0)),
				 (t.replay, (2,)), (t.save, (self.path("x"),)), (len, (t,)),
				 (t.token_flags, (0,))):
			self.assertRaises(ValueError, fn, *args)
		self.assertRaises(ValueError, getattr, t, "tokens")
		self.assertEqual((t.layers, t.experts, t.top_k), (3, 8, 2))  # the shape stays known
		t.close()
		w = p2pio.TraceWriter(self.path("w"), 2, 8, 2)
		w.close()
		self.assertRaises(ValueError, w.add, 0, [1])
		self.assertRaises(ValueError, w.end_token)


if __name__ == "__main__":
	unittest.main()
