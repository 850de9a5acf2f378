#include "kernel_delivery.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/af_bus.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "afbus/types.hpp"
#include "afbus/unix_socket.hpp"
#include "log.hpp"
#include "name_signals.hpp"

namespace afbus::daemon {
namespace {

// The notice a native client gets after the master forwarded one of its messages (docs/kernel-mode.md).
constexpr std::string_view kKernelInterface = "org.afbus.Kernel";
constexpr std::string_view kNameAddressMember = "NameAddress";
constexpr std::string_view kPeerAddressMember = "PeerAddress";

}  // namespace

KernelDelivery::KernelDelivery(EventLoop& loop, DeliveryEvents& events, ConnectionSettings settings, int family)
    : loop_(loop), events_(events), settings_(settings), family_(family), broker_(loop, events, std::move(settings)) {}

KernelDelivery::~KernelDelivery() {
    for (const Fd& l : listeners_) loop_.unwatch(l.get());
    for (auto& [id, c] : clients_) {
        loop_.unwatch(c->transport->fd());
        if (c->auth_timer) loop_.cancel_timer(c->auth_timer);
    }
}

void KernelDelivery::configure(const ConnectionSettings& settings) {
    const bool new_policy = settings.policy != settings_.policy;
    settings_ = settings;
    broker_.configure(settings);
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

bool KernelDelivery::install_chains(const Client& c) {
    if (c.chains.empty() || c.unique_name.empty()) return true;
    // Refused, the client keeps its old chains, or none: then the kernel denies it everything.
    return set_option(c, BUS_DBUS_SET_CHAINS, c.chains.data(), c.chains.size() * sizeof(std::uint32_t), "install its policy");
}

void KernelDelivery::peer_policy_assigned(PeerId peer, const policy::ConnectionChains* chains) {
    Client* c = find(peer);
    if (!c) return;
    c->chains.clear();
    if (!chains) return;
    const auto send = chains->rule_indices(policy::Hook::Send);
    const auto receive = chains->rule_indices(policy::Hook::Receive);
    const auto eavesdrop = chains->rule_indices(policy::Hook::Eavesdrop);
    c->chains = {static_cast<std::uint32_t>(send.size()), static_cast<std::uint32_t>(receive.size()),
                 static_cast<std::uint32_t>(eavesdrop.size()), 0};
    c->chains.insert(c->chains.end(), send.begin(), send.end());
    c->chains.insert(c->chains.end(), receive.begin(), receive.end());
    c->chains.insert(c->chains.end(), eavesdrop.begin(), eavesdrop.end());
    (void)install_chains(*c);
}

void KernelDelivery::peer_names_changed(PeerId peer, const std::vector<std::string>& names) {
    Client* c = find(peer);
    if (!c || c->unique_name.empty()) return;
    std::string value;
    for (const std::string& name : names) value.append(name).push_back('\0');
    (void)set_option(*c, BUS_DBUS_SET_NAMES, value.data(), value.size(), "tell the kernel its names");
}

void KernelDelivery::apply_bus_limits(const Fd& listener) const {
    // The kernel's ranges: 1..65536 calls, 1 ms..2^31-1 ms (about 25 days: "never" in practice).
    bus_dbus_reply_limits limits{};
    limits.max_replies = static_cast<std::uint32_t>(std::clamp<std::int64_t>(settings_.max_replies_per_connection, 1, 65536));
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
}

bool KernelDelivery::add_listener(Fd listener) {
    const int fd = listener.get();
    apply_bus_limits(listener);
    if (!install_policy(listener)) return false;
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
        Fd socket(::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!socket) {
            if (errno != EAGAIN && errno != EINTR) log_warning("AF_BUS accept failed: %s", std::strerror(errno));
            return;
        }
        add_client(std::move(socket));
    }
}

void KernelDelivery::add_client(Fd socket) {
    auto credentials = peer_credentials(socket);
    if (!credentials) {
        log_warning("refusing an AF_BUS connection: no peer credentials: %s", std::strerror(credentials.error()));
        return;
    }
    sockaddr_bus peer_address{};
    socklen_t length = sizeof peer_address;
    if (::getpeername(socket.get(), reinterpret_cast<sockaddr*>(&peer_address), &length) < 0) {
        log_warning("refusing an AF_BUS connection: no address: %s", std::strerror(errno));
        return;
    }
    SaslServerConfig sasl = sasl_server_config(settings_, *credentials);
    const auto id = events_.peer_connected(std::move(*credentials));
    if (!id) return;
    auto client = std::make_unique<Client>();
    client->id = *id;
    client->address = peer_address.sbus_addr.s_addr;
    client->sasl = std::make_unique<SaslServer>(std::move(sasl));
    client->transport = std::make_unique<DatagramTransport>(std::move(socket), family_);
    client->epoll_events = EPOLLIN;
    const PeerId peer = *id;
    Client& c = *clients_.emplace(peer, std::move(client)).first->second;
    if (!loop_.watch(c.transport->fd(), EPOLLIN, [this, peer](std::uint32_t events) { on_io(peer, events); })) {
        c.epoll_events = 0;
        return fail(peer, std::string("epoll: ") + std::strerror(errno));
    }
    c.auth_timer = loop_.add_timer(Clock::now() + std::chrono::milliseconds(settings_.auth_timeout_ms), [this, peer] {
        if (Client* p = find(peer); p && p->sasl) {
            p->auth_timer = 0;
            fail(peer, "authentication timed out");
        }
    });
}

KernelDelivery::Client* KernelDelivery::find(PeerId id) const {
    auto it = clients_.find(id);
    return it == clients_.end() ? nullptr : it->second.get();
}

void KernelDelivery::fail(PeerId id, std::string_view reason) { events_.peer_failed(id, reason); }

void KernelDelivery::on_io(PeerId id, std::uint32_t events) {
    Client* c = find(id);
    if (!c) return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (c->sasl) authenticate(*c);
        else read_messages(*c, (events & (EPOLLHUP | EPOLLERR)) != 0);
    }
    c = find(id);
    if (!c) return;
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
    if (!progress) return fail(id, progress.error().describe());
    if (progress->kind != SaslProgress::Kind::Authenticated) return;
    // Each message is a datagram of its own: one behind BEGIN in the same datagram cannot be told apart.
    if (!progress->leftover.empty()) return fail(id, "sent a message in the datagram of its SASL BEGIN");
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
        if (!received) return fail(id, describe(received.error()));
        if (!*received) break;
        // Everything on a master-side socket comes from its own client (the kernel says so).
        Message& message = (*received)->message;
        const bool forwarded = !p->unique_name.empty() && !message.destination().empty() &&
                               message.destination() != kDriverName;
        const std::string destination(forwarded ? message.destination() : std::string_view());
        events_.peer_sent(id, std::move(message));
        if (forwarded) acknowledge_forward(id, destination);
    }
    if (!n) return fail(id, describe(n.error()));
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
        broken_.emplace_back(c.id, describe(flushed.error()));
        return;
    }
    if (!c.transport->wants_write() && !c.deferred_notices.empty()) {
        for (const Notice& notice : std::exchange(c.deferred_notices, {})) send_notice(notice);
    }
}

