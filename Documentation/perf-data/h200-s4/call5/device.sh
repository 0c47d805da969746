#!/bin/bash
# Session 4, one call: GPU tests (the shared fixture), whole loads repeated in one process
# (what a process pays once), a warm load's timeline, perf-stall (warm streams now warm),
# then the expert cache (1 layer zram, moonshot x2, 1 layer virtio).
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
PERF="env LD_LIBRARY_PATH=$PWD/.carry/perf:$PWD/.carry/lib:$PWD/build/lib $PWD/.carry/perf/perf"
B=$PWD/build/bin
R=$OUT/s4; mkdir -p $R
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $R/log.txt; }
timeout 120 sh tests/gpu/run.sh >$R/gpu-tests.txt 2>&1; log "gpu tests rc=$? $(tail -1 $R/gpu-tests.txt)"
Z=/mnt/p2pio-zram
umount $Z 2>/dev/null; [ -e /sys/block/zram0 ] || modprobe zram num_devices=1; echo 1 >/sys/block/zram0/reset
echo 8G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z && mount /dev/zram0 $Z &&
	timeout 60 $B/p2pio-mkmodel -q -p llama-8b-q4k -s 7 $Z/m.gguf
M=$Z/m.gguf
# old: the library without the staging warm-up at path start; new: with it (build/lib).
for i in 1 2; do
	for v in old new; do
		L=$PWD/build/lib; [ $v = old ] && L=$PWD/.carry/old
		LD_LIBRARY_PATH=$L:$PWD/.carry/lib timeout 30 $B/p2pio-load --json -q --repeat 3 --cold $M >>$R/repeat-$v.jsonl 2>>$R/repeat.err; log "repeat $v cold rc=$?"
		cat $M >/dev/null
		LD_LIBRARY_PATH=$L:$PWD/.carry/lib timeout 30 $B/p2pio-load --json -q --repeat 3 $M >>$R/repeat-$v.jsonl 2>>$R/repeat.err; log "repeat $v warm rc=$?"
	done
done
# The storage sweep three times, each beside a cold load: how far the best of 15 noisy
# shapes sits above one shape's typical rate, in the same minutes.
for i in 1 2 3; do
	timeout 40 $B/p2pio-bench --modes storage --cache cold --duration 1 --json $M >$R/storage-$i.json 2>>$R/repeat.err
	timeout 30 $B/p2pio-load --json -q --cold $M >>$R/beside-storage.jsonl 2>>$R/repeat.err
	log "storage sweep $i, load beside it"
done
cat $M >/dev/null
timeout 30 $PERF record -a -e cpu-clock -F 4999 -o /tmp/p.data -- $B/p2pio-load --json -q --repeat 2 $M >>$R/repeat.jsonl 2>/dev/null
$PERF script -i /tmp/p.data -F comm,tid,cpu,time,ip,sym,dso 2>/dev/null | gzip -6 >$R/timeline-warm.txt.gz; rm -f /tmp/p.data
log "warm timeline"
umount $Z; echo 1 >/sys/block/zram0/reset
tar czf $OUT/s4.tgz -C $OUT s4
LIMIT=60 sh scripts/perf-stall.sh build/bin $R/stall >$R/stall.out 2>&1; log "perf-stall rc=$?"
tar czf $OUT/s4.tgz -C $OUT s4
LIMIT=330 REPEAT=1 VIRTIO=1 VIRTIO_S=75 MOONS="8G|--budget 8G
8G-2|--budget 8G" sh scripts/perf-moe-device.sh build/bin .carry/moe $OUT >$R/moe.out 2>&1
log "moe rc=$?"
tar czf $OUT/s4.tgz -C $OUT s4
tail -30 $R/log.txt
