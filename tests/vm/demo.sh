#!/bin/bash
# tests/vm/demo.sh - what `make demo` shows on a new machine, no GPU or NVMe needed.
#
# Generates a small GGUF model (p2pio-mkmodel --preset tiny --align 4096), puts it on
# an ext4 file system on an emulated NVMe namespace, boots Debian's kernel under QEMU
# with an ivshmem "GPU", loads the NVIDIA test double and p2pio, and runs
# guest/demo-load.c: libp2pio loads the model whole through the P2P path into the "GPU"
# BAR (the host verifies every byte against the model file), then streams its layers
# through the default budget (a quarter, at least two slots; every layer checked against
# the model's pattern), and prints a short report. `make demo` has built the tree first.
set -eu
cd "$(dirname "$0")/../.."
. tests/vm/lib/disks.sh
. tests/vm/lib/initramfs.sh
. tests/vm/lib/boot.sh

VMBUILD=${VMBUILD:-build/vm}
DEMO=$VMBUILD/demo
KVER=$(sh scripts/kver.sh)
MKPATTERN=$VMBUILD/host/mkpattern
VMHOST=$VMBUILD/host/vmhost
export MKPATTERN VMHOST

for t in build/bin/p2pio-mkmodel build/bin/p2pio-gguf build/lib/libp2pio.a; do
	[ -e "$t" ] || { echo "demo: $t missing: run 'make' first" >&2; exit 1; }
done

echo "demo: building the NVIDIA test double, p2pio.ko and the guest programs for $KVER"
make -s -f tests/vm/Makefile VMBUILD="$VMBUILD" all
make -s -C kmod NVIDIA_SYMVERS="$PWD/tests/vm/nvdouble/Module.symvers"

rm -rf "$DEMO"
mkdir -p "$DEMO/model"
echo "demo: generating a GGUF model"
build/bin/p2pio-mkmodel -q --preset tiny --align 4096 "$DEMO/model/model.gguf"
build/bin/p2pio-gguf "$DEMO/model/model.gguf" | sed 's/^/  /'

# One NVMe namespace with 4 KiB LBAs and an ext4 partition holding the model.
VM_DISKS=("dm A 1 4096 gpt 256 ext4 64 -")
VM_CTRL=([A]="p2pA")
VM_STAGE_EXTRA=$DEMO/model
echo "demo: making the disk image"
vm_make_disks "$DEMO/disks"
vm_nr_namespaces >"$DEMO/disks/etc/vm-namespaces"
echo /mnt/dm/model.gguf >"$DEMO/disks/etc/demo-model"
printf 'demo - demo-load\n' >"$DEMO/phases"
VM_PHASES=$DEMO/phases vm_make_initramfs "$DEMO/initrd.gz" "$KVER" "$DEMO/disks/etc" \
	"$VMBUILD" kmod/p2pio.ko

echo "demo: booting the VM (QEMU, TCG, emulated NVMe + ivshmem \"GPU\"); about a minute"
status=0
VM_TESTS=demo-load vm_boot noiommu "$DEMO/disks" "$DEMO/initrd.gz" "$DEMO/out" "$DEMO/model" ||
	status=1
tap=$DEMO/out/noiommu.demo.demo-load.tap
echo
echo "p2pio demo: NVMe -> \"GPU\" memory, peer to peer"
sed -n 's/^# /  /p' "$tap" 2>/dev/null || true
echo
# Every step of the boot is judged: the kernel's checkers, the setup, the loads of the
# modules, the demo, the unload and the taint check.
if ! prove -f "$DEMO"/out/*.tap || [ $status != 0 ] ||
	! vm_log_check "$DEMO/out/console.log"; then
	echo "demo: FAILED; guest kernel log: $DEMO/out/console.log" >&2
	exit 1
fi
echo "demo: the model landed in the \"GPU\" BAR through the P2P path, loaded whole and streamed, byte for byte"
