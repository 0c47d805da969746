#!/bin/sh
# Cold whole-model loads, the previous tree's p2pio-load and this tree's, alternating.
Z=/mnt/p2pio-zram
umount $Z 2>/dev/null; echo 1 >/sys/block/zram0/reset
echo 8G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z && mount /dev/zram0 $Z || exit 1
build/bin/p2pio-mkmodel -q -p llama-8b-q4k -s 5 $Z/m.gguf || exit 1
for i in 1 2 3 4; do
	for b in .carry/prev build/bin; do
		echo 3 >/proc/sys/vm/drop_caches
		printf '%s %s ' $i $b
		timeout 30 $b/p2pio-load --cold --json -q --no-verify $Z/m.gguf | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["gbps"], d.get("path"), d.get("ceiling_gbps"))'
	done
done
umount $Z; echo 1 >/sys/block/zram0/reset
