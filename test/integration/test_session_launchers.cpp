// dbus-run-session and dbus-launch, unmodified, starting the daemon under test ($AFBUS_TEST_DAEMON, else
// dbus-daemon) with a private session configuration in a temporary directory: each must start the bus,
// hand its address (and pid) on, and the bus must serve clients and end when told to.
//
// dbus-run-session takes the daemon as --dbus-daemon=PATH. dbus-launch has no such option: it runs the
// dbus-daemon it was built with, except the copy built with embedded tests (Debian's dbus-tests puts it in
// /usr/lib/dbus-1.0/debug-build/bin), which runs $DBUS_TEST_DAEMON instead; without it, the test skips.
//
// Both launchers leave the bus running in a process that is not the test's child (dbus-launch's forks
// --fork). The test makes itself a child subreaper, so that the bus becomes its child once the launcher
// has exited: then its exit is observed through a pidfd and its status collected, without sleeping.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string_view>
#include <stdexcept>
#include <string>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/fd.hpp"
#include "afbus/types.hpp"
#include "support/child_process.hpp"
#include "support/raw_peer.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

using namespace std::chrono_literals;
using test::child_environment;
using test::ChildProcess;
using test::Clock;
using test::daemon_under_test;
using test::driver_call;
using test::find_program;
using test::remaining_ms;

constexpr auto kTimeout = 30s;
constexpr const char* kDebugBuildDbusLaunch = "/usr/lib/dbus-1.0/debug-build/bin/dbus-launch";

// Reads the launchers' output piece by piece. (Not std::regex: GCC 12 warns inside it under the
// sanitizers, and the warnings are errors.)
struct Cursor {
    std::string_view rest;
    bool literal(std::string_view text) {
        if (!rest.starts_with(text)) return false;
        rest.remove_prefix(text.size());
        return true;
    }
    // The text before `end` (not consumed), if `end` comes.
    std::optional<std::string> until(char end) {
        const auto at = rest.find(end);
        if (at == std::string_view::npos) return std::nullopt;
        std::string taken(rest.substr(0, at));
        rest.remove_prefix(at);
        return taken;
    }
    bool chars(std::size_t count, std::string_view allowed) {
        if (rest.size() < count) return false;
        for (std::size_t i = 0; i < count; ++i)
            if (allowed.find(rest[i]) == std::string_view::npos) return false;
        rest.remove_prefix(count);
        return true;
    }
    bool hex32() { return chars(32, "0123456789abcdef"); }
    std::optional<long> number() {
        std::size_t n = 0;
        while (n < rest.size() && rest[n] >= '0' && rest[n] <= '9') ++n;
        if (n == 0 || n > 9) return std::nullopt;
        const long value = std::stol(std::string(rest.substr(0, n)));
        rest.remove_prefix(n);
        return value;
    }
};

// Whether `address` is "unix:path=<dir>/dbus-XXXXXXXX,guid=<32 hex digits>", the daemon's address for
// <listen>unix:tmpdir=<dir></listen>.
bool is_tmpdir_address(const std::string& address, const std::string& dir) {
    Cursor c{address};
    if (!c.literal("unix:path=" + dir + "/dbus-")) return false;
    const auto name = c.until(',');
    return name && !name->empty() && c.literal(",guid=") && c.hex32() && c.rest.empty();
}

// The socket file of "unix:path=/tmp/x,guid=0123...".
std::string socket_path_of(const std::string& address) {
    const std::string prefix = "unix:path=";
    return address.substr(prefix.size(), address.find(',') - prefix.size());
}

