#!/usr/bin/env bash
# Makes the fuzz seed corpora from real encoded streams: for each pipeline below a real
# tlsframesink (the plugin from BUILD_DIR) serves a short stream and
# `openssl s_client` captures the decrypted wire bytes, caps to EOS. The captures are
# then cut into seeds:
#   OUT/wire/  whole streams, each message alone, and short prefixes (fuzz_wire_decoder),
#              as a v1 client and, with version byte 2, as a v2 client reads them; and
#              v2 client requests as a server reads them
#   OUT/caps/  the CAPS payloads, i.e. the caps strings as sent (fuzz_caps)
#   OUT/http/  browser requests and WebSocket client frames, written by
#              tests/fuzz/http_seeds.py, not captured (fuzz_http)
#
#   tests/fuzz/make_corpus.sh [OUT]        (default OUT: $BUILD_DIR/fuzz-corpus)
#
# BUILD_DIR (default build-fuzz) must hold a built plugin; when it is built with ASan
# (as tests/fuzz/README sets it up) the ASan runtime of the compiler is preloaded into
# gst-launch-1.0. Certificates are made at run time in a temporary directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
BUILD_DIR=${BUILD_DIR:-build-fuzz}
out=${1:-$BUILD_DIR/fuzz-corpus}
plugin_dir=$root/$BUILD_DIR/plugins/tlsframe
[[ -f $plugin_dir/libgsttlsframe.so ]] || {
  echo "make_corpus: no plugin in $plugin_dir; build $BUILD_DIR first (tests/fuzz/README)" >&2
  exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/tlsframe-corpus.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
bash certs/make-dev-certs.sh "$work/certs" >/dev/null

export GST_PLUGIN_PATH=$plugin_dir GST_REGISTRY_1_0=$work/registry.bin GST_REGISTRY_FORK=no
preload=
if [[ $(nm -D "$plugin_dir/libgsttlsframe.so" 2>/dev/null | grep -c __asan_init) != 0 ]]; then
  preload=$(clang++-14 -print-file-name=libclang_rt.asan-x86_64.so)
  export ASAN_OPTIONS=detect_leaks=0
fi

# name|source part of the pipeline (ends in what tlsframesink gets)
streams=(
  "jpeg|videotestsrc num-buffers=15 is-live=true ! video/x-raw,width=64,height=48,framerate=15/1 ! jpegenc"
  "h264|videotestsrc num-buffers=30 is-live=true ! video/x-raw,width=64,height=48,framerate=15/1 ! x264enc tune=zerolatency key-int-max=10 speed-preset=ultrafast ! h264parse ! video/x-h264,stream-format=avc,alignment=au"
  "h264bs|videotestsrc num-buffers=30 is-live=true ! video/x-raw,width=64,height=48,framerate=15/1 ! x264enc tune=zerolatency key-int-max=10 speed-preset=ultrafast ! video/x-h264,stream-format=byte-stream"
  "raw|videotestsrc num-buffers=10 is-live=true pattern=ball ! video/x-raw,format=GRAY8,width=16,height=8,framerate=15/1"
  "audio|audiotestsrc num-buffers=15 is-live=true samplesperbuffer=64 ! audio/x-raw,rate=8000,channels=1"
  "opus|audiotestsrc num-buffers=15 is-live=true ! opusenc ! oggmux"
)

capture() { # name pipeline
  local name=$1 src=$2 log=$work/$1.log port=
  LD_PRELOAD=$preload timeout 60 gst-launch-1.0 -v $src ! tlsframesink port=0 \
    cert-file="$work/certs/server.pem" key-file="$work/certs/server.key" >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do
    port=$(grep -oE 'current-port = [1-9][0-9]*' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
    [[ -n $port ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z $port ]]; then
    echo "make_corpus: $name: the sink did not start:" >&2
    tail -5 "$log" >&2
    return 1
  fi
  # -quiet: application data only on stdout; the server closes after EOS.
  timeout 60 openssl s_client -connect "127.0.0.1:$port" -servername localhost -quiet \
    -CAfile "$work/certs/ca.pem" -verify_return_error </dev/null >"$work/$name.bin" 2>"$work/$name.sc" || true
  wait "$pid" || true
  echo "make_corpus: $name: $(stat -c %s "$work/$name.bin") bytes captured"
}

for s in "${streams[@]}"; do
  capture "${s%%|*}" "${s#*|}"
done

mkdir -p "$out/wire" "$out/caps"
# Cut the captures with the wire format's own framing (header: magic, version, type,
# reserved, payload length big-endian at offset 8); seeds above 64 KiB are left out.
# A wire seed's first byte picks the reader in fuzz_wire_decoder: 0 a v1 client (the
# captures as they are), 1 a v2 client (the captures with version byte 2, after a
# STREAM_LIST and a WELCOME), 2 a v2 server (HELLO, LIST_STREAMS, KEYFRAME_REQUEST).
python3 - "$work" "$out" <<'PY'
import hashlib, os, struct, sys
work, out = sys.argv[1], sys.argv[2]
limit = 64 * 1024
V1_CLIENT, V2_CLIENT, V2_SERVER = b"\0", b"\1", b"\2"
def put(kind, data):
    if 0 < len(data) <= limit + 1:
        with open(os.path.join(out, kind, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)
def v2(msg):  # the same message on a version 2 connection
    return msg[:4] + b"\2" + msg[5:]
def field(k, v):
    k, v = k.encode(), v.encode()
    return bytes([len(k)]) + k + struct.pack(">H", len(v)) + v
def message(t, payload):
    return b"TLSF\2" + bytes([t]) + b"\0\0" + struct.pack(">I", len(payload)) + payload
def entry(name, caps, viewers, *extra):
    b = field("name", name) + field("caps", caps) + field("viewers", str(viewers)) + b"".join(extra)
    return struct.pack(">H", len(b)) + b
hello = message(5, field("stream", "cam1"))
hello_default = message(5, field("stream", ""))
hello_extra = message(5, field("rendition", "low") + field("stream", "door.hd") + field("x-later", "é"))
keyframe, list_streams = message(7, b""), message(8, b"")
welcome = message(6, field("stream", "cam1") + field("server", "tlsframe 0.1.0") +
                  field("keyframe-interval-ms", "1000"))
stream_list = message(9, struct.pack(">H", 3) + entry("cam1", "video/x-h264 1280x720 30/1", 2) +
                      entry("", "image/jpeg 640x480 15/1", 0) +
                      entry("door", "", 4294967295, field("renditions", "hd,sd")))
for m in (hello, hello_default, hello_extra, keyframe, list_streams):
    put("wire", V2_SERVER + m)
put("wire", V2_SERVER + list_streams + hello + keyframe + keyframe + list_streams)
put("wire", V2_SERVER + hello_extra + keyframe)
for m in (welcome, stream_list, message(9, b"\0\0")):
    put("wire", V2_CLIENT + m)
for name in sorted(os.listdir(work)):
    if not name.endswith(".bin"):
        continue
    data = open(os.path.join(work, name), "rb").read()
    put("wire", V1_CLIENT + data)
    off, msgs = 0, []
    while off + 12 <= len(data) and data[off:off + 4] == b"TLSF":
        size = 12 + struct.unpack(">I", data[off + 8:off + 12])[0]
        if off + size > len(data):
            break
        msgs.append(data[off:off + size])
        if data[off + 5] == 1:
            put("caps", data[off + 12:off + size])
        off += size
    for m in msgs:
        put("wire", V1_CLIENT + m)
        put("wire", V2_CLIENT + v2(m))
    for n in (2, 3, 5):
        put("wire", V1_CLIENT + b"".join(msgs[:n]))
        put("wire", V2_CLIENT + stream_list + welcome + b"".join(v2(m) for m in msgs[:n]))
    put("wire", V1_CLIENT + b"".join(msgs[-3:]))  # the end of a stream: last buffers, EOS
    put("wire", V2_CLIENT + b"".join(v2(m) for m in msgs[-3:]))
PY
python3 tests/fuzz/http_seeds.py "$out/http" >/dev/null
echo "make_corpus: $(ls "$out/wire" | wc -l) wire seeds, $(ls "$out/caps" | wc -l) caps seeds," \
  "$(ls "$out/http" | wc -l) http seeds in $out"
