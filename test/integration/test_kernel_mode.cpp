// Kernel mode (docs/kernel-mode.md): afbus-daemon listening on an AF_BUS socket beside its unix one.
// Where af_bus.ko and af_bus_dbus.ko are loaded (the kernel-mode VM tests), native libafbus clients talk
// through the kernel while standard clients on the unix socket see them; elsewhere the afbus: listener
// is skipped with a warning and the unix one serves.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/af_bus.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "afbus/address.hpp"
#include "afbus/af_bus_socket.hpp"
#include "afbus/connection.hpp"
#include "afbus/datagram_transport.hpp"
#include "afbus/types.hpp"
#include "support/child_process.hpp"
#include "support/hex.hpp"
#include "support/pump.hpp"
#include "support/random_message.hpp"
#include "support/serve_until.hpp"
#include "test_bus.hpp"
#include "transport/af_bus_family.hpp"

namespace afbus {
namespace {

using namespace std::chrono_literals;
using test::pump;

// One bus with both listeners, and `policy` (the rules of a default context) if given; afbus-daemon only
// (dbus-daemon has no AF_BUS).
test::TestBusOptions both_listeners(const std::string& policy = {}) {
    test::TestBusOptions options;
    options.listen = "unix:path=@DIR@/unix_socket";
    options.extra_config = "  <listen>afbus:path=@DIR@/afbus_socket</listen>\n";
    if (!policy.empty())
        options.extra_config += "  <policy context=\"default\">\n" + policy + "  </policy>\n";
    return options;
}

bool kernel_has_af_bus() { return af_bus_family().has_value(); }

bool runs_afbus_daemon() { return test::daemon_under_test().find("afbus-daemon") != std::string::npos; }

// The entry of `address` (a ';' list) of the given transport, without the others.
std::string entry_of(const std::string& address, std::string_view transport) {
    std::size_t start = 0;
    while (start <= address.size()) {
        const std::size_t end = std::min(address.find(';', start), address.size());
        const std::string entry = address.substr(start, end - start);
        if (entry.starts_with(std::string(transport) + ":")) return entry;
        start = end + 1;
    }
    return {};
}

Message driver_call(std::string_view member) {
    return MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", member)
        .build()
        .value();
}

std::vector<std::string> list_names(Connection& c) {
    auto reply = c.call(driver_call("ListNames"));
    EXPECT_TRUE(reply) << reply.error().message;
    if (!reply) return {};
    return std::get<0>(read_all<std::vector<std::string>>(*reply).value());
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
    return std::find(list.begin(), list.end(), item) != list.end();
}

// An object answering Echo(s) -> s with "<text> from <its unique name>".
Expected<Slot, Error> export_echo(Connection& c) {
    Interface echo{"org.example.Echo", {}, {}, {}};
    const std::string me = c.unique_name();
    echo.methods.push_back({"Echo", {{"text", "s"}}, {{"text", "s"}},
                            [me](const Message& call, MessageBuilder& reply) -> Expected<void, Error> {
                                append(reply, std::get<0>(read_all<std::string>(call).value()) + " from " + me);
                                return {};
                            }});
    return c.export_interface("/org/example/echo", std::move(echo));
}

// Serves `sender` until something waits in `receiver`'s socket (a call `sender` made, which `receiver`
// does not process), at most 10 s.
bool served_until_readable(Connection& sender, const Connection& receiver) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
        if (!sender.process()) return false;
        pollfd readable{receiver.fd(), POLLIN, 0};
        if (::poll(&readable, 1, 50) == 1) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
    }
}

// How many messages wait in native client `c`'s AF_BUS socket.
std::size_t queued_in(const Connection& c) {
    bus_queued queued[BUS_QUEUED_MAX];
    socklen_t len = sizeof(queued);
    if (::getsockopt(c.fd(), SOL_BUS, BUS_GET_QUEUED, queued, &len) != 0) return 0;
    return len / sizeof(bus_queued);
}

Message echo_call(std::string_view destination, std::string_view text) {
    auto call = MessageBuilder::method_call(destination, "/org/example/echo", "org.example.Echo", "Echo");
    append(call, std::string(text));
    return call.build().value();
}

// Calls Echo on `destination` from `caller` while every connection of `all` is served.
Expected<std::string, Error> echo(Connection& caller, std::initializer_list<Connection*> all, std::string_view destination,
                                  std::string_view text) {
    std::optional<Expected<Message, Error>> result;
    auto slot = caller.call_async(echo_call(destination, text), [&result](Expected<Message, Error> r) { result = std::move(r); });
    if (!slot) return Unexpected(slot.error());
    if (!pump(all, [&result] { return result.has_value(); })) return Unexpected(Error{"test.Timeout", "no reply"});
    if (!*result) return Unexpected(result->error());
    return std::get<0>(read_all<std::string>(**result).value());
}

TEST(KernelMode, AnAfBusListenerTheKernelCannotServeIsSkipped) {
    if (!runs_afbus_daemon()) GTEST_SKIP() << "kernel mode is afbus-daemon's";
    if (kernel_has_af_bus()) GTEST_SKIP() << "this kernel has AF_BUS";
    test::TestBus bus(both_listeners());
    EXPECT_EQ(entry_of(bus.address(), "afbus"), "") << bus.address();
    // A client given both entries falls back to the unix one.
    auto c = Connection::open("afbus:path=" + bus.directory() + "/afbus_socket;" + entry_of(bus.address(), "unix"));
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_TRUE(contains(list_names(**c), (*c)->unique_name()));
}

class KernelModeBus : public ::testing::Test {
protected:
    void SetUp() override {
        if (!runs_afbus_daemon()) GTEST_SKIP() << "kernel mode is afbus-daemon's";
        if (!kernel_has_af_bus()) GTEST_SKIP() << "no AF_BUS in this kernel (the kernel-mode VM tests run this)";
        bus_ = std::make_unique<test::TestBus>(both_listeners());
        native_address_ = entry_of(bus_->address(), "afbus");
        unix_address_ = entry_of(bus_->address(), "unix");
        ASSERT_NE(native_address_, "") << "no afbus: listener in " << bus_->address();
    }

    std::unique_ptr<Connection> open(const std::string& address) {
        auto c = Connection::open(address);
        EXPECT_TRUE(c) << address << ": " << c.error().message;
        return c ? std::move(*c) : nullptr;
    }

    std::unique_ptr<test::TestBus> bus_;
    std::string native_address_, unix_address_;
};

