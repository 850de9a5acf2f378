// KernelDelivery: kernel mode, the delivery seam over AF_BUS (docs/kernel-mode.md). The daemon is the
// bus's master: it accepts native clients on its AF_BUS listener, authenticates them over their
// master-side socket, names and joins them in the kernel after Hello, installs their match rules as
// records in af_bus_dbus.ko and gives each well-known name one address in prefix 1, moved with its
// owner, and installs the policy: the compiled image on the bus, each client's chains (its rules, by
// index) and the names it owns, which af_bus_dbus.ko evaluates on every message between clients. Native
// clients then send to each other through the kernel; the daemon sees what they send to
// the master: bus calls, and messages for names they have no address for yet, which it forwards (and
// then tells the sender the name's address, so that the next message goes directly).
//
// Standard clients on unix sockets are served by a BrokerDelivery inside this one, and bridged into the
// kernel: at Hello each gets an AF_BUS socket of its own, held by the daemon (its bridge), which the
// master names and joins like a native client's. What the client sends leaves through its bridge, as
// libafbus would send it (directly to the receiver's address, signals by multicast, what only the bus
// can route through the model); what the kernel delivers to its bridge is written to its unix socket.
// So the kernel sees one peer per client and one order for the whole bus, and native and standard
// clients see each other's calls, signals and replies alike (docs/kernel-mode.md, "The bridge").
#pragma once

#include <cerrno>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "afbus/address.hpp"
#include "afbus/datagram_transport.hpp"
#include "afbus/fd.hpp"
#include "afbus/sasl.hpp"
#include "afbus/sasl_stream.hpp"
#include "broker_delivery.hpp"
#include "delivery.hpp"
#include "event_loop.hpp"
#include "policy_engine.hpp"

namespace afbus::daemon {

class KernelDelivery final : public Delivery {
public:
    // `family`: the AF_BUS family number in use (af_bus_family()).
    KernelDelivery(EventLoop& loop, DeliveryEvents& events, ConnectionSettings settings, int family);
    ~KernelDelivery() override;
    KernelDelivery(const KernelDelivery&) = delete;
    KernelDelivery& operator=(const KernelDelivery&) = delete;

    // The unix side: add its listeners there.
    [[nodiscard]] BrokerDelivery& broker() noexcept { return broker_; }
    // Accepts native clients on `listener`, a bound and listening AF_BUS master socket whose address
    // (afbus:path=… or afbus:abstract=…) is `address`: the first listener's bus is where unix clients are
    // bridged. False (logged, the listener closed) if the kernel refused the policy: the bus would not
    // enforce it.
    [[nodiscard]] bool add_listener(Fd listener, const std::string& address);

    void configure(const ConnectionSettings& settings) override;
    [[nodiscard]] QueueLoad queued(PeerId peer) const override;
    [[nodiscard]] bool passes_fds(PeerId peer) const override;
    [[nodiscard]] std::optional<std::string> cannot_carry(PeerId peer, const Message& message) const override;
    QueueLoad deliver(PeerId peer, std::shared_ptr<const Message> message) override;
    QueueLoad deliver_copy(PeerId peer, std::shared_ptr<const Message> message) override;
    void flush() override;
    void detach(PeerId peer) override;

