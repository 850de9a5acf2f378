#!/bin/sh
# guest-kernel-mode-bench.sh BUILDDIR — runs inside the qemu guest (run-vm-tests.sh --userspace), with
# af_bus.ko and af_bus_dbus.ko loaded: afbus-bench with libafbus clients against dbus-daemon, dbus-broker,
# afbus-daemon in broker mode, and afbus-daemon in kernel mode with the clients on AF_BUS (afbus-kernel)
# and bridged from its unix socket (afbus-bridged), interleaved in one boot (docs/performance.md, "Kernel
# mode"), then fanout again with batched emits. Figures only: one "AFBUS-TEST kernel_mode_bench PASS" line
# once the tables are printed.
set -u
if [ "${1:-}" = --list ]; then
    echo "kernel_mode_bench"
    exit 0
fi
B=${1:?usage: guest-kernel-mode-bench.sh BUILDDIR}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 TMPDIR=/tmp
# afbus-bench gives dbus-broker-launch a private /run/systemd (a mount point: /run is a fresh tmpfs here).
mkdir -p /run/systemd
if "$B/tools/afbus-bench" --client=libafbus --afbus-daemon="$B/daemon/afbus-daemon" \
        --daemons=dbus-daemon,dbus-broker,afbus-daemon,afbus-kernel,afbus-bridged \
        --scenarios=ping,fanout,payload --fanout=10,50 --repetitions=3 --duration=2 --timeout=30 2>&1 &&
    # The same fanout with the emitter sending each burst of 64 signals as one batch
    # (Connection::batch_sends: one sendmmsg on AF_BUS, one wake-up per subscriber per batch).
    "$B/tools/afbus-bench" --client=libafbus --afbus-daemon="$B/daemon/afbus-daemon" \
        --daemons=dbus-daemon,dbus-broker,afbus-daemon,afbus-kernel,afbus-bridged \
        --scenarios=fanout --fanout=10,50 --batch-emits=1 --repetitions=3 --duration=2 --timeout=30 2>&1; then
    echo "AFBUS-TEST kernel_mode_bench PASS"
else
    echo "AFBUS-TEST kernel_mode_bench FAIL afbus-bench failed"
fi
