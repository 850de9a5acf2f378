// tree and introspect: a service's objects found by walking Introspect from "/", and one object's
// interfaces, members, flags and current property values, in busctl's layout.
#pragma once

#include <string>
#include <vector>

#include "bus_connection.hpp"

namespace afbusctl {

int run_tree(BusClient& bus);
int run_introspect(BusClient& bus);

// busctl's tree drawing of sorted absolute paths ("/" itself is not drawn):
//   ├─/a
//   │ └─/a/b
//   └─/c
std::string draw_tree(const std::vector<std::string>& sorted_paths, bool utf8);

}  // namespace afbusctl
