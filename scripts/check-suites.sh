#!/usr/bin/env bash
# Checks that meson registered every test the README lists (between the markers
# "<!-- tlsframe-test-list:begin -->" and "<!-- tlsframe-test-list:end -->"), and that
# the README lists every registered test. A test whose tool or library was not found at
# configure time is simply not registered by meson; this makes that a failure instead of
# a suite that silently shrank.
#
#   scripts/check-suites.sh [BUILD_DIR]      (default: $BUILD_DIR, else build)
#
# Prints one line per missing or unlisted test, then a summary; exits 1 on any mismatch,
# 2 when the README block or the build directory cannot be read.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${1:-${BUILD_DIR:-build}}

expected=$(sed -n '/<!-- tlsframe-test-list:begin -->/,/<!-- tlsframe-test-list:end -->/p' README.md |
  sed -n 's/^- `\([A-Za-z0-9_]*\)`.*/\1/p' | sort)
if [[ -z $expected ]]; then
  echo "check-suites: error: no test list between the tlsframe-test-list markers in README.md" >&2
  exit 2
fi
# "tlsframe:unit / unit_wire_format" -> "unit_wire_format". --no-rebuild: listing only.
if ! listed=$(meson test -C "$build_dir" --no-rebuild --list 2>/dev/null); then
  echo "check-suites: error: 'meson test -C $build_dir --list' failed (is $build_dir configured?)" >&2
  exit 2
fi
registered=$(sed -n 's/^[^ ]* \/ \(.*\)$/\1/p' <<<"$listed" | sort -u)

missing=$(comm -23 <(echo "$expected") <(echo "$registered"))
unlisted=$(comm -13 <(echo "$expected") <(echo "$registered"))
for t in $missing; do
  echo "check-suites: MISSING: '$t' is listed in README.md but not registered in $build_dir" \
    "(a test dependency was not found at configure time; see meson-logs/meson-log.txt)"
done
for t in $unlisted; do
  echo "check-suites: UNLISTED: '$t' is registered but not in README.md's test list; add it there"
done
n_expected=$(wc -l <<<"$expected")
if [[ -n $missing || -n $unlisted ]]; then
  echo "check-suites: FAILED: $(wc -w <<<"$missing") missing, $(wc -w <<<"$unlisted") unlisted, of $n_expected listed"
  exit 1
fi
echo "check-suites: all $n_expected tests in README.md are registered"
