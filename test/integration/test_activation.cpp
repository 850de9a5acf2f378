// Activation from .service files (Exec= spawned by the bus), checked the same way against dbus-daemon
// and afbus-daemon (AFBUS_TEST_DAEMON): auto-start, StartServiceByName, the activation environment,
// every way a start can fail, ListActivatableNames and ReloadConfig. systemd activation is covered by
// the reference suite's test-sd-activation and test-monitor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "afbus/connection.hpp"
#include "afbus/types.hpp"
#include "support/raw_peer.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

using namespace std::chrono_literals;
using test::connect;
using test::driver_call;
using test::TestBus;
using test::TestBusOptions;

constexpr std::string_view kBusName = "org.freedesktop.DBus";

std::string service_program() {
    const char* path = std::getenv("ACTIVATABLE_SERVICE");
    return path ? path : "";
}

// A .service file in the bus's service directory, for `name`, running the test service in `mode`.
std::pair<std::string, std::string> service_file(const std::string& name, const std::string& mode = "",
                                                 const std::string& exec = "") {
    const std::string command = exec.empty() ? service_program() + " " + name + (mode.empty() ? "" : " " + mode) : exec;
    return {"services/" + name + ".service", "[D-BUS Service]\nName=" + name + "\nExec=" + command + "\n"};
}

TestBusOptions activation_bus(std::vector<std::pair<std::string, std::string>> files, std::string limits = "") {
    TestBusOptions options;
    options.extra_config = "<servicedir>@DIR@/services</servicedir>\n" + limits;
    options.files = std::move(files);
    return options;
}

Message test_call(std::string_view destination, std::string_view member, const std::string& argument,
                  bool no_auto_start = false) {
    auto builder = MessageBuilder::method_call(destination, "/org/afbus/Test", "org.afbus.Test", member);
    builder.no_auto_start(no_auto_start);
    append(builder, argument);
    return builder.build().value();
}

Expected<std::uint32_t, Error> start_service(Connection& c, std::string_view name) {
    auto builder = MessageBuilder::method_call(kBusName, "/org/freedesktop/DBus", "org.freedesktop.DBus", "StartServiceByName");
    append(builder, std::string(name), std::uint32_t{0});
    auto reply = c.call(builder.build().value(), 20s);
    if (!reply) return Unexpected(reply.error());
    return std::get<0>(read_all<std::uint32_t>(*reply).value());
}

std::string echo(Connection& c, std::string_view destination, const std::string& text) {
    auto reply = c.call(test_call(destination, "Echo", text), 20s);
    if (!reply) return "error: " + reply.error().name + ": " + reply.error().message;
    return std::get<0>(read_all<std::string>(*reply).value());
}

// The error a call to `name` gets ("(no error)" when it is answered).
std::string error_of(Connection& c, std::string_view name, bool no_auto_start = false) {
    auto reply = c.call(test_call(name, "Echo", "x", no_auto_start), 20s);
    return reply ? std::string("(no error)") : reply.error().name;
}

Expected<Message, Error> update_activation_environment(Connection& c, const std::map<std::string, std::string>& variables) {
    auto update = MessageBuilder::method_call(kBusName, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                              "UpdateActivationEnvironment");
    append(update, variables);
    return c.call(update.build().value());
}

class Activation : public testing::Test {
protected:
    void SetUp() override {
        if (service_program().empty()) GTEST_SKIP() << "ACTIVATABLE_SERVICE is not set";
    }
    // Stops the services the test started (they would otherwise leave with the bus).
    void quit(Connection& c, std::string_view name) {
        auto builder = MessageBuilder::method_call(name, "/org/afbus/Test", "org.afbus.Test", "Quit");
        builder.no_auto_start();
        (void)c.call(builder.build().value(), 5s);
    }
};

