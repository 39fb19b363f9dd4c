#!/usr/bin/env python3
"""A/B of tlsframesink builds at a paced load, alternating, with tcpserversink
in the same rounds.

On a noisy machine two full bench/run.py runs minutes apart move by more than
most changes; this runs one figure's setup (the live 30 fps 720p JPEG input the
ladder uses, N clients, warm-up 2 s, window 8 s) for each labelled plugin
directory in turn, then for tcpserversink, for R rounds, and prints each
variant's server CPU-s per GB delivered, MB/s and clients at full rate.

  python3 bench/ab.py --clients 256 --rounds 4 \\
      before=/tmp/old/build/plugins/tlsframe after=build/plugins/tlsframe

Each plugin is copied into OUT first, so rebuilding during the run changes
nothing. The loadgen and inputs are those of --build (default build)."""

import argparse
import json
import os
import shutil
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tlsframebench.common import BenchError, log  # noqa: E402
from tlsframebench.figures import FULL, Bench  # noqa: E402
from tlsframebench.inputs import Inputs  # noqa: E402
from tlsframebench.procs import child_setup, install_signal_handlers, kill_all  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("variants", nargs="+", metavar="LABEL=PLUGIN_DIR")
    ap.add_argument("--clients", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-floor", action="store_true", help="skip tcpserversink")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", ".work", "ab"))
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--work", default=os.path.join(ROOT, "bench", ".work"))
    ap.add_argument("--loadgen-threads", type=int, default=2)
    args = ap.parse_args()
    variants = []
    for v in args.variants:
        label, sep, plug = v.partition("=")
        if not sep or label == "B" or not os.path.isfile(os.path.join(plug, "libgsttlsframe.so")):
            ap.error(f"{v}: want LABEL=DIR with DIR/libgsttlsframe.so (label B is tcpserversink)")
        variants.append((label, plug))

    install_signal_handlers()
    child_setup()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    inp = Inputs(os.path.abspath(args.work), os.path.abspath(args.build))
    rows = []
    try:
        inp.prepare()
        inp.snapshot(out)  # the loadgen copy (and a plugin, replaced below per variant)
        envs = {}
        for label, plug in variants:
            d = os.path.join(out, "bin-" + label)
            os.makedirs(d, exist_ok=True)
            shutil.copy2(os.path.join(plug, "libgsttlsframe.so"), d)
            envs[label] = dict(os.environ, GST_PLUGIN_PATH=d,
                               GST_REGISTRY=os.path.join(d, "registry.bin"))

        class Args:
            servers = "AB"
            loadgen_threads = args.loadgen_threads

        bench = Bench(Args, dict(FULL), inp, out)
        order = variants + ([] if args.no_floor else [("B", None)])
        for r in range(args.rounds):
            for label, _ in order:
                if label != "B":
                    inp.gst_env = envs[label]
                res = bench.one("ab", "B" if label == "B" else "A", args.clients, live=True,
                                warmup=2.0, duration=8.0, expect_fps=30)
                lg = res.get("loadgen", {})
                rows.append(dict(label=label, round=r, ok=res.get("ok"),
                                 cpu_s_per_gb=res.get("server_cpu_s_per_gb"),
                                 mb_per_s=lg.get("mb_per_s"), full_rate=lg.get("full_rate"),
                                 clients=args.clients, error=res.get("error")))
                with open(os.path.join(out, "ab.json"), "w") as f:
                    json.dump(rows, f, indent=1)
    except BenchError as e:
        log(f"error: {e}")
        return 1
    finally:
        kill_all()
    print(f"\n{args.clients} clients at 30 fps, {args.rounds} round(s); server CPU-s per GB:")
    for label, _ in variants + [("B", None)]:
        vals = [x["cpu_s_per_gb"] for x in rows if x["label"] == label and x["cpu_s_per_gb"]]
        if not vals:
            continue
        full = [x["full_rate"] for x in rows if x["label"] == label]
        name = "tcpserversink" if label == "B" else label
        print(f"  {name:14s} median {statistics.median(vals):.3f}  runs "
              + " / ".join(f"{v:.2f}" for v in vals) + f"  full rate {full}")
    print(f"rows: {os.path.join(out, 'ab.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
