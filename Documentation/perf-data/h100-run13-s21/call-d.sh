#!/bin/bash
# Session 21, call D: the official vda-8b, python and profiles steps on the same tree.
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
PERF=$PWD/.carry/perf/perf PERF_LIB=$PWD/.carry/perf/lib LIMIT=${L:-300} TARBALL=perf-d.tgz \
	STEPS="vda-8b python profiles" bash scripts/perf-all.sh build/bin $OUT /var/tmp/p2pio-perf 2>&1 | tail -10
