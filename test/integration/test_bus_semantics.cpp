// Bus behaviour that clients rely on, checked the same way against dbus-daemon and afbus-daemon
// (AFBUS_TEST_DAEMON): signal order, NoReply texts, unrequested replies, Hello first, bad senders.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>

#include "afbus/address.hpp"
#include "afbus/connection.hpp"
#include "afbus/framer.hpp"
#include "afbus/match_rule.hpp"
#include "afbus/sasl.hpp"
#include "afbus/types.hpp"
#include "afbus/unix_socket.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

using namespace std::chrono_literals;
using test::connect;
using test::TestBus;


Message call(std::string_view dest, std::string_view member) {
    return MessageBuilder::method_call(dest, "/org/example", "org.example.I", member).build().value();
}

Message driver_call(std::string_view member) {
    return MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", member)
        .build()
        .value();
}

TEST(BusSemantics, NameAcquiredArrivesBeforeTheRequestNameReply) {
    TestBus bus;
    auto c = connect(bus);
    ASSERT_TRUE(c);
    std::vector<std::string> acquired;
    auto sub = c->subscribe("type='signal',sender='org.freedesktop.DBus',member='NameAcquired'",
                            [&acquired](const Message& m) { acquired.push_back(std::get<0>(*read_all<std::string>(m))); });
    ASSERT_TRUE(sub);
    ASSERT_EQ(*c->request_name("org.example.Order"), RequestNameReply::PrimaryOwner);
    // No waiting: the signal must already have been read together with (before) the reply.
    ASSERT_TRUE(c->process());
    EXPECT_NE(std::find(acquired.begin(), acquired.end(), "org.example.Order"), acquired.end());
}

TEST(BusSemantics, OwnerChangesAreBroadcast) {
    TestBus bus;
    auto watcher = connect(bus);
    auto a = connect(bus);
    auto b = connect(bus);
    ASSERT_TRUE(watcher && a && b);
    std::vector<std::tuple<std::string, std::string, std::string>> changes;
    auto sub = watcher->subscribe("type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.example.Moving'",
                                  [&changes](const Message& m) { changes.push_back(*read_all<std::string, std::string, std::string>(m)); });
    ASSERT_TRUE(sub);
    ASSERT_EQ(*a->request_name("org.example.Moving"), RequestNameReply::PrimaryOwner);
    ASSERT_EQ(*b->request_name("org.example.Moving"), RequestNameReply::InQueue);
    const std::string a_name = a->unique_name(), b_name = b->unique_name();
    a.reset();  // disconnecting passes the name to the queue
    ASSERT_TRUE(*watcher->run_until([&] { return changes.size() == 2; }, 10s));
    EXPECT_EQ(changes[0], std::make_tuple(std::string("org.example.Moving"), std::string(), a_name));
    EXPECT_EQ(changes[1], std::make_tuple(std::string("org.example.Moving"), a_name, b_name));
}

TEST(BusSemantics, NoReplyWhenTheCalleeDisconnects) {
    TestBus bus;
    auto caller = connect(bus);
    auto callee = connect(bus);
    ASSERT_TRUE(caller && callee);
    // The callee never processes its input (libafbus would answer UnknownObject): it waits until the call
    // is in its socket, then disconnects without replying. Owning a name first drains everything the bus
    // sends a new connection (the reply to RequestName comes after NameAcquired).
    ASSERT_EQ(*callee->request_name("org.example.Callee"), RequestNameReply::PrimaryOwner);
    ASSERT_TRUE(callee->process());
    std::optional<Expected<Message, Error>> result;
    auto slot = caller->call_async(call("org.example.Callee", "NeverAnswered"),
                                   [&result](Expected<Message, Error> r) { result = std::move(r); }, 30s);
    ASSERT_TRUE(slot);
    pollfd p{callee->fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1);
    callee.reset();
    ASSERT_TRUE(*caller->run_until([&] { return result.has_value(); }, 10s));
    ASSERT_FALSE(*result);
    EXPECT_EQ(result->error().name, error_names::kNoReply);
    EXPECT_EQ(result->error().message, "Message recipient disconnected from message bus without replying");
}

TEST(BusSemantics, NoReplyAfterTheBusReplyTimeout) {
    TestBus bus("<limit name=\"reply_timeout\">300</limit>\n");
    auto caller = connect(bus);
    auto callee = connect(bus);
    ASSERT_TRUE(caller && callee);
    auto r = caller->call(call(callee->unique_name(), "Slow"), 10s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().name, error_names::kNoReply);
    EXPECT_EQ(r.error().message, "Message did not receive a reply (timeout by message bus)");
}

