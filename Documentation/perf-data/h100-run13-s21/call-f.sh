#!/bin/bash
# Session 21, call F: layer streaming, transfer-bound, cold, on zram: the defaults (12
# rings on 16 CPUs) against --threads 16 (a ring per CPU), interleaved, ROUNDS rounds;
# each run measures its own ceiling (p2pio-load --stream).
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mkdir -p $OUT/f; Z=/mnt/p2pio-zram
[ -e /sys/block/zram0 ] || modprobe zram num_devices=1
umount $Z 2>/dev/null; echo 1 > /sys/block/zram0/reset
echo 16G > /sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z && mount /dev/zram0 $Z
M=$Z/m.gguf; timeout 60 build/bin/p2pio-mkmodel -q -p llama-8b-q4k -s 7 $M || exit 1
J=$OUT/f/streams.jsonl
for r in $(seq ${ROUNDS:-6}); do
	for v in "" "--threads 16"; do
		timeout 45 build/bin/p2pio-load --stream --json -q --passes 4 --cold $v $M 2>>$OUT/f/err.txt |
			sed "s/^{/{\"round\":$r,\"variant\":\"$v\",/" >> $J
	done
done
python3 - $J <<'PY' | tee $OUT/f/summary.txt
import json, sys, statistics
by = {}
for l in open(sys.argv[1]):
    j = json.loads(l)
    by.setdefault(j["variant"], []).append((j["round"], j["passes_per_s"] / j["bound_passes_per_s"],
                                            j["passes_per_s"] * j["bytes_per_pass"] / 1e9, j.get("cpu_seconds")))
for v, rs in by.items():
    print("%-14s ratio %s  median %.3f  GB/s median %.2f" % (v or "defaults",
          " ".join("%.3f" % x[1] for x in rs), statistics.median(x[1] for x in rs),
          statistics.median(x[2] for x in rs)))
PY
umount $Z; echo 1 > /sys/block/zram0/reset
tar -C $OUT -czf $OUT/f.tgz f && rm -rf $OUT/f
