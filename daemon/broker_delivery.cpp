#include "broker_delivery.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "afbus/unix_socket.hpp"
#include "log.hpp"
#include "room.hpp"
#include "transport/socket_io.hpp"

namespace afbus::daemon {

SaslServerConfig sasl_server_config(const ConnectionSettings& settings, const PeerCredentials& credentials) {
    SaslServerConfig sasl;
    sasl.mechanisms = settings.mechanisms;
    sasl.allow_anonymous = settings.allow_anonymous;
    sasl.guid = settings.guid;
    // TCP peers have no kernel credentials: no EXTERNAL, no fd passing; DBUS_COOKIE_SHA1 says who they are.
    if (credentials.from_kernel) sasl.peer_uid = credentials.uid;
    sasl.unix_fd_possible = credentials.from_kernel;
    // The keyring belongs to the bus's user; asked only where the mechanism is offered, not at every connect.
    if (std::find(sasl.mechanisms.begin(), sasl.mechanisms.end(), SaslMechanism::DbusCookieSha1) != sasl.mechanisms.end())
        sasl.cookie_sha1.emplace().server_uid = ::geteuid();
    return sasl;
}

BrokerDelivery::BrokerDelivery(EventLoop& loop, DeliveryEvents& events, ConnectionSettings settings)
    : loop_(loop), events_(events), settings_(std::move(settings)) {}

BrokerDelivery::~BrokerDelivery() {
    // First: the ring's receives write into the connections' storage, and its handler is this object's.
    loop_.stop_receive_ring();
    for (const Fd& l : listeners_) loop_.unwatch(l.get());
    if (accept_retry_timer_) loop_.cancel_timer(accept_retry_timer_);
    for (auto& [id, c] : connections_) {
        loop_.unwatch(c->transport->fd());
        if (c->auth_timer) loop_.cancel_timer(c->auth_timer);
        if (c->pending_fds_timer) loop_.cancel_timer(c->pending_fds_timer);
        if (c->read_retry_timer) loop_.cancel_timer(c->read_retry_timer);
    }
}

void BrokerDelivery::add_listener(Fd listener) {
    const int fd = listener.get();
    listeners_.push_back(std::move(listener));
    loop_.watch(fd, EPOLLIN, [this, fd](std::uint32_t) { on_listener_ready(fd); });
}

void BrokerDelivery::watch_listeners(bool on) {
    if (on == listening_) return;
    listening_ = on;
    update_listener_watch();
    if (!on) log_warning("not accepting connections for now: max_incomplete_connections have not said Hello yet");
}

void BrokerDelivery::update_listener_watch() {
    const bool on = listening_ && !accept_paused_;
    if (on == listeners_watched_) return;
    listeners_watched_ = on;
    for (const Fd& l : listeners_) loop_.modify(l.get(), on ? EPOLLIN : 0u);
}

void BrokerDelivery::pause_accepting(int error) {
    if (!accept_failure_logged_) {
        accept_failure_logged_ = true;
        log_warning("not accepting connections for now: %s (%zu connections open); new ones wait in the listen "
                    "backlog until a connection closes",
                    std::strerror(error), connections_.size());
    }
    accept_paused_ = true;
    update_listener_watch();
    // Fds may also come free without a connection closing (an activated service's pipes), and memory
    // with nothing closing at all: try again later, sooner at first.
    if (!accept_retry_timer_) {
        accept_retry_timer_ = loop_.add_timer(Clock::now() + accept_retry_delay_, [this] {
            accept_retry_timer_ = 0;
            resume_accepting();
        });
        accept_retry_delay_ = std::min(accept_retry_delay_ * 2, kLastAcceptRetry);
    }
}

void BrokerDelivery::resume_accepting() {
    if (!accept_paused_) return;
    accept_paused_ = false;
    update_listener_watch();
}

void BrokerDelivery::on_listener_ready(int fd) {
    for (const Fd& listener : listeners_) {
        if (listener.get() != fd) continue;
        for (;;) {
            // As dbus-daemon (since the fix for CVE-2014-3639): while too many connections are still
            // authenticating, new ones wait in the listen backlog instead of being refused, or pushing
            // out connections that are about to authenticate. They are taken once one completes or fails.
            if (!events_.may_accept()) return watch_listeners(false);
            auto socket = accept_connection(listener);
            if (!socket) {
                const int e = socket.error();
                if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) return pause_accepting(e);
                // The connection went away before it was taken (ECONNABORTED) or the like: the next one.
                log_warning("accept failed: %s", std::strerror(e));
                return;
            }
            if (!socket->valid()) {
                // The backlog is empty: an episode of failures is over once every waiting connection is taken.
                accept_failure_logged_ = false;
                accept_retry_delay_ = kFirstAcceptRetry;
                return;
            }
            add_connection(std::move(*socket));
        }
    }
}

