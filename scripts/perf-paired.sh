#!/bin/bash
# Paired rounds: whole cold loads, the storage ceiling and cuFile, each read over the whole
# file, interleaved round by round, and the ratios taken inside each round.
#
#   scripts/perf-paired.sh BINDIR OUTDIR MODEL.gguf BENCH.json
#
# Why: a ceiling sampled once, seconds away from the loads it bounds, drifts ~10 % on zram
# and 15-25 % within a minute on the virtio disk (Documentation/performance.md, run 7),
# so a ratio of a few percent is inside the noise of the two samples. Here each round reads
# the file once with the load and once with each candidate shape, in an order that rotates
# round by round, and a round's ratio divides results taken within seconds of each other;
# the summary gives each ratio's median and range over the rounds.
#
# The candidates come from BENCH.json (p2pio-bench --json over the same file): the TOP
# fastest cold storage shapes (O_DIRECT or buffered) and the TOP fastest cold cuFile shapes
# of its sweeps, so the ceiling and the peer are at their best shape of a round, not at one
# setting: a round's ceiling is its fastest storage candidate, its cuFile its fastest cuFile
# candidate. Every candidate reads the whole file (no --duration), as the load does.
#
# One more storage candidate (OWN=1, the default): O_DIRECT at the load's own shape (its
# engine's chunk, queue depth and BOUNCE rings, from OUTDIR/loads.jsonl where an earlier
# step wrote it, else from one uncounted load). The sweep samples each shape for about a
# second, and on a disk that drifts it can pick two shapes that read slower than the
# load's own in every round after (run 10's virtio disk: the load 1.10-1.24 of them); the
# load's shape read without the library bounds the load as honestly and keeps a round's
# ceiling from missing the shape the load itself reads at.
#
# The loads are p2pio-load's defaults, verified after the clock stops as the headline loads
# are (a load with a wrong byte is reported, not counted).
#
# LOADS (one set of p2pio-load options a line; default one empty line, the defaults) adds
# loads with settings changed to every round, each divided by the same round's ceiling
# and cuFile and by the same round's headline load: a setting is judged against the
# defaults read seconds apart, not against another run's. The defaults (an empty line)
# head the table where they are named, else the first set; each set has a line of
# medians. The own-shape candidate is the headline set's.
#
# Environment: PAIRED (rounds, default 5), TOP (candidates per kind, default 2), LIMIT
# (seconds, default 120), OWN (0: no own-shape candidate), LOAD_ARGS (more p2pio-load
# options for every load, e.g. --host), LOADS (above) and BENCH_ARGS (more p2pio-bench
# options, e.g. --device host). Results: OUTDIR/paired.jsonl (a line per read) and
# OUTDIR/paired.txt (the rounds and the medians), also on stdout.
set -u
BIN=$(cd "$1" && pwd)
OUT=$2
M=$3
BENCH=$4
PAIRED=${PAIRED:-5}
TOP=${TOP:-2}
LIMIT=${LIMIT:-120}
LOAD_ARGS=${LOAD_ARGS:-}
LOADS=${LOADS:-}
BENCH_ARGS=${BENCH_ARGS:-}
T0=$(date +%s)
mkdir -p "$OUT"
. "$(dirname "$0")/perf-lib.sh"

# The load sets: each line's words (a CR and extra blanks dropped; options are words, so an
# option's value cannot hold a blank), each set once; an empty LOADS is the defaults alone.
# @head: the set the table follows, the defaults where they are named, else the first.
loads=()
while IFS= read -r line; do
	read -ra words <<<"${line//$'\r'/}"
	l="${words[*]}"
	for x in "${loads[@]}"; do
		[ "$x" = "$l" ] && { log "paired: LOADS names '$l' twice: it runs once a round"; continue 2; }
	done
	loads+=("$l")
done <<<"$LOADS"
head=0
for i in "${!loads[@]}"; do [ -z "${loads[$i]}" ] && { head=$i; break; }; done

