#!/bin/bash
# tests/vm/run.sh - p2pio's VM test suite (make check-vm).
#
# Builds the guest programs and the host tools, and for every kernel of the matrix
# (scripts/kver.sh --all: Debian 12's 6.1 and bookworm-backports' 6.12) the NVIDIA test
# double and p2pio.ko (any build warning fails); makes the disk images (ext4 and xfs on
# emulated NVMe namespaces of 512 B and 4 KiB LBAs, a small-MDTS controller, a metadata
# namespace, a virtio-blk disk); boots each kernel under qemu-system-x86_64 -accel tcg,
# with its memory checkers on (lib/boot.sh), once per variant (no IOMMU, intel-iommu);
# runs every guest test program in each boot, and reports everything as TAP through
# prove. The host checks every byte that landed in the "GPU" BAR against the source
# files, and fails the run on any KFENCE/SLUB/BUG/WARNING/Oops/lockdep/hung-task line in
# the guest's kernel log (lib/logcheck.sh, itself tested by host/test-logcheck.sh),
# printing the log.
#
# Environment: VM_KERNELS (kernel versions, default all of scripts/kver.sh --all),
# VM_VARIANTS ("noiommu iommu"), VM_TESTS (comma list of test programs to run, default
# all), VM_NO_P2PIO (set: boot without p2pio.ko), VM_P2PIO_KO (load this p2pio.ko instead of
# the one built from kmod/, "{kver}" standing for the kernel booted: make check-pkg's
# DKMS-built module), VM_NO_SELFTEST (set: no selftest boot),
# VM_REPORT_ONLY (set: judge the last run's outputs again, boot nothing), VM_OUT
# (results, default build/vm/out: VM_OUT/<kernel>/<variant>/), VM_BOOT_TIMEOUT (s, 600:
# what a hung guest costs), VM_FUZZ_SEED and VM_FUZZ_CALLS (test-fuzz's seed and call
# count, passed to the guest). See tests/vm/README.md.
set -eu
cd "$(dirname "$0")/../.."
. tests/vm/lib/disks.sh
. tests/vm/lib/initramfs.sh
. tests/vm/lib/boot.sh
. tests/vm/lib/modules.sh

VMBUILD=${VMBUILD:-build/vm}
VM_OUT=${VM_OUT:-$VMBUILD/out}
VARIANTS=${VM_VARIANTS:-noiommu iommu}
KERNELS=${VM_KERNELS:-$(sh scripts/kver.sh --all)}
# vmcheck.ko's defects of the selftest boot, and the report line each must cause
SELFTEST_FAULTS=slub,kfence,warn
# (SLUB's header line: 6.1 ends it with "Right Redzone overwritten", 6.12 with "Object
# corrupt" after a "[Right Redzone overwritten] ..." line)
declare -A SELFTEST_REPORT=([slub]='BUG kmalloc-32 \(' [kfence]='BUG: KFENCE: ' \
	[warn]='WARNING: .*vmcheck')
MKPATTERN=$VMBUILD/host/mkpattern
VMHOST=$VMBUILD/host/vmhost
export MKPATTERN VMHOST

for tool in qemu-system-x86_64 busybox cpio mkfs.ext4 mkfs.xfs sfdisk prove; do
	command -v "$tool" >/dev/null || PATH=$PATH:/sbin:/usr/sbin
	command -v "$tool" >/dev/null || { echo "run.sh: $tool missing (scripts/deps.sh)" >&2; exit 1; }
done
for kver in $KERNELS; do
	[ -e "/boot/vmlinuz-$kver" ] && [ -d "/lib/modules/$kver/build" ] ||
		{ echo "run.sh: kernel $kver is not installed (scripts/deps.sh)" >&2; exit 1; }
done

start=$(date +%s)
status=0
runs=""		# "kernel/variant" of every boot, for the harness
for kver in $KERNELS; do
	for v in $VARIANTS; do
		runs="$runs $kver/$v"
	done
