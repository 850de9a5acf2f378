// afbusctl (tools/afbusctl) against a private bus, side by side with busctl where busctl has the command:
// the same command line, on the same bus, against the same libafbus service in this process. call and
// get-property must print byte for byte what busctl prints; list and introspect are compared field by
// field (the two tools' own connections differ); bad input must fail before anything is sent.
//
// Everything runs on one thread: while a tool runs, pump() serves the service connection and watches the
// tool's pipes and pidfd, so there are no sleeps. The tools get a scrubbed environment in which both bus
// addresses name the private bus. Without busctl (systemd) the comparisons skip; afbusctl's own checks
// still run.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/types.hpp"
#include "support/child_process.hpp"
#include "support/serve_until.hpp"
#include "support/pcapng_reader.hpp"
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

constexpr auto kTimeout = 20s;
constexpr std::string_view kName = "org.example.Afbusctl";
constexpr std::string_view kPath = "/org/example/echo";
constexpr std::string_view kChildPath = "/org/example/echo/child";
constexpr std::string_view kInterface = "org.example.Echo";

std::string afbusctl_path() {
    const char* path = std::getenv("AFBUSCTL");
    return path != nullptr ? path : "";
}

std::vector<std::string> tool_environment(const std::string& bus_address, std::vector<std::string> extra = {}) {
    std::vector<std::string> set = {"DBUS_SESSION_BUS_ADDRESS=" + bus_address,
                                    "DBUS_SYSTEM_BUS_ADDRESS=" + bus_address, "SYSTEMD_PAGER=cat",
                                    "SYSTEMD_COLORS=0", "LC_ALL=C.UTF-8"};
    set.insert(set.end(), extra.begin(), extra.end());
    return child_environment(set, {"DISPLAY="});
}

// Methods that return their arguments, one per signature the comparisons use.
const std::vector<std::pair<std::string, std::string>> kEchoMethods = {
    {"String", "s"},          {"Strings", "as"},     {"Dict", "a{sv}"},  {"Variant", "v"},
    {"Struct", "(is)"},       {"Basics", "ybnqiuxtdsog"}, {"Nested", "a(sa{sv})"}, {"Doubles", "ad"},
    {"Bytes", "aay"},         {"Mixed", "(is)vas"},  {"Nothing", ""},
};

Interface echo_interface(int& calls, std::string& mode) {
    Interface i{std::string(kInterface), {}, {}, {}};
    for (const auto& [name, signature] : kEchoMethods) {
        std::vector<Argument> in, out;
        for (std::size_t at = 0; at < signature.size();) {
            const std::size_t length = complete_type_length(std::string_view(signature).substr(at));
            in.push_back({"in" + std::to_string(at), signature.substr(at, length)});
            out.push_back({"out" + std::to_string(at), signature.substr(at, length)});
            at += length;
        }
        i.methods.push_back({name, in, out, [&calls](const Message& call, MessageBuilder& reply) -> Expected<void, Error> {
                                 ++calls;
                                 auto values = call.reader().read_all();
                                 if (!values) return Unexpected(make_error(error_names::kInvalidArgs, "unreadable"));
                                 for (const Value& v : *values) reply.append_value(v);
                                 return {};
                             }});
    }
    i.methods.push_back({"Fail", {}, {}, [&calls](const Message&, MessageBuilder&) -> Expected<void, Error> {
                             ++calls;
                             return Unexpected(make_error("org.example.Error.Broken", "It broke as asked."));
                         }});
    i.properties.push_back({"Version", "s", Property::Access::Read, [] { return Variant(std::string("1.2.3")); }, {}});
    // Longer than a terminal line: busctl's introspect prints it whole off a terminal, and so must we.
    i.properties.push_back({"Long", "as", Property::Access::Read,
                            [] { return Variant(std::vector<std::string>(12, "a rather long element")); }, {}});
    i.properties.push_back({"Answer", "i", Property::Access::Read, [] { return Variant(std::int32_t{42}); }, {}});
    i.properties.push_back({"Tags", "as", Property::Access::Read,
                            [] { return Variant(std::vector<std::string>{"a", "b \"quoted\""}); }, {}});
    i.properties.push_back({"Settings", "a{sv}", Property::Access::Read,
                            [] {
                                return Variant(std::map<std::string, Variant>{{"depth", Variant(std::uint32_t{3})},
                                                                              {"name", Variant(std::string("x"))}});
                            },
                            {}});
    i.properties.push_back({"Mode", "s", Property::Access::ReadWrite, [&mode] { return Variant(mode); },
                            [&mode](const Variant& v) -> Expected<void, Error> {
                                auto s = v.get<std::string>();
                                if (!s) return Unexpected(make_error(error_names::kInvalidArgs, "Mode is a string"));
                                mode = *s;
                                return {};
                            }});
    i.signals.push_back({"Ping", {{"message", "s"}}});
    return i;
}

Interface child_interface() {
    Interface i{"org.example.Child", {}, {}, {}};
    i.properties.push_back({"Depth", "u", Property::Access::Read, [] { return Variant(std::uint32_t{1}); }, {}});
    return i;
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

// A table's rows as words, keyed by the first word.
std::map<std::string, std::vector<std::string>> rows_by_name(const std::string& text) {
    std::map<std::string, std::vector<std::string>> rows;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        std::istringstream words(line);
        std::vector<std::string> row;
        for (std::string w; words >> w;) row.push_back(w);
        if (!row.empty()) rows.emplace(row[0], row);  // the first of equal names (.Ping of Echo, not of Peer)
    }
    return rows;
}

class AfbusctlTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_FALSE(afbusctl.empty()) << "AFBUSCTL is not set (test/meson.build sets it)";
        ASSERT_TRUE(service);
        ASSERT_TRUE(listener);
        auto object = service->export_interface(kPath, echo_interface(calls, mode));
        ASSERT_TRUE(object) << object.error().message;
        object_slot = std::move(*object);
        auto child = service->export_interface(kChildPath, child_interface());
        ASSERT_TRUE(child) << child.error().message;
        child_slot = std::move(*child);
        auto owned = service->request_name(kName, name_flags::kDoNotQueue);
        ASSERT_TRUE(owned) << owned.error().message;
        ASSERT_EQ(*owned, RequestNameReply::PrimaryOwner);
        auto sub = listener->subscribe("type='signal',interface='org.example.Echo'", [this](const Message& m) {
            auto values = m.reader().read_all();
            ASSERT_TRUE(values);
            signals.push_back(std::string(m.member()) + " " +
                              (values->empty() ? std::string() : values->front().to_string()));
        });
        ASSERT_TRUE(sub) << sub.error().message;
        signal_slot = std::move(*sub);
    }

    // Serves the libafbus connections and watches `children` until `done()`; false on timeout.
    bool pump(const std::function<bool()>& done, const std::vector<ChildProcess*>& children,
              std::chrono::milliseconds timeout = kTimeout) {
        Connection* const connections[] = {service.get(), listener.get()};
        return test::serve_until(done, connections, children, timeout);
    }

    std::unique_ptr<ChildProcess> start(std::vector<std::string> argv, std::vector<std::string> environment = {}) {
        return std::make_unique<ChildProcess>(std::move(argv),
                                              environment.empty() ? tool_environment(bus.address()) : environment);
    }

    void finish(ChildProcess& child) {
        if (!pump([&] { return child.finished(); }, {&child})) {
            child.send_signal(SIGKILL);
            ADD_FAILURE() << "the tool did not finish in time: " << child.report();
        }
    }

    std::unique_ptr<ChildProcess> run(std::vector<std::string> argv, std::vector<std::string> environment = {}) {
        auto child = start(std::move(argv), std::move(environment));
        finish(*child);
        return child;
    }

    // afbusctl with `arguments` after --address= of the test bus.
    std::unique_ptr<ChildProcess> ctl(std::vector<std::string> arguments) {
        arguments.insert(arguments.begin(), {afbusctl, "--address=" + bus.address()});
        return run(std::move(arguments));
    }
    std::unique_ptr<ChildProcess> busctl_run(std::vector<std::string> arguments) {
        arguments.insert(arguments.begin(), {busctl, "--address=" + bus.address(), "--no-pager"});
        return run(std::move(arguments));
    }

    // Both tools with the same arguments: same exit status and the same stdout, byte for byte.
    void expect_same_output(const std::vector<std::string>& arguments) {
        auto theirs = busctl_run(arguments);
        auto ours = ctl(arguments);
        std::string command;
        for (const auto& a : arguments) command += " " + a;
        EXPECT_EQ(ours->status(), theirs->status()) << command << "\n" << ours->report() << "\n" << theirs->report();
        EXPECT_EQ(ours->out(), theirs->out()) << command << "\n" << ours->report() << "\n" << theirs->report();
    }

    std::vector<std::string> echo(const std::string& method, std::vector<std::string> words) {
        std::vector<std::string> arguments = {"call", std::string(kName), std::string(kPath), std::string(kInterface), method};
        arguments.insert(arguments.end(), words.begin(), words.end());
        return arguments;
    }

    const std::string afbusctl = afbusctl_path();
    const std::string busctl = find_program("busctl");
    TestBus bus;
    std::unique_ptr<Connection> service = connect(bus);
    std::unique_ptr<Connection> listener = connect(bus);
    int calls = 0;
    std::string mode = "idle";
    Slot object_slot, child_slot, signal_slot;
    std::vector<std::string> signals;  // "Member <first argument>" as the listener received them
};

#define REQUIRE_BUSCTL() \
    if (busctl.empty()) GTEST_SKIP() << "busctl is not installed (Debian package systemd)"

// The inputs of busctl's own documentation and then some: every basic type, arrays, dicts, variants,
// structs, nesting, escapes and UTF-8.
const std::vector<std::pair<std::string, std::vector<std::string>>> kCalls = {
    {"String", {"s", "hello"}},
    {"String", {"s", "he\"l\\lo it's\ttab\nline \xc3\xbc \x01"}},
    {"String", {"s", ""}},
    {"Strings", {"as", "2", "a", "b"}},
    {"Strings", {"as", "0"}},
    {"Dict", {"a{sv}", "2", "key", "s", "val", "k2", "i", "5"}},
    {"Dict", {"a{sv}", "0"}},
    {"Variant", {"v", "s", "hello"}},
    {"Variant", {"v", "(ii)", "1", "2"}},
    {"Struct", {"(is)", "1", "x"}},
    {"Basics", {"--", "ybnqiuxtdsog", "255", "yes", "-2", "0x10", "-4", "010", "-9223372036854775808",
                "18446744073709551615", "1.5", "s", "/a/b", "a{sv}"}},
    {"Nested", {"a(sa{sv})", "1", "x", "1", "k", "v", "as", "1", "z"}},
    {"Doubles", {"ad", "4", "0.1", "1e100", "123456789", "1e-7"}},
    {"Bytes", {"aay", "2", "1", "1", "0"}},
    {"Mixed", {"(is)vas", "7", "seven", "ay", "2", "1", "2", "1", "x"}},
    {"Nothing", {}},
};

