// Typed objects (afbus/typed_object.hpp) and ObjectManager (afbus/object_manager.hpp) against a real bus
// daemon (dbus-daemon, or AFBUS_TEST_DAEMON): a service built with InterfaceBuilder and Object on its own
// connection and thread, and a client using afbus::Proxy and ObjectManagerProxy, then gdbus and busctl.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <variant>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/object_manager.hpp"
#include "afbus/proxy.hpp"
#include "afbus/typed_object.hpp"
#include "afbus/types.hpp"
#include "support/child_process.hpp"
#include "support/pump.hpp"
#include "support/serve_until.hpp"
#include "test_bus.hpp"

namespace geometry {

struct Point {
    std::int32_t x = 0;
    std::int32_t y = 0;
    friend bool operator==(const Point&, const Point&) = default;
};
AFBUS_STRUCT(Point, x, y);

}  // namespace geometry

namespace afbus {
namespace {

using namespace std::chrono_literals;
using geometry::Point;
using test::connect;
using test::pump;
using test::TestBus;

constexpr std::string_view kName = "org.example.TypedCalc";
constexpr std::string_view kManagerPath = "/org/example";
constexpr std::string_view kPath = "/org/example/Calc";
constexpr std::string_view kCalc = "org.example.Calc";
constexpr std::string_view kDevice = "org.example.Device";

// The service's state: touched by the service thread while it runs, by the test after it stopped.
struct State {
    double memory = 0;
    std::uint32_t computations = 0;
    std::int32_t level = 1;
    std::string secret;
    std::vector<std::string> records;  // Record(what) calls, with whether a reply was expected
};

// The calculator service: org.example.Calc at /org/example/Calc, devices (org.example.Device) added and
// removed at /org/example/devices/NAME on request, and an ObjectManager at /org/example.
class Service {
public:
    explicit Service(const TestBus& bus) : bus_(bus), connection_(connect(bus)) {
        if (!connection_) return;
        driver_.emplace(*connection_, "org.freedesktop.DBus", "/org/freedesktop/DBus");
        auto manager = connection_->add_object_manager(kManagerPath);
        EXPECT_TRUE(manager) << manager.error().message;
        if (manager) manager_ = std::move(*manager);
        calc_.emplace(*connection_, std::string(kPath));
        auto added = calc_->add(calculator());
        EXPECT_TRUE(added) << added.error().message;
        // Beside the manager's path, not below it, although its path starts with the same characters.
        sibling_.emplace(*connection_, "/org/examples/Sibling");
        InterfaceBuilder sibling("org.example.Sibling");
        sibling.property("Here", [] { return true; });
        EXPECT_TRUE(sibling_->add(std::move(sibling)));
        EXPECT_EQ(connection_->request_name(kName).value(), RequestNameReply::PrimaryOwner);
        thread_ = std::thread([this] { EXPECT_TRUE(connection_->run()); });
    }
    ~Service() { stop(); }

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
    InterfaceBuilder calculator() {
        InterfaceBuilder calc{std::string(kCalc)};
        const auto computed = calc.signal<std::string, std::int32_t>("Computed", {"expression", "result"});
        calc.method(
            "Add",
            [this, computed](std::int32_t a, std::int32_t b) {
                ++state_.computations;
                EXPECT_TRUE(calc_->emit(computed, std::to_string(a) + " + " + std::to_string(b), a + b));
                return a + b;
            },
            {"a", "b"}, {"sum"});
        calc.method(
            "Divide",
            [](std::int32_t a, std::int32_t b) -> Expected<std::tuple<std::int32_t, std::int32_t>, Error> {
                if (b == 0) return Unexpected(make_error("org.example.Error.DivisionByZero", "Cannot divide by 0"));
                return std::make_tuple(a / b, a % b);
            },
            {"dividend", "divisor"}, {"quotient", "remainder"});
        calc.method("Centre", [](const std::vector<Point>& vertices) -> Expected<Point, Error> {
            if (vertices.empty()) return Unexpected(make_error(error_names::kInvalidArgs, "no vertices"));
            Point sum;
            for (const Point& p : vertices) sum = {sum.x + p.x, sum.y + p.y};
            const auto n = static_cast<std::int32_t>(vertices.size());
            return Point{sum.x / n, sum.y / n};
        });
        calc.method("Total", [](const std::map<std::string, std::int32_t>& amounts) {
            std::int64_t total = 0;
            for (const auto& [name, amount] : amounts) total += amount;
            return total;
        });
        calc.method("Describe", [](const std::variant<std::int32_t, std::string>& value) {
            return std::visit(
                [](const auto& held) -> std::string {
                    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(held)>, std::string>) return "text " + held;
                    else return "number " + std::to_string(held);
                },
                value);
        });
        calc.method("Caller", [](const Message& call) { return std::string(call.sender()); }, {}, {"name"});
        // The call and a deferred reply together.
        calc.method("CallerLater", [](PendingReply<std::string> reply, const Message& call) {
            EXPECT_TRUE(reply.reply(std::string(call.sender())));
        });
        calc.method("Swap", [](std::string a, std::string b) { return std::make_tuple(std::move(b), std::move(a)); });
        // Deferred replies: after an asynchronous call of its own to the bus driver...
        calc.method(
            "EchoAfterBus",
            [this](PendingReply<std::string> reply, const std::string& text) {
                auto call = driver_->call_async<std::string>(
                    "org.freedesktop.DBus", "GetId", [reply, text](Expected<std::string, Error> id) mutable {
                        if (!id) return (void)reply.fail(id.error());
                        EXPECT_TRUE(reply.reply(text + " after GetId (" + std::to_string(id->size()) + " digits)"));
                    });
                if (!call) return (void)reply.fail(call.error());
                calls_.push_back(std::move(*call));
            },
            {"text"}, {"echo"});
        // ... when another call comes (Unpark), or never: dropped unanswered.
        calc.method("Park", [this](PendingReply<std::int32_t> reply) { parked_ = std::move(reply); }, {}, {"value"});
        calc.method("Unpark", [this](std::int32_t value) {
            if (!parked_) return false;
            EXPECT_TRUE(parked_->reply(value));
            parked_.reset();
            return true;
        });
        calc.method("Drop", [](PendingReply<std::int32_t>) {});
        calc.method("Record", [this](PendingReply<> reply, const std::string& what) {
            state_.records.push_back(what + (reply.expects_reply() ? " (reply expected)" : " (no reply)"));
            EXPECT_TRUE(reply.reply());
        });
        calc.method("Records", [this] { return state_.records; });
        calc.method("AddDevice", [this](const std::string& name) -> Expected<void, Error> {
            Object device(*connection_, "/org/example/devices/" + name);
            InterfaceBuilder d{std::string(kDevice)};
            d.property("Name", [name] { return name; });
            d.method("Ping", [] { return std::string("pong"); });
            if (auto added = device.add(std::move(d)); !added) return added;
            devices_.insert_or_assign(name, std::move(device));
            return {};
        });
        calc.method("RemoveDevice", [this](const std::string& name) { return devices_.erase(name) == 1; });
        calc.method("Quit", [this] { connection_->stop(); });

