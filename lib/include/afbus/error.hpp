// afbus::Error — a D-Bus error as a value: its name and its human-readable message. Client calls return
// Expected<T, Error>; error replies from peers arrive as one, and so do local failures (timeouts,
// disconnection) under the same names libdbus and sd-bus use.
#pragma once

#include <string>
#include <string_view>

namespace afbus {

struct Error {
    std::string name;
    std::string message;

    friend bool operator==(const Error&, const Error&) = default;
};

namespace error_names {
inline constexpr std::string_view kFailed = "org.freedesktop.DBus.Error.Failed";
inline constexpr std::string_view kNoMemory = "org.freedesktop.DBus.Error.NoMemory";
inline constexpr std::string_view kServiceUnknown = "org.freedesktop.DBus.Error.ServiceUnknown";
inline constexpr std::string_view kNameHasNoOwner = "org.freedesktop.DBus.Error.NameHasNoOwner";
inline constexpr std::string_view kNoReply = "org.freedesktop.DBus.Error.NoReply";
inline constexpr std::string_view kIOError = "org.freedesktop.DBus.Error.IOError";
inline constexpr std::string_view kBadAddress = "org.freedesktop.DBus.Error.BadAddress";
inline constexpr std::string_view kNotSupported = "org.freedesktop.DBus.Error.NotSupported";
inline constexpr std::string_view kLimitsExceeded = "org.freedesktop.DBus.Error.LimitsExceeded";
inline constexpr std::string_view kAccessDenied = "org.freedesktop.DBus.Error.AccessDenied";
inline constexpr std::string_view kAuthFailed = "org.freedesktop.DBus.Error.AuthFailed";
inline constexpr std::string_view kNoServer = "org.freedesktop.DBus.Error.NoServer";
inline constexpr std::string_view kTimeout = "org.freedesktop.DBus.Error.Timeout";
inline constexpr std::string_view kNoNetwork = "org.freedesktop.DBus.Error.NoNetwork";
inline constexpr std::string_view kAddressInUse = "org.freedesktop.DBus.Error.AddressInUse";
inline constexpr std::string_view kDisconnected = "org.freedesktop.DBus.Error.Disconnected";
inline constexpr std::string_view kInvalidArgs = "org.freedesktop.DBus.Error.InvalidArgs";
inline constexpr std::string_view kFileNotFound = "org.freedesktop.DBus.Error.FileNotFound";
inline constexpr std::string_view kUnknownMethod = "org.freedesktop.DBus.Error.UnknownMethod";
inline constexpr std::string_view kUnknownObject = "org.freedesktop.DBus.Error.UnknownObject";
inline constexpr std::string_view kUnknownInterface = "org.freedesktop.DBus.Error.UnknownInterface";
inline constexpr std::string_view kUnknownProperty = "org.freedesktop.DBus.Error.UnknownProperty";
inline constexpr std::string_view kPropertyReadOnly = "org.freedesktop.DBus.Error.PropertyReadOnly";
inline constexpr std::string_view kMatchRuleNotFound = "org.freedesktop.DBus.Error.MatchRuleNotFound";
inline constexpr std::string_view kMatchRuleInvalid = "org.freedesktop.DBus.Error.MatchRuleInvalid";
inline constexpr std::string_view kInconsistentMessage = "org.freedesktop.DBus.Error.InconsistentMessage";
// A message's arguments are not of the types the receiver expects (libdbus's DBUS_ERROR_INVALID_SIGNATURE);
// the typed Proxy reports replies and signals of the wrong signature with it.
inline constexpr std::string_view kInvalidSignature = "org.freedesktop.DBus.Error.InvalidSignature";
inline constexpr std::string_view kTimedOut = "org.freedesktop.DBus.Error.TimedOut";
// Starting a service (activation) failed.
inline constexpr std::string_view kSpawnExecFailed = "org.freedesktop.DBus.Error.Spawn.ExecFailed";
inline constexpr std::string_view kSpawnForkFailed = "org.freedesktop.DBus.Error.Spawn.ForkFailed";
inline constexpr std::string_view kSpawnChildExited = "org.freedesktop.DBus.Error.Spawn.ChildExited";
inline constexpr std::string_view kSpawnChildSignaled = "org.freedesktop.DBus.Error.Spawn.ChildSignaled";
inline constexpr std::string_view kSpawnFailed = "org.freedesktop.DBus.Error.Spawn.Failed";
inline constexpr std::string_view kSpawnSetupFailed = "org.freedesktop.DBus.Error.Spawn.SetupFailed";
inline constexpr std::string_view kSpawnConfigInvalid = "org.freedesktop.DBus.Error.Spawn.ConfigInvalid";
inline constexpr std::string_view kSpawnServiceInvalid = "org.freedesktop.DBus.Error.Spawn.ServiceInvalid";
inline constexpr std::string_view kSpawnServiceNotFound = "org.freedesktop.DBus.Error.Spawn.ServiceNotFound";
inline constexpr std::string_view kSpawnPermissionsInvalid = "org.freedesktop.DBus.Error.Spawn.PermissionsInvalid";
inline constexpr std::string_view kSpawnFileInvalid = "org.freedesktop.DBus.Error.Spawn.FileInvalid";
}  // namespace error_names

inline Error make_error(std::string_view name, std::string message) { return Error{std::string(name), std::move(message)}; }

}  // namespace afbus
