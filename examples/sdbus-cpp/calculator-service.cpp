// calculator-service: serves org.example.Calculator at /org/example/Calculator with sdbus-c++.
//
//   calculator-service [--address ADDRESS]
//
// Without --address it uses the session bus (DBUS_SESSION_BUS_ADDRESS). It runs until SIGINT, SIGTERM or
// a call to Quit, and then exits 0.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <sdbus-c++/sdbus-c++.h>
#include <sstream>
#include <string>

namespace {

const char* const kServiceName = "org.example.Calculator";
const char* const kObjectPath = "/org/example/Calculator";
const char* const kInterface = "org.example.Calculator";
const char* const kDivisionByZero = "org.example.Calculator.Error.DivisionByZero";

std::string expression(double a, const char* op, double b) {
    std::ostringstream out;
    out << a << ' ' << op << ' ' << b;
    return out.str();
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

    try {
        auto connection = address.empty() ? sdbus::createSessionBusConnection()
                                           : sdbus::createSessionBusConnectionWithAddress(address);
        auto object = sdbus::createObject(*connection, kObjectPath);

        double memory = 0;
        std::uint32_t computations = 0;
        bool quit = false;

        auto computed = [&](const std::string& what, double result) {
            ++computations;
            object->emitSignal("Computed").onInterface(kInterface).withArguments(what, result);
            // sdbus-c++ marks properties as emitting PropertiesChanged by default; keeping that promise
            // is up to us.
            object->emitPropertiesChangedSignal(kInterface, {"Computations"});
            return result;
        };

        object->registerMethod("Add")
            .onInterface(kInterface)
            .withInputParamNames("a", "b")
            .withOutputParamNames("sum")
            .implementedAs([&](double a, double b) { return computed(expression(a, "+", b), a + b); });
        object->registerMethod("Multiply")
            .onInterface(kInterface)
            .withInputParamNames("a", "b")
            .withOutputParamNames("product")
            .implementedAs([&](double a, double b) { return computed(expression(a, "*", b), a * b); });
        object->registerMethod("Divide")
            .onInterface(kInterface)
            .withInputParamNames("dividend", "divisor")
            .withOutputParamNames("quotient")
            .implementedAs([&](double dividend, double divisor) {
                // sdbus-c++ turns an sdbus::Error thrown by a handler into an error reply with its name.
                if (divisor == 0) throw sdbus::Error(kDivisionByZero, "Cannot divide " + expression(dividend, "/", divisor));
                return computed(expression(dividend, "/", divisor), dividend / divisor);
            });
        object->registerMethod("Quit").onInterface(kInterface).implementedAs([&] { quit = true; });
        object->registerSignal("Computed")
            .onInterface(kInterface)
            .withParameters<std::string, double>("expression", "result");
        object->registerProperty("Computations").onInterface(kInterface).withGetter([&] { return computations; });
        object->registerProperty("Memory")
            .onInterface(kInterface)
            .withGetter([&] { return memory; })
            .withSetter([&](const double& value) {
                memory = value;
                object->emitPropertiesChangedSignal(kInterface, {"Memory"});
            });
        object->finishRegistration();

        // Taking the name last means that whoever sees it appear can use the object at once.
        connection->requestName(kServiceName);
        std::cout << "calculator-service: " << kServiceName << " is " << connection->getUniqueName() << std::endl;

        bool stopped_by_signal = false;
        while (!quit && !stopped_by_signal) {
            // Drain everything sd-bus has buffered before sleeping: poll only sees the socket.
            if (connection->processPendingRequest()) continue;
            const auto bus = connection->getEventLoopPollData();
            pollfd fds[] = {{bus.fd, bus.events, 0}, {signal_fd, POLLIN, 0}};
            if (::poll(fds, 2, bus.getPollTimeout()) < 0 && errno != EINTR) {
                std::cerr << "calculator-service: poll: " << std::strerror(errno) << '\n';
                return 1;
            }
            stopped_by_signal = (fds[1].revents & POLLIN) != 0;
        }
        // Destroying the connection flushes what is queued (the reply to Quit) before closing it.
        std::cout << "calculator-service: stopping (" << (quit ? "Quit" : "signal") << ")" << std::endl;
    } catch (const sdbus::Error& e) {
        std::cerr << "calculator-service: " << e.getName() << ": " << e.getMessage() << '\n';
        return 1;
    }
    ::close(signal_fd);
    return 0;
}
