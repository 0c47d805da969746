#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""perf-python.py - loading the same tensors into PyTorch on the GPU three ways, cold and warm:

  p2pio        p2pio.Context().open_model(GGUF).load(), then torch.from_dlpack() of every
               tensor (no copy)
  safetensors  safetensors.torch.load_file(SAFETENSORS, device="cuda") of the same bytes
               (scripts/gguf-to-safetensors.py writes that file from the GGUF)
  threads      Python threads pread() the GGUF's data section in 64 MiB pieces into pinned
               host memory (torch), each piece copied to one CUDA arena as it lands, then
               torch views of every tensor

    scripts/gguf-to-safetensors.py m.gguf m.safetensors
    scripts/perf-python.py [--runs 3] [--threads 8] [--modes p2pio,safetensors,threads] \\
        [--json] m.gguf m.safetensors

Each run is timed in two parts (torch and its CUDA context are initialised first, outside
both): the open (p2pio: the context, which starts its I/O path with its threads and pinned
staging, and the model's header; threads: the header and the CUDA arena; safetensors has
none apart from its load) and the load, up to a device synchronise after it. Each mode runs
--runs times per cache state and reports every run, the median and the best; "cold" drops
the page cache first (as root: sync and /proc/sys/vm/drop_caches; otherwise the files'
pages with posix_fadvise); "warm" reads the mode's file once first. Every mode's bytes are
compared once with the file (a checksum on the GPU).
Needs torch with CUDA, safetensors, and p2pio (PYTHONPATH=python,
P2PIO_LIBRARY=build/lib/libp2pio.so in a build tree).
"""

import argparse
import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import torch

import p2pio

PIECE = 64 << 20


def drop_caches(paths):
	os.sync()
	try:
		with open("/proc/sys/vm/drop_caches", "w") as f:
			f.write("3\n")
		return "drop_caches"
	except OSError:
		for p in paths:
			fd = os.open(p, os.O_RDONLY)
			os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
			os.close(fd)
		return "fadvise"


def warm_up(path):
	"""Read @path once through the page cache: a warm run must not depend on whether the
	previous (cold) run read with O_DIRECT, which leaves the cache empty."""
	buf = bytearray(PIECE)
	with open(path, "rb", buffering=0) as f:
		while f.readinto(buf):
			pass


def load_p2pio(gguf, _st, _threads, clock):
	ctx = p2pio.Context(device=torch.cuda.current_device())
	m = ctx.open_model(gguf)
	clock.append(time.perf_counter())
	m.load()
	out = {n: torch.from_dlpack(t) for n, t in m.tensors().items()}
	torch.cuda.synchronize()
	path = m.path_info()["path"]
	m.close()
	ctx.close()  # freed with the last tensor
	return out, path


def load_safetensors(_gguf, st, _threads, clock):
	from safetensors.torch import load_file
	clock.append(time.perf_counter())
	out = load_file(st, device="cuda")
	torch.cuda.synchronize()
	return out, "safetensors"


def gguf_table(gguf):
	"""(data offset, data size, [(name, file offset, bytes)]) from the GGUF's header."""
	import ctypes
	from p2pio import _lib
	g = ctypes.c_void_p()
	err = _lib.new_error()
	_lib.check(_lib.lib.p2pio_gguf_open(os.fsencode(gguf), ctypes.byref(g), ctypes.byref(err)),
		   err, gguf)
	try:
		table = []
		for i in range(_lib.lib.p2pio_gguf_tensor_count(g)):
			t = _lib.lib.p2pio_gguf_tensor(g, i).contents
			table.append((t.name.decode(), t.file_offset, t.size))
	finally:
		_lib.lib.p2pio_gguf_close(g)
	start = min(o for _, o, _ in table)
	end = max(o + n for _, o, n in table)
	return start, end - start, table


