// DatagramTransport over AF_UNIX SOCK_SEQPACKET socketpairs, the host's stand-in for AF_BUS (which
// cannot be loaded here): one message per datagram, fds in their message's datagram, and a bad datagram
// ending the connection. AF_UNIX ignores the msg_name of a connected SEQPACKET send and reports no
// source address, so destinations are accepted and sources are nullopt here.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "afbus/datagram_transport.hpp"
#include "afbus/types.hpp"

namespace afbus {
namespace {

constexpr int kAfUnix = AF_UNIX;

struct Pair {
    Fd a, b;
};

Pair seqpacket_pair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
    return {Fd(fds[0]), Fd(fds[1])};
}

Message signal_with(std::string text, std::uint32_t serial = 1) {
    auto b = MessageBuilder::signal("/a", "org.example.I", "S");
    append(b, text);
    auto m = b.build(serial);
    EXPECT_TRUE(m);
    return std::move(*m);
}

void wait_for(int fd, short events) {
    pollfd p{fd, events, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1);
}

// Everything the socket holds now, in order; the error that ended it, if any.
struct Drained {
    std::vector<ReceivedDatagram> messages;
    std::optional<TransportError> error;
};

Drained drain(DatagramTransport& t) {
    Drained d;
    for (;;) {
        auto n = t.read();
        if (!n) {
            d.error = n.error();
            break;
        }
        bool any = false;
        for (;;) {
            auto m = t.next();
            if (!m) {
                d.error = m.error();
                return d;
            }
            if (!*m) break;
            any = true;
            d.messages.push_back(std::move(**m));
        }
        if (*n == 0 && !any) break;
    }
    return d;
}

void send_raw(int fd, const void* data, std::size_t size) {
    ASSERT_EQ(::send(fd, data, size, MSG_NOSIGNAL), static_cast<ssize_t>(size));
}

TEST(DatagramTransport, ManyMessagesArriveInOrderOnePerDatagram) {
    auto [a, b] = seqpacket_pair();
    DatagramTransport sender(std::move(a), kAfUnix), receiver(std::move(b), kAfUnix);
    for (std::uint32_t i = 1; i <= 100; ++i) {
        // Destinations alternate between none, a unicast and the multicast address: AF_UNIX ignores them.
        std::optional<std::uint64_t> destination;
        if (i % 3 == 1) destination = i;
        if (i % 3 == 2) destination = 0x0000ffffffffffffULL;
        sender.enqueue(signal_with(std::string(i * 13, 'x'), i), destination);
    }
    EXPECT_EQ(sender.queued_messages(), 100u);
    auto flushed = sender.flush();
    ASSERT_TRUE(flushed);
    EXPECT_TRUE(*flushed);
    EXPECT_FALSE(sender.wants_write());
    EXPECT_EQ(sender.queued_bytes(), 0u);

    auto d = drain(receiver);
    EXPECT_FALSE(d.error);
    ASSERT_EQ(d.messages.size(), 100u);
    for (std::uint32_t i = 1; i <= 100; ++i) {
        const ReceivedDatagram& r = d.messages[i - 1];
        EXPECT_EQ(r.message.serial(), i);
        EXPECT_EQ(r.message.size(), signal_with(std::string(i * 13, 'x'), i).size());
        EXPECT_FALSE(r.source);  // AF_UNIX gives no address
    }
}

TEST(DatagramTransport, LargeMessageIsReadWhole) {
    auto [a, b] = seqpacket_pair();
    int size = 4 * 1024 * 1024;
    ASSERT_EQ(::setsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
    DatagramTransport sender(std::move(a), kAfUnix), receiver(std::move(b), kAfUnix);
    sender.enqueue(signal_with(std::string(200 * 1024, 'y'), 7), std::nullopt);
    auto flushed = sender.flush();
    ASSERT_TRUE(flushed) << describe(flushed.error());
    ASSERT_TRUE(*flushed);
    auto d = drain(receiver);
    EXPECT_FALSE(d.error);
    ASSERT_EQ(d.messages.size(), 1u);
    auto text = read_all<std::string>(d.messages[0].message);
    ASSERT_TRUE(text);
    EXPECT_EQ(std::get<0>(*text), std::string(200 * 1024, 'y'));
}

TEST(DatagramTransport, FdsTravelWithTheirMessage) {
    auto [a, b] = seqpacket_pair();
    DatagramTransport sender(std::move(a), kAfUnix), receiver(std::move(b), kAfUnix);
    sender.set_unix_fd_passing(true);
    receiver.set_unix_fd_passing(true);
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    Fd read_end(p[0]), write_end(p[1]);

    sender.enqueue(signal_with("before", 1), std::nullopt);
    auto with_fd = MessageBuilder::signal("/a", "org.example.I", "Fd");
    append(with_fd, UnixFd(std::move(write_end)));
    auto m = with_fd.build(2);
    ASSERT_TRUE(m);
    sender.enqueue(std::move(*m), 5);
    sender.enqueue(signal_with("after", 3), std::nullopt);
    EXPECT_EQ(sender.queued_fds(), 1u);
    ASSERT_TRUE(sender.flush());
    EXPECT_EQ(sender.queued_fds(), 0u);

    auto d = drain(receiver);
    EXPECT_FALSE(d.error);
    ASSERT_EQ(d.messages.size(), 3u);
    EXPECT_TRUE(d.messages[0].message.fds().empty());
    ASSERT_EQ(d.messages[1].message.fds().size(), 1u);
    EXPECT_TRUE(d.messages[2].message.fds().empty());
    // The fd is the pipe's write end.
    ASSERT_EQ(::write(d.messages[1].message.fds()[0].get(), "z", 1), 1);
    char c = 0;
    ASSERT_EQ(::read(read_end.get(), &c, 1), 1);
    EXPECT_EQ(c, 'z');
}

// Runs of messages without fds go out in sendmmsg() batches of at most kSendBatch, a message with fds on
// its own between them; the order is the queue's.
TEST(DatagramTransport, BatchesAndMessagesWithFdsKeepTheQueuesOrder) {
    auto [a, b] = seqpacket_pair();
    // A small send buffer: the sender meets EAGAIN part-way through batches and resumes.
    int size = 4608;
    ASSERT_EQ(::setsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
    DatagramTransport sender(std::move(a), kAfUnix), receiver(std::move(b), kAfUnix);
    sender.set_unix_fd_passing(true);
    receiver.set_unix_fd_passing(true);
    constexpr std::uint32_t kCount = 3 * DatagramTransport::kSendBatch + 7;
    std::vector<Fd> read_ends;
    for (std::uint32_t i = 1; i <= kCount; ++i) {
        if (i % 50 == 0) {
            int p[2];
            ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
            read_ends.emplace_back(p[0]);
            auto with_fd = MessageBuilder::signal("/a", "org.example.I", "Fd");
            append(with_fd, UnixFd(Fd(p[1])));
            auto m = with_fd.build(i);
            ASSERT_TRUE(m);
            sender.enqueue(std::move(*m), i);
        } else {
            sender.enqueue(signal_with(std::to_string(i), i), i % 2 ? std::optional<std::uint64_t>(i) : std::nullopt);
        }
    }
    std::vector<std::uint32_t> serials;
    std::size_t fds = 0;
    while (serials.size() < kCount) {
        if (sender.wants_write()) {
            ASSERT_TRUE(sender.flush());
        }
        wait_for(receiver.fd(), POLLIN);
        auto d = drain(receiver);
        ASSERT_FALSE(d.error);
        for (auto& m : d.messages) {
            serials.push_back(m.message.serial());
            fds += m.message.fds().size();
            EXPECT_EQ(m.message.fds().size(), m.message.serial() % 50 == 0 ? 1u : 0u);
        }
    }
    EXPECT_FALSE(sender.wants_write());
    EXPECT_EQ(sender.queued_bytes(), 0u);
    EXPECT_EQ(sender.queued_fds(), 0u);
    EXPECT_EQ(fds, read_ends.size());
    for (std::uint32_t i = 0; i < kCount; ++i) ASSERT_EQ(serials[i], i + 1);
}

TEST(DatagramTransport, FdsWithoutNegotiationAreAnError) {
    auto [a, b] = seqpacket_pair();
    DatagramTransport sender(std::move(a), kAfUnix), receiver(std::move(b), kAfUnix);
    sender.set_unix_fd_passing(true);
    auto builder = MessageBuilder::signal("/a", "org.example.I", "Fd");
    append(builder, UnixFd(Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC))));
    auto m = builder.build(1);
    ASSERT_TRUE(m);
    sender.enqueue(std::move(*m), std::nullopt);
    ASSERT_TRUE(sender.flush());
    auto d = drain(receiver);
    ASSERT_TRUE(d.error);
    EXPECT_EQ(d.error->kind, TransportError::Kind::FdsNotAllowed);
}

TEST(DatagramTransport, FdCountMustMatchTheMessage) {
    auto [a, b] = seqpacket_pair();
    DatagramTransport receiver(std::move(b), kAfUnix);
    receiver.set_unix_fd_passing(true);
    // A message declaring one fd, sent without any.
    auto builder = MessageBuilder::signal("/a", "org.example.I", "Fd");
    append(builder, UnixFd(Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC))));
    auto m = builder.build(1);
    ASSERT_TRUE(m);
    const auto wire = m->wire();
    send_raw(a.get(), wire.data(), wire.size());
    auto d = drain(receiver);
    EXPECT_TRUE(d.messages.empty());
    ASSERT_TRUE(d.error);
    EXPECT_EQ(d.error->kind, TransportError::Kind::Corrupt);
    EXPECT_EQ(d.error->wire, WireError::TooManyFds);
}

