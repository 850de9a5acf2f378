#!/bin/bash
# run-vm-tests.sh — build af_bus.ko out of tree, boot it in a qemu (TCG) guest and run its test suite.
#
# Debian 12 packages this script installs with apt-get (once; skipped when already installed):
#   qemu-system-x86 busybox-static cpio gcc make libc6-dev
#   --kernel 6.1:  linux-headers-6.1.0-N-amd64 (N = what linux-headers-amd64 currently depends on)
#   --kernel 6.12: linux-headers-6.12.N+deb12-amd64 (N = the newest 6.12 headers package apt knows;
#                  on Debian 12 that package depends on its linux-image, which apt installs too)
#   linux-image-<that version>            (downloaded + unpacked with dpkg -x for the guest)
# apt-get update runs only when a package or the ABI cannot be found. Needs root (apt-get, the cache).
#
# Usage: run-vm-tests.sh [--kernel 6.1|6.12] [--bench|--reparse|--userspace SCRIPT] SRCDIR BUILDDIR [ARG...]
#   --kernel  which Debian 12 kernel series to build for and boot (default 6.1)
#   SRCDIR    the kernel/ directory of the source tree
#   BUILDDIR  scratch directory (module objects, programs, initramfs, guest log console.log)
#   --bench   run the benchmark program in the guest instead of the test suite
#   --reparse only re-judge BUILDDIR/console.log of an earlier run (no packages, build or boot)
#   --userspace SCRIPT
#             give the guest the host's root filesystem read-only over virtio-9p (tmpfs on /tmp, /run,
#             /var/tmp, /dev/shm), load af_bus.ko and af_bus_dbus.ko, and run "sh SCRIPT ARG..." chrooted
#             into it instead of the in-guest suite: the host's own binaries (the build tree, busctl,
#             python3, ...) run unmodified. SCRIPT prints "AFBUS-TEST <name> PASS|FAIL|SKIP <detail>"
#             lines and, run on the host with --list, the names it will report.
# Environment: AFBUS_VM_TIMEOUT (seconds, default 420), AFBUS_STRESS_SECS (default 30),
#              AFBUS_VM_TESTS (names of afbus_tests to run, space-separated; default all; the others
#              then count as failed, so this is for chasing one test, not for CI),
#              AFBUS_IMAGE_CACHE (where the unpacked linux-image is kept, default /var/cache/afbus-vm)
#              AFBUS_KDIR + AFBUS_VMLINUZ: use a kernel you built yourself (e.g. with lockdep, KASAN and
#              kmemleak; add AFBUS_VM_APPEND="kmemleak=on") instead of Debian's; no headers/image from apt
# Exit status 0 only when every expected test reported PASS (or SKIP) and the log holds no oops/BUG/WARN.
# The last line printed is "vm: N passed, M failed".
set -u -o pipefail

mode=test
reparse=0
series=6.1
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) series=${2:-}; shift 2 ;;
        --bench) mode=bench; shift ;;
        --reparse) reparse=1; shift ;;
        --userspace) mode=userspace; GUEST_SCRIPT=$(realpath "${2:?--userspace needs a script}"); shift 2 ;;
        --) shift; break ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
if [ $# -lt 2 ] || { [ $# -gt 2 ] && [ "$mode" != userspace ]; }; then
    echo "usage: $0 [--kernel 6.1|6.12] [--bench|--reparse|--userspace SCRIPT] SRCDIR BUILDDIR [ARG...]" >&2
    exit 2
fi
case "$series" in
    6.1|6.12) ;;
    *) echo "unknown kernel series '$series' (6.1 or 6.12)" >&2; exit 2 ;;
esac
SRC=$(cd "$1" && pwd)
BUILD=$(mkdir -p "$2" && cd "$2" && pwd)
shift 2
GUEST_ARGS="$*"
case "$GUEST_ARGS" in *[!A-Za-z0-9_./=+\ -]*) echo "guest arguments: plain paths and words only" >&2; exit 2 ;; esac
TIMEOUT=${AFBUS_VM_TIMEOUT:-420}
STRESS_SECS=${AFBUS_STRESS_SECS:-30}
VM_TESTS=${AFBUS_VM_TESTS:-}
case "$VM_TESTS" in *[!a-z0-9_\ ]*) echo "AFBUS_VM_TESTS: test names only" >&2; exit 2 ;; esac
CACHE=${AFBUS_IMAGE_CACHE:-/var/cache/afbus-vm}

