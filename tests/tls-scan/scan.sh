#!/usr/bin/env bash
# TLS configuration scan of a running tlsframesink with sslscan.
#
#   tests/tls-scan/scan.sh [PLUGIN_DIR]     (default: $BUILD_DIR/plugins/tlsframe, BUILD_DIR=build)
#
# Starts real tlsframesink servers (gst-launch-1.0, port=0, certificates made at run
# time) and scans each with `sslscan --no-colour`:
#   default        ECDSA certificate, default settings
#   min12-ecdsa    ECDSA certificate, min-tls-version=1.2
#   min12-rsa      RSA certificate, min-tls-version=1.2 (an RSA key is what would let
#                  static-RSA key exchange suites through, so the cipher list is
#                  checked with one)
# and checks:
#   - protocols: TLSv1.3 only by default; TLSv1.2 + TLSv1.3 with min 1.2; SSLv2, SSLv3,
#     TLSv1.0, TLSv1.1 always disabled
#   - cipher suites: TLS 1.3 AEAD suites; every TLS 1.2 suite ECDHE and AEAD
#     (AES-GCM, CHACHA20-POLY1305)
#   - key exchange groups: X25519, P-256, P-384 only
#   - no session renegotiation (secure or insecure), not vulnerable to Heartbleed
#   - no compression: from sslscan when it can test it (Debian's sslscan is built
#     without zlib and says so); in any case a TLS 1.2 ClientHello offering DEFLATE is
#     sent (python3) and the server must pick the null method
# Prints one line per check and exits 1 on anything else, 2 when it cannot run.
# --check MODE FILE: check a saved `sslscan --no-colour` output only (MODE default|min12).
set -uo pipefail
check_file=
if [[ ${1:-} == --check && -n ${3:-} ]]; then check_file=$(realpath "$3"); fi
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2

fails=0
ok() { echo "tls-scan: ok:   $*"; }
bad() { echo "tls-scan: FAIL: $*"; fails=$((fails + 1)); }

# check_scan NAME MODE FILE: the sslscan output checks.
check_scan() {
  local name=$1 mode=$2 file=$3 p state want line suite proto
  grep -q 'SSL/TLS Protocols:' "$file" || { bad "$name: sslscan printed no protocol list"; return; }
  for p in SSLv2 SSLv3 TLSv1.0 TLSv1.1 TLSv1.2 TLSv1.3; do
    state=$(awk -v p="$p" '$1 == p { print $2; exit }' "$file")
    want=disabled
    [[ $p == TLSv1.3 ]] && want=enabled
    [[ $p == TLSv1.2 && $mode == min12 ]] && want=enabled
    if [[ $state == "$want" ]]; then ok "$name: $p $state"; else bad "$name: $p is '${state:-not reported}', want $want"; fi
  done
  local n13=0 n12=0 before=$fails
  while read -r line; do
    proto=$(awk '{ print $2 }' <<<"$line")
    suite=$(awk '{ print $5 }' <<<"$line")
    case "$proto" in
      TLSv1.3)
        n13=$((n13 + 1))
        [[ $suite =~ ^TLS_(AES_(128|256)_GCM|CHACHA20_POLY1305|AES_128_CCM)_SHA(256|384)$ ]] ||
          bad "$name: TLS 1.3 suite $suite is not an AEAD suite"
        ;;
      TLSv1.2)
        n12=$((n12 + 1))
        if [[ $mode != min12 ]]; then
          bad "$name: TLS 1.2 suite $suite accepted with the default minimum"
        elif [[ ! $suite =~ ^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$ ]]; then
          bad "$name: TLS 1.2 suite $suite is not ECDHE with an AEAD cipher"
        fi
        ;;
      *) bad "$name: suite $suite accepted over $proto" ;;
    esac
  done < <(grep -E '^(Preferred|Accepted) ' "$file")
  ((n13 > 0)) || bad "$name: no TLS 1.3 suite accepted"
  if [[ $mode == min12 ]] && ((n12 == 0)); then bad "$name: no TLS 1.2 suite accepted with min 1.2"; fi
  ((fails > before)) ||
    ok "$name: $n13 TLS 1.3 and $n12 TLS 1.2 suites, all allowed ($(grep -E '^(Preferred|Accepted) ' "$file" | awk '{ print $5 }' | paste -sd ' '))"
  # Key exchange groups: elliptic curves X25519, P-256, P-384 only (no finite-field DH).
  local groups others
  groups=$(awk '/Server Key Exchange Group\(s\):/ { on = 1; next } on && NF == 0 { on = 0 } on { print $1 ":" $4 }' "$file" | sort -u)
  others=$(grep -vE ':(x25519|secp256r1|secp384r1)$' <<<"$groups" | paste -sd ' ')
  if [[ -z $groups ]]; then
    bad "$name: sslscan listed no key exchange groups"
  elif [[ -n $others ]]; then
    bad "$name: key exchange groups beyond X25519/P-256/P-384: $others"
  else
    ok "$name: key exchange groups $(paste -sd ' ' <<<"$groups")"
  fi
  if grep -q 'Session renegotiation not supported' "$file" &&
    ! grep -qiE '(secure|insecure) session renegotiation supported' "$file"; then
    ok "$name: session renegotiation not supported"
  else
    bad "$name: renegotiation: $(grep -iE 'renegotiation' "$file" | grep -v 'TLS renegotiation:' | head -1)"
  fi
  if grep -qiE 'Compression (enabled|supported)' "$file"; then
    bad "$name: sslscan reports compression"
  elif grep -q 'Compression disabled' "$file"; then
    ok "$name: compression disabled (sslscan)"
  else
    ok "$name: sslscan cannot test compression ($(grep -A1 'TLS Compression:' "$file" | tail -1)); see the DEFLATE probe"
  fi
  if grep -qE '^TLSv1\.[0-3] +vulnerable to heartbleed' "$file"; then bad "$name: Heartbleed"; else ok "$name: not vulnerable to Heartbleed"; fi
}

