// libafbus's client API against a real bus daemon (dbus-daemon 1.14, or AFBUS_TEST_DAEMON).
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/types.hpp"
#include "client/connection_state.hpp"
#include "support/child_process.hpp"
#include "support/pump.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

using namespace std::chrono_literals;
using test::pump;
using test::connect;
using test::TestBus;


Message method_call(std::string_view destination, std::string_view path, std::string_view interface,
                    std::string_view member) {
    auto m = MessageBuilder::method_call(destination, path, interface, member).build();
    EXPECT_TRUE(m);
    return std::move(*m);
}

class ClientTest : public ::testing::Test {
protected:
    TestBus bus;
};

TEST_F(ClientTest, HelloAssignsAUniqueName) {
    auto c = connect(bus);
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->unique_name().starts_with(":1."));
    EXPECT_EQ(c->server_guid().size(), 32u);
    EXPECT_TRUE(c->unix_fd_passing());
}

TEST_F(ClientTest, CallsTheBusDriver) {
    auto c = connect(bus);
    ASSERT_TRUE(c);
    auto reply = c->call(method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "ListNames"));
    ASSERT_TRUE(reply) << reply.error().message;
    auto names = read_all<std::vector<std::string>>(*reply);
    ASSERT_TRUE(names);
    const auto& list = std::get<0>(*names);
    EXPECT_NE(std::find(list.begin(), list.end(), "org.freedesktop.DBus"), list.end());
    EXPECT_NE(std::find(list.begin(), list.end(), c->unique_name()), list.end());
}

// An afbus: entry on a kernel without AF_BUS (a sysfs root without module/af_bus, as on this host) fails
// with NotSupported, and an address list goes on to its next entry: the bus's unix: socket.
TEST_F(ClientTest, AfbusEntryWithoutAfBusFallsThroughToTheNextEntry) {
    struct SysfsRoot {
        explicit SysfsRoot(std::string root) { detail::set_af_bus_sysfs_root(std::move(root)); }
        ~SysfsRoot() { detail::set_af_bus_sysfs_root("/sys"); }
    } absent(bus.directory() + "/no-sysfs");

    auto alone = Connection::open("afbus:path=" + bus.directory() + "/afbus");
    ASSERT_FALSE(alone);
    EXPECT_EQ(alone.error().name, "org.freedesktop.DBus.Error.NotSupported");
    EXPECT_NE(alone.error().message.find("AF_BUS not available (af_bus.ko is not loaded)"), std::string::npos)
        << alone.error().message;

    auto c = Connection::open("afbus:path=" + bus.directory() + "/afbus;afbus:abstract=afbus-test;" + bus.address());
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ((*c)->transport(), "unix");
    EXPECT_TRUE((*c)->unique_name().starts_with(":1."));
    auto reply = (*c)->call(method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId"));
    EXPECT_TRUE(reply) << reply.error().message;
}

TEST_F(ClientTest, ErrorRepliesAreValues) {
    auto c = connect(bus);
    ASSERT_TRUE(c);
    auto reply = c->call(method_call("org.example.Nobody", "/", "org.example.I", "M"));
    ASSERT_FALSE(reply);
    EXPECT_EQ(reply.error().name, "org.freedesktop.DBus.Error.ServiceUnknown");
    EXPECT_FALSE(reply.error().message.empty());
}

TEST_F(ClientTest, NameOwnershipAndQueueing) {
    auto a = connect(bus);
    auto b = connect(bus);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(*a->request_name("org.example.Owned"), RequestNameReply::PrimaryOwner);
    EXPECT_EQ(*a->request_name("org.example.Owned"), RequestNameReply::AlreadyOwner);
    EXPECT_EQ(*b->request_name("org.example.Owned", name_flags::kDoNotQueue), RequestNameReply::Exists);
    EXPECT_EQ(*b->request_name("org.example.Owned"), RequestNameReply::InQueue);
    EXPECT_EQ(*a->release_name("org.example.Owned"), ReleaseNameReply::Released);
    auto owner = b->call(MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                     "org.freedesktop.DBus", "GetNameOwner")
                             .build()
                             .value());
    EXPECT_FALSE(owner);  // no argument: InvalidArgs
    auto get = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                           "GetNameOwner");
    append(get, std::string("org.example.Owned"));
    auto owner2 = b->call(get.build().value());
    ASSERT_TRUE(owner2);
    EXPECT_EQ(std::get<0>(*read_all<std::string>(*owner2)), b->unique_name());
    EXPECT_EQ(*a->release_name("org.example.Owned"), ReleaseNameReply::NotOwner);
    EXPECT_EQ(*a->release_name("org.example.NeverOwned"), ReleaseNameReply::NonExistent);
}

