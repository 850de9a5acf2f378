// afbus::Proxy against a real bus daemon (dbus-daemon, or AFBUS_TEST_DAEMON): typed calls, asynchronous
// calls, signals and properties of a service exported with the afbus object API (afbus/object.hpp), and
// every failure as an Error value.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <variant>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/proxy.hpp"
#include "afbus/types.hpp"
#include "support/pump.hpp"
#include "test_bus.hpp"

namespace calc {

struct Point {
    std::int32_t x = 0;
    std::int32_t y = 0;
    friend bool operator==(const Point&, const Point&) = default;
};
AFBUS_STRUCT(Point, x, y);

enum class Mode : std::uint8_t { Exact = 1, Rounded = 2 };

// Some of the calculator's properties, by name (Mode is left out: get_all<T> ignores what T does not list).
struct Settings {
    std::int32_t Stored = 0;
    Point Origin;
    afbus::Variant Name;
};
AFBUS_STRUCT(Settings, Stored, Origin, Name);

struct WithAMissingProperty {
    std::int32_t Stored = 0;
    std::int32_t Missing = 0;
};
AFBUS_STRUCT(WithAMissingProperty, Stored, Missing);

struct WithAMistypedProperty {
    std::string Stored;
};
AFBUS_STRUCT(WithAMistypedProperty, Stored);

}  // namespace calc

namespace afbus {
namespace {

using namespace std::chrono_literals;
using calc::Mode;
using calc::Point;
using test::connect;
using test::pump;
using test::TestBus;

constexpr std::string_view kName = "org.example.Calc";
constexpr std::string_view kPath = "/org/example/Calc";
constexpr std::string_view kCalc = "org.example.Calc";

// The service's state; touched by the service thread only while it runs, by the test after it stopped.
struct State {
    std::int32_t stored = 7;
    Mode mode = Mode::Exact;
    int resets = 0;
};

Interface calculator(Connection& connection, State& state) {
    Interface i{std::string(kCalc), {}, {}, {}};
    i.methods.push_back({"Add",
                         {{"a", "i"}, {"b", "i"}},
                         {{"sum", "i"}},
                         [](const Message& call, MessageBuilder& reply) -> Expected<void, Error> {
                             auto [a, b] = read_all<std::int32_t, std::int32_t>(call).value();
                             append(reply, a + b);
                             return {};
                         }});
    i.methods.push_back({"Divide",
                         {{"a", "i"}, {"b", "i"}},
                         {{"quotient", "i"}, {"remainder", "i"}},
                         [](const Message& call, MessageBuilder& reply) -> Expected<void, Error> {
                             auto [a, b] = read_all<std::int32_t, std::int32_t>(call).value();
                             if (b == 0)
                                 return Unexpected(make_error("org.example.Error.DivisionByZero", "b is 0"));
                             append(reply, a / b, a % b);
                             return {};
                         }});
    // A struct in, a struct out: the centre of a polygon's vertices.
    i.methods.push_back({"Centre",
                         {{"vertices", "a(ii)"}},
                         {{"centre", "(ii)"}},
                         [](const Message& call, MessageBuilder& reply) -> Expected<void, Error> {
                             auto [vertices] = read_all<std::vector<Point>>(call).value();
                             if (vertices.empty())
                                 return Unexpected(make_error(error_names::kInvalidArgs, "no vertices"));
                             Point sum;
                             for (const Point& p : vertices) sum = {sum.x + p.x, sum.y + p.y};
                             const auto n = static_cast<std::int32_t>(vertices.size());
                             append(reply, Point{sum.x / n, sum.y / n});
                             return {};
                         }});
    i.methods.push_back({"Reset", {}, {}, [&state](const Message&, MessageBuilder&) -> Expected<void, Error> {
                             ++state.resets;
                             state.stored = 0;
                             return {};
                         }});
    i.methods.push_back({"Resets",
                         {},
                         {{"count", "i"}},
                         [&state](const Message&, MessageBuilder& reply) -> Expected<void, Error> {
                             append(reply, std::int32_t{state.resets});
                             return {};
                         }});
    // Emits Tick with `value`, then Tick with a string: the same member with another signature.
    i.methods.push_back({"EmitTicks",
                         {{"value", "i"}},
                         {},
                         [&connection](const Message& call, MessageBuilder&) -> Expected<void, Error> {
                             auto [value] = read_all<std::int32_t>(call).value();
                             auto right = MessageBuilder::signal(kPath, kCalc, "Tick");
                             append(right, value);
                             auto wrong = MessageBuilder::signal(kPath, kCalc, "Tick");
                             append(wrong, std::string("not a number"));
                             auto moved = MessageBuilder::signal(kPath, kCalc, "Moved");
                             append(moved, Point{value, -value});
                             for (auto* b : {&right, &wrong, &moved}) {
                                 auto sent = connection.send(std::move(*b).build().value());
                                 if (!sent) return Unexpected(sent.error());
                             }
                             return {};
                         }});
    i.methods.push_back({"EmitStoredChanged",
                         {},
                         {},
                         [&connection](const Message&, MessageBuilder&) -> Expected<void, Error> {
                             return connection.emit_properties_changed(kPath, kCalc, {"Stored"});
                         }});
    i.methods.push_back(
        {"Quit", {}, {}, [&connection](const Message&, MessageBuilder&) -> Expected<void, Error> {
             connection.stop();
             return {};
         }});
    i.properties.push_back({"Stored", "i", Property::Access::ReadWrite,
                            [&state] { return Variant(state.stored); },
                            [&state](const Variant& v) -> Expected<void, Error> {
                                state.stored = v.get<std::int32_t>().value();
                                return {};
                            }});
    i.properties.push_back({"Mode", "y", Property::Access::ReadWrite,
                            [&state] { return Variant(state.mode); },
                            [&state](const Variant& v) -> Expected<void, Error> {
                                state.mode = v.get<Mode>().value();
                                return {};
                            }});
    i.properties.push_back({"Origin",
                            "(ii)",
                            Property::Access::Read,
                            [] {
                                return Variant(Point{3, 4});
                            },
                            {}});
    i.properties.push_back(
        {"Name", "s", Property::Access::Read, [] { return Variant(std::string("calc")); }, {}});
    i.signals.push_back({"Tick", {{"value", "i"}}});
    i.signals.push_back({"Moved", {{"to", "(ii)"}}});
    return i;
}

// The calculator service on its own connection and thread (a Connection is used from one thread): set up
// here, then run() until a Quit call.
class Service {
public:
    explicit Service(const TestBus& bus) : bus_(bus), connection_(connect(bus)) {
        if (!connection_) return;
        auto exported = connection_->export_interface(kPath, calculator(*connection_, state_));
        EXPECT_TRUE(exported) << exported.error().message;
        slot_ = std::move(*exported);
        EXPECT_EQ(connection_->request_name(kName).value(), RequestNameReply::PrimaryOwner);
        thread_ = std::thread([this] { EXPECT_TRUE(connection_->run()); });
    }
    // Quits through the bus (the test may have dropped its own connection) and joins.
    ~Service() { stop(); }

