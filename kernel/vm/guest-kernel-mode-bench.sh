#!/bin/sh
# guest-kernel-mode-bench.sh BUILDDIR — runs inside the qemu guest (run-vm-tests.sh --userspace), with
# af_bus.ko and af_bus_dbus.ko loaded: afbus-bench's libafbus clients against one afbus-daemon in
# kernel mode (its afbus: address), the same daemon through its unix address (broker mode), and
# dbus-daemon, side by side in one boot. Figures only (docs/performance.md, "Kernel mode").
set -u
SCENARIOS="ping fanout-10 fanout-50 payload"
if [ "${1:-}" = --list ]; then
    for s in $SCENARIOS; do echo "bench_$s" | tr - _; done
    exit 0
fi
B=${1:?usage: guest-kernel-mode-bench.sh BUILDDIR}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8
D=$(mktemp -d)
cat >"$D/bus.conf" <<CONF
<busconfig>
  <type>session</type>
  <listen>afbus:path=$D/afbus_socket</listen>
  <listen>unix:path=$D/unix_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy>
  <limit name="max_message_size">134217728</limit>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
</busconfig>
CONF
mkfifo "$D/address"
"$B/daemon/afbus-daemon" --config-file="$D/bus.conf" --nofork --print-address=3 3>"$D/address" 2>"$D/daemon.log" &
pid=$!
read -r address <"$D/address"  # blocks until the daemon prints it: no polling
kernel_entry=$(echo "$address" | tr ';' '\n' | grep '^afbus:')
unix_entry=$(echo "$address" | tr ';' '\n' | grep '^unix:')
for s in $SCENARIOS; do
    for target in "kernel-mode $kernel_entry" "broker-mode $unix_entry"; do
        set -- $target
        "$B/tools/afbus-bench" --address="$2" --daemon-pid=$pid --scenarios="$s" --repetitions=3 --duration=2 \
            2>&1 | sed "s/^/AFBUS-BENCH $1 $s: /"
    done
    "$B/tools/afbus-bench" --daemons=dbus-daemon --scenarios="$s" --repetitions=3 --duration=2 2>&1 |
        sed "s/^/AFBUS-BENCH dbus-daemon $s: /"
    echo "AFBUS-TEST bench_$(echo $s | tr - _) PASS"
done
kill $pid
