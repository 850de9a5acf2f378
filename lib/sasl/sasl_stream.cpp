#include "afbus/sasl_stream.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>

namespace afbus {

std::string SaslStreamError::describe() const {
    switch (kind) {
        case Kind::Closed: return "Connection closed during authentication";
        case Kind::Io: return std::string("I/O error during authentication: ") + std::strerror(errno_value);
        case Kind::Rejected: return "Authentication failed: " + std::string(sasl ? to_string(*sasl) : "unknown reason");
    }
    return "Authentication failed";
}

Expected<SaslProgress, SaslStreamError> SaslStream::advance(int fd, SaslClient& client) {
    return advance_machine(fd, client);
}

Expected<SaslProgress, SaslStreamError> SaslStream::advance(int fd, SaslServer& server) {
    return advance_machine(fd, server);
}

Expected<bool, SaslStreamError> SaslStream::send_output(int fd) {
    while (!output_.empty()) {
        const ssize_t n = ::send(fd, output_.data(), output_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            output_.erase(0, static_cast<std::size_t>(n));
            continue;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return false;
        return Unexpected(SaslStreamError{SaslStreamError::Kind::Io, errno, std::nullopt});
    }
    return true;
}

template <class Machine>
Expected<SaslProgress, SaslStreamError> SaslStream::advance_machine(int fd, Machine& machine) {
    for (;;) {
        output_ += machine.take_output();
        auto sent = send_output(fd);
        if (machine.failed()) {
            // Whatever the last reply could not say now is lost with the connection.
            return Unexpected(SaslStreamError{SaslStreamError::Kind::Rejected, 0, machine.error()});
        }
        if (!sent) return Unexpected(sent.error());
        if (!*sent) return SaslProgress{SaslProgress::Kind::WantWrite, {}};
        if (machine.authenticated()) return SaslProgress{SaslProgress::Kind::Authenticated, std::exchange(leftover_, {})};

        char buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0) return Unexpected(SaslStreamError{SaslStreamError::Kind::Closed, 0, std::nullopt});
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return SaslProgress{SaslProgress::Kind::WantRead, {}};
            return Unexpected(SaslStreamError{SaslStreamError::Kind::Io, errno, std::nullopt});
        }
        const std::string_view input(buf, static_cast<std::size_t>(n));
        const std::size_t used = machine.feed(input);
        // A peer may pipeline its first messages behind the last SASL line (the client's BEGIN, the
        // server's OK / AGREE_UNIX_FD); those belong to the transport.
        if (machine.authenticated()) leftover_.assign(input.substr(used));
    }
}

}  // namespace afbus