TEST(DatagramTransport, CorruptDatagramEndsTheConnectionAfterWhatCameBefore) {
    auto [a, b] = seqpacket_pair();
    DatagramTransport receiver(std::move(b), kAfUnix);
    const auto good = signal_with("ok", 1).wire();
    auto bad = signal_with("bad", 2).wire();
    bad[0] = std::byte{'?'};
    send_raw(a.get(), good.data(), good.size());
    send_raw(a.get(), bad.data(), bad.size());
    send_raw(a.get(), good.data(), good.size());
    auto d = drain(receiver);
    ASSERT_EQ(d.messages.size(), 1u);
    EXPECT_EQ(d.messages[0].message.serial(), 1u);
    ASSERT_TRUE(d.error);
    EXPECT_EQ(d.error->kind, TransportError::Kind::Corrupt);
    EXPECT_EQ(d.error->wire, WireError::BadEndianFlag);
    // It stays broken.
    auto again = receiver.next();
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().kind, TransportError::Kind::Corrupt);
}

TEST(DatagramTransport, DatagramShorterThanItsMessageIsCorrupt) {
    auto [a, b] = seqpacket_pair();
    DatagramTransport receiver(std::move(b), kAfUnix);
    const auto wire = signal_with("cut short", 1).wire();
    send_raw(a.get(), wire.data(), wire.size() - 4);
    auto d = drain(receiver);
    EXPECT_TRUE(d.messages.empty());
    ASSERT_TRUE(d.error);
    EXPECT_EQ(d.error->kind, TransportError::Kind::Corrupt);
    EXPECT_EQ(d.error->wire, WireError::Truncated);
}

