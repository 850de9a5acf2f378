#include "afbus/stream_transport.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "afbus/framer.hpp"
#include "afbus/types.hpp"
#include "afbus/unix_socket.hpp"

namespace afbus {
namespace {

Message signal_with(std::string text, std::uint32_t serial) {
    auto b = MessageBuilder::signal("/a", "org.example.I", "S");
    append(b, text);
    auto m = b.build(serial);
    EXPECT_TRUE(m);
    return std::move(*m);
}

void wait_readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1);
}

TEST(MessageFramer, SplitsAByteStreamAtAnyBoundary) {
    std::vector<std::byte> stream;
    for (std::uint32_t i = 1; i <= 5; ++i) {
        auto w = signal_with(std::string(i * 37, 'x'), i).wire();
        stream.insert(stream.end(), w.begin(), w.end());
    }
    for (std::size_t chunk : {1u, 3u, 16u, 100u, 4096u}) {
        MessageFramer framer;
        std::vector<std::uint32_t> serials;
        for (std::size_t at = 0; at < stream.size(); at += chunk) {
            const std::size_t n = std::min(chunk, stream.size() - at);
            auto space = framer.prepare(n);
            std::memcpy(space.data(), stream.data() + at, n);
            framer.commit(n);
            for (;;) {
                auto m = framer.next();
                ASSERT_TRUE(m);
                if (!*m) break;
                serials.push_back((*m)->serial());
            }
        }
        EXPECT_EQ(serials, (std::vector<std::uint32_t>{1, 2, 3, 4, 5})) << "chunk " << chunk;
        EXPECT_EQ(framer.buffered(), 0u);
    }
}

TEST(MessageFramer, CorruptStreamIsAnError) {
    MessageFramer framer;
    auto w = signal_with("x", 1).wire();
    w[0] = std::byte{'?'};
    auto space = framer.prepare(w.size());
    std::memcpy(space.data(), w.data(), w.size());
    framer.commit(w.size());
    auto m = framer.next();
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error(), WireError::BadEndianFlag);
}

// A message longer than the framer's limit is an error once its fixed header has come, and the framer
// makes no room for it meanwhile (a bus would otherwise allocate what a client announces, up to 128 MiB).
TEST(MessageFramer, AMessageBeyondTheLimitIsRefusedBeforeRoomIsMade) {
    MessageFramer framer;
    framer.set_max_message_length(4096);
    auto within = signal_with(std::string(1000, 'x'), 1).wire();
    auto beyond = signal_with(std::string(100000, 'x'), 2).wire();
    auto space = framer.prepare(within.size() + 64);
    std::memcpy(space.data(), within.data(), within.size());
    std::memcpy(space.data() + within.size(), beyond.data(), 64);
    framer.commit(within.size() + 64);
    auto first = framer.next();
    ASSERT_TRUE(first && *first);
    EXPECT_EQ((*first)->serial(), 1u);
    EXPECT_LT(framer.prepare(16).size(), beyond.size()) << "room made for a message beyond the limit";
    auto second = framer.next();
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error(), WireError::MessageTooLong);
}

TEST(MessageFramer, MissingFdsAreAnError) {
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    Fd a(p[0]), b(p[1]);
    auto builder = MessageBuilder::signal("/a", "org.example.I", "S");
    append(builder, UnixFd(std::move(a)));
    auto m = builder.build(1);
    ASSERT_TRUE(m);
    auto w = m->wire();
    MessageFramer framer;
    auto space = framer.prepare(w.size());
    std::memcpy(space.data(), w.data(), w.size());
    framer.commit(w.size());
    EXPECT_EQ(framer.next().error(), WireError::TooManyFds);
}

Message large_signal(std::size_t body_bytes, std::uint32_t serial, std::uint8_t fill = 0x5a) {
    auto b = MessageBuilder::signal("/a", "org.example.I", "Large");
    append(b, std::vector<std::uint8_t>(body_bytes, fill));
    auto m = b.build(serial);
    EXPECT_TRUE(m);
    return std::move(*m);
}

