#!/bin/bash
# One official run for Documentation/performance.md on a GPU machine, as root, within one
# time limit, every result packed into one tarball (OUTDIR/$TARBALL) so that a machine
# that returns few files returns all of it. Each step has its own time limit, so a step
# that hangs loses that step, not the run; the steps, most important first:
#   zram-8b     the 8B-shaped model on zram: whole loads with the defaults (cold and warm,
#               five each), p2pio-bench's ceilings, peers at their best and the library's
#               paths, streams transfer-bound (cold, warm) and compute-bound
#               (scripts/perf-defaults.sh), then paired rounds: cold loads, the best
#               storage and cuFile shapes over the whole file, interleaved, ratios taken
#               round by round (scripts/perf-paired.sh), with a load of a BOUNCE ring per
#               CPU (the default before session 21) in every round beside the defaults
#   zram-70x20  the 70B-shaped model, 20 layers, on zram: loads, cold bench, paired rounds
#               (the same two loads)
#   vda-8b      the 8B-shaped model on the root (virtio) disk: loads, cold bench, paired
#               rounds (its rate drifts 15-25 % within a minute: only ratios taken within
#               a round resolve a few percent there)
#   python      p2pio, safetensors and Python threads into PyTorch (scripts/perf-python.py)
#   profiles    where the CPU goes (with PERF): a cold load, and O_DIRECT alone
#   variants    whole loads with one engine setting changed
#   gpu-tests   tests/gpu/run.sh
# The last three run only with the time that is left.
#
#   scripts/perf-all.sh BINDIR OUTDIR [DISKDIR]
#
# BINDIR: the build's bin (its lib next to it); DISKDIR (default /var/tmp/p2pio-perf): a
# directory on the root disk. LIMIT (seconds, default 560) caps the whole run; TARBALL
# (default perf.tgz) names the result; STEPS (names, space-separated; default all) runs
# only those, in the order above, for a device call with less time than all of them; PERF
# (a perf binary) and PERF_LIB (its libraries) add the CPU profiles. zram0 is reset before
# and after.
set -u
BIN=$(cd "$1" && pwd)
OUT=$2
DISK=${3:-/var/tmp/p2pio-perf}
LIMIT=${LIMIT:-560}
TARBALL=${TARBALL:-perf.tgz}
STEPS=${STEPS:-}
SRC=$(cd "$(dirname "$0")/.." && pwd)
LIB=$(cd "$BIN/../lib" && pwd)
T0=$(date +%s)
R=$OUT/perf
mkdir -p "$R" "$DISK"
left() { echo $((LIMIT - ($(date +%s) - T0))); }
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$R/log.txt"; }
# step NAME SECONDS COMMAND...: at most SECONDS, and never past the run's limit.
step() { local name=$1 c=$2 l rc; shift 2; l=$(( $(left) - 8 )); [ $l -lt $c ] && c=$l
	if [ -n "$STEPS" ] && [[ " $STEPS " != *" $name "* ]]; then log "SKIP $name (not in STEPS)"; return; fi
	if [ $c -le 5 ]; then log "SKIP $name (no time left)"; return; fi
	log "step $name (limit ${c}s)"
	LIMIT=$c timeout -k 3 $((c + 2)) "$@" >"$R/$name.txt" 2>&1; rc=$?
	log "step $name rc=$rc"; }
zram_reset() { umount /mnt/p2pio-zram 2>/dev/null
	[ -e /sys/block/zram0/reset ] && echo 1 >/sys/block/zram0/reset 2>/dev/null; }
pack() { zram_reset; rm -f "$DISK"/model-*.gguf; log "end"
	tar -C "$OUT" -czf "$OUT/$TARBALL" perf && rm -rf "$R"; }
trap pack EXIT
trap 'exit 1' TERM INT

zram_reset
log "start, limit ${LIMIT}s"
export LD_LIBRARY_PATH="$LIB:${LD_LIBRARY_PATH:-}"
M=/mnt/p2pio-zram/model-_p_llama_8b_q4k_.gguf
# A ring per CPU (4..16), the rings BOUNCE had before session 21 (engine.md, "BOUNCE rings"),
# from the online CPUs as the library counts them (nproc follows affinity and OMP_*); and
# the rings it has now, as p2pio-check reports them.
NCPU=$(getconf _NPROCESSORS_ONLN); RING_PER_CPU=$(( NCPU < 4 ? 4 : NCPU > 16 ? 16 : NCPU ))
RINGS=$("$BIN/p2pio-check" --json 2>/dev/null |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["engine"]["threads"])' 2>/dev/null)
RINGS=${RINGS:-$RING_PER_CPU}
step zram-8b 160 env LOADS=$'\n'"--threads $RING_PER_CPU" STREAM=1 VARIANTS=0 ROUNDS=5 DUR=1 MMAP_LOADS=0 PAIRED=5 \
	BENCH_MODES=storage,link,cufile,mmap,bounce,posix,auto \
	"$SRC/scripts/perf-defaults.sh" "$BIN" "$R/zram-8b"
