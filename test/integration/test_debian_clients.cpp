// Unmodified Debian clients against a private bus: busctl (systemd; monitor and capture too), dbus-send
// and dbus-monitor (dbus-bin), gdbus (libglib2.0-bin) and python3-dbus. The service they talk to is
// libafbus, in this process: an object /org/example/demo with interface org.example.Demo (methods Add and
// Greet, properties Version and Answer, signal Ping) under the name org.example.Demo. A second libafbus
// connection subscribes to Ping.
//
// Everything runs on one thread: while a client runs, pump() polls the two libafbus connections, the
// client's stdout and stderr pipes and its pidfd, so the service answers the client and the test sees the
// client's output as it comes and its exit, without sleeping. Clients get a scrubbed environment whose
// session and system bus addresses both name the private bus, so none of them can reach the machine's
// real buses. A client that is not installed skips its test (scripts/install-deps.sh installs them all).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/types.hpp"
#include "support/child_process.hpp"
#include "support/serve_until.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

using namespace std::chrono_literals;
using test::child_environment;
using test::ChildProcess;
using test::Clock;
using test::connect;
using test::find_program;
using test::TestBus;

constexpr auto kTimeout = 20s;  // for one client to finish, or for an expected event
constexpr std::string_view kName = "org.example.Demo";
constexpr std::string_view kPath = "/org/example/demo";
constexpr std::string_view kInterface = "org.example.Demo";

// python3-dbus is Debian's module for Debian's python3, which a python3 earlier in $PATH (a pyenv or a
// virtualenv) does not see.
std::string find_python() {
    if (::access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
    return find_program("python3");
}

// A client's environment: its session and system bus addresses both name the private bus.
std::vector<std::string> client_environment(const std::string& bus_address) {
    return child_environment(
        {"DBUS_SESSION_BUS_ADDRESS=" + bus_address, "DBUS_SYSTEM_BUS_ADDRESS=" + bus_address,
         "GIO_USE_VFS=local",  // no gvfs daemon looked for on the bus
         "SYSTEMD_PAGER=cat", "SYSTEMD_COLORS=0", "LC_ALL=C.UTF-8"},
        {"DISPLAY=", "PYTHON"});
}

struct Ping {
    std::string sender, path, message;
};

Interface demo_interface(int& calls) {
    Interface i{std::string(kInterface), {}, {}, {}};
    i.methods.push_back({"Add", {{"a", "i"}, {"b", "i"}}, {{"sum", "i"}},
                         [&calls](const Message& call, MessageBuilder& reply) -> Expected<void, Error> {
                             ++calls;
                             auto args = read_all<std::int32_t, std::int32_t>(call);
                             append(reply, std::get<0>(*args) + std::get<1>(*args));
                             return {};
                         }});
    i.methods.push_back({"Greet", {{"name", "s"}}, {{"greeting", "s"}},
                         [&calls](const Message& call, MessageBuilder& reply) -> Expected<void, Error> {
                             ++calls;
                             append(reply, "Hello, " + std::get<0>(*read_all<std::string>(call)) + "!");
                             return {};
                         }});
    i.properties.push_back({"Version", "s", Property::Access::Read, [] { return Variant(std::string("1.2.3")); }, {}});
    i.properties.push_back({"Answer", "i", Property::Access::Read, [] { return Variant(std::int32_t{42}); }, {}});
    i.signals.push_back({"Ping", {{"message", "s"}}});
    return i;
}

class DebianClientsTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(service);
        ASSERT_TRUE(subscriber);
        auto object = service->export_interface(kPath, demo_interface(calls));
        ASSERT_TRUE(object) << object.error().message;
        object_slot = std::move(*object);
        auto owned = service->request_name(kName, name_flags::kDoNotQueue);
        ASSERT_TRUE(owned) << owned.error().message;
        ASSERT_EQ(*owned, RequestNameReply::PrimaryOwner);
        auto sub = subscriber->subscribe("type='signal',interface='org.example.Demo',member='Ping'",
                                         [this](const Message& m) {
                                             auto args = read_all<std::string>(m);
                                             ASSERT_TRUE(args);
                                             pings.push_back({std::string(m.sender()), std::string(m.path()),
                                                              std::get<0>(*args)});
                                         });
        ASSERT_TRUE(sub) << sub.error().message;
        ping_slot = std::move(*sub);
    }

    // Runs the libafbus connections and watches the clients in `children` until `done()` or the
    // timeout; false on timeout or if a connection fails.
    bool pump(const std::function<bool()>& done, const std::vector<ChildProcess*>& children,
              std::chrono::milliseconds timeout = kTimeout) {
        Connection* const connections[] = {service.get(), subscriber.get()};
        return test::serve_until(done, connections, children, timeout);
    }

    // Runs a client to its end while serving its calls; a failure (and a killed client) if it takes longer
    // than kTimeout.
    std::unique_ptr<ChildProcess> run(std::vector<std::string> argv) {
        auto child = std::make_unique<ChildProcess>(std::move(argv), client_environment(bus.address()));
        if (!pump([&] { return child->finished(); }, {child.get()})) {
            child->send_signal(SIGKILL);
            ADD_FAILURE() << "the client did not finish in time: " << child->report();
        }
        return child;
    }

    // Emits Ping(message) from the service.
    void emit_ping(const std::string& message) {
        auto signal = MessageBuilder::signal(kPath, kInterface, "Ping");
        append(signal, message);
        auto sent = service->send(signal.build().value());
        ASSERT_TRUE(sent) << sent.error().message;
    }

    // Waits for the subscriber to receive a Ping (while `children` are watched).
    bool wait_for_ping(const std::vector<ChildProcess*>& children = {}) {
        return pump([this] { return !pings.empty(); }, children);
    }

    TestBus bus;
    std::unique_ptr<Connection> service = connect(bus);
    std::unique_ptr<Connection> subscriber = connect(bus);
    int calls = 0;  // Add and Greet calls the service answered
    Slot object_slot;
    Slot ping_slot;
    std::vector<Ping> pings;  // as the subscriber received them
};

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

