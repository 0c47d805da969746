#!/bin/bash
# tests/vm/host/test-logcheck.sh - the guest-log scanner (lib/logcheck.sh) on sample
# lines: every report line below, in the format the 6.1 and 6.12 kernels print it, must
# fail a log alone; every line of a clean boot below (with the checkers' own boot
# messages) must pass. TAP; run by tests/vm/run.sh before any boot, or by
# `prove tests/vm/host/test-logcheck.sh`.
set -u
cd "$(dirname "$0")/../../.."
. tests/vm/lib/logcheck.sh

# one report line a line: what each checker prints first (or alone)
BAD=$(cat <<'EOT'
[   42.118230] BUG: KFENCE: use-after-free read in p2pio_map_put+0x2a/0x90 [p2pio]
[   42.118230] BUG: KFENCE: out-of-bounds write in p2pio_prp_fill+0x61/0x120 [p2pio]
[   42.118230] BUG: KFENCE: invalid free in p2pio_mem_release+0x30/0x70 [p2pio]
[   42.118230] BUG: KFENCE: memory corruption in kfree+0x6d/0x170
[   12.345678] BUG kmalloc-64 (Tainted: G           OE     ): Redzone overwritten
[   12.345678] BUG kmalloc-192 (Not tainted): Poison overwritten
[   12.345678] BUG p2pio_cmd (Tainted: G           OE     ): Object already free
[   12.345678] BUG kmalloc-1k (Tainted: G    B      OE     ): Right Redzone overwritten
[   12.345678] BUG kmalloc-32 (Tainted: G           OE     ): Freechain corrupt
[   13.835148] BUG kmalloc-32 (Tainted: G           OE     ): Object corrupt
[   13.834170] [Right Redzone overwritten] 0xff4a4b04ca57c360-0xff4a4b04ca57c360 @offset=864. First byte 0x42 instead of 0xcc
[   13.834170] [Poison overwritten] 0xff4a4b04ca57c360-0xff4a4b04ca57c361 @offset=864. First byte 0x0 instead of 0x6b
[   12.345678] FIX kmalloc-64: Restoring kmalloc Redzone 0xffff8880041b2c40-0xffff8880041b2c47=0xcc
[   12.345678] FIX kmalloc-64: Marking all objects used
[   12.345678] Slab 0xffffea0000106c80 objects=21 used=21 fp=0x0 flags=0x100000000000200: Invalid object pointer 0x00000000aabbccdd
[   12.345678] Objects remaining in kmalloc-64 on __kmem_cache_shutdown()
[   30.000001] pagealloc: memory corruption
[   30.000001] pagealloc: single bit error
[   30.000001] BUG: Bad page state in process test-fuzz  pfn:104a3
[   30.000001] WARNING: CPU: 1 PID: 213 at kmod/mem.c:120 p2pio_mem_put+0x45/0x60 [p2pio]
[   30.000001] WARNING: possible circular locking dependency detected
[   30.000001] WARNING: inconsistent lock state
[   30.000001] WARNING: possible recursive locking detected
[   30.000001] WARNING: bad unlock balance detected!
[   30.000001] WARNING: suspicious RCU usage
[   30.000001] inconsistent lock state
[   30.000001] possible circular locking dependency detected
[  180.000001] INFO: task test-fuzz:213 blocked for more than 60 seconds.
[  180.000001] task:test-fuzz state:D stack:0 pid:213 blocked for more than 60 seconds
[  180.000001] watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [test-fuzz:213]
[  180.000001] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:
[  180.000001] BUG: workqueue lockup - pool cpus=1 node=0 flags=0x0 nice=0 stuck for 31s!
[   30.000001] BUG: kernel NULL pointer dereference, address: 0000000000000008
[   30.000001] BUG: unable to handle page fault for address: ffff888004000000
[   30.000001] Oops: 0002 [#1] PREEMPT SMP NOPTI
[   30.000001] general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI
[   30.000001] kernel BUG at mm/slub.c:432!
[   30.000001] Call Trace:
[   30.000001]  <TASK>Call Trace:
[   30.000001] Kernel panic - not syncing: Fatal exception
[   30.000001] list_del corruption. prev->next should be ffff888004a1b2c0, but was dead000000000100
[   30.000001] list_add corruption. next->prev should be prev (ffff888004a1b2c0), but was 0000000000000000
[   30.000001] refcount_t: underflow; use-after-free.
[   30.000001] BUG: sleeping function called from invalid context at mm/slab.h:723
[   30.000001] BUG: scheduling while atomic: test-fuzz/213/0x00000002
[   30.000001] DMAR: DRHD: handling fault status reg 2
[   30.000001] DMAR: [DMA Write NO_PASID] Request device [00:04.0] fault addr 0xfee00000 [fault reason 0x05] PTE Write access is not set
[   30.000001] nvdouble: MISUSE: put_pages of a pin already put
[   30.000001] nvdouble: LEAK: 2 pins at unload
[   30.000001] ** 12 printk messages dropped **
EOT
)

# lines of clean boots (6.1 and 6.12, both variants), the checkers' own included
GOOD=$(cat <<'EOT'
[    0.148591] Kernel command line: console=ttyS0 panic=-1 vm.variant=noiommu vm.tests= p2pio.dyndbg=+p slub_debug=FZPU page_poison=1 init_on_free=1 sysctl.kernel.hung_task_timeout_secs=60 kfence.sample_interval=10
[    0.175205] mem auto-init: stack:all(zero), heap alloc:on, heap free:off
[    0.059112] mem auto-init: SLAB_POISON will take precedence over init_on_alloc/init_on_free
[    0.175205] mem auto-init: CONFIG_PAGE_POISONING is on, will take precedence over init_on_alloc and init_on_free
[    0.229113] SLUB: HWalign=64, Order=0-3, MinObjects=0, CPUs=2, Nodes=1
[    0.229113] **********************************************************
[    0.229113] **   NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE   **
[    0.229113] ** This system shows unhashed kernel memory addresses   **
[    0.229113] ** via the console, logs, and other interfaces. This    **
[    0.229113] ** might reduce the security of your system.            **
[    0.312345] kfence: initialized - using 2097152 bytes for 255 objects at 0x(____ptrval____)-0x(____ptrval____)
[    0.412345] Unknown kernel command line parameters "vm.variant=noiommu", will be passed to user space.
[   16.041822] nvdouble: loading out-of-tree module taints kernel.
[   16.045471] nvdouble: module verification failed: signature and/or required key missing - tainting kernel
[   16.100000] p2pio: refused /mnt/vb/vb-small: not on an NVMe namespace
[   16.100000] nvme nvme3: 1/0/0 default/read/poll queues
[   16.100000] EXT4-fs (nvme0n1p1): mounted filesystem with ordered data mode. Quota mode: none.
[   16.100000] XFS (nvme0n2p1): Mounting V5 Filesystem
[   16.100000] pci 0000:00:07.0: Removing from iommu group 6
[   16.100000] p2pio: 20 callbacks suppressed
[   16.100000] DMAR: Intel(R) Virtualization Technology for Directed I/O
[   16.100000] x86/cpu: VMX (outside TXT) disabled by BIOS
EOT
)

n=0
fail=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
check() {	# check WANT LINE: WANT "bad" or "good"
	local want=$1 line=$2 got
	n=$((n + 1))
	printf '%s\n' "[    1.000000] a clean line" "$line" "[    2.000000] another" >"$log"
	if vm_log_check "$log" >/dev/null; then got=good; else got=bad; fi
	if [ "$got" = "$want" ]; then
		echo "ok $n - $want: $line"
	else
		echo "not ok $n - taken as $got: $line"
		fail=1
	fi
}
while IFS= read -r l; do check bad "$l"; done <<<"$BAD"
while IFS= read -r l; do check good "$l"; done <<<"$GOOD"

# the whole clean boot at once passes, and a report inside it is printed
n=$((n + 1))
printf '%s\n' "$GOOD" >"$log"
if vm_log_check "$log" >/dev/null; then echo "ok $n - a clean boot's log passes"; else echo "not ok $n - a clean boot's log fails"; fail=1; fi
n=$((n + 1))
printf '%s\n%s\n%s\n' "$GOOD" "[   12.3] BUG kmalloc-64 (Tainted: G OE): Redzone overwritten" "$GOOD" >"$log"
out=$(vm_log_check "$log")
if [ $? != 0 ] && [ "$out" = "[   12.3] BUG kmalloc-64 (Tainted: G OE): Redzone overwritten" ]; then
	echo "ok $n - a report in a clean boot's log fails it and is the line printed"
else
	echo "not ok $n - a report in a clean boot's log: printed '$out'"; fail=1
fi
echo "1..$n"
exit $fail
