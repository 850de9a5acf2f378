#include "afbus/framer.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

#include "afbus/decoder.hpp"

namespace afbus {

std::span<std::byte> MessageFramer::prepare(std::size_t min) {
    // (The buffer held the skipped message's fixed header at least, and is kept while skipping.)
    if (skipping()) return {buffer_.data(), std::min(skip_remaining_, buffer_.size())};
    if (reading_large()) return large_.span().subspan(large_received_);
    std::size_t want = min;
    // If the buffered bytes start a message whose length is known, make room for all of it so that one
    // read can complete it.
    if (auto length = incomplete_frame_length()) {
        if (*length >= kOwnStorageBytes && large_.empty()) {
            // The rest is read straight into the message's own storage, which parse() keeps as the
            // body. The allocation may throw; nothing has changed yet when it does.
            large_ = OwnedBytes::for_overwrite(*length);
            std::memcpy(large_.data(), buffer_.data() + start_, in_buffer());
            large_received_ = in_buffer();
            start_ = end_ = 0;
            return large_.span().subspan(large_received_);
        }
        want = std::max(want, *length - in_buffer());
    }
    if (start_ == end_) start_ = end_ = 0;
    if (buffer_.size() - end_ < want) {
        // Compact first; grow only if that is not enough.
        if (start_ != 0) {
            std::memmove(buffer_.data(), buffer_.data() + start_, end_ - start_);
            end_ -= start_;
            start_ = 0;
        }
        if (buffer_.size() - end_ < want) buffer_.resize(end_ + want);
    }
    return {buffer_.data() + end_, buffer_.size() - end_};
}

void MessageFramer::release_if_empty() {
    if (start_ != end_ || skipping()) return;
    start_ = end_ = 0;
    decltype(buffer_)().swap(buffer_);
}

void MessageFramer::add_fds(std::vector<Fd> fds) {
    if (skipping()) return;  // they came with the skipped message's bytes: closed with it
    for (Fd& fd : fds) fds_.push_back(std::move(fd));
}

bool MessageFramer::skip_message() noexcept {
    if (skipped_ || !large_.empty()) return false;
    auto length = incomplete_frame_length();
    if (!length) return false;
    const std::byte* header = buffer_.data() + start_;
    // The fixed header is valid (frame_length checked its byte order and version): yyyyuuu.
    std::uint32_t serial = 0;
    Decoder(std::span<const std::byte>(header, kFixedHeaderLength), static_cast<Endian>(header[0]), 8).read_u32(serial);
    // Neither can be parsed: the stream is corrupt, which ends it as ever.
    if (serial == 0 || header[1] == std::byte{0}) return false;
    skipped_ = SkippedMessage{static_cast<MessageType>(header[1]), static_cast<std::uint8_t>(header[2]), serial,
                              *length};
    skip_remaining_ = *length - in_buffer();
    start_ = end_ = 0;
    // Fds come no later than a message's last byte and are taken in order: those here are its own (or
    // strays that the next message would otherwise have been given).
    fds_.clear();
    return true;
}

bool MessageFramer::holds_complete_message() const noexcept {
    if (skipped_) return !skipping();
    if (!large_.empty()) return !reading_large();
    if (in_buffer() < kFixedHeaderLength) return false;
    return !incomplete_frame_length();
}

std::size_t MessageFramer::awaited() const noexcept {
    if (skipping()) return skip_remaining_;
    if (!large_.empty()) return large_.size() - large_received_;
    auto length = incomplete_frame_length();
    return length ? *length - in_buffer() : 0;
}

Expected<std::size_t, WireError> MessageFramer::buffered_frame_length() const noexcept {
    return Message::frame_length(
        std::span<const std::byte, kFixedHeaderLength>(buffer_.data() + start_, kFixedHeaderLength));
}

std::optional<std::size_t> MessageFramer::incomplete_frame_length() const noexcept {
    if (in_buffer() < kFixedHeaderLength) return std::nullopt;
    auto length = buffered_frame_length();
    if (!length || *length > max_length_ || *length <= in_buffer()) return std::nullopt;
    return *length;
}

std::optional<SkippedMessage> MessageFramer::take_skipped() noexcept {
    if (skipping()) return std::nullopt;
    return std::exchange(skipped_, std::nullopt);
}

Expected<std::optional<Message>, WireError> MessageFramer::next() {
    if (skipped_) return std::optional<Message>{};  // take_skipped() first
    if (!large_.empty()) {
        if (reading_large()) return std::optional<Message>{};
        // As for a message in the buffer below: should anything throw std::bad_alloc, the message is still
        // here, whole, for a later next(). parse() takes the storage only once its own allocation is made.
        auto fds = room_for_fds();
        auto message = Message::parse(std::move(large_));
        large_ = OwnedBytes();  // taken; or, for a malformed message, given up with it
        large_received_ = 0;
        return with_declared_fds(std::move(message), std::move(fds));
    }
    if (in_buffer() < kFixedHeaderLength) return std::optional<Message>{};
    auto length = buffered_frame_length();
    if (!length) return Unexpected(length.error());
    if (*length > max_length_) return Unexpected(WireError::MessageTooLong);
    if (in_buffer() < *length) return std::optional<Message>{};

    // Parsed (a copy) and given its fds before anything is consumed: should either throw
    // std::bad_alloc, the message is still here for a later next().
    auto fds = room_for_fds();
    auto message = with_declared_fds(
        Message::parse(std::span<const std::byte>(buffer_.data() + start_, *length)), std::move(fds));
    start_ += *length;
    if (start_ == end_) start_ = end_ = 0;
    // Shrink the buffer after a very large message so that one big message does not pin its memory.
    if (buffer_.size() > 4 * 1024 * 1024 && start_ == 0 && end_ == 0) {
        buffer_.clear();
        buffer_.shrink_to_fit();
    }
    return message;
}

std::vector<Fd> MessageFramer::room_for_fds() const {
    std::vector<Fd> fds;
    fds.reserve(std::min<std::size_t>(fds_.size(), kMaxMessageUnixFds));
    return fds;
}

Expected<std::optional<Message>, WireError> MessageFramer::with_declared_fds(
    Expected<Message, WireError> message, std::vector<Fd> fds) {
    if (!message) return Unexpected(message.error());
    // The fds a message declares must all have arrived by its last byte (the specification has them sent
    // no later than that).
    const std::uint32_t declared = message->unix_fds();
    if (declared != 0) {
        if (declared > kMaxMessageUnixFds || declared > fds_.size()) return Unexpected(WireError::TooManyFds);
        for (std::uint32_t i = 0; i < declared; ++i) {  // within the room made
            fds.push_back(std::move(fds_.front()));
            fds_.pop_front();
        }
        message->attach_fds(std::move(fds));
    }
    return std::optional<Message>(std::move(*message));
}

}  // namespace afbus
