// Runs several libafbus connections' loops in one thread until a condition holds: each is processed,
// then all are polled together (no sleeps), so that a test can play both ends of a conversation.
#pragma once

#include <poll.h>

#include <chrono>
#include <functional>
#include <initializer_list>
#include <vector>

#include <gtest/gtest.h>

#include "afbus/connection.hpp"

namespace afbus::test {

inline bool pump(std::initializer_list<Connection*> connections, const std::function<bool()>& done,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        for (Connection* c : connections) EXPECT_TRUE(c->process());
        if (done()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::vector<pollfd> fds;
        for (Connection* c : connections) fds.push_back({c->fd(), c->poll_events(), 0});
        ::poll(fds.data(), fds.size(), 100);
    }
}

}  // namespace afbus::test
