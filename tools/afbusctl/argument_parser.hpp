// busctl's argument syntax: a signature followed by one command-line word per basic value, with an
// element count before each array's elements and the contained signature before each variant's value:
//
//   s hello          as 2 a b          a{sv} 1 key s val          v s hello          (is) 1 x
//
// parse_arguments() turns such words into the values of a message body, or says which word is wrong and
// why, before anything is sent.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/expected.hpp"
#include "afbus/value.hpp"

namespace afbusctl {

struct ArgumentError {
    // busctl's wording ("Failed to parse 'x' as unsigned 16bit integer: Invalid argument").
    std::string message;
    // Which word (0-based, counting from the first value after the signature) and which type it was
    // read as; word == words.size() when the words ran out.
    std::size_t word = 0;
    std::string type;

    // The message with where it went wrong, for stderr.
    [[nodiscard]] std::string describe() const;
};

// Every word must be consumed: too few or too many words are errors, as in busctl.
afbus::Expected<std::vector<afbus::Value>, ArgumentError> parse_arguments(std::string_view signature,
                                                                         std::span<const std::string> words);

// One scalar word as busctl reads it (integers in C syntax: 0x, 0o, 0b and leading-0 octal prefixes;
// booleans as yes/no, true/false, on/off, 1/0, y/n, t/f). `type` is a basic type code other than 'h'.
afbus::Expected<afbus::Value, std::string> parse_basic(char type, const std::string& word);

}  // namespace afbusctl
