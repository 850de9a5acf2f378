// What StreamTransport does when memory runs out while it reads a large message (one read into storage of
// its own, MessageFramer): every allocation of reading and parsing it fails once, in turn
// (support/failing_allocations). The transport must report NoMemory for that connection, which the bus
// then ends alone (docs/reliability.md, section 4), and never let std::bad_alloc out; when no allocation
// fails, the message arrives whole.
#include <gtest/gtest.h>
#include <sys/socket.h>

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

}  // namespace
}  // namespace afbus