    // The state once the service stopped.
    const State& stop() {
        if (thread_.joinable()) {
            auto c = connect(bus_);
            if (c) {
                EXPECT_TRUE(Proxy(*c, std::string(kName), std::string(kPath)).call(kCalc, "Quit"));
            }
            thread_.join();
        }
        return state_;
    }

private:
    const TestBus& bus_;
    std::unique_ptr<Connection> connection_;
    State state_;
    Slot slot_;
    std::thread thread_;
};

class ProxyTest : public ::testing::Test {
protected:
    TestBus bus;
    Service service{bus};
    std::unique_ptr<Connection> client = connect(bus);
    Proxy calc{*client, std::string(kName), std::string(kPath)};
};

TEST_F(ProxyTest, CallsWithNoneOneAndSeveralResults) {
    // One result: the value itself.
    Expected<std::int32_t, Error> sum = calc.call<std::int32_t>(kCalc, "Add", 40, 2);
    ASSERT_TRUE(sum) << sum.error().message;
    EXPECT_EQ(*sum, 42);
    // Several: a tuple.
    Expected<std::tuple<std::int32_t, std::int32_t>, Error> division =
        calc.call<std::int32_t, std::int32_t>(kCalc, "Divide", 17, 5);
    ASSERT_TRUE(division) << division.error().message;
    EXPECT_EQ(*division, std::make_tuple(3, 2));
    // Structs both ways.
    auto centre = calc.call<Point>(kCalc, "Centre", std::vector<Point>{{0, 0}, {4, 0}, {4, 2}, {0, 2}});
    ASSERT_TRUE(centre) << centre.error().message;
    EXPECT_EQ(*centre, (Point{2, 1}));
    // None: Expected<void, Error>.
    Expected<void, Error> reset = calc.call(kCalc, "Reset");
    EXPECT_TRUE(reset);
    EXPECT_EQ(calc.call<std::int32_t>(kCalc, "Resets").value(), 1);
}

TEST_F(ProxyTest, ErrorsAreValues) {
    // The service's own error.
    auto by_zero = calc.call<std::int32_t, std::int32_t>(kCalc, "Divide", 1, 0);
    ASSERT_FALSE(by_zero);
    EXPECT_EQ(by_zero.error(), make_error("org.example.Error.DivisionByZero", "b is 0"));
    // Unknown method, and arguments of the wrong types: the object API's standard errors.
    EXPECT_EQ(calc.call<std::int32_t>(kCalc, "Subtract", 1, 2).error().name, error_names::kUnknownMethod);
    auto wrong_args = calc.call<std::int32_t>(kCalc, "Add", std::string("forty"), 2);
    ASSERT_FALSE(wrong_args);
    EXPECT_EQ(wrong_args.error().name, error_names::kInvalidArgs);
    // A reply of other types than asked for is an error, not a misread.
    auto as_text = calc.call<std::string>(kCalc, "Add", 1, 2);
    ASSERT_FALSE(as_text);
    EXPECT_EQ(as_text.error().name, error_names::kInvalidSignature);
    EXPECT_NE(as_text.error().message.find("got signature 'i', expected 's'"), std::string::npos)
        << as_text.error().message;
    auto too_many = calc.call<std::int32_t, std::int32_t>(kCalc, "Add", 1, 2);
    ASSERT_FALSE(too_many);
    EXPECT_EQ(too_many.error().name, error_names::kInvalidSignature);
    auto too_few = calc.call<std::int32_t>(kCalc, "Divide", 7, 2);
    ASSERT_FALSE(too_few);
    EXPECT_EQ(too_few.error().name, error_names::kInvalidSignature);
    // Arguments that cannot be marshalled never leave: invalid UTF-8.
    auto unsendable = calc.call<std::int32_t>(kCalc, "Add", std::string("\xff"), 2);
    ASSERT_FALSE(unsendable);
    EXPECT_EQ(unsendable.error().name, error_names::kInvalidArgs);
    // A destination that does not exist: the bus cannot activate it (ServiceUnknown), or, with
    // NO_AUTO_START, does not try to (NameHasNoOwner): the flag reached the bus.
    Proxy nobody(*client, "org.example.Nobody", "/");
    EXPECT_EQ(nobody.call(kCalc, "Add").error().name, error_names::kServiceUnknown);
    EXPECT_EQ(nobody.call(CallOptions{.no_auto_start = true}, kCalc, "Add").error().name,
              error_names::kNameHasNoOwner);
}

// A destination that owns its name but never answers: the call times out with NoReply.
TEST_F(ProxyTest, TimeoutsAreNoReplyErrors) {
    auto silent = connect(bus);
    ASSERT_TRUE(silent);
    ASSERT_EQ(silent->request_name("org.example.Silent").value(), RequestNameReply::PrimaryOwner);
    Proxy proxy(*client, "org.example.Silent", "/");
    auto sync = proxy.call<std::int32_t>(CallOptions{.timeout = 200ms}, kCalc, "Add", 1, 2);
    ASSERT_FALSE(sync);
    EXPECT_EQ(sync.error().name, error_names::kNoReply);

    std::optional<Expected<std::int32_t, Error>> async;
    auto slot = proxy.call_async<std::int32_t>(
        CallOptions{.timeout = 200ms}, kCalc, "Add",
        [&async](Expected<std::int32_t, Error> r) { async = std::move(r); }, 1, 2);
    ASSERT_TRUE(slot) << slot.error().message;
    ASSERT_TRUE(client->run_until([&] { return async.has_value(); }, 10s).value());
    ASSERT_FALSE(*async);
    EXPECT_EQ(async->error().name, error_names::kNoReply);
}

TEST_F(ProxyTest, NoReplyCallsAreSentWithoutWaiting) {
    ASSERT_TRUE(calc.call(CallOptions{.no_reply = true}, kCalc, "Reset"));
    // Asking for results with no_reply is refused before anything is sent.
    auto refused = calc.call<std::int32_t>(CallOptions{.no_reply = true}, kCalc, "Reset");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().name, error_names::kInvalidArgs);
    EXPECT_FALSE(
        calc.call_async(CallOptions{.no_reply = true}, kCalc, "Reset", [](Expected<void, Error>) {}));
    // The bus delivers in order: the service had the Reset before this call.
    EXPECT_EQ(calc.call<std::int32_t>(kCalc, "Resets").value(), 1);
}

TEST_F(ProxyTest, AsyncCallsYieldTypedResultsFromTheLoop) {
    std::optional<Expected<std::int32_t, Error>> sum;
    std::optional<Expected<std::tuple<std::int32_t, std::int32_t>, Error>> division;
    std::optional<Expected<std::string, Error>> mistyped;
    std::optional<Expected<void, Error>> reset;
    auto a = calc.call_async<std::int32_t>(
        kCalc, "Add", [&](Expected<std::int32_t, Error> r) { sum = std::move(r); }, 1, 2);
    auto b = calc.call_async<std::int32_t, std::int32_t>(
        kCalc, "Divide",
        [&](Expected<std::tuple<std::int32_t, std::int32_t>, Error> r) { division = std::move(r); }, 9, 4);
    auto c = calc.call_async<std::string>(
        kCalc, "Add", [&](Expected<std::string, Error> r) { mistyped = std::move(r); }, 1, 2);
    auto d = calc.call_async(kCalc, "Reset", [&](Expected<void, Error> r) { reset = std::move(r); });
    ASSERT_TRUE(a && b && c && d);
    // Nothing runs before the loop does.
    EXPECT_FALSE(sum || division || mistyped || reset);
    ASSERT_TRUE(client->run_until([&] { return sum && division && mistyped && reset; }, 10s).value());
    EXPECT_EQ(sum->value(), 3);
    EXPECT_EQ(division->value(), std::make_tuple(2, 1));
    ASSERT_FALSE(*mistyped);
    EXPECT_EQ(mistyped->error().name, error_names::kInvalidSignature);
    EXPECT_TRUE(*reset);

    // A dropped slot's handler never runs.
    bool ran = false;
    {
        auto dropped = calc.call_async<std::int32_t>(
            kCalc, "Add", [&ran](Expected<std::int32_t, Error>) { ran = true; }, 1, 1);
        ASSERT_TRUE(dropped);
    }
    EXPECT_EQ(calc.call<std::int32_t>(kCalc, "Resets").value(), 1);  // its reply has arrived by now
    ASSERT_TRUE(client->process());
    EXPECT_FALSE(ran);
}

// call_pending: the future-like result, filled in by the connection's loop; wait() runs the loop.
TEST_F(ProxyTest, PendingCallsAreFutureLikeResultsOfTheLoop) {
    auto sum = calc.call_pending<std::int32_t>(kCalc, "Add", 20, 22);
    auto division = calc.call_pending<std::int32_t, std::int32_t>(kCalc, "Divide", 9, 4);
    auto by_zero = calc.call_pending<std::int32_t, std::int32_t>(kCalc, "Divide", 1, 0);
    auto reset = calc.call_pending(kCalc, "Reset");
    ASSERT_TRUE(sum && division && by_zero && reset);
    // Nothing arrives before the loop runs.
    EXPECT_FALSE(sum->ready() || division->ready() || by_zero->ready() || reset->ready());
    // Waiting for one runs the loop, which may fill in the others too.
    ASSERT_TRUE(division->wait(10s).value());
    EXPECT_EQ(division->result().value(), std::make_tuple(2, 1));
    ASSERT_TRUE(sum->wait(10s).value());
    EXPECT_EQ(std::move(*sum).take().value(), 42);
    ASSERT_TRUE(by_zero->wait(10s).value());
    ASSERT_FALSE(by_zero->result());
    EXPECT_EQ(by_zero->result().error().name, "org.example.Error.DivisionByZero");
    ASSERT_TRUE(reset->wait(10s).value());
    EXPECT_TRUE(reset->result());
    // A dropped one is forgotten: its reply is discarded, nothing else changes.
    { auto dropped = calc.call_pending<std::int32_t>(kCalc, "Add", 1, 1); }
    EXPECT_EQ(calc.call<std::int32_t>(kCalc, "Resets").value(), 1);
    ASSERT_TRUE(client->process());
}

// The service emits Tick(i), then Tick(s), then Moved((ii)): the typed handler gets the first as a value and
// the second as an InvalidSignature error.
TEST_F(ProxyTest, SignalsArriveTypedAndMistypedOnesAsErrors) {
    std::vector<Expected<std::int32_t, Error>> ticks;
    std::vector<Point> moves;
    auto tick = calc.on_signal<std::int32_t>(
        kCalc, "Tick", [&ticks](Expected<std::int32_t, Error> t) { ticks.push_back(std::move(t)); });
    auto moved = calc.on_signal<Point>(kCalc, "Moved", [&moves](Expected<Point, Error> p) {
        EXPECT_TRUE(p) << p.error().message;
        if (p) moves.push_back(*p);
    });
    ASSERT_TRUE(tick) << tick.error().message;
    ASSERT_TRUE(moved) << moved.error().message;
    ASSERT_TRUE(calc.call(kCalc, "EmitTicks", 5));
    ASSERT_TRUE(pump({client.get()}, [&] { return ticks.size() == 2 && moves.size() == 1; }));
    ASSERT_TRUE(ticks[0]);
    EXPECT_EQ(*ticks[0], 5);
    ASSERT_FALSE(ticks[1]);
    EXPECT_EQ(ticks[1].error().name, error_names::kInvalidSignature);
    EXPECT_NE(ticks[1].error().message.find("org.example.Calc.Tick: got signature 's', expected 'i'"),
              std::string::npos)
        << ticks[1].error().message;
    EXPECT_EQ(moves, (std::vector<Point>{{5, -5}}));
}

// The match rule names the proxy's destination as sender: the same signal from another connection that
// does not own the name is not delivered by the bus.
TEST_F(ProxyTest, SignalsFromOtherSendersAreNotDelivered) {
    EXPECT_EQ(calc.signal_match_rule(kCalc, "Tick"),
              "type='signal',sender='org.example.Calc',path='/org/example/"
              "Calc',interface='org.example.Calc',member='Tick'");
    std::vector<std::int32_t> ticks;
    auto tick = calc.on_signal<std::int32_t>(
        kCalc, "Tick", [&ticks](Expected<std::int32_t, Error> t) { ticks.push_back(t.value_or(-1)); });
    ASSERT_TRUE(tick);
    auto impostor = connect(bus);
    ASSERT_TRUE(impostor);
    auto fake = MessageBuilder::signal(kPath, kCalc, "Tick");
    append(fake, std::int32_t{666});
    ASSERT_TRUE(impostor->send(std::move(fake).build().value()));
    // The impostor's signal was routed before its reply to this round trip: it would have arrived by the
    // service's Tick.
    ASSERT_TRUE(impostor->call(MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                           "org.freedesktop.DBus", "GetId")
                                   .build()
                                   .value()));
    ASSERT_TRUE(calc.call(kCalc, "EmitTicks", 1));
    ASSERT_TRUE(pump({client.get()}, [&] { return ticks.size() >= 2; }));
    EXPECT_EQ(ticks, (std::vector<std::int32_t>{1, -1}));
}

