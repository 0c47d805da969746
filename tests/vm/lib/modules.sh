# shellcheck shell=bash
# tests/vm/lib/modules.sh - the NVIDIA test double and p2pio.ko, built for one kernel of
# the VM matrix in a folder of their own (kbuild puts objects beside the sources, so
# each kernel builds copies of them). Any compiler or modpost warning fails the build.

# vm_copy_sources SRC DST: a module's sources (Kbuild, *.c, *.h, uapi/), not what an
# in-tree build for another kernel left there (*.mod.c above all: kbuild would compile
# that kernel's symbol tables into this one's module).
vm_copy_sources() {
	local src=$1 dst=$2 f
	mkdir -p "$dst"
	for f in "$src"/Kbuild "$src"/*.c "$src"/*.h "$src"/uapi; do
		case $f in *.mod.c) continue ;; esac
		[ -e "$f" ] && cp -a "$f" "$dst/"
	done
	return 0
}

# vm_build_modules KVER OUTDIR: OUTDIR/nvdouble/nvdouble.ko, OUTDIR/vmcheck/vmcheck.ko
# (the selftest boot's defects on purpose) and, unless VM_NO_P2PIO is set or there is no
# kmod/Kbuild, OUTDIR/kmod/p2pio.ko, bound to the double's nvidia_p2p_* exports with
# their symbol versions. Build output in OUTDIR/build.log.
vm_build_modules() {
	local kver=$1 out=$2 kdir=/lib/modules/$1/build log=$2/build.log rc=0
	rm -f "$out"/*/*.mod.c	# an earlier run's copies of stale ones
	vm_copy_sources tests/vm/nvdouble "$out/nvdouble"
	vm_copy_sources tests/vm/vmcheck "$out/vmcheck"
	: >"$log"
	make -C "$kdir" M="$PWD/$out/vmcheck" modules >>"$log" 2>&1 || rc=1
	make -C "$kdir" M="$PWD/$out/nvdouble" NVDOUBLE_NV_INC="$PWD/kmod/nvidia" modules \
		>>"$log" 2>&1 || rc=1
	if [ $rc = 0 ] && [ -f kmod/Kbuild ] && [ -z "${VM_NO_P2PIO:-}" ]; then
		vm_copy_sources kmod "$out/kmod"
		make -C "$kdir" M="$PWD/$out/kmod" P2PIO_NV_INC="$PWD/kmod/nvidia" \
			KBUILD_EXTRA_SYMBOLS="$PWD/$out/nvdouble/Module.symvers" modules \
			>>"$log" 2>&1 || rc=1
		if [ $rc = 0 ] && ! modprobe --dump-modversions "$out/kmod/p2pio.ko" |
			grep -q nvidia_p2p_get_pages; then
			echo "modules: $out/kmod/p2pio.ko lacks the double's symbol versions" >>"$log"
			rc=1
		fi
	else
		rm -f "$out/kmod/p2pio.ko"
	fi
	# "warning:" from the compiler, "WARNING: modpost: ..." from modpost
	if grep -iE 'warning:' "$log" >&2; then
		echo "modules: warnings building for $kver ($log)" >&2
		rc=1
	fi
	[ $rc = 0 ] || { echo "modules: build for $kver failed:" >&2; cat "$log" >&2; }
	return $rc
}