if [[ ${1:-} == --check ]]; then
  [[ -n $check_file ]] || { echo "usage: $0 --check default|min12 FILE" >&2; exit 2; }
  check_scan "$3" "$2" "$check_file"
  ((fails == 0)) && exit 0 || exit 1
fi

for tool in sslscan gst-launch-1.0 openssl python3; do
  command -v "$tool" >/dev/null || { echo "tls-scan: $tool not found (scripts/install-deps.sh test scan)" >&2; exit 2; }
done
plugin_dir=${1:-${GST_PLUGIN_PATH:-$PWD/${BUILD_DIR:-build}/plugins/tlsframe}}
plugin_dir=$(cd "$plugin_dir" 2>/dev/null && pwd) || { echo "tls-scan: no plugin directory $plugin_dir; build first" >&2; exit 2; }
[[ -f $plugin_dir/libgsttlsframe.so ]] || { echo "tls-scan: no libgsttlsframe.so in $plugin_dir; build first" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/tlsframe-scan.XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

export GST_PLUGIN_PATH=$plugin_dir GST_REGISTRY_1_0=$work/registry.bin GST_REGISTRY_FORK=no
# A plugin built with a sanitizer (scripts/sanitize.sh) needs its runtime in gst-launch.
preload=
needed=$(readelf -d "$plugin_dir/libgsttlsframe.so" 2>/dev/null)
if grep -q 'libasan' <<<"$needed"; then
  preload="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
elif grep -q 'libtsan' <<<"$needed"; then
  preload=$(gcc -print-file-name=libtsan.so)
elif nm -D "$plugin_dir/libgsttlsframe.so" 2>/dev/null | grep -c __asan_init >/dev/null; then
  preload=$(clang++-14 -print-file-name=libclang_rt.asan-x86_64.so)
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
fi

# scripts/sanitize.sh tsan puts a gst-launch-1.0 wrapper script first on PATH that
# preloads the runtime itself (a shell with libtsan preloaded crashes): leave it to it.
if [[ -n $preload && $(head -c2 "$(type -P gst-launch-1.0)") == '#!' ]]; then preload=; fi

bash certs/make-dev-certs.sh "$work/ecdsa" >/dev/null || { echo "tls-scan: cannot make certificates" >&2; exit 2; }
# An RSA server certificate from the same CA.
openssl req -new -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$work/rsa.key" \
  -out "$work/rsa.csr" 2>/dev/null &&
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$work/rsa.ext" &&
  openssl x509 -req -in "$work/rsa.csr" -CA "$work/ecdsa/ca.pem" -CAkey "$work/ecdsa/ca.key" \
    -CAcreateserial -days 1 -sha256 -extfile "$work/rsa.ext" -out "$work/rsa.pem" 2>/dev/null ||
  { echo "tls-scan: cannot make the RSA certificate" >&2; exit 2; }

# start_sink NAME CERT KEY [PROPS...]: sets $port to the sink's current-port.
start_sink() {
  local name=$1 cert=$2 key=$3 log=$work/$1.log
  shift 3
  LD_PRELOAD=$preload gst-launch-1.0 -v videotestsrc is-live=true pattern=black \
    ! video/x-raw,width=16,height=16,framerate=5/1 ! jpegenc \
    ! tlsframesink port=0 host=127.0.0.1 cert-file="$cert" key-file="$key" "$@" >"$log" 2>&1 &
  pids+=($!)
  port=
  local i
  for ((i = 0; i < 200; i++)); do
    port=$(grep -oE 'current-port = [1-9][0-9]*' "$log" | tail -1 | grep -oE '[0-9]+$')
    [[ -n $port ]] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "tls-scan: $name: the sink did not start:" >&2
  tail -5 "$log" >&2
  return 1
}

# deflate_probe PORT: a TLS 1.2 ClientHello offering DEFLATE and null compression; prints
# the compression method of the ServerHello, or "alert"/"closed".
deflate_probe() {
  python3 - "$1" <<'PY'
import os, socket, struct, sys
def ext(t, body): return struct.pack(">HH", t, len(body)) + body
suites = [0xC02B, 0xC02C, 0xC02F, 0xC030, 0xCCA8, 0xCCA9]
exts = (ext(0x000a, struct.pack(">HHH", 4, 0x0017, 0x001d))            # groups: P-256, x25519
        + ext(0x000b, b"\x01\x00")                                       # point formats
        + ext(0x000d, struct.pack(">HHHHH", 8, 0x0403, 0x0804, 0x0401, 0x0503))
        + ext(0xff01, b"\x00"))                                          # renegotiation_info
body = (b"\x03\x03" + os.urandom(32) + b"\x00"
        + struct.pack(">H", 2 * len(suites)) + b"".join(struct.pack(">H", s) for s in suites)
        + b"\x02\x01\x00"                                                 # DEFLATE, null
        + struct.pack(">H", len(exts)) + exts)
hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
rec = b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(rec)
data = b""
while len(data) < 5 or len(data) < 5 + struct.unpack(">H", data[3:5])[0]:
    chunk = s.recv(65536)
    if not chunk:
        print("closed"); sys.exit(0)
    data += chunk
if data[0] == 0x15:
    print("alert"); sys.exit(0)
if data[0] != 0x16 or data[5] != 0x02:
    print("unexpected"); sys.exit(0)
p = 5 + 4 + 2 + 32                          # record, handshake header, version, random
p += 1 + data[p]                            # session id
p += 2                                      # cipher suite
print("method=%d" % data[p])
PY
}

scan() { # NAME MODE CERT KEY [PROPS...]
  local name=$1 mode=$2 cert=$3 key=$4 out
  shift 4
  start_sink "$name" "$cert" "$key" "$@" || { bad "$name: no server to scan"; return; }
  out=$work/$name.sslscan
  timeout 120 sslscan --no-colour "127.0.0.1:$port" >"$out" 2>&1 || { bad "$name: sslscan failed: $(tail -1 "$out")"; return; }
  check_scan "$name" "$mode" "$out"
  local probe
  probe=$(deflate_probe "$port" 2>&1)
  case "$mode:$probe" in
    min12:method=0) ok "$name: TLS 1.2 ClientHello offering DEFLATE: server chose null compression" ;;
    default:alert | default:closed) ok "$name: TLS 1.2 ClientHello offering DEFLATE refused ($probe)" ;;
    *) bad "$name: TLS 1.2 ClientHello offering DEFLATE: $probe" ;;
  esac
  if [[ -n ${TLS_SCAN_KEEP:-} ]]; then cp "$out" "$TLS_SCAN_KEEP.$name.txt"; fi
  kill "${pids[-1]}" 2>/dev/null
}

scan default default "$work/ecdsa/server.pem" "$work/ecdsa/server.key"
scan min12-ecdsa min12 "$work/ecdsa/server.pem" "$work/ecdsa/server.key" min-tls-version=1.2
scan min12-rsa min12 "$work/rsa.pem" "$work/rsa.key" min-tls-version=1.2

if ((fails)); then
  echo "tls-scan: $fails check(s) failed"
  exit 1
fi
echo "tls-scan: all checks passed"
