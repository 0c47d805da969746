#!/bin/bash
# usage (as root, from the repository root): PERF=/path/to/perf [PERF_LIB=dir] \
#     bash scripts/perf-profile.sh build/bin OUTDIR
#
# Where BOUNCE's cold load spends its CPU and its first milliseconds, against O_DIRECT
# alone, on the 8B-shaped model on 8G of ext4 on zram (Documentation/performance.md,
# "Where the CPU goes on zram"). In order:
#   1. perf stat (faults, context switches, migrations, task clock) of two cold loads as
#      p2pio-load runs them (the cache dropped after the open), two with the cache dropped
#      before the process and libcuda read back (do the library's pages cost the load?),
#      a warm load, and p2pio-bench's O_DIRECT at BOUNCE's shape (16 x one 4 MiB read),
#      at the usual best shape (64 x one 1 MiB) and BOUNCE itself (path started first);
#   2. system-wide profiles: a cold load with call graphs, O_DIRECT at both shapes, a warm
#      load with call graphs;
#   3. timelines (every sample with its thread, time and symbol) of two cold loads and
#      the bench's BOUNCE, with nvidia-smi sampling the PCIe link and clocks every 5 ms.
# Results in OUTDIR: loads.jsonl, stat-*.txt, prof-*.txt, timeline-*.txt.gz, smi-link.csv,
# log.txt. About 60 s.
B=$(cd "$1" && pwd) || exit 2
R=$2
mkdir -p "$R" || exit 2
export LD_LIBRARY_PATH="$B/../lib:${LD_LIBRARY_PATH:-}"
P=(env LD_LIBRARY_PATH="${PERF_LIB:+$PERF_LIB:}$LD_LIBRARY_PATH" "${PERF:-perf}")
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$R/log.txt"; }
Z=/mnt/p2pio-zram
umount $Z 2>/dev/null; [ -e /sys/block/zram0 ] || modprobe zram num_devices=1
echo 1 >/sys/block/zram0/reset
echo 8G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z &&
	mount /dev/zram0 $Z && timeout 60 "$B/p2pio-mkmodel" -q -p llama-8b-q4k -s 7 $Z/m.gguf ||
	{ log "no zram or no model"; exit 1; }
M=$Z/m.gguf
CUDA=$(readlink -f "$(ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}')")
LOAD="$B/p2pio-load --json -q --no-verify"
EV=major-faults,minor-faults,context-switches,cpu-migrations,task-clock
pstat() { local tag=$1; shift
	"${P[@]}" stat -e $EV -x, -o "$R/stat-$tag.txt" -- "$@" >>"$R/loads.jsonl" 2>>"$R/err.txt"
	log "$tag $(grep -o '"gbps":[0-9.]*' "$R/loads.jsonl" | tail -1) $(awk -F, '/^[0-9]/{printf "%s=%s ", $3, $1}' "$R/stat-$tag.txt")"; }
for i in 1 2; do
	pstat cold$i $LOAD --cold $M
	sync; echo 3 >/proc/sys/vm/drop_caches; cat "$CUDA" "$B"/../lib/libp2pio.so* >/dev/null
	pstat predrop$i $LOAD $M
done
cat $M >/dev/null
pstat warm $LOAD $M
for m in "direct --size 4M --depth 16 --threads 16" "direct --size 1M --depth 64 --threads 64" \
	 "bounce --size 64M --depth 32"; do
	set -- $m
	sync; echo 3 >/proc/sys/vm/drop_caches
	pstat "bench-$1-$3${7:+-x$7}" timeout 20 "$B/p2pio-bench" --modes $m --duration 1 --cache cold --json $M
done
prof() { local tag=$1 g=$2; shift 2
	"${P[@]}" record -a -e cpu-clock -F 1999 $g -o "$R/p.data" -- "$@" >"$R/prof-$tag.out" 2>&1
	"${P[@]}" report -i "$R/p.data" --stdio --no-children --sort comm,dso,sym --percent-limit 0.2 >"$R/prof-$tag.txt" 2>&1
	[ -n "$g" ] && "${P[@]}" report -i "$R/p.data" --stdio --children --sort sym --percent-limit 3 \
		-g caller,0.5,callee --max-stack 24 >"$R/prof-$tag-graph.txt" 2>&1
	rm -f "$R/p.data"; log "profile $tag"; }
prof load-cold -g $LOAD --cold $M
prof direct-16x4M "" "$B/p2pio-bench" --modes direct --size 4M --depth 16 --threads 16 --cache cold --duration 1 $M
prof direct-64x1M "" "$B/p2pio-bench" --modes direct --size 1M --depth 64 --threads 64 --cache cold --duration 1 $M
cat $M >/dev/null
prof load-warm -g $LOAD $M
nvidia-smi --query-gpu=timestamp,pcie.link.gen.current,pcie.link.width.current,pstate,clocks.sm,clocks.mem \
	--format=csv -lms 5 >"$R/smi-link.csv" 2>&1 &
SMI=$!
tl() { local tag=$1; shift
	"${P[@]}" record -a -e cpu-clock -F 4999 -o "$R/p.data" -- "$@" >>"$R/loads.jsonl" 2>/dev/null
	"${P[@]}" script -i "$R/p.data" -F comm,tid,cpu,time,ip,sym,dso 2>/dev/null | gzip -6 >"$R/timeline-$tag.txt.gz"
	rm -f "$R/p.data"; log "timeline $tag"; }
tl load-cold1 $LOAD --cold $M
sleep 1
tl load-cold2 $LOAD --cold $M
sync; echo 3 >/proc/sys/vm/drop_caches
tl bench-bounce timeout 20 "$B/p2pio-bench" --modes bounce --size 64M --depth 32 --duration 1 --cache cold --json $M
kill $SMI
umount $Z; echo 1 >/sys/block/zram0/reset
log end
