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
. "$(dirname "$0")/perf-lib.sh"

{ uname -a; nproc; lscpu 2>/dev/null | grep -Ei 'model name|cache|numa|socket'
  grep . /sys/devices/system/cpu/cpu0/cache/index*/size 2>/dev/null; free -g | head -2; } \
	>"$OUT/machine.txt" 2>&1
log start

perf_model "$DIR" "$MODEL"
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
