#include "support/serve_until.hpp"

#include <gtest/gtest.h>
#include <poll.h>

#include <cerrno>

namespace afbus::test {

bool serve_until(const std::function<bool()>& done, std::span<Connection* const> connections,
                 const std::vector<ChildProcess*>& children, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        for (Connection* c : connections) {
            if (auto r = c->process(); !r) {
                ADD_FAILURE() << "libafbus connection failed: " << r.error().name << ": " << r.error().message;
                return false;
            }
        }
        for (ChildProcess* child : children) child->on_ready();
        if (done()) return true;
        if (Clock::now() >= deadline) return false;
        std::vector<pollfd> fds;
        auto wake = deadline;
        for (Connection* c : connections) {
            fds.push_back({c->fd(), c->poll_events(), 0});
            if (auto next = c->next_deadline(); next && *next < wake) wake = *next;
        }
        for (ChildProcess* child : children) child->fds(fds);
        if (::poll(fds.data(), fds.size(), remaining_ms(wake)) < 0 && errno != EINTR) {
            ADD_FAILURE() << "poll failed";
            return false;
        }
    }
}

}  // namespace afbus::test
