// Bus: the broker-mode message bus. Owns the peers, the name registry, the match registry and the
// expected replies; routes every message a peer sends, and answers org.freedesktop.DBus (driver.cpp).
// Single-threaded: everything runs from the EventLoop.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "afbus/error.hpp"
#include "afbus/message.hpp"
#include "afbus/sasl.hpp"
#include "afbus/stream_transport.hpp"
#include "afbus/unix_socket.hpp"
#include "activation.hpp"
#include "event_loop.hpp"
#include "limits.hpp"
#include "match_registry.hpp"
#include "name_registry.hpp"
#include "policy_engine.hpp"
#include "principal.hpp"

namespace afbus::daemon {

inline constexpr std::string_view kDriverName = "org.freedesktop.DBus";
inline constexpr std::string_view kDriverPath = "/org/freedesktop/DBus";

// The bytes and fds of one peer's messages that the bus still holds (in other peers' queues, or waiting
// for an activation): dbus-daemon's "live" incoming messages, bounded by max_incoming_bytes and
// max_incoming_unix_fds.
struct IncomingLoad {
    std::size_t messages = 0, bytes = 0, fds = 0;
};

struct BusSettings {
    std::string type = "session";
    std::vector<SaslMechanism> mechanisms{SaslMechanism::External};
    bool allow_anonymous = false;
    bool systemd_activation = false;
    // The bus's address as printed (DBUS_STARTER_ADDRESS of activated services).
    std::string address;
    // Where .service files are looked for (resolved from the configuration), and the system bus's
    // setuid launch helper.
    std::vector<SearchDirectory> service_directories;
    std::optional<std::string> servicehelper;
    std::optional<rlimit> service_fd_limit;  // RLIMIT_NOFILE for activated services
    Limits limits;
    // The compiled <policy> rules. Null only for a bus built without a configuration (unit tests):
    // then nothing is checked.
    std::shared_ptr<policy::PolicyEngine> policy;
};

class Bus {
public:
    Bus(EventLoop& loop, BusSettings settings);
    ~Bus();
    Bus(const Bus&) = delete;
    Bus& operator=(const Bus&) = delete;

    // Accepts connections on `listener` (already listening) until the bus is destroyed.
    void add_listener(Fd listener);
    // Adopts one connected socket as a new, unauthenticated peer.
    void add_connection(Fd socket);

    [[nodiscard]] const std::string& guid() const noexcept { return guid_; }
    // The address clients connect to (known once the listeners are up), given to activated services.
    void set_address(std::string address);
    [[nodiscard]] std::size_t peer_count() const noexcept { return peers_.size(); }
    // New limits, mechanisms and policy (a config reload); every connection's policy is recomputed, the
    // service directories are read again and ActivatableServicesChanged is emitted.
    void set_settings(BusSettings settings);
    // Called for org.freedesktop.DBus.ReloadConfig; returns why reloading failed.
    void set_reload_handler(std::function<Expected<void, std::string>()> handler) { reload_config_ = std::move(handler); }
    [[nodiscard]] const BusSettings& settings() const noexcept { return settings_; }

    // --- The driver's view of the bus (driver.cpp answers org.freedesktop.DBus with these). ---

    struct Peer {
        PeerId id = 0;
        std::string unique_name;  // empty until Hello
        std::unique_ptr<StreamTransport> transport;
        std::unique_ptr<SaslServer> sasl;  // while authenticating
        PeerCredentials credentials;
        std::optional<uid_t> uid;  // as authenticated; none for an anonymous connection
        std::shared_ptr<const policy::ConnectionChains> policy;  // set once authenticated
        EventLoop::TimerId auth_timer = 0;
        std::uint32_t epoll_events = 0;
        bool closing = false;
        bool dirty = false;  // has output queued since the last flush_output()
        bool monitor = false;
        std::vector<MatchRule> monitor_rules;  // empty: everything
        std::shared_ptr<IncomingLoad> incoming = std::make_shared<IncomingLoad>();
        // Not read from while its messages held by the bus exceed the incoming limits.
        bool reading_paused = false;
        // Runs while fds sent with an incomplete message wait for the rest (pending_fd_timeout).
        EventLoop::TimerId pending_fds_timer = 0;
        // Debug.Stats
        std::size_t peak_incoming_bytes = 0, peak_incoming_fds = 0, peak_outgoing_bytes = 0, peak_outgoing_fds = 0;
        std::uint64_t dropped_messages = 0;  // not delivered to this peer: its outgoing queue was full
        std::size_t peak_match_rules = 0, peak_bus_names = 0;
    };

