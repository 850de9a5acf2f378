// The delivery seam: the one boundary between the bus model (bus.hpp: peers, names, matches, policy,
// replies, monitors, the driver, activation) and the way messages physically move.
//
//   Delivery        what the model asks of a delivery mode: hand a message to a peer, flush, close a
//                   peer, tell what a peer has queued; and be told of the model's changes that a mode
//                   may have to mirror (kernel mode moves name addresses and installs match records
//                   and policy in the kernel; broker mode needs none of it).
//   DeliveryEvents  what a delivery mode tells the model: a connection arrived, authenticated, sent a
//                   message, or failed; and asks it: may this peer be read from now.
//
// Broker mode (broker_delivery.hpp) is the first implementation: unix stream sockets, one event loop.
// Nothing above the seam knows which mode runs. docs/architecture.md draws the flow.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/expected.hpp"
#include "afbus/framer.hpp"
#include "afbus/match_rule.hpp"
#include "afbus/message.hpp"
#include "afbus/sasl.hpp"
#include "afbus/unix_socket.hpp"
#include "flow_control.hpp"
#include "name_registry.hpp"
#include "policy_engine.hpp"

namespace afbus::daemon {

// How connections authenticate and how long they may take, and the limits a delivery mode enforces
// itself: the part of the configuration a delivery mode applies.
struct ConnectionSettings {
    std::string guid;
    std::vector<SaslMechanism> mechanisms{SaslMechanism::External};
    bool allow_anonymous = false;
    std::int64_t auth_timeout_ms = 30000;
    std::int64_t pending_fd_timeout_ms = 150000;
    // Pending replies: the model tracks what it routes; kernel mode has af_bus_dbus.ko track the calls
    // that go from client to client directly, with the same limits.
    std::int64_t max_replies_per_connection = 128;
    std::int64_t reply_timeout_ms = -1;  // -1: never
    // The largest message: kernel mode sizes the AF_BUS send buffers for it.
    std::int64_t max_message_size = 32 * 1024 * 1024;
    // What may wait for one connection: kernel mode sizes the AF_BUS receive queues for it, so that a
    // burst of signals is queued where the broker would queue it, not dropped.
    std::int64_t max_outgoing_bytes = 127 * 1024 * 1024;
    // The compiled policy (null: none, in unit tests): kernel mode installs its image in af_bus_dbus.ko.
    std::shared_ptr<const policy::PolicyEngine> policy;
};

// The SASL server for a new connection with these credentials, as `settings` ask.
SaslServerConfig sasl_server_config(const ConnectionSettings& settings, const PeerCredentials& credentials);

class DeliveryEvents {
public:
    // Whether a new connection may be taken now. While not (max_incomplete_connections connections are
    // still authenticating), new ones wait unaccepted, as dbus-daemon lets them wait in the backlog.
    [[nodiscard]] virtual bool may_accept() const = 0;
    // A new connection with the kernel's credentials: its id, or none to refuse it (the model logged why).
    virtual std::optional<PeerId> peer_connected(PeerCredentials credentials) = 0;
    // `peer` completed authentication as `uid` (none: anonymous); an error refuses it, with the reason.
    virtual Expected<void, std::string> peer_authenticated(PeerId peer, std::optional<uid_t> uid) = 0;
    // One complete message from an authenticated `peer`.
    virtual void peer_sent(PeerId peer, Message message) = 0;
    // The bus had no memory for a message `peer` sent, and the delivery mode skipped it (what its fixed
    // header said): the model answers a call NoMemory, as for a message it runs out of memory routing,
    // and `peer` is read on.
    virtual void peer_message_skipped(PeerId peer, const SkippedMessage& message) = 0;
    // The delivery mode had no memory for a message on its way to `recipient` that the model never saw
    // (kernel mode: one a bridge read from the kernel for its unix client), and gave it up: counted as a
    // dropped message of `recipient` and logged with the bus's other shortages. Allocates nothing.
    virtual void message_given_up(PeerId recipient) noexcept = 0;
    // `peer`'s connection ended or broke; `reason` is for the log.
    virtual void peer_failed(PeerId peer, std::string_view reason) = 0;
    // The delivery mode ends `peer`'s connection for what it did (failed authentication, timed out, sent
    // bytes that are not D-Bus): as peer_failed, and the model logs the refusal with who the peer is.
    virtual void peer_refused(PeerId peer, std::string_view reason) = 0;
    // The bus could not read from or write to `peer`'s socket (ENOMEM, ENOBUFS and the like: the bus's
    // side failed, the peer did not hang up): as peer_failed, and the model logs it as a warning naming
    // the peer, since nothing the peer did explains it.
    virtual void peer_lost(PeerId peer, std::string_view reason) { peer_failed(peer, reason); }
    // Whether `peer` may be read from now: false while the bus holds too much of its messages.
    [[nodiscard]] virtual bool may_read(PeerId peer) const = 0;
    // Whether `peer` has said Hello. Until it has, it is incomplete, as in dbus-daemon: auth_timeout
    // (counted from the connection) closes it and max_incomplete_connections counts it.
    [[nodiscard]] virtual bool registered(PeerId peer) const = 0;
    // Kernel mode: the kernel dropped `count` broadcast copies for `peer`, whose receive queue was full
    // (holding `queued` when the mode asked); the model counts them as dropped messages and logs the
    // episode, as it does for broker mode's full queues.
    virtual void copies_dropped(PeerId peer, std::uint64_t count, QueueLoad queued) = 0;
    // Kernel mode: whether the model gives `peer` a copy of `message`, which went between two other peers
    // without passing through it (the kernel copied it, unchecked, for an eavesdropper): a rule of
    // `peer`'s matches, policy lets it receive the message (eavesdropping, where it is addressed to
    // someone else), and it takes the message's fds; as for the copies the model makes itself. A refusal
    // is shown to monitors. May throw std::bad_alloc.
    [[nodiscard]] virtual bool gives_copy(PeerId /*peer*/, const Message& /*message*/) { return false; }

protected:
    ~DeliveryEvents() = default;
};

class Delivery {
public:
    virtual ~Delivery() = default;

