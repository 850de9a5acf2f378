// The policy check of one message between two parties (either may be the bus itself), as dbus-daemon's
// bus_context_check_security_policy: the sender's send rules, then the recipient's receive (or
// eavesdrop) rules. It answers with one verdict; a refusal carries the error the sender is to be
// answered with, or none when the rule says to drop the message silently.
#pragma once

#include <string>

#include "afbus/error.hpp"
#include "afbus/message.hpp"
#include "name_registry.hpp"
#include "peer.hpp"

namespace afbus::daemon {

struct PolicyVerdict {
    enum class Kind : std::uint8_t { Allow, Drop, Reject };
    Kind kind = Kind::Allow;
    Error error;  // for Reject: the error to answer the sender with (its text is what the log says too)

    static PolicyVerdict allow() { return {}; }
    [[nodiscard]] bool allowed() const noexcept { return kind == Kind::Allow; }
    [[nodiscard]] bool rejected() const noexcept { return kind == Kind::Reject; }
};

struct PolicyQuestion {
    const Peer* sender = nullptr;     // null: the bus
    const Peer* recipient = nullptr;  // null: the bus
    const Message* message = nullptr;
    bool requested_reply = false;  // a reply the recipient's call asked for
    bool eavesdropping = false;    // a copy for a peer the message is not addressed to
};

// `names` tells which well-known names each party owns or queues for (rules about a destination look at
// them). Logs what the rules ask to log (dbus-daemon's log="true" and the "would reject" complaints).
PolicyVerdict check_policy(const NameRegistry& names, const PolicyQuestion& question);

}  // namespace afbus::daemon
