// Encoder: appends D-Bus marshalled values in native byte order to a growable buffer, with the alignment
// rules of the specification counted from the start of the buffer (message bodies start 8-aligned, so a
// body encoder and a header encoder both start at offset 0).
#pragma once

#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace afbus {

class Encoder {
public:
    Encoder() = default;
    explicit Encoder(std::vector<std::byte> buffer) : buf_(std::move(buffer)) {}
    // Writes in the given byte order instead of the native one (the bus rewrites headers of messages in
    // their own byte order).
    explicit Encoder(bool swap_bytes) : swap_(swap_bytes) {}

    [[nodiscard]] std::size_t size() const noexcept { return buf_.size(); }
    [[nodiscard]] const std::vector<std::byte>& buffer() const noexcept { return buf_; }
    [[nodiscard]] std::vector<std::byte> take() && noexcept { return std::move(buf_); }
    void reserve(std::size_t n) { buf_.reserve(n); }

    void align(std::size_t alignment) {
        const std::size_t padded = (buf_.size() + alignment - 1) & ~(alignment - 1);
        buf_.resize(padded);  // value-initialised: padding is zero
    }

    void put_u8(std::uint8_t v) { buf_.push_back(static_cast<std::byte>(v)); }
    void put_u16(std::uint16_t v) { put_aligned(v); }
    void put_u32(std::uint32_t v) { put_aligned(v); }
    void put_u64(std::uint64_t v) { put_aligned(v); }
    void put_double(double v) { put_aligned(std::bit_cast<std::uint64_t>(v)); }

    // STRING and OBJECT_PATH: u32 length, bytes, NUL.
    void put_string(std::string_view s) {
        put_u32(static_cast<std::uint32_t>(s.size()));
        append_with_nul(s);
    }
    // SIGNATURE: u8 length, bytes, NUL.
    void put_signature(std::string_view s) {
        assert(s.size() <= 255);
        put_u8(static_cast<std::uint8_t>(s.size()));
        append_with_nul(s);
    }
    void put_bytes(const void* data, std::size_t n) {
        const auto* p = static_cast<const std::byte*>(data);
        buf_.insert(buf_.end(), p, p + n);  // one pass: no zero-fill before the copy
    }

    // Arrays: begin writes the length placeholder and the padding to the element alignment (present even
    // when the array is empty); end patches the length, which excludes that padding.
    struct ArrayMark {
        std::size_t length_at;
        std::size_t data_at;
    };
    ArrayMark begin_array(std::size_t element_alignment) {
        put_u32(0);
        const std::size_t length_at = buf_.size() - 4;
        align(element_alignment);
        return {length_at, buf_.size()};
    }
    // Returns the array's length in bytes so that the caller can enforce the 64 MiB limit.
    std::size_t end_array(const ArrayMark& mark) {
        const std::size_t length = buf_.size() - mark.data_at;
        patch_u32(mark.length_at, static_cast<std::uint32_t>(length));
        return length;
    }

    void patch_u32(std::size_t at, std::uint32_t v) {
        if (swap_) v = __builtin_bswap32(v);
        std::memcpy(buf_.data() + at, &v, 4);
    }

private:
    template <class T>
    void put_aligned(T v) {
        const std::size_t old = buf_.size();
        const std::size_t at = (old + sizeof(T) - 1) & ~(sizeof(T) - 1);
        buf_.resize(at + sizeof(T));
        if (swap_) {
            if constexpr (sizeof(T) == 2) v = __builtin_bswap16(v);
            else if constexpr (sizeof(T) == 4) v = __builtin_bswap32(v);
            else v = __builtin_bswap64(v);
        }
        std::memcpy(buf_.data() + at, &v, sizeof(T));
    }
    void append_with_nul(std::string_view s) {
        const std::size_t old = buf_.size();
        buf_.resize(old + s.size() + 1);
        if (!s.empty()) std::memcpy(buf_.data() + old, s.data(), s.size());
        buf_[old + s.size()] = std::byte{0};
    }

    std::vector<std::byte> buf_;
    bool swap_ = false;
};

}  // namespace afbus
