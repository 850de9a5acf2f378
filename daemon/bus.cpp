#include "bus.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "afbus/error.hpp"
#include "afbus/names.hpp"
#include "afbus/types.hpp"
#include "driver.hpp"
#include "log.hpp"
#include "principal.hpp"

namespace afbus::daemon {
namespace {


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
    : loop_(loop), settings_(std::move(settings)), guid_(new_guid()),
      activation_(std::make_unique<Activation>(loop, *this, own_environment())) {
    loop_.set_after_iteration([this] { flush_output(); });
    configure_activation();
}

void Bus::set_address(std::string address) {
    settings_.address = address;
    activation_->set_address(std::move(address));
}

void Bus::configure_activation() {
    ActivationSettings a;
    a.bus_type = settings_.type;
    a.address = settings_.address;
    a.directories = settings_.service_directories;
    a.servicehelper = settings_.servicehelper;
    a.service_fd_limit = settings_.service_fd_limit;
    a.systemd_activation = settings_.systemd_activation;
    a.service_start_timeout_ms = settings_.limits.service_start_timeout;
    a.max_pending_service_starts = settings_.limits.max_pending_service_starts;
    activation_->configure(std::move(a));
}

Bus::~Bus() {
    loop_.set_after_iteration({});
    for (const Fd& l : listeners_) loop_.unwatch(l.get());
    for (auto& [id, peer] : peers_) {
        if (peer->transport) loop_.unwatch(peer->transport->fd());
        if (peer->auth_timer) loop_.cancel_timer(peer->auth_timer);
        if (peer->pending_fds_timer) loop_.cancel_timer(peer->pending_fds_timer);
    }
    for (auto& [key, pending] : pending_replies_)
        if (pending.timer) loop_.cancel_timer(pending.timer);
}

void Bus::add_listener(Fd listener) {
    const int fd = listener.get();
    listeners_.push_back(std::move(listener));
    loop_.watch(fd, EPOLLIN, [this, fd](std::uint32_t) { on_listener_ready(fd); });
}

void Bus::on_listener_ready(int fd) {
    graveyard_.clear();
    for (const Fd& listener : listeners_) {
        if (listener.get() != fd) continue;
        for (;;) {
            auto socket = accept_connection(listener);
            if (!socket) {
                // EMFILE and friends: log and let the next readiness event retry.
                log_warning("accept failed: %s", std::strerror(socket.error()));
                return;
            }
            if (!socket->valid()) return;
            add_connection(std::move(*socket));
        }
    }
}

void Bus::add_connection(Fd socket) {
    const std::size_t incomplete = incomplete_connections();
    // Registered connections are limited at Hello (driver.cpp); here only those still authenticating.
    if (incomplete >= static_cast<std::size_t>(settings_.limits.max_incomplete_connections)) {
        log_warning("refusing a connection: max_incomplete_connections reached");
        return;  // closing the socket refuses it
    }
    auto credentials = peer_credentials(socket);
    if (!credentials) {
        log_warning("refusing a connection: no peer credentials: %s", std::strerror(credentials.error()));
        return;
    }
    auto peer = std::make_unique<Peer>();
    peer->id = next_peer_id_++;
    peer->credentials = std::move(*credentials);
    SaslServerConfig sasl;
    sasl.mechanisms = settings_.mechanisms;
    sasl.allow_anonymous = settings_.allow_anonymous;
    sasl.guid = guid_;
    // TCP peers have no kernel credentials: no EXTERNAL, no fd passing; DBUS_COOKIE_SHA1 says who they are.
    if (peer->credentials.from_kernel) sasl.peer_uid = peer->credentials.uid;
    sasl.unix_fd_possible = peer->credentials.from_kernel;
    sasl.cookie_sha1.emplace().server_uid = ::geteuid();  // offered only if listed in settings_.mechanisms
    peer->sasl = std::make_unique<SaslServer>(std::move(sasl));
    peer->transport = std::make_unique<StreamTransport>(std::move(socket));
    const PeerId id = peer->id;
    const int fd = peer->transport->fd();
    peer->epoll_events = EPOLLIN;
    if (!loop_.watch(fd, EPOLLIN, [this, id](std::uint32_t events) { on_peer_io(id, events); })) {
        log_warning("refusing a connection: epoll: %s", std::strerror(errno));
        return;
    }
    peer->auth_timer = loop_.add_timer(Clock::now() + std::chrono::milliseconds(settings_.limits.auth_timeout), [this, id] {
        if (Peer* p = find_peer(id); p && p->sasl) {
            p->auth_timer = 0;
            disconnect(id, "authentication timed out");
        }
    });
    peers_.emplace(id, std::move(peer));
}

Bus::Peer* Bus::find_peer(PeerId id) {
    auto it = peers_.find(id);
    return it == peers_.end() || it->second->closing ? nullptr : it->second.get();
}

Bus::Peer* Bus::find_peer_by_name(std::string_view name) {
    if (name.starts_with(':')) {
        auto it = unique_names_.find(name);
        return it == unique_names_.end() ? nullptr : find_peer(it->second);
    }
    auto owner = names_.owner(name);
    return owner ? find_peer(*owner) : nullptr;
}

bool Bus::is_named_by(PeerId peer, std::string_view name) const {
    if (name.starts_with(':')) {
        auto it = unique_names_.find(name);
        return it != unique_names_.end() && it->second == peer;
    }
    return names_.owner(name) == peer;
}

void Bus::on_peer_io(PeerId id, std::uint32_t events) {
    graveyard_.clear();
    Peer* peer = find_peer(id);
    if (!peer) return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (peer->sasl) authenticate(*peer);
        else read_messages(*peer, (events & (EPOLLHUP | EPOLLERR)) != 0);
    }
    peer = find_peer(id);
    if (!peer) return;
    if (events & EPOLLOUT) {
        auto flushed = peer->transport->flush();
        if (!flushed) return disconnect(id, describe(flushed.error()));
    }
    update_watch(*peer);
}

void Bus::authenticate(Peer& peer) {
    char buf[4096];
    const PeerId id = peer.id;
    for (;;) {
        const ssize_t n = ::recv(peer.transport->fd(), buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0) return disconnect(id, "closed during authentication");
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return;
            return disconnect(id, std::string("read failed during authentication: ") + std::strerror(errno));
        }
        const std::string_view input(buf, static_cast<std::size_t>(n));
        const std::size_t used = peer.sasl->feed(input);
        const std::string out = peer.sasl->take_output();
        if (!out.empty() && ::send(peer.transport->fd(), out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT) !=
                                static_cast<ssize_t>(out.size())) {
            // Authentication replies are a few dozen bytes to an empty socket buffer.
            return disconnect(id, "could not send an authentication reply");
        }
        if (peer.sasl->failed()) {
            return disconnect(id, "authentication failed: " + std::string(to_string(*peer.sasl->error())));
        }
        if (peer.sasl->authenticated()) {
            peer.uid = peer.sasl->authenticated_uid();
            if (!peer.credentials.from_kernel && peer.uid) peer.credentials.uid = *peer.uid;  // TCP: the proven uid
            if (settings_.policy) {
                const auto identity = policy_identity(peer.uid, peer.credentials.groups, accounts_);
                if (!identity) return disconnect(id, "uid " + std::to_string(*peer.uid) + " has no user account");
                // dbus-daemon asks policy only about authenticated users; anonymous ones got in through
                // <allow_anonymous/> already.
                if (peer.uid && !settings_.policy->allows_connect(*peer.uid, identity->account_groups, ::geteuid()))
                    return disconnect(id, "uid " + std::to_string(*peer.uid) + " is not allowed to connect by policy");
                peer.policy = settings_.policy->chains_for(identity->principal);
            }
            peer.transport->set_unix_fd_passing(peer.sasl->unix_fd_agreed());
            peer.sasl.reset();
            if (peer.auth_timer) loop_.cancel_timer(peer.auth_timer);
            peer.auth_timer = 0;
            if (used < input.size()) peer.transport->push_received(input.substr(used));
            return read_messages(peer, false);
        }
    }
}

