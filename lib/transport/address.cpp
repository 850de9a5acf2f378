#include "afbus/address.hpp"

#include <sys/un.h>

#include <algorithm>
#include <array>
#include <cstdlib>

namespace afbus {
namespace {

bool is_name_byte(char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-' || c == '_';
}

bool is_optionally_escaped(char c) {
    return is_name_byte(c) || c == '/' || c == '.' || c == '\\' || c == '*';
}

bool is_name(std::string_view text) {
    return !text.empty() && std::all_of(text.begin(), text.end(), is_name_byte);
}

int hex_value(char digit) {
    if (digit >= '0' && digit <= '9') return digit - '0';
    if (digit >= 'a' && digit <= 'f') return digit - 'a' + 10;
    if (digit >= 'A' && digit <= 'F') return digit - 'A' + 10;
    return -1;
}

bool is_guid(std::string_view text) {
    return text.size() == 32 &&
           std::all_of(text.begin(), text.end(), [](char c) { return hex_value(c) >= 0; });
}

bool is_port(std::string_view text) {
    if (text.empty() || text.size() > 5) return false;
    unsigned value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    return value <= 65535;
}

constexpr std::array<std::string_view, 5> kUnixLocationKeys = {"path", "abstract", "tmpdir", "dir",
                                                               "runtime"};
constexpr std::array<std::string_view, 2> kAfbusLocationKeys = {"path", "abstract"};

// The per-transport rules: which keys must, may or must not appear together.
Expected<void, AddressError> validate(const AddressEntry& entry) {
    for (const auto& [key, value] : entry.parameters()) {
        if (value.empty()) return Unexpected(AddressError::EmptyValue);
    }
    if (const auto guid = entry.guid(); guid && !is_guid(*guid)) return Unexpected(AddressError::InvalidGuid);

    const std::string& transport = entry.transport();
    if (transport == "unix" || transport == "afbus") {
        // AF_BUS sockets are named like unix sockets but are never created from tmpdir/dir/runtime.
        const auto count = std::count_if(kUnixLocationKeys.begin(), kUnixLocationKeys.end(),
                                         [&](std::string_view key) { return entry.has(key); });
        const auto allowed = std::count_if(kAfbusLocationKeys.begin(), kAfbusLocationKeys.end(),
                                           [&](std::string_view key) { return entry.has(key); });
        if (count != 1 || (transport == "afbus" && allowed != 1))
            return Unexpected(AddressError::UnixLocation);
        if (const auto runtime = entry.get("runtime"); runtime && *runtime != "yes")
            return Unexpected(AddressError::RuntimeNotYes);
    } else if (transport == "tcp" || transport == "nonce-tcp") {
        if (const auto port = entry.get("port"); port && !is_port(*port))
            return Unexpected(AddressError::InvalidPort);
        if (const auto family = entry.get("family"); family && *family != "ipv4" && *family != "ipv6")
            return Unexpected(AddressError::InvalidFamily);
    } else if (transport == "systemd") {
        for (const auto& parameter : entry.parameters()) {
            if (parameter.first != "guid") return Unexpected(AddressError::UnexpectedKey);
        }
    } else if (transport == "launchd") {
        if (!entry.has("env")) return Unexpected(AddressError::MissingKey);
    }
    // Other transports (autolaunch:, unixexec:, future ones) are syntax-checked only: the format is
    // meant to carry transports this library does not know.
    return {};
}

Expected<AddressEntry, AddressError> parse_entry(std::string_view text) {
    const std::size_t colon = text.find(':');
    if (colon == std::string_view::npos) return Unexpected(AddressError::MissingColon);
    const std::string_view transport = text.substr(0, colon);
    if (!is_name(transport)) return Unexpected(AddressError::InvalidTransport);

    std::vector<AddressEntry::Parameter> parameters;
    std::string_view rest = text.substr(colon + 1);
    while (!rest.empty()) {
        const std::size_t comma = rest.find(',');
        const std::string_view pair = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        // A trailing "key=value," ends the loop above with nothing left, as libdbus accepts it;
        // any other empty pair ("unix:,", ",,") is an error.
        const std::size_t equals = pair.find('=');
        if (equals == std::string_view::npos) return Unexpected(AddressError::MissingEquals);
        auto value = unescape_address_value(pair.substr(equals + 1));
        if (!value) return Unexpected(value.error());
        parameters.emplace_back(std::string(pair.substr(0, equals)), std::move(*value));
    }
    return AddressEntry::make(std::string(transport), std::move(parameters));
}

}  // namespace

std::string_view to_string(AddressError error) {
    switch (error) {
        case AddressError::Empty:
            return "empty address";
        case AddressError::EmptyEntry:
            return "empty entry in address list";
        case AddressError::MissingColon:
            return "address entry does not contain a colon";
        case AddressError::InvalidTransport:
            return "invalid transport name";
        case AddressError::MissingEquals:
            return "key-value pair without '='";
        case AddressError::InvalidKey:
            return "invalid key";
        case AddressError::DuplicateKey:
            return "key given twice in one address entry";
        case AddressError::BadEscape:
            return "'%' not followed by two hex digits";
        case AddressError::UnescapedByte:
            return "byte in address value should have been escaped";
        case AddressError::InvalidGuid:
            return "guid is not 32 hex digits";
        case AddressError::EmptyValue:
            return "key without a value";
        case AddressError::UnixLocation:
            return "unix: needs exactly one of path, abstract, tmpdir, dir, runtime (afbus: path or "
                   "abstract)";
        case AddressError::RuntimeNotYes:
            return "runtime must be \"yes\"";
        case AddressError::InvalidPort:
            return "port is not a number in 0..65535";
        case AddressError::InvalidFamily:
            return "family must be ipv4 or ipv6";
        case AddressError::UnexpectedKey:
            return "key not allowed for this transport";
        case AddressError::MissingKey:
            return "required key missing";
        case AddressError::ListenOnly:
            return "address can only be listened on, not connected to";
        case AddressError::NotConnectable:
            return "address lacks host or non-zero port to connect to";
        case AddressError::UnsupportedTransport:
            return "transport not supported for connecting";
        case AddressError::NotUnixSocket:
            return "not a unix or afbus address";
        case AddressError::RuntimeDirUnset:
            return "XDG_RUNTIME_DIR is unset or not an absolute path";
        case AddressError::PathTooLong:
            return "socket path too long for sockaddr_un";
        case AddressError::NulInPath:
            return "socket path contains a NUL byte";
        case AddressError::SessionBusUnset:
            return "neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set";
    }
    return "?";
}

Expected<AddressEntry, AddressError> AddressEntry::make(std::string transport,
                                                        std::vector<Parameter> parameters) {
    if (!is_name(transport)) return Unexpected(AddressError::InvalidTransport);
    for (std::size_t i = 0; i < parameters.size(); ++i) {
        if (!is_name(parameters[i].first)) return Unexpected(AddressError::InvalidKey);
        for (std::size_t j = 0; j < i; ++j) {
            if (parameters[j].first == parameters[i].first) return Unexpected(AddressError::DuplicateKey);
        }
    }
    AddressEntry entry(std::move(transport), std::move(parameters));
    if (auto valid = validate(entry); !valid) return Unexpected(valid.error());
    return entry;
}

std::optional<std::string_view> AddressEntry::get(std::string_view key) const {
    for (const auto& [name, value] : parameters_) {
        if (name == key) return std::string_view(value);
    }
    return std::nullopt;
}

std::string AddressEntry::to_string() const {
    std::string text = transport_ + ":";
    for (std::size_t i = 0; i < parameters_.size(); ++i) {
        if (i > 0) text += ',';
        text += parameters_[i].first;
        text += '=';
        text += escape_address_value(parameters_[i].second);
    }
    return text;
}

Expected<std::vector<AddressEntry>, AddressError> parse_address_list(std::string_view text) {
    if (text.empty()) return Unexpected(AddressError::Empty);
    std::vector<AddressEntry> entries;
    while (!text.empty()) {
        const std::size_t semicolon = text.find(';');
        const std::string_view piece = text.substr(0, semicolon);
        text = semicolon == std::string_view::npos ? std::string_view() : text.substr(semicolon + 1);
        // A trailing "...;" leaves nothing to loop over; any other empty entry is an error.
        if (piece.empty()) return Unexpected(AddressError::EmptyEntry);
        auto entry = parse_entry(piece);
        if (!entry) return Unexpected(entry.error());
        entries.push_back(std::move(*entry));
    }
    return entries;
}

std::string to_string(const std::vector<AddressEntry>& entries) {
    std::string text;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        if (i > 0) text += ';';
        text += entries[i].to_string();
    }
    return text;
}