class SessionLaunchersTest : public ::testing::Test {
protected:
    SessionLaunchersTest() {
        char name[] = "/tmp/afbus-launch-XXXXXX";
        if (!::mkdtemp(name)) throw std::runtime_error("mkdtemp failed");
        dir_ = name;
        // A session bus of our own: it listens in the temporary directory only.
        std::ofstream(config_path())
            << "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
               " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
               "<busconfig>\n"
               "  <type>session</type>\n"
               "  <keep_umask/>\n"
               "  <listen>unix:dir="
            << dir_.string()
            << "</listen>\n"
               "  <auth>EXTERNAL</auth>\n"
               "  <policy context=\"default\">\n"
               "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
               "    <allow eavesdrop=\"true\"/>\n"
               "    <allow own=\"*\"/>\n"
               "  </policy>\n"
               "</busconfig>\n";
        // The bus the launcher leaves behind becomes our child when the launcher exits.
        if (::prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) throw std::runtime_error("PR_SET_CHILD_SUBREAPER failed");
    }
    ~SessionLaunchersTest() override {
        ::prctl(PR_SET_CHILD_SUBREAPER, 0);
        // The test's own ChildProcesses are gone by now: any child left was reparented to us, a bus that a
        // failed test did not end or dbus-launch's babysitter. End them and collect them.
        test::kill_and_collect_children();
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    [[nodiscard]] std::string config_path() const { return (dir_ / "session.conf").string(); }

    // The bus daemon `pid`, which the launcher left behind (and which is our child by now, unless the
    // launcher collected it itself): its wait status once it has exited, nothing if it still runs at the
    // deadline; -1 if it was gone before we looked.
    static std::optional<int> wait_for_bus_exit(pid_t pid) {
        const Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
        if (!pidfd) return errno == ESRCH ? std::optional<int>(-1) : std::nullopt;
        pollfd p{pidfd.get(), POLLIN, 0};
        if (::poll(&p, 1, remaining_ms(Clock::now() + kTimeout)) <= 0) return std::nullopt;
        int status = 0;
        if (::waitpid(pid, &status, 0) != pid) return -1;  // not ours: someone else collected it
        return status;
    }

    std::filesystem::path dir_;
};

// A client of the bus at `address`: the bus answers GetId, and the driver is the process `expected_pid`.
// (GetId is the bus's id, not the guid in the address: dbus-daemon gives each listening address its own.)
void expect_bus_serves(const std::string& address, pid_t expected_pid) {
    auto client = Connection::open(address);
    ASSERT_TRUE(client) << address << ": " << client.error().name << ": " << client.error().message;
    auto id = (*client)->call(driver_call("GetId"));
    ASSERT_TRUE(id) << id.error().name << ": " << id.error().message;
    const std::string bus_id = std::get<0>(read_all<std::string>(*id).value());
    Cursor c{bus_id};
    EXPECT_TRUE(c.hex32() && c.rest.empty()) << bus_id;
    auto pid = (*client)->call(driver_call("GetConnectionUnixProcessID", "org.freedesktop.DBus"));
    ASSERT_TRUE(pid) << pid.error().name << ": " << pid.error().message;
    EXPECT_EQ(static_cast<pid_t>(std::get<0>(read_all<std::uint32_t>(*pid).value())), expected_pid);
}

// `dbus-run-session --dbus-daemon=DAEMON --config-file=CONF -- COMMAND`: COMMAND runs with
// DBUS_SESSION_BUS_ADDRESS naming the bus in our directory, and dbus-send reaches that bus; once COMMAND
// has exited, dbus-run-session ends the bus (which removes its socket) and exits with COMMAND's status.
TEST_F(SessionLaunchersTest, DbusRunSessionRunsTheCommandOnItsOwnBus) {
    const std::string run_session = find_program("dbus-run-session");
    const std::string dbus_send = find_program("dbus-send");
    if (run_session.empty() || dbus_send.empty())
        GTEST_SKIP() << "dbus-run-session and dbus-send are needed (Debian package dbus-bin)";
    // Prints the address the command got, the bus's GetId and the driver's pid, then exits 3.
    const std::string script =
        "printf 'address %s\\n' \"$DBUS_SESSION_BUS_ADDRESS\"\n"
        "\"$0\" --session --print-reply=literal --dest=org.freedesktop.DBus /org/freedesktop/DBus "
        "org.freedesktop.DBus.GetId || exit 1\n"
        "\"$0\" --session --print-reply=literal --dest=org.freedesktop.DBus /org/freedesktop/DBus "
        "org.freedesktop.DBus.GetConnectionUnixProcessID string:org.freedesktop.DBus || exit 1\n"
        "exit 3\n";
    ChildProcess session({run_session, "--dbus-daemon=" + daemon_under_test(), "--config-file=" + config_path(), "--",
                          "/bin/sh", "-c", script, dbus_send},
                         child_environment({}, {"DISPLAY="}));
    session.wait(kTimeout);
    ASSERT_TRUE(session.finished()) << session.report();
    EXPECT_TRUE(session.exited_with(3)) << session.report();

    // "address <address>\n", the id ("   <32 hex>", --print-reply=literal ends a string without a
    // newline), then "   uint32 <pid>\n".
    Cursor out{session.out()};
    std::optional<std::string> address;
    std::optional<long> pid;
    const bool parsed = out.literal("address ") && (address = out.until('\n')) && out.literal("\n   ") && out.hex32() &&
                        out.literal("   uint32 ") && (pid = out.number()) && out.literal("\n") && out.rest.empty();
    ASSERT_TRUE(parsed) << session.report();
    ASSERT_TRUE(is_tmpdir_address(*address, dir_.string())) << *address;

    const pid_t bus_pid = static_cast<pid_t>(*pid);
    const auto bus_status = wait_for_bus_exit(bus_pid);
    ASSERT_TRUE(bus_status) << "the bus (pid " << bus_pid << ") outlived dbus-run-session";
    if (*bus_status != -1) {
        EXPECT_TRUE(WIFEXITED(*bus_status) && WEXITSTATUS(*bus_status) == 0) << "bus wait status " << *bus_status;
    }
    // The daemon removes the socket it created when it ends.
    EXPECT_FALSE(std::filesystem::exists(socket_path_of(*address))) << *address;
}

// `dbus-launch --sh-syntax --config-file=CONF`: the bus forks into the background, dbus-launch prints its
// address and pid and exits with nothing left holding its output (the eval $(dbus-launch) idiom would
// hang otherwise); the bus serves clients and ends on SIGTERM.
TEST_F(SessionLaunchersTest, DbusLaunchStartsABackgroundBusAndPrintsItsAddressAndPid) {
    if (::access(kDebugBuildDbusLaunch, X_OK) != 0)
        GTEST_SKIP() << kDebugBuildDbusLaunch << " (Debian package dbus-tests) is needed: only it runs "
                     << "$DBUS_TEST_DAEMON instead of the dbus-daemon it was built with";
    ChildProcess launch({kDebugBuildDbusLaunch, "--sh-syntax", "--config-file=" + config_path()},
                        child_environment({"DBUS_TEST_DAEMON=" + daemon_under_test()}, {"DISPLAY="}));
    launch.wait(kTimeout);
    ASSERT_TRUE(launch.finished()) << "dbus-launch did not exit, or its output stayed open: " << launch.report();
    ASSERT_TRUE(launch.succeeded()) << launch.report();

    Cursor out{launch.out()};
    std::optional<std::string> quoted_address;
    std::optional<long> pid;
    const bool parsed = out.literal("DBUS_SESSION_BUS_ADDRESS='") && (quoted_address = out.until('\'')) &&
                        out.literal("';\nexport DBUS_SESSION_BUS_ADDRESS;\nDBUS_SESSION_BUS_PID=") &&
                        (pid = out.number()) && out.literal(";\n") && out.rest.empty();
    ASSERT_TRUE(parsed) << launch.report();
    const std::string address = *quoted_address;
    ASSERT_TRUE(is_tmpdir_address(address, dir_.string())) << address;
    const pid_t bus_pid = static_cast<pid_t>(*pid);
    ASSERT_GT(bus_pid, 0);

    expect_bus_serves(address, bus_pid);

    ASSERT_EQ(::kill(bus_pid, SIGTERM), 0) << std::strerror(errno);
    const auto bus_status = wait_for_bus_exit(bus_pid);
    ASSERT_TRUE(bus_status) << "the bus did not exit on SIGTERM";
    ASSERT_NE(*bus_status, -1) << "the bus was not our child: it should have been reparented to us";
    EXPECT_TRUE(WIFEXITED(*bus_status) && WEXITSTATUS(*bus_status) == 0) << "bus wait status " << *bus_status;
    EXPECT_FALSE(std::filesystem::exists(socket_path_of(address))) << address;
}

}  // namespace
}  // namespace afbus
