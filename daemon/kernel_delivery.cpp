#include "kernel_delivery.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/af_bus.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <span>

#include "afbus/af_bus_socket.hpp"
#include "afbus/error.hpp"
#include "afbus/types.hpp"
#include "afbus/unix_socket.hpp"
#include "client/connection_state.hpp"  // refused_send_error: what libafbus answers for a refused send
#include "log.hpp"
#include "match_registry.hpp"
#include "name_signals.hpp"
#include "room.hpp"

namespace afbus::daemon {
namespace {

// The notice a native client gets after the master forwarded one of its messages (docs/kernel-mode.md).
constexpr std::string_view kKernelInterface = "org.afbus.Kernel";
constexpr std::string_view kNameAddressMember = "NameAddress";
constexpr std::string_view kPeerAddressMember = "PeerAddress";

// af_bus.ko's multicast address: a signal without destination goes to every subscriber at once.
constexpr std::uint64_t kBroadcastAddress = BUS_ADDR(0, BUS_MULTICAST_CLIENT);
// A bridge stops reading from the kernel while its unix socket holds what the broker would queue for
// the client (max_outgoing_bytes), at most this much, unwritten: the kernel then queues for it, and
// waits or drops at its own limits (docs/kernel-mode.md, "Full queues"). It reads again below a quarter.
constexpr std::size_t kBridgeHighWater = 1 << 20;
// Calls forwarded to one bridged client whose answers go back through the model; beyond this many
// unanswered ones the oldest entries are forgotten (an answer then goes directly, the model's record of
// the call lingers until the callee leaves).
constexpr std::size_t kMaxForwardedCalls = 65536;
// Calls one bridged client received through the kernel directly and has not answered, remembered (for an
// answer that must go around the kernel); beyond this many the oldest are forgotten (their answers, should
// they carry a socket, then go through the model, which does not know the call: they are dropped).
constexpr std::size_t kMaxDirectCalls = 4096;

bool is_reply(const Message& message) {
    return message.type() == MessageType::MethodReturn || message.type() == MessageType::Error;
}

}  // namespace

KernelDelivery::KernelDelivery(EventLoop& loop, DeliveryEvents& events, ConnectionSettings settings, int family)
    : loop_(loop), events_(events), settings_(settings), family_(family), broker_(loop, unix_events_, std::move(settings)) {}

KernelDelivery::~KernelDelivery() {
    for (const Fd& l : listeners_) loop_.unwatch(l.get());
    for (auto& [id, c] : clients_) {
        loop_.unwatch(c->transport->fd());
        if (c->auth_timer) loop_.cancel_timer(c->auth_timer);
        if (c->read_retry_timer) loop_.cancel_timer(c->read_retry_timer);
        if (c->bridge) {
            loop_.unwatch(c->bridge->transport->fd());
            if (c->bridge->read_retry_timer) loop_.cancel_timer(c->bridge->read_retry_timer);
            for (auto& [serial, call] : c->bridge->pending_calls)
                if (call.timer) loop_.cancel_timer(call.timer);
        }
    }
}

void KernelDelivery::configure(const ConnectionSettings& settings) {
    const bool new_policy = settings.policy != settings_.policy;
    // Both copies before anything changes (the broker's configure() is whole or nothing too).
    ConnectionSettings copy = settings;
    broker_.configure(settings);
    settings_ = std::move(copy);
    for (const Fd& l : listeners_) {
        apply_bus_limits(l);
        // Refused, the kernel keeps the old image and every client its old chains: the old policy stays
        // in force between native clients (logged), none is dropped.
        if (new_policy) (void)install_policy(l);
    }
    // Each client's new chains follow (peer_policy_assigned).
}

bool KernelDelivery::install_policy(const Fd& listener) const {
    const std::span<const std::byte> image = settings_.policy ? settings_.policy->image().bytes() : std::span<const std::byte>{};
    if (::setsockopt(listener.get(), SOL_BUS, BUS_DBUS_SET_POLICY, image.data(), static_cast<socklen_t>(image.size())) == 0)
        return true;
    log_warning("AF_BUS: the kernel refused the policy (%zu bytes): %s", image.size(), std::strerror(errno));
    return false;
}

int KernelDelivery::install_chains(const Client& c) {
    if (c.chains.empty() || c.unique_name.empty()) return 0;
    // Refused, the client keeps its old chains, or none: then the kernel denies it everything.
    return set_option_errno(c, BUS_DBUS_SET_CHAINS, c.chains.data(), c.chains.size() * sizeof(std::uint32_t),
                            "install its policy");
}

namespace {

// A client's chains as af_bus_dbus.ko takes them (BUS_DBUS_SET_CHAINS): three counts and a zero, then the
// rule indices of each hook; empty for none.
std::vector<std::uint32_t> kernel_chains(const policy::ConnectionChains* chains) {
    std::vector<std::uint32_t> value;
    if (!chains) return value;
    const auto send = chains->rule_indices(policy::Hook::Send);
    const auto receive = chains->rule_indices(policy::Hook::Receive);
    const auto eavesdrop = chains->rule_indices(policy::Hook::Eavesdrop);
    value = {static_cast<std::uint32_t>(send.size()), static_cast<std::uint32_t>(receive.size()),
             static_cast<std::uint32_t>(eavesdrop.size()), 0};
    value.insert(value.end(), send.begin(), send.end());
    value.insert(value.end(), receive.begin(), receive.end());
    value.insert(value.end(), eavesdrop.begin(), eavesdrop.end());
    return value;
}

}  // namespace

void KernelDelivery::stage_peer_policy(PeerId peer, const policy::ConnectionChains* chains) {
    std::vector<std::uint32_t> value = kernel_chains(chains);
    if (Client* c = find(peer)) {
        c->staged_chains = std::move(value);
        return;
    }
    if (!listeners_.empty()) staged_unix_chains_[peer] = std::move(value);
}

void KernelDelivery::drop_staged_policies() noexcept {
    for (auto& [id, c] : clients_) c->staged_chains.reset();
    staged_unix_chains_.clear();
}

void KernelDelivery::peer_policy_assigned(PeerId peer, const policy::ConnectionChains* chains) noexcept {
    // A reload's, staged: taken without allocating.
    if (Client* c = find(peer); c && c->staged_chains) {
        c->chains = std::move(*c->staged_chains);
        c->staged_chains.reset();
        // Refused, the kernel would go on judging the client by its old policy.
        if (refused(install_chains(*c))) note_out_of_step(peer, "the kernel refused its policy");
        return;
    }
    if (auto staged = staged_unix_chains_.find(peer); staged != staged_unix_chains_.end()) {
        // A unix client: its bridge, made at Hello, installs them.
        auto node = staged_unix_chains_.extract(staged);
        if (node.mapped().empty())
            unix_chains_.erase(peer);
        else if (auto old = unix_chains_.find(peer); old != unix_chains_.end())
            old->second = std::move(node.mapped());
        else
            unix_chains_.insert(std::move(node));
        return;
    }
    // At authentication: out of memory, the client is out of step.
    mirror(peer, [&] {
        std::vector<std::uint32_t> value = kernel_chains(chains);
        Client* c = find(peer);
        if (!c) {
            // A unix client: its bridge, made at Hello, installs them.
            if (listeners_.empty()) return;
            if (value.empty())
                unix_chains_.erase(peer);
            else
                unix_chains_[peer] = std::move(value);
            return;
        }
        c->chains = std::move(value);
        // Refused (at a reload), the kernel would go on judging the client by its old policy.
        if (refused(install_chains(*c))) note_out_of_step(peer, "the kernel refused its policy");
    });
}

void KernelDelivery::peer_names_changed(PeerId peer, const std::vector<std::string>& names) noexcept {
    mirror(peer, [&] {
        Client* c = find(peer);
        if (!c || c->unique_name.empty()) return;
        std::string value;
        for (const std::string& name : names) value.append(name).push_back('\0');
        // Refused, the kernel would judge send and receive rules about names by the ones it had.
        if (refused(set_option_errno(*c, BUS_DBUS_SET_NAMES, value.data(), value.size(), "tell the kernel its names")))
            note_out_of_step(peer, "the kernel refused its names");
    });
}

void KernelDelivery::apply_bus_limits(const Fd& listener) const {
    // The kernel's ranges: 1..65536 calls, 1 ms..2^31-1 ms (about 25 days: "never" in practice).
    bus_dbus_reply_limits limits{};
    limits.max_replies = kernel_max_replies();
    limits.timeout_ms = static_cast<std::uint32_t>(
        settings_.reply_timeout_ms < 0 ? INT32_MAX : std::clamp<std::int64_t>(settings_.reply_timeout_ms, 1, INT32_MAX));
    if (::setsockopt(listener.get(), SOL_BUS, BUS_DBUS_SET_REPLY_LIMITS, &limits, sizeof limits) < 0)
        log_warning("AF_BUS: could not set the pending reply limits: %s", std::strerror(errno));
    // A datagram must fit the sender's buffer whole: room for the largest message and the kernel's
    // overhead, up to af_bus.ko's bound (256 MiB; wmem_max without CAP_NET_ADMIN).
    const int send_buffer = static_cast<int>(std::clamp<std::int64_t>(settings_.max_message_size + 4096, 4096, 256 << 20));
    if (::setsockopt(listener.get(), SOL_BUS, BUS_SET_SENDBUF, &send_buffer, sizeof send_buffer) < 0)
        log_warning("AF_BUS: could not size the send buffers for %lld-byte messages: %s",
                    static_cast<long long>(settings_.max_message_size), std::strerror(errno));
    // Each connection's receive queue holds what the broker would queue for it (max_outgoing_bytes, up
    // to af_bus.ko's 1 GiB; rmem_max without CAP_NET_ADMIN), in as many messages as the kernel allows:
    // beyond that, a signal's copy or an answer is dropped (and counted for the receiver), a call or a
    // unicast signal waits.
    const int receive_buffer = static_cast<int>(std::clamp<std::int64_t>(settings_.max_outgoing_bytes, 2304, 1 << 30));
    if (::setsockopt(listener.get(), SOL_BUS, BUS_SET_RECVBUF, &receive_buffer, sizeof receive_buffer) < 0)
        log_warning("AF_BUS: could not size the receive queues for %lld bytes: %s",
                    static_cast<long long>(settings_.max_outgoing_bytes), std::strerror(errno));
    const int receive_queue = 65536;  // af_bus.ko's bound (the bytes bound above is the one that matters)
    if (::setsockopt(listener.get(), SOL_BUS, BUS_SET_MAXQLEN, &receive_queue, sizeof receive_queue) < 0)
        log_warning("AF_BUS: could not set the receive queue length: %s", std::strerror(errno));
}

bool KernelDelivery::add_listener(Fd listener, const std::string& address) {
    const int fd = listener.get();
    apply_bus_limits(listener);
    if (!install_policy(listener)) return false;
    if (listeners_.empty()) {
        auto entries = parse_address_list(address);
        if (entries && !entries->empty()) bridge_address_ = entries->front();
        else log_warning("AF_BUS: %s cannot be connected to; unix clients are not bridged into the kernel", address.c_str());
    }
    listeners_.push_back(std::move(listener));
    loop_.watch(fd, EPOLLIN, [this, fd](std::uint32_t) { on_listener_ready(fd); });
    return true;
}

void KernelDelivery::watch_listeners(bool on) {
    if (on == listening_) return;
    listening_ = on;
    for (const Fd& l : listeners_) loop_.modify(l.get(), on ? EPOLLIN : 0u);
}

void KernelDelivery::on_listener_ready(int fd) {
    for (;;) {
        // As on the unix side: while too many connections authenticate, new ones wait in the backlog,
        // unwatched until flush() finds room.
        if (!events_.may_accept()) return watch_listeners(false);
        if (!accept_one(fd)) return;
    }
}

bool KernelDelivery::accept_one(int fd) {
    Fd socket(::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!socket) {
        if (errno != EAGAIN && errno != EINTR) log_warning("AF_BUS accept failed: %s", std::strerror(errno));
        return false;
    }
    const auto listener = std::find_if(listeners_.begin(), listeners_.end(), [fd](const Fd& l) { return l.get() == fd; });
    add_client(std::move(socket), static_cast<std::size_t>(listener - listeners_.begin()));
    return true;
}

void KernelDelivery::add_client(Fd socket, std::size_t listener) {
    sockaddr_bus peer_address{};
    socklen_t length = sizeof peer_address;
    if (::getpeername(socket.get(), reinterpret_cast<sockaddr*>(&peer_address), &length) < 0) {
        log_warning("refusing an AF_BUS connection: no address: %s", std::strerror(errno));
        return;
    }
    // As in the broker (BrokerDelivery::add_connection): the client's memory first (its credentials'
    // groups too), and room for it in the graveyard (detach() must not allocate); out of memory, the
    // connection is refused (its socket closed) and nothing else changes.
    std::unique_ptr<Client> client;
    std::optional<PeerId> id;
    try {
        auto credentials = peer_credentials(socket);
        if (!credentials) {
            log_warning("refusing an AF_BUS connection: no peer credentials: %s", std::strerror(credentials.error()));
            return;
        }
        client = std::make_unique<Client>();
        client->sasl = std::make_unique<SaslServer>(sasl_server_config(settings_, *credentials));
        client->transport = std::make_unique<DatagramTransport>(std::move(socket), family_);
        make_room(graveyard_, clients_.size() + 1);
        id = peer_connected(std::move(*credentials));
    } catch (const std::bad_alloc&) {
        log_warning("refusing an AF_BUS connection: out of memory");
        return;
    }
    if (!id) return;
    const PeerId peer = *id;
    client->id = peer;
    client->address = peer_address.sbus_addr.s_addr;
    client->listener = listener;
    Client* added = nullptr;
    try {
        added = clients_.emplace(peer, std::move(client)).first->second.get();
    } catch (const std::bad_alloc&) {
        return report_lost(peer, "the bus ran out of memory taking the connection");
    }
    Client& c = *added;
    if (!watch_client(c)) return report_failed(peer, EventLoop::watch_failure(errno));
    try {
        c.auth_timer = loop_.add_timer(Clock::now() + std::chrono::milliseconds(settings_.auth_timeout_ms), [this, peer] {
            if (Client* p = find(peer); p && p->sasl) {
                p->auth_timer = 0;
                report_failed(peer, "authentication timed out");
            }
        });
    } catch (const std::bad_alloc&) {
        return report_lost(peer, "the bus ran out of memory taking the connection");
    }
}

std::optional<PeerId> KernelDelivery::peer_connected(PeerCredentials credentials) {
    // Out of memory, the connection is refused (by the caller).
    make_room(out_of_step_, peers_ + 1);
    make_room(monitors_, peers_ + 1 - monitors_.size());
    auto id = events_.peer_connected(std::move(credentials));
    if (id) ++peers_;
    return id;
}

KernelDelivery::Client* KernelDelivery::find(PeerId id) const {
    auto it = clients_.find(id);
    return it == clients_.end() ? nullptr : it->second.get();
}

void KernelDelivery::report_failed(PeerId id, std::string_view reason) {
    judge_eavesdroppers_copies();
    events_.peer_failed(id, reason);
}

void KernelDelivery::report_lost(PeerId id, std::string_view reason) {
    judge_eavesdroppers_copies();
    events_.peer_lost(id, reason);
}

void KernelDelivery::report_refused(PeerId id, std::string_view reason) {
    judge_eavesdroppers_copies();
    events_.peer_refused(id, reason);
}

void KernelDelivery::judge_eavesdroppers_copies() noexcept {
    // The kernel's copies for eavesdroppers are judged by the model as their bridges read them
    // (gives_copy), which needs their sender: a client that sent something and left at once (as
    // dbus-send does) would be gone by then. So, before the model hears that a client leaves, each
    // eavesdropper's bridge reads what the kernel holds for it. (Out of memory, they are read later, and
    // what the leaving client sent them is dropped.)
    if (eavesdroppers_.empty() || judging_copies_) return;
    judging_copies_ = true;
    try {
        std::vector<PeerId> eavesdroppers(eavesdroppers_.begin(), eavesdroppers_.end());
        eavesdroppers.erase(std::unique(eavesdroppers.begin(), eavesdroppers.end()), eavesdroppers.end());
        for (PeerId id : eavesdroppers) {
            if (Client* c = find(id); c && c->bridge && !c->monitor) bridge_read(*c, true);
        }
    } catch (const std::bad_alloc&) {
    }
    judging_copies_ = false;
}

std::uint32_t KernelDelivery::take_serial() {
    const std::uint32_t serial = next_serial_++;
    if (next_serial_ == 0) next_serial_ = 1;
    return serial;
}

void KernelDelivery::fail_on(PeerId id, const TransportError& error) {
    if (is_loss(error)) return report_lost(id, describe(error));
    report_failed(id, describe(error));
}

void KernelDelivery::on_io(PeerId id, std::uint32_t events) {
    // As in the broker (BrokerDelivery::on_io): out of memory while serving one client's socket (its
    // SASL exchange, its datagrams; the bus guards its own work on each message), that client ends,
    // alone, instead of the bus.
    try {
        handle_io(id, events);
    } catch (const std::bad_alloc&) {
        report_lost(id, "the bus ran out of memory serving it");
    }
}

void KernelDelivery::handle_io(PeerId id, std::uint32_t events) {
    Client* c = find(id);
    if (!c) return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (c->sasl) authenticate(*c);
        else read_messages(*c, (events & (EPOLLHUP | EPOLLERR)) != 0);
    }
    c = find(id);
    if (!c) return;
    if (events & EPOLLPRI) report_drops(*c);
    if (events & EPOLLOUT) {
        if (c->sasl) authenticate(*c);
        else send_queued(*c);
        c = find(id);
        if (!c) return;
    }
    update_watch(*c);
}

