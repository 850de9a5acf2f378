#include "systemd_integration.hpp"

#include <dlfcn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>

namespace afbus::daemon::systemd {
namespace {

// libsystemd, loaded once on first use; null when it is not installed.
void* libsystemd() {
    static void* const handle = ::dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
    return handle;
}

template <class Function>
Function* libsystemd_function(const char* name) {
    void* handle = libsystemd();
    return handle ? reinterpret_cast<Function*>(::dlsym(handle, name)) : nullptr;
}

std::optional<long> parse_number(const char* text) {
    if (!text) return std::nullopt;
    const std::string_view s(text);
    long value = 0;
    auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (error != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return value;
}

}  // namespace

bool notify(const std::string& state) {
    const char* where = std::getenv("NOTIFY_SOCKET");
    if (!where || (where[0] != '/' && where[0] != '@')) return false;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::size_t length = std::strlen(where);
    if (length >= sizeof address.sun_path) return false;
    std::memcpy(address.sun_path, where, length);
    if (address.sun_path[0] == '@') address.sun_path[0] = '\0';  // an abstract address
    const Fd socket(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!socket) return false;
    const auto address_length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);
    return ::sendto(socket.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address),
                    address_length) == static_cast<ssize_t>(state.size());
}

int listen_fds() {
    const auto pid = parse_number(std::getenv("LISTEN_PID"));
    if (!pid || *pid != ::getpid()) return 0;
    const auto count = parse_number(std::getenv("LISTEN_FDS"));
    if (!count || *count <= 0 || *count > 1024) return 0;
    return static_cast<int>(*count);
}

bool is_listening_stream_socket(int fd) {
    struct stat status {};
    if (::fstat(fd, &status) < 0 || !S_ISSOCK(status.st_mode)) return false;
    int type = 0, listening = 0;
    socklen_t length = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) < 0 || type != SOCK_STREAM) return false;
    length = sizeof listening;
    return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0 && listening != 0;
}

Fd journal_stream(const std::string& identifier, int priority) {
    using StreamFd = int(const char*, int, int);
    auto* stream_fd = libsystemd_function<StreamFd>("sd_journal_stream_fd");
    if (!stream_fd) return Fd{};
    const int fd = stream_fd(identifier.c_str(), priority, 0);
    return fd >= 0 ? Fd(fd) : Fd{};
}

bool uid_is_on_a_seat(uid_t uid) {
    // logind keeps /run/systemd/seats/ while it runs; without it nobody is on a seat (and nothing is loaded).
    if (::access("/run/systemd/seats/", F_OK) != 0) return false;
    using UidGetSeats = int(uid_t, int, char***);
    auto* get_seats = libsystemd_function<UidGetSeats>("sd_uid_get_seats");
    return get_seats && get_seats(uid, 0, nullptr) > 0;
}

}  // namespace afbus::daemon::systemd