TEST_F(ProxyTest, TypedProperties) {
    EXPECT_EQ(calc.get<std::int32_t>(kCalc, "Stored").value(), 7);
    EXPECT_EQ(calc.get<Mode>(kCalc, "Mode").value(), Mode::Exact);
    EXPECT_EQ(calc.get<Point>(kCalc, "Origin").value(), (Point{3, 4}));
    EXPECT_EQ(calc.get<std::string>(kCalc, "Name").value(), "calc");
    EXPECT_EQ(calc.get<Variant>(kCalc, "Name").value(), Variant(std::string("calc")));
    auto either = calc.get<std::variant<std::string, std::int32_t>>(kCalc, "Stored");
    ASSERT_TRUE(either) << either.error().message;
    EXPECT_EQ(*either, (std::variant<std::string, std::int32_t>(7)));

    // A property of another type is an error.
    auto mistyped = calc.get<std::string>(kCalc, "Stored");
    ASSERT_FALSE(mistyped);
    EXPECT_EQ(mistyped.error().name, error_names::kInvalidSignature);
    EXPECT_EQ(calc.get<std::int32_t>(kCalc, "Nope").error().name, error_names::kUnknownProperty);

    ASSERT_TRUE(calc.set(kCalc, "Stored", std::int32_t{99}));
    ASSERT_TRUE(calc.set(kCalc, "Mode", Mode::Rounded));
    EXPECT_EQ(calc.get<std::int32_t>(kCalc, "Stored").value(), 99);
    EXPECT_EQ(calc.get<Mode>(kCalc, "Mode").value(), Mode::Rounded);
    EXPECT_EQ(calc.set(kCalc, "Name", "other").error().name, error_names::kPropertyReadOnly);
    EXPECT_EQ(calc.set(kCalc, "Stored", std::string("text")).error().name, error_names::kInvalidArgs);
    ASSERT_TRUE(calc.set(kCalc, "Stored", std::variant<std::string, std::int32_t>(std::int32_t{5})));

    auto all = calc.get_all(kCalc);
    ASSERT_TRUE(all) << all.error().message;
    EXPECT_EQ(all->size(), 4u);
    EXPECT_EQ(all->at("Stored").get<std::int32_t>().value(), 5);
    EXPECT_EQ(all->at("Origin").get<Point>().value(), (Point{3, 4}));
    EXPECT_EQ(calc.get_all("org.example.Nope").error().name, error_names::kUnknownInterface);
}

