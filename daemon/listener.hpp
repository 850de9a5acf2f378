// Listening sockets for the addresses of <listen> / --address: unix:path, abstract, tmpdir, dir, runtime,
// systemd: (sockets passed by the service manager), tcp:, and afbus:path / abstract (the AF_BUS master of
// kernel mode; docs/kernel-mode.md).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "afbus/address.hpp"
#include "afbus/expected.hpp"
#include "afbus/fd.hpp"

namespace afbus::daemon {

struct Listener {
    Fd fd;
    std::string address;                    // what clients connect to (without guid=)
    std::optional<std::string> socket_file;  // removed when the bus exits
    int af_bus_family = 0;                   // non-zero: an AF_BUS master socket (kernel mode) of this family
};

// One entry may give several listeners (systemd: passes any number of sockets). An afbus: entry gives
// none where the kernel has no AF_BUS D-Bus support: a warning names the reason, and the other
// listeners serve, so that one configuration fits every kernel.
Expected<std::vector<Listener>, std::string> open_listeners(const AddressEntry& entry);

}  // namespace afbus::daemon