        calc.property("Memory", [this] { return state_.memory; },
                      [this](double value) -> Expected<void, Error> {
                          if (value < 0) return Unexpected(make_error("org.example.Error.Negative", "Memory >= 0"));
                          state_.memory = value;
                          return calc_->emit_properties_changed(kCalc, {"Memory"});
                      });
        calc.property("Computations", [this] { return state_.computations; });
        calc.property("Level", state_, &State::level);
        calc.property("Origin", [] { return Point{3, 4}; });
        calc.write_only_property<std::string>("Secret", [this](std::string value) { state_.secret = std::move(value); });
        return calc;
    }

    const TestBus& bus_;
    std::unique_ptr<Connection> connection_;
    State state_;
    std::optional<Proxy> driver_;
    std::vector<Slot> calls_;
    std::optional<PendingReply<std::int32_t>> parked_;
    Slot manager_;
    std::optional<Object> calc_;
    std::optional<Object> sibling_;
    std::map<std::string, Object> devices_;
    std::thread thread_;
};

class TypedObjectTest : public ::testing::Test {
protected:
    TestBus bus;
    Service service{bus};
    std::unique_ptr<Connection> client = connect(bus);
    Proxy calc{*client, std::string(kName), std::string(kPath)};
};

TEST_F(TypedObjectTest, MethodsTakeAndReturnTypedValues) {
    EXPECT_EQ(calc.call<std::int32_t>(kCalc, "Add", 40, 2).value(), 42);
    EXPECT_EQ((calc.call<std::int32_t, std::int32_t>(kCalc, "Divide", 17, 5).value()), std::make_tuple(3, 2));
    EXPECT_EQ(calc.call<Point>(kCalc, "Centre", std::vector<Point>{{0, 0}, {4, 0}, {4, 2}, {0, 2}}).value(),
              (Point{2, 1}));
    EXPECT_EQ(calc.call<std::int64_t>(kCalc, "Total", std::map<std::string, std::int32_t>{{"a", 1}, {"b", 2}}).value(),
              3);
    using Either = std::variant<std::int32_t, std::string>;
    EXPECT_EQ(calc.call<std::string>(kCalc, "Describe", Either(7)).value(), "number 7");
    EXPECT_EQ(calc.call<std::string>(kCalc, "Describe", Either("x")).value(), "text x");
    EXPECT_EQ((calc.call<std::string, std::string>(kCalc, "Swap", std::string("a"), std::string("b")).value()),
              std::make_tuple("b", "a"));
}

TEST_F(TypedObjectTest, HandlersSeeTheirCaller) {
    EXPECT_EQ(calc.call<std::string>(kCalc, "Caller").value(), client->unique_name());
    EXPECT_EQ(calc.call<std::string>(kCalc, "CallerLater").value(), client->unique_name());
}

TEST_F(TypedObjectTest, ErrorsAndInvalidArguments) {
    auto by_zero = calc.call<std::int32_t, std::int32_t>(kCalc, "Divide", 1, 0);
    ASSERT_FALSE(by_zero);
    EXPECT_EQ(by_zero.error(), make_error("org.example.Error.DivisionByZero", "Cannot divide by 0"));
    EXPECT_EQ(calc.call<Point>(kCalc, "Centre", std::vector<Point>{}).error().name, error_names::kInvalidArgs);
    // Arguments of other types than the handler's: the connection refuses them from the derived signature.
    auto wrong = calc.call<std::int32_t>(kCalc, "Add", std::string("forty"), 2);
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.error().name, error_names::kInvalidArgs);
    EXPECT_NE(wrong.error().message.find("expecting 'ii'"), std::string::npos) << wrong.error().message;
    EXPECT_EQ(calc.call<std::int32_t>(kCalc, "Add", 1).error().name, error_names::kInvalidArgs);
    // A variant holding a type the handler's std::variant does not list.
    auto other_alternative = calc.call<std::string>(kCalc, "Describe", std::variant<double>(1.5));
    ASSERT_FALSE(other_alternative);
    EXPECT_EQ(other_alternative.error().name, error_names::kInvalidArgs);
    EXPECT_EQ(calc.call(kCalc, "Subtract").error().name, error_names::kUnknownMethod);
}

