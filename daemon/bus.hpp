// Bus: the bus model. It owns the peers, the name and match registries, the expected replies, the
// monitors and the policy, routes every message a peer sends (destination lookup or the match index,
// the policy check per recipient, sender stitching, one shared buffer for every recipient) and answers
// org.freedesktop.DBus through the driver. It moves no bytes itself: a delivery mode does, behind the
// seam of delivery.hpp, and the model does not know which one runs.
// Single-threaded: everything runs from the EventLoop.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "activation.hpp"
#include "afbus/error.hpp"
#include "afbus/message.hpp"
#include "bus_settings.hpp"
#include "delivery.hpp"
#include "driver.hpp"
#include "event_loop.hpp"
#include "expected_replies.hpp"
#include "flow_control.hpp"
#include "limits.hpp"
#include "match_registry.hpp"
#include "monitors.hpp"
#include "name_registry.hpp"
#include "peer_table.hpp"
#include "policy_check.hpp"
#include "policy_engine.hpp"
#include "principal.hpp"

namespace afbus::daemon {

class Bus final : public DeliveryEvents, private DriverContext, private ActivationHost {
public:
    Bus(EventLoop& loop, BusSettings settings);
    ~Bus();
    Bus(const Bus&) = delete;
    Bus& operator=(const Bus&) = delete;

    // The delivery mode that moves this bus's messages; built with this bus as its DeliveryEvents and
    // connection_settings(). Returns it, for the caller to add its listeners.
    template <class Mode, class... Args>
    Mode& use_delivery(Args&&... args) {
        auto mode = std::make_unique<Mode>(loop_, static_cast<DeliveryEvents&>(*this), connection_settings(),
                                           std::forward<Args>(args)...);
        Mode& ref = *mode;
        delivery_ = std::move(mode);
        return ref;
    }

    [[nodiscard]] const std::string& guid() const noexcept override { return guid_; }
    // The address clients connect to (known once the listeners are up), given to activated services.
    void set_address(std::string address);
    // New limits, mechanisms and policy (a config reload); every connection's policy is recomputed, the
    // service directories are read again and ActivatableServicesChanged is emitted. Whole or not at all:
    // when it throws std::bad_alloc, the settings in force stay, for every connection.
    void set_settings(BusSettings settings);
    // Called for org.freedesktop.DBus.ReloadConfig; returns why reloading failed.
    void set_reload_handler(std::function<Expected<void, std::string>()> handler) { reload_config_ = std::move(handler); }
    [[nodiscard]] const BusSettings& settings() const noexcept override { return settings_; }
    Expected<void, std::string> reload_config() override;

    // DeliveryEvents
    [[nodiscard]] bool may_accept() const override;
    std::optional<PeerId> peer_connected(PeerCredentials credentials) override;
    Expected<void, std::string> peer_authenticated(PeerId peer, std::optional<uid_t> uid) override;
    void peer_sent(PeerId peer, Message message) override;
    void peer_failed(PeerId peer, std::string_view reason) override;
    void peer_refused(PeerId peer, std::string_view reason) override;
    void peer_lost(PeerId peer, std::string_view reason) override;
    [[nodiscard]] bool may_read(PeerId peer) const override;
    [[nodiscard]] bool registered(PeerId peer) const override;
    void peer_message_skipped(PeerId peer, const SkippedMessage& message) override;
    void message_given_up(PeerId recipient) noexcept override;
    void copies_dropped(PeerId peer, std::uint64_t count, QueueLoad queued) override;
    [[nodiscard]] bool gives_copy(PeerId peer, const Message& message) override;

private:
    [[nodiscard]] ConnectionSettings connection_settings() const;
    [[nodiscard]] ConnectionSettings connection_settings(const BusSettings& settings) const;
    [[nodiscard]] static ActivationSettings activation_settings(const BusSettings& settings);

