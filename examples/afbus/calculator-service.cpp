// calculator-service, libafbus edition: the sdbus-c++ example service (../sdbus-cpp/calculator-service.cpp)
// written with afbus typed objects. It serves org.example.Calculator at /org/example/Calculator: the same
// methods, signal, properties and errors, so that either edition of the client works against either
// edition of the service. The D-Bus signatures come from the handlers' C++ types.
//
//   afbus-calculator-service [--address ADDRESS]
//
// Without --address it uses the session bus (DBUS_SESSION_BUS_ADDRESS). It runs until SIGINT, SIGTERM or
// a call to Quit, and then exits 0.
#include <afbus/connection.hpp>
#include <afbus/typed_object.hpp>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>

namespace {

constexpr std::string_view kServiceName = "org.example.Calculator";
constexpr std::string_view kObjectPath = "/org/example/Calculator";
constexpr std::string_view kInterface = "org.example.Calculator";
constexpr std::string_view kDivisionByZero = "org.example.Calculator.Error.DivisionByZero";

std::string expression(double a, const char* op, double b) {
    std::ostringstream out;
    out << a << ' ' << op << ' ' << b;
    return out.str();
}

int fail(const std::string& what, const afbus::Error& error) {
    std::cerr << "calculator-service: " << what << ": " << error.name << ": " << error.message << '\n';
    return 1;
}

// The poll timeout until the connection's next deadline (-1: none).
int poll_timeout(const afbus::Connection& connection) {
    const auto deadline = connection.next_deadline();
    if (!deadline) return -1;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(left.count(), 0, 60000));
}

}  // namespace

int main(int argc, char* argv[]) {
    std::string address;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--address") == 0 && i + 1 < argc) {
            address = argv[++i];
        } else {
            std::cerr << "usage: " << argv[0] << " [--address ADDRESS]\n";
            return 2;
        }
    }

    // The loop below is single-threaded, so SIGINT/SIGTERM arrive as a readable fd next to the bus
    // connection's instead of interrupting a handler halfway.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
    const int signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
    if (signal_fd < 0) {
        std::cerr << "calculator-service: signalfd: " << std::strerror(errno) << '\n';
        return 1;
    }

    auto opened = address.empty() ? afbus::Connection::open_session() : afbus::Connection::open(address);
    if (!opened) return fail("cannot connect", opened.error());
    afbus::Connection& connection = **opened;

    afbus::Object object(connection, std::string(kObjectPath));
    double memory = 0;
    std::uint32_t computations = 0;
    bool quit = false;

    afbus::InterfaceBuilder calculator{std::string(kInterface)};
    const auto computed = calculator.signal<std::string, double>("Computed", {"expression", "result"});
    auto compute = [&](const std::string& what, double result) {
        ++computations;
        // A signal is best effort: a failure to queue it does not fail the computation.
        (void)object.emit(computed, what, result);
        (void)object.emit_properties_changed(kInterface, {"Computations"});
        return result;
    };
    calculator.method(
        "Add", [&](double a, double b) { return compute(expression(a, "+", b), a + b); }, {"a", "b"}, {"sum"});
    calculator.method(
        "Multiply", [&](double a, double b) { return compute(expression(a, "*", b), a * b); }, {"a", "b"},
        {"product"});
    calculator.method(
        "Divide",
        [&](double dividend, double divisor) -> afbus::Expected<double, afbus::Error> {
            if (divisor == 0) {
                return afbus::Unexpected(
                    afbus::make_error(kDivisionByZero, "Cannot divide " + expression(dividend, "/", divisor)));
            }
            return compute(expression(dividend, "/", divisor), dividend / divisor);
        },
        {"dividend", "divisor"}, {"quotient"});
    calculator.method("Quit", [&] { quit = true; });
    calculator.property("Computations", [&] { return computations; });
    calculator.property("Memory", [&] { return memory; },
                        [&](double value) {
                            memory = value;
                            (void)object.emit_properties_changed(kInterface, {"Memory"});
                        });
    if (auto added = object.add(std::move(calculator)); !added) return fail("cannot export the object", added.error());

    // Taking the name last means that whoever sees it appear can use the object at once.
    auto owned = connection.request_name(kServiceName, afbus::name_flags::kDoNotQueue);
    if (!owned) return fail("cannot request the name", owned.error());
    if (*owned != afbus::RequestNameReply::PrimaryOwner) {
        std::cerr << "calculator-service: " << kServiceName << " is taken\n";
        return 1;
    }
    std::cout << "calculator-service: " << kServiceName << " is " << connection.unique_name() << std::endl;

    bool stopped_by_signal = false;
    while (!quit && !stopped_by_signal) {
        if (auto processed = connection.process(); !processed) return fail("connection lost", processed.error());
        if (quit) break;
        pollfd fds[] = {{connection.fd(), connection.poll_events(), 0}, {signal_fd, POLLIN, 0}};
        if (::poll(fds, 2, poll_timeout(connection)) < 0 && errno != EINTR) {
            std::cerr << "calculator-service: poll: " << std::strerror(errno) << '\n';
            return 1;
        }
        stopped_by_signal = (fds[1].revents & POLLIN) != 0;
    }
    // process() wrote what it could; the reply to Quit may still be queued: send it before leaving.
    while (connection.connected() && (connection.poll_events() & POLLOUT)) {
        pollfd out = {connection.fd(), POLLOUT, 0};
        if (::poll(&out, 1, 1000) <= 0 || !connection.process()) break;
    }
    std::cout << "calculator-service: stopping (" << (quit ? "Quit" : "signal") << ")" << std::endl;
    ::close(signal_fd);
    return 0;
}