void BrokerDelivery::add_connection(Fd socket) {
    // The connection's memory first (its credentials' groups too), and room for it in the graveyard
    // (detach() must not allocate): out of memory, the connection is refused (its socket closed) and
    // nothing else changes.
    std::unique_ptr<Connection> connection;
    std::optional<PeerId> id;
    try {
        auto credentials = peer_credentials(socket);
        if (!credentials) {
            log_warning("refusing a connection: no peer credentials: %s", std::strerror(credentials.error()));
            return;  // closing the socket refuses it
        }
        connection = std::make_unique<Connection>();
        connection->sasl = std::make_unique<SaslServer>(sasl_server_config(settings_, *credentials));
        connection->transport = std::make_unique<StreamTransport>(std::move(socket));
        connection->transport->set_skip_unaffordable_messages(true);
        make_room(graveyard_, connections_.size() + 1);
        id = events_.peer_connected(std::move(*credentials));
    } catch (const std::bad_alloc&) {
        log_warning("refusing a connection: out of memory");
        return;
    }
    if (!id) return;
    const PeerId peer = *id;
    connection->id = peer;
    connection->transport->set_max_message_size(max_message_size());
    Connection* added = nullptr;
    try {
        added = connections_.emplace(peer, std::move(connection)).first->second.get();
    } catch (const std::bad_alloc&) {
        return events_.peer_lost(peer, "the bus ran out of memory taking the connection");
    }
    Connection& c = *added;
    if (!watch(c, EPOLLIN)) return events_.peer_lost(peer, EventLoop::watch_failure(errno));
    // (The timer and the first read below are guarded as every read is: on_io.)
    try {
        c.auth_timer = add_auth_timer(peer);
    } catch (const std::bad_alloc&) {
        return events_.peer_lost(peer, "the bus ran out of memory taking the connection");
    }
    // Clients write the SASL nul byte and AUTH as soon as connect() returns, so it is usually here already:
    // reading now saves an epoll_wait per connection. If nothing came yet, the read sees EAGAIN and epoll
    // says when it does.
    on_io(peer, EPOLLIN);
}

EventLoop::TimerId BrokerDelivery::add_auth_timer(PeerId peer) {
    return loop_.add_timer(Clock::now() + std::chrono::milliseconds(settings_.auth_timeout_ms), [this, peer] {
        Connection* p = find(peer);
        if (!p) return;
        p->auth_timer = 0;
        if (p->sasl) return refuse(peer, "authentication timed out (auth_timeout)");
        if (!events_.registered(peer)) refuse(peer, "did not say Hello within auth_timeout");
    });
}

BrokerDelivery::Connection* BrokerDelivery::find(PeerId id) const {
    auto it = connections_.find(id);
    return it == connections_.end() ? nullptr : it->second.get();
}

void BrokerDelivery::fail(PeerId id, std::string_view reason) { events_.peer_failed(id, reason); }

void BrokerDelivery::refuse(PeerId id, std::string_view reason) { events_.peer_refused(id, reason); }

std::size_t BrokerDelivery::max_message_size() const {
    // The specification's limit caps the configured one.
    return static_cast<std::size_t>(std::clamp<std::int64_t>(settings_.max_message_size, 0, kMaxMessageLength));
}

