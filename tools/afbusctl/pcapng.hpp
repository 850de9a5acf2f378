// The pcapng file busctl capture writes (and Wireshark reads as D-Bus): a Section Header Block naming
// the OS and the program, one Interface Description Block of link type DLT_DBUS (231) whose snap length
// bounds every packet, then one Enhanced Packet Block per message holding its wire bytes, timestamped
// in microseconds. Little-endian blocks (this machine's order, which the byte-order magic records).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace afbusctl {

inline constexpr std::uint32_t kLinkTypeDbus = 231;
inline constexpr std::uint32_t kDefaultSnapLength = 4096;  // busctl's --size= default

std::vector<std::byte> pcapng_section_header(const std::string& os, const std::string& application);
std::vector<std::byte> pcapng_interface_description(std::uint32_t snap_length);
// A packet of `message` (cut to `snap_length`, the original length kept) at `microseconds` since the epoch.
std::vector<std::byte> pcapng_enhanced_packet(std::span<const std::byte> message, std::uint32_t snap_length,
                                              std::uint64_t microseconds);

// PRETTY_NAME from /etc/os-release (then /usr/lib/os-release), as busctl records it; "Linux" without one.
std::string operating_system_name();

}  // namespace afbusctl