TEST_F(KernelModeBus, NativeClientsCallEachOtherAndStandardClientsSeeThem) {
    auto a = open(native_address_), b = open(native_address_), u = open(unix_address_);
    ASSERT_TRUE(a && b && u);
    auto a_echo = export_echo(*a);
    auto u_echo = export_echo(*u);
    ASSERT_TRUE(a_echo && u_echo);

    // Native to native by unique name: the first call reaches A through the master, the next ones
    // through the kernel directly; every answer goes from A to B through the kernel.
    for (int i = 0; i < 5; ++i) {
        auto r = echo(*b, {a.get(), b.get(), u.get()}, a->unique_name(), "hi " + std::to_string(i));
        ASSERT_TRUE(r) << r.error().name << ": " << r.error().message;
        EXPECT_EQ(*r, "hi " + std::to_string(i) + " from " + a->unique_name());
    }
    // A well-known name, owned through the kernel's name address; gone, the bus answers.
    ASSERT_EQ(a->request_name("org.example.Kernel"), RequestNameReply::PrimaryOwner);
    for (int i = 0; i < 3; ++i) {
        auto r = echo(*b, {a.get(), b.get(), u.get()}, "org.example.Kernel", "name");
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(*r, "name from " + a->unique_name());
    }
    ASSERT_EQ(a->release_name("org.example.Kernel"), ReleaseNameReply::Released);
    auto gone = echo(*b, {a.get(), b.get(), u.get()}, "org.example.Kernel", "gone");
    ASSERT_FALSE(gone);
    EXPECT_EQ(gone.error().name, "org.freedesktop.DBus.Error.ServiceUnknown");
    // The name moves to B: calls reach B, never A.
    ASSERT_EQ(a->request_name("org.example.Moving"), RequestNameReply::PrimaryOwner);
    auto b_echo = export_echo(*b);
    ASSERT_TRUE(b_echo);
    ASSERT_TRUE(echo(*u, {a.get(), b.get(), u.get()}, "org.example.Moving", "x").has_value());
    ASSERT_EQ(b->request_name("org.example.Moving", name_flags::kDoNotQueue), RequestNameReply::Exists);
    ASSERT_EQ(b->request_name("org.example.Moving"), RequestNameReply::InQueue);
    ASSERT_EQ(a->release_name("org.example.Moving"), ReleaseNameReply::Released);
    pump({a.get(), b.get(), u.get()}, [] { return false; }, 100ms);  // B reads NameAcquired
    auto moved = echo(*u, {a.get(), b.get(), u.get()}, "org.example.Moving", "moved");
    ASSERT_TRUE(moved) << moved.error().message;
    EXPECT_EQ(*moved, "moved from " + b->unique_name());

    // The standard client sees both natives, and they it, in both directions.
    const auto names = list_names(*u);
    EXPECT_TRUE(contains(names, a->unique_name()));
    EXPECT_TRUE(contains(names, b->unique_name()));
    auto from_unix = echo(*u, {a.get(), b.get(), u.get()}, a->unique_name(), "u");
    ASSERT_TRUE(from_unix) << from_unix.error().message;
    EXPECT_EQ(*from_unix, "u from " + a->unique_name());
    auto to_unix = echo(*a, {a.get(), b.get(), u.get()}, u->unique_name(), "n");
    ASSERT_TRUE(to_unix) << to_unix.error().message;
    EXPECT_EQ(*to_unix, "n from " + u->unique_name());
}

TEST_F(KernelModeBus, SignalsReachTheNativeSubscribersOnly) {
    auto a = open(native_address_), b = open(native_address_), c = open(native_address_);
    ASSERT_TRUE(a && b && c);
    std::vector<std::string> got_b, got_c;
    auto sub_b = b->subscribe("type='signal',interface='org.example.Kernel',member='Tick'",
                              [&got_b](const Message& m) { got_b.push_back(std::get<0>(read_all<std::string>(m).value())); });
    auto sub_c = c->subscribe("type='signal',interface='org.example.Kernel',member='Other'",
                              [&got_c](const Message& m) { got_c.push_back(std::string(m.member())); });
    ASSERT_TRUE(sub_b && sub_c);
    for (int i = 0; i < 10; ++i) {
        auto tick = MessageBuilder::signal("/org/example", "org.example.Kernel", "Tick");
        append(tick, std::to_string(i));
        ASSERT_TRUE(a->send(tick.build().value()));
    }
    ASSERT_TRUE(pump({a.get(), b.get(), c.get()}, [&got_b] { return got_b.size() == 10; }));
    for (int i = 0; i < 10; ++i) EXPECT_EQ(got_b[static_cast<std::size_t>(i)], std::to_string(i));
    // A signal after the ticks, which C subscribed to: by the time it arrives, no Tick has reached C.
    ASSERT_TRUE(a->send(MessageBuilder::signal("/org/example", "org.example.Kernel", "Other").build().value()));
    ASSERT_TRUE(pump({a.get(), b.get(), c.get()}, [&got_c] { return !got_c.empty(); }));
    EXPECT_EQ(got_c, std::vector<std::string>{"Other"});
    EXPECT_EQ(got_b.size(), 10u);
}

// af_bus_dbus.ko takes at most 65,536 match records per client, whatever the configuration allows: an
// AddMatch beyond that is answered LimitsExceeded, and the bus keeps no rule the kernel does not have
// (it used to keep it, and the client silently missed what it matched). The rules the kernel has still
// match. A native client and a bridged standard client alike.
TEST_F(KernelModeBus, AMatchRuleTheKernelCannotTakeIsRefused) {
    auto options = both_listeners();
    options.extra_config += "  <limit name=\"max_match_rules_per_connection\">70000</limit>\n";
    bus_ = std::make_unique<test::TestBus>(options);
    native_address_ = entry_of(bus_->address(), "afbus");
    unix_address_ = entry_of(bus_->address(), "unix");
    constexpr int kKernelRecords = 65536;  // DBUS_MAX_RULES_PER_CLIENT
    const std::string rule = "type='signal',interface='org.example.Many',member='Tick'";
    const auto add_match = [&rule] {
        auto call = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                                "AddMatch");
        append(call, rule);
        return call.build().value();
    };
    auto emitter = open(native_address_);
    ASSERT_TRUE(emitter);
    for (const std::string& address : {native_address_, unix_address_}) {
        SCOPED_TRACE(address);
        auto subscriber = open(address);
        ASSERT_TRUE(subscriber);
        // The same rule 65,536 times (a rule added twice counts twice, as in dbus-daemon), 1,024 calls
        // in flight at a time.
        int answered = 0, refused = 0;
        for (int sent = 0; sent < kKernelRecords;) {
            std::vector<Slot> slots;
            for (int i = 0; i < 1024; ++i, ++sent) {
                auto slot = subscriber->call_async(add_match(), [&](Expected<Message, Error> r) {
                    ++answered;
                    if (!r) ++refused;
                });
                ASSERT_TRUE(slot);
                slots.push_back(std::move(*slot));
            }
            ASSERT_TRUE(pump({subscriber.get()}, [&] { return answered == sent; }, 60s));
        }
        EXPECT_EQ(refused, 0);
        auto beyond = subscriber->call(add_match());
        ASSERT_FALSE(beyond);
        EXPECT_EQ(beyond.error().name, "org.freedesktop.DBus.Error.LimitsExceeded") << beyond.error().message;
        // The bus holds as many as the kernel: removing one makes room for the subscription below, and
        // the rules still match.
        auto remove = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                  "org.freedesktop.DBus", "RemoveMatch");
        append(remove, rule);
        ASSERT_TRUE(subscriber->call(remove.build().value()));
        int ticks = 0;
        auto sub = subscriber->subscribe(rule, [&ticks](const Message&) { ++ticks; });
        ASSERT_TRUE(sub) << sub.error().message;
        ASSERT_TRUE(emitter->send(MessageBuilder::signal("/org/example", "org.example.Many", "Tick").build().value()));
        EXPECT_TRUE(pump({subscriber.get(), emitter.get()}, [&ticks] { return ticks > 0; }));
    }
}

