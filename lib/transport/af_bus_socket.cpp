#include "afbus/af_bus_socket.hpp"

#include <fcntl.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace afbus {

std::string AfBusSocketError::describe() const {
    switch (kind) {
        case Kind::Unavailable:
            return std::string(to_string(unavailable));
        case Kind::BadAddress:
            return "Invalid AF_BUS address: " + std::string(to_string(address));
        case Kind::Socket:
            if (errno_value == EPROTONOSUPPORT)
                return "AF_BUS not available (af_bus_dbus.ko is not loaded: " +
                       std::string(std::strerror(errno_value)) + ")";
            return "Cannot create an AF_BUS socket: " + std::string(std::strerror(errno_value));
        case Kind::Connect:
            return "Cannot connect to the AF_BUS bus: " + std::string(std::strerror(errno_value));
    }
    return "AF_BUS error";
}

Expected<BusSocketAddress, AddressError> bus_socket_address(const AddressEntry& entry, int family,
                                                            std::uint64_t address) {
    if (entry.transport() != "afbus") return Unexpected(AddressError::NotUnixSocket);
    // The same rules as sockaddr_un's sun_path (BUS_PATH_MAX is its size); runtime= is not an afbus: key.
    auto path = unix_socket_path(entry, EnvironmentLookup{});
    if (!path) return Unexpected(path.error());
    static_assert(BUS_PATH_MAX == sizeof(sockaddr_un{}.sun_path));
    BusSocketAddress result;
    result.address.sbus_family = static_cast<__kernel_sa_family_t>(family);
    result.address.sbus_addr.s_addr = address;
    std::memcpy(result.address.sbus_path, path->data(), path->size());
    // A filesystem path counts its terminating NUL (sbus_path is zeroed), an abstract name does not
    // (its leading NUL is in path): as afbus_test_util.h's bus_sockaddr().
    const bool abstract = !path->empty() && path->front() == '\0';
    result.length =
        static_cast<socklen_t>(offsetof(sockaddr_bus, sbus_path) + path->size() + (abstract ? 0 : 1));
    return result;
}

Expected<AfBusSocket, AfBusSocketError> connect_af_bus(const AddressEntry& entry, std::string_view sysfs_root,
                                                       SocketFileMode mode) {
    auto family = af_bus_family(sysfs_root);
    if (!family) return Unexpected(AfBusSocketError{AfBusSocketError::Kind::Unavailable, family.error()});
    auto address = bus_socket_address(entry, *family);
    if (!address) {
        return Unexpected(
            AfBusSocketError{AfBusSocketError::Kind::BadAddress, AfBusError::NotLoaded, address.error()});
    }
    Fd fd(::socket(*family, SOCK_SEQPACKET | SOCK_CLOEXEC, BUS_PROTO_DBUS));
    if (!fd) {
        // A family number with no socket family behind it (a stale sysfs file) reads as "not loaded".
        if (errno == EAFNOSUPPORT)
            return Unexpected(AfBusSocketError{AfBusSocketError::Kind::Unavailable, AfBusError::NotLoaded});
        return Unexpected(AfBusSocketError{AfBusSocketError::Kind::Socket, {}, {}, errno});
    }
    // Blocking connect: AF_BUS connects at once or fails (EAGAIN when the accept queue is full).
    int r;
    do r = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address->address), address->length);
    while (r < 0 && errno == EINTR);
    if (r < 0) return Unexpected(AfBusSocketError{AfBusSocketError::Kind::Connect, {}, {}, errno});
    if (mode == SocketFileMode::NonBlocking &&
        ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK) < 0)
        return Unexpected(AfBusSocketError{AfBusSocketError::Kind::Connect, {}, {}, errno});
    return AfBusSocket{std::move(fd), *family};
}

std::optional<std::uint64_t> af_bus_local_address(int socket, int family) {
    sockaddr_bus self{};
    socklen_t length = sizeof self;
    if (::getsockname(socket, reinterpret_cast<sockaddr*>(&self), &length) < 0) return std::nullopt;
    if (length < offsetof(sockaddr_bus, sbus_path) || self.sbus_family != family) return std::nullopt;
    return self.sbus_addr.s_addr;
}

}  // namespace afbus
