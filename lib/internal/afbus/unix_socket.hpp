// Unix stream sockets for D-Bus: connect, listen, accept, and the kernel's view of the peer.
// Every socket is non-blocking and close-on-exec. Paths starting with '\0' are abstract.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "afbus/expected.hpp"
#include "afbus/fd.hpp"

namespace afbus {

// Failures carry the errno of the system call that failed.
Expected<Fd, int> connect_unix(std::string_view path);
Expected<Fd, int> listen_unix(std::string_view path, int backlog = 128);
// The next pending connection; an invalid Fd when none is pending.
Expected<Fd, int> accept_connection(const Fd& listener);
Expected<std::pair<Fd, Fd>, int> stream_socketpair();

// Credentials of the process at the other end, as the kernel recorded them at connect time (none for TCP).
struct PeerCredentials {
    pid_t pid = 0;
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    std::vector<gid_t> groups;            // SO_PEERGROUPS (empty where the kernel lacks it)
    std::optional<std::string> security_label;  // SO_PEERSEC (LSM label), when there is one
    Fd pidfd;                             // SO_PEERPIDFD, on kernels that offer it (6.5+)
    // False for TCP sockets: the kernel knows nothing of the peer, so pid, uid and gid stay unset
    // (0, -1, -1) and only authentication (DBUS_COOKIE_SHA1) can tell who it is.
    bool from_kernel = false;
};
Expected<PeerCredentials, int> peer_credentials(const Fd& socket);

}  // namespace afbus
