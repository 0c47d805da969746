#!/bin/bash
# The engine measurements of Documentation/performance.md, on a GPU machine, as root, in
# one go that finishes inside 180 s (each step has a timeout; a step that would run past
# the limit is skipped and logged): p2pio-bench over a zram block device (the stand-in for
# a fast NVMe array) and over the disk the current directory lies on, cold and warm,
# every mode side by side, then a few BOUNCE/POSIX variants on zram.
#
#   scripts/perf-engine.sh BINDIR OUTDIR [SIZE_ZRAM] [SIZE_DISK]
#
# BINDIR holds p2pio-bench and p2pio-check (and any .so files they need); OUTDIR gets
# the JSON, the variants' result lines, the log and the machine's description.
set -u
BIN=$(cd "$1" && pwd)
OUT=$2
ZSIZE=${3:-8G}
DSIZE=${4:-4G}
mkdir -p "$OUT"
T0=$(date +%s)
LIMIT=${LIMIT:-170}
. "$(dirname "$0")/perf-lib.sh"
B="$BIN/p2pio-bench"
MODES=storage,link,bounce,posix,auto,naive,mmap,hostreg,cufile
COMMON="--size 16M --depth 16 --threads 16 --duration 4"

udev_record() {
	local dev maj min fstype
	dev=$(stat -c '%d' "$1"); maj=$((dev >> 8)); min=$((dev & 255))
	fstype=$(stat -f -c '%T' "$1"); [ "$fstype" = "ext2/ext3" ] && fstype=ext4
	mkdir -p /run/udev/data
	[ -e "/run/udev/data/b$maj:$min" ] ||
		printf 'E:ID_FS_USAGE=filesystem\nE:ID_FS_TYPE=%s\n' "$fstype" >"/run/udev/data/b$maj:$min"
	log "udev record b$maj:$min ($fstype)"
}

{ uname -a; nproc; free -g | head -2
  timeout 10 nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv
  lsblk -o NAME,MAJ:MIN,SIZE,TYPE,MOUNTPOINT | head -20; df -h . ; } >"$OUT/machine.txt" 2>&1
log start

# zram: reset if a previous run left it set up and unmounted.
[ -e /sys/block/zram0 ] || modprobe zram num_devices=1 2>/dev/null
Z=zram0
if [ "$(cat /sys/block/zram0/disksize 2>/dev/null)" != 0 ] && ! grep -q '^/dev/zram0 ' /proc/mounts; then
	echo 1 >/sys/block/zram0/reset
fi
ZF=
if [ "$(cat /sys/block/zram0/disksize 2>/dev/null)" = 0 ] && echo 24G >/sys/block/$Z/disksize &&
   mkfs.ext4 -q -F /dev/$Z && mkdir -p /mnt/p2pio-zram && mount /dev/$Z /mnt/p2pio-zram; then
	ZF=/mnt/p2pio-zram/bench.dat
fi
log "zram ready: ${ZF:-none}"
DF=$PWD/bench-disk.dat
# Both files at once, 16 writers each (zram compresses in the writer).
[ -n "$ZF" ] && cap 60 "$B" --generate "$ZSIZE" --threads 16 --modes direct --size 16M --depth 16 --cache warm --bytes 16M "$ZF" >"$OUT/gen-zram.txt" 2>&1 &
P1=$!
cap 60 "$B" --generate "$DSIZE" --threads 16 --modes direct --size 16M --depth 16 --cache warm --bytes 16M "$DF" >"$OUT/gen-disk.txt" 2>&1 &
P2=$!
wait $P1 $P2
log "files written"; ls -la "$DF" ${ZF:+"$ZF"} >>"$OUT/log.txt" 2>&1

if [ -n "$ZF" ]; then
	udev_record "$ZF"
	cap 8 "$BIN/p2pio-check" "$ZF" >"$OUT/check-zram.txt" 2>&1
	log "zram main"
	cap 60 "$B" --modes $MODES $COMMON --cache both --json "$ZF" >"$OUT/bench-zram.json" 2>"$OUT/bench-zram.err"
fi
udev_record "$DF"
cap 8 "$BIN/p2pio-check" "$DF" >"$OUT/check-disk.txt" 2>&1
log "disk main"
cap 60 "$B" --modes $MODES $COMMON --cache both --json "$DF" >"$OUT/bench-disk.json" 2>"$OUT/bench-disk.err"
if [ -n "$ZF" ]; then
	log "zram variants"
	# BOUNCE through io_uring workers, and with 8 submitters, cold; the old bench settings
	# (16 MiB chunks, one per request) against the defaults, warm.
	cap 12 "$B" --modes direct,bounce $COMMON --cache cold --bounce-async "$ZF" >"$OUT/zram-async.txt" 2>&1
	cap 12 "$B" --modes bounce,auto $COMMON --cache cold --lib-threads 8 "$ZF" >"$OUT/zram-t8.txt" 2>&1
	cap 12 "$B" --modes link,posix $COMMON --cache warm --chunk 16M --lib-threads 16 --lib-depth 16 "$ZF" >"$OUT/zram-old-warm.txt" 2>&1
	cap 14 "$B" --modes direct,bounce --size 1M,4M --depth 16 --threads 16 --duration 2 --cache cold "$ZF" >"$OUT/zram-sweep.txt" 2>&1
fi
log "cleanup"
rm -f "$DF"
if [ -n "$ZF" ]; then umount /mnt/p2pio-zram && echo 1 >/sys/block/$Z/reset; fi
log done
for f in "$OUT"/bench-*.json; do
	python3 - "$f" <<'PY' 2>&1 | head -40
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print(sys.argv[1], "unreadable:", e); sys.exit()
print("##", sys.argv[1])
for r in d["results"]:
    print("%-8s %s %7.3f cpu %.3f %s %s" % (r["mode"], r["cache"], r["gibps"], r["cpu_s_per_gib"], r.get("path", ""), "" if r["ok"] else r["note"][:60]))
for x in d["ratios"]:
    print("ratio", json.dumps(x))
PY
done
grep -hE "^result|^ratio" "$OUT"/zram-*.txt | cut -c1-200