QueueLoad KernelDelivery::queued(PeerId peer) const {
    const Client* c = find(peer);
    if (!c) return broker_.queued(peer);
    return QueueLoad{c->transport->queued_messages(), c->transport->queued_bytes(), c->transport->queued_fds()};
}

bool KernelDelivery::passes_fds(PeerId peer) const {
    const Client* c = find(peer);
    return c ? c->transport->unix_fd_passing() : broker_.passes_fds(peer);
}

QueueLoad KernelDelivery::deliver(PeerId peer, std::shared_ptr<const Message> message) {
    Client* c = find(peer);
    if (!c) return broker_.deliver(peer, std::move(message));
    // A call from a native client that the master forwards: its callee learns the caller's address
    // first, so that the answer goes back through the kernel directly.
    if (message->type() == MessageType::MethodCall && message->expects_reply()) {
        if (Client* caller = native_owner(message->sender()); caller && caller != c && message->sender().starts_with(':'))
            enqueue_notice(*c, kPeerAddressMember, caller->unique_name, caller->address);
    }
    c->transport->enqueue(std::move(message), c->address);
    // Sent now, not at flush(): the notice that lets a forwarded message's sender go on may only
    // follow a message that is already in the kernel.
    send_queued(*c);
    update_watch(*c);
    return QueueLoad{c->transport->queued_messages(), c->transport->queued_bytes(), c->transport->queued_fds()};
}

KernelDelivery::Client* KernelDelivery::native_owner(std::string_view name) const {
    if (name.starts_with(':')) {
        auto it = by_unique_name_.find(std::string(name));
        return it == by_unique_name_.end() ? nullptr : find(it->second);
    }
    auto it = native_owners_.find(std::string(name));
    return it == native_owners_.end() ? nullptr : find(it->second);
}

