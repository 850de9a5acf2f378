// DBUS_COOKIE_SHA1 over tcp: against dbus-daemon 1.14 (the reference) and afbus-daemon (AFBUS_TEST_DAEMON),
// with the same assertions. HOME points at a temporary directory for this process and the daemons it
// spawns, so both sides use <tmp>/.dbus-keyrings and never the real user's keyring.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <string>

#include "afbus/address.hpp"
#include "afbus/connection.hpp"
#include "afbus/fd.hpp"
#include "afbus/keyring.hpp"
#include "afbus/types.hpp"
#include "test_bus.hpp"
#include "support/hex.hpp"
#include "support/raw_peer.hpp"

namespace afbus {
namespace {

using namespace std::string_literals;
using test::driver_call;
using test::TestBus;
using test::TestBusOptions;

constexpr std::string_view kContextFile = "org_freedesktop_general";

using test::hex;

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class CookieAuth : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/afbus-cookie-home-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        home_ = pattern;
        if (const char* home = std::getenv("HOME")) saved_home_ = home;
        ASSERT_EQ(::setenv("HOME", home_.c_str(), 1), 0);
        keyrings_ = home_ + "/.dbus-keyrings";
    }
    void TearDown() override {
        if (saved_home_) ::setenv("HOME", saved_home_->c_str(), 1);
        else ::unsetenv("HOME");
        std::error_code ignored;
        std::filesystem::remove_all(home_, ignored);
    }

    static TestBusOptions tcp_bus() {
        TestBusOptions options;
        options.listen = "tcp:host=127.0.0.1,port=0";
        options.auth = "DBUS_COOKIE_SHA1";
        return options;
    }
    static ConnectOptions cookie_only() {
        ConnectOptions options;
        options.mechanisms = {SaslMechanism::DbusCookieSha1};
        return options;
    }
    // A keyring whose one cookie (id 42) is fresh enough for both daemons to use rather than replace.
    static void write_keyring(const std::string& directory, std::string_view secret) {
        ASSERT_EQ(::mkdir(directory.c_str(), 0700), 0);
        std::ofstream(directory + "/" + std::string(kContextFile)) << "42 " << ::time(nullptr) << " " << secret << "\n";
    }

    std::string home_;
    std::string keyrings_;
    std::optional<std::string> saved_home_;
};

TEST_F(CookieAuth, HelloAndGetIdOverTcp) {
    TestBus bus(tcp_bus());
    ASSERT_TRUE(bus.address().starts_with("tcp:")) << bus.address();
    auto c = Connection::open(bus.address(), cookie_only());
    ASSERT_TRUE(c) << c.error().name << ": " << c.error().message;
    auto& connection = **c;
    EXPECT_TRUE(connection.unique_name().starts_with(":1.")) << connection.unique_name();
    EXPECT_FALSE(connection.unix_fd_passing());

    auto id = connection.call(driver_call("GetId"));
    ASSERT_TRUE(id) << id.error().message;
    auto [bus_id] = read_all<std::string>(*id).value();
    // (dbus-daemon's bus id is not the listener's GUID, so only the form is checked.)
    EXPECT_EQ(bus_id.size(), 32u);
    EXPECT_EQ(bus_id.find_first_not_of("0123456789abcdef"), std::string::npos) << bus_id;
    EXPECT_NE(bus.address().find("guid=" + connection.server_guid()), std::string::npos);

    // The bus knows the user the cookie proved (TCP itself tells nothing).
    auto uid = connection.call(driver_call("GetConnectionUnixUser", connection.unique_name()));
    ASSERT_TRUE(uid) << uid.error().name << ": " << uid.error().message;
    EXPECT_EQ(std::get<0>(read_all<std::uint32_t>(*uid).value()), ::getuid());
    auto credentials = connection.call(driver_call("GetConnectionCredentials", connection.unique_name()));
    ASSERT_TRUE(credentials) << credentials.error().message;
    auto [fields] = read_all<std::map<std::string, Variant>>(*credentials).value();
    ASSERT_TRUE(fields.contains("UnixUserID"));
    EXPECT_EQ(fields.at("UnixUserID"), Variant(static_cast<std::uint32_t>(::getuid())));
    EXPECT_FALSE(fields.contains("UnixGroupIDs"));
    EXPECT_FALSE(fields.contains("LinuxSecurityLabel"));

    // The daemon created the keyring: a private directory and a private file with one cookie.
    struct stat status {};
    ASSERT_EQ(::stat(keyrings_.c_str(), &status), 0);
    EXPECT_EQ(status.st_mode & 07777, 0700u);
    const std::string file = keyrings_ + "/" + std::string(kContextFile);
    ASSERT_EQ(::stat(file.c_str(), &status), 0);
    EXPECT_EQ(status.st_mode & 07777, 0600u);
    const std::string cookies = read_text(file);
    EXPECT_EQ(std::count(cookies.begin(), cookies.end(), '\n'), 1) << cookies;

    // A second client gets the same (recent) cookie: the file does not change.
    auto again = Connection::open(bus.address(), cookie_only());
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(read_text(file), cookies);
    EXPECT_NE((*again)->unique_name(), connection.unique_name());
}

