// calculator-client: uses every part of org.example.Calculator (see calculator-service.cpp) with
// sdbus-c++ and checks the answers.
//
//   calculator-client [--address ADDRESS] [--quit]
//
// Without --address it uses the session bus (DBUS_SESSION_BUS_ADDRESS). --quit asks the service to exit
// at the end. Exits 0 if every answer was the expected one, 1 with a message on the first that was not.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <future>
#include <iostream>
#include <map>
#include <sdbus-c++/sdbus-c++.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

const char* const kServiceName = "org.example.Calculator";
const char* const kObjectPath = "/org/example/Calculator";
const char* const kInterface = "org.example.Calculator";
const char* const kDivisionByZero = "org.example.Calculator.Error.DivisionByZero";
const char* const kPropertyReadOnly = "org.freedesktop.DBus.Error.PropertyReadOnly";
constexpr auto kTimeout = 10s;

struct Mismatch : std::runtime_error {
    using std::runtime_error::runtime_error;
};

template <typename T>
void expect(const std::string& what, const T& got, const T& wanted) {
    std::cout << what << " = " << got << std::endl;
    if (got != wanted) {
        std::ostringstream message;
        message << what << ": expected " << wanted << ", got " << got;
        throw Mismatch(message.str());
    }
}

// Runs `call`, which must fail with the D-Bus error `wanted`.
template <typename Call>
void expect_error(const std::string& what, const std::string& wanted, Call&& call) {
    try {
        call();
    } catch (const sdbus::Error& e) {
        std::cout << what << " -> " << e.getName() << ": " << e.getMessage() << std::endl;
        if (e.getName() != wanted) throw Mismatch(what + ": expected " + wanted + ", got " + e.getName());
        return;
    }
    throw Mismatch(what + ": expected " + wanted + ", but it succeeded");
}

// Signal handlers and async replies run on the proxy's event loop thread; the main thread waits here.
template <typename T>
T wait_for(std::future<T>& future, const std::string& what) {
    if (future.wait_for(kTimeout) != std::future_status::ready) throw Mismatch(what + ": nothing within 10 s");
    return future.get();
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

    // Declared before the proxy so that they outlive its event loop thread, which sets them.
    std::promise<std::string> first_signal;
    auto first_signal_received = first_signal.get_future();
    std::atomic<bool> signalled{false};
    std::promise<double> product;
    auto product_received = product.get_future();
    std::promise<double> memory_changed;
    auto memory_change_received = memory_changed.get_future();

    try {
        auto connection = address.empty() ? sdbus::createSessionBusConnection()
                                           : sdbus::createSessionBusConnectionWithAddress(address);
        // A proxy that owns its connection runs that connection's event loop in a thread of its own.
        auto proxy = sdbus::createProxy(std::move(connection), kServiceName, kObjectPath);

        // Only the first Computed signal is checked: Add's.
        proxy->uponSignal("Computed").onInterface(kInterface).call([&](const std::string& expression, double result) {
            if (signalled.exchange(true)) return;
            std::ostringstream text;
            text << expression << " = " << result;
            first_signal.set_value(text.str());
        });
        proxy->uponSignal("PropertiesChanged")
            .onInterface("org.freedesktop.DBus.Properties")
            .call([&](const std::string& interface, const std::map<std::string, sdbus::Variant>& changed,
                      const std::vector<std::string>& /*invalidated*/) {
                if (interface != kInterface) return;
                if (auto memory = changed.find("Memory"); memory != changed.end()) {
                    memory_changed.set_value(memory->second.get<double>());
                }
            });
        proxy->finishRegistration();

        double sum = 0;
        proxy->callMethod("Add").onInterface(kInterface).withArguments(2.0, 3.0).storeResultsTo(sum);
        expect("Add(2, 3)", sum, 5.0);
        expect<std::string>("signal Computed", wait_for(first_signal_received, "signal Computed"), "2 + 3 = 5");

        double quotient = 0;
        proxy->callMethod("Divide").onInterface(kInterface).withArguments(84.0, 2.0).storeResultsTo(quotient);
        expect("Divide(84, 2)", quotient, 42.0);
        expect_error("Divide(1, 0)", kDivisionByZero, [&] {
            proxy->callMethod("Divide").onInterface(kInterface).withArguments(1.0, 0.0).storeResultsTo(quotient);
        });

        auto pending = proxy->callMethodAsync("Multiply")
                           .onInterface(kInterface)
                           .withArguments(6.0, 7.0)
                           .uponReplyInvoke([&](const sdbus::Error* error, double result) {
                               if (error) product.set_exception(std::make_exception_ptr(*error));
                               else product.set_value(result);
                           });
        expect("async Multiply(6, 7)", wait_for(product_received, "async Multiply"), 42.0);

        const auto computations = proxy->getProperty("Computations").onInterface(kInterface).get<std::uint32_t>();
        expect("property Computations", computations, std::uint32_t{3});
        expect_error("set Computations", kPropertyReadOnly,
                     [&] { proxy->setProperty("Computations").onInterface(kInterface).toValue(std::uint32_t{0}); });

        proxy->setProperty("Memory").onInterface(kInterface).toValue(2.5);
        expect("property Memory", proxy->getProperty("Memory").onInterface(kInterface).get<double>(), 2.5);
        expect("PropertiesChanged Memory", wait_for(memory_change_received, "PropertiesChanged"), 2.5);

        if (quit) {
            proxy->callMethod("Quit").onInterface(kInterface);
            std::cout << "Quit acknowledged" << std::endl;
        }
    } catch (const Mismatch& e) {
        std::cerr << "calculator-client: FAILED: " << e.what() << '\n';
        return 1;
    } catch (const sdbus::Error& e) {
        std::cerr << "calculator-client: FAILED: " << e.getName() << ": " << e.getMessage() << '\n';
        return 1;
    }
    std::cout << "calculator-client: all checks passed" << std::endl;
    return 0;
}
