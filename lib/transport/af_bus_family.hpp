// AF_BUS family discovery: af_bus.ko has no fixed address family number (a module cannot extend AF_MAX),
// it registers a free one at load time and publishes it in /sys/module/af_bus/parameters/family.
// See docs/kernel.md ("Family number") and kernel/include/uapi/linux/af_bus.h.
#pragma once

#include <cstdint>
#include <string_view>

#include "afbus/expected.hpp"

namespace afbus {

enum class AfBusError : std::uint8_t {
    NotLoaded,   // /sys/module/af_bus is absent: the kernel has no AF_BUS (fall back to unix:)
    Unreadable,  // the module is there but its family parameter cannot be read
    Malformed,   // the parameter is not a decimal family number in 1..255
};

// "AF_BUS not available (af_bus.ko is not loaded)" and friends, for logs and error messages.
[[nodiscard]] std::string_view to_string(AfBusError error) noexcept;

inline constexpr std::string_view kDefaultSysfsRoot = "/sys";

// Reads <sysfs_root>/module/af_bus/parameters/family. sysfs_root is a parameter so tests can point it
// at a temporary directory.
[[nodiscard]] Expected<int, AfBusError> af_bus_family(std::string_view sysfs_root = kDefaultSysfsRoot);

// Parses the parameter's contents: decimal digits, optionally followed by one '\n', value 1..255.
[[nodiscard]] Expected<int, AfBusError> parse_af_bus_family(std::string_view text) noexcept;

}  // namespace afbus
