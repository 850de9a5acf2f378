#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "afbus/keyring.hpp"
#include "afbus/sasl.hpp"
#include "sasl/sha1.hpp"
#include "support/hex.hpp"

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
    // ANONYMOUS needs allow_anonymous, DBUS_COOKIE_SHA1 needs cookie_sha1: neither is offered.
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

// --- DBUS_COOKIE_SHA1 -------------------------------------------------------------------------------

using test::hex;
using test::unhex;

constexpr uid_t kServerUid = 1000;
const std::string kSecret = "d4a9c3be6f7a1c2b9e8f0a1b2c3d4e5f60718293a4b5c6d7";
// The fake random source's 16 bytes, as the challenge the server sends.
const std::string kServerChallenge = "000102030405060708090a0b0c0d0e0f";

struct CookieFakes {
    int cookie_calls = 0;
    std::optional<std::string> keyring_problem;
    bool random_fails = false;
};

SaslServerConfig cookie_config(CookieFakes& fakes) {
    auto config = make_config();
    config.peer_uid.reset();  // as on TCP
    config.unix_fd_possible = false;
    SaslCookieConfig cookie;
    cookie.server_uid = kServerUid;
    cookie.cookie = [&fakes](uid_t uid, std::string_view context) -> Expected<KeyringCookie, std::string> {
        ++fakes.cookie_calls;
        EXPECT_EQ(uid, kServerUid);
        EXPECT_EQ(context, "org_freedesktop_general");
        if (fakes.keyring_problem) return Unexpected(*fakes.keyring_problem);
        return KeyringCookie{42, 0, kSecret};
    };
    cookie.lookup_user = [](const std::string& name) -> std::optional<uid_t> {
        if (name == "alice") return 1000;
        if (name == "bob") return 1001;
        return std::nullopt;
    };
    cookie.random_bytes = [&fakes](std::size_t count) -> Expected<std::string, std::string> {
        if (fakes.random_fails) return Unexpected(std::string("getrandom: out of entropy"));
        std::string bytes;
        for (std::size_t i = 0; i < count; ++i) bytes += static_cast<char>(i);
        return bytes;
    };
    config.cookie_sha1 = std::move(cookie);
    return config;
}

const std::string kChallengeLine = "DATA " + hex("org_freedesktop_general 42 " + kServerChallenge) + "\r\n";

std::string answer(std::string_view client_challenge, std::string_view secret = kSecret) {
    const std::string hash =
        Sha1::hex_digest(kServerChallenge + ":" + std::string(client_challenge) + ":" + std::string(secret));
    return "DATA " + hex(std::string(client_challenge) + " " + hash) + "\r\n";
}

TEST(SaslServerCookie, OfferedOnlyWhenConfigured) {
    CookieFakes fakes;
    SaslServer server(cookie_config(fakes));
    EXPECT_EQ(converse(server, "\0AUTH\r\n"s), "REJECTED EXTERNAL DBUS_COOKIE_SHA1\r\n");
    // Without kernel credentials EXTERNAL is listed but always fails, as in dbus-daemon on TCP.
    EXPECT_EQ(converse(server, "AUTH EXTERNAL\r\nDATA\r\n"), "DATA\r\nREJECTED EXTERNAL DBUS_COOKIE_SHA1\r\n");
    EXPECT_EQ(fakes.cookie_calls, 0);
}

TEST(SaslServerCookie, ChallengeAndCorrectAnswer) {
    CookieFakes fakes;
    SaslServer server(cookie_config(fakes));
    EXPECT_EQ(converse(server, "\0AUTH DBUS_COOKIE_SHA1 "s + hex("1000") + "\r\n"), kChallengeLine);
    EXPECT_EQ(server.state(), SaslServer::State::WaitingForData);
    EXPECT_EQ(fakes.cookie_calls, 1);
    EXPECT_EQ(converse(server, answer("5ac1e6b15f4c8d2a")), kOk);
    EXPECT_EQ(server.authenticated_uid(), kServerUid);
    EXPECT_EQ(server.mechanism(), SaslMechanism::DbusCookieSha1);
    EXPECT_EQ(converse(server, "NEGOTIATE_UNIX_FD\r\nBEGIN\r\n"),
              "ERROR \"Unix fd passing is not supported on this transport\"\r\n");
    EXPECT_TRUE(server.authenticated());
    EXPECT_EQ(server.authenticated_uid(), kServerUid);
    EXPECT_FALSE(server.anonymous());
    EXPECT_TRUE(server.mechanism_problem().empty());
}