void Bus::read_messages(Peer& peer, bool hung_up) {
    const PeerId id = peer.id;
    // As dbus-daemon: a peer whose messages the bus still holds beyond max_incoming_bytes or
    // max_incoming_unix_fds is not read from until they drain, so that a fast sender to a slow reader
    // is slowed down rather than the bus's memory. A peer that hung up is read to the end regardless.
    if (!hung_up && over_incoming_limits(peer)) {
        if (!peer.reading_paused) {
            peer.reading_paused = true;
            paused_readers_.push_back(id);
            log_debug("not reading from %s: its queued messages exceed the incoming limits", peer.unique_name.c_str());
        }
        return;
    }
    auto n = peer.transport->read();
    // Dispatch every complete message first; a read error is handled after them.
    for (;;) {
        Peer* p = find_peer(id);
        if (!p) return;
        auto message = p->transport->next();
        if (!message) return disconnect(id, describe(message.error()));
        if (!*message) break;
        if ((*message)->size() > static_cast<std::size_t>(settings_.limits.max_message_size))
            return disconnect(id, "message larger than max_message_size");
        if (p->monitor) return disconnect(id, "a monitor sent a message (monitors may only listen)");
        dispatch(*p, std::move(**message));
    }
    if (!n) return disconnect(id, describe(n.error()));
    if (Peer* p = find_peer(id)) watch_pending_fds(*p);
}

bool Bus::over_incoming_limits(const Peer& peer) const {
    return peer.incoming->bytes >= static_cast<std::size_t>(settings_.limits.max_incoming_bytes) ||
           peer.incoming->fds >= static_cast<std::size_t>(settings_.limits.max_incoming_unix_fds);
}

