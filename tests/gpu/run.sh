#!/bin/sh
# tests/gpu/run.sh - run every GPU test program (build/tests/gpu/test-*, and the Python
# tests tests/gpu/test-*.py) under prove.
# Prints a TAP skip and succeeds where there is no NVIDIA GPU or no libcuda.
set -e
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1 ||
   ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then
	echo "1..0 # SKIP no NVIDIA GPU or no libcuda.so.1 on this machine"
	exit 0
fi
tests=$(ls "$BUILD"/tests/gpu/test-* 2>/dev/null | grep -v '\.[od]$' || true)
if [ -z "$tests" ]; then
	echo "1..0 # SKIP no GPU test programs built under $BUILD/tests/gpu"
	exit 0
fi
# The Python package's GPU test (PyTorch; it skips itself without torch) uses the build
# tree's library and tools.
P2PIO_LIBRARY=$PWD/$BUILD/lib/libp2pio.so
P2PIO_BIN=$PWD/$BUILD/bin
PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}
PYTHONDONTWRITEBYTECODE=1
export P2PIO_LIBRARY P2PIO_BIN PYTHONPATH PYTHONDONTWRITEBYTECODE
exec prove -f --exec '' $tests tests/gpu/test-*.py
