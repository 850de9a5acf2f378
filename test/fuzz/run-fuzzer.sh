#!/bin/sh
# run-fuzzer.sh FUZZER CORPUS_DIR — run a libFuzzer target from its committed seed corpus for a bounded
# time (FUZZ_SECONDS, default 20). New inputs go to a scratch directory so the source tree stays clean.
set -eu
fuzzer=$1
corpus=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# -error_exitcode: libFuzzer's default for a finding is 77, which meson reads as "skipped".
exec "$fuzzer" -max_total_time="${FUZZ_SECONDS:-20}" -timeout=10 -rss_limit_mb=4096 -error_exitcode=1 \
     -artifact_prefix="$scratch/" "$scratch" "$corpus"
