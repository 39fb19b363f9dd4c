"""Child process of threadcount.py (run it through that): one GStreamer pipeline of
STREAMS branches `videotestsrc ! jpegenc ! SINK` in this process, and this process's
thread count (/proc/self/task) with the pipeline built but not started (NULL: no
sink has started) and with every branch playing (each sink has rendered a buffer).
Prints one JSON line. Needs PyGObject (python3-gi, gir1.2-gstreamer-1.0); imports
nothing from the package, so any python3 that has gi can run it by path.

  LAYOUT fakesink  no server: the threads of the sources and of GStreamer itself
         one-port  STREAMS tlsframesinks stream-name=sN sharing one listener on PORT
         ports     STREAMS tlsframesinks stream-name=sN, each on its own port (port=0)
"""

import argparse
import json
import os
import sys
import time


def task_count():
    return len(os.listdir("/proc/self/task"))


def pipeline_text(a):
    # Tiny frames at 5 fps: the figure is about threads, so the sources cost ~no CPU.
    src = ("videotestsrc is-live=true pattern=ball ! "
           "video/x-raw,width=64,height=48,framerate=5/1 ! jpegenc quality=50 ! ")
    branches = []
    for i in range(a.streams):
        if a.layout == "fakesink":
            sink = f"fakesink name=sink{i} sync=true"
        else:
            port = a.port if a.layout == "one-port" else 0
            sink = (f"tlsframesink name=sink{i} stream-name=s{i} host=127.0.0.1 port={port} "
                    f"io-threads={a.io_threads} cert-file=\"{a.certs}/server.pem\" "
                    f"key-file=\"{a.certs}/server.key\"")
        branches.append(src + sink)
    return "  ".join(branches)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layout", choices=("fakesink", "one-port", "ports"), required=True)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--io-threads", type=int, default=2)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--certs", default="")
    ap.add_argument("--timeout", type=float, default=20.0)
    a = ap.parse_args()

    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
    Gst.init(None)

    res = dict(layout=a.layout, streams=a.streams, ok=False)
    if a.layout != "fakesink":
        res["io_threads"] = a.io_threads
    pipe = Gst.parse_launch(pipeline_text(a))
    sinks = [pipe.get_by_name(f"sink{i}") for i in range(a.streams)]
    res["threads_before"] = task_count()
    bus = pipe.get_bus()
    try:
        if pipe.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            raise RuntimeError("the pipeline did not start")
        # Playing = every sink has rendered a buffer (basesink's last-sample); an
        # error on the bus ends the wait at once.
        end = time.monotonic() + a.timeout
        while not all(s.get_property("last-sample") is not None for s in sinks):
            if time.monotonic() > end:
                n = sum(s.get_property("last-sample") is not None for s in sinks)
                raise RuntimeError(f"only {n}/{a.streams} sinks rendered a buffer "
                                   f"within {a.timeout:.0f} s")
            msg = bus.timed_pop_filtered(50 * Gst.MSECOND, Gst.MessageType.ERROR)
            if msg is not None:
                err, dbg = msg.parse_error()
                raise RuntimeError(f"{msg.src.get_name()}: {err.message} ({dbg})")
        res["threads_playing"] = task_count()
        if a.layout != "fakesink":
            res["ports"] = sorted({s.get_property("current-port") for s in sinks})
        res["ok"] = True
    except RuntimeError as e:
        res["error"] = str(e)
    finally:
        pipe.set_state(Gst.State.NULL)
    res["threads_after_stop"] = task_count()
    print(json.dumps(res), flush=True)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
