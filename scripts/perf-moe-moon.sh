#!/bin/sh
# The moonshot of Documentation/moe.md, on a GPU machine, as root: the whole
# gpt-oss-120b-shaped model (p2pio-mkmodel -p gpt-oss-120b: 36 layers, 128 experts of
# 12.6 MiB per layer, 4 used; about 59 GiB) written to zram and decoded by `p2pio-moe run`
# in an 8 GB budget (the dense part included) on a 36-layer routing trace (the synthetic
# trace fitted to the real many-expert traces: p2pio-moe fit), then optionally at fractions
# of the experts resident.
#
#   scripts/perf-moe-moon.sh BINDIR OUTDIR TRACE
#
# BINDIR holds p2pio-moe and p2pio-mkmodel. Environment: BUDGET (default 8G), TOKENS
# (default: the whole trace), FRACS ("0.10 0.25 0.50": also those fractions), PREV=1 (also
# the budget run with previous-token prefetch), EXTRA (options for every run, e.g.
# "--threads 14"), TMK and TRUN (time-outs of the model's writing and of each run, seconds). zram0 gets a 64G disksize with lz4 where the kernel
# has it (incompressible data is stored as it is; lz4 gives up on it fastest).
set -u
B=$1
O=$2
T=$3
mkdir -p "$O"
log() { echo "== $(date +%T) $*" | tee -a "$O/log.txt"; }
Z=/mnt/p2pio-zram

log gpu: "$(nvidia-smi -L 2>&1 | head -1)"
[ -e /sys/block/zram0 ] || modprobe zram num_devices=1 || exit 1
umount $Z 2>/dev/null
echo 1 >/sys/block/zram0/reset
grep -qw lz4 /sys/block/zram0/comp_algorithm && echo lz4 >/sys/block/zram0/comp_algorithm
log "zram: $(cat /sys/block/zram0/comp_algorithm)"
echo 64G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 &&
	mkdir -p $Z && mount /dev/zram0 $Z || exit 1
# Writeback keeps pace with the writer: little dirty page cache on top of zram's copy.
echo 1073741824 >/proc/sys/vm/dirty_background_bytes
echo 4294967296 >/proc/sys/vm/dirty_bytes
log mkmodel
( while sleep 15; do echo "   $(date +%T) $(du -sk $Z | cut -f1) KiB; $(free -g | sed -n 2p)" \
	>>"$O/log.txt"; done ) &
prog=$!
t0=$(date +%s)
timeout ${TMK:-300} "$B/p2pio-mkmodel" -q -p gpt-oss-120b -s 11 $Z/oss.gguf
rc=$?
sync
kill $prog
log "mkmodel rc=$rc in $(($(date +%s) - t0)) s"
ls -l $Z/oss.gguf >>"$O/log.txt"
echo 1 >/proc/sys/vm/drop_caches
free -g >>"$O/log.txt"
cat /sys/block/zram0/mm_stat >>"$O/log.txt"
[ $rc = 0 ] || exit 1
run() { # tag args...
	tag=$1; shift
	log "run $tag"
	timeout ${TRUN:-120} "$B/p2pio-moe" run $Z/oss.gguf --trace "$T" ${TOKENS:+-n $TOKENS} "$@" \
		${EXTRA:-} >"$O/run-$tag.txt" 2>&1
	echo "rc=$?" >>"$O/run-$tag.txt"
	grep -E '^(budget|decode|hits|stall|memory|bound)' "$O/run-$tag.txt" | tee -a "$O/log.txt"
}
run moon --budget "${BUDGET:-8G}"
[ "${PREV:-0}" = 1 ] && run moon-prev --budget "${BUDGET:-8G}" --prefetch-prev
for f in ${FRACS:-}; do
	run "f$f" --fraction "$f"
done
umount $Z
echo 1 >/sys/block/zram0/reset
log done
