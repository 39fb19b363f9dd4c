"""The results of a run as files: results.json (everything) and results-compact.json
(without command lines and raw output: small enough for bench/results/). The runner
writes them; the report reads either."""

import json
import os

# Fields kept in results-compact.json (small enough to commit under bench/results/).
COMPACT_LOADGEN = ("failed", "connect_attempts", "all_streaming_before_window", "window_s",
                   "mb_per_s", "fps_min", "fps_median", "fps_max", "seq_gaps", "full_rate",
                   "latency_ms_p50", "latency_ms_p99", "latency_ms_max", "latency_samples",
                   "loadgen_cpu_pct",
                   "first_frame_all_s", "first_frame_p50_s", "first_frame_p99_s",
                   "with_first_frame", "errors", "renditions", "rendition_not_as_asked")
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


def write(out, doc):
    """Writes OUT/results.json (atomically) and OUT/results-compact.json."""
    tmp = os.path.join(out, "results.json.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, os.path.join(out, "results.json"))
    with open(os.path.join(out, "results-compact.json"), "w") as f:
        json.dump(compact(doc), f, separators=(",", ":"))
        f.write("\n")