TEST_F(KernelModeBus, AQueueThatBuiltUpIsReadWholeInOrderWithItsFds) {
    // What piles up while a client is busy elsewhere: small and large signals, some with fds. libafbus
    // reads such a queue many datagrams per recvmmsg() (docs/kernel.md, "Reading a queue in one call"),
    // so every mix must come out uncut, in order, each fd with its own message: batches end at the
    // buffer libafbus keeps (64 KiB; these large ones are bigger), at 4 messages with fds and at 64.
    auto a = open(native_address_), b = open(native_address_);
    ASSERT_TRUE(a && b);
    ASSERT_TRUE(a->unix_fd_passing() && b->unix_fd_passing());
    constexpr int kCount = 300;
    auto large = [](int i) { return i % 41 == 5; };
    auto with_fd = [](int i) { return i % 7 == 2 || (i >= 100 && i < 110); };
    std::vector<std::string> got;
    std::vector<std::string> fd_contents;
    const char* rule = "type='signal',interface='org.example.Queue',member='Item'";
    auto sub = b->subscribe(rule, [&](const Message& m) {
        if (m.signature() == "sh") {
            auto v = read_all<std::string, UnixFd>(m);
            ASSERT_TRUE(v);
            got.push_back(std::get<0>(*v));
            char buf[16] = {};
            const ssize_t n = ::read(std::get<1>(*v).fd().get(), buf, sizeof buf - 1);
            fd_contents.emplace_back(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
        } else {
            auto v = read_all<std::string>(m);
            ASSERT_TRUE(v);
            got.push_back(std::get<0>(*v));
        }
    });
    ASSERT_TRUE(sub);
    // B reads nothing until A has sent everything.
    for (int i = 0; i < kCount; ++i) {
        auto item = MessageBuilder::signal("/org/example", "org.example.Queue", "Item");
        std::string text = std::to_string(i);
        if (large(i)) text += std::string(70 * 1024, 'x');
        if (with_fd(i)) {
            int p[2];
            ASSERT_EQ(::pipe(p), 0);
            Fd read_end(p[0]), write_end(p[1]);
            const std::string tag = std::to_string(i);
            ASSERT_EQ(::write(write_end.get(), tag.data(), tag.size()), static_cast<ssize_t>(tag.size()));
            append(item, text, UnixFd(std::move(read_end)));
        } else {
            append(item, text);
        }
        ASSERT_TRUE(a->send(item.build().value()));
    }
    ASSERT_TRUE(pump({a.get(), b.get()}, [&got] { return got.size() == kCount; }));
    std::vector<std::string> fds_expected;
    for (int i = 0; i < kCount; ++i) {
        std::string text = std::to_string(i);
        if (large(i)) text += std::string(70 * 1024, 'x');
        ASSERT_EQ(got[static_cast<std::size_t>(i)], text) << "message " << i;
        if (with_fd(i)) fds_expected.push_back(std::to_string(i));
    }
    EXPECT_EQ(fd_contents, fds_expected);
    EXPECT_TRUE(b->connected());
}

TEST_F(KernelModeBus, MessagesThatComeOneAtATimeAreReadWholeWhateverTheirSize) {
    // A reader that gets one message at a time reads each with one recvmsg() into a 64 KiB buffer; a longer
    // one stays queued (BUS_RECV_WHOLE) and is read at its own size, and after a burst the reader goes back
    // to single reads (docs/kernel.md, "Reading one message in one call"). Sizes around the buffer's.
    auto a = open(native_address_), b = open(native_address_);
    ASSERT_TRUE(a && b);
    std::vector<std::string> got;
    const char* rule = "type='signal',interface='org.example.One',member='Item'";
    auto sub = b->subscribe(rule, [&got](const Message& m) {
        auto v = read_all<std::string>(m);
        ASSERT_TRUE(v);
        got.push_back(std::get<0>(*v));
    });
    ASSERT_TRUE(sub);
    auto item = [](std::size_t size, char fill) {
        auto signal = MessageBuilder::signal("/org/example", "org.example.One", "Item");
        append(signal, std::string(size, fill));
        return signal.build().value();
    };
    std::vector<std::size_t> sizes{1, 100, 1024 * 1024, 10};
    for (std::size_t size = 64 * 1024 - 400; size <= 64 * 1024 + 100; size += 50) sizes.push_back(size);
    std::vector<std::string> expected;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        const char fill = static_cast<char>('a' + i % 26);
        ASSERT_TRUE(a->send(item(sizes[i], fill)));
        expected.emplace_back(sizes[i], fill);
        ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return got.size() == expected.size(); }))
            << "size " << sizes[i];
        // A burst now and then: three at once, then one at a time again.
        if (i % 5 == 4) {
            for (std::size_t size : {70u * 1024, 5u, 60u * 1024}) {
                ASSERT_TRUE(a->send(item(size, 'z')));
                expected.emplace_back(size, 'z');
            }
            ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return got.size() == expected.size(); }));
        }
    }
    ASSERT_EQ(got.size(), expected.size());
    for (std::size_t i = 0; i < got.size(); ++i)  // no EXPECT_EQ: a failure would print megabytes
        EXPECT_TRUE(got[i] == expected[i]) << "message " << i << ": " << got[i].size() << " bytes";
    EXPECT_TRUE(b->connected());
}

TEST_F(KernelModeBus, ASenderGetsItsOwnSignalsWhereItsRulesMatch) {
    // As from dbus-daemon: the kernel offers a native client's multicast to the client itself too, and
    // its match records decide.
    auto a = open(native_address_), b = open(native_address_);
    ASSERT_TRUE(a && b);
    std::vector<std::string> got_a, got_b;
    auto sub_a = a->subscribe("type='signal',interface='org.example.Self',member='Mine'",
                              [&got_a](const Message& m) { got_a.emplace_back(m.member()); });
    auto sub_b = b->subscribe("type='signal',interface='org.example.Self',member='Last'",
                              [&got_b](const Message& m) { got_b.emplace_back(m.member()); });
    ASSERT_TRUE(sub_a && sub_b);
    for (const char* member : {"Mine", "Other", "Mine", "Last"})
        ASSERT_TRUE(a->send(MessageBuilder::signal("/org/example", "org.example.Self", member).build().value()));
    ASSERT_TRUE(pump({a.get(), b.get()}, [&got_a, &got_b] { return got_a.size() == 2 && got_b.size() == 1; }));
    EXPECT_EQ(got_a, (std::vector<std::string>{"Mine", "Mine"}));
    EXPECT_EQ(got_b, std::vector<std::string>{"Last"});
}

TEST_F(KernelModeBus, PolicyHoldsBetweenNativeClients) {
    // Deny rules the kernel enforces on what goes from client to client directly (af_bus_dbus.ko's
    // policy image and each client's chains), as the model does on what goes through the daemon.
    test::TestBus strict(
        both_listeners("    <deny send_destination=\"org.example.Guarded\"/>\n"
                       "    <deny receive_interface=\"org.example.Kernel\" receive_member=\"Hidden\"/>\n"));
    const std::string native = entry_of(strict.address(), "afbus");
    ASSERT_NE(native, "") << strict.address();
    auto a = open(native), b = open(native), c = open(native), u = open(entry_of(strict.address(), "unix"));
    ASSERT_TRUE(a && b && c && u);
    auto a_echo = export_echo(*a), c_echo = export_echo(*c);
    ASSERT_TRUE(a_echo && c_echo);
    const std::initializer_list<Connection*> all = {a.get(), b.get(), c.get(), u.get()};

    ASSERT_EQ(a->request_name("org.example.Guarded"), RequestNameReply::PrimaryOwner);
    // send_destination is about the names the recipient owns, whichever name a call is addressed to; the
    // first call goes through the daemon, the next ones (once B knows the address) through the kernel.
    for (const std::string& destination : {std::string("org.example.Guarded"), a->unique_name()}) {
        for (int i = 0; i < 3; ++i) {
            auto r = echo(*b, all, destination, "no");
            ASSERT_FALSE(r) << destination << " answered " << *r;
            EXPECT_EQ(r.error().name, "org.freedesktop.DBus.Error.AccessDenied") << destination << ": " << r.error().message;
        }
    }
    auto from_unix = echo(*u, all, a->unique_name(), "no");
    ASSERT_FALSE(from_unix);
    EXPECT_EQ(from_unix.error().name, "org.freedesktop.DBus.Error.AccessDenied");
    for (int i = 0; i < 3; ++i) {
        auto r = echo(*b, all, c->unique_name(), "yes");
        ASSERT_TRUE(r) << r.error().name << ": " << r.error().message;
    }
    // Released, the name no longer guards A.
    ASSERT_EQ(a->release_name("org.example.Guarded"), ReleaseNameReply::Released);
    for (int i = 0; i < 3; ++i) {
        auto r = echo(*b, all, a->unique_name(), "yes");
        ASSERT_TRUE(r) << r.error().name << ": " << r.error().message;
    }

    // Receive rules: A takes Tick, never Hidden, from a native sender through the kernel.
    std::vector<std::string> got;
    auto sub = a->subscribe("type='signal',interface='org.example.Kernel'",
                            [&got](const Message& m) { got.emplace_back(m.member()); });
    ASSERT_TRUE(sub);
    for (const char* member : {"Hidden", "Tick", "Hidden", "Last"})
        ASSERT_TRUE(b->send(MessageBuilder::signal("/org/example", "org.example.Kernel", member).build().value()));
    ASSERT_TRUE(pump(all, [&got] { return !got.empty() && got.back() == "Last"; }));
    EXPECT_EQ(got, (std::vector<std::string>{"Tick", "Last"}));
}