void Bus::resume_paused_readers() {
    std::erase_if(paused_readers_, [this](PeerId id) {
        Peer* peer = find_peer(id);
        if (!peer) return true;
        if (over_incoming_limits(*peer)) return false;
        peer->reading_paused = false;
        update_watch(*peer);
        return true;
    });
}

void Bus::watch_pending_fds(Peer& peer) {
    const bool pending = peer.transport->pending_fds() > 0;
    if (pending == (peer.pending_fds_timer != 0)) return;
    if (!pending) {
        loop_.cancel_timer(peer.pending_fds_timer);
        peer.pending_fds_timer = 0;
        return;
    }
    // As dbus-daemon (CVE-2014-3636): fds held in the kernel for a message that never completes would
    // pin them against the bus's fd limit, so the sender gets pending_fd_timeout to finish it.
    const PeerId id = peer.id;
    peer.pending_fds_timer = loop_.add_timer(
        Clock::now() + std::chrono::milliseconds(settings_.limits.pending_fd_timeout), [this, id] {
            Peer* p = find_peer(id);
            if (!p) return;
            p->pending_fds_timer = 0;
            disconnect(id, "held file descriptors for an incomplete message longer than pending_fd_timeout");
        });
}

std::shared_ptr<const Message> Bus::charged_to(Peer& sender, Message message) {
    // The charge is lifted when the last queue lets go of the message, whichever that is.
    struct Charged {
        Message message;
        std::shared_ptr<IncomingLoad> load;
        Charged(Message m, std::shared_ptr<IncomingLoad> l) : message(std::move(m)), load(std::move(l)) {
            ++load->messages;
            load->bytes += message.size();
            load->fds += message.fds().size();
        }
        ~Charged() {
            --load->messages;
            load->bytes -= message.size();
            load->fds -= message.fds().size();
        }
        Charged(const Charged&) = delete;
        Charged& operator=(const Charged&) = delete;
    };
    auto charged = std::make_shared<Charged>(std::move(message), sender.incoming);
    sender.peak_incoming_bytes = std::max(sender.peak_incoming_bytes, sender.incoming->bytes);
    sender.peak_incoming_fds = std::max(sender.peak_incoming_fds, sender.incoming->fds);
    return std::shared_ptr<const Message>(charged, &charged->message);
}

void Bus::dispatch(Peer& sender, Message message) {
    if (sender.unique_name.empty()) {
        // As dbus-daemon: before Hello, calls to the bus other than Hello are refused (the connection stays);
        // anything for anyone else ends the connection.
        if (message.destination() != kDriverName)
            return disconnect(sender.id, "sent a message other than Hello without being registered");
        const bool is_hello = message.type() == MessageType::MethodCall && message.member() == "Hello" &&
                              (message.interface().empty() || message.interface() == "org.freedesktop.DBus");
        if (!is_hello) {
            if (message.expects_reply()) {
                send_from_driver(sender, MessageBuilder::error(":not.active.yet", message.serial(), error_names::kAccessDenied,
                                                               "Client tried to send a message other than Hello without being registered"));
            }
            return;
        }
    }
    if (message.destination() == kDriverName) {
        const PeerId id = sender.id;
        // Hello is always allowed; everything after it is subject to the sender's send rules.
        std::optional<Error> denied;
        if (!sender.unique_name.empty()) denied = policy_denies(&sender, nullptr, message, false, false);
        const std::string unique_name = sender.unique_name;  // empty for Hello
        auto stitched = [&]() -> std::shared_ptr<const Message> {
            auto m = message.with_sender(unique_name);
            return m ? std::make_shared<const Message>(std::move(*m)) : nullptr;
        };
        // The one signal the bus takes: systemd reporting that it could not start a unit. From anyone but
        // the owner of org.freedesktop.systemd1 it is ignored, so that nobody can fail others' starts.
        // As in dbus-daemon, the errors it causes reach monitors before the signal itself.
        if (!denied && message.type() == MessageType::Signal &&
            message.interface() == "org.freedesktop.systemd1.Activator" && message.member() == "ActivationFailure" &&
            find_peer_by_name(kSystemdName) == &sender) {
            activation_->systemd_failed(message);
        }
        std::shared_ptr<const Message> shared;
        // Monitors see every call to the bus, refused or not.
        if (!monitors_.empty() && !unique_name.empty() && (shared = stitched())) copy_to_monitors(shared, id, std::nullopt);
        Peer* p = find_peer(id);
        if (!p) return;
        if (denied) {
            if (!denied->name.empty())
                send_from_driver(*p, MessageBuilder::error(p->unique_name, message.serial(), denied->name, denied->message));
            return;
        }
        const bool succeeded = Driver::handle(*this, *p, message);
        // Eavesdroppers see it once the bus has handled it successfully (so an AddMatch counts for itself),
        // as in dbus-daemon; never a refused or failed one.
        if (succeeded && !unique_name.empty() && matches_.total() != 0 && find_peer(id) && (shared || (shared = stitched())))
            broadcast_to_matches(*shared, id, std::nullopt, shared);
        return;
    }
    route(sender, std::move(message));
}

