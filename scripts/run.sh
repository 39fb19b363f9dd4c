#!/usr/bin/env bash
# The run command: installs what it needs (Debian 12, as root), builds the plugin, makes
# development certificates if there are none, then streams video over TLS from a server
# (tlsframesink, in the background) to a viewer (tlsframesrc, in the foreground) on this
# machine.
#
#   scripts/run.sh [--frames N] [--codec jpeg|h264] [--port PORT] [--headless]
#
#   --frames N   the viewer stops after N frames, then the server is stopped (default: run
#                until Ctrl-C)
#   --codec C    jpeg (jpegenc/jpegdec, default) or h264 (x264enc/avdec_h264)
#   --port PORT  TCP port of the server (default 9999)
#   --headless   never open a window (the default when neither DISPLAY nor WAYLAND_DISPLAY
#                is set); the viewer prints frame counts and rates either way
#
# Source: the camera /dev/video0 when a one-frame capture from it works, else a moving test
# pattern. Environment: BUILD_DIR (default build), CERT_DIR (default _certs), both relative
# to the repository root. The server's output goes to $BUILD_DIR/run-server.log.
set -euo pipefail

usage() { sed -n '2,19s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
die() { echo "run: error: $*" >&2; exit 1; }
say() { echo "run: $*"; }

frames=0
codec=jpeg
port=9999
headless=0
while (($#)); do
  case "$1" in
    --frames) [[ $# -ge 2 ]] || die "--frames needs a number"; frames=$2; shift ;;
    --frames=*) frames=${1#*=} ;;
    --codec) [[ $# -ge 2 ]] || die "--codec needs jpeg or h264"; codec=$2; shift ;;
    --codec=*) codec=${1#*=} ;;
    --port) [[ $# -ge 2 ]] || die "--port needs a number"; port=$2; shift ;;
    --port=*) port=${1#*=} ;;
    --headless) headless=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if ! [[ $frames =~ ^[0-9]{1,10}$ ]] || ((10#$frames > 2147483647)); then
  die "--frames must be a number >= 0 (0 = until Ctrl-C)"
fi
if ! [[ $port =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
  die "--port must be 1..65535"
fi
frames=$((10#$frames)) port=$((10#$port))
[[ $codec == jpeg || $codec == h264 ]] || die "--codec must be jpeg or h264"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
BUILD_DIR=${BUILD_DIR:-build}
CERT_DIR=${CERT_DIR:-_certs}

# --- dependencies and build ---------------------------------------------------
bash scripts/install-deps.sh build run

if [[ ! -f $BUILD_DIR/meson-private/coredata.dat ]]; then
  meson setup "$BUILD_DIR"
fi
# Only the plugin is needed here; fall back to a full build if that target is not found.
meson compile -C "$BUILD_DIR" gsttlsframe || meson compile -C "$BUILD_DIR"

GST_PLUGIN_PATH="$(cd "$BUILD_DIR/plugins/tlsframe" && pwd)"
export GST_PLUGIN_PATH
if ! gst-inspect-1.0 tlsframesink >/dev/null 2>&1 || ! gst-inspect-1.0 tlsframesrc >/dev/null 2>&1; then
  die "GStreamer cannot load the tlsframe plugin from $GST_PLUGIN_PATH (try: gst-inspect-1.0 tlsframesink)"
fi

# --- certificates ---------------------------------------------------------------
if [[ -f $CERT_DIR/ca.pem && -f $CERT_DIR/server.pem && -f $CERT_DIR/server.key ]]; then
  say "using the certificates in $CERT_DIR/"
else
  say "making development certificates in $CERT_DIR/"
  # --force: the set is incomplete, so a CA key left alone would be of no use.
  bash certs/make-dev-certs.sh --force "$CERT_DIR"
fi
cert_dir_abs="$(cd "$CERT_DIR" && pwd)"

# --- source -----------------------------------------------------------------------
size_caps="video/x-raw,width=640,height=480"
test_chain="videotestsrc is-live=true pattern=ball ! $size_caps,framerate=30/1"
# Raw formats first; cameras that only offer MJPEG get a JPEG decoder.
camera_chains=(
  "v4l2src device=/dev/video0 ! videoconvert ! videoscale ! $size_caps"
  "v4l2src device=/dev/video0 ! image/jpeg ! jpegdec ! videoconvert ! videoscale ! $size_caps"
)
source_chain=
if [[ ! -e /dev/video0 ]]; then
  say "source: test pattern (no camera: /dev/video0 does not exist)"
else
  for chain in "${camera_chains[@]}"; do
    # shellcheck disable=SC2086 # pipelines are word-split on purpose, as a shell would
    if probe_out="$(timeout 10 gst-launch-1.0 -q ${chain/v4l2src /v4l2src num-buffers=1 } ! fakesink 2>&1)"; then
      source_chain=$chain
      say "source: camera /dev/video0 (a one-frame capture worked: $chain)"
      break
    fi
  done
  if [[ -z $source_chain ]]; then
    reason="$(grep -m1 -E 'ERROR|error' <<<"$probe_out" || true)"
    say "source: test pattern (/dev/video0 exists but a one-frame capture failed${reason:+: $reason})"
  fi
fi
[[ -n $source_chain ]] || source_chain=$test_chain

case "$codec" in
  jpeg)
    encoder="jpegenc"
    decoder="jpegdec"
    ;;
  h264)
    encoder="x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 ! video/x-h264,stream-format=byte-stream ! h264parse"
    decoder="h264parse ! avdec_h264"
    ;;
esac

# --- viewer sink ---------------------------------------------------------------------
# fpsdisplaysink measures what reaches the sink; gst-launch -v prints each measurement as a
# last-message notification, which the filter below turns into one readable line.
if ((!headless)) && [[ -n ${DISPLAY:-} || -n ${WAYLAND_DISPLAY:-} ]]; then
  video_sink=autovideosink
  say "viewer: opening a window on display ${DISPLAY:-$WAYLAND_DISPLAY} (--headless: no window)"
else
  video_sink=fakesink
  if ((headless)); then
    say "viewer: headless (--headless): printing frame counts and rates"
  else
    say "viewer: headless (no DISPLAY or WAYLAND_DISPLAY): printing frame counts and rates"
  fi
fi

# --- port -------------------------------------------------------------------------------
# A TCP socket in LISTEN state (0A) on the port, from /proc: no ss/netstat on a minimal system.
listening() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v hex="$hex" '$4 == "0A" && $2 ~ (":" hex "$") { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
listening "$port" && die "port $port is already in use; choose another with --port"

# The interesting part of a gst-launch log: its errors and warnings, not its progress lines.
show_log() {
  grep -v -E '^(Setting pipeline|Pipeline is|Redistribute latency|New clock|Freeing pipeline|Progress)' "$1" |
    head -n 20 >&2
}

# --- run ----------------------------------------------------------------------------------
server_log="$BUILD_DIR/run-server.log"
work="$(mktemp -d "${TMPDIR:-/tmp}/tlsframe-run.XXXXXX")"
server_pid=
viewer_pid=
filter_pid=
stop_requested=0

# stop PID: SIGINT (gst-launch -e turns it into EOS), then TERM and KILL if it lingers.
stop() {
  local pid=$1 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -INT "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  say "process $pid did not stop within 15 s after SIGINT; sending SIGTERM"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 30; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  stop "$viewer_pid"
  stop "$server_pid"
  [[ -z $filter_pid ]] || wait "$filter_pid" 2>/dev/null || true
  rm -rf "$work"
}
on_signal() {
  stop_requested=1
  echo
  say "stopping (signal $1)"
  [[ -z $viewer_pid ]] || kill -INT "$viewer_pid" 2>/dev/null || true
}
trap cleanup EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

server_pipeline="$source_chain ! videoconvert ! video/x-raw,format=I420 ! $encoder ! tlsframesink port=$port cert-file=$cert_dir_abs/server.pem key-file=$cert_dir_abs/server.key"
num_buffers=
((frames == 0)) || num_buffers=" num-buffers=$frames"
# 127.0.0.1 rather than localhost: a minimal system (a chroot, some containers) may have no
# /etc/hosts to resolve the name; the development certificate names both.
viewer_pipeline="tlsframesrc host=127.0.0.1 port=$port ca-file=$cert_dir_abs/ca.pem$num_buffers ! $decoder ! videoconvert ! queue ! fpsdisplaysink video-sink=$video_sink text-overlay=false fps-update-interval=1000 signal-fps-measurements=true"

say "server: gst-launch-1.0 -e $server_pipeline"
say "server output: $server_log"
# Each gst-launch runs in its own session, so Ctrl-C reaches only this script, which then
# stops them one at a time: the viewer first, then the server with an EOS.
# shellcheck disable=SC2086 # the pipelines are word-split on purpose, as a shell would
setsid gst-launch-1.0 -e $server_pipeline >"$server_log" 2>&1 </dev/null &
server_pid=$!

for ((i = 0; i < 150; i++)); do
  listening "$port" && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    show_log "$server_log"
    server_pid=
    die "the server stopped before listening (log above, in full in $server_log)"
  fi
  ((stop_requested)) && exit 0
  sleep 0.1
done
listening "$port" || die "the server is not listening on port $port after 15 s (see $server_log)"
say "server: listening on port $port (TLS, certificate $CERT_DIR/server.pem)"

# The viewer's output is filtered: fps measurements become "viewer: ..." lines, gst-launch's
# progress chatter and caps notifications are dropped, anything else (errors, EOS) is kept.
filter() {
  trap '' INT # keep reading until the viewer has said its last line
  local line rendered dropped current average
  while IFS= read -r line; do
    if [[ $line =~ last-message\ =\ rendered:\ ([0-9]+),\ dropped:\ ([0-9]+),\ current:\ ([0-9.]+),\ average:\ ([0-9.]+) ]]; then
      rendered=${BASH_REMATCH[1]} dropped=${BASH_REMATCH[2]}
      current=${BASH_REMATCH[3]} average=${BASH_REMATCH[4]}
      LC_ALL=C printf 'viewer: %6s frames  %6.1f fps  (average %.1f, dropped %s)\n' \
        "$rendered" "$current" "$average" "$dropped"
    elif [[ $line == /* || $line =~ ^(Setting\ pipeline|Pipeline\ is|Redistribute\ latency|New\ clock|Freeing\ pipeline|Progress) ]]; then
      :
    else
      echo "viewer: $line"
    fi
  done
}
say "viewer: gst-launch-1.0 -v $viewer_pipeline"
mkfifo "$work/viewer.out"
filter <"$work/viewer.out" &
filter_pid=$!
# shellcheck disable=SC2086
setsid gst-launch-1.0 -v $viewer_pipeline >"$work/viewer.out" 2>&1 </dev/null &
viewer_pid=$!
if ((frames)); then say "viewer: stopping after $frames frames"; else say "press Ctrl-C to stop"; fi

# wait returns early when a trapped signal arrives; the status of a finished job is kept.
while kill -0 "$viewer_pid" 2>/dev/null; do wait "$viewer_pid" 2>/dev/null || true; done
viewer_rc=0
wait "$viewer_pid" 2>/dev/null || viewer_rc=$?
viewer_pid=
wait "$filter_pid" 2>/dev/null || true
filter_pid=

server_alive=0
kill -0 "$server_pid" 2>/dev/null && server_alive=1
say "stopping the server (EOS)"
stop "$server_pid"
server_rc=0
wait "$server_pid" 2>/dev/null || server_rc=$?
server_pid=

if ((stop_requested)); then
  say "stopped"
  exit 0
fi
if ((viewer_rc != 0)); then
  if ((!server_alive)); then
    echo "run: the server had stopped (exit status $server_rc); its log:" >&2
    show_log "$server_log"
  fi
  die "the viewer failed (exit status $viewer_rc)"
fi
if ((frames)); then
  say "done: the viewer received $frames frames and the server stopped cleanly"
else
  say "done"
fi
