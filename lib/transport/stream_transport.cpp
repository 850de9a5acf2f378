#include "afbus/stream_transport.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "transport/socket_io.hpp"

namespace afbus {
namespace {

constexpr std::size_t kMaxIovecs = 128;  // 64 messages (header + body) per sendmsg
constexpr std::size_t kIdleReadBytes = 4096;

}  // namespace

std::string describe(const TransportError& error) {
    switch (error.kind) {
        case TransportError::Kind::Closed: return "connection closed by peer";
        case TransportError::Kind::Io: return std::string("I/O error: ") + std::strerror(error.error_number);
        case TransportError::Kind::Corrupt: return "invalid message: " + std::string(to_string(error.wire));
        case TransportError::Kind::FdsNotAllowed: return "unix fds sent without negotiating fd passing";
        case TransportError::Kind::NoMemory: return "no memory for a message it sent";
        case TransportError::Kind::Skipped:
            return "no memory for a message it sent (" + std::to_string(error.skipped.length) + " bytes): skipped";
    }
    return "transport error";
}

void StreamTransport::push_received(std::string_view bytes) {
    // (No fds: these came through the SASL exchange, which takes none.)
    if (!take_received(std::as_bytes(std::span(bytes.data(), bytes.size())), {}, false))
        throw std::bad_alloc();
}

Expected<void, TransportError> StreamTransport::take_control(std::vector<Fd> fds, bool control_truncated) {
    if (control_truncated)
        return Unexpected(TransportError{TransportError::Kind::Corrupt, 0, WireError::TooManyFds});
    if (!fds.empty()) {
        if (!unix_fds_) return Unexpected(TransportError{TransportError::Kind::FdsNotAllowed});
        framer_.add_fds(std::move(fds));
    }
    return {};
}

Expected<void, TransportError> StreamTransport::took_in_place(std::size_t n, std::vector<Fd> fds,
                                                              bool control_truncated) {
    if (auto taken = take_control(std::move(fds), control_truncated); !taken) return taken;
    framer_.commit(n);
    return {};
}

Expected<void, TransportError> StreamTransport::take_received(std::span<const std::byte> bytes,
                                                              std::vector<Fd> fds, bool control_truncated) {
    if (auto taken = take_control(std::move(fds), control_truncated); !taken) return taken;
    // As read() does: a connection with little traffic keeps no read buffer between messages.
    if (bytes.size() < kIdleReadBytes) release_buffer_ = true;
    // In pieces: the framer may offer less than asked for, the rest of a large message it reads apart.
    while (!bytes.empty()) {
        std::span<std::byte> space;
        try {
            space = framer_.prepare(bytes.size());
        } catch (const std::bad_alloc&) {
            // As in read(), except that these bytes cannot be read again later.
            if (skip_unaffordable_ && framer_.skip_message()) continue;
            return Unexpected(TransportError{TransportError::Kind::NoMemory, ENOMEM});
        }
        const std::size_t n = std::min(space.size(), bytes.size());
        std::memcpy(space.data(), bytes.data(), n);
        framer_.commit(n);
        bytes = bytes.subspan(n);
    }
    return {};
}

Expected<std::size_t, TransportError> StreamTransport::read(std::size_t budget) {
    std::size_t total = 0;
    while (total < budget) {
        std::span<std::byte> space;
        try {
            space = framer_.prepare();
        } catch (const std::bad_alloc&) {
            // No room for the message the peer announced (up to 128 MiB, made at once so that one read
            // can complete it), or for a read buffer. Where the owner asked so: the message is skipped
            // and next() reports it; or, when messages before it are buffered, next() gives them first
            // and the next read tries again; or, with not even a fixed header buffered, nothing is lost
            // by reading again later, as after the kernel's own ENOMEM. Else this connection cannot go
            // on, but whoever reads it can.
            if (skip_unaffordable_) {
                if (framer_.skip_message()) continue;
                if (framer_.holds_complete_message()) break;
                return Unexpected(TransportError{TransportError::Kind::Io, ENOMEM});
            }
            return Unexpected(TransportError{TransportError::Kind::NoMemory, ENOMEM});
        }
        iovec iov{space.data(), space.size()};
        ScmRightsBuffer control;
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.bytes;
        msg.msg_controllen = sizeof control.bytes;
        const ssize_t n = ::recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return Unexpected(transport_error_from_errno(errno));
        }
        std::vector<Fd> fds;
        // Without them the stream cannot go on: the message they came with would be short of its fds.
        if (!take_fds(msg, fds)) return Unexpected(TransportError{TransportError::Kind::NoMemory, ENOMEM});
        if (auto taken = take_control(std::move(fds), msg.msg_flags & MSG_CTRUNC); !taken)
            return Unexpected(taken.error());
        if (n == 0) {
            if (total == 0 && framer_.buffered() == 0) return Unexpected(TransportError{TransportError::Kind::Closed});
            // Deliver what was read; the next read reports the close.
            if (total == 0) return Unexpected(TransportError{TransportError::Kind::Closed});
            break;
        }
        framer_.commit(static_cast<std::size_t>(n));
        total += static_cast<std::size_t>(n);
        if (static_cast<std::size_t>(n) < space.size()) break;  // drained the socket
    }
    // A connection with little traffic keeps no read buffer between reads (idle peers cost ~64 KiB less);
    // a busy one keeps its buffer. Messages still buffered keep theirs until next() has taken them.
    if (total < kIdleReadBytes) release_buffer_ = true;
    return total;
}

