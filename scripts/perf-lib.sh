# scripts/perf-lib.sh - what the bash perf scripts share (sourced, not run): a time limit
# for the whole script, a log, and the model file on zram (or in a given directory).
# The sourcing script sets T0 (its start, date +%s), LIMIT (seconds), OUT (its result
# directory) and BIN (the directory of the binaries and libp2pio) first.

# Seconds left before LIMIT.
left() { echo $((LIMIT - ($(date +%s) - T0))); }
# A line in OUT/log.txt and on stdout, stamped with the seconds since T0.
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/log.txt"; }
# cap SECONDS CMD...: CMD with a timeout of min(SECONDS, time left - 2), so that one step
# that hangs costs that step and not the run. Its own lines go to stderr: CMD's stdout is
# often piped into a results file (a TIMEOUT line there broke the JSON Lines).
cap() { local c=$1 l; shift; l=$(( $(left) - 2 )); [ $l -lt $c ] && c=$l
	if [ $c -le 1 ]; then log "SKIP (no time): $*" >&2; return 124; fi
	timeout -k 2 $c "$@"; local rc=$?
	[ $rc = 124 ] && log "TIMEOUT after ${c}s: $*" >&2; return $rc; }
# libp2pio from BIN, libcuda's companions (libcufile) from the CUDA install.
export LD_LIBRARY_PATH="$BIN:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-}"

# perf_model DIR MODEL: sets MNT (DIR, or zram0 mounted at /mnt/p2pio-zram when DIR is
# empty; an unmounted zram0 left configured by an earlier run is reset first) and M (the
# model file p2pio-mkmodel MODEL writes there, once per MODEL).
perf_model() {
	local dir=$1 model=$2
	if [ -n "$dir" ]; then
		# A fresh machine has no such directory yet (run 12 lost a step to that).
		mkdir -p "$dir" || { log "cannot make $dir"; exit 1; }
		MNT=$dir
	else
		[ -e /sys/block/zram0 ] || modprobe zram num_devices=1 2>/dev/null
		if [ "$(cat /sys/block/zram0/disksize 2>/dev/null)" != 0 ] &&
		   ! grep -q '^/dev/zram0 ' /proc/mounts; then
			echo 1 >/sys/block/zram0/reset
		fi
		MNT=/mnt/p2pio-zram
		if ! grep -q '^/dev/zram0 ' /proc/mounts; then
			echo 40G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 &&
				mkdir -p $MNT && mount /dev/zram0 $MNT || { log "no zram"; exit 1; }
		fi
	fi
	M=$MNT/model-$(echo "$model" | tr -c 'a-z0-9' '_').gguf
	[ -s "$M" ] || cap 90 "$BIN/p2pio-mkmodel" -q $model -s 7 "$M"
}

# load_json TAG ARGS...: one p2pio-load of the model M with ARGS, its JSON line tagged TAG
# and appended to $R (the sourcing script's loads.jsonl); its stderr to OUT/load.err.
load_json() { local tag=$1; shift
	cap 30 "$BIN/p2pio-load" --json -q "$@" "$M" 2>>"$OUT/load.err" |
		sed "s/^{/{\"tag\":\"$tag\",/" >>"$R"; }