TEST_F(AfbusctlTest, CallPrintsWhatBusctlPrints) {
    REQUIRE_BUSCTL();
    for (const auto& [method, words] : kCalls) {
        expect_same_output(echo(method, words));
        auto json = echo(method, words);
        json.insert(json.begin(), "--json=short");
        expect_same_output(json);
        json[0] = "--json=pretty";
        expect_same_output(json);
    }
}

TEST_F(AfbusctlTest, CallPrintsTheReply) {
    auto call = ctl(echo("Mixed", {"(is)vas", "7", "seven", "ay", "2", "1", "2", "1", "x"}));
    ASSERT_TRUE(call->succeeded()) << call->report();
    EXPECT_EQ(call->out(), "(is)vas 7 \"seven\" ay 2 1 2 1 \"x\"\n");
    auto json = ctl({"--json=short", "call", std::string(kName), std::string(kPath), std::string(kInterface), "Dict",
                     "a{sv}", "1", "k", "u", "7"});
    ASSERT_TRUE(json->succeeded()) << json->report();
    EXPECT_EQ(json->out(), "{\"type\":\"a{sv}\",\"data\":[{\"k\":{\"type\":\"u\",\"data\":7}}]}\n");
    auto quiet = ctl({"--quiet", "call", std::string(kName), std::string(kPath), std::string(kInterface), "String", "s", "x"});
    ASSERT_TRUE(quiet->succeeded()) << quiet->report();
    EXPECT_EQ(quiet->out(), "");
    EXPECT_EQ(calls, 3);
}

TEST_F(AfbusctlTest, ErrorRepliesFailAsBusctlFails) {
    auto failed = ctl(echo("Fail", {}));
    EXPECT_TRUE(failed->exited_with(1)) << failed->report();
    EXPECT_EQ(failed->out(), "");
    EXPECT_EQ(failed->err(), "Call failed: It broke as asked.\n");
    auto nobody = ctl({"call", "org.example.Nobody", "/", "org.example.Nobody", "Hello"});
    EXPECT_TRUE(nobody->exited_with(1)) << nobody->report();
    EXPECT_TRUE(contains(nobody->err(), "Call failed: ")) << nobody->report();
    if (busctl.empty()) return;
    auto theirs = busctl_run(echo("Fail", {}));
    EXPECT_EQ(failed->err(), theirs->err());
    EXPECT_EQ(failed->status(), theirs->status());
}

// Bad input: exit status 1, a message that names the value and says why, and nothing sent (the service
// counts only the good call that follows).
TEST_F(AfbusctlTest, BadInputSendsNothing) {
    const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
        {{"q", "x"}, "Failed to parse 'x' as unsigned 16bit integer: Invalid argument (value #1, of type 'q')"},
        {{"as", "2", "a"}, "Too few parameters for signature. (value #3, of type 's')"},
        {{"s", "a", "b"}, "Too many parameters for signature. (value #2 and after are left over)"},
        {{"(is)", "x", "y"}, "Failed to parse 'x' as signed 32bit integer: Invalid argument (value #1, of type 'i')"},
        {{"a{sv}", "1", "k", "y", "256"},
         "Failed to parse '256' as byte (unsigned 8bit integer): Numerical result out of range (value #4, of type 'y')"},
        {{"v", "ii", "1", "2"}, "Invalid variant signature 'ii': not a single complete type. (value #1, of type 'v')"},
        {{"a{", "1"}, "Invalid signature 'a{'."},
        {{"o", "not/a/path"}, "Invalid object path 'not/a/path'. (value #1, of type 'o')"},
        {{"h", "0"}, "UNIX file descriptor not supported as type. (value #1, of type 'h')"},
    };
    for (const auto& [words, message] : bad) {
        auto call = ctl(echo("String", words));
        EXPECT_TRUE(call->exited_with(1)) << call->report();
        EXPECT_EQ(call->out(), "") << call->report();
        EXPECT_EQ(call->err(), message + "\n") << call->report();
    }
    for (const std::vector<std::string>& names :
         {std::vector<std::string>{"call", "not a name", "/", "a.b", "M"}, {"call", "a.b", "nope", "a.b", "M"},
          {"call", "a.b", "/", "nope", "M"}, {"call", "a.b", "/", "a.b", "No-pe"}, {"call", "a.b", "/", "a.b"}}) {
        auto call = ctl(names);
        EXPECT_TRUE(call->exited_with(1)) << call->report();
        EXPECT_FALSE(call->err().empty()) << call->report();
    }
    auto good = ctl(echo("String", {"s", "after"}));
    ASSERT_TRUE(good->succeeded()) << good->report();
    EXPECT_EQ(calls, 1);
}

TEST_F(AfbusctlTest, CallWithoutReplyAndWithoutAutoStart) {
    auto call = ctl({"--expect-reply=no", "call", std::string(kName), std::string(kPath), std::string(kInterface),
                     "String", "s", "fire and forget"});
    ASSERT_TRUE(call->succeeded()) << call->report();
    EXPECT_EQ(call->out(), "");
    EXPECT_TRUE(pump([&] { return calls == 1; }, {})) << "the call never arrived";
    auto no_start = ctl({"--auto-start=no", "--timeout=5", "call", std::string(kName), std::string(kPath),
                         std::string(kInterface), "String", "s", "x"});
    ASSERT_TRUE(no_start->succeeded()) << no_start->report();
    EXPECT_EQ(no_start->out(), "s \"x\"\n");
}

