#!/usr/bin/env bash
# Builds and runs the test suite under a sanitizer, in its own build dir.
#
#   scripts/sanitize.sh asan [MESON_TEST_ARGS...]   AddressSanitizer + UndefinedBehaviorSanitizer
#   scripts/sanitize.sh tsan [MESON_TEST_ARGS...]   ThreadSanitizer (default: all suites but tools)
#   scripts/sanitize.sh leaks [MESON_TEST_ARGS...]  ASan with LeakSanitizer on (build-asan),
#                                                   default: the suites without GStreamer (unit, core)
#
# Both run the whole suite by default (MESON_TEST_ARGS, e.g. `--suite core`, narrow it)
# with gcc's runtimes (libasan/libubsan/libtsan come with g++: nothing beyond
# `scripts/install-deps.sh test`). Every process writes its reports to
# $dir/sanitizer-reports/ (log_path), so a report in a child process (gst-launch-1.0
# started by a test) or in a test that still passed is counted too. Exit status: meson
# test's, or 1 when any report was written (the reports are printed).
#
# ASan: leak detection is off (LeakSanitizer): GLib and GStreamer keep process-lifetime
# allocations (quarks, types, the registry) that LSan reports, and Debian's GLib has no
# frame pointers, so suppressions could only match them with the slow unwinder on every
# malloc. `leaks` runs LSan over the suites without GStreamer; tests/fuzz runs it over
# the wire decoder.
# Processes that start gst-launch-1.0 need the runtime preloaded: tests run through
# `env LD_PRELOAD=...`.
# TSan: GLib's GMutex/GCond use futexes and Debian's GLib/GStreamer are not built with
# TSan, so TSan would see none of their synchronisation. The preloaded
# tests/sanitizers/tsan_glib_annotations.c annotates it; tests/sanitizers/tsan.supp
# suppresses what is left, only reports with no tlsframe frame (see the file).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
kind=${1:-asan}
shift || true

# count_reports DIR: prints the reports in DIR, returns 1 if there is any.
count_reports() {
  local n
  n=$(cat "$1"/* 2>/dev/null | grep -cE '^(==[0-9]+==ERROR: |WARNING: ThreadSanitizer:|.*runtime error: )' || true)
  if ((n > 0)); then
    cat "$1"/*
    echo "sanitize: $kind: $n report(s) in $1"
    return 1
  fi
  echo "sanitize: $kind: 0 reports"
}

case "$kind" in
  asan | leaks)
    dir=${BUILD_DIR:-build-asan}
    [[ -f $dir/meson-private/coredata.dat ]] ||
      meson setup "$dir" -Dtests=enabled -Db_sanitize=address,undefined -Db_lundef=false
    meson compile -C "$dir"
    reports=$PWD/$dir/sanitizer-reports
    rm -rf "$reports" "$dir"/*.xml
    mkdir -p "$reports"
    pre="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
    status=0
    leaks=0
    args=("$@")
    if [[ $kind == leaks ]]; then
      # The core and its tests use no GLib, so LeakSanitizer needs no suppressions there.
      leaks=1
      ((${#args[@]})) || args=(--suite unit --suite core)
    fi
    # Default: every suite but browser and net. Their test programs are scripts that
    # run other people's binaries (chromedriver, chromium, mawk, ip) under the
    # preloaded runtime: chromedriver aborts ("Shadow memory range interleaves with an
    # existing memory mapping") and mawk reports its own overflow. Both suites run in
    # the main (unsanitized) suite; our code in them is the plugin and tool that the
    # element and tools suites run under ASan.
    # core_fairness (suite timing) paces slow readers by the clock against the server's
    # timeouts, which a run several times slower does not keep: it runs in the main suite.
    ((${#args[@]})) || args=(--no-suite browser --no-suite net --no-suite timing)
    ASAN_OPTIONS="detect_leaks=$leaks:log_path=$reports/asan" \
      UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan" \
      meson test -C "$dir" --no-rebuild --num-processes 2 --print-errorlogs \
      --wrapper "env LD_PRELOAD=$pre" ${args[@]+"${args[@]}"} || status=$?
    count_reports "$reports" || status=1
    exit "$status"
    ;;
  tsan)
    dir=${BUILD_DIR:-build-tsan}
    [[ -f $dir/meson-private/coredata.dat ]] ||
      meson setup "$dir" -Dtests=enabled -Db_sanitize=thread -Db_lundef=false
    meson compile -C "$dir"
    reports=$PWD/$dir/sanitizer-reports
    rm -rf "$reports" "$dir"/*.xml
    mkdir -p "$reports"
    shim=$PWD/$dir/libtsan_glib_annotations.so
    gcc -O1 -shared -fPIC -o "$shim" tests/sanitizers/tsan_glib_annotations.c -ldl
    # The test programs link libtsan themselves and get only the annotations preloaded
    # (preloading libtsan into every child breaks /bin/sh, which tests start). A
    # gst-launch-1.0 started by a test loads the TSan-built plugin, so it gets libtsan
    # from a wrapper found first on PATH.
    bindir=$PWD/$dir/tsan-bin
    mkdir -p "$bindir"
    # (The script itself must not get libtsan: /bin/sh and bash crash with it preloaded.)
    printf '#!/bin/sh\nLD_PRELOAD=%s:%s exec %s "$@"\n' "$(gcc -print-file-name=libtsan.so)" "$shim" \
      "$(command -v gst-launch-1.0)" >"$bindir/gst-launch-1.0"
    chmod +x "$bindir/gst-launch-1.0"
    # Default: every suite but tools. The tools suite runs python3 with GStreamer's Python
    # bindings, which load the TSan-built plugin into a process without the runtime
    # (abort), and its GMainLoop bus watches hand messages over inside libgstreamer where
    # the annotations cannot see it.
    args=("$@")
    ((${#args[@]})) || args=(--no-suite tools)
    status=0
    # G_SLICE=always-malloc: GLib's slice allocator recycles memory without free/malloc,
    # which TSan would take for races between the old and the new owner.
    G_SLICE=always-malloc PATH="$bindir:$PATH" \
      TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 log_path=$reports/tsan suppressions=$PWD/tests/sanitizers/tsan.supp" \
      meson test -C "$dir" --no-rebuild --num-processes 2 --print-errorlogs --timeout-multiplier 3 \
      --wrapper "env LD_PRELOAD=$shim" "${args[@]}" || status=$?
    count_reports "$reports" || status=1
    exit "$status"
    ;;
  *)
    echo "usage: $0 asan|tsan|leaks [meson test args...]" >&2
    exit 2
    ;;
esac
