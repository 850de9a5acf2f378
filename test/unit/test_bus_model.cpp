// The bus model through the delivery seam, with a fake delivery mode: no sockets, no SASL. What a
// delivery mode reports goes in through DeliveryEvents; what the model delivers is recorded per peer.
#include <gtest/gtest.h>

#include "afbus/types.hpp"
#include "bus.hpp"
#include "support/recording_delivery.hpp"

namespace afbus::daemon {
namespace {

using test::RecordingDelivery;

struct BusModelTest : testing::Test {
    EventLoop loop;
    Bus bus{loop, BusSettings{}};
    RecordingDelivery& delivery = bus.use_delivery<RecordingDelivery>();
    DeliveryEvents& events = bus;
    std::uint32_t serial = 1;

    PeerId connect() {
        PeerCredentials c;
        c.uid = ::getuid();
        c.pid = ::getpid();
        c.from_kernel = true;
        const auto id = events.peer_connected(std::move(c));
        EXPECT_TRUE(id);
        EXPECT_TRUE(events.peer_authenticated(*id, ::getuid()));
        return *id;
    }
    void send(PeerId from, MessageBuilder builder) { events.peer_sent(from, builder.build(serial++).value()); }
    std::string hello(PeerId peer) {
        send(peer, MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello"));
        auto got = delivery.take(peer);
        EXPECT_EQ(got.size(), 2u);  // the reply, then NameAcquired
        return std::get<0>(read_all<std::string>(*got.at(0)).value());
    }
    void add_match(PeerId peer, std::string rule) {
        auto call = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch");
        append(call, rule);
        send(peer, std::move(call));
        EXPECT_EQ(delivery.take(peer).size(), 1u);
    }
};

TEST_F(BusModelTest, HelloGivesAUniqueNameAndTellsTheDeliveryMode) {
    const PeerId a = connect();
    EXPECT_EQ(hello(a), ":1.0");
    EXPECT_EQ(delivery.unique_names[a], ":1.0");
    const PeerId b = connect();
    EXPECT_EQ(hello(b), ":1.1");
}

// An eavesdropper's copy of a message between two other peers comes through Delivery::deliver_copy (kernel
// mode keeps it out of the kernel's reply tracking). And kernel mode's question about a copy the kernel
// made (gives_copy) gets the answer the model gives its own copies: a rule of the peer matches
// (eavesdrop='true' for a message addressed to someone else), and the message is not its own.
TEST_F(BusModelTest, CopiesForOthersAreToldApart) {
    const PeerId a = connect(), b = connect(), e = connect();
    const std::string a_name = hello(a), b_name = hello(b), e_name = hello(e);
    add_match(e, "eavesdrop='true',member='Watched'");
    add_match(e, "type='signal',member='Tick'");
    send(b, MessageBuilder::method_call(a_name, "/x", "org.x", "Watched"));
    EXPECT_EQ(delivery.take(a).size(), 1u);
    EXPECT_EQ(delivery.take(e).size(), 1u);
    EXPECT_EQ(delivery.copies[e], 1);
    EXPECT_EQ(delivery.copies[a], 0);
    send(b, MessageBuilder::signal("/x", "org.x", "Tick"));
    EXPECT_EQ(delivery.take(e).size(), 1u);
    EXPECT_EQ(delivery.copies[e], 1) << "a broadcast is the subscriber's own";

    const auto from = [&](const std::string& sender, std::string_view destination, MessageBuilder builder) {
        if (!destination.empty()) builder.destination(destination);
        return builder.sender(sender).build(serial++).value();
    };
    EXPECT_TRUE(bus.gives_copy(
        e, from(b_name, a_name, MessageBuilder::method_call(a_name, "/x", "org.x", "Watched"))));
    EXPECT_FALSE(
        bus.gives_copy(e, from(b_name, a_name, MessageBuilder::method_call(a_name, "/x", "org.x", "Other"))));
    EXPECT_FALSE(bus.gives_copy(e, from(b_name, a_name, MessageBuilder::signal("/x", "org.x", "Tick"))))
        << "a rule without eavesdrop='true' asks for no one else's messages";
    EXPECT_TRUE(bus.gives_copy(e, from(b_name, "", MessageBuilder::signal("/x", "org.x", "Tick"))));
    EXPECT_FALSE(bus.gives_copy(
        e, from(b_name, e_name, MessageBuilder::method_call(e_name, "/x", "org.x", "Watched"))))
        << "its own message is no copy";
    EXPECT_FALSE(bus.gives_copy(a, from(b_name, "", MessageBuilder::signal("/x", "org.x", "Tick"))));
    EXPECT_FALSE(bus.gives_copy(
        e, from(":1.99", a_name, MessageBuilder::method_call(a_name, "/x", "org.x", "Watched"))))
        << "a sender the bus does not know";
}

TEST_F(BusModelTest, BeforeHelloOnlyHelloIsAnswered) {
    const PeerId a = connect();
    send(a, MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "ListNames"));
    auto got = delivery.take(a);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0]->error_name(), "org.freedesktop.DBus.Error.AccessDenied");
    EXPECT_TRUE(delivery.detached.empty());
    // Anything for anyone else ends the connection.
    send(a, MessageBuilder::method_call(":1.5", "/", "org.x", "M"));
    EXPECT_EQ(delivery.detached, (std::vector<PeerId>{a}));
}

