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
// Standard clients on unix sockets are served by a BrokerDelivery inside this one, sharing the model:
// the model routes what they send, and what is for a native client leaves through the master.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

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
    // Accepts native clients on `listener`, a bound and listening AF_BUS master socket. False (logged,
    // the listener closed) if the kernel refused the policy: the bus would not enforce it.
    [[nodiscard]] bool add_listener(Fd listener);

    void configure(const ConnectionSettings& settings) override;
    [[nodiscard]] QueueLoad queued(PeerId peer) const override;
    [[nodiscard]] bool passes_fds(PeerId peer) const override;
    QueueLoad deliver(PeerId peer, std::shared_ptr<const Message> message) override;
    void flush() override;
    void detach(PeerId peer) override;

    void unique_name_assigned(PeerId peer, std::string_view unique_name) override;
    void name_owner_changed(const NameChange& change) override;
    void match_added(PeerId peer, const MatchRule& rule) override;
    void match_removed(PeerId peer, const MatchRule& rule) override;
    void became_monitor(PeerId peer) override;
    void peer_policy_assigned(PeerId peer, const policy::ConnectionChains* chains) override;
    void peer_names_changed(PeerId peer, const std::vector<std::string>& names) override;

private:
    // The NameAddress notice that answers a message the master forwarded for `sender`.
    struct Notice {
        PeerId sender;
        std::string name;
        std::uint64_t address;  // 0: the name has no address of its own
    };
    struct Client {
        PeerId id = 0;
        std::uint64_t address = 0;  // its unique address in the kernel
        std::unique_ptr<DatagramTransport> transport;  // on its master-side socket
        std::unique_ptr<SaslServer> sasl;              // while authenticating
        SaslStream sasl_stream;
        EventLoop::TimerId auth_timer = 0;
        std::uint32_t epoll_events = 0;
        bool reading_paused = false;
        std::string unique_name;
        std::vector<std::string> records;  // the match records installed for it
        // Its policy chains as BUS_DBUS_SET_CHAINS takes them; empty when the bus has no policy.
        std::vector<std::uint32_t> chains;
        // Notices that wait for what is queued for this client to reach the kernel.
        std::vector<Notice> deferred_notices;
    };

    void on_listener_ready(int fd);
    void watch_listeners(bool on);
    void apply_bus_limits(const Fd& listener) const;
    // Installs settings_.policy's image (or none) on `listener`'s bus; false (logged) if the kernel refused it.
    [[nodiscard]] bool install_policy(const Fd& listener) const;
    // Gives the kernel `client`'s chains (once it is named: the kernel knows it from then on); false
    // (logged) if the kernel refused them, true when there is nothing to give.
    [[nodiscard]] bool install_chains(const Client& client);
    void add_client(Fd socket);
    void on_io(PeerId id, std::uint32_t events);
    void authenticate(Client& client);
    void read_messages(Client& client, bool hung_up);
    // Sends what is queued for `client` now. A broken connection is reported at the next flush().
    void send_queued(Client& client);
    // After the model routed a message `sender` sent the master for `destination`: the notice that lets
    // the sender go on (its library holds its sends until then), with the name's address if a native
    // client holds it, so that its next messages go directly.
    void acknowledge_forward(PeerId sender, const std::string& destination);
    void send_notice(const Notice& notice);
    // Queues a NameAddress or PeerAddress signal for `to` (docs/kernel-mode.md).
    void enqueue_notice(Client& to, std::string_view member, const std::string& name, std::uint64_t address);
    [[nodiscard]] Client* native_owner(std::string_view name) const;
    void update_watch(Client& client);
    // Sets a SOL_BUS option on `client`'s master-side socket; false (logged) if the kernel refused it.
    bool set_option(const Client& client, int option, const void* value, std::size_t size, const char* what);
    [[nodiscard]] Client* find(PeerId id) const;
    void fail(PeerId id, std::string_view reason);

    EventLoop& loop_;
    DeliveryEvents& events_;
    ConnectionSettings settings_;
    int family_;
    BrokerDelivery broker_;
    std::vector<Fd> listeners_;
    bool listening_ = true;  // false while the model takes no new connections
    std::unordered_map<PeerId, std::unique_ptr<Client>> clients_;
    std::unordered_map<std::string, PeerId> by_unique_name_;
    // Every well-known name a native client ever owned, and its address: stable for the bus's lifetime,
    // so that an address a client cached never comes to mean another name.
    std::unordered_map<std::string, std::uint64_t> name_addresses_;
    std::unordered_map<std::string, PeerId> native_owners_;  // well-known names a native client owns
    std::uint64_t next_name_address_ = 1;
    std::uint32_t next_serial_ = 1;  // of the address notices
    std::vector<std::pair<PeerId, std::string>> broken_;  // failures found while sending, reported at flush
    std::vector<PeerId> paused_readers_;
    std::vector<std::unique_ptr<Client>> graveyard_;
};

}  // namespace afbus::daemon
