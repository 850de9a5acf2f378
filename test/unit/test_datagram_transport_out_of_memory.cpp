// What DatagramTransport does when memory runs out while it reads (kernel mode's sockets: a native
// client's master side, a bridge): every allocation of reading three datagrams (a call, a signal that
// carries an fd, a method return) fails once, in turn (support/failing_allocations), on an AF_UNIX SEQPACKET
// pair (the transport's stand-in for AF_BUS). A datagram leaves the kernel as it is read, so one there is
// no memory to take as a message is lost: it must be reported in its place as Skipped, with what its
// header says (a call's serial, an answer's REPLY_SERIAL: the bus answers whoever waits), and the
// connection must go on. Room that could
// not be made before reading (Io, ENOMEM) leaves the datagram queued, to be read again. No fd may leak,
// and std::bad_alloc must never get out.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include "afbus/datagram_transport.hpp"
#include "afbus/types.hpp"
#include "support/failing_allocations.hpp"

namespace afbus {
namespace {

using test::FailingAllocations;
using test::open_fds;

TEST(DatagramTransportOutOfMemory, ADatagramWithNoRoomIsSkippedAndTheRestArrive) {
    std::vector<std::vector<std::byte>> datagrams;
    for (std::uint32_t serial : {6u, 7u, 8u}) {
        auto b = serial == 6 ? MessageBuilder::method_call("org.example.S", "/a", "org.example.I", "Call")
                 : serial == 7
                     ? MessageBuilder::signal("/a", "org.example.I", "WithFd")
                     : MessageBuilder::method_return(":1.9", 42);  // an answer: its call is told apart
        if (serial == 7) {
            Fd fd(::dup(0));
            ASSERT_TRUE(fd);
            append(b, UnixFd(std::move(fd)));  // (its index in the message; the fd itself is sent below)
        }
        append(b, std::string(200, 'x'));
        auto built = b.build(serial);
        ASSERT_TRUE(built);
        const auto wire = built->wire();
        datagrams.emplace_back(wire.begin(), wire.end());
    }
    const std::size_t fds_before = open_fds();

    bool skipped_once = false;
    for (std::size_t fail_at = 1;; ++fail_at) {
        SCOPED_TRACE("allocation " + std::to_string(fail_at) + " fails");
        {
            int pair[2];
            ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair), 0);
            Fd sender(pair[0]);
            DatagramTransport receiver(Fd(pair[1]), AF_UNIX);
            receiver.set_unix_fd_passing(true);
            for (std::size_t i = 0; i < datagrams.size(); ++i) {
                iovec iov{datagrams[i].data(), datagrams[i].size()};
                msghdr msg{};
                msg.msg_iov = &iov;
                msg.msg_iovlen = 1;
                alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
                if (i == 1) {
                    msg.msg_control = control;
                    msg.msg_controllen = sizeof control;
                    cmsghdr* c = CMSG_FIRSTHDR(&msg);
                    c->cmsg_level = SOL_SOCKET;
                    c->cmsg_type = SCM_RIGHTS;
                    c->cmsg_len = CMSG_LEN(sizeof(int));
                    const int fd = 0;
                    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
                }
                ASSERT_EQ(::sendmsg(sender.get(), &msg, MSG_NOSIGNAL),
                          static_cast<ssize_t>(datagrams[i].size()));
            }

            std::vector<std::uint32_t> got;  // serials; a skipped one as its serial + 1000
            got.reserve(8);                  // (not among the allocations that fail)
            std::optional<TransportError::Kind> error;
            FailingAllocations failing(fail_at);
            try {
                for (int reads = 0; reads < 10 && !error && got.size() < 3; ++reads) {
                    auto n = receiver.read();
                    // No room before reading: the datagram is still queued (read again later, in a bus).
                    if (!n && n.error().kind == TransportError::Kind::Io && n.error().error_number == ENOMEM)
                        continue;
                    if (!n) error = n.error().kind;
                    for (;;) {
                        auto m = receiver.next();
                        if (!m && m.error().kind == TransportError::Kind::Skipped) {
                            const SkippedMessage& skipped = m.error().skipped;
                            got.push_back(skipped.serial + 1000);
                            // What a bus needs to answer for it: a call's serial, an answer's call.
                            EXPECT_EQ(skipped.type, skipped.serial == 6   ? MessageType::MethodCall
                                                    : skipped.serial == 7 ? MessageType::Signal
                                                                          : MessageType::MethodReturn);
                            EXPECT_EQ(skipped.reply_serial, skipped.serial == 8 ? 42u : 0u);
                            // ... and, to a client that is sent copies of others' messages, whose it was.
                            EXPECT_EQ(skipped.destination(),
                                      skipped.serial == 6   ? std::optional<std::string_view>("org.example.S")
                                      : skipped.serial == 7 ? std::nullopt
                                                            : std::optional<std::string_view>(":1.9"));
                            continue;
                        }
                        if (!m) error = m.error().kind;
                        if (!m || !*m) break;
                        got.push_back((*m)->message.serial());
                    }
                }
            } catch (const std::bad_alloc&) {
                ADD_FAILURE() << "std::bad_alloc got out of the transport";
            }
            failing.stop();

            EXPECT_FALSE(error) << "the connection ended";
            ASSERT_EQ(got.size(), 3u);
            for (std::size_t i = 0; i < got.size(); ++i)
                EXPECT_TRUE(got[i] == 6 + i || got[i] == 1006 + i)
                    << "message " << i << " came as " << got[i];
            if (!failing.failed()) {
                EXPECT_EQ(got, (std::vector<std::uint32_t>{6, 7, 8}));
                std::printf("reading three datagrams: %zu allocations, each failed once in turn\n",
                            failing.count());
                break;
            }
            skipped_once = skipped_once || got != std::vector<std::uint32_t>{6, 7, 8};
        }
        // The skipped signal's fd, and every other received, closed with what held it.
        EXPECT_EQ(open_fds(), fds_before) << "an fd leaked";
        if (testing::Test::HasFailure()) break;
    }
    EXPECT_TRUE(skipped_once) << "no failure cost a message";
}

}  // namespace
}  // namespace afbus
