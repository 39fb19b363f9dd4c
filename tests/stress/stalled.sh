#!/bin/sh
# Clients that never read against tlsframesink (issue 14, item 3): starts a
# gst-launch-1.0 server (30 fps, 150000-byte buffers: the size of a 720p
# JPEG) and runs tests/stress/stalled.cpp against it: N stalled clients and
# 3 healthy ones, printing the server's kernel send queue, the host's TCP
# memory, the server's RSS and the healthy clients' rate and latency each second.
#
#   tests/stress/stalled.sh [N] [sink properties, e.g. timeout=0 send-buffer-size=0]
#
# Without properties the sink's defaults apply. Uses the build in $BUILD_DIR
# (default build); SECONDS_RUN sets the duration (default 10).
set -eu
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
N=${1:-300}
[ $# -gt 0 ] && shift
DIR=$(mktemp -d)
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
"$BUILD_DIR/tools/tlsframe/tlsframe" certs --out "$DIR" >/dev/null
export GST_PLUGIN_PATH="$PWD/$BUILD_DIR/plugins/tlsframe"
export GST_REGISTRY_1_0="$DIR/registry.bin"
export GST_DEBUG="${GST_DEBUG:-tlsframe*:1,*:1}"
gst-launch-1.0 -v videotestsrc is-live=true pattern=black \
  ! video/x-raw,format=GRAY8,width=400,height=375,framerate=30/1 \
  ! tlsframesink name=sink host=127.0.0.1 port=0 cert-file="$DIR/server.pem" \
    key-file="$DIR/server.key" "$@" >"$DIR/server.log" 2>&1 &
SERVER=$!
PORT=
for _ in $(seq 100); do
  PORT=$(sed -n 's/.*current-port = \([1-9][0-9]*\).*/\1/p' "$DIR/server.log" | tail -n 1)
  [ -n "$PORT" ] && break
  sleep 0.1  # polling the server's log for its port, bounded to 10 s
done
if [ -z "$PORT" ]; then
  echo "stalled.sh: the server did not start:" >&2
  cat "$DIR/server.log" >&2
  exit 2
fi
echo "server pid $SERVER port $PORT, sink properties: ${*:-(defaults)}"
"$BUILD_DIR/tests/stalled" --port "$PORT" --server-pid "$SERVER" --stalled "$N" --healthy 3 \
  --seconds "${SECONDS_RUN:-10}"