TEST_F(CookieAuth, DefaultMechanismsFallBackFromExternalToTheCookie) {
    TestBus bus(tcp_bus());
    auto c = Connection::open(bus.address());
    ASSERT_TRUE(c) << c.error().name << ": " << c.error().message;
    EXPECT_TRUE((*c)->call(driver_call("GetId")));
}

class RawClient {
public:
    explicit RawClient(const TestBus& bus) {
        auto entries = parse_address_list(bus.address());
        EXPECT_TRUE(entries && entries->size() == 1);
        if (!entries || entries->empty()) return;
        const auto port_text = entries->front().get("port");
        EXPECT_TRUE(port_text);
        unsigned port = 0;
        std::from_chars(port_text->data(), port_text->data() + port_text->size(), port);
        socket_ = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(static_cast<std::uint16_t>(port));
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::connect(socket_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    }

    // Sends `line` and returns the server's one-line reply (empty if there was none within 10 s).
    std::string exchange(const std::string& line) {
        EXPECT_EQ(::send(socket_.get(), line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
        while (buffer_.find("\r\n") == std::string::npos) {
            pollfd p{socket_.get(), POLLIN, 0};
            if (::poll(&p, 1, 10000) != 1) return {};
            char chunk[512];
            const ssize_t n = ::recv(socket_.get(), chunk, sizeof chunk, 0);
            if (n <= 0) return {};
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
        const std::size_t end = buffer_.find("\r\n") + 2;
        std::string reply = buffer_.substr(0, end);
        buffer_.erase(0, end);
        return reply;
    }

private:
    Fd socket_;
    std::string buffer_;
};

TEST_F(CookieAuth, HandshakeDetailsMatch) {
    TestBus bus(tcp_bus());
    RawClient client(bus);
    EXPECT_EQ(client.exchange("\0AUTH\r\n"s), "REJECTED DBUS_COOKIE_SHA1\r\n");
    // EXTERNAL is not configured (and TCP has no credentials anyway).
    EXPECT_EQ(client.exchange("AUTH EXTERNAL " + hex(std::to_string(::getuid())) + "\r\n"), "REJECTED DBUS_COOKIE_SHA1\r\n");
    // Only the user the daemon runs as can use its keyring.
    EXPECT_EQ(client.exchange("AUTH DBUS_COOKIE_SHA1 " + hex(std::to_string(::getuid() + 1)) + "\r\n"),
              "REJECTED DBUS_COOKIE_SHA1\r\n");
    // No identity: rejected at once rather than asked for.
    EXPECT_EQ(client.exchange("AUTH DBUS_COOKIE_SHA1\r\n"), "REJECTED DBUS_COOKIE_SHA1\r\n");
    // A login name works as well as the uid.
    const passwd* me = ::getpwuid(::getuid());
    ASSERT_NE(me, nullptr);
    const std::string challenge = client.exchange("AUTH DBUS_COOKIE_SHA1 " + hex(me->pw_name) + "\r\n");
    ASSERT_TRUE(challenge.starts_with("DATA ")) << challenge;
    // "org_freedesktop_general <id> <32 hex digits>", hex-encoded.
    const std::string prefix = hex("org_freedesktop_general ");
    EXPECT_EQ(challenge.substr(5, prefix.size()), prefix) << challenge;
    // A wrong answer is rejected.
    EXPECT_EQ(client.exchange("DATA " + hex("abc " + std::string(40, '0')) + "\r\n"), "REJECTED DBUS_COOKIE_SHA1\r\n");
}

TEST_F(CookieAuth, WrongCookieIsRejected) {
    write_keyring(keyrings_, "00112233445566778899aabbccddeeff0011223344556677");
    const std::string before = read_text(keyrings_ + "/" + std::string(kContextFile));
    // The client's keyring has a cookie 42 too, but another secret.
    const std::string elsewhere = home_ + "/elsewhere";
    write_keyring(elsewhere, "ffeeddccbbaa99887766554433221100ffeeddccbbaa9988");
    TestBus bus(tcp_bus());
    auto options = cookie_only();
    options.keyring_directory = elsewhere;
    auto refused = Connection::open(bus.address(), options);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().name, "org.freedesktop.DBus.Error.AuthFailed") << refused.error().message;
    // The daemon used the recent cookie 42 rather than making a new one...
    EXPECT_EQ(read_text(keyrings_ + "/" + std::string(kContextFile)), before);
    // ...which the right keyring answers.
    auto accepted = Connection::open(bus.address(), cookie_only());
    ASSERT_TRUE(accepted) << accepted.error().message;
    EXPECT_TRUE((*accepted)->call(driver_call("GetId")));
}

TEST_F(CookieAuth, KeyringOthersCanReadIsRefusedByBothSides) {
    ASSERT_EQ(::mkdir(keyrings_.c_str(), 0700), 0);
    ASSERT_EQ(::chmod(keyrings_.c_str(), 0750), 0);
    TestBus bus(tcp_bus());
    auto refused = Connection::open(bus.address(), cookie_only());
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().name, "org.freedesktop.DBus.Error.AuthFailed") << refused.error().message;
    // The daemon wrote nothing into a directory it must ignore.
    EXPECT_TRUE(std::filesystem::is_empty(keyrings_));
}

}  // namespace
}  // namespace afbus
