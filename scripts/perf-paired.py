#!/usr/bin/env python3
"""The summary of scripts/perf-paired.sh: ratios taken inside each round, then their medians.

    scripts/perf-paired.py PAIRED.jsonl

Each line of PAIRED.jsonl is one read of the whole file: {"round", "kind" (load, storage or
cufile), "shape", "gbps", "cpu_s_per_gb"}, and for a load its "variant" (the p2pio-load
options it ran with; "" or none: the defaults). A round's ceiling is its fastest storage
read and its cuFile its fastest cuFile read, so both are at their best shape of the round;
the ratios divide results of one round, taken seconds apart, and the medians are over the
rounds that have both sides of a ratio. A load with a wrong byte is reported and not
counted. The table follows the headline load: the defaults where they ran, else the first
variant in the file. Prints a table of the rounds, a median line per ratio, with several
variants a line of medians for each, a line per candidate shape, and one "paired-json"
line with all of it.
"""
import json
import statistics
import sys


def load_rounds(lines):
    """{round: {"load": rec, "loads": {variant: rec}, "storage": [rec...], "cufile": [rec...]}}
    from JSON lines; "load" is the headline variant's."""
    rounds = {}
    order = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        rec = json.loads(line)
        r = rounds.setdefault(int(rec["round"]),
                              {"load": None, "loads": {}, "storage": [], "cufile": []})
        if rec["kind"] == "load":
            v = rec.get("variant") or ""
            if v not in order:
                order.append(v)
            # A load that put a wrong byte in place is not a load: reported, not counted.
            if rec.get("mismatches"):
                r.setdefault("wrong", []).append(rec)
                continue
            r["loads"][v] = rec
        elif rec["kind"] in ("storage", "cufile"):
            r[rec["kind"]].append(rec)
        else:
            raise ValueError("unknown kind %r" % rec["kind"])
    # The headline: the defaults where one of their loads counts, else the first variant
    # that has one (a variant whose every load had a wrong byte heads nothing).
    valid = [v for v in order if any(v in r["loads"] for r in rounds.values())]
    head = "" if "" in valid else (valid[0] if valid else "")
    for r in rounds.values():
        r["head"] = head
        r["load"] = r["loads"].get(head)
    return rounds


def variants(rounds):
    """The load variants that ran, counted or not: the headline first, then in order of
    first appearance."""
    seen = []
    for n in sorted(rounds):
        r = rounds[n]
        for v in list(r["loads"]) + [w.get("variant") or "" for w in r.get("wrong", [])]:
            if v not in seen:
                seen.append(v)
    head = next(iter(rounds.values()))["head"] if rounds else ""
    return sorted(seen, key=lambda v: v != head)


def fastest(recs):
    return max(recs, key=lambda x: x["gbps"]) if recs else None


def ratio(a, b, key="gbps"):
    if a is None or b is None or not b[key]:
        return None
    return a[key] / b[key]


RATIOS = (
    ("load_over_storage", lambda ld, st, cf: ratio(ld, st)),
    ("load_over_cufile", lambda ld, st, cf: ratio(ld, cf)),
    ("cufile_over_storage", lambda ld, st, cf: ratio(cf, st)),
    ("cpu_load_over_cufile", lambda ld, st, cf: ratio(ld, cf, "cpu_s_per_gb")),
)


def spread(v):
    return {"median": statistics.median(v), "low": min(v), "high": max(v), "rounds": len(v)}


def rows_of(rounds, variant=None):
    """A row per round: the load (the headline, or @variant's), the round's fastest of each
    kind, and the ratios."""
    rows = []
    for n in sorted(rounds):
        r = rounds[n]
        ld = r["load"] if variant is None else r["loads"].get(variant)
        st, cf = fastest(r["storage"]), fastest(r["cufile"])
        row = {"round": n, "load": ld, "storage": st, "cufile": cf}
        for name, f in RATIOS:
            row[name] = f(ld, st, cf)
        rows.append(row)
    return rows


def medians_of(rows):
    medians = {}
    for name, _ in RATIOS:
        v = [row[name] for row in rows if row[name] is not None]
        if v:
            medians[name] = spread(v)
    return medians


def summarise(rounds):
    """Per-round rows and, for each ratio, its median, lowest, highest and round count."""
    rows = rows_of(rounds)
    shapes = {}
    for r in rounds.values():
        for kind in ("storage", "cufile"):
            for rec in r[kind]:
                shapes.setdefault((kind, rec["shape"]), []).append(rec["gbps"])
        for v, ld in r["loads"].items():
            shapes.setdefault(("load", (ld["shape"] + " " + v).strip()), []).append(ld["gbps"])
    return rows, medians_of(rows), shapes


