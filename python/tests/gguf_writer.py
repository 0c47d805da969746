# SPDX-License-Identifier: MIT
"""A minimal GGUF v3 writer for the tests: models with exactly the types, shapes and bytes a
test wants (p2pio-mkmodel makes the realistic ones)."""

import struct

F32, F16, Q8_0, I8, I16, I32, I64, F64, BF16 = 0, 1, 8, 24, 25, 26, 27, 28, 30
# bytes per block, elements per block
BLOCK = {F32: (4, 1), F16: (2, 1), Q8_0: (34, 32), I8: (1, 1), I16: (2, 1), I32: (4, 1),
	 I64: (8, 1), F64: (8, 1), BF16: (2, 1)}


def nbytes(ggml_type, ne):
	bb, be = BLOCK[ggml_type]
	n = ne[0] // be * bb
	for d in ne[1:]:
		n *= d
	return n


def _str(s):
	b = s.encode()
	return struct.pack("<Q", len(b)) + b


def write(path, tensors, alignment=32, arch="llama"):
	"""tensors: [(name, ggml_type, ne innermost first, data bytes)]. Returns
	{name: absolute file offset of its data}."""
	kv = [("general.architecture", 8, _str(arch)),
	      ("general.alignment", 4, struct.pack("<I", alignment))]
	head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
	for k, t, v in kv:
		head += _str(k) + struct.pack("<I", t) + v
	off = 0
	rel = []
	for name, t, ne, data in tensors:
		assert len(data) == nbytes(t, ne), name
		head += _str(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
		head += struct.pack("<IQ", t, off)
		rel.append(off)
		off += (len(data) + alignment - 1) // alignment * alignment
	data_start = (len(head) + alignment - 1) // alignment * alignment
	with open(path, "wb") as f:
		f.write(head + b"\0" * (data_start - len(head)))
		for (name, t, ne, data), r in zip(tensors, rel):
			f.seek(data_start + r)
			f.write(data)
			pad = (-len(data)) % alignment
			f.write(b"\0" * pad)
	return {name: data_start + r for (name, _, _, _), r in zip(tensors, rel)}
