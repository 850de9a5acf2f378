#!/bin/sh
# Install the Debian 12 packages afbus needs to build, test, benchmark and package (the last with
# scripts/build-packages.sh). Idempotent; quick when everything is present already. Needs root (or sudo).
set -eu

packages="
  build-essential g++ meson ninja-build pkg-config clang libclang-rt-14-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libexpat1-dev libsystemd-dev libdbus-1-dev libsdbus-c++-dev libsdbus-c++-bin liburing-dev
  dbus dbus-daemon dbus-bin dbus-tests dbus-broker dbus-1-doc systemd python3-dbus python3-dbusmock python3-gi libglib2.0-bin
  groff-base xz-utils
  dpkg-dev debhelper dh-dkms dkms lintian fakeroot
"

missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done

if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "install-deps: installing:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
