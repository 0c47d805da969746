# SPDX-License-Identifier: MIT
"""The ctypes structs of p2pio._lib against the C compiler's layout of the public headers:
every struct's size and every field's offset and size. A field added to a header without
the binding following it fails here. P2PIO_INCLUDE names the headers' directory (the
installed ones: /usr/include); the source tree's by default."""

import ctypes
import os
import shutil
import subprocess
import tempfile
import unittest

from p2pio import _lib
from p2pio._lib import STRUCTS

HERE = os.path.dirname(os.path.abspath(__file__))
TREE_INCLUDE = os.path.join(HERE, "..", "..", "userlib", "include")


def compile_and_run(testcase, lines):
	"""Builds @lines (a C program including p2pio.h) and returns what it prints."""
	cc = shutil.which(os.environ.get("CC", "cc"))
	if not cc:
		testcase.skipTest("no C compiler")
	inc = os.environ.get("P2PIO_INCLUDE") or TREE_INCLUDE
	d = tempfile.mkdtemp()
	try:
		src, exe = os.path.join(d, "layout.c"), os.path.join(d, "layout")
		with open(src, "w") as f:
			f.write("\n".join(lines) + "\n")
		subprocess.run([cc, "-std=c11", "-I", inc, "-o", exe, src], check=True)
		return subprocess.run([exe], check=True, capture_output=True, text=True).stdout
	finally:
		shutil.rmtree(d)


class TestLayout(unittest.TestCase):
	def test_constants_match_the_headers(self):
		names = ["CTX_NO_WARM_CHECK", "CTX_BOUNCE_ASYNC", "CTX_POLL", "CTX_URGENT_ALONE"]
		lines = ["#include <stdio.h>", "#include <p2pio.h>", "int main(void) {"]
		lines += ['printf("%%s %%u\\n", "%s", (unsigned)P2PIO_%s);' % (n, n) for n in names]
		lines += ["return 0;", "}"]
		want = ["%s %d" % (n, getattr(_lib, n)) for n in names]
		self.assertEqual(compile_and_run(self, lines).split("\n")[:-1], want)

	def test_structs_match_the_headers(self):
		lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <p2pio.h>",
			 "int main(void) {"]
		want = []
		for name, st in STRUCTS.items():
			lines.append('printf("%%s %%zu\\n", "%s", sizeof(struct %s));' % (name, name))
			want.append("%s %d" % (name, ctypes.sizeof(st)))
			for f in st._fields_:
				fld = f[0]
				lines.append('printf("%%s.%%s %%zu %%zu\\n", "%s", "%s", offsetof(struct %s, %s), '
					     'sizeof(((struct %s *)0)->%s));' % (name, fld, name, fld, name, fld))
				want.append("%s.%s %d %d" % (name, fld, getattr(st, fld).offset,
							     getattr(st, fld).size))
		lines += ["return 0;", "}"]
		self.assertEqual(compile_and_run(self, lines).split("\n")[:-1], want)


if __name__ == "__main__":
	unittest.main()
