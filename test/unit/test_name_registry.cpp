#include "name_registry.hpp"

#include <gtest/gtest.h>

#include "afbus/names.hpp"

namespace afbus::daemon {
namespace {

using namespace name_flags;

constexpr PeerId A = 1, B = 2, C = 3;

TEST(NameRegistry, FirstRequestOwnsAndSecondQueues) {
    NameRegistry r;
    auto a = r.request("org.x", A, 0);
    EXPECT_EQ(a.reply, 1u);
    ASSERT_EQ(a.changes.size(), 1u);
    EXPECT_EQ(a.changes[0].old_owner, std::nullopt);
    EXPECT_EQ(a.changes[0].new_owner, A);
    EXPECT_EQ(r.request("org.x", A, 0).reply, 4u);  // already owner
    auto b = r.request("org.x", B, 0);
    EXPECT_EQ(b.reply, 2u);
    EXPECT_TRUE(b.changes.empty());
    EXPECT_EQ(r.queue("org.x"), (std::vector<PeerId>{A, B}));
    EXPECT_EQ(r.request("org.x", C, kDoNotQueue).reply, 3u);
    EXPECT_EQ(r.queue("org.x"), (std::vector<PeerId>{A, B}));
}

// A queued peer asking again with DO_NOT_QUEUE leaves the queue; when that was its only name, its list
// of names goes too (the fuzzer found the registry reading that list after freeing it).
TEST(NameRegistry, AQueuedPeerAskingNotToQueueLeavesTheQueue) {
    NameRegistry r;
    r.request("org.x", A, 0);
    EXPECT_EQ(r.request("org.x", B, 0).reply, 2u);
    EXPECT_EQ(r.request("org.x", B, kDoNotQueue).reply, 3u);
    EXPECT_EQ(r.queue("org.x"), (std::vector<PeerId>{A}));
    EXPECT_EQ(r.count_for(B), 0u);
    EXPECT_EQ(r.request("org.x", C, kDoNotQueue).reply, 3u);  // never queued: nothing kept for it either
    EXPECT_EQ(r.count_for(C), 0u);
    EXPECT_TRUE(r.release_all(B).empty());
}

TEST(NameRegistry, ReplacementNeedsBothFlags) {
    NameRegistry r;
    r.request("org.x", A, 0);
    EXPECT_EQ(r.request("org.x", B, kReplaceExisting).reply, 2u);  // A did not allow replacement
    r.request("org.x", A, kAllowReplacement);                     // A updates its flags
    auto c = r.request("org.x", C, kReplaceExisting);
    EXPECT_EQ(c.reply, 1u);
    ASSERT_EQ(c.changes.size(), 1u);
    EXPECT_EQ(c.changes[0].old_owner, A);
    EXPECT_EQ(c.changes[0].new_owner, C);
    // The replaced owner waits at the head of the queue.
    EXPECT_EQ(r.queue("org.x"), (std::vector<PeerId>{C, A, B}));
}

TEST(NameRegistry, ReplacedOwnerWithDoNotQueueLosesTheName) {
    NameRegistry r;
    r.request("org.x", A, kAllowReplacement | kDoNotQueue);
    EXPECT_EQ(r.request("org.x", B, kReplaceExisting).reply, 1u);
    EXPECT_EQ(r.queue("org.x"), (std::vector<PeerId>{B}));
    EXPECT_TRUE(r.owned_by(A).empty());
    EXPECT_EQ(r.count_for(A), 0u);
}

TEST(NameRegistry, ReleasePassesTheNameOn) {
    NameRegistry r;
    r.request("org.x", A, 0);
    r.request("org.x", B, 0);
    EXPECT_EQ(r.release("org.x", C).reply, 3u);        // not owner
    EXPECT_EQ(r.release("org.nothing", A).reply, 2u);  // nonexistent
    auto released = r.release("org.x", A);
    EXPECT_EQ(released.reply, 1u);
    ASSERT_EQ(released.changes.size(), 1u);
    EXPECT_EQ(released.changes[0].old_owner, A);
    EXPECT_EQ(released.changes[0].new_owner, B);
    auto last = r.release("org.x", B);
    ASSERT_EQ(last.changes.size(), 1u);
    EXPECT_EQ(last.changes[0].new_owner, std::nullopt);
    EXPECT_FALSE(r.owner("org.x"));
    EXPECT_TRUE(r.names().empty());
}

TEST(NameRegistry, QueuedPeerReleasesQuietly) {
    NameRegistry r;
    r.request("org.x", A, 0);
    r.request("org.x", B, 0);
    auto b = r.release("org.x", B);
    EXPECT_EQ(b.reply, 1u);
    EXPECT_TRUE(b.changes.empty());
    EXPECT_EQ(r.queue("org.x"), (std::vector<PeerId>{A}));
}

TEST(NameRegistry, ReleaseAllOnDisconnect) {
    NameRegistry r;
    r.request("org.one", A, 0);
    r.request("org.two", A, 0);
    r.request("org.two", B, 0);
    r.request("org.three", B, 0);
    r.request("org.three", A, 0);  // queued
    auto changes = r.release_all(A);
    ASSERT_EQ(changes.size(), 2u);
    // Newest first: org.two (B takes over), then org.one (freed); the queued org.three changes nothing.
    EXPECT_EQ(changes[0].name, "org.two");
    EXPECT_EQ(changes[0].new_owner, B);
    EXPECT_EQ(changes[1].name, "org.one");
    EXPECT_EQ(changes[1].new_owner, std::nullopt);
    EXPECT_EQ(r.queue("org.three"), (std::vector<PeerId>{B}));
    EXPECT_EQ(r.count_for(A), 0u);
    EXPECT_EQ(r.owned_by(B), (std::vector<std::string>{"org.two", "org.three"}));
}

}  // namespace
}  // namespace afbus::daemon
