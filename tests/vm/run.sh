#!/bin/bash
# tests/vm/run.sh - p2pio's VM test suite (make check-vm).
#
# Builds the NVIDIA test double, the guest programs and the host tools, makes the disk
# images (ext4 and xfs on emulated NVMe namespaces of 512 B and 4 KiB LBAs, a small-MDTS
# controller, a metadata namespace, a virtio-blk disk), boots Debian's kernel under
# qemu-system-x86_64 -accel tcg once per variant (no IOMMU, intel-iommu), runs every
# guest test program in each, and reports everything as TAP through prove. The host
# checks every byte that landed in the "GPU" BAR against the source files, and fails the
# run on any BUG/WARNING/Oops/lockdep line in the guest's kernel log, printing the log.
#
# Environment: VM_VARIANTS ("noiommu iommu"), VM_TESTS (comma list of test programs to
# run, default all), VM_NO_P2PIO (set: boot without p2pio.ko), VM_P2PIO_KO (load this
# p2pio.ko instead of building kmod/'s, "{kver}" standing for the kernel booted: make
# check-pkg's DKMS-built module), VM_OUT (results, default build/vm/out), VM_BOOT_TIMEOUT (s, 900),
# VM_FUZZ_SEED and VM_FUZZ_CALLS (test-fuzz's seed and call count, passed to the guest).
# See tests/vm/README.md.
set -eu
cd "$(dirname "$0")/../.."
. tests/vm/lib/disks.sh
. tests/vm/lib/initramfs.sh
. tests/vm/lib/boot.sh

VMBUILD=${VMBUILD:-build/vm}
VM_OUT=${VM_OUT:-$VMBUILD/out}
VARIANTS=${VM_VARIANTS:-noiommu iommu}
KVER=$(sh scripts/kver.sh)
MKPATTERN=$VMBUILD/host/mkpattern
VMHOST=$VMBUILD/host/vmhost
export MKPATTERN VMHOST

for tool in qemu-system-x86_64 busybox cpio mkfs.ext4 mkfs.xfs sfdisk prove; do
	command -v "$tool" >/dev/null || PATH=$PATH:/sbin:/usr/sbin
	command -v "$tool" >/dev/null || { echo "run.sh: $tool missing (scripts/deps.sh)" >&2; exit 1; }
done

start=$(date +%s)
echo "vm: building the test double, guest programs and host tools for $KVER"
make -s lib	# guest programs test-lib-*.c link libp2pio
make -s -f tests/vm/Makefile VMBUILD="$VMBUILD" all
P2PIO_KO=""
if [ -n "${VM_P2PIO_KO:-}" ]; then
	# A module built elsewhere (make check-pkg: the one DKMS built from the package)
	# must be built for the kernel the VM boots and bound to the double's symbols.
	# "{kver}" in its path stands for the kernel booted.
	P2PIO_KO=${VM_P2PIO_KO//\{kver\}/$KVER}
	[ -f "$P2PIO_KO" ] || { echo "run.sh: VM_P2PIO_KO: $P2PIO_KO: no such file" >&2; exit 1; }
	vermagic=$(modinfo -F vermagic "$P2PIO_KO")
	case "$vermagic" in
	"$KVER "*) ;;
	*) echo "run.sh: $P2PIO_KO is for '$vermagic', the VM boots $KVER" >&2; exit 1 ;;
	esac
	echo "vm: loading $P2PIO_KO instead of kmod/p2pio.ko"
# p2pio binds to the double's nvidia_p2p_* exports, with their symbol versions.
elif [ -f kmod/Kbuild ] && [ -z "${VM_NO_P2PIO:-}" ]; then
	make -s -C kmod NVIDIA_SYMVERS="$PWD/tests/vm/nvdouble/Module.symvers"
	# A p2pio.ko linked earlier without the double's symbol versions (plain `make`)
	# cannot load beside it; kbuild does not relink for new KBUILD_EXTRA_SYMBOLS alone.
	if ! modprobe --dump-modversions kmod/p2pio.ko | grep -q nvidia_p2p_get_pages; then
		rm -f kmod/p2pio.ko kmod/p2pio.mod.c kmod/p2pio.mod.o
		make -s -C kmod NVIDIA_SYMVERS="$PWD/tests/vm/nvdouble/Module.symvers"
	fi
	P2PIO_KO=kmod/p2pio.ko
fi

WORK=$VMBUILD/disks
rm -rf "$WORK" "$VM_OUT"
mkdir -p "$WORK" "$VM_OUT"
echo "vm: making disk images"
vm_make_disks "$WORK"
vm_nr_namespaces >"$WORK/etc/vm-namespaces"
vm_make_initramfs "$VMBUILD/initrd.gz" "$KVER" "$WORK/etc" "$VMBUILD" "$P2PIO_KO"

status=0
for v in $VARIANTS; do
	echo "vm: booting ($v)"
	t0=$(date +%s)
	vm_boot "$v" "$WORK" "$VMBUILD/initrd.gz" "$VM_OUT/$v" || true
	echo "vm: $v boot took $(( $(date +%s) - t0 )) s"
done

# One more TAP stream with what only the host can judge.
harness=$VM_OUT/harness.tap
{
	n=0
	for v in $VARIANTS; do
		out=$VM_OUT/$v
		n=$((n + 1))
		if [ -f "$out/verified" ] && [ ! -f "$out/vmhost.eof" ]; then
			echo "ok $n - $v: the guest ran to the end"
		else
			echo "not ok $n - $v: the guest did not finish (crash, hang or timeout)"
		fi
		n=$((n + 1))
		if bad=$(vm_log_check "$out/console.log" 2>&1); then
			echo "ok $n - $v: no BUG/WARNING/Oops/lockdep line in the guest kernel log"
		else
			echo "not ok $n - $v: the guest kernel log has BUG/WARNING/Oops lines"
			printf '%s\n' "$bad" | sed 's/^/#   /'
		fi
		n=$((n + 1))
		read -r bytes reqs failed 2>/dev/null <"$out/verified" || { bytes=0; reqs=0; failed=1; }
		if [ "$failed" = 0 ]; then
			echo "ok $n - $v: host compared $bytes bytes in $reqs ranges of the BAR, all matched"
		else
			echo "not ok $n - $v: $failed host comparisons failed"
		fi
		for rc in "$out"/*.rc; do
			[ -e "$rc" ] || continue
			n=$((n + 1))
			t=$(basename "$rc" .rc)
			if [ "$(cat "$rc")" = 0 ]; then
				echo "ok $n - $t exited 0"
			else
				echo "not ok $n - $t exited $(cat "$rc")"
			fi
		done
	done
	echo "1..$n"
} >"$harness"

files=$(ls "$VM_OUT"/*/*.tap "$harness")
# shellcheck disable=SC2086
prove -f $files || status=1
echo "vm: suite took $(( $(date +%s) - start )) s"

if [ $status != 0 ]; then
	for v in $VARIANTS; do
		echo "==== guest kernel log ($v): $VM_OUT/$v/console.log"
		cat "$VM_OUT/$v/console.log" 2>/dev/null || true
		echo "==== qemu ($v)"
		cat "$VM_OUT/$v/qemu.log" "$VM_OUT/$v/vmhost.log" 2>/dev/null || true
	done
fi
exit $status
