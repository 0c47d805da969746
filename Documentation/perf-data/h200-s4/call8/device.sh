#!/bin/bash
# Session 4, call 8: the streams against the steady ceiling (perf-stall), and cuFile at its
# best beside the storage sweep and cold loads, on the final tree.
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib
B=$PWD/build/bin
R=$OUT/s8; mkdir -p $R
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $R/log.txt; }
LIMIT=55 sh scripts/perf-stall.sh build/bin $R/stall >$R/stall.out 2>&1; log "perf-stall rc=$?"
Z=/mnt/p2pio-zram
umount $Z 2>/dev/null; [ -e /sys/block/zram0 ] || modprobe zram num_devices=1; echo 1 >/sys/block/zram0/reset
echo 8G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z && mount /dev/zram0 $Z &&
	timeout 60 $B/p2pio-mkmodel -q -p llama-8b-q4k -s 7 $Z/m.gguf
M=$Z/m.gguf
# cuFile registers a file only with a udev record for its block device (performance.md).
mm=$(stat -c '%t:%T' /dev/zram0); mkdir -p /run/udev/data
printf 'E:ID_FS_USAGE=filesystem\nE:ID_FS_TYPE=ext4\n' >/run/udev/data/b$((16#${mm%:*})):$((16#${mm#*:}))
timeout 60 $B/p2pio-bench --modes storage,cufile --cache cold --duration 1 --json $M >$R/bench.json 2>$R/bench.err
log "bench storage,cufile rc=$?"
for i in 1 2 3; do timeout 20 $B/p2pio-load --json -q --cold $M >>$R/loads.jsonl 2>>$R/err.txt; done
log "loads"
umount $Z; echo 1 >/sys/block/zram0/reset
tar czf $OUT/s8.tgz -C $OUT s8
cat $R/stall/summary.txt; cat $R/log.txt