void KernelDelivery::authenticate(Client& c) {
    const PeerId id = c.id;
    // The SASL lines travel as datagrams, which af_bus_dbus.ko lets pass unparsed until the join.
    auto progress = c.sasl_stream.advance(c.transport->fd(), *c.sasl);
    if (!progress) {
        const SaslStreamError& error = progress.error();
        if (error.kind == SaslStreamError::Kind::Io && error.errno_value == ENOMEM)
            return retry_read_later(c);  // as for messages (read_messages)
        return report_failed(id, error.describe());
    }
    if (progress->kind != SaslProgress::Kind::Authenticated) return;
    // Each message is a datagram of its own: one behind BEGIN in the same datagram cannot be told apart.
    if (!progress->leftover.empty())
        return report_failed(id, "sent a message in the datagram of its SASL BEGIN");
    const bool unix_fds = c.sasl->unix_fd_agreed();
    if (auto admitted = events_.peer_authenticated(id, c.sasl->authenticated_uid()); !admitted) return;
    c.transport->set_unix_fd_passing(unix_fds);
    c.sasl.reset();
    if (c.auth_timer) loop_.cancel_timer(c.auth_timer);
    c.auth_timer = 0;
    read_messages(c, false);
}

void KernelDelivery::read_messages(Client& c, bool hung_up) {
    const PeerId id = c.id;
    if (!hung_up && !events_.may_read(id)) {
        if (!c.reading_paused) {
            c.reading_paused = true;
            paused_readers_.push_back(id);
        }
        return;
    }
    auto n = c.transport->read();
    for (;;) {
        Client* p = find(id);
        if (!p) return;
        auto received = p->transport->next();
        if (!received && received.error().kind == TransportError::Kind::Skipped) {
            // No memory for the message: its sender is answered (a call, NoMemory) and read on.
            events_.peer_message_skipped(id, received.error().skipped);
            continue;
        }
        if (!received && received.error().kind == TransportError::Kind::NoMemory)
            return report_lost(id, describe(received.error()));
        // Bytes that are not one D-Bus message, or fds that were not agreed on: the client's doing.
        if (!received) return report_refused(id, describe(received.error()));
        if (!*received) break;
        // Everything on a master-side socket comes from its own client (the kernel says so).
        Message& message = (*received)->message;
        // (A bridge's message reaches its master side only where the kernel found nobody at the address
        // it was sent to: the bridge holds nothing back for it.)
        const bool forwarded = !p->bridge && !p->unique_name.empty() && !message.destination().empty() &&
                               message.destination() != kDriverName;
        std::string destination;
        try {
            destination = forwarded ? message.destination() : std::string_view();
        } catch (const std::bad_alloc&) {
            // (Its notice could not be sent: the message is skipped as if it had not fitted.)
            events_.peer_message_skipped(
                id, SkippedMessage{message.type(), message.flags(), message.serial(), message.size()});
            continue;
        }
        events_.peer_sent(id, std::move(message));
        if (forwarded) acknowledge_forward(id, destination);
    }
    if (!n) {
        const TransportError& error = n.error();
        if (error.kind == TransportError::Kind::Io && error.error_number == ENOMEM) {
            if (Client* p = find(id)) retry_read_later(*p);
            return;
        }
        return fail_on(id, error);
    }
}