TEST_F(Activation, AMethodCallStartsTheServiceAndIsDelivered) {
    TestBus bus(activation_bus({service_file("org.afbus.Activated")}));
    auto c = connect(bus);
    ASSERT_TRUE(c);
    EXPECT_EQ(echo(*c, "org.afbus.Activated", "hello"), "hello");
    // Now running: the next call goes straight to it, and StartServiceByName says so.
    EXPECT_EQ(echo(*c, "org.afbus.Activated", "again"), "again");
    EXPECT_EQ(*start_service(*c, "org.afbus.Activated"), 2u);  // DBUS_START_REPLY_ALREADY_RUNNING
    quit(*c, "org.afbus.Activated");
}

TEST_F(Activation, MessagesQueuedDuringTheStartArriveInOrder) {
    TestBus bus(activation_bus({service_file("org.afbus.Queued")}));
    auto c = connect(bus);
    ASSERT_TRUE(c);
    std::vector<std::string> replies;
    std::vector<Slot> calls;
    for (const char* text : {"one", "two", "three"}) {
        auto slot = c->call_async(test_call("org.afbus.Queued", "Echo", text), [&replies](Expected<Message, Error> reply) {
            replies.push_back(reply ? std::get<0>(read_all<std::string>(*reply).value()) : "error: " + reply.error().name);
        });
        ASSERT_TRUE(slot);
        calls.push_back(std::move(*slot));
    }
    ASSERT_TRUE(*c->run_until([&] { return replies.size() == 3; }, 20s));
    EXPECT_EQ(replies, (std::vector<std::string>{"one", "two", "three"}));
    quit(*c, "org.afbus.Queued");
}

TEST_F(Activation, StartServiceByNameRepliesOnceTheNameIsOwned) {
    TestBus bus(activation_bus({service_file("org.afbus.Started")}));
    auto c = connect(bus);
    ASSERT_TRUE(c);
    EXPECT_EQ(*start_service(*c, "org.afbus.Started"), 1u);  // DBUS_START_REPLY_SUCCESS
    auto reply = c->call(driver_call("NameHasOwner", "org.afbus.Started"));
    ASSERT_TRUE(reply);
    EXPECT_TRUE(std::get<0>(read_all<bool>(*reply).value()));
    EXPECT_EQ(*start_service(*c, "org.afbus.Started"), 2u);
    quit(*c, "org.afbus.Started");
}

TEST_F(Activation, AServiceThatForksIsStillWaitedFor) {
    TestBus bus(activation_bus({service_file("org.afbus.Forking", "fork")}));
    auto c = connect(bus);
    ASSERT_TRUE(c);
    EXPECT_EQ(echo(*c, "org.afbus.Forking", "forked"), "forked");
    quit(*c, "org.afbus.Forking");
}

TEST_F(Activation, TheServiceGetsTheActivationEnvironment) {
    TestBus bus(activation_bus({service_file("org.afbus.Env1"), service_file("org.afbus.Env2")}));
    auto c = connect(bus);
    ASSERT_TRUE(c);
    auto getenv = [&c](std::string_view service, const std::string& variable) {
        auto reply = c->call(test_call(service, "Getenv", variable), 20s);
        return reply ? std::get<0>(read_all<std::string>(*reply).value()) : "error: " + reply.error().name;
    };
    EXPECT_EQ(getenv("org.afbus.Env1", "DBUS_STARTER_BUS_TYPE"), "session");
    // The bus's address: its unix listener, after an afbus: one in kernel mode (AFBUS_TEST_KERNEL_MODE),
    // which libafbus services take and other libraries skip.
    const std::string starter_address = getenv("org.afbus.Env1", "DBUS_STARTER_ADDRESS");
    EXPECT_TRUE(starter_address.starts_with("unix:") || starter_address.find(";unix:") != std::string::npos)
        << starter_address;
    EXPECT_EQ(getenv("org.afbus.Env1", "DBUS_SESSION_BUS_ADDRESS"), getenv("org.afbus.Env1", "DBUS_STARTER_ADDRESS"));
    EXPECT_EQ(getenv("org.afbus.Env1", "AFBUS_ACTIVATION_TEST"), "");

    // Variables set with UpdateActivationEnvironment reach services started afterwards.
    ASSERT_TRUE(update_activation_environment(*c, {{"AFBUS_ACTIVATION_TEST", "42"}}));
    EXPECT_EQ(getenv("org.afbus.Env2", "AFBUS_ACTIVATION_TEST"), "42");
    quit(*c, "org.afbus.Env1");
    quit(*c, "org.afbus.Env2");
}

