#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_http into OUT (default build-fuzz/fuzz-corpus/http):
hand-written requests of the browser front, each followed by client WebSocket frames
where a WebSocket would carry them. No capture is needed (requests are what browsers
send, written out); tests/fuzz/make_corpus.sh and run.sh call this.

A seed is: one byte (the chunk size fuzz_http feeds with: 1 + byte % 64), the request,
then the client's frames (masked, as RFC 6455 requires of a client).

    tests/fuzz/http_seeds.py [OUT]
"""

import hashlib
import os
import struct
import sys

HOST = "127.0.0.1:9999"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def request(method, target, *headers, host=HOST):
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def upgrade(target="/watch/", origin=None, version="13", key=KEY, extra=()):
    origin = origin or f"https://{HOST}"
    return request("GET", target, "Upgrade: websocket", "Connection: Upgrade",
                   f"Sec-WebSocket-Version: {version}", f"Sec-WebSocket-Key: {key}",
                   f"Origin: {origin}", *extra)


def frame(op, payload=b"", masked=True, fin=True, mask=b"\x11\x22\x33\x44", length=None):
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | op
    m = 0x80 if masked else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def v2_message(t, payload=b""):
    return b"TLSF\x02" + bytes([t]) + b"\0\0" + struct.pack(">I", len(payload)) + payload


KEYFRAME_REQUEST = v2_message(7)
HELLO = v2_message(5, bytes([6]) + b"stream" + struct.pack(">H", 4) + b"cam1")


def rendition_request(name):
    return v2_message(10, bytes([9]) + b"rendition" + struct.pack(">H", len(name)) + name)


def seeds():
    ws = upgrade()
    yield request("GET", "/")
    yield request("HEAD", "/")
    yield request("GET", "/watch/")
    yield request("GET", "/watch/cam1?autoplay=1#x")
    yield request("GET", "/streams.json", "Accept: application/json")
    yield request("GET", "/mjpeg/", "Accept: image/*")
    yield request("GET", "/mjpeg/cam1")
    yield request("HEAD", "/mjpeg/")
    yield request("GET", "/nothing/here")
    yield request("GET", "/watch/%2e%2e/%00")
    yield request("POST", "/watch/", "Content-Length: 5") + b"hello"
    yield request("GET", "/", "Transfer-Encoding: chunked") + b"5\r\nhello\r\n0\r\n\r\n"
    yield request("GET", "/", *[f"X-H{i}: {i}" for i in range(40)])  # too many headers
    yield request("GET", "/", "X-Long: " + "a" * 9000)  # too large
    # 33 headers, the 33rd name invalid: 431 in pieces, 400 whole (see fuzz_http.cpp).
    yield (b"GET / HTTP/1.1\r\nHost: a\r\n" +
           b"".join(f"X-H{i}: {i}\r\n".encode() for i in range(32)) + b"X\xff: 1\r\n\r\n")
    yield b"GET / HTTP/1.0\r\n\r\n"
    yield b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"
    yield b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    yield b"GET /\r\n\r\n"
    yield b"GET / HTTP/1.1\nHost: a\n\n"
    # WebSocket: accepted upgrades, then what a viewer page sends.
    yield ws
    yield ws + frame(0x2, KEYFRAME_REQUEST)
    yield ws + frame(0x9, b"ping") + frame(0xA, b"pong") + frame(0x2, KEYFRAME_REQUEST)
    yield ws + frame(0x8, struct.pack(">H", 1000) + b"bye")
    yield ws + frame(0x8)
    yield upgrade("/watch/cam1") + frame(0x2, KEYFRAME_REQUEST) + frame(0x8, struct.pack(">H", 1001))
    # The page's rendition control (PROTOCOL.md 8.13): a name, then back to automatic.
    yield (upgrade("/watch/cam1") + frame(0x2, rendition_request(b"low"))
           + frame(0x2, rendition_request(b"auto")))
    # ... and what the front refuses.
    yield ws + frame(0x2, HELLO)  # only KEYFRAME_REQUEST and RENDITION_REQUEST are read
    yield ws + frame(0x1, b"text")  # text frames are not read
    yield ws + frame(0x2, KEYFRAME_REQUEST, masked=False)  # unmasked
    yield ws + frame(0x2, b"x" * 126)  # over kMaxClientFrame
    yield ws + frame(0x2, b"", length=1 << 40)[:14]  # a huge length
    yield ws + frame(0x2, KEYFRAME_REQUEST[:6], fin=False) + frame(0x0, KEYFRAME_REQUEST[6:])
    yield ws + frame(0x9, b"p" * 125) + frame(0x3)  # reserved opcode
    yield ws + bytes([0xC2, 0x80]) + b"\0\0\0\0"  # RSV1 set
    yield upgrade(origin="https://evil.example")
    yield upgrade(origin="null")
    yield upgrade(version="8")
    yield upgrade(key="short")
    yield request("GET", "/watch/", "Upgrade: websocket", "Connection: Upgrade",
                  "Sec-WebSocket-Version: 13", f"Sec-WebSocket-Key: {KEY}")  # no Origin
    yield upgrade("/streams.json")
    yield upgrade(extra=("Sec-WebSocket-Protocol: chat",
                         "Sec-WebSocket-Extensions: permessage-deflate"))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get("BUILD_DIR", "build-fuzz"), "fuzz-corpus", "http")
    os.makedirs(out, exist_ok=True)
    n = 0
    for i, body in enumerate(seeds()):
        # Whole (chunk 64), byte by byte (chunk 1) and in 7-byte pieces.
        for chunk in (63, 0, 6) if i % 4 == 0 else (63,):
            data = bytes([chunk]) + body
            with open(os.path.join(out, hashlib.sha1(data).hexdigest()), "wb") as f:
                f.write(data)
            n += 1
    print(f"http_seeds: {n} http seeds in {out}")


if __name__ == "__main__":
    main()
