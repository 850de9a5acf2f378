// Connecting to a bus over AF_BUS (afbus:path=P or afbus:abstract=N; docs/kernel.md, docs/sasl-and-
// addresses.md "afbus: addresses"): the family number from sysfs, a SOCK_SEQPACKET socket of protocol
// BUS_PROTO_DBUS, connect() to the bus's sockaddr_bus, then non-blocking. Errors are values.
#pragma once

#include <linux/af_bus.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "afbus/address.hpp"
#include "afbus/expected.hpp"
#include "afbus/fd.hpp"
#include "transport/af_bus_family.hpp"

namespace afbus {

struct AfBusSocketError {
    enum class Kind : std::uint8_t {
        Unavailable,  // no AF_BUS on this kernel: `unavailable` says why (fall back to the next entry)
        BadAddress,   // the entry is not a connectable afbus: address: `address` says why
        Socket,       // socket() failed: errno_value (EPROTONOSUPPORT: af_bus_dbus.ko is not loaded)
        Connect,      // connect() or fcntl() failed: errno_value (ENOENT, ECONNREFUSED: no bus there)
    } kind;
    AfBusError unavailable = AfBusError::NotLoaded;
    AddressError address = AddressError::UnixLocation;
    int errno_value = 0;
    [[nodiscard]] std::string describe() const;
};

// A bus's socket address: the address is the destination (0: the master) for sendto and bind; path is
// the unescaped path, or for an abstract name a NUL followed by the name (what unix_socket_path gives).
struct BusSocketAddress {
    sockaddr_bus address{};
    socklen_t length = 0;
};
Expected<BusSocketAddress, AddressError> bus_socket_address(const AddressEntry& entry, int family,
                                                            std::uint64_t address = BUS_MASTER_ADDR);

// What a connected socket's file is left as. Blocking is for an owner that passes MSG_DONTWAIT to every
// call but the receives it means to wait in (DatagramTransport::read with ReadStart::Waiting).
enum class SocketFileMode : bool { NonBlocking, Blocking };

struct AfBusSocket {
    Fd fd;       // connected, close-on-exec, non-blocking unless asked otherwise
    int family;  // the AF_BUS number in use, for the msg_name of later sends
};
// sysfs_root: where /module/af_bus/parameters/family is looked up (tests pass a temporary directory).
Expected<AfBusSocket, AfBusSocketError> connect_af_bus(const AddressEntry& entry,
                                                       std::string_view sysfs_root = kDefaultSysfsRoot,
                                                       SocketFileMode mode = SocketFileMode::NonBlocking);

// The socket's own AF_BUS address (getsockname: a client's unique address), if it is a socket of `family`.
[[nodiscard]] std::optional<std::uint64_t> af_bus_local_address(int socket, int family);

}  // namespace afbus
