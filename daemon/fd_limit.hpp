// The daemon's open-file limit. dbus-daemon raises RLIMIT_NOFILE to 65536 at start (each connection may
// pass it fds, so the default 1024 is quickly exhausted) and gives activated services the limit it
// started with; afbus-daemon does the same.
#pragma once

#include <sys/resource.h>

#include <optional>
#include <string>

#include "afbus/expected.hpp"

namespace afbus::daemon {

inline constexpr rlim_t kDesiredFdLimit = 65536;

// The current limit, to be restored in activated services; none if it cannot be read.
std::optional<rlimit> current_fd_limit();

// Raises the soft limit (and the hard one if needed) to at least `desired`. Without the privilege to
// raise the hard limit it fails with dbus-daemon's text; the daemon logs that and goes on.
Expected<void, std::string> raise_fd_limit(rlim_t desired = kDesiredFdLimit);

}  // namespace afbus::daemon