// dbus-daemon leaves unrequested replies to its policy, and session.conf lets them through; afbus drops
// them whatever the policy, as dbus-broker does (docs/daemon.md).
TEST(BusSemantics, UnrequestedReplies) {
    const bool afbus = std::getenv("AFBUS_TEST_DAEMON") != nullptr;
    TestBus bus;
    auto a = connect(bus);
    auto b = connect(bus);
    ASSERT_TRUE(a && b);
    std::vector<std::uint32_t> stray;
    auto sub = a->subscribe("type='method_return'", [&stray](const Message& m) { stray.push_back(m.reply_serial().value_or(0)); });
    ASSERT_TRUE(sub);
    // b answers a call a never made.
    auto bogus = MessageBuilder::method_return(a->unique_name(), 4242);
    ASSERT_TRUE(b->send(bogus.build().value()));
    // A round trip from b to a afterwards proves the bogus reply had its chance to arrive.
    auto ping = MessageBuilder::signal("/org/example", "org.example.I", "Marker");
    ping.destination(a->unique_name());
    bool marker = false;
    auto marker_sub = a->subscribe("type='signal',member='Marker'", [&marker](const Message&) { marker = true; });
    ASSERT_TRUE(b->send(ping.build().value()));
    ASSERT_TRUE(*a->run_until([&] { return marker; }, 10s));
    const bool delivered = std::find(stray.begin(), stray.end(), 4242u) != stray.end();
    EXPECT_EQ(delivered, !afbus);
}

// A raw authenticated socket, to send what libafbus never would.
Fd raw_connection(const TestBus& bus) {
    auto entries = parse_address_list(bus.address()).value();
    auto path = unix_socket_path(entries[0], process_environment()).value();
    Fd fd = connect_unix(path).value();
    SaslClientConfig config;
    config.uid = ::getuid();
    SaslClient sasl(config);
    std::string out = sasl.take_output();
    while (!sasl.authenticated() && !sasl.failed()) {
        if (!out.empty()) {
            EXPECT_EQ(::send(fd.get(), out.data(), out.size(), MSG_NOSIGNAL), static_cast<ssize_t>(out.size()));
            out.clear();
            if (sasl.authenticated()) break;
        }
        pollfd p{fd.get(), POLLIN, 0};
        EXPECT_EQ(::poll(&p, 1, 10000), 1);
        char buf[512];
        const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n <= 0) break;
        sasl.feed(std::string_view(buf, static_cast<std::size_t>(n)));
        out = sasl.take_output();
    }
    if (!out.empty()) {
        EXPECT_EQ(::send(fd.get(), out.data(), out.size(), MSG_NOSIGNAL), static_cast<ssize_t>(out.size()));
    }
    EXPECT_TRUE(sasl.authenticated());
    return fd;
}

// Reads until the bus closes the connection (true) or 10 s pass (false); `received` gets the messages.
bool closed_by_bus(const Fd& fd, std::vector<Message>* received = nullptr) {
    MessageFramer framer;
    for (;;) {
        pollfd p{fd.get(), POLLIN, 0};
        if (::poll(&p, 1, 10000) != 1) return false;
        auto space = framer.prepare();
        const ssize_t n = ::recv(fd.get(), space.data(), space.size(), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
        if (n < 0) return false;
        framer.commit(static_cast<std::size_t>(n));
        for (;;) {
            auto m = framer.next();
            if (!m || !*m) break;
            if (received) received->push_back(std::move(**m));
        }
    }
}

void send_all(const Fd& fd, const std::vector<std::byte>& bytes) {
    ASSERT_EQ(::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
}

// Before Hello, a call to the bus gets AccessDenied (and the connection stays); a message for anyone
// else disconnects the sender.
TEST(BusSemantics, HelloMustComeFirst) {
    TestBus bus;
    Fd fd = raw_connection(bus);
    auto list = driver_call("ListNames");
    list.set_serial(1);
    send_all(fd, list.wire());
    MessageFramer framer;
    std::optional<Message> reply;
    while (!reply) {
        pollfd p{fd.get(), POLLIN, 0};
        ASSERT_EQ(::poll(&p, 1, 10000), 1);
        auto space = framer.prepare();
        const ssize_t n = ::recv(fd.get(), space.data(), space.size(), 0);
        ASSERT_GT(n, 0);
        framer.commit(static_cast<std::size_t>(n));
        auto m = framer.next();
        ASSERT_TRUE(m);
        if (*m) reply = std::move(**m);
    }
    EXPECT_EQ(reply->type(), MessageType::Error);
    EXPECT_EQ(reply->error_name(), error_names::kAccessDenied);
    EXPECT_EQ(reply->reply_serial(), 1u);
    EXPECT_EQ(reply->destination(), ":not.active.yet");
    EXPECT_EQ(std::get<0>(*read_all<std::string>(*reply)),
              "Client tried to send a message other than Hello without being registered");

    auto other = call("org.example.Anyone", "M");
    other.set_serial(2);
    send_all(fd, other.wire());
    EXPECT_TRUE(closed_by_bus(fd));
}

TEST(BusSemantics, AMalformedMessageDisconnectsOnlyItsSender) {
    TestBus bus;
    auto bystander = connect(bus);
    ASSERT_TRUE(bystander);
    Fd fd = raw_connection(bus);
    auto hello = driver_call("Hello");
    hello.set_serial(1);
    send_all(fd, hello.wire());
    auto bad = call("org.example.Anyone", "M");
    bad.set_serial(2);
    auto wire = bad.wire();
    wire[3] = std::byte{9};  // protocol version 9
    send_all(fd, wire);
    EXPECT_TRUE(closed_by_bus(fd));
    EXPECT_TRUE(bystander->call(driver_call("ListNames")));
}

}  // namespace
}  // namespace afbus

