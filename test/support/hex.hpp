// Hex for tests of the SASL conversation, written independently of libafbus's own encoder so that the
// tests check its encoding rather than repeat it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace afbus::test {

inline std::string hex(std::string_view bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out += kDigits[c >> 4];
        out += kDigits[c & 0xF];
    }
    return out;
}

inline std::string unhex(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i + 1 < text.size(); i += 2)
        out += static_cast<char>(std::stoi(std::string(text.substr(i, 2)), nullptr, 16));
    return out;
}

}  // namespace afbus::test