TEST_F(TypedObjectTest, DeferredRepliesAnswerFromTheLoop) {
    // The service answers once its own call to the bus driver returned.
    auto echo = calc.call<std::string>(kCalc, "EchoAfterBus", std::string("hello"));
    ASSERT_TRUE(echo) << echo.error().message;
    EXPECT_EQ(*echo, "hello after GetId (32 digits)");

    // Park is answered only when Unpark comes.
    std::optional<Expected<std::int32_t, Error>> parked;
    auto slot = calc.call_async<std::int32_t>(kCalc, "Park", [&](Expected<std::int32_t, Error> v) { parked = std::move(v); });
    ASSERT_TRUE(slot);
    ASSERT_TRUE(calc.call<bool>(kCalc, "Unpark", 5).value());  // the bus delivered Park first
    ASSERT_TRUE(client->run_until([&] { return parked.has_value(); }, 10s).value());
    EXPECT_EQ(parked->value(), 5);
    EXPECT_FALSE(calc.call<bool>(kCalc, "Unpark", 6).value());
}

TEST_F(TypedObjectTest, ADroppedReplyIsANoReplyErrorAtOnce) {
    const auto start = std::chrono::steady_clock::now();
    auto dropped = calc.call<std::int32_t>(CallOptions{.timeout = 60s}, kCalc, "Drop");
    ASSERT_FALSE(dropped);
    EXPECT_EQ(dropped.error().name, error_names::kNoReply);
    EXPECT_NE(dropped.error().message.find("org.example.Calc.Drop was dropped without a reply"), std::string::npos)
        << dropped.error().message;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 30s) << "the caller waited for its timeout";
}

