#!/bin/sh
# guest-userspace.sh BUILDDIR — runs inside the qemu guest, chrooted into the host's root filesystem
# (run-vm-tests.sh --userspace): shows that the host's own programs work there with af_bus.ko and
# af_bus_dbus.ko loaded, and measures what running them under TCG costs. Prints one
# "AFBUS-TEST <name> PASS|FAIL|SKIP <detail>" line per check; "--list BUILDDIR" prints the names.
set -u
if [ "${1:-}" = --list ]; then
    echo "tools af_bus_socket process_cost integration_client standard_clients"
    exit 0
fi
B=${1:?usage: guest-userspace.sh BUILDDIR}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8
uptime_s() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }

# The build tree and the distribution's tools run unmodified.
if v=$("$B/daemon/afbus-daemon" --version 2>&1) && busctl --version >/dev/null 2>&1 &&
   python3 -c 'import dbus, gi' 2>/dev/null && dbus-daemon --version >/dev/null 2>&1; then
    echo "AFBUS-TEST tools PASS $(echo "$v" | head -1); busctl, dbus-daemon, python3-dbus, gi"
else
    echo "AFBUS-TEST tools FAIL $(echo "$v" | head -1)"
fi

# A D-Bus AF_BUS socket from a host program, with the family number the module published.
if out=$(python3 - 2>&1 <<'PY'
import socket
family = int(open("/sys/module/af_bus/parameters/family").read())
s = socket.socket(family, socket.SOCK_SEQPACKET, 1)  # BUS_PROTO_DBUS
print(f"family {family}, fd {s.fileno()}")
PY
); then
    echo "AFBUS-TEST af_bus_socket PASS $out"
else
    echo "AFBUS-TEST af_bus_socket FAIL $out"
fi

# What a process costs here: fork + exec of a dynamically linked program from 9p.
t0=$(uptime_s)
i=0
while [ $i -lt 50 ]; do /bin/true; i=$((i + 1)); done
per=$(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", (b - a) * 1000 / 50 }')
echo "AFBUS-TEST process_cost PASS ${per} ms per fork+exec of /bin/true"

# A gtest binary of the build tree against afbus-daemon in broker mode, as on the host.
run_gtest() {  # name binary
    t0=$(uptime_s)
    if out=$(AFBUS_TEST_DAEMON="$B/daemon/afbus-daemon" "$B/test/$2" 2>&1); then
        echo "AFBUS-TEST $1 PASS $(echo "$out" | grep -E '^\[  PASSED' | head -1) in $(elapsed "$t0") s"
    else
        echo "$out" | grep -B3 -A15 'Failure' | head -80
        echo "AFBUS-TEST $1 FAIL $(echo "$out" | grep -E 'FAILED' | head -1)"
    fi
}
run_gtest integration_client test_client
# busctl, dbus-send, dbus-monitor, gdbus and python3-dbus against afbus-daemon.
run_gtest standard_clients test_debian_clients
