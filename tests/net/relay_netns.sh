#!/usr/bin/env bash
# The relay tree past one machine (issue 10): three network namespaces made
# and removed by this script, joined by veth pairs,
#
#   origin 10.201.0.1/30 <-veth-> 10.201.0.2/30 relay 10.201.0.5/30 <-veth-> 10.201.0.6/30 viewers
#
# each link shaped by tc tbf (50 Mbit/s). In them, with the tlsframe command and
# the plugin of the build tree:
#   origin   tlsframe serve --codec h264 --gop 300 (a 10 s GOP at 30 fps)
#   relay    tlsframe relay --from 10.201.0.1:9999
#   viewer   gst-launch-1.0 tlsframesrc host=10.201.0.5 ! h264parse ! avdec_h264 ! fakesink
# The viewer joins once the relay streams and the sinks' keyframe request
# interval (1 s) has passed; its first decoded frame must arrive within 1 s of
# PLAYING (the relay forwards the join's keyframe request to the origin's
# encoder; without it the wait is up to the 10 s GOP). Prints the time.
#
#   tests/net/relay_netns.sh BUILD_DIR
#
# Exit 0 = pass, 1 = fail, 77 = skipped (not root, no `ip`, namespaces or veth
# unavailable, a GStreamer element missing): meson reports 77 as SKIP. Every
# wait is bounded; a trap removes the namespaces (and with them the veths) and
# stops every process it started, on every exit path. Fixed addresses and ports
# are safe here: the namespaces are new and private to this run.
set -uo pipefail

build_dir=$(realpath "${1:-${BUILD_DIR:-build}}")
source_dir=$(realpath "$(dirname "${BASH_SOURCE[0]}")/../..")
tool=$build_dir/tools/tlsframe/tlsframe
plugin_dir=$build_dir/plugins/tlsframe
max_first_frame_ms=1000

log() { echo "relay_netns: $*"; }
skip() {
  log "SKIP: $*"
  exit 77
}
fail() {
  log "FAIL: $*"
  exit 1
}

[[ $(id -u) == 0 ]] || skip "creating network namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); run the test as root"
command -v ip >/dev/null || skip "no 'ip' command (Debian package iproute2)"
command -v gst-launch-1.0 >/dev/null || skip "no gst-launch-1.0 (Debian package gstreamer1.0-tools)"
[[ -x $tool ]] || fail "no tlsframe command at $tool (build first)"

work=$(mktemp -d /tmp/tlsframe-netns.XXXXXX) || fail "mktemp"
ns_origin=tf-origin-$$
ns_relay=tf-relay-$$
ns_viewer=tf-viewer-$$
namespaces=()
pids=()