std::string escape_address_value(std::string_view value) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string escaped;
    escaped.reserve(value.size());
    for (char c : value) {
        if (is_optionally_escaped(c)) {
            escaped += c;
        } else {
            const auto byte = static_cast<unsigned char>(c);
            escaped += '%';
            escaped += kDigits[byte >> 4];
            escaped += kDigits[byte & 0xF];
        }
    }
    return escaped;
}

Expected<std::string, AddressError> unescape_address_value(std::string_view escaped) {
    std::string value;
    value.reserve(escaped.size());
    for (std::size_t i = 0; i < escaped.size(); ++i) {
        const char c = escaped[i];
        if (c == '%') {
            if (escaped.size() - i < 3) return Unexpected(AddressError::BadEscape);
            const int high = hex_value(escaped[i + 1]);
            const int low = hex_value(escaped[i + 2]);
            if (high < 0 || low < 0) return Unexpected(AddressError::BadEscape);
            value += static_cast<char>(high * 16 + low);
            i += 2;
        } else if (is_optionally_escaped(c)) {
            value += c;
        } else {
            return Unexpected(AddressError::UnescapedByte);
        }
    }
    return value;
}

EnvironmentLookup process_environment() {
    return [](std::string_view name) -> std::optional<std::string> {
        // secure_getenv: a setuid program must not take its bus address from its caller.
        const char* value = ::secure_getenv(std::string(name).c_str());
        if (value == nullptr) return std::nullopt;
        return std::string(value);
    };
}