step zram-70x20 130 env LOADS=$'\n'"--threads $RING_PER_CPU" VARIANTS=0 ROUNDS=3 DUR=1 PAIRED=3 MODEL="-p llama-70b-q4k --layers 20" \
	BENCH_CACHE=cold BENCH_MODES=storage,link,cufile,bounce,auto \
	"$SRC/scripts/perf-defaults.sh" "$BIN" "$R/zram-70x20"
rm -f /mnt/p2pio-zram/model-_p_llama_70b_q4k___layers_20_.gguf
step vda-8b 170 env VARIANTS=0 ROUNDS=3 DUR=1 BENCH_CACHE=cold PAIRED=3 \
	BENCH_MODES=storage,link,cufile,bounce,auto \
	"$SRC/scripts/perf-defaults.sh" "$BIN" "$R/vda-8b" "$DISK"
rm -f "$DISK"/model-*.gguf

# Python: the zram model and its safetensors copy.
py() {
	python3 "$SRC/scripts/gguf-to-safetensors.py" "$M" "${M%.gguf}.safetensors" &&
	PYTHONPATH="$SRC/python" P2PIO_LIBRARY="$LIB/libp2pio.so" \
		python3 "$SRC/scripts/perf-python.py" --runs 3 --json "$M" "${M%.gguf}.safetensors"
}
[ -s "$M" ] && step python 50 bash -c "$(declare -f py); M=$M SRC=$SRC LIB=$LIB py"
rm -f "${M%.gguf}.safetensors"

# Where the CPU goes: system-wide samples of a cold load with the defaults and with a ring
# per CPU, of O_DIRECT reads alone at both loads' shapes (16 x one 4 MiB read; the
# default rings sharing 16 reads) and at the storage ceiling's usual best (64 x one 1 MiB
# read), and of cuFile at its usual best (16 threads x 4 MiB), whose CPU per GB the
# load's is held against.
prof() {
	local p=(env LD_LIBRARY_PATH="$PERF_LIB" "$PERF") name=$1; shift
	# perf's libraries are perf's: the program keeps the run's (run 12 lost its
	# profiles to a libp2pio that found no liburing).
	"${p[@]}" record -a -e cpu-clock -F 999 -o "$R/perf.data" -- \
		env LD_LIBRARY_PATH="$KEEP_LD" "$@" >"$R/prof-$name.out" 2>&1
	"${p[@]}" report -i "$R/perf.data" --stdio --no-children --sort comm,dso,sym \
		--percent-limit 0.3 >"$R/prof-$name.txt" 2>&1
	rm -f "$R/perf.data"
}
profiles() {
	prof load "$BIN/p2pio-load" --cold --json -q --no-verify "$M"
	prof load-ring-per-cpu "$BIN/p2pio-load" --cold --json -q --no-verify \
		--threads "$RING_PER_CPU" "$M"
	prof direct-16x4M "$BIN/p2pio-bench" --modes direct --size 4M --depth 16 --threads 16 \
		--cache cold --duration 1 "$M"
	prof direct-own "$BIN/p2pio-bench" --modes direct --size 4M --depth 16 \
		--threads "$RINGS" --cache cold --duration 1 "$M"
	prof direct-64x1M "$BIN/p2pio-bench" --modes direct --size 1M --depth 64 --threads 64 \
		--cache cold --duration 1 "$M"
	prof cufile-16x4M "$BIN/p2pio-bench" --modes cufile --fixed --size 4M --depth 16 \
		--threads 16 --cache cold --duration 1 "$M"
}
[ -n "${PERF:-}" ] && [ -s "$M" ] &&
	step profiles 45 bash -c "$(declare -f prof profiles); R=$R PERF=$PERF \
		PERF_LIB=${PERF_LIB:-} KEEP_LD=$LD_LIBRARY_PATH BIN=$BIN M=$M \
		RING_PER_CPU=$RING_PER_CPU RINGS=$RINGS profiles"

step variants 40 env VARIANTS=1 GRID=0 VROUNDS=2 ROUNDS=0 BENCH_MODES= \
	VCOLD="--queue-depth 32
--threads $RING_PER_CPU
--threads 8
--chunk 1M --threads 64 --queue-depth 64" VWARM="--threads 16" \
	"$SRC/scripts/perf-defaults.sh" "$BIN" "$R/variants"
step gpu-tests 120 "$SRC/tests/gpu/run.sh"	# BUILD: build/ of the source tree