void Bus::route(Peer& sender, Message message) {
    const PeerId sender_id = sender.id;
    const std::string destination(message.destination());
    auto stitched = std::move(message).with_sender(sender.unique_name);
    if (!stitched) return disconnect(sender_id, "message cannot be forwarded: " + std::string(to_string(stitched.error())));
    auto shared = charged_to(sender, std::move(*stitched));
    const Message& m = *shared;
    Peer* target = destination.empty() ? nullptr : find_peer_by_name(destination);
    if (!target && !destination.empty()) {
        // As dbus-daemon: nobody else sees a message for a name that has no owner, and the sender is
        // told why whatever the message's type or flags. Monitors see the message after what its
        // activation caused (an ActivationRequest), then the error.
        std::optional<Error> failed;
        if (m.flags() & message_flags::kNoAutoStart) {
            failed = make_error(error_names::kNameHasNoOwner, "Name \"" + destination + "\" does not exist");
        } else if (auto started = activation_->activate(destination, Activation::Waiter{sender_id, shared, true}); !started) {
            failed = std::move(started.error());
        }
        copy_to_monitors(shared, sender_id, std::nullopt);
        if (failed) {
            if (Peer* still = find_peer(sender_id)) reply_error(*still, m, failed->name, failed->message);
        }
        return;
    }
    copy_to_monitors(shared, sender_id, target ? std::optional<PeerId>(target->id) : std::nullopt);
    if (!target) {
        broadcast_to_matches(m, sender_id, std::nullopt, shared);
        return;
    }
    route_to(sender, shared, *target);
}

void Bus::deliver_resumed(std::optional<PeerId> sender, const std::shared_ptr<const Message>& message, Peer& target) {
    if (sender) {
        if (Peer* from = find_peer(*sender)) route_to(*from, message, target);
        return;
    }
    const Message& m = *message;
    if (!target.unique_name.empty() && policy_denies(nullptr, &target, m, false, false)) return;
    if (!can_take(target, m, "message from the bus")) return;
    deliver(target, message);
    broadcast_to_matches(m, std::nullopt, target.id, message);
}

void Bus::route_to(Peer& sender, const std::shared_ptr<const Message>& shared, Peer& target_peer) {
    const PeerId sender_id = sender.id;
    const Message& m = *shared;
    const std::string destination(m.destination());
    Peer* target = &target_peer;
    const PeerId target_id = target->id;

    auto pending = pending_replies_.end();
    if (m.type() == MessageType::MethodReturn || m.type() == MessageType::Error) {
        // Only replies that were asked for pass (dbus-daemon's requested_reply).
        pending = pending_replies_.find({target_id, *m.reply_serial()});
        if (pending == pending_replies_.end() || pending->second.callee != sender_id) {
            log_debug("dropping an unexpected reply from %s to %s", sender.unique_name.c_str(), destination.c_str());
            return;
        }
    }
    if (auto denied = policy_denies(&sender, target, m, pending != pending_replies_.end(), false)) {
        // As dbus-daemon: the sender learns why, whatever the message's type or flags.
        if (!denied->name.empty())
            send_from_driver(sender, MessageBuilder::error(sender.unique_name, m.serial(), denied->name, denied->message));
        return;
    }
    if (pending != pending_replies_.end()) {
        if (pending->second.timer) loop_.cancel_timer(pending->second.timer);
        pending_replies_.erase(pending);
    }

    if (!m.fds().empty() && !target->transport->unix_fd_passing()) {
        reply_error(sender, m, error_names::kNotSupported,
                    "Tried to send message with Unix file descriptors to a client that doesn't support that.");
        return;
    }
    if (const char* limit = outgoing_limit_exceeded(*target, m)) {
        log_warning("dropping a message for %s: its outgoing queue is full (%s)", destination.c_str(), limit);
        ++target->dropped_messages;
        ++dropped_messages_;
        if (m.expects_reply()) {
            reply_error(sender, m, error_names::kLimitsExceeded,
                        "The maximum number of bytes queued for " + destination + " has been reached");
        }
        return;
    }
    if (m.expects_reply()) {
        std::size_t outstanding = 0;
        for (const auto& [key, pending] : pending_replies_)
            if (pending.caller == sender_id) ++outstanding;
        if (outstanding >= static_cast<std::size_t>(settings_.limits.max_replies_per_connection)) {
            reply_error(sender, m, error_names::kLimitsExceeded,
                        "The maximum number of pending replies for \"" + sender.unique_name +
                            "\" has been reached (max_replies_per_connection=" +
                            std::to_string(settings_.limits.max_replies_per_connection) + ")");
            return;
        }
        PendingReply pending{sender_id, m.serial(), target_id, 0};
        if (settings_.limits.reply_timeout > 0) {
            const std::uint32_t serial = m.serial();
            pending.timer = loop_.add_timer(Clock::now() + std::chrono::milliseconds(settings_.limits.reply_timeout),
                                            [this, sender_id, serial] {
                                                auto it = pending_replies_.find({sender_id, serial});
                                                if (it == pending_replies_.end()) return;
                                                pending_replies_.erase(it);
                                                if (Peer* caller = find_peer(sender_id)) {
                                                    send_from_driver(*caller, MessageBuilder::error(
                                                        caller->unique_name, serial, error_names::kNoReply,
                                                        "Message did not receive a reply (timeout by message bus)"));
                                                }
                                            });
        }
        pending_replies_[{sender_id, m.serial()}] = pending;
    }
    deliver(*target, shared);
    broadcast_to_matches(m, sender_id, target_id, shared);
}

