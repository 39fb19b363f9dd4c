#!/usr/bin/env bash
# Short fuzz check: builds the fuzz targets (BUILD_DIR, default build-fuzz, clang-14 with
# ASan+UBSan), makes the seed corpus when missing, and runs each target SECONDS seconds
# (default 60) on a scratch copy of it: fuzz_wire_decoder, fuzz_caps and fuzz_http.
# Exits non-zero when a target finds a crash, a leak (fuzz_wire_decoder, fuzz_http) or a
# sanitizer report; the input is left in the scratch dir.
#
#   tests/fuzz/run.sh [SECONDS]      (0: only replay the seed corpus)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
secs=${1:-60}
export BUILD_DIR=${BUILD_DIR:-build-fuzz}
if [[ ! -f $BUILD_DIR/meson-private/coredata.dat ]]; then
  CXX=${CXX:-clang++-14} meson setup "$BUILD_DIR" -Dfuzzing=enabled -Dtests=disabled \
    -Db_sanitize=address,undefined -Db_lundef=false
fi
# Only what the fuzz run needs: the targets and the plugin (for make_corpus.sh).
meson compile -C "$BUILD_DIR" fuzz_wire_decoder fuzz_caps fuzz_http gsttlsframe
corpus=$BUILD_DIR/fuzz-corpus
[[ -d $corpus/wire && -d $corpus/caps ]] || tests/fuzz/make_corpus.sh "$corpus"
# The http seeds are written, not captured: made here too for a corpus made before them.
[[ -d $corpus/http ]] || python3 tests/fuzz/http_seeds.py "$corpus/http"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/tlsframe-fuzz.XXXXXX")
status=0
for t in wire caps http; do
  bin=$BUILD_DIR/tests/fuzz/fuzz_wire_decoder opts=(-max_len=65536) asan=detect_leaks=1
  # fuzz_caps: no leak checks (GStreamer's own leaks on malformed caps, see README).
  [[ $t == caps ]] && bin=$BUILD_DIR/tests/fuzz/fuzz_caps opts=(-max_len=8192 -rss_limit_mb=3072) asan=detect_leaks=0
  [[ $t == http ]] && bin=$BUILD_DIR/tests/fuzz/fuzz_http opts=(-max_len=16384) asan=detect_leaks=1
  mkdir -p "$scratch/$t"
  cp "$corpus/$t"/* "$scratch/$t/"
  if ((secs == 0)); then
    run=(-runs=0)
  else
    run=(-max_total_time="$secs")
  fi
  echo "fuzz: $(basename "$bin") ${run[*]} on $(ls "$scratch/$t" | wc -l) inputs"
  if ! ASAN_OPTIONS=$asan "$bin" "${opts[@]}" "${run[@]}" -print_final_stats=1 -artifact_prefix="$scratch/" \
    "$scratch/$t" >"$scratch/$t.log" 2>&1; then
    status=1
    echo "fuzz: $(basename "$bin") FAILED; log $scratch/$t.log, inputs: $(ls "$scratch" | grep -E '^(crash|leak|timeout|oom)-' | tr '\n' ' ')"
    grep -E 'ERROR|SUMMARY|violated' "$scratch/$t.log" | head -5
  fi
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec)|^#[0-9]+ +DONE' "$scratch/$t.log" || true
done
((status)) || rm -rf "$scratch"
exit "$status"
