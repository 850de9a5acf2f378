// --fork as dbus-daemon 1.14 does it (issue 12). dbus-daemon prints the address, forks, and the
// background bus points fds 0-2 at /dev/null; a print fd above 2 is closed once written. So a caller that
// reads the printed lines to end of file (`ADDR=$(dbus-daemon --fork --print-address)`,
// python-dbusmock's start_session_bus) gets its end of file as soon as the foreground process exits.
// Every combination of --print-address and --print-pid (absent, bare, =1, =2, =3, =4) is launched two
// ways, each bounded by a poll timeout that fails the test: with the print fds on pipes read to end of
// file, and inside a shell's $(…). Then the bus must be running in the background, detached from every
// pipe (0-2 on /dev/null), serving the printed address, with the printed pid. Without --fork, stdout
// stays the daemon's (dbus-run-session and the TestBus fixture read a non-forking daemon's address).
// Last, python-dbusmock runs the daemon under test as its `dbus-daemon` and calls mocks through it.
//
// The foreground process exits and leaves the bus to its parent's reaper: the test makes itself a child
// subreaper, so that the bus becomes its child; its exit is then seen through a pidfd, without sleeping.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
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
using test::child_pids;
using test::ChildOptions;
using test::ChildProcess;
using test::Clock;
using test::daemon_under_test;
using test::drain;
using test::driver_call;
using test::find_program;
using test::kill_and_collect_children;
using test::make_pipe;
using test::Pipe;
using test::remaining_ms;

constexpr auto kTimeout = 30s;

// Where one of the two lines goes: nowhere, the option without a value (stdout), or an explicit fd.
enum class To { None, Bare, Fd1, Fd2, Fd3, Fd4 };

int fd_of(To to) {
    switch (to) {
        case To::None: return -1;
        case To::Bare: case To::Fd1: return 1;
        case To::Fd2: return 2;
        case To::Fd3: return 3;
        case To::Fd4: return 4;
    }
    return -1;
}

std::optional<std::string> option(const std::string& name, To to) {
    if (to == To::None) return std::nullopt;
    if (to == To::Bare) return name;
    return name + "=" + std::to_string(fd_of(to));
}

std::string label(To to) {
    switch (to) {
        case To::None: return "None";
        case To::Bare: return "Bare";
        case To::Fd1: return "Fd1";
        case To::Fd2: return "Fd2";
        case To::Fd3: return "Fd3";
        case To::Fd4: return "Fd4";
    }
    return "?";
}

struct Combination {
    To address;
    To pid;
};

std::string name_of(const ::testing::TestParamInfo<Combination>& info) {
    return "Address" + label(info.param.address) + "Pid" + label(info.param.pid);
}

// Not the same fd above 2 for both: dbus-daemon closes the address fd before it writes the pid there, and
// fails ("Writing to pipe: Bad file descriptor"). An explicit pid fd is 3, or 4 when the address has 3.
std::vector<Combination> all_combinations() {
    std::vector<Combination> all;
    for (To address : {To::None, To::Bare, To::Fd1, To::Fd2, To::Fd3})
        for (To pid : {To::None, To::Bare, To::Fd1, To::Fd2, address == To::Fd3 ? To::Fd4 : To::Fd3})
            all.push_back({address, pid});
    return all;
}

std::string link_target(const std::string& path) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(path, ec);
    return ec ? "(" + ec.message() + ")" : target.string();
}

// A private session bus configuration listening on `listen` only.
void write_config(const std::string& path, const std::string& listen) {
    std::ofstream(path) << "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                           " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                           "<busconfig>\n"
                           "  <type>session</type>\n"
                           "  <keep_umask/>\n"
                           "  <listen>"
                        << listen
                        << "</listen>\n"
                           "  <auth>EXTERNAL</auth>\n"
                           "  <policy context=\"default\">\n"
                           "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
                           "    <allow eavesdrop=\"true\"/>\n"
                           "    <allow own=\"*\"/>\n"
                           "  </policy>\n"
                           "</busconfig>\n";
}

// SIGKILLs every process whose command line mentions `text` (a test's temporary directory).
void kill_processes_mentioning(const std::string& text) {
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        const std::string name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream in(entry.path() / "cmdline");
        const std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (cmdline.find(text) != std::string::npos) ::kill(static_cast<pid_t>(std::stol(name)), SIGKILL);
    }
}