void append_wire(std::vector<std::byte>& stream, const Message& m) {
    auto w = m.wire();
    stream.insert(stream.end(), w.begin(), w.end());
}

// Feeds `stream` to the framer in reads of at most `chunk` bytes (as a socket would, taking no more than
// prepare() offers), collecting every message.
std::vector<Message> frame(MessageFramer& framer, std::span<const std::byte> stream, std::size_t chunk) {
    std::vector<Message> got;
    for (std::size_t at = 0; at < stream.size();) {
        auto space = framer.prepare();
        const std::size_t n = std::min({chunk, stream.size() - at, space.size()});
        std::memcpy(space.data(), stream.data() + at, n);
        framer.commit(n);
        at += n;
        for (;;) {
            auto m = framer.next();
            EXPECT_TRUE(m) << to_string(m.error());
            if (!m || !*m) break;
            got.push_back(std::move(**m));
        }
    }
    return got;
}

// A message at least kOwnStorageBytes long that one read does not complete is read into storage of its
// own: the socket writes its rest where its body stays, between small messages framed as usual.
TEST(MessageFramer, ALargeMessageIsReadIntoItsOwnStorageInPieces) {
    std::vector<std::byte> stream;
    append_wire(stream, signal_with("before", 1));
    append_wire(stream, large_signal(300 * 1024, 2));
    append_wire(stream, signal_with("after", 3));
    append_wire(stream, large_signal(MessageFramer::kOwnStorageBytes, 4, 0x33));
    for (std::size_t chunk : {1000u, 16u, 65536u + 7, 1u << 20}) {
        MessageFramer framer;
        auto got = frame(framer, stream, chunk);
        ASSERT_EQ(got.size(), 4u) << "chunk " << chunk;
        for (std::uint32_t i = 0; i < 4; ++i) EXPECT_EQ(got[i].serial(), i + 1);
        auto large = std::get<0>(*read_all<std::vector<std::uint8_t>>(got[1]));
        EXPECT_EQ(large, std::vector<std::uint8_t>(300 * 1024, 0x5a));
        auto last = std::get<0>(*read_all<std::vector<std::uint8_t>>(got[3]));
        EXPECT_EQ(last, std::vector<std::uint8_t>(MessageFramer::kOwnStorageBytes, 0x33));
        EXPECT_EQ(framer.buffered(), 0u);
    }

    // The body is where the socket wrote its last bytes: nothing was copied after the first read.
    MessageFramer framer;
    auto wire = large_signal(300 * 1024, 5).wire();
    auto space = framer.prepare();
    std::memcpy(space.data(), wire.data(), 4096);
    framer.commit(4096);
    EXPECT_FALSE(framer.next().value());
    space = framer.prepare();
    ASSERT_EQ(space.size(), wire.size() - 4096) << "offered exactly the rest of the message";
    std::memcpy(space.data(), wire.data() + 4096, space.size());
    framer.commit(space.size());
    EXPECT_EQ(framer.buffered(), wire.size());
    auto m = framer.next();
    ASSERT_TRUE(m && *m);
    EXPECT_EQ((*m)->body_bytes().data() + (*m)->body_bytes().size(), space.data() + space.size());
    EXPECT_EQ((*m)->wire(), wire);
}

