#!/bin/sh
# guest-kernel-mode-integration.sh BUILDDIR — runs inside the qemu guest, chrooted into the host's root
# filesystem (run-vm-tests.sh --userspace), with af_bus.ko and af_bus_dbus.ko loaded: the integration
# suites that guest-kernel-mode.sh does not run, against afbus-daemon in kernel mode
# (AFBUS_TEST_KERNEL_MODE=1: each bus listens on AF_BUS first, so libafbus clients connect through the
# kernel, and standard clients and raw peers take the unix socket and are bridged). Prints one
# "AFBUS-TEST <name> PASS|FAIL <detail>" line per suite; "--list BUILDDIR" prints the names.
set -u -f  # -f: the GTEST_FILTER patterns below are words, not globs
SUITES="proxy typed_object match_rule_reference activation unix_fd_index afbusctl security_checks
fault_injection connection_flood quota_blame sdbus_examples afbus_examples xml2cpp_calculator soak
kernel_out_of_memory"
if [ "${1:-}" = --list ]; then
    for s in $SUITES; do printf 'kernel_mode_%s ' "$s"; done
    echo
    exit 0
fi
B=${1:?usage: guest-kernel-mode-integration.sh BUILDDIR}
. "$(dirname "$0")/guest-gtest.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)

for s in $SUITES; do
    case $s in
        typed_object) extra="GDBUS_CALCULATOR=$SRC/test/integration/gdbus_calculator.py" ;;
        activation) extra="ACTIVATABLE_SERVICE=$B/test/activatable-service" ;;
        # What kernel mode changes for afbusctl: calls, signals, monitoring (over the unix entry of the
        # address) and credentials; the rest (introspection, completion, options) is the same code as on
        # the host, and costs two minutes here.
        afbusctl) extra="AFBUSCTL=$B/tools/afbusctl/afbusctl AFBUSCTL_COMPLETION=$SRC/tools/afbusctl/completion/afbusctl
                         GTEST_FILTER=*Call*:*Emit*:*Wait*:*Monitor*:*Capture*:*List*:*Status*" ;;
        fault_injection) extra="AFBUS_FAULT_SHIM=$B/test/libafbus-fault-shim.so" ;;
        sdbus_examples|afbus_examples)
            extra="CALCULATOR_SERVICE=$B/examples/calculator-service CALCULATOR_CLIENT=$B/examples/calculator-client
                   AFBUS_CALCULATOR_SERVICE=$B/examples/afbus-calculator-service
                   AFBUS_CALCULATOR_CLIENT=$B/examples/afbus-calculator-client" ;;
        *) extra="" ;;
    esac
    if [ ! -x "$B/test/test_$s" ]; then
        echo "AFBUS-TEST kernel_mode_$s SKIP not built (its dependency is not installed)"
        continue
    fi
    # shellcheck disable=SC2086
    run_gtest "kernel_mode_$s" "test_$s" AFBUS_TEST_KERNEL_MODE=1 LD_LIBRARY_PATH="$B/lib:$B/test" $extra
done