TEST(DatagramTransport, TinyDatagramIsCorrupt) {
    auto [a, b] = seqpacket_pair();
    DatagramTransport receiver(std::move(b), kAfUnix);
    send_raw(a.get(), "l\1\0\1", 4);
    auto d = drain(receiver);
    ASSERT_TRUE(d.error);
    EXPECT_EQ(d.error->kind, TransportError::Kind::Corrupt);
    EXPECT_EQ(d.error->wire, WireError::Truncated);
}

TEST(DatagramTransport, TwoMessagesInOneDatagramAreCorrupt) {
    auto [a, b] = seqpacket_pair();
    DatagramTransport receiver(std::move(b), kAfUnix);
    auto wire = signal_with("one", 1).wire();
    const auto second = signal_with("two", 2).wire();
    wire.insert(wire.end(), second.begin(), second.end());
    send_raw(a.get(), wire.data(), wire.size());
    auto d = drain(receiver);
    EXPECT_TRUE(d.messages.empty());
    ASSERT_TRUE(d.error);
    EXPECT_EQ(d.error->kind, TransportError::Kind::Corrupt);
    EXPECT_EQ(d.error->wire, WireError::TrailingBytes);
}

TEST(DatagramTransport, EndOfFileIsClosedAfterTheLastMessages) {
    auto [a, b] = seqpacket_pair();
    DatagramTransport receiver(std::move(b), kAfUnix);
    {
        DatagramTransport sender(std::move(a), kAfUnix);
        sender.enqueue(signal_with("last words", 1), std::nullopt);
        ASSERT_TRUE(sender.flush());
    }
    auto d = drain(receiver);
    ASSERT_EQ(d.messages.size(), 1u);
    ASSERT_TRUE(d.error);
    EXPECT_EQ(d.error->kind, TransportError::Kind::Closed);
}

