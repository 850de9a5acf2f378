#include "afbus/connection.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstring>
#include <utility>

#include "afbus/address.hpp"
#include "afbus/af_bus_socket.hpp"
#include "afbus/keyring.hpp"
#include "afbus/sasl.hpp"
#include "afbus/sasl_stream.hpp"
#include "afbus/types.hpp"
#include "afbus/unix_socket.hpp"
#include "connection_state.hpp"

namespace afbus {

using detail::Clock;
using detail::ConnectionState;

namespace {

constexpr std::string_view kBusName = "org.freedesktop.DBus";
constexpr std::string_view kBusPath = "/org/freedesktop/DBus";
constexpr std::string_view kBusInterface = "org.freedesktop.DBus";

Error wire_error(WireError e) { return make_error(error_names::kInconsistentMessage, std::string(to_string(e))); }

Error transport_error(const TransportError& e) {
    if (e.kind == TransportError::Kind::Closed) return make_error(error_names::kDisconnected, "Connection closed by peer");
    return make_error(error_names::kDisconnected, describe(e));
}

int poll_timeout_ms(Clock::time_point deadline, Clock::time_point now) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    if (left <= 0) return 0;
    return left > 60'000 ? 60'000 : static_cast<int>(left) + 1;
}

// Waits until `fd` is ready for `events` or the deadline passes; false on timeout. `now` is the time the
// caller last read: the clock is read again only after a wait that did not end with the fd ready (a
// clock read is a system call where the clocksource has no vDSO, as in a TCG guest).
Expected<bool, Error> wait_fd(int fd, short events, Clock::time_point deadline,
                              Clock::time_point now = Clock::now()) {
    for (;;) {
        pollfd p{fd, events, 0};
        const int r = ::poll(&p, 1, poll_timeout_ms(deadline, now));
        if (r > 0) return true;
        if (r < 0 && errno != EINTR) return Unexpected(make_error(error_names::kIOError, std::strerror(errno)));
        now = Clock::now();
        if (r == 0 && now >= deadline) return false;
    }
}

// The blocking SASL conversation: EXTERNAL with our uid, then DBUS_COOKIE_SHA1 and ANONYMOUS where the
// server offers them (or the mechanisms the caller chose).
// On AF_BUS every SASL send is one datagram and SaslStream receives into a 4096-byte buffer: a longer
// datagram would be cut. Both sides' lines are far shorter (the longest, a DBUS_COOKIE_SHA1 DATA line,
// is a few hundred bytes), and the client sends BEGIN on its own, the Hello in a datagram of its own.
Expected<std::string, Error> authenticate(ConnectionState& state, const ConnectOptions& options, bool unix_socket,
                                          Clock::time_point deadline) {
    SaslClientConfig config;
    config.mechanisms = options.mechanisms;
    if (config.mechanisms.empty())
        config.mechanisms = {SaslMechanism::External, SaslMechanism::DbusCookieSha1, SaslMechanism::Anonymous};
    config.uid = ::getuid();
    config.negotiate_unix_fd = options.negotiate_unix_fds && unix_socket;
    config.keyring_directory = options.keyring_directory;
    if (config.keyring_directory.empty()) {
        if (auto home = home_directory(config.uid)) config.keyring_directory = keyring_directory(*home);
    }
    SaslClient sasl(std::move(config));
    SaslStream stream;
    for (;;) {
        auto progress = stream.advance(state.transport.fd(), sasl);
        if (!progress) {
            const SaslStreamError& e = progress.error();
            const std::string_view name = e.kind == SaslStreamError::Kind::Io ? error_names::kIOError : error_names::kAuthFailed;
            return Unexpected(make_error(name, e.describe()));
        }
        if (progress->kind == SaslProgress::Kind::Authenticated) {
            state.transport.set_unix_fd_passing(sasl.unix_fd_agreed());
            state.guid = sasl.server_guid();
            return std::move(progress->leftover);
        }
        const short events = progress->kind == SaslProgress::Kind::WantRead ? POLLIN : POLLOUT;
        auto ready = wait_fd(state.transport.fd(), events, deadline);
        if (!ready) return Unexpected(ready.error());
        if (!*ready) return Unexpected(make_error(error_names::kTimeout, "Authentication timed out"));
    }
}

// tcp:host=...,port=...[,family=ipv4|ipv6]: the first address that accepts the connection.
Expected<Fd, Error> connect_tcp(const AddressEntry& entry) {
    const std::string host(entry.get("host").value_or("localhost"));
    const std::string port(entry.get("port").value_or("0"));
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    if (auto family = entry.get("family")) hints.ai_family = *family == "ipv6" ? AF_INET6 : AF_INET;
    addrinfo* result = nullptr;
    if (const int e = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &result); e != 0)
        return Unexpected(make_error(error_names::kBadAddress, "Failed to look up host \"" + host + "\": " + ::gai_strerror(e)));
    int error = ECONNREFUSED;
    Fd connected;
    for (addrinfo* ai = result; ai && !connected; ai = ai->ai_next) {
        Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
        if (!fd) {
            error = errno;
            continue;
        }
        int r;
        do r = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
        while (r < 0 && errno == EINTR);
        if (r < 0) {
            error = errno;
            continue;
        }
        if (::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK) < 0) {
            error = errno;
            continue;
        }
        connected = std::move(fd);
    }
    ::freeaddrinfo(result);
    if (!connected)
        return Unexpected(make_error(error_names::kNoServer,
                                     "Failed to connect to " + entry.to_string() + ": " + std::strerror(error)));
    return connected;
}

