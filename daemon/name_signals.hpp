// The bus's name signals, built in this one place: NameOwnerChanged (broadcast), NameLost and
// NameAcquired (to the one connection concerned), with the driver's path and interface.
#pragma once

#include <string_view>

#include "afbus/message.hpp"

namespace afbus::daemon {

inline constexpr std::string_view kDriverName = "org.freedesktop.DBus";
inline constexpr std::string_view kDriverPath = "/org/freedesktop/DBus";
inline constexpr std::string_view kDriverInterface = "org.freedesktop.DBus";

// `old_owner` or `new_owner` empty: the name had, or now has, no owner.
MessageBuilder name_owner_changed(std::string_view name, std::string_view old_owner, std::string_view new_owner);
MessageBuilder name_lost(std::string_view to, std::string_view name);
MessageBuilder name_acquired(std::string_view to, std::string_view name);

}  // namespace afbus::daemon
