// The sdbus-c++ examples (examples/sdbus-cpp) against a private bus: sd-bus on both ends of the daemon.
// CALCULATOR_SERVICE and CALCULATOR_CLIENT name the programs. Progress is observed, never waited for:
// the service's name through NameOwnerChanged, the programs' exits through pidfds.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/types.hpp"
#include "test_bus.hpp"

extern char** environ;

namespace afbus {
namespace {

using namespace std::chrono_literals;
using test::connect;
using test::TestBus;

constexpr auto kTimeout = 30s;

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// A child program with stdout and stderr on one pipe, and a pidfd that becomes readable when it exits.
class Process {
public:
    Process(std::vector<std::string> argv, const std::string& bus_address) {
        // The environment is built before fork: the child only calls async-signal-safe functions.
        std::vector<std::string> env{"DBUS_SESSION_BUS_ADDRESS=" + bus_address};
        for (char** e = environ; *e; ++e) {
            if (!std::string_view(*e).starts_with("DBUS_")) env.emplace_back(*e);
        }
        std::vector<char*> envp, args;
        for (auto& e : env) envp.push_back(e.data());
        envp.push_back(nullptr);
        for (auto& a : argv) args.push_back(a.data());
        args.push_back(nullptr);

        int pipefd[2];
        if (::pipe2(pipefd, O_CLOEXEC) < 0) throw std::runtime_error("pipe2 failed");
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            ::dup2(pipefd[1], 1);
            ::dup2(pipefd[1], 2);
            ::execve(args[0], args.data(), envp.data());
            ::_exit(127);
        }
        ::close(pipefd[1]);
        output_fd_ = pipefd[0];
        // Not glibc 2.36's pidfd_open(): its <sys/pidfd.h> lacks extern "C", so C++ cannot link to it.
        pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
        if (pidfd_ < 0) throw std::runtime_error("pidfd_open failed");
    }
    ~Process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        ::close(output_fd_);
        ::close(pidfd_);
    }
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    [[nodiscard]] int pidfd() const { return pidfd_; }
    void send_signal(int number) const { ::kill(pid_, number); }

    // Waits for the exit and collects the output; the wait status, or nothing on timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout = kTimeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        pollfd p{pidfd_, POLLIN, 0};
        if (::poll(&p, 1, remaining_ms(deadline)) <= 0) return std::nullopt;
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        // The program is gone, so the pipe ends at EOF unless it left a grandchild holding it.
        char buffer[4096];
        for (;;) {
            pollfd out{output_fd_, POLLIN, 0};
            if (::poll(&out, 1, remaining_ms(deadline)) <= 0) break;
            const ssize_t n = ::read(output_fd_, buffer, sizeof buffer);
            if (n <= 0) break;
            output_.append(buffer, static_cast<std::size_t>(n));
        }
        return status;
    }
    [[nodiscard]] const std::string& output() const { return output_; }

private:
    pid_t pid_ = -1;
    int output_fd_ = -1;
    int pidfd_ = -1;
    std::string output_;
};

std::string program(const char* variable) {
    const char* path = std::getenv(variable);
    if (!path || !*path) throw std::runtime_error(std::string(variable) + " is not set (run through meson test)");
    return path;
}

class SdbusExamplesTest : public ::testing::Test {
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
    bool wait_for_owner(bool owned, const Process& service) {
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

    std::unique_ptr<Process> start_service(const std::vector<std::string>& args) {
        std::vector<std::string> argv{program("CALCULATOR_SERVICE")};
        argv.insert(argv.end(), args.begin(), args.end());
        auto service = std::make_unique<Process>(argv, bus.address());
        if (wait_for_owner(true, *service)) return service;
        service->send_signal(SIGTERM);
        service->wait();
        ADD_FAILURE() << "org.example.Calculator never appeared on the bus; the service said:\n" << service->output();
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

TEST_F(SdbusExamplesTest, ClientChecksEverythingAndQuitStopsTheService) {
    auto service = start_service({"--address", bus.address()});
    ASSERT_TRUE(service);

    Process client({program("CALCULATOR_CLIENT"), "--address", bus.address(), "--quit"}, bus.address());
    const auto client_status = client.wait();
    ASSERT_TRUE(client_status) << "the client did not finish";
    EXPECT_TRUE(WIFEXITED(*client_status) && WEXITSTATUS(*client_status) == 0)
        << "client wait status " << *client_status << ", output:\n" << client.output();
    expect_client_output(client.output());
    EXPECT_NE(client.output().find("Quit acknowledged\n"), std::string::npos);

    const auto service_status = service->wait();
    ASSERT_TRUE(service_status) << "the service did not exit after Quit";
    EXPECT_TRUE(WIFEXITED(*service_status) && WEXITSTATUS(*service_status) == 0)
        << "service wait status " << *service_status << ", output:\n" << service->output();
    EXPECT_NE(service->output().find("calculator-service: stopping (Quit)"), std::string::npos) << service->output();
    EXPECT_TRUE(wait_for_owner(false, *service)) << "org.example.Calculator still has an owner";
}

// Both programs find the bus through DBUS_SESSION_BUS_ADDRESS here, and SIGTERM stops the service.
TEST_F(SdbusExamplesTest, SessionBusFromTheEnvironmentAndSigtermStopsTheService) {
    auto service = start_service({});
    ASSERT_TRUE(service);

    Process client({program("CALCULATOR_CLIENT")}, bus.address());
    const auto client_status = client.wait();
    ASSERT_TRUE(client_status) << "the client did not finish";
    EXPECT_TRUE(WIFEXITED(*client_status) && WEXITSTATUS(*client_status) == 0)
        << "client wait status " << *client_status << ", output:\n" << client.output();
    expect_client_output(client.output());

    service->send_signal(SIGTERM);
    const auto service_status = service->wait();
    ASSERT_TRUE(service_status) << "the service did not exit on SIGTERM";
    EXPECT_TRUE(WIFEXITED(*service_status) && WEXITSTATUS(*service_status) == 0)
        << "service wait status " << *service_status << ", output:\n" << service->output();
    EXPECT_NE(service->output().find("calculator-service: stopping (signal)"), std::string::npos) << service->output();
    EXPECT_TRUE(wait_for_owner(false, *service)) << "org.example.Calculator still has an owner";
}

}  // namespace
}  // namespace afbus