// A standard client with an eavesdrop='true' rule, bridged into the kernel, sees what native clients send
// each other straight through the kernel, as on dbus-daemon: each message once (the first call, forwarded
// by the master, as well as the later direct ones), and only what its rules ask for and policy's eavesdrop
// rules allow (here, nothing on org.example.Secret). It used to see only what passed through the daemon.
TEST_F(KernelModeBus, ABridgedEavesdropperSeesTrafficBetweenNativeClients) {
    test::TestBus bus(
        both_listeners("    <deny eavesdrop=\"true\" receive_interface=\"org.example.Secret\"/>\n"));
    const std::string native = entry_of(bus.address(), "afbus");
    ASSERT_NE(native, "") << bus.address();
    auto a = open(native), b = open(native), u = open(entry_of(bus.address(), "unix"));
    ASSERT_TRUE(a && b && u);
    auto a_echo = export_echo(*a);
    ASSERT_TRUE(a_echo);
    const std::initializer_list<Connection*> all = {a.get(), b.get(), u.get()};

    std::vector<std::string> calls, signals;
    auto seen_calls = u->subscribe(
        "eavesdrop='true',type='method_call',interface='org.example.Echo'",
        [&calls](const Message& m) { calls.push_back(std::get<0>(read_all<std::string>(m).value())); });
    auto seen_signals = u->subscribe(
        "eavesdrop='true',type='signal',path='/org/example/whisper'", [&signals](const Message& m) {
            signals.push_back(std::string(m.interface()) + "." + std::string(m.member()));
        });
    ASSERT_TRUE(seen_calls && seen_signals);
    for (int i = 0; i < 5; ++i) {
        auto r = echo(*b, all, a->unique_name(), "call " + std::to_string(i));
        ASSERT_TRUE(r) << "call " << i << ": " << r.error().name << ": " << r.error().message;
    }
    // Unicast signals from B to A, through the kernel: the policy hides the secret one from eavesdroppers.
    for (const char* interface : {"org.example.Secret", "org.example.Open"}) {
        ASSERT_TRUE(b->send(MessageBuilder::signal("/org/example/whisper", interface, "Whisper")
                                .destination(a->unique_name())
                                .build()
                                .value()));
    }
    ASSERT_TRUE(b->send(MessageBuilder::signal("/org/example/whisper", "org.example.Open", "Last")
                            .destination(a->unique_name())
                            .build()
                            .value()));
    ASSERT_TRUE(
        pump(all, [&signals] { return !signals.empty() && signals.back() == "org.example.Open.Last"; }));
    EXPECT_EQ(calls, (std::vector<std::string>{"call 0", "call 1", "call 2", "call 3", "call 4"}));
    EXPECT_EQ(signals, (std::vector<std::string>{"org.example.Open.Whisper", "org.example.Open.Last"}));
}

// A client that sends a signal and leaves at once (as dbus-send does): an eavesdropper whose rules ask for
// the signal gets it all the same, whichever way the sender came, though the kernel's copy is judged
// only when the eavesdropper's bridge reads it.
TEST_F(KernelModeBus, AnEavesdropperGetsTheLastWordsOfASenderThatLeft) {
    auto u = open(unix_address_);
    ASSERT_TRUE(u);
    std::vector<std::string> seen;
    auto sub = u->subscribe("eavesdrop='true',type='signal',interface='org.example.Bye'",
                            [&seen](const Message& m) { seen.emplace_back(m.member()); });
    ASSERT_TRUE(sub);
    for (const std::string* address : {&unix_address_, &native_address_}) {
        auto sender = open(*address);
        ASSERT_TRUE(sender);
        const std::string member = address == &unix_address_ ? "FromUnix" : "FromNative";
        ASSERT_TRUE(
            sender->send(MessageBuilder::signal("/org/example", "org.example.Bye", member).build().value()));
        sender.reset();  // (sent before it returned)
        ASSERT_TRUE(pump({u.get()}, [&seen, &member] { return !seen.empty() && seen.back() == member; }))
            << member << " never came";
    }
    EXPECT_EQ(seen, (std::vector<std::string>{"FromUnix", "FromNative"}));
}

