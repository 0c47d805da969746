#!/bin/sh
# Prints the newest installed Debian kernel that has both an image in /boot and its
# headers (/lib/modules/<ver>/build): the kernel the module is built for and the VM boots.
# The host's running kernel (uname -r) is deliberately not used: it may not load modules.
set -eu
best=""
for img in /boot/vmlinuz-*; do
	[ -e "$img" ] || continue
	v=${img#/boot/vmlinuz-}
	[ -d "/lib/modules/$v/build" ] || continue
	best=$(printf '%s\n%s\n' "$best" "$v" | sed '/^$/d' | sort -V | tail -n 1)
done
if [ -z "$best" ]; then
	echo "kver: no kernel with both /boot/vmlinuz-<ver> and /lib/modules/<ver>/build;" \
		"install linux-image-amd64 and linux-headers-amd64 (scripts/deps.sh)" >&2
	exit 1
fi
echo "$best"
