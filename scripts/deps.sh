#!/bin/sh
# Installs, from Debian's packages, what p2pio's build, tests and demo need.
# Idempotent and fast when everything is present: apt is only run for what is missing.
set -eu

PKGS="make gcc clang llvm libclang-rt-14-dev pkg-config perl python3 \
	libnvme-dev libpci-dev liburing-dev libjson-c-dev \
	linux-image-amd64 linux-headers-amd64 kmod \
	qemu-system-x86 busybox-static cpio e2fsprogs xfsprogs fdisk \
	debhelper dh-dkms dkms dh-python dpkg-dev fakeroot lintian man-db python3-numpy"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing" >&2
	echo "deps: run as root, or: sudo apt-get install$missing" >&2
	exit 1
fi

echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q $missing
