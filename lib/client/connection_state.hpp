// Internal state of a Connection, shared with its Slots through weak pointers.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "afbus/connection.hpp"
#include "afbus/match_rule.hpp"
#include "client/af_bus_routing.hpp"
#include "client/client_transport.hpp"

namespace afbus::detail {

using Clock = std::chrono::steady_clock;

class ConnectionState : public std::enable_shared_from_this<ConnectionState> {
public:
    ConnectionState(ClientTransport transport, std::string transport_name)
        : transport(std::move(transport)), transport_name(std::move(transport_name)) {}

    struct PendingCall {
        std::uint64_t id;
        Connection::ReplyHandler handler;
        Clock::time_point deadline;
    };
    struct Subscription {
        MatchRule rule;
        std::string text;
        Connection::MessageHandler handler;
        bool on_bus;
    };
    struct Export {
        std::string path;
        std::shared_ptr<const Interface> interface;
    };

    ClientTransport transport;
    std::string transport_name;  // the address entry's transport: "unix", "tcp" or "afbus"
    // AF_BUS connections only: where each message goes, and the NameAddress notifications.
    std::optional<AfBusRouting> af_bus;
    int af_bus_family = 0;
    // AF_BUS: messages sent while a forwarded one's notice is awaited (AfBusRouting::fenced), in order.
    std::deque<Message> held;
    std::string unique_name;
    std::string guid;
    bool bus = true;
    bool connected = true;
    bool stopping = false;
    // Open send batches (Connection::SendBatch, and process() while it dispatches): send() queues, and the
    // queue is written when the last one ends or it holds one sendmmsg()'s worth of messages.
    int send_batches = 0;
    static constexpr std::size_t kHeldSends = DatagramTransport::kSendBatch;
    std::uint32_t next_serial = 1;
    // The next serial for a message of ours; never 0.
    std::uint32_t take_serial() {
        const std::uint32_t serial = next_serial++;
        if (next_serial == 0) next_serial = 1;
        return serial;
    }
    std::uint64_t next_id = 1;
    std::deque<Message> incoming;  // read, not yet dispatched
    std::map<std::uint32_t, PendingCall> pending;  // by serial
    std::map<std::uint64_t, std::shared_ptr<Subscription>> subscriptions;
    std::map<std::uint64_t, Export> exports;
    // org.freedesktop.DBus.ObjectManager at these paths (lib/client/object_manager.cpp).
    std::map<std::uint64_t, std::string> object_managers;
    // Well-known names this connection asked for and got: method calls addressed elsewhere (seen through
    // eavesdropping or monitoring) are none of ours to answer.
    std::set<std::string, std::less<>> owned_names;
    // Set once the connection is a monitor: every message goes here and nowhere else.
    Connection::MessageHandler monitor_handler;

    Expected<std::uint32_t, Error> send(Message message);
    // Flushes, waits for input or `deadline`, reads, and queues what arrived in `incoming`. `now` saves a
    // caller that just read the clock another read.
    Expected<void, Error> pump(Clock::time_point deadline, Clock::time_point now = Clock::now());
    // Reads what is there into `incoming`; with ReadStart::Waiting (only where may_wait_in_read()), waits
    // for it first, as long as the socket's receive timeout.
    Expected<void, Error> read_available(ReadStart start = ReadStart::Now);
    // Whether a wait of `left` for input can be the read itself. An AF_BUS socket's file blocks (every
    // other call passes MSG_DONTWAIT), so a receive can wait; one does where nothing waits to be written,
    // the transport reads a lone message in one receive, and `left` is at least kReceiveTimeout, which
    // the first such wait sets as the socket's SO_RCVTIMEO. A call with the default timeout and a loop
    // with nothing due soon then make one system call where poll() and a receive were two.
    [[nodiscard]] bool may_wait_in_read(Clock::duration left);
    static constexpr std::chrono::milliseconds kReceiveTimeout = kDefaultCallTimeout;
    enum class ReceiveTimeout : std::uint8_t { Unset, Set, Unavailable };
    ReceiveTimeout receive_timeout = ReceiveTimeout::Unset;
    Expected<void, Error> flush();
    // Routes and queues one message (AF_BUS: to the address AfBusRouting chooses).
    void enqueue(Message message);
    // AF_BUS: queues the held messages the fence now lets through.
    void release_held();
    // AF_BUS: serves the connection until nothing is held or queued, or `deadline`.
    void drain_held(Clock::time_point deadline);
    // Messages the kernel refused to send (AF_BUS): one policy refused goes to the bus to be judged again;
    // for others, a call awaiting a reply gets a local error reply. True when something was queued for
    // the bus (the caller flushes again).
    bool answer_refused();
    // `now`: when the call was sent, if the caller knows (the first wait needs no clock read of its own).
    Expected<Message, Error> wait_for_reply(std::uint32_t serial, Clock::time_point deadline,
                                            Clock::time_point now = Clock::now());
    void dispatch(Message message);
    void dispatch_method_call(const Message& call);
    void expire_calls(Clock::time_point now);
    void disconnect(const Error& why);
    void release(std::uint64_t id);

    // ObjectManager (lib/client/object_manager.cpp).
    enum class Change { Added, Removed };
    [[nodiscard]] bool manages(std::string_view path) const;
    // GetManagedObjects' answer for the manager at `manager_path`: every object exported below it.
    [[nodiscard]] std::map<ObjectPath, std::map<std::string, std::map<std::string, Variant>>> managed_objects(
        std::string_view manager_path) const;
    // Emits InterfacesAdded or InterfacesRemoved from each object manager above `path`.
    void announce_interface(std::string_view path, const Interface& interface, Change change);
};

// Every readable property of `interface` with its value (Properties.GetAll).
std::map<std::string, Variant> readable_properties(const Interface& interface);

// Where connecting to an afbus: address looks for module/af_bus/parameters/family: "/sys" unless a test
// points it at a directory of its own. Set it before connecting; it is not synchronised.
void set_af_bus_sysfs_root(std::string root);

// The D-Bus error for a message AF_BUS refused with `error_number` (see answer_refused).
Error refused_send_error(int error_number, std::string_view destination = {});

// An error reply as an Error; anything else as itself.
Expected<Message, Error> reply_to_result(Message reply);

}  // namespace afbus::detail
