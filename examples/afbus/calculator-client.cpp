// calculator-client, libafbus edition: the sdbus-c++ example client (../sdbus-cpp/calculator-client.cpp)
// written with afbus::Proxy against the same sdbus-c++ service. Typed calls, an asynchronous call, a
// typed signal, properties and PropertiesChanged; every failure is a value, and one thread runs the
// connection's loop only while it waits for something.
//
//   afbus-calculator-client [--address ADDRESS] [--quit]
//
// Without --address it uses the session bus (DBUS_SESSION_BUS_ADDRESS). --quit asks the service to exit
// at the end. Exits 0 if every answer was the expected one, 1 with a message on the first that was not.
#include <afbus/connection.hpp>
#include <afbus/proxy.hpp>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>

namespace {

using namespace std::chrono_literals;

constexpr std::string_view kInterface = "org.example.Calculator";
constexpr std::string_view kDivisionByZero = "org.example.Calculator.Error.DivisionByZero";
constexpr std::string_view kPropertyReadOnly = "org.freedesktop.DBus.Error.PropertyReadOnly";

bool failed(const std::string& what, const std::string& why) {
    std::cerr << "calculator-client: FAILED: " << what << ": " << why << '\n';
    return false;
}

// `got` must hold `wanted`.
template <class T>
bool expect(const std::string& what, const afbus::Expected<T, afbus::Error>& got, const T& wanted) {
    if (!got) return failed(what, got.error().name + ": " + got.error().message);
    std::cout << what << " = " << *got << std::endl;
    if (*got != wanted) return failed(what, "not the expected value");
    return true;
}

// `got` must be the D-Bus error `wanted`.
template <class Result>
bool expect_error(const std::string& what, const Result& got, std::string_view wanted) {
    if (got) return failed(what, "succeeded, expected " + std::string(wanted));
    std::cout << what << " -> " << got.error().name << ": " << got.error().message << std::endl;
    if (got.error().name != wanted) return failed(what, "expected " + std::string(wanted));
    return true;
}

// Runs the connection's loop until `done` (signals and async replies are handled there).
bool wait_for(afbus::Connection& connection, const std::function<bool()>& done, const std::string& what) {
    auto finished = connection.run_until(done, 10s);
    if (!finished) return failed(what, finished.error().message);
    if (!*finished) return failed(what, "nothing within 10 s");
    return true;
}

bool run(afbus::Connection& connection, bool quit) {
    afbus::Proxy calculator(connection, "org.example.Calculator", "/org/example/Calculator");

    // Only the first Computed signal is checked: Add's.
    std::optional<afbus::Expected<std::string, afbus::Error>> first_computed;
    auto computed = calculator.on_signal<std::string, double>(
        kInterface, "Computed", [&](afbus::Expected<std::tuple<std::string, double>, afbus::Error> signal) {
            if (first_computed) return;
            if (!signal)
                first_computed = afbus::Unexpected(signal.error());
            else
                first_computed =
                    (std::ostringstream() << std::get<0>(*signal) << " = " << std::get<1>(*signal)).str();
        });
    if (!computed) return failed("subscribe to Computed", computed.error().message);
    std::optional<afbus::Expected<double, afbus::Error>> memory_changed;
    auto changes = calculator.on_properties_changed(
        kInterface, [&](afbus::Expected<afbus::PropertiesChanged, afbus::Error> change) {
            if (!change) {
                memory_changed = afbus::Unexpected(change.error());
            } else if (auto memory = change->changed.find("Memory"); memory != change->changed.end()) {
                auto value = memory->second.get<double>();
                if (value)
                    memory_changed = *value;
                else
                    memory_changed = afbus::Unexpected(
                        afbus::make_error(afbus::error_names::kInvalidSignature, "Memory is not a double"));
            }
        });
    if (!changes) return failed("subscribe to PropertiesChanged", changes.error().message);

    if (!expect("Add(2, 3)", calculator.call<double>(kInterface, "Add", 2.0, 3.0), 5.0)) return false;
    if (!wait_for(
            connection, [&] { return first_computed.has_value(); }, "signal Computed"))
        return false;
    if (!expect("signal Computed", *first_computed, std::string("2 + 3 = 5"))) return false;

    if (!expect("Divide(84, 2)", calculator.call<double>(kInterface, "Divide", 84.0, 2.0), 42.0))
        return false;
    if (!expect_error("Divide(1, 0)", calculator.call<double>(kInterface, "Divide", 1.0, 0.0),
                      kDivisionByZero))
        return false;

    std::optional<afbus::Expected<double, afbus::Error>> product;
    auto pending = calculator.call_async<double>(
        kInterface, "Multiply",
        [&](afbus::Expected<double, afbus::Error> reply) { product = std::move(reply); }, 6.0, 7.0);
    if (!pending) return failed("async Multiply", pending.error().message);
    if (!wait_for(
            connection, [&] { return product.has_value(); }, "async Multiply"))
        return false;
    if (!expect("async Multiply(6, 7)", *product, 42.0)) return false;

    if (!expect("property Computations", calculator.get<std::uint32_t>(kInterface, "Computations"),
                std::uint32_t{3}))
        return false;
    if (!expect_error("set Computations", calculator.set(kInterface, "Computations", std::uint32_t{0}),
                      kPropertyReadOnly))
        return false;

    auto set_memory = calculator.set(kInterface, "Memory", 2.5);
    if (!set_memory) return failed("set Memory", set_memory.error().message);
    if (!expect("property Memory", calculator.get<double>(kInterface, "Memory"), 2.5)) return false;
    if (!wait_for(
            connection, [&] { return memory_changed.has_value(); }, "PropertiesChanged"))
        return false;
    if (!expect("PropertiesChanged Memory", *memory_changed, 2.5)) return false;

    if (quit) {
        auto quitting = calculator.call(kInterface, "Quit");
        if (!quitting) return failed("Quit", quitting.error().message);
        std::cout << "Quit acknowledged" << std::endl;
    }
    return true;
}

}  // namespace

int main(int argc, char* argv[]) {
    std::string address;
    bool quit = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--address") == 0 && i + 1 < argc) {
            address = argv[++i];
        } else if (std::strcmp(argv[i], "--quit") == 0) {
            quit = true;
        } else {
            std::cerr << "usage: " << argv[0] << " [--address ADDRESS] [--quit]\n";
            return 2;
        }
    }
    auto connection = address.empty() ? afbus::Connection::open_session() : afbus::Connection::open(address);
    if (!connection) {
        std::cerr << "calculator-client: cannot connect: " << connection.error().message << '\n';
        return 1;
    }
    if (!run(**connection, quit)) return 1;
    std::cout << "calculator-client: all checks passed" << std::endl;
    return 0;
}
