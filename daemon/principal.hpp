// Who a uid is for policy: its groups (from NSS, as dbus-daemon takes them, not from the socket) and
// whether it sits at a local seat (systemd-logind; false where logind does not run).
#pragma once

#include <sys/types.h>

#include <optional>

#include "policy_engine.hpp"

namespace afbus::daemon {

policy::Principal principal_for(std::optional<uid_t> uid);

}  // namespace afbus::daemon