# The candidates: "kind mode size depth threads" a line.
cands=$(python3 - "$BENCH" "$TOP" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
top = int(sys.argv[2])
for kind, modes in (("storage", ("direct", "buffered")), ("cufile", ("cufile",))):
    rs = [r for r in d.get("results", []) if r.get("mode") in modes and r.get("cache") == "cold"
          and r.get("ok") and r.get("gibps", 0) > 0]
    rs.sort(key=lambda r: -r["gibps"])
    seen = set()
    for r in rs:
        k = (r["mode"], r["io_size"], r["depth"], r["threads"])
        if k in seen:
            continue
        seen.add(k)
        print(kind, *k)
        if len(seen) == top:
            break
PY
) || { log "paired: no candidates in $BENCH"; exit 1; }
[ -n "$cands" ] || { log "paired: no cold storage or cuFile result in $BENCH"; exit 1; }
if [ "${OWN:-1}" = 1 ]; then
	# The engine a load ran with: the first "engine" of OUTDIR/loads.jsonl, else a load's.
	eng() { python3 -c 'import json, sys
for l in sys.stdin:
    try:
        e = json.loads(l)["engine"]
    except (ValueError, KeyError, TypeError):
        continue
    t = min(e["threads"], e["queue_depth"])
    print("storage direct", e["chunk"], e["queue_depth"], t)
    break'; }
	own=
	[ -s "$OUT/loads.jsonl" ] && [ -z "${loads[$head]}" ] && own=$(eng <"$OUT/loads.jsonl")
	read -ra hv <<<"${loads[$head]}"
	[ -n "$own" ] || own=$(cap 60 "$BIN/p2pio-load" --json -q --no-verify $LOAD_ARGS "${hv[@]}" \
		"$M" 2>>"$OUT/paired.err" | eng)
	if [ -z "$own" ]; then
		log "paired: the load's own shape is unknown (no engine in a load's JSON)"
	elif ! grep -qxF "$own" <<<"$cands"; then
		cands=$(printf '%s\n%s' "$own" "$cands")
	fi
fi
mapfile -t items < <(for i in "${!loads[@]}"; do echo "load $i"; done; echo "$cands")
log "paired: $PAIRED rounds of ${#items[@]} reads: ${items[*]}"

J="$OUT/paired.jsonl"
: >"$J"
# One read of the whole file, its result as one JSON line tagged with the round and item.
one() { # round item
	local round=$1 item=$2 kind mode size depth threads v args
	if [ "${item%% *}" = load ]; then
		v=${loads[${item#load }]}
		read -ra args <<<"$v"
		cap 60 "$BIN/p2pio-load" --json -q --cold $LOAD_ARGS "${args[@]}" "$M" \
			2>>"$OUT/paired.err" |
			python3 -c 'import json, sys
j = json.loads(sys.stdin.read())
print(json.dumps({"round": int(sys.argv[1]), "kind": "load", "shape": j.get("path", "?"),
                  "variant": sys.argv[2],
                  "gbps": j["gbps"], "cpu_s_per_gb": j["cpu_seconds"] / (j["bytes"] / 1e9),
                  "verified": j.get("verified"), "mismatches": j.get("mismatches")}))' \
			"$round" "$v" >>"$J" 2>>"$OUT/paired.err"
		return
	fi
	read -r kind mode size depth threads <<<"$item"
	cap 60 "$BIN/p2pio-bench" --json --fixed --modes "$mode" --size "$size" --depth "$depth" \
		--threads "$threads" --cache cold $BENCH_ARGS "$M" 2>>"$OUT/paired.err" |
		python3 -c 'import json, sys
d = json.loads(sys.stdin.read())
r = d["results"][0]
if not r.get("ok"):
    sys.exit("bench: " + r.get("note", "failed"))
g = 1.073741824
print(json.dumps({"round": int(sys.argv[1]), "kind": sys.argv[2],
                  "shape": "%s %dK qd%d x%d" % (r["mode"], r["io_size"] // 1024, r["depth"], r["threads"]),
                  "gbps": r["gibps"] * g, "cpu_s_per_gb": r["cpu_s_per_gib"] / g}))' \
		"$round" "$kind" >>"$J" 2>>"$OUT/paired.err"
}

n=${#items[@]}
for r in $(seq "$PAIRED"); do
	for i in $(seq 0 $((n - 1))); do
		one "$r" "${items[$(( (i + r - 1) % n ))]}" || log "paired: round $r: ${items[$(( (i + r - 1) % n ))]} failed"
	done
done
python3 "$(dirname "$0")/perf-paired.py" "$J" | tee "$OUT/paired.txt"
