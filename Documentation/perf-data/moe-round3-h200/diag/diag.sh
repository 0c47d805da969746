#!/bin/sh
# Why did 1-layer runs at 50 % hang in call 3? Same model and trace; stacks of a hung run.
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
R=/tmp/diag; rm -rf $R; mkdir -p $R
Z=/mnt/p2pio-zram
umount $Z 2>/dev/null; [ -e /sys/block/zram0 ] || modprobe zram num_devices=1; echo 1 >/sys/block/zram0/reset
echo 8G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z && mount /dev/zram0 $Z &&
	timeout 25 build/bin/p2pio-mkmodel -q -p gpt-oss-120b --layers 1 -s 11 $Z/oss.gguf
command -v gdb >$R/gdb.txt 2>&1
one() { # tag bindir libdir args...
	tag=$1; b=$2; l=$3; shift 3
	LD_LIBRARY_PATH=$l:$PWD/.carry/lib timeout 14 $b/p2pio-moe run $Z/oss.gguf --trace .carry/moe/oss1.trace -n 60 "$@" >$R/$tag.txt 2>&1 &
	sleep 1
	i=0
	while [ $i -lt 9 ] && pgrep -f "p2pio-moe run" >/dev/null; do sleep 1; i=$((i + 1)); done
	pid=$(pgrep -f "p2pio-moe run" | head -1)
	if [ -n "$pid" ]; then
		for t in /proc/$pid/task/*; do echo "== $t $(cat $t/comm) wchan=$(cat $t/wchan)"; cat $t/stack; done >$R/$tag.stacks 2>&1
		command -v gdb >/dev/null && timeout 10 gdb -batch -p $pid -ex 'thread apply all bt' >$R/$tag.gdb 2>&1
	fi
	wait
	echo "$tag: $(grep -E '^(bound|decode)' $R/$tag.txt | tr '\n' ' ') stacks=$([ -s $R/$tag.stacks ] && echo yes)" | tee -a $R/log.txt
}
one def build/bin build/lib --fraction 0.50
one rp7ceil build/bin build/lib --fraction 0.50 --read-pieces 7 --ceiling 27
one spin .carry/spin/bin .carry/spin/lib --fraction 0.50
one c2 .carry/c2/bin .carry/c2/lib --fraction 0.50
umount $Z; echo 1 >/sys/block/zram0/reset
tar czf $OUT/diag.tgz -C /tmp diag
