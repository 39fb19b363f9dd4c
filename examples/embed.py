#!/usr/bin/env python3
"""Embedding tlsframe in a Python application (PyGObject: Debian's python3-gi).

One process runs a server pipeline (test pattern -> JPEG -> tlsframesink on a
free port) and a client pipeline (tlsframesrc -> JPEG decoder) that receives
N frames. It prints the server's client-added and client-removed signals and
reads its statistics: the "stats" property and the "get-stats" action signal.

    python3 embed.py CERT_DIR [FRAMES]

CERT_DIR holds ca.pem, server.pem and server.key (`tlsframe certs --out
CERT_DIR`). The tlsframe plugin must be installed or on GST_PLUGIN_PATH.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main():
    Gst.init(None)
    if len(sys.argv) < 2:
        print(f"usage: {sys.argv[0]} CERT_DIR [FRAMES]", file=sys.stderr)
        return 2
    certs = sys.argv[1]
    frames = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    loop = GLib.MainLoop()
    seen = {"added": False, "removed": False, "received": False, "id": 0}

    server = Gst.parse_launch(
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! "
        "jpegenc ! tlsframesink name=sink host=127.0.0.1 port=0 "
        f'cert-file="{certs}/server.pem" key-file="{certs}/server.key"')
    sink = server.get_by_name("sink")

    # Both signals come from the sink's signal thread: print, and let the main loop act.
    def on_added(_sink, client_id, address, subject):
        print(f"client-added: id={client_id} address={address} subject='{subject}'", flush=True)
        seen["added"], seen["id"] = True, client_id

    def on_removed(_sink, client_id, address, status, error):
        nick = status.value_nick if hasattr(status, "value_nick") else status
        print(f"client-removed: id={client_id} address={address} status={nick}"
              + (f" error={error}" if error else ""), flush=True)
        seen["removed"] = True
        GLib.idle_add(loop.quit)

    sink.connect("client-added", on_added)
    sink.connect("client-removed", on_removed)
    if server.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        print(f"the server did not start (certificates in {certs}?)", file=sys.stderr)
        return 1
    port = sink.get_property("current-port")
    print(f"server listening on port {port}", flush=True)

    client = Gst.parse_launch(
        f'tlsframesrc host=127.0.0.1 port={port} ca-file="{certs}/ca.pem" '
        f"num-buffers={frames} ! jpegdec ! fakesink")

    def print_stats():
        stats = sink.get_property("stats")
        print(f"stats: clients={stats.get_uint64('clients')[1]} "
              f"buffers-published={stats.get_uint64('buffers-published')[1]} "
              f"bytes-sent={stats.get_uint64('bytes-sent')[1]}", flush=True)
        one = sink.emit("get-stats", seen["id"])
        if one is not None:
            print(f"client {seen['id']}: frames-sent={one.get_uint64('frames-sent')[1]} "
                  f"frames-dropped={one.get_uint64('frames-dropped')[1]}", flush=True)

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, _ = msg.parse_error()
            print(f"error from {msg.src.get_name()}: {err.message}", file=sys.stderr)
            loop.quit()
        elif msg.type == Gst.MessageType.EOS and msg.src == client:
            # The client got its frames: read the server's stats, then drop the client.
            seen["received"] = True
            print_stats()
            client.set_state(Gst.State.NULL)
        return True

    for pipeline in (server, client):
        bus = pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", on_message)
    client.set_state(Gst.State.PLAYING)
    loop.run()

    client.set_state(Gst.State.NULL)
    server.set_state(Gst.State.NULL)
    ok = seen["added"] and seen["removed"] and seen["received"]
    print("done" if ok else "incomplete")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
