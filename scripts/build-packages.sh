#!/bin/sh
# The Debian packages (debian/, docs/packaging.md), built and checked as CI does it (run-tests.sh's last
# phase):
#   1. copies the checkout (tracked and untracked files, not ignored ones: no build directories) to a
#      directory under /tmp, so the checkout stays clean, and builds there with
#      dpkg-buildpackage -b -us -uc, every compiler warning an error (AFBUS_WERROR=1, read by
#      debian/rules)
#   2. lintian --fail-on error on the result
#   3. installs the six packages (apt-get, without recommends: dkms would pull a kernel's headers; DKMS
#      builds the modules for the kernels whose headers are installed, if any, and skips the rest)
#   4. runs afbus-daemon, afbusctl and afbus-xml2cpp --version, and systemd-analyze verify on the installed
#      system and user units; generates bindings with afbus-xml2cpp and compiles them into a libafbus
#      client built with pkg-config's flags and run; checks that
#      no unit was enabled (installing must not take over the bus) and that DKMS installed both modules
#      for every installed 6.x kernel with headers
#   5. purges the packages again (which also runs DKMS's removal), so the machine is as it was
# Ends with "packages: PASS" or "packages: FAIL: <step>", exits 0 or 1. Needs root (it installs
# packages; started as a user, it runs itself again through sudo) and the tools scripts/install-deps.sh
# installs.
#   scripts/build-packages.sh [DIR]    build in DIR, which must not exist and is kept; by default a new
#                                      /tmp/afbus-packages.*, removed after a pass, kept after a failure
#   DEB_BUILD_OPTIONS=parallel=1 ...   the build's parallelism (default: parallel=$(nproc))
#   AFBUS_KEEP_PACKAGES=1 ...          leave the packages installed (step 5 skipped)
set -u
cd "$(dirname "$0")/.." || exit 1
if [ "$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=PATH,DEB_BUILD_OPTIONS,AFBUS_KEEP_PACKAGES "$0" "$@"
fi

fail() { echo "packages: FAIL: $*"; exit 1; }
step() { echo "=== $(date +%T) packages: $*"; }

version=$(dpkg-parsechangelog -S Version) || fail "debian/changelog"
work=${1:-$(mktemp -d /tmp/afbus-packages.XXXXXX)}
[ -n "${1:-}" ] && { mkdir "$work" || fail "$work exists"; }
src="$work/afbus-$version"
mkdir "$src" || fail "mkdir $src"

step "copying the checkout to $src"
# (--ignore-failed-read: a tracked file deleted in the checkout is left out, as it would be committed.)
git ls-files -z --cached --others --exclude-standard |
  tar --null -T - --ignore-failed-read -cf - | tar -C "$src" -xf - || fail "copying the checkout"

step "dpkg-buildpackage -b -us -uc"
export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-parallel=$(nproc)}"
(cd "$src" && AFBUS_WERROR=1 dpkg-buildpackage -b -us -uc) || fail "dpkg-buildpackage"
changes="$work/afbus_${version}_$(dpkg --print-architecture).changes"
[ -f "$changes" ] || fail "no $changes"

step "lintian --fail-on error"
lintian --fail-on error "$changes" || fail "lintian"

packages="afbus-daemon afbusctl libafbus0 libafbus-dev afbus-xml2cpp afbus-dkms"
debs=""
for p in $packages; do
  deb=$(ls "$work/${p}_${version}_"*.deb 2>/dev/null) || fail "no $p package"
  debs="$debs $deb"
done

step "installing$debs"
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $debs || fail "apt-get install"

status=0
check() {  # description command...
  d=$1; shift
  echo "+ $*"
  "$@" || { echo "packages: check failed: $d"; status=1; }
}
step "checking the installed packages"
check "afbus-daemon --version" afbus-daemon --version
check "afbusctl --version" afbusctl --version
check "afbus-xml2cpp --version" afbus-xml2cpp --version
check "the units' Documentation= pages" man -w afbus-daemon
check "system units" systemd-analyze verify /lib/systemd/system/afbus.service /lib/systemd/system/afbus.socket
# The user manager needs a runtime directory, which a root shell without a login session lacks.
runtime=$(mktemp -d /tmp/afbus-xdg.XXXXXX)
check "user units" env XDG_RUNTIME_DIR="$runtime" \
  systemd-analyze --user verify /usr/lib/systemd/user/afbus.service /usr/lib/systemd/user/afbus.socket
rm -rf "$runtime"
check "pkg-config libafbus" pkg-config --exact-version="${version%-*}" libafbus
# libafbus-dev is usable as README says: the installed headers alone (no internal ones), pkg-config's
# flags and the shared library; with bindings afbus-xml2cpp generated.
client=$(mktemp -d /tmp/afbus-client.XXXXXX)
cat >"$client/calc.xml" <<'XML'
<node>
  <interface name="org.example.Calc">
    <method name="Add"><arg name="a" type="d" direction="in"/><arg name="b" type="d" direction="in"/>
      <arg name="sum" type="d" direction="out"/></method>
    <signal name="Computed"><arg name="result" type="d"/></signal>
    <property name="Memory" type="d" access="readwrite"/>
  </interface>
</node>
XML
check "afbus-xml2cpp" afbus-xml2cpp --proxy="$client/calc-proxy.hpp" --adaptor="$client/calc-adaptor.hpp" \
  "$client/calc.xml"
cat >"$client/client.cpp" <<'CPP'
#include <afbus/connection.hpp>
#include <afbus/proxy.hpp>
#include <afbus/types.hpp>
#include "calc-adaptor.hpp"
#include "calc-proxy.hpp"
int main() {
    auto call = afbus::MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                   "org.freedesktop.DBus", "GetId");
    return call.build() ? 0 : 1;
}
CPP
check "a libafbus client" sh -c "c++ -std=c++20 -Wall -Wextra -Werror -o '$client/client' '$client/client.cpp' \
  \$(pkg-config --cflags --libs libafbus) && '$client/client'"
rm -rf "$client"
# Installing must not have taken over the bus: nothing enabled, dbus.service not aliased to afbus.
check "units not enabled" sh -c '! ls -l /etc/systemd/system/dbus.service /etc/systemd/user/dbus.service \
  /etc/systemd/system/*.wants /etc/systemd/user/*.wants 2>/dev/null | grep afbus'
# DKMS built and installed both modules for every kernel whose headers are installed (dkms.conf limits
# them to 6.x) and skipped the others, such as a container's or VM's host kernel.
for build in /lib/modules/6.*/build/include; do
  [ -e "$build" ] || continue
  kernel=${build#/lib/modules/}; kernel=${kernel%/build/include}
  check "DKMS modules for $kernel" sh -c "dkms status -m afbus -k '$kernel' | grep -q ': installed\$' &&
    modinfo -k '$kernel' -n af_bus && modinfo -k '$kernel' -n af_bus_dbus"
done
dkms status -m afbus

if [ "${AFBUS_KEEP_PACKAGES:-}" != 1 ]; then
  step "purging the packages"
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $packages || { echo "packages: apt-get purge failed"; status=1; }
fi

[ "$status" -eq 0 ] || fail "checks of the installed packages"
if [ -n "${1:-}" ]; then
  echo "packages: PASS (in $work)"
else
  rm -rf "$work"
  echo "packages: PASS"
fi
