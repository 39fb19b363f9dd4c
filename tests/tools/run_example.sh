#!/usr/bin/env bash
# Runs an example from examples/ against certificates made by `tlsframe certs`, and checks
# that it saw client-added, the stats, and client-removed with status closed.
#   run_example.sh TLSFRAME_TOOL EXAMPLE_COMMAND...
set -euo pipefail
tool=$1
shift
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$tool" certs --out "$dir/certs" >/dev/null
# The example bounds itself (N frames); timeout is the backstop.
timeout 60 "$@" "$dir/certs" 30 | tee "$dir/out"
grep -q '^client-added: id=[0-9]* address=127.0.0.1:' "$dir/out"
grep -q '^stats: clients=1 buffers-published=[1-9][0-9]* bytes-sent=[1-9]' "$dir/out"
grep -q '^client [0-9]*: frames-sent=[1-9]' "$dir/out"
grep -q '^client-removed: id=[0-9]* address=127.0.0.1:[0-9]* status=closed' "$dir/out"
grep -qx 'done' "$dir/out"