void KernelDelivery::retry_read_later(Client& c) {
    if (c.read_retry_timer) return;
    loop_.unwatch(c.transport->fd());
    c.epoll_events = 0;
    const PeerId id = c.id;
    c.read_retry_timer = loop_.add_timer(Clock::now() + kReadRetry, [this, id] {
        Client* p = find(id);
        if (!p) return;
        p->read_retry_timer = 0;
        if (!watch_client(*p)) return report_failed(id, EventLoop::watch_failure(errno));
        // Whatever waited is still queued: the socket is readable, and the loop reads it at once.
    });
}

bool KernelDelivery::watch_client(Client& c) {
    const PeerId peer = c.id;
    c.epoll_events = EPOLLIN | EPOLLPRI;
    if (!loop_.watch(c.transport->fd(), c.epoll_events,
                     [this, peer](std::uint32_t events) { on_io(peer, events); })) {
        c.epoll_events = 0;
        return false;
    }
    update_watch(c);  // reading (unless flow control holds it back) and writing, as wanted now
    return true;
}

void KernelDelivery::send_queued(Client& c) {
    auto flushed = c.transport->flush();
    for (const RefusedDatagram& refused : c.transport->take_refused()) {
        // The kernel refused one message the model routed (e.g. EDQUOT: the caller of a forwarded call
        // has too many calls outstanding; EHOSTUNREACH: the receiver left meanwhile).
        log_info("AF_BUS: the kernel refused a %s for %s: %s", std::string(to_string(refused.message->type())).c_str(),
                 c.unique_name.empty() ? "a client" : c.unique_name.c_str(), std::strerror(refused.error_number));
    }
    if (!flushed) {
        broken_.push_back({c.id, describe(flushed.error()), is_loss(flushed.error())});
        return;
    }
    if (!c.transport->wants_write() && !c.deferred_notices.empty()) {
        for (const Notice& notice : std::exchange(c.deferred_notices, {})) send_notice(notice);
    }
}

QueueLoad KernelDelivery::queued(PeerId peer) const {
    const Client* c = find(peer);
    if (!c) return broker_.queued(peer);
    QueueLoad load{c->transport->queued_messages(), c->transport->queued_bytes(), c->transport->queued_fds()};
    if (c->bridge) {
        // Through the kernel, then its unix socket: both hold what is on its way to it.
        const QueueLoad unix_side = broker_.queued(peer);
        load.messages += unix_side.messages;
        load.bytes += unix_side.bytes;
        load.fds += unix_side.fds;
    }
    return load;
}

bool KernelDelivery::passes_fds(PeerId peer) const {
    const Client* c = find(peer);
    return c ? c->transport->unix_fd_passing() : broker_.passes_fds(peer);
}

std::optional<std::string> KernelDelivery::cannot_carry(PeerId peer, const Message& message) const {
    const Client* c = find(peer);
    // A bridged client's unix side can take what the kernel cannot (deliver_around_the_kernel).
    if (!c || c->bridge || !carries_a_socket_af_bus_refuses(message, family_)) return std::nullopt;
    return "AF_BUS carries no sockets, and " + c->unique_name +
           " is connected through the kernel: a socket can only be passed to a client on the unix socket";
}

void KernelDelivery::drain_toward(Client& c) {
    // Everything already on its way to the client through the kernel (the master's queue for it, then
    // its bridge socket's queue) goes first, so that its order holds.
    for (;;) {
        const std::size_t waiting = c.transport->queued_messages();
        send_queued(c);
        bridge_read(c, true);
        if (!c.transport->wants_write() || c.transport->queued_messages() >= waiting) break;
    }
}

QueueLoad KernelDelivery::deliver_around_the_kernel(Client& c, std::shared_ptr<const Message> message) {
    drain_toward(c);
    // A call whose answer must come back the same way: the model tracks it (as for a forwarded call).
    const Message& m = *message;
    if (m.type() == MessageType::MethodCall && m.expects_reply() && m.sender().starts_with(':')) {
        Bridge& b = *c.bridge;
        if (b.forwarded_calls.size() >= kMaxForwardedCalls)
            b.forwarded_calls.erase(b.forwarded_calls.begin());
        b.forwarded_calls.emplace(std::string(m.sender()), m.serial());
    }
    return broker_.deliver(c.id, std::move(message));
}

QueueLoad KernelDelivery::deliver(PeerId peer, std::shared_ptr<const Message> message) {
    Client* c = find(peer);
    if (!c) return broker_.deliver(peer, std::move(message));
    if (c->bridge && !message->fds().empty() && carries_a_socket_af_bus_refuses(*message, family_))
        return deliver_around_the_kernel(*c, std::move(message));
    // A call from a native client that the master forwards: its callee learns the caller's address
    // first, so that the answer goes back through the kernel directly.
    // (A bridge needs no notices: the daemon knows every address. Nor does a native callee of a bridged
    // caller get one: its answer goes back through the model, which tracks the call.)
    if (!c->bridge && message->type() == MessageType::MethodCall && message->expects_reply()) {
        if (Client* caller = kernel_owner(message->sender()); caller && caller != c && !caller->bridge &&
                                                              caller->listener == c->listener &&
                                                              message->sender().starts_with(':'))
            enqueue_notice(*c, kPeerAddressMember, caller->unique_name, caller->address);
    }
    c->transport->enqueue(std::move(message), c->address);
    // Sent now, not at flush(): the notice that lets a forwarded message's sender go on may only
    // follow a message that is already in the kernel. But not to a native client the bus has not named
    // yet: its answer to Hello waits until unique_name_assigned() has joined it, so that nothing it
    // sends on that answer reaches the kernel before it is a member (a client that sends one signal and
    // exits would otherwise race its own join).
    if (c->bridge || !c->unique_name.empty()) send_queued(*c);
    update_watch(*c);
    return QueueLoad{c->transport->queued_messages(), c->transport->queued_bytes(), c->transport->queued_fds()};
}

QueueLoad KernelDelivery::deliver_copy(PeerId peer, std::shared_ptr<const Message> message) {
    Client* c = find(peer);
    // A bridged client's: to its unix side directly, not through the kernel, where a copy of a call the
    // master forwards would be recorded as a call to it, in place of the call to the callee, whose
    // answer the kernel would then drop. (A native client cannot eavesdrop or monitor.)
    if (!c || !c->bridge) return deliver(peer, std::move(message));
    drain_toward(*c);
    return broker_.deliver(peer, std::move(message));
}

KernelDelivery::Client* KernelDelivery::kernel_owner(std::string_view name) const {
    if (name.starts_with(':')) {
        auto it = by_unique_name_.find(name);
        return it == by_unique_name_.end() ? nullptr : find(it->second);
    }
    auto it = kernel_owners_.find(name);
    return it == kernel_owners_.end() ? nullptr : find(it->second);
}

void KernelDelivery::acknowledge_forward(PeerId sender, const std::string& destination) noexcept {
    try {
        send_or_defer_notice(sender, destination);
    } catch (const std::bad_alloc&) {
        note_out_of_step(sender, "the bus ran out of memory to tell it that its message was forwarded");
    }
}

void KernelDelivery::send_or_defer_notice(PeerId sender, const std::string& destination) {
    // Where the name lives, if a client in the kernel holds it; 0 (keep sending through the master) for
    // an unbridged unix client's name, one on another bus, or nobody's.
    Client* recipient = kernel_owner(destination);
    const Client* from = find(sender);
    std::uint64_t address = 0;
    if (recipient && from && recipient->listener != from->listener) {
        address = 0;
    } else if (recipient && destination.starts_with(':')) {
        address = recipient->address;
    } else if (recipient) {
        auto it = name_addresses_.find(destination);
        if (it != name_addresses_.end()) address = it->second;
    }
    Notice notice{sender, destination, address};
    // The sender may go on once what the master forwarded is in the kernel: behind whatever is still
    // queued here for the receiver, the notice waits for that queue to drain.
    if (recipient && recipient->transport->wants_write()) {
        recipient->deferred_notices.push_back(std::move(notice));
        return;
    }
    send_notice(notice);
}

void KernelDelivery::send_notice(const Notice& notice) {
    Client* sender = find(notice.sender);
    if (!sender || sender->unique_name.empty()) return;
    if (sender->bridge) return bridge_acknowledged(*sender);
    enqueue_notice(*sender, kNameAddressMember, notice.name, notice.address);
    send_queued(*sender);
    update_watch(*sender);
}

void KernelDelivery::enqueue_notice(Client& to, std::string_view member, const std::string& name, std::uint64_t address) {
    auto message = MessageBuilder::signal("/org/freedesktop/DBus", kKernelInterface, member);
    message.destination(to.unique_name).sender(kDriverName);
    append(message, name, address);
    if (auto built = message.build(take_serial())) to.transport->enqueue(std::move(*built), to.address);
}