// When the rest of a large message and the next messages come in one read, the framer only offers the
// rest of the large one; the next read lands in the read buffer, before next() has taken the large one.
TEST(MessageFramer, BytesAfterACompleteLargeMessageGoToTheReadBuffer) {
    std::vector<std::byte> stream;
    append_wire(stream, large_signal(100 * 1024, 1));
    append_wire(stream, large_signal(100 * 1024, 2));
    append_wire(stream, signal_with("after", 3));
    MessageFramer framer;
    for (std::size_t at = 0; at < stream.size();) {  // every read before any next()
        auto space = framer.prepare();
        const std::size_t n = std::min(stream.size() - at, space.size());
        std::memcpy(space.data(), stream.data() + at, n);
        framer.commit(n);
        at += n;
    }
    EXPECT_EQ(framer.buffered(), stream.size());
    std::vector<std::uint32_t> serials;
    for (;;) {
        auto m = framer.next();
        ASSERT_TRUE(m) << to_string(m.error());
        if (!*m) break;
        serials.push_back((*m)->serial());
    }
    EXPECT_EQ(serials, (std::vector<std::uint32_t>{1, 2, 3}));
    EXPECT_EQ(framer.buffered(), 0u);
}

TEST(MessageFramer, ALargeMessageKeepsTheFdsThatCameWithItsFirstBytes) {
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    Fd read_end(p[0]), write_end(p[1]);
    auto b = MessageBuilder::signal("/a", "org.example.I", "S");
    append(b, UnixFd(std::move(write_end)), std::vector<std::uint8_t>(200 * 1024, 1));
    auto with_fd = b.build(1);
    ASSERT_TRUE(with_fd);
    std::vector<std::byte> stream;
    append_wire(stream, *with_fd);
    append_wire(stream, signal_with("no fds", 2));

    MessageFramer framer;
    std::vector<Message> got;
    bool first_read = true;
    for (std::size_t at = 0; at < stream.size();) {
        auto space = framer.prepare();
        const std::size_t n = std::min({std::size_t{30000}, stream.size() - at, space.size()});
        std::memcpy(space.data(), stream.data() + at, n);
        framer.commit(n);
        if (first_read) {
            std::vector<Fd> fds;
            fds.push_back(read_end.duplicate());
            framer.add_fds(std::move(fds));
            first_read = false;
        }
        at += n;
        for (;;) {
            auto m = framer.next();
            ASSERT_TRUE(m) << to_string(m.error());
            if (!*m) break;
            got.push_back(std::move(**m));
        }
    }
    ASSERT_EQ(got.size(), 2u);
    ASSERT_EQ(got[0].fds().size(), 1u);
    EXPECT_TRUE(got[1].fds().empty());
    EXPECT_EQ(framer.pending_fds(), 0u);

    // A large message that declares an fd none came with is refused once complete.
    MessageFramer without;
    const std::size_t large_length = with_fd->size();
    for (std::size_t at = 0; at < large_length;) {
        auto space = without.prepare();
        const std::size_t n = std::min({std::size_t{30000}, large_length - at, space.size()});
        std::memcpy(space.data(), stream.data() + at, n);
        without.commit(n);
        at += n;
        auto next = without.next();
        if (at < large_length) {
            ASSERT_TRUE(next && !*next);
        } else {
            ASSERT_FALSE(next);
            EXPECT_EQ(next.error(), WireError::TooManyFds);
        }
    }
}

