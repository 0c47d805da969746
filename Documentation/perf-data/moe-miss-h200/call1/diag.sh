#!/bin/sh
# Diagnostic call (moe12): VMM call costs, the GPU tests, miss cost with pieces and with
# eager/deferred unmapping, decode at 10/25/50 % (1 layer), the moonshot (36 layers, 8G).
cd "$(dirname "$0")/.."
P=$PWD/.perf
R=/tmp/moe12r
rm -rf $R; mkdir -p $R
umount /mnt/p2pio-zram 2>/dev/null; [ -e /sys/block/zram0/reset ] && echo 1 >/sys/block/zram0/reset
{ date; nvidia-smi -L; nproc; free -g; uname -r; } >$R/env.txt 2>&1
timeout 30 $P/after/test-vmm-gpu >$R/test-vmm-gpu.tap 2>&1; echo "rc=$?" >>$R/test-vmm-gpu.tap
timeout 60 $P/after/test-experts-gpu >$R/test-experts-gpu.tap 2>&1; echo "rc=$?" >>$R/test-experts-gpu.tap
cat $R/test-vmm-gpu.tap
MISS=1 EAGER=1 FRACS="0.25 0.50" LAYERS=1 TOKENS=60 ZSIZE=8G TMK=25 TRUN=15 \
	sh scripts/perf-moe.sh $P/after $R/miss $P/oss1.trace
tar czf $OUT/r1.tgz -C /tmp moe12r
FRACS="0.25 0.50" TMK=${TMK:-220} TRUN=90 sh scripts/perf-moe-moon.sh $P/after $R/moon $P/oss36-fit.trace
tar czf $OUT/r2.tgz -C /tmp moe12r
