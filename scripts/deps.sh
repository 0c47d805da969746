#!/bin/sh
# Installs, from Debian's packages, what p2pio's build, tests and demo need.
# Idempotent and fast when everything is present: apt is only run for what is missing.
#
# The VM tests boot two kernels (scripts/kver.sh --all): Debian 12's own (6.1,
# linux-image-amd64) and bookworm-backports' 6.12. The backports metapackage has the
# same name as Debian 12's, so the 6.12 kernel is installed by the versioned names its
# metapackage depends on; bookworm-backports is added to apt's sources if missing.
set -eu

PKGS="make gcc clang llvm libclang-rt-14-dev pkg-config perl python3 \
	libnvme-dev libpci-dev liburing-dev libjson-c-dev \
	linux-image-amd64 linux-headers-amd64 kmod pahole \
	qemu-system-x86 busybox-static cpio xz-utils e2fsprogs xfsprogs fdisk \
	debhelper dh-dkms dkms dh-python dpkg-dev fakeroot lintian man-db python3-numpy"
BACKPORTS=bookworm-backports
BACKPORTS_LIST=/etc/apt/sources.list.d/p2pio-bookworm-backports.sources

installed() {
	dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=""
for p in $PKGS; do
	installed "$p" || missing="$missing $p"
done

# the backports kernel: any installed linux-image-6.12.* with its headers will do
want_bpo=""
. /etc/os-release
if [ "${VERSION_CODENAME:-}" = bookworm ] &&
	! { dpkg-query -W -f='${Package} ${Status}\n' 'linux-image-6.12*-amd64' 2>/dev/null |
		grep -q ' install ok installed$' &&
	    dpkg-query -W -f='${Package} ${Status}\n' 'linux-headers-6.12*-amd64' 2>/dev/null |
		grep -q ' install ok installed$'; }; then
	want_bpo=1
fi

if [ -z "$missing" ] && [ -z "$want_bpo" ]; then
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	[ -n "$missing" ] && echo "deps: missing Debian packages:$missing" >&2
	[ -n "$want_bpo" ] && echo "deps: missing the $BACKPORTS kernel (linux-image-amd64 and linux-headers-amd64 of $BACKPORTS)" >&2
	echo "deps: run as root (scripts/deps.sh)" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if [ -n "$want_bpo" ] &&
	! grep -rqs "$BACKPORTS" /etc/apt/sources.list /etc/apt/sources.list.d/; then
	echo "deps: adding $BACKPORTS to apt's sources ($BACKPORTS_LIST)"
	cat >"$BACKPORTS_LIST" <<EOT
Types: deb
URIs: http://deb.debian.org/debian
Suites: $BACKPORTS
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
fi
apt-get update -q
if [ -n "$want_bpo" ]; then
	# linux-image-amd64/bookworm-backports depends on linux-image-6.12.N+debV-amd64
	for meta in linux-image-amd64 linux-headers-amd64; do
		dep=$(apt-cache show "$meta/$BACKPORTS" |
			sed -n 's/^Depends: \(linux-[a-z]*-[0-9][^ ,]*\).*/\1/p' | head -n 1)
		if [ -z "$dep" ]; then
			echo "deps: $meta not found in $BACKPORTS" >&2
			exit 1
		fi
		missing="$missing $dep"
	done
fi
echo "deps: installing$missing"
# shellcheck disable=SC2086  # package names are words
apt-get install -y -q $missing
