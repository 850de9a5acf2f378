// afbusctl: inspect and talk to a D-Bus bus (afbus-daemon or dbus-daemon) with busctl's commands, options,
// argument syntax, output and exit status (0 on success, 1 on any failure). docs/afbusctl.md and
// afbusctl(1) describe it; the commands live in *_commands.cpp.
#include <clocale>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>

#include "bus_connection.hpp"
#include "call_commands.hpp"
#include "command_line.hpp"
#include "kernel_state.hpp"
#include "monitor_commands.hpp"
#include "name_commands.hpp"
#include "object_commands.hpp"
#include "stats_commands.hpp"

#ifndef AFBUSCTL_VERSION
#define AFBUSCTL_VERSION "unknown"
#endif

namespace afbusctl {
namespace {

constexpr const char* kHelp = R"(afbusctl [OPTIONS...] COMMAND ...

Introspect and talk to a D-Bus bus (busctl's commands, options and output).

Commands:
  list                     List bus names
  status [SERVICE]         Show bus service, process or bus owner credentials
  monitor [SERVICE...]     Show bus traffic
  capture [SERVICE...]     Capture bus traffic as pcapng
  tree [SERVICE...]        Show object tree of service
  introspect SERVICE OBJECT [INTERFACE]
                           Introspect object
  call SERVICE OBJECT INTERFACE METHOD [SIGNATURE [ARGUMENT...]]
                           Call a method
  emit OBJECT INTERFACE SIGNAL [SIGNATURE [ARGUMENT...]]
                           Emit a signal
  wait [SERVICE] OBJECT INTERFACE SIGNAL
                           Wait for a signal and show its arguments
  get-property SERVICE OBJECT INTERFACE PROPERTY...
                           Get property value
  set-property SERVICE OBJECT INTERFACE PROPERTY SIGNATURE ARGUMENT...
                           Set property value
  stats [SERVICE...]       Show what each connection holds against the bus's limits
  reload                   Make the bus reload its configuration
  kernel                   Show the AF_BUS kernel module's state
  help                     Show this help

Options:
  -h --help                Show this help
     --version             Show package version
     --no-pager            Do not pipe output into a pager (afbusctl never does)
     --no-legend           Do not show the headers and footers
  -l --full                Do not ellipsize output
     --system              Connect to system bus
     --user                Connect to user bus
     --address=ADDRESS     Connect to bus specified by address
     --unique              Only show unique names
     --acquired            Only show acquired names
     --activatable         Only show activatable names
     --match=MATCH         Only show matching messages
     --size=SIZE           Maximum length of captured packet
     --limit-messages=NUMBER
                           Stop monitoring after NUMBER messages
     --limit=NAME=VALUE    A bus limit for stats (dbus-daemon's <limit> names)
  -q --quiet               Don't show method call reply
     --json=MODE           Output as JSON (short, pretty)
  -j                       Same as --json=pretty on tty, --json=short otherwise
     --xml-interface       Dump the XML description in introspect command
     --expect-reply=BOOL   Expect a method call reply
     --auto-start=BOOL     Auto-start destination service
     --allow-interactive-authorization=BOOL
                           Allow interactive authorization for operation
     --timeout=SECS        Maximum time to wait for method call completion
     --destination=SERVICE Destination service of a signal

See the afbusctl(1) man page for details.
)";

using Command = std::function<int(BusClient&)>;

const std::map<std::string, Command>& commands() {
    static const std::map<std::string, Command> table = {
        {"list", run_list},
        {"status", run_status},
        {"monitor", run_monitor},
        {"capture", run_capture},
        {"tree", run_tree},
        {"introspect", run_introspect},
        {"call", run_call},
        {"wait", run_wait},
        {"stats", run_stats},
        {"reload", run_reload},
        {"emit", run_emit},
        {"get-property", run_get_property},
        {"set-property", run_set_property},
    };
    return table;
}

int run(int argc, char** argv) {
    std::setlocale(LC_ALL, "");  // for locale_is_utf8(): tree and monitor glyphs
    auto command_line = parse_command_line(argc, argv);
    if (!command_line) {
        if (!command_line.error().empty()) std::fprintf(stderr, "%s\n", command_line.error().c_str());
        return 1;
    }
    if (command_line->help || command_line->verb == "help") {
        std::fputs(kHelp, stdout);
        return 0;
    }
    if (command_line->version) {
        std::printf("afbusctl %s\n", AFBUSCTL_VERSION);
        return 0;
    }
    const std::string verb = command_line->verb.empty() ? "list" : command_line->verb;
    if (verb == "kernel") return run_kernel(*command_line);  // the only command that needs no bus
    const auto found = commands().find(verb);
    if (found == commands().end()) {
        std::fprintf(stderr, "Unknown command verb '%s'.\n", verb.c_str());
        return 1;
    }
    auto connection =
        connect_to_bus(*command_line, verb == "monitor" || verb == "capture" ? BusUse::Monitoring : BusUse::Calls);
    if (!connection) {
        std::fprintf(stderr, "%s\n", connection.error().c_str());
        return 1;
    }
    BusClient bus(*command_line, **connection);
    const int status = found->second(bus);
    if (std::fflush(stdout) != 0) return 1;
    return status;
}

}  // namespace
}  // namespace afbusctl

int main(int argc, char** argv) { return afbusctl::run(argc, argv); }
