#!/bin/bash
# scripts/check-pkg.sh - make check-pkg: the Debian packages, built and used as a user would.
#
#  1. builds them from the working tree (scripts/build-deb.sh: dpkg-buildpackage -us -uc -b)
#     and runs lintian on them: no error may be reported;
#  2. installs all five on this machine with apt (as root), which has DKMS build the module
#     for the installed kernels (p2pio-dkms's postinst);
#  3. builds tests/pkg/hello.c with `pkg-config --cflags --libs p2pio` alone, outside the
#     tree, and runs it on a model written by the installed p2pio-mkmodel (every byte
#     checked);
#  4. runs the Python tests (python/tests) against the installed python3-p2pio and
#     libp2pio0, with Debian's NumPy;
#  5. checks that every exported function has an installed page that `apropos` lists,
#     that the udev rule and the group p2pio are there;
#  6. has DKMS build and install the module for every kernel scripts/kver.sh --all lists,
#     then builds it once more bound to the NVIDIA test double's symbols, as DKMS binds it
#     to NVIDIA's open driver on a real machine (NVIDIA_SYMVERS, which kmod/Makefile
#     reads), and runs the VM's P2P read test (tests/vm/run.sh, VM_TESTS=test-read, one
#     boot without IOMMU per kernel) with that module in place of kmod/p2pio.ko;
#  7. removes the packages again (also when a step failed).
#
# Prints TAP. Without root, steps 2-7 are skipped (and said to be). PKG_KEEP=1 keeps the
# packages installed.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=build/pkg
PKGS="libp2pio0 libp2pio-dev p2pio-tools p2pio-dkms python3-p2pio"
n=0
fail=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); fail=1; echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $*"; }
step() { echo "# ---- $* ($(( $(date +%s) - start )) s so far)"; }
finish() { echo "1..$n"; echo "# check-pkg took $(( $(date +%s) - start )) s"; exit $fail; }
start=$(date +%s)

step "building the packages"
if bash scripts/build-deb.sh | sed 's/^/# /'; [ "${PIPESTATUS[0]}" = 0 ]; then
	ok "dpkg-buildpackage -us -uc -b built $(ls $OUT/*.deb | grep -vc dbgsym) packages"
else
	notok "dpkg-buildpackage failed (log: $OUT/build.log)"
	finish
fi
debs=""
for p in $PKGS; do
	d=$(ls $OUT/${p}_*.deb 2>/dev/null)
	[ -n "$d" ] || { notok "no $p package was built"; finish; }
	debs="$debs ./$d"
done

