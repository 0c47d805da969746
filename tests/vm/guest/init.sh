#!/bin/busybox sh
# /init of the VM tests' initramfs (tests/vm/run.sh builds it).
#
# Loads the distro's storage modules, mounts the test file systems by NVMe serial and
# namespace, creates the files only the guest can make (fragmented, holes, unwritten),
# then for each phase of /etc/phases loads the NVIDIA test double with that phase's
# parameters and p2pio, runs the phase's test programs, and unloads both (which must
# succeed: nothing may be left pinned or open). Test output and requests go to the host
# over the second serial port (/dev/ttyS1); the kernel log goes to the console (ttyS0).
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp && mount -t tmpfs tmp /tmp
stty -F /dev/ttyS1 raw -echo 2>/dev/null
# read-write: finish() reads the host's answer to @@DONE from it
exec 3<>/dev/ttyS1

VM_VARIANT=$(sed -n 's/.*vm.variant=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
VM_SELECT=$(sed -n 's/.*vm.tests=\([^ ]*\).*/\1/p' /proc/cmdline)
export VM_VARIANT
VM_FUZZ_SEED=$(sed -n 's/.*vm.fuzz_seed=\([0-9a-fA-Fx]*\).*/\1/p' /proc/cmdline)
VM_FUZZ_CALLS=$(sed -n 's/.*vm.fuzz_calls=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$VM_FUZZ_SEED" ] && export VM_FUZZ_SEED
[ -n "$VM_FUZZ_CALLS" ] && export VM_FUZZ_CALLS

chan() { echo "$*" >&3; }

# tap NAME: runs "$@" as the test NAME, streaming its TAP to the host.
run_test() {
	name=$1; shift
	chan "@@BEGIN $name"
	"$@" >&3 2>/dev/console </dev/null
	rc=$?
	chan "@@END $name $rc"
}

# No umount: the disks are snapshots, and the file system of a hot-removed controller
# must not be unmounted (Debian's 6.1 nvme driver oopses freeing that controller under
# intel-iommu, with or without p2pio).
# A write to ttyS1 returns once the bytes are in the tty's buffer (4 KiB), and what the
# UART has not sent at the poweroff is lost: the host, reading slower than we write
# whenever it is busy or descheduled, would miss the last lines and @@DONE. The host
# answers @@DONE once it has read it, so everything before it; power off only then. No
# answer in 120 s (the host is gone): power off all the same, the host fails the run
# if @@DONE did not reach it. Other lines (answers to requests a test abandoned) are
# skipped. (vmhost reads on until QEMU exits: closing first would make QEMU drop the
# connection on the hangup, with the answer unread.)
finish() {
	chan "@@DONE"
	while read -r -t 120 ack <&3; do
		case $ack in *"@@R done OK") break ;; esac
	done
	poweroff -f
}

# The test of the channel (host/test-slowreader.sh, a boot with this /init and busybox
# alone): vm.chantest=N lines of TAP, then finish. Nothing else runs.
VM_CHANTEST=$(sed -n 's/.*vm.chantest=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$VM_CHANTEST" ]; then
	chan "@@BEGIN chantest"
	chan "1..$VM_CHANTEST"
	i=1
	while [ "$i" -le "$VM_CHANTEST" ]; do
		chan "ok $i - line $i of $VM_CHANTEST, as long as a test's description: 0123456789abcdef"
		i=$((i + 1))
	done
	chan "@@END chantest 0"
	finish
fi

while read -r m; do
	insmod "/mods/$m.ko" 2>/dev/null
done </mods/order

# The selftest boot (run.sh): vmcheck.ko makes each listed defect on purpose, which the
# memory checkers must report and the host's log scanner must catch; nothing else runs.
VM_SELFTEST=$(sed -n 's/.*vm.selftest=\([a-z,]*\).*/\1/p' /proc/cmdline)
if [ -n "$VM_SELFTEST" ]; then
	for f in $(echo "$VM_SELFTEST" | tr , ' '); do
		insmod /mods/vmcheck.ko fault="$f" 2>/dev/console
		rmmod vmcheck 2>/dev/console
	done
	finish
fi

# Controllers come up asynchronously: wait for every namespace the host attached.
want=$(cat /etc/vm-namespaces)
i=0
while [ "$(ls /sys/block | grep -c '^nvme')" -lt "$want" ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done

# nsdev SERIAL NSID: the block device of namespace NSID of the controller SERIAL.
nsdev() {
	for c in /sys/class/nvme/nvme*; do
		[ "$(cat "$c/serial" | tr -d ' ')" = "$1" ] || continue
		for n in "$c"/nvme*n*; do
			[ -e "$n/nsid" ] || continue
			[ "$(cat "$n/nsid")" = "$2" ] && basename "$n"
		done
	done
}

# /etc/vm-mounts: "mount-point serial nsid partition fstype options" (serial "virtio": vda)
while read -r mnt serial nsid part fstype opts; do
	case $mnt in '#'*|'') continue ;; esac
	if [ "$serial" = virtio ]; then
		dev=vda
	else
		dev=$(nsdev "$serial" "$nsid")
	fi
	[ "$part" = 0 ] || dev="${dev}p$part"
	[ "$serial" = virtio ] && [ "$part" != 0 ] && dev="vda$part"
	i=0
	while [ ! -b "/dev/$dev" ] && [ $i -lt 50 ]; do	# partitions are scanned late
		sleep 0.1
		i=$((i + 1))
	done
	mkdir -p "$mnt"
	mount -t "$fstype" -o "$opts" "/dev/$dev" "$mnt" || echo "vm-init: cannot mount /dev/$dev on $mnt" >/dev/console
done </etc/vm-mounts

# A file on a loop device (refused): its image lies on the first ext4 file system.
if [ -e /mnt/a1/lp.img ]; then
	mkdir -p /mnt/lp && mount -t ext4 -o loop,ro /mnt/a1/lp.img /mnt/lp
fi

# The memory checkers lib/boot.sh asked for are on (a kernel that ignores one must not
# pass for checked): SLUB debugging of kmalloc caches, page poisoning (which Debian's
# kernels let win over init_on_free, and say so), KFENCE where built, the hung-task
# timeout.
checkers() {
	chan "@@BEGIN $VM_VARIANT.checkers"
	chan "1..4"
	s=/sys/kernel/slab/kmalloc-64
	if [ "$(cat $s/sanity_checks $s/red_zone $s/poison $s/store_user 2>/dev/null | tr -d '\n')" = 1111 ]; then
		chan "ok 1 - slub_debug=FZPU: kmalloc-64 has sanity checks, red zones, poisoning, owners"
	else
		chan "not ok 1 - slub_debug=FZPU is not in effect on kmalloc-64"
	fi
	if dmesg | grep -q 'PAGE_POISONING is on, will take precedence'; then
		chan "ok 2 - page_poison=1 in effect (over init_on_free, as the kernel says)"
	else
		chan "not ok 2 - page_poison=1 is not in effect"
	fi
	if [ ! -d /sys/module/kfence ]; then
		chan "ok 3 # SKIP this kernel has no KFENCE (Debian's 6.1: CONFIG_KFENCE off)"
	elif [ "$(cat /sys/module/kfence/parameters/sample_interval)" = 10 ]; then
		chan "ok 3 - KFENCE samples an allocation every 10 ms"
	else
		chan "not ok 3 - KFENCE sample_interval is $(cat /sys/module/kfence/parameters/sample_interval)"
	fi
	if [ "$(cat /proc/sys/kernel/hung_task_timeout_secs)" = 60 ]; then
		chan "ok 4 - hung tasks reported after 60 s"
	else
		chan "not ok 4 - hung_task_timeout_secs is $(cat /proc/sys/kernel/hung_task_timeout_secs)"
	fi
	chan "@@END $VM_VARIANT.checkers 0"
}
checkers

run_test "$VM_VARIANT.setup" /bin/vm-setup

while read -r phase params tests; do
	case $phase in '#'*|'') continue ;; esac
	[ "$params" = "-" ] && params=""
	export VM_PHASE=$phase
	# Loading is a test: a p2pio.ko that does not load must not turn into skipped tests.
	chan "@@BEGIN $VM_VARIANT.$phase.load"
	chan "1..2"
	# shellcheck disable=SC2086  # the parameters are words
	if insmod /mods/nvdouble.ko $params 2>/dev/console; then chan "ok 1 - insmod nvdouble $params"; else chan "not ok 1 - insmod nvdouble $params"; fi
	if [ ! -e /mods/p2pio.ko ]; then
		chan "ok 2 # SKIP p2pio.ko not built"
	elif insmod /mods/p2pio.ko 2>/dev/console; then
		# what kmod/60-p2pio.rules does with group p2pio (vmlib.h: VM_P2PIO_GID)
		chgrp 990 /dev/p2pio
		chan "ok 2 - insmod p2pio"
	else
		chan "not ok 2 - insmod p2pio"
	fi
	chan "@@END $VM_VARIANT.$phase.load 0"
	for t in $tests; do
		for p in /tests/$t; do
			[ -x "$p" ] || continue
			n=$(basename "$p")
			case ",$VM_SELECT," in ",,"|*",$n,"*) ;; *) continue ;; esac
			run_test "$VM_VARIANT.$phase.$n" "$p"
		done
	done
	# Unloading proves nothing is left: p2pio refuses while anything is open, and the
	# double's pins would keep p2pio's pins (and report a leak at its own unload).
	chan "@@BEGIN $VM_VARIANT.$phase.unload"
	chan "1..2"
	if [ -e /mods/p2pio.ko ]; then
		if rmmod p2pio 2>/dev/console; then chan "ok 1 - rmmod p2pio"; else chan "not ok 1 - rmmod p2pio"; fi
	else
		chan "ok 1 # SKIP p2pio.ko not built"
	fi
	if rmmod nvdouble 2>/dev/console; then chan "ok 2 - rmmod nvdouble"; else chan "not ok 2 - rmmod nvdouble"; fi
	chan "@@END $VM_VARIANT.$phase.unload 0"
done </etc/phases

# Every report (WARN, BUG, SLUB, KFENCE, bad page, soft lockup...) also taints the
# kernel: a second witness beside the host's scan of the log. Out-of-tree (O, 4096) and
# unsigned (E, 8192) modules are the only taints allowed, and the ones a test program
# saw its own call cause and recorded in /tmp/taint-allowed (test-notify: Debian's
# kernels taint X, 65536, when a fanotify permission listener starts).
t=$(cat /proc/sys/kernel/tainted)
allowed=$((4096 | 8192))
if [ -r /tmp/taint-allowed ]; then
	allowed=$((allowed | $(cat /tmp/taint-allowed)))
fi
chan "@@BEGIN $VM_VARIANT.taint"
chan "1..1"
if [ $((t & ~allowed)) = 0 ]; then
	chan "ok 1 - the kernel is not tainted by a report (tainted=$t)"
else
	chan "not ok 1 - the kernel is tainted: $t (see Documentation/admin-guide/tainted-kernels.rst)"
fi
chan "@@END $VM_VARIANT.taint 0"

finish
