#!/bin/sh
# A type without a D-Bus mapping must stop the compilation with a message that names it
# (afbus/types.hpp, detail::check_marshallable), and so must a typed object's handler with such a
# parameter or result, or with parameters it does not spell out (afbus/typed_object.hpp). Each case is compiled alone and must fail with the
# expected message and the offending type in the compiler's instantiation context.
# Usage: type_mapping_compile_errors.sh INCLUDE_DIR COMPILER [COMPILER ARGS...]
set -u
LC_ALL=C
export LC_ALL
include_dir=$1
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# check NAME CODE MESSAGE TYPE: CODE, in a function with a MessageBuilder b and a Message m, must not
# compile, and the compiler's output must contain MESSAGE and TYPE.
check() {
    name=$1 code=$2 message=$3 type=$4
    shift 4
    printf '#include <optional>\n#include "afbus/types.hpp"\n#include "afbus/typed_object.hpp"\nstruct Undescribed { int x; };\nvoid f(afbus::MessageBuilder& b, const afbus::Message& m) {\n    (void)b;\n    (void)m;\n    %s\n}\n' \
        "$code" >"$work/$name.cpp"
    if "$@" -std=c++20 -fsyntax-only -I"$include_dir" "$work/$name.cpp" >"$work/$name.log" 2>&1; then
        echo "FAIL $name: it compiled"
        failures=$((failures + 1))
    elif ! grep -qF -- "$message" "$work/$name.log" || ! grep -qF -- "$type" "$work/$name.log"; then
        echo "FAIL $name: no '$message' or no '$type' in:"
        cat "$work/$name.log"
        failures=$((failures + 1))
    else
        echo "ok $name"
    fi
}

# The compiler command (this script's arguments after INCLUDE_DIR) goes last, as check's "$@".
for_each_case() {
    check optional_appended 'afbus::append(b, std::optional<int>{});' \
        'std::optional has no D-Bus representation' 'check_marshallable() [with T = std::optional<int>]' "$@"
    check optional_in_vector_read '(void)afbus::read_all<std::vector<std::optional<int>>>(m);' \
        'std::optional has no D-Bus representation' 'check_marshallable() [with T = std::optional<int>]' "$@"
    check undescribed_struct_in_map 'afbus::append(b, std::map<std::string, Undescribed>{});' \
        'this C++ type has no D-Bus mapping' 'check_marshallable() [with T = Undescribed]' "$@"
    check variant_of_equal_signatures 'afbus::append(b, std::variant<std::int32_t, std::int32_t>{});' \
        'two alternatives of this std::variant have the same D-Bus signature' 'std::variant<int, int>' "$@"
    check undescribed_handler_parameter 'afbus::InterfaceBuilder("a.b").method("M", [](Undescribed) {});' \
        'this C++ type has no D-Bus mapping' 'check_marshallable() [with T = Undescribed]' "$@"
    check optional_handler_result 'afbus::InterfaceBuilder("a.b").method("M", [] { return std::optional<int>{}; });' \
        'std::optional has no D-Bus representation' 'check_marshallable() [with T = std::optional<int>]' "$@"
    check generic_handler 'afbus::InterfaceBuilder("a.b").method("M", [](auto x) { return x; });' \
        'write them out (no auto parameters)' 'InterfaceBuilder::method' "$@"
    check variant_property 'afbus::InterfaceBuilder("a.b").property("P", [] { return afbus::Variant(); });' \
        'a property whose type varies (Variant, std::variant) is not supported' 'T = afbus::Variant' "$@"
}
for_each_case "$@"

[ "$failures" -eq 0 ]
