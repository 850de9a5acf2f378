#!/bin/sh
# kernel-mode-daemon.sh — afbus-daemon in kernel mode for a suite that starts "a dbus-daemon" with a
# configuration of its own (Debian's dbus-tests: DBUS_TEST_DAEMON=this script). It runs
# $AFBUS_KERNEL_MODE_DAEMON with the same arguments, but the configuration each one names is wrapped in
# one that also listens on an AF_BUS bus first (an afbus: listener in a fresh directory under $TMPDIR):
# every client of the suite then connects to the unix socket, is bridged into the kernel, and talks to
# the others through it (docs/kernel-mode.md). Needs af_bus.ko and af_bus_dbus.ko loaded (where they
# are not, afbus-daemon warns and serves in broker mode, and the suite tests that instead).
set -u
daemon=${AFBUS_KERNEL_MODE_DAEMON:?set AFBUS_KERNEL_MODE_DAEMON to afbus-daemon}

wrap() {  # configuration file -> the wrapping one's path
    dir=$(mktemp -d "${TMPDIR:-/tmp}/afbus-kernel-mode.XXXXXX") || exit 1
    cat >"$dir/kernel-mode.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>afbus:path=$dir/afbus_socket</listen>
  <include>$1</include>
</busconfig>
CONF
    echo "$dir/kernel-mode.conf"
}

n=$#
next_is_config=false
for a in "$@"; do
    if $next_is_config; then
        a=$(wrap "$a")
        next_is_config=false
    else
        case $a in
            --config-file=*) a="--config-file=$(wrap "${a#--config-file=}")" ;;
            --config-file) next_is_config=true ;;
            --session) a="--config-file=$(wrap /usr/share/dbus-1/session.conf)" ;;
            --system) a="--config-file=$(wrap /usr/share/dbus-1/system.conf)" ;;
        esac
    fi
    set -- "$@" "$a"
done
shift "$n"
exec "$daemon" "$@"