namespace afbus {
namespace {

TEST(BusSemantics, DebugStatsCountsRulesAndNames) {
    TestBus bus;
    auto c = connect(bus);
    ASSERT_TRUE(c);
    auto sub = c->subscribe("type='signal',member='Counted'", [](const Message&) {});
    ASSERT_TRUE(sub);
    ASSERT_EQ(*c->request_name("org.example.Counted"), RequestNameReply::PrimaryOwner);
    auto stats = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                             "org.freedesktop.DBus.Debug.Stats", "GetConnectionStats");
    append(stats, c->unique_name());
    auto reply = c->call(stats.build().value());
    ASSERT_TRUE(reply) << reply.error().message;
    auto map = std::get<0>(*read_all<std::map<std::string, Variant>>(*reply));
    EXPECT_EQ(*map.at("UniqueName").get<std::string>(), c->unique_name());
    EXPECT_EQ(*map.at("MatchRules").get<std::uint32_t>(), 1u);
    auto rules = c->call(MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                     "org.freedesktop.DBus.Debug.Stats", "GetAllMatchRules").build().value());
    ASSERT_TRUE(rules);
    auto all = std::get<0>(*read_all<std::map<std::string, std::vector<std::string>>>(*rules));
    ASSERT_EQ(all.count(c->unique_name()), 1u);
    ASSERT_EQ(all[c->unique_name()].size(), 1u);
    EXPECT_EQ(MatchRule::parse(all[c->unique_name()][0]).value(), MatchRule::parse("type='signal',member='Counted'").value());
}

}  // namespace
}  // namespace afbus

namespace afbus {
namespace {

// An eavesdropping libafbus client sees calls addressed to others and must not answer them (it used to
// reply UnknownObject in the callee's place; dbus-daemon delivers such a reply under session.conf).
TEST(BusSemantics, EavesdroppersDoNotAnswerOthersCalls) {
    TestBus bus;
    auto caller = connect(bus);
    auto callee = connect(bus);
    auto eavesdropper = connect(bus);
    ASSERT_TRUE(caller && callee && eavesdropper);
    ASSERT_EQ(*callee->request_name("org.example.Quiet"), RequestNameReply::PrimaryOwner);
    bool seen = false;
    auto sub = eavesdropper->subscribe("type='method_call',member='Whisper',eavesdrop='true'",
                                       [&seen](const Message&) { seen = true; });
    ASSERT_TRUE(sub);
    std::optional<Expected<Message, Error>> result;
    auto slot = caller->call_async(call("org.example.Quiet", "Whisper"),
                                   [&result](Expected<Message, Error> r) { result = std::move(r); }, 500ms);
    ASSERT_TRUE(slot);
    ASSERT_TRUE(*eavesdropper->run_until([&] { return seen; }, 10s));
    // The callee never processes; the only possible answer is the client-side timeout.
    ASSERT_TRUE(*caller->run_until([&] { return result.has_value(); }, 10s));
    ASSERT_FALSE(*result);
    EXPECT_EQ(result->error().name, error_names::kNoReply);
}

}  // namespace
}  // namespace afbus