// NO_REPLY_EXPECTED: the handler sees it, its reply() succeeds, and nothing is sent back.
TEST_F(TypedObjectTest, NoReplyExpectedCallsGetNoAnswer) {
    std::vector<std::string> answers;  // method returns and errors this client did not wait for
    auto returns = client->subscribe("type='method_return'", [&](const Message& m) {
        answers.push_back("return to " + std::to_string(m.reply_serial().value_or(0)));
    });
    auto errors = client->subscribe("type='error'", [&](const Message& m) { answers.push_back(std::string(m.error_name())); });
    ASSERT_TRUE(returns && errors);
    auto quiet = MessageBuilder::method_call(kName, kPath, kCalc, "Record");
    append(quiet, std::string("quiet"));
    quiet.no_reply_expected();
    ASSERT_TRUE(client->send(std::move(quiet).build().value()));
    auto dropped = MessageBuilder::method_call(kName, kPath, kCalc, "Drop");
    dropped.no_reply_expected();
    ASSERT_TRUE(client->send(std::move(dropped).build().value()));
    ASSERT_TRUE(calc.call(kCalc, "Record", std::string("loud")));
    // Anything sent back to the first two came before this reply, and is dispatched now.
    auto records = calc.call<std::vector<std::string>>(kCalc, "Records");
    ASSERT_TRUE(client->process());
    EXPECT_EQ(records.value(), (std::vector<std::string>{"quiet (no reply)", "loud (reply expected)"}));
    EXPECT_TRUE(answers.empty()) << answers.front();
}

TEST_F(TypedObjectTest, TypedSignalsReachATypedProxy) {
    std::vector<std::tuple<std::string, std::int32_t>> computed;
    auto slot = calc.on_signal<std::string, std::int32_t>(
        kCalc, "Computed", [&](Expected<std::tuple<std::string, std::int32_t>, Error> c) {
            EXPECT_TRUE(c) << c.error().message;
            if (c) computed.push_back(*c);
        });
    ASSERT_TRUE(slot) << slot.error().message;
    ASSERT_TRUE(calc.call<std::int32_t>(kCalc, "Add", 2, 3));
    ASSERT_TRUE(pump({client.get()}, [&] { return !computed.empty(); }));
    EXPECT_EQ(computed, (std::vector<std::tuple<std::string, std::int32_t>>{{"2 + 3", 5}}));
}

TEST_F(TypedObjectTest, Properties) {
    std::vector<PropertiesChanged> changes;
    auto watch = calc.on_properties_changed(kCalc, [&](Expected<PropertiesChanged, Error> change) {
        EXPECT_TRUE(change) << change.error().message;
        if (change) changes.push_back(std::move(*change));
    });
    ASSERT_TRUE(watch);

    EXPECT_EQ(calc.get<double>(kCalc, "Memory").value(), 0.0);
    EXPECT_EQ(calc.get<Point>(kCalc, "Origin").value(), (Point{3, 4}));
    ASSERT_TRUE(calc.set(kCalc, "Memory", 2.5));
    EXPECT_EQ(calc.get<double>(kCalc, "Memory").value(), 2.5);
    ASSERT_TRUE(pump({client.get()}, [&] { return !changes.empty(); }));
    EXPECT_EQ(changes.front().changed.at("Memory"), Variant(2.5));

    // The setter's own error, a value of the wrong type, read-only and write-only properties.
    EXPECT_EQ(calc.set(kCalc, "Memory", -1.0).error(), make_error("org.example.Error.Negative", "Memory >= 0"));
    EXPECT_EQ(calc.set(kCalc, "Memory", std::string("lots")).error().name, error_names::kInvalidArgs);
    EXPECT_EQ(calc.set(kCalc, "Computations", std::uint32_t{9}).error().name, error_names::kPropertyReadOnly);
    ASSERT_TRUE(calc.set(kCalc, "Secret", std::string("psst")));
    EXPECT_EQ(calc.get<std::string>(kCalc, "Secret").error().name, error_names::kAccessDenied);
    // A data member.
    ASSERT_TRUE(calc.set(kCalc, "Level", std::int32_t{4}));
    EXPECT_EQ(calc.get<std::int32_t>(kCalc, "Level").value(), 4);

    ASSERT_TRUE(calc.call<std::int32_t>(kCalc, "Add", 1, 1));
    auto all = calc.get_all(kCalc);
    ASSERT_TRUE(all) << all.error().message;
    EXPECT_EQ(*all, (std::map<std::string, Variant>{{"Memory", Variant(2.5)},
                                                    {"Computations", Variant(std::uint32_t{1})},
                                                    {"Level", Variant(std::int32_t{4})},
                                                    {"Origin", Variant(Point{3, 4})}}));
    const State& state = service.stop();
    EXPECT_EQ(state.secret, "psst");
    EXPECT_EQ(state.level, 4);
}