    // The model's changes, mirrored in the kernel. Where that fails (out of memory, or the kernel
    // refuses), the client concerned is out of step (note_out_of_step) and ends at the next flush();
    // a match rule is refused instead.
    void unique_name_assigned(PeerId peer, std::string_view unique_name) noexcept override;
    void name_owner_changed(const NameChange& change) noexcept override;
    [[nodiscard]] std::optional<Refusal> match_added(PeerId peer, const MatchRule& rule) noexcept override;
    void match_removed(PeerId peer, const MatchRule& rule) noexcept override;
    void became_monitor(PeerId peer, const std::vector<MatchRule>& rules) noexcept override;
    void peer_policy_assigned(PeerId peer, const policy::ConnectionChains* chains) noexcept override;
    void stage_peer_policy(PeerId peer, const policy::ConnectionChains* chains) override;
    void drop_staged_policies() noexcept override;
    void peer_names_changed(PeerId peer, const std::vector<std::string>& names) noexcept override;

private:
    // The NameAddress notice that answers a message the master forwarded for `sender`.
    struct Notice {
        PeerId sender;
        std::string name;
        std::uint64_t address;  // 0: the name has no address of its own
    };
    // A unix client's AF_BUS socket, on which the daemon sends and receives for it (the client side; its
    // master side is the Client's transport).
    struct Bridge {
        std::unique_ptr<DatagramTransport> transport;
        std::uint32_t epoll_events = 0;
        bool reading_paused = false;  // its unix socket holds too much: the kernel queues for it
        EventLoop::TimerId read_retry_timer = 0;  // see bridge_retry_read_later
        EventLoop::TimerId pump_retry_timer = 0;  // see bridge_hold_answer
        // What the client sent while a message the model routes for it has not reached the kernel yet
        // (the fence: nothing of its may overtake that one).
        std::size_t awaited_acknowledgements = 0;
        std::deque<Message> held;
        std::size_t held_bytes = 0;
        // Calls it sent directly that await an answer: serial → the callee, for NoReply when the callee
        // leaves without answering (or the reply timeout passes), as the broker tells.
        struct PendingCall {
            PeerId callee;
            EventLoop::TimerId timer;
        };
        std::unordered_map<std::uint32_t, PendingCall> pending_calls;
        // Their serials, oldest first (with serials since answered, skipped when met): an answer the
        // kernel dropped at a full queue never reaches the bridge, so beyond the kernel's own limit of
        // outstanding calls the oldest entries are stale and are forgotten.
        std::deque<std::uint32_t> call_order;
        // Calls the master forwarded to it (the caller's unique name and serial): their answers go back
        // through the model, which tracks them.
        std::set<std::pair<std::string, std::uint32_t>> forwarded_calls;
        // Calls clients sent it through the kernel directly (the caller's address and serial), until it
        // answers them: an answer that cannot cross the kernel (it carries a socket) is checked against
        // them before the daemon carries it or answers for it.
        std::set<std::pair<std::uint64_t, std::uint32_t>> direct_calls;
        bool pumping = false;  // sending what it held: the fence's acknowledgements must not nest
    };
    struct Client {
        PeerId id = 0;
        std::uint64_t address = 0;  // its unique address in the kernel
        std::unique_ptr<DatagramTransport> transport;  // on its master-side socket
        std::unique_ptr<SaslServer> sasl;              // while authenticating
        SaslStream sasl_stream;
        EventLoop::TimerId auth_timer = 0;
        EventLoop::TimerId read_retry_timer = 0;  // see retry_read_later
        std::uint32_t epoll_events = 0;
        bool reading_paused = false;
        std::string unique_name;
        // Its match rules as the kernel has them (match_added), in the order they were added.
        struct Record {
            MatchRule rule;         // as the model knows it
            std::string in_kernel;  // the record installed; empty when none is (see install_record)
        };
        std::vector<Record> records;
        // Its policy chains as BUS_DBUS_SET_CHAINS takes them; empty when the bus has no policy.
        std::vector<std::uint32_t> chains;
        std::optional<std::vector<std::uint32_t>> staged_chains;  // a reload's, until it takes effect
        // Notices that wait for what is queued for this client to reach the kernel.
        std::vector<Notice> deferred_notices;
        std::unique_ptr<Bridge> bridge;  // a unix client's: what the daemon does as its library
        std::size_t listener = 0;        // the bus it is on (index into listeners_)
        bool monitor = false;
        // A bridged monitor's rules: the kernel's copies of traffic between clients are filtered by them
        // (the model filters its own).
        std::vector<MatchRule> monitor_rules;
    };
    // The unix side's events: a bridged client's messages go to the kernel, everything else to the model.
    class UnixEvents final : public DeliveryEvents {
    public:
        explicit UnixEvents(KernelDelivery& kernel) : kernel_(kernel) {}
        [[nodiscard]] bool may_accept() const override { return kernel_.events_.may_accept(); }
        std::optional<PeerId> peer_connected(PeerCredentials credentials) override {
            return kernel_.peer_connected(std::move(credentials));
        }
        Expected<void, std::string> peer_authenticated(PeerId peer, std::optional<uid_t> uid) override {
            return kernel_.events_.peer_authenticated(peer, uid);
        }
        void peer_sent(PeerId peer, Message message) override { kernel_.unix_peer_sent(peer, std::move(message)); }
        void peer_failed(PeerId peer, std::string_view reason) override {
            kernel_.report_failed(peer, reason);
        }
        void peer_refused(PeerId peer, std::string_view reason) override {
            kernel_.report_refused(peer, reason);
        }
        void peer_lost(PeerId peer, std::string_view reason) override { kernel_.report_lost(peer, reason); }
        [[nodiscard]] bool may_read(PeerId peer) const override { return kernel_.unix_peer_may_read(peer); }
        [[nodiscard]] bool registered(PeerId peer) const override { return kernel_.events_.registered(peer); }
        // (Broker mode has no kernel to drop anything.)
        void peer_message_skipped(PeerId peer, const SkippedMessage& message) override {
            kernel_.events_.peer_message_skipped(peer, message);
        }
        void copies_dropped(PeerId peer, std::uint64_t count, QueueLoad queued) override {
            kernel_.events_.copies_dropped(peer, count, queued);
        }
        void message_given_up(PeerId recipient) noexcept override {
            kernel_.events_.message_given_up(recipient);
        }

