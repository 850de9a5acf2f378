// Where a libafbus client on AF_BUS sends each message, and the name → address cache behind it
// (docs/sasl-and-addresses.md, "afbus: addresses"). Sans-I/O: ConnectionState asks destination_for()
// before each send and offers every received message to absorb().
//
// Why the cache never lets a message overtake another: the client sends every message for a name to
// the master (address 0) until it has *read* the master's NameAddress notification for that name, and
// the master sends that notification only after it has forwarded a message of this client for the
// name. The kernel keeps one total order per bus, so everything the client sent the master for the
// name is already queued at the receiver when the client learns the address; what it sends directly
// from then on is queued behind it. A cached address whose holder has left (or a name that moved) is
// harmless: the kernel hands a send to an address nobody holds to the master, which answers as the
// broker would; unique addresses are never reused.
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
};

}  // namespace afbus::detail
