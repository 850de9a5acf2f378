// Validation of the names that appear in D-Bus messages, per the specification's "Valid Names".
#pragma once

#include <cstddef>
#include <cstdint>
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

// RequestName's flags and replies, and ReleaseName's replies (the D-Bus specification's values).
enum class RequestNameReply : std::uint32_t { PrimaryOwner = 1, InQueue = 2, Exists = 3, AlreadyOwner = 4 };
enum class ReleaseNameReply : std::uint32_t { Released = 1, NonExistent = 2, NotOwner = 3 };
namespace name_flags {
inline constexpr std::uint32_t kAllowReplacement = 0x1;
inline constexpr std::uint32_t kReplaceExisting = 0x2;
inline constexpr std::uint32_t kDoNotQueue = 0x4;
}  // namespace name_flags

}  // namespace afbus
