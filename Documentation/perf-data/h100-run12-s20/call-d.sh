#!/bin/bash
# Session 20, call D: the tree with the rotational cap. Interleaved cold loads on the
# virtio disk (the default, now 4 in flight there; --queue-depth 16, the old default;
# --queue-depth 4), the 1-layer MoE decode at 25 % on the virtio disk (default against
# --queue-depth 16, twice each), then the official vda-8b and zram-8b steps.
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
T0=$(date +%s); left() { echo $(( ${TOTAL:-560} - ($(date +%s) - T0) )); }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mkdir -p $OUT/d
LIMIT=150 VARIANTS=1 GRID=0 VROUNDS=4 ROUNDS=0 DUR=1 MMAP_LOADS=0 BENCH_MODES=storage BENCH_CACHE=cold VWARM= VCOLD='--threads 16
--queue-depth 16
--queue-depth 4' bash scripts/perf-defaults.sh build/bin $OUT/d/vdef /var/tmp/p2pio-perf > $OUT/d/vdef.txt 2>&1
echo "vdef rc=$? at $(( $(date +%s) - T0 ))s"; grep -E "^median|^best" $OUT/d/vdef.txt | cut -c1-200
rm -f /var/tmp/p2pio-perf/model-*.gguf
V=/var/tmp/p2pio-moe; mkdir -p $V
timeout 40 build/bin/p2pio-mkmodel -q -p gpt-oss-120b --layers 1 -s 11 $V/oss.gguf && sync
for v in def q16 def q16; do
	[ $(left) -lt 200 ] && break
	o=; [ $v = q16 ] && o="--queue-depth 16"
	timeout 45 build/bin/p2pio-moe run $V/oss.gguf --trace .carry/moe/oss1.trace -n 200 --fraction 0.25 $o > $OUT/d/moe-v-$v-$(date +%s).txt 2>&1
	echo "moe $v rc=$? at $(( $(date +%s) - T0 ))s"; grep -iE "tokens/s|bound" $OUT/d/moe-v-$v-*.txt | tail -2
done
rm -f $V/oss.gguf
L=$(( $(left) - 10 )); [ $L -gt 60 ] && LIMIT=$L TARBALL=perf-d.tgz STEPS="vda-8b zram-8b" bash scripts/perf-all.sh build/bin $OUT /var/tmp/p2pio-perf 2>&1 | tail -6
tar -C $OUT -czf $OUT/d.tgz d && rm -rf $OUT/d
