// The programs the examples tests run (examples/): their paths, which meson test passes in the
// environment, and starting one on a test bus.
#pragma once

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/child_process.hpp"

namespace afbus::test {

// The path meson test put in `variable`; throws (failing the test) when the test runs another way.
inline std::string example_program(const char* variable) {
    const char* path = std::getenv(variable);
    if (!path || !*path) throw std::runtime_error(std::string(variable) + " is not set (run through meson test)");
    return path;
}

// Runs `argv` with the session bus at `bus_address`. The programs write to stdout and stderr in turn:
// one pipe keeps the order for failure messages.
inline std::unique_ptr<ChildProcess> start_program(std::vector<std::string> argv, const std::string& bus_address) {
    return std::make_unique<ChildProcess>(std::move(argv), child_environment({"DBUS_SESSION_BUS_ADDRESS=" + bus_address}),
                                          ChildOptions{.merge_stderr = true});
}

}  // namespace afbus::test