// The line of `text` that starts with `start` ("" if none).
std::string line_starting_with(const std::string& text, std::string_view start) {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with(start)) return line;
    }
    return "";
}

#define REQUIRE_PROGRAM(variable, program, package)                                                       \
    const std::string variable = find_program(program);                                                   \
    if (variable.empty())                                                                                 \
    GTEST_SKIP() << program " is not installed (Debian package " package "; scripts/install-deps.sh installs it)"

// ---- busctl (systemd) ----

TEST_F(DebianClientsTest, BusctlListShowsTheServiceAndTheTestsConnections) {
    REQUIRE_PROGRAM(busctl, "busctl", "systemd");
    auto list = run({busctl, "--address=" + bus.address(), "--no-pager", "list"});
    ASSERT_TRUE(list->succeeded()) << list->report();
    const std::string pid = std::to_string(::getpid());
    // NAME PID PROCESS USER CONNECTION UNIT SESSION DESCRIPTION; the test process is both connections.
    const std::string demo = line_starting_with(list->out(), "org.example.Demo ");
    EXPECT_TRUE(contains(demo, " " + pid + " ")) << list->report();
    EXPECT_TRUE(contains(demo, " " + service->unique_name() + " ")) << list->report();
    for (const std::string& unique : {service->unique_name(), subscriber->unique_name()}) {
        const std::string line = line_starting_with(list->out(), unique + " ");
        EXPECT_TRUE(contains(line, " " + pid + " ")) << unique << "\n" << list->report();
    }
    const std::string driver = line_starting_with(list->out(), "org.freedesktop.DBus ");
    std::string bus_pid = " ";  // built in place: GCC 12 at -O3 warns falsely (-Wrestrict) on " " + std::string
    bus_pid += std::to_string(bus.pid());
    bus_pid += " ";
    EXPECT_TRUE(contains(driver, bus_pid)) << list->report();
}

