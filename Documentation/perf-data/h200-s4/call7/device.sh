#!/bin/bash
# Session 4, call 7: BOUNCE through io_uring's workers or not, interleaved, four rounds of
# cold whole loads and two of 1-layer decodes at 10 %, with a storage sweep.
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
B=$PWD/build/bin
R=$OUT/s7; mkdir -p $R
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $R/log.txt; }
Z=/mnt/p2pio-zram
umount $Z 2>/dev/null; [ -e /sys/block/zram0 ] || modprobe zram num_devices=1; echo 1 >/sys/block/zram0/reset
echo 12G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z && mount /dev/zram0 $Z &&
	timeout 60 $B/p2pio-mkmodel -q -p llama-8b-q4k -s 7 $Z/m.gguf &&
	timeout 30 $B/p2pio-mkmodel -q -p gpt-oss-120b --layers 1 -s 11 $Z/oss.gguf
M=$Z/m.gguf
timeout 40 $B/p2pio-bench --modes storage --cache cold --duration 1 --json $M >$R/storage-1.json 2>>$R/err.txt
for i in 1 2 3 4; do
	for v in "def:" "async:--bounce-async" "async64-1M:--bounce-async --queue-depth 64 --chunk 1M"; do
		t=${v%%:*}; a=${v#*:}
		timeout 20 $B/p2pio-load --json -q --cold $a $M | sed "s/^{/{\"tag\":\"$t\",/" >>$R/loads.jsonl 2>>$R/err.txt
	done
	log "loads round $i"
done
timeout 40 $B/p2pio-bench --modes storage --cache cold --duration 1 --json $M >$R/storage-2.json 2>>$R/err.txt
C=$(timeout 60 $B/p2pio-moe run $Z/oss.gguf --trace $PWD/.carry/moe/oss1.trace -n 60 --fraction 0.10 >$R/moe-ceil.txt 2>&1; sed -n 's/^ceiling *\([0-9.]*\) GB.*/\1/p' $R/moe-ceil.txt)
log "moe ceiling $C: $(grep -E '^bound' $R/moe-ceil.txt)"
for i in 1 2; do
	for v in "def:" "async:--bounce-async"; do
		t=${v%%:*}; a=${v#*:}
		timeout 30 $B/p2pio-moe run $Z/oss.gguf --trace $PWD/.carry/moe/oss1.trace -n 60 --fraction 0.10 --ceiling $C $a >$R/moe-$t-$i.txt 2>&1
		log "moe $t $i: $(grep -E '^reads' $R/moe-$t-$i.txt) $(grep -E '^bound' $R/moe-$t-$i.txt)"
	done
done
umount $Z; echo 1 >/sys/block/zram0/reset
tar czf $OUT/s7.tgz -C $OUT s7
cat $R/log.txt