cleanup() {
  local pid ns
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    # Bounded: 50 x 0.1 s for each process group to go, then SIGKILL.
    for _ in $(seq 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null
  done
  for ns in "${namespaces[@]}"; do
    # Anything still inside (started by us) goes too; deleting the namespace removes its veths.
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    ip netns del "$ns" 2>/dev/null || log "warning: could not delete namespace $ns"
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

for el in x264enc h264parse avdec_h264 videotestsrc; do
  gst-inspect-1.0 --exists "$el" || skip "GStreamer element $el is missing"
done

for ns in "$ns_origin" "$ns_relay" "$ns_viewer"; do
  ip netns add "$ns" 2>"$work/ip.err" || skip "cannot create network namespace $ns: $(cat "$work/ip.err")"
  namespaces+=("$ns")
  ip -n "$ns" link set lo up || fail "lo up in $ns"
done
# veth pairs made directly inside the namespaces: their names never touch the host's.
ip link add o0 netns "$ns_origin" type veth peer name r0 netns "$ns_relay" 2>"$work/ip.err" ||
  skip "cannot create a veth pair: $(cat "$work/ip.err")"
ip link add r1 netns "$ns_relay" type veth peer name v0 netns "$ns_viewer" 2>"$work/ip.err" ||
  skip "cannot create a veth pair: $(cat "$work/ip.err")"
ip -n "$ns_origin" addr add 10.201.0.1/30 dev o0 &&
  ip -n "$ns_relay" addr add 10.201.0.2/30 dev r0 &&
  ip -n "$ns_relay" addr add 10.201.0.5/30 dev r1 &&
  ip -n "$ns_viewer" addr add 10.201.0.6/30 dev v0 || fail "addresses"
for link in "$ns_origin o0" "$ns_relay r0" "$ns_relay r1" "$ns_viewer v0"; do
  read -r ns dev <<<"$link"
  ip -n "$ns" link set "$dev" up || fail "link $dev up in $ns"
  # A link of a real network rather than an unlimited one; optional.
  ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate 50mbit burst 64kb latency 50ms 2>/dev/null ||
    log "note: no tc tbf on $dev (continuing unshaped)"
done

# One server certificate for both servers' addresses, one CA that the relay and the viewer trust.
HOME=$work "$tool" certs --out "$work/certs" --host 10.201.0.1 --host 10.201.0.5 >"$work/certs.log" 2>&1 ||
  fail "tlsframe certs: $(cat "$work/certs.log")"

# Runs "$@" in namespace $1 as its own process group (setsid), output to $work/NAME.log.
start_in() {
  local ns=$1 name=$2
  shift 2
  setsid ip netns exec "$ns" env HOME="$work" GST_PLUGIN_PATH="$plugin_dir" \
    GST_REGISTRY_1_0="$work/registry-$name.bin" TLSFRAME_PIPELINE_DIR="$source_dir/pipelines" \
    "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
}
show_logs() {
  log "origin log:" && sed 's/^/  origin: /' "$work/origin.log" 2>/dev/null
  log "relay log:" && sed 's/^/  relay: /' "$work/relay.log" 2>/dev/null
}
# wait_for WHAT SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds (bounded);
# fails at once when a process started here has exited.
wait_for() {
  local what=$1 seconds=$2 i pid
  shift 2
  for ((i = 0; i < seconds * 10; i++)); do
    "$@" && return 0
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { show_logs; fail "a process exited while waiting for: $what"; }
    done
    sleep 0.1
  done
  show_logs
  fail "$what did not happen within $seconds s"
}
listening() { ip netns exec "$1" ss -Hltn "sport = :9999" | grep -q .; }
relay_connected() { grep -q "upstream connected" "$work/relay.log"; }

start_in "$ns_origin" origin "$tool" serve --source test:ball --codec h264 --gop 300 --fps 30 \
  --width 320 --height 240 --bind 10.201.0.1 --port 9999 --certs "$work/certs" --status-interval 60
wait_for "the origin listening on 10.201.0.1:9999" 20 listening "$ns_origin"
start_in "$ns_relay" relay "$tool" relay --from 10.201.0.1:9999 --bind 10.201.0.5 --port 9999 \
  --certs "$work/certs" --status-interval 60
wait_for "the relay listening on 10.201.0.5:9999" 20 listening "$ns_relay"
wait_for "the relay's upstream connection" 20 relay_connected
# The relay's join asked the origin for a keyframe; a request within the next
# second would wait for the end of that second (keyframe-request-interval), so
# the viewer joins after it: a wait for a time, not for a condition.
sleep 1.5

# The viewer: gst-launch-1.0 -v prints each buffer fakesink gets (last-message)
# on stdout; every line is stamped as it arrives ($EPOCHREALTIME, no fork).
# 60 buffers, then EOS and exit; `timeout` bounds it in any case.
viewer_out=$work/viewer.log
ip netns exec "$ns_viewer" env HOME="$work" GST_PLUGIN_PATH="$plugin_dir" \
  GST_REGISTRY_1_0="$work/registry-viewer.bin" \
  timeout 20 gst-launch-1.0 -v tlsframesrc host=10.201.0.5 port=9999 ca-file="$work/certs/ca.pem" \
  num-buffers=60 ! h264parse ! avdec_h264 ! fakesink name=out silent=false sync=false 2>&1 |
  while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done >"$viewer_out"
viewer_status=${PIPESTATUS[0]}

t_playing=$(awk '/Setting pipeline to PLAYING/ { print $1; exit }' "$viewer_out")
t_first=$(awk '/out: last-message = chain/ { print $1; exit }' "$viewer_out")
frames=$(grep -c 'out: last-message = chain' "$viewer_out")
if [[ -z $t_playing || -z $t_first ]]; then
  sed 's/^/  viewer: /' "$viewer_out" | tail -30
  show_logs
  fail "the viewer decoded no frame (gst-launch-1.0 exit $viewer_status)"
fi
first_ms=$(awk -v a="$t_playing" -v b="$t_first" 'BEGIN { printf "%d", (b - a) * 1000 }')
log "origin (ns $ns_origin) -> relay (ns $ns_relay) -> viewer (ns $ns_viewer), H.264 10 s GOP:" \
  "first decoded frame ${first_ms} ms after PLAYING; $frames frames decoded (gst-launch-1.0 exit $viewer_status)"
((viewer_status == 0)) || fail "gst-launch-1.0 exited with $viewer_status"
((first_ms < max_first_frame_ms)) || fail "first decoded frame after ${first_ms} ms, want under $max_first_frame_ms ms"
log "ok"