Interface calculator(int& calls, std::int32_t& stored) {
    Interface i{"org.example.Calculator", {}, {}, {}};
    i.methods.push_back({"Add", {{"a", "i"}, {"b", "i"}}, {{"sum", "i"}},
                         [&calls](const Message& call, MessageBuilder& reply) -> Expected<void, Error> {
                             ++calls;
                             auto args = read_all<std::int32_t, std::int32_t>(call);
                             append(reply, std::get<0>(*args) + std::get<1>(*args));
                             return {};
                         }});
    i.methods.push_back({"Fail", {}, {}, [](const Message&, MessageBuilder&) -> Expected<void, Error> {
                             return Unexpected(make_error("org.example.Error.Refused", "no way"));
                         }});
    i.properties.push_back({"Stored", "i", Property::Access::ReadWrite, [&stored] { return Variant(stored); },
                            [&stored](const Variant& v) -> Expected<void, Error> {
                                stored = *v.get<std::int32_t>();
                                return {};
                            }});
    i.properties.push_back({"Name", "s", Property::Access::Read, [] { return Variant(std::string("calc")); }, {}});
    i.signals.push_back({"Changed", {{"value", "i"}}});
    return i;
}

// The server runs in a child process so that the client can block in call().
class ServerProcess {
public:
    ServerProcess(const TestBus& bus, const std::string& name) {
        int ready[2];
        EXPECT_EQ(::pipe(ready), 0);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::close(ready[0]);
            auto c = Connection::open(bus.address());
            if (!c) ::_exit(1);
            int calls = 0;
            std::int32_t stored = 7;
            auto slot = (*c)->export_interface("/org/example/calc", calculator(calls, stored));
            Interface control{"org.example.Control", {}, {}, {}};
            Connection* raw = c->get();
            control.methods.push_back({"Quit", {}, {}, [raw](const Message&, MessageBuilder&) -> Expected<void, Error> {
                                           raw->stop();
                                           return {};
                                       }});
            control.methods.push_back({"EmitChanged", {}, {}, [raw](const Message&, MessageBuilder&) -> Expected<void, Error> {
                                           return raw->emit_properties_changed("/org/example/calc", "org.example.Calculator", {"Stored"});
                                       }});
            control.methods.push_back({"Echo", {{"data", "ay"}}, {{"data", "ay"}},
                                       [](const Message& call, MessageBuilder& reply) -> Expected<void, Error> {
                                           append(reply, std::get<0>(*read_all<std::vector<std::uint8_t>>(call)));
                                           return {};
                                       }});
            control.methods.push_back({"WriteTo", {{"fd", "h"}, {"text", "s"}}, {},
                                       [](const Message& call, MessageBuilder&) -> Expected<void, Error> {
                                           auto args = read_all<UnixFd, std::string>(call);
                                           if (!args) return Unexpected(make_error("org.example.Error.BadFd", "no fd"));
                                           const std::string& text = std::get<1>(*args);
                                           if (::write(std::get<0>(*args).fd().get(), text.data(), text.size()) < 0)
                                               return Unexpected(make_error("org.example.Error.Io", "write failed"));
                                           return {};
                                       }});
            auto control_slot = (*c)->export_interface("/org/example/calc", std::move(control));
            if ((*c)->request_name(name) != RequestNameReply::PrimaryOwner) ::_exit(2);
            if (::write(ready[1], "r", 1) != 1) ::_exit(3);
            auto r = (*c)->run();
            ::_exit(r ? 0 : 4);
        }
        ::close(ready[1]);
        // Ready once it owns the name; it ends (end of file, no byte) if it cannot get there.
        pollfd p{ready[0], POLLIN, 0};
        char c = 0;
        EXPECT_TRUE(::poll(&p, 1, 30000) == 1 && ::read(ready[0], &c, 1) == 1) << "the server did not get ready";
        ::close(ready[0]);
    }
    // The test tells the server to Quit; one that failed before that gets its server killed.
    ~ServerProcess() {
        if (pid_ > 0 && !test::wait_for_exit(pid_, 30s)) {
            ADD_FAILURE() << "the server process did not quit";
            test::kill_and_collect(pid_);
        }
    }

