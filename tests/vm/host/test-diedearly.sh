#!/bin/bash
# tests/vm/host/test-diedearly.sh - vm_died_early (lib/boot.sh), which decides whether a
# boot is booted once more: only when the kernel panicked or oopsed before the guest ran
# any program (no TAP file: none of our modules was loaded). TAP; run by tests/vm/run.sh
# before any boot, or by `prove tests/vm/host/test-diedearly.sh`.
set -u
cd "$(dirname "$0")/../../.."
. tests/vm/lib/boot.sh

d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
n=0
check() { # want(0: died early, 1: not) name
	local got=1
	vm_died_early "$d" && got=0
	n=$((n + 1))
	if [ "$got" = "$1" ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}

printf '[    3.026300] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n[    3.033383] Kernel panic - not syncing: Fatal exception in interrupt\n' >"$d/console.log"
check 0 "an oops and a panic, no program ran: booted once more"
: >"$d/noiommu.checkers.tap"
check 1 "the same after a program ran: a finding, not booted again"
rm -f "$d"/*.tap
printf '[    5.000000] Run /init as init process\n' >"$d/console.log"
check 1 "no panic and no program (a hang or a timeout): not booted again"
printf 'Kernel panic - not syncing: VFS: Unable to mount root fs\n' >"$d/console.log"
check 0 "a panic before init: booted once more"
rm -f "$d/console.log"
check 1 "no log at all: not booted again"
echo "1..$n"