TEST_F(Activation, EveryWayAStartFailsIsAnswered) {
    TestBus bus(activation_bus({service_file("org.afbus.Missing", "", "/nonexistent/afbus-service"),
                                service_file("org.afbus.Exits", "exit:3"), service_file("org.afbus.Killed", "kill"),
                                service_file("org.afbus.Unquoted", "", "/bin/true 'unclosed"),
                                service_file("org.afbus.Idle", "idle")},
                               // long enough for the first start of the service binary in the
                               // kernel-mode guest (TCG emulation, the binary read over 9p)
                               "<limit name=\"service_start_timeout\">2000</limit>\n"));
    auto c = connect(bus);
    ASSERT_TRUE(c);
    EXPECT_EQ(error_of(*c, "org.afbus.Missing"), "org.freedesktop.DBus.Error.Spawn.ExecFailed");
    EXPECT_EQ(error_of(*c, "org.afbus.Exits"), "org.freedesktop.DBus.Error.Spawn.ChildExited");
    EXPECT_EQ(error_of(*c, "org.afbus.Killed"), "org.freedesktop.DBus.Error.Spawn.ChildSignaled");
    EXPECT_EQ(error_of(*c, "org.afbus.Unquoted"), "org.freedesktop.DBus.Error.InvalidArgs");
    EXPECT_EQ(error_of(*c, "org.afbus.Idle"), "org.freedesktop.DBus.Error.TimedOut");
    EXPECT_EQ(error_of(*c, "org.afbus.Nobody"), "org.freedesktop.DBus.Error.ServiceUnknown");
    EXPECT_EQ(error_of(*c, "org.afbus.Exits", true), "org.freedesktop.DBus.Error.NameHasNoOwner");
    auto started = start_service(*c, "org.afbus.Nobody");
    ASSERT_FALSE(started);
    EXPECT_EQ(started.error().name, "org.freedesktop.DBus.Error.ServiceUnknown");
    started = start_service(*c, "org.afbus.Exits");
    ASSERT_FALSE(started);
    EXPECT_EQ(started.error().name, "org.freedesktop.DBus.Error.Spawn.ChildExited");
}

// With <servicehelper> (the system bus's setuid dbus-daemon-launch-helper), the bus runs the helper with
// the service's name instead of Exec=, and a service file must name its User=. The helper's exit codes
// are dbus-daemon's. Here the helper is a script.
TEST_F(Activation, TheServiceHelperStartsServicesByName) {
    const std::string helper = "#!/bin/sh\n"
                               "case \"$1\" in\n"
                               "  org.afbus.Helped) exec " + service_program() + " \"$1\" ;;\n"
                               "  org.afbus.NotFound) exit 6 ;;\n"
                               "esac\n"
                               "exit 1\n";
    auto with_user = [](std::pair<std::string, std::string> file) {
        file.second += "User=root\n";
        return file;
    };
    TestBus bus(activation_bus({{"helper.sh", helper}, with_user(service_file("org.afbus.Helped", "", "/nonexistent")),
                                with_user(service_file("org.afbus.NotFound")), service_file("org.afbus.NoUser")},
                               "<servicehelper>/bin/sh @DIR@/helper.sh</servicehelper>\n"));
    auto c = connect(bus);
    ASSERT_TRUE(c);
    // The Exec= line is not what runs: the helper is.
    EXPECT_EQ(echo(*c, "org.afbus.Helped", "helped"), "helped");
    EXPECT_EQ(error_of(*c, "org.afbus.NotFound"), "org.freedesktop.DBus.Error.Spawn.ServiceNotFound");
    EXPECT_EQ(error_of(*c, "org.afbus.NoUser"), "org.freedesktop.DBus.Error.Spawn.FileInvalid");
    // The helper must not run services with a caller's environment.
    auto updated = update_activation_environment(*c, {{"AFBUS_ACTIVATION_TEST", "42"}});
    ASSERT_FALSE(updated);
    EXPECT_EQ(updated.error().name, "org.freedesktop.DBus.Error.AccessDenied");
    quit(*c, "org.afbus.Helped");
}

