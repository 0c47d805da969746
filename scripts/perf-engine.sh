#!/bin/sh
# The engine measurements of Documentation/performance.md, on a GPU machine, as root:
# p2pio-bench over the machine's own disk and over a zram block device (the stand-in for
# a fast NVMe array), cold and warm, every mode side by side in one run per device.
#
#   scripts/perf-engine.sh BINDIR OUTDIR [SIZE_DISK] [SIZE_ZRAM]
#
# BINDIR holds p2pio-bench and p2pio-check (and any .so files they need); OUTDIR gets
# the result lines, JSON, SVG plots and the machine's description.
set -u
BIN=$1
OUT=$2
SIZE_DISK=${3:-4G}
SIZE_ZRAM=${4:-8G}
MODES=direct,buffered,link,bounce,posix,auto,naive,mmap,hostreg,cufile
COMMON="--size 16M --depth 16 --threads 16 --cache both"
export LD_LIBRARY_PATH="$BIN:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-}"
mkdir -p "$OUT"

{
	echo "## machine"
	uname -a
	nproc
	free -g | head -2
	nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current \
		--format=csv 2>&1
	lsblk -o NAME,MAJ:MIN,SIZE,TYPE,MOUNTPOINT 2>&1 | head -20
	ls /usr/local/cuda/lib64/libcufile.so* 2>&1
} >"$OUT/machine.txt" 2>&1

# cuFile (compat mode) registers a file only when udev knows its block device's file
# system; containers have no udev, so write the record udev would.
udev_record() {
	dev=$(stat -c '%d' "$1")
	maj=$((dev >> 8))
	min=$((dev & 255))
	fstype=$(stat -f -c '%T' "$1")
	[ "$fstype" = "ext2/ext3" ] && fstype=ext4
	mkdir -p /run/udev/data
	if [ ! -e "/run/udev/data/b$maj:$min" ]; then
		printf 'E:ID_FS_USAGE=filesystem\nE:ID_FS_TYPE=%s\n' "$fstype" >"/run/udev/data/b$maj:$min"
	fi
	echo "udev record b$maj:$min ($fstype)"
}

bench() { # name file
	name=$1
	file=$2
	udev_record "$file" >>"$OUT/machine.txt"
	"$BIN/p2pio-check" "$file" >"$OUT/check-$name.txt" 2>&1
	"$BIN/p2pio-bench" --modes $MODES $COMMON --json "$file" >"$OUT/bench-$name.json" 2>"$OUT/bench-$name.err"
	python3 - "$OUT/bench-$name.json" >"$OUT/bench-$name.txt" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["results"]:
    if r["ok"]:
        print("result mode=%-8s cache=%s target=%s gibps=%7.3f avg_us=%9.1f p99_us=%9.1f cpu_s_per_gib=%.3f path=%s %s" % (
            r["mode"], r["cache"], r["target"], r["gibps"], r["avg_us"], r["p99_us"], r["cpu_s_per_gib"], r["path"], r["note"]))
    else:
        print("skipped mode=%-8s cache=%s: %s" % (r["mode"], r["cache"], r["note"]))
for x in d["ratios"]:
    print("ratio", json.dumps(x))
EOF
}

# 1. The disk this checkout lies on (virtio on the H100 machine).
"$BIN/p2pio-bench" --generate "$SIZE_DISK" --modes direct --size 16M --depth 16 \
	--cache warm --bytes 16M ./bench-disk.dat >/dev/null 2>&1
bench disk ./bench-disk.dat
rm -f ./bench-disk.dat

# 2. zram: about 24 GB/s with O_DIRECT at depth 16, where the pipeline's own cost shows.
# Use zram0 only when nothing uses it (disksize 0); otherwise ask zram-control for another.
[ -e /sys/block/zram0 ] || modprobe zram num_devices=1 2>/dev/null
Z=
if [ -e /sys/block/zram0 ] && [ "$(cat /sys/block/zram0/disksize)" = 0 ]; then
	Z=zram0
elif [ -e /sys/class/zram-control/hot_add ]; then
	Z=zram$(cat /sys/class/zram-control/hot_add)
fi
if [ -n "$Z" ] && [ -e /sys/block/$Z ]; then
	echo "zram device $Z" >>"$OUT/machine.txt"
	echo 24G >/sys/block/$Z/disksize &&
		mkfs.ext4 -q -F /dev/$Z &&
		mkdir -p /mnt/p2pio-zram &&
		mount /dev/$Z /mnt/p2pio-zram &&
		"$BIN/p2pio-bench" --generate "$SIZE_ZRAM" --modes direct --size 16M --depth 16 \
			--cache warm --bytes 16M /mnt/p2pio-zram/bench.dat >/dev/null 2>&1 &&
		bench zram /mnt/p2pio-zram/bench.dat &&
		"$BIN/p2pio-bench" --modes direct,bounce --size 1M,4M,16M --depth 16 --threads 16 \
			--cache cold --plot "$OUT/zram-sweep.svg" /mnt/p2pio-zram/bench.dat \
			>"$OUT/zram-sweep.txt" 2>&1
	umount /mnt/p2pio-zram
	echo 1 >/sys/block/$Z/reset
else
	echo "no zram device on this machine" >"$OUT/zram-missing.txt"
fi
ls /run/udev/data/ >>"$OUT/machine.txt" 2>&1
