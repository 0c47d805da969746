#!/bin/bash
# The sweep behind the engine's defaults: whole-model loads (p2pio-load, what a user runs)
# with one engine setting changed at a time, in interleaved rounds (every setting once per
# round, ROUNDS rounds), so that a machine that drifts during the sweep moves every
# setting alike; per setting the median, lowest and highest rate and the median CPU per GB.
#
#   scripts/perf-sweep.sh BINDIR OUTDIR [DIR]          # as root
#
# DIR: put the model in DIR (a directory on the disk to measure) instead of on zram.
# Environment: LIMIT (seconds, default 240) caps the whole run; ROUNDS (default 5);
# MODEL (default "-p llama-8b-q4k") the p2pio-mkmodel preset; COLD and WARM: the settings,
# one per line, each "ENV=VALUE ... | p2pio-load options" (either side may be empty).
set -u
BIN=$(cd "$1" && pwd)
OUT=$2
DIR=${3:-}
mkdir -p "$OUT"
T0=$(date +%s)
LIMIT=${LIMIT:-240}
ROUNDS=${ROUNDS:-5}
MODEL=${MODEL:--p llama-8b-q4k}
COLD=${COLD-"|
|--chunk 2M
|--chunk 1M
|--chunk 1M --queue-depth 32
|--chunk 512K --queue-depth 32
|--threads 8"}
WARM=${WARM-"|
|--threads 8
|--chunk 2M
|--chunk 1M"}
left() { echo $((LIMIT - ($(date +%s) - T0))); }
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/log.txt"; }
cap() { local c=$1 l; shift; l=$(( $(left) - 2 )); [ $l -lt $c ] && c=$l
	if [ $c -le 1 ]; then log "SKIP (no time): $*"; return 124; fi
	timeout -k 2 $c "$@"; local rc=$?; [ $rc = 124 ] && log "TIMEOUT after ${c}s: $*"; return $rc; }
export LD_LIBRARY_PATH="$BIN:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-}"

{ uname -a; nproc; lscpu 2>/dev/null | grep -Ei 'model name|cache|numa|socket'
  grep . /sys/devices/system/cpu/cpu0/cache/index*/size 2>/dev/null; free -g | head -2; } \
	>"$OUT/machine.txt" 2>&1
log start

if [ -n "$DIR" ]; then
	MNT=$DIR
else
	[ -e /sys/block/zram0 ] || modprobe zram num_devices=1 2>/dev/null
	if [ "$(cat /sys/block/zram0/disksize 2>/dev/null)" != 0 ] && ! grep -q '^/dev/zram0 ' /proc/mounts; then
		echo 1 >/sys/block/zram0/reset
	fi
	MNT=/mnt/p2pio-zram
	if ! grep -q '^/dev/zram0 ' /proc/mounts; then
		echo 40G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $MNT &&
			mount /dev/zram0 $MNT || { log "no zram"; exit 1; }
	fi
fi
M=$MNT/model-$(echo "$MODEL" | tr -c 'a-z0-9' '_').gguf
[ -s "$M" ] || cap 90 "$BIN/p2pio-mkmodel" -q $MODEL -s 7 "$M"
log "model $(stat -c %s "$M") bytes"

R="$OUT/sweep.jsonl"
: >"$R"
one() { # cache "ENV | options"
	local cache=$1 set=$2 flag= envs opts
	envs=${set%%|*}
	opts=${set#*|}
	[ "$cache" = cold ] && flag=--cold
	[ "$cache" = warm ] && cat "$M" >/dev/null
	cap 30 env $envs "$BIN/p2pio-load" --json -q --no-verify $flag $opts "$M" \
		2>>"$OUT/load.err" | sed "s/^{/{\"set\":\"$(echo "$set" | sed 's/"/\\"/g')\",/" >>"$R"
}
for r in $(seq "$ROUNDS"); do
	log "round $r"
	while IFS= read -r s; do [ -n "$s" ] && one cold "$s"; done <<<"$COLD"
	while IFS= read -r s; do [ -n "$s" ] && one warm "$s"; done <<<"$WARM"
done
log done
python3 - "$R" <<'PY' | tee "$OUT/summary.txt"
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    runs.setdefault(("cold" if j["cold"] else "warm", j["set"]), []).append(j)
for (cache, s), js in runs.items():
    g = [j["gbps"] for j in js]
    cpu = [j["cpu_seconds"] / (j["bytes"] / 1e9) for j in js]
    print("%s %-8s %-40s n=%d median %6.2f GB/s (%6.2f-%6.2f) cpu %.3f s/GB engine %s" % (
        cache, js[0]["path"], s.strip() or "defaults", len(g), statistics.median(g), min(g),
        max(g), statistics.median(cpu), json.dumps(js[0].get("engine"))))
PY