TEST_F(KernelModeBus, AClientGoneBeforeTheBusAdmitsItStillHasItsSignalRouted) {
    // A native client that, once the bus has accepted it and taken its AUTH, sends BEGIN, Hello and a
    // signal at once and closes. The bus answers Hello, then finds the client gone as it joins it in the
    // kernel; what it sent before (to the master, not joined yet) must still be routed, as dbus-daemon
    // routes what a client wrote before it hung up. Subscribers on both sides get the signal.
    auto u = open(unix_address_), n = open(native_address_);
    ASSERT_TRUE(u && n);
    std::vector<std::string> seen_by_unix, seen_by_native;
    const char* rule = "type='signal',interface='org.example.Bye',member='Gone'";
    auto unix_sub = u->subscribe(rule, [&](const Message& m) { seen_by_unix.emplace_back(m.sender()); });
    auto native_sub = n->subscribe(rule, [&](const Message& m) { seen_by_native.emplace_back(m.sender()); });
    ASSERT_TRUE(unix_sub && native_sub);
    {
        auto entries = parse_address_list(native_address_);
        ASSERT_TRUE(entries && entries->size() == 1);
        auto socket = connect_af_bus(entries->front());
        ASSERT_TRUE(socket) << socket.error().describe();
        // One datagram per SASL line, then one per message (docs/kernel-mode.md).
        const std::string auth =
            std::string(1, '\0') + "AUTH EXTERNAL " + test::hex(std::to_string(::getuid())) + "\r\n";
        ASSERT_EQ(::send(socket->fd.get(), auth.data(), auth.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(auth.size()));
        // Its OK says the bus has accepted it (one gone before that is not taken: docs/kernel-mode.md,
        // "Where kernel mode differs from broker mode").
        char ok[256];
        pollfd readable{socket->fd.get(), POLLIN, 0};
        ASSERT_EQ(::poll(&readable, 1, 10'000), 1);
        ASSERT_GT(::recv(socket->fd.get(), ok, sizeof ok, 0), 2);
        ASSERT_EQ(std::string_view(ok, 2), "OK");
        ASSERT_EQ(::send(socket->fd.get(), "BEGIN\r\n", 7, MSG_NOSIGNAL), 7);
        DatagramTransport transport(std::move(socket->fd), socket->family);
        transport.enqueue(MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                      "org.freedesktop.DBus", "Hello")
                              .build(1)
                              .value(),
                          std::nullopt);
        transport.enqueue(MessageBuilder::signal("/org/example", "org.example.Bye", "Gone").build(2).value(),
                          std::nullopt);
        auto written = transport.flush();
        ASSERT_TRUE(written && *written);
    }  // closed: before the bus has read its Hello, let alone joined it
    ASSERT_TRUE(pump({u.get(), n.get()}, [&] { return !seen_by_unix.empty() && !seen_by_native.empty(); }));
    EXPECT_EQ(seen_by_unix, seen_by_native);
    EXPECT_TRUE(seen_by_unix.front().starts_with(":1.")) << seen_by_unix.front();
    EXPECT_TRUE(u->connected() && n->connected());
}

// A native client cannot eavesdrop: the model's copies would reach it through the kernel, which takes a
// copy of a call the master forwards for a call to the eavesdropper (and then drops the callee's answer),
// and it would miss what clients send each other directly. Its AddMatch says so, and its other rules
// are taken; a native client's first call to another is still answered.
TEST_F(KernelModeBus, ANativeClientCannotEavesdrop) {
    auto a = open(native_address_), b = open(native_address_), e = open(native_address_);
    ASSERT_TRUE(a && b && e);
    auto a_echo = export_echo(*a);
    ASSERT_TRUE(a_echo);
    auto refused = e->subscribe("eavesdrop='true',type='method_call'", [](const Message&) {});
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().name, "org.freedesktop.DBus.Error.NotSupported") << refused.error().message;
    std::vector<std::string> seen;
    auto taken = e->subscribe("type='signal',interface='org.example.Echo'",
                              [&seen](const Message& m) { seen.emplace_back(m.member()); });
    ASSERT_TRUE(taken) << taken.error().message;
    auto r = echo(*b, {a.get(), b.get(), e.get()}, a->unique_name(), "first");
    ASSERT_TRUE(r) << r.error().name << ": " << r.error().message;
    ASSERT_TRUE(
        b->send(MessageBuilder::signal("/org/example/echo", "org.example.Echo", "Done").build().value()));
    ASSERT_TRUE(pump({a.get(), b.get(), e.get()}, [&seen] { return !seen.empty(); }));
    EXPECT_EQ(seen, std::vector<std::string>{"Done"});
}

// A monitor on the unix socket is shown a native client's first call to another, which the master
// forwards, and the later ones, which go straight through the kernel; the callee's answers reach the
// caller. (The model's copy for the monitor goes to its unix side directly, as an eavesdropper's does:
// through the kernel, a copy of a forwarded call would be taken for a call to the monitor.)
TEST_F(KernelModeBus, AMonitorSeesAForwardedCallThatIsStillAnswered) {
    auto a = open(native_address_), b = open(native_address_), m = open(unix_address_);
    ASSERT_TRUE(a && b && m);
    auto a_echo = export_echo(*a);
    ASSERT_TRUE(a_echo);
    std::vector<std::string> seen;
    ASSERT_TRUE(m->become_monitor(
        {"type='method_call',interface='org.example.Echo'"},
        [&seen](const Message& msg) { seen.push_back(std::get<0>(read_all<std::string>(msg).value())); }));
    for (int i = 0; i < 3; ++i) {
        auto r = echo(*b, {a.get(), b.get(), m.get()}, a->unique_name(), "call " + std::to_string(i));
        ASSERT_TRUE(r) << "call " << i << ": " << r.error().name << ": " << r.error().message;
    }
    ASSERT_TRUE(pump({a.get(), b.get(), m.get()}, [&seen] { return seen.size() == 3; }));
    EXPECT_EQ(seen, (std::vector<std::string>{"call 0", "call 1", "call 2"}));
}

TEST_F(KernelModeBus, WhatTheKernelRefusesANativeClientForPolicyTheBusJudgesAgain) {
    // af_bus_dbus.ko refuses a call between native clients that policy denies; libafbus hands the refused
    // call to the daemon, which judges it again as the broker does: dbus-daemon's error and words for the
    // caller, and the log line of a log="true" rule, for every such call, not only the first (which goes
    // through the daemon anyway, the caller having no address for the callee yet).
    auto options = both_listeners();
    options.capture_log = true;
    options.extra_config +=
        "  <policy context=\"default\">\n"
        "    <deny send_interface=\"org.example.Echo\" send_member=\"Echo\"\n"
        "          send_path=\"/org/example/logged\" log=\"true\"/>\n"
        "  </policy>\n";
    test::TestBus strict(options);
    const std::string native = entry_of(strict.address(), "afbus");
    ASSERT_NE(native, "") << strict.address();
    auto a = open(native), b = open(native);
    ASSERT_TRUE(a && b);
    auto a_echo = export_echo(*a);
    ASSERT_TRUE(a_echo);
    const std::initializer_list<Connection*> all = {a.get(), b.get()};
    auto count = [&strict](std::string_view needle) {
        const std::string log = strict.log();
        std::size_t n = 0;
        for (std::size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
        return n;
    };
    for (int i = 0; i < 3; ++i) {
        auto call = MessageBuilder::method_call(a->unique_name(), "/org/example/logged", "org.example.Echo",
                                                "Echo");
        append(call, std::string("no"));
        std::optional<Expected<Message, Error>> result;
        auto slot = b->call_async(call.build().value(),
                                  [&result](Expected<Message, Error> r) { result = std::move(r); });
        ASSERT_TRUE(slot);
        ASSERT_TRUE(pump(all, [&result] { return result.has_value(); }));
        ASSERT_FALSE(*result) << "call " << i << " was answered";
        EXPECT_EQ(result->error().name, "org.freedesktop.DBus.Error.AccessDenied");
        const std::string& words = result->error().message;
        EXPECT_TRUE(words.starts_with("Rejected send message, ") &&
                    words.find(" matched rules; type=\"method_call\", sender=\"" + b->unique_name() + "\"") !=
                        std::string::npos)
            << "call " << i << ": " << result->error().message;
        // Logged before the error was sent.
        EXPECT_EQ(count("Rejected send message"), static_cast<std::size_t>(i + 1)) << strict.log();
    }
    // What policy allows still reaches A: nothing is held back behind the refusals.
    for (int i = 0; i < 3; ++i) {
        auto r = echo(*b, all, a->unique_name(), "yes");
        ASSERT_TRUE(r) << r.error().name << ": " << r.error().message;
        EXPECT_EQ(*r, "yes from " + a->unique_name());
    }
}

// AF_BUS carries no sockets (docs/kernel.md, "No sockets over AF_BUS"). A socket passed between two unix
// clients goes around the kernel, in order with the rest (a portal's answer carrying a PipeWire socket),
// both in a call and in its answer; where a native client would be given one or would give one, the
// sender, or the caller waiting for the answer, is told why at once (NotSupported), never left waiting.
TEST_F(KernelModeBus, SocketsPassBetweenUnixClientsAndNativeClientsAreToldWhy) {
    auto a = open(native_address_), u = open(unix_address_), v = open(unix_address_);
    ASSERT_TRUE(a && u && v);
    const std::initializer_list<Connection*> all = {a.get(), u.get(), v.get()};
    std::vector<Fd> kept;  // the ends of the sockets u gave out
    auto sockets = [&kept] {
        Interface sock{"org.example.Sock", {}, {}, {}};
        sock.methods.push_back({"Open", {}, {{"socket", "h"}},
                                [&kept](const Message&, MessageBuilder& reply) -> Expected<void, Error> {
                                    int pair[2];
                                    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
                                        return Unexpected(Error{"org.example.Error.Failed", "socketpair"});
                                    kept.emplace_back(pair[0]);
                                    append(reply, UnixFd(Fd(pair[1])));
                                    return {};
                                }});
        sock.methods.push_back({"Take", {{"socket", "h"}}, {},
                                [](const Message& call, MessageBuilder&) -> Expected<void, Error> {
                                    auto args = read_all<UnixFd>(call);
                                    if (!args || ::write(std::get<0>(*args).fd().get(), "ok", 2) != 2)
                                        return Unexpected(Error{"org.example.Error.Failed", "no socket"});
                                    return {};
                                }});
        return sock;
    };
    auto u_slot = u->export_interface("/org/example/sock", sockets());
    auto a_slot = a->export_interface("/org/example/sock", sockets());
    ASSERT_TRUE(u_slot && a_slot);
    auto call = [&all](Connection& caller, const std::string& callee, const char* member, std::optional<Fd> fd) {
        auto m = MessageBuilder::method_call(callee, "/org/example/sock", "org.example.Sock", member);
        if (fd) append(m, UnixFd(std::move(*fd)));
        std::optional<Expected<Message, Error>> result;
        auto slot = caller.call_async(
            m.build().value(), [&result](Expected<Message, Error> r) { result = std::move(r); }, 10s);
        EXPECT_TRUE(slot);
        EXPECT_TRUE(pump(all, [&result] { return result.has_value(); }));
        if (!result) return Expected<Message, Error>(Unexpected(Error{"test.Timeout", "no answer"}));
        return std::move(*result);
    };
    auto read_two = [](int fd) {
        char text[2] = {};
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 10000) != 1 || ::read(fd, text, 2) != 2) return std::string();
        return std::string(text, 2);
    };
    // u's answers carry sockets to v; v's calls to the bus and to u in between keep their order.
    for (int i = 0; i < 3; ++i) {
        auto opened = call(*v, u->unique_name(), "Open", std::nullopt);
        ASSERT_TRUE(opened) << opened.error().name << ": " << opened.error().message;
        auto got = read_all<UnixFd>(*opened);
        ASSERT_TRUE(got);
        ASSERT_EQ(::write(std::get<0>(*got).fd().get(), "hi", 2), 2);
        EXPECT_EQ(read_two(kept.back().get()), "hi");
        EXPECT_FALSE(list_names(*v).empty());
    }
    auto socket_pair = [] {
        int pair[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
        return std::pair<Fd, Fd>(pair[0], pair[1]);
    };
    // Refused with NotSupported, saying why.
    auto told_no_sockets = [](const Expected<Message, Error>& r) -> testing::AssertionResult {
        if (r) return testing::AssertionFailure() << "answered";
        if (r.error().name != "org.freedesktop.DBus.Error.NotSupported" ||
            r.error().message.find("AF_BUS carries no sockets") == std::string::npos)
            return testing::AssertionFailure() << r.error().name << ": " << r.error().message;
        return testing::AssertionSuccess();
    };
    // v's call carries a socket to u.
    auto [mine, theirs] = socket_pair();
    auto taken = call(*v, u->unique_name(), "Take", std::move(theirs));
    ASSERT_TRUE(taken) << taken.error().name << ": " << taken.error().message;
    EXPECT_EQ(read_two(mine.get()), "ok");
    // A native client cannot be given a socket: as caller (twice: through the master, then directly) and
    // as callee, it is told why; nor can it give one.
    for (int i = 0; i < 2; ++i)
        ASSERT_TRUE(told_no_sockets(call(*a, u->unique_name(), "Open", std::nullopt)));
    // A native callee cannot answer with one: its caller gets NotSupported in place of the answer.
    for (Connection* caller : {v.get(), u.get()})
        ASSERT_TRUE(told_no_sockets(call(*caller, a->unique_name(), "Open", std::nullopt)));
    for (Connection* caller : {v.get(), a.get()}) {
        auto [end, given] = socket_pair();
        const std::string callee = caller == a.get() ? u->unique_name() : a->unique_name();
        ASSERT_TRUE(told_no_sockets(call(*caller, callee, "Take", std::move(given))));
    }
    // Everybody is still served.
    auto opened = call(*v, u->unique_name(), "Open", std::nullopt);
    EXPECT_TRUE(opened);
    EXPECT_TRUE(a->connected() && u->connected() && v->connected());
}

// The bridge (docs/kernel-mode.md): a unix client is a peer in the kernel like a native one. Broadcasts
// cross between the two kinds through the kernel's match records, calls go straight to the callee's
// address, and a callee that leaves without answering gets its bridged callers NoReply, as the broker
// would tell them.
TEST_F(KernelModeBus, StandardClientsAreBridgedIntoTheKernel) {
    auto a = open(native_address_), b = open(native_address_), u = open(unix_address_), v = open(unix_address_);
    ASSERT_TRUE(a && b && u && v);
    const std::initializer_list<Connection*> all = {a.get(), b.get(), u.get(), v.get()};
    std::vector<std::string> got_u, got_a;
    auto sub_u = u->subscribe("type='signal',interface='org.example.Bridge',member='Tick'", [&got_u](const Message& m) {
        got_u.push_back(std::string(m.sender()) + "/" + std::get<0>(read_all<std::string>(m).value()));
    });
    auto sub_a = a->subscribe("type='signal',interface='org.example.Bridge',member='Tock'", [&got_a](const Message& m) {
        got_a.push_back(std::string(m.sender()) + "/" + std::get<0>(read_all<std::string>(m).value()));
    });
    ASSERT_TRUE(sub_u && sub_a);
    for (int i = 0; i < 3; ++i) {
        auto tick = MessageBuilder::signal("/org/example", "org.example.Bridge", "Tick");
        append(tick, std::to_string(i));
        ASSERT_TRUE(b->send(tick.build().value()));  // native → unix
        auto tock = MessageBuilder::signal("/org/example", "org.example.Bridge", "Tock");
        append(tock, std::to_string(i));
        ASSERT_TRUE(v->send(tock.build().value()));  // unix → native
    }
    ASSERT_TRUE(pump(all, [&] { return got_u.size() == 3 && got_a.size() == 3; }))
        << got_u.size() << " ticks reached the unix client, " << got_a.size() << " tocks the native one";
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(got_u[static_cast<std::size_t>(i)], b->unique_name() + "/" + std::to_string(i));
        EXPECT_EQ(got_a[static_cast<std::size_t>(i)], v->unique_name() + "/" + std::to_string(i));
    }

    // Calls both ways, by unique and by well-known name.
    auto a_echo = export_echo(*a), v_echo = export_echo(*v);
    ASSERT_TRUE(a_echo && v_echo);
    ASSERT_EQ(v->request_name("org.example.Bridged"), RequestNameReply::PrimaryOwner);
    for (int i = 0; i < 3; ++i) {
        auto to_native = echo(*u, all, a->unique_name(), "u");
        ASSERT_TRUE(to_native) << to_native.error().name << ": " << to_native.error().message;
        EXPECT_EQ(*to_native, "u from " + a->unique_name());
        auto to_unix = echo(*b, all, "org.example.Bridged", "b");
        ASSERT_TRUE(to_unix) << to_unix.error().name << ": " << to_unix.error().message;
        EXPECT_EQ(*to_unix, "b from " + v->unique_name());
        auto unix_to_unix = echo(*u, all, "org.example.Bridged", "u");
        ASSERT_TRUE(unix_to_unix) << unix_to_unix.error().name << ": " << unix_to_unix.error().message;
        EXPECT_EQ(*unix_to_unix, "u from " + v->unique_name());
    }

    // B takes a call from U and leaves without answering: U hears NoReply from the bus.
    std::optional<Expected<Message, Error>> result;
    auto pending = u->call_async(echo_call(b->unique_name(), "never"), [&result](Expected<Message, Error> r) { result = std::move(r); });
    ASSERT_TRUE(pending);
    // Once the call waits in B's socket (through the kernel, not answered: B is not served), B leaves.
    ASSERT_TRUE(served_until_readable(*u, *b)) << "the call never reached B";
    b.reset();
    ASSERT_TRUE(pump({a.get(), u.get(), v.get()}, [&result] { return result.has_value(); }));
    ASSERT_FALSE(*result);
    EXPECT_EQ(result->error().name, "org.freedesktop.DBus.Error.NoReply") << result->error().message;
}