    // Messages the bus itself sends (driver replies, errors, signals), with the sender org.freedesktop.DBus.
    void send_from_driver(Peer& to, MessageBuilder builder);
    // A message from the bus itself, with its sender and next serial; null (and logged) if it cannot be built.
    std::shared_ptr<const Message> build_driver_message(MessageBuilder builder);
    // `sender` and `addressed` are the peers behind the message's sender and destination (none: the bus).
    void copy_to_monitors(const std::shared_ptr<const Message>& message, std::optional<PeerId> sender,
                          std::optional<PeerId> addressed);
    // Delivers a message that waited for its destination to be activated, as routing would have if the
    // name had been owned when it was sent: replies tracked, policy checked (a refusal goes back to the
    // sender), eavesdroppers served. `sender` none: a message of the bus itself. Monitors saw it already.
    void deliver_resumed(std::optional<PeerId> sender, const std::shared_ptr<const Message>& message, Peer& target);
    void reply_error(Peer& to, const Message& call, std::string_view name, std::string message);
    // A copy of `call` from `sender`, with its sender field set, for the monitors only.
    void show_to_monitors(const Message& call, const Peer& sender);
    // Whether policy lets `sender` send `message` to `recipient` and `recipient` receive it (null stands
    // for the bus driver on either side), as dbus-daemon's bus_context_check_security_policy. Returns the
    // error to answer with when it does not; an error with an empty name means drop silently.
    [[nodiscard]] std::optional<Error> policy_denies(const Peer* sender, const Peer* recipient, const Message& message,
                                                     bool requested_reply, bool eavesdropping) const;
    // Whether `peer` may own `name` under the configured policy.
    [[nodiscard]] bool policy_allows_own(const Peer& peer, std::string_view name) const;
    void emit_name_changes(const std::vector<NameChange>& changes);
    void emit_driver_signal(MessageBuilder builder);
    Peer* find_peer(PeerId id);
    Peer* find_peer_by_name(std::string_view name);  // unique or well-known
    [[nodiscard]] std::string unique_name_of(PeerId id) const;
    void register_unique_name(Peer& peer);
    // BecomeMonitor, after its reply has been queued: the peer loses its names and rules and from now on
    // receives a copy of every message the bus handles that matches `rules` (all of them if empty).
    void become_monitor(Peer& peer, std::vector<MatchRule> rules);
    [[nodiscard]] const std::vector<PeerId>& monitors() const noexcept { return monitors_; }
    [[nodiscard]] std::size_t incomplete_connections() const;
    [[nodiscard]] std::uint32_t last_serial() const noexcept { return next_driver_serial_ - 1; }
    [[nodiscard]] std::size_t peak_match_rules() const noexcept { return peak_match_rules_; }
    [[nodiscard]] std::size_t peak_bus_names() const noexcept { return peak_bus_names_; }
    [[nodiscard]] std::uint64_t dropped_messages() const noexcept { return dropped_messages_; }
    void note_peaks(Peer& peer);
    const std::map<PeerId, std::unique_ptr<Peer>>& peers() const noexcept { return peers_; }