    private:
        KernelDelivery& kernel_;
    };

    void on_listener_ready(int fd);
    // Accepts one connection on `fd`; false when none is waiting.
    bool accept_one(int fd);
    void watch_listeners(bool on);
    void apply_bus_limits(const Fd& listener) const;
    // max_replies_per_connection in the kernel's range: the calls a client may have outstanding there.
    [[nodiscard]] std::uint32_t kernel_max_replies() const;
    // Installs settings_.policy's image (or none) on `listener`'s bus; false (logged) if the kernel refused it.
    [[nodiscard]] bool install_policy(const Fd& listener) const;
    // Gives the kernel `client`'s chains (once it is named: the kernel knows it from then on): 0, also
    // when there is nothing to give, or the errno (set_option_errno).
    [[nodiscard]] int install_chains(const Client& client);
    void add_client(Fd socket, std::size_t listener);
    // Every new peer, native or unix, is admitted here: room first for its entry in out_of_step_.
    std::optional<PeerId> peer_connected(PeerCredentials credentials);
    // The kernel's copy of `peer`'s state (its name, records, chains, names, a name's address) no longer
    // matches the model's: `peer` is lost at the next flush(), `reason` logged. Allocates nothing.
    void note_out_of_step(PeerId peer, const char* reason) noexcept;
    // Runs `change`, a step of mirroring the model for `peer`; out of memory, `peer` is out of step.
    template <class Change>
    void mirror(PeerId peer, Change&& change) noexcept;
    // After `name` changed owner: `watcher`'s records naming it as sender name the new owner; out of step
    // when one could not be installed.
    void follow_sender(Client& watcher, std::string_view name) noexcept;
    void on_io(PeerId id, std::uint32_t events);
    void handle_io(PeerId id, std::uint32_t events);
    void authenticate(Client& client);
    void read_messages(Client& client, bool hung_up);
    // Sends what is queued for `client` now. A broken connection is reported at the next flush().
    void send_queued(Client& client);
    // After the model routed a message `sender` sent the master for `destination`: the notice that lets
    // the sender go on (its library holds its sends until then), with the name's address if a native
    // client holds it, so that its next messages go directly. Without memory for the notice, the sender
    // would wait for ever: it is out of step instead (ended at the flush, logged).
    void acknowledge_forward(PeerId sender, const std::string& destination) noexcept;
    void send_or_defer_notice(PeerId sender, const std::string& destination);  // (may throw std::bad_alloc)
    void send_notice(const Notice& notice);
    // Queues a NameAddress or PeerAddress signal for `to` (docs/kernel-mode.md).
    void enqueue_notice(Client& to, std::string_view member, const std::string& name, std::uint64_t address);
    void update_watch(Client& client);
    // Sends and reads on whatever is on its way to bridged client `c` through the kernel, so that what
    // goes to its unix side directly next keeps its place.
    void drain_toward(Client& c);
    // A message for bridged client `c` that AF_BUS cannot carry (a socket): to its unix side directly,
    // after whatever is on its way to it through the kernel.
    QueueLoad deliver_around_the_kernel(Client& c, std::shared_ptr<const Message> message);
    // An answer carrying a socket from bridged client `c` to a call that reached it through the kernel
    // (the caller checked: direct_calls): delivered around the kernel to a bridged caller; a native
    // caller, who cannot be given a socket, is answered NotSupported by the bus. False when the caller is
    // gone or the answer is malformed (the model routes it).
    bool bridge_answer_around_the_kernel(Client& c, Message& answer);
    // A read of the client's master-side socket failed with ENOMEM (the kernel was short of memory for
    // it): the client is kept and read again kReadRetry later, as the broker and dbus-daemon read again.
    // Meanwhile its socket is not watched at all: it stays readable, and watching it would spin.
    void retry_read_later(Client& client);
    static constexpr std::chrono::milliseconds kReadRetry{100};
    // Watches the client's master-side socket (again), for what update_watch() wants.
    [[nodiscard]] bool watch_client(Client& client);
    // Tells the model of the broadcast copies the kernel dropped for `client` since it last asked.
    void report_drops(Client& client);
    // Sets a SOL_BUS option on `client`'s master-side socket; false (logged) if the kernel refused it.
    bool set_option(const Client& client, int option, const void* value, std::size_t size, const char* what);
    // The same, returning 0 or the errno (logged, except ENOTCONN: the client left, its failure is on its
    // way).
    int set_option_errno(const Client& client, int option, const void* value, std::size_t size, const char* what);
    // Whether set_option_errno's `error` is the kernel refusing, not the client gone (ENOTCONN).
    [[nodiscard]] static bool refused(int error) noexcept { return error != 0 && error != ENOTCONN; }
    [[nodiscard]] Client* find(PeerId id) const;

