"""The servers under test, each started fresh for one run and stopped after it:

  A  tlsframesink
  B  tcpserversink                       (plain TCP)
  C  stunnel4 (TLS 1.3) -> tcpserversink
"""

import os
import socket
import subprocess
import time

from .common import BenchError
from .procs import kill_group, proc_cpu_s, proc_rss_kib, spawn, tail

SERVERS = ("A", "B", "C")

# tcpserversink gets a bounded per-client queue like tlsframesink's buffers-max=32:
# a client more than 32 buffers behind is moved to the newest buffer (every JPEG
# buffer is a key unit, so whole frames are skipped).
TCP_QUEUE = "buffers-soft-max=32 recover-policy=latest"
TLS13_SUITES = "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"


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

# ---------------------------------------------------------------- servers

class Server:
    """One server under test: A, B or C, replaying frames fast or at 30 fps.

    A only: stream="NAME" serves the frames as stream NAME (protocol v2 clients:
    loadgen --stream); renditions=("high", "low") serves them as that many renditions
    of the stream, the SAME buffers through a tee into one tlsframesink per rendition
    (a queue after each branch), all on one port: no encoder runs, so the figure
    counts fan-out and serialization only."""

    def __init__(self, kind, live, inp, logdir, tag, stream=None, renditions=()):
        self.kind = kind
        self.live = live
        self.inp = inp
        self.logdir = logdir
        self.tag = tag
        self.stream = stream
        self.renditions = tuple(renditions)
        if (stream is not None or self.renditions) and kind != "A":
            raise BenchError("stream and renditions are for tlsframesink (A) only")
        self.procs = {}  # role -> Popen
        self.port = None
        self.logs = {}
        self.pipeline = None  # the gst-launch-1.0 command line of the (last) server

    def source(self):
        if self.live:
            return ["filesrc", f"location={self.inp.mkv}", "!", "matroskademux"]
        return ["multifilesrc", f"location={self.inp.frames}/%05d.jpg", "loop=true",
                "caps=image/jpeg,width=1280,height=720,framerate=30/1"]

    def _gst(self, role, sink):
        cmd = ["gst-launch-1.0", "-v"] + self.source() + ["!"] + sink
        self.pipeline = " ".join(cmd)
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
            if self.kind == "A" and self.stream is not None:
                self.port = self._gst("tlsframesink", self._stream_sinks(sync))
            elif self.kind == "A":
                # Every loadgen client comes from 127.0.0.1: the per-address cap on
                # handshakes in progress (default 32, against one abusive address)
                # would throttle the benchmark's 1000 "viewers" as if they were one.
                self.port = self._gst("tlsframesink", [
                    "tlsframesink", "host=127.0.0.1", "port=0", sync,
                    "max-handshakes-per-address=0",
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

    def _stream_sinks(self, sync):
        """The tee and sinks of a named stream: `tee name=t` then per rendition (one
        unnamed branch without renditions) `t. ! queue ! tlsframesink stream-name=...
        rendition=...`. Sinks share a listener only on a fixed port (docs/ELEMENTS.md,
        "Named streams and shared listeners"): with renditions the port is a free one
        picked by binding port 0 first, as for stunnel. The single-rendition run has
        the same tee and queue, so the two differ only in the second rendition."""
        c = self.inp.certs
        port = free_port() if len(self.renditions) > 1 else 0
        branches = list(self.renditions) or [None]
        sink = ["tlsframesink", "host=127.0.0.1", f"port={port}", sync,
                "max-handshakes-per-address=0", f"stream-name={self.stream}",
                f"cert-file={c}/server.pem", f"key-file={c}/server.key"]
        out = ["tee", "name=t"]
        for r in branches:
            out += ["t.", "!", "queue", "!"] + sink + ([f"rendition={r}"] if r else [])
        return out

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
