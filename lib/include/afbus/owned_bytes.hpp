// afbus::OwnedBytes — the bytes a Message owns for its body: either a std::vector handed over (what
// MessageBuilder and Message::parse produce), or a block allocated without zero fill that a transport reads
// a large message into, of which the body is the tail (the bytes after the header).
//
// Why not one std::vector: a vector value-initialises what it grows by, so a 1 MiB body read off a socket
// would be zero-filled first and then overwritten (the memset cost as much as the copy it was to save);
// and a vector handed over by the caller cannot be turned into a block without copying. Both kinds end
// up here as one run of bytes, reached through span().
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace afbus {

class OwnedBytes {
public:
    OwnedBytes() = default;
    explicit OwnedBytes(std::vector<std::byte> bytes) noexcept : vector_(std::move(bytes)) {}

    // `size` bytes whose values are indeterminate until written (for a reader to fill); throws
    // std::bad_alloc like any allocation.
    static OwnedBytes for_overwrite(std::size_t size) {
        OwnedBytes bytes;
        bytes.block_ = std::make_unique_for_overwrite<std::byte[]>(size);
        bytes.block_size_ = size;
        return bytes;
    }

    OwnedBytes(OwnedBytes&& other) noexcept
        : vector_(std::move(other.vector_)),
          block_(std::move(other.block_)),
          block_offset_(std::exchange(other.block_offset_, 0)),
          block_size_(std::exchange(other.block_size_, 0)) {
        other.vector_.clear();
    }
    OwnedBytes& operator=(OwnedBytes&& other) noexcept {
        if (this != &other) {
            vector_ = std::move(other.vector_);
            other.vector_.clear();
            block_ = std::move(other.block_);
            block_offset_ = std::exchange(other.block_offset_, 0);
            block_size_ = std::exchange(other.block_size_, 0);
        }
        return *this;
    }
    OwnedBytes(const OwnedBytes&) = delete;
    OwnedBytes& operator=(const OwnedBytes&) = delete;

    // Leaves out the first `n` bytes (a message read in one block keeps only its body); they stay
    // allocated with the rest. `n` must not exceed size().
    void drop_front(std::size_t n) noexcept {
        if (block_) {
            block_offset_ += n;
        } else {
            vector_.erase(vector_.begin(), vector_.begin() + static_cast<std::ptrdiff_t>(n));
        }
    }

    [[nodiscard]] std::byte* data() noexcept {
        return block_ ? block_.get() + block_offset_ : vector_.data();
    }
    [[nodiscard]] const std::byte* data() const noexcept {
        return block_ ? block_.get() + block_offset_ : vector_.data();
    }
    [[nodiscard]] std::size_t size() const noexcept {
        return block_ ? block_size_ - block_offset_ : vector_.size();
    }
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
    [[nodiscard]] std::span<std::byte> span() noexcept { return {data(), size()}; }
    [[nodiscard]] std::span<const std::byte> span() const noexcept { return {data(), size()}; }

    // A copy that owns its own bytes (as a vector: copies are made for clones, not for reading into).
    [[nodiscard]] OwnedBytes copy() const {
        const std::span<const std::byte> bytes = span();
        return OwnedBytes(std::vector<std::byte>(bytes.begin(), bytes.end()));
    }

private:
    std::vector<std::byte> vector_;
    std::unique_ptr<std::byte[]> block_;  // when set, the bytes are block_[block_offset_, block_size_)
    std::size_t block_offset_ = 0;
    std::size_t block_size_ = 0;
};

}  // namespace afbus
