#!/bin/sh
# Installed Debian kernels that have both an image in /boot and their headers
# (/lib/modules/<ver>/build): the kernels the module is built for and the VM boots.
#
#   scripts/kver.sh        the newest one (what `make -C kmod` builds for)
#   scripts/kver.sh --all  every one, oldest first, one a line (the VM matrix:
#                          Debian 12's 6.1 and bookworm-backports' 6.12, scripts/deps.sh)
#
# The host's running kernel (uname -r) is deliberately not used: it may not load modules.
set -eu
all=""
for img in /boot/vmlinuz-*; do
	[ -e "$img" ] || continue
	v=${img#/boot/vmlinuz-}
	[ -d "/lib/modules/$v/build" ] || continue
	all=$(printf '%s\n%s\n' "$all" "$v" | sed '/^$/d' | sort -V)
done
if [ -z "$all" ]; then
	echo "kver: no kernel with both /boot/vmlinuz-<ver> and /lib/modules/<ver>/build;" \
		"install linux-image-amd64 and linux-headers-amd64 (scripts/deps.sh)" >&2
	exit 1
fi
if [ "${1:-}" = --all ]; then
	echo "$all"
else
	echo "$all" | tail -n 1
fi