TEST_F(AfbusctlTest, GetPropertyPrintsWhatBusctlPrints) {
    const std::vector<std::string> get = {"get-property", std::string(kName), std::string(kPath), std::string(kInterface)};
    auto all = get;
    all.insert(all.end(), {"Version", "Answer", "Tags", "Settings", "Mode"});
    auto ours = ctl(all);
    ASSERT_TRUE(ours->succeeded()) << ours->report();
    EXPECT_EQ(ours->out(),
              "s \"1.2.3\"\ni 42\nas 2 \"a\" \"b \\\"quoted\\\"\"\na{sv} 2 \"depth\" u 3 \"name\" s \"x\"\ns \"idle\"\n");
    auto missing = ctl({"get-property", std::string(kName), std::string(kPath), std::string(kInterface), "Nope"});
    EXPECT_TRUE(missing->exited_with(1)) << missing->report();
    EXPECT_TRUE(missing->err().starts_with("Failed to get property Nope on interface org.example.Echo: "))
        << missing->report();
    REQUIRE_BUSCTL();
    for (const char* property : {"Version", "Answer", "Tags", "Settings", "Mode"}) {
        for (const char* json : {"--json=off", "--json=short", "--json=pretty"}) {
            auto arguments = get;
            arguments.insert(arguments.begin(), json);
            arguments.push_back(property);
            expect_same_output(arguments);
        }
    }
    expect_same_output(all);
}

TEST_F(AfbusctlTest, SetPropertyThenGetIt) {
    auto set = ctl({"set-property", std::string(kName), std::string(kPath), std::string(kInterface), "Mode", "s", "busy"});
    ASSERT_TRUE(set->succeeded()) << set->report();
    EXPECT_EQ(set->out(), "");
    EXPECT_EQ(mode, "busy");
    auto get = ctl({"get-property", std::string(kName), std::string(kPath), std::string(kInterface), "Mode"});
    EXPECT_EQ(get->out(), "s \"busy\"\n");
    auto wrong_type = ctl({"set-property", std::string(kName), std::string(kPath), std::string(kInterface), "Mode", "i", "5"});
    EXPECT_TRUE(wrong_type->exited_with(1)) << wrong_type->report();
    EXPECT_TRUE(wrong_type->err().starts_with("Failed to set property Mode on interface org.example.Echo: "))
        << wrong_type->report();
    auto bad = ctl({"set-property", std::string(kName), std::string(kPath), std::string(kInterface), "Mode", "u", "-1"});
    EXPECT_TRUE(bad->exited_with(1)) << bad->report();
    EXPECT_EQ(mode, "busy");
}

TEST_F(AfbusctlTest, EmitReachesSubscribers) {
    auto emit = ctl({"emit", std::string(kPath), std::string(kInterface), "Ping", "s", "from afbusctl"});
    ASSERT_TRUE(emit->succeeded()) << emit->report();
    ASSERT_TRUE(pump([&] { return !signals.empty(); }, {}));
    EXPECT_EQ(signals.front(), "Ping \"from afbusctl\"");
    // To one connection.
    auto unicast = ctl({"emit", "--destination=" + listener->unique_name(), std::string(kPath), std::string(kInterface),
                        "Ping", "s", "just for you"});
    ASSERT_TRUE(unicast->succeeded()) << unicast->report();
    ASSERT_TRUE(pump([&] { return signals.size() == 2; }, {}));
    EXPECT_EQ(signals.back(), "Ping \"just for you\"");
    auto bad = ctl({"emit", "--destination=not a name", std::string(kPath), std::string(kInterface), "Ping"});
    EXPECT_TRUE(bad->exited_with(1)) << bad->report();
    auto bad_value = ctl({"emit", std::string(kPath), std::string(kInterface), "Ping", "u", "minus"});
    EXPECT_TRUE(bad_value->exited_with(1)) << bad_value->report();
    // Neither was sent: the next signal to arrive is the good one after them.
    ASSERT_TRUE(ctl({"emit", std::string(kPath), std::string(kInterface), "Ping", "s", "last"})->succeeded());
    ASSERT_TRUE(pump([&] { return signals.size() >= 3; }, {}));
    EXPECT_EQ(signals, (std::vector<std::string>{"Ping \"from afbusctl\"", "Ping \"just for you\"", "Ping \"last\""}));
}

TEST_F(AfbusctlTest, WaitPrintsTheSignal) {
    auto wait = start({afbusctl, "--address=" + bus.address(), "wait", std::string(kPath), std::string(kInterface), "Ping"});
    ASSERT_TRUE(pump([&] { return contains(wait->err(), "Waiting for signal") || wait->finished(); }, {wait.get()}))
        << wait->report();
    auto signal = MessageBuilder::signal(kPath, kInterface, "Ping");
    append(signal, std::string("hello"));
    ASSERT_TRUE(service->send(signal.build().value()));
    finish(*wait);
    ASSERT_TRUE(wait->succeeded()) << wait->report();
    EXPECT_EQ(wait->out(), "s \"hello\"\n");
    // Nobody sends this one: --timeout= ends the wait with a failure.
    auto unanswered = ctl({"--timeout=0.2", "wait", std::string(kPath), std::string(kInterface), "Never"});
    EXPECT_TRUE(unanswered->exited_with(1)) << unanswered->report();
    EXPECT_TRUE(contains(unanswered->err(), "Timed out waiting for signal org.example.Echo.Never.")) << unanswered->report();
}

