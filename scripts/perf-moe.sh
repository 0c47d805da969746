#!/bin/sh
# The expert cache's measurements of Documentation/moe.md ("Runtime"), on a GPU machine, as
# root: the GPU test program, then on zram (the fast-NVMe stand-in) a gpt-oss-120b-shaped
# model (MXFP4 experts of 13.2 MB, 128 per layer, 4 used; LAYERS of its 36 layers, to keep
# the file small enough to write in seconds) decoded by `p2pio-moe run` with 10, 25 and 50 %
# of the experts resident, without and with previous-token prefetch, and the cost of
# batched misses against bytes / the measured ceiling and against their burst floor.
#
#   scripts/perf-moe.sh BINDIR OUTDIR TRACE
#
# BINDIR holds p2pio-moe, p2pio-mkmodel and test-experts-gpu; TRACE is a routing trace of
# LAYERS layers x 128 experts, top-4 (p2pio-moe synth or fit). OUTDIR gets the text report
# of each run. Environment: LAYERS (default 12), TOKENS (default 200), ZSIZE (zram
# disksize, default 32G), PREV=0 skips the runs with previous-token prefetch, TGPU, TMK,
# TRUN the time-outs of the GPU test, the model's writing and each run (seconds).
#
# MISS=1: only the cost of batched misses, before against after: no GPU test, no decode
# sweep; `p2pio-moe run --fraction 0.10 --miss-cost` with the binaries of BEFORE (a
# directory, e.g. main's build: optional) and of BINDIR, the latter once per read piece in
# PIECES (default "default 4M 1M 256K"; "default" is the library's choice, 4M reads
# whole 4 MiB chunks as before the pieces). scripts/perf-moe-bins.sh builds both sets.
# EAGER=1 adds a run that unmaps victims before their miss loads (--eager-unmap, as before
# deferred unmapping); FRACS="0.25 0.50" adds plain decode runs at those fractions.
set -u
B=$1
O=$2
T=$3
LAYERS=${LAYERS:-12}
TOKENS=${TOKENS:-200}
ZSIZE=${ZSIZE:-32G}
mkdir -p "$O"
log() { echo "== $(date +%T) $*" | tee -a "$O/log.txt"; }
# The miss-cost table of a run's report: its heading and every indented line after it (the
# rows, their notes, the floor's shape lines), however many there are.
misscost() { awk '/^miss cost/ { p = 1; print; next } p && /^  / { print; next } { p = 0 }' "$1"; }

MISS=${MISS:-0}

log gpu: "$(nvidia-smi -L 2>&1 | head -1)"
if [ "$MISS" != 1 ]; then
	log test-experts-gpu
	timeout ${TGPU:-60} "$B/test-experts-gpu" >"$O/test-experts-gpu.tap" 2>&1
	echo "rc=$?" >>"$O/test-experts-gpu.tap"
fi

[ -e /sys/block/zram0 ] || modprobe zram num_devices=1 || exit 1
[ "$(cat /sys/block/zram0/disksize)" = 0 ] || { echo "zram0 is in use" >&2; exit 1; }
echo "$ZSIZE" >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 &&
	mkdir -p /mnt/p2pio-zram && mount /dev/zram0 /mnt/p2pio-zram || exit 1
Z=/mnt/p2pio-zram
log mkmodel
timeout ${TMK:-150} "$B/p2pio-mkmodel" -q -p gpt-oss-120b --layers "$LAYERS" -s 11 $Z/oss.gguf || exit 1
ls -l $Z/oss.gguf >>"$O/log.txt"
run() { # tag args...
	tag=$1; shift
	log "run $tag"
	timeout ${TRUN:-40} "${BIN:-$B}/p2pio-moe" run $Z/oss.gguf --trace "$T" -n "$TOKENS" "$@" \
		>"$O/run-$tag.txt" 2>&1
	echo "rc=$?" >>"$O/run-$tag.txt"
}
if [ "$MISS" = 1 ]; then
	if [ -n "${BEFORE:-}" ]; then
		BIN=$BEFORE
		run before --fraction 0.10 --miss-cost
		BIN=$B
		grep -E '^(decode|bound)' "$O/run-before.txt" | tee -a "$O/log.txt"
		misscost "$O/run-before.txt" | tee -a "$O/log.txt"
	fi
	for p in ${PIECES:-default 4M 1M 256K}; do
		if [ "$p" = default ]; then
			run "after-$p" --fraction 0.10 --miss-cost
		else
			run "after-$p" --fraction 0.10 --miss-cost --read-piece "$p"
		fi
		grep -E '^(decode|bound)' "$O/run-after-$p.txt" | tee -a "$O/log.txt"
		misscost "$O/run-after-$p.txt" | tee -a "$O/log.txt"
	done
	if [ "${EAGER:-0}" = 1 ]; then
		run after-eager --fraction 0.10 --miss-cost --eager-unmap
		misscost "$O/run-after-eager.txt" | tee -a "$O/log.txt"
	fi
	for f in ${FRACS:-}; do
		run "f$f" --fraction $f
		grep -E '^(decode|hits|stall|bound)' "$O/run-f$f.txt" | tee -a "$O/log.txt"
	done
	umount $Z
	echo 1 >/sys/block/zram0/reset
	log done
	exit 0
fi
for f in 0.10 0.25 0.50; do
	run "f$f-miss" --fraction $f --miss-cost
done
[ "${PREV:-1}" = 1 ] && for f in 0.10 0.25 0.50; do
	run "f$f-prev" --fraction $f --prefetch-prev
done
umount $Z
echo 1 >/sys/block/zram0/reset
log done
