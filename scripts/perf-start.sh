#!/bin/bash
# What a whole load's start costs, and whose cost it is (issue 11: run 9's warm 8B loads
# landed their first 64 MiB 13-26 ms after the start, run 8's machine 4-7 ms). On zram,
# as root, the 8B-shaped model, ROUNDS (default 3) rounds of, in this order:
#   warm        the file read into the page cache, then a warm load
#   after-load  at once another warm load in a new process (the perf scripts' order: the
#               load before has just freed its 4.9 GB arena)
#   after-idle  the same warm load again after SLEEP (default 3) seconds idle
#   repeat      one process, three warm loads into the same arena (--repeat 3): the first
#               pays what a process pays once, the next two do not
#   host        a warm load into host memory (no GPU arena, the same path's threads)
# Each line of OUTDIR/loads.jsonl is p2pio-load's JSON with a "tag"; the summary prints
# each load's rate and when its first read landed.
#
#   scripts/perf-start.sh BINDIR OUTDIR
set -u
BIN=$(cd "$1" && pwd)
OUT=$2
mkdir -p "$OUT"
T0=$(date +%s)
LIMIT=${LIMIT:-120}
ROUNDS=${ROUNDS:-3}
SLEEP=${SLEEP:-3}
. "$(dirname "$0")/perf-lib.sh"

log start
perf_model "" "-p llama-8b-q4k"
R=$OUT/loads.jsonl
: >"$R"
load() { load_json "$@"; }
for i in $(seq "$ROUNDS"); do
	log "round $i"
	load cold --cold
	cat "$M" >/dev/null
	load warm
	load after-load
	sleep "$SLEEP"
	load after-idle
	load repeat --repeat 3
	load host --host --no-verify
done
log end
python3 - "$R" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    ph = j.get("phases", {})
    print("%-10s round %s %-6s %6.2f GB/s first landed %5.1f ms, a tenth %5.1f ms, middle %6.2f GB/s, open %.3f s" % (
        j["tag"], j.get("round", 0), j.get("path", "?"), j["gbps"], 1e3 * ph.get("first_landed_s", 0),
        1e3 * ph.get("tenth_landed_s", 0), ph.get("mid_gbps", 0), j.get("open_seconds", 0)))
PY