TEST_F(AfbusctlTest, MonitorShowsTrafficInBusctlsFormat) {
    auto monitor = start({afbusctl, "--address=" + bus.address(), "monitor", "--match=interface='org.example.Echo'",
                          "--limit-messages=1"});
    ASSERT_TRUE(pump([&] { return contains(monitor->err(), "Monitoring bus message stream.") || monitor->finished(); },
                     {monitor.get()}))
        << monitor->report();
    auto signal = MessageBuilder::signal(kPath, kInterface, "Ping");
    append(signal, std::string("watched"));
    ASSERT_TRUE(service->send(signal.build().value()));
    finish(*monitor);
    ASSERT_TRUE(monitor->succeeded()) << monitor->report();
    const std::string& out = monitor->out();
    EXPECT_TRUE(out.starts_with("\u2023 Type=signal  Endian=l  Flags=")) << out;
    EXPECT_TRUE(contains(out, "  Sender=" + service->unique_name() + "  Path=/org/example/echo  Interface=org.example.Echo  Member=Ping\n"))
        << out;
    EXPECT_TRUE(contains(out, "  UniqueName=" + service->unique_name() + "\n")) << out;
    EXPECT_TRUE(contains(out, "  MESSAGE \"s\" {\n          STRING \"watched\";\n  };\n\n")) << out;

    // --json=short: one object per message with busctl's keys in busctl's order.
    auto json = start({afbusctl, "--address=" + bus.address(), "monitor", "--json=short",
                       "--match=interface='org.example.Echo'", "--limit-messages=1"});
    ASSERT_TRUE(pump([&] { return contains(json->err(), "Monitoring bus message stream.") || json->finished(); },
                     {json.get()}))
        << json->report();
    auto again = MessageBuilder::signal(kPath, kInterface, "Ping");
    append(again, std::string("as json"));
    ASSERT_TRUE(service->send(again.build().value()));
    finish(*json);
    ASSERT_TRUE(json->succeeded()) << json->report();
    // Flags are not compared: in this test dbus-daemon hands the monitor this signal with
    // NO_REPLY_EXPECTED set and afbus-daemon without (not afbusctl's business; reported).
    EXPECT_TRUE(json->out().starts_with("{\"type\":\"signal\",\"endian\":\"l\",\"flags\":")) << json->out();
    EXPECT_TRUE(contains(json->out(), ",\"version\":1,\"cookie\":")) << json->out();
    EXPECT_TRUE(contains(json->out(), ",\"timestamp-realtime\":")) << json->out();
    EXPECT_TRUE(json->out().ends_with(",\"sender\":\"" + service->unique_name() +
                                      "\",\"path\":\"/org/example/echo\",\"interface\":\"org.example.Echo\","
                                      "\"member\":\"Ping\",\"payload\":{\"type\":\"s\",\"data\":[\"as json\"]}}\n"))
        << json->out();
}

// capture writes pcapng (never to a terminal): a section header naming afbusctl, one DLT_DBUS interface,
// and each message's wire bytes, which parse back into the message that was sent.
TEST_F(AfbusctlTest, CaptureWritesPcapngOfTheMessages) {
    auto capture = start({afbusctl, "--address=" + bus.address(), "capture", "--match=interface='org.example.Echo'",
                          "--limit-messages=2"});
    ASSERT_TRUE(pump([&] { return contains(capture->err(), "Monitoring bus message stream.") || capture->finished(); },
                     {capture.get()}))
        << capture->report();
    for (const char* text : {"first", "second"}) {
        auto signal = MessageBuilder::signal(kPath, kInterface, "Ping");
        append(signal, std::string(text));
        ASSERT_TRUE(service->send(signal.build().value()));
    }
    finish(*capture);
    ASSERT_TRUE(capture->succeeded()) << capture->report();
    std::string why;
    auto file = test::read_pcapng(capture->out(), &why);
    ASSERT_TRUE(file) << why;
    ASSERT_EQ(file->section_options.size(), 2u);
    EXPECT_TRUE(file->section_options[1].starts_with("afbusctl (afbus) ")) << file->section_options[1];
    EXPECT_EQ(file->link_type, 231);
    EXPECT_EQ(file->snap_length, 4096u);
    ASSERT_EQ(file->packets.size(), 2u);
    std::vector<std::string> texts;
    for (const auto& packet : file->packets) {
        EXPECT_EQ(packet.original_length, packet.data.size());
        auto message = Message::parse(packet.data);
        ASSERT_TRUE(message) << to_string(message.error());
        EXPECT_EQ(message->member(), "Ping");
        EXPECT_EQ(message->sender(), service->unique_name());
        texts.push_back(std::get<0>(read_all<std::string>(*message).value()));
    }
    EXPECT_EQ(texts, (std::vector<std::string>{"first", "second"}));
    auto small = start({afbusctl, "--address=" + bus.address(), "capture", "--size=16", "--limit-messages=1",
                        "--match=interface='org.example.Echo'"});
    ASSERT_TRUE(pump([&] { return contains(small->err(), "Monitoring bus message stream.") || small->finished(); },
                     {small.get()}));
    auto signal = MessageBuilder::signal(kPath, kInterface, "Ping");
    append(signal, std::string("cut short"));
    ASSERT_TRUE(service->send(signal.build().value()));
    finish(*small);
    auto cut = test::read_pcapng(small->out(), &why);
    ASSERT_TRUE(cut) << why;
    ASSERT_EQ(cut->packets.size(), 1u);
    EXPECT_EQ(cut->packets[0].data.size(), 16u);
    EXPECT_GT(cut->packets[0].original_length, 16u);
}