TEST_F(DebianClientsTest, BusctlStatusOfTheBusAndOfTheService) {
    REQUIRE_PROGRAM(busctl, "busctl", "systemd");
    auto driver = run({busctl, "--address=" + bus.address(), "--no-pager", "status", "org.freedesktop.DBus"});
    ASSERT_TRUE(driver->succeeded()) << driver->report();
    EXPECT_TRUE(contains(driver->out(), "PID=" + std::to_string(bus.pid()) + "\n")) << driver->report();
    EXPECT_TRUE(contains(driver->out(), "UID=" + std::to_string(::getuid()) + "\n")) << driver->report();

    auto demo = run({busctl, "--address=" + bus.address(), "--no-pager", "status", std::string(kName)});
    ASSERT_TRUE(demo->succeeded()) << demo->report();
    EXPECT_TRUE(contains(demo->out(), "PID=" + std::to_string(::getpid()) + "\n")) << demo->report();
    EXPECT_TRUE(contains(demo->out(), "UID=" + std::to_string(::getuid()) + "\n")) << demo->report();
    EXPECT_TRUE(contains(demo->out(), "UniqueName=" + service->unique_name() + "\n")) << demo->report();
}

TEST_F(DebianClientsTest, BusctlTreeShowsTheObjectPath) {
    REQUIRE_PROGRAM(busctl, "busctl", "systemd");
    auto tree = run({busctl, "--address=" + bus.address(), "--no-pager", "tree", std::string(kName)});
    ASSERT_TRUE(tree->succeeded()) << tree->report();
    for (const char* path : {"/org\n", "/org/example\n", "/org/example/demo\n"})
        EXPECT_TRUE(contains(tree->out(), path)) << path << "\n" << tree->report();
}

// The driver lists the way down to /org/freedesktop/DBus on "/", "/org" and "/org/freedesktop", as
// dbus-daemon does, so that busctl's tree walk finds it.
TEST_F(DebianClientsTest, BusctlTreeOfTheBus) {
    REQUIRE_PROGRAM(busctl, "busctl", "systemd");
    auto tree = run({busctl, "--address=" + bus.address(), "--no-pager", "tree", "org.freedesktop.DBus"});
    ASSERT_TRUE(tree->succeeded()) << tree->report();
    EXPECT_TRUE(contains(tree->out(), "/org/freedesktop/DBus\n")) << tree->report();
    EXPECT_FALSE(contains(tree->out(), "Only root object discovered.")) << tree->report();
}

TEST_F(DebianClientsTest, BusctlIntrospectShowsMethodsPropertiesAndSignal) {
    REQUIRE_PROGRAM(busctl, "busctl", "systemd");
    auto introspect = run({busctl, "--address=" + bus.address(), "--no-pager", "introspect", std::string(kName),
                           std::string(kPath)});
    ASSERT_TRUE(introspect->succeeded()) << introspect->report();
    const std::string& out = introspect->out();
    // NAME TYPE SIGNATURE RESULT/VALUE FLAGS, columns padded with spaces.
    auto row = [&](std::string_view member, std::vector<std::string> columns) {
        const std::string line = line_starting_with(out, member);
        std::istringstream words(line);
        std::vector<std::string> got;
        for (std::string w; words >> w;) got.push_back(w);
        columns.insert(columns.begin(), std::string(member.substr(0, member.find(' '))));
        got.resize(std::min(got.size(), columns.size()));
        EXPECT_EQ(got, columns) << introspect->report();
    };
    EXPECT_TRUE(contains(out, "org.example.Demo ")) << introspect->report();
    EXPECT_TRUE(contains(out, "org.freedesktop.DBus.Properties ")) << introspect->report();
    row(".Add ", {"method", "ii", "i"});
    row(".Greet ", {"method", "s", "s"});
    row(".Answer ", {"property", "i", "42"});
    row(".Version ", {"property", "s", "\"1.2.3\""});
    row(".Ping ", {"signal", "s"});
}

