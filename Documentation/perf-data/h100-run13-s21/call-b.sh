#!/bin/bash
# Session 21, call B: paired rounds on zram (8B, 70x20) of the defaults (16 rings of one
# 4 MiB read) against 8 and 12 rings, and 8 rings with 1 MiB chunks 64 deep and 2 MiB
# chunks 32 deep; then the rotational cap against --queue-depth 16 on the virtio disk.
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mkdir -p $OUT/b
V=$'\n--threads 8\n--threads 12\n--threads 8 --chunk 1M --queue-depth 64\n--threads 8 --chunk 2M --queue-depth 32'
LIMIT=${L8:-150} VARIANTS=0 ROUNDS=0 DUR=1 MMAP_LOADS=0 BENCH_MODES=storage,cufile \
	BENCH_CACHE=cold PAIRED=${P8:-8} LOADS="$V" bash scripts/perf-defaults.sh build/bin $OUT/b/z8b > $OUT/b/z8b.txt 2>&1
echo "z8b rc=$? at $(el)s"; grep -E "^variant" $OUT/b/z8b/paired.txt | cut -c1-250
LIMIT=${L70:-170} VARIANTS=0 ROUNDS=0 DUR=1 MMAP_LOADS=0 BENCH_MODES=storage,cufile \
	BENCH_CACHE=cold PAIRED=${P70:-6} LOADS="$V" MODEL="-p llama-70b-q4k --layers 20" \
	bash scripts/perf-defaults.sh build/bin $OUT/b/z70 > $OUT/b/z70.txt 2>&1
echo "z70 rc=$? at $(el)s"; grep -E "^variant" $OUT/b/z70/paired.txt | cut -c1-250
umount /mnt/p2pio-zram 2>/dev/null; echo 1 > /sys/block/zram0/reset 2>/dev/null
mkdir -p /var/tmp/p2pio-perf
LIMIT=${LV:-170} VARIANTS=1 GRID=0 VROUNDS=${VR:-6} ROUNDS=0 DUR=1 MMAP_LOADS=0 BENCH_MODES=storage \
	BENCH_CACHE=cold VWARM= VCOLD='--threads 16
--queue-depth 16' bash scripts/perf-defaults.sh build/bin $OUT/b/vcap /var/tmp/p2pio-perf > $OUT/b/vcap.txt 2>&1
echo "vcap rc=$? at $(el)s"; grep -E "^median|^best" $OUT/b/vcap.txt | cut -c1-200
rm -f /var/tmp/p2pio-perf/model-*.gguf
tar -C $OUT -czf $OUT/b.tgz b && rm -rf $OUT/b
