# shellcheck shell=bash
# tests/vm/lib/logcheck.sh - the lines of a guest kernel log that fail the run, whatever
# the tests said. tests/vm/host/test-logcheck.sh checks this list against real report
# lines of each checker (and against a clean boot's lines, which must pass).
#
# What writes them (the VM boots with the checkers of lib/boot.sh's vm_checkers):
#   WARN()/BUG()/oops        "WARNING: CPU: ...", "kernel BUG at ...", "BUG: unable to ...",
#                            "Oops:", "general protection fault", "Call Trace:"
#   KFENCE (6.12)            "BUG: KFENCE: use-after-free read in ..."
#   SLUB (slub_debug=FZPU)   "BUG kmalloc-64 (Tainted: G O): Redzone overwritten",
#                            "Poison overwritten", "Object already free", "FIX kmalloc-64: ..."
#   page_poison=1            "pagealloc: memory corruption", "pagealloc: single bit error"
#   lockdep (not in Debian's kernels: CONFIG_PROVE_LOCKING is off; kept for other builds)
#                            "WARNING: possible circular locking dependency detected",
#                            "WARNING: inconsistent lock state", ...
#   hung tasks (60 s)        "INFO: task X:123 blocked for more than 60 seconds."
#   lockups, RCU stalls, list/refcount corruption, sleeping in atomic context,
#   IOMMU faults, the NVIDIA test double's MISUSE/LEAK reports, lost console lines.
VM_LOG_BAD='BUG:|(^|\] )BUG [^ ]+ |(^|\] )FIX [^ ]+: |KFENCE:|'\
'Redzone overwritten|Poison overwritten|Padding overwritten|Object padding|'\
'Object already free|Freechain corrupt|Freepointer corrupt|Invalid object pointer|'\
'Objects remaining|Wrong object count|pagealloc: (memory corruption|single bit error)|'\
'WARNING:|Oops|general protection fault|Call Trace|kernel BUG|Kernel panic|'\
'lockdep|possible circular locking|possible recursive locking|inconsistent lock state|'\
'bad unlock balance|lock held when returning|suspicious RCU usage|'\
'blocked for more than|INFO: task .* blocked|soft lockup|hard LOCKUP|rcu: INFO|'\
'self-detected stall|detected stalls|workqueue lockup|KASAN|UBSAN|'\
'list_add corruption|list_del corruption|refcount_t:|'\
'DMAR: DRHD: handling fault|DMAR: \[DMA (Read|Write)|nvdouble: MISUSE|nvdouble: LEAK|'\
'BAD page|Bad page|double free|use-after-free|scheduling while atomic|'\
'sleeping function called from invalid context|printk messages dropped'

# vm_log_check LOG: prints the offending lines; fails if there are any.
vm_log_check() {
	! grep -aE "$VM_LOG_BAD" "$1"
}