Expected<Fd, Error> connect_unix_entry(const AddressEntry& entry) {
    auto path = unix_socket_path(entry, process_environment());
    if (!path) return Unexpected(make_error(error_names::kBadAddress, std::string(to_string(path.error()))));
    auto fd = connect_unix(*path);
    if (!fd) {
        const bool absent = fd.error() == ENOENT || fd.error() == ECONNREFUSED;
        return Unexpected(make_error(absent ? error_names::kFileNotFound : error_names::kNoServer,
                                     "Failed to connect to socket " + entry.to_string() + ": " + std::strerror(fd.error())));
    }
    return std::move(*fd);
}

std::string& af_bus_sysfs_root() {
    static std::string root(kDefaultSysfsRoot);
    return root;
}

// afbus:path=... / afbus:abstract=...: the socket, and the datagram transport over it. When the kernel
// has no AF_BUS the error is NotSupported, and Connection::open goes on with the next entry.
Expected<std::shared_ptr<ConnectionState>, Error> connect_af_bus_entry(const AddressEntry& entry) {
    auto socket = connect_af_bus(entry, af_bus_sysfs_root(), SocketFileMode::Blocking);
    if (!socket) {
        const AfBusSocketError& e = socket.error();
        std::string_view name = error_names::kNoServer;
        if (e.kind == AfBusSocketError::Kind::Unavailable) name = error_names::kNotSupported;
        if (e.kind == AfBusSocketError::Kind::BadAddress) name = error_names::kBadAddress;
        if (e.kind == AfBusSocketError::Kind::Socket && e.errno_value == EPROTONOSUPPORT) name = error_names::kNotSupported;
        if (e.kind == AfBusSocketError::Kind::Connect && (e.errno_value == ENOENT || e.errno_value == ECONNREFUSED))
            name = error_names::kFileNotFound;
        return Unexpected(make_error(name, "Failed to connect to " + entry.to_string() + ": " + e.describe()));
    }
    auto state = std::make_shared<ConnectionState>(
        detail::ClientTransport(DatagramTransport(std::move(socket->fd), socket->family)), "afbus");
    state->af_bus.emplace();
    state->af_bus_family = socket->family;
    return state;
}