void Bus::broadcast_to_matches(const Message& message, std::optional<PeerId> sender, std::optional<PeerId> addressed,
                               std::shared_ptr<const Message> shared) {
    if (matches_.total() == 0) return;
    recipients_.clear();
    matches_.recipients(message, sender, addressed, [this](PeerId p, std::string_view n) { return is_named_by(p, n); },
                        recipients_);
    // deliver() may disconnect a peer whose queue failed; work from a copy of the list.
    const std::vector<PeerId> recipients = recipients_;
    const Peer* from = sender ? find_peer(*sender) : nullptr;
    if (sender && !from) return;
    const std::optional<PeerId> from_id = sender;
    for (PeerId id : recipients) {
        Peer* peer = find_peer(id);
        if (!peer || peer->unique_name.empty()) continue;
        // A copy of a message addressed to someone else is eavesdropping; broadcasts are not.
        const bool eavesdropping = !message.destination().empty() && addressed != id;
        // Replies from the bus are always requested; a peer's reply reaches a subscriber only when eavesdropping.
        const bool requested = !sender && !eavesdropping && message.reply_serial().has_value();
        std::optional<Error> refused = policy_denies(from, peer, message, requested, eavesdropping);
        if (!refused && !message.fds().empty() && !peer->transport->unix_fd_passing()) {
            refused = Error{std::string(error_names::kNotSupported),
                            "broadcast cannot be delivered to " + peer->unique_name +
                                " because it does not support receiving Unix fds"};
        }
        if (refused) {
            // The sender is not told (the others still got it), but monitors see the error it would get.
            if (from && !refused->name.empty() && !monitors_.empty()) {
                auto error = build_driver_message(
                    MessageBuilder::error(from->unique_name, message.serial(), refused->name, refused->message));
                if (error) copy_to_monitors(error, std::nullopt, from_id);
            }
            continue;
        }
        if (!can_take(*peer, message, "broadcast")) continue;
        deliver(*peer, shared);
    }
}

const char* Bus::outgoing_limit_exceeded(const Peer& peer, const Message& message) const {
    if (peer.transport->queued_bytes() + message.size() > static_cast<std::size_t>(settings_.limits.max_outgoing_bytes))
        return "max_outgoing_bytes";
    if (peer.transport->queued_fds() + message.fds().size() > static_cast<std::size_t>(settings_.limits.max_outgoing_unix_fds))
        return "max_outgoing_unix_fds";
    return nullptr;
}

bool Bus::can_take(Peer& peer, const Message& message, const char* what) {
    if (!message.fds().empty() && !peer.transport->unix_fd_passing()) return false;
    if (const char* limit = outgoing_limit_exceeded(peer, message)) {
        log_warning("dropping a %s for %s: its outgoing queue is full (%s)", what, peer.unique_name.c_str(), limit);
        ++peer.dropped_messages;
        ++dropped_messages_;
        return false;
    }
    return true;
}

void Bus::deliver(Peer& peer, std::shared_ptr<const Message> message) {
    peer.transport->enqueue(std::move(message));
    peer.peak_outgoing_bytes = std::max(peer.peak_outgoing_bytes, peer.transport->queued_bytes());
    peer.peak_outgoing_fds = std::max(peer.peak_outgoing_fds, peer.transport->queued_fds());
    // Written after this loop iteration, together with whatever else the same batch of input produces
    // for this peer: one sendmsg for many messages.
    if (!peer.dirty) {
        peer.dirty = true;
        dirty_.push_back(peer.id);
    }
}