TEST_F(TypedObjectTest, IntrospectionComesFromTheRegistration) {
    auto xml = calc.call<std::string>("org.freedesktop.DBus.Introspectable", "Introspect");
    ASSERT_TRUE(xml) << xml.error().message;
    for (const char* part : {
             "<interface name=\"org.example.Calc\">",
             "    <method name=\"Add\">\n"
             "      <arg name=\"a\" type=\"i\" direction=\"in\"/>\n"
             "      <arg name=\"b\" type=\"i\" direction=\"in\"/>\n"
             "      <arg name=\"sum\" type=\"i\" direction=\"out\"/>\n"
             "    </method>\n",
             "    <method name=\"Centre\">\n"
             "      <arg type=\"a(ii)\" direction=\"in\"/>\n"
             "      <arg type=\"(ii)\" direction=\"out\"/>\n",
             "<arg type=\"a{si}\" direction=\"in\"/>\n      <arg type=\"x\" direction=\"out\"/>",
             "<arg type=\"v\" direction=\"in\"/>",
             // A deferred method: its results are its PendingReply's types.
             "    <method name=\"Park\">\n      <arg name=\"value\" type=\"i\" direction=\"out\"/>\n    </method>\n",
             "    <method name=\"Quit\"/>\n",
             "    <signal name=\"Computed\">\n"
             "      <arg name=\"expression\" type=\"s\"/>\n"
             "      <arg name=\"result\" type=\"i\"/>\n"
             "    </signal>\n",
             "<property name=\"Memory\" type=\"d\" access=\"readwrite\"/>",
             "<property name=\"Computations\" type=\"u\" access=\"read\"/>",
             "<property name=\"Level\" type=\"i\" access=\"readwrite\"/>",
             "<property name=\"Origin\" type=\"(ii)\" access=\"read\"/>",
             "<property name=\"Secret\" type=\"s\" access=\"write\"/>",
             "<interface name=\"org.freedesktop.DBus.Properties\">",
         }) {
        EXPECT_NE(xml->find(part), std::string::npos) << "missing:\n" << part << "\nin:\n" << *xml;
    }
    Proxy root(*client, std::string(kName), std::string(kManagerPath));
    auto manager_xml = root.call<std::string>("org.freedesktop.DBus.Introspectable", "Introspect");
    ASSERT_TRUE(manager_xml) << manager_xml.error().message;
    EXPECT_NE(manager_xml->find("<interface name=\"org.freedesktop.DBus.ObjectManager\">\n"
                                "    <method name=\"GetManagedObjects\">\n"
                                "      <arg name=\"objpath_interfaces_and_properties\" type=\"a{oa{sa{sv}}}\" "
                                "direction=\"out\"/>"),
              std::string::npos)
        << *manager_xml;
    EXPECT_NE(manager_xml->find("<node name=\"Calc\"/>"), std::string::npos) << *manager_xml;
}

