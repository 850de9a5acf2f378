// afbus::Connection — a client connection to a D-Bus bus (or a peer): connect and authenticate, Hello,
// method calls (blocking with a timeout, or asynchronous), signals and match subscriptions, name
// ownership, and exported objects with properties and introspection.
//
// Threading: a Connection is used from one thread. Integration with any event loop: poll fd() for
// poll_events(), call process() when it is ready or next_deadline() has passed. run() is a small
// built-in loop for programs that have none.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/error.hpp"
#include "afbus/expected.hpp"
#include "afbus/message.hpp"
#include "afbus/object.hpp"
#include "afbus/names.hpp"
#include "afbus/sasl_mechanism.hpp"

namespace afbus {

inline constexpr std::chrono::milliseconds kDefaultCallTimeout{25000};  // libdbus and sd-bus use 25 s

namespace detail {
class ConnectionState;
}

// Owns one registration (a pending call, a subscription, an exported object); dropping it unregisters.
// Safe to drop after the connection is gone.
class [[nodiscard]] Slot {
public:
    Slot() = default;
    Slot(std::weak_ptr<detail::ConnectionState> owner, std::uint64_t id) : owner_(std::move(owner)), id_(id) {}
    Slot(Slot&& other) noexcept : owner_(std::move(other.owner_)), id_(std::exchange(other.id_, 0)) {}
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { release(); }

    void release() noexcept;
    [[nodiscard]] bool active() const noexcept { return id_ != 0 && !owner_.expired(); }

private:
    std::weak_ptr<detail::ConnectionState> owner_;
    std::uint64_t id_ = 0;
};

struct ConnectOptions {
    bool bus = true;                 // send Hello (false for peer-to-peer connections)
    bool negotiate_unix_fds = true;  // on unix sockets
    std::chrono::milliseconds timeout{25000};
    // SASL mechanisms to try in this order; empty means libdbus's order: EXTERNAL, DBUS_COOKIE_SHA1,
    // ANONYMOUS (each only if the server lists it).
    std::vector<SaslMechanism> mechanisms;
    // DBUS_COOKIE_SHA1's keyring; empty means keyring_directory(home_directory(getuid())).
    std::string keyring_directory;
};


class Connection {
public:
    // Tries each entry of a ';'-separated address list in turn.
    static Expected<std::unique_ptr<Connection>, Error> open(std::string_view address, ConnectOptions options = {});
    static Expected<std::unique_ptr<Connection>, Error> open_session(ConnectOptions options = {});
    static Expected<std::unique_ptr<Connection>, Error> open_system(ConnectOptions options = {});
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    [[nodiscard]] const std::string& unique_name() const;
    [[nodiscard]] const std::string& server_guid() const;
    [[nodiscard]] bool unix_fd_passing() const;
    [[nodiscard]] bool connected() const;
    // The transport of the address entry this connection was made with: "unix", "tcp" or "afbus" (an
    // address list falls through to the next entry when one cannot be reached, e.g. afbus: without
    // AF_BUS in the kernel).
    [[nodiscard]] const std::string& transport() const;

    // Sends without waiting; assigns and returns the serial. While a SendBatch is open, and from the
    // handlers process() runs, the message is queued instead and written with the others when the batch
    // (or the dispatching) ends, or once 64 are queued; a failure to write them then disconnects the
    // connection and shows in what reports it (SendBatch::finish(), process()).
    Expected<std::uint32_t, Error> send(Message message);

    // Holds back this connection's send()s while it lives, then writes them together: over AF_BUS one
    // system call per 64 messages, and each receiver is woken once for all of them instead of once per
    // message, which is what makes a burst of signals to many subscribers cheap; over a stream, one
    // write. Batches nest; the outermost one's end writes. For a burst such as many signals at once:
    //     { auto batch = connection.batch_sends(); for (...) connection.send(...); }
    class [[nodiscard]] SendBatch {
    public:
        SendBatch(SendBatch&& other) noexcept;
        SendBatch& operator=(SendBatch&& other) noexcept;
        SendBatch(const SendBatch&) = delete;
        SendBatch& operator=(const SendBatch&) = delete;
        // Ends the batch (finish() first, to see whether the writes went out).
        ~SendBatch();
        // Ends the batch now; if it was the outermost one, writes what it held. An error means the
        // connection is gone.
        Expected<void, Error> finish();

