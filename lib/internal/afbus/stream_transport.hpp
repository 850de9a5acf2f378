// StreamTransport: D-Bus messages over a connected, non-blocking unix stream socket, with SCM_RIGHTS fd
// passing. Reads as many bytes as the socket has (many messages per recvmsg); writes queued messages with
// one sendmsg of iovecs (header and body of several messages at once). Queued messages are shared, so a
// bus can queue one buffer on many peers.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string_view>

#include "afbus/expected.hpp"
#include "afbus/fd.hpp"
#include "afbus/framer.hpp"
#include "afbus/message.hpp"

namespace afbus {

struct TransportError {
    enum class Kind : std::uint8_t {
        Closed,        // the peer closed its end (orderly EOF, EPIPE or ECONNRESET)
        Io,            // another errno from recvmsg/sendmsg
        Corrupt,       // the byte stream is not valid D-Bus (see wire)
        FdsNotAllowed, // a message carries fds but fd passing was not negotiated
        NoMemory,      // no room could be made for a message the peer sent, or for parsing it (bad_alloc)
        Skipped        // not an end: no room could be made for a message the peer sent, and it was
                       // skipped (set_skip_unaffordable_messages); the stream goes on after it
    };
    Kind kind;
    int error_number = 0;
    WireError wire = WireError::Truncated;
    SkippedMessage skipped{};  // Kind::Skipped: what was skipped
};
std::string describe(const TransportError& error);

class StreamTransport {
public:
    explicit StreamTransport(Fd socket) : socket_(std::move(socket)) {}

    [[nodiscard]] int fd() const noexcept { return socket_.get(); }
    // Fd passing, once agreed during authentication.
    void set_unix_fd_passing(bool on) noexcept { unix_fds_ = on; }
    [[nodiscard]] bool unix_fd_passing() const noexcept { return unix_fds_; }
    // The longest message the peer may send (max_message_size): next() reports a longer one as
    // Corrupt/MessageTooLong once its fixed header has arrived, and no room is made for it.
    void set_max_message_size(std::size_t bytes) noexcept { framer_.set_max_message_length(bytes); }
    // A message there is no memory for is skipped, and next() reports it (Kind::Skipped) in its place,
    // instead of ending the stream with Kind::NoMemory: a bus answers the sender and serves it on. No
    // memory for a read buffer before a message has begun is then Kind::Io with ENOMEM, as the kernel's
    // own: nothing was read, and the owner reads again later; so is no memory to parse a message from
    // the read buffer (from next(): it stays buffered, and a later next() tries again).
    void set_skip_unaffordable_messages(bool on) noexcept { skip_unaffordable_ = on; }

    // Bytes that arrived before the transport took over (after the SASL BEGIN, in the same read).
    void push_received(std::string_view bytes);

    // Bytes, and the fds that came with them, that the owner received from the socket itself (the
    // daemon's io_uring receives), taken as read() would have taken them: fds without fd passing agreed
    // are FdsNotAllowed, control data cut short (MSG_CTRUNC) is Corrupt, and no room for the message
    // they begin is NoMemory, or skips it where set_skip_unaffordable_messages() asked so (they were
    // taken off the socket: they cannot be read again later).
    Expected<void, TransportError> take_received(std::span<const std::byte> bytes, std::vector<Fd> fds,
                                                 bool control_truncated);
    // Bytes still to come of the message begun (MessageFramer::awaited): an owner that receives for
    // itself receives a long rest in place instead, straight into the message's storage.
    [[nodiscard]] std::size_t awaited() const noexcept { return framer_.awaited(); }
    // Where the next bytes go (MessageFramer::prepare): for an owner that receives into it itself, then
    // says what arrived with took_in_place(). Valid until then, or until this transport is destroyed;
    // nothing else may read for it meanwhile. Out of memory for the message begun, std::bad_alloc.
    [[nodiscard]] std::span<std::byte> receive_room() { return framer_.prepare(); }
    // `n` bytes arrived in receive_room(), with these fds; checked as take_received() checks them.
    Expected<void, TransportError> took_in_place(std::size_t n, std::vector<Fd> fds, bool control_truncated);

    // Reads what the socket has now, up to `budget` bytes (so one busy peer cannot starve others).
    // Returns the number of bytes read; 0 means nothing was available (EAGAIN).
    Expected<std::size_t, TransportError> read(std::size_t budget = 1024 * 1024);
    // The next complete message already read, if any.
    Expected<std::optional<Message>, TransportError> next();

    void enqueue(std::shared_ptr<const Message> message);
    void enqueue(Message message) { enqueue(std::make_shared<const Message>(std::move(message))); }
    // Writes as much of the queue as the socket takes; true when the queue is empty afterwards.
    Expected<bool, TransportError> flush();
    [[nodiscard]] bool wants_write() const noexcept { return !queue_.empty(); }
    [[nodiscard]] std::size_t queued_bytes() const noexcept { return queued_bytes_; }
    [[nodiscard]] std::size_t queued_messages() const noexcept { return queue_.size(); }
    [[nodiscard]] std::size_t queued_fds() const noexcept { return queued_fds_; }
    // Fds that arrived with the first bytes of a message not yet complete.
    [[nodiscard]] std::size_t pending_fds() const noexcept { return framer_.pending_fds(); }

private:
    // The fds that came with bytes received, and whether there were more than room for: taken, or
    // refused as every read refuses them.
    Expected<void, TransportError> take_control(std::vector<Fd> fds, bool control_truncated);

    Fd socket_;
    MessageFramer framer_;
    std::deque<std::shared_ptr<const Message>> queue_;
    std::size_t head_offset_ = 0;  // bytes of queue_.front() already written
    std::size_t queued_bytes_ = 0;
    std::size_t queued_fds_ = 0;
    bool unix_fds_ = false;
    bool release_buffer_ = false;  // the last read was small: free the read buffer once it is empty
    bool skip_unaffordable_ = false;
};

}  // namespace afbus
