#!/bin/sh
# guest-kernel-mode-reference.sh BUILDDIR — runs inside the qemu guest, chrooted into the host's root
# filesystem (run-vm-tests.sh --userspace), with af_bus.ko and af_bus_dbus.ko loaded: the two suites
# that compare afbus-daemon in kernel mode with dbus-daemon, where every client is a standard one on the
# unix socket, bridged into the kernel (docs/kernel-mode.md). Prints one "AFBUS-TEST <name> PASS|FAIL
# <detail>" line per check; "--list BUILDDIR" prints the names.
set -u
if [ "${1:-}" = --list ]; then
    echo "kernel_mode_policy_differential kernel_mode_reference"
    exit 0
fi
B=${1:?usage: guest-kernel-mode-reference.sh BUILDDIR}
. "$(dirname "$0")/guest-gtest.sh"

# The policy differential test (every <allow>/<deny> attribute, Debian's system bus policy) with
# afbus-daemon in kernel mode: its agents, on the unix socket, are bridged into the kernel, which
# enforces the policy between them; dbus-daemon is the reference, as on the host.
# Debian's system bus policy (its own scenario, two thirds of the test's time; five minutes under TCG)
# is left to a run by hand: AFBUS_TEST_KERNEL_MODE=1 build/test/test_policy_differential in the guest.
run_gtest kernel_mode_policy_differential test_policy_differential AFBUS_TEST_KERNEL_MODE=1 \
    GTEST_FILTER='-*debian_system_bus*'
# Debian's dbus-tests (the reference suite) against afbus-daemon in kernel mode: every bus the suite
# starts also listens on AF_BUS (test/reference/kernel-mode-daemon.sh), and its clients (libdbus and
# GDBus, on the unix socket) are bridged into the kernel and talk to each other through it.
t0=$(uptime_s)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
if out=$(TMPDIR=/tmp AFBUS_KERNEL_MODE_DAEMON="$B/daemon/afbus-daemon" \
        "$SRC/test/reference/run-dbus-tests.sh" "$SRC/test/reference/kernel-mode-daemon.sh" 2>&1); then
    echo "AFBUS-TEST kernel_mode_reference PASS $(echo "$out" | tail -n1), in $(elapsed "$t0") s"
else
    echo "$out" | grep -E '^(FAIL|MISSING)'
    echo "AFBUS-TEST kernel_mode_reference FAIL $(echo "$out" | tail -n1)"
fi
