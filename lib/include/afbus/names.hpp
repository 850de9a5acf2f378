// Validation of the names that appear in D-Bus messages, per the specification's "Valid Names".
#pragma once

#include <string_view>

namespace afbus {

inline constexpr std::size_t kMaxNameLength = 255;

bool is_valid_utf8(std::string_view text) noexcept;  // well-formed UTF-8, no NUL, no surrogates
bool is_valid_object_path(std::string_view path) noexcept;
bool is_valid_interface_name(std::string_view name) noexcept;
bool is_valid_error_name(std::string_view name) noexcept;  // same grammar as interfaces
bool is_valid_member_name(std::string_view name) noexcept;
bool is_valid_bus_name(std::string_view name) noexcept;  // unique (":1.42") or well-known
bool is_valid_unique_name(std::string_view name) noexcept;
bool is_valid_well_known_name(std::string_view name) noexcept;

}  // namespace afbus