// NAME PID PROCESS USER CONNECTION UNIT SESSION DESCRIPTION: the rows both tools show (all but their
// own connections) agree in every field.
TEST_F(AfbusctlTest, ListAgreesWithBusctlByField) {
    auto ours = ctl({"list"});
    ASSERT_TRUE(ours->succeeded()) << ours->report();
    const auto our_rows = rows_by_name(ours->out());
    ASSERT_TRUE(our_rows.count("NAME")) << ours->out();
    EXPECT_EQ(our_rows.at("NAME"), (std::vector<std::string>{"NAME", "PID", "PROCESS", "USER", "CONNECTION", "UNIT",
                                                             "SESSION", "DESCRIPTION"}));
    ASSERT_TRUE(our_rows.count(std::string(kName))) << ours->out();
    const auto& row = our_rows.at(std::string(kName));
    EXPECT_EQ(row[1], std::to_string(::getpid()));
    EXPECT_EQ(row[4], service->unique_name());
    ASSERT_TRUE(our_rows.count("org.freedesktop.DBus")) << ours->out();
    EXPECT_EQ(our_rows.at("org.freedesktop.DBus")[1], std::to_string(bus.pid()));

    auto unique = ctl({"list", "--unique", "--no-legend"});
    for (const auto& [name, cells] : rows_by_name(unique->out())) EXPECT_TRUE(name.starts_with(':')) << unique->out();
    auto acquired = ctl({"list", "--acquired", "--no-legend"});
    const auto acquired_rows = rows_by_name(acquired->out());
    EXPECT_TRUE(acquired_rows.count(std::string(kName))) << acquired->out();
    for (const auto& [name, cells] : acquired_rows) EXPECT_FALSE(name.starts_with(':')) << acquired->out();

    auto json = ctl({"list", "--json=short"});
    EXPECT_TRUE(contains(json->out(), "{\"name\":\"" + std::string(kName) + "\",\"pid\":" + std::to_string(::getpid()) +
                                          ",\"process\":"))
        << json->out();

    REQUIRE_BUSCTL();
    auto theirs = busctl_run({"list"});
    ASSERT_TRUE(theirs->succeeded()) << theirs->report();
    const auto their_rows = rows_by_name(theirs->out());
    for (const auto& name : {std::string("NAME"), std::string(kName), std::string("org.freedesktop.DBus"),
                             service->unique_name(), listener->unique_name()}) {
        ASSERT_TRUE(their_rows.count(name)) << name << "\n" << theirs->out();
        ASSERT_TRUE(our_rows.count(name)) << name << "\n" << ours->out();
        EXPECT_EQ(our_rows.at(name), their_rows.at(name)) << name;
    }
    for (const char* filter : {"--unique", "--acquired", "--activatable"}) {
        auto a = rows_by_name(ctl({"list", filter, "--no-legend"})->out());
        auto b = rows_by_name(busctl_run({"list", filter, "--no-legend"})->out());
        // The two tools' own connections are the only unique names that differ.
        std::erase_if(a, [](const auto& r) { return r.second.size() > 2 && (r.second[2] == "afbusctl" || r.second[2] == "busctl"); });
        std::erase_if(b, [](const auto& r) { return r.second.size() > 2 && (r.second[2] == "afbusctl" || r.second[2] == "busctl"); });
        EXPECT_EQ(a, b) << filter;
    }
}

TEST_F(AfbusctlTest, IntrospectPrintsWhatBusctlPrints) {
    auto ours = ctl({"introspect", std::string(kName), std::string(kPath)});
    ASSERT_TRUE(ours->succeeded()) << ours->report();
    const auto rows = rows_by_name(ours->out());
    ASSERT_TRUE(rows.count(".Answer")) << ours->out();
    EXPECT_EQ(rows.at(".Answer"), (std::vector<std::string>{".Answer", "property", "i", "42", "emits-change"}));
    EXPECT_EQ(rows.at(".Mode"),
              (std::vector<std::string>{".Mode", "property", "s", "\"idle\"", "emits-change", "writable"}));
    EXPECT_EQ(rows.at(".Dict"), (std::vector<std::string>{".Dict", "method", "a{sv}", "a{sv}", "-"}));
    EXPECT_EQ(rows.at(".Ping"), (std::vector<std::string>{".Ping", "signal", "s", "-", "-"}));
    EXPECT_EQ(rows.at("org.example.Echo"), (std::vector<std::string>{"org.example.Echo", "interface", "-", "-", "-"}));
    auto xml = ctl({"introspect", "--xml-interface", std::string(kName), std::string(kPath)});
    EXPECT_TRUE(contains(xml->out(), "<interface name=\"org.example.Echo\">")) << xml->out();
    REQUIRE_BUSCTL();
    // Field by field is implied: the whole table is the same, column widths included.
    for (std::vector<std::string> arguments :
         {std::vector<std::string>{"introspect", std::string(kName), std::string(kPath)},
          {"introspect", std::string(kName), std::string(kPath), std::string(kInterface)},
          {"introspect", "--no-legend", std::string(kName), std::string(kChildPath)},
          {"introspect", "--xml-interface", std::string(kName), std::string(kPath)},
          {"introspect", "org.freedesktop.DBus", "/org/freedesktop/DBus"}}) {
        expect_same_output(arguments);
    }
}

