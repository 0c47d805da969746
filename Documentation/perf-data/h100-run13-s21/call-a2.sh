#!/bin/bash
# Session 21, call A2 (same machine as A): the profiles of call A with the model's real
# path, then 4 more paired rounds of 70x20: the defaults against 8 rings.
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
mkdir -p $OUT/a2
M=$(ls /mnt/p2pio-zram/model-_p_llama_8b*.gguf | head -1)
P=(env LD_LIBRARY_PATH=$PWD/.carry/perf/lib $PWD/.carry/perf/perf)
for t in 16 8; do
	"${P[@]}" record -a -g -e cpu-clock -F 1999 -o /tmp/p.data -- \
		env LD_LIBRARY_PATH=$LD_LIBRARY_PATH build/bin/p2pio-load --cold --json -q --no-verify --threads $t $M > $OUT/a2/prof-t$t.out 2>&1
	"${P[@]}" report -i /tmp/p.data --stdio --no-children --sort comm,dso,sym --percent-limit 0.3 > $OUT/a2/prof-t$t.txt 2>&1
	"${P[@]}" report -i /tmp/p.data --stdio --children --sort sym --percent-limit 2 -g caller,0.5,callee --max-stack 20 > $OUT/a2/prof-t$t-graph.txt 2>&1
	rm -f /tmp/p.data; echo "prof t$t at $(el)s"; head -c 300 $OUT/a2/prof-t$t.out; echo
done
mkdir -p $OUT/a2/z70
M70=$(ls /mnt/p2pio-zram/model-_p_llama_70b*.gguf | head -1)
PAIRED=4 LIMIT=200 LOADS=$'\n--threads 8' bash scripts/perf-paired.sh build/bin $OUT/a2/z70 $M70 .carry/s21/z70-bench.json > $OUT/a2/z70.txt 2>&1
echo "z70 rc=$? at $(el)s"; grep -E "^median|^variant" $OUT/a2/z70/paired.txt | cut -c1-250
tar -C $OUT -czf $OUT/a2.tgz a2 && rm -rf $OUT/a2
