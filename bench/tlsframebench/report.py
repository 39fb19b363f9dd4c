"""The table of a run, from its results JSON alone (results.json or
results-compact.json): medians, ratios A/B and A/C, markers. Standard library
only; imports nothing from the runner.

  python3 -m tlsframebench.report RESULTS.json      (from bench/)
  python3 bench/run.py --table RESULTS.json

Markers: `*` a repetition failed, `!` not every client had a first frame before
the window, `t/o K/N` only K of N clients had a first frame at the connect limit,
`fail` no result.
"""

import json
import statistics
import sys

SERVER_NAMES = {
    "A": "tlsframesink",
    "B": "tcpserversink",
    "C": "stunnel+tcpserversink",
}


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
      + f"; tcpserversink: {meta['tcpserversink_queue']}; loadgen threads {meta['loadgen_threads']}")
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
    if R.get("threads"):
        w("")
        L.extend(threads_lines(R["threads"]))
    if R.get("overload"):
        w("")
        L.extend(overload_lines(R["overload"], cfg))
    if R.get("browser"):
        w("")
        L.extend(browser_lines(R["browser"]))
    if R.get("renditions"):
        w("")
        L.extend(renditions_lines(R["renditions"]))
    return "\n".join(L) + "\n"


def threads_lines(rows):
    """Figure 8: threads of one process with STREAMS branches, per layout; the sinks'
    threads are the ones a layout adds over fakesink's."""
    streams = rows[0].get("streams", 16) if rows else 16
    L = [f"[8] threads of one process with {streams} streams (videotestsrc ! jpegenc ! sink, "
         "no clients): /proc/PID/task before the sinks start -> all playing"]
    base = next((r for r in rows if r.get("layout") == "fakesink" and r.get("ok")), None)
    base_added = base["threads_playing"] - base["threads_before"] if base else None
    names = {"fakesink": f"{streams} fakesinks (no server)",
             "one-port": f"{streams} tlsframesinks, one port",
             "ports": f"{streams} tlsframesinks, {streams} ports"}
    for r in rows:
        layout = r.get("layout")
        label = names.get(layout, str(layout))
        if "io_threads" in r:
            label = f"io-threads {r['io_threads']}: " + label
        if not r.get("ok"):
            L.append(f"    {label:<40} fail: {r.get('error', '?')[:200]}")
            continue
        added = r["threads_playing"] - r["threads_before"]
        line = f"    {label:<40} {r['threads_before']:>4} -> {r['threads_playing']:>4} (+{added})"
        if layout != "fakesink" and base_added is not None and "io_threads" in r:
            sink = added - base_added
            want = r["io_threads"] * (1 if layout == "one-port" else streams)
            line += (f"; sinks +{sink} = {sink - streams} I/O + {streams} signal "
                     f"(expected {want} I/O)")
        L.append(line)
    L.append("    (sinks = threads added over fakesink's; every tlsframesink has one signal "
             "thread, its listener io-threads I/O threads)")
    return L


# Issue 13's target at the first step where not every client holds full rate.
OVERLOAD_SPREAD_MIN = 0.8
OVERLOAD_P99_MAX_MS = 300.0


