// Validation of marshalled values against a signature, exactly per the specification: alignment padding
// zero, booleans 0 or 1, strings UTF-8 without NUL, valid object paths and signatures, arrays within
// 64 MiB and ending exactly at their length, container depth at most 64 (variants included). A unix-fd
// value ('h') is any uint32: that its index names one of the message's fds is checked when it is read
// (Codec<UnixFd>), not here, so that a message with a stray index is still a message (docs/wire-format.md).
#pragma once

#include <cstdint>
#include <string_view>

#include "afbus/decoder.hpp"
#include "afbus/expected.hpp"

namespace afbus {

inline constexpr std::uint32_t kMaxArrayLength = 64u * 1024 * 1024;

// Validates one value of each complete type in `signature` (which must already be valid), reading from
// `decoder`'s position; `depth` is the number of containers around these values.
Expected<void, WireError> validate_values(Decoder& decoder, std::string_view signature, int depth = 0) noexcept;

}  // namespace afbus
