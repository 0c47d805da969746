#!/bin/bash
# scripts/build-deb.sh - Debian packages of the working tree (make deb).
#
# Copies the files git knows (tracked and new, not ignored) to build/pkg/src, so that
# build outputs of the tree never reach a package, and runs dpkg-buildpackage -us -uc -b
# there: the .deb files land in build/pkg/. DEB_OUT names another directory.
set -eu
cd "$(dirname "$0")/.."
OUT=${DEB_OUT:-build/pkg}
rm -rf "$OUT"
mkdir -p "$OUT/src"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
	[ -e "$f" ] && printf '%s\0' "$f"
done | xargs -0 cp -P --parents -t "$OUT/src"
t0=$(date +%s)
(cd "$OUT/src" && dpkg-buildpackage -us -uc -b -j"$(nproc)") >"$OUT/build.log" 2>&1 || {
	tail -n 60 "$OUT/build.log"
	echo "build-deb: dpkg-buildpackage failed; the whole log is $OUT/build.log" >&2
	exit 1
}
echo "build-deb: packages in $OUT/ ($(( $(date +%s) - t0 )) s):"
ls "$OUT"/*.deb