    // --- routing (bus.cpp) ---
    void dispatch(PeerId sender, Message message);
    // A message from `id` failed for want of memory; `changed`: after it had changed the bus.
    void out_of_memory(PeerId id, std::uint32_t serial, bool answer_owed, bool changed, std::string_view what = {});
    // Counts a message or copy given up for want of memory; logs the first of an episode.
    // `what` names what was given up, for the log line (else "a message or a copy of one").
    void note_memory_shortage(std::string_view what = {});
    void dispatch_to_driver(Peer& sender, Message message);
    void route(Peer& sender, Message message);
    // The part of routing after the destination's owner is known.
    void route_to(Peer& sender, const std::shared_ptr<const Message>& message, Peer& target);
    void broadcast_to_matches(const std::shared_ptr<const Message>& message, std::optional<PeerId> sender,
                              std::optional<PeerId> addressed);
    // Whether `peer` may have a copy of `message` (from `sender`, addressed to `addressed`) that one of its
    // match rules asked for: policy (eavesdropping where it is addressed to someone else), and fds only
    // where it takes them and can be given them.
    [[nodiscard]] PolicyVerdict copy_verdict(const Peer* from, std::optional<PeerId> sender, const Peer& peer,
                                             const Message& message, std::optional<PeerId> addressed) const;
    // Queues `message` for `peer` if it can take it: fds only to peers that agreed to them, the queue
    // within the outgoing limits (else the drop is logged and counted as a dropped `what`).
    // `copy`: `message` is not `peer`'s own (a monitor's or an eavesdropper's copy: Delivery::deliver_copy).
    bool offer(Peer& peer, const std::shared_ptr<const Message>& message, const char* what,
               bool copy = false);
    // offer() for a copy the message does not depend on (a subscriber's, a monitor's): out of memory,
    // that copy is dropped and counted, and the message goes on.
    bool offer_best_effort(Peer& peer, const std::shared_ptr<const Message>& message, const char* what,
                           bool copy = false);
    void deliver(Peer& peer, std::shared_ptr<const Message> message, bool copy = false);
    // How an episode of drops for a peer ends: in deliver(), when its queue in the daemon has drained; or,
    // for a queue the daemon cannot see (the kernel's), after a second without drops.
    enum class EpisodeEnd : std::uint8_t { WhenTheQueueDrains, AfterAQuietSecond };
    // Counts `count` messages dropped for `peer`; true when they begin an episode, which the caller logs.
    bool count_drops(Peer& peer, std::uint64_t count, EpisodeEnd end);
    // Counts a message dropped for `peer` at `limit`; logs the first of an episode (it ends in deliver()).
    void note_drop(Peer& peer, const char* limit, const char* what);
    // Logs, once per episode, that `sender` has reached an incoming limit and is not read from for now.
    void note_throttling(Peer& sender);
    // Which outgoing limit `message` would exceed at `peer`, if any.
    [[nodiscard]] const char* outgoing_limit_exceeded(const Peer& peer, const Message& message) const;
    [[nodiscard]] PolicyVerdict check(const Peer* sender, const Peer* recipient, const Message& message,
                                      bool requested_reply, bool eavesdropping) const;
    // Ends `id`'s connection. A refusal (the bus ends it for what the peer did) and a loss (the bus
    // could not read or write its socket) are logged as warnings naming the peer; a connection that
    // ended (the peer hung up) only in the verbose log.
    enum class Ending : std::uint8_t { Ended, Refused, Lost };
    void disconnect(PeerId id, std::string_view reason, Ending ending = Ending::Ended);
    void refuse(PeerId id, std::string_view reason) { disconnect(id, reason, Ending::Refused); }
    static void log_ending(const Peer& peer, std::string_view reason, Ending ending);

    // --- what the bus itself sends (bus_messages.cpp) ---
    // A message from the bus itself, with its sender and next serial; null (and logged) if it cannot be built.
    std::shared_ptr<const Message> build_bus_message(MessageBuilder builder) override;
    // make_bus_message(): build_bus_message() leaving `builder` whole if it runs out of memory.
    std::shared_ptr<const Message> make_bus_message(MessageBuilder& builder);
    // Replies, errors and unicast signals of the bus to one peer.
    void send_from_driver(Peer& to, MessageBuilder builder);
    // The same, with `builder` still whole if memory runs out (nothing is delivered then).
    void send_from_driver_keeping(Peer& to, MessageBuilder& builder);
    // The driver's answer to a call that may have changed the bus, sent with_reserve().
    void send_answer(Peer& to, MessageBuilder& answer);
    void emit_driver_signal(MessageBuilder builder);
    void reply_error(Peer& to, const Message& call, const Error& error);
    // `sender` and `addressed` are the peers behind the message's sender and destination (none: the bus).
    void copy_to_monitors(const std::shared_ptr<const Message>& message, std::optional<PeerId> sender,
                          std::optional<PeerId> addressed);
    // A copy of `call` from `sender`, with its sender field set, for the monitors only.
    void show_to_monitors(const Message& call, const Peer& sender);
    // What a refused message's sender would have been answered with, for the monitors only.
    void show_refusal_to_monitors(const Peer* sender, const Message& message, const PolicyVerdict& verdict,
                                  std::optional<PeerId> addressed);
    // NameLost to the old owner, NameOwnerChanged to all, NameAcquired to the new owner (dbus-daemon's order).
    void announce(const std::string& name, std::optional<PeerId> old_owner, std::optional<PeerId> new_owner);
    // `room` has room for the names the peer gives up (made before its answer: nothing here may fail).
    void become_monitor(Peer& peer, std::vector<MatchRule> rules, std::vector<NameChange> room);
    // Answers each (caller, serial) still waiting for a peer that will never reply with NoReply, `why`.
    void answer_no_reply(const ExpectedReplies::OwedCalls& calls, const char* why);
    // Runs what the step at hand does not depend on (notifications to others); out of memory, it is
    // given up, counted and logged, and the step goes on.
    template <class Action>
    void best_effort(Action&& action) {
        try {
            action();
        } catch (const std::bad_alloc&) {
            note_memory_shortage();
        }
    }
    // Runs `action`, which must change nothing when it fails; out of memory, the emergency reserve is
    // given back to the allocator and it runs once more, and a second failure is thrown on.
    template <class Action>
    void with_reserve(Action&& action) {
        try {
            action();
            return;
        } catch (const std::bad_alloc&) {
            note_memory_shortage();
            emergency_reserve_.reset();
        }
        action();
    }
    // For what somebody waits for (a NoReply): with_reserve(), then given up (counted, logged).
    template <class Action>
    void owed_effort(Action&& action) {
        best_effort([&] { with_reserve(action); });
    }