done
# VM_REPORT_ONLY: judge the outputs of the last run again, booting nothing
if [ -z "${VM_REPORT_ONLY:-}" ]; then
	rm -rf "$VM_OUT"
	mkdir -p "$VM_OUT"
	echo "vm: kernels:" $KERNELS
	echo "vm: building the guest programs and host tools"
	make -s lib	# guest programs test-lib-*.c link libp2pio
	make -s -f tests/vm/Makefile VMBUILD="$VMBUILD" host guest
	# the scanner of the guest logs, before any log depends on it
	tests/vm/host/test-logcheck.sh >"$VM_OUT/logcheck.tap" 2>&1 || true
	tests/vm/host/test-diedearly.sh >"$VM_OUT/diedearly.tap" 2>&1 || true
	# vmhost itself: a request inside another line fails the run
	VMBUILD="$VMBUILD" tests/vm/host/test-vmhost.sh >"$VM_OUT/vmhost.tap" 2>&1 || true
	# the channel loses nothing when the host reads slowly (a short boot a kernel)
	echo "vm: testing the guest channel with a slow reader"
	VM_KERNELS="$KERNELS" VMBUILD="$VMBUILD" tests/vm/host/test-slowreader.sh \
		>"$VM_OUT/slowreader.tap" 2>&1 || true

	WORK=$VMBUILD/disks
	rm -rf "$WORK"
	mkdir -p "$WORK"
	# ext4's verity feature (test-verity) only where every kernel booted has fs-verity:
	# without CONFIG_FS_VERITY ext4 mounts a verity file system read-only or not at all
	VM_EXT4_VERITY=1
	for kver in $KERNELS; do
		if ! grep -qs '^CONFIG_FS_VERITY=y' "/boot/config-$kver"; then
			echo "vm: $kver has no CONFIG_FS_VERITY: no ext4 verity feature, test-verity skips"
			VM_EXT4_VERITY=""
		fi
	done
	export VM_EXT4_VERITY
	echo "vm: making disk images"
	vm_make_disks "$WORK"
	vm_nr_namespaces >"$WORK/etc/vm-namespaces"

	for kver in $KERNELS; do
		kb=$VMBUILD/k/$kver
		echo "vm: building the test double and p2pio.ko for $kver"
		t0=$(date +%s)
		mkdir -p "$VM_OUT/$kver"
		brc=0
		vm_build_modules "$kver" "$kb" || brc=1
		echo $brc >"$VM_OUT/$kver/build.rc"
		P2PIO_KO=""
		[ -f "$kb/kmod/p2pio.ko" ] && P2PIO_KO=$kb/kmod/p2pio.ko
		if [ -n "${VM_P2PIO_KO:-}" ]; then
			# A module built elsewhere (make check-pkg: the one DKMS built from the
			# package) must be built for the kernel booted and bound to the double's
			# symbols; "{kver}" in its path stands for that kernel.
			P2PIO_KO=${VM_P2PIO_KO//\{kver\}/$kver}
			[ -f "$P2PIO_KO" ] ||
				{ echo "run.sh: VM_P2PIO_KO: $P2PIO_KO: no such file" >&2; exit 1; }
			vermagic=$(modinfo -F vermagic "$P2PIO_KO")
			case "$vermagic" in
			"$kver "*) ;;
			*) echo "run.sh: $P2PIO_KO is for '$vermagic', the VM boots $kver" >&2; exit 1 ;;
			esac
			echo "vm: loading $P2PIO_KO instead of kmod/'s p2pio.ko"
		fi
		VM_NVDOUBLE_KO=$kb/nvdouble/nvdouble.ko VM_VMCHECK_KO=$kb/vmcheck/vmcheck.ko \
			vm_make_initramfs "$kb/initrd.gz" "$kver" "$WORK/etc" "$VMBUILD" "$P2PIO_KO"
		echo "vm: $kver build took $(( $(date +%s) - t0 )) s"
		if [ -z "${VM_NO_SELFTEST:-}" ]; then
			echo "vm: booting $kver (selftest: defects on purpose)"
			t0=$(date +%s)
			VM_KVER=$kver VM_SELFTEST=$SELFTEST_FAULTS \
				vm_boot selftest "$WORK" "$kb/initrd.gz" "$VM_OUT/$kver/selftest" || true
			echo "vm: $kver selftest boot took $(( $(date +%s) - t0 )) s"
		fi
		for v in $VARIANTS; do
			echo "vm: booting $kver ($v)"
			t0=$(date +%s)
			VM_KVER=$kver vm_boot "$v" "$WORK" "$kb/initrd.gz" "$VM_OUT/$kver/$v" || true
			# A kernel that died before the guest ran its first program, so before any
			# module of ours was loaded, is no finding of p2pio's: under load TCG has
			# crashed a 6.12 boot in early init ("Oops: int3" in sched_clock_cpu while
			# a static key was patched). Boot once more, keeping the first log; the
			# harness says so.
			if vm_died_early "$VM_OUT/$kver/$v"; then
				mv "$VM_OUT/$kver/$v/console.log" "$VM_OUT/$kver/$v/console-died-early.log"
				echo "vm: $kver $v: the kernel died before the guest ran a program; booting once more"
				VM_KVER=$kver vm_boot "$v" "$WORK" "$kb/initrd.gz" "$VM_OUT/$kver/$v" || true
			fi
			echo "vm: $kver $v boot took $(( $(date +%s) - t0 )) s"
		done
	done
