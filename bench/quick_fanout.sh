#!/usr/bin/env bash
# Quick fan-out figure: frames per second delivered to N tlsframesrc clients
# from one tlsframesink replaying pre-encoded 720p JPEG frames (about 83 KB,
# encoding cost outside the measurement), as fast as possible, over loopback.
# Not the full benchmark (see issue: bench vs tcpserversink/stunnel); a smoke figure.
# Usage: bench/quick_fanout.sh [CLIENTS=8] [FRAMES_PER_CLIENT=1500]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
clients=${1:-8}
frames=${2:-1500}
build=${BUILD_DIR:-$root/build}
export GST_PLUGIN_PATH=$build/plugins/tlsframe
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

bash "$root/certs/make-dev-certs.sh" "$work/certs" >/dev/null
gst-launch-1.0 -q videotestsrc num-buffers=90 pattern=smpte horizontal-speed=4 \
  ! video/x-raw,width=1280,height=720 ! jpegenc quality=85 \
  ! multifilesink location="$work/%05d.jpg"
avg=$(( $(cat "$work"/0*.jpg | wc -c) / 90 ))

gst-launch-1.0 -v multifilesrc location="$work/%05d.jpg" loop=true \
  caps="image/jpeg,width=1280,height=720,framerate=30/1" \
  ! tlsframesink name=sink sync=false host=127.0.0.1 port=0 \
    cert-file="$work/certs/server.pem" key-file="$work/certs/server.key" >"$work/server.log" 2>&1 &
server=$!
port=""
for _ in $(seq 100); do   # bounded: 100 x 0.1 s
  port=$(grep -o 'current-port = [0-9]*' "$work/server.log" | head -1 | awk '{print $3}') || true
  [ -n "$port" ] && [ "$port" != 0 ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "server did not start"; cat "$work/server.log"; exit 1; }

start=$(date +%s%N)
pids=()
for i in $(seq "$clients"); do
  gst-launch-1.0 -q tlsframesrc host=127.0.0.1 port="$port" ca-file="$work/certs/ca.pem" \
    num-buffers="$frames" ! fakesink sync=false &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
end=$(date +%s%N)
secs=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.3f", (b-a)/1e9}')
awk -v n="$clients" -v f="$frames" -v s="$secs" -v sz="$avg" 'BEGIN{
  printf "clients=%d frames/client=%d frame=%d B wall=%.2f s\n", n, f, sz, s;
  printf "per-client %.0f fps, total %.0f frames/s, %.0f MB/s delivered\n", f/s, n*f/s, n*f*sz/s/1e6 }'
