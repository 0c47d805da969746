#!/bin/sh
# The model-loading measurements of Documentation/performance.md, on a GPU machine, as root:
# whole-model load (p2pio, mmap + cuMemcpyHtoD per tensor, PyTorch/safetensors; cold and
# warm) and layer streaming with a quarter budget (transfer-bound, and with per-layer
# compute 1.2x the transfer time), on the machine's own disk and on zram, side by side,
# with the storage and link ceilings from p2pio-bench in the same run.
#
#   scripts/perf-model.sh BINDIR OUTDIR
#
# Environment: DISK=0 skips the disk (DISK_STREAM_ONLY=1 keeps only its streaming runs;
# DISK_MODELS="8b" measures only the 8B model there, default "8b 70x20"); ZRAM=0 skips
# zram; POSIX=1 also loads with the POSIX path forced (--path posix --threads 16), next to
# AUTO; REPEAT=N runs each streaming measurement N times (each with its own ceiling);
# GPU_TEST=0 skips the GPU test program (test-model-gpu) at the start. Compute-bound
# streaming also runs with --prefetch 2, and the cold compute-bound case once more with
# --per-layer (text, in OUTDIR).
#
# BINDIR holds p2pio-load, p2pio-mkmodel, p2pio-bench, test-model-gpu (static builds);
# OUTDIR gets one JSON line per run in results.jsonl, and the raw outputs.
set -u
BIN=$1
OUT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
CONV="python3 $HERE/gguf-to-safetensors.py"
T=timeout
P8=${P8:--p llama-8b-q4k}
PBIG=${PBIG:--p llama-70b-q4k --layers 20}
DISK=${DISK:-1}
DISK_STREAM_ONLY=${DISK_STREAM_ONLY:-0}
DISK_MODELS=${DISK_MODELS:-8b 70x20}
ZRAM=${ZRAM:-1}
POSIX=${POSIX:-0}
REPEAT=${REPEAT:-1}
mkdir -p "$OUT"
R="$OUT/results.jsonl"
: >"$R"

log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }

# tag: prefix each JSON line with where it ran
tag() { # device model
	python3 -c '
import json, sys
dev, model = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        d = json.loads(line); d["device"] = dev; d["model_name"] = model
        print(json.dumps(d))' "$1" "$2" >>"$R"
}

warm() { cat "$1" >/dev/null; }

whole() { # device model gguf safetensors
	for cache in cold warm; do
		flag=; [ $cache = cold ] && flag=--cold
		[ $cache = warm ] && warm "$3"
		$T 120 "$BIN/p2pio-load" --json -q $flag "$3" 2>>"$OUT/err.txt" | tag "$1" "$2"
		if [ "$POSIX" = 1 ]; then
			[ $cache = warm ] && warm "$3"
			$T 120 "$BIN/p2pio-load" --json -q --path posix --threads 16 $flag "$3" \
				2>>"$OUT/err.txt" | tag "$1" "$2"
		fi
		[ $cache = warm ] && warm "$3"
		$T 120 "$BIN/p2pio-load" --json -q --mmap $flag "$3" 2>>"$OUT/err.txt" | tag "$1" "$2"
		[ $cache = warm ] && warm "$4"
		$T 120 $CONV --load --json $flag "$4" 2>>"$OUT/err.txt" | tag "$1" "$2"
	done
}

ceilings() { # device model gguf
	$T 120 "$BIN/p2pio-bench" --modes storage,link --duration 2 \
		--cache cold --json "$3" >"$OUT/bench-$1-$2.json" 2>>"$OUT/err.txt"
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["results"]:
    print(json.dumps({"mode": "bench-" + r["mode"], "cache": r["cache"], "ok": r["ok"],
                      "gibps": r.get("gibps"), "gbps": (r.get("gibps") or 0) * 1.073741824,
                      "note": r.get("note")}))' "$OUT/bench-$1-$2.json" 2>>"$OUT/err.txt" | tag "$1" "$2"
}

stream() { # device model gguf
	for cache in cold warm; do
		flag=; [ $cache = cold ] && flag=--cold
		i=0
		while [ $i -lt "$REPEAT" ]; do
			i=$((i + 1))
			[ $cache = warm ] && warm "$3"
			$T 150 "$BIN/p2pio-load" --stream --json -q --passes 4 $flag "$3" \
				2>>"$OUT/err.txt" | tag "$1" "$2"
			[ $cache = warm ] && warm "$3"
			$T 150 "$BIN/p2pio-load" --stream --json -q --passes 4 --compute-ratio 1.2 \
				$flag "$3" 2>>"$OUT/err.txt" | tag "$1" "$2"
		done
		[ $cache = warm ] && warm "$3"
		$T 150 "$BIN/p2pio-load" --stream --json -q --passes 4 --compute-ratio 1.2 \
			--prefetch 2 $flag "$3" 2>>"$OUT/err.txt" | tag "$1" "$2"
	done
	$T 150 "$BIN/p2pio-load" --stream -q --passes 4 --compute-ratio 1.2 --cold --per-layer \
		"$3" >"$OUT/stream-$1-$2-cold-per-layer.txt" 2>&1
}

