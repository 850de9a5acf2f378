// MessageFramer: turns a D-Bus byte stream (plus the fds that arrived with it) into Messages. Sans-I/O:
// the caller reads from its socket straight into prepare()'s span, then commit()s; next() yields complete
// messages. Many messages can come out of one read, and a large message is read into one allocation.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include "afbus/expected.hpp"
#include "afbus/fd.hpp"
#include "afbus/message.hpp"

namespace afbus {

class MessageFramer {
public:
    // Space for at least `min` more bytes; more when a partly read message needs it (not for one longer
    // than the limit below: next() refuses that one).
    std::span<std::byte> prepare(std::size_t min = 64 * 1024);
    // The longest message accepted (a bus's max_message_size); the specification's 128 MiB by default.
    // A longer one is refused as soon as its fixed header announces it, before room is made for it.
    void set_max_message_length(std::size_t bytes) noexcept { max_length_ = bytes; }
    void commit(std::size_t n) noexcept { end_ += n; }
    // Fds received by the same read, in order. They belong to the message whose bytes came with them.
    void add_fds(std::vector<Fd> fds);

    // The next complete, valid message; nullopt when more bytes are needed; an error means the stream is
    // corrupt and the connection must be closed (the specification leaves no way to resynchronise).
    Expected<std::optional<Message>, WireError> next();

    [[nodiscard]] std::size_t buffered() const noexcept { return end_ - start_; }
    // Frees the read buffer when it holds nothing, so that an idle connection costs no buffer.
    void release_if_empty();
    [[nodiscard]] std::size_t pending_fds() const noexcept { return fds_.size(); }

private:
    // Bytes the socket is about to overwrite need no zeroing: growing the buffer leaves them as they are.
    // (A peer with little traffic gets a fresh 64 KiB buffer for every read; zero-filling it cost more
    // than the rest of routing a small message.)
    struct UninitializedBytes : std::allocator<std::byte> {
        template <class U>
        struct rebind {
            using other = UninitializedBytes;
        };
        void construct(std::byte*) noexcept {}
        void construct(std::byte* p, std::byte value) noexcept { *p = value; }
    };

    std::vector<std::byte, UninitializedBytes> buffer_;
    std::size_t start_ = 0;  // first unconsumed byte
    std::size_t end_ = 0;    // one past the last received byte
    std::deque<Fd> fds_;
    std::size_t max_length_ = kMaxMessageLength;
};

}  // namespace afbus
