// examples/afbus/calculator-client.cpp, the libafbus typed-proxy client, against the sdbus-c++ calculator
// service (examples/sdbus-cpp) and against its libafbus edition (examples/afbus/calculator-service.cpp,
// typed objects) on a private bus: it must check everything the sdbus-c++ client checks.
// CALCULATOR_SERVICE, AFBUS_CALCULATOR_SERVICE and AFBUS_CALCULATOR_CLIENT name the programs. The service's readiness is observed
// through NameOwnerChanged and the programs' exits through pidfds: no sleeps.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/proxy.hpp"
#include "support/child_process.hpp"
#include "support/example_programs.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

using test::example_program;
using test::start_program;

using namespace std::chrono_literals;
using test::child_environment;
using test::ChildOptions;
using test::ChildProcess;
using test::connect;
using test::remaining_ms;
using test::TestBus;

constexpr auto kTimeout = 30s;

// Runs the service that the environment variable `service_program` names, then the client against it.
void client_checks_everything_against(const char* service_program) {
    TestBus bus;
    auto watcher = connect(bus);
    ASSERT_TRUE(watcher);
    // The bus driver's NameOwnerChanged, through a typed proxy of the bus itself.
    Proxy driver(*watcher, "org.freedesktop.DBus", "/org/freedesktop/DBus");
    std::string owner;
    auto watch = driver.on_signal<std::string, std::string, std::string>(
        "org.freedesktop.DBus", "NameOwnerChanged",
        [&owner](Expected<std::tuple<std::string, std::string, std::string>, Error> change) {
            ASSERT_TRUE(change) << change.error().message;
            if (std::get<0>(*change) == "org.example.Calculator") owner = std::get<2>(*change);
        });
    ASSERT_TRUE(watch) << watch.error().message;

    auto service = start_program({example_program(service_program), "--address", bus.address()}, bus.address());
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    while (owner.empty()) {
        ASSERT_TRUE(watcher->process());
        if (!owner.empty()) break;
        pollfd fds[] = {{watcher->fd(), watcher->poll_events(), 0}, {service->pidfd(), POLLIN, 0}};
        ASSERT_GT(::poll(fds, 2, remaining_ms(deadline)), 0) << "the service never took its name";
        ASSERT_FALSE(fds[1].revents & POLLIN) << "the service exited:\n" << service->out();
    }

    auto client = start_program({example_program("AFBUS_CALCULATOR_CLIENT"), "--address", bus.address(), "--quit"},
                                bus.address());
    const auto client_status = client->wait(kTimeout);
    ASSERT_TRUE(client_status) << "the client did not finish";
    EXPECT_TRUE(WIFEXITED(*client_status) && WEXITSTATUS(*client_status) == 0)
        << "client wait status " << *client_status << ", output:\n"
        << client->out();
    for (const char* line :
         {"Add(2, 3) = 5\n", "signal Computed = 2 + 3 = 5\n", "Divide(84, 2) = 42\n",
          "Divide(1, 0) -> org.example.Calculator.Error.DivisionByZero: Cannot divide 1 / 0\n",
          "async Multiply(6, 7) = 42\n", "property Computations = 3\n",
          "set Computations -> org.freedesktop.DBus.Error.PropertyReadOnly", "property Memory = 2.5\n",
          "PropertiesChanged Memory = 2.5\n", "Quit acknowledged\n",
          "calculator-client: all checks passed\n"}) {
        EXPECT_NE(client->out().find(line), std::string::npos) << "missing: " << line << "\nin:\n"
                                                               << client->out();
    }
    const auto service_status = service->wait(kTimeout);
    ASSERT_TRUE(service_status) << "the service did not exit after Quit";
    EXPECT_TRUE(WIFEXITED(*service_status) && WEXITSTATUS(*service_status) == 0) << service->out();
    EXPECT_NE(service->out().find("calculator-service: stopping (Quit)"), std::string::npos) << service->out();
}

TEST(AfbusExamples, TypedClientChecksEverythingAgainstTheSdbusService) {
    client_checks_everything_against("CALCULATOR_SERVICE");
}

// Both ends libafbus: the typed proxy against the typed-object service.
TEST(AfbusExamples, TypedClientChecksEverythingAgainstTheTypedObjectService) {
    client_checks_everything_against("AFBUS_CALCULATOR_SERVICE");
}

}  // namespace
}  // namespace afbus
