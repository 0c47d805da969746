#!/bin/sh
# One GPU call for the expert cache (Documentation/moe.md, third round), as root on the
# GPU machine, from the repository root with build/ carried:
#
#   LD_LIBRARY_PATH=... sh scripts/perf-moe-device.sh build/bin DIR OUT
#
# DIR holds oss1.trace (one layer) and oss36-fit.trace (the fitted 36-layer trace; the
# commands in moe.md). In order, each with a time limit, inside LIMIT seconds (default
# 480): the GPU tests (tests/gpu/run.sh); on a 1-layer gpt-oss-120b-shaped model on zram,
# the miss cost and decode at 10 % for engine settings VARIANTS, then 25 and 50 % for the
# previous best setting and the best of this run; the whole model (36 layers, 63 GB on a
# 64G zram) in an 8 GiB budget with both. Results: OUT/moe.tgz.
T0=$(date +%s)
B=$1
D=$2
O=$3
R=/tmp/moe
Z=/mnt/p2pio-zram
LIMIT=${LIMIT:-480}
rm -rf $R; mkdir -p $R
left() { echo $((LIMIT - ($(date +%s) - T0))); }
log() { echo "== $(date +%T) +$(($(date +%s) - T0))s $*" | tee -a "$R/log.txt"; }
save() { tar czf $O/moe.tgz -C /tmp moe; }
zreset() { umount $Z 2>/dev/null; [ -e /sys/block/zram0/reset ] && echo 1 >/sys/block/zram0/reset; }
[ -e /sys/block/zram0 ] || modprobe zram num_devices=1
zreset
{ date; nvidia-smi -L; nproc; free -g; uname -r; } >$R/env.txt 2>&1

timeout 150 sh tests/gpu/run.sh >$R/gpu-tests.txt 2>&1; echo "rc=$?" >>$R/gpu-tests.txt
log "gpu tests: $(tail -4 $R/gpu-tests.txt | tr '\n' ' ')"
save

echo 8G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z &&
	mount /dev/zram0 $Z && timeout 25 $B/p2pio-mkmodel -q -p gpt-oss-120b --layers 1 -s 11 $Z/oss.gguf
log "1-layer model: $(ls -l $Z/oss.gguf 2>&1)"
run1() { # tag args...
	tag=$1; shift
	timeout 15 $B/p2pio-moe run $Z/oss.gguf --trace $D/oss1.trace -n 60 "$@" >$R/run1-$tag.txt 2>&1
	echo "rc=$?" >>$R/run1-$tag.txt
	log "$tag: $(grep -E '^bound' $R/run1-$tag.txt)"
	grep -E '^reads' $R/run1-$tag.txt >>$R/log.txt
	grep -A7 '^miss cost' $R/run1-$tag.txt >>$R/log.txt
}
best=; bestv=0; bestargs=
try() { # tag args...: 10 % with the miss cost; remember the best achieved/bound
	ttag=$1; shift
	run1 $ttag-f0.10 "$@" --fraction 0.10 --miss-cost
	v=$(sed -n 's/.*achieved \([0-9.]*\) of it.*/\1/p' $R/run1-$ttag-f0.10.txt)
	[ -n "$v" ] && [ "$(awk "BEGIN{print ($v > $bestv)}")" = 1 ] && { best=$ttag; bestv=$v; bestargs="$*"; }
}
PREV="--threads 14 --poll --read-piece 1M"
try prev $PREV
try n14 --threads 14 --poll --read-pieces 14
try n7 --threads 14 --poll --read-pieces 7
try n28 --threads 14 --poll --read-pieces 28
try p2M --threads 14 --poll --read-piece 2M
try t15n15 --threads 15 --poll --read-pieces 15
log "best at 10 %: $best ($bestv): $bestargs"
for f in 0.25 0.50; do
	run1 prev-f$f $PREV --fraction $f
	[ "$best" != prev ] && run1 $best-f$f $bestargs --fraction $f
	run1 prevpf-f$f $PREV --fraction $f --prefetch-prev
done
zreset
save

# The whole model (lz4: incompressible pages are stored as they are, and fastest).
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
	timeout $t $B/p2pio-moe run $Z/oss.gguf --trace $D/oss36-fit.trace "$@" >$R/moon-$tag.txt 2>&1
	echo "rc=$?" >>$R/moon-$tag.txt
	grep -E '^(budget|decode|hits|missed|stall|memory|reads|ceiling|bound|verify)' $R/moon-$tag.txt | tee -a $R/log.txt
	save
}
if [ $rc = 0 ]; then
	t=$(left); [ $t -gt 60 ] && t=60
	[ $t -gt 20 ] && runm 8G-$best $t --budget 8G $bestargs
	t=$(left); [ $t -gt 60 ] && t=60
	[ $t -gt 20 ] && [ "$best" != prev ] && runm 8G-prev $t --budget 8G $PREV
	t=$(left); [ $t -gt 60 ] && t=60
	[ $t -gt 20 ] && runm 8G-$best-pf $t --budget 8G $bestargs --prefetch-prev
fi
zreset
log done
save
