#include "peer_table.hpp"

#include <gtest/gtest.h>

namespace afbus::daemon {
namespace {

PeerCredentials of_uid(uid_t uid) {
    PeerCredentials c;
    c.uid = uid;
    c.pid = 42;
    c.from_kernel = true;
    return c;
}

TEST(PeerTable, StatesMoveOneWayAndKeepTheCounts) {
    PeerTable t;
    Peer& a = t.add(of_uid(1000));
    Peer& b = t.add(of_uid(1000));
    EXPECT_NE(a.id(), b.id());
    EXPECT_TRUE(a.authenticating());
    EXPECT_EQ(t.authenticating(), 2u);
    EXPECT_EQ(t.incomplete(), 2u);
    EXPECT_EQ(t.active(), 0u);

    t.authenticated(a, 1000u, nullptr);
    EXPECT_EQ(a.state(), Peer::State::Unregistered);
    EXPECT_EQ(t.authenticating(), 1u);
    EXPECT_EQ(t.incomplete(), 2u);  // authenticated, but no Hello yet
    EXPECT_EQ(t.active(), 1u);
    EXPECT_EQ(t.registered(), 0u);

    EXPECT_EQ(t.register_unique_name(a), ":1.0");
    EXPECT_TRUE(a.registered());
    EXPECT_EQ(t.find_unique(":1.0"), &a);
    EXPECT_EQ(t.registered(), 1u);
    EXPECT_EQ(t.incomplete(), 1u);
    EXPECT_EQ(t.registered_of(1000), 1u);
    EXPECT_EQ(t.registered_of(0), 0u);

    t.make_monitor(a);
    EXPECT_TRUE(a.monitor());
    EXPECT_EQ(a.unique_name(), ":1.0");         // kept for the log
    EXPECT_EQ(t.find_unique(":1.0"), nullptr);  // but nobody can address a monitor
    EXPECT_EQ(t.registered(), 0u);
    EXPECT_EQ(t.registered_of(1000), 0u);
    EXPECT_EQ(t.active(), 1u);

    t.close(b);
    EXPECT_EQ(t.authenticating(), 0u);
    EXPECT_EQ(t.incomplete(), 0u);
    EXPECT_EQ(t.find(b.id()), nullptr);
    const PeerId b_id = b.id();
    auto removed = t.remove(b_id);
    ASSERT_TRUE(removed);
    EXPECT_TRUE(removed->closing());
    EXPECT_EQ(t.remove(b_id), nullptr);
}

TEST(PeerTable, UniqueNamesCountRegisteredConnectionsOnlyAndAreNeverReused) {
    PeerTable t;
    Peer& unregistered = t.add(of_uid(1));
    t.authenticated(unregistered, 1u, nullptr);
    Peer& a = t.add(of_uid(1));
    t.authenticated(a, 1u, nullptr);
    EXPECT_EQ(t.register_unique_name(a), ":1.0");
    t.close(a);
    EXPECT_EQ(t.unique_name_of(a.id()), ":1.0");  // a closing peer still has its name for the signals
    EXPECT_EQ(t.registered(), 0u);
    Peer& b = t.add(of_uid(2));
    t.authenticated(b, 2u, nullptr);
    EXPECT_EQ(t.register_unique_name(b), ":1.1");
    EXPECT_EQ(t.unique_names().size(), 1u);
    EXPECT_EQ(t.registered_of(1), 0u);
    EXPECT_EQ(t.registered_of(2), 1u);
}

TEST(PeerTable, TcpPeersBecomeTheUidTheyProved) {
    PeerTable t;
    PeerCredentials tcp;  // from_kernel false: uid unknown
    Peer& p = t.add(std::move(tcp));
    t.authenticated(p, 1234u, nullptr);
    EXPECT_EQ(p.credentials().uid, 1234u);
    EXPECT_EQ(p.describe_owner(), "uid=1234 pid=0");
}

TEST(PeerTable, AnonymousPeersHaveNoUid) {
    PeerTable t;
    Peer& p = t.add(of_uid(1000));
    t.authenticated(p, std::nullopt, nullptr);
    EXPECT_FALSE(p.uid());
    EXPECT_EQ(p.describe_owner(), "uid=(anonymous) pid=42");
    EXPECT_EQ(p.log_name(), "(unregistered) (uid=(anonymous) pid=42)");
}

}  // namespace
}  // namespace afbus::daemon
