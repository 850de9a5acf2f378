#include "afbus/framer.hpp"

#include <algorithm>
#include <cstring>

namespace afbus {

std::span<std::byte> MessageFramer::prepare(std::size_t min) {
    std::size_t want = min;
    // If the buffered bytes start a message whose length is known, make room for all of it so that one
    // read can complete it.
    if (buffered() >= kFixedHeaderLength) {
        auto length = Message::frame_length(
            std::span<const std::byte, kFixedHeaderLength>(buffer_.data() + start_, kFixedHeaderLength));
        if (length && *length > buffered() && *length <= max_length_) want = std::max(want, *length - buffered());
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
    if (start_ != end_) return;
    start_ = end_ = 0;
    decltype(buffer_)().swap(buffer_);
}

void MessageFramer::add_fds(std::vector<Fd> fds) {
    for (Fd& fd : fds) fds_.push_back(std::move(fd));
}

Expected<std::optional<Message>, WireError> MessageFramer::next() {
    if (buffered() < kFixedHeaderLength) return std::optional<Message>{};
    auto length = Message::frame_length(
        std::span<const std::byte, kFixedHeaderLength>(buffer_.data() + start_, kFixedHeaderLength));
    if (!length) return Unexpected(length.error());
    if (*length > max_length_) return Unexpected(WireError::MessageTooLong);
    if (buffered() < *length) return std::optional<Message>{};

    const std::span<const std::byte> wire(buffer_.data() + start_, *length);
    start_ += *length;
    if (start_ == end_) start_ = end_ = 0;

    auto message = Message::parse(wire);
    if (!message) return Unexpected(message.error());
    // Shrink the buffer after a very large message so that one big message does not pin its memory.
    if (buffer_.size() > 4 * 1024 * 1024 && start_ == 0 && end_ == 0) {
        buffer_.clear();
        buffer_.shrink_to_fit();
    }
    // The fds a message declares must all have arrived by its last byte (the specification has them sent
    // no later than that).
    const std::uint32_t declared = message->unix_fds();
    if (declared != 0) {
        if (declared > kMaxMessageUnixFds || declared > fds_.size()) return Unexpected(WireError::TooManyFds);
        std::vector<Fd> fds;
        fds.reserve(declared);
        for (std::uint32_t i = 0; i < declared; ++i) {
            fds.push_back(std::move(fds_.front()));
            fds_.pop_front();
        }
        message->attach_fds(std::move(fds));
    }
    return std::optional<Message>(std::move(*message));
}

}  // namespace afbus
