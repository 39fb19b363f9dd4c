#!/usr/bin/python3
"""The browser front in a real headless Chromium (Selenium + chromedriver) against a real
tlsframesink in this process (python-GStreamer, port=0, certificates made at test time).

    browser_test.py CASE [--screenshot PNG]

CASE: jpeg, h264 (the viewer page draws >= 60 frames with the test pattern's colours; the
median latencyMs is printed), mjpeg (<img src=/mjpeg/NAME> on another page: naturalWidth
> 0 and two screenshots differ), multi (two browsers and two native tlsframesrc clients
at once), mtls (require-client-cert: a browser with a client certificate in its NSS
database, chosen by an AutoSelectCertificateForUrls policy, plays; one without is
refused), off (browser=false: a browser gets nothing, a native client still plays),
renditions (one videotestsrc, two x264enc renditions 320x240 "high" and 160x120 "low" on
one port, or --rendition-sizes 1280x720,640x360: the page starts on high, the <select>
switches it to low and back; frames keep coming, no decoder error).

Chromium trusts the test CA through an NSS database in a temporary HOME (certutil), as a
user's browser would; nothing is pinned or ignored. Every wait is a deadline on a
condition. Exit 77 (skipped) when chromium, chromedriver or certutil is missing.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

STREAM = "cam"
POLICY_DIR = "/etc/chromium/policies/managed"


def run(*cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


def make_pki(d):
    """CA, server certificate (localhost, 127.0.0.1) and a client certificate (PKCS#12)."""
    def key(name):
        run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", f"{d}/{name}.key")
    key("ca")
    run("openssl", "req", "-x509", "-new", "-key", f"{d}/ca.key", "-out", f"{d}/ca.pem",
        "-days", "2", "-subj", "/CN=tlsframe browser test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, ext in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        key(name)
        run("openssl", "req", "-new", "-key", f"{d}/{name}.key", "-out", f"{d}/{name}.csr",
            "-subj", f"/CN=tlsframe-{name}")
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(ext)
        run("openssl", "x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.pem", "-CAkey",
            f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/{name}.pem", "-days", "2",
            "-extfile", f"{d}/{name}.ext")
    run("openssl", "pkcs12", "-export", "-in", f"{d}/client.pem", "-inkey", f"{d}/client.key",
        "-out", f"{d}/client.p12", "-passout", "pass:", "-name", "tlsframe-client")


def deadline_wait(what, cond, seconds, step=0.05):
    end = time.monotonic() + seconds
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(step)  # polling interval of a deadline-bounded condition


class Sink:
    def __init__(self, source, pki, **props):
        extra = " ".join(f"{k.replace('_', '-')}={v}" for k, v in props.items())
        self.pipeline = Gst.parse_launch(
            f"{source} ! tlsframesink name=sink port=0 stream-name={STREAM} "
            f"cert-file={pki}/server.pem key-file={pki}/server.key {extra}")
        self.sink = self.pipeline.get_by_name("sink")
        assert self.pipeline.set_state(Gst.State.PLAYING) != Gst.StateChangeReturn.FAILURE
        self.port = deadline_wait("current-port", lambda: self.sink.get_property("current-port"), 10)

    def stop(self):
        self.pipeline.set_state(Gst.State.NULL)


class NativeClient:
    """A tlsframesrc counting the buffers it gets."""
    def __init__(self, port, pki):
        self.pipeline = Gst.parse_launch(
            f"tlsframesrc host=127.0.0.1 port={port} stream-name={STREAM} ca-file={pki}/ca.pem "
            "! fakesink name=out signal-handoffs=true sync=false")
        self.count = 0
        self.pipeline.get_by_name("out").connect("handoff", self._handoff)
        self.pipeline.set_state(Gst.State.PLAYING)

    def _handoff(self, *args):
        self.count += 1

    def stop(self):
        self.pipeline.set_state(Gst.State.NULL)


class Browser:
    def __init__(self, workdir, name, pki, client_cert=False):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        self.home = os.path.join(workdir, name)
        nss = os.path.join(self.home, ".pki", "nssdb")
        os.makedirs(nss)
        run("certutil", "-N", "-d", f"sql:{nss}", "--empty-password")
        run("certutil", "-A", "-d", f"sql:{nss}", "-n", "tlsframe-test-ca", "-t", "C,,", "-i",
            f"{pki}/ca.pem")
        if client_cert:
            run("pk12util", "-i", f"{pki}/client.p12", "-d", f"sql:{nss}", "-W", "")
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
                  "--window-size=800,600", f"--user-data-dir={self.home}/profile",
                  "--disable-gpu", "--autoplay-policy=no-user-gesture-required"):
            opts.add_argument(a)
        env = dict(os.environ, HOME=self.home)
        service = Service("/usr/bin/chromedriver", env=env)
        self.driver = webdriver.Chrome(service=service, options=opts)

    def stats(self):
        return self.driver.execute_script("return window.tlsframeStats || null")

    def quit(self):
        self.driver.quit()


def wait_frames(browser, n, seconds=40):
    latencies = []

    def enough():
        s = browser.stats()
        if s and s.get("latencyMs") is not None:
            latencies.append(s["latencyMs"])
        return s if s and s["frames"] >= n else None
    s = deadline_wait(f"{n} frames drawn", enough, seconds, step=0.1)
    return s, latencies


SAMPLE_JS = """
const c = document.getElementById('video'); const g = c.getContext('2d');
const out = []; const y = Math.floor(c.height * 0.3);
for (let i = 0; i < 7; i++) {
  const x = Math.floor(c.width * (i + 0.5) / 7);
  out.push(Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3)));
}
return out;"""


def check_colours(browser):
    """The SMPTE bars: seven distinct colours along a row, not black."""
    px = browser.driver.execute_script(SAMPLE_JS)
    distinct = {tuple(v // 32 for v in p) for p in px}
    bright = [p for p in px if max(p) > 100]
    print(f"canvas pixels along y=30%: {px}")
    assert len(distinct) >= 5, f"canvas does not show the bars: {px}"
    assert len(bright) >= 5, f"canvas is dark: {px}"


def play_page(browser, port, name, frames=60, screenshot=None):
    browser.driver.get(f"https://localhost:{port}/watch/{STREAM}")
    s, lat = wait_frames(browser, frames)
    check_colours(browser)
    med = statistics.median(lat) if lat else float("nan")
    print(f"{name}: {s['frames']} frames drawn, {s['width']}x{s['height']}, codec {s['codec']}, "
          f"errors {s['errors']}, median latencyMs {med:.1f} over {len(lat)} samples")
    assert s["errors"] == 0, s
    if screenshot:
        browser.driver.save_screenshot(screenshot)
        print(f"screenshot: {screenshot}")
    return s


JPEG_SRC = ("videotestsrc is-live=true pattern=smpte ! video/x-raw,width=640,height=360,"
            "framerate=30/1 ! jpegenc quality=85")
H264_SRC = ("videotestsrc is-live=true pattern=smpte ! video/x-raw,format=I420,width=640,"
            "height=360,framerate=30/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 "
            "! h264parse")


def case_jpeg(w, pki, args):
    sink = Sink(JPEG_SRC, pki)
    b = Browser(w, "b1", pki)
    try:
        play_page(b, sink.port, "jpeg", screenshot=args.screenshot)
        assert sink.sink.get_property("num-clients") == 1
    finally:
        b.quit()
        sink.stop()


def case_h264(w, pki, args):
    sink = Sink(H264_SRC, pki)
    b = Browser(w, "b1", pki)
    try:
        s = play_page(b, sink.port, "h264", screenshot=args.screenshot)
        assert s["codec"].startswith("avc1."), s
    finally:
        b.quit()
        sink.stop()


class OtherSite:
    """Another HTTPS site on loopback (its own port, so another origin) serving one page."""
    def __init__(self, pki, html):
        import http.server
        import ssl
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(f"{pki}/server.pem", f"{pki}/server.key")
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()


def case_mjpeg(w, pki, args):
    sink = Sink("videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,"
                "framerate=30/1 ! jpegenc", pki)
    site = OtherSite(pki, "<!doctype html><body style='margin:0'>"
                          f"<img id=m src='https://localhost:{sink.port}/mjpeg/{STREAM}'></body>")
    b = Browser(w, "b1", pki)
    try:
        d = b.driver
        d.set_page_load_timeout(10)  # the page never finishes loading: the image streams
        try:
            d.get(f"https://127.0.0.1:{site.port}/")
        except Exception:  # selenium's TimeoutException: expected, the <img> keeps loading
            pass
        deadline_wait("naturalWidth > 0",
                      lambda: d.execute_script("return document.getElementById('m').naturalWidth"), 30)
        img = d.find_element("id", "m")
        first = img.screenshot_as_png
        second = deadline_wait("a different picture",
                               lambda: (lambda s: s if s != first else None)(img.screenshot_as_png), 10)
        width = d.execute_script("return document.getElementById('m').naturalWidth")
        print(f"mjpeg: naturalWidth {width}, two screenshots differ ({len(first)} and "
              f"{len(second)} bytes), num-clients {sink.sink.get_property('num-clients')}")
        assert width == 320
        assert sink.sink.get_property("num-clients") == 1
    finally:
        b.quit()
        site.stop()
        sink.stop()


def case_multi(w, pki, args):
    sink = Sink(JPEG_SRC, pki)
    b1, b2 = Browser(w, "b1", pki), Browser(w, "b2", pki)
    n1, n2 = NativeClient(sink.port, pki), NativeClient(sink.port, pki)
    try:
        for b in (b1, b2):
            b.driver.get(f"https://localhost:{sink.port}/watch/{STREAM}")
        deadline_wait("4 clients", lambda: sink.sink.get_property("num-clients") == 4, 30)
        start = (n1.count, n2.count)
        s1, _ = wait_frames(b1, 60)
        s2, _ = wait_frames(b2, 60)
        deadline_wait("native clients at 60 buffers",
                      lambda: n1.count - start[0] >= 60 and n2.count - start[1] >= 60, 30)
        print(f"multi: browsers {s1['frames']} and {s2['frames']} frames, native "
              f"{n1.count} and {n2.count} buffers, num-clients "
              f"{sink.sink.get_property('num-clients')}")
        assert sink.sink.get_property("num-clients") == 4
    finally:
        b1.quit()
        b2.quit()
        n1.stop()
        n2.stop()
        sink.stop()


def refused(browser, url):
    """True when the browser could not load url (a TLS error: no page, no stats)."""
    from selenium.common.exceptions import WebDriverException
    try:
        browser.driver.get(url)
    except WebDriverException as e:
        print(f"refused as expected: {e.msg.splitlines()[0]}")
        return True
    return browser.stats() is None


def case_mtls(w, pki, args):
    sink = Sink(JPEG_SRC, pki, require_client_cert="true", ca_file=f"{pki}/ca.pem")
    policy = os.path.join(POLICY_DIR, f"tlsframe-test-{os.getpid()}.json")
    os.makedirs(POLICY_DIR, exist_ok=True)
    with open(policy, "w") as f:
        json.dump({"AutoSelectCertificateForUrls": [
            json.dumps({"pattern": f"https://localhost:{sink.port}", "filter": {}})]}, f)
    browsers = []
    try:
        with_cert = Browser(w, "with-cert", pki, client_cert=True)
        browsers.append(with_cert)
        without = Browser(w, "without-cert", pki)
        browsers.append(without)
        play_page(with_cert, sink.port, "mtls, with a client certificate")
        assert refused(without, f"https://localhost:{sink.port}/watch/{STREAM}"), \
            "a browser without a certificate got the page"
        assert sink.sink.get_property("num-clients") == 1
        print("mtls: the browser without a client certificate was refused")
    finally:
        for b in browsers:
            b.quit()
        os.unlink(policy)
        sink.stop()


def case_off(w, pki, args):
    sink = Sink(JPEG_SRC, pki, browser="false")
    b = Browser(w, "b1", pki)
    n = NativeClient(sink.port, pki)
    try:
        assert refused(b, f"https://localhost:{sink.port}/watch/{STREAM}"), \
            "browser=false, yet the browser got the page"
        deadline_wait("native client at 60 buffers", lambda: n.count >= 60, 30)
        print(f"off: the browser got nothing; the native client got {n.count} buffers")
    finally:
        b.quit()
        n.stop()
        sink.stop()


class RenditionSinks:
    """One capture, two H.264 renditions of stream STREAM on one port: "high" 320x240 and
    "low" 160x120, each its own x264enc branch of one videotestsrc (a tee). Renditions share
    a listener only on a fixed port: a free one is reserved (bound with SO_REUSEADDR, not
    listening, as tlsframe serve does) until both sinks listen on it."""
    def __init__(self, pki, high=(320, 240), low=(160, 120)):
        import socket
        reservation = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        reservation.bind(("0.0.0.0", 0))
        self.port = reservation.getsockname()[1]
        common = (f"port={self.port} stream-name={STREAM} cert-file={pki}/server.pem "
                  f"key-file={pki}/server.key")
        enc = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 ! h264parse"
        try:
            self.pipeline = Gst.parse_launch(
                "videotestsrc is-live=true pattern=smpte ! video/x-raw,format=I420,"
                f"width={high[0]},height={high[1]},framerate=30/1 ! tee name=t "
                f"t. ! queue ! {enc} ! tlsframesink name=high rendition=high {common} "
                f"t. ! queue ! videoscale ! video/x-raw,width={low[0]},height={low[1]} ! "
                f"{enc} ! tlsframesink name=low rendition=low {common}")
            self.high = self.pipeline.get_by_name("high")
            self.low = self.pipeline.get_by_name("low")
            assert self.pipeline.set_state(Gst.State.PLAYING) != Gst.StateChangeReturn.FAILURE
            deadline_wait("both renditions listening", lambda: self.high.get_property(
                "current-port") == self.port and self.low.get_property("current-port") == self.port,
                10)
        finally:
            reservation.close()

    def stop(self):
        self.pipeline.set_state(Gst.State.NULL)


def case_renditions(w, pki, args):
    from selenium.webdriver.support.ui import Select
    high, low = ([int(v) for v in size.split("x")] for size in args.rendition_sizes.split(","))
    sinks = RenditionSinks(pki, high, low)
    b = Browser(w, "b1", pki)
    try:
        b.driver.get(f"https://localhost:{sinks.port}/watch/{STREAM}")
        s = deadline_wait("30 frames of the high rendition", lambda: (lambda s: s if s and
                          s["frames"] >= 30 and s["width"] == high[0] else None)(b.stats()), 40, 0.1)
        print(f"renditions: started on {s['rendition']!r} ({s['renditionReason']!r}), "
              f"{s['width']}x{s['height']}, {s['frames']} frames, codec {s['codec']}")
        assert s["rendition"] == "high", s
        assert s["renditions"] == ["high", "low"], s
        choice = Select(b.driver.find_element("id", "rendition"))
        assert b.driver.find_element("id", "rendition").is_displayed()
        assert [o.get_attribute("value") for o in choice.options] == ["auto", "high", "low"]
        for name, width in (("low", low[0]), ("high", high[0])):
            before = b.stats()["frames"]
            choice.select_by_value(name)
            s = deadline_wait(f"{name} at width {width}", lambda: (lambda s: s if
                              s["rendition"] == name and s["width"] == width else None)(b.stats()),
                              20, 0.1)
            at_switch = s["frames"]
            s = deadline_wait(f"30 more frames on {name}", lambda: (lambda s: s if s["frames"] >=
                              at_switch + 30 else None)(b.stats()), 20, 0.1)
            print(f"renditions: {name}: {s['width']}x{s['height']}, reason {s['renditionReason']!r},"
                  f" frames {before} -> {at_switch} at the switch -> {s['frames']}, "
                  f"errors {s['errors']}, num-clients high {sinks.high.get_property('num-clients')}"
                  f" low {sinks.low.get_property('num-clients')}")
            assert s["errors"] == 0, s
            assert s["width"] == width and s["rendition"] == name, s
        info = b.driver.find_element("id", "info").text
        print(f"renditions: the page shows: {info}")
        assert "rendition high" in info, info
    finally:
        b.quit()
        sinks.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=["jpeg", "h264", "mjpeg", "multi", "mtls", "off", "renditions"])
    p.add_argument("--screenshot")
    p.add_argument("--rendition-sizes", default="320x240,160x120",
                   help="renditions: the high and the low size, WxH,WxH")
    args = p.parse_args()
    for tool in ("/usr/bin/chromium", "/usr/bin/chromedriver", "certutil", "pk12util", "openssl"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} not found (scripts/install-deps.sh test installs it)")
            return 77
    Gst.init(None)
    with tempfile.TemporaryDirectory(prefix="tlsframe-browser-") as w:
        pki = os.path.join(w, "pki")
        os.makedirs(pki)
        make_pki(pki)
        globals()["case_" + args.case](w, pki, args)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
