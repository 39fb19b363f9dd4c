#!/usr/bin/env bash
# The test command: installs what building and testing need (Debian 12, as root), builds
# tlsframe with its tests and runs every test.
#
#   scripts/test.sh [MESON_TEST_ARGS...]     e.g. scripts/test.sh --suite unit
#
# BUILD_DIR (default: build, relative to the repository root) is set up with meson, or
# reconfigured when it exists (a directory first configured by scripts/run.sh, before the
# test packages were installed, would otherwise keep missing the tests whose tools were
# found only later). Reconfiguring keeps the build incremental. Then scripts/check-suites.sh
# compares the registered tests with the README's list: a test that is not registered fails
# this command, it never silently goes missing. Exits non-zero when `meson test` or that
# check fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}

bash scripts/install-deps.sh test

# tests=enabled: a missing test dependency is a configure error, not a silently empty suite.
if [[ -f $BUILD_DIR/meson-private/coredata.dat ]]; then
  meson setup --reconfigure "$BUILD_DIR" -Dtests=enabled
else
  meson setup "$BUILD_DIR" -Dtests=enabled
fi
meson compile -C "$BUILD_DIR"

suites_status=0
bash scripts/check-suites.sh "$BUILD_DIR" || suites_status=$?

# meson reads each GoogleTest program's report from <test name>.xml in the build directory;
# a program that crashes writes none, and an old one must not stand in for it.
rm -f "$BUILD_DIR"/*.xml

status=0
meson test -C "$BUILD_DIR" --print-errorlogs --num-processes 2 "$@" || status=$?
if ((suites_status != 0)); then
  echo "test: FAILED: the registered tests differ from README.md's list (check-suites above)"
  ((status != 0)) || status=$suites_status
fi
exit "$status"
