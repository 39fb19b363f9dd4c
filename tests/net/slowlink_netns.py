#!/usr/bin/env python3
"""Renditions on a real slow link (issue 13's Must show).

Three network namespaces made and removed by this script, joined by veth pairs:

    fast viewer 10.202.0.2/30 <-veth-> 10.202.0.1/30  server  10.202.0.5/30 <-veth-> 10.202.0.6/30 slow viewer
                                                                  tbf on the server's side

The server (gst-launch-1.0) encodes one capture (videotestsrc pattern=snow,
1280x720 at 30 fps, one tee) twice: x264 2500 kbit/s into tlsframesink
stream-name=cam rendition=high, and 640x360 500 kbit/s into rendition=low, one
port. Each viewer is tests/net/slowlink_viewer (tlsframesrc ! h264parse !
avdec_h264, JSON lines: each frame's latency = receive time minus the server's
send time carried in the buffer message, same machine clock; rendition
changes; stalls over 1 s; bus warnings). The server->slow-viewer direction is
shaped by tc tbf at 1 Mbit/s (burst 3000 bytes, latency 80 ms), later raised
with `tc qdisc change` to 10 Mbit/s (burst 6000 bytes). Checks:

  - the fast viewer (unshaped) stays on "high" throughout;
  - the slow viewer settles on "low" within 5 s of connecting, then gets at
    least 90% of its frames with latency under 500 ms (over MEASURE_S seconds);
  - raised to 10 Mbit/s, it steps up to "high" within 15 s;
  - no stall over 1 s across any switch; no decoder (bus) warning.

  tests/net/slowlink_netns.py BUILD_DIR [--single] [--seconds N] [--server-debug SPEC]

--single measures today's single-rendition behaviour instead (one 2.5 Mbit/s
stream, the slow viewer only, N seconds at 1 Mbit/s): prints fps and latency
p50/p90 and checks nothing. Exit 0 = pass, 1 = fail, 77 = skipped (not root,
no `ip`/`tc`, namespaces or veth unavailable, an element missing). Every wait
is bounded and reads the viewers' output; the namespaces (with their veths and
qdiscs) and every process started here are removed on every exit path.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

SLOW_RATE = "1mbit"
SLOW_BURST = "3000"  # bytes: 2 MTU-size packets, 24 ms at 1 Mbit/s
FAST_RATE = "10mbit"
FAST_BURST = "6000"  # bytes: 5 ms at 10 Mbit/s
TBF_LATENCY = "80ms"
SETTLE_S = 5.0      # the slow viewer is on "low" this soon after connecting
MEASURE_S = 15.0    # then its latency is measured this long
GOOD_LATENCY_MS = 500.0
GOOD_SHARE = 0.90
STEP_UP_S = 15.0    # after the link is raised, "high" within this long
AFTER_UP_S = 3.0    # watched after the step up (stalls, warnings)
MAX_STALL_MS = 1000.0
PORT = 9999


def log(*args):
    print("slowlink_netns:", *args, flush=True)


class Skip(Exception):
    pass


class Fail(Exception):
    pass


def run(*cmd, check=True):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    if check and r.returncode != 0:
        raise Fail(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r


class Viewer:
    """A slowlink_viewer process; its JSON lines collected by a reader thread."""

    def __init__(self, name, proc, log_path):
        self.name = name
        self.proc = proc
        self.log = open(log_path, "w")
        self.events = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.log.write(line)
            self.log.flush()
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.events.append(ev)

    def snapshot(self, kind=None):
        with self.lock:
            return [e for e in self.events if kind is None or e["ev"] == kind]


class Setup:
    def __init__(self, build_dir, work):
        self.build_dir = build_dir
        self.work = work
        self.tag = str(os.getpid())
        self.ns_srv = f"tf-sl-srv-{self.tag}"
        self.ns_fast = f"tf-sl-fast-{self.tag}"
        self.ns_slow = f"tf-sl-slow-{self.tag}"
        self.namespaces = []
        self.procs = []
        self.env = dict(os.environ)
        self.env["GST_PLUGIN_PATH"] = os.path.join(build_dir, "plugins", "tlsframe")
        self.env["HOME"] = work

    def make_network(self):
        if os.geteuid() != 0:
            raise Skip("creating network namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)")
        for tool in ("ip", "tc", "gst-launch-1.0", "gst-inspect-1.0"):
            if not shutil.which(tool):
                raise Skip(f"no '{tool}' command (iproute2 / gstreamer1.0-tools)")
        for el in ("x264enc", "h264parse", "avdec_h264", "videotestsrc", "videoscale", "tee"):
            if run("gst-inspect-1.0", "--exists", el, check=False).returncode != 0:
                raise Skip(f"GStreamer element {el} is missing")
        for ns in (self.ns_srv, self.ns_fast, self.ns_slow):
            r = run("ip", "netns", "add", ns, check=False)
            if r.returncode != 0:
                raise Skip(f"cannot create network namespace {ns}: {r.stderr.strip()}")
            self.namespaces.append(ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        for dev, peer, ns in (("s-fast", "v0", self.ns_fast), ("s-slow", "v0", self.ns_slow)):
            r = run("ip", "link", "add", dev, "netns", self.ns_srv, "type", "veth", "peer", "name",
                    peer, "netns", ns, check=False)
            if r.returncode != 0:
                raise Skip(f"cannot create a veth pair: {r.stderr.strip()}")
        run("ip", "-n", self.ns_srv, "addr", "add", "10.202.0.1/30", "dev", "s-fast")
        run("ip", "-n", self.ns_fast, "addr", "add", "10.202.0.2/30", "dev", "v0")
        run("ip", "-n", self.ns_srv, "addr", "add", "10.202.0.5/30", "dev", "s-slow")
        run("ip", "-n", self.ns_slow, "addr", "add", "10.202.0.6/30", "dev", "v0")
        for ns, dev in ((self.ns_srv, "s-fast"), (self.ns_srv, "s-slow"), (self.ns_fast, "v0"),
                        (self.ns_slow, "v0")):
            run("ip", "-n", ns, "link", "set", dev, "up")
        r = self.shape("add", SLOW_RATE, SLOW_BURST)
        if r.returncode != 0:
            raise Skip(f"no tc tbf: {r.stderr.strip()}")

    def shape(self, verb, rate, burst):
        return run("ip", "netns", "exec", self.ns_srv, "tc", "qdisc", verb, "dev", "s-slow", "root",
                   "tbf", "rate", rate, "burst", burst, "latency", TBF_LATENCY, check=False)

    def start(self, ns, name, argv, env=None, stdout=None):
        out = stdout if stdout is not None else open(os.path.join(self.work, name + ".log"), "w")
        e = dict(env or self.env)
        e["GST_REGISTRY_1_0"] = os.path.join(self.work, f"registry-{name}.bin")
        p = subprocess.Popen(["ip", "netns", "exec", ns] + argv, env=e, stdout=out,
                             stderr=open(os.path.join(self.work, name + ".err"), "w"),
                             text=True, start_new_session=True)
        self.procs.append(p)
        return p

    def cleanup(self):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except OSError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.wait(timeout=5)
        for ns in self.namespaces:
            # Anything still inside (started by us) goes too; deleting the namespace removes
            # its veths and their qdiscs.
            pids = run("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            if run("ip", "netns", "del", ns, check=False).returncode != 0:
                log(f"warning: could not delete namespace {ns}")


def wait_for(what, seconds, cond, procs):
    """Polls cond() every 50 ms until true (bounded); fails early when a process exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        for p in procs:
            if p.poll() is not None:
                raise Fail(f"a process exited (status {p.returncode}) while waiting for: {what}")
        time.sleep(0.05)
    raise Fail(f"{what} did not happen within {seconds:.0f} s")