    // The bridge (docs/kernel-mode.md, "The bridge").
    // Gives unix client `peer` its AF_BUS socket; false (logged) if the kernel would not: the model then
    // routes for it as in broker mode.
    bool bridge_unix_client(PeerId peer);
    bool make_bridge(PeerId peer);  // the same; may throw std::bad_alloc
    // A bridged client's message, sent on through its bridge (bridge_send). Out of memory before the
    // message was handed on (to the kernel, the model, or the bridge's hold), it is skipped as the
    // broker skips one: a call is answered NoMemory, and the client is read on.
    void unix_peer_sent(PeerId peer, Message message);
    [[nodiscard]] bool unix_peer_may_read(PeerId peer) const;
    // Sends `message` from bridged client `c` as its library would, or holds it behind the fence.
    // (These three take `message` by rvalue reference and move from it only when they hand it on, which
    // bridge_handoffs_ counts: when one throws before, the caller still has it.)
    void bridge_send(Client& c, Message&& message);
    void bridge_route(Client& c, Message&& message);
    // Hands `message` of bridged client `c` to the model, which routes it; the fence rises until it is
    // in the kernel.
    void bridge_through_model(Client& c, Message&& message);
    // The same for an answer to a call the master forwarded to `c` (the model tracks it), whose record
    // the bridge forgets once it is handed on; false (and `message` untouched) for any other message.
    bool bridge_answer_through_model(Client& c, Message&& message);
    // An answer bridged client `c` sent that the bus had no memory to send on: somebody waits for it
    // (perhaps a native client whose direct call the bus does not track), so it is held, first, and sent
    // again kReadRetry later. With no memory to hold it either, `c` is ended at the flush instead.
    void bridge_hold_answer(Client& c, Message&& answer) noexcept;
    void bridge_acknowledged(Client& c);
    // Sends what `c` held, while nothing of its is on the way.
    void bridge_pump(Client& c);
    void bridge_answer_refused(Client& c);
    // Sends what `c`'s bridge has queued, deals with what the kernel refused, and notes a broken bridge
    // for the flush; false when it broke.
    bool bridge_flush(Client& c);
    void on_bridge_io(PeerId id, std::uint32_t events);
    void handle_bridge_io(PeerId id, std::uint32_t events);
    // Writes what the kernel delivered to `c`'s bridge to its unix socket, while that holds little
    // enough (`drain`: everything, before a callee's NoReply).
    void bridge_read(Client& c, bool drain = false);
    // One message the kernel delivered to `c`'s bridge, queued for its unix side. Out of memory, it is
    // given up (counted as dropped for `c`) with nothing else changed: a reply still settles its call
    // only once it is queued.
    void bridge_take(Client& c, ReceivedDatagram received);
    // A message the kernel had for bridged client `c` that the bus had no memory to take (`lost`: what
    // its header said): given up, counted as dropped for `c` and logged. Whoever waits because of it is
    // answered where the bridge can tell who: `c` itself, for the answer to one of its own calls, direct
    // or through the master (NoMemory, from the bus; not for a monitor or an eavesdropper, whose copies
    // from the master cannot be told from its own answers), and a client that called `c` directly
    // (NoMemory, from `c`'s name, the only SENDER the kernel lets the bridge use). A call the master forwarded is the model's: NoReply at
    // the reply timeout or when `c` leaves. With no memory even for its answer, `c` is ended at the
    // flush rather than left waiting; a direct caller waits for its own library's timeout.
    void bridge_gave_up(Client& c, const SkippedMessage& lost) noexcept;
    // A read of `c`'s bridge failed with ENOMEM: as for a client's own socket (retry_read_later), the
    // bridge is read again kReadRetry later, and its unix client is kept.
    void bridge_retry_read_later(Client& c);
    void bridge_update_watch(Client& c);
    // What a bridge lets its unix side hold before it stops reading from the kernel.
    [[nodiscard]] std::size_t bridge_high_water() const;
    // Tracks `c`'s call `serial` to `callee` (sent through the kernel directly): whole, or, when it
    // throws std::bad_alloc, not at all.
    void bridge_expect_reply(Client& c, std::uint32_t serial, PeerId callee);
    void bridge_no_reply(Client& c, std::uint32_t serial, std::string_view why);
    // Forgets `c`'s pending call `call` (answered, refused, timed out or dropped), its timer and its
    // entry in bridge_callers_.
    using PendingCalls = std::unordered_map<std::uint32_t, Bridge::PendingCall>;
    void bridge_forget_call(Client& c, PendingCalls::iterator call);
    // `callee` left or became a monitor: the bridged callers still waiting for it get NoReply, `why`.
    void bridge_callee_left(PeerId callee, const char* why);
    [[nodiscard]] Client* kernel_owner(std::string_view name) const;
    // Installs `record` for `c` as its rule says, in the kernel's terms: a rule naming a well-known
    // sender (other than the bus) becomes one naming that name's owner, and none while no client in the
    // kernel owns it (its owner's broadcasts then go through the model, which resolves the name itself).
    // 0, or the errno with which the kernel refused the record (logged). May throw std::bad_alloc
    // (nothing installed then).
    int install_record(Client& c, Client::Record& record);
    void uninstall_record(Client& c, Client::Record& record);
    // The well-known sender= of `rule` whose owner its record in the kernel names, if it has one.
    static std::optional<std::string_view> watched_sender(const MatchRule& rule);
    // Whose rules name `name` as their sender: their records follow the name's owner.
    void watch_sender(const Client::Record& record, PeerId peer);
    void unwatch_sender(const Client::Record& record, PeerId peer);
    // Whether bridged monitor `c` wants the kernel's copy of `message`.
    [[nodiscard]] bool monitor_wants(const Client& c, const Message& message) const;
    // Turns the kernel's copies of the traffic between clients on or off for bridged eavesdropper `c`;
    // the kernel's errno, or 0.
    int set_bridged_eavesdropping(Client& c, bool on);
    // Whether `destination` is `c` (its unique name, or a name it owns in the kernel).
    [[nodiscard]] bool addressed_to(const Client& c, std::string_view destination) const;
    // A client leaves: told to the model (DeliveryEvents' peer_failed, peer_lost, peer_refused) once the
    // kernel's copies for eavesdroppers are judged (judge_eavesdroppers_copies).
    void report_failed(PeerId id, std::string_view reason);
    void report_lost(PeerId id, std::string_view reason);
    void report_refused(PeerId id, std::string_view reason);
    void judge_eavesdroppers_copies() noexcept;
    // The serial for a message of the daemon's own; never 0.
    std::uint32_t take_serial();
    // Reading or writing a client's socket failed: a client that hung up ends it; any other errno is the
    // bus's side failing (ENOMEM, ENOBUFS), which the model logs as a loss naming the client, as the
    // broker does.
    void fail_on(PeerId id, const TransportError& error);
    [[nodiscard]] static bool is_loss(const TransportError& error) {
        return error.kind == TransportError::Kind::Io || error.kind == TransportError::Kind::NoMemory;
    }

