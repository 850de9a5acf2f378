#!/bin/sh
# guest-kernel-mode.sh BUILDDIR — runs inside the qemu guest, chrooted into the host's root filesystem
# (run-vm-tests.sh --userspace), with af_bus.ko and af_bus_dbus.ko loaded: afbus-daemon in kernel mode
# (docs/kernel-mode.md) under the build tree's test binaries. Prints one "AFBUS-TEST <name> PASS|FAIL
# <detail>" line per check; "--list BUILDDIR" prints the names.
set -u
if [ "${1:-}" = --list ]; then
    echo "kernel_mode kernel_mode_client kernel_mode_bus_semantics kernel_mode_limits kernel_mode_debian_clients"
    exit 0
fi
B=${1:?usage: guest-kernel-mode.sh BUILDDIR}
. "$(dirname "$0")/guest-gtest.sh"

# Native clients through the kernel, standard clients (busctl) on the unix socket of the same bus.
run_gtest kernel_mode test_kernel_mode
# libafbus's client suite with every bus listening on AF_BUS first: its clients connect through the kernel.
run_gtest kernel_mode_client test_client AFBUS_TEST_KERNEL_MODE=1
# What a bus must do whoever connects (malformed messages, unrequested replies, fds, Hello first), with
# native clients through the kernel and raw unix peers beside them.
run_gtest kernel_mode_bus_semantics test_bus_semantics AFBUS_TEST_KERNEL_MODE=1
run_gtest kernel_mode_limits test_limits AFBUS_TEST_KERNEL_MODE=1
# busctl, dbus-send, gdbus, dbus-monitor and python3-dbus on the unix socket (bridged into the kernel)
# against a libafbus service on AF_BUS; the monitors see the traffic between clients through the
# kernel's eavesdropper copies.
run_gtest kernel_mode_debian_clients test_debian_clients AFBUS_TEST_KERNEL_MODE=1