    NameRegistry& names() noexcept { return names_; }
    MatchRegistry& matches() noexcept { return matches_; }
    const std::map<std::string, PeerId, std::less<>>& unique_names() const noexcept { return unique_names_; }
    Activation& activation() noexcept { return *activation_; }
    AccountCache& accounts() noexcept { return accounts_; }
    Expected<void, std::string> reload_config() {
        if (!reload_config_) return {};
        return reload_config_();
    }

private:
    struct PendingReply {
        PeerId caller;
        std::uint32_t serial;
        PeerId callee;
        EventLoop::TimerId timer = 0;
        friend auto operator<=>(const PendingReply& a, const PendingReply& b) {
            return std::tie(a.caller, a.serial, a.callee) <=> std::tie(b.caller, b.serial, b.callee);
        }
    };

    void on_listener_ready(int fd);
    void on_peer_io(PeerId id, std::uint32_t events);
    void authenticate(Peer& peer);
    void read_messages(Peer& peer, bool hung_up);
    void dispatch(Peer& sender, Message message);
    void route(Peer& sender, Message message);
    // The part of routing after the destination's owner is known.
    void route_to(Peer& sender, const std::shared_ptr<const Message>& message, Peer& target);
    void configure_activation();
    void broadcast_to_matches(const Message& message, std::optional<PeerId> sender, std::optional<PeerId> addressed,
                              std::shared_ptr<const Message> shared);
    void deliver(Peer& peer, std::shared_ptr<const Message> message);
    void update_watch(Peer& peer);
    void flush_output();
    // Whether `peer` can be given `message` now (fds only to peers that negotiated them; queue within
    // max_outgoing_bytes and max_outgoing_unix_fds, else logged and counted as a dropped `what`).
    [[nodiscard]] bool can_take(Peer& peer, const Message& message, const char* what);
    // Which outgoing limit `message` would exceed at `peer`, if any.
    [[nodiscard]] const char* outgoing_limit_exceeded(const Peer& peer, const Message& message) const;
    // A routed message, charged to its sender's IncomingLoad for as long as the bus holds it.
    std::shared_ptr<const Message> charged_to(Peer& sender, Message message);
    [[nodiscard]] bool over_incoming_limits(const Peer& peer) const;
    // After each loop iteration: peers paused by the incoming limits whose messages have drained.
    void resume_paused_readers();
    // Starts or stops `peer`'s pending_fd_timeout timer after a read.
    void watch_pending_fds(Peer& peer);
    void disconnect(PeerId id, std::string_view reason);

    [[nodiscard]] bool is_named_by(PeerId peer, std::string_view name) const;

    EventLoop& loop_;
    BusSettings settings_;
    std::string guid_;
    std::vector<Fd> listeners_;
    std::map<PeerId, std::unique_ptr<Peer>> peers_;
    std::map<std::string, PeerId, std::less<>> unique_names_;
    NameRegistry names_;
    MatchRegistry matches_;
    std::map<std::tuple<PeerId, std::uint32_t>, PendingReply> pending_replies_;  // by (caller, serial)
    std::unique_ptr<Activation> activation_;
    AccountCache accounts_;
    // Set by the daemon's main: rereads the configuration (ReloadConfig, SIGHUP).
    std::function<Expected<void, std::string>()> reload_config_;
    PeerId next_peer_id_ = 1;
    std::uint64_t next_unique_name_ = 0;
    std::uint32_t next_driver_serial_ = 1;
    std::vector<PeerId> recipients_;                 // scratch space for broadcast_to_matches
    std::vector<PeerId> dirty_;                      // peers with output queued in this loop iteration
    std::vector<PeerId> monitors_;
    std::size_t peak_match_rules_ = 0, peak_bus_names_ = 0;
    std::uint64_t dropped_messages_ = 0;
    std::vector<PeerId> paused_readers_;
    std::vector<std::unique_ptr<Peer>> graveyard_;  // disconnected peers, freed on the next event
};

}  // namespace afbus::daemon
