#!/usr/bin/env bash
# The test command: installs what building and testing need (Debian 12, as root), builds
# tlsframe with its tests and runs every test.
#
#   scripts/test.sh [MESON_TEST_ARGS...]     e.g. scripts/test.sh --suite unit
#
# BUILD_DIR (default: build, relative to the repository root) is set up with meson only
# when it is not a meson build directory yet. Exits with `meson test`'s status.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}

bash scripts/install-deps.sh test

if [[ ! -f $BUILD_DIR/meson-private/coredata.dat ]]; then
  # tests=enabled: a missing test dependency is a configure error, not a silently empty suite.
  meson setup "$BUILD_DIR" -Dtests=enabled
fi
meson compile -C "$BUILD_DIR"

# meson reads each GoogleTest program's report from <test name>.xml in the build directory;
# a program that crashes writes none, and an old one must not stand in for it.
rm -f "$BUILD_DIR"/*.xml

status=0
meson test -C "$BUILD_DIR" --print-errorlogs --num-processes 2 "$@" || status=$?
exit "$status"