    // --- DriverContext ---
    PeerTable& peers() override { return peers_; }
    const NameRegistry& names() const override { return names_; }
    const MatchRegistry& matches() const override { return matches_; }
    Activation& activation() override { return *activation_; }
    AccountCache& accounts() override { return accounts_; }
    Peer* owner_of(std::string_view name) override;
    const std::string& register_unique_name(Peer& peer) override;
    void changing() override { ++changes_; }
    // Tells the delivery mode the names of `acting` and of the owners `changes` took a name from.
    void report_names_of(PeerId acting, const std::vector<NameChange>& changes);
    void apply_name_changes(const std::vector<NameChange>& changes) override;
    NameRegistry::Result request_name(Peer& peer, const std::string& name, std::uint32_t flags) override;
    NameRegistry::Result release_name(Peer& peer, const std::string& name) override;
    Expected<void, Error> add_match(Peer& peer, MatchRule rule) override;
    bool remove_match(Peer& peer, const MatchRule& rule) override;
    [[nodiscard]] BusCounters counters() const override;
    [[nodiscard]] QueueLoad queued(PeerId peer) const override { return delivery_->queued(peer); }
    [[nodiscard]] bool allows_own(const Peer& peer, std::string_view name) const override;

    // --- ActivationHost ---
    [[nodiscard]] std::string unique_name_of(PeerId id) const override { return peers_.unique_name_of(id); }
    [[nodiscard]] bool has_owner(std::string_view name) const override;
    [[nodiscard]] std::optional<std::string> owner_name(std::string_view name) const override;
    PolicyVerdict check_send_to_service(PeerId requester, const Message& message) override;
    void answer(PeerId to, MessageBuilder builder) override;
    void answer_error(PeerId to, const Message& call, const Error& error) override;
    bool resume(std::optional<PeerId> sender, const std::shared_ptr<const Message>& message, std::string_view name) override;
    void show_bus_message(const std::shared_ptr<const Message>& message, std::string_view name) override;
    void activation_took_effect() override { ++changes_; }

    [[nodiscard]] bool is_named_by(PeerId peer, std::string_view name) const;
    // The peer `name` (unique or well-known) stands for, or null: what owner_of, has_owner and
    // owner_name all answer from.
    [[nodiscard]] Peer* find_owner(std::string_view name) const;
    void note_peaks(Peer& peer);
    [[nodiscard]] ConsoleCheck console_check() const;
    [[nodiscard]] static ConsoleCheck console_check(const BusSettings& settings);
    // The user the bus runs as (dbus-daemon's "bus user", who may always connect).
    uid_t bus_uid();

    EventLoop& loop_;
    BusSettings settings_;
    std::string guid_;
    std::optional<uid_t> bus_uid_;
    std::unique_ptr<Delivery> delivery_;
    PeerTable peers_;
    NameRegistry names_;
    MatchRegistry matches_;
    Monitors monitors_;
    FlowControl flow_;
    ExpectedReplies replies_;
    std::unique_ptr<Activation> activation_;
    AccountCache accounts_;
    // Set by the daemon's main: rereads the configuration (ReloadConfig, SIGHUP).
    std::function<Expected<void, std::string>()> reload_config_;
    std::uint32_t next_serial_ = 1;
    std::vector<PeerId> recipients_;  // scratch space for broadcasts
    std::size_t peak_match_rules_ = 0, peak_bus_names_ = 0;
    std::uint64_t dropped_messages_ = 0;
    // Counts what messages changed in the bus (deliveries to their destination, the driver's changes),
    // so that peer_sent() knows whether a failed message had changed anything.
    std::uint64_t changes_ = 0;
    std::uint64_t memory_failures_ = 0;
    Clock::time_point last_memory_failure_{};
    // Disconnected peers, freed once no handler can still be using them (after the turn of the loop). Its
    // capacity always has room for every peer in peers_, made at connect, so that leaving allocates nothing.
    std::vector<std::unique_ptr<Peer>> graveyard_;
    // Given back to the allocator when a peer cannot even leave for want of memory (disconnect()), and
    // taken again after that turn of the loop. Never written, so never resident until then.
    static constexpr std::size_t kEmergencyReserve = 64 * 1024;
    std::unique_ptr<std::byte[]> emergency_reserve_ = std::make_unique_for_overwrite<std::byte[]>(kEmergencyReserve);
};

}  // namespace afbus::daemon