TEST(DatagramTransport, SendingToAClosedPeerIsClosed) {
    auto [a, b] = seqpacket_pair();
    DatagramTransport sender(std::move(a), kAfUnix);
    b.reset();
    sender.enqueue(signal_with("nobody", 1), std::nullopt);
    auto flushed = sender.flush();
    ASSERT_FALSE(flushed);
    EXPECT_EQ(flushed.error().kind, TransportError::Kind::Closed);
}

TEST(DatagramTransport, FullSocketKeepsTheQueueUntilPollout) {
    auto [a, b] = seqpacket_pair();
    int size = 4608;
    ASSERT_EQ(::setsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
    DatagramTransport sender(std::move(a), kAfUnix), receiver(std::move(b), kAfUnix);
    constexpr std::uint32_t kCount = 2000;
    for (std::uint32_t i = 1; i <= kCount; ++i)
        sender.enqueue(signal_with(std::string(200, 'q'), i), std::nullopt);
    auto flushed = sender.flush();
    ASSERT_TRUE(flushed);
    ASSERT_FALSE(*flushed) << "the socket took 2000 messages without pushing back";
    EXPECT_TRUE(sender.wants_write());
    EXPECT_LT(sender.queued_messages(), kCount);

    std::vector<std::uint32_t> serials;
    while (serials.size() < kCount) {
        if (sender.wants_write()) {
            auto r = sender.flush();
            ASSERT_TRUE(r);
        }
        wait_for(receiver.fd(), POLLIN);
        auto d = drain(receiver);
        ASSERT_FALSE(d.error);
        for (auto& m : d.messages) serials.push_back(m.message.serial());
        if (sender.wants_write()) wait_for(sender.fd(), POLLOUT);
    }
    EXPECT_FALSE(sender.wants_write());
    for (std::uint32_t i = 0; i < kCount; ++i) ASSERT_EQ(serials[i], i + 1);
}

TEST(DatagramTransport, MessageTheKernelRefusesIsSetAsideAndTheRestGoesOn) {
    // AF_UNIX refuses a datagram larger than the send buffer with EMSGSIZE, as AF_BUS does: one message
    // refused, the socket fine.
    auto [a, b] = seqpacket_pair();
    int size = 4608;
    ASSERT_EQ(::setsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
    DatagramTransport sender(std::move(a), kAfUnix), receiver(std::move(b), kAfUnix);
    sender.enqueue(signal_with("small", 1), std::nullopt);
    sender.enqueue(signal_with(std::string(64 * 1024, 'L'), 2), 42);
    sender.enqueue(signal_with("small again", 3), std::nullopt);
    auto flushed = sender.flush();
    ASSERT_TRUE(flushed);
    EXPECT_TRUE(*flushed);
    auto refused = sender.take_refused();
    ASSERT_EQ(refused.size(), 1u);
    EXPECT_EQ(refused[0].message->serial(), 2u);
    EXPECT_EQ(refused[0].destination, std::optional<std::uint64_t>(42));
    EXPECT_EQ(refused[0].error_number, EMSGSIZE);
    EXPECT_TRUE(sender.take_refused().empty());
    EXPECT_EQ(sender.queued_bytes(), 0u);

    auto d = drain(receiver);
    EXPECT_FALSE(d.error);
    ASSERT_EQ(d.messages.size(), 2u);
    EXPECT_EQ(d.messages[0].message.serial(), 1u);
    EXPECT_EQ(d.messages[1].message.serial(), 3u);
}

TEST(DatagramTransport, WhichErrnosRefuseOneMessage) {
    for (int e : {EPERM, EACCES, EDQUOT, EBADMSG, EINVAL, EMSGSIZE, ETOOMANYREFS, EHOSTUNREACH, EXFULL, ENOBUFS})
        EXPECT_TRUE(DatagramTransport::refuses_one_message(e)) << std::strerror(e);
    for (int e : {EPIPE, ECONNRESET, ENOTCONN, EAFNOSUPPORT, EIO, EBADF})
        EXPECT_FALSE(DatagramTransport::refuses_one_message(e)) << std::strerror(e);
}

}  // namespace
}  // namespace afbus