TEST_F(TypedObjectTest, ObjectManagerListsAndAnnouncesObjects) {
    ObjectManagerProxy manager(*client, std::string(kName), std::string(kManagerPath));
    std::vector<InterfacesAdded> added;
    std::vector<InterfacesRemoved> removed;
    auto on_added = manager.on_interfaces_added([&](Expected<InterfacesAdded, Error> a) {
        EXPECT_TRUE(a) << a.error().message;
        if (a) added.push_back(std::move(*a));
    });
    auto on_removed = manager.on_interfaces_removed([&](Expected<InterfacesRemoved, Error> r) {
        EXPECT_TRUE(r) << r.error().message;
        if (r) removed.push_back(std::move(*r));
    });
    ASSERT_TRUE(on_added && on_removed);

    auto objects = manager.get_managed_objects();
    ASSERT_TRUE(objects) << objects.error().message;
    ASSERT_EQ(objects->size(), 1u) << "not /org/examples/Sibling either";
    const InterfacesAndProperties& calc_object = objects->at(ObjectPath(std::string(kPath)));
    ASSERT_EQ(calc_object.size(), 1u) << "only the object's own interfaces, not Properties & co";
    EXPECT_EQ(calc_object.at(std::string(kCalc)).at("Origin"), Variant(Point{3, 4}));
    EXPECT_EQ(calc_object.at(std::string(kCalc)).count("Secret"), 0u);  // not readable

    ASSERT_TRUE(calc.call(kCalc, "AddDevice", std::string("lamp")));
    ASSERT_TRUE(pump({client.get()}, [&] { return !added.empty(); }));
    ASSERT_EQ(added.size(), 1u);
    EXPECT_EQ(added[0].path, ObjectPath("/org/example/devices/lamp"));
    EXPECT_EQ(added[0].interfaces,
              (InterfacesAndProperties{{std::string(kDevice), {{"Name", Variant(std::string("lamp"))}}}}));
    objects = manager.get_managed_objects();
    ASSERT_TRUE(objects);
    EXPECT_EQ(objects->size(), 2u);
    EXPECT_EQ(Proxy(*client, std::string(kName), "/org/example/devices/lamp").call<std::string>(kDevice, "Ping").value(),
              "pong");

    ASSERT_TRUE(calc.call<bool>(kCalc, "RemoveDevice", std::string("lamp")).value());
    ASSERT_TRUE(pump({client.get()}, [&] { return !removed.empty(); }));
    EXPECT_EQ(removed[0].path, ObjectPath("/org/example/devices/lamp"));
    EXPECT_EQ(removed[0].interfaces, (std::vector<std::string>{std::string(kDevice)}));
    EXPECT_EQ(manager.get_managed_objects()->size(), 1u);

    // No manager at the calculator's own path.
    ObjectManagerProxy not_a_manager(*client, std::string(kName), std::string(kPath));
    EXPECT_EQ(not_a_manager.get_managed_objects().error().name, error_names::kUnknownInterface);
}

// Unmodified gdbus and busctl calling the typed object (each skips if not installed).
class ForeignClientsTest : public TypedObjectTest {
protected:
    std::unique_ptr<test::ChildProcess> run(std::vector<std::string> argv) {
        auto child = std::make_unique<test::ChildProcess>(
            std::move(argv), test::child_environment({"DBUS_SESSION_BUS_ADDRESS=" + bus.address(),
                                                      "DBUS_SYSTEM_BUS_ADDRESS=" + bus.address(),
                                                      "GIO_USE_VFS=local", "SYSTEMD_PAGER=cat", "LC_ALL=C.UTF-8"},
                                                     {"DISPLAY="}));
        EXPECT_TRUE(child->wait(20s)) << "did not finish: " << child->report();
        return child;
    }
};

TEST_F(ForeignClientsTest, Gdbus) {
    const std::string gdbus = test::find_program("gdbus");
    if (gdbus.empty()) GTEST_SKIP() << "gdbus is not installed (libglib2.0-bin)";
    auto divide = run({gdbus, "call", "--address", bus.address(), "--dest", std::string(kName), "--object-path",
                       std::string(kPath), "--method", "org.example.Calc.Divide", "17", "5"});
    EXPECT_TRUE(divide->succeeded()) << divide->report();
    EXPECT_EQ(divide->out(), "(3, 2)\n");
    auto echo = run({gdbus, "call", "--address", bus.address(), "--dest", std::string(kName), "--object-path",
                     std::string(kPath), "--method", "org.example.Calc.EchoAfterBus", "gdbus"});
    EXPECT_TRUE(echo->succeeded()) << echo->report();
    EXPECT_EQ(echo->out(), "('gdbus after GetId (32 digits)',)\n");
    auto by_zero = run({gdbus, "call", "--address", bus.address(), "--dest", std::string(kName), "--object-path",
                        std::string(kPath), "--method", "org.example.Calc.Divide", "1", "0"});
    EXPECT_FALSE(by_zero->succeeded());
    EXPECT_NE(by_zero->err().find("org.example.Error.DivisionByZero"), std::string::npos) << by_zero->report();
}

