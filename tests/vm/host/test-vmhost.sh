#!/bin/bash
# tests/vm/host/test-vmhost.sh - host/vmhost on hand-made guest output, without a VM: a
# Python stand-in for QEMU's chardev socket sends the lines, answers nothing, and reads
# vmhost's replies. A check request that lands inside a TAP line (a guest thread's
# request flushed into another thread's half-written line, which tap.h and vmlib now
# lock against) must fail the run, not pass it with the check never run; the same run
# with the request on its own line must pass, its check counted. TAP; run by
# tests/vm/run.sh before any boot, or by `prove tests/vm/host/test-vmhost.sh`.
set -u
cd "$(dirname "$0")/../../.."
VMHOST=${VMHOST:-${VMBUILD:-build/vm}/host/vmhost}

if [ ! -x "$VMHOST" ] || ! command -v python3 >/dev/null; then
	echo "1..0 # SKIP no $VMHOST (make -f tests/vm/Makefile) or no python3"
	exit 0
fi
echo "1..6"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
truncate -s 4096 "$tmp/bar"

# run NAME LINE...: vmhost reads the lines (its verified file and t.tap in $tmp/NAME);
# the stand-in answers the syncs' and @@DONE's replies by reading them, then hangs up.
run() {
	local name=$1 sock=$tmp/$1.sock
	shift
	mkdir -p "$tmp/$name"
	python3 - "$sock" "$@" >"$tmp/$name.replies" <<'EOP' &
import socket, sys
path, lines = sys.argv[1], sys.argv[2:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
c, _ = s.accept()
c.settimeout(20)
got = b""
for line in lines:
    c.sendall(line.encode() + b"\n")
    if line.startswith("@@S ") or line == "@@DONE":
        want = b"@@R " + (line[4:].encode() if line != "@@DONE" else b"done")
        while want not in got:
            chunk = c.recv(4096)
            if not chunk:
                sys.exit("vmhost hung up")
            got += chunk
sys.stdout.write(got.decode())
c.close()
EOP
	local py=$!
	timeout 30 "$VMHOST" "$sock" "$tmp/bar" "$tmp/$name" >"$tmp/$name.out" 2>&1
	wait $py
}

run plain "@@BEGIN t" "ok 1 - a line" "@@Z 1 0 10 0" "@@S 2" "ok 2 - another" \
	"@@END t 0" "@@DONE"
read -r bytes reqs failed <"$tmp/plain/verified"
[ "$failed" = 0 ] && [ "$reqs" -ge 1 ] && [ "$bytes" = 16 ] &&
	echo "ok 1 - a request on its own line is checked: $reqs range(s), $bytes bytes, none failed" ||
	echo "not ok 1 - a request on its own line: verified '$bytes $reqs $failed'"
[ "$(grep -c '^ok' "$tmp/plain/t.tap")" = 2 ] &&
	echo "ok 2 - both TAP lines reach t.tap" || echo "not ok 2 - t.tap: $(cat "$tmp/plain/t.tap")"

run embedded "@@BEGIN t" "ok 1 - a line" "ok 2 - half a line@@Z 1 0 10 0" "@@S 2" \
	"@@END t 0" "@@DONE"
read -r bytes reqs failed <"$tmp/embedded/verified"
[ "$failed" -ge 1 ] 2>/dev/null &&
	echo "ok 3 - a request inside a TAP line fails the run ($failed failed)" ||
	echo "not ok 3 - a request inside a TAP line passed: verified '$bytes $reqs $failed'"
grep -q "@@R 2 BAD .*a request inside another line" "$tmp/embedded.replies" &&
	echo "ok 4 - the next sync's answer says so" ||
	echo "not ok 4 - the sync's answer: $(cat "$tmp/embedded.replies")"

# A line over vmhost's 64 KiB buffer: before, its pieces were each taken as a line (here
# the tail, a result of its own); now the line is dropped whole and the run fails.
long="# $(head -c 70000 /dev/zero | tr '\0' x)ok 9 - the tail of a long line"
run long "@@BEGIN t" "ok 1 - a line" "$long" "ok 2 - after it" "@@S 2" "@@END t 0" "@@DONE"
read -r bytes reqs failed <"$tmp/long/verified"
[ "$failed" -ge 1 ] 2>/dev/null && ! grep -q "ok 9" "$tmp/long/t.tap" &&
	echo "ok 5 - a line over 64 KiB fails the run, no piece of it taken as a line ($failed failed)" ||
	echo "not ok 5 - a line over 64 KiB: verified '$bytes $reqs $failed', t.tap: $(grep -c . "$tmp/long/t.tap") lines"
[ "$(grep -c '^ok' "$tmp/long/t.tap")" = 2 ] && grep -q "ok 2 - after it" "$tmp/long/t.tap" &&
	echo "ok 6 - the lines around it still reach t.tap" ||
	echo "not ok 6 - t.tap: $(head -c 300 "$tmp/long/t.tap")"