step "lintian"
lintian --fail-on error \
	$OUT/*.changes >$OUT/lintian.log 2>&1
lrc=$?
sed 's/^/# /' $OUT/lintian.log
if [ $lrc = 0 ] && ! grep -q '^E:' $OUT/lintian.log; then
	ok "lintian: no errors ($(grep -c '^[WI]:' $OUT/lintian.log) warnings and notes)"
else
	notok "lintian reports errors"
fi

if [ "$(id -u)" != 0 ]; then
	skip "installing the packages needs root: install, pkg-config, Python, man pages, DKMS and VM checks not run"
	finish
fi

cleanup() {
	[ -n "${PKG_KEEP:-}" ] && return
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $PKGS >$OUT/purge.log 2>&1 ||
		echo "# check-pkg: removing the packages failed: $OUT/purge.log"
}
trap cleanup EXIT

step "installing with apt (DKMS builds the module for the installed kernels)"
if DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall $debs >$OUT/install.log 2>&1; then
	ok "apt-get installed $PKGS"
else
	sed 's/^/# /' $OUT/install.log | tail -n 40
	notok "apt-get install failed"
	finish
fi

step "a program built with pkg-config alone"
work=$(mktemp -d "${TMPDIR:-/tmp}/p2pio-pkg.XXXXXX")
cp tests/pkg/hello.c "$work/"
if (cd "$work" && env -u CPATH -u C_INCLUDE_PATH -u LIBRARY_PATH \
		cc -o hello hello.c $(pkg-config --cflags --libs p2pio)) 2>&1 | sed 's/^/# /' &&
		[ -x "$work/hello" ]; then
	ok "cc hello.c \$(pkg-config --cflags --libs p2pio) builds ($(pkg-config --cflags --libs p2pio))"
else
	notok "hello.c does not build with pkg-config --cflags --libs p2pio"
fi
if (cd "$work" && p2pio-mkmodel -q -p tiny -s 11 model.gguf && ./hello model.gguf) 2>&1 |
		sed 's/^/# /'; [ "${PIPESTATUS[0]}" = 0 ]; then
	ok "hello loads a model from the installed p2pio-mkmodel, every byte matches"
else
	notok "hello failed on the installed library"
fi
if ldd "$work/hello" | grep -q "libp2pio.so.0 => /lib/.*-linux-gnu/libp2pio.so.0\|libp2pio.so.0 => /usr/lib/"; then
	ok "hello runs against the installed libp2pio.so.0"
else
	notok "hello does not use the installed libp2pio.so.0: $(ldd "$work/hello" | grep p2pio)"
fi

step "the Python package, installed"
# From a directory without the source's python/p2pio, with Debian's interpreter.
if (cd "$work" && PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -c \
		'import p2pio, sys; sys.exit(not p2pio.__file__.startswith("/usr/lib/python3/dist-packages/"))') &&
	(cd "$work" && env -u P2PIO_LIBRARY PYTHONDONTWRITEBYTECODE=1 P2PIO_BIN=/usr/bin \
		P2PIO_INCLUDE=/usr/include \
		/usr/bin/python3 -m unittest discover -s "$ROOT/python/tests") >$OUT/python.log 2>&1; then
	ok "python/tests pass against python3-p2pio and libp2pio0 ($(grep -o 'Ran [0-9]* tests' $OUT/python.log))"
else
	sed 's/^/# /' $OUT/python.log | tail -n 30
	notok "python/tests fail against the installed packages"
fi
rm -rf "$work"

step "man pages"
missing=""
list=$(apropos p2pio 2>/dev/null)
for s in $(nm -D --defined-only /usr/lib/*/libp2pio.so.0 | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }'); do
	printf '%s\n' "$list" | grep -q "^$s (3)" || missing="$missing $s"
done
for t in /usr/bin/p2pio-*; do
	printf '%s\n' "$list" | grep -q "^$(basename "$t") (1)" || missing="$missing $(basename "$t")(1)"
done
if [ -z "$missing" ]; then
	ok "apropos p2pio lists every exported function and every tool ($(printf '%s\n' "$list" | wc -l) pages)"
else
	notok "apropos p2pio does not list:$missing"
fi
if [ -f /lib/udev/rules.d/60-p2pio.rules ] && grep -q 'GROUP="p2pio"' /lib/udev/rules.d/60-p2pio.rules &&
		getent group p2pio >/dev/null; then
	ok "the udev rule gives /dev/p2pio to the group p2pio, which exists"
else
	notok "udev rule /lib/udev/rules.d/60-p2pio.rules or group p2pio missing"
fi

step "DKMS"
ver=$(dpkg-query -W -f='${Version}' p2pio-dkms)
ver=${ver%%-*}
kernels=$(sh scripts/kver.sh --all 2>/dev/null || sh scripts/kver.sh)
for k in $kernels; do
	if dkms install -m p2pio -v "$ver" -k "$k" >$OUT/dkms-$k.log 2>&1 &&
			dkms status -m p2pio -v "$ver" -k "$k" | grep -q installed &&
			modinfo -k "$k" -F vermagic p2pio | grep -q "^$k "; then
		ok "DKMS built and installed p2pio $ver for $k ($(modinfo -k "$k" -n p2pio))"
	else
		sed 's/^/# /' $OUT/dkms-$k.log | tail -n 30
		notok "DKMS could not build p2pio $ver for $k"
	fi