// A message the bus has no memory for is skipped (the transport calls skip_message() when making room
// throws): its bytes are read into the read buffer and discarded, the fds that came with them are
// closed, take_skipped() tells what its fixed header said once all of it has gone by, and the messages
// around it are framed as usual, with their own fds.
TEST(MessageFramer, AMessageWithNoRoomIsSkippedAndTheStreamGoesOn) {
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    Fd read_end(p[0]), write_end(p[1]);
    auto call = MessageBuilder::method_call("org.example.S", "/a", "org.example.I", "Big");
    append(call, UnixFd(write_end.duplicate()), std::vector<std::uint8_t>(300 * 1024, 7));
    auto big = call.build(7);
    ASSERT_TRUE(big);
    auto b = MessageBuilder::signal("/a", "org.example.I", "S");
    append(b, UnixFd(std::move(write_end)));
    auto after = b.build(8);
    ASSERT_TRUE(after);
    std::vector<std::byte> stream;
    append_wire(stream, signal_with("before", 6));
    const std::size_t big_starts = stream.size();
    append_wire(stream, *big);
    const std::size_t big_ends = stream.size();
    append_wire(stream, *after);

    for (std::size_t chunk : {1000u, 16u, 65536u + 7}) {
        SCOPED_TRACE(chunk);
        MessageFramer framer;
        std::vector<std::uint32_t> serials;
        std::optional<SkippedMessage> skipped;
        int skipped_fd = -1;
        bool skip_asked = false;
        for (std::size_t at = 0; at < stream.size();) {
            auto space = framer.prepare();
            // Each read stops at a message's start, as a socket's does where fds come with it.
            std::size_t n = std::min({chunk, stream.size() - at, space.size()});
            if (at < big_starts) n = std::min(n, big_starts - at);
            else if (at < big_ends) n = std::min(n, big_ends - at);
            std::memcpy(space.data(), stream.data() + at, n);
            framer.commit(n);
            if (at == big_starts || at == big_ends) {
                std::vector<Fd> fds;
                fds.push_back(read_end.duplicate());
                if (at == big_starts) skipped_fd = fds.back().get();
                framer.add_fds(std::move(fds));
            }
            at += n;
            // No room for the big one: the next prepare() would make it, once its fixed header has come.
            if (!skip_asked && at >= big_starts + kFixedHeaderLength && at < big_ends) {
                skip_asked = true;
                EXPECT_TRUE(framer.skip_message());
                EXPECT_FALSE(framer.skip_message()) << "one at a time";
                EXPECT_EQ(framer.pending_fds(), 0u);
                EXPECT_EQ(::fcntl(skipped_fd, F_GETFD), -1) << "the fd that came with it is closed";
            }
            for (;;) {
                if (auto s = framer.take_skipped()) {
                    EXPECT_FALSE(skipped) << "reported twice";
                    EXPECT_EQ(at, big_ends) << "reported once all of it has gone by";
                    skipped = s;
                }
                auto m = framer.next();
                ASSERT_TRUE(m) << to_string(m.error());
                if (!*m) break;
                serials.push_back((*m)->serial());
                if ((*m)->serial() == 8) {
                    EXPECT_EQ((*m)->fds().size(), 1u);
                }
            }
        }
        EXPECT_EQ(serials, (std::vector<std::uint32_t>{6, 8}));
        ASSERT_TRUE(skipped);
        EXPECT_EQ(skipped->type, MessageType::MethodCall);
        EXPECT_EQ(skipped->serial, 7u);
        EXPECT_EQ(skipped->flags, 0u);
        EXPECT_EQ(skipped->length, big->size());
        EXPECT_EQ(framer.buffered(), 0u);
    }
}

// Only a message that has begun and is incomplete can be skipped.
TEST(MessageFramer, NothingIsSkippedWithoutAnIncompleteMessage) {
    MessageFramer framer;
    EXPECT_FALSE(framer.skip_message()) << "nothing buffered";
    auto wire = signal_with("whole", 1).wire();
    auto space = framer.prepare();
    std::memcpy(space.data(), wire.data(), kFixedHeaderLength - 1);
    framer.commit(kFixedHeaderLength - 1);
    EXPECT_FALSE(framer.skip_message()) << "its fixed header is incomplete";
    space = framer.prepare();
    std::memcpy(space.data(), wire.data() + kFixedHeaderLength - 1, wire.size() - (kFixedHeaderLength - 1));
    framer.commit(wire.size() - (kFixedHeaderLength - 1));
    EXPECT_FALSE(framer.skip_message()) << "it is complete";
    auto m = framer.next();
    ASSERT_TRUE(m && *m);
    EXPECT_EQ((*m)->serial(), 1u);
    EXPECT_FALSE(framer.take_skipped());
}

