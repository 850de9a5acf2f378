// monitor, capture and wait: watching the bus. monitor becomes a monitor (org.freedesktop.DBus.Monitoring) and
// prints every message in busctl's format until interrupted or --limit-messages= have been shown; wait
// subscribes to one signal and prints its arguments as `call` prints a reply.
#pragma once

#include <string>
#include <vector>

#include "bus_connection.hpp"

namespace afbusctl {

int run_monitor(BusClient& bus);
// The same messages as monitor, written to stdout as pcapng (never to a terminal), as busctl capture.
int run_capture(BusClient& bus);
int run_wait(BusClient& bus);

// The match rules BecomeMonitor gets: every --match=, plus sender='S' and destination='S' for each
// SERVICE argument (busctl's expansion); none means everything.
std::vector<std::string> monitor_rules(const CommandLine& command_line);

}  // namespace afbusctl
