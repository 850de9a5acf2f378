// InterfaceBuilder without a bus: the Interface it describes (signatures from the C++ types, argument
// names, property access), and its handlers run on hand-built calls. The integration test
// (test/integration/test_typed_object.cpp) serves the same kinds of objects through a daemon.
#include "afbus/typed_object.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

namespace shapes {

struct Point {
    std::int32_t x = 0;
    std::int32_t y = 0;
    friend bool operator==(const Point&, const Point&) = default;
};
AFBUS_STRUCT(Point, x, y);

}  // namespace shapes

namespace afbus {
namespace {

using shapes::Point;

Message call_of(std::string_view member, const auto&... args) {
    auto builder = MessageBuilder::method_call("org.example.Dest", "/o", "org.example.I", member);
    if constexpr (sizeof...(args) != 0) append(builder, args...);
    return std::move(builder).build(7).value();
}

const Method& method_named(const Interface& interface, std::string_view name) {
    for (const Method& m : interface.methods)
        if (m.name == name) return m;
    ADD_FAILURE() << "no method " << name;
    return interface.methods.front();
}

// Runs a method's (immediate) handler on `call`: the reply message, or the handler's Error.
Expected<Message, Error> run(const Method& method, const Message& call) {
    EXPECT_TRUE(method.handler);
    auto reply = MessageBuilder::method_return(call);
    if (auto r = method.handler(call, reply); !r) return Unexpected(r.error());
    return std::move(reply).build(8).value();
}

InterfaceBuilder calculator() {
    InterfaceBuilder calc("org.example.I");
    calc.method("Add", [](std::int32_t a, std::int32_t b) { return a + b; }, {"a", "b"}, {"sum"});
    calc.method("Divide",
                [](std::int32_t a, std::int32_t b) -> Expected<std::tuple<std::int32_t, std::int32_t>, Error> {
                    if (b == 0) return Unexpected(make_error("org.example.Error.DivisionByZero", "b is 0"));
                    return std::make_tuple(a / b, a % b);
                },
                {"dividend", "divisor"}, {"quotient", "remainder"});
    calc.method("Centre", [](const std::vector<Point>& points) {
        Point sum;
        for (const Point& p : points) sum = {sum.x + p.x, sum.y + p.y};
        const auto n = static_cast<std::int32_t>(points.size());
        return Point{sum.x / n, sum.y / n};
    });
    calc.method("Count", [](const std::map<std::string, std::int32_t>& counts, std::string_view key) {
        const auto it = counts.find(std::string(key));
        return it == counts.end() ? 0 : it->second;
    });
    calc.method("Describe", [](const std::variant<std::int32_t, std::string>& v) -> std::string {
        return std::holds_alternative<std::int32_t>(v) ? "number" : "text";
    });
    calc.method("Nothing", [] {});
    calc.method("Check", [](bool ok) -> Expected<void, Error> {
        if (!ok) return Unexpected(make_error(error_names::kFailed, "not ok"));
        return {};
    });
    calc.method("Later", [](PendingReply<std::string, double>, std::int32_t) {}, {"n"}, {"text", "value"});
    return calc;
}

TEST(InterfaceBuilder, SignaturesComeFromTheTypes) {
    const InterfaceBuilder calc = calculator();
    const Interface& i = calc.description();
    EXPECT_EQ(i.name, "org.example.I");
    const Method& add = method_named(i, "Add");
    EXPECT_EQ(add.in, (std::vector<Argument>{{"a", "i"}, {"b", "i"}}));
    EXPECT_EQ(add.out, (std::vector<Argument>{{"sum", "i"}}));
    EXPECT_EQ(method_named(i, "Divide").out, (std::vector<Argument>{{"quotient", "i"}, {"remainder", "i"}}));
    // Unnamed arguments: empty names, one per argument.
    EXPECT_EQ(method_named(i, "Centre").in, (std::vector<Argument>{{"", "a(ii)"}}));
    EXPECT_EQ(method_named(i, "Centre").out, (std::vector<Argument>{{"", "(ii)"}}));
    EXPECT_EQ(joined_signature(method_named(i, "Count").in), "a{si}s");
    EXPECT_EQ(joined_signature(method_named(i, "Describe").in), "v");
    EXPECT_TRUE(method_named(i, "Nothing").in.empty());
    EXPECT_TRUE(method_named(i, "Nothing").out.empty());
    EXPECT_TRUE(method_named(i, "Check").out.empty());
    // A PendingReply parameter is not an argument: it carries the results.
    const Method& later = method_named(i, "Later");
    EXPECT_EQ(later.in, (std::vector<Argument>{{"n", "i"}}));
    EXPECT_EQ(later.out, (std::vector<Argument>{{"text", "s"}, {"value", "d"}}));
    EXPECT_TRUE(later.deferred);
    EXPECT_FALSE(later.handler);
    EXPECT_FALSE(add.deferred);
}

TEST(InterfaceBuilder, HandlersReadTheArgumentsAndAppendTheResults) {
    const InterfaceBuilder calc = calculator();
    const Interface& i = calc.description();
    auto sum = run(method_named(i, "Add"), call_of("Add", 40, 2));
    ASSERT_TRUE(sum);
    EXPECT_EQ(read_all<std::int32_t>(*sum).value(), std::make_tuple(42));

    auto division = run(method_named(i, "Divide"), call_of("Divide", 17, 5));
    ASSERT_TRUE(division);
    EXPECT_EQ((read_all<std::int32_t, std::int32_t>(*division).value()), std::make_tuple(3, 2));
    auto by_zero = run(method_named(i, "Divide"), call_of("Divide", 1, 0));
    ASSERT_FALSE(by_zero);
    EXPECT_EQ(by_zero.error(), make_error("org.example.Error.DivisionByZero", "b is 0"));

    auto centre = run(method_named(i, "Centre"), call_of("Centre", std::vector<Point>{{0, 0}, {4, 2}}));
    ASSERT_TRUE(centre);
    EXPECT_EQ(read_all<Point>(*centre).value(), std::make_tuple(Point{2, 1}));

    auto count = run(method_named(i, "Count"),
                     call_of("Count", std::map<std::string, std::int32_t>{{"a", 1}, {"b", 2}}, std::string("b")));
    ASSERT_TRUE(count);
    EXPECT_EQ(read_all<std::int32_t>(*count).value(), std::make_tuple(2));

    auto text = run(method_named(i, "Describe"), call_of("Describe", std::variant<std::string>("x")));
    ASSERT_TRUE(text);
    EXPECT_EQ(read_all<std::string>(*text).value(), std::make_tuple("text"));
    // A variant holding a type the handler does not take: InvalidArgs, and the handler does not run.
    auto mistyped = run(method_named(i, "Describe"), call_of("Describe", std::variant<double>(1.5)));
    ASSERT_FALSE(mistyped);
    EXPECT_EQ(mistyped.error().name, error_names::kInvalidArgs);

    auto nothing = run(method_named(i, "Nothing"), call_of("Nothing"));
    ASSERT_TRUE(nothing);
    EXPECT_EQ(nothing->signature(), "");
    EXPECT_TRUE(run(method_named(i, "Check"), call_of("Check", true)));
    EXPECT_EQ(run(method_named(i, "Check"), call_of("Check", false)).error(), make_error(error_names::kFailed, "not ok"));
}

// A handler's state lives in its lambda: mutable lambdas keep it between calls.
TEST(InterfaceBuilder, MutableHandlersKeepTheirState) {
    InterfaceBuilder counter("org.example.Counter");
    counter.method("Next", [n = std::int32_t{0}]() mutable { return ++n; });
    const Method& next = counter.description().methods.front();
    EXPECT_EQ(read_all<std::int32_t>(run(next, call_of("Next")).value()).value(), std::make_tuple(1));
    EXPECT_EQ(read_all<std::int32_t>(run(next, call_of("Next")).value()).value(), std::make_tuple(2));
}

// A `const Message&` parameter, first or after the PendingReply, is the call itself, not an argument.
TEST(InterfaceBuilder, HandlersMaySeeTheCall) {
    InterfaceBuilder b("org.example.I");
    b.method("Member", [](const Message& call, std::int32_t n) { return std::string(call.member()) + std::to_string(n); },
             {"n"}, {"text"});
    b.method("Later", [](PendingReply<std::string>, const Message&, std::int32_t) {});
    const Interface& i = b.description();
    EXPECT_EQ(method_named(i, "Member").in, (std::vector<Argument>{{"n", "i"}}));
    EXPECT_EQ(method_named(i, "Member").out, (std::vector<Argument>{{"text", "s"}}));
    EXPECT_EQ(joined_signature(method_named(i, "Later").in), "i");
    EXPECT_EQ(joined_signature(method_named(i, "Later").out), "s");
    EXPECT_TRUE(method_named(i, "Later").deferred);
    auto text = run(method_named(i, "Member"), call_of("Member", 4));
    EXPECT_EQ(read_all<std::string>(text.value()).value(), std::make_tuple("Member4"));
}

class Accumulator {
public:
    std::int64_t add(std::int32_t n) { return total_ += n; }
    [[nodiscard]] std::string describe(const std::string& prefix) const { return prefix + std::to_string(total_); }

private:
    std::int64_t total_ = 0;
};

TEST(InterfaceBuilder, MethodsFromMemberFunctions) {
    Accumulator accumulator;
    InterfaceBuilder b("org.example.Accumulator");
    b.method("Add", accumulator, &Accumulator::add, {"n"}, {"total"});
    b.method("Describe", std::as_const(accumulator), &Accumulator::describe);
    const Interface& i = b.description();
    EXPECT_EQ(method_named(i, "Add").in, (std::vector<Argument>{{"n", "i"}}));
    EXPECT_EQ(method_named(i, "Add").out, (std::vector<Argument>{{"total", "x"}}));
    EXPECT_EQ(joined_signature(method_named(i, "Describe").in), "s");
    ASSERT_TRUE(run(method_named(i, "Add"), call_of("Add", 5)));
    auto total = run(method_named(i, "Add"), call_of("Add", 2));
    EXPECT_EQ(read_all<std::int64_t>(total.value()).value(), std::make_tuple(std::int64_t{7}));
    auto text = run(method_named(i, "Describe"), call_of("Describe", std::string("total ")));
    EXPECT_EQ(read_all<std::string>(text.value()).value(), std::make_tuple("total 7"));
}

struct Settings {
    std::int32_t level = 3;
    std::string label = "three";
};

TEST(InterfaceBuilder, PropertiesFromCallablesAndMembers) {
    Settings settings;
    double memory = 0;
    InterfaceBuilder b("org.example.Settings");
    b.property("Version", [] { return std::uint32_t{2}; });
    b.property("Memory", [&memory] { return memory; },
               [&memory](double value) -> Expected<void, Error> {
                   if (value < 0) return Unexpected(make_error(error_names::kInvalidArgs, "negative"));
                   memory = value;
                   return {};
               });
    b.property("Level", settings, &Settings::level);
    b.property("Label", settings, &Settings::label, Property::Access::Read);
    b.write_only_property<Point>("Target", [](const Point&) {});
    const auto& properties = b.description().properties;
    ASSERT_EQ(properties.size(), 5u);
    EXPECT_EQ(properties[0].signature, "u");
    EXPECT_EQ(properties[0].access, Property::Access::Read);
    EXPECT_FALSE(properties[0].set);
    EXPECT_EQ(properties[1].signature, "d");
    EXPECT_EQ(properties[1].access, Property::Access::ReadWrite);
    EXPECT_EQ(properties[2].signature, "i");
    EXPECT_EQ(properties[3].signature, "s");
    EXPECT_EQ(properties[3].access, Property::Access::Read);
    EXPECT_EQ(properties[4].signature, "(ii)");
    EXPECT_EQ(properties[4].access, Property::Access::Write);
    EXPECT_FALSE(properties[4].get);

    EXPECT_EQ(properties[0].get(), Variant(std::uint32_t{2}));
    EXPECT_TRUE(properties[1].set(Variant(2.5)));
    EXPECT_EQ(memory, 2.5);
    EXPECT_EQ(properties[1].set(Variant(-1.0)).error().message, "negative");
    EXPECT_EQ(memory, 2.5);
    EXPECT_EQ(properties[1].set(Variant(std::string("x"))).error().name, error_names::kInvalidArgs);
    EXPECT_TRUE(properties[2].set(Variant(std::int32_t{9})));
    EXPECT_EQ(settings.level, 9);
    EXPECT_EQ(properties[2].get(), Variant(std::int32_t{9}));
    EXPECT_EQ(properties[3].get(), Variant(std::string("three")));
}

TEST(InterfaceBuilder, SignalsAreDescribedAndBuiltFromTheirTypes) {
    InterfaceBuilder b("org.example.Calc");
    const Signal<std::string, double> computed = b.signal<std::string, double>("Computed", {"expression", "result"});
    const auto moved = b.signal<Point>("Moved");
    ASSERT_EQ(b.description().signals.size(), 2u);
    EXPECT_EQ(b.description().signals[0].name, "Computed");
    EXPECT_EQ(b.description().signals[0].args, (std::vector<Argument>{{"expression", "s"}, {"result", "d"}}));
    EXPECT_EQ(b.description().signals[1].args, (std::vector<Argument>{{"", "(ii)"}}));

    auto message = computed.message("/calc", "1 + 2", 3.0);
    ASSERT_TRUE(message);
    EXPECT_EQ(message->type(), MessageType::Signal);
    EXPECT_EQ(message->path(), "/calc");
    EXPECT_EQ(message->interface(), "org.example.Calc");
    EXPECT_EQ(message->member(), "Computed");
    EXPECT_EQ((read_all<std::string, double>(*message).value()), std::make_tuple("1 + 2", 3.0));
    EXPECT_EQ(moved.message("/calc", Point{1, 2})->signature(), "(ii)");
    // Arguments that cannot be marshalled: an Error, nothing built.
    EXPECT_EQ(computed.message("/calc", "\xff", 1.0).error().name, error_names::kInvalidArgs);
}

}  // namespace
}  // namespace afbus
