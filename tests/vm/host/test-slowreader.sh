#!/bin/bash
# tests/vm/host/test-slowreader.sh - the guest-to-host channel (the second serial port,
# host/vmhost) loses nothing when the host reads slower than the guest writes, as under
# load. For each kernel (VM_KERNELS, default scripts/kver.sh's newest) it boots the VM
# as vm_boot does (same QEMU channel, same guest/init.sh, same vmhost), with an
# initramfs of busybox and init.sh alone and vm.chantest=400: init prints 400 TAP lines
# and finishes. vmhost stops reading (VMHOST_STALL) for 3 s after line 50, in the
# middle (the guest must wait: QEMU's 16550 holds back its transmitter-empty bit while
# the socket is full), and for 5 s after line 360, near the end: while it sleeps the
# guest reaches its last lines and powers off. Every line must arrive, in order, and
# @@DONE. Before init waited for the host's answer to @@DONE, the poweroff dropped what
# the UART had not sent yet (the last 4 KiB, the size of the tty's buffer). TAP; run by
# tests/vm/run.sh before the boots, or by `prove tests/vm/host/test-slowreader.sh`
# (about 15 s a kernel).
set -u
cd "$(dirname "$0")/../../.."
. tests/vm/lib/disks.sh
. tests/vm/lib/boot.sh

VMBUILD=${VMBUILD:-build/vm}
VMHOST=${VMHOST:-$VMBUILD/host/vmhost}
KERNELS=${VM_KERNELS:-$(sh scripts/kver.sh 2>/dev/null)}
LINES=400
STALL=${VMHOST_STALL_TEST:-50:3,360:5}
# no disks, no NVMe controllers: the channel alone
VM_DISKS=()
VM_CTRL=()

if [ -z "$KERNELS" ] || ! command -v qemu-system-x86_64 >/dev/null; then
	echo "1..0 # SKIP no kernel to boot or no qemu-system-x86_64 (scripts/deps.sh)"
	exit 0
fi
make -s -f tests/vm/Makefile VMBUILD="$VMBUILD" "$VMHOST" || { echo "Bail out! cannot build $VMHOST"; exit 1; }

root=$(mktemp -d "${TMPDIR:-/tmp}/p2pio-chantest.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc}
cp /bin/busybox "$root/bin/busybox"
cp tests/vm/guest/init.sh "$root/init"
chmod 0755 "$root/init"
initrd=$VMBUILD/slowreader/initrd.gz
mkdir -p "$(dirname "$initrd")"
(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 >"$initrd"

n=0
for kver in $KERNELS; do
	out=$VMBUILD/slowreader/$kver
	rm -rf "$out"
	t0=$(date +%s)
	VM_KVER=$kver VM_CHANTEST=$LINES VMHOST_STALL=$STALL VM_GPU_MIB=1 \
		VM_BOOT_TIMEOUT=${VM_BOOT_TIMEOUT:-300} vm_boot noiommu "$root" "$initrd" "$out"
	took=$(( $(date +%s) - t0 ))
	tap=$out/chantest.tap

	# the lines that arrived, against the ones init printed
	want=$( { echo "1..$LINES"; i=1; while [ $i -le $LINES ]; do
		echo "ok $i - line $i of $LINES, as long as a test's description: 0123456789abcdef"
		i=$((i + 1)); done; } )
	got=$(cat "$tap" 2>/dev/null)
	n=$((n + 1))
	if [ "$got" = "$want" ]; then
		echo "ok $n - $kver: the host stalled ($STALL: line:seconds) and all $LINES lines arrived, in order ($took s)"
	else
		have=$(printf '%s\n' "$got" | grep -c '^ok ')
		first=$(diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") | grep -m 1 '^[<>]')
		echo "not ok $n - $kver: the host stalled ($STALL: line:seconds) and $have of $LINES lines arrived ($tap)"
		echo "#   first difference: $first"
		echo "#   the last line that arrived: $(printf '%s\n' "$got" | tail -n 1)"
	fi
	n=$((n + 1))
	if [ -f "$out/verified" ] && [ ! -f "$out/vmhost.eof" ] && [ "$(cat "$out/chantest.rc" 2>/dev/null)" = 0 ]; then
		echo "ok $n - $kver: @@END and @@DONE arrived"
	else
		echo "not ok $n - $kver: @@END or @@DONE did not arrive: the guest powered off first ($out/vmhost.log)"
	fi
	n=$((n + 1))
	if ! grep -q 'after @@DONE' "$out/vmhost.log" 2>/dev/null; then
		echo "ok $n - $kver: nothing came after @@DONE"
	else
		echo "not ok $n - $kver: the guest wrote after @@DONE ($out/vmhost.log)"
	fi
	# the stalls happened (a test whose stalls were skipped proves nothing)
	n=$((n + 1))
	stalls=$(grep -c 'VMHOST_STALL: not reading' "$out/vmhost.log" 2>/dev/null)
	if [ "$stalls" = "$(echo "$STALL" | tr ',' '\n' | grep -c .)" ]; then
		echo "ok $n - $kver: vmhost stopped reading $stalls times"
	else
		echo "not ok $n - $kver: vmhost stopped reading ${stalls:-0} times, not as $STALL says"
	fi
done
echo "1..$n"
