// ReceiveRing over socketpairs: what a receive brings (bytes, fds, the end of the stream), one receive
// per start(), receives into the owner's room, stop() and shutdown() and what the peer then sees, more
// sockets with bytes than buffers, and the wait for the other fd. Skipped where io_uring cannot be used (the
// daemon then runs on epoll alone).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "afbus/unix_socket.hpp"
#include "receive_ring.hpp"
#include "transport/socket_io.hpp"

namespace afbus::daemon {
namespace {

using namespace std::chrono_literals;

using Pair = std::pair<Fd, Fd>;  // ours, the peer's

Pair socket_pair() {
    auto pair = stream_socketpair();
    EXPECT_TRUE(pair);
    return pair ? std::move(*pair) : Pair{};
}

void send_text(int fd, const std::string& text) {
    ASSERT_EQ(::send(fd, text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()));
}

// What a handler saw, copied out of the ring's buffers.
struct Seen {
    std::uint64_t tag;
    std::string bytes;
    std::size_t fds;
    int error;
};

class ReceiveRingTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto opened = ReceiveRing::open(4);
        if (!opened) GTEST_SKIP() << "io_uring cannot be used here: " << std::strerror(opened.error());
        ring_ = std::move(*opened);
    }
    // Waits until at least `count` receives have ended, at most `waits` waits of 100 ms, collecting them.
    std::vector<Seen> wait_for(std::size_t count, int waits = 50) {
        std::vector<Seen> seen;
        for (int i = 0; i < waits && seen.size() < count; ++i) {
            auto waited = ring_->wait(
                100ms,
                [&seen](ReceiveRing::Received& r) {
                    seen.push_back(
                        {r.tag, std::string(reinterpret_cast<const char*>(r.bytes.data()), r.bytes.size()),
                         r.fds.size(), r.error});
                },
                no_polls);
            EXPECT_TRUE(waited);
        }
        return seen;
    }
    static void no_polls(std::uint64_t, int) { ADD_FAILURE() << "no poll was made"; }
    std::unique_ptr<ReceiveRing> ring_;
};

TEST_F(ReceiveRingTest, AReceiveBringsWhatArrivedAndEnds) {
    Pair p = socket_pair();
    ring_->start(p.first.get(), 7);
    EXPECT_TRUE(ring_->receiving(7));
    send_text(p.second.get(), "hello");
    auto seen = wait_for(1);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].tag, 7u);
    EXPECT_EQ(seen[0].bytes, "hello");
    EXPECT_EQ(seen[0].error, 0);
    // One receive per start(): what comes next waits in the socket.
    EXPECT_FALSE(ring_->receiving(7));
    send_text(p.second.get(), "again");
    EXPECT_TRUE(wait_for(1, 2).empty());
    ring_->start(p.first.get(), 7);
    seen = wait_for(1);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].bytes, "again");
}

TEST_F(ReceiveRingTest, FdsComeWithTheirBytes) {
    Pair p = socket_pair();
    std::vector<Fd> passed;
    for (int i = 0; i < 2; ++i) passed.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(passed[0] && passed[1]);
    char byte = 'x';
    iovec iov{&byte, 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ScmRightsBuffer control;
    attach_fds(msg, control, passed);
    ASSERT_EQ(::sendmsg(p.second.get(), &msg, MSG_NOSIGNAL), 1);
    ring_->start(p.first.get(), 1);
    auto seen = wait_for(1);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].bytes, "x");
    EXPECT_EQ(seen[0].fds, 2u);
}

TEST_F(ReceiveRingTest, TheEndOfTheStreamEndsTheReceiveWithNoError) {
    Pair p = socket_pair();
    ring_->start(p.first.get(), 3);
    p.second = Fd();
    auto seen = wait_for(1);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_TRUE(seen[0].bytes.empty());
    EXPECT_EQ(seen[0].error, 0);
}

TEST_F(ReceiveRingTest, AStoppedReceiveEndsAndLetsGoOfTheSocket) {
    Pair p = socket_pair();
    ring_->start(p.first.get(), 5);
    ring_->stop(5);
    auto seen = wait_for(1);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].error, ECANCELED);
    EXPECT_FALSE(ring_->receiving(5));
    // Closed now, the socket is gone: the peer sees the end at once.
    p.first = Fd();
    char byte;
    EXPECT_EQ(::recv(p.second.get(), &byte, 1, 0), 0);
}

TEST_F(ReceiveRingTest, AReceiveIntoTheOwnersRoomLeavesTheBytesThere) {
    Pair p = socket_pair();
    std::vector<std::byte> room(32 * 1024, std::byte{'-'});
    ring_->start_into(p.first.get(), 9, std::span(room).subspan(10));
    EXPECT_TRUE(ring_->receiving(9));
    // More than one of the ring's buffers holds: the room is the only limit.
    const std::string text(20 * 1024, 'r');
    send_text(p.second.get(), text);
    std::vector<ReceiveRing::Received> seen;
    for (int i = 0; i < 50 && seen.empty(); ++i)
        ASSERT_TRUE(ring_->wait(
            100ms, [&seen](ReceiveRing::Received& r) { seen.push_back(std::move(r)); }, no_polls));
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_TRUE(seen[0].in_place);
    EXPECT_EQ(seen[0].error, 0);
    ASSERT_EQ(seen[0].bytes.size(), text.size());
    EXPECT_EQ(seen[0].bytes.data(), room.data() + 10);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(room.data() + 10), text.size()), text);
    EXPECT_EQ(room[9], std::byte{'-'});
    EXPECT_FALSE(ring_->receiving(9));

    ring_->start_into(p.first.get(), 9, std::span(room));
    ring_->stop(9);
    auto stopped = wait_for(1);
    ASSERT_EQ(stopped.size(), 1u);
    EXPECT_EQ(stopped[0].error, ECANCELED);
}

