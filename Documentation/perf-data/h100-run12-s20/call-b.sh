#!/bin/bash
# Session 20, call B: the official zram-70x20 and vda-8b steps, then paired cold loads on
# the virtio disk: BOUNCE (the defaults) against page-cache reads (--path posix).
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mkdir -p $OUT/b
{ findmnt -no SOURCE,FSTYPE,OPTIONS /; for f in /sys/block/vda/queue/{max_sectors_kb,max_hw_sectors_kb,nr_requests,read_ahead_kb,rotational,max_segments}; do echo "$f $(cat $f)"; done; ls /sys/block/vda/mq | wc -l; } > $OUT/b/vda-queue.txt 2>&1
LIMIT=${L1:-320} TARBALL=perf-b.tgz STEPS="zram-70x20 vda-8b" bash scripts/perf-all.sh build/bin $OUT /var/tmp/p2pio-perf 2>&1 | tail -8
LIMIT=${L2:-200} VARIANTS=1 GRID=0 VROUNDS=5 ROUNDS=0 DUR=1 MMAP_LOADS=0 BENCH_MODES=storage,cufile BENCH_CACHE=cold VWARM= VCOLD='--queue-depth 16
--path posix
--path posix --chunk 16M
--queue-depth 4' bash scripts/perf-defaults.sh build/bin $OUT/b/vpaired /var/tmp/p2pio-perf > $OUT/b/vpaired.txt 2>&1
echo vpaired rc=$?; tail -15 $OUT/b/vpaired.txt
rm -f /var/tmp/p2pio-perf/model-*.gguf
tar -C $OUT -czf $OUT/b.tgz b && rm -rf $OUT/b