void Bus::flush_output() {
    // disconnect() may add peers to dirty_ (NoReply errors, NameOwnerChanged), so index, don't iterate.
    for (std::size_t i = 0; i < dirty_.size(); ++i) {
        Peer* peer = find_peer(dirty_[i]);
        if (!peer) continue;
        peer->dirty = false;
        auto flushed = peer->transport->flush();
        if (!flushed) {
            disconnect(peer->id, describe(flushed.error()));
            continue;
        }
        update_watch(*peer);
    }
    dirty_.clear();
    // What was just written may have been holding paused senders back.
    if (!paused_readers_.empty()) resume_paused_readers();
}

void Bus::update_watch(Peer& peer) {
    const std::uint32_t wanted = (peer.reading_paused ? 0u : EPOLLIN) | (peer.transport->wants_write() ? EPOLLOUT : 0u);
    if (wanted == peer.epoll_events) return;
    peer.epoll_events = wanted;
    loop_.modify(peer.transport->fd(), wanted);
}

std::shared_ptr<const Message> Bus::build_driver_message(MessageBuilder builder) {
    builder.sender(kDriverName);
    // As dbus-daemon (libdbus marks every reply, error and signal it creates so): nothing answers these.
    if (builder.type() != MessageType::MethodCall) builder.no_reply_expected();
    auto m = builder.build(next_driver_serial_++);
    if (next_driver_serial_ == 0) next_driver_serial_ = 1;
    if (!m) {
        log_warning("bus message could not be built: %s", std::string(to_string(m.error())).c_str());
        return nullptr;
    }
    return std::make_shared<const Message>(std::move(*m));
}

void Bus::send_from_driver(Peer& to, MessageBuilder builder) {
    auto shared = build_driver_message(std::move(builder));
    if (!shared) return;
    const PeerId id = to.id;
    // Monitors see it even when the recipient's receive rules refuse it, which drops it silently.
    copy_to_monitors(shared, std::nullopt, id);
    if (!to.unique_name.empty()) {
        if (auto refused = policy_denies(nullptr, &to, *shared, shared->reply_serial().has_value(), false)) {
            // As dbus-daemon, monitors also see the error the bus would have answered itself with.
            if (!refused->name.empty() && !monitors_.empty()) {
                auto error = build_driver_message(
                    MessageBuilder::error(kDriverName, shared->serial(), refused->name, refused->message));
                if (error) copy_to_monitors(error, std::nullopt, std::nullopt);
            }
            return;
        }
    }
    // Unlike signals, the bus's replies, errors and unicast signals reach no eavesdropper (dbus-daemon).
    deliver(to, shared);
}

void Bus::set_settings(BusSettings settings) {
    if (settings.address.empty()) settings.address = settings_.address;
    // A reload also rereads the user database (dbus-daemon flushes its cache then).
    accounts_.flush();
    settings_ = std::move(settings);
    configure_activation();
    // As dbus-daemon: after every reload, whether or not the set of services changed.
    emit_driver_signal(MessageBuilder::signal(kDriverPath, "org.freedesktop.DBus", "ActivatableServicesChanged"));
    for (auto& [id, peer] : peers_) {
        if (peer->sasl || !settings_.policy) {
            peer->policy.reset();
            continue;
        }
        // The identity was good enough at connect time; a user removed since keeps the default chains.
        const auto identity = policy_identity(peer->uid, peer->credentials.groups, accounts_);
        peer->policy = settings_.policy->chains_for(identity ? identity->principal : policy::Principal{});
    }
}

namespace {

policy::MessageFacts facts_of(const Message& m, bool requested_reply) {
    policy::MessageFacts facts;
    facts.type = static_cast<std::uint8_t>(m.type());
    facts.path = m.path();
    facts.interface = m.interface();
    facts.member = m.member();
    facts.error_name = m.error_name();
    facts.destination = m.destination();
    facts.sender = m.sender();
    facts.is_reply = m.reply_serial().has_value();
    facts.requested_reply = requested_reply;
    facts.fds = m.unix_fds();
    return facts;
}

std::string_view type_name(MessageType type) {
    switch (type) {
        case MessageType::MethodCall: return "method_call";
        case MessageType::MethodReturn: return "method_return";
        case MessageType::Error: return "error";
        case MessageType::Signal: return "signal";
        default: return "invalid";
    }
}

std::string or_unset(std::string_view s) { return s.empty() ? std::string("(unset)") : std::string(s); }

}  // namespace