Expected<void, AddressError> check_connectable(const AddressEntry& entry) {
    const std::string& transport = entry.transport();
    if (transport == "unix") {
        if (entry.has("tmpdir") || entry.has("dir")) return Unexpected(AddressError::ListenOnly);
        return {};
    }
    if (transport == "afbus") return {};
    if (transport == "tcp" || transport == "nonce-tcp") {
        const auto port = entry.get("port");
        if (!entry.has("host") || !port ||
            std::all_of(port->begin(), port->end(), [](char c) { return c == '0'; }))
            return Unexpected(AddressError::NotConnectable);
        if (transport == "nonce-tcp" && !entry.has("noncefile"))
            return Unexpected(AddressError::NotConnectable);
        return {};
    }
    if (transport == "systemd") return Unexpected(AddressError::ListenOnly);
    return Unexpected(AddressError::UnsupportedTransport);
}

Expected<std::string, AddressError> unix_socket_path(const AddressEntry& entry,
                                                     const EnvironmentLookup& environment) {
    if (entry.transport() != "unix" && entry.transport() != "afbus")
        return Unexpected(AddressError::NotUnixSocket);
    constexpr std::size_t kSunPathSize = sizeof(sockaddr_un{}.sun_path);

    std::string path;
    if (const auto file = entry.get("path")) {
        path = *file;
        // A filesystem path is passed NUL-terminated.
        if (path.size() >= kSunPathSize) return Unexpected(AddressError::PathTooLong);
    } else if (const auto abstract = entry.get("abstract")) {
        path = '\0';
        path += *abstract;
        if (path.size() > kSunPathSize) return Unexpected(AddressError::PathTooLong);
        if (path.find('\0', 1) != std::string::npos) return Unexpected(AddressError::NulInPath);
        return path;
    } else if (entry.has("runtime")) {
        const auto runtime_dir = environment ? environment("XDG_RUNTIME_DIR") : std::nullopt;
        if (!runtime_dir || runtime_dir->empty() || runtime_dir->front() != '/')
            return Unexpected(AddressError::RuntimeDirUnset);
        path = *runtime_dir + "/bus";
        if (path.size() >= kSunPathSize) return Unexpected(AddressError::PathTooLong);
    } else {
        return Unexpected(AddressError::ListenOnly);
    }
    if (path.find('\0') != std::string::npos) return Unexpected(AddressError::NulInPath);
    return path;
}

Expected<std::vector<AddressEntry>, AddressError> session_bus_address(const EnvironmentLookup& environment) {
    if (auto address = environment("DBUS_SESSION_BUS_ADDRESS"); address && !address->empty())
        return parse_address_list(*address);
    const auto runtime_dir = environment("XDG_RUNTIME_DIR");
    if (!runtime_dir || runtime_dir->empty() || runtime_dir->front() != '/')
        return Unexpected(AddressError::SessionBusUnset);
    auto entry = AddressEntry::make("unix", {{"path", *runtime_dir + "/bus"}});
    if (!entry) return Unexpected(entry.error());
    return std::vector<AddressEntry>{std::move(*entry)};
}

Expected<std::vector<AddressEntry>, AddressError> system_bus_address(const EnvironmentLookup& environment) {
    if (auto address = environment("DBUS_SYSTEM_BUS_ADDRESS"); address && !address->empty())
        return parse_address_list(*address);
    return parse_address_list(kDefaultSystemBusAddress);
}

}  // namespace afbus
