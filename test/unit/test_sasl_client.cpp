#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "afbus/address.hpp"
#include "afbus/fd.hpp"
#include "afbus/sasl.hpp"
#include "sasl/sha1.hpp"
#include "support/child_process.hpp"
#include "support/hex.hpp"

namespace afbus {
namespace {

using namespace std::string_literals;

constexpr std::string_view kGuid = "0123456789abcdef0123456789abcdef";
const std::string kOk = "OK "s + std::string(kGuid) + "\r\n";

using test::hex;
using test::unhex;

SaslClientConfig make_config() {
    SaslClientConfig config;
    config.uid = 1000;
    return config;
}

// The initial "\0AUTH ..." when a test only cares about what follows.
void discard_output(SaslClient& client) {
    static_cast<void>(client.take_output());
}

std::string converse(SaslClient& client, std::string_view input) {
    EXPECT_EQ(client.feed(input), input.size());
    return client.take_output();
}

TEST(SaslClient, ExternalWithInitialResponseIsTheDefault) {
    SaslClient client(make_config());
    EXPECT_EQ(client.take_output(), "\0AUTH EXTERNAL 31303030\r\n"s);
    EXPECT_EQ(client.state(), SaslClient::State::WaitingForOk);
    EXPECT_EQ(converse(client, kOk), "BEGIN\r\n");
    EXPECT_TRUE(client.authenticated());
    EXPECT_EQ(client.server_guid(), kGuid);
    EXPECT_EQ(client.mechanism(), SaslMechanism::External);
    EXPECT_FALSE(client.unix_fd_agreed());
}

TEST(SaslClient, ExternalWithoutInitialResponse) {
    auto config = make_config();
    config.external_initial_response = false;
    SaslClient empty_data(config);
    EXPECT_EQ(empty_data.take_output(), "\0AUTH EXTERNAL\r\n"s);
    EXPECT_EQ(empty_data.state(), SaslClient::State::WaitingForData);
    EXPECT_EQ(converse(empty_data, "DATA\r\n"), "DATA\r\n");
    EXPECT_EQ(converse(empty_data, kOk), "BEGIN\r\n");

    config.external_identity_in_data = true;
    SaslClient identity(config);
    EXPECT_EQ(identity.take_output(), "\0AUTH EXTERNAL\r\n"s);
    EXPECT_EQ(converse(identity, "DATA\r\n"), "DATA 31303030\r\n");
    EXPECT_EQ(converse(identity, kOk), "BEGIN\r\n");
    EXPECT_TRUE(identity.authenticated());
}

TEST(SaslClient, NegotiatesUnixFds) {
    auto config = make_config();
    config.negotiate_unix_fd = true;
    SaslClient agreed(config);
    discard_output(agreed);
    EXPECT_EQ(converse(agreed, kOk), "NEGOTIATE_UNIX_FD\r\n");
    EXPECT_EQ(agreed.state(), SaslClient::State::WaitingForAgreeUnixFd);
    EXPECT_EQ(converse(agreed, "AGREE_UNIX_FD\r\n"), "BEGIN\r\n");
    EXPECT_TRUE(agreed.authenticated());
    EXPECT_TRUE(agreed.unix_fd_agreed());

    SaslClient refused(config);
    discard_output(refused);
    EXPECT_EQ(converse(refused, kOk + "ERROR \"Not supported\"\r\n"), "NEGOTIATE_UNIX_FD\r\nBEGIN\r\n");
    EXPECT_TRUE(refused.authenticated());
    EXPECT_FALSE(refused.unix_fd_agreed());

    SaslClient confused(config);
    discard_output(confused);
    EXPECT_EQ(converse(confused, kOk + "DATA\r\n"), "NEGOTIATE_UNIX_FD\r\n");
    EXPECT_TRUE(confused.failed());
    EXPECT_EQ(confused.error(), SaslError::UnexpectedReply);
}

TEST(SaslClient, FallsBackThroughMechanismsInOrder) {
    auto config = make_config();
    config.mechanisms = {SaslMechanism::External, SaslMechanism::Anonymous};
    config.anonymous_trace = "trace";
    SaslClient client(config);
    EXPECT_EQ(client.take_output(), "\0AUTH EXTERNAL 31303030\r\n"s);
    EXPECT_EQ(converse(client, "REJECTED EXTERNAL ANONYMOUS\r\n"), "AUTH ANONYMOUS 7472616365\r\n");
    EXPECT_EQ(client.mechanism(), SaslMechanism::Anonymous);
    EXPECT_EQ(converse(client, kOk), "BEGIN\r\n");
    EXPECT_TRUE(client.authenticated());
}

TEST(SaslClient, SkipsMechanismsTheServerDoesNotList) {
    auto config = make_config();
    config.mechanisms = {SaslMechanism::External, SaslMechanism::DbusCookieSha1, SaslMechanism::Anonymous};
    config.anonymous_trace.clear();
    SaslClient client(config);
    discard_output(client);
    EXPECT_EQ(converse(client, "REJECTED ANONYMOUS KERBEROS_V4\r\n"), "AUTH ANONYMOUS\r\n");
    // Lists after the first are ignored; nothing is left to try.
    EXPECT_EQ(converse(client, "REJECTED DBUS_COOKIE_SHA1\r\n"), "");
    EXPECT_TRUE(client.failed());
    EXPECT_EQ(client.error(), SaslError::MechanismsExhausted);
}

TEST(SaslClient, RejectedWithoutListTriesTheNextConfiguredMechanism) {
    auto config = make_config();
    config.mechanisms = {SaslMechanism::External, SaslMechanism::Anonymous};
    config.anonymous_trace.clear();
    SaslClient client(config);
    discard_output(client);
    EXPECT_EQ(converse(client, "REJECTED\r\n"), "AUTH ANONYMOUS\r\n");
}

TEST(SaslClient, ServerErrorLeadsToCancel) {
    auto config = make_config();
    config.mechanisms = {SaslMechanism::External, SaslMechanism::Anonymous};
    config.anonymous_trace.clear();
    SaslClient client(config);
    discard_output(client);
    EXPECT_EQ(converse(client, "ERROR \"huh\"\r\n"), "CANCEL\r\n");
    EXPECT_EQ(client.state(), SaslClient::State::WaitingForReject);
    EXPECT_EQ(converse(client, "REJECTED EXTERNAL ANONYMOUS\r\n"), "AUTH ANONYMOUS\r\n");

    SaslClient other(config);
    discard_output(other);
    EXPECT_EQ(converse(other, "DATA 00\r\n"), "CANCEL\r\n");
    EXPECT_EQ(converse(other, kOk), "");
    EXPECT_TRUE(other.failed());
    EXPECT_EQ(other.error(), SaslError::UnexpectedReply);
}

TEST(SaslClient, UnknownRepliesGetErrorAndAreOtherwiseIgnored) {
    SaslClient client(make_config());
    discard_output(client);
    EXPECT_EQ(converse(client, "EXTENSION_FOO bar\r\nAGREE_UNIX_FD\r\n"),
              "ERROR \"Unknown command\"\r\nERROR \"Unknown command\"\r\n");
    EXPECT_EQ(client.state(), SaslClient::State::WaitingForOk);
    EXPECT_EQ(converse(client, kOk), "BEGIN\r\n");
}

TEST(SaslClient, InvalidGuidFails) {
    for (const std::string_view ok :
         {"OK\r\n", "OK 1234deadbeef\r\n", "OK 0123456789abcdef0123456789abcdeg\r\n"}) {
        SaslClient client(make_config());
        discard_output(client);
        EXPECT_EQ(converse(client, ok), "");
        EXPECT_EQ(client.error(), SaslError::InvalidGuid) << ok;
    }
}

TEST(SaslClient, StopsConsumingAfterTheFinalReply) {
    SaslClient client(make_config());
    discard_output(client);
    const std::string input = kOk + "l\x01\x00\x02"s;
    EXPECT_EQ(client.feed(input), kOk.size());
    EXPECT_EQ(client.feed("more"), 0u);
    // The caller appends its first message (Hello) to the BEGIN it sends.
    const std::string write = client.take_output() + "HELLO-MESSAGE";
    EXPECT_EQ(write, "BEGIN\r\nHELLO-MESSAGE");
}

TEST(SaslClient, OneByteAtATime) {
    auto config = make_config();
    config.negotiate_unix_fd = true;
    config.external_initial_response = false;
    SaslClient client(config);
    std::string output = client.take_output();
    const std::string replies = "DATA\r\n" + kOk + "AGREE_UNIX_FD\r\n";
    for (char c : replies) {
        EXPECT_EQ(client.feed(std::string_view(&c, 1)), 1u);
        output += client.take_output();
    }
    EXPECT_EQ(output, "\0AUTH EXTERNAL\r\nDATA\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n"s);
    EXPECT_TRUE(client.unix_fd_agreed());
}

TEST(SaslClient, GarbageFromTheServer) {
    {
        SaslClient client(make_config());
        discard_output(client);
        client.feed(std::string(kSaslMaxLineLength, 'x'));
        EXPECT_EQ(client.error(), SaslError::LineTooLong);
        EXPECT_EQ(client.feed(kOk), 0u);
        EXPECT_EQ(client.take_output(), "");
    }
    {
        SaslClient client(make_config());
        discard_output(client);
        client.feed("OK \0\r\n"s);
        EXPECT_EQ(client.error(), SaslError::InvalidByte);
    }
}

class KeyringTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/afbus-keyring-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        directory_ = pattern;
        ASSERT_EQ(::chmod(directory_.c_str(), 0700), 0);
        // Cookies expire after 7 minutes (the client ignores older ones, as libdbus does).
        const auto now = static_cast<long long>(::time(nullptr));
        std::ofstream(directory_ + "/org_freedesktop_general")
            << "6 " << now - 3600 << " 00112233445566778899aabbccddeeff\n"
            << "7 " << now - 100 << " 00112233445566778899aabbccddeeff\n"
            << "8 " << now - 10 << " " << kCookie << "\n";
    }
    void TearDown() override { std::filesystem::remove_all(directory_); }

