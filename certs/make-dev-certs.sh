#!/usr/bin/env bash
# Makes development certificates for tlsframe with the openssl command line:
# a CA, a server certificate (localhost, 127.0.0.1, ::1 + extra names) and a
# client certificate for mutual TLS. ECDSA P-256, SHA-256. Not for production.
set -euo pipefail

usage() {
  cat <<EOF
usage: $0 [--force] [OUT_DIR [NAME...]]

  OUT_DIR  where to write the files (default: _certs at the repository root, git-ignored)
  NAME     extra server names: host names become DNS: entries, IPv4/IPv6
           addresses become IP: entries (localhost, 127.0.0.1 and ::1 are always in)
  --force  replace an existing CA (ca.key) in OUT_DIR

Writes ca.pem/ca.key, server.pem/server.key, client.pem/client.key (keys mode 600).
EOF
}

force=0
args=()
while (($#)); do
  case "$1" in
    --force) force=1 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; args+=("$@"); break ;;
    -*) echo "error: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) args+=("$1") ;;
  esac
  shift
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="${args[0]:-$repo_root/_certs}"
extra_names=("${args[@]:1}")

# --- openssl -----------------------------------------------------------------
if ! command -v openssl >/dev/null 2>&1; then
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "openssl not found; installing the Debian package 'openssl'..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssl
  else
    echo "error: the openssl command is missing; install it (Debian/Ubuntu: sudo apt-get install openssl)" >&2
    exit 1
  fi
fi

# --- subjectAltName ----------------------------------------------------------
is_ipv4() {
  local IFS=. octet
  [[ $1 =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || return 1
  for octet in $1; do ((10#$octet <= 255)) || return 1; done
}
is_ipv6() { [[ $1 == *:* && $1 =~ ^[0-9A-Fa-f:.]+$ ]]; }
is_dns() { [[ $1 =~ ^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; }

dns_names=(localhost)
ip_addrs=(127.0.0.1 ::1)
for name in "${extra_names[@]}"; do
  if is_ipv4 "$name" || is_ipv6 "$name"; then
    [[ " ${ip_addrs[*]} " == *" $name "* ]] || ip_addrs+=("$name")
  elif [[ $name =~ ^[0-9.]+$ ]]; then
    echo "error: '$name' is not a valid IPv4 address" >&2
    exit 2
  elif is_dns "$name"; then
    [[ " ${dns_names[*]} " == *" $name "* ]] || dns_names+=("$name")
  else
    echo "error: '$name' is neither a host name nor an IP address" >&2
    exit 2
  fi
done

# --- output directory ----------------------------------------------------------
# The umask comes first: under umask 000 a directory made before it would be 0777, and
# another local user could swap ca.pem in it. Keys are never readable by others either.
umask 077
if [[ ! -d $out_dir ]]; then
  mkdir -p "$out_dir"
  chmod 700 "$out_dir"
fi
if [[ -e $out_dir/ca.key && $force -eq 0 ]]; then
  echo "error: $out_dir/ca.key exists; refusing to replace the CA (use --force)" >&2
  exit 1
fi
work="$(mktemp -d "$out_dir/.make-dev-certs.XXXXXX")"
trap 'rm -rf "$work"' EXIT

{
  cat <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder

[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = @server_san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[server_san]
EOF
  i=1
  for n in "${dns_names[@]}"; do echo "DNS.$i = $n"; i=$((i + 1)); done
  i=1
  for n in "${ip_addrs[@]}"; do echo "IP.$i = $n"; i=$((i + 1)); done
} >"$work/openssl.cnf"

ossl() { openssl "$@" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }; }

newkey() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$1.key"; }

# issue NAME CN EXTENSIONS: a certificate for NAME signed by the CA (random serial).
issue() {
  newkey "$1"
  ossl req -new -config "$work/openssl.cnf" -key "$work/$1.key" -subj "/CN=$2" -out "$work/$1.csr"
  ossl x509 -req -in "$work/$1.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -days 825 -sha256 \
    -extfile "$work/openssl.cnf" -extensions "$3" -out "$work/$1.pem"
}

newkey ca
ossl req -new -x509 -config "$work/openssl.cnf" -extensions v3_ca -key "$work/ca.key" \
  -subj "/CN=tlsframe development CA" -days 3650 -sha256 -out "$work/ca.pem"
issue server localhost v3_server
issue client client v3_client

ossl verify -CAfile "$work/ca.pem" -purpose sslserver "$work/server.pem" >/dev/null
ossl verify -CAfile "$work/ca.pem" -purpose sslclient "$work/client.pem" >/dev/null

chmod 600 "$work"/*.key
chmod 644 "$work"/*.pem
for f in ca.pem server.key server.pem client.key client.pem ca.key; do
  mv -f "$work/$f" "$out_dir/$f"
done

# Final check on the installed files.
openssl verify -CAfile "$out_dir/ca.pem" -purpose sslserver "$out_dir/server.pem"
openssl verify -CAfile "$out_dir/ca.pem" -purpose sslclient "$out_dir/client.pem"

san="$(printf 'DNS:%s, ' "${dns_names[@]}")$(printf 'IP:%s, ' "${ip_addrs[@]}")"
echo "server subjectAltName: ${san%, }"
echo "SHA-256 fingerprints:"
for f in ca server client; do
  fp="$(openssl x509 -noout -fingerprint -sha256 -in "$out_dir/$f.pem")"
  printf '  %-10s %s\n' "$f.pem" "${fp#*=}"
done
echo "written to $out_dir"
