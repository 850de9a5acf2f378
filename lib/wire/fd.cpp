#include "afbus/fd.hpp"

#include <fcntl.h>

namespace afbus {

Fd Fd::duplicate() const noexcept {
    if (fd_ < 0) return Fd{};
    return Fd{::fcntl(fd_, F_DUPFD_CLOEXEC, 3)};
}

}  // namespace afbus
