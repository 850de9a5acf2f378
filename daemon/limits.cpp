#include "limits.hpp"

namespace afbus::daemon {

bool Limits::set(std::string_view name, std::int64_t value) {
    struct Entry {
        std::string_view name;
        std::int64_t Limits::*field;
    };
    static constexpr Entry kLimits[] = {
        {"max_incoming_bytes", &Limits::max_incoming_bytes},
        {"max_incoming_unix_fds", &Limits::max_incoming_unix_fds},
        {"max_outgoing_bytes", &Limits::max_outgoing_bytes},
        {"max_outgoing_unix_fds", &Limits::max_outgoing_unix_fds},
        {"max_message_size", &Limits::max_message_size},
        {"max_message_unix_fds", &Limits::max_message_unix_fds},
        {"service_start_timeout", &Limits::service_start_timeout},
        {"auth_timeout", &Limits::auth_timeout},
        {"pending_fd_timeout", &Limits::pending_fd_timeout},
        {"max_completed_connections", &Limits::max_completed_connections},
        {"max_incomplete_connections", &Limits::max_incomplete_connections},
        {"max_connections_per_user", &Limits::max_connections_per_user},
        {"max_pending_service_starts", &Limits::max_pending_service_starts},
        {"max_names_per_connection", &Limits::max_names_per_connection},
        {"max_match_rules_per_connection", &Limits::max_match_rules_per_connection},
        {"max_replies_per_connection", &Limits::max_replies_per_connection},
        {"reply_timeout", &Limits::reply_timeout},
        {"max_containers", &Limits::max_containers},
        {"max_containers_per_user", &Limits::max_containers_per_user},
        {"max_container_metadata_bytes", &Limits::max_container_metadata_bytes},
        {"max_connections_per_container", &Limits::max_connections_per_container},
    };
    for (const Entry& e : kLimits) {
        if (e.name == name) {
            this->*e.field = value;
            return true;
        }
    }
    return false;
}

}  // namespace afbus::daemon
