#!/bin/bash
# Session 5, call 5: where BOUNCE's cold load loses to O_DIRECT at its own shape. The same
# engine reading into host memory (p2pio-load --host: aligned reads straight into the
# destination, no staging, no copy to the GPU; --repeat so that later rounds reuse the
# arena, not new pages) against the load into the GPU, beside O_DIRECT at 16 x 4 MiB.
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
B=$PWD/build/bin
R=$OUT/s14; mkdir -p $R
Z=/mnt/p2pio-zram
umount $Z 2>/dev/null; [ -e /sys/block/zram0 ] || modprobe zram num_devices=1; echo 1 >/sys/block/zram0/reset
echo 8G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z && mount /dev/zram0 $Z &&
	timeout 60 $B/p2pio-mkmodel -q -p llama-8b-q4k -s 7 $Z/m.gguf
M=$Z/m.gguf
direct() { # tag size depth threads
	timeout 20 $B/p2pio-bench --device host --modes direct --fixed --size $2 --depth $3 --threads $4 \
		--cache cold --steady 2 --duration 2 --json $M >$R/d-$1.json 2>>$R/err.txt
	python3 -c "import json,sys; d=json.load(open('$R/d-$1.json')); r=[x for x in d['results'] if x.get('ok')][0]; print('direct $1', round(r['gibps']*1.073741824,2), 'GB/s, CPU s/GB', round(r.get('cpu_s_per_gib')/1.073741824,3))" | tee -a $R/summary.txt
}
load() { # tag args
	t=$1; shift
	timeout 30 $B/p2pio-load --json -q --cold --repeat 4 "$@" $M >$R/l-$t.jsonl 2>>$R/err.txt
	python3 -c "
import json
for l in open('$R/l-$t.jsonl'):
    j=json.loads(l); p=j.get('phases',{})
    print('load $t round', j['round'], round(j['gbps'],2), 'GB/s, CPU s/GB', round(j['cpu_seconds']/j['bytes']*1e9,3), 'middle', round(p.get('mid_gbps',0),2) if isinstance(p,dict) else p, 'mism', j['mismatches'])" | tee -a $R/summary.txt
}
direct a-16x4M 4M 16 16
load gpu
load host --host
direct b-16x4M 4M 16 16
load gpu2
load host2 --host
direct c-64x1M 1M 64 64
head -c 600 $R/l-gpu.jsonl; echo
umount $Z; echo 1 >/sys/block/zram0/reset
head -5 $R/err.txt
