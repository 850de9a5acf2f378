#include "expected_replies.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace afbus::daemon {
namespace {

using namespace std::chrono_literals;

struct ExpectedRepliesTest : testing::Test {
    EventLoop loop;
    std::vector<std::pair<PeerId, std::uint32_t>> timed_out;
    ExpectedReplies replies{loop, [this](PeerId caller, std::uint32_t serial) { timed_out.emplace_back(caller, serial); }};
};

TEST_F(ExpectedRepliesTest, OnlyTheCalleeCanSettleACallAndOnlyOnce) {
    replies.expect(1, 10, 2, 0);
    EXPECT_EQ(replies.outstanding(1), 1u);
    EXPECT_FALSE(replies.expected(1, 10, 3));  // someone else
    EXPECT_FALSE(replies.settle(1, 10, 3));
    EXPECT_FALSE(replies.expected(1, 11, 2));  // another serial
    EXPECT_TRUE(replies.expected(1, 10, 2));
    EXPECT_TRUE(replies.settle(1, 10, 2));
    EXPECT_FALSE(replies.settle(1, 10, 2));
    EXPECT_EQ(replies.outstanding(1), 0u);
}

TEST_F(ExpectedRepliesTest, OutstandingCountsOneCallersCalls) {
    for (std::uint32_t serial = 1; serial <= 5; ++serial) replies.expect(1, serial, 2, 0);
    replies.expect(3, 1, 2, 0);
    EXPECT_EQ(replies.outstanding(1), 5u);
    EXPECT_EQ(replies.outstanding(3), 1u);
    EXPECT_EQ(replies.outstanding(2), 0u);
    // A serial used again replaces the earlier call.
    replies.expect(1, 5, 4, 0);
    EXPECT_EQ(replies.outstanding(1), 5u);
    EXPECT_FALSE(replies.expected(1, 5, 2));
    EXPECT_TRUE(replies.expected(1, 5, 4));
}

TEST_F(ExpectedRepliesTest, ALeavingCalleeOwesNoReplyInCallOrder) {
    replies.expect(3, 7, 2, 0);
    replies.expect(1, 9, 2, 0);
    replies.expect(1, 4, 2, 0);
    replies.expect(1, 5, 6, 0);  // to someone else
    replies.expect(2, 1, 1, 0);  // the leaving peer's own call
    const auto orphaned = replies.forget(2);
    EXPECT_EQ(std::vector(orphaned.begin(), orphaned.end()), (std::vector<ExpectedReplies::Owed>{{3, 7}, {1, 9}, {1, 4}}));
    EXPECT_EQ(replies.outstanding(1), 1u);
    EXPECT_EQ(replies.outstanding(2), 0u);
    EXPECT_EQ(replies.outstanding(3), 0u);
    EXPECT_TRUE(replies.expected(1, 5, 6));
    EXPECT_TRUE(replies.forget(2).empty());
}

TEST_F(ExpectedRepliesTest, ACallTimesOutOnce) {
    replies.expect(1, 10, 2, 1);
    replies.expect(1, 11, 2, 60'000);
    while (timed_out.empty()) ASSERT_TRUE(loop.run_once(1000ms));
    EXPECT_EQ(timed_out, (std::vector<std::pair<PeerId, std::uint32_t>>{{1, 10}}));
    EXPECT_EQ(replies.outstanding(1), 1u);
    EXPECT_FALSE(replies.settle(1, 10, 2));
    const auto orphaned = replies.forget(2);
    EXPECT_EQ(std::vector(orphaned.begin(), orphaned.end()), (std::vector<ExpectedReplies::Owed>{{1, 11}}));
}

TEST_F(ExpectedRepliesTest, ASettledCallDoesNotTimeOut) {
    replies.expect(1, 10, 2, 1);
    EXPECT_TRUE(replies.settle(1, 10, 2));
    replies.expect(1, 12, 2, 2);  // a later timer, to know the first one had its chance
    while (timed_out.empty()) ASSERT_TRUE(loop.run_once(1000ms));
    EXPECT_EQ(timed_out, (std::vector<std::pair<PeerId, std::uint32_t>>{{1, 12}}));
}

}  // namespace
}  // namespace afbus::daemon
