// BrokerDelivery: broker mode, the delivery seam over unix stream (and tcp:) sockets. It accepts
// connections on the listeners, runs each one's SASL conversation, frames the bytes it reads into
// messages for the model, queues what the model delivers and writes every peer's queue once per turn of
// the event loop (one sendmsg for everything a batch of input produced). Works on any kernel.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "afbus/expected.hpp"
#include "afbus/fd.hpp"
#include "afbus/framer.hpp"
#include "afbus/sasl.hpp"
#include "afbus/sasl_stream.hpp"
#include "afbus/stream_transport.hpp"
#include "delivery.hpp"
#include "event_loop.hpp"

namespace afbus::daemon {

class BrokerDelivery final : public Delivery {
public:
    BrokerDelivery(EventLoop& loop, DeliveryEvents& events, ConnectionSettings settings);
    ~BrokerDelivery() override;
    BrokerDelivery(const BrokerDelivery&) = delete;
    BrokerDelivery& operator=(const BrokerDelivery&) = delete;

    // Accepts connections on `listener` (already listening) until destroyed.
    void add_listener(Fd listener);
    // Adopts one connected socket as a new connection (the model may refuse it).
    void add_connection(Fd socket);

    // Receives what authenticated connections send through io_uring from now on (receive_ring.hpp),
    // where the kernel allows it; the errno where it does not (epoll serves them then, as before).
    Expected<void, int> receive_through_io_uring();

    void configure(const ConnectionSettings& settings) override;
    [[nodiscard]] QueueLoad queued(PeerId peer) const override;
    [[nodiscard]] bool passes_fds(PeerId peer) const override;
    QueueLoad deliver(PeerId peer, std::shared_ptr<const Message> message) override;
    void flush() override;
    void detach(PeerId peer) override;

private:
    struct Connection {
        PeerId id = 0;
        std::unique_ptr<StreamTransport> transport;
        std::unique_ptr<SaslServer> sasl;  // while authenticating
        SaslStream sasl_stream;            // moves sasl's bytes
        // Runs from the connection until Hello (auth_timeout), as dbus-daemon's incomplete connections do.
        EventLoop::TimerId auth_timer = 0;
        // Runs while fds sent with an incomplete message wait for the rest (pending_fd_timeout).
        EventLoop::TimerId pending_fds_timer = 0;
        std::uint32_t epoll_events = 0;
        // In the loop's watches (with io_uring receives, a connection the ring receives from and that has
        // nothing to write is not: a poll would only say what the receive says).
        bool watched = false;
        bool dirty = false;           // has output queued since the last flush()
        bool reading_paused = false;  // the model holds too much of its messages (flow control)
        // Runs while the socket is not watched after a read failed for the kernel's lack of memory.
        EventLoop::TimerId read_retry_timer = 0;
        // With io_uring receives: read() it once its receive has ended (a read was asked for while the
        // ring was receiving).
        bool read_when_received = false;
    };

    void on_listener_ready(int fd);
    // Stops or resumes watching the listeners, as the model may or may not take new connections.
    void watch_listeners(bool on);
    // accept() ran out of fds (EMFILE, ENFILE) or memory: stop watching the listeners (they stay readable,
    // so watching them would spin) until a connection closes or accept_retry_delay_ passes; logged once
    // per episode.
    void pause_accepting(int error);
    void resume_accepting();
    // Watches the listeners exactly when the model takes connections and accept() has fds for them.
    void update_listener_watch();
    void on_io(PeerId id, std::uint32_t events);
    void handle_io(PeerId id, std::uint32_t events);
    // auth_timeout for a new connection: refused if it has not authenticated and said Hello by then.
    EventLoop::TimerId add_auth_timer(PeerId peer);
    void authenticate(Connection& connection);
    void read_messages(Connection& connection, bool hung_up);
    // Reading the connection (or taking what the ring received from it) failed with `error`: refused,
    // read again later (the kernel's ENOMEM) or ended, as the error says.
    void read_failed(PeerId id, const TransportError& error);
    // Flow control holds the connection back: it is read no more until resume_paused_readers().
    void pause_reading(Connection& connection);
    // Hands the model every complete message the transport holds; false when the connection ended or
    // is to be read again later.
    bool take_messages(PeerId id);
    // What an io_uring receive brought (receive_ring.hpp).
    void on_received(ReceiveRing::Received& received);
    void handle_received(ReceiveRing::Received& received);
    // Starts the ring receiving from an authenticated connection that may be read, unless it is already:
    // into a buffer of the ring's, or the rest of a long message into its own storage.
    void receive_in_ring(Connection& connection);
    // The connection is read by the ring (io_uring receives, authenticated, not paused or retrying).
    [[nodiscard]] bool ring_receiving(const Connection& connection) const;
    void watch_pending_fds(Connection& connection);
    void update_watch(Connection& connection);
    // Adds the connection to the loop's watches for `events`; false (and errno) when it could not be.
    bool watch(Connection& connection, std::uint32_t events);
    void resume_paused_readers();
    [[nodiscard]] Connection* find(PeerId id) const;
    // The connection broke: the model is told, and detaches it.
    void fail(PeerId id, std::string_view reason);
    // The connection is ended for what the peer did: the model is told (and logs it), and detaches it.
    void refuse(PeerId id, std::string_view reason);
    // Reading or writing the connection failed: a peer that hung up (EPIPE, ECONNRESET, end of file)
    // ends it; any other errno is the bus's side failing (ENOMEM, ENOBUFS), which the model logs as a loss.
    void fail_on(PeerId id, const TransportError& error);
    // settings_.max_message_size, within the specification's 128 MiB.
    [[nodiscard]] std::size_t max_message_size() const;
    // A read of the connection failed with ENOMEM (the kernel was short of memory for it): it is kept and
    // read again kReadRetry later, as dbus-daemon reads again after ENOMEM. Meanwhile its socket is not
    // watched at all: it stays readable (or hung up), and watching it would spin while memory is short.
    void retry_read_later(Connection& connection);
    static constexpr std::chrono::milliseconds kReadRetry{100};

    EventLoop& loop_;
    DeliveryEvents& events_;
    ConnectionSettings settings_;
    std::vector<Fd> listeners_;
    bool listening_ = true;  // false while the model takes no new connections
    bool accept_paused_ = false;       // accept() failed for want of fds or memory
    bool accept_failure_logged_ = false;  // this episode of failures (until the backlog empties) is logged
    bool listeners_watched_ = true;
    EventLoop::TimerId accept_retry_timer_ = 0;
    // How long after a failed accept() the listeners are tried again if no connection closes meanwhile:
    // 10 ms at first, so that a failure that passes at once (a moment short of memory) costs the waiting
    // client little, doubling up to a second while the episode lasts, so that a full fd table is not
    // polled in a loop. Back to 10 ms once the backlog has been emptied.
    static constexpr std::chrono::milliseconds kFirstAcceptRetry{10};
    static constexpr std::chrono::milliseconds kLastAcceptRetry{1000};
    std::chrono::milliseconds accept_retry_delay_ = kFirstAcceptRetry;
    std::unordered_map<PeerId, std::unique_ptr<Connection>> connections_;
    std::vector<PeerId> dirty_;           // connections with output queued in this turn of the loop
    std::vector<PeerId> paused_readers_;  // not read from until the model says they may be
    // Detached connections, freed once no event handler can still be using them (after the flush). Room
    // for every connection is made when it connects, so that detaching allocates nothing.
    std::vector<std::unique_ptr<Connection>> graveyard_;
};

}  // namespace afbus::daemon
