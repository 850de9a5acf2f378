// ScriptedStreamPeer: the client end of a unix connection to a bus whose event loop runs on the test's
// own thread (the out-of-memory tests): what it says is written at once, what the bus wrote is read
// without blocking, and none of its own allocations is counted or failed (FailingAllocations::Pause).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/fd.hpp"
#include "afbus/framer.hpp"
#include "afbus/message.hpp"
#include "support/failing_allocations.hpp"

namespace afbus::test {

// A call to the bus driver.
MessageBuilder driver_call_builder(std::string_view member);

// A script of one message, the one `make` builds, with `serial`, made outside FailingAllocations' count
// (the test's work, between the bus's).
template <class Make>
std::vector<Message> one_message(Make&& make, std::uint32_t serial) {
    FailingAllocations::Pause pause;
    std::vector<Message> script;
    script.push_back(make().build(serial).value());
    return script;
}

// The SASL EXTERNAL exchange as a client writes it, all at once (the bus answers OK, then BEGIN ends it).
std::string sasl_external();

class ScriptedStreamPeer {
public:
    explicit ScriptedStreamPeer(Fd fd) : fd_(std::move(fd)) {}

    // From now on, its SASL asks to pass fds (NEGOTIATE_UNIX_FD), and its reads take the fds that come.
    void pass_unix_fds() { passes_fds_ = true; }
    // SASL (unless told not to), then `messages`, in one write (with their fds).
    void say(const std::vector<Message>& messages, bool authenticate = true);
    // The method return to `call`, with `serial`.
    void answer(const Message& call, std::uint32_t serial);
    // Takes what the bus wrote so far.
    void read();

    // The answer to `serial` (a method return or an error), if it came.
    [[nodiscard]] const Message* answer(std::uint32_t serial) const;
    // The first call of `member` it was given, if any.
    [[nodiscard]] const Message* call(std::string_view member) const;
    [[nodiscard]] bool closed() const { return closed_; }
    // Everything it was given, in order.
    [[nodiscard]] const std::vector<Message>& received() const { return received_; }

private:
    Fd fd_;
    std::string sasl_;
    bool passes_fds_ = false;
    bool past_sasl_ = false;
    MessageFramer framer_;
    std::vector<Message> received_;
    bool closed_ = false;
};

// The first answer to `serial` (a method return or an error) among `messages`, or the first call of `member`.
[[nodiscard]] const Message* answer_among(const std::vector<Message>& messages, std::uint32_t serial);
[[nodiscard]] const Message* call_among(const std::vector<Message>& messages, std::string_view member);

}  // namespace afbus::test