void KernelDelivery::acknowledge_forward(PeerId sender, const std::string& destination) {
    // Where the name lives, if a native client holds it; 0 (keep sending through the master) for a
    // unix client's name or nobody's.
    Client* recipient = native_owner(destination);
    std::uint64_t address = 0;
    if (recipient && destination.starts_with(':')) {
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
    enqueue_notice(*sender, kNameAddressMember, notice.name, notice.address);
    send_queued(*sender);
    update_watch(*sender);
}

void KernelDelivery::enqueue_notice(Client& to, std::string_view member, const std::string& name, std::uint64_t address) {
    auto message = MessageBuilder::signal("/org/freedesktop/DBus", kKernelInterface, member);
    message.destination(to.unique_name).sender(kDriverName);
    append(message, name, address);
    auto built = message.build(next_serial_++);
    if (next_serial_ == 0) next_serial_ = 1;
    if (built) to.transport->enqueue(std::move(*built), to.address);
}

void KernelDelivery::flush() {
    broker_.flush();
    // Failures found while sending are reported now, outside the model's routing.
    while (!broken_.empty()) {
        auto [id, reason] = std::move(broken_.back());
        broken_.pop_back();
        if (find(id)) fail(id, reason);
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

void KernelDelivery::update_watch(Client& c) {
    const bool writing = c.transport->wants_write() || (c.sasl && c.sasl_stream.wants_write());
    const std::uint32_t wanted = (c.reading_paused ? 0u : EPOLLIN) | (writing ? EPOLLOUT : 0u);
    if (wanted == c.epoll_events) return;
    c.epoll_events = wanted;
    loop_.modify(c.transport->fd(), wanted);
}

void KernelDelivery::detach(PeerId peer) {
    auto it = clients_.find(peer);
    if (it == clients_.end()) return broker_.detach(peer);
    Client& c = *it->second;
    loop_.unwatch(c.transport->fd());
    if (c.auth_timer) loop_.cancel_timer(c.auth_timer);
    (void)c.transport->flush();  // best effort: the last error reply may still go out
    ::shutdown(c.transport->fd(), SHUT_RDWR);
    if (!c.unique_name.empty()) by_unique_name_.erase(c.unique_name);
    // Its receivers will never see what was still queued for it: their senders may go on.
    for (const Notice& notice : std::exchange(c.deferred_notices, {})) send_notice(notice);
    graveyard_.push_back(std::move(it->second));
    clients_.erase(it);
}

bool KernelDelivery::set_option(const Client& c, int option, const void* value, std::size_t size, const char* what) {
    if (::setsockopt(c.transport->fd(), SOL_BUS, option, value, static_cast<socklen_t>(size)) == 0) return true;
    if (errno == ENOTCONN) return false;  // the client left: its failure is on its way
    log_warning("AF_BUS: could not %s for %s: %s", what, c.unique_name.empty() ? "a client" : c.unique_name.c_str(),
                std::strerror(errno));
    return false;
}

void KernelDelivery::unique_name_assigned(PeerId peer, std::string_view unique_name) {
    Client* c = find(peer);
    if (!c) return broker_.unique_name_assigned(peer, unique_name);
    c->unique_name = std::string(unique_name);
    // Named first: from the join on, the kernel checks its SENDER against this name; its policy before
    // it can send anything (without chains the kernel would deny it everything).
    if (!set_option(*c, BUS_DBUS_SET_NAME, unique_name.data(), unique_name.size(), "set the unique name") ||
        !install_chains(*c) || !set_option(*c, BUS_JOIN_BUS, nullptr, 0, "join the bus")) {
        broken_.emplace_back(peer, "the kernel refused to admit it to the bus");
        return;
    }
    by_unique_name_[c->unique_name] = peer;
}

void KernelDelivery::name_owner_changed(const NameChange& change) {
    if (change.name.starts_with(':')) return;
    Client* new_owner = change.new_owner ? find(*change.new_owner) : nullptr;
    Client* old_owner = change.old_owner ? find(*change.old_owner) : nullptr;
    if (new_owner) native_owners_[change.name] = new_owner->id;
    else native_owners_.erase(change.name);
    if (new_owner) {
        auto [it, added] = name_addresses_.try_emplace(change.name, 0);
        if (added) it->second = BUS_ADDR(1, next_name_address_++);
        // Taken from the old owner in one hold of the bus lock: a send to the name reaches one of them.
        const bus_addr address{it->second};
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

void KernelDelivery::match_added(PeerId peer, const MatchRule& rule) {
    Client* c = find(peer);
    if (!c) return;
    const auto record = rule.compiled();
    if (set_option(*c, BUS_DBUS_ADD_MATCH, record.data(), record.size(), "install a match record"))
        c->records.emplace_back(reinterpret_cast<const char*>(record.data()), record.size());
}

void KernelDelivery::match_removed(PeerId peer, const MatchRule& rule) {
    Client* c = find(peer);
    if (!c) return;
    const auto record = rule.compiled();
    const std::string bytes(reinterpret_cast<const char*>(record.data()), record.size());
    auto it = std::find(c->records.begin(), c->records.end(), bytes);
    if (it == c->records.end()) return;  // never installed (the kernel refused it)
    (void)set_option(*c, BUS_DBUS_REMOVE_MATCH, bytes.data(), bytes.size(), "remove a match record");
    c->records.erase(it);
}

void KernelDelivery::became_monitor(PeerId peer) {
    Client* c = find(peer);
    if (!c) return broker_.became_monitor(peer);
    // A monitor receives only what the model copies to it: no subscriptions in the kernel.
    for (const std::string& record : c->records)
        (void)set_option(*c, BUS_DBUS_REMOVE_MATCH, record.data(), record.size(), "remove a match record");
    c->records.clear();
}

}  // namespace afbus::daemon
