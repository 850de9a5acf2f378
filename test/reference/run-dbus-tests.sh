#!/bin/sh
# run-dbus-tests.sh DAEMON [TEST...] — Debian's dbus-tests (the reference suite of dbus 1.14) against a bus
# daemon: each GLib subtest in its own process with a timeout. Prints one line per subtest and a summary
# "reference: N passed, M failed, K skipped". Default tests: the ones that start a daemon.
# A test that is not in the installed tests is looked for in the debug build's copy (dbus-tests ships it
# too): test-dbus-launch-eval.sh is only there, because it needs the dbus-launch built with embedded tests,
# the one that runs $DBUS_TEST_DAEMON instead of /usr/bin/dbus-daemon.
# With KNOWN_FAILURES=FILE (lines "<test> <subtest>  # reason"), the subtests listed are not run and are
# counted apart, so that the suite can gate CI while issue work is still open.
set -u
daemon=$1
shift
tests=${*:-"test-dbus-daemon test-dbus-daemon-eavesdrop test-header-fields test-monitor test-uid-permissions test-sd-activation test-containers test-dbus-daemon-fork.sh test-dbus-launch-eval.sh"}
export DBUS_TEST_DAEMON="$daemon"
installed=/usr/lib/dbus-1.0/installed-tests/dbus
debug_build=/usr/lib/dbus-1.0/debug-build
# Not /usr/bin/dbus-launch (dbus-x11): that one always runs /usr/bin/dbus-daemon, whatever the daemon.
export DBUS_TEST_DBUS_LAUNCH=$debug_build/bin/dbus-launch
pass=0 fail=0 skip=0 known=0
is_known() {  # test subtest
  [ -n "${KNOWN_FAILURES:-}" ] && grep -q "^$1 $2 " "$KNOWN_FAILURES"
}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for t in $tests; do
  dir=$installed
  [ -x "$dir/$t" ] || dir=$debug_build/libexec/installed-tests/dbus
  bin="$dir/$t"
  [ -x "$bin" ] || { echo "MISSING $t"; fail=$((fail + 1)); continue; }
  # Each test reads its data from next to itself, as its own .test file in /usr/share/installed-tests says.
  export DBUS_TEST_EXEC="$dir" DBUS_TEST_DATA="$dir/data"
  case "$t" in
    *.sh)
      # A TAP shell script: every "ok"/"not ok" line is a subtest; an early exit fails the plan.
      timeout 120 sh "$bin" >"$out" 2>/dev/null
      rc=$?
      planned=$(sed -n 's/^1\.\.\([0-9]*\).*/\1/p' "$out" | head -n1)
      ran=0
      while read -r line; do
        case "$line" in
          "not ok"*) fail=$((fail + 1)); ran=$((ran + 1)); echo "FAIL $t: $line" ;;
          "ok "*"# SKIP"*) skip=$((skip + 1)); ran=$((ran + 1)); echo "SKIP $t: $line" ;;
          "ok "*) pass=$((pass + 1)); ran=$((ran + 1)); echo "PASS $t: $line" ;;
        esac
      done <"$out"
      if [ "$rc" -ne 0 ] || [ "${planned:-0}" -ne "$ran" ]; then
        missing=$(( ${planned:-1} - ran )); [ "$missing" -gt 0 ] || missing=1
        fail=$((fail + missing)); echo "FAIL $t: exit status $rc after $ran of ${planned:-?} subtests"
      fi
      continue ;;
  esac
  for sub in $("$bin" -l 2>/dev/null | grep '^/'); do
    if is_known "$t" "$sub"; then known=$((known + 1)); echo "KNOWN $t $sub"; continue; fi
    if timeout 60 "$bin" -p "$sub" >"$out" 2>&1; then
      if grep -q '^ok .*# SKIP' "$out"; then skip=$((skip + 1)); echo "SKIP $t $sub"
      else pass=$((pass + 1)); echo "PASS $t $sub"; fi
    else
      fail=$((fail + 1))
      echo "FAIL $t $sub: $(grep -m1 -E 'not ok|Bail|ERROR|assert' "$out" | cut -c1-160)"
    fi
  done
done
echo "reference: $pass passed, $fail failed, $skip skipped${KNOWN_FAILURES:+, $known known failures not run}"
[ "$fail" -eq 0 ]
