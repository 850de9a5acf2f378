// The <limit> settings of dbus-daemon 1.14, with its built-in defaults (bus/config-parser.c); the
// session.conf and system.conf files override some of them.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace afbus::daemon {

struct Limits {
    std::int64_t max_incoming_bytes = 127 * 1024 * 1024;
    std::int64_t max_incoming_unix_fds = 64 * 4;
    std::int64_t max_outgoing_bytes = 127 * 1024 * 1024;
    std::int64_t max_outgoing_unix_fds = 64 * 4;
    std::int64_t max_message_size = 32 * 1024 * 1024;
    std::int64_t max_message_unix_fds = 16;
    std::int64_t service_start_timeout = 25000;     // ms
    std::int64_t auth_timeout = 30000;              // ms
    std::int64_t pending_fd_timeout = 150000;       // ms
    std::int64_t max_completed_connections = 2048;
    std::int64_t max_incomplete_connections = 64;
    std::int64_t max_connections_per_user = 256;
    std::int64_t max_pending_service_starts = 512;
    std::int64_t max_names_per_connection = 512;
    std::int64_t max_match_rules_per_connection = 512;
    std::int64_t max_replies_per_connection = 128;
    std::int64_t reply_timeout = -1;                // ms; -1: never (dbus-daemon's default)
    // Limits of the experimental org.freedesktop.DBus.Containers1 interface: accepted in config files
    // as dbus-daemon 1.14 accepts them, unused (neither afbus nor Debian's dbus-daemon offers it).
    std::int64_t max_containers = 10000;
    std::int64_t max_containers_per_user = 10000;
    std::int64_t max_container_metadata_bytes = 4096;
    std::int64_t max_connections_per_container = 10000;

    // Sets the named limit; false for an unknown name.
    bool set(std::string_view name, std::int64_t value);
};

}  // namespace afbus::daemon