private:
    pid_t pid_;
};

TEST_F(ClientTest, MethodsPropertiesAndIntrospection) {
    ServerProcess server(bus, "org.example.Calc");
    auto c = connect(bus);
    ASSERT_TRUE(c);
    auto add = MessageBuilder::method_call("org.example.Calc", "/org/example/calc", "org.example.Calculator", "Add");
    append(add, std::int32_t{40}, std::int32_t{2});
    auto sum = c->call(add.build().value());
    ASSERT_TRUE(sum) << sum.error().message;
    EXPECT_EQ(std::get<0>(*read_all<std::int32_t>(*sum)), 42);

    auto bad = MessageBuilder::method_call("org.example.Calc", "/org/example/calc", "org.example.Calculator", "Add");
    append(bad, std::string("x"));
    auto invalid = c->call(bad.build().value());
    ASSERT_FALSE(invalid);
    EXPECT_EQ(invalid.error().name, error_names::kInvalidArgs);

    auto refused = c->call(method_call("org.example.Calc", "/org/example/calc", "org.example.Calculator", "Fail"));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), make_error("org.example.Error.Refused", "no way"));

    EXPECT_EQ(c->call(method_call("org.example.Calc", "/nowhere", "org.example.Calculator", "Add")).error().name,
              error_names::kUnknownObject);
    EXPECT_EQ(c->call(method_call("org.example.Calc", "/org/example/calc", "org.example.Nope", "Add")).error().name,
              error_names::kUnknownInterface);
    EXPECT_EQ(c->call(method_call("org.example.Calc", "/org/example/calc", "org.example.Calculator", "Nope")).error().name,
              error_names::kUnknownMethod);

    auto get = MessageBuilder::method_call("org.example.Calc", "/org/example/calc", "org.freedesktop.DBus.Properties", "Get");
    append(get, std::string("org.example.Calculator"), std::string("Stored"));
    auto value = c->call(get.build().value());
    ASSERT_TRUE(value) << value.error().message;
    EXPECT_EQ(*std::get<0>(*read_all<Variant>(*value)).get<std::int32_t>(), 7);

    auto set = MessageBuilder::method_call("org.example.Calc", "/org/example/calc", "org.freedesktop.DBus.Properties", "Set");
    append(set, std::string("org.example.Calculator"), std::string("Stored"), Variant(std::int32_t{99}));
    ASSERT_TRUE(c->call(set.build().value()));
    auto set_ro = MessageBuilder::method_call("org.example.Calc", "/org/example/calc", "org.freedesktop.DBus.Properties", "Set");
    append(set_ro, std::string("org.example.Calculator"), std::string("Name"), Variant(std::string("x")));
    EXPECT_EQ(c->call(set_ro.build().value()).error().name, error_names::kPropertyReadOnly);

    auto all = MessageBuilder::method_call("org.example.Calc", "/org/example/calc", "org.freedesktop.DBus.Properties", "GetAll");
    append(all, std::string("org.example.Calculator"));
    auto props = c->call(all.build().value());
    ASSERT_TRUE(props);
    auto map = std::get<0>(*read_all<std::map<std::string, Variant>>(*props));
    EXPECT_EQ(*map["Stored"].get<std::int32_t>(), 99);
    EXPECT_EQ(*map["Name"].get<std::string>(), "calc");

    // PropertiesChanged reaches a subscriber.
    std::vector<std::int32_t> changes;
    auto sub = c->subscribe("type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
                            "path='/org/example/calc',arg0='org.example.Calculator'",
                            [&changes](const Message& m) {
                                auto args = read_all<std::string, std::map<std::string, Variant>, std::vector<std::string>>(m);
                                if (args) changes.push_back(*std::get<1>(*args).at("Stored").get<std::int32_t>());
                            });
    ASSERT_TRUE(sub) << sub.error().message;
    ASSERT_TRUE(c->call(method_call("org.example.Calc", "/org/example/calc", "org.example.Control", "EmitChanged")));
    ASSERT_TRUE(c->run_until([&] { return !changes.empty(); }, 10s));
    EXPECT_EQ(changes, (std::vector<std::int32_t>{99}));

    auto xml = c->call(method_call("org.example.Calc", "/org/example/calc", "org.freedesktop.DBus.Introspectable", "Introspect"));
    ASSERT_TRUE(xml);
    const std::string text = std::get<0>(*read_all<std::string>(*xml));
    EXPECT_NE(text.find("<interface name=\"org.example.Calculator\">"), std::string::npos);
    EXPECT_NE(text.find("<method name=\"Add\">"), std::string::npos);
    EXPECT_NE(text.find("<property name=\"Stored\" type=\"i\" access=\"readwrite\"/>"), std::string::npos);
    EXPECT_NE(text.find("<signal name=\"Changed\">"), std::string::npos);
    auto parent = c->call(method_call("org.example.Calc", "/org/example", "org.freedesktop.DBus.Introspectable", "Introspect"));
    ASSERT_TRUE(parent);
    EXPECT_NE(std::get<0>(*read_all<std::string>(*parent)).find("<node name=\"calc\"/>"), std::string::npos);

    EXPECT_TRUE(c->call(method_call("org.example.Calc", "/", "org.freedesktop.DBus.Peer", "Ping")));
    ASSERT_TRUE(c->call(method_call("org.example.Calc", "/org/example/calc", "org.example.Control", "Quit")));
}

