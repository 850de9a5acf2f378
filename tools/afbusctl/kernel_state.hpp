// afbusctl kernel (beyond busctl): the AF_BUS module's state as the kernel publishes it: whether
// af_bus.ko is loaded, the address family number it registered (/sys/module/af_bus/parameters/family)
// and its socket count and memory from the AF_BUS line of /proc/net/protocols. The module does not list
// its buses anywhere yet, so neither can this.
#pragma once

#include <optional>
#include <string>

#include "bus_connection.hpp"
#include "value_format.hpp"

namespace afbusctl {

struct KernelState {
    bool loaded = false;
    std::optional<int> family;
    std::string family_problem;  // why the family number could not be read, when loaded
    std::optional<long long> sockets;
    std::optional<long long> memory;  // -1: the protocol does not account memory
};

// `sysfs_root` and `procfs_root` are "/sys" and "/proc" except in tests.
KernelState read_kernel_state(const std::string& sysfs_root = "/sys", const std::string& procfs_root = "/proc");

// KEY=VALUE lines (Module=, Family=, Sockets=, Memory=) as status prints its fields, or JSON.
std::string format_kernel_state(const KernelState& state, JsonMode json);

// Needs no bus: 0 when the module is loaded, 1 when not (after printing the state either way).
int run_kernel(const CommandLine& command_line);

}  // namespace afbusctl
