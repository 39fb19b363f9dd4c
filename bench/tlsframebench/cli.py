"""tlsframe comparison benchmark (issue 3).

One invocation runs three servers on the same pre-encoded frames against the same
receivers (tlsframe-loadgen), interleaved A B C A B C ...:

  A  tlsframesink
  B  tcpserversink                       (plain TCP; loadgen --no-tls --raw)
  C  stunnel4 (TLS 1.3) -> tcpserversink (loadgen --raw over TLS)

and prints a table (ratios A/B and A/C) and writes every result as JSON.
See bench/README.md for what each figure means and what limits it.

  python3 bench/run.py [--quick] [--out DIR]

Standard library only.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from .common import ROOT, BenchError, log
from .figures import FIGURES, FULL, QUICK, Bench
from .inputs import Inputs
from .procs import child_setup, install_signal_handlers, kill_all
from .report import make_table
from .servers import TCP_QUEUE


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().strip()


def uptime_text():
    try:
        return subprocess.run(["uptime"], stdout=subprocess.PIPE, text=True,
                              timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + loadavg()


def git(*a):
    try:
        return subprocess.run(["git", "-C", ROOT] + list(a), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def version(cmd):
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=10)
        return " ".join(r.stdout.split("\n")[:3]).strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short smoke run (~2 min)")
    ap.add_argument("--out", help="results directory (default bench/.work/results-<time>)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="meson build dir")
    ap.add_argument("--work", default=os.path.join(ROOT, "bench", ".work"),
                    help="cache for certificates and frames (default bench/.work)")
    ap.add_argument("--servers", default="ABC", help="subset of ABC (default ABC)")
    ap.add_argument("--figures", default=",".join(FIGURES),
                    help="comma list of " + ",".join(FIGURES))
    ap.add_argument("--loadgen-threads", type=int, default=2)
    ap.add_argument("--table", metavar="JSON", help="only print the table of a results.json")
    args = ap.parse_args()

    if args.table:
        with open(args.table) as f:
            sys.stdout.write(make_table(json.load(f)))
        return 0

    install_signal_handlers()
    cfg = dict(QUICK if args.quick else FULL)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out = os.path.abspath(args.out or os.path.join(args.work, f"results-{stamp}"))
    os.makedirs(out, exist_ok=True)
    figures = [f.strip() for f in args.figures.split(",") if f.strip()]
    for f in figures:
        if f not in FIGURES:
            ap.error(f"unknown figure {f}")
    child_setup()  # our own limit too (children inherit it)

    inp = Inputs(os.path.abspath(args.work), os.path.abspath(args.build))
    rc = 0
    bench = None
    try:
        inp.prepare()
        binaries = inp.snapshot(out)
        bench = Bench(args, cfg, inp, out)
        bench.meta = dict(
            git_commit=git("rev-parse", "--short", "HEAD"),
            git_dirty=bool(git("status", "--porcelain", "--untracked-files=no")),
            started_utc=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            mode="quick" if args.quick else "full",
            nproc=os.cpu_count(),
            uptime_before=uptime_text(),
            servers=bench.servers,
            figures=figures,
            loadgen_threads=args.loadgen_threads,
            fast_frame_bytes=inp.fast_frame_bytes,
            mkv_frame_bytes=inp.mkv_frame_bytes,
            mkv_seconds=inp.mkv_seconds,
            tcpserversink_queue=TCP_QUEUE,
            build_dir=inp.build,
            binaries_sha256=binaries,
            versions=dict(gstreamer=version(["gst-launch-1.0", "--version"]),
                          stunnel=version(["stunnel4", "-version"]),
                          openssl=version(["openssl", "version"]),
                          kernel=os.uname().release),
        )
        log(f"results -> {out}; commit {bench.meta['git_commit']}; {bench.meta['uptime_before']}")
        t0 = time.monotonic()
        for f in figures:
            try:
                getattr(bench, f)()
            except BenchError as e:  # a whole figure failed: record and go on
                bench.results.setdefault("figure_errors", []).append(dict(figure=f, error=str(e)))
                log(f"figure {f} failed: {e}")
        bench.meta["uptime_after"] = uptime_text()
        bench.meta["elapsed_s"] = round(time.monotonic() - t0, 1)
    except BenchError as e:
        log(f"error: {e}")
        rc = 1
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); stopping every process started")
        rc = 130
    finally:
        kill_all()
    if bench is not None and hasattr(bench, "meta"):
        bench.meta.setdefault("uptime_after", uptime_text())
        if rc:
            bench.meta["incomplete"] = True
        bench.save()
        table = make_table(dict(meta=bench.meta, config=cfg, results=bench.results))
        with open(os.path.join(out, "table.txt"), "w") as f:
            f.write(table)
        print()
        sys.stdout.write(table)
        log(f"wrote {out}/results.json and {out}/table.txt")
    return rc


if __name__ == "__main__":
    sys.exit(main())
