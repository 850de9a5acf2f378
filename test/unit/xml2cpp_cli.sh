#!/bin/sh
# afbus-xml2cpp's command line (tools/xml2cpp/main.cpp): --help, --version, standard input, and for a bad
# input file the message "FILE:LINE: reason", exit status 1 and no output file.
#   xml2cpp_cli.sh AFBUS_XML2CPP GOOD.xml
set -u
tool=$1
good=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

"$tool" --help | grep -q -- '--proxy=FILE' || fail "--help does not list --proxy=FILE"
"$tool" --version | grep -q '^afbus-xml2cpp [0-9]' || fail "--version"

"$tool" --proxy="$dir/p.hpp" --adaptor="$dir/a.hpp" "$good" || fail "good file: exit status $?"
grep -q 'class CalculatorProxy' "$dir/p.hpp" || fail "no proxy class"
grep -q 'class CalculatorAdaptor' "$dir/a.hpp" || fail "no adaptor class"
"$tool" --proxy "$dir/stdin.hpp" < "$good" || fail "standard input: exit status $?"
grep -q 'from <stdin>' "$dir/stdin.hpp" || fail "standard input not named <stdin>"

printf '<node>\n  <interface name="org.example.Bad">\n    <method name="M"><arg name="x" type="z"/></method>\n' > "$dir/bad.xml"
printf '  </interface>\n</node>\n' >> "$dir/bad.xml"
message=$("$tool" --proxy="$dir/bad.hpp" "$dir/bad.xml" 2>&1)
status=$?
[ "$status" -eq 1 ] || fail "bad file: exit status $status, not 1"
case "$message" in
  "$dir/bad.xml:3: argument 'x' of org.example.Bad.M has type 'z'"*) ;;
  *) fail "bad file: message '$message'" ;;
esac
[ ! -e "$dir/bad.hpp" ] || fail "bad file: a header was written"

"$tool" "$good" > /dev/null 2>&1 && fail "nothing to generate: exit status 0"
"$tool" --bogus "$good" > /dev/null 2>&1 && fail "unknown option: exit status 0"
"$tool" --proxy="$dir/missing.hpp" "$dir/missing.xml" > /dev/null 2>&1 && fail "missing input: exit status 0"

[ "$failures" -eq 0 ] && echo "all checks passed"
exit $((failures != 0))
