#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "afbus/sasl.hpp"

namespace afbus {
namespace {

using namespace std::string_literals;

constexpr std::string_view kGuid = "0123456789abcdef0123456789abcdef";
const std::string kOk = "OK "s + std::string(kGuid) + "\r\n";

SaslServerConfig make_config() {
    SaslServerConfig config;
    config.mechanisms = {SaslMechanism::External, SaslMechanism::Anonymous, SaslMechanism::DbusCookieSha1};
    config.guid = kGuid;
    config.peer_uid = 1000;
    config.unix_fd_possible = true;
    return config;
}

// Feeds everything and returns what the server answered.
std::string converse(SaslServer& server, std::string_view input) {
    const std::size_t consumed = server.feed(input);
    EXPECT_LE(consumed, input.size());
    return server.take_output();
}

TEST(SaslServer, ExternalWithInitialResponse) {
    SaslServer server(make_config());
    EXPECT_EQ(server.state(), SaslServer::State::WaitingForNul);
    EXPECT_EQ(converse(server, "\0AUTH EXTERNAL 31303030\r\n"s), kOk);
    EXPECT_EQ(server.state(), SaslServer::State::WaitingForBegin);
    EXPECT_EQ(converse(server, "BEGIN\r\n"), "");
    EXPECT_TRUE(server.authenticated());
    EXPECT_EQ(server.authenticated_uid(), 1000u);
    EXPECT_EQ(server.mechanism(), SaslMechanism::External);
    EXPECT_FALSE(server.anonymous());
    EXPECT_FALSE(server.unix_fd_agreed());
}

TEST(SaslServer, ExternalWithoutInitialResponse) {
    struct Case {
        std::string data_line;
        std::string reply;
    };
    const std::vector<Case> cases = {
        {"DATA\r\n", kOk},                               // empty: use the kernel's identity
        {"DATA \r\n", kOk},                              // libdbus tolerates the trailing blank
        {"DATA 31303030\r\n", kOk},                      // the matching identity
        {"DATA 30\r\n", "REJECTED EXTERNAL\r\n"},        // uid 0 is not the peer
        {"DATA 726f6f74\r\n", "REJECTED EXTERNAL\r\n"},  // login names are not accepted
        {"DATA 3130303\r\n", "ERROR \"Invalid hex encoding\"\r\n"},
    };
    for (const auto& c : cases) {
        SaslServer server(make_config());
        EXPECT_EQ(converse(server, "\0AUTH EXTERNAL\r\n"s), "DATA\r\n");
        EXPECT_EQ(server.state(), SaslServer::State::WaitingForData);
        EXPECT_EQ(converse(server, c.data_line), c.reply) << c.data_line;
    }
}

TEST(SaslServer, ExternalIdentityMustBeTheKernelUid) {
    const std::vector<std::pair<std::string, bool>> identities = {
        {"1000", true},         {"01000", true},  {"1001", false},  {"0", false},          {"", true},
        {"99999999999", false}, {"-1000", false}, {"1000 ", false}, {"4294968296", false},  // 2^32 + 1000
                                                                                            // must not wrap
                                                                                            // to 1000
    };
    for (const auto& [identity, accepted] : identities) {
        SaslServer server(make_config());
        std::string hex;
        for (unsigned char c : identity) {
            static constexpr char kDigits[] = "0123456789abcdef";
            hex += kDigits[c >> 4];
            hex += kDigits[c & 0xF];
        }
        const std::string line =
            identity.empty() ? "AUTH EXTERNAL\r\nDATA\r\n" : "AUTH EXTERNAL " + hex + "\r\n";
        const std::string reply = converse(server, "\0"s + std::string(line));
        EXPECT_EQ(reply.ends_with(kOk), accepted) << identity << " -> " << reply;
    }
}

TEST(SaslServer, ExternalNeedsKernelCredentials) {
    auto config = make_config();
    config.peer_uid.reset();
    SaslServer server(config);
    EXPECT_EQ(converse(server, "\0AUTH EXTERNAL 31303030\r\n"s), "REJECTED EXTERNAL\r\n");
    EXPECT_EQ(converse(server, "AUTH EXTERNAL\r\nDATA\r\n"), "DATA\r\nREJECTED EXTERNAL\r\n");
    EXPECT_EQ(server.rejections(), 2u);
}

TEST(SaslServer, AuthWithoutMechanismListsOfferedOnes) {
    SaslServer server(make_config());
    // ANONYMOUS needs allow_anonymous, DBUS_COOKIE_SHA1 has no server side: neither is offered.
    EXPECT_EQ(converse(server, "\0AUTH\r\n"s), "REJECTED EXTERNAL\r\n");
    EXPECT_EQ(converse(server, "AUTH DBUS_COOKIE_SHA1 31303030\r\n"), "REJECTED EXTERNAL\r\n");
    EXPECT_EQ(converse(server, "AUTH KERBEROS_V4\r\n"), "REJECTED EXTERNAL\r\n");
    EXPECT_EQ(converse(server, "AUTH ANONYMOUS\r\n"), "REJECTED EXTERNAL\r\n");
    EXPECT_EQ(server.state(), SaslServer::State::WaitingForAuth);

    auto config = make_config();
    config.allow_anonymous = true;
    SaslServer permissive(config);
    EXPECT_EQ(converse(permissive, "\0AUTH\r\n"s), "REJECTED EXTERNAL ANONYMOUS\r\n");

    config.mechanisms.clear();
    SaslServer closed(config);
    EXPECT_EQ(converse(closed, "\0AUTH EXTERNAL 31303030\r\n"s), "REJECTED\r\n");
}

TEST(SaslServer, Anonymous) {
    auto config = make_config();
    config.allow_anonymous = true;
    for (const std::string_view line : {"AUTH ANONYMOUS\r\n", "AUTH ANONYMOUS 74726163652d696e666f\r\n"}) {
        SaslServer server(config);
        EXPECT_EQ(converse(server, "\0"s + std::string(line)), kOk);
        EXPECT_EQ(converse(server, "BEGIN\r\n"), "");
        EXPECT_TRUE(server.authenticated());
        EXPECT_TRUE(server.anonymous());
        EXPECT_EQ(server.authenticated_uid(), std::nullopt);
    }
}

TEST(SaslServer, NegotiateUnixFd) {
    SaslServer server(make_config());
    EXPECT_EQ(converse(server, "\0NEGOTIATE_UNIX_FD\r\n"s), "ERROR \"Need to authenticate first\"\r\n");
    EXPECT_EQ(converse(server, "AUTH EXTERNAL 31303030\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n"),
              kOk + "AGREE_UNIX_FD\r\n");
    EXPECT_TRUE(server.authenticated());
    EXPECT_TRUE(server.unix_fd_agreed());

    auto config = make_config();
    config.unix_fd_possible = false;
    SaslServer no_fds(config);
    EXPECT_EQ(converse(no_fds, "\0AUTH EXTERNAL 31303030\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n"s),
              kOk + "ERROR \"Unix fd passing is not supported on this transport\"\r\n");
    EXPECT_TRUE(no_fds.authenticated());
    EXPECT_FALSE(no_fds.unix_fd_agreed());
}

TEST(SaslServer, CancelAndClientError) {
    SaslServer server(make_config());
    EXPECT_EQ(converse(server, "\0CANCEL\r\n"s), "ERROR \"Not currently in an auth conversation\"\r\n");
    EXPECT_EQ(converse(server, "AUTH EXTERNAL\r\nCANCEL\r\n"), "DATA\r\nREJECTED EXTERNAL\r\n");
    EXPECT_EQ(converse(server, "AUTH EXTERNAL\r\nERROR\r\n"), "DATA\r\nREJECTED EXTERNAL\r\n");
    EXPECT_EQ(converse(server, "ERROR \"whatever\"\r\n"), "REJECTED EXTERNAL\r\n");
    // CANCEL after OK undoes the authentication and the fd agreement.
    EXPECT_EQ(converse(server, "AUTH EXTERNAL 31303030\r\nNEGOTIATE_UNIX_FD\r\nCANCEL\r\n"),
              kOk + "AGREE_UNIX_FD\r\nREJECTED EXTERNAL\r\n");
    EXPECT_EQ(server.state(), SaslServer::State::WaitingForAuth);
    EXPECT_FALSE(server.unix_fd_agreed());
    EXPECT_EQ(server.authenticated_uid(), std::nullopt);
    EXPECT_EQ(server.rejections(), 4u);
    EXPECT_EQ(converse(server, "AUTH EXTERNAL 31303030\r\nBEGIN\r\n"), kOk);
    EXPECT_TRUE(server.authenticated());
}

TEST(SaslServer, CommandsOutOfPlaceGetErrors) {
    SaslServer server(make_config());
    EXPECT_EQ(converse(server, "\0DATA 31\r\n"s), "ERROR \"Not currently in an auth conversation\"\r\n");
    EXPECT_EQ(converse(server, "FOOBAR\r\n"), "ERROR \"Unknown command\"\r\n");
    EXPECT_EQ(converse(server, "auth EXTERNAL\r\n"), "ERROR \"Unknown command\"\r\n");
    EXPECT_EQ(converse(server, "OK\r\n"), "ERROR \"Unknown command\"\r\n");
    EXPECT_EQ(converse(server, "\r\n"), "ERROR \"Unknown command\"\r\n");
    EXPECT_EQ(converse(server, "AUTH EXTERNAL zz\r\n"), "ERROR \"Invalid hex encoding\"\r\n");
    EXPECT_EQ(converse(server, "AUTH EXTERNAL\r\nAUTH EXTERNAL\r\n"),
              "DATA\r\nERROR \"Sent AUTH while another AUTH in progress\"\r\n");
    EXPECT_EQ(
        converse(server, "DATA\r\nAUTH EXTERNAL\r\nDATA\r\n"),
        kOk + "ERROR \"Sent AUTH while expecting BEGIN\"\r\nERROR \"Sent DATA while expecting BEGIN\"\r\n");
    // None of these count as failed attempts.
    EXPECT_EQ(server.rejections(), 0u);
    EXPECT_EQ(converse(server, "BEGIN\r\n"), "");
    EXPECT_TRUE(server.authenticated());
}

TEST(SaslServer, BlanksAroundArgumentsAreTolerated) {
    SaslServer server(make_config());
    EXPECT_EQ(converse(server, "\0AUTH EXTERNAL  \r\n"s), "DATA\r\n");
    SaslServer other(make_config());
    EXPECT_EQ(converse(other, "\0AUTH EXTERNAL 31303030 \r\n"s), kOk);
}

TEST(SaslServer, BeginIgnoresArgumentsLikeDbusDaemon) {
    SaslServer server(make_config());
    const std::string input = "\0AUTH EXTERNAL 31303030\r\nBEGIN now\r\n"s;
    EXPECT_EQ(server.feed(input + "l"), input.size());
    EXPECT_TRUE(server.authenticated());
}

TEST(SaslServer, BeginBeforeOkFails) {
    SaslServer server(make_config());
    EXPECT_EQ(converse(server, "\0BEGIN\r\nAUTH EXTERNAL 31303030\r\n"s), "");
    EXPECT_TRUE(server.failed());
    EXPECT_EQ(server.error(), SaslError::BeginBeforeOk);
    EXPECT_EQ(server.feed("AUTH EXTERNAL 31303030\r\n"), 0u);
    EXPECT_EQ(server.take_output(), "");
}

TEST(SaslServer, FirstByteMustBeNul) {
    SaslServer server(make_config());
    EXPECT_EQ(server.feed("AUTH EXTERNAL 31303030\r\n"), 1u);
    EXPECT_TRUE(server.failed());
    EXPECT_EQ(server.error(), SaslError::MissingNulByte);
    EXPECT_EQ(server.take_output(), "");
    EXPECT_EQ(server.feed("\0AUTH\r\n"s), 0u);
}

TEST(SaslServer, NothingHappensOnEmptyInput) {
    SaslServer server(make_config());
    EXPECT_EQ(server.feed(""), 0u);
    EXPECT_EQ(server.state(), SaslServer::State::WaitingForNul);
    EXPECT_EQ(server.feed("\0"s), 1u);
    EXPECT_EQ(server.state(), SaslServer::State::WaitingForAuth);
}

TEST(SaslServer, PipelinedMessageAfterBeginIsLeftToTheCaller) {
    SaslServer server(make_config());
    const std::string handshake = "\0AUTH EXTERNAL 31303030\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n"s;
    // The first D-Bus message: binary, with NULs and bytes >= 0x80 the line reader would reject.
    const std::string message = "l\x01\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00\xff\r\nAUTH\r\n"s;
    const std::string input = handshake + message;
    EXPECT_EQ(server.feed(input), handshake.size());
    EXPECT_EQ(server.take_output(), kOk + "AGREE_UNIX_FD\r\n");
    EXPECT_TRUE(server.authenticated());
    EXPECT_EQ(server.feed(message), 0u);
    EXPECT_EQ(server.take_output(), "");
}

TEST(SaslServer, OneByteAtATimeGivesTheSameTranscript) {
    const std::string input = "\0AUTH\r\nAUTH EXTERNAL\r\nDATA\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\nHELLO"s;
    SaslServer whole(make_config());
    const std::size_t consumed_whole = whole.feed(input);
    SaslServer bytewise(make_config());
    std::size_t consumed = 0;
    std::string output;
    for (char c : input) {
        const std::size_t n = bytewise.feed(std::string_view(&c, 1));
        consumed += n;
        if (n == 0) break;
        output += bytewise.take_output();
    }
    EXPECT_EQ(consumed, consumed_whole);
    EXPECT_EQ(consumed, input.size() - 5);
    EXPECT_EQ(output, whole.take_output());
    EXPECT_EQ(output, "REJECTED EXTERNAL\r\nDATA\r\n" + kOk + "AGREE_UNIX_FD\r\n");
    EXPECT_TRUE(bytewise.authenticated());
}

TEST(SaslServer, CrLfSplitAcrossFeeds) {
    SaslServer server(make_config());
    EXPECT_EQ(server.feed("\0AUTH EXTERNAL 31303030\r"s), 24u);
    EXPECT_EQ(server.take_output(), "");
    EXPECT_EQ(server.feed("\nBEGIN"), 6u);
    EXPECT_EQ(server.take_output(), kOk);
    EXPECT_EQ(server.feed("\r\n"), 2u);
    EXPECT_TRUE(server.authenticated());
}

TEST(SaslServer, LoneLineFeedIsNotALineEnd) {
    SaslServer server(make_config());
    EXPECT_EQ(converse(server, "\0AUTH EXTERNAL 31303030\nBEGIN\r\n"s), "ERROR \"Invalid hex encoding\"\r\n");
    EXPECT_EQ(server.state(), SaslServer::State::WaitingForAuth);
}

TEST(SaslServer, LineLengthLimit) {
    auto config = make_config();
    config.max_line_length = 100;
    {
        // Exactly the limit, CRLF included, is fine.
        SaslServer server(config);
        const std::string line = "AUTH EXTERNAL" + std::string(100 - 15, ' ') + "\r\n";
        ASSERT_EQ(line.size(), 100u);
        EXPECT_EQ(converse(server, "\0"s + std::string(line)), "DATA\r\n");
    }
    {
        SaslServer server(config);
        const std::string line = "AUTH EXTERNAL" + std::string(100 - 14, ' ') + "\r\n";
        converse(server, "\0"s + std::string(line));
        EXPECT_TRUE(server.failed());
        EXPECT_EQ(server.error(), SaslError::LineTooLong);
    }
    {
        // The default limit, reached without any CRLF, in small pieces.
        SaslServer server(make_config());
        EXPECT_EQ(server.feed("\0"s), 1u);
        const std::string chunk(1000, 'A');
        std::size_t fed = 0;
        while (!server.failed() && fed < 2 * kSaslMaxLineLength) fed += server.feed(chunk);
        EXPECT_EQ(server.error(), SaslError::LineTooLong);
        EXPECT_EQ(fed, kSaslMaxLineLength);
    }
}

TEST(SaslServer, TooManyRejectionsIsTerminal) {
    SaslServer server(make_config());
    std::string output = converse(server, "\0"s);
    for (int i = 0; i < 5; ++i) output += converse(server, "AUTH EXTERNAL 30\r\n");
    EXPECT_FALSE(server.failed());
    // The sixth REJECTED is still sent (as dbus-daemon does) and then the conversation is over.
    output += converse(server, "AUTH\r\nAUTH EXTERNAL 31303030\r\n");
    EXPECT_TRUE(server.failed());
    EXPECT_EQ(server.error(), SaslError::TooManyRejections);
    std::string expected;
    for (int i = 0; i < 6; ++i) expected += "REJECTED EXTERNAL\r\n";
    EXPECT_EQ(output, expected);
    EXPECT_EQ(server.feed("AUTH EXTERNAL 31303030\r\n"), 0u);
    EXPECT_EQ(server.take_output(), "");

    auto config = make_config();
    config.max_rejections = 1;
    SaslServer strict(config);
    EXPECT_EQ(converse(strict, "\0AUTH\r\nAUTH\r\n"s), "REJECTED EXTERNAL\r\n");
    EXPECT_TRUE(strict.failed());
}

TEST(SaslServer, InvalidBytesAreTerminal) {
    for (const std::string& garbage : {"AUTH\0\r\n"s, "AUTH \xc3\xa9\r\n"s, "\x80\r\n"s}) {
        SaslServer server(make_config());
        converse(server, "\0"s + garbage);
        EXPECT_TRUE(server.failed());
        EXPECT_EQ(server.error(), SaslError::InvalidByte);
    }
}

TEST(SaslServer, PrintableGarbageNeverAuthenticates) {
    // A deterministic stream of printable lines: the server must answer each and stay unauthenticated.
    SaslServer server(make_config());
    std::string input = "\0"s;
    unsigned seed = 12345;
    for (int line = 0; line < 200; ++line) {
        const unsigned length = (seed = seed * 1103515245u + 12345u) % 40;
        for (unsigned i = 0; i < length; ++i)
            input += static_cast<char>(' ' + ((seed = seed * 1103515245u + 12345u) >> 16) % 95);
        input += "\r\n";
    }
    EXPECT_EQ(server.feed(input), input.size());
    EXPECT_FALSE(server.authenticated());
}

TEST(SaslServer, NamesOfMechanismsAndErrors) {
    EXPECT_EQ(to_string(SaslMechanism::DbusCookieSha1), "DBUS_COOKIE_SHA1");
    EXPECT_EQ(sasl_mechanism_from_name("EXTERNAL"), SaslMechanism::External);
    EXPECT_EQ(sasl_mechanism_from_name("external"), std::nullopt);
    EXPECT_EQ(to_string(SaslError::TooManyRejections), "too many failed authentication attempts");
}

}  // namespace
}  // namespace afbus
