// ReceiveRing over socketpairs: what a receive brings (bytes, fds, the end of the stream), one receive
// per start(), stop() and what the peer then sees, more sockets with bytes than buffers, and the wait for
// the other fd. Skipped where io_uring cannot be used (the daemon then runs on epoll alone).
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
        epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
        ASSERT_TRUE(epoll_);
    }
    // Waits until at least `count` receives have ended, at most `waits` waits of 100 ms, collecting them.
    std::vector<Seen> wait_for(std::size_t count, int waits = 50) {
        std::vector<Seen> seen;
        for (int i = 0; i < waits && seen.size() < count; ++i) {
            auto waited = ring_->wait(epoll_.get(), 100ms, [&seen](ReceiveRing::Received& r) {
                seen.push_back({r.tag,
                                std::string(reinterpret_cast<const char*>(r.bytes.data()), r.bytes.size()),
                                r.fds.size(), r.error});
            });
            EXPECT_TRUE(waited);
        }
        return seen;
    }
    std::unique_ptr<ReceiveRing> ring_;
    Fd epoll_;
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

TEST_F(ReceiveRingTest, AWaitForBytesTakesNothingAndCanBeStopped) {
    Pair p = socket_pair();
    ring_->wait_readable(p.first.get(), 9);
    EXPECT_TRUE(ring_->receiving(9));
    send_text(p.second.get(), "left in the socket");
    std::vector<ReceiveRing::Received> seen;
    for (int i = 0; i < 50 && seen.empty(); ++i)
        ASSERT_TRUE(ring_->wait(epoll_.get(), 100ms, [&seen](ReceiveRing::Received& r) {
            EXPECT_TRUE(r.bytes.empty());
            seen.push_back(std::move(r));
        }));
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_TRUE(seen[0].readable);
    EXPECT_FALSE(ring_->receiving(9));
    char text[64];
    EXPECT_EQ(::recv(p.first.get(), text, sizeof text, 0), 18);

    ring_->wait_readable(p.first.get(), 9);
    ring_->stop(9);
    auto stopped = wait_for(1);
    ASSERT_EQ(stopped.size(), 1u);
    EXPECT_EQ(stopped[0].error, ECANCELED);
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

TEST_F(ReceiveRingTest, WaitSaysWhenTheOtherFdIsReadyAndWhenTimeIsUp) {
    Pair p = socket_pair();
    epoll_event event{};
    event.events = EPOLLIN;
    ASSERT_EQ(::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, p.first.get(), &event), 0);
    auto nothing = [](ReceiveRing::Received&) { ADD_FAILURE() << "no receive was started"; };
    auto waited = ring_->wait(epoll_.get(), 20ms, nothing);
    ASSERT_TRUE(waited);
    EXPECT_FALSE(*waited);
    send_text(p.second.get(), "ready");
    waited = ring_->wait(epoll_.get(), 5000ms, nothing);
    ASSERT_TRUE(waited);
    EXPECT_TRUE(*waited);
}

}  // namespace
}  // namespace afbus::daemon
