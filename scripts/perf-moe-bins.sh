#!/bin/sh
# Build the binaries scripts/perf-moe.sh runs on a GPU machine, linked with liburing and
# json-c statically (that machine may lack them): p2pio-moe and p2pio-mkmodel from this
# tree into OUT/after, and, given a git revision, the same from that revision (built in a
# temporary directory) into OUT/before.
#
#   scripts/perf-moe-bins.sh OUT [REV]
set -eu
OUT=$1
REV=${2:-}
TOP=$(cd "$(dirname "$0")/.." && pwd)

bins() { # tree dest
	(cd "$1" && make -s -j2 lib tools >/dev/null)
	mkdir -p "$2"
	b=$1/build
	for n in p2pio-moe p2pio-mkmodel; do
		cc -o "$2/$n" "$b/tools/$n.o" $(ls "$b"/tools/*.o | grep -v '/p2pio-') \
			"$b/lib/libp2pio.a" -Wl,-Bstatic -luring -ljson-c -Wl,-Bdynamic \
			-ldl -lpthread -lm
	done
	# The GPU test programs of the cache, where the tree has them.
	(cd "$1" && make -s -j2 tests >/dev/null 2>&1) || true
	for n in test-experts-gpu test-vmm-gpu; do
		[ -f "$b/tests/gpu/$n.o" ] || continue
		cc -o "$2/$n" "$b/tests/gpu/$n.o" "$b/tests/unit/helpers/model_fixture.o" \
			"$b/lib/libp2pio.a" -Wl,-Bstatic -luring -ljson-c \
			-Wl,-Bdynamic -ldl -lpthread -lm
	done
}

bins "$TOP" "$OUT/after"
if [ -n "$REV" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	git -C "$TOP" archive "$REV" | tar -x -C "$tmp"
	bins "$tmp" "$OUT/before"
fi