void KernelDelivery::flush() {
    // Native clients accepted while a bridge looked for its master side.
    for (Fd& socket : std::exchange(accepted_early_, {})) add_client(std::move(socket), 0);
    broker_.flush();
    // Bridges that stopped reading for a full unix socket read again once it drained.
    bool resumed = false;
    const std::size_t low_water = std::max<std::size_t>(bridge_high_water() / 4, 1);
    for (auto& [id, c] : clients_) {
        if (!c->bridge || !c->bridge->reading_paused || broker_.queued(id).bytes >= low_water) continue;
        c->bridge->reading_paused = false;
        bridge_read(*c);
        bridge_update_watch(*c);
        resumed = true;
    }
    if (resumed) broker_.flush();
    // Failures found while sending are reported now, outside the model's routing. What the model
    // queues for unix clients as those peers leave (NameOwnerChanged, NoReply), and the unix sockets of
    // the bridged ones among them, go out and are closed in this turn too: traffic between clients in
    // the kernel brings the daemon no further turn.
    // Clients the kernel's tables could not follow go the same way.
    while (!broken_.empty() || !out_of_step_.empty()) {
        while (!out_of_step_.empty()) {
            const OutOfStep lost = out_of_step_.back();  // (popped, not exchanged: its room stays)
            out_of_step_.pop_back();
            report_lost(lost.id, lost.reason);
        }
        while (!broken_.empty()) {
            Broken broken = std::move(broken_.back());
            broken_.pop_back();
            if (!find(broken.id)) continue;
            if (broken.lost)
                report_lost(broken.id, broken.reason);
            else
                report_failed(broken.id, broken.reason);
        }
        broker_.flush();
    }
    std::erase_if(paused_readers_, [this](PeerId id) {
        Client* c = find(id);
        if (!c) return true;
        if (!events_.may_read(id)) return false;
        c->reading_paused = false;
        update_watch(*c);
        return true;
    });
    if (!listening_ && events_.may_accept()) watch_listeners(true);
    graveyard_.clear();
}

void KernelDelivery::report_drops(Client& c) {
    // Reading the counts resets the kernel's unread count, which is what raises EPOLLPRI.
    bus_qlenfull q{};
    socklen_t size = sizeof q;
    if (::getsockopt(c.transport->fd(), SOL_BUS, BUS_GET_QLENFULL, &q, &size) < 0) return;
    if (q.dropped_unread == 0) return;
    events_.copies_dropped(c.id, q.dropped_unread, QueueLoad{q.qlen, q.rmem, 0});
}

void KernelDelivery::update_watch(Client& c) {
    if (c.read_retry_timer) return;  // not watched until then
    const bool writing = c.transport->wants_write() || (c.sasl && c.sasl_stream.wants_write());
    // EPOLLPRI: af_bus.ko dropped broadcast copies for the client (its queue was full).
    const std::uint32_t wanted = (c.reading_paused ? 0u : EPOLLIN) | (writing ? EPOLLOUT : 0u) | EPOLLPRI;
    if (wanted == c.epoll_events) return;
    c.epoll_events = wanted;
    loop_.modify(c.transport->fd(), wanted);
}

void KernelDelivery::detach(PeerId peer) {
    assert(peers_ > 0);
    if (peers_ > 0) --peers_;
    std::erase_if(out_of_step_, [peer](const OutOfStep& noted) { return noted.id == peer; });
    unix_chains_.erase(peer);
    staged_unix_chains_.erase(peer);
    std::erase(monitors_, peer);
    eavesdroppers_.erase(peer);
    // Bridged callers still waiting for it get NoReply (after what it did answer). Leaving cannot fail:
    // without memory for those answers, each caller still waiting is ended at the flush instead (logged,
    // allocation-free), rather than left waiting for ever.
    try {
        bridge_callee_left(peer, "Message recipient disconnected from message bus without replying");
    } catch (const std::bad_alloc&) {
        if (auto waiting = bridge_callers_.find(peer); waiting != bridge_callers_.end())
            for (const auto& entry : waiting->second)
                note_out_of_step(entry.first,
                                 "the bus ran out of memory to tell it that a callee left without replying");
    }
    auto it = clients_.find(peer);
    if (it == clients_.end()) return broker_.detach(peer);
    Client& c = *it->second;
    loop_.unwatch(c.transport->fd());
    if (c.auth_timer) loop_.cancel_timer(c.auth_timer);
    if (c.read_retry_timer) loop_.cancel_timer(c.read_retry_timer);
    if (c.bridge) {
        // What the kernel still holds for it can no longer reach it; its unix side writes what it has.
        loop_.unwatch(c.bridge->transport->fd());
        if (c.bridge->read_retry_timer) loop_.cancel_timer(c.bridge->read_retry_timer);
        if (c.bridge->pump_retry_timer) loop_.cancel_timer(c.bridge->pump_retry_timer);
        while (!c.bridge->pending_calls.empty()) bridge_forget_call(c, c.bridge->pending_calls.begin());
        c.bridge->call_order.clear();
        ::shutdown(c.bridge->transport->fd(), SHUT_RDWR);
        broker_.detach(peer);
    }
    (void)c.transport->flush();  // best effort: the last error reply may still go out
    ::shutdown(c.transport->fd(), SHUT_RDWR);
    if (!c.unique_name.empty()) by_unique_name_.erase(c.unique_name);
    for (const Client::Record& record : c.records) unwatch_sender(record, peer);
    // Its receivers will never see what was still queued for it: their senders may go on.
    for (const Notice& notice : std::exchange(c.deferred_notices, {})) send_notice(notice);
    graveyard_.push_back(std::move(it->second));
    clients_.erase(it);
}

bool KernelDelivery::set_option(const Client& c, int option, const void* value, std::size_t size, const char* what) {
    return set_option_errno(c, option, value, size, what) == 0;
}

int KernelDelivery::set_option_errno(const Client& c, int option, const void* value, std::size_t size,
                                     const char* what) {
    if (::setsockopt(c.transport->fd(), SOL_BUS, option, value, static_cast<socklen_t>(size)) == 0) return 0;
    const int error = errno;
    if (error == ENOTCONN) return error;  // the client left: its failure is on its way
    log_warning("AF_BUS: could not %s for %s: %s", what, c.unique_name.empty() ? "a client" : c.unique_name.c_str(),
                std::strerror(error));
    return error;
}

template <class Change>
void KernelDelivery::mirror(PeerId peer, Change&& change) noexcept {
    try {
        change();
    } catch (const std::bad_alloc&) {
        note_out_of_step(peer, "the bus ran out of memory mirroring it in the kernel");
    }
}

void KernelDelivery::note_out_of_step(PeerId peer, const char* reason) noexcept {
    for (const OutOfStep& noted : out_of_step_)
        if (noted.id == peer) return;
    // Each peer once, and room for every peer was made as it connected (peer_connected).
    assert(out_of_step_.size() < out_of_step_.capacity());
    out_of_step_.push_back({peer, reason});
}

void KernelDelivery::unique_name_assigned(PeerId peer, std::string_view unique_name) noexcept {
    mirror(peer, [&] {
        Client* c = find(peer);
        // A unix client: into the kernel through its bridge, named and joined as a native client is.
        if (!c && bridge_unix_client(peer)) c = find(peer);
        if (!c) return;  // (the broker mirrors nothing)
        c->unique_name = std::string(unique_name);
        // Named first: from the join on, the kernel checks its SENDER against this name; its policy
        // before it can send anything (without chains the kernel would deny it everything).
        int error = set_option_errno(*c, BUS_DBUS_SET_NAME, unique_name.data(), unique_name.size(),
                                     "set the unique name");
        if (error == 0) error = install_chains(*c);
        if (error == 0) error = set_option_errno(*c, BUS_JOIN_BUS, nullptr, 0, "join the bus");
        // ENOTCONN: it left before its Hello was answered (it sent Hello and more at once, and exited).
        // What it sent went to the master, and its socket gives that, then the end: it leaves as any
        // client does, its last words routed.
        if (error == 0 || error == ENOTCONN) by_unique_name_[c->unique_name] = peer;
        // Its answer to Hello, held until now (deliver): whatever it sends once it has its name, the
        // kernel takes as from a member of the bus.
        if (!c->bridge) {
            send_queued(*c);
            update_watch(*c);
        }
        if (error != 0 && error != ENOTCONN)
            note_out_of_step(peer, "the kernel refused to admit it to the bus");
    });
}

void KernelDelivery::name_owner_changed(const NameChange& change) noexcept {
    if (change.name.starts_with(':')) return;
    Client* new_owner = change.new_owner ? find(*change.new_owner) : nullptr;
    Client* old_owner = change.old_owner ? find(*change.old_owner) : nullptr;
    if (new_owner) {
        bool owned = false;
        mirror(new_owner->id, [&] {
            kernel_owners_[change.name] = new_owner->id;
            owned = true;
        });
        // Else, with the old owner's entry gone, the name looks unowned in the kernel until its owner,
        // out of step, is lost.
        if (!owned) kernel_owners_.erase(change.name);
    } else {
        kernel_owners_.erase(change.name);
    }
    // Rules naming the name as sender now name its new owner, before anyone hears of the change (the
    // model announces it after this): a broadcast the old owner sent before is judged by its old records.
    if (auto watchers = sender_watchers_.find(change.name); watchers != sender_watchers_.end()) {
        const std::multiset<PeerId>& peers = watchers->second;  // once per rule: each peer once here
        for (auto it = peers.begin(); it != peers.end(); it = peers.upper_bound(*it)) {
            if (Client* watcher = find(*it)) follow_sender(*watcher, change.name);
        }
    }
    if (new_owner) {
        // A name never owned before gets its address; without memory for it, the name has none (sends
        // to it reach the master, which routes them: slower, still right; no old owner can hold one).
        std::uint64_t name_address = 0;
        try {
            auto [it, added] = name_addresses_.try_emplace(change.name, 0);
            if (added) it->second = BUS_ADDR(1, next_name_address_++);
            name_address = it->second;
        } catch (const std::bad_alloc&) {
            return;
        }
        // Taken from the old owner in one hold of the bus lock: a send to the name reaches one of them.
        const bus_addr address{name_address};
        if (!set_option(*new_owner, BUS_MOVE_ADDR, &address, sizeof address, "move a name's address")) {
            // Sends to the name then reach the master, which routes them: slower, still right.
            if (old_owner) (void)set_option(*old_owner, BUS_DEL_ADDR, &address, sizeof address, "remove a name's address");
        }
        return;
    }
    if (!old_owner) return;
    auto it = name_addresses_.find(change.name);
    if (it == name_addresses_.end()) return;
    const bus_addr address{it->second};
    (void)set_option(*old_owner, BUS_DEL_ADDR, &address, sizeof address, "remove a name's address");
}

