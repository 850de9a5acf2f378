// The command line of dbus-daemon 1.14, parsed without side effects.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "afbus/expected.hpp"

namespace afbus::daemon {

struct Options {
    enum class BusType { None, Session, System };
    BusType bus = BusType::None;
    std::optional<std::string> config_file;
    std::optional<std::string> address;  // overrides every <listen>
    std::optional<int> print_address_fd;  // -1 would be invalid; 1 is stdout
    std::optional<int> print_pid_fd;
    std::optional<bool> fork;  // --fork / --nofork; unset: the config decides
    bool no_pidfile = false;
    bool systemd_activation = false;
    enum class Syslog { Default, Syslog, SyslogOnly, NoSyslog } syslog = Syslog::Default;
    bool introspect = false;
    bool version = false;
    bool help = false;
};

// argv[0] excluded. Errors read like dbus-daemon's ("Unknown command line argument FOO").
Expected<Options, std::string> parse_options(const std::vector<std::string>& args);

std::string usage();

}  // namespace afbus::daemon