// A callee that leaves fails the calls bridged callers made to it, and only those: the daemon finds
// them by callee (not by walking every client), several per caller, while the same callers' calls to
// another callee stay pending and are answered.
TEST_F(KernelModeBus, ACalleeThatLeavesFailsOnlyTheBridgedCallsMadeToIt) {
    auto leaving = open(native_address_), staying = open(native_address_);
    auto u1 = open(unix_address_), u2 = open(unix_address_);
    ASSERT_TRUE(leaving && staying && u1 && u2);
    auto staying_echo = export_echo(*staying);
    ASSERT_TRUE(staying_echo);
    // Owning a name drains what the bus sends a new connection (NameAcquired comes before the reply), so
    // that the callees' sockets hold nothing but the calls.
    ASSERT_EQ(leaving->request_name("org.example.Leaving"), RequestNameReply::PrimaryOwner);
    ASSERT_EQ(staying->request_name("org.example.Staying"), RequestNameReply::PrimaryOwner);
    ASSERT_TRUE(leaving->process() && staying->process());
    std::vector<std::optional<Expected<Message, Error>>> to_leaving(3), to_staying(2);
    std::vector<Slot> slots;
    using Result = std::optional<Expected<Message, Error>>;
    const auto call = [&slots](Connection& caller, std::string_view callee, Result& result) {
        auto slot = caller.call_async(echo_call(callee, "x"),
                                      [&result](Expected<Message, Error> r) { result = std::move(r); });
        ASSERT_TRUE(slot);
        slots.push_back(std::move(*slot));
    };
    call(*u1, leaving->unique_name(), to_leaving[0]);
    call(*u1, leaving->unique_name(), to_leaving[1]);
    call(*u2, leaving->unique_name(), to_leaving[2]);
    call(*u1, staying->unique_name(), to_staying[0]);
    call(*u2, staying->unique_name(), to_staying[1]);
    // Every call waits in its callee's socket (neither callee is served yet); then one callee leaves.
    const auto delivered = [&] { return queued_in(*leaving) == 3 && queued_in(*staying) == 2; };
    ASSERT_TRUE(pump({u1.get(), u2.get()}, delivered))
        << queued_in(*leaving) << " and " << queued_in(*staying) << " calls reached the callees";
    leaving.reset();
    const auto failed = [&to_leaving] {
        return std::all_of(to_leaving.begin(), to_leaving.end(), [](const auto& r) { return r.has_value(); });
    };
    ASSERT_TRUE(pump({u1.get(), u2.get()}, failed));
    for (const auto& result : to_leaving) {
        ASSERT_FALSE(*result);
        EXPECT_EQ(result->error().name, "org.freedesktop.DBus.Error.NoReply") << result->error().message;
    }
    EXPECT_FALSE(to_staying[0] || to_staying[1]) << "a call to the callee that stayed was failed";
    const auto answered = [&to_staying] { return to_staying[0] && to_staying[1]; };
    ASSERT_TRUE(pump({u1.get(), u2.get(), staying.get()}, answered));
    for (const auto& result : to_staying) {
        ASSERT_TRUE(*result) << result->error().name << ": " << result->error().message;
        EXPECT_EQ(std::get<0>(read_all<std::string>(**result).value()), "x from " + staying->unique_name());
    }
}