void KernelDelivery::follow_sender(Client& watcher, std::string_view name) noexcept {
    // A record left uninstalled would miss the new owner's broadcasts.
    mirror(watcher.id, [&] {
        for (Client::Record& record : watcher.records) {
            if (watched_sender(record.rule) != name) continue;
            uninstall_record(watcher, record);
            if (refused(install_record(watcher, record)))
                return note_out_of_step(watcher.id, "the kernel refused a match record naming a new owner");
        }
    });
}

std::optional<Delivery::Refusal> KernelDelivery::match_added(PeerId peer, const MatchRule& rule) noexcept {
    // Room before change: what allocates comes first, each step undone if a later one fails, and the
    // record reaches the kernel last.
    const bool eavesdrop = rule.eavesdrop().value_or(false);
    Client* c = find(peer);
    // A native client would get the model's copies of what it routes through the kernel, where a copy
    // of a call the master forwards is taken for a call to it (the callee's answer then dropped), and
    // none of what clients send each other directly: it eavesdrops on the unix socket instead.
    if (eavesdrop && c && !c->bridge) return Refusal::NotSupported;
    // A bridged client's first eavesdropping rule: the kernel copies it the traffic between other
    // clients, which no longer passes through the daemon (judged in bridge_take).
    const bool first_bridged_eavesdropper =
        eavesdrop && c && c->bridge && !c->monitor && !eavesdroppers_.contains(peer);
    std::optional<std::multiset<PeerId>::iterator> eavesdropping;
    std::optional<Client::Record> record;
    bool watching = false;
    const auto undo = [&] {
        if (record) uninstall_record(*c, *record);
        if (watching) unwatch_sender(*record, peer);
        if (eavesdropping) eavesdroppers_.erase(*eavesdropping);
    };
    int error = 0;
    try {
        if (c) {
            make_room(c->records);
            record.emplace(Client::Record{rule, {}});
        }
        if (eavesdrop) eavesdropping = eavesdroppers_.insert(peer);
        if (record) {
            watch_sender(*record, peer);
            watching = true;
            error = install_record(*c, *record);
        }
        if (first_bridged_eavesdropper && !error) error = set_bridged_eavesdropping(*c, true);
    } catch (const std::bad_alloc&) {
        undo();
        return Refusal::NoMemory;
    }
    if (refused(error)) {
        undo();
        if (error == ENOSPC) return Refusal::LimitsExceeded;  // the kernel's own limit of records
        return error == ENOMEM ? Refusal::NoMemory : Refusal::Failed;
    }
    if (record) c->records.push_back(std::move(*record));  // room was made
    return std::nullopt;
}

void KernelDelivery::match_removed(PeerId peer, const MatchRule& rule) noexcept {
    Client* c = find(peer);
    if (rule.eavesdrop().value_or(false)) {
        if (auto it = eavesdroppers_.find(peer); it != eavesdroppers_.end()) {
            eavesdroppers_.erase(it);
            // Its last one: no more copies. (Should the kernel refuse, what it copies is judged by
            // rules that no longer ask for it, and dropped.)
            if (c && c->bridge && !c->monitor && !eavesdroppers_.contains(peer))
                (void)set_bridged_eavesdropping(*c, false);
        }
    }
    if (!c) return;
    auto it = std::find_if(c->records.begin(), c->records.end(), [&rule](const Client::Record& r) { return r.rule == rule; });
    if (it == c->records.end()) return;
    uninstall_record(*c, *it);
    unwatch_sender(*it, peer);
    c->records.erase(it);
}

std::optional<std::string_view> KernelDelivery::watched_sender(const MatchRule& rule) {
    auto sender = rule.sender();
    if (!sender || sender->starts_with(':') || *sender == kDriverName) return std::nullopt;
    return sender;
}

int KernelDelivery::install_record(Client& c, Client::Record& record) {
    const auto watched = watched_sender(record.rule);
    const Client* owner = watched ? kernel_owner(*watched) : nullptr;
    if (watched && (!owner || owner->unique_name.empty())) return 0;
    const MatchRule in_kernel = watched ? record.rule.with_sender(owner->unique_name) : record.rule;
    const auto compiled = in_kernel.compiled();
    std::string bytes(reinterpret_cast<const char*>(compiled.data()), compiled.size());
    const int error = set_option_errno(c, BUS_DBUS_ADD_MATCH, bytes.data(), bytes.size(), "install a match record");
    if (!error) record.in_kernel = std::move(bytes);
    return error;
}

void KernelDelivery::uninstall_record(Client& c, Client::Record& record) {
    if (record.in_kernel.empty()) return;  // none installed (no owner in the kernel, or the kernel refused it)
    (void)set_option(c, BUS_DBUS_REMOVE_MATCH, record.in_kernel.data(), record.in_kernel.size(), "remove a match record");
    record.in_kernel.clear();
}

void KernelDelivery::watch_sender(const Client::Record& record, PeerId peer) {
    if (const auto watched = watched_sender(record.rule)) sender_watchers_[std::string(*watched)].insert(peer);
}

void KernelDelivery::unwatch_sender(const Client::Record& record, PeerId peer) {
    const auto watched = watched_sender(record.rule);
    if (!watched) return;
    auto watchers = sender_watchers_.find(*watched);
    if (watchers == sender_watchers_.end()) return;
    if (auto it = watchers->second.find(peer); it != watchers->second.end()) watchers->second.erase(it);
    if (watchers->second.empty()) sender_watchers_.erase(watchers);
}

void KernelDelivery::became_monitor(PeerId peer, const std::vector<MatchRule>& rules) noexcept {
    eavesdroppers_.erase(peer);  // its match rules are gone
    mirror(peer, [&] {
        assert(monitors_.size() < monitors_.capacity());
        if (std::find(monitors_.begin(), monitors_.end(), peer) == monitors_.end()) monitors_.push_back(peer);
        Client* c = find(peer);
        if (!c) return broker_.became_monitor(peer, rules);
        c->monitor = true;
        // No subscriptions in the kernel: a monitor receives what the model copies to it (the bus's own
        // traffic and what it routes) and, bridged, the kernel's copy of the traffic between clients.
        for (Client::Record& record : c->records) {
            uninstall_record(*c, record);
            unwatch_sender(record, peer);
        }
        c->records.clear();
        // A monitor cannot answer: the calls bridged clients made to it directly get NoReply now, as the
        // model answers those it routed.
        bridge_callee_left(peer, "Message did not receive a reply (timeout by message bus)");
        if (!c->bridge) return;
        c->monitor_rules = rules;
        const int flags = 1 | BUS_EAVESDROP_MONITOR;
        if (refused(set_option_errno(*c, BUS_SET_EAVESDROP, &flags, sizeof flags,
                                     "let a monitor see the traffic between clients")))
            note_out_of_step(peer, "the kernel refused to show it the traffic between clients");
    });
}

bool KernelDelivery::addressed_to(const Client& c, std::string_view destination) const {
    return !destination.empty() && (destination == c.unique_name || kernel_owner(destination) == &c);
}

int KernelDelivery::set_bridged_eavesdropping(Client& c, bool on) {
    // As the bus's monitors get them: the traffic between clients only (what the master sends and
    // receives the model copies itself), and unchecked, since the model judges each copy as it judges
    // its own (gives_copy: the client's rules, policy's eavesdrop rules, fds).
    const int flags = 1 | BUS_EAVESDROP_MONITOR;
    return on ? set_option_errno(c, BUS_SET_EAVESDROP, &flags, sizeof flags,
                                 "let an eavesdropper see the traffic between clients")
              : set_option_errno(c, BUS_UNSET_EAVESDROP, nullptr, 0, "stop an eavesdropper's copies");
}

bool KernelDelivery::monitor_wants(const Client& c, const Message& message) const {
    if (c.monitor_rules.empty()) return true;
    const auto id_of = [this](std::string_view name) -> std::optional<PeerId> {
        if (const Client* owner = kernel_owner(name)) return owner->id;
        return std::nullopt;
    };
    const std::optional<PeerId> sender = id_of(message.sender());
    const std::optional<PeerId> addressed = message.destination().empty() ? std::nullopt : id_of(message.destination());
    const MatchRegistry::IsNamedBy is_named_by = [&id_of](PeerId p, std::string_view name) { return id_of(name) == p; };
    return std::any_of(c.monitor_rules.begin(), c.monitor_rules.end(), [&](const MatchRule& rule) {
        return MatchRegistry::rule_matches(rule, message, sender, addressed, is_named_by);
    });
}

// --- the bridge: unix clients in the kernel ---

bool KernelDelivery::bridge_unix_client(PeerId peer) {
    // Out of memory, as when the kernel will not: nothing of the bridge stays (what was made is freed,
    // a master side not yet accepted is taken later as a client whose other end is gone).
    try {
        return make_bridge(peer);
    } catch (const std::bad_alloc&) {
        log_warning("AF_BUS: could not bridge a unix client into the kernel (out of memory); the daemon routes for it");
        return false;
    }
}

