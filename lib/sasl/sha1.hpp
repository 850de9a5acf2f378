// afbus::Sha1 — the SHA-1 digest (FIPS 180-4), needed only by the DBUS_COOKIE_SHA1 SASL mechanism.
// SHA-1 is broken for collision resistance; the mechanism uses it as a keyed challenge-response over
// fresh random challenges, where only preimage resistance matters. Do not use it for anything else.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace afbus {

class Sha1 {
public:
    using Digest = std::array<std::uint8_t, 20>;

    Sha1() noexcept;
    void update(std::string_view bytes) noexcept;
    // Pads and returns the digest; the object must not be updated afterwards.
    [[nodiscard]] Digest finish() noexcept;

    [[nodiscard]] static Digest digest(std::string_view bytes) noexcept;
    // Lower-case hex, as DBUS_COOKIE_SHA1 requires.
    [[nodiscard]] static std::string hex_digest(std::string_view bytes);

private:
    void process_block(const std::uint8_t* block) noexcept;

    std::array<std::uint32_t, 5> state_;
    std::array<std::uint8_t, 64> buffer_{};
    std::size_t buffered_ = 0;
    std::uint64_t total_bytes_ = 0;
    bool finished_ = false;
};

}  // namespace afbus
