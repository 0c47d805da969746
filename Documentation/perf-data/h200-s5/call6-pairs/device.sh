#!/bin/bash
# Session 5, call 6: issue 11's cold-load target by its own definition, pair by pair: the
# storage sweep (best of its shapes, each read steadily for 0.3 s) right before each cold
# whole load (a new process each time), six pairs.
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
B=$PWD/build/bin
R=$OUT/s15; mkdir -p $R
Z=/mnt/p2pio-zram
umount $Z 2>/dev/null; [ -e /sys/block/zram0 ] || modprobe zram num_devices=1; echo 1 >/sys/block/zram0/reset
echo 8G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z && mount /dev/zram0 $Z &&
	timeout 60 $B/p2pio-mkmodel -q -p llama-8b-q4k -s 7 $Z/m.gguf
M=$Z/m.gguf
T0=$(date +%s)
for i in 1 2 3 4 5 6; do
	timeout 40 $B/p2pio-bench --device host --modes storage --cache cold --duration 1 --steady 0.3 --json $M >$R/sweep-$i.json 2>>$R/err.txt
	timeout 20 $B/p2pio-load --json -q --cold $M >$R/load-$i.json 2>>$R/err.txt
	python3 -c "
import json
b=json.load(open('$R/sweep-$i.json'))['best'][0]; l=json.load(open('$R/load-$i.json'))
c=b['gibps']*1.073741824
print('pair $i: ceiling %.2f GB/s (%s %dK %dx%d), load %.2f GB/s (CPU %.3f s/GB, mismatches %d): %.3f' % (c, b['mode'], b['io_size']>>10, b['threads'], b['depth'], l['gbps'], l['cpu_seconds']/l['bytes']*1e9, l['mismatches'], l['gbps']/c))" | tee -a $R/summary.txt
	[ $(( $(date +%s) - T0 )) -gt 300 ] && break
done
umount $Z; echo 1 >/sys/block/zram0/reset
head -3 $R/err.txt