    SaslClientConfig cookie_config() const {
        auto config = make_config();
        config.mechanisms = {SaslMechanism::DbusCookieSha1, SaslMechanism::External};
        config.keyring_directory = directory_;
        return config;
    }

    static constexpr std::string_view kCookie = "d4a9c3be6f7a1c2b9e8f0a1b2c3d4e5f60718293a4b5c6d7";
    std::string directory_;
};

TEST_F(KeyringTest, CookieSha1Response) {
    SaslClient client(cookie_config());
    EXPECT_EQ(client.take_output(), "\0AUTH DBUS_COOKIE_SHA1 31303030\r\n"s);
    EXPECT_EQ(client.state(), SaslClient::State::WaitingForData);
    const std::string server_challenge = "5ac1e6b15f4c8d2a";
    const std::string output =
        converse(client, "DATA " + hex("org_freedesktop_general 8 " + server_challenge) + "\r\n");
    ASSERT_TRUE(output.starts_with("DATA ") && output.ends_with("\r\n")) << output;
    const std::string response = unhex(output.substr(5, output.size() - 7));
    const std::size_t space = response.find(' ');
    ASSERT_NE(space, std::string::npos);
    const std::string client_challenge = response.substr(0, space);
    EXPECT_EQ(client_challenge.size(), 64u);
    EXPECT_EQ(response.substr(space + 1),
              Sha1::hex_digest(server_challenge + ":" + client_challenge + ":" + std::string(kCookie)));
    EXPECT_EQ(converse(client, kOk), "BEGIN\r\n");
    EXPECT_TRUE(client.authenticated());
    EXPECT_EQ(client.mechanism(), SaslMechanism::DbusCookieSha1);

    // The client challenge is random each time.
    SaslClient again(cookie_config());
    discard_output(again);
    EXPECT_NE(converse(again, "DATA " + hex("org_freedesktop_general 8 " + server_challenge) + "\r\n"),
              output);
}

