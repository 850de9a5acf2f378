// connect_af_bus and bus_socket_address. AF_BUS cannot be loaded on the host, so the connecting tests
// use a fake sysfs whose family number is AF_UNIX (1): socket(AF_UNIX, SOCK_SEQPACKET, 1) is valid
// (protocol 1 is PF_UNIX), and an abstract sockaddr_bus read as a sockaddr_un is an abstract name too
// (its sun_path starts with the zeroed padding), so a SEQPACKET listener bound to the very same bytes
// accepts the connection.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "afbus/af_bus_socket.hpp"
#include "support/fake_sysfs.hpp"

namespace afbus {
namespace {

namespace fs = std::filesystem;

AddressEntry entry(std::string_view text) {
    auto list = parse_address_list(text);
    EXPECT_TRUE(list);
    return list->front();
}

class FakeSysfs : public ::testing::Test {
protected:
    void write_family(const std::string& contents) { sysfs_.write_family(contents); }
    test::FakeSysfs sysfs_;
    const fs::path& root_ = sysfs_.root();
};

TEST(BusSocketAddress, FilesystemPathCountsItsNul) {
    auto a = bus_socket_address(entry("afbus:path=/run/afbus/bus"), 19);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->address.sbus_family, 19);
    EXPECT_EQ(a->address.sbus_addr.s_addr, 0u);
    EXPECT_EQ(std::string(a->address.sbus_path), "/run/afbus/bus");
    EXPECT_EQ(a->length, offsetof(sockaddr_bus, sbus_path) + std::string("/run/afbus/bus").size() + 1);
}

TEST(BusSocketAddress, AbstractNameHasALeadingNulAndNoTerminator) {
    auto a = bus_socket_address(entry("afbus:abstract=my-bus"), 23, 42);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->address.sbus_family, 23);
    EXPECT_EQ(a->address.sbus_addr.s_addr, 42u);
    EXPECT_EQ(a->address.sbus_path[0], '\0');
    EXPECT_EQ(std::string(a->address.sbus_path + 1), "my-bus");
    EXPECT_EQ(a->length, offsetof(sockaddr_bus, sbus_path) + 1 + 6);
}

TEST(BusSocketAddress, OnlyAfbusEntries) {
    auto a = bus_socket_address(entry("unix:path=/tmp/x"), 19);
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error(), AddressError::NotUnixSocket);
    auto long_path = bus_socket_address(entry("afbus:path=/" + std::string(120, 'p')), 19);
    ASSERT_FALSE(long_path);
    EXPECT_EQ(long_path.error(), AddressError::PathTooLong);
}

TEST_F(FakeSysfs, NoModuleIsUnavailable) {
    auto s = connect_af_bus(entry("afbus:path=/run/afbus/bus"), root_.string());
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().kind, AfBusSocketError::Kind::Unavailable);
    EXPECT_EQ(s.error().unavailable, AfBusError::NotLoaded);
    EXPECT_NE(s.error().describe().find("AF_BUS"), std::string::npos);
}

TEST_F(FakeSysfs, MalformedFamilyIsUnavailable) {
    write_family("banana\n");
    auto s = connect_af_bus(entry("afbus:path=/run/afbus/bus"), root_.string());
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().kind, AfBusSocketError::Kind::Unavailable);
    EXPECT_EQ(s.error().unavailable, AfBusError::Malformed);
}

TEST_F(FakeSysfs, MissingBusIsAConnectError) {
    write_family(std::to_string(AF_UNIX) + "\n");
    auto s = connect_af_bus(entry("afbus:path=" + (root_ / "no-bus").string()), root_.string());
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().kind, AfBusSocketError::Kind::Connect);
    // AF_BUS says ENOENT; the AF_UNIX stand-in reads the path as an abstract name nobody bound.
    EXPECT_TRUE(s.error().errno_value == ENOENT || s.error().errno_value == ECONNREFUSED)
        << s.error().describe();
}

TEST_F(FakeSysfs, ConnectsNonBlockingToTheBusAddress) {
    write_family(std::to_string(AF_UNIX) + "\n");
    const std::string name = "afbus-test-" + std::to_string(::getpid());
    const AddressEntry e = entry("afbus:abstract=" + name);
    auto address = bus_socket_address(e, AF_UNIX);
    ASSERT_TRUE(address);
    Fd listener(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(listener);
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<const sockaddr*>(&address->address), address->length),
              0)
        << std::strerror(errno);
    ASSERT_EQ(::listen(listener.get(), 1), 0);

    auto s = connect_af_bus(e, root_.string());
    ASSERT_TRUE(s) << s.error().describe();
    EXPECT_EQ(s->family, AF_UNIX);
    EXPECT_TRUE(::fcntl(s->fd.get(), F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(s->fd.get(), F_GETFD) & FD_CLOEXEC);
    int type = 0;
    socklen_t length = sizeof type;
    ASSERT_EQ(::getsockopt(s->fd.get(), SOL_SOCKET, SO_TYPE, &type, &length), 0);
    EXPECT_EQ(type, SOCK_SEQPACKET);
    Fd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    EXPECT_TRUE(accepted);
    // An unbound AF_UNIX client has no AF_BUS address.
    EXPECT_FALSE(af_bus_local_address(s->fd.get(), s->family));
}

}  // namespace
}  // namespace afbus
