#!/bin/bash
# Session 21, call G: host memory as the target on the accelerator machine (16 CPUs), the
# 8B-shaped model on zram, ROUNDS interleaved rounds of: p2pio-load --host cold and warm,
# the storage ceiling's usual best shapes into host memory (O_DIRECT 64 x 1 MiB cold,
# buffered 16 x 1 MiB warm), and a plain buffered read into new memory (16 threads x 4
# MiB preadv into a fresh mapping, huge pages advised: what a load into new memory pays).
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
mkdir -p $OUT/g; Z=/mnt/p2pio-zram; J=$OUT/g/host.jsonl
[ -e /sys/block/zram0 ] || modprobe zram num_devices=1
umount $Z 2>/dev/null; echo 1 > /sys/block/zram0/reset
echo 16G > /sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z && mount /dev/zram0 $Z
M=$Z/m.gguf; timeout 60 build/bin/p2pio-mkmodel -q -p llama-8b-q4k -s 7 $M || exit 1
tag() { sed "s/^{/{\"round\":$1,\"tag\":\"$2\",/" >> $J; }
B="build/bin/p2pio-bench --json --fixed --device host"
for r in $(seq ${ROUNDS:-4}); do
	timeout 30 build/bin/p2pio-load --host --cold --json -q --no-verify $M | tag $r load-cold
	timeout 30 $B --modes direct --size 1M --depth 64 --threads 64 --cache cold $M | tr -d '\n' | tag $r direct-64x1M-cold; echo >> $J
	cat $M > /dev/null
	timeout 30 build/bin/p2pio-load --host --json -q --no-verify $M | tag $r load-warm
	timeout 30 python3 scripts/perf-fresh-read.py $M 16 | tag $r fresh-read-16
	timeout 30 $B --modes buffered --size 1M --depth 16 --threads 16 --cache warm $M | tr -d '\n' | tag $r buffered-16x1M-warm; echo >> $J
done
python3 - $J <<'PY' | tee $OUT/g/summary.txt
import json, sys, statistics
by = {}
for l in open(sys.argv[1]):
    l = l.strip()
    if not l: continue
    j = json.loads(l)
    if "results" in j:
        g = j["results"][0]["gibps"] * 1.073741824
    else:
        g = j["gbps"]
    by.setdefault(j["tag"], []).append(g)
for t, v in by.items():
    print("%-22s %s  median %.2f GB/s" % (t, " ".join("%.2f" % x for x in v), statistics.median(v)))
PY
umount $Z; echo 1 > /sys/block/zram0/reset
tar -C $OUT -czf $OUT/g.tgz g && rm -rf $OUT/g
