#!/usr/bin/env python3
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
import hashlib
import json
import os
import queue
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVERS = ("A", "B", "C")
SERVER_NAMES = {
    "A": "tlsframesink",
    "B": "tcpserversink",
    "C": "stunnel+tcpserversink",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
FD_LIMIT = 20000
MKV_FRAMES = 2100  # 70 s at 30/1
FAST_FRAMES = 90

# tcpserversink gets a bounded per-client queue like tlsframesink's buffers-max=32:
# a client more than 32 buffers behind is moved to the newest buffer (every JPEG
# buffer is a key unit, so whole frames are skipped).
TCP_QUEUE = "buffers-soft-max=32 recover-policy=latest"
CONNECT_BATCH = 4
TLS13_SUITES = "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"

FULL = dict(
    reps=3,
    tput_clients=[1, 8, 32, 128],
    tput_warmup=2.0,
    tput_duration=5.0,
    ladder=[64, 128, 192, 256, 384, 512, 640, 768, 1024],
    ladder_warmup=2.0,
    ladder_duration=8.0,
    connect_clients=[100, 500, 1000],
    connect_timeout=40.0,
    rss_clients=500,
    rss_duration=3.0,
    latency_clients=[1, 32, 256],
    latency_warmup=2.0,
    latency_duration=10.0,
    first_frame_timeout=30.0,
)
QUICK = dict(
    reps=1,
    tput_clients=[1, 32],
    tput_warmup=1.0,
    tput_duration=2.0,
    ladder=[64, 128],
    ladder_warmup=1.0,
    ladder_duration=3.0,
    connect_clients=[100],
    connect_timeout=20.0,
    rss_clients=100,
    rss_duration=2.0,
    latency_clients=[1, 32],
    latency_warmup=1.0,
    latency_duration=3.0,
    first_frame_timeout=20.0,
)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- processes

_procs = []  # every Popen we started; killed by process group on exit
_procs_lock = threading.Lock()


def _child_setup():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FD_LIMIT if hard == resource.RLIM_INFINITY else min(hard, FD_LIMIT)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def spawn(cmd, **kw):
    """Starts cmd in its own session (process group), with the fd limit raised."""
    p = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_child_setup, **kw)
    with _procs_lock:
        _procs.append(p)
    return p


def kill_group(p, grace=3.0):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # Whatever is left in the group (the leader may be gone already).
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    with _procs_lock:
        if p in _procs:
            _procs.remove(p)


def kill_all():
    with _procs_lock:
        ps = list(_procs)
    for p in ps:
        kill_group(p, grace=1.0)


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_quiet(cmd, timeout, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, **kw)
    if r.returncode != 0:
        raise BenchError(f"{' '.join(cmd[:3])}... failed ({r.returncode}): {r.stdout[-800:]}")
    return r.stdout


# ---------------------------------------------------------------- /proc

