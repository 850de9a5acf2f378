// afbusctl's command line: busctl's global options (the same names, the same defaults: the system bus
// unless --user or --address=), the verb and its arguments, and which bus address they select.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "afbus/address.hpp"
#include "afbus/expected.hpp"
#include "value_format.hpp"

namespace afbusctl {

enum class BusChoice { System, User, Address };

struct CommandLine {
    BusChoice bus = BusChoice::System;
    std::string address;  // for BusChoice::Address

    bool help = false;
    bool version = false;
    bool no_pager = false;  // accepted for busctl's sake; afbusctl never starts a pager
    bool no_legend = false;
    bool full = false;
    bool quiet = false;
    bool unique = false;
    bool acquired = false;
    bool activatable = false;
    bool xml_interface = false;
    bool list_paths = false;  // tree --list
    JsonMode json = JsonMode::Off;
    std::optional<std::chrono::milliseconds> timeout;  // unset: libafbus's default (25 s, as busctl)
    bool expect_reply = true;
    bool auto_start = true;
    bool allow_interactive_authorization = true;  // busctl sets the flag unless told not to
    std::vector<std::string> matches;             // monitor --match=
    std::string destination;                      // emit --destination=
    std::vector<std::string> limits;              // stats --limit=NAME=VALUE (afbusctl's own)
    std::uint32_t capture_size = 4096;             // capture --size= (busctl's default snap length)
    std::optional<std::uint64_t> limit_messages;  // monitor --limit-messages= (busctl 254 and later)

    std::string verb;  // empty: no verb given (busctl runs "list")
    std::vector<std::string> arguments;
};

// argv as main() gets it. The error is what to print (busctl's wording) before exiting with status 1.
afbus::Expected<CommandLine, std::string> parse_command_line(int argc, char* const* argv);

// busctl's time spans: "5" is seconds; "500ms", "2s", "1min", "1.5s", "1h" too. "infinity" or 0 mean no
// timeout, which afbusctl spells as a very long one.
afbus::Expected<std::chrono::milliseconds, std::string> parse_timespan(const std::string& text);
// busctl's booleans: 1/yes/y/true/t/on and 0/no/n/false/f/off, any case.
std::optional<bool> parse_boolean_word(const std::string& text);

// The address to connect to: --address=, else DBUS_SYSTEM_BUS_ADDRESS (default
// unix:path=/run/dbus/system_bus_socket) or with --user DBUS_SESSION_BUS_ADDRESS (default
// unix:path=$XDG_RUNTIME_DIR/bus), as sd-bus reads them.
afbus::Expected<std::string, std::string> select_bus_address(const CommandLine& command_line,
                                                             const afbus::EnvironmentLookup& environment);

}  // namespace afbusctl
