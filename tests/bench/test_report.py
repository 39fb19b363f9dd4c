#!/usr/bin/env python3
"""The benchmark's report (bench/tlsframebench/report.py) on a small results fixture
(report_fixture.json): medians, ratios A/B and A/C, the markers * ! t/o fail, the
thread-count figure, the overload figure, the browser figure, server subsets; every committed run under bench/results/
renders to its committed table.txt byte for byte; the report imports nothing from
the runner. Standard library only, well under a second.

  python3 tests/bench/test_report.py        (meson test bench_report)
"""

import copy
import glob
import json
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BENCH = os.path.join(ROOT, "bench")
sys.path.insert(0, BENCH)

from tlsframebench import report  # noqa: E402  (needs the path above)


def load_fixture():
    with open(os.path.join(HERE, "report_fixture.json")) as f:
        return json.load(f)


def line_starting(table, prefix):
    lines = [ln for ln in table.splitlines() if ln.startswith(prefix)]
    if len(lines) != 1:
        raise AssertionError(f"{len(lines)} lines start with {prefix!r} in:\n{table}")
    return lines[0]


def cells(line):
    """'    1 |  110.0 1.90 41(42) | ... |  0.50  2.00' -> [['1'], ['110.0', ...], ...]"""
    return [c.split() for c in line.split("|")]


class ReportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.doc = load_fixture()
        cls.table = report.make_table(cls.doc)

    def test_throughput_medians_and_ratios(self):
        n1 = cells(line_starting(self.table, "    1 |"))
        self.assertEqual(n1[1], ["110.0", "1.90", "41(42)"])  # A: median of 100 and 120
        self.assertEqual(n1[2], ["220.0", "1.00", "21(22)"])
        self.assertEqual(n1[4], ["0.50", "2.00"])  # A/B 110/220, A/C 110/55
        self.assertIn("N=1: A/B 1.90 A/C 0.47", self.table)  # cpu/GB 1.9/1.0, 1.9/4.0
        self.assertIn("MB/s of each rep: N=1: A 100/120 B 200/240 C 55/fail", self.table)
        self.assertIn("C cpu/GB split: N=1: stunnel 2.50 + tcpserversink 1.50", self.table)

    def test_throughput_markers(self):
        n1 = cells(line_starting(self.table, "    1 |"))
        self.assertEqual(n1[3][0], "55.0*")  # one of C's two reps failed
        n8 = cells(line_starting(self.table, "    8 |"))
        self.assertEqual(n8[1][0], "80.0!")  # a rep measured before every client streamed
        self.assertEqual(n8[3][0], "fail")  # every C rep failed
        self.assertEqual(n8[4], ["0.50", "n/a"])
        self.assertIn("! in 1 rep(s) not every client had a first frame within 30 s", self.table)
        self.assertIn("* 3 failed rep(s): C N=8: loadgen did not finish within 60 s", self.table)

    def test_ladder(self):
        self.assertRegex(self.table, r"\n    A: 64 +64:ok\(64,lg10%,srv20%\)  128:FAIL\(100,")
        self.assertIn("    B: >= 128 (top step) 64:ok", self.table)
        self.assertIn("    C: < 64             64:FAIL(60,", self.table)
        self.assertIn("    ratio A/B 0.50  A/C n/a", self.table)

    def test_connect(self):
        n100 = cells(line_starting(self.table, "  100 |"))
        self.assertEqual(n100[1], ["0.50", "0.20", "0.50", "100", "0.1"])
        self.assertEqual(n100[3][3], "104")  # attempts > N: retried connects
        self.assertEqual(n100[4], ["0.25", "0.50"])
        n500 = cells(line_starting(self.table, "  500 |"))
        self.assertEqual(n500[2][:2], ["t/o", "310/500"])  # only 310 had a first frame
        self.assertEqual(n500[3][0], "fail")
        self.assertEqual(n500[4], ["n/a", "n/a"])

    def test_rss_and_latency(self):
        self.assertIn("    A:   100.0 KiB/client; RSS 70000 -> 120000 KiB; full-rate 500/500",
                      self.table)
        self.assertIn("C:   120.0 KiB/client (tcpserversink 10.0, stunnel 110.0); "
                      "RSS 22000 -> 82000 KiB; full-rate 0/500", self.table)
        self.assertIn("    ratio A/B 40.00  A/C 0.83", self.table)
        self.assertIn("A N=   1: p50 0.42 ms, p99 0.58 ms, max 0.60 ms (300 frames;", self.table)
        self.assertIn("A N=  32: fail: server process exited during the run", self.table)

    def test_threads(self):
        self.assertIn("[8] threads of one process with 16 streams", self.table)
        one = line_starting(self.table, "    io-threads 1: 16 tlsframesinks, one port")
        self.assertTrue(one.endswith("1 ->   35 (+34); sinks +17 = 1 I/O + 16 signal "
                                     "(expected 1 I/O)"), one)
        ports = line_starting(self.table, "    io-threads 1: 16 tlsframesinks, 16 ports")
        self.assertIn("fail: only 3/16 sinks rendered a buffer", ports)

    def test_no_threads_figure_ends_with_7(self):
        doc = copy.deepcopy(self.doc)
        del doc["results"]["threads"]
        del doc["results"]["browser"]
        table = report.make_table(doc)
        self.assertNotIn("[8]", table)
        self.assertTrue(table.endswith("2 cores shared by server(s) and loadgen)\n"))

    def test_server_subset(self):
        doc = copy.deepcopy(self.doc)
        doc["meta"]["servers"] = ["A", "B"]
        table = report.make_table(doc)
        hdr = line_starting(table, "    N |    A MB/s")
        self.assertTrue(hdr.endswith("|    A/B"), hdr)
        self.assertEqual(cells(line_starting(table, "    1 |"))[3], ["0.50"])
        self.assertNotIn("C cpu/GB split", table)
        self.assertIn("    ratio A/B 0.50\n", table)

    def test_overload(self):
        doc = copy.deepcopy(self.doc)
        doc["config"].update(overload=[64, 128, 192, 256], overload_past=1)

        def row(n, held, fmin, fmed, p50, p99, full):
            return dict(server="A", clients=n, ok=True, held=held, server_cpu_pct=150.0,
                        loadgen=dict(full_rate=full, failed=0, fps_min=fmin, fps_median=fmed,
                                     latency_ms_p50=p50, latency_ms_p99=p99,
                                     loadgen_cpu_pct=90.0))
        doc["results"]["overload"] = [
            row(64, True, 30.0, 30.0, 5.0, 20.0, 64),
            row(128, False, 25.5, 30.0, 120.0, 280.0, 100),
            row(192, False, 12.0, 24.0, 200.0, 450.0, 0),
            dict(server="A", clients=256, ok=False, error="loadgen did not finish"),
        ]
        table = report.make_table(doc)
        self.assertIn("[9] overload, tlsframesink with default settings: 30 fps ladder "
                      "[64, 128, 192, 256] continued 1 step(s) past", table)
        r128 = cells(line_starting(table, "   128 |"))
        self.assertEqual(r128[1], ["100/128"])
        self.assertEqual(r128[2], ["25.5", "/", "30.0", "0.85"])
        self.assertEqual(r128[3], ["120", "/", "280"])
        self.assertEqual(cells(line_starting(table, "   192 |"))[2][3], "0.50")
        self.assertIn("   256 | fail: loadgen did not finish", table)
        self.assertIn("first step short of full rate: N=128: spread 0.85 (target >= 0.8: met), "
                      "p99 280 ms (target <= 300: met)", table)
        doc["results"]["overload"] = doc["results"]["overload"][:1]
        self.assertIn("every step held full rate: no overload reached",
                      report.make_table(doc))
        self.assertNotIn("[9]", self.table)  # a run without the figure renders as before

    def test_browser(self):
        self.assertIn("[10] browser vs native clients, tlsframesink at 30 fps (720p JPEG), N=32: "
                      "server CPU per GB delivered (median of 2 rep(s))", self.table)
        native = cells(line_starting(self.table, "    native    |"))
        self.assertEqual(native[1:], [["2.10"], ["80.0"], ["29.7"], ["32/32"],
                                      ["3.1", "/", "9.5"], ["42"]])  # medians of 2 reps
        ws = cells(line_starting(self.table, "    websocket |"))
        self.assertEqual(ws[1:], [["2.30*"], ["80.2"], ["29.2"], ["31/32"],
                                  ["3.4", "/", "11.0"], ["46"]])  # one rep failed
        self.assertIn("    ratio websocket/native cpu/GB: 1.10 (target <= 1.10: met)", self.table)
        self.assertTrue(self.table.endswith("* a rep failed; latency = sink render -> loadgen "
                                            "receive)\n"), self.table[-300:])
        doc = copy.deepcopy(self.doc)
        doc["results"]["browser"][1]["server_cpu_s_per_gb"] = 2.5
        self.assertIn("ratio websocket/native cpu/GB: 1.19 (target <= 1.10: missed)",
                      report.make_table(doc))
        doc["results"]["browser"] = [r for r in doc["results"]["browser"]
                                     if r["mode"] == "native"]
        table = report.make_table(doc)
        self.assertIn("    websocket | fail: not run", table)
        self.assertIn("ratio websocket/native cpu/GB: n/a (target <= 1.10)", table)
        del doc["results"]["browser"]
        self.assertNotIn("[10]", report.make_table(doc))  # runs without it render as before

    def test_committed_runs_render_their_tables(self):
        runs = sorted(glob.glob(os.path.join(BENCH, "results", "*", "results-compact.json")))
        self.assertTrue(runs)
        for path in runs:
            with open(path) as f:
                table = report.make_table(json.load(f))
            with open(os.path.join(os.path.dirname(path), "table.txt")) as f:
                self.assertEqual(table, f.read(), path)

    def test_imports_nothing_from_the_runner(self):
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import tlsframebench.report; "
                "print(sorted(m for m in sys.modules if m.startswith('tlsframebench')))")
        out = subprocess.run([sys.executable, "-c", code, BENCH], stdout=subprocess.PIPE,
                             text=True, check=True, timeout=30).stdout
        self.assertEqual(out.strip(), "['tlsframebench', 'tlsframebench.report']")


if __name__ == "__main__":
    unittest.main()
