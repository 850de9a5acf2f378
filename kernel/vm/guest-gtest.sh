# guest-gtest.sh — sourced by the kernel-mode guest scripts (run-vm-tests.sh --userspace) after they set
# B (the build tree): the guest's environment and run_gtest, which runs one of the build tree's gtest
# programs against afbus-daemon and prints its "AFBUS-TEST <name> PASS|FAIL <detail>" line.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8
uptime_s() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }

run_gtest() {  # name binary [VAR=value...]
    name=$1 binary=$2
    shift 2
    t0=$(uptime_s)
    if out=$(env AFBUS_TEST_DAEMON="$B/daemon/afbus-daemon" "$@" "$B/test/$binary" 2>&1); then
        skipped=$(echo "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) tests*, listed below:/\1/p')
        echo "AFBUS-TEST $name PASS $(echo "$out" | grep -a -E '^\[  PASSED' | head -1) ${skipped:-0} skipped, in $(elapsed "$t0") s"
    else
        echo "$out" | grep -a -B3 -A15 'Failure' | head -80
        echo "AFBUS-TEST $name FAIL $(echo "$out" | grep -a -E 'FAILED' | head -1)"
    fi
}
