// EventLoop's timers: the order they run in, and what a callback's own timers and cancellations do.
#include "event_loop.hpp"

#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace afbus::daemon
