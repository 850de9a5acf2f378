// call, get-property, set-property and emit: busctl's verbs that send one message built from the command
// line, with its argument syntax and its output.
#pragma once

#include <string>
#include <vector>

#include "afbus/message.hpp"
#include "bus_connection.hpp"

namespace afbusctl {

int run_call(BusClient& bus);
int run_get_property(BusClient& bus);
int run_set_property(BusClient& bus);
int run_emit(BusClient& bus);

// Prints a message body as `call` does: one line "SIGNATURE VALUE...", or JSON; nothing for an empty
// body. False (after saying why on stderr) if it cannot be shown.
bool print_body(const CommandLine& command_line, const afbus::Message& message);

// The four name checks busctl makes before it sends anything; false after printing busctl's complaint.
bool check_bus_name(const std::string& name);
bool check_object_path(const std::string& path);
bool check_interface(const std::string& name);
bool check_member(const std::string& name);

}  // namespace afbusctl