TEST_F(KeyringTest, CookieProblemsSendErrorThenFallBack) {
    struct Case {
        std::string challenge;
        std::string problem;
    };
    const std::vector<Case> cases = {
        {"org_freedesktop_general 9 abc", "cookie not found in keyring"},
        {"org_freedesktop_general 6 abc", "cookie not found in keyring"},  // expired an hour ago
        {"no_such_context 8 abc", "No such file or directory"},
        {"../etc 8 abc", "malformed DBUS_COOKIE_SHA1 challenge"},
        {"org_freedesktop_general x abc", "malformed DBUS_COOKIE_SHA1 cookie id"},
        {"org_freedesktop_general 8", "malformed DBUS_COOKIE_SHA1 challenge"},
    };
    for (const auto& c : cases) {
        SaslClient client(cookie_config());
        discard_output(client);
        const std::string output = converse(client, "DATA " + hex(c.challenge) + "\r\n");
        EXPECT_TRUE(output.starts_with("ERROR \"")) << output;
        EXPECT_NE(client.last_mechanism_problem().find(c.problem), std::string::npos)
            << c.challenge << ": " << client.last_mechanism_problem();
        EXPECT_EQ(client.state(), SaslClient::State::WaitingForData);
        EXPECT_EQ(converse(client, "REJECTED DBUS_COOKIE_SHA1 EXTERNAL\r\n"), "AUTH EXTERNAL 31303030\r\n");
    }
}