TEST_F(AfbusctlTest, TreePrintsWhatBusctlPrints) {
    auto ours = ctl({"tree", std::string(kName)});
    ASSERT_TRUE(ours->succeeded()) << ours->report();
    EXPECT_TRUE(contains(ours->out(), "/org/example/echo/child\n")) << ours->out();
    REQUIRE_BUSCTL();
    expect_same_output({"tree", std::string(kName)});
    expect_same_output({"tree", "--list", std::string(kName)});
    expect_same_output({"tree", "org.freedesktop.DBus"});
}

TEST_F(AfbusctlTest, StatusShowsTheCredentials) {
    auto ours = ctl({"status", std::string(kName)});
    ASSERT_TRUE(ours->succeeded()) << ours->report();
    EXPECT_TRUE(contains(ours->out(), "PID=" + std::to_string(::getpid()) + "\n")) << ours->out();
    EXPECT_TRUE(contains(ours->out(), "UID=" + std::to_string(::getuid()) + "\n")) << ours->out();
    EXPECT_TRUE(contains(ours->out(), "UniqueName=" + service->unique_name() + "\n")) << ours->out();
    auto of_pid = ctl({"status", std::to_string(::getpid())});
    ASSERT_TRUE(of_pid->succeeded()) << of_pid->report();
    EXPECT_TRUE(of_pid->out().starts_with("PID=" + std::to_string(::getpid()) + "\n")) << of_pid->out();
    EXPECT_TRUE(ctl({"status", "99999999999"})->exited_with(1));
    auto of_bus = ctl({"status"});
    ASSERT_TRUE(of_bus->succeeded()) << of_bus->report();
    EXPECT_TRUE(contains(of_bus->out(), "PID=" + std::to_string(bus.pid()) + "\n")) << of_bus->out();
    EXPECT_TRUE(contains(of_bus->out(), "BusAddress=" + bus.address() + "\n")) << of_bus->out();
    REQUIRE_BUSCTL();
    // The keys both print agree.
    auto theirs = busctl_run({"status", std::string(kName)});
    std::map<std::string, std::string> their_fields;
    std::istringstream lines(theirs->out());
    for (std::string line; std::getline(lines, line);)
        if (auto eq = line.find('='); eq != std::string::npos) their_fields[line.substr(0, eq)] = line.substr(eq + 1);
    std::istringstream our_lines(ours->out());
    for (std::string line; std::getline(our_lines, line);) {
        const auto eq = line.find('=');
        ASSERT_NE(eq, std::string::npos) << line;
        const std::string key = line.substr(0, eq);
        if (key == "Session" || key == "Unit") continue;  // busctl asks logind and systemd, afbusctl /proc
        ASSERT_TRUE(their_fields.count(key)) << key << "\n" << theirs->out();
        EXPECT_EQ(line.substr(eq + 1), their_fields.at(key)) << key;
    }
}

TEST_F(AfbusctlTest, StatsShowsEachConnection) {
    auto stats = ctl({"stats"});
    ASSERT_TRUE(stats->succeeded()) << stats->report();
    const auto rows = rows_by_name(stats->out());
    ASSERT_TRUE(rows.count("CONNECTION")) << stats->out();
    ASSERT_TRUE(rows.count(service->unique_name())) << stats->out();
    const auto& row = rows.at(service->unique_name());
    EXPECT_EQ(row[1], std::string(kName));
    EXPECT_EQ(row.back(), "max_names_per_connection");  // it holds one name and no match rule
    ASSERT_TRUE(rows.count(listener->unique_name())) << stats->out();
    EXPECT_EQ(rows.at(listener->unique_name()).back(), "max_match_rules_per_connection");

    // With a limit of 2 match rules, the listener's one rule makes it the fullest connection: first.
    auto tight = ctl({"stats", "--no-legend", "--limit=max_match_rules_per_connection=2"});
    ASSERT_TRUE(tight->succeeded()) << tight->report();
    EXPECT_TRUE(tight->out().starts_with(listener->unique_name() + " ")) << tight->out();
    EXPECT_TRUE(contains(tight->out(), " 50.0% max_match_rules_per_connection\n")) << tight->out();

    auto one = ctl({"stats", "--json=short", std::string(kName)});
    ASSERT_TRUE(one->succeeded()) << one->report();
    EXPECT_TRUE(one->out().starts_with("[{\"connection\":\"" + service->unique_name() + "\",\"names\":[\"" +
                                       std::string(kName) + "\"],\"stats\":{"))
        << one->out();
    auto bad = ctl({"stats", "--limit=max_bananas=3"});
    EXPECT_TRUE(bad->exited_with(1)) << bad->report();
}

TEST_F(AfbusctlTest, ReloadAsksTheBus) {
    auto reload = ctl({"reload"});
    EXPECT_TRUE(reload->succeeded()) << reload->report();
}