// The limit holds for messages read into their own storage: one exactly at it is read, one byte over is
// refused before any room is made for it.
TEST(MessageFramer, ALargeMessageAtTheLimitIsReadAndOneBeyondIsRefused) {
    auto wire = large_signal(256 * 1024, 1).wire();
    {
        MessageFramer framer;
        framer.set_max_message_length(wire.size());
        auto got = frame(framer, wire, 8192);
        ASSERT_EQ(got.size(), 1u);
        EXPECT_EQ(got[0].wire(), wire);
    }
    MessageFramer framer;
    framer.set_max_message_length(wire.size() - 1);
    auto space = framer.prepare();
    std::memcpy(space.data(), wire.data(), 8192);
    framer.commit(8192);
    EXPECT_LT(framer.prepare().size(), wire.size() - 8192) << "room made for a message beyond the limit";
    auto refused = framer.next();
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), WireError::MessageTooLong);
}

// A stream that ends inside a large message yields nothing from it; a large message whose body turns out
// invalid once complete is an error like any other.
TEST(MessageFramer, ATruncatedOrCorruptLargeMessageYieldsNothing) {
    auto b = MessageBuilder::signal("/a", "org.example.I", "S");
    append(b, std::string(100 * 1024, 'x'));
    auto m = b.build(1);
    ASSERT_TRUE(m);
    auto wire = m->wire();
    {
        MessageFramer framer;
        auto got = frame(framer, std::span<const std::byte>(wire).first(wire.size() - 1), 10000);
        EXPECT_TRUE(got.empty());
        EXPECT_EQ(framer.buffered(), wire.size() - 1);
        EXPECT_FALSE(framer.next().value());
    }
    wire.back() = std::byte{'y'};  // the string's terminating NUL
    MessageFramer framer;
    for (std::size_t at = 0; at < wire.size();) {
        auto space = framer.prepare();
        const std::size_t n = std::min({std::size_t{10000}, wire.size() - at, space.size()});
        std::memcpy(space.data(), wire.data() + at, n);
        framer.commit(n);
        at += n;
        auto next = framer.next();
        if (at < wire.size()) {
            ASSERT_TRUE(next);
            EXPECT_FALSE(*next);
        } else {
            EXPECT_FALSE(next);
        }
    }
}

TEST(StreamTransport, ManyMessagesOneWriteOneRead) {
    auto pair = stream_socketpair();
    ASSERT_TRUE(pair);
    StreamTransport sender(std::move(pair->first));
    StreamTransport receiver(std::move(pair->second));
    for (std::uint32_t i = 1; i <= 50; ++i) sender.enqueue(signal_with("payload " + std::to_string(i), i));
    EXPECT_EQ(sender.queued_messages(), 50u);
    auto flushed = sender.flush();
    ASSERT_TRUE(flushed);
    EXPECT_TRUE(*flushed);
    EXPECT_EQ(sender.queued_bytes(), 0u);
    wait_readable(receiver.fd());
    auto n = receiver.read();
    ASSERT_TRUE(n);
    std::uint32_t expected = 1;
    for (;;) {
        auto m = receiver.next();
        ASSERT_TRUE(m);
        if (!*m) break;
        EXPECT_EQ((*m)->serial(), expected++);
    }
    EXPECT_EQ(expected, 51u);
}

TEST(StreamTransport, SharedMessageQueuedOnSeveralTransports) {
    auto p1 = stream_socketpair();
    auto p2 = stream_socketpair();
    ASSERT_TRUE(p1 && p2);
    StreamTransport a(std::move(p1->first)), a_peer(std::move(p1->second));
    StreamTransport b(std::move(p2->first)), b_peer(std::move(p2->second));
    auto shared = std::make_shared<const Message>(signal_with("broadcast", 9));
    a.enqueue(shared);
    b.enqueue(shared);
    ASSERT_TRUE(a.flush());
    ASSERT_TRUE(b.flush());
    for (StreamTransport* t : {&a_peer, &b_peer}) {
        wait_readable(t->fd());
        ASSERT_TRUE(t->read());
        auto m = t->next();
        ASSERT_TRUE(m && *m);
        EXPECT_EQ((*m)->serial(), 9u);
    }
}

