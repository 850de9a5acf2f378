// EventLoop's timers: the order they run in, and what a callback's own timers and cancellations do; its
// watches, with epoll and polled in a ReceiveRing: level-triggered, their events changed and removed from
// callbacks, an fd's number reused.
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "afbus/unix_socket.hpp"
#include "event_loop.hpp"

namespace afbus::daemon {
namespace {

using namespace std::chrono_literals;

TEST(EventLoop, DueTimersRunEarliestFirst) {
    EventLoop loop;
    std::string ran;
    const auto now = Clock::now();
    loop.add_timer(now - 1ms, [&] { ran += 'b'; });
    loop.add_timer(now - 2ms, [&] { ran += 'a'; });
    loop.add_timer(now + 1h, [&] { ran += 'z'; });
    ASSERT_TRUE(loop.run_once(0ms));
    EXPECT_EQ(ran, "ab");
}

// A timer a callback adds waits for the next turn even when it is due already, so that a callback that
// sets itself again at once cannot keep the loop in one turn for ever.
TEST(EventLoop, ATimerAddedByACallbackRunsOnTheNextTurn) {
    EventLoop loop;
    int turns = 0, runs = 0;
    loop.set_after_iteration([&] { ++turns; });
    std::function<void()> again = [&] {
        ++runs;
        if (runs < 3) loop.add_timer(Clock::now() - 1ms, again);
    };
    loop.add_timer(Clock::now() - 1ms, again);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(loop.run_once(0ms));
    EXPECT_EQ(runs, 3);
    EXPECT_EQ(turns, 3);
}

TEST(EventLoop, ACallbackCancellingADueTimerStopsIt) {
    EventLoop loop;
    std::string ran;
    const auto now = Clock::now();
    EventLoop::TimerId second = 0;
    loop.add_timer(now - 2ms, [&] {
        ran += 'a';
        loop.cancel_timer(second);
    });
    second = loop.add_timer(now - 1ms, [&] { ran += 'b'; });
    loop.add_timer(now - 1ms, [&] { ran += 'c'; });
    ASSERT_TRUE(loop.run_once(0ms));
    EXPECT_EQ(ran, "ac");
}

enum class Waits { Epoll, Ring };

class EventLoopWatches : public ::testing::TestWithParam<Waits> {
protected:
    void SetUp() override {
        if (GetParam() == Waits::Ring) {
            auto ring = loop_.use_receive_ring(
                [](ReceiveRing::Received&) { ADD_FAILURE() << "no receive was started"; });
            if (!ring) GTEST_SKIP() << "io_uring cannot be used here: " << std::strerror(ring.error());
        }
    }
    static std::pair<Fd, Fd> pair() {
        auto p = stream_socketpair();
        EXPECT_TRUE(p);
        return p ? std::move(*p) : std::pair<Fd, Fd>{};
    }
    // Turns of the loop until `done`, at most 50 of 100 ms.
    template <class Done>
    void turn_until(Done done) {
        for (int i = 0; i < 50 && !done(); ++i) ASSERT_TRUE(loop_.run_once(100ms));
    }
    EventLoop loop_;
};

TEST_P(EventLoopWatches, AWatchIsCalledForAsLongAsItsEventLasts) {
    auto ours_pair = pair();
    Fd& ours = ours_pair.first;
    Fd& theirs = ours_pair.second;
    std::vector<std::uint32_t> called;
    ASSERT_TRUE(loop_.watch(ours.get(), EPOLLIN, [&](std::uint32_t events) { called.push_back(events); }));
    ASSERT_TRUE(loop_.run_once(0ms));
    EXPECT_TRUE(called.empty());
    ASSERT_EQ(::send(theirs.get(), "x", 1, 0), 1);
    turn_until([&] { return !called.empty(); });
    ASSERT_EQ(called.size(), 1u);
    EXPECT_EQ(called[0], static_cast<std::uint32_t>(EPOLLIN));
    // Not read: the next turn calls it again.
    turn_until([&] { return called.size() > 1; });
    EXPECT_EQ(called.size(), 2u);
    char byte;
    ASSERT_EQ(::recv(ours.get(), &byte, 1, 0), 1);
    ASSERT_TRUE(loop_.run_once(0ms));
    ASSERT_TRUE(loop_.run_once(20ms));
    EXPECT_EQ(called.size(), 2u);
}

TEST_P(EventLoopWatches, ModifiedEventsAreTheOnesReportedAndAHangUpAlways) {
    auto ours_pair = pair();
    Fd& ours = ours_pair.first;
    Fd& theirs = ours_pair.second;
    std::vector<std::uint32_t> called;
    ASSERT_TRUE(loop_.watch(ours.get(), EPOLLIN, [&](std::uint32_t events) {
        called.push_back(events);
        loop_.modify(ours.get(), 0);  // from the callback itself
    }));
    loop_.modify(ours.get(), EPOLLIN | EPOLLOUT);
    turn_until([&] { return !called.empty(); });
    ASSERT_EQ(called.size(), 1u);
    EXPECT_EQ(called[0], static_cast<std::uint32_t>(EPOLLOUT));
    ASSERT_EQ(::send(theirs.get(), "x", 1, 0), 1);
    ASSERT_TRUE(loop_.run_once(20ms));
    EXPECT_EQ(called.size(), 1u);  // nothing asked for
    theirs.reset();
    turn_until([&] { return called.size() > 1; });
    ASSERT_EQ(called.size(), 2u);
    EXPECT_TRUE(called[1] & EPOLLHUP);
    EXPECT_FALSE(called[1] & EPOLLIN);
}

TEST_P(EventLoopWatches, AnUnwatchedFdIsNotCalledAndItsNumberServesItsSuccessor) {
    auto first_pair = pair();
    Fd& first = first_pair.first;
    Fd& first_peer = first_pair.second;
    auto second_pair = pair();
    Fd& second = second_pair.first;
    std::string called;
    // Both ready in the same turn: whichever comes first removes the other, which is then not called.
    ASSERT_TRUE(loop_.watch(first.get(), EPOLLOUT, [&](std::uint32_t) {
        called += 'a';
        loop_.unwatch(second.get());
        loop_.unwatch(first.get());
    }));
    ASSERT_TRUE(loop_.watch(second.get(), EPOLLOUT, [&](std::uint32_t) {
        called += 'b';
        loop_.unwatch(first.get());
        loop_.unwatch(second.get());
    }));
    turn_until([&] { return !called.empty(); });
    ASSERT_EQ(called.size(), 1u);
    ASSERT_TRUE(loop_.run_once(20ms));
    EXPECT_EQ(called.size(), 1u);

    // The number of a closed fd, watched anew, reports the new socket's events only.
    const int number = first.get();
    ASSERT_TRUE(loop_.watch(number, EPOLLIN, [&](std::uint32_t) { called += 'x'; }));
    ASSERT_TRUE(loop_.run_once(0ms));  // (polled, with a ring)
    loop_.unwatch(number);
    first.reset();
    first_peer.reset();
    auto reused_pair = pair();
    Fd& reused = reused_pair.first;
    Fd& reused_peer = reused_pair.second;
    ASSERT_TRUE(reused.get() == number || reused_peer.get() == number);
    Fd& at_number = reused.get() == number ? reused : reused_peer;
    Fd& other_end = reused.get() == number ? reused_peer : reused;
    ASSERT_TRUE(loop_.watch(number, EPOLLIN, [&](std::uint32_t events) {
        called += 'n';
        EXPECT_EQ(events, static_cast<std::uint32_t>(EPOLLIN));
        char byte;
        ASSERT_EQ(::recv(at_number.get(), &byte, 1, 0), 1);
    }));
    ASSERT_TRUE(loop_.run_once(20ms));
    EXPECT_EQ(called.size(), 1u);
    ASSERT_EQ(::send(other_end.get(), "x", 1, 0), 1);
    turn_until([&] { return called.size() > 1; });
    EXPECT_EQ(called.substr(1), "n");
}

TEST_P(EventLoopWatches, AnFdIsWatchedOnceAndItsFirstWatchStays) {
    auto ours_pair = pair();
    Fd& ours = ours_pair.first;
    std::string called;
    ASSERT_TRUE(loop_.watch(ours.get(), EPOLLOUT, [&](std::uint32_t) { called += 'a'; }));
    errno = 0;
    EXPECT_FALSE(loop_.watch(ours.get(), EPOLLOUT, [&](std::uint32_t) { called += 'b'; }));
    EXPECT_EQ(errno, EEXIST);
    turn_until([&] { return !called.empty(); });
    EXPECT_EQ(called, "a");
}

// A watch made and removed within one turn is never polled, and is not called.
TEST_P(EventLoopWatches, AWatchRemovedInTheTurnItWasMadeIsNeverCalled) {
    auto ours_pair = pair();
    Fd& ours = ours_pair.first;
    bool called = false;
    ASSERT_TRUE(loop_.watch(ours.get(), EPOLLOUT, [&](std::uint32_t) { called = true; }));
    loop_.unwatch(ours.get());
    ASSERT_TRUE(loop_.run_once(20ms));
    EXPECT_FALSE(called);
}

INSTANTIATE_TEST_SUITE_P(Waits, EventLoopWatches, ::testing::Values(Waits::Epoll, Waits::Ring),
                         [](const ::testing::TestParamInfo<Waits>& info) {
                             return info.param == Waits::Epoll ? std::string("Epoll") : std::string("Ring");
                         });

}  // namespace
}  // namespace afbus::daemon