// Bus selection as busctl: the system bus by default (DBUS_SYSTEM_BUS_ADDRESS), --user
// (DBUS_SESSION_BUS_ADDRESS); the environment here names the private bus for both, and a nonexistent
// address for the other proves which one was read.
TEST_F(AfbusctlTest, BusSelectionFromTheEnvironment) {
    const std::string nowhere = "unix:path=" + bus.directory() + "/nothing-listens-here";
    const std::vector<std::string> get = {"get-property", std::string(kName), std::string(kPath), std::string(kInterface),
                                          "Answer"};
    auto system_env = child_environment({"DBUS_SYSTEM_BUS_ADDRESS=" + bus.address(), "DBUS_SESSION_BUS_ADDRESS=" + nowhere});
    auto session_env = child_environment({"DBUS_SYSTEM_BUS_ADDRESS=" + nowhere, "DBUS_SESSION_BUS_ADDRESS=" + bus.address()});
    auto args = get;
    args.insert(args.begin(), afbusctl);
    auto by_default = run(args, system_env);
    EXPECT_EQ(by_default->out(), "i 42\n") << by_default->report();
    auto system = args;
    system.insert(system.begin() + 1, "--system");
    EXPECT_EQ(run(system, system_env)->out(), "i 42\n");
    auto user = args;
    user.insert(user.begin() + 1, "--user");
    EXPECT_EQ(run(user, session_env)->out(), "i 42\n");
    auto wrong = run(user, system_env);
    EXPECT_TRUE(wrong->exited_with(1)) << wrong->report();
    EXPECT_TRUE(wrong->err().starts_with("Failed to connect to bus: ")) << wrong->report();
}

// The bash completion, driven as bash drives it (COMP_LINE, COMP_POINT), completes from the live bus:
// names, paths, interfaces, methods, properties and a method's signature.
TEST_F(AfbusctlTest, BashCompletionAsksTheBus) {
    const char* script = std::getenv("AFBUSCTL_COMPLETION");
    ASSERT_NE(script, nullptr) << "AFBUSCTL_COMPLETION is not set (test/meson.build sets it)";
    const std::string bash = find_program("bash");
    if (bash.empty()) GTEST_SKIP() << "bash is not installed";
    const std::string directory = afbusctl.substr(0, afbusctl.rfind('/'));
    const auto complete = [&](const std::string& line) {
        auto child = run({bash, "-c",
                          "source \"$0\"; COMP_LINE=$1; COMP_POINT=${#1}; _afbusctl; printf '%s\\n' \"${COMPREPLY[@]}\"",
                          script, line},
                         tool_environment(bus.address(), {"PATH=" + directory + ":/usr/bin:/bin"}));
        EXPECT_TRUE(child->succeeded()) << child->report();
        std::vector<std::string> words;
        std::istringstream lines(child->out());
        for (std::string word; std::getline(lines, word);)
            if (!word.empty()) words.push_back(word);
        return words;
    };
    const auto has = [](const std::vector<std::string>& words, const std::string& word) {
        return std::find(words.begin(), words.end(), word) != words.end();
    };
    const std::string object = std::string(kName) + " " + std::string(kPath) + " ";
    EXPECT_TRUE(has(complete("afbusctl ca"), "call"));
    EXPECT_TRUE(has(complete("afbusctl --js"), "--json=short"));
    EXPECT_TRUE(has(complete("afbusctl call "), std::string(kName)));
    auto paths = complete("afbusctl call " + std::string(kName) + " ");
    EXPECT_TRUE(has(paths, std::string(kPath)) && has(paths, std::string(kChildPath)));
    EXPECT_TRUE(has(complete("afbusctl call " + object), std::string(kInterface)));
    auto methods = complete("afbusctl call " + object + std::string(kInterface) + " ");
    EXPECT_TRUE(has(methods, "Dict") && !has(methods, "Ping") && !has(methods, "Version"));
    EXPECT_EQ(complete("afbusctl call " + object + std::string(kInterface) + " Nested "),
              (std::vector<std::string>{"a(sa{sv})"}));
    auto properties = complete("afbusctl --system get-property " + object + std::string(kInterface) + " ");
    EXPECT_TRUE(has(properties, "Version") && has(properties, "Mode") && !has(properties, "Dict"));
    // A unique name after ':' (a word break to bash): only the part after the colon is offered.
    const std::string unique = service->unique_name();
    EXPECT_TRUE(has(complete("afbusctl --address=" + bus.address() + " status " + unique), unique.substr(1)));
}

TEST_F(AfbusctlTest, VersionHelpAndUnknownVerbs) {
    auto version = run({afbusctl, "--version"});
    EXPECT_TRUE(version->succeeded()) << version->report();
    EXPECT_TRUE(version->out().starts_with("afbusctl ")) << version->out();
    auto help = run({afbusctl, "--help"});
    EXPECT_TRUE(help->succeeded()) << help->report();
    EXPECT_TRUE(contains(help->out(), "call SERVICE OBJECT INTERFACE METHOD [SIGNATURE [ARGUMENT...]]")) << help->out();
    auto unknown = ctl({"frobnicate"});
    EXPECT_TRUE(unknown->exited_with(1)) << unknown->report();
    EXPECT_EQ(unknown->err(), "Unknown command verb 'frobnicate'.\n");
    // kernel needs no bus: an address where nothing listens does not matter.
    auto kernel = run({afbusctl, "--address=unix:path=" + bus.directory() + "/nothing-here", "kernel"});
    EXPECT_TRUE(kernel->out().starts_with("Module=")) << kernel->report();
    EXPECT_TRUE(kernel->exited_with(kernel->out().starts_with("Module=loaded") ? 0 : 1)) << kernel->report();
    auto bad_option = ctl({"--bogus", "list"});
    EXPECT_TRUE(bad_option->exited_with(1)) << bad_option->report();
}

}  // namespace
}  // namespace afbus
