// D-Bus signatures as the C++ types libafbus marshals them as (afbus/types.hpp): y b n q i u x t d s o g h v
// as std::uint8_t, bool, std::int16_t, std::uint16_t, std::int32_t, std::uint32_t, std::int64_t,
// std::uint64_t, double, std::string, afbus::ObjectPath, afbus::Signature, afbus::UnixFd, afbus::Variant;
// aT as std::vector<T>, a{KV} as std::map<K, V>, (T...) as std::tuple<T...>.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "afbus/expected.hpp"

namespace xml2cpp {

// The C++ type for one single complete type ("a{sv}" → "std::map<std::string, afbus::Variant>"), or why
// `type` is not one (the reason names the offending character or says what is missing).
afbus::Expected<std::string, std::string> cpp_type(std::string_view type);

// `signature` split into its single complete types ("sa{sv}i" → "s", "a{sv}", "i"), or why it is invalid.
afbus::Expected<std::vector<std::string>, std::string> split_signature(std::string_view signature);

}  // namespace xml2cpp