TEST_F(DebianClientsTest, BusctlCallAndGetProperty) {
    REQUIRE_PROGRAM(busctl, "busctl", "systemd");
    auto add = run({busctl, "--address=" + bus.address(), "call", std::string(kName), std::string(kPath),
                    std::string(kInterface), "Add", "ii", "40", "2"});
    ASSERT_TRUE(add->succeeded()) << add->report();
    EXPECT_EQ(add->out(), "i 42\n");
    auto greet = run({busctl, "--address=" + bus.address(), "call", std::string(kName), std::string(kPath),
                      std::string(kInterface), "Greet", "s", "busctl"});
    ASSERT_TRUE(greet->succeeded()) << greet->report();
    EXPECT_EQ(greet->out(), "s \"Hello, busctl!\"\n");
    EXPECT_EQ(calls, 2);

    auto version = run({busctl, "--address=" + bus.address(), "get-property", std::string(kName), std::string(kPath),
                        std::string(kInterface), "Version"});
    ASSERT_TRUE(version->succeeded()) << version->report();
    EXPECT_EQ(version->out(), "s \"1.2.3\"\n");
    auto answer = run({busctl, "--address=" + bus.address(), "get-property", std::string(kName), std::string(kPath),
                       std::string(kInterface), "Answer", "Version"});
    ASSERT_TRUE(answer->succeeded()) << answer->report();
    EXPECT_EQ(answer->out(), "i 42\ns \"1.2.3\"\n");
}

// busctl prints an error's message, not its name ("Call failed: %s" with sd_bus_error.message).
TEST_F(DebianClientsTest, BusctlCallOfAnUnknownMethodFails) {
    REQUIRE_PROGRAM(busctl, "busctl", "systemd");
    auto call = run({busctl, "--address=" + bus.address(), "call", std::string(kName), std::string(kPath),
                     std::string(kInterface), "Nope"});
    EXPECT_FALSE(call->succeeded()) << call->report();
    EXPECT_TRUE(call->finished()) << call->report();
    EXPECT_EQ(call->out(), "");
    EXPECT_TRUE(contains(call->err(), "Call failed: Unknown method 'Nope' or interface 'org.example.Demo'."))
        << call->report();

    // An unknown destination: the bus's ServiceUnknown, whose text differs between daemons.
    auto unknown = run({busctl, "--address=" + bus.address(), "call", "org.example.Nobody", "/", "org.example.Nobody",
                        "Hello"});
    EXPECT_FALSE(unknown->succeeded()) << unknown->report();
    EXPECT_TRUE(unknown->finished()) << unknown->report();
    EXPECT_TRUE(contains(unknown->err(), "Call failed: ")) << unknown->report();
    EXPECT_TRUE(contains(unknown->err(), "org.example.Nobody")) << unknown->report();
}

// ---- dbus-send (dbus-bin) ----

TEST_F(DebianClientsTest, DbusSendCallPrintsTheReply) {
    REQUIRE_PROGRAM(dbus_send, "dbus-send", "dbus-bin");
    auto add = run({dbus_send, "--bus=" + bus.address(), "--print-reply", "--dest=org.example.Demo",
                    std::string(kPath), "org.example.Demo.Add", "int32:40", "int32:2"});
    ASSERT_TRUE(add->succeeded()) << add->report();
    EXPECT_TRUE(add->out().starts_with("method return time=")) << add->report();
    EXPECT_TRUE(contains(add->out(), " sender=" + service->unique_name() + " -> destination=:")) << add->report();
    EXPECT_TRUE(add->out().ends_with(" reply_serial=2\n   int32 42\n")) << add->report();

    auto greet = run({dbus_send, "--bus=" + bus.address(), "--print-reply=literal", "--dest=org.example.Demo",
                      std::string(kPath), "org.example.Demo.Greet", "string:dbus-send"});
    ASSERT_TRUE(greet->succeeded()) << greet->report();
    EXPECT_EQ(greet->out(), "   Hello, dbus-send!");  // literal: no newline

    auto get = run({dbus_send, "--bus=" + bus.address(), "--print-reply", "--dest=org.example.Demo",
                    std::string(kPath), "org.freedesktop.DBus.Properties.Get", "string:org.example.Demo",
                    "string:Answer"});
    ASSERT_TRUE(get->succeeded()) << get->report();
    EXPECT_TRUE(get->out().ends_with("\n   variant       int32 42\n")) << get->report();
    EXPECT_EQ(calls, 2);
}

