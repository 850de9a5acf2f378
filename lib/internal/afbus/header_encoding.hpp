// The D-Bus message header as bytes: the fixed part and the header fields array, in either byte order.
// MessageBuilder and Message::with_sender make their headers with it; so does the fuzz seed converter
// (test/fuzz/bus_model_seeds), which rewrites the names in captured messages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "afbus/message.hpp"

namespace afbus {

// What a header says; empty texts are left out.
struct HeaderParts {
    MessageType type;
    std::uint8_t flags;
    std::uint32_t body_length;
    std::uint32_t serial;
    std::string_view path, interface, member, error_name, destination, sender, signature;
    std::optional<std::uint32_t> reply_serial;
    std::uint32_t unix_fds;
};

// The header, padded to 8 bytes (where the body starts). Not validated: Message::parse does that.
std::vector<std::byte> encode_header(const HeaderParts& header, Endian endian);

}  // namespace afbus
