#!/usr/bin/env bash
# Builds and runs the test suite under a sanitizer, in its own build dir.
#
#   scripts/sanitize.sh asan [MESON_TEST_ARGS...]   AddressSanitizer + UndefinedBehaviorSanitizer, whole suite
#   scripts/sanitize.sh tsan [MESON_TEST_ARGS...]   ThreadSanitizer; by default the suites without
#                                                   GStreamer (unit, core), see below
#
# ASan: leak detection is off (GLib and GStreamer keep process-lifetime
# allocations); tests that start gst-launch-1.0 need the ASan runtime
# preloaded, so tests run through `env LD_PRELOAD=...`.
# TSan: GLib's GMutex/GCond use futexes directly and Debian's GLib is not
# built with TSan, so every hand-over through GStreamer (buffers, queues,
# bus) is reported as a race. The core (server, receiver, TLS) has no
# GStreamer and is checked without suppressions; element suites under TSan
# need suppressions for GLib, not written yet.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
kind=${1:-asan}
shift || true
case "$kind" in
  asan)
    dir=${BUILD_DIR:-build-asan}
    [[ -f $dir/meson-private/coredata.dat ]] ||
      meson setup "$dir" -Dtests=enabled -Db_sanitize=address,undefined -Db_lundef=false
    meson compile -C "$dir"
    pre="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
    ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      meson test -C "$dir" --no-rebuild --num-processes 2 --print-errorlogs \
      --wrapper "env LD_PRELOAD=$pre" "$@"
    ;;
  tsan)
    dir=${BUILD_DIR:-build-tsan}
    [[ -f $dir/meson-private/coredata.dat ]] ||
      meson setup "$dir" -Dtests=enabled -Db_sanitize=thread -Db_lundef=false
    meson compile -C "$dir"
    args=("$@")
    ((${#args[@]})) || args=(--suite unit --suite core)
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
      meson test -C "$dir" --no-rebuild --num-processes 1 --print-errorlogs "${args[@]}"
    ;;
  *)
    echo "usage: $0 asan|tsan [meson test args...]" >&2
    exit 2
    ;;
esac
