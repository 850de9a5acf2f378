// MessageFramer: turns a D-Bus byte stream (plus the fds that arrived with it) into Messages. Sans-I/O:
// the caller reads from its socket straight into prepare()'s span, then commit()s; next() yields complete
// messages. Many messages can come out of one read. A large message is read into storage of its own,
// which becomes its body as it is: its bytes are neither copied out of a read buffer nor zero-filled.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "afbus/expected.hpp"
#include "afbus/fd.hpp"
#include "afbus/message.hpp"

namespace afbus {

// What the fixed header told of a message the framer skipped (skip_message): enough to answer a call.
struct SkippedMessage {
    MessageType type = MessageType::Invalid;
    std::uint8_t flags = 0;
    std::uint32_t serial = 0;
    std::size_t length = 0;  // all of it, header included
    // Datagrams only (DatagramTransport), where the whole header was there to read: the REPLY_SERIAL
    // field (0: none), and the sender's AF_BUS address (0: the master, or none given).
    std::uint32_t reply_serial = 0;
    std::uint64_t source = 0;
    // ... and its DESTINATION, where it has one short enough to keep here (a unique name always is):
    // for a client that is also sent copies of others' messages (a monitor, an eavesdropper), whether
    // the message was its own.
    static constexpr std::size_t kKeptDestinationBytes = 32;
    std::array<char, kKeptDestinationBytes> destination_bytes{};
    std::uint8_t destination_length = 0;
    bool destination_kept = false;
    [[nodiscard]] std::optional<std::string_view> destination() const noexcept {
        if (!destination_kept) return std::nullopt;
        return std::string_view(destination_bytes.data(), destination_length);
    }
    // Keeps `name` as its DESTINATION, where it fits.
    void keep_destination(std::string_view name) noexcept {
        if (name.size() > destination_bytes.size()) return;
        std::copy(name.begin(), name.end(), destination_bytes.begin());
        destination_length = static_cast<std::uint8_t>(name.size());
        destination_kept = true;
    }
};

class MessageFramer {
public:
    // Space for at least `min` more bytes; more when a partly read message needs it (not for one longer
    // than the limit below: next() refuses that one). Except while a large message is being read into
    // its own storage: then the span is exactly what remains of that message, which may be less than
    // `min` (the bytes after it go to the read buffer with the next prepare()).
    std::span<std::byte> prepare(std::size_t min = kReadBytes);
    // The longest message accepted (a bus's max_message_size); the specification's 128 MiB by default.
    // A longer one is refused as soon as its fixed header announces it, before room is made for it.
    void set_max_message_length(std::size_t bytes) noexcept { max_length_ = bytes; }
    void commit(std::size_t n) noexcept {
        if (skipping()) skip_remaining_ -= std::min(n, skip_remaining_);
        else if (reading_large()) large_received_ += n;
        else end_ += n;
    }
    // Fds received by the same read, in order. They belong to the message whose bytes came with them.
    void add_fds(std::vector<Fd> fds);

    // No room could be made for the message that has begun (prepare() threw std::bad_alloc): it is
    // skipped instead. Its bytes are read into the read buffer as they come and discarded, and the fds
    // that came with them are closed; take_skipped() reports it once its last byte has arrived, and the
    // stream goes on with the next message. False (nothing changes) when there is no such message: its
    // fixed header has not arrived, is invalid (serial or type 0 too) or announces more than the limit,
    // or it is complete.
    // The rest of its header is not looked at.
    bool skip_message() noexcept;
    // The message skipped, once all of it has gone by (then once only); next() yields nothing before
    // it has been taken.
    std::optional<SkippedMessage> take_skipped() noexcept;
    // Bytes still to come of the message begun, where its fixed header has told its length: 0 when none
    // has begun, its fixed header is not all here, it is complete, or it is refused (next() says so).
    // A reader that receives into buffers of its own reads a long rest in place instead (prepare()).
    [[nodiscard]] std::size_t awaited() const noexcept;
    // Whether next() has a message (or an error) to give without more bytes.
    [[nodiscard]] bool holds_complete_message() const noexcept;

    // The next complete, valid message; nullopt when more bytes are needed; an error means the stream is
    // corrupt and the connection must be closed (the specification leaves no way to resynchronise).
    // Parsing may throw std::bad_alloc: a message from the read buffer is then still there, and the next
    // call tries again (buffered() unchanged); one read into storage of its own is lost.
    Expected<std::optional<Message>, WireError> next();

    // Bytes received and not yet yielded as messages.
    [[nodiscard]] std::size_t buffered() const noexcept { return end_ - start_ + large_received_; }
    // Frees the read buffer when it holds nothing, so that an idle connection costs no buffer.
    void release_if_empty();
    [[nodiscard]] std::size_t pending_fds() const noexcept { return fds_.size(); }

    // What one read asks room for; a message at least this long that one read did not complete is read
    // into storage of its own (copying the rest out of the read buffer would cost more than the bytes
    // the first read brought, which are copied once into that storage).
    static constexpr std::size_t kReadBytes = 64 * 1024;
    static constexpr std::size_t kOwnStorageBytes = kReadBytes;

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

    [[nodiscard]] std::size_t in_buffer() const noexcept { return end_ - start_; }
    // A large message has started and not all of it has arrived (prepare() offers its rest).
    [[nodiscard]] bool reading_large() const noexcept { return large_received_ < large_.size(); }
    // The length the buffered fixed header announces (its fixed header must be all here).
    [[nodiscard]] Expected<std::size_t, WireError> buffered_frame_length() const noexcept;
    // That length, where the fixed header is all here, valid and within max_length, and the message not
    // complete yet; nothing otherwise.
    [[nodiscard]] std::optional<std::size_t> incomplete_frame_length() const noexcept;
    // A skipped message's bytes are still coming (prepare() offers the read buffer as scratch space).
    [[nodiscard]] bool skipping() const noexcept { return skip_remaining_ != 0; }
    // Room for the fds of the next message (at most those held), made before the message is taken: once
    // it is, nothing may fail for want of memory.
    [[nodiscard]] std::vector<Fd> room_for_fds() const;
    // `message` given the fds it declares, moved into `fds` (room_for_fds()).
    Expected<std::optional<Message>, WireError> with_declared_fds(Expected<Message, WireError> message,
                                                                  std::vector<Fd> fds);

    std::vector<std::byte, UninitializedBytes> buffer_;
    std::size_t start_ = 0;  // first unconsumed byte
    std::size_t end_ = 0;    // one past the last received byte
    // The large message being read (all of it, header included; empty when none), and how much of it
    // has arrived. Until all of it has, the buffer above holds nothing; once it has, the bytes after it
    // go to the buffer, and next() yields it before them.
    OwnedBytes large_;
    std::size_t large_received_ = 0;
    std::deque<Fd> fds_;
    std::size_t max_length_ = kMaxMessageLength;
    // The message being skipped (or skipped and not yet taken), and how many of its bytes are to come.
    std::optional<SkippedMessage> skipped_;
    std::size_t skip_remaining_ = 0;
};

}  // namespace afbus