void BrokerDelivery::configure(const ConnectionSettings& settings) {
    ConnectionSettings copy = settings;  // the one allocation: before anything changes
    settings_ = std::move(copy);
    // A reload may change max_message_size: the connections there are take the new one too.
    for (auto& [id, c] : connections_) c->transport->set_max_message_size(max_message_size());
}

void BrokerDelivery::fail_on(PeerId id, const TransportError& error) {
    if (error.kind == TransportError::Kind::Io || error.kind == TransportError::Kind::NoMemory)
        return events_.peer_lost(id, describe(error));
    fail(id, describe(error));
}

void BrokerDelivery::retry_read_later(Connection& c) {
    if (c.read_retry_timer) return;
    if (ring_receiving(c)) loop_.receive_ring()->stop(c.id);
    loop_.unwatch(c.transport->fd());
    c.watched = false;
    c.epoll_events = 0;
    const PeerId id = c.id;
    c.read_retry_timer = loop_.add_timer(Clock::now() + kReadRetry, [this, id] {
        Connection* p = find(id);
        if (!p) return;
        p->read_retry_timer = 0;
        if (!watch(*p, 0)) return events_.peer_lost(id, EventLoop::watch_failure(errno));
        // Messages may wait in its buffer with nothing more on the socket to wake the loop for them. (Then
        // it is watched for reading, unless flow control holds it back, and writing, as wanted now.)
        on_io(id, EPOLLIN);
    });
}

void BrokerDelivery::on_io(PeerId id, std::uint32_t events) {
    // Out of memory while serving one connection's input or output (its SASL exchange, its buffers; the
    // bus guards its own work on each message), that connection ends, alone.
    try {
        handle_io(id, events);
    } catch (const std::bad_alloc&) {
        events_.peer_lost(id, "the bus ran out of memory serving it");
    }
}

void BrokerDelivery::handle_io(PeerId id, std::uint32_t events) {
    Connection* c = find(id);
    if (!c) return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (c->sasl) authenticate(*c);
        // (A connection the ring receives from: the ring brings its bytes, and says when it ends.)
        else if (!ring_receiving(*c))
            read_messages(*c, (events & (EPOLLHUP | EPOLLERR)) != 0);
    }
    c = find(id);
    if (!c) return;
    if ((events & EPOLLOUT) && c->sasl) {
        authenticate(*c);
        c = find(id);
        if (!c) return;
    } else if (events & EPOLLOUT) {
        auto flushed = c->transport->flush();
        if (!flushed) return fail_on(id, flushed.error());
    }
    update_watch(*c);
}

void BrokerDelivery::authenticate(Connection& c) {
    const PeerId id = c.id;
    auto progress = c.sasl_stream.advance(c.transport->fd(), *c.sasl);
    if (!progress) {
        // Hanging up during authentication is the peer's business; failing it is a refusal.
        const SaslStreamError& error = progress.error();
        if (error.kind == SaslStreamError::Kind::Rejected) return refuse(id, "authentication failed: " + error.describe());
        const bool hung_up = error.errno_value == EPIPE || error.errno_value == ECONNRESET;
        // ENOMEM: the kernel was short of memory for this exchange; tried again later, as for messages
        // (the stream keeps what it had still to send).
        if (error.kind == SaslStreamError::Kind::Io && error.errno_value == ENOMEM) return retry_read_later(c);
        if (error.kind == SaslStreamError::Kind::Io && !hung_up) return events_.peer_lost(id, error.describe());
        return fail(id, error.describe());
    }
    if (progress->kind != SaslProgress::Kind::Authenticated) return;  // update_watch waits for the socket

    const bool unix_fds = c.sasl->unix_fd_agreed();
    if (auto admitted = events_.peer_authenticated(id, c.sasl->authenticated_uid()); !admitted) return;
    c.transport->set_unix_fd_passing(unix_fds);
    c.sasl.reset();
    // The auth timer runs on until Hello: a connection that authenticates and stays silent is still
    // incomplete.
    if (!progress->leftover.empty()) c.transport->push_received(progress->leftover);
    return read_messages(c, false);
}

