#!/bin/sh
# The main job: install what afbus needs, build it, start a session bus on a private socket (never the
# machine's own), print its address, and show libafbus talking to it.
#
# Until afbus-daemon lands (issue 3) the bus is Debian's dbus-daemon with its default session config and
# the job is afbus-demo; then this script starts afbus-daemon --session instead.
# Options: --keep  leave the bus running in the foreground after the demo (Ctrl-C stops it).
set -eu
cd "$(dirname "$0")/.."
keep=false
[ "${1:-}" = "--keep" ] && keep=true

scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build

dir=$(mktemp -d /tmp/afbus-run-XXXXXX)
mkfifo "$dir/address"
dbus-daemon --session --nofork --print-address=3 --address="unix:dir=$dir" 3>"$dir/address" &
bus=$!
trap 'kill $bus 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
read -r address <"$dir/address"
echo "session bus: $address"
build/tools/afbus-demo --address="$address"
if $keep; then
  echo "DBUS_SESSION_BUS_ADDRESS=$address  (Ctrl-C stops the bus)"
  wait $bus
fi