TEST_F(DebianClientsTest, DbusSendErrorReply) {
    REQUIRE_PROGRAM(dbus_send, "dbus-send", "dbus-bin");
    auto nope = run({dbus_send, "--bus=" + bus.address(), "--print-reply", "--dest=org.example.Demo",
                     std::string(kPath), "org.example.Demo.Nope"});
    EXPECT_TRUE(nope->exited_with(1)) << nope->report();
    EXPECT_EQ(nope->err(),
              "Error org.freedesktop.DBus.Error.UnknownMethod: Unknown method 'Nope' or interface 'org.example.Demo'.\n");

    auto bad_args = run({dbus_send, "--bus=" + bus.address(), "--print-reply", "--dest=org.example.Demo",
                         std::string(kPath), "org.example.Demo.Add", "string:forty"});
    EXPECT_TRUE(bad_args->exited_with(1)) << bad_args->report();
    EXPECT_TRUE(bad_args->err().starts_with("Error org.freedesktop.DBus.Error.InvalidArgs: ")) << bad_args->report();

    auto nobody = run({dbus_send, "--bus=" + bus.address(), "--print-reply", "--dest=org.example.Nobody", "/",
                       "org.example.Nobody.Hello"});
    EXPECT_TRUE(nobody->exited_with(1)) << nobody->report();
    EXPECT_TRUE(nobody->err().starts_with("Error org.freedesktop.DBus.Error.ServiceUnknown: ")) << nobody->report();
    EXPECT_EQ(calls, 0);
}

TEST_F(DebianClientsTest, DbusSendSignalReachesASubscriber) {
    REQUIRE_PROGRAM(dbus_send, "dbus-send", "dbus-bin");
    auto send = run({dbus_send, "--bus=" + bus.address(), "--type=signal", "/org/example/sender",
                     "org.example.Demo.Ping", "string:from dbus-send"});
    ASSERT_TRUE(send->succeeded()) << send->report();
    EXPECT_EQ(send->out(), "");
    ASSERT_TRUE(wait_for_ping()) << "the subscriber received no Ping";
    ASSERT_EQ(pings.size(), 1u);
    EXPECT_EQ(pings[0].message, "from dbus-send");
    EXPECT_EQ(pings[0].path, "/org/example/sender");
    EXPECT_TRUE(pings[0].sender.starts_with(":")) << pings[0].sender;
}

TEST_F(DebianClientsTest, DbusSendListNames) {
    REQUIRE_PROGRAM(dbus_send, "dbus-send", "dbus-bin");
    auto list = run({dbus_send, "--bus=" + bus.address(), "--print-reply", "--dest=org.freedesktop.DBus",
                     "/org/freedesktop/DBus", "org.freedesktop.DBus.ListNames"});
    ASSERT_TRUE(list->succeeded()) << list->report();
    EXPECT_TRUE(contains(list->out(), "\n   array [\n")) << list->report();
    for (const std::string& name : {std::string("org.freedesktop.DBus"), std::string(kName), service->unique_name(),
                                    subscriber->unique_name()}) {
        EXPECT_TRUE(contains(list->out(), "\n      string \"" + name + "\"\n")) << name << "\n" << list->report();
    }
}

// ---- busctl monitor and busctl capture (systemd): BecomeMonitor ----

TEST_F(DebianClientsTest, BusctlMonitorSeesASignal) {
    REQUIRE_PROGRAM(busctl, "busctl", "systemd");
    ChildProcess monitor({busctl, "--address=" + bus.address(), "monitor"}, client_environment(bus.address()));
    // busctl says so on stderr once BecomeMonitor has succeeded.
    ASSERT_TRUE(pump([&] { return contains(monitor.err(), "Monitoring bus message stream."); }, {&monitor}))
        << monitor.report();
    emit_ping("to busctl monitor");
    ASSERT_TRUE(wait_for_ping({&monitor}));
    const bool seen = pump([&] { return contains(monitor.out(), "STRING \"to busctl monitor\";"); }, {&monitor});
    ASSERT_TRUE(seen) << monitor.report();
    EXPECT_TRUE(contains(monitor.out(), "Type=signal")) << monitor.report();
    EXPECT_TRUE(contains(monitor.out(), "Sender=" + service->unique_name() + "  Path=/org/example/demo  "
                                         "Interface=org.example.Demo  Member=Ping")) << monitor.report();
    monitor.send_signal(SIGTERM);
    EXPECT_TRUE(pump([&] { return monitor.finished(); }, {&monitor})) << monitor.report();
}