void BrokerDelivery::read_messages(Connection& c, bool hung_up) {
    const PeerId id = c.id;
    // A peer whose messages the bus still holds beyond the incoming limits is not read from until they
    // drain (flow_control.hpp). A peer that hung up is read to the end regardless.
    if (!hung_up && !events_.may_read(id)) return pause_reading(c);
    if (ring_receiving(c)) {
        // The ring may hold bytes that came before the socket's: read once it has let go.
        c.read_when_received = true;
        return loop_.receive_ring()->stop(id);
    }
    auto n = c.transport->read();
    // Hand over every complete message first; a read error is handled after them.
    if (!take_messages(id)) return;
    if (!n) return read_failed(id, n.error());
    if (Connection* p = find(id)) watch_pending_fds(*p);
}

void BrokerDelivery::read_failed(PeerId id, const TransportError& error) {
    // Bytes that are not D-Bus, or fds that were not agreed on, are the peer's doing.
    if (error.kind == TransportError::Kind::Corrupt || error.kind == TransportError::Kind::FdsNotAllowed)
        return refuse(id, describe(error));
    if (error.kind == TransportError::Kind::Io && error.error_number == ENOMEM) {
        if (Connection* p = find(id)) retry_read_later(*p);
        return;
    }
    fail_on(id, error);
}

bool BrokerDelivery::take_messages(PeerId id) {
    for (;;) {
        Connection* p = find(id);
        if (!p) return false;
        auto message = p->transport->next();
        if (!message) {
            // Bytes that are not D-Bus are the peer's doing; no memory to parse them is the bus's.
            const TransportError& error = message.error();
            if (error.kind == TransportError::Kind::Corrupt && error.wire == WireError::MessageTooLong) {
                refuse(id, "sent a message beyond max_message_size=" + std::to_string(max_message_size()));
                return false;
            }
            if (error.kind == TransportError::Kind::Corrupt) {
                refuse(id, describe(error));
                return false;
            }
            if (error.kind == TransportError::Kind::Skipped) {
                events_.peer_message_skipped(id, error.skipped);
                continue;
            }
            // No memory to parse what is buffered: tried again later, as a read that ran out of it.
            if (error.kind == TransportError::Kind::Io && error.error_number == ENOMEM)
                retry_read_later(*p);
            else
                fail_on(id, error);
            return false;
        }
        if (!*message) return true;
        events_.peer_sent(id, std::move(**message));
    }
}

void BrokerDelivery::pause_reading(Connection& c) {
    if (ring_receiving(c)) loop_.receive_ring()->stop(c.id);
    if (c.reading_paused) return;
    c.reading_paused = true;
    paused_readers_.push_back(c.id);
}

Expected<void, int> BrokerDelivery::receive_through_io_uring() {
    return loop_.use_receive_ring([this](ReceiveRing::Received& received) { on_received(received); });
}

bool BrokerDelivery::ring_receiving(const Connection& c) const {
    return loop_.receive_ring() && loop_.receive_ring()->receiving(c.id);
}

void BrokerDelivery::receive_in_ring(Connection& c) {
    ReceiveRing* ring = loop_.receive_ring();
    if (!ring || c.sasl || c.reading_paused || c.read_retry_timer || c.read_when_received ||
        ring->receiving(c.id))
        return;
    // The rest of a long message is received in place, straight into its storage: through the ring's
    // buffers it would be copied out of them 16 KiB at a time. (The storage lives as long as the
    // connection, which detach() keeps until the receive has ended.)
    // (Out of memory for the ring's bookkeeping, or for the message begun, epoll watches it instead:
    // update_watch(), and read() then skips a message there is no memory for.)
    try {
        if (c.transport->awaited() >= MessageFramer::kOwnStorageBytes)
            return ring->start_into(c.transport->fd(), c.id, c.transport->receive_room());
        ring->start(c.transport->fd(), c.id);
    } catch (const std::bad_alloc&) {
    }
}

void BrokerDelivery::on_received(ReceiveRing::Received& received) {
    // As in on_io: out of memory serving one connection's input, that connection ends, alone.
    try {
        handle_received(received);
    } catch (const std::bad_alloc&) {
        events_.peer_lost(received.tag, "the bus ran out of memory serving it");
    }
}

