#include "listener.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include <linux/af_bus.h>

#include "afbus/af_bus_socket.hpp"
#include "afbus/unix_socket.hpp"
#include "log.hpp"
#include "systemd_integration.hpp"

namespace afbus::daemon {
namespace {

std::string random_suffix() {
    static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::random_device random;
    std::string s;
    for (int i = 0; i < 10; ++i) s += kChars[random() % (sizeof kChars - 1)];
    return s;
}

Expected<std::vector<Listener>, std::string> listen_path(const std::string& path) {
    // A socket left behind by a bus that died is replaced; anything else at the path is an error.
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
    auto fd = listen_unix(path);
    if (!fd) return Unexpected("Failed to bind socket \"" + path + "\": " + std::strerror(fd.error()));
    // Who may connect is policy's decision (<allow user=...>), not the socket file's: open it to everyone,
    // as dbus-daemon does. The directory's permissions still apply.
    if (::chmod(path.c_str(), 0777) < 0) log_warning("Could not set mode 0777 on socket %s", path.c_str());
    std::vector<Listener> out;
    out.push_back({std::move(*fd), "unix:path=" + escape_address_value(path), path});
    return out;
}

// Kernel mode's master: a BUS_PROTO_DBUS bus, which af_bus_dbus.ko must serve.
Expected<std::vector<Listener>, std::string> listen_af_bus(const AddressEntry& entry) {
    const auto skip = [&entry](const std::string& why) -> Expected<std::vector<Listener>, std::string> {
        log_warning("Not listening on %s: %s; the other listen addresses serve", entry.to_string().c_str(), why.c_str());
        return std::vector<Listener>{};
    };
    auto family = af_bus_family();
    if (!family) return skip(std::string(to_string(family.error())));
    auto address = bus_socket_address(entry, *family);
    if (!address) return Unexpected("Address " + entry.to_string() + ": " + std::string(to_string(address.error())));
    Fd fd(::socket(*family, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, BUS_PROTO_DBUS));
    if (!fd) return skip(std::string("AF_BUS socket: ") + std::strerror(errno));
    std::optional<std::string> socket_file;
    const char* path = address->address.sbus_path;
    if (path[0] != '\0') {
        struct stat st;
        if (::lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path);
        socket_file = path;
    }
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address->address), address->length) < 0) {
        if (errno == EPROTONOSUPPORT) return skip("the AF_BUS D-Bus module (af_bus_dbus.ko) is not loaded");
        return Unexpected("Failed to bind AF_BUS socket " + entry.to_string() + ": " + std::strerror(errno));
    }
    if (::listen(fd.get(), 128) < 0)
        return Unexpected("Failed to listen on AF_BUS socket " + entry.to_string() + ": " + std::strerror(errno));
    if (socket_file && ::chmod(socket_file->c_str(), 0777) < 0)
        log_warning("Could not set mode 0777 on socket %s", socket_file->c_str());
    const std::string where = socket_file ? "afbus:path=" + escape_address_value(*socket_file)
                                          : "afbus:abstract=" + escape_address_value(std::string(*entry.get("abstract")));
    std::vector<Listener> out;
    out.push_back({std::move(fd), where, socket_file, *family});
    return out;
}

namespace {

// Whether a bound TCP address is reachable only from this machine (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104).
bool is_loopback(const sockaddr_storage& address) {
    if (address.ss_family == AF_INET) {
        const auto& in = reinterpret_cast<const sockaddr_in&>(address);
        return (ntohl(in.sin_addr.s_addr) >> 24) == 127;
    }
    if (address.ss_family == AF_INET6) {
        const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address).sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(&in6) || (IN6_IS_ADDR_V4MAPPED(&in6) && in6.s6_addr[12] == 127);
    }
    return false;
}

}  // namespace