TEST_F(KeyringTest, KeyringReadableByOthersIsIgnored) {
    ASSERT_EQ(::chmod(directory_.c_str(), 0755), 0);
    SaslClient client(cookie_config());
    discard_output(client);
    EXPECT_TRUE(
        converse(client, "DATA " + hex("org_freedesktop_general 8 abc") + "\r\n").starts_with("ERROR"));
    EXPECT_EQ(client.last_mechanism_problem(), "keyring directory is not private to the user");
}

// Reads from fd until the client has finished, with a generous poll timeout instead of sleeps.
void drive(int fd, SaslClient& client) {
    std::string pending;
    while (!client.authenticated() && !client.failed()) {
        const std::string out = client.take_output();
        if (!out.empty()) {
            ASSERT_EQ(::send(fd, out.data(), out.size(), MSG_NOSIGNAL), static_cast<ssize_t>(out.size()));
        }
        pollfd pfd{fd, POLLIN, 0};
        ASSERT_EQ(::poll(&pfd, 1, 10000), 1) << "dbus-daemon did not answer";
        char buffer[512];
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        ASSERT_GT(n, 0);
        pending.append(buffer, static_cast<std::size_t>(n));
        pending.erase(0, client.feed(pending));
    }
}

TEST(SaslClientAgainstDbusDaemon, ExternalWithUnixFdNegotiationAndPipelinedHello) {
    if (::access("/usr/bin/dbus-daemon", X_OK) != 0) GTEST_SKIP() << "dbus-daemon not installed";
    char pattern[] = "/tmp/afbus-sasl-daemon-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    const std::string directory = pattern;

    struct RemoveDirectory {
        std::string path;
        ~RemoveDirectory() { std::filesystem::remove_all(path); }
    } remove_directory{directory};  // destroyed after the daemon, declared below: once it is killed
    test::ChildProcess daemon({"/usr/bin/dbus-daemon", "--session", "--nofork", "--print-address=1",
                               "--address=unix:tmpdir=" + directory},
                              test::child_environment({}));

    // The daemon prints its address (and a newline) once it listens.
    const auto deadline = test::Clock::now() + std::chrono::seconds(10);
    while (daemon.out().find('\n') == std::string::npos) {
        ASSERT_FALSE(daemon.finished()) << "dbus-daemon exited: " << daemon.report();
        std::vector<pollfd> watched;
        daemon.fds(watched);
        ASSERT_GT(::poll(watched.data(), watched.size(), test::remaining_ms(deadline)), 0)
            << "dbus-daemon did not print its address: " << daemon.report();
        daemon.on_ready();
    }
    const std::string printed = daemon.out().substr(0, daemon.out().find('\n'));
    auto entries = parse_address_list(printed);
    ASSERT_TRUE(entries) << printed << ": " << to_string(entries.error());
    ASSERT_EQ(entries->size(), 1u);
    ASSERT_TRUE(check_connectable(entries->front())) << printed;
    const auto path = unix_socket_path(entries->front(), process_environment());
    ASSERT_TRUE(path) << to_string(path.error());
    const auto guid = entries->front().guid();
    ASSERT_TRUE(guid);

    Fd socket_fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(socket_fd);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path->data(), path->size());
    const auto length =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path->size() + ((*path)[0] != '\0'));
    ASSERT_EQ(::connect(socket_fd.get(), reinterpret_cast<sockaddr*>(&address), length), 0)
        << std::strerror(errno);

    SaslClientConfig config;
    config.uid = ::geteuid();
    config.negotiate_unix_fd = true;
    SaslClient client(config);
    drive(socket_fd.get(), client);
    ASSERT_TRUE(client.authenticated()) << to_string(*client.error());
    EXPECT_TRUE(client.unix_fd_agreed());
    EXPECT_EQ(client.server_guid(), *guid);

    // BEGIN and Hello in one write: the daemon must answer Hello with a METHOD_RETURN.
    static constexpr unsigned char kHello[] = {
        0x6c, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x6d, 0x00, 0x00, 0x00,
        0x01, 0x01, 0x6f, 0x00, 0x15, 0x00, 0x00, 0x00, 0x2f, 0x6f, 0x72, 0x67, 0x2f, 0x66, 0x72, 0x65,
        0x65, 0x64, 0x65, 0x73, 0x6b, 0x74, 0x6f, 0x70, 0x2f, 0x44, 0x42, 0x75, 0x73, 0x00, 0x00, 0x00,
        0x03, 0x01, 0x73, 0x00, 0x05, 0x00, 0x00, 0x00, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00, 0x00, 0x00,
        0x02, 0x01, 0x73, 0x00, 0x14, 0x00, 0x00, 0x00, 0x6f, 0x72, 0x67, 0x2e, 0x66, 0x72, 0x65, 0x65,
        0x64, 0x65, 0x73, 0x6b, 0x74, 0x6f, 0x70, 0x2e, 0x44, 0x42, 0x75, 0x73, 0x00, 0x00, 0x00, 0x00,
        0x06, 0x01, 0x73, 0x00, 0x14, 0x00, 0x00, 0x00, 0x6f, 0x72, 0x67, 0x2e, 0x66, 0x72, 0x65, 0x65,
        0x64, 0x65, 0x73, 0x6b, 0x74, 0x6f, 0x70, 0x2e, 0x44, 0x42, 0x75, 0x73, 0x00, 0x00, 0x00, 0x00};
    std::string write = client.take_output();
    EXPECT_EQ(write, "BEGIN\r\n");
    write.append(reinterpret_cast<const char*>(kHello), sizeof kHello);
    ASSERT_EQ(::send(socket_fd.get(), write.data(), write.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(write.size()));
    pollfd pfd{socket_fd.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&pfd, 1, 10000), 1) << "no reply to Hello";
    char reply[16];
    ASSERT_GE(::recv(socket_fd.get(), reply, sizeof reply, MSG_WAITALL), 2);
    EXPECT_EQ(reply[0], 'l');
    EXPECT_EQ(reply[1], 2) << "expected METHOD_RETURN to Hello";
}

}  // namespace
}  // namespace afbus
