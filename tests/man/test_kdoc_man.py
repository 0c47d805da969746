#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Unit test of scripts/kdoc-man.py on fixture headers: what the pages say, and what
--strict refuses."""

import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GEN = os.path.join(ROOT, "scripts", "kdoc-man.py")

GOOD = """/* SPDX-License-Identifier: MIT */
/*
 * p2pio/demo.h - libp2pio: a fixture for the man page generator.
 *
 * Part of the public API.
 */

/*
 * An overview paragraph that libp2pio(7) keeps,
 * over three lines (shorter comments
 * are notes on the declaration beside them).
 */

/** P2PIO_DEMO_MAX - the largest demo value. */
#define P2PIO_DEMO_MAX 7

/**
 * struct p2pio_demo_opts - options of p2pio_demo_run().
 * @size:  sizeof the struct.
 * @count: how many times; 0 for
 *         the default.
 */
struct p2pio_demo_opts {
	size_t size;
	uint32_t count;
};

/**
 * p2pio_demo_run() - run the demo @count times
 *                    over two summary lines.
 * @ctx:  a context.
 * @opts: options, or NULL.
 *
 * A first paragraph that mentions p2pio_demo_stop() and P2PIO_DEMO_MAX.
 * It goes on here.
 *
 *  - a bullet
 *  - another one
 *
 * .starts with a dot, and a back\\slash.
 *
 * Return: 0, or -EINVAL (bad
 * options).
 */
int p2pio_demo_run(struct p2pio_ctx *ctx,
		   const struct p2pio_demo_opts *opts);

/**
 * p2pio_demo_stop() - stop it.
 */
void p2pio_demo_stop(void);
"""


def generate(header_text, strict=True):
	d = tempfile.mkdtemp()
	os.makedirs(os.path.join(d, "p2pio"))
	h = os.path.join(d, "p2pio", "demo.h")
	with open(h, "w") as f:
		f.write(header_text)
	args = [sys.executable, GEN, "--version", "9.9.9", "-o", os.path.join(d, "out"), h]
	if strict:
		args.insert(2, "--strict")
	r = subprocess.run(args, capture_output=True, text=True)
	return r, os.path.join(d, "out")


def read(path):
	with open(path) as f:
		return f.read()


def render(path):
	r = subprocess.run(["groff", "-man", "-ww", "-Tutf8", path], capture_output=True,
			   text=True, env=dict(os.environ, LC_ALL="C.UTF-8"))
	return r.stdout, r.stderr


class TestKdocMan(unittest.TestCase):
	def test_pages(self):
		r, out = generate(GOOD)
		self.assertEqual(r.returncode, 0, r.stderr)
		self.assertEqual(sorted(os.listdir(os.path.join(out, "man3"))),
				 ["p2pio_demo_opts.3type", "p2pio_demo_run.3", "p2pio_demo_stop.3"])
		page = read(os.path.join(out, "man3", "p2pio_demo_run.3"))
		self.assertIn('.TH p2pio_demo_run 3 "', page)
		self.assertIn('"p2pio 9.9.9"', page)
		self.assertIn("p2pio_demo_run \\- run the demo \\fIcount\\fP times over two summary lines\n",
			      page)
		self.assertIn(".B #include <p2pio.h>", page)
		self.assertIn("int p2pio_demo_run(struct p2pio_ctx *ctx,", page)
		self.assertIn(".I opts\noptions, or NULL.", page)
		self.assertIn("\\fBp2pio_demo_stop\\fP() and \\fBP2PIO_DEMO_MAX\\fP. It goes on here.",
			      page)
		self.assertIn(".IP \\(bu 2\na bullet", page)
		self.assertIn("\\&.starts with a dot, and a back\\eslash.", page)
		self.assertIn(".SH RETURN VALUE\n0, or \\-EINVAL (bad options).", page)
		self.assertIn("\\fBp2pio_demo_stop\\fP(3)", page)
		self.assertIn("\\fBp2pio_demo_opts\\fP(3type)", page)
		text, warn = render(os.path.join(out, "man3", "p2pio_demo_run.3"))
		self.assertEqual(warn, "")
		self.assertIn("back\\slash", text)

		t = read(os.path.join(out, "man3", "p2pio_demo_opts.3type"))
		self.assertIn(".SH MEMBERS", t)
		self.assertIn(".I count\nhow many times; 0 for the default.", t)
		self.assertIn("struct p2pio_demo_opts {", t)

		ov = read(os.path.join(out, "man7", "libp2pio.7"))
		self.assertIn("A fixture for the man page generator.", ov)
		self.assertIn("An overview paragraph that libp2pio(7) keeps,", ov)
		self.assertIn(".B P2PIO_DEMO_MAX\nthe largest demo value.", ov)
		self.assertIn("\\fBp2pio_demo_run\\fP(3)", ov)

	def test_strict_refuses_undocumented(self):
		r, _ = generate(GOOD + "\nint p2pio_demo_secret(int x);\n")
		self.assertEqual(r.returncode, 1)
		self.assertIn("p2pio_demo_secret() has no kernel-doc comment", r.stderr)
		r, _ = generate(GOOD + "\nint p2pio_demo_secret(int x);\n", strict=False)
		self.assertEqual(r.returncode, 0)

	def test_strict_refuses_missing_argument(self):
		r, _ = generate(GOOD.replace(" * @opts: options, or NULL.\n", ""))
		self.assertEqual(r.returncode, 1)
		self.assertIn("p2pio_demo_run(): no @opts line", r.stderr)

	def test_strict_refuses_wrong_name(self):
		r, _ = generate(GOOD.replace("p2pio_demo_stop() - stop it.", "p2pio_demo_halt() - stop it."))
		self.assertEqual(r.returncode, 1)
		self.assertIn("the comment of p2pio_demo_halt documents", r.stderr)


if __name__ == "__main__":
	unittest.main()