bool KernelDelivery::make_bridge(PeerId peer) {
    if (!bridge_address_ || listeners_.empty()) return false;
    const auto refuse = [&](std::string_view why) {
        log_warning("AF_BUS: could not bridge a unix client into the kernel (%.*s); the daemon routes for it",
                    static_cast<int>(why.size()), why.data());
        return false;
    };
    auto socket = connect_af_bus(*bridge_address_);
    if (!socket) return refuse(socket.error().describe());
    const auto own = af_bus_local_address(socket->fd.get(), family_);
    if (!own) return refuse("the bridge has no address");
    // Its master side waits in the listener's queue, possibly behind native clients that came first:
    // they are admitted at the next flush().
    Fd master_side;
    while (!master_side) {
        Fd accepted(::accept4(listeners_.front().get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!accepted) return refuse(std::string("accept: ") + std::strerror(errno));
        sockaddr_bus peer_address{};
        socklen_t length = sizeof peer_address;
        if (::getpeername(accepted.get(), reinterpret_cast<sockaddr*>(&peer_address), &length) == 0 &&
            peer_address.sbus_addr.s_addr == *own)
            master_side = std::move(accepted);
        else
            accepted_early_.push_back(std::move(accepted));
    }
    make_room(graveyard_, clients_.size() + 1);  // detach() must not allocate
    auto client = std::make_unique<Client>();
    client->id = peer;
    client->address = *own;
    client->listener = 0;
    const bool unix_fds = broker_.passes_fds(peer);
    client->transport = std::make_unique<DatagramTransport>(std::move(master_side), family_);
    client->transport->set_unix_fd_passing(unix_fds);
    client->bridge = std::make_unique<Bridge>();
    client->bridge->transport = std::make_unique<DatagramTransport>(std::move(socket->fd), family_);
    // It takes whatever fds the kernel brings (refusing them would break it); bridge_read keeps them from
    // a client that did not agree to fds.
    client->bridge->transport->set_unix_fd_passing(true);
    if (auto chains = unix_chains_.find(peer); chains != unix_chains_.end()) {
        client->chains = std::move(chains->second);
        unix_chains_.erase(chains);
    }
    Client& c = *clients_.emplace(peer, std::move(client)).first->second;
    const bool watched = watch_client(c);
    if (!watched || !loop_.watch(c.bridge->transport->fd(), EPOLLIN,
                                 [this, peer](std::uint32_t events) { on_bridge_io(peer, events); })) {
        if (watched) loop_.unwatch(c.transport->fd());
        clients_.erase(peer);
        return refuse(EventLoop::watch_failure(errno));
    }
    c.bridge->epoll_events = EPOLLIN;
    return true;
}

bool KernelDelivery::unix_peer_may_read(PeerId peer) const {
    if (!events_.may_read(peer)) return false;
    const Client* c = find(peer);
    if (!c || !c->bridge) return true;
    // What it sent and the kernel could not take yet (a full receiver), or the fence holds: read on
    // once that is small again, so a client that floods one slow receiver waits, not the bus.
    return c->bridge->held_bytes < kBridgeHighWater &&
           c->bridge->transport->queued_bytes() < kBridgeHighWater;
}

void KernelDelivery::unix_peer_sent(PeerId peer, Message message) {
    Client* c = find(peer);
    // Before Hello (no bridge yet), or a monitor: the model deals with it.
    if (!c || !c->bridge || c->unique_name.empty() || c->monitor)
        return events_.peer_sent(peer, std::move(message));
    const std::uint64_t handoffs = bridge_handoffs_;
    try {
        bridge_send(*c, std::move(message));
    } catch (const std::bad_alloc&) {
        if (bridge_handoffs_ != handoffs) throw;  // it is on its way: the failure is the client's (on_io)
        // Not handed on: `message` is still here.
        c = find(peer);
        if (c && c->bridge && is_reply(message)) return bridge_hold_answer(*c, std::move(message));
        events_.peer_message_skipped(
            peer, SkippedMessage{message.type(), message.flags(), message.serial(), message.size()});
    }
}

void KernelDelivery::bridge_hold_answer(Client& c, Message&& answer) noexcept {
    Bridge& b = *c.bridge;
    const PeerId id = c.id;
    try {
        const std::size_t size = answer.size();
        b.held.push_front(std::move(answer));  // (moves nothing when it throws)
        b.held_bytes += size;
        if (!b.pump_retry_timer) {
            b.pump_retry_timer = loop_.add_timer(Clock::now() + kReadRetry, [this, id] {
                Client* p = find(id);
                if (!p || !p->bridge) return;
                p->bridge->pump_retry_timer = 0;
                // (A timer's work: nothing may leave the loop.)
                try {
                    bridge_pump(*p);
                } catch (const std::bad_alloc&) {
                    note_out_of_step(id, "the bus ran out of memory serving it");
                }
            });
        }
    } catch (const std::bad_alloc&) {
        note_out_of_step(id, "the bus ran out of memory for an answer it sent, and to keep it");
    }
}

void KernelDelivery::bridge_send(Client& c, Message&& message) {
    Bridge& b = *c.bridge;
    // Held while something of its is still on the way: a message the model routes (the fence), or ones
    // the kernel could not take yet (the bridge's queue), which a message through the model could
    // otherwise overtake.
    if (b.awaited_acknowledgements > 0 || !b.held.empty() || b.transport->wants_write()) {
        const std::size_t size = message.size();
        b.held.push_back(std::move(message));
        b.held_bytes += size;
        ++bridge_handoffs_;
        return;
    }
    bridge_route(c, std::move(message));
}

void KernelDelivery::bridge_route(Client& c, Message&& message) {
    const std::string_view destination = message.destination();
    // The bus itself (its answers come back through the kernel), and what the model must refuse as it
    // would in broker mode (too large: it disconnects the sender).
    if (destination == kDriverName || (destination.empty() && message.type() != MessageType::Signal) ||
        message.size() > static_cast<std::size_t>(settings_.max_message_size)) {
        ++bridge_handoffs_;
        return events_.peer_sent(c.id, std::move(message));
    }
    // An answer to a call a client sent it through the kernel settles the bridge's record of that call,
    // whichever way the answer goes.
    bool answers_a_direct_call = false;
    const auto serial = message.reply_serial();
    if (serial && is_reply(message) && destination.starts_with(':')) {
        if (const Client* caller = kernel_owner(destination))
            answers_a_direct_call = c.bridge->direct_calls.erase({caller->address, *serial}) != 0;
    }
    if (destination.empty() && !monitors_.empty()) return bridge_through_model(c, std::move(message));
    // A socket cannot cross AF_BUS: the model routes it (to a bridged client's unix side, or refuses it
    // as cannot_carry says), and an answer to a call that went through the kernel goes around it.
    if (!message.fds().empty() && carries_a_socket_af_bus_refuses(message, family_)) {
        if (answers_a_direct_call && bridge_answer_around_the_kernel(c, message)) return;
        // (The answer to a call the model forwarded: the model tracks it.)
        if (bridge_answer_through_model(c, std::move(message))) return;
        return bridge_through_model(c, std::move(message));
    }
    // Eavesdropping match rules (eavesdrop='true') get copies of what the model routes: while any
    // client has one, bridged clients' messages for others go that way.
    if (!destination.empty() && !eavesdroppers_.empty()) return bridge_through_model(c, std::move(message));
    std::uint64_t address = kBroadcastAddress;
    const Client* callee = nullptr;
    if (!destination.empty()) {
        // The model forwarded the call: it tracks it.
        if (bridge_answer_through_model(c, std::move(message))) return;
        const Client* target = kernel_owner(destination);
        // Directly only where nothing the master queued for the receiver could be overtaken.
        if (!target || target->listener != c.listener || target->transport->wants_write())
            return bridge_through_model(c, std::move(message));
        if (destination.starts_with(':')) {
            address = target->address;
        } else {
            auto it = name_addresses_.find(std::string(destination));
            if (it == name_addresses_.end()) return bridge_through_model(c, std::move(message));
            address = it->second;
        }
        callee = target;
    }
    // The kernel checks the SENDER against the name it knows: the one the broker would set.
    auto stitched = message.with_sender(c.unique_name);
    if (!stitched) {
        ++bridge_handoffs_;
        return events_.peer_sent(c.id, std::move(message));  // the model refuses it as the broker does
    }
    const bool tracked = callee && stitched->type() == MessageType::MethodCall && stitched->expects_reply();
    const std::uint32_t call_serial = stitched->serial();
    if (tracked) bridge_expect_reply(c, call_serial, callee->id);
    Bridge& b = *c.bridge;
    try {
        b.transport->enqueue(std::move(*stitched), address);
    } catch (const std::bad_alloc&) {
        // Not sent: not awaited either.
        if (auto it = b.pending_calls.find(call_serial); tracked && it != b.pending_calls.end())
            bridge_forget_call(c, it);
        throw;
    }
    ++bridge_handoffs_;
    (void)bridge_flush(c);
    bridge_update_watch(c);
}

bool KernelDelivery::bridge_flush(Client& c) {
    auto flushed = c.bridge->transport->flush();
    bridge_answer_refused(c);
    if (!flushed)
        broken_.push_back(
            {c.id, "its AF_BUS bridge broke: " + describe(flushed.error()), is_loss(flushed.error())});
    return static_cast<bool>(flushed);
}

bool KernelDelivery::bridge_answer_around_the_kernel(Client& c, Message& answer) {
    const auto serial = answer.reply_serial();
    Client* caller = kernel_owner(answer.destination());
    if (!serial || !caller) return false;
    // (af_bus_dbus.ko's record of the call lapses at the reply timeout, or when either side leaves.)
    if (!caller->bridge) {
        // A native caller cannot be given the socket: the bus answers for its callee, as the model
        // answers a call whose answer cannot reach its caller (Bus::route_to).
        const std::string why = cannot_carry(caller->id, answer).value_or("AF_BUS carries no sockets");
        auto error = MessageBuilder::error(caller->unique_name, *serial, error_names::kNotSupported, why);
        error.sender(kDriverName);
        if (auto built = error.build(take_serial()))
            caller->transport->enqueue(std::move(*built), caller->address);
        send_queued(*caller);
        update_watch(*caller);
        return true;
    }
    auto stitched = answer.with_sender(c.unique_name);
    if (!stitched) return false;  // the model refuses it as the broker does
    auto& pending_calls = caller->bridge->pending_calls;
    if (auto pending = pending_calls.find(*serial); pending != pending_calls.end())
        bridge_forget_call(*caller, pending);
    deliver_around_the_kernel(*caller, std::make_shared<const Message>(std::move(*stitched)));
    return true;
}

bool KernelDelivery::bridge_answer_through_model(Client& c, Message&& message) {
    const auto serial = message.reply_serial();
    if (!serial || !is_reply(message)) return false;
    const std::pair<std::string, std::uint32_t> call{std::string(message.destination()), *serial};
    if (!c.bridge->forwarded_calls.contains(call)) return false;
    const PeerId id = c.id;
    bridge_through_model(c, std::move(message));
    // Forgotten once handed on: an answer held for a retry (bridge_hold_answer) still answers it.
    if (Client* p = find(id); p && p->bridge) p->bridge->forwarded_calls.erase(call);
    return true;
}

void KernelDelivery::bridge_through_model(Client& c, Message&& message) {
    const PeerId id = c.id;
    const std::string destination(message.destination());
    // Nothing more of its leaves until this one is in the kernel (acknowledge_forward says when).
    ++c.bridge->awaited_acknowledgements;
    ++bridge_handoffs_;
    events_.peer_sent(id, std::move(message));
    if (!find(id)) return;  // the model disconnected it
    acknowledge_forward(id, destination);
}

void KernelDelivery::bridge_acknowledged(Client& c) {
    Bridge& b = *c.bridge;
    if (b.awaited_acknowledgements > 0) --b.awaited_acknowledgements;
    bridge_pump(c);
}

void KernelDelivery::bridge_pump(Client& c) {
    Bridge& b = *c.bridge;
    if (b.pumping) return;  // the loop below goes on
    const PeerId id = c.id;
    b.pumping = true;
    while (b.awaited_acknowledgements == 0 && !b.transport->wants_write() && !b.held.empty()) {
        Message next = std::move(b.held.front());
        b.held.pop_front();
        b.held_bytes -= next.size();
        // As unix_peer_sent: out of memory before it was handed on, an answer is held again and the
        // pump tried later, anything else skipped (a call answered NoMemory); after, the failure ends
        // the client. The hold is not left marked as pumping.
        const std::uint64_t handoffs = bridge_handoffs_;
        try {
            bridge_route(c, std::move(next));
        } catch (const std::bad_alloc&) {
            if (Client* p = find(id); p && p->bridge) p->bridge->pumping = false;
            if (bridge_handoffs_ != handoffs) throw;
            if (!find(id)) return;
            if (is_reply(next)) return bridge_hold_answer(c, std::move(next));
            events_.peer_message_skipped(
                id, SkippedMessage{next.type(), next.flags(), next.serial(), next.size()});
        }
        if (!find(id)) return;
        b.pumping = true;
    }
    b.pumping = false;
}

void KernelDelivery::bridge_answer_refused(Client& c) {
    const PeerId id = c.id;
    for (const RefusedDatagram& refused : c.bridge->transport->take_refused()) {
        const Message& message = *refused.message;
        if (message.type() == MessageType::MethodCall) {
            auto& pending_calls = c.bridge->pending_calls;
            if (auto pending = pending_calls.find(message.serial()); pending != pending_calls.end())
                bridge_forget_call(c, pending);
        }
        // Refused by policy: the model judges it again and does what the broker does with a refusal (the
        // error to the sender, the message and the error shown to monitors, log="true" rules logged) —
        // all but a reply, which the model does not know the call of (it went through the kernel).
        if (refused.error_number == EACCES && !is_reply(message)) {
            if (auto copy = message.clone()) {
                bridge_through_model(c, std::move(*copy));
                if (!find(id)) return;
                continue;
            }
        }
        // (A full receiver's refusals are counted by the kernel and logged once per episode, as drops.)
        if (refused.error_number != EXFULL)
            log_info("AF_BUS: the kernel refused a %s from %s to %s: %s", std::string(to_string(message.type())).c_str(),
                     c.unique_name.c_str(), std::string(message.destination()).c_str(), std::strerror(refused.error_number));
        // A refused reply gets an error too: as from the broker, the sender learns why, whatever the
        // message's type; other refused messages that want no answer get none.
        const bool refused_reply = is_reply(message) && refused.error_number == EACCES;
        if (!refused_reply && (message.type() != MessageType::MethodCall || !message.expects_reply())) continue;
        // As libafbus answers its application, and the broker its client: the error the bus would give.
        const Error e = detail::refused_send_error(refused.error_number, message.destination());
        auto error = MessageBuilder::error(c.unique_name, message.serial(), e.name, e.message);
        error.sender(kDriverName);
        if (auto built = error.build(take_serial())) broker_.deliver(c.id, std::make_shared<const Message>(std::move(*built)));
    }
}

void KernelDelivery::bridge_expect_reply(Client& c, std::uint32_t serial, PeerId callee) {
    auto& calls = c.bridge->pending_calls;
    if (auto old = calls.find(serial); old != calls.end()) bridge_forget_call(c, old);
    EventLoop::TimerId timer = 0;
    if (settings_.reply_timeout_ms >= 0) {
        const PeerId caller = c.id;
        timer = loop_.add_timer(Clock::now() + std::chrono::milliseconds(settings_.reply_timeout_ms), [this, caller, serial] {
            Client* p = find(caller);
            if (!p || !p->bridge) return;
            auto it = p->bridge->pending_calls.find(serial);
            if (it == p->bridge->pending_calls.end()) return;
            it->second.timer = 0;
            // The kernel drops an answer after this too. Out of memory for the NoReply (a timer's work
            // must not throw out of the loop), the caller is ended at the flush instead of left waiting.
            try {
                bridge_no_reply(*p, serial, "Message did not receive a reply (timeout by message bus)");
            } catch (const std::bad_alloc&) {
                note_out_of_step(caller, "the bus ran out of memory to tell it that a call timed out");
            }
        });
    }
    // Whole or not at all: what allocates first, each step undone if a later one fails.
    auto& order = c.bridge->call_order;
    try {
        order.push_back(serial);  // (a serial without its call is skipped when met)
        auto [call, added] = calls.try_emplace(serial, Bridge::PendingCall{callee, timer});
        assert(added);
        try {
            ++bridge_callers_[callee][c.id];
        } catch (const std::bad_alloc&) {
            if (auto callers = bridge_callers_.find(callee);
                callers != bridge_callers_.end() && callers->second.empty())
                bridge_callers_.erase(callers);
            calls.erase(call);
            throw;
        }
    } catch (const std::bad_alloc&) {
        if (timer) loop_.cancel_timer(timer);
        throw;
    }
    while (calls.size() > kernel_max_replies() && !order.empty()) {
        const std::uint32_t oldest = order.front();
        order.pop_front();
        auto it = calls.find(oldest);
        if (it == calls.end() || oldest == serial) continue;
        bridge_forget_call(c, it);
    }
    // Keep the order list near the map's size: drop the serials already answered, in order.
    if (order.size() > 2 * calls.size() + 64) {
        std::erase_if(order, [&calls](std::uint32_t s) { return !calls.contains(s); });
    }
}

void KernelDelivery::bridge_no_reply(Client& c, std::uint32_t serial, std::string_view why) {
    auto it = c.bridge->pending_calls.find(serial);
    if (it == c.bridge->pending_calls.end()) return;
    // The answer first: out of memory, the call is still pending, and whoever asked knows it is owed.
    auto error = MessageBuilder::error(c.unique_name, serial, error_names::kNoReply, why);
    error.sender(kDriverName);
    auto built = error.build(take_serial());
    if (built) broker_.deliver(c.id, std::make_shared<const Message>(std::move(*built)));
    bridge_forget_call(c, it);  // (deliver changes no pending call: `it` holds)
}

void KernelDelivery::bridge_forget_call(Client& c, PendingCalls::iterator call) {
    if (call->second.timer) loop_.cancel_timer(call->second.timer);
    auto callers = bridge_callers_.find(call->second.callee);
    assert(callers != bridge_callers_.end());
    auto count = callers->second.find(c.id);
    assert(count != callers->second.end() && count->second > 0);
    if (--count->second == 0) {
        callers->second.erase(count);
        if (callers->second.empty()) bridge_callers_.erase(callers);
    }
    c.bridge->pending_calls.erase(call);
}

void KernelDelivery::bridge_callee_left(PeerId callee, const char* why) {
    auto waiting = bridge_callers_.find(callee);
    if (waiting == bridge_callers_.end()) return;
    std::vector<PeerId> callers;
    callers.reserve(waiting->second.size());
    for (const auto& [caller, calls] : waiting->second) callers.push_back(caller);
    for (PeerId caller : callers) {
        Client* c = find(caller);
        if (!c || !c->bridge || caller == callee) continue;
        // Its answers sent before it left are in the kernel's queue for this bridge: they go first.
        bridge_read(*c, true);
        c = find(caller);
        if (!c || !c->bridge) continue;
        std::vector<std::uint32_t> orphaned;
        for (const auto& [serial, call] : c->bridge->pending_calls)
            if (call.callee == callee) orphaned.push_back(serial);
        for (std::uint32_t serial : orphaned)
            bridge_no_reply(*c, serial, why);
    }
}

void KernelDelivery::on_bridge_io(PeerId id, std::uint32_t events) {
    // The same for what the bridge carries between the kernel and the unix client.
    try {
        handle_bridge_io(id, events);
    } catch (const std::bad_alloc&) {
        report_lost(id, "the bus ran out of memory serving it");
    }
}

void KernelDelivery::handle_bridge_io(PeerId id, std::uint32_t events) {
    Client* c = find(id);
    if (!c || !c->bridge) return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) bridge_read(*c);
    c = find(id);
    if (!c) return;
    if (events & EPOLLOUT) {
        const bool flushed = bridge_flush(*c);
        // What waited behind the bridge's queue may go now.
        if (!find(id)) return;
        if (flushed) bridge_pump(*c);
        c = find(id);
        if (!c) return;
    }
    bridge_update_watch(*c);
}

