#!/bin/sh
# Connection churn against tlsframesink: CYCLES connect/handshake/receive/
# disconnect cycles (clean close, RST mid-frame, RST mid-handshake, kill -9 of
# a client process mid-frame), then checks that the server's file descriptors
# and threads are back at their baseline and RSS grew by less than the slack.
#
#   tests/stress/churn.sh [CYCLES] [extra churn options: --workers W --kill-every K --rss-slack-kb KB]
#
# Uses the build in $BUILD_DIR (default build); prints one line of figures and
# exits with the churn program's status (0 = pass).
set -eu
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
CYCLES=${1:-5000}
[ $# -gt 0 ] && shift
if [ ! -x "$BUILD_DIR/tests/churn" ]; then
  echo "churn.sh: $BUILD_DIR/tests/churn not built (meson setup $BUILD_DIR -Dtests=enabled && meson compile -C $BUILD_DIR)" >&2
  exit 2
fi
export GST_PLUGIN_PATH="$PWD/$BUILD_DIR/plugins/tlsframe"
export GST_REGISTRY_1_0="$PWD/$BUILD_DIR/tests/registry.bin"
export GST_REGISTRY_FORK=no
export GST_DEBUG="${GST_DEBUG:-tlsframe*:1,*:1}"
exec "$BUILD_DIR/tests/churn" --cycles "$CYCLES" "$@"