fi

# One more TAP stream with what only the host can judge.
harness=$VM_OUT/harness.tap
{
	n=0
	for kver in $KERNELS; do
		n=$((n + 1))
		if [ "$(cat "$VM_OUT/$kver/build.rc" 2>/dev/null)" = 0 ]; then
			echo "ok $n - $kver: the test double and p2pio.ko built without a warning"
		else
			echo "not ok $n - $kver: building the test double or p2pio.ko failed or warned ($VMBUILD/k/$kver/build.log)"
		fi
	done
	# The selftest boots: each defect on purpose was reported by its checker, and the
	# scanner flagged that report (its flagged lines hold it).
	for kver in $KERNELS; do
		out=$VM_OUT/$kver/selftest
		[ -z "${VM_NO_SELFTEST:-}" ] || continue
		flagged=$(vm_log_check "$out/console.log" 2>/dev/null || true)
		for f in ${SELFTEST_FAULTS//,/ }; do
			n=$((n + 1))
			said=$(grep -ao "vmcheck: fault=$f: -*[0-9]*" "$out/console.log" 2>/dev/null | head -n 1)
			if [ "$f" = kfence ] && ! grep -qs '^CONFIG_KFENCE=y' "/boot/config-$kver"; then
				echo "ok $n - $kver selftest: $f # SKIP the kernel is built without KFENCE"
			elif printf '%s\n' "$flagged" | grep -qE "${SELFTEST_REPORT[$f]}"; then
				echo "ok $n - $kver selftest: $f: reported and caught by the scanner ($(printf '%s\n' "$flagged" | grep -E "${SELFTEST_REPORT[$f]}" | head -n 1 | sed 's/^\[[ 0-9.]*\] //'))"
			else
				echo "not ok $n - $kver selftest: $f: no '${SELFTEST_REPORT[$f]}' among the scanner's lines (${said:-vmcheck said nothing}; $out/console.log)"
			fi
		done
	done
	for v in $runs; do
		out=$VM_OUT/$v
		n=$((n + 1))
		[ -f "$out/console-died-early.log" ] &&
			echo "# $v: booted twice: the first kernel died before the guest ran a program ($out/console-died-early.log)"
		if [ -f "$out/verified" ] && [ ! -f "$out/vmhost.eof" ]; then
			echo "ok $n - $v: the guest ran to the end"
		else
			echo "not ok $n - $v: the guest did not finish (crash, hang or timeout)"
		fi
		n=$((n + 1))
		if bad=$(vm_log_check "$out/console.log" 2>&1); then
			echo "ok $n - $v: no KFENCE/SLUB/BUG/WARNING/Oops/lockdep/hung-task line in the guest kernel log"
		else
			echo "not ok $n - $v: the guest kernel log has KFENCE/SLUB/BUG/WARNING/Oops/... lines"
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
				echo "ok $n - ${v%%/*}: $t exited 0"
			else
				echo "not ok $n - ${v%%/*}: $t exited $(cat "$rc")"
			fi
		done
	done
	echo "1..$n"
} >"$harness"

files=$(ls "$VM_OUT"/logcheck.tap "$VM_OUT"/diedearly.tap "$VM_OUT"/vmhost.tap "$VM_OUT"/slowreader.tap \
	"$VM_OUT"/*/*/*.tap "$harness")
# shellcheck disable=SC2086
prove -f $files || status=1
echo "vm: suite took $(( $(date +%s) - start )) s"

if [ $status != 0 ]; then
	for v in $runs; do
		echo "==== guest kernel log ($v): $VM_OUT/$v/console.log"
		cat "$VM_OUT/$v/console.log" 2>/dev/null || true
		echo "==== qemu ($v)"
		cat "$VM_OUT/$v/qemu.log" "$VM_OUT/$v/vmhost.log" 2>/dev/null || true
	done
fi
exit $status
