#!/bin/sh
# usage (as root, from the repository root): sh scripts/perf-stall.sh build/bin $OUT/stall
#
# Issue 11's two near targets in one short device run (at most LIMIT seconds, default 150,
# every step with its own limit), the 8B-shaped model on 8G of ext4 on zram:
#   1. the layer-streaming stall, compute-bound and cold (performance.md's run-5 command),
#      with the default prefetch window and with the old one (--prefetch 1), three of each
#      interleaved, and one --per-layer text run of each; the transfer-bound streams (cold
#      and warm, both windows) to show the window keeps their ratio;
#   2. whole loads, three cold and three warm, with their phases (first read landed, last
#      submitted, a tenth and nine tenths landed, the middle's rate), and the BOUNCE path
#      in steady state (p2pio-bench, the path started before its clock) beside them.
# The storage and link ceilings come from the first stream, which measures them itself
# (the best of the storage and link sweeps), so every ratio is within this run.
# Results in OUTDIR: log.txt, streams.jsonl and loads.jsonl (a "tag" per line),
# per-layer-*.txt, bench.json, summary.txt, *.err.
BIN=$(cd "$1" && pwd) || exit 2
OUT=$2
LIMIT=${LIMIT:-150}
T0=$(date +%s)
mkdir -p "$OUT" || exit 2
. "$(dirname "$0")/perf-lib.sh"
export LD_LIBRARY_PATH="$BIN/../lib:$LD_LIBRARY_PATH"
S=$OUT/streams.jsonl
L=$OUT/loads.jsonl
# tagged TAG SECONDS CMD...: CMD's JSON line, tagged, appended to the file in $J.
tagged() { t=$1; shift; cap "$@" 2>>"$OUT/$t.err" | sed -n "s/^{/{\"tag\":\"$t\",/p" >>"$J"; }
# field NAME: the number NAME of the last line of $J.
field() { tail -n 1 "$J" | sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }

log "start, limit ${LIMIT}s, $(nproc) CPUs"
# DIR (a directory) instead of zram: for trying the script where there is none.
if [ -z "${DIR:-}" ]; then
	umount /mnt/p2pio-zram 2>/dev/null
	[ -e /sys/block/zram0 ] || modprobe zram num_devices=1
	echo 1 >/sys/block/zram0/reset
	mkdir -p /mnt/p2pio-zram && echo 8G >/sys/block/zram0/disksize &&
		mkfs.ext4 -q -F /dev/zram0 && mount /dev/zram0 /mnt/p2pio-zram ||
		{ log "no zram"; exit 1; }
fi
perf_model "${DIR:-}" "${MODEL:--p llama-8b-q4k}"
[ -s "$M" ] || { log "no model"; exit 1; }
log "model $(stat -c %s "$M") bytes"

LOAD="$BIN/p2pio-load --json -q"
STREAM="$LOAD --stream --passes 4"
J=$S
log "transfer-bound cold stream, default window, measuring the ceilings"
tagged transfer-cold-default 40 $STREAM --cold "$M"
C=$(field ceiling_gbps)
LINK=$(tail -n 1 "$S" | sed -n 's/.*link \([0-9.]*\) GB\/s.*/\1/p')
[ -n "$C" ] || { C=28.61; log "no ceiling measured: run 5's $C"; }
[ -n "$LINK" ] || { LINK=55.29; log "no link ceiling measured: run 5's $LINK"; }
log "ceiling $C GB/s (cold), link $LINK GB/s"

COMPUTE="$STREAM --cold --compute-ratio 1.5 --ceiling $C"
for i in 1 2 3; do
	log "compute-bound cold, round $i"
	tagged compute-default 15 $COMPUTE "$M"
	tagged compute-prefetch1 15 $COMPUTE --prefetch 1 "$M"
done

J=$L
for i in 1 2 3; do
	log "whole loads, round $i"
	tagged load-cold 15 $LOAD --cold "$M"
	# Warm means in the page cache: a cold load (O_DIRECT) leaves nothing there (the H200
	# run of 5536769 measured its "warm" loads and streams cold for want of this).
	cat "$M" >/dev/null
	tagged load-warm 15 $LOAD "$M"
done
log "BOUNCE in steady state"
cap 20 "$BIN/p2pio-bench" --modes bounce --size 64M --depth 32 --duration 1 --cache cold \
	--json "$M" >"$OUT/bench.json" 2>"$OUT/bench.err"

J=$S
log "transfer-bound: cold with one layer ahead, warm with both windows"
tagged transfer-cold-prefetch1 15 $STREAM --cold --ceiling "$C" --prefetch 1 "$M"
cat "$M" >/dev/null
tagged transfer-warm-default 15 $STREAM --ceiling "$LINK" "$M"
cat "$M" >/dev/null
tagged transfer-warm-prefetch1 15 $STREAM --ceiling "$LINK" --prefetch 1 "$M"
log "per layer"
cap 15 $BIN/p2pio-load -q --stream --passes 4 --cold --compute-ratio 1.5 --ceiling "$C" \
	--per-layer "$M" >"$OUT/per-layer-default.txt" 2>&1
cap 15 $BIN/p2pio-load -q --stream --passes 4 --cold --compute-ratio 1.5 --ceiling "$C" \
	--prefetch 1 --per-layer "$M" >"$OUT/per-layer-prefetch1.txt" 2>&1

# One line per result: the numbers performance.md quotes.
{
	echo "ceiling $C GB/s (cold storage, from the first stream), link $LINK GB/s"
	sed -n 's/.*"tag":"\([^"]*\)".*"prefetch":\([0-9]*\).*"of_bound":\([0-9.]*\).*"stall_fraction":\([0-9.e-]*\).*/\1 prefetch \2: of_bound \3 stall \4/p' "$S"
	sed -n 's/.*"tag":"\([^"]*\)".*"gbps":\([0-9.]*\).*"cpu_seconds":\([0-9.]*\).*"first_landed_s":\([0-9.e-]*\).*"last_submitted_s":\([0-9.e-]*\).*"tenth_landed_s":\([0-9.e-]*\).*"nine_tenths_landed_s":\([0-9.e-]*\).*"tail_s":\([0-9.e-]*\).*"mid_gbps":\([0-9.]*\).*/\1 \2 GB\/s cpu \3 s: first \4 s, submitted \5, tenth \6, nine tenths \7, tail \8 s; middle \9 GB\/s/p' "$L"
	sed -n 's/.*"mode":"bounce".*"gibps":\([0-9.]*\).*/bench BOUNCE cold \1 GiB\/s/p' "$OUT/bench.json"
} >"$OUT/summary.txt"
if [ -z "${DIR:-}" ]; then
	umount /mnt/p2pio-zram 2>/dev/null
	echo 1 >/sys/block/zram0/reset 2>/dev/null
fi
log "end"