Expected<std::vector<Listener>, std::string> listen_tcp(const AddressEntry& entry) {
    const std::string host(entry.get("bind").value_or(entry.get("host").value_or("localhost")));
    const std::string port(entry.get("port").value_or("0"));
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
    if (auto family = entry.get("family")) hints.ai_family = *family == "ipv6" ? AF_INET6 : AF_INET;
    addrinfo* result = nullptr;
    int e = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &result);
    if (e == EAI_NONAME || e == EAI_ADDRFAMILY || e == EAI_NODATA) {
        // AI_ADDRCONFIG leaves out the families the machine has no address of besides loopback: on one
        // with loopback alone (no network yet, a container without one) even 127.0.0.1 and 0.0.0.0 would
        // not resolve. Then every family goes, and bind() says what the machine cannot do.
        hints.ai_flags &= ~AI_ADDRCONFIG;
        e = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &result);
    }
    if (e != 0) return Unexpected("Failed to look up host \"" + host + "\": " + ::gai_strerror(e));
    std::vector<Listener> out;
    std::string error;
    for (addrinfo* ai = result; ai; ai = ai->ai_next) {
        Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
        if (!fd) continue;
        const int one = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) < 0 || ::listen(fd.get(), 128) < 0) {
            error = std::strerror(errno);
            continue;
        }
        sockaddr_storage bound{};
        socklen_t len = sizeof bound;
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len);
        char port_text[NI_MAXSERV];
        ::getnameinfo(reinterpret_cast<sockaddr*>(&bound), len, nullptr, 0, port_text, sizeof port_text, NI_NUMERICSERV);
        const std::string family = ai->ai_family == AF_INET6 ? "ipv6" : "ipv4";
        if (!is_loopback(bound)) {
            char host_text[NI_MAXHOST] = "?";
            ::getnameinfo(reinterpret_cast<sockaddr*>(&bound), len, host_text, sizeof host_text, nullptr, 0, NI_NUMERICHOST);
            log_warning("listening on %s, which is not a loopback address (%s port %s): anyone who can reach it may try "
                        "to authenticate, and TCP carries no credentials (EXTERNAL fails; a DBUS_COOKIE_SHA1 or "
                        "ANONYMOUS login over it is not encrypted)",
                        entry.to_string().c_str(), host_text, port_text);
        }
        out.push_back({std::move(fd), "tcp:host=" + escape_address_value(std::string(entry.get("host").value_or("localhost"))) +
                                          ",port=" + port_text + ",family=" + family,
                       std::nullopt});
        break;  // dbus-daemon listens on the first address that works
    }
    ::freeaddrinfo(result);
    if (out.empty()) return Unexpected("Failed to listen on " + entry.to_string() + ": " + (error.empty() ? "no address" : error));
    return out;
}

Expected<std::vector<Listener>, std::string> listen_systemd() {
    const int n = systemd::listen_fds();
    if (n == 0) return Unexpected(std::string("systemd: address given, but no sockets were passed (LISTEN_FDS)"));
    std::vector<Listener> out;
    for (int fd = systemd::kListenFdsStart; fd < systemd::kListenFdsStart + n; ++fd) {
        if (!systemd::is_listening_stream_socket(fd))
            return Unexpected("passed fd " + std::to_string(fd) + " is not a listening stream socket");
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        sockaddr_un addr{};
        socklen_t len = sizeof addr;
        std::string address = "systemd:";
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 && addr.sun_family == AF_UNIX &&
            len > offsetof(sockaddr_un, sun_path)) {
            if (addr.sun_path[0] == '\0') {
                address = "unix:abstract=" + escape_address_value(std::string(addr.sun_path + 1, len - offsetof(sockaddr_un, sun_path) - 1));
            } else {
                address = "unix:path=" + escape_address_value(addr.sun_path);
            }
        }
        out.push_back({Fd(fd), address, std::nullopt});
    }
    return out;
}

}  // namespace

Expected<std::vector<Listener>, std::string> open_listeners(const AddressEntry& entry) {
    const std::string& transport = entry.transport();
    if (transport == "systemd") return listen_systemd();
    if (transport == "tcp") return listen_tcp(entry);
    if (transport == "afbus") return listen_af_bus(entry);
    if (transport != "unix") return Unexpected("Unsupported address type \"" + transport + "\" in " + entry.to_string());
    if (auto path = entry.get("path")) return listen_path(std::string(*path));
    if (auto dir = entry.get("dir").has_value() ? entry.get("dir") : entry.get("tmpdir")) {
        // dbus-daemon 1.14 uses a filesystem socket for tmpdir= too.
        return listen_path(std::string(*dir) + "/dbus-" + random_suffix());
    }
    if (auto name = entry.get("abstract")) {
        auto fd = listen_unix(std::string(1, '\0') + std::string(*name));
        if (!fd) return Unexpected("Failed to bind abstract socket \"" + std::string(*name) + "\": " + std::strerror(fd.error()));
        std::vector<Listener> out;
        out.push_back({std::move(*fd), "unix:abstract=" + escape_address_value(*name), std::nullopt});
        return out;
    }
    if (entry.get("runtime") == "yes") {
        const char* runtime = std::getenv("XDG_RUNTIME_DIR");
        if (!runtime || runtime[0] != '/') return Unexpected(std::string("unix:runtime=yes needs XDG_RUNTIME_DIR"));
        return listen_path(std::string(runtime) + "/bus");
    }
    return Unexpected("Address " + entry.to_string() + " names no socket to listen on");
}

}  // namespace afbus::daemon
