// Bus: what the bus itself sends (replies, errors, signals, monitor copies), and the narrow interfaces
// it offers the driver (DriverContext) and activation (ActivationHost).
#include <algorithm>

#include "bus.hpp"
#include "log.hpp"
#include "name_signals.hpp"

namespace afbus::daemon {

std::shared_ptr<const Message> Bus::build_bus_message(MessageBuilder builder) { return make_bus_message(builder); }

std::shared_ptr<const Message> Bus::make_bus_message(MessageBuilder& builder) {
    builder.sender(kDriverName);
    // As dbus-daemon (libdbus marks every reply, error and signal it creates so): nothing answers these.
    if (builder.type() != MessageType::MethodCall) builder.no_reply_expected();
    // The message's own memory first: MessageBuilder::build() takes the builder's contents only once the
    // header is made, so out of memory the builder is still whole and can be built again.
    auto shared = std::make_shared<Message>();
    auto m = builder.build(next_serial_++);
    if (next_serial_ == 0) next_serial_ = 1;
    if (!m) {
        log_warning("bus message could not be built: %s", std::string(to_string(m.error())).c_str());
        return nullptr;
    }
    *shared = std::move(*m);
    return shared;
}

void Bus::send_from_driver(Peer& to, MessageBuilder builder) { send_from_driver_keeping(to, builder); }

void Bus::send_answer(Peer& to, MessageBuilder& answer) {
    // The answer is owed (the call has changed the bus): it must go out. Out of memory, the answer is
    // still whole (nothing was delivered), and is sent again with the emergency reserve given back.
    with_reserve([&] { send_from_driver_keeping(to, answer); });
}

void Bus::send_from_driver_keeping(Peer& to, MessageBuilder& builder) {
    auto shared = make_bus_message(builder);
    if (!shared) return;
    const PeerId id = to.id();
    if (!to.unique_name().empty()) {
        if (const PolicyVerdict verdict = check(nullptr, &to, *shared, shared->reply_serial().has_value(), false);
            !verdict.allowed()) {
            // Monitors see it even when the recipient's receive rules refuse it, which drops it silently;
            // as dbus-daemon, they also see the error the bus would have answered itself with.
            copy_to_monitors(shared, std::nullopt, id);
            show_refusal_to_monitors(nullptr, *shared, verdict, std::nullopt);
            return;
        }
    }
    // Unlike signals, the bus's replies, errors and unicast signals reach no eavesdropper (dbus-daemon).
    // Nor are they held back by a full queue: a peer that cannot take the bus's answers could not learn
    // why its calls fail. Delivered first, then shown to monitors (best effort), so that a delivery that
    // fails for want of memory has changed nothing and can be tried again.
    deliver(to, shared);
    copy_to_monitors(shared, std::nullopt, id);
}

void Bus::reply_error(Peer& to, const Message& call, const Error& error) {
    send_from_driver(to, MessageBuilder::error(to.unique_name(), call.serial(), error.name, error.message));
}

void Bus::emit_driver_signal(MessageBuilder builder) {
    auto shared = build_bus_message(std::move(builder));
    if (!shared) return;
    copy_to_monitors(shared, std::nullopt, std::nullopt);
    broadcast_to_matches(shared, std::nullopt, std::nullopt);
}

void Bus::copy_to_monitors(const std::shared_ptr<const Message>& message, std::optional<PeerId> sender,
                           std::optional<PeerId> addressed) {
    if (monitors_.empty()) return;
    std::vector<PeerId> wanting;
    try {
        monitors_.recipients(*message, sender, addressed, [this](PeerId p, std::string_view n) { return is_named_by(p, n); },
                             wanting);
    } catch (const std::bad_alloc&) {
        note_memory_shortage();  // monitors miss this one, as when their queues are full
        return;
    }
    for (PeerId id : wanting) {
        if (Peer* monitor = peers_.find(id)) offer_best_effort(*monitor, message, "monitored message", true);
    }
}

void Bus::show_to_monitors(const Message& call, const Peer& sender) {
    if (monitors_.empty()) return;
    best_effort([&] {
        auto stitched = call.with_sender(sender.unique_name());
        if (!stitched) return;
        copy_to_monitors(std::make_shared<const Message>(std::move(*stitched)), sender.id(), std::nullopt);
    });
}

void Bus::show_refusal_to_monitors(const Peer* sender, const Message& message, const PolicyVerdict& verdict,
                                   std::optional<PeerId> addressed) {
    if (!verdict.rejected() || monitors_.empty()) return;
    auto error = build_bus_message(MessageBuilder::error(sender ? std::string_view(sender->unique_name()) : kDriverName,
                                                         message.serial(), verdict.error.name, verdict.error.message));
    if (error) copy_to_monitors(error, std::nullopt, addressed);
}

// Announcements follow a change already made: each is best effort (out of memory, that one is lost).
void Bus::announce(const std::string& name, std::optional<PeerId> old_owner, std::optional<PeerId> new_owner) {
    // A closing peer is not found: it is not told what it lost.
    if (Peer* old_peer = old_owner ? peers_.find(*old_owner) : nullptr)
        best_effort([&] { send_from_driver(*old_peer, name_lost(old_peer->unique_name(), name)); });
    best_effort([&] {
        emit_driver_signal(name_owner_changed(name, old_owner ? peers_.unique_name_of(*old_owner) : std::string(),
                                              new_owner ? peers_.unique_name_of(*new_owner) : std::string()));
    });
    if (Peer* new_peer = new_owner ? peers_.find(*new_owner) : nullptr)
        best_effort([&] { send_from_driver(*new_peer, name_acquired(new_peer->unique_name(), name)); });
}

void Bus::apply_name_changes(const std::vector<NameChange>& changes) {
    for (const NameChange& c : changes) {
        const bool acquired = c.new_owner && peers_.find(*c.new_owner);
        if (!acquired && delivery_) delivery_->name_owner_changed(c);
        announce(c.name, c.old_owner, c.new_owner);
        if (!acquired) continue;
        // Messages that waited for the name's activation go to it now (before the RequestName reply, as
        // in dbus-daemon), and before the delivery mode lets messages reach the new owner directly.
        best_effort([&] { activation_->name_acquired(c.name); });
        if (delivery_) delivery_->name_owner_changed(c);
    }
}

void Bus::become_monitor(Peer& peer, std::vector<MatchRule> rules, std::vector<NameChange> room) {
    const PeerId id = peer.id();
    // Its memory was taken before the answer (the monitors' list, the names given up): nothing below
    // allocates but the announcements, which are best effort.
    std::vector<NameChange> released = std::move(room);
    names_.release_all(id, released);
    ++changes_;
    apply_name_changes(released);
    matches_.remove_all(id);
    announce(peer.unique_name(), id, std::nullopt);
    // A monitor may not send, so the calls it owed will never be answered: their callers get NoReply
    // now, as dbus-daemon expires them at once, rather than at reply_timeout (or never). Its own calls
    // are forgotten: whether it gets their replies no longer matters.
    const auto orphaned = replies_.forget(id);
    peers_.make_monitor(peer);
    if (delivery_) delivery_->became_monitor(id, rules);
    monitors_.add(id, std::move(rules));
    answer_no_reply(orphaned, "Message did not receive a reply (timeout by message bus)");
}

void Bus::note_peaks(Peer& peer) {
    PeerStats& stats = peer.stats();
    stats.peak_match_rules = std::max(stats.peak_match_rules, matches_.count(peer.id()));
    stats.peak_bus_names = std::max(stats.peak_bus_names, names_.count_for(peer.id()));
    peak_match_rules_ = std::max(peak_match_rules_, matches_.total());
    peak_bus_names_ = std::max(peak_bus_names_, names_.owned());
}

// --- DriverContext ---

Peer* Bus::owner_of(std::string_view name) { return find_owner(name); }

Peer* Bus::find_owner(std::string_view name) const {
    if (name.starts_with(':')) return peers_.find_unique(name);
    const auto owner = names_.owner(name);
    return owner ? peers_.find(*owner) : nullptr;
}

NameRegistry::Result Bus::request_name(Peer& peer, const std::string& name, std::uint32_t flags) {
    auto result = names_.request(name, peer.id(), flags);
    ++changes_;
    report_names_of(peer.id(), result.changes);
    apply_name_changes(result.changes);
    return result;
}

NameRegistry::Result Bus::release_name(Peer& peer, const std::string& name) {
    auto result = names_.release(name, peer.id());
    ++changes_;
    report_names_of(peer.id(), result.changes);
    apply_name_changes(result.changes);
    return result;
}

void Bus::report_names_of(PeerId acting, const std::vector<NameChange>& changes) {
    if (!delivery_) return;
    // The acting peer, and an owner it replaced (queued behind it, or out); a queued peer that gets
    // the name already had it among its names.
    delivery_->peer_names_changed(acting, names_.names_of(acting));
    for (const NameChange& c : changes)
        if (c.old_owner && *c.old_owner != acting && peers_.find(*c.old_owner))
            delivery_->peer_names_changed(*c.old_owner, names_.names_of(*c.old_owner));
}

Expected<void, Error> Bus::add_match(Peer& peer, MatchRule rule) {
    // The delivery mode hears of it after the registry has it (whole or not at all: match_registry.cpp).
    matches_.add(peer.id(), MatchRule(rule));
    ++changes_;
    const auto refused = delivery_ ? delivery_->match_added(peer.id(), rule) : std::nullopt;
    if (!refused) return {};
    // Kernel mode could not install the rule's record: taken back (removing allocates nothing), so that
    // the caller is told instead of missing the signals it asked for.
    matches_.remove(peer.id(), rule);
    if (*refused == Delivery::Refusal::LimitsExceeded) {
        return Unexpected(make_error(error_names::kLimitsExceeded, "Connection \"" + peer.unique_name() +
                                                                        "\" has as many match rules as the kernel takes"));
    }
    if (*refused == Delivery::Refusal::NoMemory)
        return Unexpected(make_error(error_names::kNoMemory, "Not enough memory to add the match rule"));
    if (*refused == Delivery::Refusal::NotSupported) {
        return Unexpected(
            make_error(error_names::kNotSupported,
                       "Eavesdropping is not available on an AF_BUS connection, where clients send "
                       "each other messages through the kernel: connect to the bus's unix socket"));
    }
    return Unexpected(make_error(error_names::kFailed, "The bus could not install the match rule"));
}

bool Bus::remove_match(Peer& peer, const MatchRule& rule) {
    if (!matches_.remove(peer.id(), rule)) return false;
    ++changes_;
    if (delivery_) delivery_->match_removed(peer.id(), rule);
    return true;
}

const std::string& Bus::register_unique_name(Peer& peer) {
    const std::string& name = peers_.register_unique_name(peer);
    ++changes_;
    return name;
}

bool Bus::allows_own(const Peer& peer, std::string_view name) const { return !peer.policy() || peer.policy()->can_own(name); }

BusCounters Bus::counters() const {
    return BusCounters{next_serial_ - 1, peak_match_rules_, peak_bus_names_, dropped_messages_};
}

// --- ActivationHost ---

bool Bus::has_owner(std::string_view name) const { return find_owner(name) != nullptr; }

std::optional<std::string> Bus::owner_name(std::string_view name) const {
    const Peer* peer = find_owner(name);
    return peer ? std::optional<std::string>(peer->unique_name()) : std::nullopt;
}

PolicyVerdict Bus::check_send_to_service(PeerId requester, const Message& message) {
    const Peer* sender = peers_.find(requester);
    return sender ? check(sender, nullptr, message, false, false) : PolicyVerdict::allow();
}

void Bus::answer(PeerId to, MessageBuilder builder) {
    if (Peer* peer = peers_.find(to)) send_from_driver(*peer, std::move(builder));
}

void Bus::answer_error(PeerId to, const Message& call, const Error& error) {
    if (error.name.empty()) return;  // a refusal that policy says to drop silently
    // Owed, and also sent from the loop's timers and process ends (activation), where a std::bad_alloc
    // would end the bus: an owed effort, as NoReply is.
    if (Peer* peer = peers_.find(to)) owed_effort([&] { reply_error(*peer, call, error); });
}

void Bus::show_bus_message(const std::shared_ptr<const Message>& message, std::string_view name) {
    const Peer* owner = owner_of(name);
    copy_to_monitors(message, std::nullopt, owner ? std::optional<PeerId>(owner->id()) : std::nullopt);
}

bool Bus::resume(std::optional<PeerId> sender, const std::shared_ptr<const Message>& message, std::string_view name) {
    Peer* target = owner_of(name);
    if (!target) return false;
    if (sender) {
        // A sender that left while its message waited: nothing to deliver, but the name has an owner.
        if (Peer* from = peers_.find(*sender)) route_to(*from, message, *target);
        return true;
    }
    const Message& m = *message;
    if (!target->unique_name().empty() && !check(nullptr, target, m, false, false).allowed()) return true;
    if (offer(*target, message, "message from the bus")) broadcast_to_matches(message, std::nullopt, target->id());
    return true;
}

}  // namespace afbus::daemon