    // New settings (startup and every reload). Either in force whole, or, when it throws std::bad_alloc,
    // not at all: the settings before stay.
    virtual void configure(const ConnectionSettings& settings) = 0;

    // What is queued for `peer` and not yet handed over.
    [[nodiscard]] virtual QueueLoad queued(PeerId peer) const = 0;
    // Whether `peer` agreed to receive file descriptors.
    [[nodiscard]] virtual bool passes_fds(PeerId peer) const = 0;
    // Why `message`'s fds cannot reach `peer`, which takes fds (passes_fds), over its transport; none when
    // they can. In kernel mode a native client cannot be given a socket: AF_BUS carries none
    // (docs/kernel.md, "No sockets over AF_BUS").
    [[nodiscard]] virtual std::optional<std::string> cannot_carry(PeerId /*peer*/,
                                                                  const Message& /*message*/) const {
        return std::nullopt;
    }
    // Queues one message (shared with every other recipient) for `peer`; it leaves at the next flush().
    // Returns what is queued for `peer` now.
    virtual QueueLoad deliver(PeerId peer, std::shared_ptr<const Message> message) = 0;
    // The same for a copy of a message that is not `peer`'s (a monitor's, an eavesdropper's): kernel mode
    // keeps such copies out of the kernel's reply tracking.
    virtual QueueLoad deliver_copy(PeerId peer, std::shared_ptr<const Message> message) {
        return deliver(peer, std::move(message));
    }
    // Hands over what was queued since the last flush (once per turn of the event loop). May report
    // failed peers through DeliveryEvents::peer_failed.
    virtual void flush() = 0;
    // The model has let `peer` go: write what can still be written, then close. No events for it follow.
    virtual void detach(PeerId peer) = 0;

    // Changes of the model, for a mode that mirrors them. Broker mode ignores them.
    //
    // The model has made each change when it tells of it, and cannot undo it then: these never throw. A
    // mode that cannot follow (out of memory, or the kernel refused) must not stay out of step with the
    // model: it ends the peer concerned (DeliveryEvents::peer_lost, from its next flush(), outside the
    // model's change). The one exception is a new match rule, which the model takes back: see
    // match_added.
    virtual void unique_name_assigned(PeerId /*peer*/, std::string_view /*unique_name*/) noexcept {}
    // A well-known name changes owner. The model reports a new owner after it forwarded the messages
    // that waited for the name (activation), so that a mode moving the name's address lets nothing
    // sent to the address overtake them.
    virtual void name_owner_changed(const NameChange& /*change*/) noexcept {}
    // Why a mode could not take `rule`, if it could not: the model then removes the rule again and
    // answers the AddMatch with that error (the client knows, rather than missing signals).
    // NotSupported: a rule the mode cannot honour for this peer (kernel mode: eavesdropping on AF_BUS).
    enum class Refusal { NoMemory, LimitsExceeded, NotSupported, Failed };
    [[nodiscard]] virtual std::optional<Refusal> match_added(PeerId /*peer*/, const MatchRule& /*rule*/) noexcept {
        return std::nullopt;
    }
    virtual void match_removed(PeerId /*peer*/, const MatchRule& /*rule*/) noexcept {}
    // `peer` became a monitor with these rules (none: everything): it has no names and no match rules
    // any more.
    virtual void became_monitor(PeerId /*peer*/, const std::vector<MatchRule>& /*rules*/) noexcept {}
    // The policy rules that apply to `peer` (null: none), at authentication and after every reload (which
    // configure() announced first, with the new policy).
    virtual void peer_policy_assigned(PeerId /*peer*/, const policy::ConnectionChains* /*chains*/) noexcept {}
    // A reload's policies in two steps, so that the change takes no memory: every peer's chains are
    // staged first, before configure() (may throw std::bad_alloc; the bus then drops what was staged and
    // the reload fails whole), and peer_policy_assigned() then takes what was staged for the peer.
    virtual void stage_peer_policy(PeerId /*peer*/, const policy::ConnectionChains* /*chains*/) {}
    virtual void drop_staged_policies() noexcept {}
    // The well-known names `peer` owns or is queued for changed (what send and receive rules about names
    // look at). Reported before the name changes owner (name_owner_changed).
    virtual void peer_names_changed(PeerId /*peer*/, const std::vector<std::string>& /*names*/) noexcept {}
};

}  // namespace afbus::daemon