Expected<std::shared_ptr<ConnectionState>, Error> connect_entry(const AddressEntry& entry, const ConnectOptions& options) {
    if (auto ok = check_connectable(entry); !ok)
        return Unexpected(make_error(error_names::kBadAddress, std::string(to_string(ok.error()))));
    const std::string& transport = entry.transport();
    if (transport != "unix" && transport != "tcp" && transport != "afbus")
        return Unexpected(make_error(error_names::kNotSupported, "Transport '" + transport + "' is not supported"));
    std::shared_ptr<ConnectionState> state;
    if (transport == "afbus") {
        auto connected = connect_af_bus_entry(entry);
        if (!connected) return Unexpected(connected.error());
        state = std::move(*connected);
    } else {
        auto fd = transport == "unix" ? connect_unix_entry(entry) : connect_tcp(entry);
        if (!fd) return Unexpected(fd.error());
        state = std::make_shared<ConnectionState>(detail::ClientTransport(StreamTransport(std::move(*fd))), transport);
    }
    state->bus = options.bus;
    const auto deadline = Clock::now() + options.timeout;
    // AF_BUS passes fds as unix sockets do.
    auto leftover = authenticate(*state, options, transport != "tcp", deadline);
    if (!leftover) return Unexpected(leftover.error());
    if (!leftover->empty()) {
        // On AF_BUS the first message must start a datagram of its own: message bytes in the datagram of
        // the server's last SASL line cannot be framed.
        if (state->transport.datagrams())
            return Unexpected(make_error(error_names::kInconsistentMessage,
                                         "AF_BUS server sent message bytes in a SASL datagram"));
        state->transport.push_received(*leftover);
    }
    if (options.bus) {
        auto hello = MessageBuilder::method_call(kBusName, kBusPath, kBusInterface, "Hello").build();
        if (!hello) return Unexpected(wire_error(hello.error()));
        auto serial = state->send(std::move(*hello));
        if (!serial) return Unexpected(serial.error());
        auto reply = state->wait_for_reply(*serial, deadline);
        if (!reply) return Unexpected(reply.error());
        auto name = read_all<std::string>(*reply);
        if (!name) return Unexpected(make_error(error_names::kInconsistentMessage, "Hello reply is not a string"));
        state->unique_name = std::get<0>(*name);
        if (state->af_bus) {
            state->af_bus->joined(state->unique_name,
                                  af_bus_local_address(state->transport.fd(), state->af_bus_family));
        }
    }
    return state;
}

}  // namespace

