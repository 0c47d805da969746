"""scripts/perf-paired.sh and its summary, scripts/perf-paired.py.

The summary is checked on hand-made rounds with known answers; the script end to end on
this machine's host memory (no GPU, so no cuFile candidate) with a small model, for the
reads it makes, their order and that each lands in the summary.
"""
import io
import json
import os
import subprocess
import tempfile
import unittest

from scriptload import BIN, ROOT, load

pp = load("perf-paired.py", "perf_paired")


def report_text(rounds):
    """What perf-paired.py prints for @rounds."""
    out = io.StringIO()
    pp.report(rounds, *pp.summarise(rounds), out)
    return out.getvalue()


def rec(rnd, kind, shape, gbps, cpu, **more):
    d = {"round": rnd, "kind": kind, "shape": shape, "gbps": gbps, "cpu_s_per_gb": cpu}
    d.update(more)
    return json.dumps(d)


class Summary(unittest.TestCase):
    def lines(self):
        return [
            rec(1, "load", "bounce", 27.0, 0.60, mismatches=0),
            rec(1, "storage", "direct 1024K qd1 x64", 30.0, 0.5),
            rec(1, "storage", "direct 4096K qd16 x16", 28.0, 0.5),
            rec(1, "cufile", "cufile 4096K qd16 x16", 24.0, 0.6),
            rec(1, "cufile", "cufile 1024K qd16 x16", 25.0, 0.5),
            # Round 2: the other storage shape is the faster one this time.
            rec(2, "storage", "direct 1024K qd1 x64", 25.0, 0.5),
            rec(2, "storage", "direct 4096K qd16 x16", 26.0, 0.5),
            rec(2, "load", "bounce", 24.7, 0.55, mismatches=0),
            rec(2, "cufile", "cufile 4096K qd16 x16", 23.0, 0.5),
            # Round 3: the load is above its ceiling, and cuFile did not run.
            rec(3, "load", "bounce", 31.0, 0.60, mismatches=0),
            rec(3, "storage", "direct 1024K qd1 x64", 30.0, 0.5),
            # Round 4: a load with wrong bytes is not counted.
            rec(4, "load", "bounce", 99.0, 0.1, mismatches=12),
            rec(4, "storage", "direct 1024K qd1 x64", 30.0, 0.5),
            rec(4, "cufile", "cufile 4096K qd16 x16", 20.0, 0.5),
        ]

    def test_ratios_per_round_and_medians(self):
        rounds = pp.load_rounds(self.lines())
        rows, med, shapes = pp.summarise(rounds)
        self.assertEqual([r["round"] for r in rows], [1, 2, 3, 4])
        # Each round divides by its own fastest candidate of each kind.
        self.assertAlmostEqual(rows[0]["load_over_storage"], 27.0 / 30.0)
        self.assertAlmostEqual(rows[0]["load_over_cufile"], 27.0 / 25.0)
        self.assertAlmostEqual(rows[0]["cpu_load_over_cufile"], 0.60 / 0.5)
        self.assertAlmostEqual(rows[0]["cufile_over_storage"], 25.0 / 30.0)
        self.assertEqual(rows[1]["storage"]["shape"], "direct 4096K qd16 x16")
        self.assertAlmostEqual(rows[1]["load_over_storage"], 24.7 / 26.0)
        self.assertIsNone(rows[2]["load_over_cufile"])
        self.assertIsNone(rows[3]["load"])
        self.assertIsNone(rows[3]["load_over_storage"])
        self.assertAlmostEqual(rows[3]["cufile_over_storage"], 20.0 / 30.0)
        m = med["load_over_storage"]
        self.assertEqual(m["rounds"], 3)
        self.assertAlmostEqual(m["median"], 24.7 / 26.0)
        self.assertAlmostEqual(m["low"], 27.0 / 30.0)
        self.assertAlmostEqual(m["high"], 31.0 / 30.0)
        self.assertEqual(med["load_over_cufile"]["rounds"], 2)
        self.assertAlmostEqual(med["load_over_cufile"]["median"], (27.0 / 25.0 + 24.7 / 23.0) / 2)
        self.assertEqual(sorted(shapes[("storage", "direct 1024K qd1 x64")]), [25.0, 30.0, 30.0, 30.0])

    def test_report_says_what_is_odd(self):
        text = report_text(pp.load_rounds(self.lines()))
        self.assertIn("WRONG: round 4's load had 12 wrong bytes: not counted", text)
        self.assertIn("note: round 3's load is 1.033 of its ceiling", text)
        self.assertNotIn("note: round 1", text)
        self.assertIn("median load_over_storage      0.950 (0.900-1.033) over 3 rounds", text)
        last = text.strip().splitlines()[-1]
        self.assertTrue(last.startswith("paired-json "))
        j = json.loads(last[len("paired-json "):])
        self.assertEqual(j["medians"]["load_over_storage"]["rounds"], 3)

    def test_variants_against_the_same_rounds(self):
        lines = [
            rec(1, "load", "bounce", 27.0, 0.60, mismatches=0, variant=""),
            rec(1, "load", "bounce", 26.0, 0.30, mismatches=0, variant="--threads 8"),
            rec(1, "storage", "direct 1024K qd1 x64", 30.0, 0.5),
            rec(1, "cufile", "cufile 4096K qd16 x16", 25.0, 0.5),
            rec(2, "load", "bounce", 28.0, 0.31, mismatches=0, variant="--threads 8"),
            rec(2, "load", "bounce", 24.0, 0.62, mismatches=0, variant=""),
            rec(2, "storage", "direct 1024K qd1 x64", 32.0, 0.5),
            rec(2, "cufile", "cufile 4096K qd16 x16", 20.0, 0.6),
            # Round 3: the variant put a wrong byte in place; the defaults did not run.
            rec(3, "load", "bounce", 99.0, 0.1, mismatches=3, variant="--threads 8"),
            rec(3, "storage", "direct 1024K qd1 x64", 30.0, 0.5),
        ]
        rounds = pp.load_rounds(lines)
        self.assertEqual(pp.variants(rounds), ["", "--threads 8"])
        # The table follows the defaults, whatever order they ran in.
        rows, med, shapes = pp.summarise(rounds)
        self.assertEqual([r["load"]["gbps"] if r["load"] else None for r in rows],
                         [27.0, 24.0, None])
        self.assertAlmostEqual(med["load_over_storage"]["median"], (27 / 30 + 24 / 32) / 2)
        self.assertEqual(shapes[("load", "bounce --threads 8")], [26.0, 28.0])
        vm = pp.variant_medians(rounds)
        t8 = vm["--threads 8"]
        self.assertEqual(t8["load_over_storage"]["rounds"], 2)
        self.assertAlmostEqual(t8["load_over_storage"]["low"], 26 / 30)
        self.assertAlmostEqual(t8["load_over_storage"]["high"], 28 / 32)
        self.assertAlmostEqual(t8["load_over_cufile"]["high"], 28 / 20)
        self.assertAlmostEqual(t8["cpu_load_over_cufile"]["low"], 0.31 / 0.6)
        self.assertAlmostEqual(t8["cpu_s_per_gb"]["median"], 0.305)
        self.assertAlmostEqual(vm[""]["gbps"]["median"], 25.5)
        text = report_text(rounds)
        self.assertIn("variant defaults ", text)
        self.assertIn("variant '--threads 8' ", text)
        self.assertIn("load_over_storage 0.871 (0.867-0.875)", text)
        self.assertIn("WRONG: round 3's load '--threads 8' had 3 wrong bytes", text)
        # Each variant against the same round's headline load: 26/27 and 28/24.
        self.assertAlmostEqual(t8["over_headline"]["low"], 26 / 27)
        self.assertAlmostEqual(t8["over_headline"]["high"], 28 / 24)
        self.assertNotIn("over_headline", vm[""])
        self.assertIn("over_headline 1.065 (0.963-1.167); 2 rounds", text)
        j = json.loads(text.strip().splitlines()[-1][len("paired-json "):])
        self.assertEqual(j["variants"]["--threads 8"]["gbps"]["rounds"], 2)
        # The defaults' every load wrong: the variant heads the table, both get a line,
        # and a variant above its ceiling is noted.
        bad = [l.replace('"mismatches": 0, "variant": ""', '"mismatches": 5, "variant": ""')
               for l in lines] + [rec(4, "load", "bounce", 33.0, 0.3, mismatches=0,
                                      variant="--threads 8"),
                                  rec(4, "storage", "direct 1024K qd1 x64", 30.0, 0.5)]
        wr = pp.load_rounds(bad)
        self.assertEqual(wr[1]["load"]["gbps"], 26.0)
        self.assertEqual(pp.variants(wr), ["--threads 8", ""])
        text = report_text(wr)
        self.assertIn("variant defaults ", text)
        self.assertIn("WRONG: round 1's load had 5 wrong bytes", text)
        self.assertIn("note: round 4's load '--threads 8' is 1.100 of its ceiling", text)
        # Only a variant, no defaults: it heads the table, and no variant lines.
        only = pp.load_rounds([l for l in lines if '"variant": ""' not in l])
        self.assertEqual(only[1]["load"]["gbps"], 26.0)
        self.assertNotIn("variant ", report_text(only))

    def test_bad_input_is_refused(self):
        with self.assertRaises(ValueError):
            pp.load_rounds([rec(1, "mystery", "x", 1.0, 1.0)])
        with self.assertRaises(json.JSONDecodeError):
            pp.load_rounds(["{not json"])
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as f:
            r = subprocess.run(["python3", os.path.join(ROOT, "scripts", "perf-paired.py"),
                                f.name], capture_output=True, text=True)
            self.assertEqual(r.returncode, 1)
            self.assertIn("has no reads", r.stderr)