def percentile(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def server_pipeline(certs, single):
    src = ("videotestsrc is-live=true pattern=snow ! video/x-raw,width=1280,height=720,framerate=30/1"
           " ! tee name=t")
    common = (f"port={PORT} cert-file={certs}/server.pem key-file={certs}/server.key "
              "stream-name=cam")
    enc = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60"
    caps = "video/x-h264,stream-format=byte-stream,alignment=au"
    high = f"t. ! queue ! {enc} bitrate=2500 ! {caps} ! tlsframesink {common}"
    if single:
        return f"{src} {high}"
    low = (f"t. ! queue ! videoscale ! video/x-raw,width=640,height=360 ! {enc} bitrate=500 ! {caps}"
           f" ! tlsframesink {common}")
    return f"{src} {high} rendition=high {low} rendition=low"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir")
    ap.add_argument("--single", action="store_true", help="one 2.5 Mbit/s rendition: measure only")
    ap.add_argument("--seconds", type=float, default=25.0, help="--single: measuring time")
    ap.add_argument("--server-debug", default="", help="GST_DEBUG for the server (log in WORK)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = ap.parse_args()
    build_dir = os.path.realpath(args.build_dir)
    tool = os.path.join(build_dir, "tools", "tlsframe", "tlsframe")
    viewer_bin = os.path.join(build_dir, "tests", "slowlink_viewer")
    for f in (tool, viewer_bin):
        if not os.access(f, os.X_OK):
            log(f"FAIL: no {f} (build first)")
            return 1
    work = tempfile.mkdtemp(prefix="tlsframe-slowlink.")
    setup = Setup(build_dir, work)
    status = 1

    def on_signal(signum, _frame):
        raise Fail(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        setup.make_network()
        certs = os.path.join(work, "certs")
        r = subprocess.run([tool, "certs", "--out", certs, "--host", "10.202.0.1", "--host",
                            "10.202.0.5"], env=setup.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        if r.returncode != 0:
            raise Fail(f"tlsframe certs: {r.stdout}")
        srv_env = dict(setup.env)
        if args.server_debug:
            srv_env["GST_DEBUG"] = args.server_debug
            srv_env["GST_DEBUG_NO_COLOR"] = "1"
        server = setup.start(setup.ns_srv, "server",
                             ["gst-launch-1.0", "-q"] + server_pipeline(certs, args.single).split(),
                             env=srv_env)

        def listening():
            r = run("ip", "netns", "exec", setup.ns_srv, "ss", "-Hltn", f"sport = :{PORT}",
                    check=False)
            return bool(r.stdout.strip())

        wait_for("the server listening", 30, listening, [server])

        def viewer(ns, name, host, seconds):
            p = setup.start(ns, name, [viewer_bin, "--host", host, "--port", str(PORT), "--ca-file",
                                       f"{certs}/ca.pem", "--stream", "cam", "--seconds",
                                       str(seconds)], stdout=subprocess.PIPE)
            return Viewer(name, p, os.path.join(work, name + ".jsonl"))

        # The server ranks the renditions by their encoders' rate tags, but
        # its automatic choice waits for their published rates, known after
        # about a second of publishing: a warm-up viewer watches 2.5 s of the
        # stream first, so the viewers below join a measured ladder.
        warm = viewer(setup.ns_fast, "warmup", "10.202.0.1", 2.5)
        wait_for("the warm-up viewer's 2.5 s", 25, lambda: warm.snapshot("end"), [server])
        if not warm.snapshot("frame"):
            raise Fail("the warm-up viewer got no frame")

        if args.single:
            slow = viewer(setup.ns_slow, "slow", "10.202.0.5", args.seconds + 30)
            first = wait_for("the slow viewer's first frame", 20,
                             lambda: slow.snapshot("frame"), [server, slow.proc])[0]["t"]
            end = first + args.seconds
            wait_for(f"{args.seconds:.0f} s of viewing", args.seconds + 10,
                     lambda: any(e["t"] >= end for e in slow.snapshot("sec")), [server, slow.proc])
            report(slow, first, end, "single rendition, 1 Mbit/s")
            status = 0
            return status

        fast = viewer(setup.ns_fast, "fast", "10.202.0.1", 70)
        slow = viewer(setup.ns_slow, "slow", "10.202.0.5", 70)
        procs = [server, fast.proc, slow.proc]
        conn = wait_for("the slow viewer connected", 20, lambda: slow.snapshot("connected"),
                        procs)[0]
        log(f"slow viewer connected on rendition {conn['rendition']!r}")
        down = wait_for("the slow viewer on rendition low", SETTLE_S + 5,
                        lambda: [e for e in slow.snapshot("rendition") if e["to"] == "low"], procs)[0]
        settled_s = down["t"] - conn["t"]
        log(f"slow viewer: on low {settled_s:.2f} s after connecting ({down['reason']})")
        end_measure = down["t"] + MEASURE_S
        wait_for("the measuring window", MEASURE_S + 10,
                 lambda: any(e["t"] >= end_measure for e in slow.snapshot("sec")), procs)
        on_low = report(slow, down["t"], end_measure, "two renditions, 1 Mbit/s, after settling")
        raised = time.time()
        r = setup.shape("change", FAST_RATE, FAST_BURST)
        if r.returncode != 0:
            raise Fail(f"tc qdisc change: {r.stderr.strip()}")
        log(f"slow viewer's link raised to {FAST_RATE}")
        up = wait_for("the slow viewer back on rendition high", STEP_UP_S + 10,
                      lambda: [e for e in slow.snapshot("rendition")
                               if e["to"] == "high" and e["t"] > raised], procs)[0]
        up_s = up["t"] - raised
        log(f"slow viewer: on high {up_s:.2f} s after the link was raised ({up['reason']})")
        end_all = up["t"] + AFTER_UP_S
        wait_for("the watch after the step up", AFTER_UP_S + 5,
                 lambda: any(e["t"] >= end_all for e in slow.snapshot("sec")), procs)

        failures = []
        fconn = fast.snapshot("connected")
        if not fconn or fconn[0]["rendition"] != "high" or fast.snapshot("rendition"):
            failures.append(f"fast viewer: connected on {fconn[0]['rendition'] if fconn else None},"
                            f" switches {[e['to'] for e in fast.snapshot('rendition')]}; want high"
                            " throughout")
        report(fast, fconn[0]["t"] if fconn else 0, end_all, "fast viewer, unshaped")
        if settled_s > SETTLE_S:
            failures.append(f"slow viewer on low after {settled_s:.2f} s, want <= {SETTLE_S:.0f} s")
        flaps = [e for e in slow.snapshot("rendition") if down["t"] < e["t"] < raised]
        if flaps:
            failures.append(f"slow viewer switched while on the 1 Mbit/s link: {flaps}")
        if on_low["good_share"] < GOOD_SHARE:
            failures.append(f"slow viewer: {on_low['good_share'] * 100:.1f}% of frames under "
                            f"{GOOD_LATENCY_MS:.0f} ms, want >= {GOOD_SHARE * 100:.0f}%")
        back = [e for e in slow.snapshot("rendition") if up["t"] < e["t"] <= end_all]
        if back:
            failures.append(f"slow viewer left high again after the step up: {back}")
        if up_s > STEP_UP_S:
            failures.append(f"slow viewer stepped up {up_s:.2f} s after the raise, want <= "
                            f"{STEP_UP_S:.0f} s")
        for v in (fast, slow):
            stalls = v.snapshot("stall")
            if stalls:
                failures.append(f"{v.name} viewer: stalls over {MAX_STALL_MS:.0f} ms: {stalls}")
            warnings = v.snapshot("warning") + v.snapshot("error")
            if warnings:
                failures.append(f"{v.name} viewer: bus warnings or errors: {warnings[:3]}")
        if failures:
            for f in failures:
                log("FAIL:", f)
            return 1
        log("ok")
        status = 0
        return status
    except Skip as e:
        log(f"SKIP: {e}")
        status = 77
        return status
    except Fail as e:
        log(f"FAIL: {e}")
        for name in ("server",):
            path = os.path.join(work, name + ".err")
            if os.path.exists(path):
                with open(path) as f:
                    tail = f.read()[-3000:]
                log(f"{name} stderr (tail):\n{tail}")
        return 1
    finally:
        setup.cleanup()
        if args.keep or (status != 0 and status != 77 and os.environ.get("TLSFRAME_KEEP_WORK")):
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(v, t0, t1, label):
    frames = [e for e in v.snapshot("frame") if t0 <= e["t"] < t1 and e["lat_ms"] >= 0]
    secs = [e["decoded"] for e in v.snapshot("sec") if t0 + 1 <= e["t"] <= t1]
    lat = [e["lat_ms"] for e in frames]
    span = max(t1 - t0, 1e-3)
    good = sum(1 for x in lat if x < GOOD_LATENCY_MS)
    out = {
        "fps": len(frames) / span,
        "fps_min": min(secs) if secs else 0,
        "fps_max": max(secs) if secs else 0,
        "p50_ms": percentile(lat, 0.5),
        "p90_ms": percentile(lat, 0.9),
        "good_share": good / len(lat) if lat else 0.0,
    }
    log(f"{label}: {len(frames)} frames in {span:.1f} s = {out['fps']:.1f} fps (per second "
        f"{out['fps_min']}..{out['fps_max']} decoded), latency p50 {out['p50_ms']:.0f} ms p90 "
        f"{out['p90_ms']:.0f} ms, {out['good_share'] * 100:.1f}% under {GOOD_LATENCY_MS:.0f} ms")
    return out


if __name__ == "__main__":
    sys.exit(main())