TEST_F(ClientTest, FdPassingThroughTheBus) {
    ServerProcess server(bus, "org.example.Fd");
    auto c = connect(bus);
    ASSERT_TRUE(c);
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    Fd read_end(p[0]), write_end(p[1]);
    auto m = MessageBuilder::method_call("org.example.Fd", "/org/example/calc", "org.example.Control", "WriteTo");
    append(m, UnixFd(std::move(write_end)), std::string("through the bus"));
    auto reply = c->call(m.build().value());
    ASSERT_TRUE(reply) << reply.error().message;
    char buf[64] = {};
    ASSERT_EQ(::read(read_end.get(), buf, sizeof buf), 15);
    EXPECT_STREQ(buf, "through the bus");
    ASSERT_TRUE(c->call(method_call("org.example.Fd", "/org/example/calc", "org.example.Control", "Quit")));
}

TEST_F(ClientTest, SixtyFourMebibyteMessage) {
    ServerProcess server(bus, "org.example.Big");
    auto c = connect(bus);
    ASSERT_TRUE(c);
    std::vector<std::uint8_t> data(64u * 1024 * 1024 - 1024);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 131);
    auto m = MessageBuilder::method_call("org.example.Big", "/org/example/calc", "org.example.Control", "Echo");
    append(m, data);
    auto reply = c->call(m.build().value(), 60s);
    ASSERT_TRUE(reply) << reply.error().name << ": " << reply.error().message;
    EXPECT_TRUE(std::get<0>(*read_all<std::vector<std::uint8_t>>(*reply)) == data);
    ASSERT_TRUE(c->call(method_call("org.example.Big", "/org/example/calc", "org.example.Control", "Quit")));
}