void BrokerDelivery::handle_received(ReceiveRing::Received& received) {
    const PeerId id = received.tag;
    Connection* c = find(id);
    if (!c) return;  // gone meanwhile: the fds close with `received`
    if (received.error == ENOMEM)
        return events_.peer_lost(id, "the bus ran out of memory for the fds it sent");
    if (!received.bytes.empty() || !received.fds.empty() || received.control_truncated) {
        auto taken = received.in_place
                         ? c->transport->took_in_place(received.bytes.size(), std::move(received.fds),
                                                       received.control_truncated)
                         : c->transport->take_received(received.bytes, std::move(received.fds),
                                                       received.control_truncated);
        if (!taken) return read_failed(id, taken.error());
        if (!take_messages(id)) return;
        c = find(id);
        if (!c) return;
        watch_pending_fds(*c);
        // Flow control looks at it between two receives, as read_messages() does between two reads.
        if (!c->reading_paused && !events_.may_read(id)) pause_reading(*c);
        // A receive that filled its buffer most likely left more behind: read now, as an epoll read
        // would have taken it (up to 1 MiB), so that a burst is routed in one turn and what it makes for
        // each peer leaves in one write, not one per 16 KiB.
        if (!received.in_place && received.bytes.size() == ReceiveRing::kBufferBytes && !c->reading_paused) {
            read_messages(*c, false);
            c = find(id);
            if (!c) return;
        }
    } else if (received.error != ECANCELED) {
        // The end of the stream, or the socket's error, as read() reports them.
        return read_failed(id, received.error == 0 ? TransportError{TransportError::Kind::Closed}
                                                   : transport_error_from_errno(received.error));
    }
    if (c->read_when_received) {
        c->read_when_received = false;
        read_messages(*c, false);
        c = find(id);
        if (!c) return;
    }
    // The next receive, unless flow control holds it back.
    update_watch(*c);
}

void BrokerDelivery::watch_pending_fds(Connection& c) {
    const bool pending = c.transport->pending_fds() > 0;
    if (pending == (c.pending_fds_timer != 0)) return;
    if (!pending) {
        loop_.cancel_timer(c.pending_fds_timer);
        c.pending_fds_timer = 0;
        return;
    }
    // As dbus-daemon (CVE-2014-3636): fds held in the kernel for a message that never completes would
    // pin them against the bus's fd limit, so the sender gets pending_fd_timeout to finish it.
    const PeerId id = c.id;
    c.pending_fds_timer = loop_.add_timer(Clock::now() + std::chrono::milliseconds(settings_.pending_fd_timeout_ms), [this, id] {
        Connection* p = find(id);
        if (!p) return;
        p->pending_fds_timer = 0;
        refuse(id, "held file descriptors for an incomplete message longer than pending_fd_timeout");
    });
}

QueueLoad BrokerDelivery::queued(PeerId peer) const {
    const Connection* c = find(peer);
    if (!c) return {};
    return QueueLoad{c->transport->queued_messages(), c->transport->queued_bytes(), c->transport->queued_fds()};
}

bool BrokerDelivery::passes_fds(PeerId peer) const {
    const Connection* c = find(peer);
    return c && c->transport->unix_fd_passing();
}

QueueLoad BrokerDelivery::deliver(PeerId peer, std::shared_ptr<const Message> message) {
    Connection* c = find(peer);
    if (!c) return {};
    if (!c->dirty) make_room(dirty_);  // first: out of memory, the message is not queued at all
    c->transport->enqueue(std::move(message));
    // Written after this turn of the loop, together with whatever else the same batch of input produces
    // for this peer: one sendmsg for many messages.
    if (!c->dirty) {
        c->dirty = true;
        dirty_.push_back(peer);
    }
    return QueueLoad{c->transport->queued_messages(), c->transport->queued_bytes(), c->transport->queued_fds()};
}