TEST_F(DebianClientsTest, BusctlCaptureWritesAPcapngStreamWithTheSignal) {
    REQUIRE_PROGRAM(busctl, "busctl", "systemd");
    ChildProcess capture({busctl, "--address=" + bus.address(), "capture"}, client_environment(bus.address()));
    ASSERT_TRUE(pump([&] { return contains(capture.err(), "Monitoring bus message stream."); }, {&capture}))
        << capture.report();
    emit_ping("to busctl capture");
    ASSERT_TRUE(wait_for_ping({&capture}));
    ASSERT_TRUE(pump([&] { return contains(capture.out(), "to busctl capture"); }, {&capture})) << capture.report();
    // A pcapng section header block, and the captured message's bytes as the bus sent them.
    ASSERT_GE(capture.out().size(), 4u);
    EXPECT_EQ(capture.out().substr(0, 4), std::string("\x0a\x0d\x0d\x0a", 4));
    EXPECT_TRUE(contains(capture.out(), "org.example.Demo"));
    capture.send_signal(SIGTERM);
    EXPECT_TRUE(pump([&] { return capture.finished(); }, {&capture})) << capture.report();
}

// ---- dbus-monitor (dbus-bin): BecomeMonitor ----

TEST_F(DebianClientsTest, DbusMonitorSeesASignalAndACall) {
    REQUIRE_PROGRAM(dbus_monitor, "dbus-monitor", "dbus-bin");
    REQUIRE_PROGRAM(dbus_send, "dbus-send", "dbus-bin");
    ChildProcess monitor({dbus_monitor, "--address", bus.address()}, client_environment(bus.address()));
    // Becoming a monitor takes the monitor's unique name away: NameLost is the proof that it monitors.
    const bool monitoring = pump([&] { return contains(monitor.out(), "member=NameLost\n"); }, {&monitor});
    ASSERT_TRUE(monitoring) << "dbus-monitor never became a monitor: " << monitor.report();

    emit_ping("to the monitor");
    ASSERT_TRUE(wait_for_ping({&monitor}));
    ChildProcess add({dbus_send, "--bus=" + bus.address(), "--print-reply", "--dest=org.example.Demo",
                      std::string(kPath), "org.example.Demo.Add", "int32:20", "int32:22"},
                     client_environment(bus.address()));
    const std::string signal_line = " sender=" + service->unique_name() +
                                    " -> destination=(null destination) serial=";
    const std::string signal_body =
        " path=/org/example/demo; interface=org.example.Demo; member=Ping\n   string \"to the monitor\"\n";
    const std::string call_body =
        " -> destination=org.example.Demo serial=2 path=/org/example/demo; interface=org.example.Demo; "
        "member=Add\n   int32 20\n   int32 22\n";
    const std::string return_line = "method return time=";
    const std::string return_sender = " sender=" + service->unique_name() + " -> destination=:";
    const bool seen = pump(
        [&] {
            return add.finished() && contains(monitor.out(), signal_body) && contains(monitor.out(), call_body) &&
                   contains(monitor.out(), "reply_serial=2\n   int32 42\n");
        },
        {&monitor, &add});
    EXPECT_TRUE(add.succeeded()) << add.report();
    ASSERT_TRUE(seen) << monitor.report();
    const std::string& out = monitor.out();
    EXPECT_TRUE(contains(out, "signal time=")) << monitor.report();
    EXPECT_TRUE(contains(out, signal_line)) << monitor.report();
    EXPECT_TRUE(contains(out, "method call time=")) << monitor.report();
    EXPECT_TRUE(contains(out, return_sender)) << monitor.report();
    // The order the bus handled them in: the signal, then the call, then its reply.
    EXPECT_LT(out.find(signal_body), out.find(call_body)) << monitor.report();
    EXPECT_LT(out.find(call_body), out.find("reply_serial=2\n   int32 42\n")) << monitor.report();
    EXPECT_EQ(calls, 1);

    monitor.send_signal(SIGTERM);
    EXPECT_TRUE(pump([&] { return monitor.finished(); }, {&monitor})) << monitor.report();
}

