// afbus-bench: the client seam. Every role of every scenario (the measuring client, the echo server,
// parallel clients, subscribers, the emitter) talks to the bus through BusClient, so that a scenario is
// written once and runs with any client library: libafbus (libafbus_client.cpp) or libsystemd's sd-bus
// (sdbus_client.cpp). Applications mostly use sd-bus, GDBus or libdbus, whose cost per message differs
// from libafbus's; measuring with more than one shows how much of a ratio between daemons is the
// client's. Each method does one protocol operation of bench_protocol.hpp, the same on the wire for
// every implementation.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "bench.hpp"

namespace afbus::bench {

// Keeps a registration alive (a pending call, a subscription, an exported object); destroying it
// unregisters, so that no callback runs after its captures are gone.
class Registration {
public:
    virtual ~Registration() = default;
};
using RegistrationPtr = std::unique_ptr<Registration>;

// One bus connection (after Hello). Used from one process and thread; callbacks run from process().
class BusClient {
public:
    // Called once per asynchronous call: true for a method return, false for anything else.
    using CallDone = std::function<void(bool ok)>;
    // Called for each signal a subscription matches, with its member.
    using SignalHandler = std::function<void(std::string_view member)>;

    virtual ~BusClient() = default;

    // Event loop integration: poll fd() for poll_events(), then call process(), which dispatches
    // everything that has arrived and writes what is queued, without blocking. An error means the
    // connection is unusable. Call process() before the first wait after a blocking call (connecting,
    // ping, echo, subscribe, serve_echo): a library may have read messages meanwhile (NameAcquired, a
    // signal) that it keeps queued, and the fd will not signal them again. sd-bus then even asks for no
    // events at all until they are processed.
    [[nodiscard]] virtual int fd() const = 0;
    [[nodiscard]] virtual short poll_events() const = 0;
    virtual Result<void> process() = 0;

    // Ping on the echo server, waiting for the reply.
    virtual Result<void> ping() = 0;
    // Ping without waiting; `done` runs from process().
    virtual Result<RegistrationPtr> ping_async(CallDone done) = 0;
    // Echo of `data` on the echo server; returns how many bytes came back.
    virtual Result<std::size_t> echo(std::span<const std::uint8_t> data) = 0;

    // The bus's AddMatch(rule), not waiting for the reply; no local handler is installed (the rule is
    // there to load the daemon's match table).
    virtual Result<RegistrationPtr> add_match_async(const std::string& rule, CallDone done) = 0;
    // AddMatch(rule), waiting until the bus accepted it, and a local handler for what it matches.
    virtual Result<RegistrationPtr> subscribe(const std::string& rule, SignalHandler handler) = 0;
    // Broadcasts `member` (Tick or Sync) of the bench signal interface with the body (arg0, seq).
    virtual Result<void> emit(std::string_view member, const std::string& arg0, std::uint64_t seq) = 0;
    // Holds back sends until the returned registration is destroyed, then writes them together
    // (libafbus: Connection::batch_sends). nullptr where the library has no such thing (sd-bus writes
    // each message as it is sent).
    virtual RegistrationPtr batch_sends() { return nullptr; }

    // Exports Ping and Echo at kServerPath and owns kServerName (without queueing).
    virtual Result<RegistrationPtr> serve_echo() = 0;
    // Serves what serve_echo() exported until the connection fails, with the loop a service written
    // with the library would run: libafbus's Connection::run(); by default (sd-bus, whose
    // sd_bus_wait() is a poll of its fd) process() and a poll() of fd() in turn.
    virtual Result<void> serve();
};

[[nodiscard]] std::string_view client_library_name(ClientLibrary library);
[[nodiscard]] std::optional<ClientLibrary> parse_client_library(std::string_view name);
// Empty when `library` was built in; otherwise why not.
[[nodiscard]] std::string client_library_unavailable_reason(ClientLibrary library);

// Connects to `address` with `library`; returns once the bus has answered Hello.
Result<std::unique_ptr<BusClient>> open_bus_client(ClientLibrary library, const std::string& address);

}  // namespace afbus::bench
