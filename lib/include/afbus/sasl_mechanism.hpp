// The SASL mechanisms a D-Bus connection can authenticate with (a client chooses which it offers:
// ConnectionOptions::mechanisms).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace afbus {

enum class SaslMechanism : std::uint8_t { External, Anonymous, DbusCookieSha1 };

// The wire name: "EXTERNAL", "ANONYMOUS", "DBUS_COOKIE_SHA1".
std::string_view to_string(SaslMechanism mechanism);
std::optional<SaslMechanism> sasl_mechanism_from_name(std::string_view name);

}  // namespace afbus