TEST(StreamTransport, LargeMessageSurvivesPartialWrites) {
    auto pair = stream_socketpair();
    ASSERT_TRUE(pair);
    StreamTransport sender(std::move(pair->first));
    StreamTransport receiver(std::move(pair->second));
    auto b = MessageBuilder::signal("/a", "org.example.I", "S");
    append(b, std::vector<std::uint8_t>(8 * 1024 * 1024, 0x5a));
    auto big = b.build(3);
    ASSERT_TRUE(big);
    sender.enqueue(std::move(*big));
    sender.enqueue(signal_with("after", 4));
    std::vector<std::uint32_t> got;
    while (got.size() < 2) {
        auto f = sender.flush();
        ASSERT_TRUE(f);
        pollfd p{receiver.fd(), POLLIN, 0};
        ASSERT_EQ(::poll(&p, 1, 10000), 1);
        ASSERT_TRUE(receiver.read());
        for (;;) {
            auto m = receiver.next();
            ASSERT_TRUE(m);
            if (!*m) break;
            got.push_back((*m)->serial());
            if ((*m)->serial() == 3) {
                auto bytes = std::get<0>(*read_all<std::vector<std::uint8_t>>(**m));
                EXPECT_EQ(bytes.size(), 8u * 1024 * 1024);
                EXPECT_EQ(bytes.back(), 0x5a);
            }
        }
    }
    EXPECT_EQ(got, (std::vector<std::uint32_t>{3, 4}));
}

TEST(StreamTransport, PassesFdsWithTheirMessage) {
    auto pair = stream_socketpair();
    ASSERT_TRUE(pair);
    StreamTransport sender(std::move(pair->first));
    StreamTransport receiver(std::move(pair->second));
    sender.set_unix_fd_passing(true);
    receiver.set_unix_fd_passing(true);
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    Fd read_end(p[0]), write_end(p[1]);
    sender.enqueue(signal_with("before", 1));
    auto b = MessageBuilder::signal("/a", "org.example.I", "S");
    append(b, UnixFd(std::move(write_end)));
    auto with_fd = b.build(2);
    ASSERT_TRUE(with_fd);
    sender.enqueue(std::move(*with_fd));
    sender.enqueue(signal_with("after", 3));
    ASSERT_TRUE(sender.flush());
    std::vector<Message> got;
    while (got.size() < 3) {
        wait_readable(receiver.fd());
        ASSERT_TRUE(receiver.read());
        for (;;) {
            auto m = receiver.next();
            ASSERT_TRUE(m);
            if (!*m) break;
            got.push_back(std::move(**m));
        }
    }
    ASSERT_EQ(got[1].fds().size(), 1u);
    EXPECT_TRUE(got[0].fds().empty());
    EXPECT_TRUE(got[2].fds().empty());
    auto fd = std::get<0>(*read_all<UnixFd>(got[1]));
    ASSERT_EQ(::write(fd.fd().get(), "z", 1), 1);
    char c;
    ASSERT_EQ(::read(read_end.get(), &c, 1), 1);
    EXPECT_EQ(c, 'z');
}

TEST(StreamTransport, FdsWithoutNegotiationAreRefused) {
    auto pair = stream_socketpair();
    ASSERT_TRUE(pair);
    StreamTransport sender(std::move(pair->first));
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    Fd a(p[0]), b(p[1]);
    auto builder = MessageBuilder::signal("/a", "org.example.I", "S");
    append(builder, UnixFd(std::move(a)));
    auto m = builder.build(1);
    ASSERT_TRUE(m);
    sender.enqueue(std::move(*m));
    auto r = sender.flush();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, TransportError::Kind::FdsNotAllowed);
}

