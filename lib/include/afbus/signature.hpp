// D-Bus type signatures: validation per the specification and walking single complete types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "afbus/expected.hpp"
#include "afbus/wire_error.hpp"

namespace afbus {

inline constexpr std::size_t kMaxSignatureLength = 255;
inline constexpr int kMaxArrayNesting = 32;
inline constexpr int kMaxStructNesting = 32;
// Total container depth of a value, variants included (spec: "total message depth ... 64").
inline constexpr int kMaxTotalNesting = 64;

// Checks the whole signature (a list of zero or more single complete types).
Expected<void, WireError> validate_signature(std::string_view signature) noexcept;
// Checks that `signature` is exactly one single complete type (variant contents, array elements).
Expected<void, WireError> validate_single_complete_type(std::string_view signature) noexcept;

constexpr bool is_basic_type_code(char c) noexcept {
    switch (c) {
        case 'y': case 'b': case 'n': case 'q': case 'i': case 'u': case 'x': case 't':
        case 'd': case 's': case 'o': case 'g': case 'h':
            return true;
        default:
            return false;
    }
}

// Alignment of a value whose type starts with `c`; 0 for characters that start no type.
constexpr std::size_t alignment_of(char c) noexcept {
    switch (c) {
        case 'y': case 'g': case 'v': return 1;
        case 'n': case 'q': return 2;
        case 'b': case 'i': case 'u': case 's': case 'o': case 'a': case 'h': return 4;
        case 'x': case 't': case 'd': case '(': case '{': return 8;
        default: return 0;
    }
}

// Length of the single complete type at the start of an already validated signature.
constexpr std::size_t complete_type_length(std::string_view signature) noexcept {
    std::size_t pos = 0;
    while (pos < signature.size() && signature[pos] == 'a') ++pos;
    if (pos >= signature.size()) return pos;
    char c = signature[pos];
    if (c != '(' && c != '{') return pos + 1;
    int depth = 0;
    for (; pos < signature.size(); ++pos) {
        if (signature[pos] == '(' || signature[pos] == '{') ++depth;
        else if (signature[pos] == ')' || signature[pos] == '}') {
            if (--depth == 0) return pos + 1;
        }
    }
    return pos;
}

}  // namespace afbus
