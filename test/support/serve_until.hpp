// serve_until: the loop of an integration test that runs clients as child processes against services it
// holds itself on libafbus connections: process the connections, feed the children's pipes, and poll
// both together (never sleeping) until the test's condition holds.
#pragma once

#include <chrono>
#include <functional>
#include <span>
#include <vector>

#include "afbus/connection.hpp"
#include "support/child_process.hpp"

namespace afbus::test {

// Serves `connections` and watches `children` until `done()` holds (true), the timeout passes (false),
// or a connection or poll fails (false, and a test failure naming it).
bool serve_until(const std::function<bool()>& done, std::span<Connection* const> connections,
                 const std::vector<ChildProcess*>& children, std::chrono::milliseconds timeout);

}  // namespace afbus::test
