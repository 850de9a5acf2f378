// Carries one SASL conversation (either side) over a nonblocking stream socket: the one read/write loop
// that the daemon (driven by epoll) and the client library (driven by poll with a deadline) share. The
// state machines in sasl.hpp do no I/O; this moves their bytes and reports what the socket must wait for.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "afbus/expected.hpp"
#include "afbus/sasl.hpp"

namespace afbus {

// Where a conversation stands after advance(): wait for the socket to become readable or writable and
// call advance() again, or it is done.
struct SaslProgress {
    enum class Kind : std::uint8_t { WantRead, WantWrite, Authenticated } kind;
    // With Authenticated: bytes that followed the last SASL line in the same read, the start of the
    // message stream, for the transport that takes over.
    std::string leftover;
};

// Why a conversation ended without authentication.
struct SaslStreamError {
    enum class Kind : std::uint8_t {
        Closed,    // the peer hung up before authentication completed
        Io,        // send or recv failed: errno_value says why
        Rejected,  // the state machine failed: sasl says why
    } kind;
    int errno_value = 0;
    std::optional<SaslError> sasl;
    [[nodiscard]] std::string describe() const;
};

class SaslStream {
public:
    // Sends what the machine has to say, reads what the socket holds and feeds it, until the socket
    // would block or the conversation ends. A server that fails still tries to send its last reply
    // (a REJECTED or ERROR) before the error is returned. Never blocks.
    Expected<SaslProgress, SaslStreamError> advance(int fd, SaslClient& client);
    Expected<SaslProgress, SaslStreamError> advance(int fd, SaslServer& server);

    // Output is waiting for the socket to drain.
    [[nodiscard]] bool wants_write() const noexcept { return !output_.empty(); }

private:
    template <class Machine>
    Expected<SaslProgress, SaslStreamError> advance_machine(int fd, Machine& machine);
    // Sends output_ until it is empty (true) or the socket would block (false).
    Expected<bool, SaslStreamError> send_output(int fd);

    std::string output_;
    std::string leftover_;  // read behind the last SASL line, kept until the last reply is sent
};

}  // namespace afbus