def overload_lines(rows, cfg):
    """Figure 9: tlsframesink's 30 fps ladder past its first failing step: per step,
    clients at full rate, per-client fps min / median and their ratio (the spread:
    1 = frames shed evenly), latency p50 / p99, server and loadgen CPU; then the
    first failing step against the target."""
    L = [f"[9] overload, tlsframesink with default settings: 30 fps ladder "
         f"{cfg.get('overload', [])} continued {cfg.get('overload_past', 1)} step(s) past "
         "the first where not every client holds full rate"]
    L.append(f"{'N':>6} | {'full-rate':>9} | {'fps min / median':>16} {'spread':>6} | "
             f"{'latency p50 / p99 ms':>20} | {'srv%':>5} {'lg%':>4}")
    first = None
    for r in rows:
        lg = r.get("loadgen") or {}
        if not r.get("ok"):
            L.append(f"{r['clients']:>6} | fail: {r.get('error', '?')[:160]}")
            continue
        fmin, fmed = lg.get("fps_min"), lg.get("fps_median")
        spread = fmin / fmed if fmin is not None and fmed else None
        p50, p99 = lg.get("latency_ms_p50"), lg.get("latency_ms_p99")
        fr = f"{lg.get('full_rate', '-')}/{r['clients']}"
        fps = f"{fmt(fmin)} / {fmt(fmed)}"
        lat = f"{fmt(p50, '.0f')} / {fmt(p99, '.0f')}"
        L.append(f"{r['clients']:>6} | {fr:>9} | {fps:>16} {fmt(spread, '.2f', '-'):>6} | "
                 f"{lat:>20} | {fmt(r.get('server_cpu_pct'), '.0f', '-'):>5} "
                 f"{fmt(lg.get('loadgen_cpu_pct'), '.0f', '-'):>4}")
        if first is None and not r.get("held"):
            first = (r, spread, p99)
    if first is None:
        L.append("    every step held full rate: no overload reached")
    else:
        r, spread, p99 = first
        ok_spread = spread is not None and spread >= OVERLOAD_SPREAD_MIN
        ok_p99 = p99 is not None and p99 <= OVERLOAD_P99_MAX_MS
        L.append(f"    first step short of full rate: N={r['clients']}: spread "
                 f"{fmt(spread, '.2f', '-')} (target >= {OVERLOAD_SPREAD_MIN}: "
                 f"{'met' if ok_spread else 'missed'}), p99 {fmt(p99, '.0f', '-')} ms "
                 f"(target <= {OVERLOAD_P99_MAX_MS:.0f}: {'met' if ok_p99 else 'missed'})")
    L.append("    (spread = fps min / median over clients; latency = sink render -> loadgen "
             "receive, all frames of the window)")
    return L


def mode_lines(rows, modes, n, width, extra=None):
    """Figures 10 and 11: per mode, the median over its reps of server CPU-s per GB,
    MB/s, per-client fps min, clients at full rate, latency p50 / p99 and server
    CPU %, then extra(loadgen results) when given. Returns (lines, {mode: CPU-s per
    GB or None})."""
    L, cpg = [], {}
    for mode in modes:
        all_rs = [r for r in rows if r.get("mode") == mode]
        rs = [r for r in all_rs if r.get("ok")]
        if not rs:
            err = all_rs[0].get("error", "?")[:160] if all_rs else "not run"
            L.append(f"    {mode:<{width}} | fail: {err}")
            cpg[mode] = None
            continue
        lgs = [r.get("loadgen") or {} for r in rs]
        cpg[mode] = med([r.get("server_cpu_s_per_gb") for r in rs])
        mark = "*" if len(rs) < len(all_rs) else ""
        full = med([lg.get("full_rate") for lg in lgs])
        lat = (f"{fmt(med([lg.get('latency_ms_p50') for lg in lgs]), '.1f')} / "
               f"{fmt(med([lg.get('latency_ms_p99') for lg in lgs]), '.1f')}")
        line = (f"    {mode:<{width}} | {fmt(cpg[mode], '.2f', '-') + mark:>6} | "
                f"{fmt(med([lg.get('mb_per_s') for lg in lgs])):>7} | "
                f"{fmt(med([lg.get('fps_min') for lg in lgs])):>7} | "
                f"{fmt(full, '.0f', '-') + '/' + str(n):>9} | {lat:>20} | "
                f"{fmt(med([r.get('server_cpu_pct') for r in rs]), '.0f', '-'):>5}")
        if extra:
            line += f" | {extra(lgs)}"
        L.append(line)
    return L, cpg


def ratio_line(what, a, b, target, limit):
    """The ratio a/b of CPU per GB against `target` (its text) <= limit."""
    if a is None or b is None or b == 0:
        return f"    ratio {what} cpu/GB: n/a ({target}{limit:.2f})"
    return (f"    ratio {what} cpu/GB: {a / b:.2f} ({target}{limit:.2f}: "
            f"{'met' if a / b <= limit else 'missed'})")


