#include "fd_limit.hpp"

#include <cerrno>
#include <cstring>

namespace afbus::daemon {

std::optional<rlimit> current_fd_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return std::nullopt;
    return limit;
}

Expected<void, std::string> raise_fd_limit(rlim_t desired) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0)
        return Unexpected(std::string("Failed to get fd limit: ") + std::strerror(errno));
    if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= desired) return {};
    limit.rlim_cur = desired;
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < desired) limit.rlim_max = desired;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0)
        return Unexpected("Failed to set fd limit to " + std::to_string(desired) + ": " + std::strerror(errno));
    return {};
}

}  // namespace afbus::daemon
