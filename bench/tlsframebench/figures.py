"""The figures: what each one runs and how a run's result is judged. Every run
starts its server(s) fresh; results go to results.json after each run."""

import os
import time

from . import results, threadcount
from .common import BenchError, log
from .loadgen import run_loadgen
from .servers import SERVERS, Server

FIGURES = ("throughput", "ladder", "connect", "rss", "latency", "threads", "overload",
           "browser", "renditions")

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
    threads_streams=16,
    threads_io=[1, 2],
    overload=[64, 128, 192, 256, 384, 512, 640, 768, 1024],
    overload_past=1,
    browser_clients=32,
    browser_reps=1,  # as the latency figure (same warm-up and window too)
    renditions_clients=128,
    renditions_reps=1,  # as the latency figure (same warm-up and window too)
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
    threads_streams=16,
    threads_io=[1, 2],
    overload=[64, 128],
    overload_past=1,
    browser_clients=32,
    browser_reps=1,
    renditions_clients=32,
    renditions_reps=1,
)


class Bench:
    def __init__(self, args, cfg, inp, out):
        self.args = args
        self.cfg = cfg
        self.inp = inp
        self.out = out
        self.logdir = os.path.join(out, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.servers = [s for s in SERVERS if s in args.servers]
        self.results = dict(throughput=[], ladder=[], connect=[], rss=[], latency=[],
                            threads=[], overload=[], browser=[], renditions=[])
        self.seq = 0

    def _tag(self, fig, kind, n, rep=None):
        self.seq += 1
        r = f"-r{rep}" if rep is not None else ""
        return f"{self.seq:03d}-{fig}-{kind}-n{n}{r}"

    def one(self, fig, kind, n, live, rep=None, pre=None, server=None, **lg):
        """Starts a server, runs one loadgen, stops the server. Never raises
        BenchError: a failure is a result with ok=False. server: keyword arguments
        of Server (stream, renditions); the result then records its pipeline."""
        tag = self._tag(fig, kind, n, rep)
        res = dict(server=kind, clients=n, ok=False)
        srv = None
        try:
            srv = Server(kind, live, self.inp, self.logdir, tag, **(server or {}))
            srv.start()
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
        if server and srv and srv.pipeline:
            res["pipeline"] = srv.pipeline.replace(self.inp.work, "$WORK")
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

    def overload(self):
        """[9] tlsframesink under overload with default settings: the 30 fps ladder
        continued past the first step where not every client holds full rate
        (overload_past more steps), with per-client fps min/median and latency
        p50/p99 at each step: are frames shed evenly, is latency bounded?"""
        c = self.cfg
        log(f"[9] overload: 30 fps ladder past the first failing step (+{c['overload_past']}), "
            f"tlsframesink only; steps {c['overload']}")
        if "A" not in self.servers:
            return
        past = None
        for n in c["overload"]:
            r = self.one("overload", "A", n, live=True, warmup=c["ladder_warmup"],
                         duration=c["ladder_duration"], expect_fps=30)
            lg = r.get("loadgen", {})
            r["held"] = bool(r["ok"] and lg.get("full_rate") == n and lg.get("failed") == 0)
            self.results["overload"].append(r)
            self.save()
            if past is None and not r["held"]:
                past = 0
            elif past is not None:
                past += 1
            if past is not None and past >= c["overload_past"]:
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

    def browser(self):
        """[10] the cost of browser clients next to native ones: tlsframesink serving
        the 30 fps 720p JPEG stream (the ladder's) to N native clients, then to N
        WebSocket clients (its browser front, as the viewer page connects); the
        latency figure's warm-up and window. The report compares server CPU-s per GB."""
        c = self.cfg
        n, reps = c["browser_clients"], c["browser_reps"]
        log(f"[10] browser vs native cost at 30 fps, tlsframesink only: N={n} native, then "
            f"N={n} WebSocket; {reps} rep(s), warm-up {c['latency_warmup']} s, window "
            f"{c['latency_duration']} s")
        if "A" not in self.servers:
            return
        for rep in range(reps):
            for mode in ("native", "websocket"):
                r = self.one(f"browser-{mode}", "A", n, live=True, rep=rep,
                             warmup=c["latency_warmup"],
                             duration=c["latency_duration"], expect_fps=30,
                             websocket=(mode == "websocket"))
                r["mode"] = mode
                self.results["browser"].append(r)
                self.save()

    def renditions(self):
        """[11] renditions and the fan-out's economy (issue 13): tlsframesink serving
        the 30 fps 720p JPEG stream (the ladder's) as stream `cam` to N v2 clients,
        first as one rendition (`--stream cam`), then as two renditions `high` and
        `low` of the SAME buffers (a tee into two sinks on one port; no encoder, so
        only fan-out is counted) with the clients split evenly (`--rendition
        high,low`); the latency figure's warm-up and window. The report compares
        server CPU-s per GB: each rendition is serialized once, so the ratio
        renditions/single should be close to 1."""
        c = self.cfg
        n, reps = c["renditions_clients"], c["renditions_reps"]
        log(f"[11] renditions vs single rendition at 30 fps, tlsframesink only: N={n} "
            f"clients of stream cam, then N={n} split over renditions high,low; {reps} "
            f"rep(s), warm-up {c['latency_warmup']} s, window {c['latency_duration']} s")
        if "A" not in self.servers:
            return
        for rep in range(reps):
            for mode, names in (("single", ()), ("renditions", ("high", "low"))):
                r = self.one(f"renditions-{mode}", "A", n, live=True, rep=rep,
                             warmup=c["latency_warmup"], duration=c["latency_duration"],
                             expect_fps=30, server=dict(stream="cam", renditions=names),
                             stream="cam", renditions=names)
                r["mode"] = mode
                self.results["renditions"].append(r)
                self.save()

    def threads(self):
        c = self.cfg
        log(f"[8] threads of one process with {c['threads_streams']} streams, tlsframesink "
            f"only: one port vs {c['threads_streams']} ports, io-threads {c['threads_io']}")
        if "A" not in self.servers:
            return
        self.results["threads"] = threadcount.measure(
            c["threads_streams"], c["threads_io"], self.inp.certs, self.inp.gst_env, log=log)
        self.save()

    def save(self):
        results.write(self.out, dict(meta=self.meta, config=self.cfg, results=self.results))


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
