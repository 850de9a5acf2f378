#!/bin/sh
# The full comparison of docs/performance.md from one command: every scenario, dbus-daemon, dbus-broker and
# afbus-daemon, interleaved, all processes pinned to one CPU, 5 repetitions, medians and ratios.
# afbus-daemon is $AFBUS_DAEMON, by default $BUILD/daemon/afbus-daemon when that exists; AFBUS_DAEMON=none
# leaves it out of the run (it is then reported "not available"). CLIENT=sd-bus runs every client role with
# sd-bus instead of libafbus (--client).
#
#   tools/bench/run-comparison.sh [extra afbus-bench options]
#   BUILD=build-bench PIN=1 REPS=5 JSON=afbus-bench.jsonl AFBUS_DAEMON=build/daemon/afbus-daemon ...
#   CLIENT=sd-bus tools/bench/run-comparison.sh
#
# dbus-broker is launched in a private mount namespace, so this needs root (otherwise it is reported as
# not available and the rest still runs).
set -eu
BUILD=${BUILD:-build}
PIN=${PIN:-1}
REPS=${REPS:-5}
JSON=${JSON:-afbus-bench.jsonl}
set -- --pin="$PIN" --repetitions="$REPS" --json="$JSON" "$@"
if [ -n "${CLIENT:-}" ]; then
    set -- --client="$CLIENT" "$@"
fi
if [ -z "${AFBUS_DAEMON:-}" ] && [ -x "$BUILD/daemon/afbus-daemon" ]; then
    AFBUS_DAEMON="$BUILD/daemon/afbus-daemon"
fi
if [ -n "${AFBUS_DAEMON:-}" ] && [ "$AFBUS_DAEMON" != none ]; then
    set -- --afbus-daemon="$AFBUS_DAEMON" "$@"
fi
echo "afbus-bench $*" >&2
exec "$BUILD/tools/afbus-bench" "$@"