void KernelDelivery::bridge_take(Client& c, ReceivedDatagram received) {
    Bridge& b = *c.bridge;
    Message& message = received.message;
    // A monitor's copies from the kernel (not from the master: the model's own, filtered already).
    if (c.monitor && received.source != 0 && !monitor_wants(c, message)) return;
    // An eavesdropper's from the kernel: the traffic between other clients, which the model judges.
    if (!c.monitor && received.source != 0 && eavesdroppers_.contains(c.id) &&
        !addressed_to(c, message.destination())) {
        if (events_.gives_copy(c.id, message))
            broker_.deliver(c.id, std::make_shared<const Message>(std::move(message)));
        return;
    }
    if (!message.fds().empty() && !broker_.passes_fds(c.id)) {
        // As the broker: a call gets NotSupported (from the callee, the only SENDER the kernel lets the
        // bridge use), anything else is dropped; the fds close with it. (An answer settles its call.)
        if (is_reply(message) && message.reply_serial()) {
            if (auto it = b.pending_calls.find(*message.reply_serial()); it != b.pending_calls.end())
                bridge_forget_call(c, it);
        }
        if (message.type() == MessageType::MethodCall && message.expects_reply() &&
            !message.sender().empty()) {
            auto error = MessageBuilder::error(
                message, error_names::kNotSupported,
                "Tried to send message with Unix file descriptors to a client that doesn't support that.");
            error.sender(c.unique_name);
            if (auto built = error.build(take_serial()))
                b.transport->enqueue(std::move(*built), received.source);
        }
        return;
    }
    auto shared = std::make_shared<const Message>(std::move(message));
    const Message& m = *shared;
    // The calls it is given, remembered for their answers: room first (bounded sets; an entry whose
    // message is then given up is only ever forgotten).
    if (!c.monitor && m.type() == MessageType::MethodCall && m.expects_reply() && received.source == 0 &&
        m.sender().starts_with(':')) {
        // The master forwarded it: the answer goes back the same way.
        if (b.forwarded_calls.size() >= kMaxForwardedCalls)
            b.forwarded_calls.erase(b.forwarded_calls.begin());
        b.forwarded_calls.emplace(std::string(m.sender()), m.serial());
    } else if (!c.monitor && m.type() == MessageType::MethodCall && m.expects_reply() && received.source) {
        if (b.direct_calls.size() >= kMaxDirectCalls) b.direct_calls.erase(b.direct_calls.begin());
        b.direct_calls.emplace(*received.source, m.serial());
    }
    const auto settles = is_reply(m) ? m.reply_serial() : std::nullopt;
    broker_.deliver(c.id, std::move(shared));
    // Queued: only now does an answer settle its call (had it been given up, the caller would wait for
    // ever, with nobody left to tell it NoReply).
    if (settles) {
        if (auto it = b.pending_calls.find(*settles); it != b.pending_calls.end()) bridge_forget_call(c, it);
    }
}