TEST_F(ForeignClientsTest, Busctl) {
    const std::string busctl = test::find_program("busctl");
    if (busctl.empty()) GTEST_SKIP() << "busctl is not installed (systemd)";
    auto total = run({busctl, "--address=" + bus.address(), "call", std::string(kName), std::string(kPath),
                      std::string(kCalc), "Total", "a{si}", "2", "a", "1", "b", "2"});
    EXPECT_TRUE(total->succeeded()) << total->report();
    EXPECT_EQ(total->out(), "x 3\n");
    auto origin = run({busctl, "--address=" + bus.address(), "get-property", std::string(kName), std::string(kPath),
                       std::string(kCalc), "Origin"});
    EXPECT_TRUE(origin->succeeded()) << origin->report();
    EXPECT_EQ(origin->out(), "(ii) 3 4\n");
}

// libafbus's typed proxy calling an object GDBus serves (integration/gdbus_calculator.py, through
// PyGObject): calls, a D-Bus error, a signal, properties both ways.
TEST_F(ForeignClientsTest, ProxyCallsAGdbusObject) {
    const char* script = std::getenv("GDBUS_CALCULATOR");
    ASSERT_TRUE(script && *script) << "GDBUS_CALCULATOR is not set (test/meson.build sets it)";
    // PyGObject is Debian's module for Debian's python3; a python3 earlier in $PATH (pyenv) lacks it.
    const std::string python = ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : test::find_program("python3");
    if (python.empty()) GTEST_SKIP() << "python3 is not installed (Debian packages python3, python3-gi)";
    constexpr std::string_view kGcalc = "org.example.GCalc";
    // The service's name appearing is its readiness: subscribed before it starts.
    bool appeared = false;
    auto owner = client->subscribe("type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',"
                                   "arg0='org.example.GCalc'",
                                   [&appeared](const Message& m) {
                                       auto change = read_all<std::string, std::string, std::string>(m);
                                       if (change && !std::get<2>(*change).empty()) appeared = true;
                                   });
    ASSERT_TRUE(owner);
    test::ChildProcess service({python, script, bus.address()}, test::child_environment({}, {}));
    Connection* const served[] = {client.get()};
    ASSERT_TRUE(test::serve_until([&] { return appeared || service.finished(); }, served, {&service}, 30s))
        << service.report();
    if (service.exited_with(77)) GTEST_SKIP() << "PyGObject (python3-gi) is not installed";
    ASSERT_TRUE(appeared) << service.report();

    Proxy gcalc(*client, std::string(kGcalc), "/org/example/GCalc");
    std::optional<std::string> computed;
    auto signal = gcalc.on_signal<std::string, double>(
        kGcalc, "Computed", [&computed](Expected<std::tuple<std::string, double>, Error> s) {
            if (s) computed = std::get<0>(*s);
        });
    ASSERT_TRUE(signal);
    EXPECT_EQ(gcalc.call<double>(kGcalc, "Add", 2.0, 3.0).value(), 5.0);
    ASSERT_TRUE(test::serve_until([&computed] { return computed.has_value(); }, served, {&service}, 10s));
    EXPECT_EQ(*computed, "2 + 3");
    auto by_zero = gcalc.call<double>(kGcalc, "Divide", 1.0, 0.0);
    ASSERT_FALSE(by_zero);
    EXPECT_EQ(by_zero.error().name, "org.example.GCalc.Error.DivisionByZero");
    ASSERT_TRUE(gcalc.set(kGcalc, "Memory", 4.5));
    EXPECT_EQ(gcalc.get<double>(kGcalc, "Memory").value(), 4.5);
    // Read as another type: an error, never a misread value.
    EXPECT_FALSE(gcalc.get<std::string>(kGcalc, "Memory"));
    ASSERT_TRUE(gcalc.call<>(kGcalc, "Quit"));
    service.wait(10s);
    EXPECT_TRUE(service.succeeded()) << service.report();
}

}  // namespace
}  // namespace afbus