TEST_F(Activation, ReloadConfigPicksUpNewServiceFiles) {
    TestBus bus(activation_bus({service_file("org.afbus.Early")}));
    auto c = connect(bus);
    ASSERT_TRUE(c);
    auto activatable = [&c] {
        auto reply = c->call(driver_call("ListActivatableNames"));
        auto names = std::get<0>(read_all<std::vector<std::string>>(*reply).value());
        return std::set<std::string>(names.begin(), names.end());
    };
    EXPECT_EQ(activatable(), (std::set<std::string>{std::string(kBusName), "org.afbus.Early"}));

    int changed = 0;
    auto sub = c->subscribe("type='signal',sender='org.freedesktop.DBus',member='ActivatableServicesChanged'",
                            [&changed](const Message&) { ++changed; });
    ASSERT_TRUE(sub);
    const auto [path, content] = service_file("org.afbus.Late");
    std::ofstream(std::filesystem::path(bus.directory()) / path) << content;
    ASSERT_TRUE(c->call(driver_call("ReloadConfig")));
    ASSERT_TRUE(*c->run_until([&] { return changed > 0; }, 10s));
    EXPECT_EQ(activatable(), (std::set<std::string>{std::string(kBusName), "org.afbus.Early", "org.afbus.Late"}));
    EXPECT_EQ(echo(*c, "org.afbus.Late", "late"), "late");
    quit(*c, "org.afbus.Late");
}

// Service directories are watched (inotify), as dbus-daemon watches them: a file dropped in makes the bus
// reread its configuration by itself.
TEST_F(Activation, AServiceFileDroppedIntoTheDirectoryIsPickedUpWithoutAReload) {
    TestBus bus(activation_bus({service_file("org.afbus.Present")}));
    auto c = connect(bus);
    ASSERT_TRUE(c);
    int changed = 0;
    auto sub = c->subscribe("type='signal',sender='org.freedesktop.DBus',member='ActivatableServicesChanged'",
                            [&changed](const Message&) { ++changed; });
    ASSERT_TRUE(sub);
    const auto [path, content] = service_file("org.afbus.Dropped");
    // Written outside the directory and renamed into place, as package managers install files: the
    // rename is the one change the bus sees, so its ActivatableServicesChanged is the one to wait for.
    const auto staged = std::filesystem::path(bus.directory()) / "org.afbus.Dropped.staged";
    std::ofstream(staged) << content;
    std::filesystem::rename(staged, std::filesystem::path(bus.directory()) / path);
    ASSERT_TRUE(*c->run_until([&] { return changed > 0; }, 10s));
    auto reply = c->call(driver_call("ListActivatableNames"));
    ASSERT_TRUE(reply);
    const auto names = std::get<0>(read_all<std::vector<std::string>>(*reply).value());
    EXPECT_NE(std::find(names.begin(), names.end(), "org.afbus.Dropped"), names.end());
    EXPECT_EQ(echo(*c, "org.afbus.Dropped", "dropped"), "dropped");
    quit(*c, "org.afbus.Dropped");
}

}  // namespace
}  // namespace afbus
