// Listening sockets for the addresses of <listen> / --address: unix:path, abstract, tmpdir, dir, runtime,
// systemd: (sockets passed by the service manager) and tcp:.
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
};

// One entry may give several listeners (systemd: passes any number of sockets).
Expected<std::vector<Listener>, std::string> open_listeners(const AddressEntry& entry);

}  // namespace afbus::daemon