class DaemonForkTest : public ::testing::TestWithParam<Combination> {
protected:
    DaemonForkTest() {
        char name[] = "/tmp/afbus-fork-XXXXXX";
        if (!::mkdtemp(name)) throw std::runtime_error("mkdtemp failed");
        dir_ = name;
        write_config(config_path(), "unix:path=" + socket_path());
        if (::prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) throw std::runtime_error("PR_SET_CHILD_SUBREAPER failed");
    }
    ~DaemonForkTest() override {
        ::prctl(PR_SET_CHILD_SUBREAPER, 0);
        // Whatever a failed test left behind (a bus it did not stop) was reparented to us.
        kill_and_collect_children();
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    [[nodiscard]] std::string config_path() const { return dir_ + "/bus.conf"; }
    [[nodiscard]] std::string socket_path() const { return dir_ + "/bus"; }

    // The options of this combination, to come after --fork and before --config-file. The pid's first:
    // dbus-daemon takes the argument after a bare --print-address as its fd unless it is one of the
    // options it checks before that (--config-file is, --print-pid is not).
    [[nodiscard]] std::vector<std::string> print_options() const {
        std::vector<std::string> options;
        if (auto o = option("--print-pid", GetParam().pid)) options.push_back(*o);
        if (auto o = option("--print-address", GetParam().address)) options.push_back(*o);
        return options;
    }

    // Checks `text`, everything written to one fd: the address line if it went there, then the pid line
    // if it did (the daemon writes them in that order). Records what it read.
    void expect_lines(const std::string& what, const std::string& text, bool has_address, bool has_pid) {
        std::string_view rest = text;
        auto line = [&rest]() -> std::optional<std::string> {
            const auto end = rest.find('\n');
            if (end == std::string_view::npos) return std::nullopt;
            std::string taken(rest.substr(0, end));
            rest.remove_prefix(end + 1);
            return taken;
        };
        if (has_address) {
            const auto address = line();
            ASSERT_TRUE(address) << what << ": no address line in \"" << text << "\"";
            const std::string prefix = "unix:path=" + socket_path() + ",guid=";
            ASSERT_TRUE(address->starts_with(prefix) && address->size() == prefix.size() + 32)
                << what << ": " << *address;
            address_ = *address;
        }
        if (has_pid) {
            const auto pid = line();
            ASSERT_TRUE(pid && !pid->empty() && pid->size() < 10 &&
                        pid->find_first_not_of("0123456789") == std::string::npos)
                << what << ": no pid line in \"" << text << "\"";
            pid_ = static_cast<pid_t>(std::stol(*pid));
        }
        EXPECT_TRUE(rest.empty()) << what << ": more than expected: \"" << text << "\"";
    }

    // The foreground process has exited: the bus must run in the background as our (inherited) child,
    // with the printed pid, 0-2 on /dev/null, serving the printed address; then it ends on SIGTERM.
    void expect_background_bus() {
        const std::vector<pid_t> left = child_pids();
        ASSERT_EQ(left.size(), 1u) << "expected exactly the bus to be left running";
        const pid_t bus = left[0];
        if (GetParam().pid != To::None) {
            EXPECT_EQ(pid_, bus) << "printed pid";
        }
        const Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, bus, 0)));
        ASSERT_TRUE(pidfd) << std::strerror(errno);
        for (int fd = 0; fd <= 2; ++fd) {
            const std::string proc = "/proc/" + std::to_string(bus) + "/fd/" + std::to_string(fd);
            EXPECT_EQ(link_target(proc), "/dev/null") << proc;
        }

        const std::string address =
            GetParam().address != To::None ? address_ : "unix:path=" + socket_path();
        auto client = Connection::open(address);
        ASSERT_TRUE(client) << address << ": " << client.error().name << ": " << client.error().message;
        auto reply = (*client)->call(driver_call("GetConnectionUnixProcessID", "org.freedesktop.DBus"));
        ASSERT_TRUE(reply) << reply.error().name << ": " << reply.error().message;
        EXPECT_EQ(static_cast<pid_t>(std::get<0>(read_all<std::uint32_t>(*reply).value())), bus);

        ASSERT_EQ(::kill(bus, SIGTERM), 0) << std::strerror(errno);
        pollfd p{pidfd.get(), POLLIN, 0};
        ASSERT_EQ(::poll(&p, 1, remaining_ms(Clock::now() + kTimeout)), 1) << "the bus did not exit on SIGTERM";
        int status = 0;
        ASSERT_EQ(::waitpid(bus, &status, 0), bus);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "bus wait status " << status;
    }

    std::string dir_;
    std::string address_;
    pid_t pid_ = -1;
};

