#!/usr/bin/env python3
"""A table of the decodes of scripts/perf-moe-device.sh calls, one row per run.

    scripts/moe-table.py [--pairs A,B] DIR [DIR ...]

Each DIR is a call's results (the tarball's moe/ folder): its log.txt gives the order the
runs ran in, each `moon-TAG.txt` or `run1-TAG.txt` is a `p2pio-moe run` report. Prints a
Markdown table: the call, the run, tokens/s, the ratio to the bound (and the bound), hits
(late), missed layers a token, hints withdrawn / cut short / hastened, the loads' read
rate while any were in flight, the path's expert-sized reads 2 / 8 / 32 deep, a miss
batch's time from its require (and its bytes / the ceiling), the wait a missed layer
costs beyond its bytes, and the bytes checked and wrong. A run that did not finish is a
row that says so.

With --pairs A,B (two tags, "-r2"-style round suffixes stripped), the runs of A and B
taken in alternation (scripts/perf-moe-device.sh ROUNDS=N) are paired in running order,
each A with the B next to it, and the ratios' differences B - A are summarised: a change
is only told apart from the machine's drift when the pairs agree.
"""
import os
import re
import statistics
import sys

NUM = r"([0-9]+(?:\.[0-9]+)?)"

# Each field: (line key, regex on that line, names of the captured groups).
FIELDS = [
    ("decode", NUM + r" tokens/s", ["tps"]),
    ("bound", NUM + r" tokens/s = .*achieved " + NUM + r" of it", ["bound", "of_bound"]),
    ("hits", NUM + r"% \([0-9]+ of [0-9]+; ([0-9]+) late\)", ["hits", "late"]),
    ("hits", r"in " + NUM + r" of [0-9]+ layers", ["missed_layers"]),
    ("hits", r"([0-9]+) withdrawn unread, ([0-9]+) cut short, ([0-9]+) hastened",
     ["withdrawn", "cut_short", "hastened"]),
    ("reads", NUM + r" GB/s while any were", ["gbps"]),
    ("depths", r"2 deep " + NUM + r" GB/s, 4 deep " + NUM + r" GB/s, 8 deep " + NUM +
     r" GB/s, 32 deep " + NUM + r" GB/s", ["d2", "d4", "d8", "d32"]),
    ("batches", r"each done ([0-9]+) us after its require, its bytes / the ceiling ([0-9]+) us",
     ["batch_us", "batch_bytes_us"]),
    # Negative where the layers waited less than their bytes / the ceiling (a disk that
    # read faster than its ceiling's sweep): the sign is part of the number.
    ("waits", r"(-?[0-9]+) us per missed layer", ["wait_us"]),
    ("verify", r"(\S+ \S+) checked by .*, ([0-9]+) bytes wrong", ["checked", "wrong"]),
]


def parse_report(text):
    """The fields of one `p2pio-moe run` report (strings), those its lines have."""
    out = {}
    for line in text.splitlines():
        key = line.split(" ", 1)[0]
        for fkey, rx, names in FIELDS:
            if key != fkey:
                continue
            m = re.search(rx, line)
            if m:
                out.update(zip(names, m.groups()))
    return out


def runs_of(dirpath):
    """[(tag, report path)] in the order log.txt says they ran (else by name)."""
    order = []
    log = os.path.join(dirpath, "log.txt")
    if os.path.exists(log):
        with open(log) as f:
            for line in f:
                m = re.match(r"== \S+ \+[0-9]+s moon (\S+) \(", line)
                if m and m.group(1) not in order:
                    order.append(m.group(1))
    found = {}
    for name in sorted(os.listdir(dirpath)):
        m = re.match(r"(moon|run1)-(.+)\.txt$", name)
        if m:
            found[m.group(2)] = os.path.join(dirpath, name)
    tags = [t for t in order if t in found] + [t for t in found if t not in order]
    return [(t, found[t]) for t in tags]


def base_tag(tag):
    """The tag without a round suffix (-r2, -r3, ...)."""
    return re.sub(r"-r[0-9]+$", "", tag)


def row(call, tag, f):
    def g(k, fmt="{}"):
        return fmt.format(f[k]) if k in f else "-"
    if "tps" not in f:
        return "| %s | %s | did not finish | | | | | | | | | |" % (call, tag)
    return ("| %s | %s | %s | %s (%s) | %s %% (%s) | %s | %s / %s / %s | %s | %s / %s / %s | "
            "%s (%s) | %s | %s, %s wrong |") % (
        call, tag, g("tps"), g("of_bound"), g("bound"), g("hits"), g("late"),
        g("missed_layers"), g("withdrawn"), g("cut_short"), g("hastened"), g("gbps"),
        g("d2"), g("d8"), g("d32"), g("batch_us"), g("batch_bytes_us"), g("wait_us"),
        g("checked"), g("wrong"))


HEADER = ("| call | run | tokens/s | of bound (bound) | hits (late) | missed layers / token | "
          "withdrawn / cut short / hastened | GB/s while loads in flight | path 2 / 8 / 32 "
          "deep, GB/s | miss batch done, us (bytes / ceiling) | wait per missed layer, us | "
          "checked |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def pairs(runs, a, b):
    """Each run of @a with the run of @b next to it in running order: [(fa, fb)]."""
    seq = [(base_tag(t), f) for t, f in runs if base_tag(t) in (a, b)]
    out = []
    i = 0
    while i + 1 < len(seq):
        (t1, f1), (t2, f2) = seq[i], seq[i + 1]
        if {t1, t2} == {a, b}:
            out.append((f1, f2) if t1 == a else (f2, f1))
            i += 2
        else:
            i += 1
    return out


def main(argv):
    args = argv[1:]
    want = None
    if args[:1] == ["--pairs"] and len(args) > 1:
        want = args[1].split(",")
        args = args[2:]
        if len(want) != 2:
            print("moe-table: --pairs A,B names two runs", file=sys.stderr)
            return 2
    if not args:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    print(HEADER)
    allruns = []
    for d in args:
        call = os.path.basename(os.path.normpath(d))
        if call == "moe":
            call = os.path.basename(os.path.dirname(os.path.normpath(d)))
        for tag, path in runs_of(d):
            with open(path) as f:
                fields = parse_report(f.read())
            print(row(call, tag, fields))
            allruns.append((tag, fields))
    if want:
        ps = [(fa, fb) for fa, fb in pairs(allruns, want[0], want[1])
              if "of_bound" in fa and "of_bound" in fb]
        if not ps:
            print("\nno pairs of %s and %s next to each other" % tuple(want))
            return 1
        d = [float(fb["of_bound"]) - float(fa["of_bound"]) for fa, fb in ps]
        t = [float(fb["tps"]) / float(fa["tps"]) for fa, fb in ps]
        print("\n%s against %s, %d pairs: of bound %+.3f median (%+.3f to %+.3f); tokens/s "
              "x %.3f median (%.3f to %.3f)" % (want[1], want[0], len(ps), statistics.median(d),
                                               min(d), max(d), statistics.median(t), min(t),
                                               max(t)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