// The daemon ends a connection with shutdown() and no stop(): the receive pending on it ends by itself,
// with what was still in the socket or with the end of the stream, and the peer sees the end at once.
TEST_F(ReceiveRingTest, AReceiveOnASocketShutDownEnds) {
    Pair p = socket_pair();
    std::vector<std::byte> room(64);
    ring_->start_into(p.first.get(), 4, room);
    Pair q = socket_pair();
    ring_->start(q.first.get(), 5);
    send_text(q.second.get(), "last words");
    ASSERT_EQ(::shutdown(p.first.get(), SHUT_RDWR), 0);
    ASSERT_EQ(::shutdown(q.first.get(), SHUT_RDWR), 0);
    char byte;
    EXPECT_EQ(::recv(p.second.get(), &byte, 1, 0), 0);
    EXPECT_EQ(::recv(q.second.get(), &byte, 1, 0), 0);
    auto seen = wait_for(2);
    ASSERT_EQ(seen.size(), 2u);
    std::sort(seen.begin(), seen.end(), [](const Seen& a, const Seen& b) { return a.tag < b.tag; });
    EXPECT_EQ(seen[0].error, 0);
    EXPECT_TRUE(seen[0].bytes.empty());
    EXPECT_EQ(seen[1].error, 0);
    EXPECT_EQ(seen[1].bytes, "last words");
    EXPECT_FALSE(ring_->receiving(4));
    EXPECT_FALSE(ring_->receiving(5));
}

TEST_F(ReceiveRingTest, MoreSocketsWithBytesThanBuffersAllGetTheirsInTurn) {
    // Four buffers, ten sockets with bytes at once: those without a buffer are received from again at
    // the next wait(), with nothing lost or reordered.
    std::vector<Pair> pairs;
    for (int i = 0; i < 10; ++i) pairs.push_back(socket_pair());
    for (std::size_t i = 0; i < pairs.size(); ++i) {
        send_text(pairs[i].second.get(), "from " + std::to_string(i));
        ring_->start(pairs[i].first.get(), i + 1);
    }
    auto seen = wait_for(pairs.size());
    ASSERT_EQ(seen.size(), pairs.size());
    std::vector<bool> got(pairs.size());
    for (const Seen& s : seen) {
        ASSERT_GE(s.tag, 1u);
        ASSERT_LE(s.tag, pairs.size());
        EXPECT_EQ(s.bytes, "from " + std::to_string(s.tag - 1));
        got[s.tag - 1] = true;
    }
    EXPECT_EQ(std::count(got.begin(), got.end(), true), 10);
}

// Polls (the event loop's watches): one event each, in the order they came; a stopped one ends with
// ECANCELED; a wait with nothing to complete ends when its time is up.
TEST_F(ReceiveRingTest, APollEndsWithTheEventsThatCameOrWhenStopped) {
    Pair p = socket_pair();
    Pair q = socket_pair();
    std::vector<std::pair<std::uint64_t, int>> polled;
    auto nothing = [](ReceiveRing::Received&) { ADD_FAILURE() << "no receive was started"; };
    auto collect = [&polled](std::uint64_t tag, int result) { polled.emplace_back(tag, result); };
    ring_->poll(p.first.get(), EPOLLIN, 11);
    ring_->poll(q.first.get(), EPOLLOUT, 12);  // writable at once
    ASSERT_TRUE(ring_->wait(5000ms, nothing, collect));
    ASSERT_EQ(polled.size(), 1u);
    EXPECT_EQ(polled[0].first, 12u);
    EXPECT_TRUE(polled[0].second & EPOLLOUT);
    polled.clear();
    ASSERT_TRUE(ring_->wait(20ms, nothing, collect));  // time is up: nothing
    EXPECT_TRUE(polled.empty());
    send_text(p.second.get(), "ready");
    ASSERT_TRUE(ring_->wait(5000ms, nothing, collect));
    ASSERT_EQ(polled.size(), 1u);
    EXPECT_EQ(polled[0].first, 11u);
    EXPECT_TRUE(polled[0].second & EPOLLIN);
    polled.clear();
    // A hang-up is reported whatever was asked for.
    ring_->poll(q.first.get(), 0, 13);
    q.second = Fd();
    ASSERT_TRUE(ring_->wait(5000ms, nothing, collect));
    ASSERT_EQ(polled.size(), 1u);
    EXPECT_TRUE(polled[0].second & EPOLLHUP);
    polled.clear();
    Pair r = socket_pair();
    ring_->poll(r.first.get(), EPOLLIN, 14);
    ring_->stop_poll(14);
    ASSERT_TRUE(ring_->wait(5000ms, nothing, collect));
    ASSERT_EQ(polled.size(), 1u);
    EXPECT_EQ(polled[0].first, 14u);
    EXPECT_EQ(polled[0].second, -ECANCELED);
}

}  // namespace
}  // namespace afbus::daemon