void KernelDelivery::bridge_gave_up(Client& c, const SkippedMessage& lost) noexcept {
    events_.message_given_up(c.id);
    Bridge& b = *c.bridge;
    const bool answer = lost.type == MessageType::MethodReturn || lost.type == MessageType::Error;
    // A monitor or an eavesdropper is also sent copies of others' messages (by the kernel, and by the master
    // of what the model routes): nobody waits for those. Its own are those addressed to it (a unique name is
    // always short enough for the skipped record; a monitor owns no other name).
    if (c.monitor || eavesdroppers_.contains(c.id)) {
        const auto destination = lost.destination();
        if (!destination || !addressed_to(c, *destination)) return;
    }
    if (c.monitor) {
        // Its answer to BecomeMonitor (it sends nothing after that), or one the model routed to a call it
        // made before: it is a monitor whatever it is told now, so the bus ends it rather than let it
        // wait, or believe it is not one.
        if (answer && lost.source == 0)
            note_out_of_step(c.id, "the bus ran out of memory for an answer to it as it became a monitor");
        if (lost.source == 0) return;
    }
    if (answer && lost.reply_serial != 0) {
        // Its own: the answer to a call it sent straight through the kernel, or one the master sent it (the
        // bus's, or one the model routed; addressed to it, as checked above where copies come too).
        auto call = b.pending_calls.find(lost.reply_serial);
        const bool from_the_model = lost.source == 0;
        if (call == b.pending_calls.end() && !from_the_model) return;
        try {
            auto error = MessageBuilder::error(c.unique_name, lost.reply_serial, error_names::kNoMemory,
                                               "The message bus is out of memory");
            error.sender(kDriverName);
            if (auto built = error.build(take_serial()))
                broker_.deliver(c.id, std::make_shared<const Message>(std::move(*built)));
            if (call != b.pending_calls.end()) bridge_forget_call(c, call);  // (deliver changes no pending call)
        } catch (const std::bad_alloc&) {
            note_out_of_step(c.id, "the bus ran out of memory for an answer to its call, and to tell it so");
        }
        return;
    }
    if (lost.type != MessageType::MethodCall || (lost.flags & message_flags::kNoReplyExpected) ||
        lost.source == 0)
        return;
    // A direct call: its caller is the client at that address.
    const auto caller = std::find_if(clients_.begin(), clients_.end(), [&lost](const auto& entry) {
        return entry.second->address == lost.source;
    });
    if (caller == clients_.end() || caller->second->unique_name.empty()) return;
    try {
        auto error = MessageBuilder::error(caller->second->unique_name, lost.serial, error_names::kNoMemory,
                                           "The message bus is out of memory");
        error.sender(c.unique_name);
        auto built = error.build(take_serial());
        if (!built) return;
        b.transport->enqueue(std::move(*built), lost.source);
        (void)bridge_flush(c);
        bridge_update_watch(c);
    } catch (const std::bad_alloc&) {
        // (The caller's library answers it at its own timeout.)
    }
}

void KernelDelivery::bridge_read(Client& c, bool drain) {
    const PeerId id = c.id;
    Bridge& b = *c.bridge;
    // (A drain, which orders a callee's answers before its NoReply, tries at once all the same.)
    if (b.read_retry_timer && !drain) return;
    for (;;) {
        const std::size_t queued = broker_.queued(c.id).bytes;
        if (!drain && queued >= bridge_high_water()) {
            b.reading_paused = true;
            return;
        }
        // Up to the high mark (whole datagrams: one message may go beyond it).
        auto n = drain ? b.transport->read() : b.transport->read(bridge_high_water() - queued);
        for (;;) {
            auto received = b.transport->next();
            if (!received && received.error().kind == TransportError::Kind::Skipped) {
                // No memory for a message the kernel had for it: given up, and the bridge read on.
                bridge_gave_up(c, received.error().skipped);
                if (!find(id) || !c.bridge) return;
                continue;
            }
            if (!received) {
                broken_.push_back(
                    {c.id, "its AF_BUS bridge received a bad datagram: " + describe(received.error()), true});
                return;
            }
            if (!*received) break;
            const Message& m = (*received)->message;
            SkippedMessage fields{m.type(),
                                  m.flags(),
                                  m.serial(),
                                  m.size(),
                                  m.reply_serial().value_or(0),
                                  (*received)->source.value_or(0)};
            if (!m.destination().empty()) fields.keep_destination(m.destination());
            try {
                bridge_take(c, std::move(**received));
            } catch (const std::bad_alloc&) {
                bridge_gave_up(c, fields);
            }
            if (!find(id) || !c.bridge) return;
        }
        if (!n) {
            const TransportError& error = n.error();
            if (error.kind == TransportError::Kind::Io && error.error_number == ENOMEM) return bridge_retry_read_later(c);
            broken_.push_back({c.id, "its AF_BUS bridge broke: " + describe(error), is_loss(error)});
            return;
        }
        if (!drain || *n == 0) return;
    }
}

std::uint32_t KernelDelivery::kernel_max_replies() const {
    return static_cast<std::uint32_t>(std::clamp<std::int64_t>(settings_.max_replies_per_connection, 1, 65536));
}

std::size_t KernelDelivery::bridge_high_water() const {
    return static_cast<std::size_t>(
        std::clamp<std::int64_t>(settings_.max_outgoing_bytes, 1, static_cast<std::int64_t>(kBridgeHighWater)));
}

void KernelDelivery::bridge_retry_read_later(Client& c) {
    Bridge& b = *c.bridge;
    if (b.read_retry_timer) return;
    const PeerId id = c.id;
    b.read_retry_timer = loop_.add_timer(Clock::now() + kReadRetry, [this, id] {
        Client* p = find(id);
        if (!p || !p->bridge) return;
        p->bridge->read_retry_timer = 0;
        // What waited is still queued: the socket is readable, and the loop reads it at once.
        bridge_update_watch(*p);
    });
    bridge_update_watch(c);
}

void KernelDelivery::bridge_update_watch(Client& c) {
    Bridge& b = *c.bridge;
    // Not read while it waits to be read again: it stays readable, and watching it would spin.
    const bool reading = !b.reading_paused && !b.read_retry_timer;
    const std::uint32_t wanted = (reading ? EPOLLIN : 0u) | (b.transport->wants_write() ? EPOLLOUT : 0u);
    if (wanted == b.epoll_events) return;
    b.epoll_events = wanted;
    loop_.modify(b.transport->fd(), wanted);
}

}  // namespace afbus::daemon
