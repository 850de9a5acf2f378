// What StreamTransport does when memory runs out while it reads a large message (one read into storage of
// its own, MessageFramer): every allocation of reading and parsing it fails once, in turn
// (support/failing_allocations). The transport must report NoMemory for that connection, which the bus
// then ends alone (docs/reliability.md, section 4), and never let std::bad_alloc out; when no allocation
// fails, the message arrives whole.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cerrno>
#include <optional>
#include <vector>

#include "afbus/stream_transport.hpp"
#include "afbus/types.hpp"
#include "afbus/unix_socket.hpp"
#include "support/failing_allocations.hpp"

namespace afbus {
namespace {

using test::FailingAllocations;

TEST(StreamTransportOutOfMemory, EveryAllocationOfReadingALargeMessageMayFailAlone) {
    // Longer than one read (so it is read into its own storage), short enough for the socket to hold.
    constexpr std::size_t kBodyBytes = 100 * 1024;
    auto b = MessageBuilder::signal("/a", "org.example.I", "Large");
    append(b, std::vector<std::uint8_t>(kBodyBytes, 0x5a));
    auto built = b.build(7);
    ASSERT_TRUE(built);
    const auto wire = built->wire();

    for (std::size_t fail_at = 1;; ++fail_at) {
        auto pair = stream_socketpair();
        ASSERT_TRUE(pair);
        ASSERT_EQ(::send(pair->first.get(), wire.data(), wire.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(wire.size()));
        StreamTransport receiver(std::move(pair->second));

        std::optional<Message> got;
        std::optional<TransportError::Kind> error;
        FailingAllocations failing(fail_at);
        if (auto n = receiver.read(); !n) {
            error = n.error().kind;
        } else if (auto m = receiver.next(); !m) {
            error = m.error().kind;
        } else if (*m) {
            got = std::move(**m);
        }
        failing.stop();

        if (!failing.failed()) {
            ASSERT_TRUE(got) << "nothing failed, yet no message";
            EXPECT_EQ(got->serial(), 7u);
            EXPECT_EQ(got->wire(), wire);
            EXPECT_GT(fail_at, 2u) << "the read buffer and the message's storage are two allocations";
            break;
        }
        ASSERT_TRUE(error) << "allocation " << fail_at << " failed, yet the read went on";
        EXPECT_EQ(*error, TransportError::Kind::NoMemory) << "allocation " << fail_at;
        EXPECT_FALSE(got);
    }
}

// The same where the owner asks for messages with no room to be skipped (a bus does): the large message
// between two small ones. Where making its storage fails, it is skipped and reported (Kind::Skipped,
// with its serial) in its place, and the small ones arrive around it; where the read buffer cannot grow
// behind a complete message, that message is given and the next read tries again; where there is no
// read buffer before a message has begun, the read fails with ENOMEM (Kind::Io) and is made again;
// where parsing a message fails, from the read buffer or from the large message's own storage once read
// whole, next() says ENOMEM and the message is still there, with its fds; nothing ends the connection,
// and nothing throws. (Parsing the large message from its storage used to lose it with the failure, and
// the connection with it.)
TEST(StreamTransportOutOfMemory, ALargeMessageWithNoRoomIsSkippedWhenAsked) {
    constexpr std::size_t kBodyBytes = 100 * 1024;
    std::vector<std::byte> stream;
    std::size_t split = 0;
    for (std::uint32_t serial : {6u, 7u, 8u}) {
        if (serial == 7) split = stream.size() + 1000;
        auto b = MessageBuilder::signal("/a", "org.example.I", serial == 7 ? "Large" : "Small");
        append(b, std::vector<std::uint8_t>(serial == 7 ? kBodyBytes : 8, 0x5a));
        auto built = b.build(serial);
        ASSERT_TRUE(built);
        const auto wire = built->wire();
        stream.insert(stream.end(), wire.begin(), wire.end());
    }

    bool skipped_once = false;
    for (std::size_t fail_at = 1;; ++fail_at) {
        auto pair = stream_socketpair();
        ASSERT_TRUE(pair);
        StreamTransport receiver(std::move(pair->second));
        receiver.set_skip_unaffordable_messages(true);

        std::vector<std::uint32_t> got;  // serials; a skipped one as its serial + 1000
        got.reserve(8);                  // (not among the allocations that fail)
        std::optional<TransportError::Kind> error;
        FailingAllocations failing(fail_at);
        // The first small message and the large one's first bytes, then the rest: the large one is at
        // the front of the second read, which makes room for all of it.
        for (auto part : {std::span(stream).first(split), std::span(stream).subspan(split)}) {
            ASSERT_EQ(::send(pair->first.get(), part.data(), part.size(), MSG_NOSIGNAL),
                      static_cast<ssize_t>(part.size()));
            while (!error) {
                auto n = receiver.read();
                // No read buffer before a message began: read again (later, in a bus).
                if (!n && n.error().kind == TransportError::Kind::Io && n.error().error_number == ENOMEM) continue;
                if (!n) error = n.error().kind;
                for (;;) {
                    auto m = receiver.next();
                    if (!m && m.error().kind == TransportError::Kind::Skipped) {
                        got.push_back(m.error().skipped.serial + 1000);
                        continue;
                    }
                    // No memory to parse a buffered message: it is still there (later, in a bus).
                    if (!m && m.error().kind == TransportError::Kind::Io && m.error().error_number == ENOMEM) continue;
                    if (!m) error = m.error().kind;
                    if (!m || !*m) break;
                    got.push_back((*m)->serial());
                }
                if (n && *n == 0) break;
            }
        }
        failing.stop();

        if (!failing.failed()) {
            EXPECT_FALSE(error);
            EXPECT_EQ(got, (std::vector<std::uint32_t>{6, 7, 8}));
            break;
        }
        // (A read buffer that could not grow: the messages before are taken, and the next read tries
        // again.)
        EXPECT_FALSE(error) << "allocation " << fail_at << " ended the connection";
        const bool skipped = got == std::vector<std::uint32_t>{6, 1007, 8};
        EXPECT_TRUE(skipped || got == (std::vector<std::uint32_t>{6, 7, 8})) << "allocation " << fail_at;
        skipped_once = skipped_once || skipped;
    }
    EXPECT_TRUE(skipped_once) << "no failure was the large message's own storage";
}

}  // namespace
}  // namespace afbus
