"""Threads of one process serving 16 named streams (figure 8): the same 16 branches
`videotestsrc ! jpegenc ! SINK` in one process, with fakesink (no server), with 16
tlsframesinks sharing one port (one listener: its io-threads I/O threads in all) and
with 16 tlsframesinks on 16 ports (16 listeners: 16 x io-threads). Each layout runs
in a fresh child process (threadcount_child.py) that counts its own /proc/self/task
before the sinks start and with every branch playing. No clients: the I/O threads
are started with the listener, and a client adds none.

Also standalone, against a build (no snapshot), about 1 s of CPU in all:

  cd bench && python3 -m tlsframebench.threadcount [--build ../build] [--io-threads 1,2]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from .common import ROOT, BenchError
from .inputs import ensure_certs
from .procs import kill_group, spawn
from .servers import free_port

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "threadcount_child.py")
_GI_CHECK = "import gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst"


def gi_python():
    """A python3 that has PyGObject with GStreamer: this one, else Debian's."""
    for py in dict.fromkeys((sys.executable, "/usr/bin/python3")):
        try:
            r = subprocess.run([py, "-c", _GI_CHECK], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if r.returncode == 0:
            return py
    raise BenchError("no python3 with PyGObject for GStreamer "
                     "(Debian: python3-gi gir1.2-gstreamer-1.0)")


def run_child(py, layout, streams, io_threads, certs, env, timeout=20.0):
    """One layout in a fresh process; returns the child's result dict (ok=False plus
    error when it failed)."""
    cmd = [py, CHILD, "--layout", layout, "--streams", str(streams),
           "--io-threads", str(io_threads), "--certs", certs, "--timeout", str(timeout)]
    if layout == "one-port":
        cmd += ["--port", str(free_port())]
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
              text=True, env=env)
    try:
        out, err = p.communicate(timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        out, err = "", f"did not finish within {timeout + 30:.0f} s"
    finally:
        kill_group(p, grace=2.0)
    res = None
    for line in reversed(out.splitlines()):
        try:
            res = json.loads(line)
            break
        except ValueError:
            continue
    if res is None:
        res = dict(layout=layout, streams=streams, ok=False,
                   error=f"exit {p.returncode}: " + err[-400:].strip().replace("\n", " | "))
    if layout != "fakesink":
        res.setdefault("io_threads", io_threads)
    return res


def measure(streams, io_threads_list, certs, env, log=None):
    """fakesink once, then one-port and ports for each io-threads value."""
    py = gi_python()
    runs = [("fakesink", 0)] + [(layout, n) for n in io_threads_list
                                for layout in ("one-port", "ports")]
    rows = []
    for layout, n in runs:
        r = run_child(py, layout, streams, n, certs, env)
        if log:
            log("  " + summary_line(r))
        rows.append(r)
    return rows


def summary_line(r):
    what = r["layout"] + (f" io-threads={r['io_threads']}" if "io_threads" in r else "")
    if not r.get("ok"):
        return f"threads {what}: FAILED: {r.get('error', '?')[:300]}"
    return (f"threads {what}: {r['threads_before']} -> {r['threads_playing']} "
            f"(after stop {r.get('threads_after_stop')}), ports {r.get('ports', '-')}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="meson build dir")
    ap.add_argument("--work", default=os.path.join(ROOT, "bench", ".work"),
                    help="certificates are kept in WORK/certs (default bench/.work)")
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--io-threads", default="1,2", help="comma list (default 1,2)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    from .report import threads_lines  # the same text as the run's table

    plugin = os.path.join(os.path.abspath(args.build), "plugins", "tlsframe")
    if not os.path.exists(os.path.join(plugin, "libgsttlsframe.so")):
        print(f"plugin not built: {plugin}", file=sys.stderr)
        return 1
    certs = os.path.join(os.path.abspath(args.work), "certs")
    with tempfile.TemporaryDirectory(prefix="tlsframe-threads-") as tmp:
        try:
            ensure_certs(certs)
            # A private registry: nothing else on the machine rescans this plugin.
            env = dict(os.environ, GST_PLUGIN_PATH=plugin,
                       GST_REGISTRY=os.path.join(tmp, "registry.bin"))
            rows = measure(args.streams, [int(x) for x in args.io_threads.split(",") if x],
                           certs, env, log=print)
        except BenchError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    print()
    sys.stdout.write("\n".join(threads_lines(rows)) + "\n")
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
