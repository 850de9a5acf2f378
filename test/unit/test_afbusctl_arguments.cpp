// afbusctl's argument parser (busctl's signature-then-values syntax → message body values) and its output
// formatters (busctl's one-line form and its JSON), without a bus. What busctl itself prints for the same
// input is what test/integration/test_afbusctl.cpp compares on a live bus; the expectations here were
// taken from busctl 252's output.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "argument_parser.hpp"
#include "bus_connection.hpp"
#include "command_line.hpp"
#include "table.hpp"
#include "value_format.hpp"

namespace afbusctl {
namespace {

using afbus::Value;

std::vector<Value> parse_ok(std::string_view signature, std::vector<std::string> words) {
    auto values = parse_arguments(signature, words);
    EXPECT_TRUE(values) << signature << ": " << (values ? "" : values.error().describe());
    return values ? *values : std::vector<Value>{};
}

ArgumentError parse_error(std::string_view signature, std::vector<std::string> words) {
    auto values = parse_arguments(signature, words);
    EXPECT_FALSE(values) << signature;
    return values ? ArgumentError{} : values.error();
}

// Parsing then printing: what `busctl call` of an echo method prints for these words.
std::string round_trip(std::string_view signature, std::vector<std::string> words) {
    return format_body_line(signature, parse_ok(signature, std::move(words)));
}

// monitor and capture: over the bus's unix socket when it also listens on AF_BUS (kernel mode), where
// the bus cannot make an AF_BUS client a monitor.
TEST(AfbusctlBusAddress, MonitoringSkipsAfBusEntriesWhenThereAreOthers) {
    EXPECT_EQ(address_for_monitoring("afbus:path=/run/afbus/bus;unix:path=/run/bus,guid=28ad6ab2d0081175bc3c89399b923094"), "unix:path=/run/bus,guid=28ad6ab2d0081175bc3c89399b923094");
    EXPECT_EQ(address_for_monitoring("unix:path=/a;afbus:abstract=b;tcp:host=127.0.0.1,port=5"),
              "unix:path=/a;tcp:host=127.0.0.1,port=5");
    EXPECT_EQ(address_for_monitoring("unix:path=/a"), "unix:path=/a");
    // Nothing else to take: as it is, and the bus's refusal tells the user where to connect.
    EXPECT_EQ(address_for_monitoring("afbus:path=/run/afbus/bus"), "afbus:path=/run/afbus/bus");
    EXPECT_EQ(address_for_monitoring("not an address"), "not an address");
}

TEST(AfbusctlArguments, BasicTypes) {
    auto values = parse_ok("ybnqiuxtdsog", {"1", "true", "-2", "3", "-4", "5", "-6", "7", "1.5", "s", "/a/b", "ai"});
    ASSERT_EQ(values.size(), 12u);
    EXPECT_EQ(values[0], Value::byte(1));
    EXPECT_EQ(values[1], Value::boolean(true));
    EXPECT_EQ(values[2], Value::int16(-2));
    EXPECT_EQ(values[3], Value::uint16(3));
    EXPECT_EQ(values[4], Value::int32(-4));
    EXPECT_EQ(values[5], Value::uint32(5));
    EXPECT_EQ(values[6], Value::int64(-6));
    EXPECT_EQ(values[7], Value::uint64(7));
    EXPECT_EQ(values[8], Value::float64(1.5));
    EXPECT_EQ(values[9], Value::string("s"));
    EXPECT_EQ(values[10], Value::object_path("/a/b"));
    EXPECT_EQ(values[11], Value::signature("ai"));
}

TEST(AfbusctlArguments, IntegersInCSyntaxLikeBusctl) {
    EXPECT_EQ(parse_ok("y", {"0x10"})[0], Value::byte(16));
    EXPECT_EQ(parse_ok("u", {"010"})[0], Value::uint32(8));
    EXPECT_EQ(parse_ok("t", {"0o17"})[0], Value::uint64(15));
    EXPECT_EQ(parse_ok("u", {"0b11"})[0], Value::uint32(3));
    EXPECT_EQ(parse_ok("i", {"+5"})[0], Value::int32(5));
    EXPECT_EQ(parse_ok("i", {" 5"})[0], Value::int32(5));
    EXPECT_EQ(parse_ok("i", {"-0x10"})[0], Value::int32(-16));
    EXPECT_EQ(parse_ok("y", {"-0"})[0], Value::byte(0));
    EXPECT_EQ(parse_ok("x", {"-9223372036854775808"})[0], Value::int64(INT64_MIN));
    EXPECT_EQ(parse_ok("t", {"18446744073709551615"})[0], Value::uint64(UINT64_MAX));
    EXPECT_EQ(parse_ok("n", {"-32768"})[0], Value::int16(-32768));
}

TEST(AfbusctlArguments, BooleansLikeBusctl) {
    for (const char* yes : {"1", "yes", "y", "true", "TRUE", "t", "on"})
        EXPECT_EQ(parse_ok("b", {yes})[0], Value::boolean(true)) << yes;
    for (const char* no : {"0", "no", "n", "false", "f", "off", "Off"})
        EXPECT_EQ(parse_ok("b", {no})[0], Value::boolean(false)) << no;
}

TEST(AfbusctlArguments, Containers) {
    EXPECT_EQ(parse_ok("as", {"2", "a", "b"})[0],
              Value::array("s", {Value::string("a"), Value::string("b")}));
    EXPECT_EQ(parse_ok("a{sv}", {"1", "key", "s", "val"})[0],
              Value::array("{sv}", {Value::dict_entry(Value::string("key"), Value::variant(Value::string("val")))}));
    EXPECT_EQ(parse_ok("v", {"s", "hello"})[0], Value::variant(Value::string("hello")));
    EXPECT_EQ(parse_ok("(is)", {"1", "x"})[0], Value::structure({Value::int32(1), Value::string("x")}));
    EXPECT_EQ(parse_ok("as", {"0"})[0], Value::array("s", {}));
    EXPECT_EQ(parse_ok("", {}).size(), 0u);
}

TEST(AfbusctlArguments, PrintedAsBusctlPrintsThem) {
    EXPECT_EQ(round_trip("s", {"he\"l\\lo"}), R"(s "he\"l\\lo")");
    EXPECT_EQ(round_trip("s", {"a\tb\nc"}), R"(s "a\tb\nc")");
    EXPECT_EQ(round_trip("s", {"it's"}), R"(s "it\'s")");
    EXPECT_EQ(round_trip("s", {"\xc3\xbc"}), R"(s "\303\274")");
    EXPECT_EQ(round_trip("s", {"\x01"}), R"(s "\001")");
    EXPECT_EQ(round_trip("as", {"2", "a", "b"}), R"(as 2 "a" "b")");
    EXPECT_EQ(round_trip("a{sv}", {"2", "key", "s", "val", "k2", "i", "5"}), R"(a{sv} 2 "key" s "val" "k2" i 5)");
    EXPECT_EQ(round_trip("v", {"s", "hello"}), R"(v s "hello")");
    EXPECT_EQ(round_trip("(is)", {"1", "x"}), R"((is) 1 "x")");
    EXPECT_EQ(round_trip("a(sa{sv})", {"1", "x", "1", "k", "v", "as", "1", "z"}), R"(a(sa{sv}) 1 "x" 1 "k" v as 1 "z")");
    EXPECT_EQ(round_trip("ad", {"2", "0.1", "1e100"}), "ad 2 0.1 1e+100");
    EXPECT_EQ(round_trip("d", {"123456789"}), "d 1.23457e+08");
    EXPECT_EQ(round_trip("d", {"1e-7"}), "d 1e-07");
    EXPECT_EQ(round_trip("aay", {"2", "1", "1", "0"}), "aay 2 1 1 0");
    EXPECT_EQ(round_trip("ybnqiuxtdsog", {"1", "true", "-2", "3", "-4", "5", "-6", "7", "1.5", "s", "/a/b", "ai"}),
              R"(ybnqiuxtdsog 1 true -2 3 -4 5 -6 7 1.5 "s" "/a/b" "ai")");
}

TEST(AfbusctlArguments, JsonAsBusctlPrintsIt) {
    const auto json = [](std::string_view signature, std::vector<std::string> words, JsonMode mode) {
        auto doc = body_to_json(signature, parse_ok(signature, std::move(words)));
        EXPECT_TRUE(doc);
        return doc ? doc->dump(mode) : std::string();
    };
    EXPECT_EQ(json("ybnqiuxtdsog", {"1", "true", "-2", "3", "-4", "5", "-6", "7", "1.5", "s", "/a/b", "ai"}, JsonMode::Short),
              R"({"type":"ybnqiuxtdsog","data":[1,true,-2,3,-4,5,-6,7,1.500000000000000000000e+00,"s","/a/b","ai"]})");
    EXPECT_EQ(json("a{sv}", {"2", "key", "s", "val", "k2", "i", "5"}, JsonMode::Short),
              R"({"type":"a{sv}","data":[{"key":{"type":"s","data":"val"},"k2":{"type":"i","data":5}}]})");
    EXPECT_EQ(json("(is)v", {"1", "x", "ay", "2", "1", "2"}, JsonMode::Short),
              R"({"type":"(is)v","data":[[1,"x"],{"type":"ay","data":[1,2]}]})");
    EXPECT_EQ(json("a{sas}", {"1", "k", "0"}, JsonMode::Short), R"({"type":"a{sas}","data":[{"k":[]}]})");
    EXPECT_EQ(json("s", {"a\tb\x01\x7f \xc3\xbc"}, JsonMode::Short),
              "{\"type\":\"s\",\"data\":[\"a\\tb\\u0001\x7f \xc3\xbc\"]}");
    EXPECT_EQ(json("a{sv}", {"0"}, JsonMode::Pretty), "{\n\t\"type\" : \"a{sv}\",\n\t\"data\" : [\n\t\t{}\n\t]\n}");
    EXPECT_EQ(json("(s)", {"x"}, JsonMode::Pretty),
              "{\n\t\"type\" : \"(s)\",\n\t\"data\" : [\n\t\t[\n\t\t\t\"x\"\n\t\t]\n\t]\n}");
    EXPECT_FALSE(body_to_json("a{is}", parse_ok("a{is}", {"1", "3", "x"})));
}

TEST(AfbusctlArguments, BadInputSaysWhichWordAndWhy) {
    auto e = parse_error("q", {"x"});
    EXPECT_EQ(e.message, "Failed to parse 'x' as unsigned 16bit integer: Invalid argument");
    EXPECT_EQ(e.word, 0u);
    EXPECT_EQ(e.type, "q");
    EXPECT_EQ(e.describe(), "Failed to parse 'x' as unsigned 16bit integer: Invalid argument (value #1, of type 'q')");

    e = parse_error("sy", {"a", "300"});
    EXPECT_EQ(e.message, "Failed to parse '300' as byte (unsigned 8bit integer): Numerical result out of range");
    EXPECT_EQ(e.word, 1u);

    EXPECT_EQ(parse_error("b", {"maybe"}).message, "Failed to parse 'maybe' as boolean: Invalid argument");
    EXPECT_EQ(parse_error("u", {"-1"}).message, "Failed to parse '-1' as unsigned 32bit integer: Numerical result out of range");
    EXPECT_EQ(parse_error("i", {"1e3"}).message, "Failed to parse '1e3' as signed 32bit integer: Invalid argument");
    EXPECT_EQ(parse_error("i", {"5 "}).message, "Failed to parse '5 ' as signed 32bit integer: Invalid argument");
    EXPECT_EQ(parse_error("y", {"08"}).message, "Failed to parse '08' as byte (unsigned 8bit integer): Invalid argument");
    EXPECT_EQ(parse_error("n", {"40000"}).message, "Failed to parse '40000' as signed 16bit integer: Numerical result out of range");
    EXPECT_EQ(parse_error("d", {"1x"}).message, "Failed to parse '1x' as double precision floating point: Invalid argument");
    EXPECT_EQ(parse_error("as", {"2", "a"}).message, "Too few parameters for signature.");
    EXPECT_EQ(parse_error("s", {"a", "b"}).message, "Too many parameters for signature.");
    EXPECT_EQ(parse_error("s", {"a", "b"}).word, 1u);
    EXPECT_EQ(parse_error("h", {"1"}).message, "UNIX file descriptor not supported as type.");
    EXPECT_EQ(parse_error("o", {"xx"}).message, "Invalid object path 'xx'.");
    EXPECT_EQ(parse_error("g", {"(("}).message, "Invalid signature '(('.");
    EXPECT_EQ(parse_error("a{", {"1"}).message, "Invalid signature 'a{'.");
    EXPECT_EQ(parse_error("v", {"ii", "1", "2"}).message, "Invalid variant signature 'ii': not a single complete type.");
    EXPECT_EQ(parse_error("s", {"\xff"}).message, "Invalid string '\xff': not valid UTF-8.");
    EXPECT_EQ(parse_error("as", {"x"}).message, "Failed to parse 'x' as array size: Invalid argument");
}

TEST(AfbusctlCommandLine, BusSelectionAndOptions) {
    const auto parse = [](std::vector<std::string> words) {
        std::vector<char*> argv;
        for (auto& w : words) argv.push_back(w.data());
        argv.push_back(nullptr);
        return parse_command_line(static_cast<int>(words.size()), argv.data());
    };
    const auto environment = [](std::string system, std::string session) -> afbus::EnvironmentLookup {
        return [system, session](std::string_view name) -> std::optional<std::string> {
            if (name == "DBUS_SYSTEM_BUS_ADDRESS" && !system.empty()) return system;
            if (name == "DBUS_SESSION_BUS_ADDRESS" && !session.empty()) return session;
            if (name == "XDG_RUNTIME_DIR") return std::string("/run/user/1000");
            return std::nullopt;
        };
    };

    auto plain = parse({"afbusctl", "list"});
    ASSERT_TRUE(plain);
    EXPECT_EQ(plain->bus, BusChoice::System);  // busctl's default
    EXPECT_EQ(select_bus_address(*plain, environment("", "")).value(), "unix:path=/run/dbus/system_bus_socket");
    EXPECT_EQ(select_bus_address(*plain, environment("unix:path=/tmp/sys", "")).value(), "unix:path=/tmp/sys");

    auto user = parse({"afbusctl", "--user", "list"});
    ASSERT_TRUE(user);
    EXPECT_EQ(select_bus_address(*user, environment("", "unix:path=/tmp/s")).value(), "unix:path=/tmp/s");
    EXPECT_EQ(select_bus_address(*user, environment("", "")).value(), "unix:path=/run/user/1000/bus");

    auto address = parse({"afbusctl", "call", "--address=unix:path=/x", "a.b", "/", "a.b", "M", "--timeout=1.5",
                          "--expect-reply=no", "--auto-start=false", "--json=pretty", "s", "x"});
    ASSERT_TRUE(address);
    EXPECT_EQ(select_bus_address(*address, environment("", "")).value(), "unix:path=/x");
    EXPECT_EQ(address->verb, "call");
    EXPECT_EQ(address->arguments, (std::vector<std::string>{"a.b", "/", "a.b", "M", "s", "x"}));
    EXPECT_EQ(address->timeout, std::chrono::milliseconds(1500));
    EXPECT_FALSE(address->expect_reply);
    EXPECT_FALSE(address->auto_start);
    EXPECT_EQ(address->json, JsonMode::Pretty);

    auto dashdash = parse({"afbusctl", "call", "a.b", "/", "a.b", "M", "--", "i", "-5"});
    ASSERT_TRUE(dashdash);
    EXPECT_EQ(dashdash->arguments.back(), "-5");

    EXPECT_FALSE(parse({"afbusctl", "--json=xml", "list"}));
    EXPECT_FALSE(parse({"afbusctl", "--expect-reply=maybe", "call"}));
    EXPECT_FALSE(parse({"afbusctl", "--timeout=soon", "call"}));
    auto bad_address = parse({"afbusctl", "--address=nonsense", "list"});
    ASSERT_TRUE(bad_address);
    EXPECT_FALSE(select_bus_address(*bad_address, environment("", "")));
}

TEST(AfbusctlCommandLine, Timespans) {
    EXPECT_EQ(parse_timespan("5").value(), std::chrono::seconds(5));
    EXPECT_EQ(parse_timespan("500ms").value(), std::chrono::milliseconds(500));
    EXPECT_EQ(parse_timespan("1min 30s").value(), std::chrono::seconds(90));
    EXPECT_FALSE(parse_timespan(""));
    EXPECT_FALSE(parse_timespan("5 parsecs"));
}

TEST(AfbusctlTable, PadsLikeBusctl) {
    Table table({{"NAME"}, {"PID", Table::Align::Right}, {"PROCESS"}, {"LAST"}});
    table.add_row({":1.10", "20326", "python3", "-"});
    table.add_row({"org.freedesktop.DBus", "7", "dbus-daemon", "x"});
    EXPECT_EQ(table.render(true),
              "NAME                   PID PROCESS     LAST\n"
              ":1.10                20326 python3     -\n"
              "org.freedesktop.DBus     7 dbus-daemon x\n");
    Table narrow({{"NAME"}, {"CONNECTION"}, {"X"}});
    narrow.add_row({":1.10", ":1.10", "-"});
    EXPECT_EQ(narrow.render(false), ":1.10 :1.10 -\n");
}

}  // namespace
}  // namespace afbusctl