TEST_F(BusModelTest, ACallAndItsReplyPassWithTheSenderStitchedIn) {
    const PeerId a = connect(), b = connect();
    const std::string a_name = hello(a), b_name = hello(b);
    send(a, MessageBuilder::method_call(b_name, "/x", "org.x", "M"));
    auto calls = delivery.take(b);
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_EQ(calls[0]->sender(), a_name);
    // An unrequested reply is dropped; the requested one passes once.
    send(b, MessageBuilder::method_return(a_name, calls[0]->serial() + 100));
    EXPECT_TRUE(delivery.take(a).empty());
    send(b, MessageBuilder::method_return(a_name, calls[0]->serial()));
    send(b, MessageBuilder::method_return(a_name, calls[0]->serial()));
    auto replies = delivery.take(a);
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0]->sender(), b_name);
}

TEST_F(BusModelTest, ACalleeThatLeavesOwesNoReply) {
    const PeerId a = connect(), b = connect();
    const std::string a_name = hello(a), b_name = hello(b);
    send(a, MessageBuilder::method_call(b_name, "/x", "org.x", "M"));
    events.peer_failed(b, "test");
    auto got = delivery.take(a);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0]->error_name(), "org.freedesktop.DBus.Error.NoReply");
    EXPECT_EQ(delivery.detached, (std::vector<PeerId>{b}));
}

TEST_F(BusModelTest, PendingRepliesAreBoundedPerCaller) {
    BusSettings settings;
    settings.limits.max_replies_per_connection = 2;
    bus.set_settings(settings);
    const PeerId a = connect(), b = connect();
    hello(a);
    const std::string b_name = hello(b);
    for (int i = 0; i < 3; ++i) send(a, MessageBuilder::method_call(b_name, "/x", "org.x", "M"));
    EXPECT_EQ(delivery.take(b).size(), 2u);
    auto got = delivery.take(a);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0]->error_name(), "org.freedesktop.DBus.Error.LimitsExceeded");
}

TEST_F(BusModelTest, NameChangesReachSubscribersAndTheDeliveryMode) {
    const PeerId a = connect(), watcher = connect();
    const std::string a_name = hello(a);
    hello(watcher);
    add_match(watcher, "type='signal',member='NameOwnerChanged'");
    auto request = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName");
    append(request, std::string("org.x.Service"), std::uint32_t{0});
    send(a, std::move(request));
    auto got = delivery.take(a);
    ASSERT_EQ(got.size(), 2u);  // NameAcquired, then the reply (dbus-daemon's order)
    EXPECT_EQ(got[0]->member(), "NameAcquired");
    EXPECT_EQ(std::get<0>(read_all<std::uint32_t>(*got[1]).value()), 1u);
    auto changed = delivery.take(watcher);
    ASSERT_EQ(changed.size(), 1u);
    auto [name, old_owner, new_owner] = read_all<std::string, std::string, std::string>(*changed[0]).value();
    EXPECT_EQ(name, "org.x.Service");
    EXPECT_EQ(old_owner, "");
    EXPECT_EQ(new_owner, a_name);
    EXPECT_EQ(delivery.name_changes, (std::vector<std::string>{"org.x.Service"}));
    EXPECT_EQ(delivery.match_changes,
              (std::vector<std::pair<PeerId, std::string>>{{watcher, "+type='signal',member='NameOwnerChanged'"}}));
    // Leaving gives the name up.
    events.peer_failed(a, "test");
    auto lost = delivery.take(watcher);
    ASSERT_EQ(lost.size(), 2u);  // the well-known name, then the unique name
    EXPECT_EQ(std::get<0>(read_all<std::string, std::string, std::string>(*lost[0]).value()), "org.x.Service");
    EXPECT_EQ(std::get<0>(read_all<std::string, std::string, std::string>(*lost[1]).value()), a_name);
}

