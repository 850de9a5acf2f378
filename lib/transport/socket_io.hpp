// What the stream and the datagram transport share at the socket: fds as SCM_RIGHTS control data, and
// how an errno of recvmsg/sendmsg becomes a TransportError.
#pragma once

#include <sys/socket.h>

#include <span>
#include <vector>

#include "afbus/fd.hpp"
#include "afbus/message.hpp"
#include "afbus/stream_transport.hpp"  // TransportError

namespace afbus {

// Control data with room for the most fds one message may carry.
struct ScmRightsBuffer {
    alignas(cmsghdr) char bytes[CMSG_SPACE(sizeof(int) * kMaxMessageUnixFds)];
};

// Points `msg` at `buffer`, holding `fds` (at most kMaxMessageUnixFds) as one SCM_RIGHTS message.
void attach_fds(msghdr& msg, ScmRightsBuffer& buffer, std::span<const Fd> fds);

// Takes ownership of every fd recvmsg put in `msg`'s control data, appending them to `into`: called
// before anything else looks at the result, so that none leaks whatever happens next. False when there
// was no memory to hold them: they are closed then, and the message they came with has lost them.
[[nodiscard]] bool take_fds(msghdr& msg, std::vector<Fd>& into) noexcept;

// EPIPE and ECONNRESET: the peer is gone (Closed); anything else is Io.
[[nodiscard]] TransportError transport_error_from_errno(int error_number);

}  // namespace afbus