namespace detail {

// Why a native client's socket cannot go (docs/kernel.md, "No sockets over AF_BUS").
constexpr const char* kNoSocketsOverAfBus =
    "AF_BUS carries no sockets (docs/kernel.md): a client that passes sockets connects with a unix: address";

void set_af_bus_sysfs_root(std::string root) { af_bus_sysfs_root() = std::move(root); }

// The names dbus-daemon would answer with for the same reason: a policy or filter denial, a quota, a
// message the bus cannot take.
Error refused_send_error(int error_number, std::string_view destination) {
    std::string_view name = error_names::kFailed;
    switch (error_number) {
        case EXFULL:
            // The receiver's queue is full: the broker's words for a connection beyond max_outgoing_bytes.
            return make_error(error_names::kLimitsExceeded,
                              "The maximum number of bytes queued for " +
                                  std::string(destination.empty() ? std::string_view("the destination") : destination) +
                                  " has been reached");
        case ENOBUFS: name = error_names::kNoMemory; break;
        case EPERM:
        case EACCES: name = error_names::kAccessDenied; break;
        case EDQUOT:
        case EMSGSIZE:
        case ETOOMANYREFS: name = error_names::kLimitsExceeded; break;
        case EBADMSG:
        case EINVAL: name = error_names::kInvalidArgs; break;
        case EHOSTUNREACH: name = error_names::kServiceUnknown; break;
        default: break;
    }
    return make_error(name, std::string("The AF_BUS kernel refused the message: ") + std::strerror(error_number));
}

Expected<Message, Error> reply_to_result(Message reply) {
    if (reply.type() != MessageType::Error) return reply;
    Error e{std::string(reply.error_name()), {}};
    MessageReader r(reply);
    std::string text;
    if (reply.signature().starts_with("s") && read(r, text)) e.message = std::move(text);
    return Unexpected(std::move(e));
}

Expected<std::uint32_t, Error> ConnectionState::send(Message message) {
    if (!connected) return Unexpected(make_error(error_names::kDisconnected, "Not connected"));
    if (!message.fds().empty() && !transport.unix_fd_passing())
        return Unexpected(make_error(error_names::kNotSupported, "This connection cannot pass unix fds"));
    const std::uint32_t serial = take_serial();
    message.set_serial(serial);
    if (af_bus) {
        // af_bus_dbus.ko refuses (EPERM) a message whose SENDER is not the name the master gave us; only
        // one addressed to the master may go without. So every message carries it once we have one.
        if (!unique_name.empty() && message.sender() != unique_name) {
            auto stitched = std::move(message).with_sender(unique_name);
            if (!stitched) return Unexpected(wire_error(stitched.error()));
            message = std::move(*stitched);
        }
        if (af_bus->fenced()) {
            held.push_back(std::move(message));
            return serial;
        }
    }
    enqueue(std::move(message));
    if (send_batches > 0 && transport.queued_messages() < kHeldSends) return serial;
    if (auto r = flush(); !r) return Unexpected(r.error());
    return serial;
}

void ConnectionState::enqueue(Message message) {
    std::optional<std::uint64_t> destination;
    if (af_bus) {
        destination = af_bus->destination_for(message);
        af_bus->sending(message, *destination);
    }
    transport.enqueue(std::move(message), destination);
}

void ConnectionState::drain_held(Clock::time_point deadline) {
    // AF_BUS only: messages held behind a forwarded one would be lost with the connection; the master's
    // notice is one round trip away.
    while (af_bus && connected && (!held.empty() || transport.wants_write()) && Clock::now() < deadline)
        if (!pump(deadline)) break;
}

void ConnectionState::release_held() {
    while (!held.empty() && !af_bus->fenced()) {
        enqueue(std::move(held.front()));
        held.pop_front();
    }
}

Expected<void, Error> ConnectionState::flush() {
    if (!connected) return {};
    for (;;) {
        auto r = transport.flush();
        const bool handed_to_bus = answer_refused();
        if (!r) {
            const Error e = transport_error(r.error());
            disconnect(e);
            return Unexpected(e);
        }
        if (handed_to_bus) continue;  // sent to the master now
        // A refused forward lifts its fence: what it held may go now (and may be refused in turn).
        if (!af_bus || held.empty() || af_bus->fenced()) return {};
        release_held();
    }
}

bool ConnectionState::answer_refused() {
    // The kernel refused these messages and nothing else: the connection stays.
    bool handed_to_bus = false;
    for (const RefusedDatagram& refused : transport.take_refused()) {
        if (af_bus && refused.destination) af_bus->refused(*refused.message, *refused.destination);
        // Policy refused a message to another client (not a reply: the bus did not see its call): the bus
        // judges it again and does what it does with every refusal, as for a message it routes (dbus-daemon's
        // error and its words, log="true" rules logged, monitors shown; docs/kernel-mode.md). It goes as a
        // forward, whose fence holds back what follows until the bus is done with it; should the bus find it
        // allowed now (a reload), the bus delivers it (after what this flush already sent behind it).
        const Message& message = *refused.message;
        const MessageType type = message.type();
        const bool answer = type == MessageType::MethodReturn || type == MessageType::Error;
        const bool to_a_client = refused.destination && !message.destination().empty() &&
                                 *refused.destination != detail::AfBusRouting::kMaster;
        if (af_bus && refused.error_number == EACCES && to_a_client && !answer) {
            af_bus->sending(message, detail::AfBusRouting::kMaster);
            transport.enqueue_again(refused.message, detail::AfBusRouting::kMaster);
            handed_to_bus = true;
            continue;
        }
        const bool socket_refused =
            refused.error_number == EINVAL && carries_a_socket_af_bus_refuses(message, af_bus_family);
        // An answer that cannot go because it carries a socket (AF_BUS carries none): its caller, who would
        // wait for it until the reply timeout, gets an error in its place, saying why.
        if (af_bus && socket_refused && type == MessageType::MethodReturn && to_a_client &&
            message.reply_serial()) {
            auto error = MessageBuilder::error(message.destination(), *message.reply_serial(),
                                               error_names::kNotSupported, kNoSocketsOverAfBus);
            error.sender(unique_name);
            if (auto built = error.build(take_serial())) {
                transport.enqueue(std::move(*built), *refused.destination);
                handed_to_bus = true;  // (to the caller: flushed again all the same)
            }
            continue;
        }
        // A call awaiting a reply gets an error reply, queued as if the bus had sent it, so call() and
        // call_async() see it the usual way. Other refused messages (signals, replies, no-reply calls) are
        // dropped without a word, as a bus drops what its policy denies.
        if (!refused.message->expects_reply()) continue;
        const Error e = socket_refused ? make_error(error_names::kNotSupported, kNoSocketsOverAfBus)
                                       : refused_send_error(refused.error_number, message.destination());
        auto reply = MessageBuilder::error(unique_name, refused.message->serial(), e.name, e.message)
                         .sender(kBusName)
                         .build(1);
        if (reply) incoming.push_back(std::move(*reply));
    }
    return handed_to_bus;
}

Expected<void, Error> ConnectionState::read_available(ReadStart start) {
    if (!connected) return Unexpected(make_error(error_names::kDisconnected, "Not connected"));
    auto n = transport.read(start);
    std::optional<Error> failure;
    if (!n) failure = transport_error(n.error());
    // Keep every complete message that arrived before a failure.
    for (;;) {
        auto m = transport.next();
        if (!m) {
            failure = transport_error(m.error());
            break;
        }
        if (!*m) break;
        // The master's NameAddress notifications are the library's, never the application's.
        if (af_bus && af_bus->absorb((*m)->message, (*m)->source)) {
            release_held();
            continue;
        }
        incoming.push_back(std::move((*m)->message));
    }
    if (failure) {
        disconnect(*failure);
        return Unexpected(*failure);
    }
    return {};
}

bool ConnectionState::may_wait_in_read(Clock::duration left) {
    if (left < kReceiveTimeout || transport.wants_write() || !transport.can_wait_in_read()) return false;
    if (receive_timeout == ReceiveTimeout::Unset) {
        const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(kReceiveTimeout);
        const auto microseconds =
            std::chrono::duration_cast<std::chrono::microseconds>(kReceiveTimeout - seconds);
        const timeval timeout{static_cast<time_t>(seconds.count()),
                              static_cast<suseconds_t>(microseconds.count())};
        // Where the socket takes no receive timeout, every wait is a poll() as before.
        receive_timeout = ::setsockopt(transport.fd(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) == 0
                              ? ReceiveTimeout::Set
                              : ReceiveTimeout::Unavailable;
    }
    return receive_timeout == ReceiveTimeout::Set;
}

Expected<void, Error> ConnectionState::pump(Clock::time_point deadline, Clock::time_point now) {
    if (auto r = flush(); !r) return r;
    if (may_wait_in_read(deadline - now)) return read_available(ReadStart::Waiting);
    short events = POLLIN;
    if (transport.wants_write()) events |= POLLOUT;
    auto ready = wait_fd(transport.fd(), events, deadline, now);
    if (!ready) return Unexpected(ready.error());
    if (!*ready) return {};
    return read_available();
}

Expected<Message, Error> ConnectionState::wait_for_reply(std::uint32_t serial, Clock::time_point deadline,
                                                         Clock::time_point now) {
    for (bool first = true;; first = false) {
        for (auto it = incoming.begin(); it != incoming.end(); ++it) {
            if ((it->type() == MessageType::MethodReturn || it->type() == MessageType::Error) &&
                it->reply_serial() == serial) {
                Message reply = std::move(*it);
                incoming.erase(it);
                return reply_to_result(std::move(reply));
            }
        }
        if (!connected) return Unexpected(make_error(error_names::kDisconnected, "Connection is closed"));
        if (!first) now = Clock::now();
        if (now >= deadline) {
            return Unexpected(make_error(error_names::kNoReply,
                                         "Did not receive a reply. Possible causes include: the remote application "
                                         "did not send a reply, the message bus security policy blocked the reply, "
                                         "the reply timeout expired, or the network connection was broken."));
        }
        auto r = pump(deadline, now);
        if (!r && !connected) continue;  // report through the loop's checks, after looking at what arrived
        if (!r) return Unexpected(r.error());
    }
}

void ConnectionState::expire_calls(Clock::time_point now) {
    std::vector<Connection::ReplyHandler> expired;
    for (auto it = pending.begin(); it != pending.end();) {
        if (it->second.deadline <= now) {
            expired.push_back(std::move(it->second.handler));
            it = pending.erase(it);
        } else {
            ++it;
        }
    }
    for (auto& handler : expired) handler(Unexpected(make_error(error_names::kNoReply, "Method call timed out")));
}

void ConnectionState::disconnect(const Error& why) {
    if (!connected) return;
    connected = false;
    auto calls = std::move(pending);
    pending.clear();
    for (auto& [serial, call] : calls) call.handler(Unexpected(why));
}

void ConnectionState::release(std::uint64_t id) {
    for (auto it = pending.begin(); it != pending.end(); ++it) {
        if (it->second.id == id) {
            pending.erase(it);
            return;
        }
    }
    if (auto it = subscriptions.find(id); it != subscriptions.end()) {
        const std::shared_ptr<Subscription> sub = it->second;
        subscriptions.erase(it);
        if (sub->on_bus && connected) {
            auto b = MessageBuilder::method_call(kBusName, kBusPath, kBusInterface, "RemoveMatch");
            append(b, sub->text);
            b.no_reply_expected();
            if (auto m = b.build()) (void)send(std::move(*m));
        }
        return;
    }
    if (auto it = exports.find(id); it != exports.end()) {
        const Export gone = std::move(it->second);
        exports.erase(it);
        if (connected) announce_interface(gone.path, *gone.interface, Change::Removed);
        return;
    }
    object_managers.erase(id);
}

void ConnectionState::dispatch(Message message) {
    // Keep ourselves alive: a handler may drop the last Connection reference's slots.
    const auto self = shared_from_this();
    if (monitor_handler) {
        if (message.destination() != unique_name) monitor_handler(message);
        return;
    }
    if ((message.type() == MessageType::MethodReturn || message.type() == MessageType::Error) && message.reply_serial()) {
        if (auto it = pending.find(*message.reply_serial()); it != pending.end()) {
            auto handler = std::move(it->second.handler);
            pending.erase(it);
            handler(reply_to_result(std::move(message)));
            return;
        }
    }
    // Collect first, then call: a handler may add or drop subscriptions.
    std::vector<std::shared_ptr<Subscription>> matched;
    for (const auto& [id, sub] : subscriptions)
        if (sub->rule.matches(message, false)) matched.push_back(sub);
    for (const auto& sub : matched) sub->handler(message);
    const std::string_view destination = message.destination();
    const bool for_us = destination.empty() || destination == unique_name || owned_names.count(destination) != 0;
    if (message.type() == MessageType::MethodCall && for_us) dispatch_method_call(message);
}

}  // namespace detail

// --- Slot ---

Slot& Slot::operator=(Slot&& other) noexcept {
    if (this != &other) {
        release();
        owner_ = std::move(other.owner_);
        id_ = std::exchange(other.id_, 0);
    }
    return *this;
}

void Slot::release() noexcept {
    if (id_ == 0) return;
    if (auto owner = owner_.lock()) owner->release(id_);
    id_ = 0;
    owner_.reset();
}

// --- Connection ---

Connection::Connection(std::shared_ptr<ConnectionState> state) : state_(std::move(state)) {}
Connection::~Connection() {
    if (state_) state_->drain_held(Clock::now() + std::chrono::seconds(5));
}

Expected<std::unique_ptr<Connection>, Error> Connection::open(std::string_view address, ConnectOptions options) {
    auto entries = parse_address_list(address);
    if (!entries) {
        return Unexpected(make_error(error_names::kBadAddress,
                                     "Invalid address '" + std::string(address) + "': " + std::string(to_string(entries.error()))));
    }
    Error last = make_error(error_names::kBadAddress, "Empty address");
    for (const AddressEntry& entry : *entries) {
        auto state = connect_entry(entry, options);
        if (state) return std::unique_ptr<Connection>(new Connection(std::move(*state)));
        last = state.error();
    }
    return Unexpected(last);
}

Expected<std::unique_ptr<Connection>, Error> Connection::open_session(ConnectOptions options) {
    auto entries = session_bus_address(process_environment());
    if (!entries) return Unexpected(make_error(error_names::kBadAddress, std::string(to_string(entries.error()))));
    return open(to_string(*entries), options);
}

Expected<std::unique_ptr<Connection>, Error> Connection::open_system(ConnectOptions options) {
    auto entries = system_bus_address(process_environment());
    if (!entries) return Unexpected(make_error(error_names::kBadAddress, std::string(to_string(entries.error()))));
    return open(to_string(*entries), options);
}

const std::string& Connection::unique_name() const { return state_->unique_name; }
const std::string& Connection::server_guid() const { return state_->guid; }
bool Connection::unix_fd_passing() const { return state_->transport.unix_fd_passing(); }
bool Connection::connected() const { return state_->connected; }
const std::string& Connection::transport() const { return state_->transport_name; }
int Connection::fd() const { return state_->transport.fd(); }

short Connection::poll_events() const {
    short events = POLLIN;
    if (state_->transport.wants_write()) events |= POLLOUT;
    return events;
}

std::optional<std::chrono::steady_clock::time_point> Connection::next_deadline() const {
    // Messages already read (e.g. during a blocking call) are due now.
    if (!state_->incoming.empty()) return Clock::now();
    std::optional<Clock::time_point> next;
    for (const auto& [serial, call] : state_->pending)
        if (!next || call.deadline < *next) next = call.deadline;
    return next;
}

Expected<std::uint32_t, Error> Connection::send(Message message) { return state_->send(std::move(message)); }

Expected<Message, Error> Connection::call(Message message, std::chrono::milliseconds timeout) {
    auto serial = state_->send(std::move(message));
    if (!serial) return Unexpected(serial.error());
    const auto now = Clock::now();
    return state_->wait_for_reply(*serial, now + timeout, now);
}

Expected<Slot, Error> Connection::call_async(Message message, ReplyHandler handler, std::chrono::milliseconds timeout) {
    auto serial = state_->send(std::move(message));
    if (!serial) return Unexpected(serial.error());
    const std::uint64_t id = state_->next_id++;
    state_->pending[*serial] = {id, std::move(handler), Clock::now() + timeout};
    return Slot(state_, id);
}

Expected<Slot, Error> Connection::subscribe(std::string_view match_rule, MessageHandler handler) {
    auto rule = MatchRule::parse(match_rule);
    if (!rule) {
        return Unexpected(make_error(error_names::kMatchRuleInvalid,
                                     "Invalid match rule '" + std::string(match_rule) + "': " + std::string(to_string(rule.error()))));
    }
    auto sub = std::make_shared<ConnectionState::Subscription>(
        ConnectionState::Subscription{std::move(*rule), std::string(match_rule), std::move(handler), state_->bus});
    if (state_->bus) {
        auto b = MessageBuilder::method_call(kBusName, kBusPath, kBusInterface, "AddMatch");
        append(b, sub->text);
        auto m = b.build();
        if (!m) return Unexpected(wire_error(m.error()));
        auto reply = call(std::move(*m));
        if (!reply) return Unexpected(reply.error());
    }
    const std::uint64_t id = state_->next_id++;
    state_->subscriptions.emplace(id, std::move(sub));
    return Slot(state_, id);
}

Expected<void, Error> Connection::become_monitor(const std::vector<std::string>& match_rules, MessageHandler handler) {
    // Traffic between AF_BUS clients bypasses the daemon, which copies to monitors only what it routes.
    if (state_->af_bus)
        return Unexpected(make_error(error_names::kNotSupported,
                                     "Monitoring over AF_BUS is not supported yet: connect the monitor to the bus's unix address"));
    auto b = MessageBuilder::method_call(kBusName, kBusPath, "org.freedesktop.DBus.Monitoring", "BecomeMonitor");
    append(b, match_rules, std::uint32_t{0});
    auto m = b.build();
    if (!m) return Unexpected(wire_error(m.error()));
    auto reply = call(std::move(*m));
    if (!reply) return Unexpected(reply.error());
    // What arrived before the reply is still queued and reaches the handler from here on: on a connection
    // without subscriptions that is only the bus's bookkeeping about this connection, which it skips.
    state_->monitor_handler = std::move(handler);
    return {};
}

Expected<RequestNameReply, Error> Connection::request_name(std::string_view name, std::uint32_t flags) {
    auto b = MessageBuilder::method_call(kBusName, kBusPath, kBusInterface, "RequestName");
    append(b, name, flags);
    auto m = b.build();
    if (!m) return Unexpected(wire_error(m.error()));
    auto reply = call(std::move(*m));
    if (!reply) return Unexpected(reply.error());
    auto code = read_all<std::uint32_t>(*reply);
    if (!code) return Unexpected(make_error(error_names::kInconsistentMessage, "RequestName reply is not a uint32"));
    const auto result = static_cast<RequestNameReply>(std::get<0>(*code));
    // A queued name may be granted later; calls to it are ours from then on, so keep it too.
    if (result != RequestNameReply::Exists) state_->owned_names.emplace(name);
    return result;
}

Expected<ReleaseNameReply, Error> Connection::release_name(std::string_view name) {
    auto b = MessageBuilder::method_call(kBusName, kBusPath, kBusInterface, "ReleaseName");
    append(b, name);
    auto m = b.build();
    if (!m) return Unexpected(wire_error(m.error()));
    auto reply = call(std::move(*m));
    if (!reply) return Unexpected(reply.error());
    auto code = read_all<std::uint32_t>(*reply);
    if (!code) return Unexpected(make_error(error_names::kInconsistentMessage, "ReleaseName reply is not a uint32"));
    if (auto it = state_->owned_names.find(name); it != state_->owned_names.end()) state_->owned_names.erase(it);
    return static_cast<ReleaseNameReply>(std::get<0>(*code));
}

Expected<void, Error> Connection::process() {
    if (!state_->connected) return Unexpected(make_error(error_names::kDisconnected, "Connection is closed"));
    return dispatch_and_write(state_->read_available());
}

Expected<void, Error> Connection::dispatch_and_write(Expected<void, Error> r) {
    // What the handlers send goes out together once they are done (see send()).
    SendBatch batch(state_);
    // Dispatch what arrived even if the connection then failed.
    while (!state_->incoming.empty()) {
        Message m = std::move(state_->incoming.front());
        state_->incoming.pop_front();
        state_->dispatch(std::move(m));
    }
    if (!state_->pending.empty()) state_->expire_calls(Clock::now());
    auto written = batch.finish();
    if (!r) return r;
    if (!written) return written;
    return state_->flush();
}

Connection::SendBatch Connection::batch_sends() {
    return SendBatch(state_);
}

Connection::SendBatch::SendBatch(const std::shared_ptr<detail::ConnectionState>& state) : state_(state) {
    ++state->send_batches;
}

Connection::SendBatch::SendBatch(SendBatch&& other) noexcept : state_(std::exchange(other.state_, {})) {}

Connection::SendBatch& Connection::SendBatch::operator=(SendBatch&& other) noexcept {
    if (this != &other) {
        (void)finish();
        state_ = std::exchange(other.state_, {});
    }
    return *this;
}

Connection::SendBatch::~SendBatch() {
    (void)finish();
}

Expected<void, Error> Connection::SendBatch::finish() {
    auto state = std::exchange(state_, {}).lock();
    if (!state) return {};
    assert(state->send_batches > 0);
    if (--state->send_batches > 0) return {};
    return state->flush();
}

Expected<void, Error> Connection::run() {
    state_->stopping = false;
    while (!state_->stopping) {
        auto r = run_until([this] { return state_->stopping; }, std::chrono::hours(24));
        if (!r) return Unexpected(r.error());
    }
    // A service that returns from run() to exit must not lose its last replies.
    state_->drain_held(Clock::now() + std::chrono::seconds(5));
    return {};
}

Expected<bool, Error> Connection::run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    auto processed = process();
    for (;;) {
        if (!processed) return Unexpected(processed.error());
        if (done()) return true;
        auto wake = deadline;
        if (auto next = next_deadline(); next && *next < wake) wake = *next;
        const auto now = Clock::now();
        if (now >= deadline) return false;
        // Nothing due for a while: the wait is the read (one system call), and what it read is
        // dispatched without reading again.
        if (state_->may_wait_in_read(wake - now)) {
            processed = dispatch_and_write(state_->read_available(ReadStart::Waiting));
            continue;
        }
        auto ready = wait_fd(fd(), poll_events(), wake, now);
        if (!ready) return Unexpected(ready.error());
        processed = process();
    }
}

void Connection::stop() { state_->stopping = true; }

}  // namespace afbus
