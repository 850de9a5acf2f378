#include "bus.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <type_traits>

#include "afbus/error.hpp"
#include "log.hpp"
#include "name_signals.hpp"
#include "room.hpp"

namespace afbus::daemon {
namespace {

// Why a monitor that sends anything is disconnected (dbus-daemon does the same).
constexpr std::string_view kMonitorSent = "a monitor sent a message (monitors may only listen)";

std::map<std::string, std::string> own_environment() {
    std::map<std::string, std::string> out;
    for (char** entry = environ; entry && *entry; ++entry) {
        const std::string_view assignment(*entry);
        const auto equals = assignment.find('=');
        if (equals == std::string_view::npos) continue;
        out.emplace(assignment.substr(0, equals), assignment.substr(equals + 1));
    }
    return out;
}

std::string new_guid() {
    std::random_device random;
    char out[33];
    for (int i = 0; i < 32; i += 8) std::snprintf(out + i, 9, "%08x", random());
    return std::string(out, 32);
}

}  // namespace

Bus::Bus(EventLoop& loop, BusSettings settings)
    : loop_(loop), settings_(std::move(settings)), guid_(new_guid()), flow_(settings_.limits),
      replies_(loop, [this](PeerId caller, std::uint32_t serial) {
          // Owed, and run from a timer, where a std::bad_alloc would end the bus: an owed effort.
          if (Peer* peer = peers_.find(caller)) {
              owed_effort([&] {
                  send_from_driver(*peer, MessageBuilder::error(peer->unique_name(), serial, error_names::kNoReply,
                                                                "Message did not receive a reply (timeout by message bus)"));
              });
          }
      }),
      activation_(std::make_unique<Activation>(loop, static_cast<ActivationHost&>(*this), own_environment())) {
    // Everything one turn of the loop produced leaves together; then nothing refers to the peers that
    // left during it any more.
    loop_.set_after_iteration([this] {
        if (delivery_) delivery_->flush();
        graveyard_.clear();
        if (!emergency_reserve_) {
            try {
                emergency_reserve_ = std::make_unique_for_overwrite<std::byte[]>(kEmergencyReserve);
            } catch (const std::bad_alloc&) {
                // Still short: taken again after a later turn.
            }
        }
    });
    const ActivationSettings activation = activation_settings(settings_);
    activation_->configure(activation, Activation::load(activation));
}

Bus::~Bus() { loop_.set_after_iteration({}); }

ConnectionSettings Bus::connection_settings() const {
    return connection_settings(settings_);
}

ConnectionSettings Bus::connection_settings(const BusSettings& settings) const {
    ConnectionSettings c;
    c.guid = guid_;
    c.mechanisms = settings.mechanisms;
    c.allow_anonymous = settings.allow_anonymous;
    c.auth_timeout_ms = settings.limits.auth_timeout;
    c.pending_fd_timeout_ms = settings.limits.pending_fd_timeout;
    c.max_replies_per_connection = settings.limits.max_replies_per_connection;
    c.reply_timeout_ms = settings.limits.reply_timeout;
    c.max_message_size = settings.limits.max_message_size;
    c.max_outgoing_bytes = settings.limits.max_outgoing_bytes;
    c.policy = settings.policy;
    return c;
}

void Bus::set_address(std::string address) {
    settings_.address = address;
    activation_->set_address(std::move(address));
}

ActivationSettings Bus::activation_settings(const BusSettings& settings) {
    ActivationSettings a;
    a.bus_type = settings.type;
    a.address = settings.address;
    a.directories = settings.service_directories;
    a.servicehelper = settings.servicehelper;
    a.service_fd_limit = settings.service_fd_limit;
    a.systemd_activation = settings.systemd_activation;
    a.service_start_timeout_ms = settings.limits.service_start_timeout;
    a.max_pending_service_starts = settings.limits.max_pending_service_starts;
    return a;
}

void Bus::set_settings(BusSettings settings) {
    if (settings.address.empty()) settings.address = settings_.address;
    // Whole or not at all: everything that takes memory is made first, changing nothing (the delivery
    // mode's part last, itself whole or nothing), so that a reload short of memory leaves the settings
    // in force as they were, for every connection; then the change takes none.
    // A reload also rereads the user database (dbus-daemon flushes its cache then; a cache, refilled).
    accounts_.flush();
    std::vector<std::pair<PeerId, std::shared_ptr<const policy::ConnectionChains>>> chains;
    chains.reserve(peers_.size());
    const ConsoleCheck console = console_check(settings);
    peers_.for_each([&](Peer& peer) {
        std::shared_ptr<const policy::ConnectionChains> assigned;
        if (!peer.authenticating() && settings.policy) {
            // The identity was good enough at connect time; a user removed since keeps the default chains.
            const auto identity = policy_identity(peer.uid(), peer.credentials().groups, accounts_, console);
            assigned = settings.policy->chains_for(identity ? identity->principal : policy::Principal{});
        }
        chains.emplace_back(peer.id(), std::move(assigned));
    });
    ActivationSettings activation = activation_settings(settings);
    auto services = Activation::load(activation);
    if (delivery_) {
        try {
            for (const auto& [id, assigned] : chains)
                if (const Peer* peer = peers_.find(id); peer && !peer->authenticating())
                    delivery_->stage_peer_policy(id, assigned.get());
            delivery_->configure(connection_settings(settings));
        } catch (const std::bad_alloc&) {
            delivery_->drop_staged_policies();
            throw;
        }
    }

    static_assert(std::is_nothrow_move_assignable_v<BusSettings>, "the change below must take no memory");
    settings_ = std::move(settings);
    flow_.set_limits(settings_.limits);
    activation_->configure(std::move(activation), std::move(services));
    for (auto& [id, assigned] : chains) {
        Peer* peer = peers_.find(id);
        if (!peer) continue;
        peer->set_policy(std::move(assigned));
        if (delivery_ && !peer->authenticating()) delivery_->peer_policy_assigned(id, peer->policy());
    }
    // As dbus-daemon: after every reload, whether or not the set of services changed. Best effort, as
    // every signal of the bus's.
    try {
        emit_driver_signal(
            MessageBuilder::signal(kDriverPath, kDriverInterface, "ActivatableServicesChanged"));
    } catch (const std::bad_alloc&) {
        note_memory_shortage();
    }
}

ConsoleCheck Bus::console_check() const { return console_check(settings_); }

ConsoleCheck Bus::console_check(const BusSettings& settings) {
    return settings.policy && settings.policy->depends_on_console() ? ConsoleCheck::Ask : ConsoleCheck::Skip;
}

uid_t Bus::bus_uid() {
    // Read at the first connection, not at construction: main() may still switch to the configured
    // <user> after building the bus, and it does so before the loop serves anyone.
    if (!bus_uid_) bus_uid_ = ::geteuid();
    return *bus_uid_;
}

Expected<void, std::string> Bus::reload_config() {
    if (!reload_config_) return {};
    return reload_config_();
}

// --- DeliveryEvents ---

bool Bus::may_accept() const {
    // Registered connections are limited at Hello (driver.cpp); here those that have not said Hello yet
    // (dbus-daemon's incomplete connections: authenticating, or authenticated and silent).
    return peers_.incomplete() < static_cast<std::size_t>(settings_.limits.max_incomplete_connections);
}

std::optional<PeerId> Bus::peer_connected(PeerCredentials credentials) {
    if (!may_accept()) {
        log_warning("refusing a connection from uid=%u pid=%d: max_incomplete_connections reached",
                    static_cast<unsigned>(credentials.uid), static_cast<int>(credentials.pid));
        return std::nullopt;
    }
    // Room for the peer in the graveyard, taken now: leaving must not need memory (disconnect()).
    make_room(graveyard_, peers_.size() + 1);
    return peers_.add(std::move(credentials)).id();
}

Expected<void, std::string> Bus::peer_authenticated(PeerId id, std::optional<uid_t> uid) {
    Peer* peer = peers_.find(id);
    if (!peer) return Unexpected(std::string("disconnected"));
    std::shared_ptr<const policy::ConnectionChains> chains;
    if (settings_.policy) {
        std::string refused;
        const auto identity = policy_identity(uid, peer->credentials().groups, accounts_, console_check());
        if (!identity) {
            refused = "uid " + std::to_string(*uid) + " has no user account";
        } else if (uid && !settings_.policy->allows_connect(*uid, identity->account_groups, bus_uid())) {
            // dbus-daemon asks policy only about authenticated users; anonymous ones got in through
            // <allow_anonymous/> already.
            refused = "uid " + std::to_string(*uid) + " is not allowed to connect by policy";
        }
        if (!refused.empty()) {
            refuse(id, refused);
            return Unexpected(std::move(refused));
        }
        chains = settings_.policy->chains_for(identity->principal);
    }
    peers_.authenticated(*peer, uid, std::move(chains));
    if (delivery_) delivery_->peer_policy_assigned(id, peer->policy());
    return {};
}

bool Bus::may_read(PeerId id) const {
    Peer* peer = peers_.find(id);
    if (!peer) return true;
    if (flow_.over_incoming(*peer->incoming())) return false;
    peer->episodes().throttled = false;  // the episode note_throttling() logged is over
    return true;
}

bool Bus::registered(PeerId id) const {
    const Peer* peer = peers_.find(id);
    return peer && (peer->registered() || peer->monitor());
}

void Bus::peer_failed(PeerId id, std::string_view reason) { disconnect(id, reason); }

void Bus::peer_refused(PeerId id, std::string_view reason) { refuse(id, reason); }

void Bus::peer_lost(PeerId id, std::string_view reason) { disconnect(id, reason, Ending::Lost); }

void Bus::peer_sent(PeerId id, Message message) {
    // Out of memory part-way, a message costs only itself (issue 17). Until it changes the bus (it is
    // delivered to its destination, or the driver changes a name, a rule or a registration), nothing it
    // did stays behind, and its sender is answered NoMemory if it expects an answer; copies after that
    // (to subscribers, eavesdroppers, monitors) are best effort. The answer to a driver call that has
    // changed the bus is owed: send_answer() tries it again with the emergency reserve given back. Only
    // a failure that leaves no truthful answer possible ends the sender's connection, which releases
    // whatever the call had taken.
    const std::uint32_t serial = message.serial();
    const bool answer_owed = message.type() == MessageType::MethodCall && message.expects_reply();
    const std::uint64_t changes_before = changes_;
    try {
        dispatch(id, std::move(message));
    } catch (const std::bad_alloc&) {
        out_of_memory(id, serial, answer_owed, changes_ != changes_before);
    }
}

void Bus::peer_message_skipped(PeerId id, const SkippedMessage& message) {
    Peer* sender = peers_.find(id);
    if (!sender) return;
    // As if it had been read (dispatch): a monitor may send nothing. Before Hello a peer has no name to
    // be answered at, and its first message must be the Hello.
    if (sender->monitor()) return refuse(id, kMonitorSent);
    if (!sender->registered()) return disconnect(id, "the bus had no memory for its first message", Ending::Lost);
    const bool answer_owed = message.type == MessageType::MethodCall && !(message.flags & message_flags::kNoReplyExpected);
    // Logged once per episode with the other shortages (note_memory_shortage), naming the sender.
    std::string what;
    try {
        what = "a " + std::to_string(message.length) + "-byte message from " + sender->log_name() + " was skipped";
    } catch (const std::bad_alloc&) {
        what.clear();  // the line says less
    }
    out_of_memory(id, message.serial, answer_owed, false, what);
}

void Bus::message_given_up(PeerId recipient) noexcept {
    note_memory_shortage();
    if (Peer* peer = peers_.find(recipient)) count_drops(*peer, 1, EpisodeEnd::AfterAQuietSecond);
}

void Bus::out_of_memory(PeerId id, std::uint32_t serial, bool answer_owed, bool changed, std::string_view what) {
    note_memory_shortage(what);
    Peer* sender = peers_.find(id);
    if (!sender) return;
    if (!changed) {
        if (!answer_owed) return;
        try {
            send_from_driver(*sender, MessageBuilder::error(sender->unique_name(), serial, error_names::kNoMemory,
                                                            "The message bus is out of memory"));
            return;
        } catch (const std::bad_alloc&) {
            // Not even the error fits: the sender would wait for ever; it learns by losing the connection.
        }
    }
    disconnect(id, changed ? "the bus ran out of memory after its call had changed the bus" : "the bus ran out of memory to answer it",
               Ending::Lost);
}

void Bus::note_memory_shortage(std::string_view what) {
    ++memory_failures_;
    const Clock::time_point now = Clock::now();
    // One line per episode: an episode ends after a second without failures.
    if (now - last_memory_failure_ >= std::chrono::seconds(1)) {
        const std::string_view line = what.empty() ? std::string_view("a message or a copy of one was given up") : what;
        log_warning("out of memory: %.*s (%llu so far)", static_cast<int>(line.size()), line.data(),
                    static_cast<unsigned long long>(memory_failures_));
    }
    last_memory_failure_ = now;
}

void Bus::dispatch(PeerId id, Message message) {
    Peer* sender = peers_.find(id);
    if (!sender) return;
    if (const char* limit = flow_.message_exceeds(message))
        return refuse(id, std::string("sent a message beyond ") + limit + "=" + std::to_string(flow_.limit_value(limit)));
    if (sender->monitor()) return refuse(id, kMonitorSent);
    if (message.destination() == kDriverName) return dispatch_to_driver(*sender, std::move(message));
    // As dbus-daemon: before Hello, anything for anyone but the bus ends the connection.
    if (!sender->registered()) return refuse(id, "sent a message other than Hello without being registered");
    route(*sender, std::move(message));
}

void Bus::disconnect(PeerId id, std::string_view reason, Ending ending) {
    // A peer must be able to leave whatever memory is left. Every table lets go of it without
    // allocating, except the list of names it gave up: that is made first, before anything changes, and
    // if even that fails the emergency reserve is given back to the allocator and it is tried again.
    // What leaving causes for others (NameOwnerChanged, NameAcquired, NoReply) is best effort.
    Peer* peer = peers_.find(id);
    if (!peer) return;
    best_effort([&] { log_ending(*peer, reason, ending); });
    // Its names first: release_all() allocates only before it changes anything. (A second failure is
    // thrown on only if the bus cannot spare a few bytes at all.)
    std::vector<NameChange> released;
    with_reserve([&] { names_.release_all(id, released); });
    const bool was_registered = peer->registered(), was_monitor = peer->monitor();
    peers_.close(*peer);
    // Best effort: what is queued for it (e.g. the last error reply) may still go out.
    if (delivery_) delivery_->detach(id);
    matches_.remove_all(id);
    // Callers waiting for this peer get NoReply; its own outstanding calls are forgotten.
    const auto orphaned = replies_.forget(id);
    if (was_monitor) monitors_.remove(id);
    ++changes_;
    // (Announced while the table still knows its unique name, for NameOwnerChanged's old owner.)
    if (was_registered) {
        best_effort([&] { apply_name_changes(released); });
        best_effort([&] { announce(peer->unique_name(), id, std::nullopt); });
    }
    answer_no_reply(orphaned, "Message recipient disconnected from message bus without replying");
    // The Peer may still be on the call stack (inside its own dispatch): freed after this turn of the loop.
    graveyard_.push_back(peers_.remove(id));  // room was made at connect
}

void Bus::log_ending(const Peer& peer, std::string_view reason, Ending ending) {
    if (ending == Ending::Refused) {
        log_warning("connection %s refused: %.*s", peer.log_name().c_str(), static_cast<int>(reason.size()), reason.data());
    } else if (ending == Ending::Lost) {
        log_warning("connection %s lost: %.*s", peer.log_name().c_str(), static_cast<int>(reason.size()), reason.data());
    } else {
        log_info("connection %s closed: %.*s", peer.log_name().c_str(), static_cast<int>(reason.size()), reason.data());
    }
}

void Bus::answer_no_reply(const ExpectedReplies::OwedCalls& calls, const char* why) {
    for (const ExpectedReplies::Owed& call : calls) {
        if (Peer* caller = peers_.find(call.caller)) {
            // Owed: without it the caller waits for ever.
            owed_effort([&] {
                send_from_driver(*caller, MessageBuilder::error(caller->unique_name(), call.serial, error_names::kNoReply, why));
            });
        }
    }
}

// --- routing ---

void Bus::dispatch_to_driver(Peer& sender, Message message) {
    const PeerId id = sender.id();
    const bool registered = sender.registered();
    std::shared_ptr<const Message> stitched;
    const auto stitch = [&]() -> bool {
        if (!stitched) {
            if (auto m = message.with_sender(sender.unique_name())) stitched = std::make_shared<const Message>(std::move(*m));
        }
        return stitched != nullptr;
    };
    if (registered) {
        // Every call to the bus but Hello is subject to the sender's send rules.
        const PolicyVerdict verdict = check(&sender, nullptr, message, false, false);
        // The one signal the bus takes: systemd reporting that it could not start a unit. From anyone but
        // the owner of org.freedesktop.systemd1 it is ignored, so that nobody can fail others' starts.
        // As in dbus-daemon, the errors it causes reach monitors before the signal itself.
        if (verdict.allowed() && message.type() == MessageType::Signal &&
            message.interface() == "org.freedesktop.systemd1.Activator" && message.member() == "ActivationFailure" &&
            owner_of(kSystemdName) == &sender) {
            activation_->systemd_failed(message);
        }
        // Monitors see every call to the bus, refused or not.
        if (!monitors_.empty() && stitch()) copy_to_monitors(stitched, id, std::nullopt);
        if (!verdict.allowed()) {
            if (verdict.rejected()) reply_error(sender, message, verdict.error);
            return;
        }
    }
    DriverOutcome outcome = Driver::handle(*this, sender, message);
    Peer* peer = peers_.find(id);
    if (!peer) return;
    // Monitors see Hello with the name it just gave, before its reply (dbus-daemon's order).
    if (outcome.after == AfterReply::AnnounceUniqueName) show_to_monitors(message, *peer);
    // Becoming a monitor happens after the answer and must not fail then: its memory is taken first.
    std::vector<NameChange> monitor_room;
    if (outcome.after == AfterReply::BecomeMonitor) {
        monitors_.make_room_for_one();
        monitor_room.reserve(names_.count_for(id));
    }
    if (outcome.reply) {
        send_answer(*peer, *outcome.reply);
        ++changes_;  // answered: a failure from here must not answer it again
    }
    switch (outcome.after) {
        case AfterReply::Nothing: break;
        case AfterReply::AnnounceUniqueName:
            if (delivery_) delivery_->unique_name_assigned(id, peer->unique_name());
            announce(peer->unique_name(), std::nullopt, id);
            break;
        case AfterReply::BecomeMonitor: become_monitor(*peer, std::move(outcome.monitor_rules), std::move(monitor_room)); break;
        case AfterReply::NotePeaks: note_peaks(*peer); break;
    }
    // Eavesdroppers see it once the bus has handled it successfully (so an AddMatch counts for itself),
    // as in dbus-daemon; never a refused or failed one.
    if (outcome.succeeded && registered && matches_.total() != 0 && peers_.find(id) && stitch())
        broadcast_to_matches(stitched, id, std::nullopt);
}

void Bus::route(Peer& sender, Message message) {
    const PeerId sender_id = sender.id();
    const std::string destination(message.destination());
    // A sender is charged for what it sends to one recipient (calls, unicast signals): sending more to a
    // recipient that does not read is its own doing, and throttling it bounds what the bus holds. Not for
    // replies (the caller asked for them) or broadcasts (the subscribers did): a reader that does not read
    // those fills its own queue, bounded by its own max_outgoing_bytes (and a broadcast's one buffer is
    // shared by every queue), and must not stall the service or the emitter for everyone else.
    const bool charged = !destination.empty() &&
                         (message.type() == MessageType::MethodCall || message.type() == MessageType::Signal);
    auto stitched = std::move(message).with_sender(sender.unique_name());
    if (!stitched) return refuse(sender_id, "message cannot be forwarded: " + std::string(to_string(stitched.error())));
    auto shared = charged ? FlowControl::charge(sender.incoming(), sender.stats(), std::move(*stitched))
                          : std::make_shared<const Message>(std::move(*stitched));
    if (charged) note_throttling(sender);
    const Message& m = *shared;
    Peer* target = destination.empty() ? nullptr : owner_of(destination);
    if (!target && !destination.empty()) {
        // As dbus-daemon: nobody else sees a message for a name that has no owner, and the sender is
        // told why whatever the message's type or flags. Monitors see the message after what its
        // activation caused (an ActivationRequest), then the error.
        std::optional<Error> failed;
        if (m.flags() & message_flags::kNoAutoStart) {
            failed = make_error(error_names::kNameHasNoOwner, "Name \"" + destination + "\" does not exist");
        } else {
            // Once activation has queued the message, it is not undone: a failure after that must not
            // answer it (activation_took_effect() counts the change). Before, nothing changed, and the
            // sender gets NoMemory.
            if (auto started = activation_->activate(destination, Activation::Waiter{sender_id, shared, true}); !started)
                failed = std::move(started.error());
        }
        copy_to_monitors(shared, sender_id, std::nullopt);
        if (failed && !failed->name.empty()) {
            if (Peer* still = peers_.find(sender_id)) reply_error(*still, m, *failed);
        }
        return;
    }
    copy_to_monitors(shared, sender_id, target ? std::optional<PeerId>(target->id()) : std::nullopt);
    if (!target) return broadcast_to_matches(shared, sender_id, std::nullopt);
    route_to(sender, shared, *target);
}

void Bus::route_to(Peer& sender, const std::shared_ptr<const Message>& shared, Peer& target) {
    const PeerId sender_id = sender.id(), target_id = target.id();
    const Message& m = *shared;
    // Only replies that were asked for pass (dbus-daemon's requested_reply).
    const bool is_reply = m.type() == MessageType::MethodReturn || m.type() == MessageType::Error;
    if (is_reply && !replies_.expected(target_id, *m.reply_serial(), sender_id)) {
        log_debug("dropping an unexpected reply from %s to %s", sender.unique_name().c_str(), target.unique_name().c_str());
        return;
    }
    if (const PolicyVerdict verdict = check(&sender, &target, m, is_reply, false); !verdict.allowed()) {
        // As dbus-daemon: the sender learns why, whatever the message's type or flags.
        if (verdict.rejected()) reply_error(sender, m, verdict.error);
        return;
    }
    if (!m.fds().empty() && !delivery_->passes_fds(target_id)) {
        reply_error(sender, m, make_error(error_names::kNotSupported,
                                          "Tried to send message with Unix file descriptors to a client that doesn't support that."));
        return;
    }
    if (!m.fds().empty()) {
        if (auto why = delivery_->cannot_carry(target_id, m)) {
            if (!is_reply) {
                reply_error(sender, m, make_error(error_names::kNotSupported, *why));
                return;
            }
            // A reply that cannot reach its caller: the caller is answered instead, as for a reply that
            // never comes, and the call is settled.
            replies_.settle(target_id, *m.reply_serial(), sender_id);
            send_from_driver(target, MessageBuilder::error(target.unique_name(), *m.reply_serial(),
                                                           error_names::kNotSupported, *why));
            return;
        }
    }
    if (const char* limit = outgoing_limit_exceeded(target, m)) {
        note_drop(target, limit, "message");
        if (m.expects_reply()) {
            reply_error(sender, m, make_error(error_names::kLimitsExceeded,
                                              "The maximum number of bytes queued for " + std::string(m.destination()) +
                                                  " has been reached"));
        }
        return;
    }
    if (m.expects_reply()) {
        const auto max = settings_.limits.max_replies_per_connection;
        if (replies_.outstanding(sender_id) >= static_cast<std::size_t>(max)) {
            reply_error(sender, m, make_error(error_names::kLimitsExceeded,
                                              "The maximum number of pending replies for \"" + sender.unique_name() +
                                                  "\" has been reached (max_replies_per_connection=" + std::to_string(max) + ")"));
            return;
        }
        replies_.expect(sender_id, m.serial(), target_id, settings_.limits.reply_timeout);
        try {
            deliver(target, shared);
        } catch (const std::bad_alloc&) {
            replies_.settle(sender_id, m.serial(), target_id);  // undone: the caller is answered NoMemory
            throw;
        }
    } else {
        deliver(target, shared);
    }
    // Delivered: from here on the message has happened. A reply settles its call only now, so that a
    // reply memory kept from its caller leaves the call owed (NoReply when the callee leaves).
    ++changes_;
    if (is_reply) replies_.settle(target_id, *m.reply_serial(), sender_id);
    broadcast_to_matches(shared, sender_id, target_id);
}

void Bus::broadcast_to_matches(const std::shared_ptr<const Message>& shared, std::optional<PeerId> sender,
                               std::optional<PeerId> addressed) {
    if (matches_.total() == 0) return;
    const Message& message = *shared;
    recipients_.clear();
    try {
        matches_.recipients(message, sender, addressed, [this](PeerId p, std::string_view n) { return is_named_by(p, n); },
                            recipients_);
    } catch (const std::bad_alloc&) {
        // Out of memory to find the subscribers: nobody gets a copy (best effort, as every copy here).
        note_memory_shortage();
        return;
    }
    const Peer* from = sender ? peers_.find(*sender) : nullptr;
    if (sender && !from) return;
    // Policy checks may log and offers may count drops, but nothing here disconnects a peer or changes
    // the recipients, so the scratch list stays valid.
    for (PeerId id : recipients_) {
        Peer* peer = peers_.find(id);
        if (!peer || !peer->registered()) continue;
        const PolicyVerdict verdict = copy_verdict(from, sender, *peer, message, addressed);
        if (!verdict.allowed()) {
            // The sender is not told (the others still got it), but monitors see the error it would get.
            show_refusal_to_monitors(from, message, verdict, sender);
            continue;
        }
        // (An eavesdropper's copy of a message addressed to someone else.)
        offer_best_effort(*peer, shared, "broadcast", !message.destination().empty() && addressed != id);
    }
}

PolicyVerdict Bus::copy_verdict(const Peer* from, std::optional<PeerId> sender, const Peer& peer,
                                const Message& message, std::optional<PeerId> addressed) const {
    const PeerId id = peer.id();
    // A copy of a message addressed to someone else is eavesdropping; broadcasts are not.
    const bool eavesdropping = !message.destination().empty() && addressed != id;
    // Replies from the bus are always requested; a peer's reply reaches a subscriber only when eavesdropping.
    const bool requested = !sender && !eavesdropping && message.reply_serial().has_value();
    PolicyVerdict verdict = check(from, &peer, message, requested, eavesdropping);
    if (verdict.allowed() && !message.fds().empty() && !delivery_->passes_fds(id)) {
        verdict = PolicyVerdict{
            PolicyVerdict::Kind::Reject,
            make_error(error_names::kNotSupported, "broadcast cannot be delivered to " + peer.unique_name() +
                                                       " because it does not support receiving Unix fds")};
    } else if (verdict.allowed() && !message.fds().empty()) {
        if (auto why = delivery_->cannot_carry(id, message))
            verdict =
                PolicyVerdict{PolicyVerdict::Kind::Reject, make_error(error_names::kNotSupported, *why)};
    }
    return verdict;
}

bool Bus::gives_copy(PeerId id, const Message& message) {
    const Peer* peer = peers_.find(id);
    if (!peer || !peer->registered() || matches_.total() == 0) return false;
    // Between two peers: the kernel checked its SENDER (a sender that has left since gets no copy).
    const Peer* from = find_owner(message.sender());
    if (!from) return false;
    std::optional<PeerId> addressed;
    if (!message.destination().empty()) {
        if (const Peer* to = find_owner(message.destination())) addressed = to->id();
    }
    const auto is_named = [this](PeerId p, std::string_view n) { return is_named_by(p, n); };
    if (!matches_.peer_matches(id, message, from->id(), addressed, is_named)) return false;
    const PolicyVerdict verdict = copy_verdict(from, from->id(), *peer, message, addressed);
    if (!verdict.allowed()) {
        show_refusal_to_monitors(from, message, verdict, from->id());
        return false;
    }
    return true;
}

bool Bus::offer_best_effort(Peer& peer, const std::shared_ptr<const Message>& message, const char* what,
                            bool copy) {
    try {
        return offer(peer, message, what, copy);
    } catch (const std::bad_alloc&) {
        // A copy nobody waits for an answer to is lost as if the peer's queue were full.
        note_memory_shortage();
        count_drops(peer, 1, EpisodeEnd::WhenTheQueueDrains);
        return false;
    }
}

const char* Bus::outgoing_limit_exceeded(const Peer& peer, const Message& message) const {
    return flow_.outgoing_exceeded(delivery_->queued(peer.id()), message);
}

bool Bus::offer(Peer& peer, const std::shared_ptr<const Message>& message, const char* what, bool copy) {
    if (!message->fds().empty() &&
        (!delivery_->passes_fds(peer.id()) || delivery_->cannot_carry(peer.id(), *message)))
        return false;
    if (const char* limit = outgoing_limit_exceeded(peer, *message)) {
        note_drop(peer, limit, what);
        return false;
    }
    deliver(peer, message, copy);
    return true;
}

void Bus::deliver(Peer& peer, std::shared_ptr<const Message> message, bool copy) {
    const QueueLoad queued = copy ? delivery_->deliver_copy(peer.id(), std::move(message))
                                  : delivery_->deliver(peer.id(), std::move(message));
    PeerStats& stats = peer.stats();
    stats.peak_outgoing_bytes = std::max(stats.peak_outgoing_bytes, queued.bytes);
    stats.peak_outgoing_fds = std::max(stats.peak_outgoing_fds, queued.fds);
    // A dropping episode ends once the peer's queue has drained (this message went into an empty one)
    // and nothing was dropped for a second: a queue that fills and drains within one burst is one episode.
    Peer::Episodes& episodes = peer.episodes();
    if (episodes.dropping && queued.messages == 1 && Clock::now() - episodes.last_drop >= std::chrono::seconds(1)) {
        episodes.dropping = false;
        log_warning("connection %s reads again; %llu messages for it were dropped while its queue was full",
                    peer.log_name().c_str(), static_cast<unsigned long long>(stats.dropped_messages - episodes.dropped_before));
    }
}

bool Bus::count_drops(Peer& peer, std::uint64_t count, EpisodeEnd end) {
    const std::uint64_t before = peer.stats().dropped_messages;
    peer.stats().dropped_messages += count;
    dropped_messages_ += count;
    Peer::Episodes& episodes = peer.episodes();
    const Clock::time_point now = Clock::now();
    const bool quiet = end == EpisodeEnd::AfterAQuietSecond && now - episodes.last_drop >= std::chrono::seconds(1);
    episodes.last_drop = now;
    if (episodes.dropping && !quiet) return false;  // logged when the episode began
    episodes.dropping = true;
    episodes.dropped_before = before;
    return true;
}

void Bus::note_drop(Peer& peer, const char* limit, const char* what) {
    if (!count_drops(peer, 1, EpisodeEnd::WhenTheQueueDrains)) return;
    const QueueLoad queued = delivery_->queued(peer.id());
    log_warning("outgoing queue of %s is full (%s=%lld; %zu messages, %zu bytes, %zu fds queued): messages for it "
                "are dropped until it reads, starting with a %s",
                peer.log_name().c_str(), limit, static_cast<long long>(flow_.limit_value(limit)), queued.messages,
                queued.bytes, queued.fds, what);
}

void Bus::copies_dropped(PeerId id, std::uint64_t count, QueueLoad queued) {
    Peer* peer = peers_.find(id);
    if (!peer || count == 0) return;
    // The kernel tells of drops, not of the queue draining: an episode ends after a second without
    // drops, and the next one is logged again.
    if (!count_drops(*peer, count, EpisodeEnd::AfterAQuietSecond)) return;
    log_warning("receive queue of %s is full in the kernel (%zu messages, %zu bytes queued; max_outgoing_bytes=%lld): "
                "%llu broadcasts for it were dropped, and more are until it reads",
                peer->log_name().c_str(), queued.messages, queued.bytes,
                static_cast<long long>(flow_.limit_value("max_outgoing_bytes")), static_cast<unsigned long long>(count));
}

void Bus::note_throttling(Peer& sender) {
    Peer::Episodes& episodes = sender.episodes();
    if (episodes.throttled) return;
    const IncomingLoad& load = *sender.incoming();
    const char* limit = flow_.incoming_exceeded(load);
    if (!limit) return;
    episodes.throttled = true;  // until may_read() lets it be read again
    log_warning("connection %s throttled: the bus holds %zu messages, %zu bytes and %zu fds it sent (%s=%lld); it "
                "is not read from until its recipients take them",
                sender.log_name().c_str(), load.messages, load.bytes, load.fds, limit,
                static_cast<long long>(flow_.limit_value(limit)));
}

PolicyVerdict Bus::check(const Peer* sender, const Peer* recipient, const Message& message, bool requested_reply,
                         bool eavesdropping) const {
    if (!settings_.policy) return PolicyVerdict::allow();
    return check_policy(names_, PolicyQuestion{sender, recipient, &message, requested_reply, eavesdropping});
}

bool Bus::is_named_by(PeerId peer, std::string_view name) const {
    if (name.starts_with(':')) {
        const Peer* p = peers_.find_unique(name);
        return p && p->id() == peer;
    }
    return names_.owner(name) == peer;
}

}  // namespace afbus::daemon
