#!/bin/sh
# The whole test suite, as CI runs it:
#   1. the normal build: what the qemu guests run (af_bus.ko's suite; afbus-daemon and the integration
#      programs in the guest, in kernel mode and against Debian's dbus-tests), and the Google Benchmark
#      programs compiled
#   2. the AddressSanitizer + UndefinedBehaviorSanitizer build of everything: unit, integration and
#      reference (Debian's dbus-tests against afbus-daemon) tests (at -O1 with line tables only, -g1: that
#      is all ASan's reports need, and it compiles in half the time of -O2 -g)
#   3. the clang build of the libFuzzer targets (only they and what they link), each run for
#      FUZZ_SECONDS (default 20) from its corpus
#   4. the Debian packages (scripts/build-packages.sh, docs/packaging.md): dpkg-buildpackage in a copy of
#      the tree (what a distribution builds: -O2, NDEBUG, no tests), lintian, the packages installed and
#      their binaries and units checked, then purged; one test in the count below
# Warnings are errors in all of these (-Dwerror=true; for the packages AFBUS_WERROR=1); the project's
# default_options and debian/rules leave them warnings, so that a newer compiler's new warning never
# breaks a distribution's build.
# Ends with the failed tests, each with the end of its output, and one line "N passed, M failed".
# Needs root: it installs packages, runs clients as other users (the policy differential test) and the
# reference suite; started as a user, it runs itself again through sudo.
set -u
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=PATH,FUZZ_SECONDS,AFBUS_VM_TIMEOUT,AFBUS_STRESS_SECS "$0" "$@"
fi
scripts/install-deps.sh || exit 1

status=0
logs=""

run_suites() {  # build-dir meson-setup-args... -- suites...
  # Builds everything, or with ONLY_WHAT_RUNS=1 only what the suites' tests run (their programs and
  # declared depends) and, with WITH_BENCHMARKS=1, the Google Benchmark programs; then runs the suites.
  dir=$1; shift
  args=""
  while [ "$1" != "--" ]; do args="$args $1"; shift; done
  shift
  echo "=== $(date +%T) $dir:$args: $*"
  if [ ! -f "$dir/build.ninja" ]; then
    # shellcheck disable=SC2086
    meson setup "$dir" -Dwerror=true $args || { status=1; return; }
  fi
  targets=""
  if [ "${ONLY_WHAT_RUNS:-0}" = 1 ]; then
    # The targets are read from the build files: bring them up to date first (an existing build directory
    # may predate a test).
    ninja -C "$dir" build.ninja >/dev/null || { status=1; return; }
    targets=$( (meson introspect "$dir" --targets; meson introspect "$dir" --tests;
                meson introspect "$dir" --benchmarks) | python3 -c '
import json, sys
targets, tests, benchmarks = (json.loads(line) for line in sys.stdin)
suites = set(sys.argv[1].split())
wanted = {d for t in tests if {s.split(":")[-1] for s in t["suite"]} & suites for d in t["depends"]}
if sys.argv[2] == "1":
    wanted |= {d for b in benchmarks for d in b["depends"]}
print(" ".join(f for t in targets if t["id"] in wanted for f in t["filename"]))
  ' "$*" "${WITH_BENCHMARKS:-0}" | sed "s|$PWD/$dir/||g")
    [ -n "$targets" ] || { echo "no test of $* in $dir"; status=1; return; }
  fi
  # shellcheck disable=SC2086
  ninja -C "$dir" $targets || { status=1; return; }
  suites=""
  for s in "$@"; do suites="$suites --suite $s"; done
  # (--no-rebuild: meson test would otherwise build everything)
  # shellcheck disable=SC2086
  meson test -C "$dir" --no-rebuild --print-errorlogs $suites || status=1
  logs="$logs $dir/meson-logs/testlog.json"
}

# The unit, integration and reference suites run once, in the sanitizer build, which builds everything
# and checks more; the normal build compiles and runs only what the qemu guests run (the daemon at
# -O2, as users get it, and the guests' test programs) and the Google Benchmark programs, which no other
# build compiles. Running those suites in both builds compiled every test program twice.
ONLY_WHAT_RUNS=1 WITH_BENCHMARKS=1 run_suites build -- vm
run_suites build-asan -Dsanitize=true -Doptimization=1 -Dcpp_args=-g1 -Dkernel_tests=disabled -Dbenchmarks=disabled \
  -- unit integration reference
export CC=clang CXX=clang++  # libFuzzer needs clang (C too: the kernel parsers are fuzzed as the C they are); only read at setup
ONLY_WHAT_RUNS=1 run_suites build-fuzz -Dfuzzers=true -Dkernel_tests=disabled -Dbenchmarks=disabled -- fuzz
unset CC CXX
# The Debian packages: they compile what a distribution builds, in place of the release build this phase
# used to be, so GCC's warnings without assertions are still errors here, though at -O2 rather than -O3
# and for the shipped code only (the tests are no longer compiled without assertions).
echo "=== $(date +%T) packages: scripts/build-packages.sh"
if scripts/build-packages.sh; then packages_result=OK; else packages_result=FAIL; status=1; fi

PACKAGES_RESULT=$packages_result python3 - $logs <<'PY'
import json, os, sys
passed = failed = 0
# The packaging phase is one test of its own, not a meson one.
if os.environ["PACKAGES_RESULT"] == "OK":
    passed += 1
else:
    failed += 1
failures = []
for path in sys.argv[1:]:
    try:
        for line in open(path):
            r = json.loads(line)
            if r.get("result") in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif r.get("result") != "SKIP":
                failed += 1
                failures.append(r)
    except FileNotFoundError:
        failed += 1
        print(f"=== no test log: {path} (its build failed)")
# What failed, last: whoever reads only the end of CI's output still learns which test it was and why.
# A guest's suite prints many tests' output: its lines naming a failure come first.
for r in failures:
    output = "\n".join(r.get(k) or "" for k in ("stdout", "stderr")).splitlines()
    print(f"=== FAILED {r['name']} ({r['result']}, {r.get('duration', 0):.0f} s)")
    print("--- its lines naming a failure:")
    print("\n".join("  " + line for line in [l for l in output if "FAIL" in l][:30]))
    print("--- the end of its output:")
    print("\n".join("  " + line for line in output[-40:]))
for r in failures:
    print(f"FAILED: {r['name']}")
print(f"{passed} passed, {failed} failed")
PY
exit $status
