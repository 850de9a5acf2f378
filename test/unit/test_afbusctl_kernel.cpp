// afbusctl kernel: the AF_BUS module's state read from a sysfs and a procfs laid out in a temporary
// directory, as the kernel lays them out (docs/kernel.md).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "kernel_state.hpp"

namespace afbusctl {
namespace {

class AfbusctlKernel : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/afbusctl-kernel-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        root = pattern;
        std::filesystem::create_directories(root + "/sys");
        std::filesystem::create_directories(root + "/proc/net");
        write("/proc/net/protocols",
              "protocol  size sockets  memory press maxhdr  slab module     cl co di\n"
              "AF_VSOCK  1240      0      -1   NI       0   yes  kernel      y  n  n\n"
              "AF_BUS    1152      3      -1   NI       0   no   af_bus      n  n  n\n");
    }
    void TearDown() override { std::filesystem::remove_all(root); }

    void write(const std::string& path, const std::string& text) {
        std::filesystem::create_directories(std::filesystem::path(root + path).parent_path());
        std::ofstream(root + path) << text;
    }
    KernelState read() { return read_kernel_state(root + "/sys", root + "/proc"); }

    std::string root;
};

TEST_F(AfbusctlKernel, NotLoaded) {
    const auto state = read();
    EXPECT_FALSE(state.loaded);
    EXPECT_EQ(format_kernel_state(state, JsonMode::Off), "Module=not-loaded\n");
    EXPECT_EQ(format_kernel_state(state, JsonMode::Short),
              "{\"module\":\"not-loaded\",\"family\":null,\"sockets\":null,\"memory\":null}\n");
}

TEST_F(AfbusctlKernel, Loaded) {
    write("/sys/module/af_bus/parameters/family", "19\n");
    const auto state = read();
    EXPECT_TRUE(state.loaded);
    EXPECT_EQ(state.family, 19);
    EXPECT_EQ(state.sockets, 3);
    EXPECT_EQ(format_kernel_state(state, JsonMode::Off), "Module=loaded\nFamily=19\nSockets=3\n");
}

TEST_F(AfbusctlKernel, BadFamilyParameter) {
    write("/sys/module/af_bus/parameters/family", "nineteen\n");
    const auto state = read();
    EXPECT_TRUE(state.loaded);
    EXPECT_FALSE(state.family);
    EXPECT_EQ(format_kernel_state(state, JsonMode::Off),
              "Module=loaded\nFamily=n/a (its family parameter is not a family number: nineteen)\nSockets=3\n");
}

}  // namespace
}  // namespace afbusctl
