#include "peer.hpp"

namespace afbus::daemon {

std::string Peer::describe_owner() const {
    return "uid=" + (uid_ ? std::to_string(*uid_) : std::string("(anonymous)")) + " pid=" + std::to_string(credentials_.pid);
}

std::string Peer::log_name() const { return unique_name_.empty() ? std::string("(unregistered)") : unique_name_; }

}  // namespace afbus::daemon