fail() {
    echo "vm: error: $*" >&2
    echo "vm: 0 passed, 1 failed"
    exit 1
}

log() { echo "vm: $*"; }

# ---------------------------------------------------------------- verdict
# judge LOG.txt: every expected test must report PASS or SKIP, no kernel splat, no timeout.
judge() {
    local qrc=$1 passed=0 failed=0 name line expected names
    if [ "$mode" = userspace ]; then
        # shellcheck disable=SC2086
        expected=$(sh "$GUEST_SCRIPT" --list $GUEST_ARGS) || fail "$GUEST_SCRIPT --list failed"
        names="insmod hostroot $expected"
    else
        expected=$("$PROGS/afbus_tests" --list) || fail "afbus_tests --list failed"
        names="insmod $expected rmmod"
    fi
    for name in $names; do
        line=$(grep -E "^AFBUS-TEST $name (PASS|FAIL|SKIP)" "$LOG.txt" | tail -1)
        if [ -z "$line" ]; then
            echo "AFBUS-TEST $name FAIL missing from the guest log"
            failed=$((failed + 1))
        elif echo "$line" | grep -q " FAIL"; then
            echo "$line"; failed=$((failed + 1))
        else
            echo "$line"; passed=$((passed + 1))
        fi
    done
    # Kernel splats (the out-of-tree taint / signature warnings are expected and ignored).
    if grep -nE 'BUG:|Oops:|WARNING:|Call Trace|kernel BUG|possible circular locking|lockdep|general protection fault|Kernel panic|INFO: task .* blocked|refcount_t:|list_add corruption|list_del corruption|stack-protector|unreferenced object' "$LOG.txt" >"$BUILD/splats.txt"; then
        echo "vm: kernel splat in the guest log:"
        head -40 "$BUILD/splats.txt"
        failed=$((failed + 1))
    fi
    if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
        echo "vm: guest timed out after ${TIMEOUT}s (killed)"
        failed=$((failed + 1))
    fi
    if [ -n "${KVER:-}" ] && ! grep -q "AFBUS-BOOT kernel $KVER\$" "$LOG.txt"; then
        echo "vm: the guest did not boot $KVER"
        failed=$((failed + 1))
    fi
    if ! grep -q '^AFBUS-DONE' "$LOG.txt"; then
        echo "vm: guest did not reach the end of the suite"
        [ $failed -gt 0 ] || failed=1
        tail -30 "$LOG.txt"
    fi
    echo "vm: $passed passed, $failed failed"
    [ $failed -eq 0 ]
}

PROGS="$BUILD/progs"
LOG="$BUILD/console.log"
if [ $reparse -eq 1 ]; then
    tr -d '\r' <"$LOG" >"$LOG.txt"
    judge 0
    exit $?
fi

# ---------------------------------------------------------------- 1. packages
need_pkgs=()
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

