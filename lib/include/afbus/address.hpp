// D-Bus server addresses ("Server Addresses" in the D-Bus specification): parsing, validation,
// canonical formatting and the helpers a client needs to pick a socket to connect to.
// See docs/sasl-and-addresses.md for the rules and what is rejected.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "afbus/expected.hpp"

namespace afbus {

enum class AddressError : std::uint8_t {
    Empty,                 // nothing to parse
    EmptyEntry,            // ";;" or a leading ';'
    MissingColon,          // an entry without "transport:"
    InvalidTransport,      // empty transport name or bytes outside [-0-9A-Za-z_]
    MissingEquals,         // a key-value pair without '='
    InvalidKey,            // empty key or bytes outside [-0-9A-Za-z_]
    DuplicateKey,          // a key given twice in one entry
    BadEscape,             // '%' not followed by two hex digits
    UnescapedByte,         // a value byte outside [-0-9A-Za-z_/.\*] that was not %-escaped
    InvalidGuid,           // guid= is not 32 hex digits
    EmptyValue,            // key= with nothing after it (libdbus rejects these too)
    UnixLocation,          // unix:/afbus: need exactly one of their location keys
    RuntimeNotYes,         // runtime= with a value other than "yes"
    InvalidPort,           // port= not a decimal number in 0..65535
    InvalidFamily,         // family= not ipv4 or ipv6
    UnexpectedKey,         // a key the transport forbids (any key but guid on systemd:)
    MissingKey,            // launchd: without env=
    ListenOnly,            // tmpdir=, dir= or systemd: where a connectable address is needed
    NotConnectable,        // tcp without host or port, or port=0
    UnsupportedTransport,  // launchd:, autolaunch:, unknown transports
    NotUnixSocket,         // asked for a socket path of a non-unix, non-afbus entry
    RuntimeDirUnset,       // runtime=yes but XDG_RUNTIME_DIR is unset or not absolute
    PathTooLong,           // does not fit sockaddr_un.sun_path
    NulInPath,             // a %00 in a socket path would silently truncate it
    SessionBusUnset,       // neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set
};
std::string_view to_string(AddressError error);

class AddressEntry {
public:
    using Parameter = std::pair<std::string, std::string>;  // key, unescaped value

    // Builds and validates an entry as parse_address_list would.
    static Expected<AddressEntry, AddressError> make(std::string transport,
                                                     std::vector<Parameter> parameters);

    [[nodiscard]] const std::string& transport() const { return transport_; }
    // In the order they were given; keys are unique.
    [[nodiscard]] const std::vector<Parameter>& parameters() const { return parameters_; }
    [[nodiscard]] std::optional<std::string_view> get(std::string_view key) const;
    [[nodiscard]] bool has(std::string_view key) const { return get(key).has_value(); }
    [[nodiscard]] std::optional<std::string_view> guid() const { return get("guid"); }

    // transport:key=value,... with values escaped minimally; parses back to an equal entry.
    [[nodiscard]] std::string to_string() const;

    friend bool operator==(const AddressEntry&, const AddressEntry&) = default;

private:
    AddressEntry(std::string transport, std::vector<Parameter> parameters)
        : transport_(std::move(transport)), parameters_(std::move(parameters)) {}

    std::string transport_;
    std::vector<Parameter> parameters_;
};

// "entry;entry;..." — a trailing ';' after the last entry and a trailing ',' after the last
// key-value pair are tolerated, as libdbus does; every other empty piece is an error.
Expected<std::vector<AddressEntry>, AddressError> parse_address_list(std::string_view text);
std::string to_string(const std::vector<AddressEntry>& entries);

// Value escaping of the spec: bytes outside [-0-9A-Za-z_/.\*] become %xx (lower-case hex).
std::string escape_address_value(std::string_view value);
Expected<std::string, AddressError> unescape_address_value(std::string_view escaped);

// Looks up an environment variable; process_environment() reads the real environment, tests pass
// their own so they do not depend on it.
using EnvironmentLookup = std::function<std::optional<std::string>(std::string_view name)>;
EnvironmentLookup process_environment();

// Whether a client can connect to this entry with afbus: OK for unix path/abstract/runtime, afbus:
// and tcp/nonce-tcp with host and a non-zero port (noncefile too for nonce-tcp).
Expected<void, AddressError> check_connectable(const AddressEntry& entry);

// The sun_path bytes to connect to for a unix: or afbus: entry: the path, or for abstract= a
// leading NUL followed by the name (pass size() as the length, there is no terminator).
// runtime=yes resolves to $XDG_RUNTIME_DIR/bus; tmpdir= and dir= are listen-only.
Expected<std::string, AddressError> unix_socket_path(const AddressEntry& entry,
                                                     const EnvironmentLookup& environment);

inline constexpr std::string_view kDefaultSystemBusAddress = "unix:path=/run/dbus/system_bus_socket";

// DBUS_SESSION_BUS_ADDRESS; if unset or empty, unix:path=$XDG_RUNTIME_DIR/bus as sd-bus does.
Expected<std::vector<AddressEntry>, AddressError> session_bus_address(const EnvironmentLookup& environment);
// DBUS_SYSTEM_BUS_ADDRESS; if unset or empty, kDefaultSystemBusAddress.
Expected<std::vector<AddressEntry>, AddressError> system_bus_address(const EnvironmentLookup& environment);

}  // namespace afbus
