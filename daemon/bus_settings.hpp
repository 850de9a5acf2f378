// BusSettings: what the configuration (and the command line) say the bus is to be; replaced whole on a
// reload.
#pragma once

#include <sys/resource.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "afbus/sasl.hpp"
#include "limits.hpp"
#include "policy_engine.hpp"
#include "service_directory.hpp"

namespace afbus::daemon {

struct BusSettings {
    std::string type = "session";
    std::vector<SaslMechanism> mechanisms{SaslMechanism::External};
    bool allow_anonymous = false;
    bool systemd_activation = false;
    // The bus's address as printed (DBUS_STARTER_ADDRESS of activated services).
    std::string address;
    // Where .service files are looked for (resolved from the configuration), and the system bus's
    // setuid launch helper.
    std::vector<SearchDirectory> service_directories;
    std::optional<std::string> servicehelper;
    std::optional<rlimit> service_fd_limit;  // RLIMIT_NOFILE for activated services
    Limits limits;
    // The compiled <policy> rules. Null only for a bus built without a configuration (unit tests):
    // then nothing is checked.
    std::shared_ptr<policy::PolicyEngine> policy;
};

}  // namespace afbus::daemon