void BrokerDelivery::flush() {
    // A failed write disconnects its peer, which may queue more (NoReply errors, NameOwnerChanged) and
    // add to dirty_: index, don't iterate.
    for (std::size_t i = 0; i < dirty_.size(); ++i) {
        Connection* c = find(dirty_[i]);
        if (!c) continue;
        c->dirty = false;
        if (auto flushed = c->transport->flush(); !flushed) {
            fail_on(c->id, flushed.error());
            continue;
        }
        update_watch(*c);
    }
    dirty_.clear();
    // Detached connections go first: what their queues held may be charged to paused senders, who
    // would otherwise wait for some later event to be resumed. One the ring still receives for stays
    // until that receive has ended (detach()).
    std::erase_if(graveyard_, [this](const std::unique_ptr<Connection>& c) { return !ring_receiving(*c); });
    // What was just written may have been holding paused senders back.
    if (!paused_readers_.empty()) resume_paused_readers();
    if (!listening_ && events_.may_accept()) watch_listeners(true);
}

void BrokerDelivery::resume_paused_readers() {
    std::erase_if(paused_readers_, [this](PeerId id) {
        Connection* c = find(id);
        if (!c) return true;
        if (!events_.may_read(id)) return false;
        c->reading_paused = false;
        update_watch(*c);
        return true;
    });
}

void BrokerDelivery::update_watch(Connection& c) {
    if (c.read_retry_timer) return;  // not watched until the retry (retry_read_later)
    receive_in_ring(c);
    // A dirty connection is written by flush() at the end of this turn, which then calls this again: asking
    // epoll for EPOLLOUT now would cost two epoll_ctl for a write that usually completes at once (a driver
    // call's reply goes to the peer being read, e.g. Hello).
    const bool writing = (c.transport->wants_write() && !c.dirty) || (c.sasl && c.sasl_stream.wants_write());
    // (The loop does not watch for what the ring receives.)
    const bool receiving = ring_receiving(c);
    const bool reading = !c.reading_paused && !receiving;
    const std::uint32_t wanted = (reading ? EPOLLIN : 0u) | (writing ? EPOLLOUT : 0u);
    if (receiving && wanted == 0) {
        // Not watched at all: the receive says when the connection ends, and its poll would cost the ring
        // work at every turn. (Watched with no events, errors and the hang-up would still be reported.)
        if (c.watched) {
            loop_.unwatch(c.transport->fd());
            c.watched = false;
            c.epoll_events = 0;
        }
        return;
    }
    if (!c.watched) {
        if (!watch(c, wanted)) events_.peer_lost(c.id, EventLoop::watch_failure(errno));
        return;
    }
    if (wanted == c.epoll_events) return;
    c.epoll_events = wanted;
    loop_.modify(c.transport->fd(), wanted);
}

bool BrokerDelivery::watch(Connection& c, std::uint32_t events) {
    const PeerId id = c.id;
    if (!loop_.watch(c.transport->fd(), events, [this, id](std::uint32_t ready) { on_io(id, ready); }))
        return false;
    c.watched = true;
    c.epoll_events = events;
    return true;
}

void BrokerDelivery::detach(PeerId peer) {
    auto it = connections_.find(peer);
    if (it == connections_.end()) return;
    Connection& c = *it->second;
    loop_.unwatch(c.transport->fd());
    if (c.auth_timer) loop_.cancel_timer(c.auth_timer);
    if (c.pending_fds_timer) loop_.cancel_timer(c.pending_fds_timer);
    if (c.read_retry_timer) loop_.cancel_timer(c.read_retry_timer);
    // Best effort: what is queued (e.g. the last error reply) may still go out.
    (void)c.transport->flush();
    // The peer sees the end of the connection now; the object may still be on the call stack (inside
    // its own read loop), so it is freed after this turn of the loop. A receive the ring has pending
    // ends too, with what the socket still held or its end, at the ring's next wait: the connection is
    // kept until then, as the receive may be writing into its storage (flush()). (No stop(): the
    // shutdown ends the receive as surely, and costs the ring nothing.)
    ::shutdown(c.transport->fd(), SHUT_RDWR);
    graveyard_.push_back(std::move(it->second));  // room was made when it connected
    connections_.erase(it);
    // Its fd comes free after this turn of the loop: a listener that ran out of fds may accept again.
    resume_accepting();
}

}  // namespace afbus::daemon