// Monitors see a new connection's Hello call with the name it was given, then its reply; and the NameLost
// a departing connection is sent.
TEST_F(DebianClientsTest, DbusMonitorSeesHello) {
    REQUIRE_PROGRAM(dbus_monitor, "dbus-monitor", "dbus-bin");
    REQUIRE_PROGRAM(dbus_send, "dbus-send", "dbus-bin");
    ChildProcess monitor({dbus_monitor, "--address", bus.address()}, client_environment(bus.address()));
    ASSERT_TRUE(pump([&] { return contains(monitor.out(), "member=NameLost\n"); }, {&monitor})) << monitor.report();
    auto add = run({dbus_send, "--bus=" + bus.address(), "--print-reply", "--dest=org.example.Demo",
                    std::string(kPath), "org.example.Demo.Add", "int32:20", "int32:22"});
    EXPECT_TRUE(add->succeeded()) << add->report();
    // The monitor gets messages in the order the bus handled them: once the reply is there, so is Hello.
    ASSERT_TRUE(pump([&] { return contains(monitor.out(), "reply_serial=2\n   int32 42\n"); }, {&monitor}))
        << monitor.report();
    const std::string hello =
        " -> destination=org.freedesktop.DBus serial=1 path=/org/freedesktop/DBus; interface=org.freedesktop.DBus; "
        "member=Hello\n";
    EXPECT_TRUE(contains(monitor.out(), hello)) << monitor.report();
    EXPECT_LT(monitor.out().find(hello), monitor.out().find("member=Add\n")) << monitor.report();
}

// ---- gdbus (libglib2.0-bin) ----

TEST_F(DebianClientsTest, GdbusCall) {
    REQUIRE_PROGRAM(gdbus, "gdbus", "libglib2.0-bin");
    auto add = run({gdbus, "call", "--address", bus.address(), "--dest", std::string(kName), "--object-path",
                    std::string(kPath), "--method", "org.example.Demo.Add", "40", "2"});
    ASSERT_TRUE(add->succeeded()) << add->report();
    EXPECT_EQ(add->out(), "(42,)\n");
    auto greet = run({gdbus, "call", "--address", bus.address(), "--dest", std::string(kName), "--object-path",
                      std::string(kPath), "--method", "org.example.Demo.Greet", "gdbus"});
    ASSERT_TRUE(greet->succeeded()) << greet->report();
    EXPECT_EQ(greet->out(), "('Hello, gdbus!',)\n");
    auto get = run({gdbus, "call", "--address", bus.address(), "--dest", std::string(kName), "--object-path",
                    std::string(kPath), "--method", "org.freedesktop.DBus.Properties.Get", "org.example.Demo",
                    "Version"});
    ASSERT_TRUE(get->succeeded()) << get->report();
    EXPECT_EQ(get->out(), "(<'1.2.3'>,)\n");
    EXPECT_EQ(calls, 2);

    auto nope = run({gdbus, "call", "--address", bus.address(), "--dest", std::string(kName), "--object-path",
                     std::string(kPath), "--method", "org.example.Demo.Nope"});
    EXPECT_TRUE(nope->exited_with(1)) << nope->report();
    EXPECT_TRUE(contains(nope->err(), "GDBus.Error:org.freedesktop.DBus.Error.UnknownMethod: Unknown method 'Nope'"))
        << nope->report();
}

TEST_F(DebianClientsTest, GdbusIntrospect) {
    REQUIRE_PROGRAM(gdbus, "gdbus", "libglib2.0-bin");
    auto introspect = run({gdbus, "introspect", "--address", bus.address(), "--dest", std::string(kName),
                           "--object-path", std::string(kPath)});
    ASSERT_TRUE(introspect->succeeded()) << introspect->report();
    const std::string& out = introspect->out();
    EXPECT_TRUE(out.starts_with("node /org/example/demo {\n")) << introspect->report();
    for (const char* part : {"  interface org.example.Demo {\n", "Add(in  i a,\n", "in  i b,\n", "out i sum);\n",
                             "Greet(in  s name,\n", "out s greeting);\n", "Ping(s message);\n",
                             "readonly s Version = '1.2.3';\n", "readonly i Answer = 42;\n",
                             "  interface org.freedesktop.DBus.Properties {\n",
                             "  interface org.freedesktop.DBus.Introspectable {\n"}) {
        EXPECT_TRUE(contains(out, part)) << "missing: " << part << "\n" << introspect->report();
    }

    auto root = run({gdbus, "introspect", "--address", bus.address(), "--dest", std::string(kName), "--object-path",
                     "/", "--recurse", "--only-properties"});
    ASSERT_TRUE(root->succeeded()) << root->report();
    EXPECT_TRUE(contains(root->out(), "node /org/example/demo {\n")) << root->report();
}

