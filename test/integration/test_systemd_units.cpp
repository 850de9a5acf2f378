// The systemd units of data/systemd, as generated in the build directory (AFBUS_SYSTEMD_UNIT_DIR, with
// system/ and user/ under it): what they say (Debian's dbus-daemon command line, with the afbus-daemon of
// the configured bindir AFBUS_INSTALLED_BINDIR), that systemd-analyze accepts them, and that the daemon
// under test does what they ask of it: run the user unit's command line the way systemd does for a
// socket-activated Type=notify service (the listening socket as fd 3 with LISTEN_FDS/LISTEN_PID, a
// NOTIFY_SOCKET), wait for READY=1 from the main process, then call the bus on the passed socket.
//
// The daemon under test is $AFBUS_TEST_DAEMON, else dbus-daemon: the same command line holds for both.
// The bus listens in a temporary directory only; the session configuration is read, no real bus touched.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/fd.hpp"
#include "afbus/types.hpp"
#include "afbus/unix_socket.hpp"
#include "support/child_process.hpp"
#include "support/raw_peer.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

using namespace std::chrono_literals;
using test::child_environment;
using test::ChildOptions;
using test::ChildProcess;
using test::Clock;
using test::daemon_under_test;
using test::find_program;
using test::remaining_ms;

constexpr auto kTimeout = 30s;

std::string required_env(const char* name) {
    const char* value = std::getenv(name);
    if (!value || !*value) throw std::runtime_error(std::string(name) + " is not set (run through meson test)");
    return value;
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path.string());
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// A unit file's settings as systemd reads the simple ones we write: "[Section]" headers, "Key=Value"
// lines, '#' and ';' comments. A key given twice keeps both values, in order.
class UnitFile {
public:
    explicit UnitFile(const std::filesystem::path& path) {
        std::istringstream lines(read_file(path));
        std::string section;
        for (std::string line; std::getline(lines, line);) {
            if (line.empty() || line[0] == '#' || line[0] == ';') continue;
            if (line.front() == '[' && line.back() == ']') {
                section = line.substr(1, line.size() - 2);
                continue;
            }
            const auto equals = line.find('=');
            if (equals == std::string::npos) throw std::runtime_error(path.string() + ": not a setting: " + line);
            settings_[section + "." + line.substr(0, equals)].push_back(line.substr(equals + 1));
        }
    }

    // All values of Section.Key ("Install.Alias").
    [[nodiscard]] std::vector<std::string> values(const std::string& key) const {
        const auto found = settings_.find(key);
        return found == settings_.end() ? std::vector<std::string>{} : found->second;
    }
    // The one value of Section.Key; "" if it is not set.
    [[nodiscard]] std::string value(const std::string& key) const {
        const auto all = values(key);
        EXPECT_LE(all.size(), 1u) << key << " is set more than once";
        return all.empty() ? "" : all.back();
    }

private:
    std::map<std::string, std::vector<std::string>> settings_;
};

std::vector<std::string> words(const std::string& command) {
    std::istringstream in(command);
    std::vector<std::string> out;
    for (std::string word; in >> word;) out.push_back(word);
    return out;
}

std::filesystem::path unit_path(std::string_view scope, std::string_view unit) {
    return std::filesystem::path(required_env("AFBUS_SYSTEMD_UNIT_DIR")) / scope / unit;
}

