#!/bin/sh
# One GPU call for the expert cache (Documentation/moe.md, third round), as root on the
# GPU machine, from the repository root with build/ carried:
#
#   LD_LIBRARY_PATH=... sh scripts/perf-moe-device.sh build/bin DIR OUT
#
# DIR holds oss1.trace (one layer) and oss36-fit.trace (the fitted 36-layer trace; the
# commands in moe.md). In order, each step with a time limit, inside LIMIT seconds
# (default 480): the GPU tests (GPUTESTS=1); on a 1-layer gpt-oss-120b-shaped model on
# zram, decode at 10 % (with the miss cost), 25 and 50 % resident for each engine setting
# of VARIANTS ("tag:opt,opt ..."; "def:" the defaults, run REPEAT times, default 2;
# "tag@DIR:..." runs DIR's p2pio-moe, a change beside the tree's); the
# whole model (36 layers, 63 GB on a 64G zram) for each "tag|options" line of MOONS
# (default: 8 GiB twice, 25 and 50 %), and in 8 GiB with the best variant's options if
# that is not the defaults (the tree's p2pio-moe; none where MOONS is empty; ROUNDS=N runs
# the list N times, alternating its order; LAYER1=0 leaves
# out the 1-layer decodes); the 1-layer model on the virtio disk at 10, 25 and 50 % (VIRTIO=1; the
# moonshot leaves it VIRTIO_S seconds; TOKENSV tokens each, default 400). Every run
# measures its own ceiling (the storage and link sweeps). Results: OUT/moe.tgz.
#
# Every decode is in step with its stream (p2pio-moe run's default since the ninth round:
# each layer required once the layers before are done, as an engine must); a variant
# "ra:--run-ahead" decodes as every round before did, tokens ahead of the stream.
#
# The 1-layer decodes run TOKENS1 tokens of oss1.trace (default 1000; a shorter trace
# decodes what it has): with 60 tokens a decode lasted 30-80 ms, so a cold file's first
# reads weighed in it while the ceiling it is divided by reads steadily for 0.3 s per
# shape. Make oss1.trace with -n 1080 (moe.md, "Fifth round").
T0=$(date +%s)
B=$1
D=$2
O=$3
R=/tmp/moe
Z=/mnt/p2pio-zram
V=/var/tmp/p2pio-virtio
LIMIT=${LIMIT:-480}
rm -rf $R; mkdir -p $R
left() { echo $((LIMIT - ($(date +%s) - T0))); }
log() { echo "== $(date +%T) +$(($(date +%s) - T0))s $*" | tee -a "$R/log.txt"; }
save() { tar czf $O/moe.tgz -C /tmp moe; }
# The miss-cost table of a run's report: its heading and every indented line after it (the
# rows, their notes, the floor's shape lines), however many there are.
misscost() { awk '/^miss cost/ { p = 1; print; next } p && /^  / { print; next } { p = 0 }' "$1"; }
zreset() { umount $Z 2>/dev/null; [ -e /sys/block/zram0/reset ] && echo 1 >/sys/block/zram0/reset; }
[ -e /sys/block/zram0 ] || modprobe zram num_devices=1
zreset
{ date; nvidia-smi -L; nproc; free -g; uname -r; df -h /var/tmp; } >$R/env.txt 2>&1

if [ "${GPUTESTS:-0}" = 1 ]; then
	timeout 150 sh tests/gpu/run.sh >$R/gpu-tests.txt 2>&1; echo "rc=$?" >>$R/gpu-tests.txt
	log "gpu tests: $(tail -4 $R/gpu-tests.txt | tr '\n' ' ')"
	save
fi

run1() { # model tag args...
	m=$1; tag=$2; shift 2
	timeout ${TRUN1:-25} ${VBIN:-$B}/p2pio-moe run $m --trace $D/oss1.trace -n ${TOKENS1:-1000} "$@" >$R/run1-$tag.txt 2>&1
	echo "rc=$?" >>$R/run1-$tag.txt
	log "$tag: $(grep -E '^bound' $R/run1-$tag.txt)"
	grep -E '^(hits|reads|batches|waits|ceiling)' $R/run1-$tag.txt >>$R/log.txt
	misscost $R/run1-$tag.txt >>$R/log.txt
}
# Each variant ("tag:options", VARIANTS) at 10 % (with the miss cost), 25 and 50 %; the
# defaults (tag def, no options) REPEAT times. Remembers the variant best on average.
best=def; bestargs=; bestv=0
layer1() { # model prefix
	for v in ${VARIANTS:-def:}; do
		vt=${v%%:*}; va=$(echo "${v#*:}" | tr , ' ')
		# "tag@DIR:options": DIR's p2pio-moe (a change measured beside the tree's).
		VBIN=; case $vt in *@*) VBIN=${vt#*@}; vt=${vt%%@*} ;; esac
		n=1; [ "$vt" = def ] && n=${REPEAT:-2}
		k=1; sum=0
		while [ $k -le $n ]; do
			run1 $1 $2$vt-f0.10-$k --fraction 0.10 --miss-cost $va
			run1 $1 $2$vt-f0.25-$k --fraction 0.25 $va
			run1 $1 $2$vt-f0.50-$k --fraction 0.50 $va
			for f in 0.10 0.25 0.50; do
				x=$(sed -n 's/.*achieved \([0-9.]*\) of it.*/\1/p' $R/run1-$2$vt-f$f-$k.txt)
				sum=$(awk "BEGIN{print $sum + ${x:-0} / (3 * $n)}")
			done
			k=$((k + 1))
		done
		log "$2$vt: mean of bound $sum"
		VBIN=
		[ "$(awk "BEGIN{print ($sum > $bestv)}")" = 1 ] && { best=$vt; bestv=$sum; bestargs=$va; }
	done
	log "best: $best ($bestv): $bestargs"
}
# LAYER1=0: no 1-layer decodes (a call for the moons alone).
if [ "${LAYER1:-1}" = 1 ]; then
	echo 8G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z &&
		mount /dev/zram0 $Z && timeout 25 $B/p2pio-mkmodel -q -p gpt-oss-120b --layers 1 -s 11 $Z/oss.gguf
	log "1-layer model on zram: $(ls -l $Z/oss.gguf 2>&1)"
	layer1 $Z/oss.gguf z-
	zreset
	save
