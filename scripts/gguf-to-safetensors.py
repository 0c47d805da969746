#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""gguf-to-safetensors.py - the PyTorch side of p2pio's model-loading comparison.

  gguf-to-safetensors.py MODEL.gguf OUT.safetensors
      Write every tensor of MODEL.gguf, byte for byte, into a safetensors file (dtype U8,
      shape [bytes]: quantized GGUF types have no torch dtype, and the comparison is about
      moving the same bytes), in the GGUF's tensor order.

  gguf-to-safetensors.py --load FILE.safetensors [--device cuda|cpu] [--cold] [--json]
      Time PyTorch loading it: safetensors.torch.load_file(FILE, device=...) and a device
      synchronise, after torch is imported; --cold drops the page cache first (root).

Only the standard library is needed to convert; loading needs torch and safetensors.
"""
import argparse
import json
import os
import struct
import sys
import time

# ggml type id -> (elements per block, bytes per block), from the ggml type table.
GGML_TYPES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
    14: (256, 210), 15: (256, 292), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8),
    28: (1, 8), 30: (1, 2),
}
SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
          11: "<q", 12: "<d"}
CHUNK = 64 << 20


class Reader:
    def __init__(self, f):
        self.f = f

    def unpack(self, fmt):
        size = struct.calcsize(fmt)
        data = self.f.read(size)
        if len(data) != size:
            raise ValueError("truncated GGUF at byte %d" % self.f.tell())
        return struct.unpack(fmt, data)[0]

    def string(self):
        n = self.unpack("<Q")
        if n > 1 << 24:
            raise ValueError("string of %d bytes at byte %d" % (n, self.f.tell()))
        return self.f.read(n).decode("utf-8", "replace")

    def value(self, vtype):
        if vtype in SCALAR:
            return self.unpack(SCALAR[vtype])
        if vtype == 8:
            return self.string()
        if vtype == 9:
            etype = self.unpack("<I")
            n = self.unpack("<Q")
            return [self.value(etype) for _ in range(n)]
        raise ValueError("unknown metadata type %d" % vtype)


def read_gguf(path):
    """The tensors of a GGUF file: [(name, absolute offset, size)], in header order."""
    with open(path, "rb") as f:
        r = Reader(f)
        if r.unpack("<I") != 0x46554747:
            raise ValueError("%s is not a GGUF file" % path)
        version = r.unpack("<I")
        if version not in (2, 3):
            raise ValueError("GGUF version %d is not supported" % version)
        n_tensors = r.unpack("<Q")
        n_kv = r.unpack("<Q")
        align = 32
        for _ in range(n_kv):
            key = r.string()
            val = r.value(r.unpack("<I"))
            if key == "general.alignment":
                align = val
        infos = []
        for _ in range(n_tensors):
            name = r.string()
            n_dims = r.unpack("<I")
            ne = [r.unpack("<Q") for _ in range(n_dims)]
            ttype = r.unpack("<I")
            off = r.unpack("<Q")
            if ttype not in GGML_TYPES:
                raise ValueError("tensor %s: ggml type %d not in this script's table" % (name, ttype))
            blk, bsz = GGML_TYPES[ttype]
            elems = 1
            for n in ne:
                elems *= n
            if ne[0] % blk:
                raise ValueError("tensor %s: row of %d is not whole blocks" % (name, ne[0]))
            infos.append((name, off, elems // blk * bsz))
        data = (f.tell() + align - 1) // align * align
    return [(name, data + off, size) for name, off, size in infos]


def convert(src, dst):
    tensors = read_gguf(src)
    header = {"__metadata__": {"source": os.path.basename(src)}}
    pos = 0
    for name, _, size in tensors:
        header[name] = {"dtype": "U8", "shape": [size], "data_offsets": [pos, pos + size]}
        pos += size
    hdr = json.dumps(header, separators=(",", ":")).encode()
    hdr += b" " * (-len(hdr) % 8)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fout.write(struct.pack("<Q", len(hdr)))
        fout.write(hdr)
        for _, off, size in tensors:
            fin.seek(off)
            left = size
            while left:
                buf = fin.read(min(left, CHUNK))
                if not buf:
                    raise ValueError("%s ends inside a tensor" % src)
                fout.write(buf)
                left -= len(buf)
        fout.flush()
        os.fsync(fout.fileno())
    print("wrote %s: %d tensors, %d bytes of data" % (dst, len(tensors), pos), file=sys.stderr)


def drop_cache(path):
    os.sync()
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def load(path, device, cold, as_json):
    import torch
    from safetensors.torch import load_file

    if device == "cuda":
        torch.cuda.init()
        torch.zeros(1, device="cuda")  # create the context outside the timing
    if cold:
        drop_cache(path)
    c0 = time.process_time()
    t0 = time.perf_counter()
    sd = load_file(path, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    nbytes = sum(t.numel() * t.element_size() for t in sd.values())
    res = {"mode": "safetensors", "device": device, "cold": cold, "tensors": len(sd),
           "bytes": nbytes, "seconds": wall, "gbps": nbytes / wall / 1e9, "cpu_seconds": cpu}
    if as_json:
        print(json.dumps(res))
    else:
        print("safetensors %d bytes in %.3f s = %.2f GB/s, CPU %.3f s, %s cache (torch %s)" % (
            nbytes, wall, res["gbps"], cpu, "cold" if cold else "warm", torch.__version__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--load", action="store_true", help="time PyTorch loading FILE")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    try:
        if a.load:
            if len(a.files) != 1:
                ap.error("--load takes one safetensors file")
            load(a.files[0], a.device, a.cold, a.json)
        else:
            if len(a.files) != 2:
                ap.error("expected MODEL.gguf OUT.safetensors")
            convert(a.files[0], a.files[1])
    except (OSError, ValueError) as e:
        print("gguf-to-safetensors: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
