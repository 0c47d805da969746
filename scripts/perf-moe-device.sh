#!/bin/sh
# moe12's part of the lead's combined GPU call (at most 250 s, most important first):
# the GPU tests; on a 1-layer gpt-oss-120b-shaped model on zram the miss cost and decode
# at 10 % for a few engine settings, the best at 25 and 50 %; the moonshot (the whole
# 36-layer model in an 8 GiB budget, driven by the fitted trace) with the best setting;
# then, if time is left, the whole model at 50 %. Results: $OUT/moe12.tgz.
T0=$(date +%s)
C=$(cd "$(dirname "$0")" && pwd)
P=$C/.perf
B=$P/after
R=/tmp/moe12
Z=/mnt/p2pio-zram
rm -rf $R; mkdir -p $R
left() { echo $((245 - ($(date +%s) - T0))); }
log() { echo "== $(date +%T) +$(($(date +%s) - T0))s $*" | tee -a "$R/log.txt"; }
save() { tar czf $OUT/moe12.tgz -C /tmp moe12; }
zreset() { umount $Z 2>/dev/null; [ -e /sys/block/zram0/reset ] && echo 1 >/sys/block/zram0/reset; }
[ -e /sys/block/zram0 ] || modprobe zram num_devices=1
zreset
{ date; nvidia-smi -L; nproc; free -g; uname -r; } >$R/env.txt 2>&1
timeout 25 $B/test-vmm-gpu >$R/test-vmm-gpu.tap 2>&1; echo "rc=$?" >>$R/test-vmm-gpu.tap
timeout 40 $B/test-experts-gpu >$R/test-experts-gpu.tap 2>&1; echo "rc=$?" >>$R/test-experts-gpu.tap
log "tests: $(cat $R/test-*.tap | grep -c '^ok') ok, $(cat $R/test-*.tap | grep -c '^not ok') not ok"
save

# 1 layer (128 experts of 12.6 MiB): miss cost and decode, 60 tokens of the 1-layer trace.
echo 8G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z &&
	mount /dev/zram0 $Z && timeout 25 $B/p2pio-mkmodel -q -p gpt-oss-120b --layers 1 -s 11 $Z/oss.gguf
log "1-layer model: $(ls -l $Z/oss.gguf 2>&1)"
run1() { # tag args...
	tag=$1; shift
	timeout 12 ${BIN:-$B}/p2pio-moe run $Z/oss.gguf --trace $P/oss1.trace -n 60 "$@" >$R/run1-$tag.txt 2>&1
	echo "rc=$?" >>$R/run1-$tag.txt
	log "$tag: $(grep -E '^bound' $R/run1-$tag.txt)"
	grep -A7 '^miss cost' $R/run1-$tag.txt >>$R/log.txt
}
best=t16; bestv=0; bestargs=""
try() { # tag args...: 10 % with the miss cost; remember the best achieved/bound
	# (its own variable: sh has no locals, and run1 sets $tag - in the call that was
	# measured this read the wrong file and left the best at t16, the defaults)
	ttag=$1; shift
	run1 $ttag-f0.10 "$@" --fraction 0.10 --miss-cost
	v=$(sed -n 's/.*achieved \([0-9.]*\) of it.*/\1/p' $R/run1-$ttag-f0.10.txt)
	[ -n "$v" ] && [ "$(awk "BEGIN{print ($v > $bestv)}")" = 1 ] && { best=$ttag; bestv=$v; bestargs="$*"; }
}
try t16
try t14 --threads 14
try t14p --threads 14 --poll
try t12p --threads 12 --poll
try t14p1M --threads 14 --poll --read-piece 1M
log "best at 10 %: $best ($bestv): $bestargs"
# main (f7ea1ef: pieces, eager unmapping, per-piece submission) on the same machine
BIN=$P/before
run1 main-f0.10 --fraction 0.10 --miss-cost
BIN=
for f in 0.25 0.50; do run1 $best-f$f $bestargs --fraction $f; done
zreset
save

# The moonshot: the whole model (59 GiB) on a 64G zram (lz4: gives up on incompressible
# pages fastest; they are stored as they are), 8 GiB budget, the fitted 36-layer trace.
grep -qw lz4 /sys/block/zram0/comp_algorithm && echo lz4 >/sys/block/zram0/comp_algorithm
echo 64G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mount /dev/zram0 $Z || { log "zram 64G failed"; save; exit 0; }
echo 1073741824 >/proc/sys/vm/dirty_background_bytes
echo 4294967296 >/proc/sys/vm/dirty_bytes
log "mkmodel (whole model)"
timeout 100 $B/p2pio-mkmodel -q -p gpt-oss-120b -s 11 $Z/oss.gguf; rc=$?
sync
echo 1 >/proc/sys/vm/drop_caches
log "mkmodel rc=$rc: $(ls -l $Z/oss.gguf 2>&1)"
runm() { # tag seconds args...
	tag=$1; t=$2; shift 2
	log "moon $tag (timeout $t s): $*"
	timeout $t $B/p2pio-moe run $Z/oss.gguf --trace $P/oss36-fit.trace "$@" >$R/moon-$tag.txt 2>&1
	echo "rc=$?" >>$R/moon-$tag.txt
	grep -E '^(budget|decode|hits|missed|stall|memory|ceiling|bound|verify)' $R/moon-$tag.txt | tee -a $R/log.txt
	save
}
if [ $rc = 0 ]; then
	t=$(left); [ $t -gt 110 ] && t=110
	runm 8G $((t - 5)) --budget 8G $bestargs
	t=$(left)
	[ $t -gt 35 ] && runm f0.50 $((t - 8)) --fraction 0.50 -n 120 $bestargs
fi
zreset
log done
save
