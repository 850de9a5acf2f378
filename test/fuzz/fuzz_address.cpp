// Parses arbitrary bytes as a D-Bus address list. Whatever parses must format to a string that
// parses back to an equal value and formats identically (to_string is canonical), and the connect
// helpers must cope with every entry. Escaping must round-trip any byte string.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "afbus/address.hpp"
#include "fuzz_check.hpp"

using afbus::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);

    const auto escaped = afbus::escape_address_value(input);
    const auto unescaped = afbus::unescape_address_value(escaped);
    check(unescaped.has_value() && *unescaped == input, "escaping does not round-trip");

    const auto parsed = afbus::parse_address_list(input);
    if (!parsed) {
        check(!afbus::to_string(parsed.error()).empty(), "error without a description");
        return 0;
    }
    check(!parsed->empty(), "parsed an empty list");
    const std::string canonical = afbus::to_string(*parsed);
    const auto reparsed = afbus::parse_address_list(canonical);
    check(reparsed.has_value(), "canonical form does not parse");
    check(*reparsed == *parsed, "canonical form parses to a different value");
    check(afbus::to_string(*reparsed) == canonical, "canonical form is not stable");

    const afbus::EnvironmentLookup environment = [](std::string_view name) -> std::optional<std::string> {
        if (name == "XDG_RUNTIME_DIR") return std::string("/run/user/1000");
        return std::nullopt;
    };
    for (const auto& entry : *parsed) {
        const auto connectable = afbus::check_connectable(entry);
        const auto path = afbus::unix_socket_path(entry, environment);
        if (path) {
            check(!path->empty() && path->size() <= 108, "socket path does not fit sockaddr_un");
            check(entry.transport() == "unix" || entry.transport() == "afbus",
                  "socket path for a non-unix entry");
        }
        if (entry.transport() == "unix" || entry.transport() == "afbus") {
            check(connectable.has_value() ==
                      (path.has_value() || (path.error() != afbus::AddressError::ListenOnly)),
                  "check_connectable and unix_socket_path disagree");
        }
    }
    return 0;
}
