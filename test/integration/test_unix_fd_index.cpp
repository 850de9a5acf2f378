// A unix-fd ('h') index that names none of the message's fds (issue 12). dbus-daemon does not range-check
// fd indexes in the bodies it forwards (only the header's UNIX_FDS count against the fds that arrived), so
// a call with h = 42 and no fds reaches the service, which answers with its own error; and such a call to
// the bus itself gets an error reply (InvalidArgs: no driver method takes an 'h'). The sender stays
// connected in both cases. The same assertions hold for dbus-daemon and afbus-daemon.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/types.hpp"
#include "support/pump.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

using namespace std::chrono_literals;
using test::connect;
using test::pump;
using test::TestBus;

constexpr const char* kService = "org.example.FdIndex";

// A call whose only argument is the unix fd index `index`, with no fds attached (so no UNIX_FDS field).
Message call_with_fd_index(std::string_view destination, std::string_view path, std::string_view interface,
                           std::string_view member, std::uint32_t index) {
    auto b = MessageBuilder::method_call(destination, path, interface, member);
    b.append_value(Value::unix_fd_index(index));
    auto m = std::move(b).build();
    EXPECT_TRUE(m) << to_string(m.error());
    EXPECT_EQ(m->unix_fds(), 0u);
    return std::move(*m);
}

// The bus still answers `c`: it was not disconnected.
void expect_still_connected(Connection& c) {
    EXPECT_TRUE(c.connected());
    auto id = c.call(MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                 "org.freedesktop.DBus", "GetId")
                         .build()
                         .value());
    EXPECT_TRUE(id) << id.error().name << ": " << id.error().message;
}

class UnixFdIndexTest : public ::testing::Test {
protected:
    TestBus bus;
};

// The service receives the call with the index intact, cannot read it as an fd (an error value, not a
// dropped connection), and answers its own error, which the sender gets.
TEST_F(UnixFdIndexTest, CallToAServiceIsForwardedAndAnsweredByTheService) {
    auto service = connect(bus);
    auto client = connect(bus);
    ASSERT_TRUE(service && client);
    ASSERT_EQ(service->request_name(kService).value(), RequestNameReply::PrimaryOwner);

    std::optional<std::vector<Value>> received;
    std::optional<WireError> read_as_fd;
    Interface iface{"org.example.FdIndex", {}, {}, {}};
    iface.methods.push_back({"TakeFd", {{"fd", "h"}}, {},
                             [&](const Message& call, MessageBuilder&) -> Expected<void, Error> {
                                 if (auto values = call.reader().read_all()) received = *values;
                                 auto fd = read_all<UnixFd>(call);
                                 if (fd) return {};
                                 read_as_fd = fd.error();
                                 return Unexpected(make_error("org.example.Error.NoSuchFd",
                                                              std::string(to_string(fd.error()))));
                             }});
    auto slot = service->export_interface("/org/example/FdIndex", std::move(iface));
    ASSERT_TRUE(slot);

    std::optional<Expected<Message, Error>> reply;
    auto pending = client->call_async(call_with_fd_index(kService, "/org/example/FdIndex", "org.example.FdIndex",
                                                         "TakeFd", 42),
                                      [&](Expected<Message, Error> r) { reply = std::move(r); });
    ASSERT_TRUE(pending);
    ASSERT_TRUE(pump({service.get(), client.get()}, [&] { return reply.has_value(); }, 20s))
        << "no reply to the call";

    ASSERT_TRUE(received) << "the service did not get the call";
    EXPECT_EQ(*received, std::vector<Value>{Value::unix_fd_index(42)});
    EXPECT_EQ(read_as_fd, WireError::FdIndexOutOfRange);
    ASSERT_FALSE(*reply) << "expected the service's error";
    EXPECT_EQ(reply->error().name, "org.example.Error.NoSuchFd") << reply->error().message;
    EXPECT_TRUE(service->connected());
    expect_still_connected(*service);
    expect_still_connected(*client);
}

// A signal carrying such an index is delivered to a subscriber too.
TEST_F(UnixFdIndexTest, SignalIsDeliveredToSubscribers) {
    auto listener = connect(bus);
    auto sender = connect(bus);
    ASSERT_TRUE(listener && sender);
    std::optional<std::vector<Value>> received;
    auto subscription = listener->subscribe("type='signal',interface='org.example.FdIndex',member='Fd'",
                                            [&](const Message& m) {
                                                if (auto values = m.reader().read_all()) received = *values;
                                            });
    ASSERT_TRUE(subscription);
    auto b = MessageBuilder::signal("/org/example/FdIndex", "org.example.FdIndex", "Fd");
    b.append_value(Value::unix_fd_index(7));
    ASSERT_TRUE(sender->send(std::move(b).build().value()));
    ASSERT_TRUE(pump({listener.get(), sender.get()}, [&] { return received.has_value(); }, 20s))
        << "the signal was not delivered";
    EXPECT_EQ(*received, std::vector<Value>{Value::unix_fd_index(7)});
    expect_still_connected(*sender);
    expect_still_connected(*listener);
}

// Addressed to the bus: an error reply (no driver method takes an 'h', so it has the wrong arguments),
// and the sender stays connected.
TEST_F(UnixFdIndexTest, CallToTheBusGetsAnErrorReply) {
    auto client = connect(bus);
    ASSERT_TRUE(client);
    for (const char* member : {"GetNameOwner", "GetId", "ListNames"}) {
        auto reply = client->call(call_with_fd_index("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                     "org.freedesktop.DBus", member, 42));
        ASSERT_FALSE(reply) << member << ": expected an error";
        EXPECT_EQ(reply.error().name, "org.freedesktop.DBus.Error.InvalidArgs")
            << member << ": " << reply.error().message;
        expect_still_connected(*client);
    }
    // A method the bus does not have: UnknownMethod, still connected.
    auto unknown = client->call(call_with_fd_index("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                   "org.freedesktop.DBus", "TakeFd", 42));
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().name, "org.freedesktop.DBus.Error.UnknownMethod") << unknown.error().message;
    expect_still_connected(*client);
}

}  // namespace
}  // namespace afbus