if [ -n "${AFBUS_KDIR:-}" ]; then
    KDIR=$AFBUS_KDIR
    VMLINUZ=${AFBUS_VMLINUZ:?AFBUS_VMLINUZ must name the bzImage of AFBUS_KDIR}
    log "custom kernel $VMLINUZ (build tree $KDIR)"
    for p in qemu-system-x86 busybox-static cpio gcc make libc6-dev; do
        pkg_installed "$p" || need_pkgs+=("$p")
    done
    if [ ${#need_pkgs[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >"$BUILD/apt.log" 2>&1 ||
            { apt-get update -qq >>"$BUILD/apt.log" 2>&1 &&
              apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >>"$BUILD/apt.log" 2>&1; } ||
            fail "apt-get install failed"
    fi
else
    # The kernel version to test, asked from apt each run so that CI follows Debian's updates.
    # 6.1: the ABI linux-headers-amd64 depends on. 6.12: the newest linux-headers-6.12.N+deb12-amd64
    # (version sort of the package names: deterministic for a given package list).
    find_abi() {
        if [ "$series" = 6.1 ]; then
            apt-cache depends linux-headers-amd64 2>/dev/null |
                sed -n 's/.*Depends: linux-headers-\(6\.1\.0-[0-9]*\)-amd64.*/\1/p' | head -1
        else
            apt-cache search --names-only '^linux-headers-6\.12\.[0-9]+\+deb12-amd64$' 2>/dev/null |
                sed -n 's/^linux-headers-\(6\.12\.[0-9]*+deb12\)-amd64 .*/\1/p' | sort -V | tail -1
        fi
    }
    abi=$(find_abi)
    if [ -z "$abi" ]; then
        apt-get update -qq >/dev/null 2>&1 || true
        abi=$(find_abi)
    fi
    [ -n "$abi" ] || fail "cannot determine the $series kernel ABI from apt"
    KVER="$abi-amd64"
    log "kernel $KVER"

    for p in qemu-system-x86 busybox-static cpio gcc make libc6-dev "linux-headers-$KVER"; do
        pkg_installed "$p" || need_pkgs+=("$p")
    done
    if [ ${#need_pkgs[@]} -gt 0 ]; then
        log "installing ${need_pkgs[*]}"
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >"$BUILD/apt.log" 2>&1; then
            apt-get update -qq >>"$BUILD/apt.log" 2>&1
            apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >>"$BUILD/apt.log" 2>&1 ||
                { tail -20 "$BUILD/apt.log" >&2; fail "apt-get install failed"; }
        fi
    fi

    KDIR=/usr/src/linux-headers-$KVER
    [ -d "$KDIR" ] || fail "$KDIR missing"

    mkdir -p "$CACHE"
    VMLINUZ="$CACHE/$KVER/boot/vmlinuz-$KVER"
    if [ ! -f "$VMLINUZ" ]; then
        log "downloading linux-image-$KVER"
        tmpd=$(mktemp -d "$CACHE/dl.XXXXXX")
        ( cd "$tmpd" && apt-get download -qq "linux-image-$KVER" >/dev/null 2>&1 ) ||
            { apt-get update -qq >/dev/null 2>&1; ( cd "$tmpd" && apt-get download -qq "linux-image-$KVER" ); } ||
            { rm -rf "$tmpd"; fail "apt-get download linux-image-$KVER failed"; }
        rm -rf "$CACHE/$KVER.tmp"
        dpkg -x "$tmpd"/linux-image-"$KVER"_*.deb "$CACHE/$KVER.tmp" || { rm -rf "$tmpd"; fail "dpkg -x failed"; }
        rm -rf "$CACHE/$KVER"; mv "$CACHE/$KVER.tmp" "$CACHE/$KVER"; rm -rf "$tmpd"
    fi
    [ -f "$VMLINUZ" ] || fail "no $VMLINUZ"
fi

# ---------------------------------------------------------------- 2. module (out of tree)
MODBUILD="$BUILD/module"
rm -rf "$MODBUILD"; mkdir -p "$MODBUILD"
cp "$SRC"/*.c "$SRC"/Kbuild "$SRC"/tests/af_bus_hooktest.c "$MODBUILD"/
cp "$SRC"/*.h "$MODBUILD"/ 2>/dev/null || true
cp -r "$SRC/include" "$SRC/dbus" "$MODBUILD"/
log "building af_bus.ko and af_bus_dbus.ko"
if ! make -C "$KDIR" M="$MODBUILD" KCFLAGS=-Werror AFBUS_HOOKTEST=m modules >"$BUILD/module-build.log" 2>&1; then
    cat "$BUILD/module-build.log" >&2
    fail "module build failed"
fi
if grep -E 'warning:' "$BUILD/module-build.log"; then
    fail "module build produced warnings"
fi

# ---------------------------------------------------------------- 3. in-guest programs
log "building test programs"
mkdir -p "$PROGS"
CFLAGS="-O2 -g0 -Wall -Wextra -Werror -static -pthread -I$SRC/include/uapi -I$SRC/tests"
for t in afbus_tests afbus_bench; do
    gcc $CFLAGS -o "$PROGS/$t" "$SRC/tests/$t.c" >"$BUILD/$t-build.log" 2>&1 ||
        { cat "$BUILD/$t-build.log" >&2; fail "building $t failed"; }
done

# ---------------------------------------------------------------- 4. initramfs
ROOT="$BUILD/initramfs"
rm -rf "$ROOT"; mkdir -p "$ROOT"/{bin,sbin,proc,sys,dev,tmp,etc,root}
cp /bin/busybox "$ROOT/bin/busybox"
for a in sh mount insmod rmmod lsmod cat echo grep poweroff sleep mkdir ls dmesg id su chmod chown; do
    ln -sf busybox "$ROOT/bin/$a"
done
cp "$MODBUILD/af_bus.ko" "$MODBUILD/af_bus_dbus.ko" "$MODBUILD/af_bus_hooktest.ko" "$ROOT/"
cp "$PROGS/afbus_tests" "$PROGS/afbus_bench" "$ROOT/bin/"
if [ "$mode" = userspace ]; then
    [ -z "${AFBUS_KDIR:-}" ] || fail "--userspace needs a Debian kernel (its 9p modules)"
    # virtio-9p as modules, in load order (6.12 builds virtio in and compresses modules with xz).
    if [ "$series" = 6.1 ]; then
        mods="virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio virtio_pci netfs fscache 9pnet 9pnet_virtio 9p"
    else
        mods="netfs 9pnet 9pnet_virtio 9p"
    fi
    mkdir -p "$ROOT/mods"
    for m in $mods; do
        f=$(find "$CACHE/$KVER/lib/modules/$KVER/kernel" -name "$m.ko" -o -name "$m.ko.xz" | head -1)
        [ -n "$f" ] || fail "no $m module in linux-image-$KVER"
        case "$f" in
            *.xz) xz -dc "$f" >"$ROOT/mods/$m.ko" || fail "cannot decompress $f" ;;
            *) cp "$f" "$ROOT/mods/$m.ko" ;;
        esac
        echo "$m" >>"$ROOT/mods/order"
    done
    for a in chroot cut; do ln -sf busybox "$ROOT/bin/$a"; done
    printf '%s\n' "$GUEST_SCRIPT $GUEST_ARGS" >"$ROOT/guest-command"
fi
echo 'root:x:0:0:root:/root:/bin/sh' >"$ROOT/etc/passwd"
echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/sh' >>"$ROOT/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOT/etc/group"
sed -e "s/@MODE@/$mode/" -e "s/@STRESS_SECS@/$STRESS_SECS/" -e "s/@TESTS@/$VM_TESTS/" "$SRC/vm/init.in" >"$ROOT/init"
chmod 755 "$ROOT/init"
( cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1 ) >"$BUILD/initrd.gz" || fail "cpio failed"

# ---------------------------------------------------------------- 5. boot
log "booting guest (timeout ${TIMEOUT}s, log in $LOG)"
qemu_extra=()
mem=1024
if [ "$mode" = userspace ]; then
    qemu_extra=(-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap)
    mem=2048
fi
timeout --kill-after=10 "$TIMEOUT" qemu-system-x86_64 -accel tcg -smp 2 -m "$mem" -kernel "$VMLINUZ" \
    -initrd "$BUILD/initrd.gz" -append "console=ttyS0 quiet panic=-1 oops=panic ${AFBUS_VM_APPEND:-}" \
    -nographic -no-reboot -monitor none "${qemu_extra[@]}" </dev/null >"$LOG" 2>&1
qrc=$?
tr -d '\r' <"$LOG" >"$LOG.txt"

if [ "$mode" = bench ]; then
    grep '^AFBUS-BENCH' "$LOG.txt"
    # a bench that dies (AFBUS-BENCH error) measured nothing after that point
    if grep -q '^AFBUS-BENCH done' "$LOG.txt" && ! grep -q '^AFBUS-BENCH error' "$LOG.txt"; then echo "vm: 1 passed, 0 failed"; exit 0; fi
    echo "vm: 0 passed, 1 failed"; exit 1
fi

judge $qrc
exit $?
