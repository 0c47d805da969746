"""scripts/moe-table.py: the table of a perf-moe-device.sh call's decodes.

Its parser is checked against a real `p2pio-moe run` report made on this machine (host
memory, a small model), so that a change of the report's wording fails here and not in a
device call; the run order, the rows and the pairing on hand-made reports with known
answers.
"""
import contextlib
import io
import os
import subprocess
import tempfile
import unittest

from scriptload import BIN, load

mt = load("moe-table.py", "moe_table")

ALL = ["tps", "bound", "of_bound", "hits", "late", "missed_layers", "withdrawn", "cut_short",
       "hastened", "gbps", "d2", "d4", "d8", "d32", "batch_us", "batch_bytes_us", "wait_us",
       "checked", "wrong"]


def report(tps, of_bound):
    """A report with the lines the table reads (the wording of p2pio-moe run's)."""
    return "\n".join([
        "decode    259 tokens after 28 of warm-up in 17.607 s: %s tokens/s (in step)" % tps,
        "hits      90.5% (33751 of 37296; 10071 late), 13.69 misses/token in 10.07 of 36 "
        "layers, 26335 prefetches (22669 used, 3 withdrawn unread, 0 cut short, 158 hastened)",
        "bound     19.13 tokens/s = ceiling / missed bytes per token; achieved %s of it"
        % of_bound,
    ]) + "\n"


class RealReport(unittest.TestCase):
    def test_every_field_of_a_real_report(self):
        with tempfile.TemporaryDirectory() as d:
            model, trace = os.path.join(d, "m.gguf"), os.path.join(d, "t.trace")
            env = dict(os.environ)
            env["LD_LIBRARY_PATH"] = os.path.join(os.path.dirname(BIN), "lib")
            subprocess.run([os.path.join(BIN, "p2pio-mkmodel"), "-q", "-p", "gpt-oss-tiny",
                            "--layers", "4", "--experts", "16", "--experts-used", "4", model],
                           check=True, env=env)
            subprocess.run([os.path.join(BIN, "p2pio-moe"), "synth", "-L", "4", "-E", "16",
                            "-k", "4", "-n", "60", "-o", trace], check=True, env=env,
                           stdout=subprocess.DEVNULL)
            out = subprocess.run([os.path.join(BIN, "p2pio-moe"), "run", model, "--trace",
                                  trace, "-d", "host", "--ceiling", "1", "--fraction", "0.25",
                                  "--prefetch-next"], check=True, env=env,
                                 stdout=subprocess.PIPE, text=True).stdout
        f = mt.parse_report(out)
        self.assertEqual([k for k in ALL if k not in f], [], out)
        self.assertGreater(float(f["tps"]), 0)
        self.assertEqual(f["wrong"], "0")
        self.assertEqual(f["d2"], out.split("2 deep ")[1].split(" GB/s")[0])


class Signs(unittest.TestCase):
    def test_a_negative_wait_keeps_its_sign(self):
        # Session 18's virtio decode at 10 %: the layers waited less than bytes / ceiling.
        f = mt.parse_report("waits     0.99 of 1 layers a token missed; -261 us a token beyond "
                            "its bytes / the ceiling: -262 us per missed layer "
                            "(replay --miss-overhead)\n")
        self.assertEqual(f["wait_us"], "-262")


class Table(unittest.TestCase):
    def call(self, d, runs, logged):
        for tag, text in runs:
            with open(os.path.join(d, "moon-%s.txt" % tag), "w") as f:
                f.write(text)
        with open(os.path.join(d, "log.txt"), "w") as f:
            for tag in logged:
                f.write("== 11:00:00 +1s moon %s (timeout 80 s): --budget 8G\n" % tag)

    def test_rows_in_running_order_and_a_run_that_did_not_finish(self):
        with tempfile.TemporaryDirectory() as d:
            self.call(d, [("b", report("15.00", "0.75")), ("a", report("14.00", "0.70")),
                          ("c", "rc=124\n")], ["b", "a", "c"])
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                self.assertEqual(mt.main(["moe-table", d]), 0)
        rows = [r for r in buf.getvalue().splitlines() if r.startswith("| ") and "---" not in r]
        self.assertEqual([r.split(" | ")[1] for r in rows[1:]], ["b", "a", "c"])
        self.assertIn("| 15.00 | 0.75 (19.13) | 90.5 % (10071) | 10.07 | 3 / 0 / 158 |", rows[1])
        self.assertIn("did not finish", rows[3])

    def test_pairs_alternating_rounds(self):
        # ROUNDS=3: a b, b-r2 a-r2, a-r3 b-r3; b is 0.05 ahead twice and 0.01 behind once.
        runs = [("a", {"of_bound": "0.70", "tps": "14"}), ("b", {"of_bound": "0.75", "tps": "15"}),
                ("b-r2", {"of_bound": "0.80", "tps": "16"}),
                ("a-r2", {"of_bound": "0.75", "tps": "15"}),
                ("a-r3", {"of_bound": "0.72", "tps": "14.4"}),
                ("b-r3", {"of_bound": "0.71", "tps": "14.2"})]
        ps = mt.pairs(runs, "a", "b")
        self.assertEqual([(fa["of_bound"], fb["of_bound"]) for fa, fb in ps],
                         [("0.70", "0.75"), ("0.75", "0.80"), ("0.72", "0.71")])
        with tempfile.TemporaryDirectory() as d:
            self.call(d, [("a", report("14.00", "0.70")), ("b", report("15.00", "0.75")),
                          ("b-r2", report("16.00", "0.80")), ("a-r2", report("15.00", "0.75")),
                          ("a-r3", report("14.40", "0.72")), ("b-r3", report("14.20", "0.71"))],
                      ["a", "b", "b-r2", "a-r2", "a-r3", "b-r3"])
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                self.assertEqual(mt.main(["moe-table", "--pairs", "a,b", d]), 0)
        self.assertIn("b against a, 3 pairs: of bound +0.050 median (-0.010 to +0.050)",
                      buf.getvalue())


if __name__ == "__main__":
    unittest.main()
