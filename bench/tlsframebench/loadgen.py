"""One tlsframe-loadgen run against a server, with the server's CPU and RSS sampled
at the loadgen's measure-start and measure-end lines."""

import json
import os
import queue
import resource
import subprocess
import threading
import time

from .common import BenchError
from .procs import kill_group, spawn, tail

# Streaming figures connect at most this many clients at a time (tcpserversink's
# listen backlog is 5; see bench/README.md).
CONNECT_BATCH = 4


def run_loadgen(server, inp, cfg, n, logdir, tag, warmup=2.0, duration=5.0, expect_fps=None,
                first_frame=False, ff_timeout=None, threads=2, websocket=False, stream=None,
                renditions=()):
    """Runs tlsframe-loadgen against server; samples server CPU/RSS at the
    measure-start and measure-end lines. Returns a result dict (never raises for
    a failed measurement: ok=False plus error). websocket: the clients connect as
    browsers do (tlsframesink's browser front, loadgen --websocket). stream: protocol
    v2 clients asking for that stream (--stream); renditions: client i asks for
    renditions[i % len] (--rendition)."""
    ff_timeout = ff_timeout or cfg["first_frame_timeout"]
    jpath = os.path.join(logdir, f"{tag}-loadgen.json")
    cmd = [inp.loadgen, f"127.0.0.1:{server.port}", "--clients", str(n),
           "--threads", str(threads), "--first-frame-timeout", str(ff_timeout),
           "--retry", "--json", jpath]
    frame = inp.mkv_frame_bytes if server.live else inp.fast_frame_bytes
    if not first_frame:
        # Streaming figures: connect at most CONNECT_BATCH clients at a time, so that
        # tcpserversink's listen backlog of 5 does not overflow (see README).
        cmd += ["--connect-batch", str(CONNECT_BATCH)]
    if server.kind == "B":
        # --hello: a client byte gets a connect dropped by a full accept queue (SYN
        # cookies) retransmitted until accepted; tcpserversink discards client data.
        cmd += ["--no-tls", "--hello", "--raw", "--frame-size", str(frame)]
    else:
        cmd += ["--ca-file", os.path.join(inp.certs, "ca.pem"), "--server-name", "localhost"]
        if server.kind == "C":
            cmd += ["--raw", "--frame-size", str(frame)]
        if websocket:
            if server.kind != "A":
                raise BenchError("--websocket is for tlsframesink (A) only")
            cmd += ["--websocket"]
        if stream is not None or renditions:
            if server.kind != "A":
                raise BenchError("--stream and --rendition are for tlsframesink (A) only")
            if stream is not None:
                cmd += ["--stream", stream]
            if renditions:
                cmd += ["--rendition", ",".join(renditions)]
    if first_frame:
        cmd += ["--first-frame"]
        limit = ff_timeout + 20
    else:
        cmd += ["--warmup", str(warmup), "--duration", str(duration)]
        limit = ff_timeout + warmup + duration + 20
    if expect_fps:
        cmd += ["--expect-fps", str(expect_fps)]
    res = dict(server=server.kind, clients=n, ok=False, cmd=" ".join(cmd))
    if os.path.exists(jpath):
        os.remove(jpath)
    lines = queue.Queue()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = server.cpu()
    t_start = time.monotonic()
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
              text=True, bufsize=1)

    def reader():
        for line in p.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    out = []
    marks = {}
    try:
        end = t_start + limit
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise BenchError(f"loadgen did not finish within {limit:.0f} s")
            try:
                line = lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if line is None:
                break
            out.append(line)
            s = line.strip()
            if s in ("loadgen: measure-start", "loadgen: measure-end"):
                key = s.split("-")[-1]
                marks[key] = dict(t=time.monotonic(), cpu=server.cpu(), rss=server.rss())
        p.wait(timeout=10)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.monotonic() - t_start
        res["loadgen_exit"] = p.returncode
        res["loadgen_total_cpu_s"] = round((ru1.ru_utime + ru1.ru_stime)
                                           - (ru0.ru_utime + ru0.ru_stime), 3)
        res["loadgen_wall_s"] = round(wall, 3)
        cpu_after = server.cpu()
        res["server_cpu_whole_run_s"] = {r: delta(cpu_before.get(r), cpu_after.get(r))
                                         for r in cpu_before}
        try:
            with open(jpath) as f:
                res["loadgen"] = json.load(f)
        except (OSError, ValueError) as e:
            raise BenchError(f"no loadgen JSON ({e}); exit {p.returncode}: "
                             + "".join(out)[-600:].replace("\n", " | "))
        if "start" in marks and "end" in marks:
            a, b = marks["start"], marks["end"]
            win = b["t"] - a["t"]
            cpu = {r: delta(a["cpu"].get(r), b["cpu"].get(r)) for r in a["cpu"]}
            res["server_window_s"] = round(win, 3)
            res["server_cpu_s"] = cpu
            res["server_rss_kib_start"] = a["rss"]
            res["server_rss_kib_end"] = b["rss"]
            lg = res["loadgen"]
            total = sum(v for v in cpu.values() if v is not None)
            res["server_cpu_pct"] = round(100 * total / win, 1) if win > 0 else None
            gb_per_s = lg.get("mb_per_s", 0) / 1000.0
            if gb_per_s > 0 and win > 0:
                res["server_cpu_s_per_gb"] = round(total / win / gb_per_s, 3)
                res["server_cpu_s_per_gb_split"] = {
                    r: (round(v / win / gb_per_s, 3) if v is not None else None)
                    for r, v in cpu.items()}
        lg = res["loadgen"]
        if lg.get("failed", 0) >= n:
            raise BenchError("every client failed: " + "; ".join(lg.get("errors", [])[:3]))
        if not server.alive():
            dead = [r for r, q in server.procs.items() if q.poll() is not None]
            raise BenchError(f"server process exited during the run: {dead}: "
                             + tail(server.logs[dead[0]]))
        res["ok"] = True
    except BenchError as e:
        res["error"] = str(e)
    finally:
        kill_group(p, grace=2.0)
        res["loadgen_stdout"] = "".join(out)[-2000:]
    return res


def delta(a, b):
    if a is None or b is None:
        return None
    return round(b - a, 3)