// A bridged callee that becomes a monitor cannot answer what it was called with directly through the
// kernel: its bridged callers get NoReply at once, as for a call the model routed (dbus-daemon expires
// the calls a new monitor owed).
TEST_F(KernelModeBus, ABridgedCalleeThatBecomesAMonitorOwesNoReply) {
    auto u = open(unix_address_), v = open(unix_address_);
    ASSERT_TRUE(u && v);
    // Owning a name drains what the bus sends a new connection (NameAcquired comes before the reply), so
    // that the next thing in V's socket is the call.
    ASSERT_EQ(v->request_name("org.example.Monitor"), RequestNameReply::PrimaryOwner);
    ASSERT_TRUE(v->process());
    std::optional<Expected<Message, Error>> result;
    auto pending = u->call_async(echo_call(v->unique_name(), "never"), [&result](Expected<Message, Error> r) { result = std::move(r); });
    ASSERT_TRUE(pending);
    // Once the call waits in V's socket (undispatched: V is not served), V becomes a monitor.
    ASSERT_TRUE(served_until_readable(*u, *v)) << "the call never reached V";
    ASSERT_TRUE(v->become_monitor({}, [](const Message&) {}));
    ASSERT_TRUE(pump({u.get()}, [&result] { return result.has_value(); }));
    ASSERT_FALSE(*result);
    EXPECT_EQ(result->error().name, "org.freedesktop.DBus.Error.NoReply") << result->error().message;
}

TEST_F(KernelModeBus, BusctlOnTheUnixSocketListsNativeClients) {
    auto a = open(native_address_);
    ASSERT_TRUE(a);
    ASSERT_EQ(a->request_name("org.example.Listed"), RequestNameReply::PrimaryOwner);
    test::ChildProcess busctl({test::find_program("busctl"), "--address=" + unix_address_, "list", "--no-pager", "--no-legend"},
                              test::child_environment({"SYSTEMD_PAGER=cat", "SYSTEMD_COLORS=0", "LC_ALL=C.UTF-8"}));
    Connection* const served[] = {a.get()};
    ASSERT_TRUE(test::serve_until([&busctl] { return busctl.finished(); }, served, {&busctl}, 30s)) << busctl.report();
    ASSERT_TRUE(busctl.succeeded()) << busctl.report();
    EXPECT_NE(busctl.out().find(a->unique_name()), std::string::npos) << busctl.out();
    EXPECT_NE(busctl.out().find("org.example.Listed"), std::string::npos) << busctl.out();
}

// Invariant 1 (one order): 4 senders broadcasting concurrently (a thread each), 8 receivers, half of
// each native and half unix clients bridged into the kernel: every receiver sees the same sequence. The senders go in rounds of kBurst signals each,
// the next round once every receiver has read the last: the kernel's receive queues are bounded
// (af_bus.ko: 512 messages, the socket's receive buffer), and a copy for a full queue is dropped, as
// dbus-daemon drops beyond max_outgoing_bytes; what is tested here is the order, not the loss.
// AFBUS_TEST_ORDER_MESSAGES sets the count per sender.
TEST_F(KernelModeBus, EveryReceiverSeesOneOrder) {
    constexpr int kSenders = 4, kReceivers = 8, kBurst = 25;
    const int per_sender = static_cast<int>(testgen::env_or("AFBUS_TEST_ORDER_MESSAGES", 10000)) / kBurst * kBurst;
    std::vector<std::unique_ptr<Connection>> receivers;
    std::vector<std::vector<std::string>> seen(kReceivers);
    std::vector<Slot> slots;
    for (int r = 0; r < kReceivers; ++r) {
        receivers.push_back(open(r % 2 ? unix_address_ : native_address_));
        ASSERT_TRUE(receivers.back());
        auto& log = seen[static_cast<std::size_t>(r)];
        auto slot = receivers.back()->subscribe("type='signal',interface='org.example.Order'", [&log](const Message& m) {
            log.push_back(std::string(m.sender()) + "/" + std::get<0>(read_all<std::string>(m).value()));
        });
        ASSERT_TRUE(slot);
        slots.push_back(std::move(*slot));
    }
    std::vector<std::unique_ptr<Connection>> senders;
    for (int s = 0; s < kSenders; ++s) {
        senders.push_back(open(s % 2 ? unix_address_ : native_address_));
        ASSERT_TRUE(senders.back());
    }
    std::atomic<int> released{0};  // rounds the senders may start
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (auto& sender : senders) {
        threads.emplace_back([&sender, &failures, &released, per_sender] {
            for (int round = 0; round * kBurst < per_sender; ++round) {
                for (int old = released.load(); old >= 0 && old <= round; old = released.load()) released.wait(old);
                if (released.load() < 0) return;  // the test gave up
                for (int i = round * kBurst; i < (round + 1) * kBurst; ++i) {
                    auto m = MessageBuilder::signal("/org/example", "org.example.Order", "Step");
                    append(m, std::to_string(i));
                    if (!sender->send(m.build().value())) ++failures;
                }
            }
        });
    }
    std::vector<Connection*> all;
    for (auto& r : receivers) all.push_back(r.get());
    const int rounds = per_sender / kBurst;
    const auto deadline = std::chrono::steady_clock::now() + 300s;
    auto have = [&](std::size_t n) {
        return std::all_of(seen.begin(), seen.end(), [n](const auto& log) { return log.size() >= n; });
    };
    bool complete = true;
    for (int round = 0; round < rounds && complete; ++round) {
        released.store(round + 1);
        released.notify_all();
        const std::size_t want = static_cast<std::size_t>(round + 1) * kBurst * kSenders;
        while (!have(want)) {
            if (std::chrono::steady_clock::now() >= deadline) {
                complete = false;
                break;
            }
            std::vector<pollfd> fds;
            for (Connection* c : all) fds.push_back({c->fd(), c->poll_events(), 0});
            ::poll(fds.data(), fds.size(), 100);
            for (Connection* c : all) ASSERT_TRUE(c->process());
        }
    }
    if (!complete) {
        released.store(-1);
        released.notify_all();
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0);
    ASSERT_TRUE(complete) << "a receiver missed signals: " << seen[0].size() << " of " << per_sender * kSenders;
    for (int r = 1; r < kReceivers; ++r)
        EXPECT_TRUE(seen[static_cast<std::size_t>(r)] == seen[0]) << "receiver " << r << " saw another order";
    // Each sender's own signals in the order it sent them, interleaved with the others'.
    std::map<std::string, int> next;
    for (const std::string& entry : seen[0]) {
        const auto slash = entry.find('/');
        EXPECT_EQ(std::stoi(entry.substr(slash + 1)), next[entry.substr(0, slash)]++) << entry;
    }
}

