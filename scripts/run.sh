#!/usr/bin/env bash
# The run command: installs what it needs (Debian 12, as root), builds tlsframe, then runs
# the product as a user would: `tlsframe serve` (in the background) and `tlsframe view`
# (in the foreground) on this machine.
#
#   scripts/run.sh [--frames N] [--codec jpeg|h264] [--port PORT] [--headless]
#
#   --frames N   the viewer stops after N frames, then the server is stopped (default: run
#                until Ctrl-C)
#   --codec C    jpeg (default) or h264
#   --port PORT  TCP port of the server (default 9999)
#   --headless   never open a window (the default when neither DISPLAY nor WAYLAND_DISPLAY
#                is set); the viewer prints frame counts and rates either way
#
# Source: `tlsframe serve --source auto`: a camera when one delivers a frame, else a moving
# test pattern. Certificates: serve's own (on its first run it makes a development CA and a
# server certificate in its per-user directory and says where; see docs/USER-GUIDE.md).
# What serve prints (source, addresses, fingerprint, how to view) is shown as it is.
# Environment: BUILD_DIR (default build, relative to the repository root).
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

# --- dependencies and build ---------------------------------------------------
bash scripts/install-deps.sh build run

# A directory that scripts/test.sh configured already stays as it is (tests included).
if [[ ! -f $BUILD_DIR/meson-private/coredata.dat ]]; then
  meson setup "$BUILD_DIR"
fi
# The plugin and the tool are all this needs; the tests are built by scripts/test.sh.
meson compile -C "$BUILD_DIR" gsttlsframe tools/tlsframe/tlsframe
tlsframe="$BUILD_DIR/tools/tlsframe/tlsframe"
[[ -x $tlsframe ]] || die "the build did not produce $tlsframe"

# --- viewer window or not ------------------------------------------------------------
if ((!headless)) && [[ -n ${DISPLAY:-} || -n ${WAYLAND_DISPLAY:-} ]]; then
  display=auto
  say "viewer: opening a window on display ${DISPLAY:-$WAYLAND_DISPLAY} (--headless: no window)"
else
  display=none
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

# --- run ----------------------------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/tlsframe-run.XXXXXX")"
server_pid=
viewer_pid=
stop_requested=0

# stop PID: SIGINT (tlsframe turns it into end of stream), then TERM and KILL if it lingers.
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

# Each tlsframe runs in its own session, so Ctrl-C reaches only this script, which then
# stops them one at a time: the viewer first, then the server (end of stream to viewers).
# The server's lines go to the terminal as it prints them, and to a file this script reads
# to know when it listens.
say "\$ tlsframe serve --port $port --codec $codec"
setsid "$tlsframe" serve --port "$port" --codec "$codec" --status-interval 10 \
  > >(tee "$work/serve.out") 2>&1 </dev/null &
server_pid=$!

for ((i = 0; i < 300; i++)); do
  listening "$port" && break
  kill -0 "$server_pid" 2>/dev/null || { server_pid=; die "the server stopped before listening (its output is above)"; }
  ((stop_requested)) && exit 0
  sleep 0.1
done
listening "$port" || die "the server is not listening on port $port after 30 s"

# The viewer command serve printed for this machine ("viewers on this machine run: tlsframe
# view HOST:PORT [OPTIONS]"), run with this build's binary and 127.0.0.1 for HOST: a minimal
# system may have no /etc/hosts to resolve a name, and serve's certificate names the address.
for ((i = 0; i < 100; i++)); do
  grep -q 'run: tlsframe view ' "$work/serve.out" 2>/dev/null && break
  sleep 0.1
done
view_args=("127.0.0.1:$port")
if line=$(grep -m1 -o 'run: tlsframe view .*' "$work/serve.out" 2>/dev/null); then
  read -r -a printed <<<"${line#run: tlsframe view }"
  view_args+=("${printed[@]:1}")
else
  say "serve printed no viewer command; connecting with the defaults"
fi
((frames == 0)) || view_args+=(--frames "$frames")
view_args+=(--display "$display" --status-interval 1)

say "\$ tlsframe view ${view_args[*]}"
if ((frames)); then say "viewer: stopping after $frames frames"; else say "press Ctrl-C to stop"; fi
setsid "$tlsframe" view "${view_args[@]}" </dev/null &
viewer_pid=$!

# wait returns early when a trapped signal arrives; the status of a finished job is kept.
while kill -0 "$viewer_pid" 2>/dev/null; do wait "$viewer_pid" 2>/dev/null || true; done
viewer_rc=0
wait "$viewer_pid" 2>/dev/null || viewer_rc=$?
viewer_pid=

server_alive=0
kill -0 "$server_pid" 2>/dev/null && server_alive=1
say "stopping the server (end of stream)"
stop "$server_pid"
server_rc=0
wait "$server_pid" 2>/dev/null || server_rc=$?
server_pid=

if ((stop_requested)); then
  say "stopped"
  exit 0
fi
if ((viewer_rc != 0)); then
  ((server_alive)) || echo "run: the server had stopped (exit status $server_rc); its output is above" >&2
  die "the viewer failed (exit status $viewer_rc)"
fi
if ((frames)); then
  say "done: the viewer received $frames frames and the server stopped cleanly"
else
  say "done"
fi
