// Where a libafbus client on AF_BUS sends each message, and the name → address cache behind it
// (docs/sasl-and-addresses.md, "afbus: addresses"). Sans-I/O: ConnectionState asks destination_for()
// before each send and offers every received message to absorb().
//
// Why no message overtakes another of ours (D-Bus delivers one sender's messages in order): a message
// the master forwards (a unicast for a name we have no address for) takes a detour that direct sends
// do not. So each one opens a fence: until the master's NameAddress notice for it has been *read*,
// the client sends nothing more and holds what the application sends (ConnectionState). The master
// sends the notice once the forwarded message has left it (docs/kernel-mode.md); the kernel keeps
// one total order per bus, so the forwarded message is queued at its receiver before anything the
// client sends after the notice, direct or broadcast. A notice with address 0 only closes the fence
// (the name has no address: a unix client, nobody). A cached address whose holder has left (or a
// name that moved) is harmless: the kernel hands a send to an address nobody holds to the master,
// which answers as the broker would; unique addresses are never reused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "afbus/message.hpp"

namespace afbus::detail {

inline constexpr std::string_view kAfBusKernelInterface = "org.afbus.Kernel";
inline constexpr std::string_view kNameAddressMember = "NameAddress";
inline constexpr std::string_view kPeerAddressMember = "PeerAddress";

// Bus name → AF_BUS address, as the master told. Bounded: when full it is dropped whole (correctness
// never depends on an entry, only the number of hops does).
class NameAddressCache {
public:
    static constexpr std::size_t kMaxEntries = 4096;

    [[nodiscard]] std::optional<std::uint64_t> find(std::string_view name) const;
    void store(std::string_view name, std::uint64_t address);
    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

private:
    std::map<std::string, std::uint64_t, std::less<>> entries_;
};

class AfBusRouting {
public:
    // The AF_BUS addresses with a fixed meaning (<linux/af_bus.h>).
    static constexpr std::uint64_t kMaster = 0;
    static constexpr std::uint64_t kBroadcast = 0x0000ffffffffffffULL;  // BUS_ADDR(0, BUS_MULTICAST_CLIENT)

    // The Hello reply arrived: from now on messages may go straight to other clients. own_address is
    // this socket's unique address (getsockname), if known: messages to our own unique name go there.
    void joined(std::string unique_name, std::optional<std::uint64_t> own_address);

    // The address to send `message` to: the master before the Hello reply and for the bus driver, every
    // subscriber (multicast) for a signal without destination, else the cached address of the
    // destination, else the master, which forwards it.
    [[nodiscard]] std::uint64_t destination_for(const Message& message) const;

    // `message` is being sent to `address`: one the master will forward opens a fence.
    void sending(const Message& message, std::uint64_t address);
    // The kernel refused a message sent to `address`: a fence it opened will get no notice.
    void refused(const Message& message, std::uint64_t address);
    // While a forwarded message's notice is outstanding, nothing else may be sent.
    [[nodiscard]] bool fenced() const noexcept { return awaited_notices_ > 0; }

    // True when `message` is the master's NameAddress notification (signal st from org.freedesktop.DBus
    // at /org/freedesktop/DBus, interface org.afbus.Kernel, received from address 0): its entry is
    // stored, and the message must not reach the application. Anything else: false, untouched.
    bool absorb(const Message& message, std::optional<std::uint64_t> source);

    [[nodiscard]] const NameAddressCache& cache() const noexcept { return cache_; }

private:
    bool joined_ = false;
    std::string unique_name_;
    std::optional<std::uint64_t> own_address_;
    NameAddressCache cache_;
    std::size_t awaited_notices_ = 0;
};

}  // namespace afbus::detail
