# shellcheck shell=bash
# tests/vm/lib/boot.sh - one boot of the test VM, and the checks of its kernel log.

. tests/vm/lib/logcheck.sh

# vm_checkers KVER: the kernel command line that turns on the memory checkers Debian
# builds in. Both kernels: SLUB debugging of every cache (sanity checks, red zones,
# poisoning, owner tracking), page poisoning (checked when a freed page is reused),
# init_on_free (page_poison takes precedence over it for pages, and slab poisoning for
# caches: both kernels log so), a 60 s hung-task timeout. KFENCE only where it is built
# (6.12; Debian's 6.1 has CONFIG_KFENCE off). Neither has lockdep (CONFIG_PROVE_LOCKING).
# The guest checks what took effect (init.sh: the "checkers" test).
vm_checkers() {
	local kver=$1 c="slub_debug=FZPU page_poison=1 init_on_free=1 sysctl.kernel.hung_task_timeout_secs=60"
	grep -qs '^CONFIG_KFENCE=y' "/boot/config-$kver" && c="$c kfence.sample_interval=10"
	echo "$c"
}

# vm_boot VARIANT WORK INITRD OUTDIR [FILESDIR]: boots the VM once, with the kernel
# VM_KVER (default: scripts/kver.sh's). The guest's TAP lands in OUTDIR/*.tap, its
# console (kernel log) in OUTDIR/console.log.
vm_boot() {
	local variant=$1 work=$2 initrd=$3 out=$4 files=${5:-} kver append machine iommu=()
	local sock="$out/chan.sock" gpu="$out/gpumem.bin" qpid rc=0
	kver=${VM_KVER:-$(sh scripts/kver.sh)}
	mkdir -p "$out"
	rm -f "$sock" "$gpu" "$out"/*.tap "$out"/*.rc "$out/verified" "$out/vmhost.eof"
	# The "GPU memory": a host file behind the ivshmem BAR, fresh for every boot.
	truncate -s "${VM_GPU_MIB:-256}M" "$gpu"

	append="console=ttyS0 panic=-1 vm.variant=$variant vm.tests=${VM_TESTS:-} p2pio.dyndbg=+p"
	append="$append $(vm_checkers "$kver")"
	# test-fuzz's seed and length, to replay a run whose seed a failure printed
	[ -n "${VM_FUZZ_SEED:-}" ] && append="$append vm.fuzz_seed=$VM_FUZZ_SEED"
	[ -n "${VM_FUZZ_CALLS:-}" ] && append="$append vm.fuzz_calls=$VM_FUZZ_CALLS"
	# the selftest boot: vmcheck.ko's defects on purpose, nothing else
	[ -n "${VM_SELFTEST:-}" ] && append="$append vm.selftest=$VM_SELFTEST"
	# the channel's test (host/test-slowreader.sh): that many TAP lines, nothing else
	[ -n "${VM_CHANTEST:-}" ] && append="$append vm.chantest=$VM_CHANTEST"
	machine=q35
	if [ "$variant" = iommu ]; then
		# what the feasibility probe used: DMA remapping with interrupt remapping
		machine=q35,kernel-irqchip=split
		iommu=(-device intel-iommu,intremap=on,caching-mode=on)
		append="$append intel_iommu=on iommu=nopt"
	fi

	# shellcheck disable=SC2046  # one argument per word, as vm_disk_args prints them
	timeout "${VM_BOOT_TIMEOUT:-600}" qemu-system-x86_64 -accel tcg -cpu max -m 1536 -smp 2 \
		-machine "$machine" "${iommu[@]}" -display none -no-reboot -nic none \
		-monitor none -kernel "/boot/vmlinuz-$kver" -initrd "$initrd" -append "$append" \
		-serial "file:$out/console.log" \
		-chardev "socket,id=chan,path=$sock,server=on,wait=on" -serial chardev:chan \
		$(vm_disk_args "$work") \
		-object "memory-backend-file,id=gpumem,share=on,mem-path=$gpu,size=${VM_GPU_MIB:-256}M" \
		-device ivshmem-plain,memdev=gpumem \
		>"$out/qemu.log" 2>&1 &
	qpid=$!
	"$VMHOST" "$sock" "$gpu" "$out" ${files:+"$files"} >"$out/vmhost.log" 2>&1 || rc=1
	wait "$qpid" || rc=1
	rm -f "$sock"
	return $rc
}

# vm_died_early OUT: true when the boot whose outputs are in OUT left no TAP file (the
# guest ran no program: none of ours was loaded) and its kernel log has a panic or an
# oops. A hang or a timeout is not this: it gave no such line.
vm_died_early() {
	local out=$1
	! ls "$out"/*.tap >/dev/null 2>&1 &&
		grep -aqE 'Kernel panic|Oops:' "$out/console.log" 2>/dev/null
}
