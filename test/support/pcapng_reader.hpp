// A small pcapng reader for the tests of afbusctl capture: the blocks of a little-endian file, checked
// for the structure the format requires (matching leading and trailing lengths, 4-byte padding, a
// Section Header Block first), and the packets of its Enhanced Packet Blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace afbus::test {

struct PcapngBlock {
    std::uint32_t type = 0;
    std::vector<std::byte> body;  // between the leading length and the trailing one
};

struct PcapngPacket {
    std::uint32_t interface = 0;
    std::uint64_t timestamp = 0;  // in the interface's units (microseconds by default)
    std::uint32_t original_length = 0;
    std::vector<std::byte> data;  // the captured bytes, without padding
};

struct PcapngFile {
    std::vector<PcapngBlock> blocks;
    std::vector<std::string> section_options;  // option texts of the Section Header Block, in order
    std::optional<std::uint16_t> link_type;     // of the first Interface Description Block
    std::optional<std::uint32_t> snap_length;
    std::vector<PcapngPacket> packets;
};

inline std::uint32_t pcapng_u32(const std::byte* p) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline std::uint16_t pcapng_u16(const std::byte* p) {
    std::uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

// nullopt (and `why`) when the bytes are not a well-formed little-endian pcapng file.
inline std::optional<PcapngFile> read_pcapng(const std::string& bytes, std::string* why = nullptr) {
    const auto fail = [why](std::string reason) -> std::optional<PcapngFile> {
        if (why) *why = std::move(reason);
        return std::nullopt;
    };
    const auto* data = reinterpret_cast<const std::byte*>(bytes.data());
    PcapngFile file;
    std::size_t at = 0;
    while (at < bytes.size()) {
        if (bytes.size() - at < 12) return fail("a block header is cut short at " + std::to_string(at));
        const std::uint32_t type = pcapng_u32(data + at);
        const std::uint32_t length = pcapng_u32(data + at + 4);
        if (length < 12 || length % 4 != 0 || length > bytes.size() - at)
            return fail("bad block length " + std::to_string(length) + " at " + std::to_string(at));
        if (pcapng_u32(data + at + length - 4) != length) return fail("trailing length differs at " + std::to_string(at));
        if (file.blocks.empty() && type != 0x0A0D0D0A) return fail("the first block is not a Section Header Block");
        PcapngBlock block{type, std::vector<std::byte>(data + at + 8, data + at + length - 4)};
        const std::byte* body = block.body.data();
        const std::size_t size = block.body.size();
        if (type == 0x0A0D0D0A) {
            if (size < 16 || pcapng_u32(body) != 0x1A2B3C4D) return fail("not a little-endian section");
            for (std::size_t o = 16; o + 4 <= size;) {
                const std::uint16_t code = pcapng_u16(body + o);
                const std::uint16_t option_length = pcapng_u16(body + o + 2);
                if (code == 0) break;
                if (o + 4 + option_length > size) return fail("an option runs past its block");
                file.section_options.emplace_back(reinterpret_cast<const char*>(body + o + 4), option_length);
                o += 4 + ((option_length + 3u) & ~3u);
            }
        } else if (type == 1 && !file.link_type) {
            if (size < 8) return fail("short Interface Description Block");
            file.link_type = pcapng_u16(body);
            file.snap_length = pcapng_u32(body + 4);
        } else if (type == 6) {
            if (size < 20) return fail("short Enhanced Packet Block");
            PcapngPacket packet;
            packet.interface = pcapng_u32(body);
            packet.timestamp = (std::uint64_t{pcapng_u32(body + 4)} << 32) | pcapng_u32(body + 8);
            const std::uint32_t captured = pcapng_u32(body + 12);
            packet.original_length = pcapng_u32(body + 16);
            if (20 + ((captured + 3u) & ~3u) > size) return fail("a packet runs past its block");
            packet.data.assign(body + 20, body + 20 + captured);
            file.packets.push_back(std::move(packet));
        }
        file.blocks.push_back(std::move(block));
        at += length;
    }
    return file;
}

}  // namespace afbus::test
