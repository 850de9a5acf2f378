#include "afbus/names.hpp"

#include <cstdint>

namespace afbus {
namespace {

constexpr bool is_alpha_or_underscore(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool is_member_char(char c) noexcept { return is_alpha_or_underscore(c) || is_digit(c); }
constexpr bool is_bus_name_char(char c) noexcept { return is_member_char(c) || c == '-'; }

// Dot-separated elements, at least two, none empty; `element_ok(first_char_of_element, c)`.
template <class CharOk, class FirstOk>
bool is_dotted_name(std::string_view name, CharOk char_ok, FirstOk first_ok) noexcept {
    if (name.empty() || name.size() > kMaxNameLength) return false;
    int elements = 1;
    bool at_element_start = true;
    for (char c : name) {
        if (c == '.') {
            if (at_element_start) return false;
            ++elements;
            at_element_start = true;
            continue;
        }
        if (at_element_start ? !first_ok(c) : !char_ok(c)) return false;
        at_element_start = false;
    }
    return !at_element_start && elements >= 2;
}

}  // namespace

bool is_valid_utf8(std::string_view text) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = p + text.size();
    while (p < end) {
        // Fast path: runs of ASCII.
        if (*p < 0x80) {
            if (*p == 0) return false;
            ++p;
            continue;
        }
        std::uint32_t cp;
        int extra;
        std::uint32_t min;
        if ((*p & 0xe0) == 0xc0) {
            cp = *p & 0x1f;
            extra = 1;
            min = 0x80;
        } else if ((*p & 0xf0) == 0xe0) {
            cp = *p & 0x0f;
            extra = 2;
            min = 0x800;
        } else if ((*p & 0xf8) == 0xf0) {
            cp = *p & 0x07;
            extra = 3;
            min = 0x10000;
        } else {
            return false;
        }
        if (end - p <= extra) return false;
        for (int i = 1; i <= extra; ++i) {
            if ((p[i] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        p += extra + 1;
    }
    return true;
}

bool is_valid_object_path(std::string_view path) noexcept {
    if (path.empty() || path[0] != '/') return false;
    if (path.size() == 1) return true;
    bool after_slash = true;
    for (std::size_t i = 1; i < path.size(); ++i) {
        char c = path[i];
        if (c == '/') {
            if (after_slash) return false;
            after_slash = true;
        } else if (is_member_char(c)) {
            after_slash = false;
        } else {
            return false;
        }
    }
    return !after_slash;
}

bool is_valid_interface_name(std::string_view name) noexcept {
    return is_dotted_name(name, is_member_char, is_alpha_or_underscore);
}

bool is_valid_error_name(std::string_view name) noexcept { return is_valid_interface_name(name); }

bool is_valid_member_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > kMaxNameLength || is_digit(name[0])) return false;
    for (char c : name)
        if (!is_member_char(c)) return false;
    return true;
}

bool is_valid_unique_name(std::string_view name) noexcept {
    if (name.size() < 2 || name[0] != ':' || name.size() > kMaxNameLength) return false;
    // Elements of unique names may start with a digit.
    return is_dotted_name(name.substr(1), is_bus_name_char, is_bus_name_char);
}

bool is_valid_well_known_name(std::string_view name) noexcept {
    return is_dotted_name(name, is_bus_name_char,
                          [](char c) { return is_alpha_or_underscore(c) || c == '-'; });
}

bool is_valid_bus_name(std::string_view name) noexcept {
    if (!name.empty() && name[0] == ':') return is_valid_unique_name(name);
    return is_valid_well_known_name(name);
}

}  // namespace afbus