Expected<std::optional<Message>, TransportError> StreamTransport::next() {
    if (auto skipped = framer_.take_skipped())
        return Unexpected(TransportError{TransportError::Kind::Skipped, ENOMEM, WireError::Truncated, *skipped});
    Expected<std::optional<Message>, WireError> m = std::optional<Message>{};
    const std::size_t buffered = framer_.buffered();
    try {
        m = framer_.next();
    } catch (const std::bad_alloc&) {
        // Parsing copies the message out of the read buffer. Where the owner asked to go on: the
        // message is still buffered, and next() tries again later (ENOMEM, as from a read). Else, or
        // for a large message read into storage of its own (lost with the failure), as in read(): the
        // end of this connection only.
        if (skip_unaffordable_ && framer_.buffered() == buffered)
            return Unexpected(TransportError{TransportError::Kind::Io, ENOMEM});
        return Unexpected(TransportError{TransportError::Kind::NoMemory, ENOMEM});
    }
    if (!m) return Unexpected(TransportError{TransportError::Kind::Corrupt, 0, m.error()});
    if (!*m && release_buffer_) {
        framer_.release_if_empty();
        release_buffer_ = false;
    }
    return std::move(*m);
}

void StreamTransport::enqueue(std::shared_ptr<const Message> message) {
    queued_bytes_ += message->size();
    queued_fds_ += message->fds().size();
    queue_.push_back(std::move(message));
}

Expected<bool, TransportError> StreamTransport::flush() {
    while (!queue_.empty()) {
        iovec iov[kMaxIovecs];
        std::size_t iovcnt = 0;
        ScmRightsBuffer control;
        msghdr msg{};

        // The fds of a message travel with its first byte, and one sendmsg carries at most one message's
        // fds, as its first message: the receiver then gets them with that message's bytes.
        std::size_t skip = head_offset_;
        for (std::size_t i = 0; i < queue_.size() && iovcnt + 2 <= kMaxIovecs; ++i) {
            const Message& m = *queue_[i];
            if (!m.fds().empty()) {
                if (!unix_fds_) return Unexpected(TransportError{TransportError::Kind::FdsNotAllowed});
                if (i != 0) break;
                if (head_offset_ == 0) attach_fds(msg, control, m.fds());
            }
            for (std::span<const std::byte> part : {m.header_bytes(), m.body_bytes()}) {
                if (skip >= part.size()) {
                    skip -= part.size();
                    continue;
                }
                iov[iovcnt++] = {const_cast<std::byte*>(part.data() + skip), part.size() - skip};
                skip = 0;
            }
            if (!m.fds().empty()) break;
        }
        msg.msg_iov = iov;
        msg.msg_iovlen = iovcnt;
        const ssize_t n = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
            return Unexpected(transport_error_from_errno(errno));
        }
        // Retire what was written.
        std::size_t written = static_cast<std::size_t>(n);
        queued_bytes_ -= written;
        while (written > 0) {
            const std::size_t left = queue_.front()->size() - head_offset_;
            if (written >= left) {
                written -= left;
                head_offset_ = 0;
                queued_fds_ -= queue_.front()->fds().size();
                queue_.pop_front();
            } else {
                head_offset_ += written;
                written = 0;
            }
        }
    }
    return true;
}

}  // namespace afbus