TEST(SaslServerCookie, IdentityIsALoginNameOrADecimalUid) {
    struct Case {
        std::string identity;
        std::string problem;  // empty: challenged
    };
    const std::vector<Case> cases = {
        {"1000", ""},
        {"01000", ""},
        {"alice", ""},
        {"bob", "not the user the server runs as"},  // dbus-daemon: only the server's own user
        {"1001", "not the user the server runs as"},
        {"0", "not the user the server runs as"},
        {"nobody", "unknown user"},
        {"4294968296", "unknown user"},  // 2^32 + 1000 does not wrap to 1000
        {"-1000", "unknown user"},
        {"alice smith", "unknown user"},
        {"alice\n", "unknown user"},
        {"al\x01" "ce", "unknown user"},
    };
    for (const auto& c : cases) {
        CookieFakes fakes;
        SaslServer server(cookie_config(fakes));
        const std::string reply = converse(server, "\0AUTH DBUS_COOKIE_SHA1 "s + hex(c.identity) + "\r\n");
        if (c.problem.empty()) {
            EXPECT_EQ(reply, kChallengeLine) << c.identity;
        } else {
            EXPECT_EQ(reply, "REJECTED EXTERNAL DBUS_COOKIE_SHA1\r\n") << c.identity;
            EXPECT_EQ(server.mechanism_problem(), c.problem) << c.identity;
            EXPECT_EQ(fakes.cookie_calls, 0) << "no keyring is opened for " << c.identity;
        }
    }
}

TEST(SaslServerCookie, NoIdentityIsRejectedAtOnceLikeDbusDaemon) {
    CookieFakes fakes;
    SaslServer server(cookie_config(fakes));
    EXPECT_EQ(converse(server, "\0AUTH DBUS_COOKIE_SHA1\r\n"s), "REJECTED EXTERNAL DBUS_COOKIE_SHA1\r\n");
    EXPECT_EQ(server.mechanism_problem(), "no identity");
    EXPECT_EQ(converse(server, "AUTH DBUS_COOKIE_SHA1 zz\r\n"), "ERROR \"Invalid hex encoding\"\r\n");
    EXPECT_EQ(server.state(), SaslServer::State::WaitingForAuth);
    EXPECT_EQ(fakes.cookie_calls, 0);
}

TEST(SaslServerCookie, WrongAnswersAreRejected) {
    const std::string good_hash = Sha1::hex_digest(kServerChallenge + ":abc:" + kSecret);
    const std::vector<std::pair<std::string, std::string>> responses = {
        {"abc " + good_hash.substr(0, 39), "wrong hash"},                                  // truncated
        {"abc " + good_hash + "0", "wrong hash"},                                          // too long
        {"abd " + good_hash, "wrong hash"},                                                // other challenge
        {"abc " + Sha1::hex_digest(kServerChallenge + ":abc:" + kSecret + "0"), "wrong hash"},  // other cookie
        {"abc " + Sha1::hex_digest("ffff:abc:" + kSecret), "wrong hash"},                  // old server challenge
        {"abc " + [&] {
             std::string upper = good_hash;
             for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
             return upper;
         }(),
         "wrong hash"},  // the spec demands lower case; libdbus compares exactly
        {"abc" + good_hash, "no blank in the response"},
        {"", "no blank in the response"},
        {" " + good_hash, "empty challenge or hash"},
        {"abc ", "empty challenge or hash"},
        {"abc  \t", "empty challenge or hash"},
    };
    for (const auto& [response, problem] : responses) {
        CookieFakes fakes;
        SaslServer server(cookie_config(fakes));
        converse(server, "\0AUTH DBUS_COOKIE_SHA1 "s + hex("1000") + "\r\n");
        const std::string line = response.empty() ? "DATA\r\n" : "DATA " + hex(response) + "\r\n";
        EXPECT_EQ(converse(server, line), "REJECTED EXTERNAL DBUS_COOKIE_SHA1\r\n") << response;
        EXPECT_EQ(server.mechanism_problem(), problem) << response;
        EXPECT_EQ(server.state(), SaslServer::State::WaitingForAuth);
        EXPECT_EQ(server.authenticated_uid(), std::nullopt);
        // The conversation is over: the right answer now is out of place.
        EXPECT_EQ(converse(server, answer("abc")), "ERROR \"Not currently in an auth conversation\"\r\n");
    }
}

TEST(SaslServerCookie, BlanksBetweenChallengeAndHash) {
    for (const std::string separator : {" ", "\t", "  \t "}) {
        CookieFakes fakes;
        SaslServer server(cookie_config(fakes));
        converse(server, "\0AUTH DBUS_COOKIE_SHA1 "s + hex("1000") + "\r\n");
        const std::string hash = Sha1::hex_digest(kServerChallenge + ":abc:" + kSecret);
        EXPECT_EQ(converse(server, "DATA " + hex("abc" + separator + hash) + "\r\n"), kOk);
    }
}

