#!/bin/sh
# The daemon's system calls per routed message, by kind, during afbus-bench's ping scenario (docs/
# performance.md, issue 18). afbus-bench starts the daemon; as soon as it exists, strace attaches to it and
# records every system call with its data; when the scenario ends (and the daemon with it) the calls are
# counted by name, EAGAIN failures apart. The divisor is the number of Ping calls the daemon received
# (counted in the trace, so it does not matter how soon strace attached): each is two routed messages, the
# call and its reply. Under strace everything is much slower; only the counts mean something.
#
#   tools/bench/syscalls-per-message.sh DAEMON [CLIENT]
#   DAEMON: dbus-daemon, dbus-broker or afbus-daemon; CLIENT: libafbus (default) or sd-bus
#   BUILD=build PIN=1 DURATION=2 (afbus-daemon is $BUILD/daemon/afbus-daemon)
#
# Needs strace and pgrep, and root for dbus-broker (as afbus-bench does).
set -eu
BUILD=${BUILD:-build}
PIN=${PIN:-1}
DURATION=${DURATION:-2}
daemon=$1
client=${2:-libafbus}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$BUILD/tools/afbus-bench" --daemons="$daemon" --afbus-daemon="$BUILD/daemon/afbus-daemon" --client="$client" \
    --scenarios=ping --repetitions=1 --duration="$DURATION" --pin="$PIN" --json="$work/bench.jsonl" \
    >"$work/table" 2>"$work/log" &
bench=$!
# The process doing the bus's work: the bench's child, or for dbus-broker the launcher's child.
pid=
while [ -z "$pid" ] && kill -0 "$bench" 2>/dev/null; do
    case $daemon in
    dbus-broker)
        launcher=$(pgrep -P "$bench" -x dbus-broker-lau || true)
        [ -z "$launcher" ] || pid=$(pgrep -P "$launcher" -x dbus-broker || true)
        ;;
    *) pid=$(pgrep -P "$bench" -x "$daemon" || true) ;;
    esac
done
[ -n "$pid" ] || { echo "never saw $daemon start" >&2; cat "$work/log" >&2; exit 1; }
strace -f -s 300 -p "$pid" -o "$work/trace" 2>/dev/null &
tracer=$!
wait "$bench" || { echo "afbus-bench failed" >&2; cat "$work/log" >&2; exit 1; }
wait "$tracer" || true
awk -v daemon="$daemon" -v client="$client" '
    { sub(/^[0-9]+ +/, "") }
    /^<\.\.\./ || /^\+\+\+/ || /^---/ { next }
    match($0, /^[a-z_0-9]+\(/) {
        name = substr($0, 1, RLENGTH - 1)
        if ($0 ~ /= -1 EAGAIN/) name = name " (EAGAIN)"
        count[name]++
        if ((name == "recvmsg" || name == "read" || name == "recvfrom") && index($0, "Ping") > 0) pings++
    }
    END {
        if (pings == 0) { print "no Ping call in the trace" > "/dev/stderr"; exit 1 }
        printf "%s, %s clients: %d Ping calls, %d routed messages; system calls per routed message:\n",
               daemon, client, pings, 2 * pings
        for (name in count)
            if (count[name] / (2 * pings) >= 0.005) printf "  %-20s %5.2f\n", name, count[name] / (2 * pings)
    }' "$work/trace"
