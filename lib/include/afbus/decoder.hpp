// Decoder: reads D-Bus marshalled values of either byte order from a byte span, checking bounds and that
// padding is zero. Failures are sticky: the first one is kept in error() and every later read fails, so
// callers can read a run of values and check once.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>

#include "afbus/wire_error.hpp"

namespace afbus {

enum class Endian : char { Little = 'l', Big = 'B' };

constexpr Endian native_endian() noexcept {
    return std::endian::native == std::endian::little ? Endian::Little : Endian::Big;
}

class Decoder {
public:
    Decoder(std::span<const std::byte> data, Endian endian, std::size_t pos = 0) noexcept
        : data_(data.data()), size_(data.size()), pos_(pos), swap_(endian != native_endian()) {}

    [[nodiscard]] std::size_t pos() const noexcept { return pos_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::size_t remaining() const noexcept { return size_ - pos_; }
    [[nodiscard]] bool failed() const noexcept { return error_.has_value(); }
    [[nodiscard]] WireError error() const noexcept { return *error_; }
    [[nodiscard]] const std::byte* data() const noexcept { return data_; }
    [[nodiscard]] bool swapped() const noexcept { return swap_; }

    bool fail(WireError e) noexcept {
        if (!error_) error_ = e;
        pos_ = size_;
        return false;
    }

    // Skips to the next multiple of `alignment`; the skipped bytes must exist and be zero.
    bool align(std::size_t alignment) noexcept {
        const std::size_t padded = (pos_ + alignment - 1) & ~(alignment - 1);
        if (padded > size_) return fail(WireError::Truncated);
        for (; pos_ < padded; ++pos_)
            if (data_[pos_] != std::byte{0}) return fail(WireError::NonzeroPadding);
        return !failed();
    }

    bool read_u8(std::uint8_t& v) noexcept {
        if (pos_ >= size_) return fail(WireError::Truncated);
        v = static_cast<std::uint8_t>(data_[pos_++]);
        return true;
    }
    bool read_u16(std::uint16_t& v) noexcept { return read_aligned(v); }
    bool read_u32(std::uint32_t& v) noexcept { return read_aligned(v); }
    bool read_u64(std::uint64_t& v) noexcept { return read_aligned(v); }

    // STRING / OBJECT_PATH: checks the length and the terminating NUL; content checks are the caller's.
    bool read_string(std::string_view& s) noexcept {
        std::uint32_t length;
        if (!read_u32(length)) return false;
        return read_text(length, s);
    }
    bool read_signature(std::string_view& s) noexcept {
        std::uint8_t length;
        if (!read_u8(length)) return false;
        return read_text(length, s);
    }
    // Raw bytes, no alignment (the body of an "ay").
    bool read_bytes(std::size_t n, const std::byte*& out) noexcept {
        if (n > size_ - pos_) return fail(WireError::Truncated);
        out = data_ + pos_;
        pos_ += n;
        return true;
    }
    void seek(std::size_t pos) noexcept { pos_ = pos; }

private:
    template <class T>
    bool read_aligned(T& v) noexcept {
        if (!align(sizeof(T))) return false;
        if (sizeof(T) > size_ - pos_) return fail(WireError::Truncated);
        std::memcpy(&v, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        if (swap_) v = byteswap(v);
        return true;
    }
    template <class T>
    static T byteswap(T v) noexcept {
        if constexpr (sizeof(T) == 2) return __builtin_bswap16(v);
        else if constexpr (sizeof(T) == 4) return __builtin_bswap32(v);
        else return __builtin_bswap64(v);
    }
    bool read_text(std::size_t length, std::string_view& s) noexcept {
        if (length >= size_ - pos_) return fail(WireError::Truncated);  // needs length + 1 bytes
        if (data_[pos_ + length] != std::byte{0}) return fail(WireError::StringMissingNul);
        s = std::string_view(reinterpret_cast<const char*>(data_ + pos_), length);
        pos_ += length + 1;
        return true;
    }

    const std::byte* data_;
    std::size_t size_;
    std::size_t pos_;
    bool swap_;
    std::optional<WireError> error_;
};

}  // namespace afbus