TEST_F(ProxyTest, AsyncPropertyGet) {
    std::optional<Expected<Point, Error>> origin;
    std::optional<Expected<std::string, Error>> mistyped;
    auto a = calc.get_async<Point>(kCalc, "Origin", [&](Expected<Point, Error> p) { origin = std::move(p); });
    auto b = calc.get_async<std::string>(kCalc, "Stored",
                                         [&](Expected<std::string, Error> s) { mistyped = std::move(s); });
    ASSERT_TRUE(a && b);
    EXPECT_FALSE(origin || mistyped);  // only from the loop
    ASSERT_TRUE(client->run_until([&] { return origin && mistyped; }, 10s).value());
    EXPECT_EQ(origin->value(), (Point{3, 4}));
    ASSERT_FALSE(*mistyped);
    EXPECT_EQ(mistyped->error().name, error_names::kInvalidSignature);
}

TEST_F(ProxyTest, GetAllIntoAStructByPropertyName) {
    auto settings = calc.get_all<calc::Settings>(kCalc);
    ASSERT_TRUE(settings) << settings.error().message;
    EXPECT_EQ(settings->Stored, 7);
    EXPECT_EQ(settings->Origin, (Point{3, 4}));
    EXPECT_EQ(settings->Name, Variant(std::string("calc")));

    auto missing = calc.get_all<calc::WithAMissingProperty>(kCalc);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().name, error_names::kUnknownProperty);
    EXPECT_NE(missing.error().message.find("'Missing'"), std::string::npos) << missing.error().message;
    auto mistyped = calc.get_all<calc::WithAMistypedProperty>(kCalc);
    ASSERT_FALSE(mistyped);
    EXPECT_EQ(mistyped.error().name, error_names::kInvalidSignature);
    EXPECT_NE(mistyped.error().message.find("org.example.Calc.Stored: got signature 'i', expected 's'"),
              std::string::npos)
        << mistyped.error().message;
    EXPECT_EQ(calc.get_all<calc::Settings>("org.example.Nope").error().name, error_names::kUnknownInterface);
}