// Faults: the daemon killed while clients are connected: every client sees the bus go away, nothing
// hangs; the D-Bus module cannot be unloaded while the bus exists.
TEST_F(KernelModeBus, TheBusGoingAwayIsSeenByEveryClient) {
    auto a = open(native_address_), b = open(native_address_);
    ASSERT_TRUE(a && b);
    if (::getuid() == 0 && ::access("/sys/module/af_bus_dbus", F_OK) == 0) {
        EXPECT_NE(std::system("rmmod af_bus_dbus 2>/dev/null"), 0) << "af_bus_dbus unloaded under a live bus";
    }
    ASSERT_EQ(::kill(bus_->pid(), SIGKILL), 0);
    // A call in flight to the other client, and one to the bus: both end with an error, promptly.
    std::optional<Expected<Message, Error>> to_peer;
    auto slot = a->call_async(echo_call(b->unique_name(), "late"), [&to_peer](Expected<Message, Error> r) { to_peer = std::move(r); });
    auto to_bus = b->call(driver_call("GetId"), 10s);
    EXPECT_FALSE(to_bus);
    // Served until both see the end (process() then reports it, as it should).
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while ((a->connected() || b->connected()) && std::chrono::steady_clock::now() < deadline) {
        pollfd fds[] = {{a->fd(), a->poll_events(), 0}, {b->fd(), b->poll_events(), 0}};
        ::poll(fds, 2, 100);
        (void)a->process();
        (void)b->process();
    }
    EXPECT_FALSE(a->connected());
    EXPECT_FALSE(b->connected());
    if (to_peer) {
        EXPECT_FALSE(*to_peer);
    }
}

// SIGUSR1 during the test below: it only counts.
std::atomic<int> interrupts{0};
extern "C" void count_interrupt(int) {
    interrupts.fetch_add(1, std::memory_order_relaxed);
}

TEST_F(KernelModeBus, CallsAndANativeServiceWaitInTheirReceive) {
    // A native client's socket blocks, so that waiting for a reply (call()) or for work (run(),
    // run_until()) is the receive itself: one system call where poll() and a receive were two
    // (docs/kernel-mode.md, "What changes for each kind of client"). A signal, or a message other than
    // the reply, during the wait changes nothing the caller sees, and process() still never blocks.
    auto caller = open(native_address_), service = open(native_address_);
    ASSERT_TRUE(caller && service);
    EXPECT_EQ(::fcntl(caller->fd(), F_GETFL) & O_NONBLOCK, 0);
    struct sigaction interrupt {
    }, previous{};
    interrupt.sa_handler = count_interrupt;  // no SA_RESTART: the waiting receive ends with EINTR
    ASSERT_EQ(::sigaction(SIGUSR1, &interrupt, &previous), 0);
    interrupts = 0;

    // Echo emits a Tick and interrupts the caller's thread before it answers; Quit ends the service's loop.
    const pthread_t caller_thread = ::pthread_self();
    std::atomic<bool> quit{false};
    Interface echo_interface{"org.example.Echo", {}, {}, {}};
    echo_interface.methods.push_back(
        {"Echo",
         {{"text", "s"}},
         {{"text", "s"}},
         [&service, caller_thread](const Message& call, MessageBuilder& reply) -> Expected<void, Error> {
             auto tick = MessageBuilder::signal("/org/example/echo", "org.example.Echo", "Tick").build();
             if (!tick) return Unexpected(Error{"test.Failed", "no Tick"});
             if (auto sent = service->send(std::move(*tick)); !sent) return Unexpected(sent.error());
             ::pthread_kill(caller_thread, SIGUSR1);
             append(reply, std::get<0>(read_all<std::string>(call).value()));
             return {};
         }});
    echo_interface.methods.push_back(
        {"Quit", {}, {}, [&quit](const Message&, MessageBuilder&) -> Expected<void, Error> {
             quit = true;
             return {};
         }});
    auto exported = service->export_interface("/org/example/echo", std::move(echo_interface));
    ASSERT_TRUE(exported);
    int ticks = 0;
    auto subscribed = caller->subscribe("type='signal',interface='org.example.Echo',member='Tick'",
                                        [&ticks](const Message&) { ++ticks; });
    ASSERT_TRUE(subscribed);

    const std::string service_name = service->unique_name();  // the loop's thread has the service now
    Expected<bool, Error> served = false;
    std::thread loop([&] { served = service->run_until([&quit] { return quit.load(); }, 60s); });
    constexpr int kCalls = 20;
    int answered = 0;
    for (int i = 0; i < kCalls; ++i) {
        // Some replies longer than the 64 KiB a lone message is read into: they stay queued and are read
        // at their own size.
        const std::string text = "call " + std::to_string(i) + std::string(i % 7 == 3 ? 100 * 1024 : 0, 'x');
        auto reply = caller->call(echo_call(service_name, text));
        EXPECT_TRUE(reply) << reply.error().name << ": " << reply.error().message;
        if (reply && std::get<0>(read_all<std::string>(*reply).value()) == text)
            ++answered;  // no EXPECT_EQ: 100 KiB
    }
    timeval receive_timeout{};
    socklen_t length = sizeof receive_timeout;
    ASSERT_EQ(::getsockopt(caller->fd(), SOL_SOCKET, SO_RCVTIMEO, &receive_timeout, &length), 0);
    auto quit_call =
        MessageBuilder::method_call(service_name, "/org/example/echo", "org.example.Echo", "Quit");
    EXPECT_TRUE(caller->call(quit_call.build().value()));
    loop.join();
    // The Ticks came before their replies and wait to be dispatched; nothing else is queued, and this
    // process() returns all the same.
    ASSERT_TRUE(caller->process());
    ::sigaction(SIGUSR1, &previous, nullptr);

    EXPECT_EQ(answered, kCalls);
    EXPECT_EQ(ticks, kCalls);
    EXPECT_EQ(interrupts.load(), kCalls);
    ASSERT_TRUE(served) << served.error().message;
    EXPECT_TRUE(*served);
    EXPECT_EQ(receive_timeout.tv_sec,
              std::chrono::duration_cast<std::chrono::seconds>(kDefaultCallTimeout).count());
    EXPECT_TRUE(caller->connected() && service->connected());
}

TEST_F(KernelModeBus, AWaitingReadEndsAtTheReceiveTimeoutHavingReadNothing) {
    // What a call's timeout rests on: where nothing comes, a read that waits returns at the socket's
    // receive timeout with nothing read and no error, and its owner looks at the clock again. The
    // master sends nothing before the client speaks.
    auto entries = parse_address_list(native_address_);
    ASSERT_TRUE(entries && entries->size() == 1);
    auto socket = connect_af_bus(entries->front(), kDefaultSysfsRoot, SocketFileMode::Blocking);
    ASSERT_TRUE(socket) << socket.error().describe();
    const timeval timeout{0, 200'000};
    ASSERT_EQ(::setsockopt(socket->fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout), 0);
    DatagramTransport transport(std::move(socket->fd), socket->family);
    ASSERT_TRUE(transport.can_wait_in_read());
    const auto start = std::chrono::steady_clock::now();
    auto read = transport.read(DatagramTransport::kDefaultReadBudget, ReadStart::Waiting);
    const auto waited = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(read) << describe(read.error());
    EXPECT_EQ(*read, 0u);
    EXPECT_GE(waited, 150ms) << "the read did not wait";
    auto next = transport.next();
    ASSERT_TRUE(next);
    EXPECT_FALSE(next->has_value());
}

}  // namespace
}  // namespace afbus
