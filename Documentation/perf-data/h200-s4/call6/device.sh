#!/bin/bash
# Session 4, call 6: the steady ceiling against the 1-layer decodes that exceeded the old
# one (zram and virtio, 10/25/50 %), and cold whole loads with more submitters.
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
B=$PWD/build/bin
R=$OUT/s6; mkdir -p $R
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $R/log.txt; }
Z=/mnt/p2pio-zram
umount $Z 2>/dev/null; [ -e /sys/block/zram0 ] || modprobe zram num_devices=1; echo 1 >/sys/block/zram0/reset
echo 12G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z && mount /dev/zram0 $Z &&
	timeout 60 $B/p2pio-mkmodel -q -p llama-8b-q4k -s 7 $Z/m.gguf &&
	timeout 30 $B/p2pio-mkmodel -q -p gpt-oss-120b --layers 1 -s 11 $Z/oss.gguf
M=$Z/m.gguf
# 1. cold whole loads: defaults against more submitters (io_uring workers), 2 rounds.
for i in 1 2; do
	for v in "def:" "async:--bounce-async" "async64:--bounce-async --queue-depth 64" \
		 "async64-1M:--bounce-async --queue-depth 64 --chunk 1M" "async32-2M:--bounce-async --queue-depth 32 --chunk 2M"; do
		t=${v%%:*}; a=${v#*:}
		timeout 20 $B/p2pio-load --json -q --cold $a $M | sed "s/^{/{\"tag\":\"$t\",/" >>$R/loads.jsonl 2>>$R/err.txt
	done
	log "loads round $i"
done
timeout 40 $B/p2pio-bench --modes storage --cache cold --duration 1 --json $M >$R/storage.json 2>>$R/err.txt
log "storage sweep"
rm -f $M
# 2. the 1-layer decodes with the steady ceiling.
run1() { tag=$1; m=$2; shift 2
	timeout 40 $B/p2pio-moe run $m --trace $PWD/.carry/moe/oss1.trace -n 60 "$@" >$R/moe-$tag.txt 2>&1
	log "moe $tag rc=$? $(grep -E '^bound' $R/moe-$tag.txt)"; grep -E '^(reads|ceiling)' $R/moe-$tag.txt >>$R/log.txt; }
for f in 0.10 0.25 0.50; do run1 z-f$f $Z/oss.gguf --fraction $f; done
for f in 0.10 0.25 0.50; do run1 z2-f$f $Z/oss.gguf --fraction $f; done
umount $Z; echo 1 >/sys/block/zram0/reset
V=/var/tmp/p2pio-virtio; mkdir -p $V
timeout 40 $B/p2pio-mkmodel -q -p gpt-oss-120b --layers 1 -s 11 $V/oss.gguf && sync
for f in 0.10 0.25 0.50; do run1 v-f$f $V/oss.gguf --fraction $f; done
rm -f $V/oss.gguf
tar czf $OUT/s6.tgz -C $OUT s6
cat $R/log.txt
