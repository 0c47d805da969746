# SPDX-License-Identifier: MIT
"""The p2pio command-line tools the tests run: from $P2PIO_BIN (make check-python sets it to
build/bin), else from PATH (the installed packages); a test without them is skipped."""

import os
import shutil
import unittest


def tool(name):
	"""The path of tool @name (p2pio-mkmodel, p2pio-moe, ...), or skip the test."""
	b = os.environ.get("P2PIO_BIN")
	exe = os.path.join(b, name) if b else shutil.which(name)
	if not exe or not os.path.exists(exe):
		raise unittest.SkipTest("%s not found (set P2PIO_BIN)" % name)
	return exe
