// Peer: one connection as the bus model sees it — who it is (the kernel's credentials, the uid it
// authenticated as, the policy that applies to it), how far it has come, and what it has cost. How its
// bytes move is the delivery mode's business (delivery.hpp); a Peer holds no socket.
//
// Its state moves one way:  Authenticating → Unregistered → Registered → (Monitor) → Closing
// and only PeerTable moves it, so that the table's counts (incomplete connections, connections per
// user) are kept as the states change instead of being counted by scanning every peer.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "afbus/unix_socket.hpp"
#include "flow_control.hpp"
#include "name_registry.hpp"
#include "policy_engine.hpp"

namespace afbus::daemon {

// What a connection has held at most, and what it lost: Debug.Stats's per-connection figures.
struct PeerStats {
    std::size_t peak_incoming_bytes = 0, peak_incoming_fds = 0;
    std::size_t peak_outgoing_bytes = 0, peak_outgoing_fds = 0;
    std::size_t peak_match_rules = 0, peak_bus_names = 0;
    std::uint64_t dropped_messages = 0;  // not delivered to this peer: its outgoing queue was full
};

class Peer {
public:
    enum class State : std::uint8_t {
        Authenticating,  // the SASL conversation runs; nothing else is read
        Unregistered,    // authenticated; only Hello is answered
        Registered,      // has its unique name
        Monitor,         // BecomeMonitor: receives copies, may not send, owns no names
        Closing,         // disconnected; kept only until the current event has finished with it
    };

    Peer(PeerId id, PeerCredentials credentials) : id_(id), credentials_(std::move(credentials)) {}
    Peer(const Peer&) = delete;
    Peer& operator=(const Peer&) = delete;

    [[nodiscard]] PeerId id() const noexcept { return id_; }
    [[nodiscard]] State state() const noexcept { return state_; }
    [[nodiscard]] bool authenticating() const noexcept { return state_ == State::Authenticating; }
    [[nodiscard]] bool registered() const noexcept { return state_ == State::Registered; }
    [[nodiscard]] bool monitor() const noexcept { return state_ == State::Monitor; }
    [[nodiscard]] bool closing() const noexcept { return state_ == State::Closing; }

    // ":1.N" from Hello on (kept once a monitor or closing, for the log); empty before.
    [[nodiscard]] const std::string& unique_name() const noexcept { return unique_name_; }
    // As the kernel reported them at connect time (TCP: uid set from DBUS_COOKIE_SHA1 instead).
    [[nodiscard]] const PeerCredentials& credentials() const noexcept { return credentials_; }
    // As authenticated; none for an anonymous connection (and before authentication).
    [[nodiscard]] const std::optional<uid_t>& uid() const noexcept { return uid_; }
    // The policy chains for this connection; null when the bus has no policy (unit tests).
    [[nodiscard]] const policy::ConnectionChains* policy() const noexcept { return policy_.get(); }
    void set_policy(std::shared_ptr<const policy::ConnectionChains> chains) { policy_ = std::move(chains); }

    // The bytes and fds of this peer's messages the bus still holds (flow_control.hpp).
    [[nodiscard]] const std::shared_ptr<IncomingLoad>& incoming() const noexcept { return incoming_; }
    PeerStats& stats() noexcept { return stats_; }
    [[nodiscard]] const PeerStats& stats() const noexcept { return stats_; }

    // "uid=1000 pid=42", or "uid=(anonymous) pid=42": how logs and errors name the connection's owner.
    [[nodiscard]] std::string describe_owner() const;
    // The unique name (or "(unregistered)") and its owner, ":1.5 (uid=1000 pid=42)": how logs name the
    // connection.
    [[nodiscard]] std::string log_name() const;

    // What the log reports once per episode rather than once per message (bus.cpp): messages for this
    // peer being dropped because its queue is full, and this peer not being read from because the bus
    // holds too much of its messages.
    struct Episodes {
        bool dropping = false;
        std::uint64_t dropped_before = 0;  // dropped_messages when the current episode began
        std::chrono::steady_clock::time_point last_drop;
        bool throttled = false;
    };
    Episodes& episodes() noexcept { return episodes_; }

private:
    friend class PeerTable;

    PeerId id_;
    State state_ = State::Authenticating;
    std::string unique_name_;
    PeerCredentials credentials_;
    std::optional<uid_t> uid_;
    std::shared_ptr<const policy::ConnectionChains> policy_;
    std::shared_ptr<IncomingLoad> incoming_ = std::make_shared<IncomingLoad>();
    PeerStats stats_;
    Episodes episodes_;
};

}  // namespace afbus::daemon
