// Many raw connections to a test bus at once, for floods: each is a non-blocking socket that sends its
// whole handshake (and Hello) in one go and is then watched, all together in one poll(), for what the bus
// does with it: serves it, refuses it, closes it, or leaves it waiting (unaccepted in the listen backlog,
// or accepted and not answered). Every wait is a poll with a deadline: no sleeps.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "afbus/fd.hpp"
#include "afbus/framer.hpp"
#include "integration/test_bus.hpp"

namespace afbus::test {

struct FloodConnection {
    enum class State {
        Waiting,      // nothing from the bus yet (or only the SASL OK)
        Registered,   // Hello answered with a unique name
        Refused,      // Hello answered with an error (error_name), or SASL said REJECTED
        Closed,       // the bus closed the connection
        NotConnected  // connect() failed: the listen backlog was full
    };
    Fd fd;
    State state = State::Waiting;
    std::string error_name;
    std::string sasl;  // what the bus said before the messages
    bool past_sasl = false;
    MessageFramer framer;
};

// What a flood connection sends: nothing, the SASL exchange up to BEGIN, or that and Hello.
enum class FloodHandshake { Silent, AuthOnly, AuthAndHello };

// `n` more flood connections to `bus`'s unix socket, each with its handshake sent.
void open_flood(const TestBus& bus, std::size_t n, FloodHandshake handshake, std::vector<FloodConnection>& into);

// Reads what the bus sent to the waiting connections until `done` holds (true) or `timeout` passes (false).
bool advance_flood(std::vector<FloodConnection>& flood, const std::function<bool()>& done,
                   std::chrono::milliseconds timeout);

std::size_t count_in(const std::vector<FloodConnection>& flood, FloodConnection::State state);

}  // namespace afbus::test
