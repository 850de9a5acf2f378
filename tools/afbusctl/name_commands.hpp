// list and status: the names on the bus and the credentials of whoever holds them, as busctl shows them
// (the bus's GetConnectionCredentials, completed from /proc).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "bus_connection.hpp"

namespace afbusctl {

int run_list(BusClient& bus);
int run_status(BusClient& bus);

// One line of `list`; unset fields print as "-" (JSON null).
struct NameRow {
    std::string name;
    std::optional<unsigned> pid;
    std::optional<std::string> process, user, connection, unit, session;
    bool activatable_only = false;  // activatable, not running: CONNECTION is "(activatable)"
};

// Which names `list` shows, in its order: unique names only with --unique, well-known names only with
// --acquired, activatable names that nobody holds only with --activatable; all three when none is given.
std::vector<std::string> names_to_list(const CommandLine& command_line, const std::vector<std::string>& running,
                                       const std::vector<std::string>& activatable,
                                       std::vector<std::string>* activatable_only);

}  // namespace afbusctl