TEST(SaslServerCookie, BadHexInTheAnswerIsAnErrorNotARejection) {
    CookieFakes fakes;
    SaslServer server(cookie_config(fakes));
    converse(server, "\0AUTH DBUS_COOKIE_SHA1 "s + hex("1000") + "\r\n");
    EXPECT_EQ(converse(server, "DATA 6162g\r\n"), "ERROR \"Invalid hex encoding\"\r\n");
    EXPECT_EQ(converse(server, "DATA 616\r\n"), "ERROR \"Invalid hex encoding\"\r\n");
    EXPECT_EQ(server.state(), SaslServer::State::WaitingForData);
    EXPECT_EQ(server.rejections(), 0u);
    EXPECT_EQ(converse(server, answer("abc")), kOk);
}

TEST(SaslServerCookie, KeyringOrRandomProblemsReject) {
    CookieFakes fakes;
    fakes.keyring_problem = "keyring directory is not private to the user";
    SaslServer server(cookie_config(fakes));
    EXPECT_EQ(converse(server, "\0AUTH DBUS_COOKIE_SHA1 "s + hex("1000") + "\r\n"),
              "REJECTED EXTERNAL DBUS_COOKIE_SHA1\r\n");
    EXPECT_EQ(server.mechanism_problem(), "keyring directory is not private to the user");

    CookieFakes no_random;
    no_random.random_fails = true;
    SaslServer other(cookie_config(no_random));
    EXPECT_EQ(converse(other, "\0AUTH DBUS_COOKIE_SHA1 "s + hex("1000") + "\r\n"),
              "REJECTED EXTERNAL DBUS_COOKIE_SHA1\r\n");
    EXPECT_EQ(other.mechanism_problem(), "getrandom: out of entropy");
}

TEST(SaslServerCookie, CancelAndRetry) {
    CookieFakes fakes;
    SaslServer server(cookie_config(fakes));
    const std::string auth = "AUTH DBUS_COOKIE_SHA1 " + hex("1000") + "\r\n";
    EXPECT_EQ(converse(server, "\0"s + auth + "CANCEL\r\n"), kChallengeLine + "REJECTED EXTERNAL DBUS_COOKIE_SHA1\r\n");
    EXPECT_EQ(converse(server, answer("abc")), "ERROR \"Not currently in an auth conversation\"\r\n");
    EXPECT_EQ(converse(server, auth + "AUTH DBUS_COOKIE_SHA1 " + hex("1000") + "\r\n"),
              kChallengeLine + "ERROR \"Sent AUTH while another AUTH in progress\"\r\n");
    EXPECT_EQ(converse(server, answer("abc") + "BEGIN\r\n"), kOk);
    EXPECT_TRUE(server.authenticated());
    EXPECT_EQ(fakes.cookie_calls, 2);
}

TEST(SaslServerCookie, SixWrongAnswersEndTheConversation) {
    CookieFakes fakes;
    SaslServer server(cookie_config(fakes));
    converse(server, "\0"s);
    for (int i = 0; i < 6; ++i) {
        converse(server, "AUTH DBUS_COOKIE_SHA1 " + hex("1000") + "\r\n");
        converse(server, answer("abc", "00"));
    }
    EXPECT_TRUE(server.failed());
    EXPECT_EQ(server.error(), SaslError::TooManyRejections);
}

// The whole mechanism with the real file keyring, found through an injected home directory, and the
// real SaslClient reading the same keyring: what afbus-daemon and libafbus do on tcp:.
class SaslServerCookieKeyring : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/afbus-sasl-cookie-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        home_ = pattern;
    }
    void TearDown() override {
        std::error_code ignored;
        std::filesystem::remove_all(home_, ignored);
    }

    SaslServerConfig config() {
        auto c = make_config();
        c.peer_uid.reset();
        SaslCookieConfig cookie;
        cookie.server_uid = ::geteuid();
        cookie.home_directory = [this](uid_t uid) -> Expected<std::string, std::string> {
            EXPECT_EQ(uid, ::geteuid());
            return home_;
        };
        cookie.keyring.now = [this] { return now_; };
        c.cookie_sha1 = std::move(cookie);
        return c;
    }

    // Runs a SaslClient against a SaslServer in memory until one of them is done.
    static void run(SaslClient& client, SaslServer& server) {
        for (int round = 0; round < 20 && !server.authenticated() && !server.failed() && !client.failed(); ++round) {
            server.feed(client.take_output());
            client.feed(server.take_output());
        }
    }

    SaslClientConfig client_config() {
        SaslClientConfig c;
        c.uid = ::geteuid();
        c.mechanisms = {SaslMechanism::DbusCookieSha1};
        c.keyring_directory = keyring_directory(home_);
        c.keyring.now = [this] { return now_; };
        return c;
    }

    std::string home_;
    std::int64_t now_ = 1'800'000'000;
};

