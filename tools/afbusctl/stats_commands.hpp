// Beyond busctl: stats ("who is holding the bus": what each connection holds against the bus's limits,
// from org.freedesktop.DBus.Debug.Stats, closest to its limit first) and reload (ReloadConfig).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "afbus/value.hpp"
#include "bus_connection.hpp"

namespace afbusctl {

int run_stats(BusClient& bus);
int run_reload(BusClient& bus);

// The limits stats measures against, by dbus-daemon's <limit> names. The bus does not report its
// limits, so these are dbus-daemon's (and afbus-daemon's) built-in defaults, or session.conf's for
// --user; --limit=NAME=VALUE overrides one.
std::map<std::string, std::uint64_t> default_limits(bool session_bus);

struct ConnectionLoad {
    std::string unique_name;
    std::vector<std::string> names;  // the well-known names it owns
    std::map<std::string, std::uint64_t> counters;  // GetConnectionStats' numbers by key
    // The limit it is closest to and how full it is (0..1 and beyond); empty when nothing is held.
    std::string closest_limit;
    double fill = 0;
};

// Fills closest_limit and fill from counters: IncomingBytes against max_incoming_bytes, IncomingFDs
// against max_incoming_unix_fds, OutgoingBytes/FDs against max_outgoing_*, MatchRules against
// max_match_rules_per_connection and BusNames against max_names_per_connection.
void rate_load(ConnectionLoad& load, const std::map<std::string, std::uint64_t>& limits);
// Closest to a limit first; ties by unique name.
void sort_by_pressure(std::vector<ConnectionLoad>& loads);

}  // namespace afbusctl
