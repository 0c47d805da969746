#!/bin/bash
# One official run for Documentation/performance.md on a GPU machine, as root, within one
# time limit, every result packed into one tarball (OUTDIR/perf.tgz) so that a machine
# that returns few files returns all of it. Each step has its own time limit, so a step
# that hangs loses that step, not the run:
#   zram-8b     the 8B-shaped model on zram: whole loads with the defaults (cold and warm),
#               p2pio-bench's ceilings, peers at their best and the library's paths,
#               streams transfer-bound and compute-bound  (scripts/perf-defaults.sh)
#   zram-70x20  the 70B-shaped model, 20 layers, on zram: loads, cold bench
#   vda-8b      the 8B-shaped model on the root (virtio) disk: loads, cold bench
#   python      p2pio, safetensors and Python threads into PyTorch (scripts/perf-python.py)
#   gpu-tests   tests/gpu/run.sh, with what time is left
#
#   scripts/perf-all.sh BINDIR OUTDIR [DISKDIR]
#
# BINDIR: the build's bin (its lib next to it); DISKDIR (default /var/tmp/p2pio-perf): a
# directory on the root disk. LIMIT (seconds, default 560) caps the whole run; PERF (a perf
# binary) and PERF_LIB (its libraries) add CPU profiles of a cold load and of O_DIRECT.
set -u
BIN=$(cd "$1" && pwd)
OUT=$2
DISK=${3:-/var/tmp/p2pio-perf}
LIMIT=${LIMIT:-560}
SRC=$(cd "$(dirname "$0")/.." && pwd)
LIB=$(cd "$BIN/../lib" && pwd)
T0=$(date +%s)
R=$OUT/perf
mkdir -p "$R" "$DISK"
left() { echo $((LIMIT - ($(date +%s) - T0))); }
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$R/log.txt"; }
# step NAME SECONDS COMMAND...: at most SECONDS, and never past the run's limit.
step() { local name=$1 c=$2 l rc; shift 2; l=$(( $(left) - 10 )); [ $l -lt $c ] && c=$l
	if [ $c -le 5 ]; then log "SKIP $name (no time left)"; return; fi
	log "step $name (limit ${c}s)"
	LIMIT=$c timeout -k 5 $((c + 3)) "$@" >"$R/$name.txt" 2>&1; rc=$?
	log "step $name rc=$rc"; }
pack() { tar -C "$OUT" -czf "$OUT/perf.tgz" perf && rm -rf "$R"; }
trap pack EXIT
trap 'exit 1' TERM INT

log "start, limit ${LIMIT}s"
export LD_LIBRARY_PATH="$LIB:${LD_LIBRARY_PATH:-}"
# The defaults, and whole loads with one setting changed (two interleaved rounds).
step zram-8b 150 env STREAM=1 HOST=1 VARIANTS=1 GRID=0 VROUNDS=2 ROUNDS=5 \
	VCOLD="--queue-depth 32
--queue-depth 64
--threads 32 --queue-depth 32
--chunk 1M --threads 64 --queue-depth 64
--chunk 2M" VWARM="--threads 8
--chunk 2M" "$SRC/scripts/perf-defaults.sh" "$BIN" "$R/zram-8b"
M=/mnt/p2pio-zram/model-_p_llama_8b_q4k_.gguf

# Where the CPU goes (PERF: a perf binary, PERF_LIB its libraries): system-wide samples of a
# cold load with the defaults and of O_DIRECT reads alone at its shape (16 rings x one
# 4 MiB read) and at the storage ceiling's usual best (64 x one 1 MiB read).
prof() {
	local p=(env LD_LIBRARY_PATH="$PERF_LIB" "$PERF") name=$1; shift
	"${p[@]}" record -a -e cpu-clock -F 999 -o "$R/perf.data" -- "$@" >"$R/prof-$name.out" 2>&1
	"${p[@]}" report -i "$R/perf.data" --stdio --no-children --sort comm,dso,sym \
		--percent-limit 0.3 >"$R/prof-$name.txt" 2>&1
	rm -f "$R/perf.data"
}
if [ -n "${PERF:-}" ] && [ -s "$M" ]; then
	log "profiles"
	timeout 30 bash -c "$(declare -f prof); R=$R PERF=$PERF PERF_LIB=${PERF_LIB:-} prof load \
		$BIN/p2pio-load --cold --json -q --no-verify $M"
	timeout 30 bash -c "$(declare -f prof); R=$R PERF=$PERF PERF_LIB=${PERF_LIB:-} prof direct-16x4M \
		$BIN/p2pio-bench --modes direct --size 4M --depth 16 --threads 16 --cache cold \
		--duration 1 $M"
	timeout 30 bash -c "$(declare -f prof); R=$R PERF=$PERF PERF_LIB=${PERF_LIB:-} prof direct-64x1M \
		$BIN/p2pio-bench --modes direct --size 1M --depth 64 --threads 64 --cache cold \
		--duration 1 $M"
	log "profiles done"
fi
step zram-70x20 75 env VARIANTS=0 ROUNDS=3 DUR=1 MODEL="-p llama-70b-q4k --layers 20" \
	BENCH_CACHE=cold BENCH_MODES=storage,link,cufile,bounce,auto \
	"$SRC/scripts/perf-defaults.sh" "$BIN" "$R/zram-70x20"
step vda-8b 85 env VARIANTS=0 ROUNDS=3 DUR=1 BENCH_CACHE=cold \
	BENCH_MODES=storage,link,cufile,bounce,auto \
	"$SRC/scripts/perf-defaults.sh" "$BIN" "$R/vda-8b" "$DISK"

# Python: the zram model and its safetensors copy.
py() {
	python3 "$SRC/scripts/gguf-to-safetensors.py" "$M" "${M%.gguf}.safetensors" &&
	PYTHONPATH="$SRC/python" P2PIO_LIBRARY="$LIB/libp2pio.so" \
		python3 "$SRC/scripts/perf-python.py" --runs 3 --json "$M" "${M%.gguf}.safetensors"
}
[ -s "$M" ] && step python 80 bash -c "$(declare -f py); M=$M SRC=$SRC LIB=$LIB py"
rm -f "${M%.gguf}.safetensors"
step gpu-tests 120 "$SRC/tests/gpu/run.sh"	# BUILD: build/ of the source tree
log done
