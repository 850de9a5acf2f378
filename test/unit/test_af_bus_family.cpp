#include "transport/af_bus_family.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

// The uapi header is shared with the kernel module; it must stay valid (pedantic) C++.
#include "../../kernel/include/uapi/linux/af_bus.h"
#include "support/fake_sysfs.hpp"

static_assert(offsetof(sockaddr_bus, sbus_path) == 16);
static_assert(sizeof(sockaddr_bus) <= sizeof(sockaddr_storage));
static_assert(sizeof(bus_filter) == 16);
static_assert(sizeof(bus_filter_rule) == 96);
static_assert(BUS_ADDR(1, 7) == 0x0001000000000007ULL);
static_assert(BUS_IS_MULTICAST(BUS_ADDR(0, BUS_MULTICAST_CLIENT)));

namespace afbus {
namespace {

namespace fs = std::filesystem;

class AfBusFamily : public ::testing::Test {
protected:
    fs::path param_dir() const { return sysfs_.param_dir(); }
    void write_param(const std::string& contents) { sysfs_.write_family(contents); }

    test::FakeSysfs sysfs_;
    const fs::path& root_ = sysfs_.root();
};

TEST_F(AfBusFamily, ReadsTheFamilyNumber) {
    write_param("19\n");
    const auto family = af_bus_family(root_.string());
    ASSERT_TRUE(family.has_value());
    EXPECT_EQ(*family, 19);
}

TEST_F(AfBusFamily, AcceptsNoTrailingNewline) {
    write_param("23");
    const auto family = af_bus_family(root_.string());
    ASSERT_TRUE(family.has_value());
    EXPECT_EQ(*family, 23);
}

TEST_F(AfBusFamily, ModuleNotLoaded) {
    const auto family = af_bus_family(root_.string());
    ASSERT_FALSE(family.has_value());
    EXPECT_EQ(family.error(), AfBusError::NotLoaded);
    EXPECT_EQ(to_string(family.error()), "AF_BUS not available (af_bus.ko is not loaded)");
}

TEST_F(AfBusFamily, SysfsRootMissing) {
    const auto family = af_bus_family((root_ / "does-not-exist").string());
    ASSERT_FALSE(family.has_value());
    EXPECT_EQ(family.error(), AfBusError::NotLoaded);
}

TEST_F(AfBusFamily, ParameterMissingIsUnreadable) {
    fs::create_directories(param_dir());
    const auto family = af_bus_family(root_.string());
    ASSERT_FALSE(family.has_value());
    EXPECT_EQ(family.error(), AfBusError::Unreadable);
}

TEST_F(AfBusFamily, ParameterIsADirectoryIsUnreadable) {
    fs::create_directories(param_dir() / "family");
    const auto family = af_bus_family(root_.string());
    ASSERT_FALSE(family.has_value());
    EXPECT_EQ(family.error(), AfBusError::Unreadable);
}

TEST_F(AfBusFamily, MalformedContents) {
    for (const char* text : {"", "\n", "abc", "19x", "-1", "0", "256", "1234", " 19", "19\n\n", "1 9"}) {
        write_param(text);
        const auto family = af_bus_family(root_.string());
        ASSERT_FALSE(family.has_value()) << "'" << text << "'";
        EXPECT_EQ(family.error(), AfBusError::Malformed) << "'" << text << "'";
    }
}

TEST_F(AfBusFamily, OverlongContentsAreMalformed) {
    write_param(std::string(100, '1'));
    const auto family = af_bus_family(root_.string());
    ASSERT_FALSE(family.has_value());
    EXPECT_EQ(family.error(), AfBusError::Malformed);
}

TEST(AfBusFamilyParse, Boundaries) {
    EXPECT_EQ(parse_af_bus_family("1").value(), 1);
    EXPECT_EQ(parse_af_bus_family("255\n").value(), 255);
    EXPECT_FALSE(parse_af_bus_family("0").has_value());
    EXPECT_FALSE(parse_af_bus_family("256").has_value());
}

TEST(AfBusFamilyPaths, DefaultRootMatchesTheUapiHeader) {
    EXPECT_EQ(std::string(kDefaultSysfsRoot) + "/module/af_bus/parameters/family",
              std::string(AF_BUS_SYSFS_FAMILY));
}

TEST(AfBusFamilyMessages, EveryErrorSaysNotAvailable) {
    for (const auto error : {AfBusError::NotLoaded, AfBusError::Unreadable, AfBusError::Malformed}) {
        EXPECT_EQ(to_string(error).substr(0, 20), "AF_BUS not available");
    }
}

}  // namespace
}  // namespace afbus