done

step "the VM's P2P read test with DKMS's module"
# DKMS builds the module again for each kernel, bound to the test double's symbols: the
# double's Module.symvers of that kernel, from the VM suite's per-kernel build
# (build/vm/k/<kernel>/nvdouble, once make check-vm ran) or from tests/vm/nvdouble (built
# here, for scripts/kver.sh's kernel).
vmk=$(sh scripts/kver.sh)
vmkernels=""
for k in $kernels; do
	symvers=$ROOT/build/vm/k/$k/nvdouble/Module.symvers
	if [ ! -f "$symvers" ] && [ "$k" = "$vmk" ]; then
		make -s -f tests/vm/Makefile VMBUILD=build/vm nvdouble >$OUT/nvdouble.log 2>&1 ||
			{ sed 's/^/# /' $OUT/nvdouble.log; notok "the NVIDIA test double does not build"; finish; }
		symvers=$ROOT/tests/vm/nvdouble/Module.symvers
	fi
	if [ ! -f "$symvers" ]; then
		skip "no test double built for $k: its VM test runs where tests/vm/run.sh builds one per kernel"
		continue
	fi
	ko=$OUT/dkms-$k/p2pio.ko
	rm -rf "$OUT/dkms-$k"
	mkdir -p "$OUT/dkms-$k"
	if NVIDIA_SYMVERS=$symvers dkms build -m p2pio -v "$ver" -k "$k" --force \
			>$OUT/dkms-vm-$k.log 2>&1; then
		src=$(ls /var/lib/dkms/p2pio/"$ver"/"$k"/*/module/p2pio.ko* | head -n 1)
		case $src in
		*.xz) xz -dc "$src" >"$ko" ;;
		*.zst) zstd -qdc "$src" >"$ko" ;;
		*) cp "$src" "$ko" ;;
		esac
		if modprobe --dump-modversions "$ko" | grep -q nvidia_p2p_get_pages; then
			ok "DKMS rebuilt p2pio for $k bound to the test double's nvidia_p2p_* symbols"
			vmkernels="$vmkernels $k"
		else
			notok "DKMS's p2pio.ko for $k has no symbol version of nvidia_p2p_get_pages"
		fi
	else
		sed 's/^/# /' $OUT/dkms-vm-$k.log | tail -n 30
		notok "dkms build for $k with the test double's symbols failed"
	fi
	# Kept packages get back the module the package built (removing them removes it).
	if [ -n "${PKG_KEEP:-}" ]; then
		dkms install -m p2pio -v "$ver" -k "$k" --force >>$OUT/dkms-vm-$k.log 2>&1 || true
	fi
done
if [ -n "$vmkernels" ]; then
	# One boot per kernel, no IOMMU, the read test only; {kver} in VM_P2PIO_KO is the
	# kernel being booted. (VM_KERNELS and VM_NO_SELFTEST are for the suite's kernel
	# matrix, where it has one.)
	t0=$(date +%s)
	if VM_P2PIO_KO="$OUT/dkms-{kver}/p2pio.ko" VM_KERNELS="${vmkernels# }" VM_NO_SELFTEST=1 \
			VM_VARIANTS=noiommu VM_TESTS=test-read VM_OUT=$OUT/vm-out \
			tests/vm/run.sh >$OUT/vm.log 2>&1; then
		ok "the VM's P2P read test passes with DKMS's module ($(grep -o 'Files=.*Tests=[0-9]*' $OUT/vm.log), $(( $(date +%s) - t0 )) s)"
	else
		sed 's/^/# /' $OUT/vm.log | tail -n 60
		notok "the VM's P2P read test fails with DKMS's module (log: $OUT/vm.log)"
	fi
fi
finish
