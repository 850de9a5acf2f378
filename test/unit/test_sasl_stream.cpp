// SaslStream: the one socket loop both sides of the SASL conversation use. Client and server run over a
// socketpair in one thread, each advanced when the other has written, so no test waits on time.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "afbus/fd.hpp"
#include "afbus/sasl.hpp"
#include "afbus/sasl_stream.hpp"

using namespace afbus;

namespace {

struct SocketPair {
    Fd client;
    Fd server;
};

SocketPair make_pair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
    return {Fd(fds[0]), Fd(fds[1])};
}

SaslServerConfig server_config() {
    SaslServerConfig config;
    config.guid = std::string(32, 'a');
    config.peer_uid = ::geteuid();
    config.unix_fd_possible = true;
    return config;
}

SaslClientConfig client_config() {
    SaslClientConfig config;
    config.uid = ::geteuid();
    config.negotiate_unix_fd = true;
    return config;
}

// Advances both sides in turn until neither makes progress; returns the last results.
struct Outcome {
    Expected<SaslProgress, SaslStreamError> client = SaslProgress{SaslProgress::Kind::WantRead, {}};
    Expected<SaslProgress, SaslStreamError> server = SaslProgress{SaslProgress::Kind::WantRead, {}};
};

bool done(const Expected<SaslProgress, SaslStreamError>& r) {
    return !r || r->kind == SaslProgress::Kind::Authenticated;
}

Outcome converse(SocketPair& sockets, SaslClient& client, SaslServer& server) {
    SaslStream client_stream;
    SaslStream server_stream;
    Outcome outcome;
    // Each round trip of the conversation needs one advance of each side; 20 is far more than EXTERNAL
    // with fd negotiation takes.
    for (int round = 0; round < 20 && !(done(outcome.client) && done(outcome.server)); ++round) {
        if (!done(outcome.client)) outcome.client = client_stream.advance(sockets.client.get(), client);
        if (!done(outcome.server)) outcome.server = server_stream.advance(sockets.server.get(), server);
    }
    return outcome;
}

}  // namespace

TEST(SaslStream, BothSidesAuthenticateOverOneSocket) {
    auto sockets = make_pair();
    SaslClient client(client_config());
    SaslServer server(server_config());
    const Outcome outcome = converse(sockets, client, server);
    ASSERT_TRUE(outcome.client) << outcome.client.error().describe();
    ASSERT_TRUE(outcome.server) << outcome.server.error().describe();
    EXPECT_EQ(outcome.client->kind, SaslProgress::Kind::Authenticated);
    EXPECT_EQ(outcome.server->kind, SaslProgress::Kind::Authenticated);
    EXPECT_TRUE(client.unix_fd_agreed());
    EXPECT_TRUE(server.unix_fd_agreed());
    EXPECT_EQ(client.server_guid(), std::string(32, 'a'));
    EXPECT_TRUE(outcome.server->leftover.empty());
}

TEST(SaslStream, BytesPipelinedBehindBeginGoToTheTransport) {
    auto sockets = make_pair();
    SaslServer server(server_config());
    SaslStream stream;
    const std::string uid_hex = [] {
        std::string decimal = std::to_string(::geteuid()), hex;
        static constexpr char kDigits[] = "0123456789abcdef";
        for (unsigned char c : decimal) {
            hex += kDigits[c >> 4];
            hex += kDigits[c & 15];
        }
        return hex;
    }();
    // What sd-bus writes at once: the whole conversation and the first message.
    const std::string message("l\1\0\1message", 11);
    const std::string written = std::string(1, '\0') + "AUTH EXTERNAL " + uid_hex + "\r\nBEGIN\r\n" + message;
    ASSERT_EQ(::send(sockets.client.get(), written.data(), written.size(), 0), static_cast<ssize_t>(written.size()));
    auto progress = stream.advance(sockets.server.get(), server);
    ASSERT_TRUE(progress) << progress.error().describe();
    ASSERT_EQ(progress->kind, SaslProgress::Kind::Authenticated);
    EXPECT_EQ(progress->leftover, message);
    char reply[128];
    const ssize_t n = ::recv(sockets.client.get(), reply, sizeof reply, 0);
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(reply, static_cast<std::size_t>(n)), "OK " + std::string(32, 'a') + "\r\n");
}

TEST(SaslStream, PeerHangingUpIsReportedAsClosed) {
    auto sockets = make_pair();
    SaslServer server(server_config());
    sockets.client.reset();
    SaslStream stream;
    auto progress = stream.advance(sockets.server.get(), server);
    ASSERT_FALSE(progress);
    EXPECT_EQ(progress.error().kind, SaslStreamError::Kind::Closed);
}

TEST(SaslStream, FailedServerSendsItsLastReplyAndReportsWhy) {
    auto sockets = make_pair();
    SaslServerConfig config = server_config();
    config.max_rejections = 1;
    SaslServer server(config);
    const std::string written = std::string(1, '\0') + "AUTH NONSENSE\r\n";
    ASSERT_EQ(::send(sockets.client.get(), written.data(), written.size(), 0), static_cast<ssize_t>(written.size()));
    SaslStream stream;
    auto progress = stream.advance(sockets.server.get(), server);
    ASSERT_FALSE(progress);
    EXPECT_EQ(progress.error().kind, SaslStreamError::Kind::Rejected);
    EXPECT_EQ(progress.error().sasl, SaslError::TooManyRejections);
    char reply[128];
    const ssize_t n = ::recv(sockets.client.get(), reply, sizeof reply, 0);
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(reply, static_cast<std::size_t>(n)).rfind("REJECTED", 0), 0u);
}

TEST(SaslStream, FullSocketMakesItWaitForWritingAndLosesNothing) {
    auto sockets = make_pair();
    // Fill the client's direction so its first line cannot be sent.
    std::string filler(4096, 'x');
    std::size_t stuffed = 0;
    for (;;) {
        const ssize_t n = ::send(sockets.client.get(), filler.data(), filler.size(), MSG_DONTWAIT);
        if (n < 0) break;
        stuffed += static_cast<std::size_t>(n);
    }
    ASSERT_GT(stuffed, 0u);
    SaslClient client(client_config());
    SaslStream stream;
    auto progress = stream.advance(sockets.client.get(), client);
    ASSERT_TRUE(progress);
    EXPECT_EQ(progress->kind, SaslProgress::Kind::WantWrite);
    EXPECT_TRUE(stream.wants_write());

    // Drain the filler; the next advance sends the whole AUTH line and then waits for the answer.
    std::string received;
    char buffer[65536];
    while (received.size() < stuffed) {
        const ssize_t n = ::recv(sockets.server.get(), buffer, std::min(sizeof buffer, stuffed - received.size()), 0);
        ASSERT_GT(n, 0);
        received.append(buffer, static_cast<std::size_t>(n));
    }
    progress = stream.advance(sockets.client.get(), client);
    ASSERT_TRUE(progress);
    EXPECT_EQ(progress->kind, SaslProgress::Kind::WantRead);
    EXPECT_FALSE(stream.wants_write());
    const ssize_t n = ::recv(sockets.server.get(), buffer, sizeof buffer, 0);
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(buffer, static_cast<std::size_t>(n)).rfind(std::string(1, '\0') + "AUTH EXTERNAL ", 0), 0u);
}
