#!/usr/bin/env bash
# Installs the Debian 12 packages tlsframe needs, and only those that are missing.
#
#   scripts/install-deps.sh [--check] [build|run|test|fuzz|scan|bench]...     (default: test)
#
#   build  compiler, meson/ninja and the -dev packages (OpenSSL, Asio, GStreamer, GoogleTest)
#   run    gst-launch-1.0, the GStreamer plugin sets used by scripts/run.sh and the README, openssl
#   test   build + run + scan: everything scripts/test.sh needs
#   fuzz   clang-14 and libFuzzer for tests/fuzz (tests/fuzz/README)
#   scan   sslscan for the TLS configuration scan (tests/tls-scan/scan.sh)
#   bench  run + stunnel4 and python3 for the comparison benchmark (bench/run.py)
#   --check  install nothing: list what is missing, exit 1 if anything is
#
# Idempotent: a package whose dpkg status is "install ok installed" is left alone, and
# `apt-get update` runs only when something has to be installed. As root it installs
# (non-interactive, --no-install-recommends); otherwise it prints the apt-get command to
# run as root and exits 1. TLSFRAME_SKIP_DEPS=1 skips all of this (non-Debian machines).
set -euo pipefail

# gstreamer-check-1.0 (tests) comes with libgstreamer1.0-dev, gstreamer-app-1.0 with
# libgstreamer-plugins-base1.0-dev.
# libhttp-parser-dev: the browser front's HTTP request parser (core/http_request.cpp).
build_pkgs=(g++ meson ninja-build pkg-config libssl-dev libasio-dev libhttp-parser-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgtest-dev)
# gstreamer1.0-x (ximagesink/xvimagesink for autovideosink) is only a Recommends of
# plugins-good, which --no-install-recommends would leave out.
run_pkgs=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-x
  openssl ca-certificates)
# libclang-rt-14-dev (the sanitizer and libFuzzer runtimes clang links) is only a
# Recommends of clang-14; libfuzzer-14-dev has libFuzzer's main. python3 cuts captured
# streams into seeds (tests/fuzz/make_corpus.sh).
fuzz_pkgs=(clang-14 libclang-rt-14-dev libfuzzer-14-dev python3)
# sslscan lists the protocols, cipher suites, compression and renegotiation a TLS server
# accepts: the TLS configuration scan (tests/tls-scan/scan.sh) is part of the test suite.
scan_pkgs=(sslscan)
# bench/run.py compares tlsframesink with tcpserversink and with stunnel4 in front of
# tcpserversink; its thread-count figure runs pipelines through PyGObject.
bench_pkgs=(stunnel4 python3 python3-gi gir1.2-gstreamer-1.0)
# The tlsframe tool's OpenCV camera source and window (meson feature opencv) need
# libopencv-dev. Its tests (tests/tools) run Xvfb and ImageMagick's import for the window
# screenshot, xdotool to press q and Esc in it, and gst-discoverer-1.0
# (gstreamer1.0-plugins-base-apps) on recordings; the Python example (examples/) needs
# PyGObject and the GStreamer typelib.
tools_build_pkgs=(libopencv-dev)
tools_test_pkgs=(gstreamer1.0-plugins-base-apps xvfb imagemagick xdotool python3-gi
  gir1.2-gstreamer-1.0)
# The browser front's tests (tests/browser) drive a real headless Chromium with Selenium;
# certutil (libnss3-tools) puts the test CA and client certificate in its NSS database.
browser_test_pkgs=(chromium chromium-driver python3-selenium libnss3-tools)

usage() { sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

check_only=0
groups=()
for arg in "$@"; do
  case "$arg" in
    build | run | test | fuzz | scan | bench) groups+=("$arg") ;;
    --check) check_only=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install-deps: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done
((${#groups[@]})) || groups=(test)

if [[ ${TLSFRAME_SKIP_DEPS:-0} == 1 ]]; then
  echo "install-deps: TLSFRAME_SKIP_DEPS=1, not checking packages"
  exit 0
fi

wanted=()
for g in "${groups[@]}"; do
  case "$g" in
    build) wanted+=("${build_pkgs[@]}") ;;
    run) wanted+=("${run_pkgs[@]}") ;;
    test) wanted+=("${build_pkgs[@]}" "${run_pkgs[@]}" "${scan_pkgs[@]}") ;;
    fuzz) wanted+=("${fuzz_pkgs[@]}") ;;
    scan) wanted+=("${scan_pkgs[@]}") ;;
    bench) wanted+=("${run_pkgs[@]}" "${bench_pkgs[@]}") ;;
  esac
done
# build and test also get the tool's packages.
for g in "${groups[@]}"; do
  case "$g" in
    build) wanted+=("${tools_build_pkgs[@]}") ;;
    test) wanted+=("${tools_build_pkgs[@]}" "${tools_test_pkgs[@]}" "${browser_test_pkgs[@]}") ;;
  esac
done
# Drop duplicates, keep the order.
declare -A seen=()
pkgs=()
for p in "${wanted[@]}"; do
  [[ -n ${seen[$p]:-} ]] || { seen[$p]=1; pkgs+=("$p"); }
done

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: error: dpkg-query not found. This script installs Debian 12 packages;" >&2
  echo "  on another system install the equivalents of: ${pkgs[*]}" >&2
  echo "  then run with TLSFRAME_SKIP_DEPS=1." >&2
  exit 1
fi

missing_pkgs() {
  local p
  for p in "${pkgs[@]}"; do
    [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == "install ok installed" ]] || echo "$p"
  done
}

mapfile -t missing < <(missing_pkgs)
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#pkgs[@]} packages present (${groups[*]})"
  exit 0
fi

install_cmd="apt-get install -y -q --no-install-recommends ${missing[*]}"
echo "install-deps: missing Debian packages: ${missing[*]}"
if ((check_only)); then
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: error: apt-get not found; this script needs Debian 12 (or a derivative) with apt." >&2
  echo "  Install the equivalents of: ${missing[*]}" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: error: installing needs root. Run these as root (for example with sudo):" >&2
  echo "  apt-get update" >&2
  echo "  $install_cmd" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: apt-get update"
apt-get update -q
echo "install-deps: $install_cmd"
apt-get install -y -q --no-install-recommends "${missing[@]}"

mapfile -t still_missing < <(missing_pkgs)
if ((${#still_missing[@]})); then
  echo "install-deps: error: still not installed after apt-get: ${still_missing[*]}" >&2
  exit 1
fi
echo "install-deps: installed ${#missing[@]} packages"