std::optional<Error> Bus::policy_denies(const Peer* sender, const Peer* recipient, const Message& message,
                                        bool requested_reply, bool eavesdropping) const {
    if (!settings_.policy) return std::nullopt;
    const policy::MessageFacts facts = facts_of(message, requested_reply);
    auto party = [this](const Peer* p) -> std::optional<policy::Party> {
        if (!p) return std::nullopt;
        return policy::Party{p->unique_name, names_.names_of(p->id)};
    };
    const auto sender_party = party(sender);
    const auto recipient_party = party(recipient);
    const policy::Party* from = sender_party ? &*sender_party : nullptr;
    const policy::Party* to = recipient_party ? &*recipient_party : nullptr;

    auto complain = [&](const char* what, const policy::Decision& decision, policy::Hook hook,
                        const policy::ConnectionChains& chains) {
        auto loginfo = [](const Peer* p) {
            if (!p) return std::string("bus");
            return "uid=" + (p->uid ? std::to_string(*p->uid) : std::string("(anonymous)")) +
                   " pid=" + std::to_string(p->credentials.pid);
        };
        const policy::Party* other = hook == policy::Hook::Send ? to : from;
        std::string text = std::string(what) + ", " + std::to_string(chains.count_matching(hook, facts, other)) +
                           " matched rules; type=\"" + std::string(type_name(message.type())) + "\", sender=\"" +
                           (sender ? sender->unique_name : std::string("(unset)")) + "\" (" +
                           (sender ? loginfo(sender) : std::string("(bus)")) + ") interface=\"" + or_unset(message.interface()) +
                           "\" member=\"" + or_unset(message.member()) + "\" error name=\"" + or_unset(message.error_name()) +
                           "\" requested_reply=\"" + (requested_reply ? "1" : "0") + "\" destination=\"" +
                           (message.destination().empty() ? std::string(kDriverName) : std::string(message.destination())) +
                           "\" (" + loginfo(recipient) + ")";
        if (decision.log) log_warning("%s", text.c_str());
        if (decision.verdict == policy::Verdict::Drop) return Error{};
        return Error{std::string(decision.error_name), std::move(text)};
    };

    if (sender && sender->policy) {
        const policy::Decision decision = sender->policy->check_send(facts, to);
        if (!decision.allowed()) return complain("Rejected send message", decision, policy::Hook::Send, *sender->policy);
        if (decision.log) complain("Would reject message", decision, policy::Hook::Send, *sender->policy);
    }
    if (recipient && recipient->policy) {
        const policy::Decision decision = recipient->policy->check_receive(facts, from, eavesdropping);
        if (!decision.allowed())
            return complain("Rejected receive message", decision,
                            eavesdropping ? policy::Hook::Eavesdrop : policy::Hook::Receive, *recipient->policy);
    }
    return std::nullopt;
}

bool Bus::policy_allows_own(const Peer& peer, std::string_view name) const {
    return !peer.policy || peer.policy->can_own(name);
}

void Bus::show_to_monitors(const Message& call, const Peer& sender) {
    if (monitors_.empty()) return;
    auto stitched = call.with_sender(sender.unique_name);
    if (!stitched) return;
    copy_to_monitors(std::make_shared<const Message>(std::move(*stitched)), sender.id, std::nullopt);
}

void Bus::reply_error(Peer& to, const Message& call, std::string_view name, std::string message) {
    send_from_driver(to, MessageBuilder::error(to.unique_name, call.serial(), name, message));
}

void Bus::emit_driver_signal(MessageBuilder builder) {
    auto shared = build_driver_message(std::move(builder));
    if (!shared) return;
    copy_to_monitors(shared, std::nullopt, std::nullopt);
    broadcast_to_matches(*shared, std::nullopt, std::nullopt, shared);
}

void Bus::copy_to_monitors(const std::shared_ptr<const Message>& message, std::optional<PeerId> sender,
                           std::optional<PeerId> addressed) {
    const auto named_by = [this](PeerId p, std::string_view n) { return is_named_by(p, n); };
    for (PeerId id : monitors_) {
        Peer* monitor = find_peer(id);
        if (!monitor) continue;
        bool wanted = monitor->monitor_rules.empty();
        for (const MatchRule& rule : monitor->monitor_rules) {
            if (MatchRegistry::rule_matches(rule, *message, sender, addressed, named_by)) {
                wanted = true;
                break;
            }
        }
        if (!wanted || !can_take(*monitor, *message, "monitored message")) continue;
        deliver(*monitor, message);
    }
}

void Bus::become_monitor(Peer& peer, std::vector<MatchRule> rules) {
    const PeerId id = peer.id;
    emit_name_changes(names_.release_all(id));
    matches_.remove_all(id);
    const std::string unique = peer.unique_name;
    auto lost = MessageBuilder::signal(kDriverPath, "org.freedesktop.DBus", "NameLost");
    lost.destination(unique);
    append(lost, unique);
    send_from_driver(peer, std::move(lost));
    unique_names_.erase(unique);
    auto changed = MessageBuilder::signal(kDriverPath, "org.freedesktop.DBus", "NameOwnerChanged");
    append(changed, unique, unique, std::string());
    emit_driver_signal(std::move(changed));
    peer.monitor = true;
    peer.monitor_rules = std::move(rules);
    monitors_.push_back(id);
}

std::size_t Bus::incomplete_connections() const {
    std::size_t n = 0;
    for (const auto& [id, p] : peers_)
        if (p->sasl) ++n;
    return n;
}

