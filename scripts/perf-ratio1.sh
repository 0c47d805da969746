#!/bin/sh
# Streaming at the knife edge: per-layer compute exactly the layer's transfer time at the
# ceiling (--compute-ratio 1.0), prefetch 1 and 2, cold and warm, on zram (the 8B model and
# the 20-layer 70B-shaped one) and on the disk this checkout lies on (the 8B, cold). A
# companion to scripts/perf-model.sh, which streams at ratio 1.2; as root on a GPU machine.
#
#   scripts/perf-ratio1.sh BINDIR OUTDIR
#
# BINDIR holds p2pio-load and p2pio-mkmodel; OUTDIR gets results.jsonl (one JSON object per
# run, with a "tag") and the per-layer report of the zram 8B cold run at prefetch 1.
set -u
B=$1
O=$2
mkdir -p "$O"
run() { # tag model args...
	tag=$1; m=$2; shift 2
	timeout 120 "$B/p2pio-load" --stream --json -q --passes 4 "$@" "$m" 2>>"$O/err.txt" |
		python3 -c 'import json, sys
t = sys.argv[1]
for l in sys.stdin:
    d = json.loads(l); d["tag"] = t; print(json.dumps(d))
    print("%-28s %s slots %d ceil %.2f of_bound %.3f stall %.2f%%" % (t, d["path"],
          d["slots"], d["ceiling_gbps"], d["of_bound"], 100 * d["stall_fraction"]),
          file=sys.stderr)' "$tag $*" >>"$O/results.jsonl"
}
[ -e /sys/block/zram0 ] || modprobe zram num_devices=1 || exit 1
[ "$(cat /sys/block/zram0/disksize)" = 0 ] || { echo "zram0 is in use" >&2; exit 1; }
echo 40G >/sys/block/zram0/disksize && mkfs.ext4 -q -F /dev/zram0 && mkdir -p /mnt/p2pio-zram &&
	mount /dev/zram0 /mnt/p2pio-zram || exit 1
Z=/mnt/p2pio-zram
"$B/p2pio-mkmodel" -q -p llama-8b-q4k -s 7 $Z/m8.gguf
"$B/p2pio-mkmodel" -q -p llama-70b-q4k --layers 20 -s 8 $Z/m70.gguf
for m in $Z/m8.gguf $Z/m70.gguf; do
	for pf in 1 2; do
		run "zram $(basename $m) cold pf$pf" $m --cold --compute-ratio 1.0 --prefetch $pf
		cat $m >/dev/null
		run "zram $(basename $m) warm pf$pf" $m --compute-ratio 1.0 --prefetch $pf
	done
done
"$B/p2pio-load" --stream -q --passes 4 --compute-ratio 1.0 --cold --per-layer $Z/m8.gguf \
	>"$O/zram-m8-cold-r1-per-layer.txt" 2>&1
umount $Z
echo 1 >/sys/block/zram0/reset
D=$PWD/perf-ratio1-tmp
mkdir -p "$D"
"$B/p2pio-mkmodel" -q -p llama-8b-q4k -s 7 "$D/m8.gguf"
for pf in 1 2; do
	run "vda m8.gguf cold pf$pf" "$D/m8.gguf" --cold --compute-ratio 1.0 --prefetch $pf
done
rm -rf "$D"
