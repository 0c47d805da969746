#!/bin/bash
# Session 21, call A: the GPU tests on the current tree; paired rounds on zram of the
# defaults against 8 and 12 BOUNCE rings and 1 MiB chunks 64 deep (8B, then 70x20), each
# load divided by its own round's ceiling and cuFile; then where the CPU goes with 16 and
# with 8 rings (system-wide profiles with call graphs of one cold load each).
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mkdir -p $OUT/a
timeout 150 bash tests/gpu/run.sh > $OUT/a/gpu-tests.txt 2>&1
echo "gpu-tests rc=$? at $(el)s"; tail -3 $OUT/a/gpu-tests.txt
V=$'\n--threads 8\n--threads 12\n--chunk 1M --queue-depth 64'
LIMIT=${L8:-190} VARIANTS=0 ROUNDS=0 DUR=1 MMAP_LOADS=0 BENCH_MODES=storage,cufile \
	BENCH_CACHE=cold PAIRED=${P8:-4} LOADS="$V" bash scripts/perf-defaults.sh build/bin $OUT/a/z8b > $OUT/a/z8b.txt 2>&1
echo "z8b rc=$? at $(el)s"; grep -E "^median|^variant" $OUT/a/z8b/paired.txt | cut -c1-250
LIMIT=${L70:-170} VARIANTS=0 ROUNDS=0 DUR=1 MMAP_LOADS=0 BENCH_MODES=storage,cufile \
	BENCH_CACHE=cold PAIRED=${P70:-3} LOADS=$'\n--threads 8\n--threads 12' MODEL="-p llama-70b-q4k --layers 20" \
	bash scripts/perf-defaults.sh build/bin $OUT/a/z70 > $OUT/a/z70.txt 2>&1
echo "z70 rc=$? at $(el)s"; grep -E "^median|^variant" $OUT/a/z70/paired.txt | cut -c1-250
M=$(ls /mnt/p2pio-zram/model-_p_llama_8b*.gguf | head -1)
P=(env LD_LIBRARY_PATH=$PWD/.carry/perf/lib $PWD/.carry/perf/perf)
for t in 16 8; do
	[ $(el) -gt ${PLIM:-480} ] && break
	"${P[@]}" record -a -g -e cpu-clock -F 1999 -o /tmp/p.data -- \
		env LD_LIBRARY_PATH=$LD_LIBRARY_PATH build/bin/p2pio-load --cold --json -q --no-verify --threads $t $M > $OUT/a/prof-t$t.out 2>&1
	"${P[@]}" report -i /tmp/p.data --stdio --no-children --sort comm,dso,sym --percent-limit 0.3 > $OUT/a/prof-t$t.txt 2>&1
	"${P[@]}" report -i /tmp/p.data --stdio --children --sort sym --percent-limit 2 -g caller,0.5,callee --max-stack 20 > $OUT/a/prof-t$t-graph.txt 2>&1
	rm -f /tmp/p.data; echo "prof t$t at $(el)s"; head -c 300 $OUT/a/prof-t$t.out
done
tar -C $OUT -czf $OUT/a.tgz a && rm -rf $OUT/a
