#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""perf-fresh-read.py FILE THREADS - the baseline for a load into new host memory."""
# Plain buffered reads of a whole file into fresh anonymous memory (huge pages advised, as
# p2pio_buf_alloc does), THREADS threads x 4 MiB preadv: the baseline a host-memory load
# pays the same page faults and zeroing as.
import mmap, os, sys, threading, time
path, nthreads = sys.argv[1], int(sys.argv[2])
size = os.path.getsize(path)
fd = os.open(path, os.O_RDONLY)
t0 = time.perf_counter(); c0 = time.process_time()
buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
if os.environ.get("NOHUGE") is None:
    buf.madvise(mmap.MADV_HUGEPAGE)
mv = memoryview(buf)
CH = 4 << 20
nxt = [0]; lock = threading.Lock()
def work():
    while True:
        with lock:
            off = nxt[0]; nxt[0] += CH
        if off >= size: return
        n = min(CH, size - off)
        got = 0
        while got < n:
            got += os.preadv(fd, [mv[off + got:off + n]], off + got)
ts = [threading.Thread(target=work) for _ in range(nthreads)]
[t.start() for t in ts]; [t.join() for t in ts]
dt = time.perf_counter() - t0; cpu = time.process_time() - c0
print('{"mode":"fresh-read","threads":%d,"bytes":%d,"seconds":%.4f,"gbps":%.3f,"cpu_seconds":%.3f}' % (nthreads, size, dt, size / dt / 1e9, cpu))
