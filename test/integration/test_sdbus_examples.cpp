// The sdbus-c++ example client (examples/sdbus-cpp) against a private bus, talking to the sdbus-c++
// example service (sd-bus on both ends of the daemon) and to its libafbus edition (examples/afbus, typed
// objects): the client cannot tell them apart. CALCULATOR_SERVICE, AFBUS_CALCULATOR_SERVICE and
// CALCULATOR_CLIENT name the programs. Progress is observed, never waited for:
// the service's name through NameOwnerChanged, the programs' exits through pidfds.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/types.hpp"
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

// The parameter names the service: the environment variable that holds its path.
class SdbusExamplesTest : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        ASSERT_TRUE(watcher);
        auto slot = watcher->subscribe(
            "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
            "member='NameOwnerChanged',arg0='org.example.Calculator'",
            [this](const Message& m) {
                auto args = read_all<std::string, std::string, std::string>(m);
                ASSERT_TRUE(args);
                owner = std::get<2>(*args);
            });
        ASSERT_TRUE(slot) << slot.error().message;
        name_watch = std::move(*slot);
    }

    // Runs the watcher's loop until the calculator's name has an owner (or none): false if `service`
    // exits or nothing happens in time.
    bool wait_for_owner(bool owned, const ChildProcess& service) {
        const auto deadline = std::chrono::steady_clock::now() + kTimeout;
        for (;;) {
            if (!watcher->process()) return false;
            if (owner.empty() != owned) return true;
            // While the name is expected to appear, the service's exit ends the wait early.
            pollfd fds[] = {{watcher->fd(), watcher->poll_events(), 0}, {service.pidfd(), POLLIN, 0}};
            if (::poll(fds, owned ? 2 : 1, remaining_ms(deadline)) == 0) return false;
            if (fds[1].revents & POLLIN) return false;
        }
    }

    std::unique_ptr<ChildProcess> start_service(const std::vector<std::string>& args) {
        std::vector<std::string> argv{example_program(GetParam())};
        argv.insert(argv.end(), args.begin(), args.end());
        auto service = start_program(argv, bus.address());
        if (wait_for_owner(true, *service)) return service;
        service->send_signal(SIGTERM);
        service->wait(kTimeout);
        ADD_FAILURE() << "org.example.Calculator never appeared on the bus; the service said:\n" << service->out();
        return nullptr;
    }

    static void expect_client_output(const std::string& output) {
        for (const char* line : {"Add(2, 3) = 5\n",
                                 "signal Computed = 2 + 3 = 5\n",
                                 "Divide(84, 2) = 42\n",
                                 "Divide(1, 0) -> org.example.Calculator.Error.DivisionByZero: Cannot divide 1 / 0\n",
                                 "async Multiply(6, 7) = 42\n",
                                 "property Computations = 3\n",
                                 "set Computations -> org.freedesktop.DBus.Error.PropertyReadOnly",
                                 "property Memory = 2.5\n",
                                 "PropertiesChanged Memory = 2.5\n",
                                 "calculator-client: all checks passed\n"}) {
            EXPECT_NE(output.find(line), std::string::npos) << "missing: " << line;
        }
    }

    TestBus bus;
    std::unique_ptr<Connection> watcher = connect(bus);
    Slot name_watch;
    std::string owner;  // of org.example.Calculator, as NameOwnerChanged last said
};

TEST_P(SdbusExamplesTest, ClientChecksEverythingAndQuitStopsTheService) {
    auto service = start_service({"--address", bus.address()});
    ASSERT_TRUE(service);

    auto client = start_program({example_program("CALCULATOR_CLIENT"), "--address", bus.address(), "--quit"}, bus.address());
    const auto client_status = client->wait(kTimeout);
    ASSERT_TRUE(client_status) << "the client did not finish";
    EXPECT_TRUE(WIFEXITED(*client_status) && WEXITSTATUS(*client_status) == 0)
        << "client wait status " << *client_status << ", output:\n" << client->out();
    expect_client_output(client->out());
    EXPECT_NE(client->out().find("Quit acknowledged\n"), std::string::npos);

    const auto service_status = service->wait(kTimeout);
    ASSERT_TRUE(service_status) << "the service did not exit after Quit";
    EXPECT_TRUE(WIFEXITED(*service_status) && WEXITSTATUS(*service_status) == 0)
        << "service wait status " << *service_status << ", output:\n" << service->out();
    EXPECT_NE(service->out().find("calculator-service: stopping (Quit)"), std::string::npos) << service->out();
    EXPECT_TRUE(wait_for_owner(false, *service)) << "org.example.Calculator still has an owner";
}

// Both programs find the bus through DBUS_SESSION_BUS_ADDRESS here, and SIGTERM stops the service.
TEST_P(SdbusExamplesTest, SessionBusFromTheEnvironmentAndSigtermStopsTheService) {
    auto service = start_service({});
    ASSERT_TRUE(service);

    auto client = start_program({example_program("CALCULATOR_CLIENT")}, bus.address());
    const auto client_status = client->wait(kTimeout);
    ASSERT_TRUE(client_status) << "the client did not finish";
    EXPECT_TRUE(WIFEXITED(*client_status) && WEXITSTATUS(*client_status) == 0)
        << "client wait status " << *client_status << ", output:\n" << client->out();
    expect_client_output(client->out());

    service->send_signal(SIGTERM);
    const auto service_status = service->wait(kTimeout);
    ASSERT_TRUE(service_status) << "the service did not exit on SIGTERM";
    EXPECT_TRUE(WIFEXITED(*service_status) && WEXITSTATUS(*service_status) == 0)
        << "service wait status " << *service_status << ", output:\n" << service->out();
    EXPECT_NE(service->out().find("calculator-service: stopping (signal)"), std::string::npos) << service->out();
    EXPECT_TRUE(wait_for_owner(false, *service)) << "org.example.Calculator still has an owner";
}

INSTANTIATE_TEST_SUITE_P(Services, SdbusExamplesTest,
                         ::testing::Values("CALCULATOR_SERVICE", "AFBUS_CALCULATOR_SERVICE"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                             return std::string(info.param) == "CALCULATOR_SERVICE" ? "SdbusService" : "AfbusService";
                         });

}  // namespace
}  // namespace afbus
