#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tests/gpu/test-python-torch.py - the p2pio Python package on a GPU with PyTorch: whole
loads, streamed layers and file ranges land in CUDA memory, torch.from_dlpack() takes them
without a copy with the right dtype and shape, and every byte equals the file's. TAP;
tests/gpu/run.sh runs it where there is a GPU (skips without torch with CUDA).

Environment (run.sh sets them for the build tree): P2PIO_LIBRARY (libp2pio.so), P2PIO_BIN
(p2pio-mkmodel's directory), PYTHONPATH (python/). P2PIO_TORCH_CPU=1 runs the same checks
on host memory with a CPU-only torch (to try this script where there is no GPU).
"""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python", "tests"))

n = 0
failed = 0


def ok(cond, what):
	global n, failed
	n += 1
	if not cond:
		failed += 1
	print("%s %d - %s" % ("ok" if cond else "not ok", n, what), flush=True)
	return cond


CPU = bool(os.environ.get("P2PIO_TORCH_CPU"))
DEV = "cpu" if CPU else "cuda"
try:
	import torch
	if not CPU and not torch.cuda.is_available():
		raise ImportError("torch.cuda.is_available() is False")
except ImportError as e:
	print("1..0 # SKIP PyTorch with CUDA not available: %s" % e)
	sys.exit(0)

import numpy as np  # noqa: E402

import p2pio  # noqa: E402
import gguf_writer as gw  # noqa: E402

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
		"int8": torch.int8, "int16": torch.int16, "int32": torch.int32,
		"int64": torch.int64, "float64": torch.float64, "uint8": torch.uint8}


def file_u8(data, off, nbytes):
	return torch.frombuffer(bytearray(data[off:off + nbytes]), dtype=torch.uint8).to(DEV)


def check_tensor(t, data, what, stream=None):
	"""torch.from_dlpack(t): on the GPU, no copy, dtype and shape, every byte."""
	tt = torch.from_dlpack(t)
	good = tt.device.type == DEV and tt.data_ptr() == t.data_ptr and tt.dtype == TORCH_DTYPES[t.dtype] \
		and tuple(tt.shape) == t.shape
	u8 = torch.from_dlpack(t.view("uint8"))
	good = good and torch.equal(u8, file_u8(data, t.file_offset, t.nbytes))
	if not good:
		print("# %s: cuda %s ptr %x/%x dtype %s/%s shape %s/%s" % (
			what, tt.device, tt.data_ptr(), t.data_ptr, tt.dtype, t.dtype, tuple(tt.shape),
			t.shape))
	return good


def other_consumers(m, arrays):
	"""CuPy and JAX, where installed, take the same tensor (CuPy without a copy)."""
	if CPU:
		return
	name = "blk.0.float32.weight"
	t, want = m[name], arrays[name]
	try:
		import cupy
	except ImportError:
		print("# CuPy not installed: not tried")
	else:
		c = cupy.from_dlpack(t)
		ok(c.data.ptr == t.data_ptr and c.shape == want.shape and
		   bool((cupy.asnumpy(c) == want).all()), "cupy.from_dlpack: no copy, shape and values")
	try:
		import jax
		import jax.dlpack
	except ImportError:
		print("# JAX not installed: not tried")
	else:
		j = jax.dlpack.from_dlpack(t)
		ok(tuple(j.shape) == want.shape and bool((np.asarray(j) == want).all()),
		   "jax.dlpack.from_dlpack: shape and values")


def main():
	d = tempfile.mkdtemp(prefix="p2pio-gpu-py-")
	mk = os.path.join(os.environ.get("P2PIO_BIN", ""), "p2pio-mkmodel")
	if not os.path.exists(mk):
		mk = shutil.which("p2pio-mkmodel")
	try:
		models = []
		for preset, align in (("tiny", "32"), ("moe-tiny", "4096")):
			p = os.path.join(d, "%s.gguf" % preset)
			subprocess.run([mk, "-q", "-p", preset, "-a", align, p], check=True)
			models.append(p)
		# element types torch has
		rng = np.random.default_rng(3)
		typed = os.path.join(d, "typed.gguf")
		arrays, spec = {}, []
		for layer in range(2):
			for dtype, gt in (("float32", gw.F32), ("float16", gw.F16), ("int8", gw.I8),
					  ("int16", gw.I16), ("int32", gw.I32), ("int64", gw.I64),
					  ("float64", gw.F64)):
				name = "blk.%d.%s.weight" % (layer, dtype)
				a = (rng.standard_normal((4, 8, 64)) * 50).astype(dtype)
				arrays[name] = a
				spec.append((name, gt, [64, 8, 4], a.tobytes()))
			bf = rng.integers(0, 65535, (4, 32), dtype=np.uint16)
			arrays["blk.%d.bf16.weight" % layer] = bf
			spec.append(("blk.%d.bf16.weight" % layer, gw.BF16, [32, 4], bf.tobytes()))
		gw.write(typed, spec)
		models.append(typed)
		data = {}
		for p in models:
			with open(p, "rb") as f:
				data[p] = f.read()

		ctx = p2pio.Context(device="host" if CPU else torch.cuda.current_device())
		ok(ctx.is_gpu != CPU, "a %s context (device %d)" % (DEV, ctx.device))

		for p in models:
			with ctx.open_model(p) as m:
				res = m.load()
				path = m.path_info()
				ts = m.tensors()
				good = all(check_tensor(t, data[p], n) for n, t in ts.items())
				ok(good, "%s: whole load (%s: %s), %d tensors, %d bytes: torch takes each "
				   "without a copy, every byte matches" % (os.path.basename(p), path["path"],
									   path["why"], len(ts), res["bytes"]))
				if p == typed:
					good = True
					for name, want in arrays.items():
						tt = torch.from_dlpack(m[name])
						if name.endswith("bf16.weight"):
							tt = tt.view(torch.int16)
							want = want.view(np.int16)
						good = good and torch.equal(tt.cpu(), torch.from_numpy(want))
					ok(good, "typed model: F32, F16, BF16, I8, I16, I32, I64, F64 values "
					   "equal the written arrays")
				del ts

		# streamed layers, ordered on a torch stream
		p = models[1]
		st = None if CPU else torch.cuda.Stream()
		with ctx.open_model(p) as m, m.stream(slots=2) as s:
			good = True
			for _ in range(2):
				for i in range(m.layers):
					L = s.acquire(i, stream=st)
					if st is not None:
						torch.cuda.set_stream(st)
					for name, t in L.tensors.items():
						u8 = torch.from_dlpack(t.view("uint8"))
						good = good and torch.equal(
							u8, file_u8(data[p], t.file_offset, t.nbytes))
					L.release()
			if st is not None:
				st.synchronize()
				torch.cuda.set_stream(torch.cuda.default_stream())
			stats = s.stats()
			ok(good, "%s: streamed %d layers twice through %d slots on a torch stream, every "
			   "byte matches (loads %d, hits %d)" % (os.path.basename(p), m.layers, s.slots,
							      stats["loads"], stats["hits"]))

		# an expert cache: the dense part resident, the experts of each layer in a budget
		# of three, handed out ordered before a torch stream's work
		p = models[1]
		st = None if CPU else torch.cuda.Stream()
		with ctx.open_model(p) as m:
			with m.experts() as whole:
				info = whole.info
			budget = info["dense_bytes"] + 3 * info["expert_bytes"]
			with m.experts(budget=budget) as x:
				good = x.capacity == 3
				rng = np.random.default_rng(7)
				if st is not None:
					torch.cuda.set_stream(st)
				for _ in range(6):
					x.token_begin()
					for layer in range(x.layers):
						ids = [int(i) for i in rng.choice(info["experts"], 2, replace=False)]
						es = x.require(layer, ids, stream=st)
						for e in es:
							for name, t in e.tensors.items():
								u8 = torch.from_dlpack(t.view("uint8"))
								good = good and u8.data_ptr() == t.data_ptr and \
									torch.equal(u8, file_u8(data[p], t.file_offset,
												t.nbytes))
						x.release(layer, es, stream=st)
					x.token_end()
				if st is not None:
					st.synchronize()
					torch.cuda.set_stream(torch.cuda.default_stream())
				norm = x["output_norm.weight"]
				good = good and torch.equal(torch.from_dlpack(norm.view("uint8")),
							    file_u8(data[p], norm.file_offset, norm.nbytes))
				est = x.stats()
				ok(good and est["misses"] > 0 and est["evictions"] > 0,
				   "%s: Experts in a budget of 3 (policy %s), 6 tokens on a torch stream: "
				   "every slice of every expert handed out matches, the dense part too "
				   "(%d hits, %d misses, %d evictions)" % (
					   os.path.basename(p), "default", est["hits"], est["misses"],
					   est["evictions"]))

		# file ranges into a torch tensor the caller allocated
		p = models[0]
		dest = torch.full((3 << 20,), 0xA5, dtype=torch.uint8, device=DEV)
		with ctx.register(dest) as buf, ctx.open_file(p) as f:
			t = f.read(4097, 2 << 20, into=buf, buf_offset=13)
			want = file_u8(data[p], 4097, 2 << 20)
			good = torch.equal(dest[13:13 + (2 << 20)], want) and \
				bool((dest[:13] == 0xA5).all()) and bool((dest[13 + (2 << 20):] == 0xA5).all())
			good = good and torch.from_dlpack(t).data_ptr() == dest.data_ptr() + 13
			ok(good, "File.read into a registered torch tensor at an odd offset: the range "
			   "matches, nothing around it is touched (path %s)" % f.path_info()["path"])
			del t
			t = f.read(1, 1 << 20)
			ok(torch.equal(torch.from_dlpack(t), file_u8(data[p], 1, 1 << 20)),
			   "File.read into a new CUDA buffer")
			del t

		# exported memory outlives close()
		m = ctx.open_model(models[2])
		m.load()
		other_consumers(m, arrays)
		tt = torch.from_dlpack(m["blk.1.float32.weight"])
		m.close()
		ctx.close()
		if not CPU:
			torch.cuda.synchronize()
		ok(torch.equal(tt.cpu(), torch.from_numpy(arrays["blk.1.float32.weight"])),
		   "a torch tensor stays valid after its model and context are closed")
		del tt

	finally:
		shutil.rmtree(d)
	print("1..%d" % n)
	return 1 if failed else 0


if __name__ == "__main__":
	sys.exit(main())
