#!/bin/sh
# make-bus-model-seeds.sh BUILD_DIR FUZZ_BUILD_DIR [TEST...]
#
# Seeds test/fuzz/corpus/bus_model from real bus traffic (issue 17, item 5): runs integration tests
# against afbus-daemon with every private bus captured (TestBus with AFBUS_TEST_CAPTURE_DIR runs
# `afbusctl capture` on it), converts each capture into fuzz_bus_model inputs (bus-model-seeds, see
# bus_model_seeds.hpp), and merges them with the committed corpus through libFuzzer's -merge=1, which keeps
# only the inputs that add coverage, so the corpus does not bloat. The corpus directory is then replaced by
# the merged set: review it with git status and commit it.
#
# It builds nothing: BUILD_DIR (a normal build) must have afbus-daemon, afbusctl, bus-model-seeds and the
# test programs, FUZZ_BUILD_DIR (-Dfuzzers=true, clang) test/fuzz/fuzz_bus_model. TEST names integration
# tests of test/meson.build (default: the ones below, whose assertions hold with a monitor attached).
# The machine's parallelism is the caller's: MESON_TESTTHREADS, taskset.
set -eu

build=$(cd "$1" && pwd)
fuzz_build=$(cd "$2" && pwd)
shift 2
tests=${*:-bus_semantics client proxy typed_object match_rule_reference unix_fd_index activation afbusctl xml2cpp_calculator debian_clients}

source_dir=$(cd "$(dirname "$0")/../.." && pwd)
corpus=$source_dir/test/fuzz/corpus/bus_model
converter=$build/test/bus-model-seeds
fuzzer=$fuzz_build/test/fuzz/fuzz_bus_model
for program in "$build/daemon/afbus-daemon" "$build/tools/afbusctl/afbusctl" "$converter" "$fuzzer"; do
  if [ ! -x "$program" ]; then
    echo "make-bus-model-seeds: $program is not built" >&2
    exit 1
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/captures" "$work/seeds" "$work/merged"

meson_tests=
for t in $tests; do meson_tests="$meson_tests $t-afbus-daemon"; done
# A test that fails with a monitor attached still leaves useful traffic; say so and carry on.
# shellcheck disable=SC2086
AFBUS_TEST_CAPTURE_DIR=$work/captures AFBUSCTL=$build/tools/afbusctl/afbusctl \
  meson test -C "$build" --no-rebuild --suite integration $meson_tests ||
  echo "make-bus-model-seeds: some tests failed under capture (their captures are used all the same)" >&2

captures=$(find "$work/captures" -name '*.pcapng' | sort)
if [ -z "$captures" ]; then
  echo "make-bus-model-seeds: no captures" >&2
  exit 1
fi
echo "captures: $(echo "$captures" | wc -l), by test program:"
for capture in $captures; do basename "$capture" | cut -d- -f1; done | sort | uniq -c
# shellcheck disable=SC2086
"$converter" "$work/seeds" $captures

# One merge of the old corpus and the new seeds into an empty directory: the smallest set that covers what
# both cover (inputs of the old corpus that no longer add anything drop out too). -max_len: whole seeds,
# which are longer than libFuzzer's default for a merge.
"$fuzzer" -merge=1 -max_len=1048576 -timeout=10 -rss_limit_mb=4096 "$work/merged" "$corpus" "$work/seeds" \
  2>"$work/merge.log" || { cat "$work/merge.log" >&2; exit 1; }
grep -E '^MERGE-OUTER: ' "$work/merge.log" || true

# libFuzzer names what it keeps by SHA-1; an input of the old corpus keeps its own name (seed-hello;
# seed-callee-becomes-monitor and seed-eavesdropped-call, the inputs that found a bug and a false alarm).
for old in "$corpus"/*; do
  kept=$work/merged/$(sha1sum < "$old" | cut -d' ' -f1)
  named=$work/merged/$(basename "$old")
  if [ -f "$kept" ] && [ "$kept" != "$named" ]; then mv "$kept" "$named"; fi
done

from_captures=0
for seed in "$work/seeds"/*; do
  if [ -f "$work/merged/$(sha1sum < "$seed" | cut -d' ' -f1)" ]; then from_captures=$((from_captures + 1)); fi
done
echo "corpus: $(find "$corpus" -type f | wc -l) files before, $(find "$work/merged" -type f | wc -l) after, $from_captures of them from captures"
rm -f "$corpus"/*
cp "$work/merged"/* "$corpus"/