// The print fds are pipes (fds 3 and 4 passed to the daemon, or its stdout and stderr) read to end of
// file; each must reach it promptly, with the daemon's output on it.
TEST_P(DaemonForkTest, PrintedLinesReadToEndOfFile) {
    const Combination c = GetParam();
    std::map<int, Pipe> extra;  // fds 3 and 4, those the combination prints to
    for (To to : {c.address, c.pid})
        if (fd_of(to) >= 3 && !extra.contains(fd_of(to))) extra.emplace(fd_of(to), make_pipe());
    ChildOptions options;
    for (const auto& [fd, pipe] : extra) options.inherited_fds.push_back(pipe.write.get());

    std::vector<std::string> argv{daemon_under_test(), "--fork"};
    for (auto& o : print_options()) argv.push_back(o);
    argv.push_back("--config-file=" + config_path());
    ChildProcess daemon(argv, child_environment({}), options);
    std::map<int, std::string> read;
    for (auto& [fd, pipe] : extra) {
        pipe.write.reset();  // ours would keep end of file away
        ::fcntl(pipe.read.get(), F_SETFL, O_NONBLOCK);
    }

    const auto deadline = Clock::now() + kTimeout;
    for (;;) {
        daemon.on_ready();
        for (auto& [fd, pipe] : extra) drain(pipe.read, read[fd]);
        bool open = false;
        for (auto& [fd, pipe] : extra) open = open || pipe.read.valid();
        if (daemon.finished() && !open) break;
        std::vector<pollfd> watched;
        daemon.fds(watched);
        for (auto& [fd, pipe] : extra)
            if (pipe.read) watched.push_back({pipe.read.get(), POLLIN, 0});
        ASSERT_GT(::poll(watched.data(), watched.size(), remaining_ms(deadline)), 0)
            << "no end of file within " << kTimeout.count() << " s: " << daemon.report()
            << (daemon.status() ? " (the foreground process exited; the bus holds a print fd)" : "");
    }
    ASSERT_TRUE(daemon.succeeded()) << daemon.report();
    read[1] = daemon.out();
    read[2] = daemon.err();
    for (int fd : {1, 2, 3, 4}) {
        if (fd >= 3 && !extra.contains(fd)) continue;
        expect_lines("fd " + std::to_string(fd), read[fd], fd_of(c.address) == fd, fd_of(c.pid) == fd);
    }
    expect_background_bus();
}

// `OUT=$(daemon --fork … N>&1)`: the shell's command substitution returns once the foreground process
// has exited, with both lines; every print fd is redirected into it.
TEST_P(DaemonForkTest, ShellCommandSubstitutionReturns) {
    const Combination c = GetParam();
    std::string redirections;
    std::vector<int> redirected;
    for (To to : {c.address, c.pid}) {
        const int fd = fd_of(to);
        if (fd == -1 || fd == 1 || std::find(redirected.begin(), redirected.end(), fd) != redirected.end()) continue;
        redirected.push_back(fd);
        redirections += " " + std::to_string(fd) + ">&1";
    }
    std::string options;
    for (const auto& o : print_options()) options += " " + o;
    const std::string script = "out=$(\"$0\" --fork" + options + " --config-file=\"$1\"" + redirections +
                               ") || exit $?\nprintf '%s\\n' \"$out\"\n";
    ChildProcess shell({"/bin/sh", "-c", script, daemon_under_test(), config_path()}, child_environment({}));
    shell.wait(kTimeout);
    ASSERT_TRUE(shell.finished()) << "the command substitution did not return: " << shell.report();
    ASSERT_TRUE(shell.succeeded()) << shell.report();
    EXPECT_EQ(shell.err(), "");
    const bool has_address = c.address != To::None;
    const bool has_pid = c.pid != To::None;
    // $(…) drops the trailing newline and printf puts it back: nothing printed reads as one empty line.
    if (!has_address && !has_pid) {
        EXPECT_EQ(shell.out(), "\n");
    } else {
        expect_lines("$(…)", shell.out(), has_address, has_pid);
    }
    expect_background_bus();
}

INSTANTIATE_TEST_SUITE_P(EveryPrintCombination, DaemonForkTest, ::testing::ValuesIn(all_combinations()), name_of);