// `gdbus emit --address` opens a peer-to-peer connection (glib 2.74 does not say Hello on it, so either bus
// drops the signal: the sender is not yet active); `--session` finds the private bus in
// DBUS_SESSION_BUS_ADDRESS and says Hello.
TEST_F(DebianClientsTest, GdbusEmitReachesASubscriber) {
    REQUIRE_PROGRAM(gdbus, "gdbus", "libglib2.0-bin");
    auto emit = run({gdbus, "emit", "--session", "--object-path", "/org/example/gdbus", "--signal",
                     "org.example.Demo.Ping", "'from gdbus'"});
    ASSERT_TRUE(emit->succeeded()) << emit->report();
    ASSERT_TRUE(wait_for_ping()) << "the subscriber received no Ping";
    ASSERT_EQ(pings.size(), 1u);
    EXPECT_EQ(pings[0].message, "from gdbus");
    EXPECT_EQ(pings[0].path, "/org/example/gdbus");
}

// ---- python3-dbus ----

constexpr const char* kPythonClient = R"(import sys
try:
    import dbus
except ImportError:
    print("no module dbus in", sys.executable)
    sys.exit(77)
bus = dbus.bus.BusConnection(sys.argv[1])
print("unique", bus.get_unique_name())
demo = bus.get_object("org.example.Demo", "/org/example/demo")
print("Add", int(demo.Add(dbus.Int32(40), dbus.Int32(2), dbus_interface="org.example.Demo")))
print("Greet", str(demo.Greet("python", dbus_interface="org.example.Demo")))
properties = dbus.Interface(demo, "org.freedesktop.DBus.Properties")
print("Version", str(properties.Get("org.example.Demo", "Version")))
print("Answer", int(properties.Get("org.example.Demo", "Answer")))
print("RequestName", bus.request_name("org.example.Python", dbus.bus.NAME_FLAG_DO_NOT_QUEUE))
print("owner", bus.get_name_owner("org.example.Python") == bus.get_unique_name())
print("again", bus.request_name("org.example.Python", dbus.bus.NAME_FLAG_DO_NOT_QUEUE))
try:
    demo.Nope(dbus_interface="org.example.Demo")
except dbus.exceptions.DBusException as e:
    print("Nope", e.get_dbus_name())
print("done")
)";

TEST_F(DebianClientsTest, Python3Dbus) {
    const std::string python = find_python();
    if (python.empty()) GTEST_SKIP() << "python3 is not installed (Debian packages python3, python3-dbus)";
    auto client = run({python, "-c", kPythonClient, bus.address()});
    if (client->exited_with(77)) GTEST_SKIP() << "python3-dbus is not installed: " << client->out();
    ASSERT_TRUE(client->succeeded()) << client->report();
    std::istringstream out(client->out());
    std::string line, unique;
    ASSERT_TRUE(std::getline(out, line));
    ASSERT_TRUE(line.starts_with("unique :")) << client->report();
    unique = line.substr(7);
    std::string rest((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
    EXPECT_EQ(rest,
              "Add 42\n"
              "Greet Hello, python!\n"
              "Version 1.2.3\n"
              "Answer 42\n"
              "RequestName 1\n"  // DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
              "owner True\n"
              "again 4\n"  // DBUS_REQUEST_NAME_REPLY_ALREADY_OWNER
              "Nope org.freedesktop.DBus.Error.UnknownMethod\n"
              "done\n")
        << client->report();
    EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace afbus