def load_threads(gguf, _st, threads, clock):
	start, size, table = gguf_table(gguf)
	arena = torch.empty(size, dtype=torch.uint8, device="cuda")
	torch.cuda.synchronize()
	clock.append(time.perf_counter())
	fd = os.open(gguf, os.O_RDONLY)
	local = threading.local()

	def piece(off):
		n = min(PIECE, size - off)
		if not hasattr(local, "pinned"):
			local.pinned = torch.empty(PIECE, dtype=torch.uint8).pin_memory()
			local.stream = torch.cuda.Stream()
		mv = memoryview(local.pinned.numpy())[:n]
		got = 0
		while got < n:
			r = os.preadv(fd, [mv[got:]], start + off + got)
			if r <= 0:
				raise OSError("short read at %d" % (start + off + got))
			got += r
		with torch.cuda.stream(local.stream):
			arena[off:off + n].copy_(local.pinned[:n], non_blocking=True)
		local.stream.synchronize()  # the buffer is free again

	try:
		with ThreadPoolExecutor(threads) as ex:
			list(ex.map(piece, range(0, size, PIECE)))
	finally:
		os.close(fd)
	torch.cuda.synchronize()
	tensors = {n: arena[o - start:o - start + b] for n, o, b in table}
	return tensors, "threads x%d" % threads


MODES = {"p2pio": load_p2pio, "safetensors": load_safetensors, "threads": load_threads}


def checksum(tensors):
	s = 0
	for t in tensors.values():
		s += int(t.contiguous().view(torch.uint8).to(torch.int64).sum().item())
	return s


def main():
	ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
	ap.add_argument("gguf")
	ap.add_argument("safetensors")
	ap.add_argument("--runs", type=int, default=3)
	ap.add_argument("--threads", type=int, default=8)
	ap.add_argument("--modes", default="p2pio,safetensors,threads")
	ap.add_argument("--json", action="store_true")
	a = ap.parse_args()

	torch.cuda.init()
	torch.empty(1, device="cuda")
	size = os.path.getsize(a.gguf)
	results = []
	sums = {}
	for mode in a.modes.split(","):
		fn = MODES[mode]
		for cache in ("cold", "warm"):
			opens, loads = [], []
			if cache == "warm":
				warm_up(a.safetensors if mode == "safetensors" else a.gguf)
			for r in range(a.runs):
				how = drop_caches([a.gguf, a.safetensors]) if cache == "cold" else "-"
				clock = [time.perf_counter()]
				tensors, path = fn(a.gguf, a.safetensors, a.threads, clock)
				clock.append(time.perf_counter())
				opens.append(clock[1] - clock[0])
				loads.append(clock[2] - clock[1])
				if mode not in sums:
					sums[mode] = checksum(tensors)
				nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
				del tensors
				torch.cuda.empty_cache()
			med = statistics.median(loads)
			tot = statistics.median([o + l for o, l in zip(opens, loads)])
			res = {"mode": mode, "cache": cache, "drop": how, "path": path,
			       "open_s": opens, "load_s": loads, "median_load_s": med,
			       "best_load_s": min(loads), "median_open_s": statistics.median(opens),
			       "bytes": nbytes, "gb_s": nbytes / med / 1e9,
			       "best_gb_s": nbytes / min(loads) / 1e9,
			       "with_open_gb_s": nbytes / tot / 1e9}
			results.append(res)
			if not a.json:
				print("%-12s %-5s %-16s load median %.3f s = %.2f GB/s (best %.2f), open "
				      "median %.3f s, open + load %.2f GB/s  (loads %s)" % (
					mode, cache, path, med, res["gb_s"], res["best_gb_s"],
					res["median_open_s"], res["with_open_gb_s"],
					", ".join("%.3f" % t for t in loads)), flush=True)
	same = len(set(sums.values())) == 1
	if a.json:
		print(json.dumps({"file_size": size, "torch": torch.__version__,
				  "gpu": torch.cuda.get_device_name(), "results": results,
				  "checksums": sums, "same_bytes": same}, indent=1))
	else:
		print("checksums %s: %s" % ("equal" if same else "DIFFER", sums))
	return 0 if same else 1


if __name__ == "__main__":
	raise SystemExit(main())
