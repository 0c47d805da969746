#!/bin/bash
# The sweep behind the engine's defaults and the honest ceilings of performance.md, on a
# GPU machine, as root, in one go: a zram block device (ext4) with the 8B-shaped model on
# it, then in one run
#   - p2pio-bench's ceilings and peers at their best (storage, link and cuFile sweeps) and
#     the library's paths with 64 MiB requests, 32 in flight (what the model loader sends),
#     cold and warm;
#   - whole-model loads (p2pio-load) with the defaults, repeated, and with one engine
#     setting changed at a time (threads, queue depth, chunk, staging), cold and warm.
#
#   scripts/perf-defaults.sh BINDIR OUTDIR [DIR]
#
# DIR: put the model in DIR (a directory on the disk to measure) instead of on zram.
# Environment: LIMIT (seconds, default 400) caps the whole run; VARIANTS=0 runs only the
# defaults; MODEL (default "-p llama-8b-q4k") the p2pio-mkmodel preset; DUR (default 2)
# caps each p2pio-bench shape, in seconds; ROUNDS (default 5) whole loads per cache state
# with the defaults; BENCH_CACHE (default both) and BENCH_MODES (default
# storage,link,cufile,mmap,bounce,posix,auto; empty: no bench) for p2pio-bench; MMAP_LOADS=0
# leaves out p2pio-load --mmap (the bench's mmap mode is the peer at its best); STREAM=1 also streams the
# layers (quarter budget, 4 passes) transfer-bound, cold and warm, against the honest
# ceiling, and compute-bound (compute per layer 1.5 x its transfer time at that ceiling);
# HOST=1 also loads into host memory (--host), cold and warm, three times each. PAIRED=N
# (default 0) then runs N paired rounds (scripts/perf-paired.sh: cold loads, the bench's
# best storage and cuFile shapes, each over the whole file, interleaved; ratios per round).
# VARIANTS=1: the bench grid of engine settings (GRID=0 leaves it out) and whole loads with
# one setting changed (VCOLD, VWARM: one set of p2pio-load options a line; VROUNDS rounds).
set -u
BIN=$(cd "$1" && pwd)
OUT=$2
mkdir -p "$OUT"
T0=$(date +%s)
LIMIT=${LIMIT:-400}
VARIANTS=${VARIANTS:-1}
MODEL=${MODEL:--p llama-8b-q4k}
DIR=${3:-}
DUR=${DUR:-2}
STREAM=${STREAM:-0}
ROUNDS=${ROUNDS:-5}
HOST=${HOST:-0}
PAIRED=${PAIRED:-0}
GRID=${GRID:-1}
VROUNDS=${VROUNDS:-1}
# The settings tried in both cache states, then the other path of each.
VSET="--threads 8
--threads 32
--queue-depth 32
--queue-depth 64
--chunk 1M
--chunk 2M
--chunk 1M --queue-depth 64
--chunk 2M --queue-depth 32"
VCOLD=${VCOLD-"$VSET
--path posix"}
VWARM=${VWARM-"$VSET
--path bounce"}
BENCH_CACHE=${BENCH_CACHE:-both}
BENCH_MODES=${BENCH_MODES-storage,link,cufile,mmap,bounce,posix,auto}
MMAP_LOADS=${MMAP_LOADS:-1}
. "$(dirname "$0")/perf-lib.sh"

{ uname -a; nproc; grep -m1 'model name' /proc/cpuinfo; free -g | head -2
  timeout 10 nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current,clocks.sm,clocks.max.sm --format=csv
  lsblk -o NAME,MAJ:MIN,SIZE,TYPE,MOUNTPOINT | head -20; } >"$OUT/machine.txt" 2>&1
log start

perf_model "$DIR" "$MODEL"
dev=$(stat -c '%d' "$M"); maj=$((dev >> 8)); min=$((dev & 255))
mkdir -p /run/udev/data
[ -e "/run/udev/data/b$maj:$min" ] ||
	printf 'E:ID_FS_USAGE=filesystem\nE:ID_FS_TYPE=ext4\n' >"/run/udev/data/b$maj:$min"
log "model $(stat -c %s "$M") bytes; udev record b$maj:$min"
cap 10 "$BIN/p2pio-check" "$M" >"$OUT/check.txt" 2>&1

R="$OUT/loads.jsonl"
: >"$R"
load() { # tag cache args...
	local tag=$1 cache=$2 flag=; shift 2
	[ "$cache" = cold ] && flag=--cold
	[ "$cache" = warm ] && cat "$M" >/dev/null
	load_json "$tag" $flag "$@"
}

log "loads, defaults"
for i in $(seq "$ROUNDS"); do
	load default cold
	load default warm
done

if [ "$HOST" = 1 ]; then
	log "loads into host memory"
	for i in 1 2 3; do
		load host cold --host --no-verify
		load host warm --host --no-verify
	done
fi

log "bench"
[ -n "$BENCH_MODES" ] &&
	cap 200 "$BIN/p2pio-bench" --modes $BENCH_MODES --size 64M --depth 32 --duration $DUR \
		--cache $BENCH_CACHE --json "$M" >"$OUT/bench.json" 2>"$OUT/bench.err"
if [ "$PAIRED" -gt 0 ] && [ -s "$OUT/bench.json" ]; then
	log "paired rounds"
	PAIRED=$PAIRED LIMIT=$(( $(left) - 5 )) "$(dirname "$0")/perf-paired.sh" "$BIN" "$OUT" "$M" \
		"$OUT/bench.json" >"$OUT/paired.log" 2>&1
fi
if [ "$MMAP_LOADS" = 1 ]; then
	load mmap cold --mmap --no-verify
	load mmap warm --mmap --no-verify
fi
if [ "$STREAM" = 1 ]; then
	log "streams"
	for cache in cold warm; do
		flag=; [ $cache = cold ] && flag=--cold
		[ $cache = warm ] && cat "$M" >/dev/null
		cap 45 "$BIN/p2pio-load" --stream --json -q --passes 4 $flag "$M" 2>>"$OUT/load.err" |
			sed "s/^{/{\"tag\":\"transfer-bound\",/" >>"$OUT/streams.jsonl"
	done
	# Compute-bound: the cold ceiling just measured, so the compute per layer is known.
	c=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    try:
        j = json.loads(l)
    except Exception:
        continue
    if j.get("cold"): print(j["ceiling_gbps"]); break' "$OUT/streams.jsonl" 2>/dev/null)
	cap 45 "$BIN/p2pio-load" --stream --json -q --passes 4 --cold --compute-ratio 1.5 \
		${c:+--ceiling $c} "$M" 2>>"$OUT/load.err" |
		sed "s/^{/{\"tag\":\"compute-bound\",/" >>"$OUT/streams.jsonl"
	# The same in text with a line per layer: where the stall is.
	cap 15 "$BIN/p2pio-load" --stream -q --per-layer --passes 4 --cold --compute-ratio 1.5 \
		${c:+--ceiling $c} "$M" >"$OUT/stream-compute-per-layer.txt" 2>&1
fi

if [ "$VARIANTS" = 1 ]; then
	if [ "$GRID" = 1 ]; then
		# The paths in steady state (started before the clock), one engine setting at a
		# time: BOUNCE cold over chunk x queue depth x threads, POSIX warm over chunk x
		# threads.
		log "bench, engine settings"
		V="$OUT/variants.txt"
		: >"$V"
		for c in 1M 2M 4M; do
			for q in 16 32 64; do
				for t in 16 32; do
					cap 20 "$BIN/p2pio-bench" --modes bounce --size 64M --depth 32 \
						--duration 2 --cache cold --chunk $c --lib-depth $q \
						--lib-threads $t "$M" 2>&1 | grep '^result' >>"$V"
				done
			done
		done
		for c in 512K 1M 2M 4M; do
			for t in 8 16; do
				cap 20 "$BIN/p2pio-bench" --modes posix --size 64M --depth 32 --duration 2 \
					--cache warm --chunk $c --lib-threads $t "$M" 2>&1 |
					grep '^result' >>"$V"
			done
		done
	fi
	# Whole loads with one setting changed, VROUNDS interleaved rounds.
	log "loads, variants"
	for i in $(seq "$VROUNDS"); do
		for cache in cold warm; do
			[ $cache = cold ] && list=$VCOLD || list=$VWARM
			while IFS= read -r v; do
				[ -n "$v" ] && load "$v" $cache --no-verify $v
			done <<<"$list"
		done
	done
fi
log done
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
try:
    d = json.load(open(os.path.join(out, "bench.json")))
    for b in d.get("best", []):
        print("best", json.dumps(b))
    for r in d["results"]:
        if r["mode"] in ("bounce", "posix", "auto"):
            print("%-7s %s %7.3f GiB/s cpu %.3f %s %s" % (r["mode"], r["cache"], r["gibps"], r["cpu_s_per_gib"], r["path"], r["note"][:70]))
    for x in d["ratios"]:
        print("ratio", json.dumps(x))
except Exception as e:
    print("bench.json:", e)
try:
    for line in open(os.path.join(out, "variants.txt")):
        f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        print("variant %-6s %s %-45s %7s GiB/s cpu %s" % (f["mode"], f["cache"], line.split("# ")[-1].strip()[:45], f["gibps"], f["cpu_s_per_gib"]))
except Exception as e:
    print("variants:", e)
import statistics
med = {}
for line in open(os.path.join(out, "loads.jsonl")):
    try:
        j = json.loads(line)
    except Exception:
        continue
    print("load %-30s %s %-6s %6.2f GB/s cpu %.2f s (%.3f s/GB) open %.3f s" % (j["tag"], "cold" if j["cold"] else "warm", j.get("path", "mmap"), j["gbps"], j["cpu_seconds"], j["cpu_seconds"] / (j["bytes"] / 1e9), j.get("open_seconds", 0)))
    med.setdefault((j["tag"], j["cold"]), []).append(j)
for (tag, cold), js in med.items():
    g = [j["gbps"] for j in js]
    print("median %-28s %s n=%d %6.2f GB/s (%.2f-%.2f) cpu %.3f s/GB" % (tag, "cold" if cold else "warm", len(g), statistics.median(g), min(g), max(g), statistics.median([j["cpu_seconds"] / (j["bytes"] / 1e9) for j in js])))
try:
    for line in open(os.path.join(out, "paired.txt")):
        if not line.startswith("paired-json"):
            print("paired", line.rstrip())
except FileNotFoundError:
    pass
try:
    for line in open(os.path.join(out, "streams.jsonl")):
        try:
            j = json.loads(line)
        except Exception:
            continue
        print("stream", json.dumps({k: j.get(k) for k in ("tag", "cold", "path", "slots", "bytes_per_pass", "passes_per_s", "bound_passes_per_s", "ceiling_gbps", "ceiling_from", "of_bound", "stall_fraction", "compute_s", "seconds")}))
except FileNotFoundError:
    pass
PY
