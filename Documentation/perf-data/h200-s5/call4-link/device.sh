#!/bin/bash
# Session 5, call 4: does moving bytes to the GPU slow zram's reads? O_DIRECT reads into
# host memory at the storage ceiling's best shape (64 threads x 1 MiB) and at BOUNCE's
# (16 x 4 MiB), alone and while PyTorch copies pinned host memory to the GPU, at full rate
# and paced to 25 GB/s (about what a cold load moves).
export LD_LIBRARY_PATH=$PWD/.carry/lib:$PWD/build/lib
B=$PWD/build/bin
R=$OUT/s13; mkdir -p $R
Z=/mnt/p2pio-zram
umount $Z 2>/dev/null; [ -e /sys/block/zram0 ] || modprobe zram num_devices=1; echo 1 >/sys/block/zram0/reset
echo 8G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p $Z && mount /dev/zram0 $Z &&
	timeout 60 $B/p2pio-mkmodel -q -p llama-8b-q4k -s 7 $Z/m.gguf
M=$Z/m.gguf
cat >$R/link.py <<'PY'
import sys, time, torch
dur, rate = float(sys.argv[1]), float(sys.argv[2])   # rate GB/s, 0: as fast as it goes
n = 256 << 20
h = torch.empty(n, dtype=torch.uint8).pin_memory(); d = torch.empty(n, dtype=torch.uint8, device="cuda")
s = torch.cuda.Stream(); d.copy_(h); torch.cuda.synchronize()
open(sys.argv[3], "w").write("ready\n")
t0 = time.time(); k = 0
while time.time() - t0 < dur:
    with torch.cuda.stream(s):
        d.copy_(h, non_blocking=True)
    s.synchronize(); k += 1
    if rate > 0:
        ahead = k * n / (rate * 1e9) - (time.time() - t0)
        if ahead > 0: time.sleep(ahead)
el = time.time() - t0
print("link %.2f GB/s over %.2f s (paced to %s)" % (k * n / el / 1e9, el, rate or "none"))
PY
direct() { # tag size depth threads
	timeout 20 $B/p2pio-bench --device host --modes direct --fixed --size $2 --depth $3 --threads $4 \
		--cache cold --steady 2 --duration 2 --json $M >$R/d-$1.json 2>>$R/err.txt
	python3 -c "import json,sys; d=json.load(open('$R/d-$1.json')); r=[x for x in d['results'] if x.get('ok')][0]; print('$1', round(r['gibps']*1.073741824,2), 'GB/s', r.get('cpu_s_per_gib'))" | tee -a $R/summary.txt
}
withlink() { # tag rate
	rm -f $R/ready; python3 $R/link.py 9 $2 $R/ready >>$R/summary.txt 2>>$R/err.txt & lp=$!
	for i in $(seq 100); do [ -e $R/ready ] && break; sleep 0.1; done
	sleep 0.5
	direct $1-64x1M 1M 64 64
	direct $1-16x4M 4M 16 16
	wait $lp
}
direct alone-64x1M 1M 64 64
direct alone-16x4M 4M 16 16
withlink full 0
withlink paced25 25
direct alone2-64x1M 1M 64 64
direct alone2-16x4M 4M 16 16
umount $Z; echo 1 >/sys/block/zram0/reset
cat $R/summary.txt; head -5 $R/err.txt
