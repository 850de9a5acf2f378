#include "afbus/unix_socket.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5; glibc 2.36 does not know it yet
#endif

namespace afbus {
namespace {

Expected<std::pair<sockaddr_un, socklen_t>, int> make_address(std::string_view path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path) return Unexpected(ENAMETOOLONG);
    std::memcpy(addr.sun_path, path.data(), path.size());
    // Abstract names are exactly their bytes; filesystem paths include the terminating NUL.
    const bool abstract = path[0] == '\0';
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
    return std::pair{addr, length};
}

Expected<Fd, int> new_socket() {
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return Unexpected(errno);
    return fd;
}

}  // namespace

Expected<Fd, int> connect_unix(std::string_view path) {
    auto addr = make_address(path);
    if (!addr) return Unexpected(addr.error());
    // Connect in blocking mode: a non-blocking unix connect fails with EAGAIN while the server's backlog
    // is full, where clients (libdbus among them) expect to wait their turn.
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return Unexpected(errno);
    int r;
    do r = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr->first), addr->second);
    while (r < 0 && errno == EINTR);
    if (r < 0) return Unexpected(errno);
    if (::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK) < 0) return Unexpected(errno);
    return fd;
}

Expected<Fd, int> listen_unix(std::string_view path, int backlog) {
    auto addr = make_address(path);
    if (!addr) return Unexpected(addr.error());
    auto fd = new_socket();
    if (!fd) return fd;
    if (::bind(fd->get(), reinterpret_cast<const sockaddr*>(&addr->first), addr->second) < 0) return Unexpected(errno);
    if (::listen(fd->get(), backlog) < 0) return Unexpected(errno);
    return fd;
}

Expected<Fd, int> accept_connection(const Fd& listener) {
    for (;;) {
        const int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) return Fd(fd);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return Fd{};
        return Unexpected(errno);
    }
}

Expected<std::pair<Fd, Fd>, int> stream_socketpair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) return Unexpected(errno);
    return std::pair{Fd(fds[0]), Fd(fds[1])};
}

Expected<PeerCredentials, int> peer_credentials(const Fd& socket) {
    PeerCredentials out;
    int domain = AF_UNSPEC;
    socklen_t len = sizeof domain;
    if (::getsockopt(socket.get(), SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0) return Unexpected(errno);
    // SO_PEERCRED "succeeds" on TCP with uid -1; say plainly that there is nothing to know.
    if (domain == AF_INET || domain == AF_INET6) return out;
    out.from_kernel = true;
    ucred cred{};
    len = sizeof cred;
    if (::getsockopt(socket.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return Unexpected(errno);
    out.pid = cred.pid;
    out.uid = cred.uid;
    out.gid = cred.gid;

    std::vector<gid_t> groups(64);
    for (;;) {
        len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(socket.get(), SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
            groups.resize(len / sizeof(gid_t));
            out.groups = std::move(groups);
            break;
        }
        if (errno != ERANGE) break;
        groups.resize(len / sizeof(gid_t) + 1);
    }

    // ENOPROTOOPT on a unix socket means no security module that labels sockets is loaded; none can be
    // loaded later, so a bus does not ask again at every connect.
    static std::atomic<bool> unix_labels_unsupported{false};
    if (domain != AF_UNIX || !unix_labels_unsupported.load(std::memory_order_relaxed)) {
        char label[256];
        len = sizeof label;
        const int got = ::getsockopt(socket.get(), SOL_SOCKET, SO_PEERSEC, label, &len);
        if (got == 0 && len > 0) {
            std::string s(label, len);
            while (!s.empty() && s.back() == '\0') s.pop_back();
            if (!s.empty()) out.security_label = std::move(s);
        } else if (got < 0 && errno == ENOPROTOOPT && domain == AF_UNIX) {
            unix_labels_unsupported.store(true, std::memory_order_relaxed);
        }
    }

    int pidfd = -1;
    len = sizeof pidfd;
    if (::getsockopt(socket.get(), SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0) out.pidfd.reset(pidfd);
    return out;
}

}  // namespace afbus