// Bytes that came with the SASL exchange may hold the start of a large message, and the next push its
// rest and more: the framer offers the rest of that message apart from what follows it.
TEST(StreamTransport, PushedBytesMayEndInsideALargeMessage) {
    auto pair = stream_socketpair();
    ASSERT_TRUE(pair);
    StreamTransport receiver(std::move(pair->second));
    std::vector<std::byte> stream;
    append_wire(stream, large_signal(200 * 1024, 1));
    append_wire(stream, signal_with("after", 2));
    const std::string_view text(reinterpret_cast<const char*>(stream.data()), stream.size());
    receiver.push_received(text.substr(0, 70000));
    receiver.push_received(text.substr(70000));
    std::vector<std::uint32_t> serials;
    for (;;) {
        auto m = receiver.next();
        ASSERT_TRUE(m);
        if (!*m) break;
        serials.push_back((*m)->serial());
    }
    EXPECT_EQ(serials, (std::vector<std::uint32_t>{1, 2}));
}

// What an owner received for itself (the daemon's io_uring receives) is taken as a read's bytes would
// be, with the same refusals, and awaited() says how much of a message begun is still to come.
TEST(StreamTransport, BytesAndFdsReceivedByTheOwnerAreTakenAsReadOnes) {
    auto pair = stream_socketpair();
    ASSERT_TRUE(pair);
    StreamTransport receiver(std::move(pair->second));
    std::vector<std::byte> stream;
    append_wire(stream, signal_with("first", 1));
    append_wire(stream, large_signal(100 * 1024, 2));
    const std::span<const std::byte> bytes(stream);
    const std::size_t first = signal_with("first", 1).size();
    ASSERT_TRUE(receiver.take_received(bytes.first(first + 20), {}, false));
    auto m = receiver.next();
    ASSERT_TRUE(m && *m);
    EXPECT_EQ((*m)->serial(), 1u);
    EXPECT_EQ(receiver.awaited(), stream.size() - first - 20);
    ASSERT_TRUE(receiver.take_received(bytes.subspan(first + 20), {}, false));
    EXPECT_EQ(receiver.awaited(), 0u);
    m = receiver.next();
    ASSERT_TRUE(m && *m);
    EXPECT_EQ((*m)->serial(), 2u);

    Fd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    std::vector<Fd> fds;
    fds.push_back(std::move(fd));
    auto refused = receiver.take_received(bytes.first(first), std::move(fds), false);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().kind, TransportError::Kind::FdsNotAllowed);
    auto cut = receiver.take_received(bytes.first(first), {}, true);
    ASSERT_FALSE(cut);
    EXPECT_EQ(cut.error().kind, TransportError::Kind::Corrupt);
    EXPECT_EQ(cut.error().wire, WireError::TooManyFds);
}

// The rest of a long message received in place: into the message's own storage, which becomes its body.
TEST(StreamTransport, TheRestOfALongMessageIsReceivedInPlace) {
    auto pair = stream_socketpair();
    ASSERT_TRUE(pair);
    StreamTransport receiver(std::move(pair->second));
    receiver.set_unix_fd_passing(true);
    const Message sent = large_signal(100 * 1024, 7);
    std::vector<std::byte> stream;
    append_wire(stream, sent);
    const std::span<const std::byte> bytes(stream);
    ASSERT_TRUE(receiver.take_received(bytes.first(16 * 1024), {}, false));
    ASSERT_EQ(receiver.awaited(), stream.size() - 16 * 1024);
    std::span<std::byte> room = receiver.receive_room();
    ASSERT_EQ(room.size(), receiver.awaited());
    const std::size_t part = room.size() / 2;
    std::memcpy(room.data(), bytes.data() + 16 * 1024, part);
    ASSERT_TRUE(receiver.took_in_place(part, {}, false));
    auto m = receiver.next();
    ASSERT_TRUE(m);
    EXPECT_FALSE(*m);  // not all of it yet
    room = receiver.receive_room();
    ASSERT_EQ(room.size(), stream.size() - 16 * 1024 - part);
    std::memcpy(room.data(), bytes.data() + 16 * 1024 + part, room.size());
    ASSERT_TRUE(receiver.took_in_place(room.size(), {}, false));
    EXPECT_EQ(receiver.awaited(), 0u);
    m = receiver.next();
    ASSERT_TRUE(m && *m);
    EXPECT_EQ((*m)->serial(), 7u);
    EXPECT_TRUE(std::ranges::equal((*m)->body_bytes(), sent.body_bytes()));

    // Fds without fd passing, and control data cut short, are refused as from a read.
    StreamTransport other(Fd{});
    ASSERT_TRUE(other.take_received(bytes.first(16 * 1024), {}, false));
    (void)other.receive_room();
    std::vector<Fd> fds;
    fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    auto refused = other.took_in_place(1, std::move(fds), false);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().kind, TransportError::Kind::FdsNotAllowed);
    auto cut = other.took_in_place(1, {}, true);
    ASSERT_FALSE(cut);
    EXPECT_EQ(cut.error().wire, WireError::TooManyFds);
}

