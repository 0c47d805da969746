#!/bin/bash
# Issue 11 diagnosis: where BOUNCE's cold load spends its CPU and its start; GPU tests.
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
PERF="env LD_LIBRARY_PATH=$PWD/.carry/perf:$PWD/.carry/lib:$PWD/build/lib $PWD/.carry/perf/perf"
B=$PWD/build/bin
R=/tmp/diag11; rm -rf $R; mkdir -p $R
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $R/log.txt; }
Z=/mnt/p2pio-zram
umount $Z 2>/dev/null; [ -e /sys/block/zram0 ] || modprobe zram num_devices=1; echo 1 >/sys/block/zram0/reset
echo 8G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z && mount /dev/zram0 $Z &&
	timeout 60 $B/p2pio-mkmodel -q -p llama-8b-q4k -s 7 $Z/m.gguf
M=$Z/m.gguf
log "model $(stat -c %s $M)"
$PERF --version >$R/perf-version.txt 2>&1
CUDA=$(readlink -f "$(ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}')")
log "libcuda $CUDA"
EV=major-faults,minor-faults,context-switches,cpu-migrations,task-clock
pstat() { tag=$1; shift; $PERF stat -e $EV -x, -o $R/stat-$tag.txt -- "$@" >>$R/loads.jsonl 2>>$R/err.txt; \
	echo "$tag $(grep -o '"gbps":[0-9.]*' $R/loads.jsonl | tail -1) $(awk -F, '{printf "%s=%s ", $3, $1}' $R/stat-$tag.txt)" | tee -a $R/log.txt; }
LOAD="$B/p2pio-load --json -q --no-verify"
# 1. cold loads as the tools run them (drop inside p2pio-load, after the open) against a
#    drop done before, with libcuda and libp2pio read back into the page cache.
for i in 1 2; do
	pstat cold$i $LOAD --cold $M
	sync; echo 3 >/proc/sys/vm/drop_caches; cat $CUDA build/lib/libp2pio.so* >/dev/null
	pstat predrop$i $LOAD $M
done
cat $M >/dev/null
pstat warm1 $LOAD $M
for m in "direct --size 4M --depth 16 --threads 16" "direct --size 1M --depth 64 --threads 64" "bounce --size 64M --depth 32"; do
	set -- $m; tag=bench-$1-$3-$7
	sync; echo 3 >/proc/sys/vm/drop_caches
	pstat $tag timeout 20 $B/p2pio-bench --modes $m --duration 1 --cache cold --json $M
done
log "stats done"
# 2. profiles: system-wide, cold load with call graphs; cold load for a timeline; benches.
prof() { tag=$1; shift; $PERF record -a -e cpu-clock -F 1999 $PG -o $R/p.data -- "$@" >$R/prof-$tag.out 2>&1
	$PERF report -i $R/p.data --stdio --no-children --sort comm,dso,sym --percent-limit 0.2 >$R/prof-$tag.txt 2>&1
	[ -n "$PG" ] && $PERF report -i $R/p.data --stdio --children --sort sym --percent-limit 3 -g caller,0.5,callee --max-stack 24 >$R/prof-$tag-graph.txt 2>&1
	[ -n "$TL" ] && $PERF script -i $R/p.data -F comm,tid,cpu,time,sym,dso >$R/timeline-$tag.txt 2>&1
	rm -f $R/p.data; log "prof $tag"; }
PG=-g TL= prof load-cold-g $LOAD --cold $M
PG= TL=1 prof load-cold-tl $LOAD --cold $M
PG= TL= prof direct-16x4M $B/p2pio-bench --modes direct --size 4M --depth 16 --threads 16 --cache cold --duration 1 $M
PG= TL= prof direct-64x1M $B/p2pio-bench --modes direct --size 1M --depth 64 --threads 64 --cache cold --duration 1 $M
cat $M >/dev/null
PG=-g TL= prof load-warm-g $LOAD $M
log "profiles done"
# 3. the GPU tests of this tree
: gpu tests passed in the first call

umount $Z; echo 1 >/sys/block/zram0/reset
gzip -9 $R/timeline-*.txt
tar czf $OUT/diag11.tgz -C /tmp diag11
cat $R/log.txt
