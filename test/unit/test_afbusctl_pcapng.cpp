// afbusctl capture's pcapng blocks, read back with test/support/pcapng_reader.hpp, laid out as busctl 252
// writes them (checked against a capture busctl made: the same block sizes for the same inputs).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pcapng.hpp"
#include "support/pcapng_reader.hpp"

namespace afbusctl {
namespace {

std::string concatenated(const std::vector<std::vector<std::byte>>& blocks) {
    std::string out;
    for (const auto& b : blocks) out.append(reinterpret_cast<const char*>(b.data()), b.size());
    return out;
}

std::vector<std::byte> bytes_of(const std::string& text) {
    const auto* p = reinterpret_cast<const std::byte*>(text.data());
    return {p, p + text.size()};
}

TEST(AfbusctlPcapng, BlocksAsBusctlWritesThem) {
    const auto section = pcapng_section_header("Debian GNU/Linux 12 (bookworm)", "busctl (systemd) 252 (Git 252.39-1~deb12u2)");
    EXPECT_EQ(section.size(), 116u);  // busctl's own header for these two texts
    EXPECT_EQ(pcapng_interface_description(4096).size(), 20u);
    EXPECT_EQ(pcapng_enhanced_packet(bytes_of(std::string(144, 'x')), 4096, 1).size(), 176u);
}

TEST(AfbusctlPcapng, ReadBack) {
    const std::string first(100, 'a'), second(5000, 'b');
    const std::string file = concatenated({pcapng_section_header("Some OS", "afbusctl (afbus) 0.1.0"),
                                           pcapng_interface_description(4096),
                                           pcapng_enhanced_packet(bytes_of(first), 4096, 0x123456789ull),
                                           pcapng_enhanced_packet(bytes_of(second), 4096, 42)});
    std::string why;
    auto read = afbus::test::read_pcapng(file, &why);
    ASSERT_TRUE(read) << why;
    EXPECT_EQ(read->section_options, (std::vector<std::string>{"Some OS", "afbusctl (afbus) 0.1.0"}));
    EXPECT_EQ(read->link_type, 231);
    EXPECT_EQ(read->snap_length, 4096u);
    ASSERT_EQ(read->packets.size(), 2u);
    EXPECT_EQ(read->packets[0].timestamp, 0x123456789ull);
    EXPECT_EQ(read->packets[0].data, bytes_of(first));
    EXPECT_EQ(read->packets[0].original_length, 100u);
    // Cut to the snap length, the original length kept.
    EXPECT_EQ(read->packets[1].data.size(), 4096u);
    EXPECT_EQ(read->packets[1].original_length, 5000u);

    EXPECT_FALSE(afbus::test::read_pcapng(file.substr(0, file.size() - 1)));
    EXPECT_FALSE(afbus::test::read_pcapng(file.substr(116)));  // no section header first
}

}  // namespace
}  // namespace afbusctl
