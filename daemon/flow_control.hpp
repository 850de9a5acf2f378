// Flow control: what the bus holds for each peer, against the <limit>s, as dbus-daemon accounts it.
//
// Incoming: a routed message stays charged to its sender for as long as any queue (or a pending
// activation) holds it; a sender over max_incoming_bytes or max_incoming_unix_fds is not read from until
// its messages drain, so a fast sender to a slow reader slows down instead of growing the bus.
// Outgoing: a message that would take a recipient's queue beyond max_outgoing_bytes or
// max_outgoing_unix_fds is not queued, and the drop is counted against the recipient.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "afbus/message.hpp"
#include "limits.hpp"

namespace afbus::daemon {

struct PeerStats;

// The bytes and fds of one peer's messages that the bus still holds: dbus-daemon's "live" incoming
// messages.
struct IncomingLoad {
    std::size_t messages = 0, bytes = 0, fds = 0;
};

// What a delivery mode has queued for one recipient and not yet handed over.
struct QueueLoad {
    std::size_t messages = 0, bytes = 0, fds = 0;
};

class FlowControl {
public:
    explicit FlowControl(const Limits& limits) : limits_(&limits) {}
    void set_limits(const Limits& limits) { limits_ = &limits; }

    // `message`, charged to `load` until the last holder lets go of it; `stats` records the peak.
    [[nodiscard]] static std::shared_ptr<const Message> charge(const std::shared_ptr<IncomingLoad>& load, PeerStats& stats,
                                                               Message message);
    // Whether a sender holding `load` must not be read from for now.
    [[nodiscard]] bool over_incoming(const IncomingLoad& load) const noexcept { return incoming_exceeded(load) != nullptr; }
    // The name of the incoming limit a sender holding `load` has reached, or null.
    [[nodiscard]] const char* incoming_exceeded(const IncomingLoad& load) const noexcept;
    // The value of the limit called `name` (one of the names above).
    [[nodiscard]] std::int64_t limit_value(std::string_view name) const noexcept;
    // The name of the outgoing limit `message` would exceed on a queue holding `queued`, or null.
    [[nodiscard]] const char* outgoing_exceeded(const QueueLoad& queued, const Message& message) const noexcept;
    // The name of the per-message limit `message` breaks (max_message_size, max_message_unix_fds), or null.
    [[nodiscard]] const char* message_exceeds(const Message& message) const noexcept;

private:
    const Limits* limits_;
};

}  // namespace afbus::daemon