@unittest.skipUnless(os.access(os.path.join(BIN, "p2pio-load"), os.X_OK), "no built tools")
class EndToEnd(unittest.TestCase):
    def test_host_rounds(self):
        with tempfile.TemporaryDirectory() as d:
            m = os.path.join(d, "m.gguf")
            subprocess.run([os.path.join(BIN, "p2pio-mkmodel"), "-q", "--arch", "llama",
                            "--layers", "2", "--hidden", "256", "--ffn", "512", "--heads", "4",
                            "--kv-heads", "2", "--vocab", "512", "-s", "7", m], check=True)
            bench = os.path.join(d, "bench.json")
            with open(bench, "w") as f:
                subprocess.run([os.path.join(BIN, "p2pio-bench"), "--modes", "storage",
                                "--size", "1M,4M", "--cache", "cold", "--device", "host",
                                "--json", m], check=True, stdout=f)
            out = os.path.join(d, "out")
            env = dict(os.environ, PAIRED="3", TOP="2", LOAD_ARGS="--host",
                       BENCH_ARGS="--device host")
            r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "perf-paired.sh"), BIN,
                                out, m, bench], env=env, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            reads = [json.loads(l) for l in open(os.path.join(out, "paired.jsonl"))]
            self.assertEqual({x["kind"] for x in reads}, {"load", "storage"})
            # The load's own shape (its engine's chunk, queue depth and rings, learned from
            # an uncounted load) is a storage candidate beside the sweep's two best.
            eng = json.loads(subprocess.run(
                [os.path.join(BIN, "p2pio-load"), "--json", "-q", "--no-verify", "--host", m],
                check=True, capture_output=True, text=True).stdout)["engine"]
            own = "direct %dK qd%d x%d" % (eng["chunk"] // 1024, eng["queue_depth"],
                                           min(eng["threads"], eng["queue_depth"]))
            shapes = {x["shape"] for x in reads if x["kind"] == "storage"}
            self.assertIn(own, shapes)
            self.assertIn(len(shapes), (2, 3), shapes)
            n = len(shapes) + 1
            # Three rounds of the load and each storage shape, no cuFile on host memory.
            self.assertEqual(len(reads), 3 * n, reads)
            # The order rotates: round r starts with item r - 1 of (load, shapes...).
            firsts = [x for i, x in enumerate(reads) if i % n == 0]
            self.assertEqual([x["round"] for x in firsts], [1, 2, 3])
            self.assertEqual(firsts[0]["kind"], "load")
            self.assertEqual(firsts[1]["kind"], "storage")
            self.assertEqual(firsts[2]["kind"], "storage")
            self.assertNotEqual(firsts[1]["shape"], firsts[2]["shape"])
            for x in reads:
                self.assertGreater(x["gbps"], 0)
                if x["kind"] == "load":
                    self.assertEqual(x["mismatches"], 0)
                    self.assertTrue(x["verified"])
            text = open(os.path.join(out, "paired.txt")).read()
            self.assertIn("over 3 rounds", text)
            self.assertIn("(no round has both sides)", text)

            # OWN=0: the sweep's two best only; a loads.jsonl's engine is taken when there.
            out2 = os.path.join(d, "out2")
            os.makedirs(out2)
            with open(os.path.join(out2, "loads.jsonl"), "w") as f:
                f.write('not json\n{"tag":"x","engine":{"threads":3,"queue_depth":5,'
                        '"chunk":2097152}}\n')
            r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "perf-paired.sh"), BIN,
                                out2, m, bench], env=dict(env, PAIRED="1"),
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            shapes = {json.loads(l)["shape"] for l in open(os.path.join(out2, "paired.jsonl"))}
            self.assertIn("direct 2048K qd5 x3", shapes)
            out3 = os.path.join(d, "out3")
            r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "perf-paired.sh"), BIN,
                                out3, m, bench], env=dict(env, PAIRED="1", OWN="0"),
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            reads = [json.loads(l) for l in open(os.path.join(out3, "paired.jsonl"))]
            self.assertEqual(len(reads), 3, reads)

            # LOADS: the defaults and a variant, each in every round, told apart.
            out4 = os.path.join(d, "out4")
            r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "perf-paired.sh"), BIN,
                                out4, m, bench],
                               env=dict(env, PAIRED="2", OWN="0", LOADS="\n--threads 2"),
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            reads = [json.loads(l) for l in open(os.path.join(out4, "paired.jsonl"))]
            self.assertEqual(len(reads), 2 * 4, reads)
            loads = [(x["round"], x["variant"]) for x in reads if x["kind"] == "load"]
            self.assertEqual(sorted(loads), [(1, ""), (1, "--threads 2"), (2, ""),
                                             (2, "--threads 2")])
            text = open(os.path.join(out4, "paired.txt")).read()
            self.assertIn("variant '--threads 2' ", text)
            self.assertIn("variant defaults ", text)

            # A set named twice (blanks and a CR aside) runs once a round; the own-shape
            # candidate is the headline set's (the defaults, named second here).
            out5 = os.path.join(d, "out5")
            r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "perf-paired.sh"), BIN,
                                out5, m, bench],
                               env=dict(env, PAIRED="1", LOADS="--threads  3\n\n--threads 3\r"),
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("LOADS names '--threads 3' twice", r.stdout)
            with open(os.path.join(out5, "paired.jsonl")) as f:
                reads = [json.loads(l) for l in f]
            self.assertEqual(sorted(x["variant"] for x in reads if x["kind"] == "load"),
                             ["", "--threads 3"])
            shapes5 = {x["shape"] for x in reads if x["kind"] == "storage"}
            self.assertIn(own, shapes5)
            self.assertNotIn("direct %dK qd%d x3" % (eng["chunk"] // 1024, eng["queue_depth"]),
                             shapes5)

    def test_no_candidates(self):
        with tempfile.TemporaryDirectory() as d:
            bench = os.path.join(d, "bench.json")
            with open(bench, "w") as f:
                json.dump({"results": [{"mode": "cufile", "cache": "cold", "ok": False,
                                        "gibps": 0, "io_size": 1, "depth": 1, "threads": 1}]}, f)
            r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "perf-paired.sh"), BIN,
                                os.path.join(d, "out"), bench, bench],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 1)
            self.assertIn("no cold storage or cuFile result", r.stdout)


if __name__ == "__main__":
    unittest.main()