log machine
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$OUT/machine.txt" 2>&1
free -g >>"$OUT/machine.txt"
python3 -c 'import torch, safetensors; print("torch", torch.__version__, "safetensors", safetensors.__version__)' \
	>>"$OUT/machine.txt" 2>&1

if [ "${GPU_TEST:-1}" = 1 ]; then
	log gpu test
	TMPDIR=$PWD $T 120 "$BIN/test-model-gpu" >"$OUT/test-model-gpu.tap" 2>&1
fi

# 1. The disk this checkout lies on (virtio on the H100 machine): each of DISK_MODELS.
D=$PWD/perf-model-tmp
on_disk() { # name preset... (the seed follows the name: the same bytes as on zram)
	name=$1; shift
	seed=7; [ "$name" = 70x20 ] && seed=8
	log disk: model $name
	$T 150 "$BIN/p2pio-mkmodel" -q "$@" -s $seed "$D/m$name.gguf"
	if [ "$DISK_STREAM_ONLY" = 0 ]; then
		$T 150 $CONV "$D/m$name.gguf" "$D/m$name.safetensors" 2>>"$OUT/log.txt"
		log disk: ceilings $name; ceilings disk $name "$D/m$name.gguf"
		log disk: whole $name
		whole disk $name "$D/m$name.gguf" "$D/m$name.safetensors"
	fi
	log disk: stream $name; stream disk $name "$D/m$name.gguf"
	rm -f "$D/m$name.gguf" "$D/m$name.safetensors"
}
if [ "$DISK" = 1 ]; then
	mkdir -p "$D"
	for name in $DISK_MODELS; do
		case $name in
		8b) on_disk 8b $P8 ;;
		70x20) on_disk 70x20 $PBIG ;;
		*) log "unknown model $name" ;;
		esac
	done
	rm -rf "$D"
fi

# 2. zram, the stand-in for a fast NVMe array: the 8B model and a larger one.
[ -e /sys/block/zram0 ] || modprobe zram num_devices=1 2>/dev/null
Z=
if [ -e /sys/block/zram0 ] && [ "$(cat /sys/block/zram0/disksize)" = 0 ]; then
	Z=zram0
elif [ -e /sys/class/zram-control/hot_add ]; then
	Z=zram$(cat /sys/class/zram-control/hot_add)
fi
[ "$ZRAM" = 1 ] || Z=
if [ -n "$Z" ] && echo 40G >/sys/block/$Z/disksize && mkfs.ext4 -q -F /dev/$Z &&
   mkdir -p /mnt/p2pio-zram && mount /dev/$Z /mnt/p2pio-zram; then
	M=/mnt/p2pio-zram
	log zram: models
	$T 120 "$BIN/p2pio-mkmodel" -q $P8 -s 7 "$M/m8.gguf"
	$T 120 "$BIN/p2pio-mkmodel" -q $PBIG -s 8 "$M/m70x20.gguf"
	$T 120 $CONV "$M/m8.gguf" "$M/m8.safetensors" 2>>"$OUT/log.txt"
	$T 120 $CONV "$M/m70x20.gguf" "$M/m70x20.safetensors" 2>>"$OUT/log.txt"
	log zram: ceilings; ceilings zram 8b "$M/m8.gguf"
	log zram: whole 8b; whole zram 8b "$M/m8.gguf" "$M/m8.safetensors"
	log zram: stream 8b; stream zram 8b "$M/m8.gguf"
	"$BIN/p2pio-load" -q "$M/m8.gguf" >"$OUT/load-zram-8b.txt" 2>&1
	"$BIN/p2pio-load" -q --stream --passes 3 --compute-ratio 1.2 --per-layer "$M/m8.gguf" \
		>"$OUT/stream-zram-8b.txt" 2>&1
	log zram: ceilings 70x20; ceilings zram 70x20 "$M/m70x20.gguf"
	log zram: whole 70x20; whole zram 70x20 "$M/m70x20.gguf" "$M/m70x20.safetensors"
	log zram: stream 70x20; stream zram 70x20 "$M/m70x20.gguf"
	umount $M
	echo 1 >/sys/block/$Z/reset
elif [ "$ZRAM" = 1 ]; then
	log "no zram device"
fi
log done
