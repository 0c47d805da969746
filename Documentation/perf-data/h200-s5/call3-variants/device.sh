#!/bin/bash
# Session 5, call 3: decode variants at 1 layer (fewer, larger pieces; 16 threads; no
# polling) then the moonshot with the best; then issue 11's cold whole loads of the 8B
# model beside storage sweeps (before and after) and cuFile at its best.
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib
B=$PWD/build/bin
LIMIT=330 REPEAT=1 VIRTIO=0 VARIANTS="def: p4:--read-pieces,4 p3:--read-pieces,3 t16:--threads,16 nopoll:--no-poll" \
	MOONS="8G|--budget 8G" sh scripts/perf-moe-device.sh $B $PWD/.carry/moe $OUT >/dev/null 2>&1
cat /tmp/moe/log.txt | grep -E "^==|^reads|^ceiling|^bound|^decode" | cut -c1-300
R=$OUT/s12; mkdir -p $R
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $R/log.txt; }
Z=/mnt/p2pio-zram
umount $Z 2>/dev/null; echo 1 >/sys/block/zram0/reset
echo 8G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z && mount /dev/zram0 $Z &&
	timeout 60 $B/p2pio-mkmodel -q -p llama-8b-q4k -s 7 $Z/m.gguf
M=$Z/m.gguf
mm=$(stat -c '%t:%T' /dev/zram0); mkdir -p /run/udev/data
printf 'E:ID_FS_USAGE=filesystem\nE:ID_FS_TYPE=ext4\n' >/run/udev/data/b$((16#${mm%:*})):$((16#${mm#*:}))
timeout 40 $B/p2pio-bench --modes storage --cache cold --duration 1 --json $M >$R/storage-1.json 2>>$R/err.txt
log "storage 1"
for i in 1 2 3; do timeout 20 $B/p2pio-load --json -q --cold $M >>$R/loads.jsonl 2>>$R/err.txt; done
timeout 70 $B/p2pio-bench --modes cufile --cache cold --duration 1 --json $M >$R/cufile.json 2>>$R/err.txt
log "cufile rc=$?"
for i in 1 2 3; do timeout 20 $B/p2pio-load --json -q --cold $M >>$R/loads.jsonl 2>>$R/err.txt; done
timeout 40 $B/p2pio-bench --modes storage --cache cold --duration 1 --json $M >$R/storage-2.json 2>>$R/err.txt
log "storage 2"
umount $Z; echo 1 >/sys/block/zram0/reset
cp /tmp/moe/log.txt $R/moe-log.txt
tar czf $OUT/s12.tgz -C $OUT s12
python3 - $R <<'PY'
import json,sys
R=sys.argv[1]
for l in open(R+'/loads.jsonl'):
    try: j=json.loads(l)
    except Exception: continue
    print('load', round(j['gbps'],2), 'cpu/GB', round(j['cpu_seconds']/j['bytes']*1e9,3), j['mismatches'])
for n in ('storage-1','cufile','storage-2'):
    try: b=json.load(open(R+'/%s.json'%n))
    except Exception as e: print(n, e); continue
    for x in b.get('best',[]): print(n,x['mode'],x['io_size']>>20,'MiB',x['threads'],'x',x['depth'],round(x['gibps']*1.073741824,2),'GB/s cpu/GiB',x.get('cpu_s_per_gib'))
PY
