#!/bin/bash
# Session 5, call 1: BOUNCE with split chunks (read_split: each chunk as N reads at once by
# io_uring's workers, on a file whose reads complete in the submitting task) against
# unsplit (--read-split 1) and the old async flag, interleaved: cold whole loads of the 8B
# model beside storage sweeps; 1-layer gpt-oss-120b decodes at 10/25/50 % with the miss cost.
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
B=$PWD/build/bin
R=$OUT/s10; mkdir -p $R
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $R/log.txt; }
Z=/mnt/p2pio-zram
umount $Z 2>/dev/null; [ -e /sys/block/zram0 ] || modprobe zram num_devices=1; echo 1 >/sys/block/zram0/reset
echo 12G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z && mount /dev/zram0 $Z &&
	timeout 70 $B/p2pio-mkmodel -q -p llama-8b-q4k -s 7 $Z/m.gguf &&
	timeout 40 $B/p2pio-mkmodel -q -p gpt-oss-120b --layers 1 -s 11 $Z/oss.gguf
log "models"
M=$Z/m.gguf
timeout 40 $B/p2pio-bench --modes storage --cache cold --duration 1 --json $M >$R/storage-1.json 2>>$R/err.txt
log "storage 1"
$B/p2pio-load --cold -q $M >$R/load-text.txt 2>&1
for i in 1 2 3 4; do
	for v in "def:" "s1:--read-split 1" "s8:--read-split 8" "s2:--read-split 2" "async1:--bounce-async --read-split 1"; do
		t=${v%%:*}; a=${v#*:}
		timeout 20 $B/p2pio-load --json -q --cold $a $M | sed "s/^{/{\"tag\":\"$t\",/" >>$R/loads.jsonl 2>>$R/err.txt
	done
	log "loads round $i"
done
timeout 40 $B/p2pio-bench --modes storage --cache cold --duration 1 --json $M >$R/storage-2.json 2>>$R/err.txt
log "storage 2"
C=$(timeout 60 $B/p2pio-moe run $Z/oss.gguf --trace $PWD/.carry/moe/oss1.trace -n 60 --fraction 0.10 >$R/moe-ceil.txt 2>&1; sed -n 's/^ceiling *\([0-9.]*\) GB.*/\1/p' $R/moe-ceil.txt)
log "moe ceiling $C: $(grep -E '^bound' $R/moe-ceil.txt)"
for i in 1 2; do
	for f in 0.10 0.25 0.50; do
		for v in "def:" "s1:--read-split 1"; do
			t=${v%%:*}; a=${v#*:}
			mc=; [ $f = 0.10 ] && mc=--miss-cost
			timeout 40 $B/p2pio-moe run $Z/oss.gguf --trace $PWD/.carry/moe/oss1.trace -n 60 --fraction $f --ceiling $C $mc $a >$R/moe-$t-$f-$i.txt 2>&1
			log "moe $t $f $i: $(grep -E '^reads' $R/moe-$t-$f-$i.txt) $(grep -E '^bound' $R/moe-$t-$f-$i.txt)"
		done
	done
	[ $(( $(date +%s) - T0 )) -gt 420 ] && break
done
timeout 40 $B/p2pio-bench --modes storage --cache cold --duration 1 --json $M >$R/storage-3.json 2>>$R/err.txt
log "storage 3"
umount $Z; echo 1 >/sys/block/zram0/reset
tar czf $OUT/s10.tgz -C $OUT s10
cat $R/log.txt
python3 - $R <<'PY'
import json,sys,collections
R=sys.argv[1]; d=collections.defaultdict(list)
for l in open(R+'/loads.jsonl'):
    try: j=json.loads(l)
    except Exception: continue
    d[j['tag']].append((round(j['gbps'],2), round(j['cpu_seconds']/j['bytes']*1e9,3), j['engine'].get('file_read_split'), j['mismatches']))
for k,v in d.items(): print(k, v)
for n in (1,2,3):
    try: b=json.load(open(R+'/storage-%d.json'%n))
    except Exception as e: print(e); continue
    for x in b.get('best',[]): print('storage',n,x['mode'],x['io_size']>>20,'MiB',x['threads'],'x',x['depth'],round(x['gibps']*1.073741824,2),'GB/s')
PY
