#!/usr/bin/env python3
"""Server memory per idle connected client.

Starts a tlsframesink whose stream shows one frame and then nothing for 1000 s
(JPEG at 1/1000 fps), so clients that join afterwards wait for a keyframe and
receive nothing: they are connected, verified and idle. Opens N TLS 1.3
connections (verifying the server) and prints the server's RSS before and
after, and the difference per client.

    python3 bench/idle_rss.py [N=500] [--build DIR]

Needs the build (plugin) and bench/.work/certs or makes certificates there.
"""
import argparse
import os
import re
import resource
import signal
import socket
import ssl
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clients", type=int, nargs="?", default=500)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    # One descriptor per client here and in the server (which inherits the limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.clients + 256 and hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.clients + 1024), hard))

    certs = os.path.join(ROOT, "bench", ".work", "certs")
    if not os.path.exists(os.path.join(certs, "server.pem")):
        subprocess.run(["bash", os.path.join(ROOT, "certs", "make-dev-certs.sh"), certs],
                       check=True, stdout=subprocess.DEVNULL)
    env = dict(os.environ, GST_PLUGIN_PATH=os.path.join(args.build, "plugins", "tlsframe"))
    server = subprocess.Popen(
        ["gst-launch-1.0", "-v", "videotestsrc", "is-live=true", "!",
         "video/x-raw,width=320,height=240,framerate=1/1000", "!", "jpegenc", "!",
         "tlsframesink", "host=127.0.0.1", "port=0",
         f"cert-file={certs}/server.pem", f"key-file={certs}/server.key"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    conns = []
    try:
        port = 0
        deadline = time.monotonic() + 20
        while not port and time.monotonic() < deadline:  # bounded by the deadline
            line = server.stdout.readline()
            if not line:
                break
            m = re.search(r"current-port = (\d+)", line)
            if m and m.group(1) != "0":
                port = int(m.group(1))
        if not port:
            sys.exit("idle_rss: the server did not start")
        # The first (and only) frame for 1000 s goes out at start: joiners stay idle.
        time.sleep(1.0)
        ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        before = rss_kib(server.pid)
        for _ in range(args.clients):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            conns.append(ctx.wrap_socket(s, server_hostname="localhost"))
        time.sleep(1.0)  # the server admits the last handshakes (a measurement pause)
        after = rss_kib(server.pid)
        per = (after - before) / args.clients
        print(f"{args.clients} idle TLS 1.3 clients: server RSS {before} -> {after} KiB, "
              f"{per:.1f} KiB per client")
    finally:
        for c in conns:
            c.close()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
