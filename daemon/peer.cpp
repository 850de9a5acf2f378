#include "peer.hpp"

namespace afbus::daemon {

std::string Peer::describe_owner() const {
    return "uid=" + (uid_ ? std::to_string(*uid_) : std::string("(anonymous)")) + " pid=" + std::to_string(credentials_.pid);
}

std::string Peer::log_name() const {
    // Before authentication the kernel's uid is all there is.
    const std::string owner = authenticating() && credentials_.from_kernel
                                  ? "uid=" + std::to_string(credentials_.uid) + " pid=" + std::to_string(credentials_.pid)
                                  : describe_owner();
    return (unique_name_.empty() ? std::string("(unregistered)") : unique_name_) + " (" + owner + ")";
}

}  // namespace afbus::daemon