void Bus::note_peaks(Peer& peer) {
    const std::size_t rules = matches_.count(peer.id), names = names_.count_for(peer.id);
    peer.peak_match_rules = std::max(peer.peak_match_rules, rules);
    peer.peak_bus_names = std::max(peer.peak_bus_names, names);
    peak_match_rules_ = std::max(peak_match_rules_, matches_.total());
    peak_bus_names_ = std::max(peak_bus_names_, names_.names().size());
}

void Bus::emit_name_changes(const std::vector<NameChange>& changes) {
    for (const NameChange& c : changes) {
        Peer* old_owner = c.old_owner ? find_peer(*c.old_owner) : nullptr;
        Peer* new_owner = c.new_owner ? find_peer(*c.new_owner) : nullptr;
        if (old_owner) {
            auto lost = MessageBuilder::signal(kDriverPath, "org.freedesktop.DBus", "NameLost");
            lost.destination(old_owner->unique_name);
            append(lost, c.name);
            send_from_driver(*old_owner, std::move(lost));
        }
        auto changed = MessageBuilder::signal(kDriverPath, "org.freedesktop.DBus", "NameOwnerChanged");
        const std::string old_name = c.old_owner ? unique_name_of(*c.old_owner) : std::string();
        const std::string new_name = c.new_owner ? unique_name_of(*c.new_owner) : std::string();
        append(changed, c.name, old_name, new_name);
        emit_driver_signal(std::move(changed));
        if (new_owner) {
            auto acquired = MessageBuilder::signal(kDriverPath, "org.freedesktop.DBus", "NameAcquired");
            acquired.destination(new_owner->unique_name);
            append(acquired, c.name);
            send_from_driver(*new_owner, std::move(acquired));
            // Messages that waited for the name's activation go to it now (before the RequestName
            // reply, as in dbus-daemon).
            activation_->name_acquired(c.name);
        }
    }
}

void Bus::register_unique_name(Peer& peer) {
    // Counted over registered connections only, from 0, as dbus-daemon does.
    peer.unique_name = ":1." + std::to_string(next_unique_name_++);
    unique_names_.emplace(peer.unique_name, peer.id);
}

std::string Bus::unique_name_of(PeerId id) const {
    auto it = peers_.find(id);
    return it == peers_.end() ? std::string() : it->second->unique_name;
}

void Bus::disconnect(PeerId id, std::string_view reason) {
    auto it = peers_.find(id);
    if (it == peers_.end() || it->second->closing) return;
    Peer& peer = *it->second;
    peer.closing = true;
    log_info("connection %s closed: %.*s", peer.unique_name.empty() ? "(unregistered)" : peer.unique_name.c_str(),
             static_cast<int>(reason.size()), reason.data());
    loop_.unwatch(peer.transport->fd());
    if (peer.auth_timer) loop_.cancel_timer(peer.auth_timer);
    if (peer.pending_fds_timer) loop_.cancel_timer(peer.pending_fds_timer);
    // Best effort: what is queued (e.g. the last error reply) may still go out.
    (void)peer.transport->flush();
    matches_.remove_all(id);

    // Callers waiting for this peer get NoReply; its own outstanding calls are forgotten.
    std::vector<std::pair<PeerId, std::uint32_t>> orphaned;
    for (auto p = pending_replies_.begin(); p != pending_replies_.end();) {
        if (p->second.callee == id || p->second.caller == id) {
            if (p->second.timer) loop_.cancel_timer(p->second.timer);
            if (p->second.callee == id) orphaned.emplace_back(p->second.caller, p->second.serial);
            p = pending_replies_.erase(p);
        } else {
            ++p;
        }
    }
    if (peer.monitor) {
        monitors_.erase(std::remove(monitors_.begin(), monitors_.end(), id), monitors_.end());
    } else if (!peer.unique_name.empty()) {
        emit_name_changes(names_.release_all(id));
        auto changed = MessageBuilder::signal(kDriverPath, "org.freedesktop.DBus", "NameOwnerChanged");
        append(changed, peer.unique_name, peer.unique_name, std::string());
        unique_names_.erase(peer.unique_name);
        emit_driver_signal(std::move(changed));
    }
    for (const auto& [caller_id, serial] : orphaned) {
        if (Peer* caller = find_peer(caller_id)) {
            send_from_driver(*caller, MessageBuilder::error(caller->unique_name, serial, error_names::kNoReply,
                                                            "Message recipient disconnected from message bus without replying"));
        }
    }
    // The peer sees the end of the connection now; the Peer object may still be on the call stack (we may
    // be inside its own dispatch), so it is freed from a timer that runs after this event.
    ::shutdown(peer.transport->fd(), SHUT_RDWR);
    if (graveyard_.empty()) loop_.add_timer(Clock::now(), [this] { graveyard_.clear(); });
    graveyard_.push_back(std::move(it->second));
    peers_.erase(it);
}

}  // namespace afbus::daemon