    private:
        friend class Connection;
        explicit SendBatch(const std::shared_ptr<detail::ConnectionState>& state);
        std::weak_ptr<detail::ConnectionState> state_;
    };
    [[nodiscard]] SendBatch batch_sends();
    // Sends a method call and waits for its reply. Other messages that arrive meanwhile are kept and
    // dispatched by the next process(), never from inside call(). An error reply comes back as Error.
    Expected<Message, Error> call(Message message, std::chrono::milliseconds timeout = kDefaultCallTimeout);
    using ReplyHandler = std::function<void(Expected<Message, Error>)>;
    // The handler runs from process(), exactly once (reply, error, timeout or disconnect), unless the
    // slot is dropped first.
    Expected<Slot, Error> call_async(Message message, ReplyHandler handler,
                                     std::chrono::milliseconds timeout = kDefaultCallTimeout);

    using MessageHandler = std::function<void(const Message&)>;
    // Adds the match rule on the bus (AddMatch, waiting for the bus to accept it) and calls `handler` for
    // every message that matches; dropping the slot removes the rule (RemoveMatch).
    Expected<Slot, Error> subscribe(std::string_view match_rule, MessageHandler handler);

    // Turns this connection into a bus monitor (org.freedesktop.DBus.Monitoring.BecomeMonitor with
    // `match_rules`; none means every message). From then on every message the bus copies to it goes to
    // `handler` alone: no subscription, pending call or exported object sees it, and nothing is answered,
    // because a monitor may not send (the bus would disconnect it). Messages addressed to this connection
    // itself (the bus's NameAcquired/NameLost about its unique name) are not traffic and are not passed on.
    // Call it on a connection without subscriptions: broadcasts they matched before the switch would be
    // handed over too.
    Expected<void, Error> become_monitor(const std::vector<std::string>& match_rules, MessageHandler handler);

    Expected<RequestNameReply, Error> request_name(std::string_view name, std::uint32_t flags = 0);
    Expected<ReleaseNameReply, Error> release_name(std::string_view name);

    // Exports `interface` at `path` (several interfaces may share a path) until the slot is dropped.
    Expected<Slot, Error> export_interface(std::string_view path, Interface interface);
    // Serves org.freedesktop.DBus.ObjectManager at `path` until the slot is dropped: GetManagedObjects
    // answers every interface exported below `path` (not at it) with its readable properties, and
    // exporting or dropping an interface below it emits InterfacesAdded or InterfacesRemoved from `path`.
    // The standard interfaces (Properties, Introspectable, Peer) are not listed. afbus/object_manager.hpp
    // has the client side.
    Expected<Slot, Error> add_object_manager(std::string_view path);
    // Emits org.freedesktop.DBus.Properties.PropertiesChanged with the current values of `names`.
    Expected<void, Error> emit_properties_changed(std::string_view path, std::string_view interface,
                                                  const std::vector<std::string>& names);

    // Event-loop integration. Poll fd(); never read or write it. (On AF_BUS its file is blocking, so
    // that call() and run() wait in their receive; process() still never blocks.)
    [[nodiscard]] int fd() const;
    [[nodiscard]] short poll_events() const;  // POLLIN, plus POLLOUT while output is queued
    [[nodiscard]] std::optional<std::chrono::steady_clock::time_point> next_deadline() const;
    // Reads, dispatches everything that arrived, writes, and expires timed-out calls; never blocks.
    // An error means the connection is gone (pending calls have been answered with Disconnected).
    Expected<void, Error> process();
    // The built-in loop: process() until stop() or disconnection.
    Expected<void, Error> run();
    // Runs the loop until `done()` is true or `timeout` passes; false on timeout.
    Expected<bool, Error> run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);
    void stop();

private:
    explicit Connection(std::shared_ptr<detail::ConnectionState> state);
    // process() after its read: dispatches, expires calls, writes; `read`'s failure first.
    Expected<void, Error> dispatch_and_write(Expected<void, Error> read);
    std::shared_ptr<detail::ConnectionState> state_;
};

}  // namespace afbus