# Issue 11's target: browser clients cost at most this much more server CPU per GB.
BROWSER_RATIO_MAX = 1.10


def browser_lines(rows):
    """Figure 10: tlsframesink at 30 fps to N native clients and to N WebSocket
    (browser front) clients: per mode the median over reps of server CPU-s per GB,
    MB/s, per-client fps min, clients at full rate and latency p50 / p99; then the
    ratio websocket/native of CPU per GB against the target."""
    n = rows[0]["clients"] if rows else 0
    reps = max(sum(1 for r in rows if r.get("mode") == m) for m in ("native", "websocket"))
    L = [f"[10] browser vs native clients, tlsframesink at 30 fps (720p JPEG), N={n}: "
         f"server CPU per GB delivered (median of {reps} rep(s))"]
    L.append(f"    {'mode':<9} | {'cpu/GB':>6} | {'MB/s':>7} | {'fps min':>7} | "
             f"{'full-rate':>9} | {'latency p50 / p99 ms':>20} | {'srv%':>5}")
    lines, cpg = mode_lines(rows, ("native", "websocket"), n, 9)
    L += lines
    L.append(ratio_line("websocket/native", cpg.get("websocket"), cpg.get("native"),
                        "target <= ", BROWSER_RATIO_MAX))
    L.append("    (cpu/GB = server CPU-s per GB the clients received, WebSocket frame headers "
             "included; * a rep failed; latency = sink render -> loadgen receive)")
    return L


# Issue 13: renditions must not break the fan-out's economy (each rendition serialized
# once): server CPU per GB with two renditions close to the single-rendition figure.
RENDITIONS_RATIO_MAX = 1.10


def renditions_lines(rows):
    """Figure 11: tlsframesink at 30 fps, stream cam to N v2 clients, as one rendition
    and as two renditions (the same buffers through a tee into two sinks, clients
    split evenly): per mode the median over reps of server CPU-s per GB, MB/s,
    per-client fps min, clients at full rate, the clients per rendition the server
    stated, latency p50 / p99; the ratio renditions/single of CPU per GB; and the
    pipelines measured."""
    n = rows[0]["clients"] if rows else 0
    modes = ("single", "renditions")
    reps = max(sum(1 for r in rows if r.get("mode") == m) for m in modes)
    L = [f"[11] renditions vs one rendition, tlsframesink at 30 fps (720p JPEG), N={n} "
         f"v2 clients of stream cam: server CPU per GB delivered (median of {reps} rep(s))"]
    L.append(f"    {'mode':<10} | {'cpu/GB':>6} | {'MB/s':>7} | {'fps min':>7} | "
             f"{'full-rate':>9} | {'latency p50 / p99 ms':>20} | {'srv%':>5} | clients per "
             "rendition")

    def split_text(lgs):
        split = lgs[0].get("renditions") or {}
        text = ", ".join(f"{k} {v}" for k, v in split.items()) or "(none stated)"
        if lgs[0].get("rendition_not_as_asked") is not None:
            text += f"; {lgs[0]['rendition_not_as_asked']} not as asked"
        return text

    lines, cpg = mode_lines(rows, modes, n, 10, split_text)
    L += lines
    L.append(ratio_line("renditions/single", cpg.get("renditions"), cpg.get("single"),
                        "target close to 1, <= ", RENDITIONS_RATIO_MAX))
    for mode in modes:
        all_rs = [r for r in rows if r.get("mode") == mode]
        if all_rs and all_rs[0].get("pipeline"):
            L.append(f"    {mode} pipeline: {all_rs[0]['pipeline']}")
    L.append("    (cpu/GB = server CPU-s per GB the clients received; both renditions carry the "
             "same JPEG buffers, so no encoder is counted; * a rep failed)")
    return L


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        sys.stderr.write("usage: python3 -m tlsframebench.report RESULTS.json\n")
        return 2
    with open(argv[0]) as f:
        sys.stdout.write(make_table(json.load(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
