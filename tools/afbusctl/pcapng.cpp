#include "pcapng.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>

namespace afbusctl {

namespace {

constexpr std::uint32_t kSectionHeaderType = 0x0A0D0D0A;
constexpr std::uint32_t kInterfaceDescriptionType = 0x00000001;
constexpr std::uint32_t kEnhancedPacketType = 0x00000006;
constexpr std::uint32_t kByteOrderMagic = 0x1A2B3C4D;
constexpr std::uint16_t kOptionEnd = 0;
constexpr std::uint16_t kOptionShbOs = 3;
constexpr std::uint16_t kOptionShbUserApplication = 4;

class BlockWriter {
public:
    explicit BlockWriter(std::uint32_t type) {
        put32(type);
        put32(0);  // total length, patched by finish()
    }
    void put16(std::uint16_t v) { put(&v, 2); }
    void put32(std::uint32_t v) { put(&v, 4); }
    void put_bytes(std::span<const std::byte> bytes) {
        bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
        pad();
    }
    void option(std::uint16_t code, const std::string& text) {
        put16(code);
        put16(static_cast<std::uint16_t>(text.size()));
        put_bytes(std::as_bytes(std::span(text.data(), text.size())));
    }
    std::vector<std::byte> finish() {
        const auto total = static_cast<std::uint32_t>(bytes_.size() + 4);
        put32(total);
        std::memcpy(bytes_.data() + 4, &total, 4);
        return std::move(bytes_);
    }

private:
    void put(const void* p, std::size_t n) {
        const auto* b = static_cast<const std::byte*>(p);
        bytes_.insert(bytes_.end(), b, b + n);
    }
    void pad() {
        while (bytes_.size() % 4 != 0) bytes_.push_back(std::byte{0});
    }
    std::vector<std::byte> bytes_;
};

}  // namespace

std::vector<std::byte> pcapng_section_header(const std::string& os, const std::string& application) {
    BlockWriter block(kSectionHeaderType);
    block.put32(kByteOrderMagic);
    block.put16(1);  // major version
    block.put16(0);  // minor version
    block.put32(0xFFFFFFFF);  // section length: unknown (-1)
    block.put32(0xFFFFFFFF);
    block.option(kOptionShbOs, os);
    block.option(kOptionShbUserApplication, application);
    block.put16(kOptionEnd);
    block.put16(0);
    return block.finish();
}

std::vector<std::byte> pcapng_interface_description(std::uint32_t snap_length) {
    BlockWriter block(kInterfaceDescriptionType);
    block.put16(static_cast<std::uint16_t>(kLinkTypeDbus));
    block.put16(0);  // reserved
    block.put32(snap_length);
    return block.finish();
}

std::vector<std::byte> pcapng_enhanced_packet(std::span<const std::byte> message, std::uint32_t snap_length,
                                              std::uint64_t microseconds) {
    const std::size_t captured = std::min<std::size_t>(message.size(), snap_length);
    BlockWriter block(kEnhancedPacketType);
    block.put32(0);  // interface 0: the one description
    block.put32(static_cast<std::uint32_t>(microseconds >> 32));
    block.put32(static_cast<std::uint32_t>(microseconds));
    block.put32(static_cast<std::uint32_t>(captured));
    block.put32(static_cast<std::uint32_t>(message.size()));
    block.put_bytes(message.first(captured));
    return block.finish();
}

std::string operating_system_name() {
    for (const char* path : {"/etc/os-release", "/usr/lib/os-release"}) {
        std::ifstream in(path);
        for (std::string line; std::getline(in, line);) {
            if (!line.starts_with("PRETTY_NAME=")) continue;
            std::string value = line.substr(12);
            if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front())
                value = value.substr(1, value.size() - 2);
            return value;
        }
    }
    return "Linux";
}

}  // namespace afbusctl
