#!/bin/bash
# Issue 11 diagnosis 2: what the first 80 ms of a cold load do (symbols), and the PCIe link.
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
PERF="env LD_LIBRARY_PATH=$PWD/.carry/perf:$PWD/.carry/lib:$PWD/build/lib $PWD/.carry/perf/perf"
B=$PWD/build/bin
R=/tmp/diag11b; rm -rf $R; mkdir -p $R
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $R/log.txt; }
Z=/mnt/p2pio-zram
umount $Z 2>/dev/null; [ -e /sys/block/zram0 ] || modprobe zram num_devices=1; echo 1 >/sys/block/zram0/reset
echo 8G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z && mount /dev/zram0 $Z &&
	timeout 60 $B/p2pio-mkmodel -q -p llama-8b-q4k -s 7 $Z/m.gguf
M=$Z/m.gguf
LOAD="$B/p2pio-load --json -q --no-verify"
nvidia-smi -q -d PERFORMANCE,CLOCK >$R/smi-idle.txt 2>&1
nvidia-smi --query-gpu=timestamp,pcie.link.gen.current,pcie.link.width.current,pstate,clocks.sm,clocks.mem --format=csv -lms 5 >$R/smi-link.csv 2>&1 &
SMI=$!
sleep 1
tl() { tag=$1; shift; $PERF record -a -e cpu-clock -F 4999 -o $R/p.data -- "$@" >>$R/loads.jsonl 2>$R/prof-$tag.err
	$PERF script -i $R/p.data -F comm,tid,cpu,time,ip,sym,dso >$R/timeline-$tag.txt 2>/dev/null
	$PERF report -i $R/p.data --stdio --no-children --sort comm,dso,sym --percent-limit 0.2 >$R/prof-$tag.txt 2>&1
	rm -f $R/p.data; log "timeline $tag $(date +%s.%N)"; }
tl load-cold1 $LOAD --cold $M
sleep 1
tl load-cold2 $LOAD --cold $M
sync; echo 3 >/proc/sys/vm/drop_caches
tl bench-bounce timeout 20 $B/p2pio-bench --modes bounce --size 64M --depth 32 --duration 1 --cache cold --json $M
sleep 0.5
kill $SMI
nvidia-smi -q -d PERFORMANCE,CLOCK >$R/smi-after.txt 2>&1
rm -f $M
# 3. the lone miss: the library before (.carry/old) and after (build/lib) the one-chunk
#    hand-out, interleaved; 1-layer gpt-oss-120b-shaped model, 10 % resident.
timeout 30 $B/p2pio-mkmodel -q -p gpt-oss-120b --layers 1 -s 11 $Z/oss.gguf
log "oss $(stat -c %s $Z/oss.gguf)"
MOE="$B/p2pio-moe run $Z/oss.gguf --trace $PWD/.carry/diag11/oss1.trace -n 60"
C=
for i in 1 2; do
	for v in old new; do
		L=$PWD/build/lib; [ $v = old ] && L=$PWD/.carry/old
		LD_LIBRARY_PATH=$L:$PWD/.carry/lib timeout 40 $MOE --fraction 0.10 --miss-cost $C >$R/moe-$v-$i.txt 2>&1
		log "moe $v $i rc=$? $(grep -E '^bound' $R/moe-$v-$i.txt)"
		grep -A7 '^miss cost' $R/moe-$v-$i.txt >>$R/log.txt
		[ -z "$C" ] && C="--ceiling $(sed -n 's/^ceiling *\([0-9.]*\) GB.*/\1/p' $R/moe-$v-$i.txt)"
	done
done
for f in 0.25 0.50; do
	timeout 40 $MOE --fraction $f $C >$R/moe-new-f$f.txt 2>&1
	log "moe new f$f rc=$? $(grep -E '^bound' $R/moe-new-f$f.txt)"
done
umount $Z; echo 1 >/sys/block/zram0/reset
gzip -9 $R/timeline-*.txt
tar czf $OUT/diag11b.tgz -C /tmp diag11b
cat $R/log.txt
