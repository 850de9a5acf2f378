// The systemd protocols afbus-daemon speaks without libsystemd (daemon/systemd_integration.hpp):
// readiness notification and socket activation, checked against what sd_notify(3) and
// sd_listen_fds(3) specify.
#include "systemd_integration.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace afbus::daemon {
namespace {

class EnvironmentVariable {
public:
    EnvironmentVariable(const char* name, const std::string& value) : name_(name) { ::setenv(name, value.c_str(), 1); }
    ~EnvironmentVariable() { ::unsetenv(name_); }
    EnvironmentVariable(const EnvironmentVariable&) = delete;
    EnvironmentVariable& operator=(const EnvironmentVariable&) = delete;

private:
    const char* name_;
};

// A datagram socket standing for the service manager's notification socket, at `path`, or in the
// abstract namespace when `path` starts with '@'.
Fd bind_datagram(const std::string& path) {
    Fd s(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.data(), path.size());
    if (path[0] == '@') address.sun_path[0] = '\0';
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
    EXPECT_EQ(::bind(s.get(), reinterpret_cast<const sockaddr*>(&address), length), 0) << std::strerror(errno);
    return s;
}

std::string receive(const Fd& s) {
    char buffer[256];
    const ssize_t n = ::recv(s.get(), buffer, sizeof buffer, 0);
    return n < 0 ? std::string("(nothing: ") + std::strerror(errno) + ")" : std::string(buffer, static_cast<std::size_t>(n));
}

TEST(SystemdNotify, SendsTheStateToThePathInNotifySocket) {
    char dir[] = "/tmp/afbus-notify-XXXXXX";
    ASSERT_TRUE(::mkdtemp(dir));
    const std::string path = std::string(dir) + "/notify";
    Fd manager = bind_datagram(path);
    {
        EnvironmentVariable socket("NOTIFY_SOCKET", path);
        EXPECT_TRUE(systemd::notify("READY=1"));
    }
    EXPECT_EQ(receive(manager), "READY=1");
    ::unlink(path.c_str());
    ::rmdir(dir);
}

TEST(SystemdNotify, ReachesAnAbstractSocket) {
    const std::string name = "@afbus-notify-test-" + std::to_string(::getpid());
    Fd manager = bind_datagram(name);
    EnvironmentVariable socket("NOTIFY_SOCKET", name);
    EXPECT_TRUE(systemd::notify("READY=1"));
    EXPECT_EQ(receive(manager), "READY=1");
}

TEST(SystemdNotify, WithoutAServiceManagerThereIsNobodyToTell) {
    ::unsetenv("NOTIFY_SOCKET");
    EXPECT_FALSE(systemd::notify("READY=1"));
    EnvironmentVariable relative("NOTIFY_SOCKET", "relative/path");
    EXPECT_FALSE(systemd::notify("READY=1"));
}

TEST(SystemdListenFds, CountsOnlyWhatWasPassedToThisProcess) {
    EnvironmentVariable fds("LISTEN_FDS", "2");
    {
        EnvironmentVariable pid("LISTEN_PID", std::to_string(::getpid()));
        EXPECT_EQ(systemd::listen_fds(), 2);
    }
    {
        EnvironmentVariable pid("LISTEN_PID", std::to_string(::getpid() + 1));  // meant for another process
        EXPECT_EQ(systemd::listen_fds(), 0);
    }
    {
        EnvironmentVariable pid("LISTEN_PID", std::to_string(::getpid()) + "x");
        EXPECT_EQ(systemd::listen_fds(), 0);
    }
    ::unsetenv("LISTEN_PID");
    EXPECT_EQ(systemd::listen_fds(), 0);
}

TEST(SystemdListenFds, AcceptsOnlyListeningStreamSockets) {
    Fd listening(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    ASSERT_EQ(::bind(listening.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(sa_family_t)), 0);  // autobind
    ASSERT_EQ(::listen(listening.get(), 1), 0);
    EXPECT_TRUE(systemd::is_listening_stream_socket(listening.get()));

    Fd unlistened(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_FALSE(systemd::is_listening_stream_socket(unlistened.get()));
    Fd datagram(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    EXPECT_FALSE(systemd::is_listening_stream_socket(datagram.get()));
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    Fd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
    EXPECT_FALSE(systemd::is_listening_stream_socket(read_end.get()));
}

}  // namespace
}  // namespace afbus::daemon
