#!/bin/sh
# tests/gpu/run.sh - run every GPU test program (build/tests/gpu/test-*) under prove.
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
exec prove -f --exec '' $tests