TEST_F(SaslServerCookieKeyring, ClientAndServerAgreeThroughTheKeyring) {
    SaslServer server(config());
    SaslClient client(client_config());
    run(client, server);
    ASSERT_TRUE(server.authenticated()) << server.mechanism_problem() << " / " << client.last_mechanism_problem();
    EXPECT_TRUE(client.authenticated());
    EXPECT_EQ(server.authenticated_uid(), ::geteuid());
    // The keyring was created, 0700, with one cookie.
    KeyringPolicy policy;
    policy.now = [this] { return now_; };
    const auto cookies = Keyring(keyring_directory(home_), policy).load("org_freedesktop_general");
    ASSERT_TRUE(cookies) << cookies.error();
    EXPECT_EQ(cookies->size(), 1u);
    struct stat status {};
    ASSERT_EQ(::stat(keyring_directory(home_).c_str(), &status), 0);
    EXPECT_EQ(status.st_mode & 07777, 0700u);
}

TEST_F(SaslServerCookieKeyring, ExpiredCookieIsReplacedAndCannotBeUsed) {
    const std::string directory = keyring_directory(home_);
    ASSERT_EQ(::mkdir(directory.c_str(), 0700), 0);
    const std::string old_secret = "0123456789abcdef0123456789abcdef";
    std::ofstream(directory + "/org_freedesktop_general") << "5 " << now_ - 1000 << " " << old_secret << "\n";

    SaslServer server(config());
    const std::string reply = converse(server, "\0AUTH DBUS_COOKIE_SHA1 "s + hex(std::to_string(::geteuid())) + "\r\n");
    ASSERT_TRUE(reply.starts_with("DATA ")) << reply << server.mechanism_problem();
    const std::string challenge = unhex(reply.substr(5, reply.size() - 7));
    const std::size_t first = challenge.find(' ');
    const std::size_t second = challenge.find(' ', first + 1);
    EXPECT_EQ(challenge.substr(0, first), "org_freedesktop_general");
    EXPECT_NE(challenge.substr(first + 1, second - first - 1), "5") << "an expired cookie must not be offered";
    const std::string server_challenge = challenge.substr(second + 1);
    EXPECT_EQ(server_challenge.size(), 32u);  // 16 random bytes, hex

    // A client that still knows the expired cookie cannot answer with it.
    const std::string hash = Sha1::hex_digest(server_challenge + ":abc:" + old_secret);
    EXPECT_EQ(converse(server, "DATA " + hex("abc " + hash) + "\r\n"), "REJECTED EXTERNAL DBUS_COOKIE_SHA1\r\n");
    EXPECT_EQ(server.mechanism_problem(), "wrong hash");
    // And the expired cookie is gone from the file.
    std::ifstream in(directory + "/org_freedesktop_general");
    std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(contents.find(old_secret), std::string::npos) << contents;
}

TEST_F(SaslServerCookieKeyring, GroupReadableKeyringRejects) {
    ASSERT_EQ(::mkdir(keyring_directory(home_).c_str(), 0750), 0);
    ASSERT_EQ(::chmod(keyring_directory(home_).c_str(), 0750), 0);
    SaslServer server(config());
    EXPECT_EQ(converse(server, "\0AUTH DBUS_COOKIE_SHA1 "s + hex(std::to_string(::geteuid())) + "\r\n"),
              "REJECTED EXTERNAL DBUS_COOKIE_SHA1\r\n");
    EXPECT_EQ(server.mechanism_problem(), "keyring directory is not private to the user");
}

TEST(SaslServer, NamesOfMechanismsAndErrors) {
    EXPECT_EQ(to_string(SaslMechanism::DbusCookieSha1), "DBUS_COOKIE_SHA1");
    EXPECT_EQ(sasl_mechanism_from_name("EXTERNAL"), SaslMechanism::External);
    EXPECT_EQ(sasl_mechanism_from_name("external"), std::nullopt);
    EXPECT_EQ(to_string(SaslError::TooManyRejections), "too many failed authentication attempts");
}

}  // namespace
}  // namespace afbus
