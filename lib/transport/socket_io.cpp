#include "transport/socket_io.hpp"

#include <cerrno>
#include <cstring>
#include <new>

namespace afbus {

void attach_fds(msghdr& msg, ScmRightsBuffer& buffer, std::span<const Fd> fds) {
    msg.msg_control = buffer.bytes;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    for (std::size_t f = 0; f < fds.size(); ++f) {
        const int fd = fds[f].get();
        std::memcpy(CMSG_DATA(c) + f * sizeof(int), &fd, sizeof fd);
    }
}

bool take_fds(msghdr& msg, std::vector<Fd>& into) noexcept {
    // Room for all of them first: without it, each is closed here.
    std::size_t total = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            total += (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    if (total == 0) return true;
    bool room = true;
    try {
        into.reserve(into.size() + total);
    } catch (const std::bad_alloc&) {
        room = false;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (room)
                into.emplace_back(fd);  // within the room made: does not throw
            else
                Fd closing(fd);
        }
    }
    return room;
}

TransportError transport_error_from_errno(int error_number) {
    if (error_number == EPIPE || error_number == ECONNRESET) return {TransportError::Kind::Closed, error_number};
    return {TransportError::Kind::Io, error_number};
}

}  // namespace afbus