// Without --fork the daemon keeps its stdout (here a pipe) after printing to it, as dbus-daemon does;
// its stdin (here a pipe of the caller's too) points at /dev/null from the start, fork or not, as
// dbus-daemon's does: the bus never reads it.
TEST(DaemonNoForkTest, KeepsStdoutAfterPrintingAndLetsGoOfStdin) {
    char name[] = "/tmp/afbus-nofork-XXXXXX";
    ASSERT_TRUE(::mkdtemp(name));
    const std::string dir = name;
    write_config(dir + "/bus.conf", "unix:dir=" + dir);
    int stdin_pipe[2];
    ASSERT_EQ(::pipe2(stdin_pipe, O_CLOEXEC), 0);
    const Fd stdin_read(stdin_pipe[0]), stdin_write(stdin_pipe[1]);
    ChildOptions options;
    options.inherited_fds = {stdin_read.get()};  // fd 3, which the shell makes the daemon's stdin
    ChildProcess daemon({"/bin/sh", "-c", "exec \"$0\" \"$@\" 0<&3 3<&-", daemon_under_test(), "--nofork",
                         "--print-address=1", "--print-pid=1", "--config-file=" + dir + "/bus.conf"},
                        child_environment({}), options);
    const auto deadline = Clock::now() + kTimeout;
    for (;;) {
        daemon.on_ready();
        const std::string& out = daemon.out();
        if (std::count(out.begin(), out.end(), '\n') >= 2 || daemon.status()) break;
        std::vector<pollfd> watched;
        daemon.fds(watched);
        ASSERT_GT(::poll(watched.data(), watched.size(), remaining_ms(deadline)), 0) << daemon.report();
    }
    ASSERT_FALSE(daemon.status()) << daemon.report();
    const std::string pid_line = daemon.out().substr(daemon.out().find('\n') + 1);
    EXPECT_EQ(std::to_string(daemon.pid()) + "\n", pid_line);
    const std::string stdout_link = link_target("/proc/" + std::to_string(daemon.pid()) + "/fd/1");
    EXPECT_TRUE(stdout_link.starts_with("pipe:")) << stdout_link;
    EXPECT_EQ(link_target("/proc/" + std::to_string(daemon.pid()) + "/fd/0"), "/dev/null");
    // A call answered first: dbus-daemon prints before it installs its SIGTERM handler.
    const std::string address = daemon.out().substr(0, daemon.out().find('\n'));
    auto client = Connection::open(address);
    ASSERT_TRUE(client) << address << ": " << client.error().name << ": " << client.error().message;
    auto id = (*client)->call(driver_call("GetId"));
    ASSERT_TRUE(id) << id.error().name << ": " << id.error().message;
    daemon.send_signal(SIGTERM);
    daemon.wait(kTimeout);
    EXPECT_TRUE(daemon.succeeded()) << daemon.report();
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
}

// python-dbusmock's DBusTestCase runs `dbus-daemon --fork --print-address=1 --print-pid=1` from PATH
// and reads its stdout to end of file: with the daemon under test first in PATH as `dbus-daemon`, the
// session bus it starts must be that daemon, and mocks must work through it
// (integration/dbusmock_session.py).
TEST(DbusmockTest, StartsTheDaemonUnderTestAsItsSessionBus) {
    const char* script = std::getenv("DBUSMOCK_SCRIPT");
    ASSERT_TRUE(script && *script) << "DBUSMOCK_SCRIPT is not set (test/meson.build sets it)";
    // python3-dbusmock is Debian's module for Debian's python3; a python3 earlier in $PATH (pyenv) lacks it.
    const std::string python = ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : find_program("python3");
    if (python.empty()) GTEST_SKIP() << "python3 is not installed (Debian packages python3, python3-dbusmock)";

    char name[] = "/tmp/afbus-dbusmock-XXXXXX";
    ASSERT_TRUE(::mkdtemp(name));
    const std::string dir = name;
    const std::string daemon = std::filesystem::canonical(daemon_under_test()).string();
    std::filesystem::create_directory(dir + "/bin");
    std::filesystem::create_symlink(daemon, dir + "/bin/dbus-daemon");
    // TMPDIR: dbusmock's configuration and service directories go into our directory (its bus listens
    // on unix:tmpdir=/tmp, a fresh socket name).
    ChildProcess run({python, script},
                     child_environment({"PATH=" + dir + "/bin:/usr/bin:/bin", "TMPDIR=" + dir}, {"PYTHON"}),
                     {.merge_stderr = true});
    run.wait(120s);
    // The bus dbusmock started is not our child, and dbusmock stops it at the end of its tests: if the
    // script failed or hung before that, stop it here. Its config file is in our directory (TMPDIR).
    const std::string& out = run.out();
    kill_processes_mentioning(dir);
    std::error_code ignored;
    if (run.exited_with(77)) {
        std::filesystem::remove_all(dir, ignored);
        GTEST_SKIP() << "python3-dbusmock is not installed: " << run.out();
    }
    EXPECT_TRUE(run.finished()) << run.report();
    EXPECT_TRUE(run.succeeded()) << run.report();
    EXPECT_NE(out.find("bus-exe " + daemon + "\n"), std::string::npos) << run.report();
    EXPECT_NE(out.find("\nOK\n"), std::string::npos) << run.report();
    std::filesystem::remove_all(dir, ignored);
}

}  // namespace
}  // namespace afbus