TEST_F(ClientTest, SignalsReachMatchingSubscribersOnly) {
    auto emitter = connect(bus);
    auto listener = connect(bus);
    ASSERT_TRUE(emitter && listener);
    std::vector<std::string> got_a, got_all;
    auto a = listener->subscribe("type='signal',interface='org.example.Sig',member='Tick',arg0='a'",
                                 [&got_a](const Message& m) { got_a.push_back(std::get<0>(*read_all<std::string>(m))); });
    auto all = listener->subscribe("type='signal',interface='org.example.Sig'",
                                   [&got_all](const Message& m) { got_all.push_back(std::get<0>(*read_all<std::string>(m))); });
    ASSERT_TRUE(a && all);
    for (const char* arg : {"a", "b", "a"}) {
        auto s = MessageBuilder::signal("/org/example", "org.example.Sig", "Tick");
        append(s, std::string(arg));
        ASSERT_TRUE(emitter->send(s.build().value()));
    }
    ASSERT_TRUE(pump({emitter.get(), listener.get()}, [&] { return got_all.size() == 3; }));
    EXPECT_EQ(got_a, (std::vector<std::string>{"a", "a"}));
    EXPECT_EQ(got_all, (std::vector<std::string>{"a", "b", "a"}));

    // Dropping the slot removes the rule on the bus: later signals don't arrive for it.
    a->release();
    auto s = MessageBuilder::signal("/org/example", "org.example.Sig", "Tick");
    append(s, std::string("a"));
    ASSERT_TRUE(emitter->send(s.build().value()));
    ASSERT_TRUE(pump({emitter.get(), listener.get()}, [&] { return got_all.size() == 4; }));
    EXPECT_EQ(got_a.size(), 2u);
    EXPECT_TRUE(listener->subscribe("type='bogus'", [](const Message&) {}).error().name == error_names::kMatchRuleInvalid);
}

// send() holds messages back while a batch is open (written when the outermost one ends, or once 64 are
// held) and while process() runs handlers; either way they arrive in the order they were sent.
TEST_F(ClientTest, SendBatchesHoldSendsUntilTheyEnd) {
    auto emitter = connect(bus);
    auto listener = connect(bus);
    ASSERT_TRUE(emitter && listener);
    std::vector<std::uint32_t> got;
    bool acked = false, ack_held_in_handler = false;
    auto tick = [&](std::uint32_t i) {
        auto s = MessageBuilder::signal("/org/example", "org.example.Batch", "Tick");
        append(s, i);
        return bool(emitter->send(s.build().value()));
    };
    auto ticks = listener->subscribe("type='signal',interface='org.example.Batch',member='Tick'", [&](const Message& m) {
        got.push_back(std::get<0>(*read_all<std::uint32_t>(m)));
        if (got.back() != 66) return;
        auto ack = MessageBuilder::signal("/org/example", "org.example.Batch", "Ack");
        ASSERT_TRUE(listener->send(ack.build().value()));
        ack_held_in_handler = listener->poll_events() & POLLOUT;
    });
    auto acks = emitter->subscribe("type='signal',interface='org.example.Batch',member='Ack'",
                                   [&](const Message&) { acked = true; });
    ASSERT_TRUE(ticks && acks);
    {
        auto outer = emitter->batch_sends();
        ASSERT_TRUE(tick(0));
        EXPECT_TRUE(emitter->poll_events() & POLLOUT) << "a send in a batch was written at once";
        {
            auto inner = emitter->batch_sends();
            ASSERT_TRUE(tick(1));
            ASSERT_TRUE(inner.finish());
        }
        EXPECT_TRUE(emitter->poll_events() & POLLOUT) << "the inner batch's end wrote the outer one's sends";
        ASSERT_TRUE(tick(2));
        ASSERT_TRUE(outer.finish());
        EXPECT_FALSE(emitter->poll_events() & POLLOUT) << "the batch's end did not write";
    }
    {
        auto batch = emitter->batch_sends();
        for (std::uint32_t i = 3; i < 66; ++i) ASSERT_TRUE(tick(i));  // 63 held
        EXPECT_TRUE(emitter->poll_events() & POLLOUT);
        ASSERT_TRUE(tick(66));  // the 64th is written with them
        EXPECT_FALSE(emitter->poll_events() & POLLOUT) << "64 held sends were not written";
    }
    ASSERT_TRUE(pump({emitter.get(), listener.get()}, [&] { return acked; }));
    ASSERT_EQ(got.size(), 67u);
    for (std::uint32_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], i);
    EXPECT_TRUE(ack_held_in_handler) << "a handler's send was written before process() finished dispatching";
}