TEST(StreamTransport, APeerClosingInsideALargeMessageIsAClose) {
    auto pair = stream_socketpair();
    ASSERT_TRUE(pair);
    StreamTransport receiver(std::move(pair->second));
    auto wire = large_signal(200 * 1024, 1).wire();
    ASSERT_EQ(::send(pair->first.get(), wire.data(), 100000, MSG_NOSIGNAL), 100000);
    pair->first.reset();
    for (;;) {
        auto n = receiver.read();
        if (!n) {
            EXPECT_EQ(n.error().kind, TransportError::Kind::Closed);
            break;
        }
        auto m = receiver.next();
        ASSERT_TRUE(m);
        EXPECT_FALSE(*m);
    }
}

TEST(StreamTransport, ReportsClose) {
    auto pair = stream_socketpair();
    ASSERT_TRUE(pair);
    StreamTransport receiver(std::move(pair->second));
    pair->first.reset();
    auto r = receiver.read();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, TransportError::Kind::Closed);
}

TEST(UnixSocket, ListenConnectAcceptAndCredentials) {
    const std::string path = std::string(1, '\0') + "afbus-test-" + std::to_string(::getpid());
    auto listener = listen_unix(path);
    ASSERT_TRUE(listener) << std::strerror(listener.error());
    auto client = connect_unix(path);
    ASSERT_TRUE(client) << std::strerror(client.error());
    auto server = accept_connection(*listener);
    ASSERT_TRUE(server);
    ASSERT_TRUE(server->valid());
    auto cred = peer_credentials(*server);
    ASSERT_TRUE(cred);
    EXPECT_EQ(cred->pid, ::getpid());
    EXPECT_EQ(cred->uid, ::getuid());
    EXPECT_EQ(cred->gid, ::getgid());
    EXPECT_TRUE(cred->from_kernel);
    auto none = accept_connection(*listener);
    ASSERT_TRUE(none);
    EXPECT_FALSE(none->valid());
    EXPECT_EQ(connect_unix(std::string(1, '\0') + "afbus-nobody-listens").error(), ECONNREFUSED);
}

TEST(UnixSocket, TcpPeersHaveNoCredentials) {
    // SO_PEERCRED "works" on TCP and says uid -1; peer_credentials must not pass that off as a user.
    Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(listener);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(::listen(listener.get(), 1), 0);
    socklen_t length = sizeof address;
    ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length), 0);
    Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    Fd server(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(server);
    auto cred = peer_credentials(server);
    ASSERT_TRUE(cred);
    EXPECT_FALSE(cred->from_kernel);
    EXPECT_EQ(cred->pid, 0);
    EXPECT_EQ(cred->uid, static_cast<uid_t>(-1));
    EXPECT_TRUE(cred->groups.empty());
    EXPECT_FALSE(cred->pidfd);
}

}  // namespace
}  // namespace afbus