def variant_medians(rounds):
    """{variant: {ratio: spread, "gbps": spread, "cpu_s_per_gb": spread, "over_headline":
    spread}}: each variant divided by its own rounds' ceiling and cuFile, and (but the
    headline) its GB/s by the same round's headline load's."""
    out = {}
    for v in variants(rounds):
        rows = rows_of(rounds, v)
        m = medians_of(rows)
        for key in ("gbps", "cpu_s_per_gb"):
            vals = [row["load"][key] for row in rows if row["load"]]
            if vals:
                m[key] = spread(vals)
        over = [ratio(rounds[row["round"]]["loads"][v], rounds[row["round"]]["load"])
                for row in rows if row["load"] and rounds[row["round"]]["load"]
                and v != rounds[row["round"]]["head"]]
        over = [x for x in over if x is not None]
        if over:
            m["over_headline"] = spread(over)
        out[v] = m
    return out


def fmt(x, spec="%.3f"):
    return "-" if x is None else spec % x


def report(rounds, rows, medians, shapes, out):
    out.write("round  load GB/s  ceiling GB/s (shape)            cuFile GB/s (shape)"
              "             load/ceil  load/cuFile  cuFile/ceil  CPU load/cuFile\n")
    for row in rows:
        ld, st, cf = row["load"], row["storage"], row["cufile"]
        out.write("%5d  %9s  %7s %-24s %7s %-24s %9s  %11s  %11s  %15s\n" % (
            row["round"], fmt(ld and ld["gbps"], "%.2f"),
            fmt(st and st["gbps"], "%.2f"), st["shape"] if st else "",
            fmt(cf and cf["gbps"], "%.2f"), cf["shape"] if cf else "",
            fmt(row["load_over_storage"]), fmt(row["load_over_cufile"]),
            fmt(row["cufile_over_storage"]), fmt(row["cpu_load_over_cufile"])))
    for name, _ in RATIOS:
        m = medians.get(name)
        if m:
            out.write("median %-22s %.3f (%.3f-%.3f) over %d rounds\n" % (
                name, m["median"], m["low"], m["high"], m["rounds"]))
        else:
            out.write("median %-22s - (no round has both sides)\n" % name)
    vm = variant_medians(rounds)
    if len(vm) > 1:
        for v, m in vm.items():
            cells = []
            for name in ("load_over_storage", "load_over_cufile", "cpu_load_over_cufile",
                         "gbps", "cpu_s_per_gb", "over_headline"):
                x = m.get(name)
                cells.append("%s %s" % (name, "-" if not x else "%.3f (%.3f-%.3f)" % (
                    x["median"], x["low"], x["high"])))
            n = m["gbps"]["rounds"] if "gbps" in m else 0
            out.write("variant %-32s %s; %d rounds\n" % (
                "'%s'" % v if v else "defaults", "  ".join(cells), n))
    for (kind, shape), g in sorted(shapes.items()):
        out.write("shape %-7s %-26s median %.2f GB/s (%.2f-%.2f), %d read%s\n" % (
            kind, shape, statistics.median(g), min(g), max(g), len(g), "" if len(g) == 1 else "s"))
    # A read faster than its round's ceiling means the ceiling missed a faster shape or
    # the two reads drifted apart: say so rather than leave a ratio above 1.0 unexplained.
    for n, r in sorted(rounds.items()):
        for rec in r.get("wrong", []):
            v = rec.get("variant") or ""
            out.write("WRONG: round %d's load%s had %d wrong bytes: not counted\n"
                      % (n, " '%s'" % v if v else "", rec["mismatches"]))
    for v in vm:
        for row in rows_of(rounds, v):
            if row["load_over_storage"] is not None and row["load_over_storage"] > 1.0:
                out.write("note: round %d's load%s is %.3f of its ceiling: above 1.0, so the "
                          "candidates missed a faster shape or the reads drifted\n"
                          % (row["round"], " '%s'" % v if v else "", row["load_over_storage"]))
    out.write("paired-json " + json.dumps({"rounds": rows, "medians": medians,
                                           "variants": vm}) + "\n")


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: perf-paired.py PAIRED.jsonl\n")
        return 2
    with open(argv[1]) as f:
        rounds = load_rounds(f)
    if not rounds:
        sys.stderr.write("perf-paired.py: %s has no reads\n" % argv[1])
        return 1
    report(rounds, *summarise(rounds), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