// A monitor sees other connections' traffic as the bus copies it, filtered by its rules, and never its
// own bookkeeping; it answers nothing (a monitor that sent would be disconnected).
TEST_F(ClientTest, BecomeMonitorHandsEveryMessageToTheHandler) {
    auto emitter = connect(bus);
    auto monitor = connect(bus);
    ASSERT_TRUE(emitter && monitor);
    std::vector<std::string> seen;
    auto became = monitor->become_monitor({"type='signal',interface='org.example.Watched'"}, [&](const Message& m) {
        seen.push_back(std::string(m.member()) + " from " + std::string(m.sender()));
    });
    if (monitor->transport() == "afbus") {  // kernel mode (docs/kernel-mode.md): monitors use the unix address
        ASSERT_FALSE(became);
        EXPECT_EQ(became.error().name, error_names::kNotSupported);
        GTEST_SKIP() << became.error().message;
    }
    ASSERT_TRUE(became) << became.error().message;
    for (const char* member : {"One", "Two"}) {
        ASSERT_TRUE(emitter->send(MessageBuilder::signal("/org/example", "org.example.Watched", member).build().value()));
        ASSERT_TRUE(emitter->send(MessageBuilder::signal("/org/example", "org.example.Other", member).build().value()));
    }
    // A round trip after the signals: the bus has routed them (to the monitor too) before it answers.
    ASSERT_TRUE(emitter->call(method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId")));
    ASSERT_TRUE(pump({emitter.get(), monitor.get()}, [&] { return seen.size() >= 2; }));
    EXPECT_EQ(seen, (std::vector<std::string>{"One from " + emitter->unique_name(), "Two from " + emitter->unique_name()}));
    EXPECT_TRUE(monitor->connected());
}

TEST_F(ClientTest, AsyncCallsAndTimeouts) {
    auto a = connect(bus);
    auto b = connect(bus);
    ASSERT_TRUE(a && b);
    ASSERT_EQ(*b->request_name("org.example.Silent"), RequestNameReply::PrimaryOwner);
    // b never answers (no exported objects would answer UnknownObject, so it does not process).
    std::optional<Expected<Message, Error>> result;
    auto slot = a->call_async(method_call("org.example.Silent", "/", "org.example.I", "M"),
                              [&result](Expected<Message, Error> r) { result = std::move(r); }, 200ms);
    ASSERT_TRUE(slot);
    ASSERT_TRUE(*a->run_until([&] { return result.has_value(); }, 10s));
    ASSERT_FALSE(*result);
    EXPECT_EQ(result->error().name, error_names::kNoReply);

    std::optional<Expected<Message, Error>> ping;
    auto slot2 = a->call_async(method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.Peer", "Ping"),
                               [&ping](Expected<Message, Error> r) { ping = std::move(r); });
    ASSERT_TRUE(*a->run_until([&] { return ping.has_value(); }, 10s));
    EXPECT_TRUE(*ping);

    // A dropped slot's handler never runs.
    bool ran = false;
    {
        auto dropped = a->call_async(method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.Peer", "Ping"),
                                     [&ran](Expected<Message, Error>) { ran = true; });
    }
    auto sync = a->call(method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.Peer", "Ping"));
    ASSERT_TRUE(sync);
    ASSERT_TRUE(a->process());
    EXPECT_FALSE(ran);
}

TEST(ClientConnect, BadAddressesAreErrors) {
    EXPECT_EQ(Connection::open("nonsense").error().name, error_names::kBadAddress);
    EXPECT_EQ(Connection::open("unix:path=/nonexistent/afbus/socket").error().name, error_names::kFileNotFound);
}

}  // namespace
}  // namespace afbus
