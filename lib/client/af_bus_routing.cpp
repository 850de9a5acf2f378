#include "client/af_bus_routing.hpp"

#include <tuple>

#include "afbus/names.hpp"
#include "afbus/types.hpp"

namespace afbus::detail {
namespace {

constexpr std::string_view kBusName = "org.freedesktop.DBus";
constexpr std::string_view kBusPath = "/org/freedesktop/DBus";
constexpr std::uint64_t kClientMask = 0x0000ffffffffffffULL;  // BUS_CLIENT_MASK

}  // namespace

std::optional<std::uint64_t> NameAddressCache::find(std::string_view name) const {
    if (auto it = entries_.find(name); it != entries_.end()) return it->second;
    return std::nullopt;
}

void NameAddressCache::store(std::string_view name, std::uint64_t address) {
    if (auto it = entries_.find(name); it != entries_.end()) {
        it->second = address;
        return;
    }
    // Dropping everything is simpler than an eviction order and costs at most one hop per name.
    if (entries_.size() >= kMaxEntries) entries_.clear();
    entries_.emplace(std::string(name), address);
}

void AfBusRouting::joined(std::string unique_name, std::optional<std::uint64_t> own_address) {
    joined_ = true;
    unique_name_ = std::move(unique_name);
    own_address_ = own_address;
}

std::uint64_t AfBusRouting::destination_for(const Message& message) const {
    // Before the master has joined us and named us, the kernel lets us reach only the master.
    if (!joined_) return kMaster;
    const std::string_view destination = message.destination();
    if (destination.empty()) {
        // A broadcast signal reaches every subscriber at once; any other message without a destination
        // is for the bus itself.
        return message.type() == MessageType::Signal ? kBroadcast : kMaster;
    }
    if (destination == kBusName) return kMaster;
    if (destination == unique_name_ && own_address_) return *own_address_;
    return cache_.find(destination).value_or(kMaster);
}

namespace {

// Whether `message`, sent to `address`, is one the master forwards (and answers with a notice).
bool forwarded_by_master(const Message& message, std::uint64_t address) {
    const std::string_view destination = message.destination();
    return address == AfBusRouting::kMaster && !destination.empty() && destination != kBusName;
}

}  // namespace

void AfBusRouting::sending(const Message& message, std::uint64_t address) {
    if (joined_ && forwarded_by_master(message, address)) ++awaited_notices_;
}

void AfBusRouting::refused(const Message& message, std::uint64_t address) {
    if (joined_ && forwarded_by_master(message, address) && awaited_notices_ > 0) --awaited_notices_;
}

bool AfBusRouting::absorb(const Message& message, std::optional<std::uint64_t> source) {
    // A client's message comes from its unique address, and the kernel vouches for its SENDER: where
    // to answer it. Learning it is safe: nothing of ours is on the master's detour once we send again
    // (the fence), so a direct send cannot overtake anything.
    if (joined_ && source && *source != kMaster && message.sender().starts_with(':') &&
        (*source & kClientMask) != kClientMask && !cache_.find(message.sender()))
        cache_.store(message.sender(), *source);
    // Only the master can send as org.freedesktop.DBus (af_bus_dbus.ko checks every client's SENDER),
    // and only from address 0; a look-alike from anyone else is an ordinary signal.
    if (source != kMaster || message.type() != MessageType::Signal || message.sender() != kBusName ||
        message.path() != kBusPath || message.interface() != kAfBusKernelInterface ||
        (message.member() != kNameAddressMember && message.member() != kPeerAddressMember))
        return false;
    // One NameAddress answers each forwarded message, in order; a PeerAddress (the caller of a call the
    // master forwards to us, told before the call) only informs.
    if (message.member() == kNameAddressMember && awaited_notices_ > 0) --awaited_notices_;
    auto entry = read_all<std::string, std::uint64_t>(message);
    if (!entry) return true;  // malformed: ours anyway, and useless
    const auto& [name, address] = *entry;
    // A multicast or master address would misroute unicasts: never cache one.
    const std::uint64_t client_part = address & kClientMask;
    if (is_valid_bus_name(name) && name != kBusName && client_part != 0 && client_part != kClientMask)
        cache_.store(name, address);
    return true;
}

}  // namespace afbus::detail