TEST_F(BusModelTest, AMonitorSeesTrafficAndMayNotSend) {
    const PeerId a = connect(), b = connect(), m = connect();
    hello(a);
    const std::string b_name = hello(b);
    hello(m);
    auto become = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                              "org.freedesktop.DBus.Monitoring", "BecomeMonitor");
    append(become, std::vector<std::string>{}, std::uint32_t{0});
    send(m, std::move(become));
    delivery.take(m);
    auto ping = MessageBuilder::signal("/x", "org.x", "Ping");
    ping.destination(b_name);
    send(a, std::move(ping));
    auto seen = delivery.take(m);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0]->member(), "Ping");
    send(m, MessageBuilder::signal("/x", "org.x", "Nope"));
    EXPECT_EQ(delivery.detached, (std::vector<PeerId>{m}));
}

TEST_F(BusModelTest, TheIncomingLimitPausesASenderUntilItsMessagesLeave) {
    BusSettings settings;
    settings.limits.max_incoming_bytes = 1;
    bus.set_settings(settings);
    const PeerId a = connect(), b = connect();
    hello(a);
    const std::string b_name = hello(b);
    EXPECT_TRUE(events.may_read(a));
    auto signal = MessageBuilder::signal("/x", "org.x", "S");
    signal.destination(b_name);
    send(a, std::move(signal));
    EXPECT_FALSE(events.may_read(a));  // b's queue holds a's message
    delivery.take(b);
    EXPECT_TRUE(events.may_read(a));
}

TEST_F(BusModelTest, TooManyIncompleteConnectionsAreRefused) {
    BusSettings settings;
    settings.limits.max_incomplete_connections = 1;
    bus.set_settings(settings);
    PeerCredentials first, second;
    EXPECT_TRUE(events.may_accept());
    EXPECT_TRUE(events.peer_connected(std::move(first)));
    EXPECT_FALSE(events.may_accept());
    EXPECT_FALSE(events.peer_connected(std::move(second)));
}

// Kernel mode refuses a match rule whose record the kernel will not take (its memory, its limit of
// records): the model takes the rule back and the caller is told, rather than missing the signals.
TEST_F(BusModelTest, AMatchRuleTheDeliveryModeRefusesIsTakenBack) {
    const PeerId subscriber = connect(), emitter = connect();
    hello(subscriber);
    hello(emitter);
    // The error name of the driver's answer to `member`(rule); empty for a method return.
    const auto driver = [&](const char* member, std::string_view rule) {
        auto call = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                                member);
        append(call, rule);
        send(subscriber, std::move(call));
        auto got = delivery.take(subscriber);
        EXPECT_EQ(got.size(), 1u);
        return got.empty() ? std::string("nothing") : std::string(got[0]->error_name());
    };
    constexpr std::string_view kRule = "type='signal',member='S'";
    for (const auto& [refusal, error] :
         {std::pair{Delivery::Refusal::NoMemory, "org.freedesktop.DBus.Error.NoMemory"},
          std::pair{Delivery::Refusal::LimitsExceeded, "org.freedesktop.DBus.Error.LimitsExceeded"},
          std::pair{Delivery::Refusal::NotSupported, "org.freedesktop.DBus.Error.NotSupported"},
          std::pair{Delivery::Refusal::Failed, "org.freedesktop.DBus.Error.Failed"}}) {
        delivery.refuse_matches = refusal;
        EXPECT_EQ(driver("AddMatch", kRule), error);
        // Not kept: there is nothing to remove.
        EXPECT_EQ(driver("RemoveMatch", kRule), "org.freedesktop.DBus.Error.MatchRuleNotFound");
    }
    send(emitter, MessageBuilder::signal("/x", "org.x", "S"));
    EXPECT_TRUE(delivery.take(subscriber).empty());
    // Taken, the next one matches.
    delivery.refuse_matches.reset();
    EXPECT_EQ(driver("AddMatch", kRule), "");
    send(emitter, MessageBuilder::signal("/x", "org.x", "S"));
    EXPECT_EQ(delivery.take(subscriber).size(), 1u);
}

}  // namespace
}  // namespace afbus::daemon
