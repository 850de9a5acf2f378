// The connection and message <limit>s that a flood or a buggy client runs into, checked the same way
// against dbus-daemon and afbus-daemon (AFBUS_TEST_DAEMON): what the bus refuses, and that it keeps
// serving everybody else.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <map>

#include "afbus/connection.hpp"
#include "afbus/types.hpp"
#include "afbus/value.hpp"
#include "support/raw_peer.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

using namespace std::chrono_literals;
using test::closed_by_bus;
using test::connect;
using test::driver_call;
using test::raw_connection;
using test::read_reply;
using test::send_message;
using test::stats_call;
using test::TestBus;

std::string limit(std::string_view name, int value) {
    return "<limit name=\"" + std::string(name) + "\">" + std::to_string(value) + "</limit>\n";
}

// Says Hello on a raw connection; returns the unique name (empty on failure).
std::string hello(const Fd& fd) {
    send_message(fd, driver_call("Hello"), 1);
    auto reply = read_reply(fd, 1);
    if (!reply || reply->type() != MessageType::MethodReturn) return {};
    return std::get<0>(read_all<std::string>(*reply).value());
}

// max_message_unix_fds: a message carrying more fds than the limit disconnects its sender, as a message
// over max_message_size does; a message within it passes.
TEST(Limits, MaxMessageUnixFds) {
    TestBus bus(limit("max_message_unix_fds", 2));
    auto bystander = connect(bus);
    ASSERT_TRUE(bystander);
    Fd fd = raw_connection(bus, true);
    ASSERT_FALSE(hello(fd).empty());
    Fd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(dev_null);
    const int n = dev_null.get();

    auto within = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId");
    within.add_fd(dev_null);
    within.add_fd(dev_null);
    send_message(fd, within.build().value(), 2, {n, n});
    auto answered = read_reply(fd, 2);
    ASSERT_TRUE(answered);

    auto beyond = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId");
    for (int i = 0; i < 3; ++i) beyond.add_fd(dev_null);
    send_message(fd, beyond.build().value(), 3, {n, n, n});
    EXPECT_TRUE(closed_by_bus(fd));
    EXPECT_TRUE(bystander->call(driver_call("GetId")));
}

// max_replies_per_connection: a caller with that many calls unanswered gets LimitsExceeded for the
// next one; the callee and other callers are unaffected.
TEST(Limits, MaxRepliesPerConnection) {
    TestBus bus(limit("max_replies_per_connection", 2));
    auto caller = connect(bus);
    auto other = connect(bus);
    Fd callee = raw_connection(bus);  // never answers
    ASSERT_TRUE(caller && other);
    const std::string callee_name = hello(callee);
    ASSERT_FALSE(callee_name.empty());
    auto call = [&] { return MessageBuilder::method_call(callee_name, "/x", "org.example.I", "Hang").build().value(); };
    std::vector<std::optional<Expected<Message, Error>>> results(3);
    std::vector<Slot> slots;
    for (auto& r : results) {
        auto slot = caller->call_async(call(), [&r](Expected<Message, Error> m) { r = std::move(m); }, 60s);
        ASSERT_TRUE(slot);
        slots.push_back(std::move(*slot));
    }
    ASSERT_TRUE(*caller->run_until([&] { return results[2].has_value(); }, 10s));
    ASSERT_FALSE(*results[2]);
    EXPECT_EQ(results[2]->error().name, error_names::kLimitsExceeded);
    EXPECT_FALSE(results[0].has_value());
    EXPECT_FALSE(results[1].has_value());
    // Another connection of the same user has its own allowance.
    auto own = other->call_async(call(), [](Expected<Message, Error>) {}, 60s);
    ASSERT_TRUE(own);
    EXPECT_TRUE(other->call(driver_call("GetId")));
}

// max_connections_per_user: Hello fails with LimitsExceeded beyond it; once a connection leaves, a new
// one is accepted.
TEST(Limits, MaxConnectionsPerUser) {
    TestBus bus(limit("max_connections_per_user", 2));
    auto a = connect(bus);
    auto b = connect(bus);
    ASSERT_TRUE(a && b);
    Fd third = raw_connection(bus);
    send_message(third, driver_call("Hello"), 1);
    auto refused = read_reply(third, 1);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->error_name(), error_names::kLimitsExceeded);
    EXPECT_TRUE(a->call(driver_call("GetId")));
    // Once the bus has let b go (a sees its unique name end), a new connection is accepted.
    bool b_gone = false;
    const std::string b_name = b->unique_name();
    auto sub = a->subscribe("type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" + b_name + "'",
                            [&b_gone](const Message&) { b_gone = true; });
    ASSERT_TRUE(sub);
    b.reset();
    ASSERT_TRUE(*a->run_until([&] { return b_gone; }, 10s));
    Fd fourth = raw_connection(bus);
    EXPECT_FALSE(hello(fourth).empty());
}

}  // namespace
}  // namespace afbus

namespace afbus {
namespace {

std::uint32_t incomplete_connections(Connection& c) {
    auto reply = c.call(stats_call("GetStats"));
    EXPECT_TRUE(reply);
    if (!reply) return 0;
    auto [stats] = read_all<std::map<std::string, Variant>>(*reply).value();
    return *stats.at("IncompleteConnections").get<std::uint32_t>();
}

// max_incomplete_connections: while that many connections have not authenticated, a new connection is
// not refused but waits (dbus-daemon stops accepting, since CVE-2014-3639); it is served once one of
// the silent ones goes away. Connections already established are served throughout.
TEST(Limits, MaxIncompleteConnectionsMakeNewConnectionsWait) {
    TestBus bus(limit("max_incomplete_connections", 2));
    auto observer = connect(bus);
    ASSERT_TRUE(observer);
    std::vector<Fd> silent;
    for (int i = 0; i < 2; ++i) silent.push_back(test::unauthenticated_connection(bus));
    // Each round trip lets the bus handle what is pending; the listener's readiness may come after the
    // observer's call in one turn of its loop, so ask until both are accepted (bounded, no sleeping).
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (incomplete_connections(*observer) != 2) ASSERT_LT(std::chrono::steady_clock::now(), deadline);

    Fd waiting = test::unauthenticated_connection(bus);
    const std::string auth = std::string(1, '\0') + "AUTH EXTERNAL " + [] {
        std::string hex;
        for (char c : std::to_string(::getuid())) {
            char b[3];
            std::snprintf(b, sizeof b, "%02x", static_cast<unsigned char>(c));
            hex += b;
        }
        return hex;
    }() + "\r\n";
    ASSERT_EQ(::send(waiting.get(), auth.data(), auth.size(), MSG_NOSIGNAL), static_cast<ssize_t>(auth.size()));
    EXPECT_TRUE(observer->call(test::driver_call("GetId")));
    EXPECT_EQ(incomplete_connections(*observer), 2u);

    silent.erase(silent.begin());  // one silent connection gives up
    pollfd p{waiting.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1);
    char reply[256];
    const ssize_t n = ::recv(waiting.get(), reply, sizeof reply, 0);
    ASSERT_GT(n, 0) << "the waiting connection was refused instead of served";
    EXPECT_EQ(std::string_view(reply, 3), "OK ");
}

}  // namespace
}  // namespace afbus
