# shellcheck shell=bash
# tests/vm/lib/initramfs.sh - the guest's initramfs: busybox, the distro's modules in
# dependency order, the test double and p2pio, the guest programs, /etc files.

# Distro modules the guest loads, by name; their dependencies come first, in the order
# `modprobe --show-depends` prints them.
VM_MODULES="nvme ext4 xfs virtio_pci virtio_blk loop t10-pi crc64-rocksoft"

# vm_module_order KVER: "path" lines, dependencies first, each module once.
vm_module_order() {
	local kver=$1 m
	for m in $VM_MODULES; do
		# built into some kernels (t10-pi in 6.12): nothing to load then
		modprobe -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" { print $2 }'
	done | awk '!seen[$0]++'
}

# vm_make_initramfs OUT KVER ETCDIR VMBUILD [P2PIO_KO]
# VM_PHASES names another phases file (the demo's), VM_NVDOUBLE_KO another build of the
# test double (run.sh builds one per kernel), VM_VMCHECK_KO the selftest's vmcheck.ko.
vm_make_initramfs() {
	local out=$1 kver=$2 etc=$3 vmbuild=$4 p2pio=${5:-} root m b
	root=$(mktemp -d "${TMPDIR:-/tmp}/p2pio-initramfs.XXXXXX")
	mkdir -p "$root"/{bin,sbin,etc,mods,tests,proc,sys,dev,tmp,mnt}
	chmod 0755 "$root"	# mktemp made it 0700: unprivileged tests must get through /
	cp /bin/busybox "$root/bin/busybox"
	cp tests/vm/guest/init.sh "$root/init"
	chmod 0755 "$root/init"
	cp "$etc"/* "$root/etc/"
	grep -v '^#' "${VM_PHASES:-tests/vm/guest/phases}" | sed '/^[[:space:]]*$/d' >"$root/etc/phases"
	echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
	echo "nobody:x:65534:65534:nobody:/:/bin/sh" >>"$root/etc/passwd"
	echo "root:x:0:" >"$root/etc/group"
	echo "nogroup:x:65534:" >>"$root/etc/group"

	vm_module_order "$kver" | while read -r m; do
		b=$(basename "$m")
		b=${b%.ko*}
		case $m in
		*.ko.xz) xz -dc "$m" >"$root/mods/$b.ko" ;;
		*.ko.zst) zstd -qdc "$m" >"$root/mods/$b.ko" ;;
		*) cp "$m" "$root/mods/$b.ko" ;;
		esac
		echo "$b" >>"$root/mods/order"
	done
	cp "${VM_NVDOUBLE_KO:-tests/vm/nvdouble/nvdouble.ko}" "$root/mods/nvdouble.ko"
	if [ -n "${VM_VMCHECK_KO:-}" ]; then
		cp "$VM_VMCHECK_KO" "$root/mods/vmcheck.ko"
	fi
	if [ -n "$p2pio" ] && [ -f "$p2pio" ]; then
		cp "$p2pio" "$root/mods/p2pio.ko"
	fi
	# the programs of today's sources only, not stale binaries of removed ones
	for src in tests/vm/guest/*.c; do
		b=$(basename "$src" .c)
		[ "$b" = vmlib ] && continue
		case $b in
		test-* | final-* | demo-*) cp "$vmbuild/guest/$b" "$root/tests/" ;;
		*) cp "$vmbuild/guest/$b" "$root/bin/" ;;
		esac
	done
	(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 >"$out"
	rm -rf "$root"
}