def proc_cpu_s(pid):
    """utime+stime of a process (all its threads), seconds; None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KIB
    except OSError:
        return None


def is_listening(port):
    want = f":{port:04X}"
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[1].endswith(want) and cols[3] == "0A":
                        return True
        except OSError:
            pass
    return False


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().strip()


def uptime_text():
    try:
        return subprocess.run(["uptime"], stdout=subprocess.PIPE, text=True,
                              timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + loadavg()


# ---------------------------------------------------------------- inputs

class Inputs:
    def __init__(self, work, build):
        self.work = work
        self.build = build
        self.loadgen = os.path.join(build, "bench", "tlsframe-loadgen")
        self.plugin_dir = os.path.join(build, "plugins", "tlsframe")
        self.certs = os.path.join(work, "certs")
        self.frames = os.path.join(work, "frames")
        self.mkv = os.path.join(work, "stream30.mkv")

    def prepare(self):
        for f, what in ((self.loadgen, "loadgen"),
                        (os.path.join(self.plugin_dir, "libgsttlsframe.so"), "plugin")):
            if not os.path.exists(f):
                raise BenchError(f"{what} not built: {f} (run: meson compile -C {self.build})")
        for tool in ("gst-launch-1.0", "stunnel4"):
            if not shutil.which(tool):
                raise BenchError(f"{tool} not found (scripts/install-deps.sh bench)")
        os.makedirs(self.work, exist_ok=True)
        if not os.path.exists(os.path.join(self.certs, "server.key")):
            log("making certificates in " + self.certs)
            run_quiet(["bash", os.path.join(ROOT, "certs", "make-dev-certs.sh"), self.certs], 60)
        jpgs = self._jpgs()
        if len(jpgs) != FAST_FRAMES:
            log(f"encoding {FAST_FRAMES} 720p JPEG frames into {self.frames}")
            shutil.rmtree(self.frames, ignore_errors=True)
            os.makedirs(self.frames)
            run_quiet(["gst-launch-1.0", "-q", "videotestsrc", f"num-buffers={FAST_FRAMES}",
                       "pattern=smpte", "horizontal-speed=4", "!",
                       "video/x-raw,width=1280,height=720,framerate=30/1", "!",
                       "jpegenc", "quality=85", "!", "multifilesink",
                       f"location={self.frames}/%05d.jpg"], 120)
            jpgs = self._jpgs()
        if not os.path.exists(self.mkv):
            log(f"encoding {MKV_FRAMES} frames ({MKV_FRAMES / 30:.0f} s at 30 fps) into {self.mkv}")
            tmp = self.mkv + ".tmp"
            run_quiet(["gst-launch-1.0", "-q", "videotestsrc", f"num-buffers={MKV_FRAMES}",
                       "pattern=smpte", "horizontal-speed=4", "!",
                       "video/x-raw,width=1280,height=720,framerate=30/1", "!",
                       "jpegenc", "quality=85", "!", "matroskamux", "!", "filesink",
                       f"location={tmp}"], 600)
            os.replace(tmp, self.mkv)
        self.fast_frame_bytes = sum(os.path.getsize(j) for j in jpgs) // len(jpgs)
        # Container overhead is a few bytes per block: the mean is within 0.1 %.
        self.mkv_frame_bytes = os.path.getsize(self.mkv) // MKV_FRAMES
        self.mkv_seconds = MKV_FRAMES / 30.0

    def snapshot(self, out):
        """Copies the plugin and the loadgen into OUT/bin and uses those copies, so
        that a rebuild during the run cannot mix two builds; checks both load."""
        bindir = os.path.join(out, "bin")
        plugdir = os.path.join(bindir, "plugin")
        os.makedirs(plugdir, exist_ok=True)
        so = os.path.join(plugdir, "libgsttlsframe.so")
        lg = os.path.join(bindir, "tlsframe-loadgen")
        shutil.copy2(os.path.join(self.plugin_dir, "libgsttlsframe.so"), so)
        shutil.copy2(self.loadgen, lg)
        self.plugin_dir, self.loadgen = plugdir, lg
        # A private registry: other GStreamer users on the machine do not rescan it.
        self.gst_env = dict(os.environ, GST_PLUGIN_PATH=plugdir,
                            GST_REGISTRY=os.path.join(bindir, "registry.bin"))
        run_quiet([lg, "--help"], 30)
        txt = run_quiet(["gst-inspect-1.0", "tlsframesink"], 60, env=self.gst_env)
        if "tlsframesink" not in txt:
            raise BenchError("gst-inspect-1.0 does not find tlsframesink in the snapshot")
        return {os.path.basename(f): sha256(f) for f in (so, lg)}

    def _jpgs(self):
        if not os.path.isdir(self.frames):
            return []
        return sorted(os.path.join(self.frames, f) for f in os.listdir(self.frames)
                      if f.endswith(".jpg"))


# ---------------------------------------------------------------- servers

class Server:
    """One server under test: A, B or C, replaying frames fast or at 30 fps."""

    def __init__(self, kind, live, inp, logdir, tag):
        self.kind = kind
        self.live = live
        self.inp = inp
        self.logdir = logdir
        self.tag = tag
        self.procs = {}  # role -> Popen
        self.port = None
        self.logs = {}

    def source(self):
        if self.live:
            return ["filesrc", f"location={self.inp.mkv}", "!", "matroskademux"]
        return ["multifilesrc", f"location={self.inp.frames}/%05d.jpg", "loop=true",
                "caps=image/jpeg,width=1280,height=720,framerate=30/1"]

    def _gst(self, role, sink):
        cmd = ["gst-launch-1.0", "-v"] + self.source() + ["!"] + sink
        path = os.path.join(self.logdir, f"{self.tag}-{role}.log")
        self.logs[role] = path
        env = self.inp.gst_env
        with open(path, "w") as out:
            out.write("# " + " ".join(cmd) + "\n")
            out.flush()
            self.procs[role] = spawn(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        return self._wait_port(role, path)

    def _wait_port(self, role, path, timeout=20.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            p = self.procs[role]
            with open(path, errors="replace") as f:
                text = f.read()
            i = text.find("current-port = ")
            if i >= 0:
                num = text[i + 15:].split(None, 1)[0]
                if num.isdigit() and int(num) > 0:
                    return int(num)
            if p.poll() is not None:
                raise BenchError(f"{role} exited ({p.returncode}) before listening: "
                                 + tail(path))
            time.sleep(0.05)
        raise BenchError(f"{role} did not report current-port within {timeout:.0f} s: "
                         + tail(path))

    def start(self):
        sync = "sync=true" if self.live else "sync=false"
        c = self.inp.certs
        try:
            if self.kind == "A":
                self.port = self._gst("tlsframesink", [
                    "tlsframesink", "host=127.0.0.1", "port=0", sync,
                    f"cert-file={c}/server.pem", f"key-file={c}/server.key"])
            else:
                back = self._gst("tcpserversink", [
                    "tcpserversink", "host=127.0.0.1", "port=0", sync] + TCP_QUEUE.split())
                if self.kind == "B":
                    self.port = back
                else:
                    self.port = self._start_stunnel(back)
            end = time.monotonic() + 10
            while not is_listening(self.port):
                if time.monotonic() > end:
                    raise BenchError(f"nothing listens on 127.0.0.1:{self.port}")
                for role, p in self.procs.items():
                    if p.poll() is not None:
                        raise BenchError(f"{role} exited ({p.returncode}): "
                                         + tail(self.logs[role]))
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_stunnel(self, backend):
        port = free_port()
        c = self.inp.certs
        conf = os.path.join(self.logdir, f"{self.tag}-stunnel.conf")
        with open(conf, "w") as f:
            f.write(
                "foreground = yes\n"
                "pid =\n"
                "debug = 3\n"
                "[bench]\n"
                f"accept = 127.0.0.1:{port}\n"
                f"connect = 127.0.0.1:{backend}\n"
                f"cert = {c}/server.pem\n"
                f"key = {c}/server.key\n"
                "sslVersionMin = TLSv1.3\n"
                # The same TLS 1.3 suites and server preference as tlsframesink
                # (core/tls_context.cpp), so A/C compares servers, not ciphers.
                f"ciphersuites = {TLS13_SUITES}\n"
                "options = CIPHER_SERVER_PREFERENCE\n")
        path = os.path.join(self.logdir, f"{self.tag}-stunnel.log")
        self.logs["stunnel"] = path
        with open(path, "w") as out:
            self.procs["stunnel"] = spawn(["stunnel4", conf], stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return port

    def pids(self):
        return {role: p.pid for role, p in self.procs.items()}

    def alive(self):
        return all(p.poll() is None for p in self.procs.values())

    def cpu(self):
        return {role: proc_cpu_s(pid) for role, pid in self.pids().items()}

    def rss(self):
        return {role: proc_rss_kib(pid) for role, pid in self.pids().items()}

    def stop(self):
        for p in list(self.procs.values())[::-1]:
            kill_group(p)


def tail(path, n=600):
    try:
        with open(path, errors="replace") as f:
            t = f.read()
    except OSError:
        return "(no log)"
    return t[-n:].strip().replace("\n", " | ")


# ---------------------------------------------------------------- loadgen

def run_loadgen(server, inp, cfg, n, logdir, tag, warmup=2.0, duration=5.0, expect_fps=None,
                first_frame=False, ff_timeout=None, threads=2):
    """Runs tlsframe-loadgen against server; samples server CPU/RSS at the
    measure-start and measure-end lines. Returns a result dict (never raises for
    a failed measurement: ok=False plus error)."""
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


# ---------------------------------------------------------------- figures

class Bench:
    def __init__(self, args, cfg, inp, out):
        self.args = args
        self.cfg = cfg
        self.inp = inp
        self.out = out
        self.logdir = os.path.join(out, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.servers = [s for s in SERVERS if s in args.servers]
        self.results = dict(throughput=[], ladder=[], connect=[], rss=[], latency=[])
        self.seq = 0

    def _tag(self, fig, kind, n, rep=None):
        self.seq += 1
        r = f"-r{rep}" if rep is not None else ""
        return f"{self.seq:03d}-{fig}-{kind}-n{n}{r}"

    def one(self, fig, kind, n, live, rep=None, pre=None, **lg):
        """Starts a server, runs one loadgen, stops the server. Never raises
        BenchError: a failure is a result with ok=False."""
        tag = self._tag(fig, kind, n, rep)
        res = dict(server=kind, clients=n, ok=False)
        srv = None
        try:
            srv = Server(kind, live, self.inp, self.logdir, tag).start()
            extra = pre(srv) if pre else {}
            res = run_loadgen(srv, self.inp, self.cfg, n, self.logdir, tag,
                              threads=self.args.loadgen_threads, **lg)
            res.update(extra)
            if srv.live:
                # Clients connected and streaming must fit inside the file.
                res["server_stream_s_max"] = self.inp.mkv_seconds
        except BenchError as e:
            res["error"] = str(e)
        finally:
            if srv:
                srv.stop()
        if rep is not None:
            res["rep"] = rep
        res["tag"] = tag
        short = summary_line(fig, res)
        log(f"  {tag}: {short}")
        time.sleep(0.3)
        return res

    def throughput(self):
        c = self.cfg
        log(f"[1,2] throughput as fast as possible: N={c['tput_clients']}, {c['reps']} rep(s), "
            f"warm-up {c['tput_warmup']} s, window {c['tput_duration']} s")
        for rep in range(c["reps"]):
            for n in c["tput_clients"]:
                for kind in self.servers:
                    self.results["throughput"].append(self.one(
                        "tput", kind, n, live=False, rep=rep, warmup=c["tput_warmup"],
                        duration=c["tput_duration"]))
                    self.save()

    def ladder(self):
        c = self.cfg
        log(f"[3] largest N at 30 fps with every client at full rate; steps {c['ladder']}")
        alive = list(self.servers)
        for n in c["ladder"]:
            for kind in list(alive):
                r = self.one("ladder", kind, n, live=True, warmup=c["ladder_warmup"],
                             duration=c["ladder_duration"], expect_fps=30)
                lg = r.get("loadgen", {})
                r["held"] = bool(r["ok"] and lg.get("full_rate") == n and lg.get("failed") == 0)
                self.results["ladder"].append(r)
                if not r["held"]:
                    alive.remove(kind)
                self.save()
            if not alive:
                break

    def connect(self):
        c = self.cfg
        log(f"[4] time for N clients to connect and get a first frame (30 fps stream): "
            f"N={c['connect_clients']}")
        for n in c["connect_clients"]:
            for kind in self.servers:
                self.results["connect"].append(self.one(
                    "connect", kind, n, live=True, first_frame=True,
                    ff_timeout=c["connect_timeout"]))
                self.save()

    def rss(self):
        c = self.cfg
        n = c["rss_clients"]
        log(f"[5] server RSS per client: 0 vs {n} clients at 30 fps")

        def rss0(srv):
            time.sleep(2.0)  # stream running, no client yet
            return {"server_rss_kib_0": srv.rss()}

        for kind in self.servers:
            r = self.one("rss", kind, n, live=True, pre=rss0, warmup=1.0,
                         duration=c["rss_duration"], expect_fps=30)
            if r.get("ok") and r.get("server_rss_kib_0") and r.get("server_rss_kib_end"):
                per = {}
                for role, v0 in r["server_rss_kib_0"].items():
                    v1 = r["server_rss_kib_end"].get(role)
                    if v0 is not None and v1 is not None:
                        per[role] = round((v1 - v0) / n, 2)
                r["rss_kib_per_client_split"] = per
                r["rss_kib_per_client"] = round(sum(per.values()), 2)
            self.results["rss"].append(r)
            self.save()

    def latency(self):
        c = self.cfg
        log(f"[6] added latency at 30 fps, tlsframesink only: N={c['latency_clients']}")
        if "A" not in self.servers:
            return
        for n in c["latency_clients"]:
            self.results["latency"].append(self.one(
                "latency", "A", n, live=True, warmup=c["latency_warmup"],
                duration=c["latency_duration"], expect_fps=30))
            self.save()

    def save(self):
        meta = self.meta
        doc = dict(meta=meta, config=self.cfg, results=self.results)
        tmp = os.path.join(self.out, "results.json.tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, os.path.join(self.out, "results.json"))
        with open(os.path.join(self.out, "results-compact.json"), "w") as f:
            json.dump(compact(doc), f, separators=(",", ":"))
            f.write("\n")


# Fields kept in results-compact.json (small enough to commit under bench/results/).
COMPACT_LOADGEN = ("failed", "connect_attempts", "all_streaming_before_window", "window_s",
                   "mb_per_s", "fps_min", "fps_median", "fps_max", "seq_gaps", "full_rate",
                   "latency_ms_p50", "latency_ms_p99", "latency_ms_max", "latency_samples",
                   "loadgen_cpu_pct",
                   "first_frame_all_s", "first_frame_p50_s", "first_frame_p99_s",
                   "with_first_frame", "errors")
COMPACT_DROP = ("cmd", "loadgen_stdout", "server_rss_kib_start", "server_cpu_whole_run_s",
                "server_stream_s_max", "loadgen_exit")


def compact(doc):
    res = {}
    for fig, rs in doc["results"].items():
        out = []
        for r in rs:
            c = {k: v for k, v in r.items() if k not in COMPACT_DROP and k != "loadgen"}
            lg = r.get("loadgen") or {}
            c["loadgen"] = {k: lg[k] for k in COMPACT_LOADGEN if k in lg and lg[k] != []}
            if "error" in c:
                c["error"] = c["error"][:300]
            out.append(c)
        res[fig] = out
    return dict(meta=doc["meta"], config=doc["config"], results=res)


def summary_line(fig, r):
    if not r.get("ok"):
        return "FAILED: " + r.get("error", "?")[:300]
    lg = r.get("loadgen", {})
    if fig == "connect":
        return (f"all first frames {lg.get('first_frame_all_s')} s, p50 "
                f"{lg.get('first_frame_p50_s')} s, p99 {lg.get('first_frame_p99_s')} s, "
                f"attempts {lg.get('connect_attempts')}, failed {lg.get('failed')}")
    s = (f"{lg.get('mb_per_s', 0):.1f} MB/s, fps min {lg.get('fps_min', 0):.1f}, "
         f"full-rate {lg.get('full_rate')}/{r['clients']}, server CPU "
         f"{r.get('server_cpu_pct')}%, loadgen CPU {lg.get('loadgen_cpu_pct', 0):.0f}%")
    if lg.get("latency_samples"):
        s += f", latency p50 {lg['latency_ms_p50']:.2f} p99 {lg['latency_ms_p99']:.2f} ms"
    return s


# ---------------------------------------------------------------- table

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec=".1f", none="fail"):
    return none if x is None else format(x, spec)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def make_table(doc):
    meta, cfg, R = doc["meta"], doc["config"], doc["results"]
    servers = meta["servers"]
    L = []
    w = L.append
    w(f"tlsframe benchmark  commit {meta['git_commit']}{' (+ uncommitted changes in the tree)' if meta.get('git_dirty') else ''}"
      f"  {meta['started_utc']}  mode {meta['mode']}")
    w(f"machine: {meta['nproc']} cores; uptime before: {meta['uptime_before']}")
    if meta.get("uptime_after"):
        w(f"                uptime after:  {meta['uptime_after']}")
    w("servers: " + ", ".join(f"{s} = {SERVER_NAMES[s]}" for s in servers)
      + f"; tcpserversink: {TCP_QUEUE}; loadgen threads {meta['loadgen_threads']}")
    w(f"frames: 720p JPEG q85, fast = {meta['fast_frame_bytes']} B mean (90 files looped), "
      f"30 fps = {meta['mkv_frame_bytes']} B mean (Matroska, {meta['mkv_seconds']:.0f} s)")
    w("")

    def by(fig, kind, n):
        return [r for r in R.get(fig, []) if r["server"] == kind and r["clients"] == n]

    # 1 + 2 + 7
    if R.get("throughput"):
        w(f"[1] throughput as fast as possible, MB/s delivered (median of {cfg['reps']} rep(s); "
          f"window {cfg['tput_duration']} s)")
        w("[2] server CPU-seconds per GB delivered (median); [7] loadgen CPU % of one core "
          "(median of reps, max in brackets)")
        hdr = f"{'N':>5} | " + " | ".join(f"{s + ' MB/s':>9} {'cpu/GB':>7} {'lg%':>9}"
                                         for s in servers)
        hdr += " | " + "  ".join(f"{x:>6}" for x in ("A/B", "A/C") if x[2] in servers
                                  and "A" in servers)
        w(hdr)
        for n in cfg["tput_clients"]:
            row, mb = [], {}
            for s in servers:
                rs = [r for r in by("throughput", s, n) if r.get("ok")]
                mbs = med([r["loadgen"]["mb_per_s"] for r in rs])
                mb[s] = mbs
                cpg = med([r.get("server_cpu_s_per_gb") for r in rs])
                lgs = [r["loadgen"].get("loadgen_cpu_pct") for r in rs]
                lgm = med(lgs)
                lgx = max([x for x in lgs if x is not None], default=None)
                lgtxt = f"{fmt(lgm, '.0f', '-')}({fmt(lgx, '.0f', '-')})"
                nfail = len(by("throughput", s, n)) - len(rs)
                late = any(not r["loadgen"].get("all_streaming_before_window", True) for r in rs)
                mbtxt = (fmt(mbs) + ("*" if nfail and mbs is not None else "")
                         + ("!" if late else ""))
                row.append(f"{mbtxt:>9} {fmt(cpg, '.2f', '-'):>7} {lgtxt:>9}")
            line = f"{n:>5} | " + " | ".join(row)
            if "A" in servers:
                line += " | " + "  ".join(f"{ratio(mb.get('A'), mb.get(x)):>6}"
                                          for x in ("B", "C") if x in servers)
            w(line)
        if "C" in servers:
            parts = []
            for n in cfg["tput_clients"]:
                rs = [r for r in by("throughput", "C", n) if r.get("ok")
                      and r.get("server_cpu_s_per_gb_split")]
                st = med([r["server_cpu_s_per_gb_split"].get("stunnel") for r in rs])
                ts = med([r["server_cpu_s_per_gb_split"].get("tcpserversink") for r in rs])
                parts.append(f"N={n}: stunnel {fmt(st, '.2f', '-')} + tcpserversink "
                             f"{fmt(ts, '.2f', '-')}")
            w("    C cpu/GB split: " + "; ".join(parts))
        w("    cpu/GB ratios (lower is better for A): " + "; ".join(
            f"N={n}: A/B {ratio(med([r.get('server_cpu_s_per_gb') for r in by('throughput', 'A', n) if r.get('ok')]), med([r.get('server_cpu_s_per_gb') for r in by('throughput', 'B', n) if r.get('ok')]))}"
            f" A/C {ratio(med([r.get('server_cpu_s_per_gb') for r in by('throughput', 'A', n) if r.get('ok')]), med([r.get('server_cpu_s_per_gb') for r in by('throughput', 'C', n) if r.get('ok')]))}"
            for n in cfg["tput_clients"]))
        if cfg["reps"] > 1:
            w("    MB/s of each rep: " + "; ".join(
                f"N={n}: " + " ".join(
                    f"{s} " + "/".join(fmt(r["loadgen"]["mb_per_s"], ".0f") if r.get("ok")
                                       else "fail" for r in by("throughput", s, n))
                    for s in servers) for n in cfg["tput_clients"]))
        w("    fps min per client (median of reps): " + "; ".join(
            f"N={n}: " + " ".join(
                f"{s} {fmt(med([r['loadgen'].get('fps_min') for r in by('throughput', s, n) if r.get('ok')]), '.0f', '-')}"
                for s in servers) for n in cfg["tput_clients"]))
        lates = [r for r in R["throughput"] if r.get("ok")
                 and not r["loadgen"].get("all_streaming_before_window", True)]
        if lates:
            w(f"    ! in {len(lates)} rep(s) not every client had a first frame within "
              f"{cfg['first_frame_timeout']:.0f} s; the window was measured anyway: " + ", ".join(
                  f"{r['server']} N={r['clients']}" for r in lates))
        fails = [r for r in R["throughput"] if not r.get("ok")]
        if fails:
            w(f"    * {len(fails)} failed rep(s): " + "; ".join(
                f"{r['server']} N={r['clients']}: {r.get('error', '?')[:120]}" for r in fails[:4]))
        w("")

    # 3
    if R.get("ladder"):
        w(f"[3] largest N held at 30 fps, every client at full rate (>= 30*window-2 frames, "
          f"no server skips); steps {cfg['ladder']}; 1 rep each; a server's ladder stops "
          f"at its first failure")
        best = {}
        for s in servers:
            rs = [r for r in R["ladder"] if r["server"] == s]
            held = [r["clients"] for r in rs if r.get("held")]
            failed = [r for r in rs if not r.get("held")]
            best[s] = max(held) if held else None
            steps = "  ".join(
                f"{r['clients']}:{'ok' if r.get('held') else 'FAIL'}"
                f"({(r.get('loadgen') or {}).get('full_rate', '-')},"
                f"lg{fmt((r.get('loadgen') or {}).get('loadgen_cpu_pct'), '.0f', '-')}%,"
                f"srv{fmt(r.get('server_cpu_pct'), '.0f', '-')}%)" for r in rs)
            top = (f"{best[s]}" if best[s] else f"< {cfg['ladder'][0]}")
            if not failed and rs:
                top = f">= {best[s]} (top step)"
            w(f"    {s}: {top:<16} {steps}")
            if failed and not failed[0].get("ok"):
                w(f"       first failure error: {failed[0].get('error', '')[:200]}")
        w("    (per step: full-rate clients, loadgen CPU %, server CPU %)")
        if "A" in servers:
            w("    ratio " + "  ".join(f"A/{x} {ratio(best.get('A'), best.get(x))}"
                                     for x in ("B", "C") if x in servers))
        w("")

    # 4
    if R.get("connect"):
        w("[4] time until all N clients are connected and have a first frame (30 fps stream, "
          "all N connect at once, failed connects retried)")
        w(f"{'N':>5} | " + " | ".join(f"{s + ' all s':>12} {'p50':>6} {'p99':>6} {'att':>5} "
                                       f"{'lgcpu':>5}" for s in servers)
          + (" | " + "  ".join(f"{x:>6}" for x in ("A/B", "A/C") if x[2] in servers)
             if "A" in servers else ""))
        for n in cfg["connect_clients"]:
            row, al = [], {}
            for s in servers:
                rs = by("connect", s, n)
                r = rs[0] if rs else {}
                lg = r.get("loadgen") or {}
                a = lg.get("first_frame_all_s")
                al[s] = a if (a is not None and a >= 0) else None
                at = lg.get("first_frame_all_s")
                atxt = ("fail" if not lg else (f"t/o {lg.get('with_first_frame')}/{n}"
                                                if at is not None and at < 0
                                                else fmt(at, ".2f")))
                row.append(f"{atxt:>12} {fmt(lg.get('first_frame_p50_s'), '.2f', '-'):>6} "
                           f"{fmt(lg.get('first_frame_p99_s'), '.2f', '-'):>6} "
                           f"{lg.get('connect_attempts', '-'):>5} "
                           f"{fmt(r.get('loadgen_total_cpu_s'), '.1f', '-'):>5}")
            line = f"{n:>5} | " + " | ".join(row)
            if "A" in servers:
                line += " | " + "  ".join(f"{ratio(al.get('A'), al.get(x)):>6}"
                                          for x in ("B", "C") if x in servers)
            w(line)
        w("    all s = until the last client's first frame (t/o K/N: only K had one when the "
          f"{cfg['connect_timeout']:.0f} s limit passed); p50/p99 over the clients that got one;")
        w("    att = connect attempts (> N: refused/failed connects were retried); "
          "lgcpu = loadgen CPU-s for the whole run")
        w("")

    # 5
    if R.get("rss"):
        n = cfg["rss_clients"]
        w(f"[5] server RSS per connected client at 30 fps: (RSS with {n} clients - RSS with 0) / {n}")
        vals = {}
        for s in servers:
            rs = [r for r in R["rss"] if r["server"] == s]
            r = rs[0] if rs else {}
            v = r.get("rss_kib_per_client")
            vals[s] = v
            if r.get("ok") and v is not None:
                r0 = sum(x for x in r["server_rss_kib_0"].values() if x)
                r1 = sum(x for x in r["server_rss_kib_end"].values() if x)
                split = ""
                if len(r.get("rss_kib_per_client_split", {})) > 1:
                    split = " (" + ", ".join(f"{k} {x:.1f}" for k, x in
                                             r["rss_kib_per_client_split"].items()) + ")"
                fr = (r.get("loadgen") or {}).get("full_rate")
                w(f"    {s}: {v:7.1f} KiB/client{split}; RSS {r0} -> {r1} KiB; "
                  f"full-rate {fr}/{n}")
            else:
                w(f"    {s}: fail: {r.get('error', '?')[:200]}")
        if "A" in servers:
            w("    ratio " + "  ".join(f"A/{x} {ratio(vals.get('A'), vals.get(x))}"
                                     for x in ("B", "C") if x in servers))
        w("")

    # 6
    if R.get("latency") or "A" in servers:
        w("[6] added latency at 30 fps (sink render timestamp -> loadgen receive), "
          "tlsframesink only")
        for r in R.get("latency", []):
            lg = r.get("loadgen") or {}
            if r.get("ok") and lg.get("latency_samples"):
                w(f"    A N={r['clients']:>4}: p50 {lg['latency_ms_p50']:.2f} ms, p99 "
                  f"{lg['latency_ms_p99']:.2f} ms, max {lg['latency_ms_max']:.2f} ms "
                  f"({lg['latency_samples']} frames; full-rate {lg.get('full_rate')}/"
                  f"{r['clients']}; loadgen CPU {lg.get('loadgen_cpu_pct', 0):.0f}%)")
            else:
                w(f"    A N={r['clients']:>4}: fail: {r.get('error', '?')[:200]}")
        w("    B, C: n/a - a raw byte stream carries no send timestamps, so the receiver "
          "cannot tell when a byte left the server")
        w("")
    w("[7] loadgen CPU is in every row above (lg% = % of one core in the measured window; "
      f"{meta['nproc']} cores shared by server(s) and loadgen)")
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------- main

def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


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
    ap.add_argument("--figures", default="throughput,ladder,connect,rss,latency",
                    help="comma list of throughput,ladder,connect,rss,latency")
    ap.add_argument("--loadgen-threads", type=int, default=2)
    ap.add_argument("--table", metavar="JSON", help="only print the table of a results.json")
    args = ap.parse_args()

    if args.table:
        with open(args.table) as f:
            sys.stdout.write(make_table(json.load(f)))
        return 0

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)  # also when started with SIGINT ignored (&)
    cfg = dict(QUICK if args.quick else FULL)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out = os.path.abspath(args.out or os.path.join(args.work, f"results-{stamp}"))
    os.makedirs(out, exist_ok=True)
    figures = [f.strip() for f in args.figures.split(",") if f.strip()]
    for f in figures:
        if f not in ("throughput", "ladder", "connect", "rss", "latency"):
            ap.error(f"unknown figure {f}")
    _child_setup()  # our own limit too (children inherit it)

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