    EventLoop& loop_;
    DeliveryEvents& events_;
    ConnectionSettings settings_;
    int family_;
    UnixEvents unix_events_{*this};
    BrokerDelivery broker_;
    // Where bridges connect: the first listener's bus.
    std::optional<AddressEntry> bridge_address_;
    // The chains of unix clients not bridged yet (given at authentication, installed at Hello).
    std::unordered_map<PeerId, std::vector<std::uint32_t>> unix_chains_;
    // A reload's chains for unix clients not bridged yet (empty: none), moved into unix_chains_ node by
    // node as it takes effect.
    std::unordered_map<PeerId, std::vector<std::uint32_t>> staged_unix_chains_;
    // Native clients accepted while looking for a bridge's master side: admitted at the next flush().
    std::vector<Fd> accepted_early_;
    // Monitors on the bus: while there are any, bridged clients' broadcasts go through the model, which
    // shows monitors the errors of the copies policy refuses (the kernel drops those silently). Room for
    // every peer is made as it connects: becoming a monitor cannot fail after its answer was sent.
    std::vector<PeerId> monitors_;
    bool judging_copies_ = false;  // judge_eavesdroppers_copies() is running (it does not nest)
    // Clients with eavesdropping match rules, once per rule: while there are any, bridged clients'
    // unicasts go through the model, which copies them to eavesdroppers as the broker does.
    std::multiset<PeerId> eavesdroppers_;
    std::vector<Fd> listeners_;
    bool listening_ = true;  // false while the model takes no new connections
    // Names are looked up for every message a bridged client sends, by the string_view its header holds:
    // a transparent hash spares building a std::string per lookup.
    struct NameHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view name) const noexcept { return std::hash<std::string_view>{}(name); }
    };
    template <class Value>
    using ByName = std::unordered_map<std::string, Value, NameHash, std::equal_to<>>;

    std::unordered_map<PeerId, std::unique_ptr<Client>> clients_;
    // The bridged callers with calls pending at each callee, and how many (Bridge::pending_calls the
    // other way round): a callee that leaves costs its own callers, not a walk over every client.
    std::unordered_map<PeerId, std::unordered_map<PeerId, std::size_t>> bridge_callers_;
    ByName<PeerId> by_unique_name_;
    // Every well-known name a native client ever owned, and its address: stable for the bus's lifetime,
    // so that an address a client cached never comes to mean another name.
    std::unordered_map<std::string, std::uint64_t> name_addresses_;
    ByName<PeerId> kernel_owners_;  // well-known names a client in the kernel owns
    // The clients with match rules naming a well-known sender, by that name, once per rule.
    ByName<std::multiset<PeerId>> sender_watchers_;
    std::uint64_t next_name_address_ = 1;
    std::uint32_t next_serial_ = 1;  // of what the daemon sends itself: notices, errors (take_serial)
    // Failures found while sending, reported at flush.
    struct Broken {
        PeerId id;
        std::string reason;
        bool lost;  // the bus's side failed (see fail_on)
    };
    std::vector<Broken> broken_;
    // Peers whose state the kernel could not mirror (note_out_of_step), lost at the next flush(). Room
    // for every peer is made as it connects: noting one never allocates.
    struct OutOfStep {
        PeerId id;
        const char* reason;
    };
    std::vector<OutOfStep> out_of_step_;
    std::size_t peers_ = 0;  // native and unix, admitted and not yet detached
    // Bridged clients' messages handed on so far (unix_peer_sent: whether one was, when memory failed).
    std::uint64_t bridge_handoffs_ = 0;
    std::vector<PeerId> paused_readers_;
    std::vector<std::unique_ptr<Client>> graveyard_;
};

}  // namespace afbus::daemon
