// Bindings afbus-xml2cpp generated during the build from test/xml2cpp/org.example.Calculator.xml (the
// calculator of examples/), used on a real bus daemon (dbus-daemon, or AFBUS_TEST_DAEMON): a service
// implementing the generated adaptor, a client calling it through the generated proxy. Methods, an error
// reply, an asynchronous call, a signal, properties and PropertiesChanged, and the introspection data the
// adaptor's InterfaceBuilder serves, with the XML's names.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "afbus/connection.hpp"
#include "org.example.Calculator-adaptor.hpp"
#include "org.example.Calculator-proxy.hpp"
#include "support/pump.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

using test::connect;
using test::pump;
using test::TestBus;

constexpr std::string_view kName = "org.example.Calculator";
constexpr std::string_view kPath = "/org/example/Calculator";
constexpr std::string_view kDivisionByZero = "org.example.Calculator.Error.DivisionByZero";

// The calculator, written against the generated adaptor: only its virtual functions.
class Calculator final : public org::example::CalculatorAdaptor {
public:
    Calculator(Object& object, Connection& connection) : CalculatorAdaptor(object), connection_(connection) {}

protected:
    Expected<double, Error> Add(double a, double b) override { return computed("+", a, b, a + b); }
    Expected<double, Error> Multiply(double a, double b) override { return computed("*", a, b, a * b); }
    Expected<double, Error> Divide(double dividend, double divisor) override {
        if (divisor == 0) return Unexpected(make_error(kDivisionByZero, "Cannot divide by 0"));
        return computed("/", dividend, divisor, dividend / divisor);
    }
    Expected<void, Error> Quit() override {
        connection_.stop();
        return {};
    }
    std::uint32_t get_Computations() override { return computations_; }
    double get_Memory() override { return memory_; }
    Expected<void, Error> set_Memory(double value) override {
        if (value < 0)
            return Unexpected(make_error(error_names::kInvalidArgs, "Memory holds no negative numbers"));
        memory_ = value;
        EXPECT_TRUE(emit_properties_changed({"Memory"}));
        return {};
    }

private:
    double computed(const char* op, double a, double b, double result) {
        ++computations_;
        EXPECT_TRUE(emit_Computed(
            std::to_string(static_cast<int>(a)) + " " + op + " " + std::to_string(static_cast<int>(b)),
            result));
        EXPECT_TRUE(emit_properties_changed({"Computations"}));
        return result;
    }

    Connection& connection_;
    std::uint32_t computations_ = 0;
    double memory_ = 0;
};

// The service on its own connection and thread until Quit.
class Service {
public:
    explicit Service(const TestBus& bus) : connection_(connect(bus)) {
        if (!connection_) return;
        object_.emplace(*connection_, std::string(kPath));
        calculator_ = std::make_unique<Calculator>(*object_, *connection_);
        auto registered = calculator_->register_adaptor();
        EXPECT_TRUE(registered) << registered.error().message;
        EXPECT_EQ(connection_->request_name(kName).value(), RequestNameReply::PrimaryOwner);
        thread_ = std::thread([this] { EXPECT_TRUE(connection_->run()); });
    }
    ~Service() {
        if (thread_.joinable()) thread_.join();
    }
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

private:
    std::unique_ptr<Connection> connection_;
    std::optional<Object> object_;  // declared before the adaptor, so dropped after it
    std::unique_ptr<Calculator> calculator_;
    std::thread thread_;
};

class Xml2cppCalculatorTest : public ::testing::Test {
protected:
    TestBus bus_;
};

TEST_F(Xml2cppCalculatorTest, GeneratedProxyCallsGeneratedAdaptor) {
    auto client = connect(bus_);
    ASSERT_TRUE(client);
    Service service(bus_);
    org::example::CalculatorProxy calculator(*client, std::string(kName), std::string(kPath));

    std::optional<Expected<std::tuple<std::string, double>, Error>> computed;
    auto computed_slot = calculator.on_Computed([&](Expected<std::tuple<std::string, double>, Error> signal) {
        if (!computed) computed = std::move(signal);
    });
    ASSERT_TRUE(computed_slot) << computed_slot.error().message;
    std::optional<Expected<PropertiesChanged, Error>> memory_changed;
    auto changes = calculator.on_properties_changed([&](Expected<PropertiesChanged, Error> change) {
        if (change && change->changed.count("Memory") == 0) return;
        memory_changed = std::move(change);
    });
    ASSERT_TRUE(changes) << changes.error().message;

    auto sum = calculator.Add(2, 3);
    ASSERT_TRUE(sum) << sum.error().message;
    EXPECT_EQ(*sum, 5.0);
    ASSERT_TRUE(pump({client.get()}, [&] { return computed.has_value(); }));
    ASSERT_TRUE(*computed) << computed->error().message;
    EXPECT_EQ(std::get<0>(**computed), "2 + 3");
    EXPECT_EQ(std::get<1>(**computed), 5.0);

    auto quotient = calculator.Divide(84, 2);
    ASSERT_TRUE(quotient) << quotient.error().message;
    EXPECT_EQ(*quotient, 42.0);
    auto by_zero = calculator.Divide(1, 0);
    ASSERT_FALSE(by_zero);
    EXPECT_EQ(by_zero.error().name, kDivisionByZero);

    std::optional<Expected<double, Error>> product;
    auto pending =
        calculator.Multiply_async(6, 7, [&](Expected<double, Error> reply) { product = std::move(reply); });
    ASSERT_TRUE(pending) << pending.error().message;
    ASSERT_TRUE(pump({client.get()}, [&] { return product.has_value(); }));
    ASSERT_TRUE(*product) << product->error().message;
    EXPECT_EQ(**product, 42.0);

    auto computations = calculator.get_Computations();
    ASSERT_TRUE(computations) << computations.error().message;
    EXPECT_EQ(*computations, 3u);
    // Computations is read-only: the proxy has no setter, and the service refuses one sent by hand.
    auto read_only = calculator.proxy().set(org::example::CalculatorProxy::interface_name, "Computations",
                                            std::uint32_t{0});
    ASSERT_FALSE(read_only);
    EXPECT_EQ(read_only.error().name, error_names::kPropertyReadOnly);

    ASSERT_TRUE(calculator.set_Memory(2.5));
    auto memory = calculator.get_Memory();
    ASSERT_TRUE(memory) << memory.error().message;
    EXPECT_EQ(*memory, 2.5);
    ASSERT_TRUE(pump({client.get()}, [&] { return memory_changed.has_value(); }));
    ASSERT_TRUE(*memory_changed) << memory_changed->error().message;
    EXPECT_EQ((*memory_changed)->changed.at("Memory").get<double>().value(), 2.5);
    // The setter's Error is the caller's error reply.
    auto refused = calculator.set_Memory(-1);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().name, error_names::kInvalidArgs);

    auto all = calculator.get_all_properties();
    ASSERT_TRUE(all) << all.error().message;
    EXPECT_EQ(all->size(), 2u);
    EXPECT_EQ(all->at("Computations").get<std::uint32_t>().value(), 3u);

    // The adaptor serves the XML's argument names in its introspection data.
    auto xml = calculator.proxy().call<std::string>("org.freedesktop.DBus.Introspectable", "Introspect");
    ASSERT_TRUE(xml) << xml.error().message;
    for (const char* name : {"\"dividend\"", "\"divisor\"", "\"quotient\"", "\"expression\"", "\"Memory\""})
        EXPECT_NE(xml->find(name), std::string::npos) << name << " in\n" << *xml;

    ASSERT_TRUE(calculator.Quit());
}

}  // namespace
}  // namespace afbus
