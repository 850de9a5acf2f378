#!/bin/sh
# The main job: install what afbus needs, build it, and run a session bus (afbus-daemon --session, on the
# default session configuration; a private socket under /tmp, never the machine's own bus). It prints the
# bus's address, shows a libafbus client using it (afbus-demo), and then serves until Ctrl-C.
# Options: --demo-only  stop the bus after the demo.
set -eu
cd "$(dirname "$0")/.."
demo_only=false
[ "${1:-}" = "--demo-only" ] && demo_only=true

scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build -Dwerror=true >/dev/null
ninja -C build

dir=$(mktemp -d /tmp/afbus-run-XXXXXX)
mkfifo "$dir/address"
build/daemon/afbus-daemon --session --nofork --print-address=3 3>"$dir/address" &
bus=$!
trap 'kill $bus 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
read -r address <"$dir/address"
echo "DBUS_SESSION_BUS_ADDRESS=$address"
build/tools/afbus-demo --address="$address"
if ! $demo_only; then
  echo "afbus-daemon (pid $bus) is serving; Ctrl-C stops it"
  wait $bus
fi
