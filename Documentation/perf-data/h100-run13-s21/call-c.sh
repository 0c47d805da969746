#!/bin/bash
# Session 21, call C: the official steps on the tree with 3 BOUNCE rings per 4 CPUs:
# zram-8b and zram-70x20 (paired rounds with a ring per CPU beside the defaults), the GPU
# tests, variants.
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
git log --oneline -1 2>/dev/null
LIMIT=${L:-540} TARBALL=perf-c.tgz STEPS="zram-8b zram-70x20 variants gpu-tests" bash scripts/perf-all.sh build/bin $OUT /var/tmp/p2pio-perf 2>&1 | tail -12