TEST_F(ProxyTest, PropertiesChangedSubscription) {
    std::vector<PropertiesChanged> changes;
    auto slot = calc.on_properties_changed(kCalc, [&changes](Expected<PropertiesChanged, Error> change) {
        EXPECT_TRUE(change) << change.error().message;
        if (change) changes.push_back(std::move(*change));
    });
    ASSERT_TRUE(slot) << slot.error().message;
    ASSERT_TRUE(calc.set(kCalc, "Stored", std::int32_t{12}));
    ASSERT_TRUE(calc.call(kCalc, "EmitStoredChanged"));
    ASSERT_TRUE(pump({client.get()}, [&] { return !changes.empty(); }));
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].interface, kCalc);
    EXPECT_EQ(changes[0].changed.at("Stored").get<std::int32_t>().value(), 12);
    EXPECT_TRUE(changes[0].invalidated.empty());
}

TEST_F(ProxyTest, TheServiceSawWhatTheProxySent) {
    ASSERT_TRUE(calc.set(kCalc, "Stored", std::int32_t{-3}));
    ASSERT_TRUE(calc.set(kCalc, "Mode", Mode::Rounded));
    const State& state = service.stop();
    EXPECT_EQ(state.stored, -3);
    EXPECT_EQ(state.mode, Mode::Rounded);
}

}  // namespace
}  // namespace afbus