fi

moons=${MOONS-"8G|--budget 8G
8G-2|--budget 8G
f0.25|--fraction 0.25 -n 150
f0.50|--fraction 0.50 -n 150"}
[ "$best" != def ] && [ -n "$moons" ] && moons="$moons
8G-$best|--budget 8G $bestargs"
# The whole model (lz4: incompressible pages are stored as they are, and fastest).
rc=1
[ -n "$moons" ] && grep -qw lz4 /sys/block/zram0/comp_algorithm && echo lz4 >/sys/block/zram0/comp_algorithm
if [ -n "$moons" ] && echo 64G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z &&
	mount /dev/zram0 $Z; then
	echo 1073741824 >/proc/sys/vm/dirty_background_bytes
	echo 4294967296 >/proc/sys/vm/dirty_bytes
	log "mkmodel (whole model)"
	timeout 100 $B/p2pio-mkmodel -q -p gpt-oss-120b -s 11 $Z/oss.gguf; rc=$?
	sync
	echo 1 >/proc/sys/vm/drop_caches
	log "mkmodel rc=$rc: $(ls -l $Z/oss.gguf 2>&1)"
fi
runm() { # tag seconds args...
	tag=$1; t=$2; shift 2
	log "moon $tag (timeout $t s): $*"
	timeout $t $B/p2pio-moe run $Z/oss.gguf --trace $D/oss36-fit.trace "$@" >$R/moon-$tag.txt 2>&1
	echo "rc=$?" >>$R/moon-$tag.txt
	grep -E '^(budget|engine|decode|hits|missed|stall|memory|reads|batches|waits|ceiling|bound|verify)' $R/moon-$tag.txt | tee -a $R/log.txt
	save
}
# ROUNDS=N runs the list N times, every other round in reverse (A B, B A, ...), each run
# tagged TAG-rK from the second round on: settings measured side by side through the
# machine's drift (session 15: the same setting read 0.40 first and 0.49 fourth in one
# call). scripts/moe-table.py --pairs A,B pairs them.
if [ $rc = 0 ]; then
	k=1
	while [ $k -le ${ROUNDS:-1} ]; do
		list=$moons
		[ $((k % 2)) = 0 ] && list=$(echo "$moons" | sed '/^$/d' | tac)
		sfx=; [ $k -gt 1 ] && sfx=-r$k
		echo "$list" | while IFS='|' read -r tag args; do
			[ -n "$tag" ] || continue
			t=$(($(left) - ${VIRTIO_S:-0})); [ $t -gt 80 ] && t=80
			[ $t -gt 45 ] && runm $tag$sfx $t $args
		done
		k=$((k + 1))
	done
fi
zreset
save

if [ "${VIRTIO:-0}" = 1 ] && [ $(left) -gt 60 ]; then
	# At ~2 GB/s a 10 % decode of 1000 tokens reads ~40 GB: more than a run's 50 s with
	# the disk's ceiling sweeps (session 6); TOKENSV tokens here (default 400).
	TRUN1=50 TOKENS1=${TOKENSV:-400}
	mkdir -p $V && timeout 40 $B/p2pio-mkmodel -q -p gpt-oss-120b --layers 1 -s 11 $V/oss.gguf && sync
	log "1-layer model on the virtio disk: $(ls -l $V/oss.gguf 2>&1) ($(df -h $V | tail -1))"
	for f in 0.10 0.25 0.50; do run1 $V/oss.gguf v-def-f$f --fraction $f; done
	rm -f $V/oss.gguf
	save
fi

log done
# The runs as one table (scripts/moe-table.py), where the machine has Python.
command -v python3 >/dev/null && python3 scripts/moe-table.py $R >$R/table.md 2>&1
save