// A temporary directory, removed with everything in it.
class TempDir {
public:
    TempDir() {
        char name[] = "/tmp/afbus-units-XXXXXX";
        if (!::mkdtemp(name)) throw std::runtime_error("mkdtemp failed");
        path_ = name;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

struct Scope {
    const char* name;                 // the directory under AFBUS_SYSTEMD_UNIT_DIR
    const char* bus_option;           // the daemon's bus
    const char* listen_stream;        // where dbus.socket listens
    const char* debian_unit_dir;      // where Debian's dbus package puts its dbus.service and dbus.socket
    std::vector<std::string> verify;  // systemd-analyze's options for this scope
};

const Scope kSystem{"system", "--system", "/run/dbus/system_bus_socket", "/lib/systemd/system", {}};
const Scope kUser{"user", "--session", "%t/bus", "/usr/lib/systemd/user", {"--user"}};

class SystemdUnitsTest : public ::testing::TestWithParam<Scope> {
protected:
    [[nodiscard]] UnitFile service() const { return UnitFile(unit_path(GetParam().name, "afbus.service")); }
    [[nodiscard]] UnitFile socket() const { return UnitFile(unit_path(GetParam().name, "afbus.socket")); }
};

INSTANTIATE_TEST_SUITE_P(Scopes, SystemdUnitsTest, ::testing::Values(kSystem, kUser),
                         [](const ::testing::TestParamInfo<Scope>& info) { return std::string(info.param.name); });

TEST_P(SystemdUnitsTest, ServiceRunsTheInstalledDaemonWithDebiansCommandLine) {
    const UnitFile unit = service();
    const std::vector<std::string> expected{required_env("AFBUS_INSTALLED_BINDIR") + "/afbus-daemon",
                                            GetParam().bus_option,
                                            "--address=systemd:",
                                            "--nofork",
                                            "--nopidfile",
                                            "--systemd-activation",
                                            "--syslog-only"};
    EXPECT_EQ(words(unit.value("Service.ExecStart")), expected);
    EXPECT_EQ(unit.value("Service.Type"), "notify");
    EXPECT_EQ(unit.value("Service.NotifyAccess"), "main");
    EXPECT_EQ(unit.value("Unit.Requires"), "dbus.socket");
    EXPECT_TRUE(unit.value("Service.ExecReload").ends_with("call org.freedesktop.DBus /org/freedesktop/DBus "
                                                           "org.freedesktop.DBus ReloadConfig"))
        << unit.value("Service.ExecReload");
    EXPECT_EQ(unit.value("Install.Alias"), "dbus.service");
}

TEST_P(SystemdUnitsTest, SocketListensWhereDbusSocketDoes) {
    const UnitFile unit = socket();
    EXPECT_EQ(unit.values("Socket.ListenStream"), std::vector<std::string>{GetParam().listen_stream});
    EXPECT_EQ(unit.value("Install.Alias"), "dbus.socket");
    EXPECT_EQ(unit.value("Install.WantedBy"), "sockets.target");
}

// Against the units of the dbus-daemon that afbus-daemon replaces, where Debian's dbus package is
// installed: the same command line after the program, the same notification, the same socket.
TEST_P(SystemdUnitsTest, AgreeWithTheInstalledDbusUnits) {
    const std::filesystem::path dir = GetParam().debian_unit_dir;
    if (!std::filesystem::exists(dir / "dbus.service") || !std::filesystem::exists(dir / "dbus.socket"))
        GTEST_SKIP() << "no dbus.service and dbus.socket in " << dir;
    const UnitFile theirs(dir / "dbus.service");
    std::vector<std::string> their_command = words(theirs.value("Service.ExecStart"));
    if (their_command.empty() || !their_command[0].ends_with("/dbus-daemon"))
        GTEST_SKIP() << dir / "dbus.service" << " does not run dbus-daemon (another bus replaces it)";
    std::vector<std::string> our_command = words(service().value("Service.ExecStart"));
    ASSERT_FALSE(our_command.empty());
    their_command.erase(their_command.begin());
    our_command.erase(our_command.begin());
    EXPECT_EQ(our_command, their_command);
    EXPECT_EQ(service().value("Service.Type"), theirs.value("Service.Type"));
    EXPECT_EQ(service().value("Service.NotifyAccess"), theirs.value("Service.NotifyAccess"));
    EXPECT_EQ(socket().values("Socket.ListenStream"), UnitFile(dir / "dbus.socket").values("Socket.ListenStream"));
}

// systemd-analyze verify loads the units into a systemd manager of its own (no running systemd needed)
// and checks every setting, the units they name and that the programs they run exist. The configured
// bindir is not installed yet, so the copies verified run the afbus-daemon of the build directory; the
// dbus.service and dbus.socket aliases are there as `systemctl enable` makes them.
TEST_P(SystemdUnitsTest, SystemdAnalyzeVerifyAcceptsThem) {
    const std::string analyze = find_program("systemd-analyze");
    if (analyze.empty()) GTEST_SKIP() << "systemd-analyze is not installed (Debian package systemd)";
    const TempDir dir;
    const std::string installed = required_env("AFBUS_INSTALLED_BINDIR") + "/afbus-daemon ";
    for (const char* unit : {"afbus.service", "afbus.socket"}) {
        std::string text = read_file(unit_path(GetParam().name, unit));
        for (auto at = text.find(installed); at != std::string::npos; at = text.find(installed, at))
            text.replace(at, installed.size() - 1, required_env("AFBUS_DAEMON_BUILD_PATH"));
        std::ofstream(dir.path() / unit) << text;
    }
    std::filesystem::create_symlink("afbus.service", dir.path() / "dbus.service");
    std::filesystem::create_symlink("afbus.socket", dir.path() / "dbus.socket");
    // A user manager needs a runtime directory: a private one, not the caller's.
    std::filesystem::create_directory(dir.path() / "runtime");
    std::filesystem::permissions(dir.path() / "runtime", std::filesystem::perms::owner_all);

    std::vector<std::string> argv{analyze};
    argv.insert(argv.end(), GetParam().verify.begin(), GetParam().verify.end());
    argv.insert(argv.end(), {"verify", "--man=no", (dir.path() / "afbus.socket").string(),
                             (dir.path() / "afbus.service").string()});
    ChildProcess verify(argv, child_environment({"XDG_RUNTIME_DIR=" + (dir.path() / "runtime").string(),
                                                 "SYSTEMD_LOG_COLOR=0", "SYSTEMD_PAGER=cat"},
                                                {"SYSTEMD_"}));
    ASSERT_TRUE(verify.wait(kTimeout)) << verify.report();
    if (verify.err().find("Failed to initialize manager") != std::string::npos)
        GTEST_SKIP() << "systemd-analyze cannot run a manager here: " << verify.report();
    EXPECT_TRUE(verify.succeeded()) << verify.report();
    EXPECT_EQ(verify.err(), "") << verify.report();
}

// ---- the command line at work, the way systemd runs it ----

// A unix datagram socket standing in for systemd's notification socket, with SO_PASSCRED so that the
// sender's pid comes with every message, as systemd checks it for NotifyAccess=main.
class NotifySocket {
public:
    explicit NotifySocket(std::filesystem::path path) : path_(std::move(path)) {
        fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (!fd_ || path_.native().size() >= sizeof addr.sun_path) throw std::runtime_error("notify socket");
        path_.native().copy(addr.sun_path, sizeof addr.sun_path - 1);
        const int on = 1;
        if (::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0 ||
            ::setsockopt(fd_.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0)
            throw std::runtime_error("cannot bind the notify socket " + path_.string());
    }
    [[nodiscard]] int fd() const { return fd_.get(); }
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }

    struct Notification {
        std::string text;
        pid_t sender = 0;
    };
    // The next notification if one is waiting.
    std::optional<Notification> receive() const {
        char text[4096];
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
        iovec iov{text, sizeof text};
        msghdr message{};
        message.msg_iov = &iov;
        message.msg_iovlen = 1;
        message.msg_control = control;
        message.msg_controllen = sizeof control;
        const ssize_t n = ::recvmsg(fd_.get(), &message, MSG_CMSG_CLOEXEC);
        if (n < 0) return std::nullopt;
        Notification notification{std::string(text, static_cast<std::size_t>(n)), 0};
        for (cmsghdr* c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                ucred credentials;
                std::memcpy(&credentials, CMSG_DATA(c), sizeof credentials);
                notification.sender = credentials.pid;
            }
        }
        return notification;
    }

private:
    std::filesystem::path path_;
    Fd fd_;
};

bool has_line(const std::string& text, std::string_view line) {
    std::istringstream lines(text);
    for (std::string l; std::getline(lines, l);) {
        if (l == line) return true;
    }
    return false;
}

TEST(SocketActivation, TheUserUnitsCommandLineReportsReadyAndServesThePassedSocket) {
    std::vector<std::string> command = words(UnitFile(unit_path("user", "afbus.service")).value("Service.ExecStart"));
    ASSERT_FALSE(command.empty());
    command[0] = daemon_under_test();

    const TempDir dir;
    const std::string socket_path = (dir.path() / "bus").string();
    auto listener = listen_unix(socket_path);
    ASSERT_TRUE(listener) << "cannot listen on " << socket_path << ": " << std::strerror(listener.error());
    const NotifySocket notify(dir.path() / "notify");

    // systemd sets LISTEN_PID to the service's pid between fork and exec; a shell that execs the daemon
    // keeps its pid, so it can do the same.
    std::vector<std::string> argv{"/bin/sh", "-c", "LISTEN_PID=$$; export LISTEN_PID; exec \"$@\"", "sh"};
    argv.insert(argv.end(), command.begin(), command.end());
    ChildProcess daemon(argv,
                        child_environment({"LISTEN_FDS=1", "NOTIFY_SOCKET=" + notify.path().string()},
                                          {"LISTEN_", "NOTIFY_SOCKET="}),
                        ChildOptions{.inherited_fds = {listener->get()}});
    const pid_t daemon_pid = daemon.pid();

    // READY=1 from the main process, before the daemon exits (or the deadline).
    std::optional<NotifySocket::Notification> ready;
    const auto deadline = Clock::now() + kTimeout;
    std::vector<std::string> notifications;
    while (!ready && !daemon.status() && Clock::now() < deadline) {
        std::vector<pollfd> fds{{notify.fd(), POLLIN, 0}};
        daemon.fds(fds);
        ASSERT_GE(::poll(fds.data(), fds.size(), remaining_ms(deadline)), 0) << std::strerror(errno);
        daemon.on_ready();
        while (auto notification = notify.receive()) {
            notifications.push_back(notification->text);
            if (has_line(notification->text, "READY=1")) ready = notification;
        }
    }
    ASSERT_TRUE(ready) << "no READY=1; notifications: " << ::testing::PrintToString(notifications) << "\n"
                       << daemon.report();
    EXPECT_EQ(ready->sender, daemon_pid) << "READY=1 must come from the main process (NotifyAccess=main)";

    // A client on the socket systemd would own: the daemon serves it.
    auto client = Connection::open("unix:path=" + socket_path);
    ASSERT_TRUE(client) << client.error().name << ": " << client.error().message << "\n" << daemon.report();
    auto reply = (*client)->call(test::driver_call("GetId"));
    ASSERT_TRUE(reply) << reply.error().name << ": " << reply.error().message;
    const auto id = read_all<std::string>(*reply);
    ASSERT_TRUE(id);
    const std::string& guid = std::get<0>(*id);
    EXPECT_EQ(guid.size(), 32u) << guid;
    EXPECT_TRUE(std::all_of(guid.begin(), guid.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }))
        << guid;

    // SIGTERM (systemctl stop) ends it cleanly, and the socket stays: it belongs to systemd.
    client->reset();
    daemon.send_signal(SIGTERM);
    ASSERT_TRUE(daemon.wait(kTimeout)) << daemon.report();
    EXPECT_TRUE(daemon.succeeded()) << daemon.report();
    EXPECT_TRUE(std::filesystem::is_socket(socket_path)) << "the daemon removed the socket systemd passed it";
}

}  // namespace
}  // namespace afbus
